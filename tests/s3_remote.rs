//! Off-site replication to a real S3 server (s3s-fs on a loopback port),
//! end to end with the real binary: the disaster-recovery drill (three days
//! of two sites replicated by their level-2 pushes, the local repository
//! and its cache lost, everything restored from the bucket with only the
//! password, the URL and the credentials, then cloned back), the read rule
//! as the S3 server sees it, replication through a proxy that injects
//! faults (retried ones, a server that dies mid-upload, in one PUT or in
//! parts, and a multipart completion whose answer is lost), and kill -9 of
//! `snap replicate` then a rerun. The same features against a remote in a
//! local directory are in tests/remote.rs.

mod common;
#[allow(dead_code)]
#[path = "common/fault_proxy.rs"]
mod fault_proxy;
#[allow(dead_code)]
#[path = "common/s3s.rs"]
mod s3s;

use common::*;
use s3s::S3Server;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Output;

/// The bucket and prefix of the off-site copy.
const BUCKET: &str = "offsite";
const PREFIX: &str = "agency";

/// A local repository whose remotes file names `offsite`, a repository in
/// a bucket of a running s3s-fs (reached directly, or through a proxy at
/// `port`), with its credentials in a file and jurisdiction FR.
struct Offsite {
    server: S3Server,
    repo: Repo,
    remotes: PathBuf,
    /// `s3+http://127.0.0.1:PORT/offsite/agency`.
    url: String,
}

impl Offsite {
    /// `port`: where snap sends its requests (the server's, or a proxy's);
    /// `extra`: more lines for the remote's section.
    fn new(server: S3Server, port: u16, extra: &str) -> Offsite {
        let repo = Repo::new();
        let url = format!("s3+http://127.0.0.1:{port}/{BUCKET}/{PREFIX}");
        let creds = repo.dir("offsite.credentials");
        fs::write(
            &creds,
            format!(
                "[default]\naws_access_key_id = {}\naws_secret_access_key = {}\n",
                server.access_key, server.secret_key
            ),
        )
        .unwrap();
        fs::set_permissions(&creds, fs::Permissions::from_mode(0o600)).unwrap();
        let remotes = repo.dir("remotes.toml");
        fs::write(
            &remotes,
            format!(
                "allowed_jurisdictions = [\"FR\"]\n\n[remote.offsite]\nurl = \"{url}\"\njurisdiction = \"FR\"\ncredentials_file = \"{}\"\n{extra}",
                creds.display()
            ),
        )
        .unwrap();
        Offsite {
            server,
            repo,
            remotes,
            url,
        }
    }

    /// `snap` on the local repository with the remotes file, and no
    /// credentials in the environment: only the credentials file has them.
    fn cmd(&self) -> assert_cmd::Command {
        let mut c = self.repo.cmd();
        c.env("SNAP_REMOTES_FILE", &self.remotes)
            .env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
            .env_remove("AWS_SESSION_TOKEN");
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().unwrap()
    }

    fn ok(&self, args: &[&str]) -> Output {
        let out = self.run(args);
        assert_success(&out, &format!("snap {}", args.join(" ")));
        out
    }

    fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut a = vec!["--json"];
        a.extend_from_slice(args);
        parse_json(&self.ok(&a))
    }

    /// Pushes the directory `src` of `site` at level 2 (which replicates
    /// it); returns the push's JSON.
    fn push_files(&self, site: &str, src: &Path) -> serde_json::Value {
        self.json(&[
            "push",
            "--level",
            "2",
            "--site",
            site,
            src.to_str().unwrap(),
        ])
    }

    /// Pushes `dump` as `SITE.sql` from standard input, at level 2.
    fn push_dump(&self, site: &str, dump: &[u8]) -> serde_json::Value {
        let name = format!("{site}.sql");
        let out = self
            .cmd()
            .args([
                "--json", "push", "--level", "2", "--site", site, "--stdin", "--name", &name,
            ])
            .write_stdin(dump.to_vec())
            .output()
            .unwrap();
        assert_success(&out, "push --stdin");
        parse_json(&out)
    }

    /// Adds remote `name`, at `prefix` of the same bucket, to the remotes
    /// file.
    fn add_remote(&self, name: &str, prefix: &str) {
        let text = fs::read_to_string(&self.remotes).unwrap();
        let url = self
            .url
            .replace(&format!("/{PREFIX}"), &format!("/{prefix}"));
        fs::write(
            &self.remotes,
            format!(
                "{text}\n[remote.{name}]\nurl = \"{url}\"\njurisdiction = \"FR\"\ncredentials_file = \"{}\"\n",
                self.repo.dir("offsite.credentials").display()
            ),
        )
        .unwrap();
    }

    /// The ids of the snapshots on remote `name`.
    fn remote_ids(&self, name: &str) -> BTreeSet<String> {
        ids(&self.json(&["--remote", name, "snapshots"]))
    }

    /// The ids of the local level-2 snapshots.
    fn local_level2(&self) -> BTreeSet<String> {
        ids(&self.json(&["snapshots", "--level", "2"]))
    }

    /// The objects of the repository at `prefix` under `dir` (`data`,
    /// `snapshots`) as s3s-fs keeps them in its root directory, by name.
    fn objects(&self, prefix: &str, dir: &str) -> BTreeSet<String> {
        self.object_sizes(prefix, dir).into_keys().collect()
    }

    /// [`Offsite::objects`], with their sizes.
    fn object_sizes(&self, prefix: &str, dir: &str) -> BTreeMap<String, u64> {
        let mut out = BTreeMap::new();
        let mut dirs = vec![self.server.root.join(BUCKET).join(prefix).join(dir)];
        while let Some(d) = dirs.pop() {
            let Ok(entries) = fs::read_dir(&d) else {
                continue;
            };
            for e in entries.flatten() {
                if e.file_type().unwrap().is_dir() {
                    dirs.push(e.path());
                    continue;
                }
                let name = e.file_name().to_string_lossy().into_owned();
                // Packs and snapshots are named by 64 hex digits; anything
                // else would be the server's own.
                if name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit()) {
                    out.insert(name, e.metadata().unwrap().len());
                }
            }
        }
        out
    }

    /// `snap ARGS` started in the background, with the environment of
    /// [`Offsite::cmd`] and its output thrown away.
    fn spawn(&self, args: &[&str]) -> std::process::Child {
        std::process::Command::new(assert_cmd::cargo::cargo_bin("snap"))
            .env("SNAP_REPO", &self.repo.path)
            .env("SNAP_CACHE_DIR", self.repo.cache())
            .env("SNAP_REMOTES_FILE", &self.remotes)
            .env("SNAP_PASSWORD", PASSWORD)
            .env("SNAP_KDF_MEMORY_KIB", "1024")
            .env("SNAP_INSECURE_KDF", "1")
            .env_remove("SNAP_PASSWORD_FILE")
            .env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
            .args(args)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap()
    }
}

fn ids(v: &serde_json::Value) -> BTreeSet<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not a list: {v}"))
        .iter()
        .map(|s| str_of(s, "id"))
        .collect()
}

/// Copies the tree under `src` to `dst` as it is: contents, modes, mtimes
/// to the nanosecond, symlinks, FIFOs, hard-link groups (the copy of a
/// day's site, kept before the next day changes it).
fn copy_tree(src: &Path, dst: &Path) {
    let mut inodes: HashMap<(u64, u64), PathBuf> = HashMap::new();
    fs::create_dir(dst).unwrap();
    copy_dir(src, dst, &mut inodes);
    let md = fs::symlink_metadata(src).unwrap();
    fs::set_permissions(dst, md.permissions()).unwrap();
    set_mtime(dst, md.mtime(), md.mtime_nsec());
}

fn copy_dir(src: &Path, dst: &Path, inodes: &mut HashMap<(u64, u64), PathBuf>) {
    for e in fs::read_dir(src).unwrap() {
        let e = e.unwrap();
        let (from, to) = (e.path(), dst.join(e.file_name()));
        let md = fs::symlink_metadata(&from).unwrap();
        let t = md.file_type();
        if t.is_dir() {
            fs::create_dir(&to).unwrap();
            copy_dir(&from, &to, inodes);
            fs::set_permissions(&to, md.permissions()).unwrap();
        } else if t.is_symlink() {
            std::os::unix::fs::symlink(fs::read_link(&from).unwrap(), &to).unwrap();
        } else if t.is_fifo() {
            mkfifo(&to);
            fs::set_permissions(&to, md.permissions()).unwrap();
        } else if t.is_file() {
            if let Some(first) = inodes.get(&(md.dev(), md.ino())) {
                fs::hard_link(first, &to).unwrap();
                continue;
            }
            fs::copy(&from, &to).unwrap();
            if md.nlink() > 1 {
                inodes.insert((md.dev(), md.ino()), to.clone());
            }
        } else {
            panic!("{}: a kind the sites do not have", from.display());
        }
        set_mtime(&to, md.mtime(), md.mtime_nsec());
    }
}

/// One day's work on a site: a new page, a rewritten setting, part of a
/// large upload replaced, and on day 3 a log removed.
fn change_site(root: &Path, site: &str, day: u64) {
    let seed = day * 100 + site.len() as u64 * 7 + site.as_bytes()[0] as u64;
    fs::create_dir_all(root.join("posts")).unwrap();
    let page = root.join(format!("posts/day{day}.html"));
    fs::write(&page, noise(seed, 20_000 + day as usize * 3_000)).unwrap();
    set_mtime(&page, 1_700_000_000 + day as i64 * 86_400, day as i64);
    let version = root.join("wp-includes/version.php");
    fs::write(
        &version,
        format!("<?php $v = '6.{day}'; // {site}\n").repeat(day as usize),
    )
    .unwrap();
    set_mtime(&version, 1_700_000_100 + day as i64 * 86_400, 5);
    let big = root.join("wp-content/uploads/big.zip");
    let mut bytes = fs::read(&big).unwrap();
    let at = day as usize * 1_000_000;
    bytes[at..at + 100_000].copy_from_slice(&noise(seed + 1, 100_000));
    fs::write(&big, &bytes).unwrap();
    set_mtime(&big, 1_700_000_200 + day as i64 * 86_400, 9);
    if day == 3 {
        fs::remove_file(root.join("stats/access.log")).unwrap();
    }
}

/// A site's database dump on `day`: yesterday's with rows changed in
/// place and rows added.
fn dump_of(site: &str, day: u64) -> Vec<u8> {
    let seed = site.as_bytes()[0] as u64 * 1000;
    let mut d = noise(seed, 1_500_000);
    for k in 2..=day {
        let at = (k as usize * 377_000) % 1_400_000;
        d[at..at + 20_000].copy_from_slice(&noise(seed + k, 20_000));
        d.extend_from_slice(&noise(seed + 50 + k, 60_000));
    }
    d
}

/// `snap` with nothing but the password and, as the caller adds, a
/// repository and credentials: no remotes file, no inherited settings.
fn bare_snap(cache: &Path) -> assert_cmd::Command {
    let mut c = assert_cmd::Command::cargo_bin("snap").unwrap();
    c.env_remove("SNAP_REPO")
        .env("SNAP_CACHE_DIR", cache)
        .env("SNAP_REMOTES_FILE", "/dev/null")
        .env("SNAP_PASSWORD", PASSWORD)
        .env("SNAP_KDF_MEMORY_KIB", "1024")
        .env("SNAP_INSECURE_KDF", "1")
        .env_remove("SNAP_PASSWORD_FILE")
        .env_remove("AWS_SESSION_TOKEN")
        .timeout(std::time::Duration::from_secs(300));
    c
}

#[test]
fn the_agency_recovers_everything_from_the_bucket_alone() {
    let server = S3Server::start();
    let port = server.port;
    let o = Offsite::new(server, port, "");
    let out = o.json(&["remote", "init", "offsite"]);
    assert_eq!(out["url"], o.url.as_str(), "{out}");
    assert!(
        o.server
            .root
            .join(BUCKET)
            .join(PREFIX)
            .join("config")
            .is_file(),
        "remote init wrote no config in the bucket"
    );

    let sites = ["a", "b"];
    let live: HashMap<&str, PathBuf> = sites
        .iter()
        .map(|s| (*s, o.repo.dir(&format!("www/{s}"))))
        .collect();
    for s in sites {
        make_tree(&live[s]);
        fs::write(live[s].join("site.txt"), format!("client {s}\n")).unwrap();
    }
    // By site and day: the snapshot ids, the trees as they were, the dumps.
    let mut files_id: HashMap<(&str, u64), String> = HashMap::new();
    let mut dump_id: HashMap<(&str, u64), String> = HashMap::new();
    let mut kept: HashMap<(&str, u64), PathBuf> = HashMap::new();
    for day in 1..=3u64 {
        for s in sites {
            change_site(&live[s], s, day);
            let copy = o.repo.dir(&format!("kept/{s}-day{day}"));
            fs::create_dir_all(copy.parent().unwrap()).unwrap();
            copy_tree(&live[s], &copy);
            kept.insert((s, day), copy);

            let pushed = o.push_files(s, &live[s]);
            let id = str_of(&pushed, "id");
            let rep = &pushed["replication"][0];
            assert_eq!(rep["remote"], "offsite", "day {day} site {s}: {pushed}");
            assert_eq!(rep["ok"], true, "day {day} site {s}: {pushed}");
            assert_eq!(rep["summary"]["copied"][0], id.as_str(), "{pushed}");
            files_id.insert((s, day), id);

            let pushed = o.push_dump(s, &dump_of(s, day));
            let id = str_of(&pushed, "id");
            let rep = &pushed["replication"][0];
            assert_eq!(rep["ok"], true, "day {day} dump {s}: {pushed}");
            assert_eq!(rep["summary"]["copied"][0], id.as_str(), "{pushed}");
            dump_id.insert((s, day), id);
        }
    }
    let all: BTreeSet<String> = files_id.values().chain(dump_id.values()).cloned().collect();
    assert_eq!(all.len(), 12);
    assert_eq!(
        o.remote_ids("offsite"),
        all,
        "the remote holds every level-2 push"
    );

    // The disaster: the local repository and its cache are gone.
    fs::remove_dir_all(&o.repo.path).unwrap();
    fs::remove_dir_all(o.repo.cache()).unwrap();
    assert!(!o.repo.path.exists() && !o.repo.cache().exists());

    // Only the password, the URL and the credentials.
    let fresh = o.repo.dir("fresh-cache");
    let from_bucket = |args: &[&str]| -> Output {
        let out = bare_snap(&fresh)
            .env("AWS_ACCESS_KEY_ID", &o.server.access_key)
            .env("AWS_SECRET_ACCESS_KEY", &o.server.secret_key)
            .arg("--repo")
            .arg(&o.url)
            .args(args)
            .output()
            .unwrap();
        assert_success(&out, &format!("snap --repo URL {}", args.join(" ")));
        out
    };
    let listed = parse_json(&from_bucket(&["--json", "snapshots"]));
    assert_eq!(ids(&listed), all, "the bucket lists all 12 snapshots");
    for s in sites {
        let target = o.repo.dir(&format!("restored/{s}-latest"));
        from_bucket(&[
            "restore",
            "latest",
            "--site",
            s,
            "--kind",
            "files",
            "--target",
            target.to_str().unwrap(),
        ]);
        assert_same_tree(&kept[&(s, 3)], &target, &[]);
        assert_same_tree(&live[s], &target, &[]);
        for day in [1u64, 3] {
            let out = from_bucket(&["cat", &dump_id[&(s, day)], &format!("{s}.sql")]);
            assert!(
                out.stdout == dump_of(s, day),
                "site {s}: the dump of day {day} comes back different ({} bytes)",
                out.stdout.len()
            );
        }
        let out = from_bucket(&[
            "cat",
            "latest",
            &format!("{s}.sql"),
            "--site",
            s,
            "--kind",
            "db",
        ]);
        assert!(out.stdout == dump_of(s, 3), "site {s}: the latest dump");
    }
    // A day that is not the last: the tree as it was then.
    let target = o.repo.dir("restored/a-day1");
    from_bucket(&[
        "restore",
        &files_id[&("a", 1)],
        "--target",
        target.to_str().unwrap(),
    ]);
    assert_same_tree(&kept[&("a", 1)], &target, &[]);
    let check = parse_json(&from_bucket(&["--json", "check", "--read-data"]));
    assert_eq!(check["snapshots"], 12, "{check}");
    assert!(check["packs_read"].as_u64().unwrap() > 0, "{check}");
    assert_eq!(check["packs_read"], check["packs"], "{check}");

    // A new local repository, cloned from the bucket.
    let new = o.repo.dir("new-repo");
    let clone_cache = o.repo.dir("clone-cache");
    let local = |args: &[&str]| -> Output {
        let out = bare_snap(&clone_cache)
            .arg("--repo")
            .arg(&new)
            .args(args)
            .output()
            .unwrap();
        assert_success(&out, &format!("snap --repo NEW {}", args.join(" ")));
        out
    };
    let out = bare_snap(&clone_cache)
        .env("AWS_ACCESS_KEY_ID", &o.server.access_key)
        .env("AWS_SECRET_ACCESS_KEY", &o.server.secret_key)
        .args(["--json", "clone", &o.url, "--repo", new.to_str().unwrap()])
        .output()
        .unwrap();
    assert_success(&out, "snap clone URL --repo NEW");
    let cloned = parse_json(&out);
    assert_eq!(cloned["copied"].as_array().unwrap().len(), 12, "{cloned}");
    assert!(new.join("config").is_file());
    let check = parse_json(&local(&["--json", "check", "--read-data"]));
    assert_eq!(check["snapshots"], 12, "{check}");
    assert_eq!(check["packs_read"], check["packs"], "{check}");
    assert_eq!(ids(&parse_json(&local(&["--json", "snapshots"]))), all);
    let target = o.repo.dir("restored/b-from-clone");
    local(&[
        "restore",
        "latest",
        "--site",
        "b",
        "--kind",
        "files",
        "--target",
        target.to_str().unwrap(),
    ]);
    assert_same_tree(&kept[&("b", 3)], &target, &[]);
    let out = local(&["cat", &dump_id[&("b", 2)], "b.sql"]);
    assert!(out.stdout == dump_of("b", 2), "the clone's day-2 dump of b");
}

/// What the read rule is checked against: each pack's size, its blobs'
/// exact ranges (from the headers, read by the test directly), and which
/// packs hold metadata.
struct PackFacts {
    sizes: HashMap<String, u64>,
    exact: BTreeSet<(String, u64, u64)>,
    metadata: BTreeSet<String>,
}

impl PackFacts {
    fn of(repo: &snap::repo::Repository) -> PackFacts {
        use snap::backend::FileType;
        let sizes: HashMap<String, u64> = repo
            .backend
            .list_sizes(FileType::Pack)
            .unwrap()
            .into_iter()
            .collect();
        let metadata = repo
            .index()
            .packs()
            .unwrap()
            .into_iter()
            .filter(|(_, i)| i.metadata)
            .map(|(id, _)| id.to_hex())
            .collect();
        let mut exact = BTreeSet::new();
        for (name, size) in &sizes {
            let id = snap::id::PackId::from_hex(name).unwrap();
            for e in repo.read_pack_header(&id, *size).unwrap() {
                exact.insert((name.clone(), e.offset, e.length as u64));
            }
        }
        PackFacts {
            sizes,
            exact,
            metadata,
        }
    }

    /// Checks every GET of a pack in `log` against the read rule: whole, or
    /// a range that starts on the grid and ends on it or at the pack's end;
    /// never one blob's exact range; a metadata pack whole. Returns how
    /// many there were, and how many were ranges.
    fn assert_rule(&self, log: &[snap::backend::s3::LoggedRequest], what: &str) -> (usize, usize) {
        use snap::repo::reads::GRID;
        let (mut n, mut ranged) = (0, 0);
        for r in log
            .iter()
            .filter(|r| r.method == "GET" && r.key.starts_with("data/"))
        {
            if r.action == "ListObjectsV2" {
                continue;
            }
            assert_eq!(r.action, "GetObject", "{what}: {r:?}");
            assert!(
                matches!(r.status, Some(200 | 206)),
                "{what}: a read failed: {r:?}"
            );
            let name = r.key.rsplit('/').next().unwrap().to_string();
            let size = *self
                .sizes
                .get(&name)
                .unwrap_or_else(|| panic!("{what}: {r:?} is no pack of the repository"));
            n += 1;
            let (off, len) = r.range.unwrap_or((0, size));
            if (off, len) != (0, size) {
                ranged += 1;
            }
            assert_eq!(off % GRID, 0, "{what}: {r:?} does not start on the grid");
            assert!(
                (off + len) % GRID == 0 || off + len == size,
                "{what}: {r:?} ends neither on the grid nor at the pack's end ({size})"
            );
            assert!(
                !self.exact.contains(&(name.clone(), off, len))
                    || (off, len) == (0, size)
                    || (off % GRID == 0 && (off + len) % GRID == 0),
                "{what}: one blob's exact range was asked: {r:?}"
            );
            if self.metadata.contains(&name) {
                assert_eq!(
                    (off, len),
                    (0, size),
                    "{what}: a metadata pack in part: {r:?}"
                );
            }
        }
        (n, ranged)
    }
}

#[test]
fn the_s3_server_sees_only_grid_aligned_reads_of_packs() {
    use snap::backend::Backend;
    use snap::format::config::Chunking;
    use snap::format::crypto::KdfParams;
    use snap::format::snapshot::Kind;
    use snap::ops::push::{PushOptions, Pusher};
    use snap::progress::Silent;
    use snap::repo::{Mode, NewKey, Repository};
    use std::sync::Arc;
    use std::time::Duration;
    const PW: &[u8] = b"read rule on s3";

    let server = S3Server::start();
    let s3 = Arc::new(server.backend("readrule", "agency/repo", s3s::test_options()));
    let backend: Arc<dyn Backend> = s3.clone();
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let kdf = KdfParams {
        memory_kib: 1024,
        iterations: 1,
        parallelism: 1,
    };
    drop(
        Repository::init_with(
            backend.clone(),
            &cache,
            PW,
            &NewKey::with_kdf(kdf),
            Chunking::default(),
        )
        .unwrap(),
    );
    // A site of many one-chunk files of different sizes (what the provider
    // would like to measure one by one) and two large ones, and a dump.
    let src = tmp.path().join("site");
    for i in 0..300u64 {
        let d = src.join(format!("d{}", i % 7));
        fs::create_dir_all(&d).unwrap();
        fs::write(
            d.join(format!("f{i}.php")),
            noise(i, 200 + (i as usize * 37) % 9000),
        )
        .unwrap();
    }
    fs::write(src.join("big.bin"), noise(1000, 5_000_000)).unwrap();
    fs::write(src.join("media.bin"), noise(1002, 3_300_000)).unwrap();
    let dump = noise(1001, 2_500_000);
    let (files, db) = {
        let repo = Repository::open_with(
            backend.clone(),
            &cache,
            PW,
            Mode::Write,
            "push",
            Duration::ZERO,
        )
        .unwrap();
        let opts = PushOptions {
            site: Some("a".into()),
            level: 2,
            host: "web1".into(),
            ..Default::default()
        };
        let p = Pusher::new(&repo, opts.clone(), &Silent).unwrap();
        let tree = p.save_paths(std::slice::from_ref(&src), None).unwrap();
        let files = p
            .commit(tree, vec![src.display().to_string()], None, None)
            .unwrap()
            .id;
        let p = Pusher::new(
            &repo,
            PushOptions {
                kind: Some(Kind::Db),
                ..opts
            },
            &Silent,
        )
        .unwrap();
        let tree = p.save_stream("a.sql", &dump[..]).unwrap();
        let db = p.commit(tree, vec!["a.sql".into()], None, None).unwrap().id;
        (files, db)
    };

    // Restore, cat and check --read-data, first with this machine's cache,
    // then with new ones (the index rebuilt from the packs' headers, as
    // after a disaster). Each in a handle of its own, as each command of
    // the binary would be: a handle keeps the blocks it read.
    let open = |cache: &Path| {
        Repository::open_with(backend.clone(), cache, PW, Mode::Read, "t", Duration::ZERO).unwrap()
    };
    for round in 1..=2 {
        let fresh = |what: &str| match round {
            1 => cache.clone(),
            _ => tmp.path().join(format!("new-cache-{what}")),
        };
        s3.take_requests();
        let repo = open(&fresh("restore"));
        let out = tmp.path().join(format!("out{round}"));
        let s = repo.load_snapshot(&files).unwrap();
        snap::ops::restore::restore(&repo, &s, &out, &[], &Silent).unwrap();
        assert_same_tree(&src, &out, &[]);
        drop(repo);
        let restore_log = s3.take_requests();

        let repo = open(&fresh("cat"));
        let cat = |id: &snap::id::SnapshotId, path: &[u8]| -> Vec<u8> {
            let s = repo.load_snapshot(id).unwrap();
            let node = snap::ops::read::find_node(&repo, &s, &id.short(), path)
                .unwrap()
                .expect("a file");
            let mut v = Vec::new();
            snap::ops::read::cat(&repo, &node, &mut v).unwrap();
            v
        };
        // One small file: one blob, inside a pack of many.
        assert_eq!(cat(&files, b"d3/f10.php"), noise(10, 200 + 370));
        assert_eq!(
            cat(&files, b"d6/f293.php"),
            noise(293, 200 + (293 * 37) % 9000)
        );
        assert!(cat(&db, b"a.sql") == dump, "the dump");
        drop(repo);
        let cat_log = s3.take_requests();

        let repo = open(&fresh("check"));
        let report = snap::ops::check::check(&repo, true, &Silent).unwrap();
        assert!(report.ok(), "{:?}", report.errors);
        assert_eq!(report.packs_read, report.packs);
        drop(repo);
        let check_log = s3.take_requests();

        // The facts, from a handle of the test's own (not logged).
        let facts = {
            let f = PackFacts::of(&open(&cache));
            s3.take_requests();
            f
        };
        assert!(!facts.metadata.is_empty() && facts.metadata.len() < facts.sizes.len());
        let (n, ranged) = facts.assert_rule(&restore_log, &format!("restore {round}"));
        assert!(
            n > 0 && ranged > 0,
            "restore {round}: {n} reads, {ranged} ranged"
        );
        // Blocks are kept: 300 small files cost a few requests, not 300.
        assert!(n < 60, "restore {round} asked {n} times");
        let (n, ranged) = facts.assert_rule(&cat_log, &format!("cat {round}"));
        assert!(
            n > 0 && ranged > 0,
            "cat {round}: {n} reads, {ranged} ranged"
        );
        let (n, _) = facts.assert_rule(&check_log, &format!("check {round}"));
        assert!(
            n >= facts.sizes.len(),
            "check {round} read {n} of {} packs",
            facts.sizes.len()
        );
    }
}

/// How many of the faults the proxy saw were of each kind.
fn faults_seen(seen: &[fault_proxy::Seen]) -> HashMap<&'static str, usize> {
    let mut by = HashMap::new();
    for f in seen.iter().filter_map(|s| s.fault) {
        *by.entry(f).or_insert(0) += 1;
    }
    by
}

/// The blobs stored on the remote at `prefix`, and those stored in more
/// than one of its packs (what a run sends again when it does not see what
/// an earlier one left), from the pack headers.
fn remote_blobs(o: &Offsite, prefix: &str) -> (usize, Vec<String>) {
    use snap::backend::{Backend, FileType};
    use snap::repo::{Mode, Repository};
    use std::sync::Arc;
    use std::time::Duration;
    let backend: Arc<dyn Backend> = Arc::new(o.server.backend(BUCKET, prefix, s3s::test_options()));
    let cache = tempfile::tempdir().unwrap();
    let repo = Repository::open_with(
        backend.clone(),
        cache.path(),
        PASSWORD.as_bytes(),
        Mode::Read,
        "t",
        Duration::ZERO,
    )
    .unwrap();
    let mut packs_of: HashMap<[u8; 32], usize> = HashMap::new();
    for (name, size) in backend.list_sizes(FileType::Pack).unwrap() {
        let id = snap::id::PackId::from_hex(&name).unwrap();
        for e in repo.read_pack_header(&id, size).unwrap() {
            *packs_of.entry(e.blob.id).or_default() += 1;
        }
    }
    let twice = packs_of
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(id, n)| format!("{} in {n} packs", hex(id)))
        .collect();
    (packs_of.len(), twice)
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Replicates to `offsite` through the library, one upload at a time,
/// reaching the server at `port` with packs over 1 MiB uploaded in parts
/// of 5 MiB and short waits between attempts: packs of the CLI (closed at
/// 12 to 16 MiB) stay under the default multipart threshold (64 MiB), and
/// the CLI has no setting for it. Returns the outcome and the request log.
fn replicate_in_parts(
    o: &Offsite,
    port: u16,
) -> (
    Result<snap::ops::replicate::Summary, String>,
    Vec<snap::backend::s3::LoggedRequest>,
) {
    use snap::backend::s3::{S3Backend, S3Options};
    use snap::repo::{Mode, Repository};
    use std::sync::Arc;
    use std::time::Duration;
    let local = Repository::open(
        &o.repo.path,
        &o.repo.cache(),
        PASSWORD.as_bytes(),
        Mode::Read,
        "replicate",
        Duration::ZERO,
    )
    .unwrap();
    let s3 = Arc::new(
        S3Backend::new(
            o.server.config_via(port, BUCKET, PREFIX),
            S3Options {
                multipart_threshold: 1 << 20,
                part_size: 5 << 20,
                ..s3s::test_options()
            },
        )
        .unwrap(),
    );
    let dst = Repository::open_sharing_keys(
        s3.clone(),
        &o.repo.cache(),
        &local,
        Mode::Write,
        "replicate",
        Duration::ZERO,
    )
    .unwrap();
    let result = snap::ops::replicate::replicate(
        &local,
        &dst,
        &snap::ops::replicate::Options {
            uploads: 1,
            ..Default::default()
        },
        &snap::progress::Silent,
    )
    .map_err(|e| e.to_string());
    drop(dst);
    (result, s3.take_requests())
}

#[test]
fn replication_rides_out_a_flaky_server_and_recovers_from_a_dead_one() {
    use fault_proxy::{Fault, FaultProxy};
    let server = S3Server::start();
    let proxy = FaultProxy::start(server.port);
    // A retried PUT of a pack that landed gets an early 412 from s3s-fs,
    // which then closes without reading the body: that answer must reach
    // snap, as it would without a proxy.
    proxy.relay_early_answers();
    let o = Offsite::new(server, proxy.port, "");
    o.ok(&["remote", "init", "offsite"]);
    let site = o.repo.dir("site");
    make_tree(&site);
    // Saved here only (no remotes file for these pushes).
    let day1 = [
        str_of(&o.repo.push(&site, &["--level", "2", "--site", "a"]), "id"),
        str_of(
            &parse_json(
                &o.repo
                    .cmd()
                    .args(["--json", "push", "--level", "2", "--site", "a", "--stdin"])
                    .args(["--name", "a.sql"])
                    .write_stdin(noise(7, 900_000))
                    .output()
                    .unwrap(),
            ),
            "id",
        ),
    ];
    proxy.take_seen();

    // A flaky server: every kind of write refused, lost or answered late
    // once or more, and a listing dropped. Each is retried.
    proxy.plan("PUT", "/locks/", Fault::Answer(503, "SlowDown"));
    proxy.plan("GET", "list-type=2", Fault::Drop);
    proxy.plan("PUT", "/data/", Fault::Answer(503, "SlowDown"));
    proxy.plan("PUT", "/data/", Fault::Drop);
    // The pack is stored, its answer lost: the retry finds it there, with
    // these bytes.
    proxy.plan("PUT", "/data/", Fault::LandThen503);
    proxy.plan("PUT", "/snapshots/", Fault::LandThen503);
    proxy.plan("PUT", "/snapshots/", Fault::Answer(500, "InternalError"));
    proxy.plan("PUT", "/state/", Fault::LandThen503);
    proxy.plan("DELETE", "/locks/", Fault::Answer(503, "SlowDown"));
    let v = o.json(&["replicate", "offsite"]);
    assert_eq!(proxy.pending(), 0, "every planned fault happened");
    let by = faults_seen(&proxy.take_seen());
    assert_eq!(
        (by["answer"], by["drop"], by["land then 503"]),
        (4, 2, 3),
        "{by:?}"
    );
    let copied: BTreeSet<String> = v["copied"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap().to_string())
        .collect();
    assert_eq!(copied, day1.iter().cloned().collect(), "{v}");
    assert_eq!(o.remote_ids("offsite"), o.local_level2());

    // A level-2 push rides out the same: its replication is retried.
    fs::write(site.join("new.html"), noise(8, 300_000)).unwrap();
    proxy.plan("PUT", "/data/", Fault::Answer(503, "SlowDown"));
    proxy.plan("PUT", "/snapshots/", Fault::Drop);
    let pushed = o.push_files("a", &site);
    assert_eq!(pushed["replication"][0]["ok"], true, "{pushed}");
    assert_eq!(proxy.pending(), 0);
    assert_eq!(o.remote_ids("offsite"), o.local_level2());
    let check = o.json(&["--remote", "offsite", "check", "--read-data"]);
    assert_eq!(check["packs_read"], check["packs"], "{check}");
    proxy.take_seen();

    // The server dies in the middle of a pack: one upload at a time, whose
    // every attempt is cut (six, the CLI's attempts per request).
    fs::write(site.join("video.mp4"), noise(9, 20 << 20)).unwrap();
    let lost = o.repo.push(&site, &["--level", "2", "--site", "a"]);
    let before = (o.remote_ids("offsite"), o.objects(PREFIX, "data"));
    for _ in 0..6 {
        proxy.plan("PUT", "/data/", Fault::Drop);
    }
    let out = o.run(&["replicate", "offsite", "--uploads", "1"]);
    assert_code(&out, 1, "replicate to a server that died");
    assert!(
        stderr(&out).contains("gave up after 6 attempts"),
        "{}",
        stderr(&out)
    );
    assert_eq!(proxy.pending(), 0);
    assert_eq!(
        o.remote_ids("offsite"),
        before.0,
        "no snapshot of the run is visible"
    );
    let arrived: Vec<u64> = o
        .object_sizes(PREFIX, "data")
        .into_iter()
        .filter(|(name, _)| !before.1.contains(name))
        .map(|(_, size)| size)
        .collect();
    assert!(
        arrived.iter().all(|&size| size < 1 << 20),
        "the pack the dead server never got is not there: {arrived:?}"
    );
    o.ok(&["--remote", "offsite", "check"]);

    // It dies again, in a multipart upload: the first pack of the run is
    // completed (once refused), the second never gets a part in.
    fs::write(site.join("archive.tar"), noise(10, 40 << 20)).unwrap();
    let big = o.repo.push(&site, &["--level", "2", "--site", "a"]);
    let before = (o.remote_ids("offsite"), o.objects(PREFIX, "data"));
    proxy.plan("POST", "uploadId=", Fault::Answer(503, "SlowDown"));
    for _ in 0..6 {
        proxy.plan("PUT", "partNumber=", Fault::Drop);
    }
    let (result, log) = replicate_in_parts(&o, proxy.port);
    let e = result.unwrap_err();
    assert!(e.contains("gave up after 6 attempts"), "{e}");
    assert_eq!(proxy.pending(), 0);
    let actions = |a: &str| -> Vec<Option<u16>> {
        log.iter()
            .filter(|r| r.action == a)
            .map(|r| r.status)
            .collect()
    };
    assert_eq!(
        actions("CompleteMultipartUpload"),
        [Some(503), Some(200)],
        "{log:?}"
    );
    assert_eq!(actions("CreateMultipartUpload").len(), 2, "{log:?}");
    // The dead upload's part, six times, then the upload is aborted.
    let parts = actions("UploadPart");
    assert_eq!(parts[parts.len() - 6..], [None; 6], "{log:?}");
    assert_eq!(actions("AbortMultipartUpload"), [Some(204)], "{log:?}");
    assert_eq!(
        o.remote_ids("offsite"),
        before.0,
        "no snapshot of the run is visible"
    );
    let arrived: Vec<u64> = o
        .object_sizes(PREFIX, "data")
        .into_iter()
        .filter(|(name, _)| !before.1.contains(name))
        .map(|(_, size)| size)
        .collect();
    assert!(
        arrived.iter().any(|&size| size > 1 << 20),
        "the pack completed in parts is there: {arrived:?}"
    );
    o.ok(&["--remote", "offsite", "check"]);

    // The server is back: a rerun sends the rest, not the pack that arrived.
    let rest = o.json(&["replicate", "offsite"]);
    assert_eq!(
        rest["copied"].as_array().unwrap().len(),
        2,
        "the two snapshots the dead server missed: {rest}"
    );
    let (blobs, twice) = remote_blobs(&o, PREFIX);
    assert!(blobs > 0 && twice.is_empty(), "sent again: {twice:?}");
    let wanted = o.local_level2();
    assert_eq!(wanted.len(), 5);
    assert!(wanted.contains(&str_of(&lost, "id")) && wanted.contains(&str_of(&big, "id")));
    assert_eq!(o.remote_ids("offsite"), wanted);
    let check = o.json(&["--remote", "offsite", "check", "--read-data"]);
    assert_eq!(check["snapshots"], 5, "{check}");
    assert_eq!(check["packs_read"], check["packs"], "{check}");
    assert_eq!(proxy.pending(), 0);
}

/// Waits until `cond` holds while `child` runs (polling, as the event is
/// in another process); panics if it ends first or nothing happens in two
/// minutes.
fn wait_for(child: &mut std::process::Child, what: &str, cond: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while !cond() {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("snap ended ({status}) before {what}");
        }
        assert!(std::time::Instant::now() < deadline, "no {what} in 120 s");
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
}

#[test]
fn a_replication_to_s3_killed_twice_is_finished_by_a_rerun() {
    use fault_proxy::{Fault, FaultProxy};
    let server = S3Server::start();
    let proxy = FaultProxy::start(server.port);
    proxy.relay_early_answers();
    let o = Offsite::new(server, proxy.port, "uploads = 2\n");
    o.add_remote("late", "agency-late");
    let site = o.repo.dir("site");
    make_tree(&site);
    // Four days of new data, saved here only: several packs per run.
    for day in 0..4u64 {
        fs::write(site.join(format!("day{day}.bin")), noise(day + 10, 9 << 20)).unwrap();
        o.repo.push(&site, &["--level", "2", "--site", "a"]);
    }
    let want = o.local_level2();
    assert_eq!(want.len(), 4);

    // Killed while packs go up: once two have arrived, one of them of
    // file data (over 1 MiB).
    o.ok(&["remote", "init", "offsite"]);
    let mut child = o.spawn(&["replicate", "offsite", "--limit-upload", "16M"]);
    wait_for(&mut child, "two packs on the server", || {
        let packs = o.object_sizes(PREFIX, "data");
        packs.len() >= 2 && packs.values().any(|&n| n > 1 << 20)
    });
    child.kill().unwrap();
    child.wait().unwrap();
    let arrived = o.objects(PREFIX, "data");
    assert!(
        o.remote_ids("offsite").is_subset(&want),
        "only snapshots of the plan"
    );
    o.ok(&["--remote", "offsite", "check"]);
    proxy.take_seen();
    o.ok(&["replicate", "offsite"]);
    let again: Vec<_> = proxy
        .take_seen()
        .into_iter()
        .filter(|s| s.method == "PUT" && arrived.iter().any(|p| s.target.contains(p.as_str())))
        .collect();
    assert!(
        again.is_empty(),
        "a pack that had arrived went again: {again:?}"
    );
    let (blobs, twice) = remote_blobs(&o, PREFIX);
    assert!(
        blobs > 0 && twice.is_empty(),
        "the rerun sent again: {twice:?}"
    );
    assert_eq!(o.remote_ids("offsite"), want);
    let check = o.json(&["--remote", "offsite", "check", "--read-data"]);
    assert_eq!(check["packs_read"], check["packs"], "{check}");

    // Killed between snapshot files: every pack is there, the first
    // snapshot file lands and its answer never comes back.
    o.ok(&["remote", "init", "late"]);
    proxy.take_seen();
    proxy.plan("PUT", "/agency-late/snapshots/", Fault::Stall);
    let mut child = o.spawn(&["replicate", "late"]);
    wait_for(&mut child, "a snapshot file on the server", || {
        proxy.pending() == 0 && !o.objects("agency-late", "snapshots").is_empty()
    });
    child.kill().unwrap();
    child.wait().unwrap();
    let landed = o.objects("agency-late", "snapshots");
    assert_eq!(
        landed.len(),
        1,
        "the run stopped at its first snapshot file"
    );
    assert!(landed.is_subset(&want));
    assert_eq!(o.remote_ids("late"), landed);
    o.ok(&["--remote", "late", "check", "--read-data"]);
    let rest = o.json(&["replicate", "late"]);
    assert_eq!(rest["snapshots_present"], 1, "{rest}");
    assert_eq!(rest["copied"].as_array().unwrap().len(), 3, "{rest}");
    assert_eq!(rest["blobs_sent"], 0, "every blob had arrived: {rest}");
    assert!(remote_blobs(&o, "agency-late").1.is_empty());
    assert_eq!(o.remote_ids("late"), want);
    let check = o.json(&["--remote", "late", "check", "--read-data"]);
    assert_eq!(check["snapshots"], 4, "{check}");
    assert_eq!(check["packs_read"], check["packs"], "{check}");
}

#[test]
fn a_pack_whose_multipart_completion_answer_was_lost_is_taken_as_stored() {
    use fault_proxy::{Fault, FaultProxy};
    let server = S3Server::start();
    let proxy = FaultProxy::start(server.port);
    let o = Offsite::new(server, proxy.port, "");
    o.ok(&["remote", "init", "offsite"]);
    let site = o.repo.dir("site");
    fs::create_dir(&site).unwrap();
    fs::write(site.join("archive.tar"), noise(11, 20 << 20)).unwrap();
    let id = str_of(&o.repo.push(&site, &["--level", "2", "--site", "a"]), "id");
    // The first pack's upload completes on the server; the answer is lost
    // on the way back. The retried completion must find the object there,
    // with these bytes, as a retried PUT does.
    proxy.plan("POST", "uploadId=", Fault::LandThen503);
    let (result, log) = replicate_in_parts(&o, proxy.port);
    assert_eq!(proxy.pending(), 0);
    let completions: Vec<_> = log
        .iter()
        .filter(|r| r.action == "CompleteMultipartUpload")
        .map(|r| r.status)
        .collect();
    assert_eq!(completions[0], Some(503), "{log:?}");
    let summary = result.unwrap_or_else(|e| {
        panic!("a completed upload whose answer was lost failed the replication: {e}\ncompletions: {completions:?}")
    });
    assert_eq!(summary.copied, std::slice::from_ref(&id));
    assert_eq!(o.remote_ids("offsite"), [id].into_iter().collect());
    o.ok(&["--remote", "offsite", "check", "--read-data"]);
}
