//! `snap mount`: the real binary mounts a real repository on a private
//! directory; the tests read it with ordinary file calls. Where FUSE cannot
//! be used (no /dev/fuse, no fusermount for a user other than root) each
//! test says so on stderr and returns.

mod common;
#[allow(dead_code)] // this test only records requests
#[path = "common/fault_proxy.rs"]
mod fault_proxy;
#[allow(dead_code)]
#[path = "common/s3s.rs"]
mod s3s;

use common::*;
use std::fs;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Why FUSE cannot be used here, if it cannot.
fn fuse_unusable() -> Option<String> {
    if let Err(e) = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/fuse")
    {
        // SAFETY: geteuid cannot fail.
        let root = unsafe { libc::geteuid() } == 0;
        if root || e.kind() != std::io::ErrorKind::PermissionDenied {
            return Some(format!("/dev/fuse cannot be opened ({e})"));
        }
    }
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0
        && ["fusermount3", "fusermount"].iter().all(|p| {
            Command::new(p)
                .arg("-V")
                .output()
                .map_or(true, |o| o.stdout.is_empty() && o.stderr.is_empty())
        })
    {
        return Some("not root, and neither fusermount3 nor fusermount runs".into());
    }
    None
}

macro_rules! need_fuse {
    () => {
        if let Some(why) = fuse_unusable() {
            eprintln!(
                "skipped: {why}; install fuse3 and load the fuse module to run the mount tests"
            );
            return;
        }
    };
}

/// How many mounts are stacked on `mp`.
fn mounts_at(mp: &Path) -> usize {
    let want = mp.canonicalize().unwrap_or_else(|_| mp.to_path_buf());
    fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|p| Path::new(p) == want)
        .count()
}

fn is_mounted(mp: &Path) -> bool {
    mounts_at(mp) > 0
}

/// Polls `ready` until it holds, for up to two minutes.
fn wait_for(what: &str, ready: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while !ready() {
        assert!(Instant::now() < deadline, "gave up waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A running `snap mount`; dropping it unmounts and reaps it, so a failing
/// test leaves no mount behind.
struct Mount {
    child: Option<Child>,
    mp: PathBuf,
    stderr: PathBuf,
}

fn snap_command(repo: &Repo) -> Command {
    let mut c = Command::new(assert_cmd::cargo::cargo_bin("snap"));
    c.env("SNAP_REPO", &repo.path)
        .env("SNAP_CACHE_DIR", repo.cache())
        .env("SNAP_REMOTES_FILE", "/dev/null")
        .env("SNAP_POLICY_FILE", "/dev/null")
        // Directory names are local times.
        .env("TZ", "Europe/Paris")
        .env("SNAP_PASSWORD", PASSWORD)
        .env("SNAP_KDF_MEMORY_KIB", "1024")
        .env("SNAP_INSECURE_KDF", "1")
        .env_remove("SNAP_PASSWORD_FILE")
        .stdin(Stdio::null());
    c
}

impl Mount {
    /// Mounts `repo` on `mp` (created) and waits until it is mounted.
    fn new(repo: &Repo, mp: &Path) -> Mount {
        Mount::with(snap_command(repo), mp)
    }

    /// Mounts with `cmd` (snap with its environment) on `mp`.
    fn with(mut cmd: Command, mp: &Path) -> Mount {
        fs::create_dir_all(mp).unwrap();
        let stderr = mp.with_extension("stderr");
        let child = cmd
            .arg("mount")
            .arg(mp)
            .stdout(Stdio::null())
            .stderr(fs::File::create(&stderr).unwrap())
            .spawn()
            .unwrap();
        let mut m = Mount {
            child: Some(child),
            mp: mp.to_path_buf(),
            stderr,
        };
        let deadline = Instant::now() + Duration::from_secs(120);
        while !is_mounted(mp) {
            if let Some(st) = m.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("snap mount exited ({st}) before mounting: {}", m.log());
            }
            assert!(Instant::now() < deadline, "not mounted after 2 minutes");
            std::thread::sleep(Duration::from_millis(10));
        }
        m
    }

    fn log(&self) -> String {
        fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    fn pid(&self) -> i32 {
        self.child.as_ref().unwrap().id() as i32
    }

    /// Waits for the process to exit and returns its exit code.
    fn wait_exit(&mut self) -> Option<i32> {
        let child = self.child.as_mut().unwrap();
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Some(st) = child.try_wait().unwrap() {
                self.child = None;
                return st.code();
            }
            assert!(Instant::now() < deadline, "snap mount did not exit");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        if is_mounted(&self.mp) {
            let _ = Command::new("umount").arg("-l").arg(&self.mp).status();
            if is_mounted(&self.mp) {
                let _ = Command::new("fusermount")
                    .args(["-u", "-z"])
                    .arg(&self.mp)
                    .status();
            }
        }
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn only_entry(dir: &Path) -> PathBuf {
    let entries: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(entries.len(), 1, "{}: {entries:?}", dir.display());
    entries[0].clone()
}

#[test]
fn a_mounted_snapshot_is_the_tree_that_was_pushed_and_cannot_be_written() {
    need_fuse!();
    let repo = Repo::new();
    let src = repo.dir("src");
    make_tree(&src);
    let pushed = repo.push(&src, &["--site", "client-a"]);
    let id = pushed["id"].as_str().unwrap().to_string();
    let mp = repo.dir("mnt");
    let m = Mount::new(&repo, &mp);

    let names = |d: &str| -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(mp.join(d))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        v.sort();
        v
    };
    assert_eq!(names(""), ["ids", "latest", "levels", "sites"]);
    assert_eq!(names("sites"), ["client-a"]);
    assert_eq!(names("latest/client-a"), ["files"]);
    assert_eq!(names("ids"), [id[..8].to_string()]);

    // Every file, byte for byte, with modes, owners, mtimes, symlink
    // targets, hard links and the FIFO, under each of the four ways in.
    assert_same_tree(&src, &mp.join("latest/client-a/files"), &[]);
    let by_time = only_entry(&mp.join("sites/client-a/files"));
    let name = by_time.file_name().unwrap().to_str().unwrap().to_string();
    assert!(
        name.len() == 22
            && (name.ends_with("+0100") || name.ends_with("+0200"))
            && !name.contains(':'),
        "a local time in Europe/Paris with its offset: {name}"
    );
    assert!(
        name.as_bytes()[10] == b'T' && name[..10].bytes().filter(|&b| b == b'-').count() == 2,
        "{name}"
    );
    assert_same_tree(&src, &by_time, &[]);
    assert_same_tree(&src, &mp.join("ids").join(&id[..8]), &[]);
    assert_same_tree(&src, &mp.join("ids").join(&id), &[]);
    let level = only_entry(&mp.join("levels/1"));
    assert!(level.to_str().unwrap().ends_with("_client-a_files"));
    assert_eq!(
        fs::read_link(mp.join("latest/client-a/files/link-dangling")).unwrap(),
        Path::new("/nonexistent/target")
    );

    // A read at an offset deep in a file of several chunks.
    let big = fs::read(src.join("wp-content/uploads/big.zip")).unwrap();
    let f = fs::File::open(mp.join("latest/client-a/files/wp-content/uploads/big.zip")).unwrap();
    for (at, len) in [(3_333_333usize, 1000usize), (big.len() - 77, 77), (0, 5)] {
        let mut buf = vec![0u8; len];
        f.read_exact_at(&mut buf, at as u64).unwrap();
        assert_eq!(buf, big[at..at + len], "read at {at}");
    }

    // Nothing can be written.
    let inside = mp.join("latest/client-a/files");
    let erofs = |r: std::io::Result<()>, what: &str| {
        let e = r.expect_err(what);
        assert_eq!(e.raw_os_error(), Some(libc::EROFS), "{what}: {e}");
    };
    erofs(fs::write(inside.join("new.php"), b"x"), "create");
    erofs(
        fs::OpenOptions::new()
            .append(true)
            .open(inside.join("index.php"))
            .map(drop),
        "append",
    );
    erofs(fs::create_dir(inside.join("d")), "mkdir");
    erofs(fs::remove_file(inside.join("index.php")), "unlink");
    erofs(
        fs::rename(inside.join("index.php"), inside.join("i.php")),
        "rename",
    );
    erofs(
        fs::set_permissions(
            inside.join("index.php"),
            std::os::unix::fs::PermissionsExt::from_mode(0o777),
        ),
        "chmod",
    );
    assert_eq!(
        fs::read(inside.join("index.php")).unwrap(),
        fs::read(src.join("index.php")).unwrap()
    );
    drop(f);
    drop(m);
    assert!(!is_mounted(&mp), "the guard unmounts");
}

#[test]
fn a_push_while_mounted_appears_a_prune_does_not_wait_and_sigterm_unmounts() {
    need_fuse!();
    let repo = Repo::new();
    let src = repo.dir("src");
    fs::create_dir_all(src.join("wp-content")).unwrap();
    fs::write(src.join("index.php"), b"<?php // healthy\n").unwrap();
    fs::write(src.join("wp-content/big.bin"), noise(7, 3_000_000)).unwrap();
    repo.push(&src, &["--site", "client-a"]);
    let mp = repo.dir("mnt");
    let mut m = Mount::new(&repo, &mp);
    let latest = mp.join("latest/client-a/files/index.php");
    assert_eq!(fs::read(&latest).unwrap(), b"<?php // healthy\n");
    // A file held open across the push and the prune.
    let held = fs::File::open(mp.join("latest/client-a/files/wp-content/big.bin")).unwrap();

    fs::write(src.join("index.php"), b"<?php eval($_POST['x']);\n").unwrap();
    // Distinct times: the second snapshot must not share the first's name.
    repo.push(
        &src,
        &["--site", "client-a", "--time", "2030-01-01T00:00:00Z"],
    );
    let files = mp.join("sites/client-a/files");
    wait_for("the new snapshot in sites/client-a/files", || {
        fs::read_dir(&files).map(|d| d.count()).unwrap_or(0) == 2
    });
    assert!(files.join("2030-01-01T010000+0100").is_dir());

    // The mount holds no lock between reads: a prune runs at once.
    let out = snap_command(&repo)
        .args(["prune", "--policy", "level1", "--lock-wait", "2"])
        .output()
        .unwrap();
    assert_success(&out, "snap prune while mounted");
    let mut buf = vec![0u8; 4096];
    held.read_exact_at(&mut buf, 2_000_000).unwrap();
    assert_eq!(buf, noise(7, 3_000_000)[2_000_000..2_004_096]);
    drop(held);

    // SIGTERM unmounts and ends the process with 128 + 15, even while a
    // process has its working directory inside.
    let mut shell = Command::new("sleep")
        .arg("600")
        .current_dir(mp.join("latest/client-a/files"))
        .spawn()
        .unwrap();
    // SAFETY: kill sends a signal to a child of this test.
    assert_eq!(unsafe { libc::kill(m.pid(), libc::SIGTERM) }, 0);
    assert_eq!(m.wait_exit(), Some(143), "{}", m.log());
    assert!(!is_mounted(&mp), "left mounted: {}", m.log());
    assert!(m.log().contains("unmounted"), "{}", m.log());
    let _ = shell.kill();
    let _ = shell.wait();
}

/// The pack under an open file is repacked away by a prune (format-spec.md
/// §17.1): the read that finds it gone is retried on a newer view, whose
/// index names the blob's new pack, and gives the right bytes.
#[test]
fn a_prune_that_repacks_the_pack_under_an_open_file_does_not_break_it() {
    need_fuse!();
    let repo = Repo::new();
    let src = repo.dir("src");
    fs::create_dir_all(&src).unwrap();
    let keep = noise(11, 3_000_000);
    fs::write(src.join("keep.bin"), &keep).unwrap();
    fs::write(src.join("junk.bin"), noise(12, 12_000_000)).unwrap();
    repo.push(&src, &["--site", "a", "--time", "2026-01-01T00:00:00Z"]);
    // The second snapshot keeps keep.bin (the same chunks, in the first
    // push's pack) and drops junk.bin: once the first snapshot goes, that
    // pack is mostly unused and is repacked.
    fs::remove_file(src.join("junk.bin")).unwrap();
    repo.push(&src, &["--site", "a", "--time", "2026-01-02T00:00:00Z"]);
    let policies = repo.dir("policies.toml");
    fs::write(
        &policies,
        "[policy.level1]\nlevel = 1\nfiles = { last = 1 }\n",
    )
    .unwrap();

    let mp = repo.dir("mnt");
    let _m = Mount::new(&repo, &mp);
    // Opened by its path (no listing: nothing is fetched ahead), not read.
    let held = fs::File::open(mp.join("latest/a/files/keep.bin")).unwrap();
    let packs_before: Vec<PathBuf> = repo.packs().into_iter().map(|(p, _)| p).collect();
    let out = snap_command(&repo)
        .args([
            "prune",
            "--policy",
            "level1",
            "--lock-wait",
            "5",
            "--now",
            "2026-01-03T00:00:00Z",
        ])
        .arg("--policy-file")
        .arg(&policies)
        .output()
        .unwrap();
    assert_success(&out, "snap prune while a file is open");
    let packs_after: Vec<PathBuf> = repo.packs().into_iter().map(|(p, _)| p).collect();
    assert!(
        packs_before.iter().any(|p| !packs_after.contains(p)),
        "the prune removed no pack: {}",
        stdout(&out)
    );
    let mut got = vec![0u8; keep.len()];
    held.read_exact_at(&mut got, 0).unwrap();
    assert!(
        got == keep,
        "the open file reads other bytes after the prune"
    );
}

/// Without /dev/fuse (a container not given the device, the module not
/// loaded) the mount is refused with what to do. The device is hidden in a
/// private mount namespace, which takes root and unshare(1).
#[test]
fn a_missing_dev_fuse_is_named_with_what_to_do() {
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: hiding /dev/fuse in a mount namespace needs root");
        return;
    }
    let repo = Repo::new();
    let mp = repo.dir("mnt");
    fs::create_dir_all(&mp).unwrap();
    let snap = assert_cmd::cargo::cargo_bin("snap");
    // The environment snap_command gives, for the snap run inside.
    let env = snap_command(&repo);
    let out = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c"])
        .arg("mount -t tmpfs none /dev && exec \"$0\" mount \"$1\"")
        .arg(&snap)
        .arg(&mp)
        .envs(
            env.get_envs()
                .filter_map(|(k, v)| v.map(|v| (k.to_owned(), v.to_owned()))),
        )
        .stdin(Stdio::null())
        .output();
    let out = match out {
        Ok(o) => o,
        Err(e) => {
            eprintln!("skipped: unshare(1) does not run ({e}); scripts/install-deps.sh installs util-linux");
            return;
        }
    };
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("/dev/fuse is missing") && err.contains("modprobe fuse"),
        "{err}"
    );
    assert!(!is_mounted(&mp));
}

#[test]
fn unusable_mount_points_are_refused_before_anything_is_mounted() {
    need_fuse!();
    let repo = Repo::new();
    let src = repo.dir("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("a"), b"a").unwrap();
    repo.push(&src, &[]);

    let refused = |mp: &Path, want: &str| {
        let before = mounts_at(mp);
        let out = snap_command(&repo).arg("mount").arg(mp).output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        let err = stderr(&out);
        assert!(err.contains(want), "{err}");
        assert!(err.contains(&mp.display().to_string()), "{err}");
        assert_eq!(mounts_at(mp), before, "nothing more is mounted");
    };
    refused(&repo.dir("missing"), "does not exist");
    refused(&src.join("a"), "is not a directory");
    refused(&src, "is not empty");
    let mp = repo.dir("mnt");
    let m = Mount::new(&repo, &mp);
    refused(&mp, "already a mount point");
    drop(m);
    assert!(!is_mounted(&mp));
}

#[test]
fn a_repository_on_s3_mounts_too() {
    need_fuse!();
    let server = s3s::S3Server::start();
    server.backend("mnt", "repo", s3s::test_options());
    // The mount reads through a proxy that records every request.
    let proxy = fault_proxy::FaultProxy::start(server.port);
    let repo = Repo::uninit();
    let snap = |port: u16| {
        let mut c = snap_command(&repo);
        c.env("SNAP_REPO", format!("s3+http://127.0.0.1:{port}/mnt/repo"))
            .env("AWS_ACCESS_KEY_ID", &server.access_key)
            .env("AWS_SECRET_ACCESS_KEY", &server.secret_key);
        c
    };
    let src = repo.dir("src");
    make_tree(&src);
    for args in [
        vec!["init"],
        vec!["push", "--site", "client-a", src.to_str().unwrap()],
    ] {
        let out = snap(server.port).args(&args).output().unwrap();
        assert_success(&out, &format!("snap {}", args.join(" ")));
    }
    // A fresh cache: the mount knows nothing but the bucket.
    let mut mount = snap(proxy.port);
    mount.env("SNAP_CACHE_DIR", repo.dir("other-cache"));
    let mp = repo.dir("mnt");
    let m = Mount::with(mount, &mp);
    assert_same_tree(&src, &mp.join("latest/client-a/files"), &[]);
    drop(m);
    assert!(!is_mounted(&mp));

    // The read rule (format-spec.md §9.1): every GET of a pack is whole or
    // on the 1 MiB grid, never one blob's exact range.
    const GRID: u64 = 1 << 20;
    let gets: Vec<fault_proxy::Seen> = proxy
        .take_seen()
        .into_iter()
        .filter(|r| r.method == "GET" && r.target.contains("/data/"))
        .collect();
    assert!(!gets.is_empty(), "the mount read no pack through the proxy");
    for r in &gets {
        let key = r.target.split('?').next().unwrap().trim_start_matches('/');
        let size = fs::metadata(server.root.join(key))
            .unwrap_or_else(|e| panic!("{key} on the server: {e}"))
            .len();
        let Some(range) = &r.range else { continue };
        let (a, b) = range
            .strip_prefix("bytes=")
            .and_then(|x| x.split_once('-'))
            .unwrap_or_else(|| panic!("{range:?}"));
        let (a, b): (u64, u64) = (a.parse().unwrap(), b.parse().unwrap());
        assert_eq!(a % GRID, 0, "{r:?} does not start on the grid");
        assert!(
            (b + 1) % GRID == 0 || b + 1 == size,
            "{r:?} ends neither on the grid nor at the end ({size})"
        );
    }
}
