//! The write path against a real full disk and a real lost pack, through the
//! binary: a repository on a small tmpfs that fills while a push runs, and a
//! pack deleted behind the index's back.

mod common;

use common::{assert_code, assert_same_tree, noise, stderr, Repo};
use std::path::{Path, PathBuf};
use std::process::Command;

/// A tmpfs mounted for one test, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    /// Mounts a tmpfs of `mb` MiB at `at`, or says why it cannot.
    fn mount(at: &Path, mb: u32) -> Result<Tmpfs, String> {
        // SAFETY: geteuid cannot fail.
        if unsafe { libc::geteuid() } != 0 {
            return Err("mounting a tmpfs needs root".into());
        }
        std::fs::create_dir_all(at).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mb}m"), "tmpfs"])
            .arg(at)
            .output()
            .map_err(|e| format!("mount did not run: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "mount -t tmpfs failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(Tmpfs(at.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn free_bytes(p: &Path) -> u64 {
    let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid path and an out-parameter of the right type.
    let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
    assert_eq!(unsafe { libc::statvfs(c.as_ptr(), &mut s) }, 0);
    s.f_bavail as u64 * s.f_frsize as u64
}

/// ~35 MB of random files of 1 to 2.5 MB, 20 MB of them unique.
fn big_source(at: &Path) {
    std::fs::create_dir_all(at.join("media")).unwrap();
    for i in 0..12u64 {
        let len = 1_000_000 + (i as usize * 127_000) % 1_500_000;
        std::fs::write(at.join(format!("media/{i}.jpg")), noise(i + 1, len)).unwrap();
    }
    for i in 0..8u64 {
        std::fs::copy(
            at.join(format!("media/{i}.jpg")),
            at.join(format!("copy{i}.jpg")),
        )
        .unwrap();
    }
}

/// A repository on a 30 MiB tmpfs, or None (the reason printed).
fn repo_on_tmpfs(mb: u32) -> Option<(Repo, Tmpfs)> {
    let mut r = Repo::uninit();
    let mnt = r.dir("small");
    let fs = match Tmpfs::mount(&mnt, mb) {
        Ok(fs) => fs,
        Err(why) => {
            eprintln!("skipped: {why}");
            return None;
        }
    };
    r.path = mnt.join("repo");
    r.ok(&["init"]);
    Some((r, fs))
}

/// The oldest snapshot restores to exactly `src`.
fn assert_first_restores(r: &Repo, src: &Path) {
    let first = r.snapshots(&[])[0]["id"].as_str().unwrap().to_string();
    let target = r.dir("first");
    assert_code(
        &r.run(&["restore", &first, "--target", target.to_str().unwrap()]),
        0,
        "restore the first snapshot",
    );
    assert_same_tree(src, &target, &[]);
}

fn snapshot_count(r: &Repo) -> usize {
    r.snapshots(&[]).len()
}

fn assert_restores(r: &Repo, src: &Path, out: &str) {
    let target = r.dir(out);
    let restore = r.run(&["restore", "latest", "--target", target.to_str().unwrap()]);
    assert_code(&restore, 0, "restore latest");
    assert_same_tree(src, &target, &[]);
    std::fs::remove_dir_all(&target).unwrap();
}

#[test]
fn a_full_disk_stops_the_push_with_a_repository_error_and_the_next_push_stores_everything() {
    let Some((r, fs)) = repo_on_tmpfs(30) else {
        return;
    };
    let src = r.dir("src");
    big_source(&src);
    // Leave 6 MiB: the push fills it part-way through a pack.
    let filler = fs.0.join("filler");
    let free = free_bytes(&fs.0);
    std::fs::write(&filler, vec![1u8; (free - 6 * 1024 * 1024) as usize]).unwrap();

    let out = r.run(&["push", src.to_str().unwrap()]);
    let err = stderr(&out);
    assert_code(&out, 1, "push on a full disk");
    assert!(
        err.contains(r.path.to_str().unwrap()),
        "names the repository: {err}"
    );
    assert!(
        err.contains("No space left on device"),
        "names the cause: {err}"
    );
    assert!(
        !err.contains("read failed"),
        "not a source read failure: {err}"
    );
    assert_eq!(snapshot_count(&r), 0, "no snapshot recorded");
    let check = r.run(&["check", "--read-data"]);
    assert_code(&check, 0, "check --read-data after the failed push");

    std::fs::remove_file(&filler).unwrap();
    let out = r.run(&["push", src.to_str().unwrap()]);
    assert_code(&out, 0, "push once space is back");
    assert_restores(&r, &src, "out1");
    let out = r.run(&["push", "--force", src.to_str().unwrap()]);
    assert_code(&out, 0, "push --force");
    assert_restores(&r, &src, "out2");
    assert_code(&r.run(&["check", "--read-data"]), 0, "final check");
}

#[test]
fn a_disk_that_fills_and_empties_during_a_push_never_yields_a_broken_snapshot() {
    let Some((r, fs)) = repo_on_tmpfs(30) else {
        return;
    };
    let src = r.dir("src");
    big_source(&src);
    let mut child = Command::new(assert_cmd::cargo::cargo_bin("snap"))
        .env("SNAP_REPO", &r.path)
        .env(
            "SNAP_CACHE_DIR",
            std::path::Path::new(&r.path).with_file_name("cache"),
        )
        .env("SNAP_PASSWORD", common::PASSWORD)
        .env("SNAP_KDF_MEMORY_KIB", "1024")
        .env("SNAP_INSECURE_KDF", "1")
        .env_remove("SNAP_PASSWORD_FILE")
        .args(["push", src.to_str().unwrap()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Another process's files fill the disk; each time free space drops
    // below 64 KiB they are deleted, until the push ends.
    let filler = fs.0.join("filler");
    let mut fills = 0;
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&filler)
            .unwrap();
        let full = f.write_all(&[7u8; 256 * 1024]).is_err() || free_bytes(&fs.0) < 64 * 1024;
        drop(f);
        if full {
            std::fs::remove_file(&filler).unwrap();
            fills += 1;
        }
    };
    let _ = std::fs::remove_file(&filler);
    let mut err = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
    eprintln!("push exited with {status} after {fills} fills; stderr: {err}");
    assert!(
        !err.contains("read failed"),
        "a full repository is not a source failure: {err}"
    );
    match status.code() {
        Some(0) => assert_restores(&r, &src, "out0"),
        Some(1) => assert_eq!(snapshot_count(&r), 0, "a failed push records nothing"),
        other => panic!("push exited with {other:?}: {err}"),
    }
    assert_code(&r.run(&["check", "--read-data"]), 0, "check after the push");
    let out = r.run(&["push", "--force", src.to_str().unwrap()]);
    assert_code(&out, 0, "push with space back");
    assert_restores(&r, &src, "out1");
    assert_code(&r.run(&["check", "--read-data"]), 0, "final check");
}

#[test]
fn a_deleted_pack_is_forgotten_and_the_next_push_stores_its_data_again() {
    let r = Repo::new();
    let src = r.dir("src");
    std::fs::create_dir_all(&src).unwrap();
    for i in 0..5u64 {
        std::fs::write(
            src.join(format!("f{i}")),
            noise(i, 300_000 + i as usize * 1000),
        )
        .unwrap();
    }
    r.push(&src, &[]);
    let (data_pack, _) = r.packs().into_iter().next().unwrap();
    std::fs::remove_file(&data_pack).unwrap();
    let name = data_pack.file_name().unwrap().to_str().unwrap().to_string();

    for extra in [&[][..], &["--force"][..]] {
        let mut args = vec!["push"];
        args.extend_from_slice(extra);
        args.push(src.to_str().unwrap());
        let out = r.run(&args);
        assert_code(&out, 0, "push after the pack was deleted");
        if extra.is_empty() {
            let err = stderr(&out);
            assert!(
                err.contains(&name) && err.contains("missing"),
                "warns: {err}"
            );
        }
        assert_restores(&r, &src, "out");
    }
    // Every snapshot, the first one included, is whole again.
    assert_code(&r.run(&["check", "--read-data"]), 0, "check");
    assert_first_restores(&r, &src);
}

#[test]
fn repair_packs_salvages_a_damaged_pack_and_check_names_what_stays_lost() {
    let r = Repo::new();
    let src = r.dir("src");
    std::fs::create_dir_all(&src).unwrap();
    for i in 0..5u64 {
        std::fs::write(src.join(format!("f{i}")), noise(i + 10, 200_000)).unwrap();
    }
    r.push(&src, &[]);
    let (data_pack, _) = r.packs().into_iter().next().unwrap();
    let mut bytes = std::fs::read(&data_pack).unwrap();
    bytes[100] ^= 0xff; // inside the first blob
    std::fs::write(&data_pack, &bytes).unwrap();
    assert_code(
        &r.run(&["check", "--read-data"]),
        1,
        "check sees the damage",
    );

    let out = r.run(&["repair", "packs"]);
    assert_code(&out, 0, "repair packs");
    let text = common::stdout(&out);
    assert!(
        text.contains("4 blob(s) salvaged") && text.contains("1 lost"),
        "{text}"
    );
    // The lost chunk belongs to one file: check names it, and only it.
    let check = r.run(&["--json", "check"]);
    assert_code(&check, 1, "check after repair");
    let v = common::parse_json(&check);
    let paths: Vec<String> = v["affected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["path"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(paths.len(), 1, "{v}");
    // The source still has it: a push stores it again, and all is whole.
    let out = r.run(&["push", src.to_str().unwrap()]);
    assert_code(&out, 0, "push after repair");
    assert_code(&r.run(&["check", "--read-data"]), 0, "check after the push");
    assert_first_restores(&r, &src);
}

/// `restore --delete --overwrite if-changed` into a live site on a disk
/// that is full: the restore fails, every live file is either the old one
/// whole or the snapshot's (never truncated), nothing half-written stays;
/// once space is freed, the same command finishes the job byte for byte,
/// and the repository checks clean.
#[test]
fn an_in_place_restore_on_a_full_disk_loses_nothing_and_resumes() {
    let r = Repo::new();
    let src = r.dir("src");
    big_source(&src);
    r.ok(&["push", src.to_str().unwrap()]);
    let mnt = r.dir("www");
    let _fs = match Tmpfs::mount(&mnt, 48) {
        Ok(fs) => fs,
        Err(why) => {
            eprintln!("skipped: {why}");
            return;
        }
    };
    let live = mnt.join("site");
    let t = live.to_str().unwrap();
    r.ok(&["restore", "latest", "--target", t]);
    // The break-in: every media file rewritten (same names, other bytes),
    // a shell planted; then the disk filled but for a few hundred KiB.
    let mut before = std::collections::BTreeMap::new();
    for i in 0..12u64 {
        let p = live.join(format!("media/{i}.jpg"));
        std::fs::write(&p, noise(100 + i, 700_000)).unwrap();
        before.insert(p, noise(100 + i, 700_000));
    }
    std::fs::write(live.join("media/shell.php"), "<?php\n").unwrap();
    let filler = mnt.join("filler");
    let room = free_bytes(&mnt).saturating_sub(300_000);
    std::fs::write(&filler, vec![1u8; room as usize]).unwrap();

    let out = r.run(&[
        "restore",
        "latest",
        "--target",
        t,
        "--delete",
        "--overwrite",
        "if-changed",
    ]);
    assert!(
        !out.status.success(),
        "a restore onto a full disk cannot succeed"
    );
    let err = stderr(&out);
    assert!(
        err.contains("No space left") || err.contains("could not be restored"),
        "{err}"
    );
    // Each file is the old one or the snapshot's, whole.
    for (p, old) in &before {
        let now = std::fs::read(p).unwrap();
        let i: u64 = p.file_stem().unwrap().to_str().unwrap().parse().unwrap();
        let len = 1_000_000 + (i as usize * 127_000) % 1_500_000;
        assert!(
            now == *old || now == noise(i + 1, len),
            "{} is neither the old file nor the snapshot's ({} bytes)",
            p.display(),
            now.len()
        );
    }
    let leftovers: Vec<_> = walkdir(&live)
        .into_iter()
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(".snap-restore-")
        })
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");

    std::fs::remove_file(&filler).unwrap();
    r.ok(&[
        "restore",
        "latest",
        "--target",
        t,
        "--delete",
        "--overwrite",
        "if-changed",
    ]);
    assert_same_tree(&src, &live, &[]);
    r.ok(&["check", "--read-data"]);
}

fn walkdir(d: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![d.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if e.file_type().unwrap().is_dir() {
                stack.push(p.clone());
            }
            out.push(p);
        }
    }
    out
}

#[test]
fn snap_run_on_a_full_disk_names_every_failure_and_the_next_run_catches_up() {
    let Some((r, fs)) = repo_on_tmpfs(30) else {
        return;
    };
    let src = r.dir("www/shop");
    big_source(&src);
    let dump = r.dir("shop.sql");
    std::fs::write(&dump, noise(99, 3_000_000)).unwrap();
    let cfg = r.dir("snap.toml");
    std::fs::write(
        &cfg,
        format!(
            "timezone = \"Europe/Paris\"\n[defaults]\ndump = \"cat {}\"\n[sites.shop]\npaths = [{:?}]\ndatabases = [\"shop\"]\nlevels = [2]\n",
            dump.display(),
            src.display().to_string()
        ),
    )
    .unwrap();
    let run = || {
        r.cmd()
            .arg("--config")
            .arg(&cfg)
            .args(["run", "--now", "2026-11-30T03:00:00+01:00"])
            .output()
            .unwrap()
    };
    // Leave 4 MiB: the dump may fit, the files cannot.
    let filler = fs.0.join("filler");
    let free = free_bytes(&fs.0);
    std::fs::write(&filler, vec![1u8; (free - 4 * 1024 * 1024) as usize]).unwrap();

    let out = run();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_code(&out, 1, "snap run on a full disk");
    assert!(
        text.contains("shop files level2") && text.contains("No space left on device"),
        "the failed push is named with its cause:\n{text}"
    );
    assert!(
        text.contains("report — exit 4") && text.contains("no snapshot at all"),
        "and the report says what is missing:\n{text}"
    );
    // Whatever was saved is whole.
    assert_code(
        &r.run(&["check", "--read-data"]),
        0,
        "check --read-data after the full night",
    );
    let saved_before = snapshot_count(&r);
    assert!(saved_before <= 1, "the files push saved nothing");

    std::fs::remove_file(&filler).unwrap();
    let out = run();
    assert_code(&out, 0, "the next run, with space back");
    assert!(
        out.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(snapshot_count(&r), 2, "the files and the dump");
    let target = r.dir("out");
    let restore = r.run(&[
        "restore",
        "latest",
        "--site",
        "shop",
        "--kind",
        "files",
        "--target",
        target.to_str().unwrap(),
    ]);
    assert_code(&restore, 0, "restore the site");
    assert_same_tree(&src, &target, &[]);
    let cat = r.run(&[
        "cat", "latest", "--site", "shop", "--kind", "db", "shop.sql",
    ]);
    assert_code(&cat, 0, "cat the dump");
    assert!(
        cat.stdout == std::fs::read(&dump).unwrap(),
        "the dump, byte for byte"
    );
    assert_code(&r.run(&["check", "--read-data"]), 0, "final check");
}
