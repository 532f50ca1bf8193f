//! Operations: read-only repositories (a read-only mount, another user's
//! repository), lock files that are not locks, `snap unlock`, and the note a
//! command gives when it waits for a lock.

mod common;

use common::*;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;

/// A tmpfs mounted read-only, holding a copy of a directory; unmounted on drop.
struct ReadOnlyCopy {
    mnt: PathBuf,
}

impl ReadOnlyCopy {
    /// A read-only copy of `src` at `mnt`, or `None` (with the reason
    /// printed) where this process may not mount.
    fn new(src: &Path, mnt: &Path) -> Option<ReadOnlyCopy> {
        fs::create_dir_all(mnt).unwrap();
        let run = |args: &[&str]| {
            std::process::Command::new(args[0])
                .args(&args[1..])
                .output()
                .unwrap()
        };
        let m = mnt.to_str().unwrap();
        let o = run(&["mount", "-t", "tmpfs", "-o", "size=256m", "tmpfs", m]);
        if !o.status.success() {
            eprintln!(
                "skipped: cannot mount a tmpfs here ({})",
                String::from_utf8_lossy(&o.stderr).trim()
            );
            return None;
        }
        let copy = ReadOnlyCopy {
            mnt: mnt.to_path_buf(),
        };
        let o = run(&["cp", "-a", &format!("{}/.", src.display()), m]);
        assert!(o.status.success(), "copy: {}", stderr(&o));
        let o = run(&["mount", "-o", "remount,ro", m]);
        assert!(o.status.success(), "remount ro: {}", stderr(&o));
        assert!(
            fs::write(mnt.join("probe"), b"x").is_err(),
            "the mount is read-only"
        );
        Some(copy)
    }
}

impl Drop for ReadOnlyCopy {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.mnt).output();
    }
}

/// `snap` on the repository at `path` (not the fixture's own).
fn at(repo: &Repo, path: &Path, args: &[&str]) -> Output {
    repo.cmd()
        .env("SNAP_REPO", path)
        .env(
            "SNAP_CACHE_DIR",
            std::path::Path::new(path).with_file_name("cache"),
        )
        .args(args)
        .output()
        .unwrap()
}

/// The readers all work on the repository at `path`, and say no lock was
/// taken; `index_note` is whether they must say a temporary index was built.
fn readers_work(repo: &Repo, path: &Path, src: &Path, index_note: bool) {
    for args in [
        vec!["snapshots"],
        vec!["ls", "latest"],
        vec!["cat", "latest", "/wp-config.php"],
        vec!["check", "--read-data"],
    ] {
        let out = at(repo, path, &args);
        assert_success(&out, &format!("{args:?} on a read-only repository"));
        let e = stderr(&out);
        assert!(e.contains("no lock was taken"), "{args:?}: {e}");
        assert_eq!(e.contains("temporary index"), index_note, "{args:?}: {e}");
    }
    let out = at(repo, path, &["report"]);
    assert!(
        matches!(out.status.code(), Some(0 | 4)),
        "report: {}",
        stderr(&out)
    );
    let target = repo.dir(&format!("restored-{}", index_note));
    let out = at(
        repo,
        path,
        &["restore", "latest", "--target", target.to_str().unwrap()],
    );
    assert_success(&out, "restore from a read-only repository");
    assert_same_tree(src, &target, &[]);
}

fn site(repo: &Repo) -> PathBuf {
    let src = repo.dir("site");
    fs::create_dir_all(src.join("wp-content")).unwrap();
    fs::write(src.join("wp-config.php"), b"<?php define('DB', 'x');").unwrap();
    fs::write(src.join("wp-content/big.bin"), noise(7, 3 << 20)).unwrap();
    repo.push(&src, &["--site", "shop"]);
    src
}

#[test]
fn a_repository_on_a_read_only_mount_is_readable() {
    let repo = Repo::new();
    let src = site(&repo);
    // With its index, as a backup disk mounted read-only would be.
    let Some(ro) = ReadOnlyCopy::new(&repo.path, &repo.dir("ro-with-index")) else {
        return;
    };
    readers_work(&repo, &ro.mnt, &src, false);
    let out = at(&repo, &ro.mnt, &["push", src.to_str().unwrap()]);
    assert!(!out.status.success(), "a push to a read-only mount fails");

    // Without an index (the cache is this machine's; another machine, or
    // a cleared cache, has none): rebuilt into the cache, which is writable.
    fs::remove_dir_all(repo.index_dir()).unwrap();
    let Some(ro) = ReadOnlyCopy::new(&repo.path, &repo.dir("ro-without-index")) else {
        return;
    };
    readers_work(&repo, &ro.mnt, &src, false);
    assert!(
        repo.index_dir().join("CURRENT").is_file(),
        "rebuilt in the cache"
    );
}

#[test]
fn another_users_repository_is_readable_by_nobody() {
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: needs root to run a command as nobody");
        return;
    }
    let repo = Repo::new();
    let src = site(&repo);
    fs::set_permissions(repo.tmp.path(), fs::Permissions::from_mode(0o755)).unwrap();
    // Readable by all, as a shared backup disk would be; owned by root.
    let o = std::process::Command::new("chmod")
        .args(["-R", "a+rX"])
        .arg(&repo.path)
        .arg(&src)
        .output()
        .unwrap();
    assert!(o.status.success());
    let target = repo.dir("nobody-target");
    fs::create_dir_all(&target).unwrap();
    std::os::unix::fs::chown(&target, Some(65534), Some(65534)).unwrap();
    let nobody = |args: &[&str]| {
        std::process::Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(assert_cmd::cargo::cargo_bin("snap"))
            .env("SNAP_REPO", &repo.path)
            .env(
                "SNAP_CACHE_DIR",
                std::path::Path::new(&repo.path).with_file_name("cache"),
            )
            .env("SNAP_PASSWORD", PASSWORD)
            .env("HOME", "/nonexistent")
            .args(args)
            .output()
            .unwrap()
    };
    for args in [
        vec!["snapshots"],
        vec!["ls", "latest"],
        vec!["check"],
        vec!["restore", "latest", "--target", target.to_str().unwrap()],
    ] {
        let out = nobody(&args);
        assert_success(&out, &format!("{args:?} as nobody"));
        assert!(
            stderr(&out).contains("no lock was taken"),
            "{args:?}: {}",
            stderr(&out)
        );
    }
    assert!(fs::read_dir(repo.path.join("locks"))
        .unwrap()
        .next()
        .is_none());
    // Without a cache this user may write: a temporary index, and the
    // repository is untouched.
    let _ = fs::remove_dir_all(repo.index_dir());
    let before = repo.files();
    let out = nobody(&["ls", "latest"]);
    assert_success(&out, "ls as nobody without an index");
    assert!(stderr(&out).contains("temporary index"), "{}", stderr(&out));
    assert!(stdout(&out).contains("big.bin"));
    assert_eq!(before, repo.files(), "a reader changed the repository");
    assert!(!repo.path.join("index").exists());
}

fn plant(repo: &Repo, name: &str, bytes: &[u8]) {
    fs::write(repo.path.join("locks").join(name), bytes).unwrap();
}

#[test]
fn lock_files_that_are_not_locks_neither_crash_nor_block_and_unlock_removes_them() {
    let repo = Repo::new();
    let big = "b1".repeat(16);
    let junk = "6a".repeat(16);
    plant(&repo, &big, &vec![b' '; 3 << 20]);
    plant(&repo, &junk, b"\x1b[2J\x1b]0;owned\x07");
    for cmd in [&["snapshots"][..], &["prune", "--policy", "level1"][..]] {
        let out = repo.run(cmd);
        assert_success(&out, &format!("{cmd:?} with junk in locks/"));
        let e = stderr(&out);
        for n in [&big, &junk] {
            assert!(e.contains(&format!("locks/{n}")), "{e}");
            assert!(e.contains(&format!("snap unlock {n}")), "{e}");
        }
        assert!(!e.contains('\x1b'), "an escape reached the terminal: {e:?}");
    }
    let out = repo.ok(&["unlock"]);
    assert!(
        stdout(&out).contains("2 lock file(s) removed"),
        "{}",
        stdout(&out)
    );
    assert!(fs::read_dir(repo.path.join("locks"))
        .unwrap()
        .next()
        .is_none());
}

#[test]
fn a_held_lock_is_waited_for_once_then_named_with_its_remedy() {
    let repo = Repo::new();
    let name = "ab".repeat(16);
    // A live process on this host: this test's own.
    let info = serde_json::json!({
        "version": 1, "host": hostname(), "pid": std::process::id(),
        "time": now_secs(), "exclusive": true, "command": "prune\u{1b}[31m",
    });
    plant(&repo, &name, info.to_string().as_bytes());
    let out = repo.run(&["--lock-wait", "2", "snapshots"]);
    assert_code(&out, 11, "snapshots under an exclusive lock");
    let e = stderr(&out);
    assert_eq!(e.matches("waiting up to 2s").count(), 1, "{e}");
    assert!(e.contains(&format!("locks/{name}")), "{e}");
    assert!(e.contains(&format!("snap unlock {name}")), "{e}");
    assert!(!e.contains('\x1b'), "an escape reached the terminal: {e:?}");
    // `snap unlock` keeps a live lock unless it is named.
    repo.ok(&["unlock"]);
    assert!(repo.path.join("locks").join(&name).exists());
    repo.ok(&["unlock", &name]);
    repo.ok(&["snapshots"]);
}

#[test]
fn names_hosts_and_tags_reach_the_terminal_escaped_and_distinct() {
    use std::os::unix::ffi::OsStrExt;
    let repo = Repo::new();
    let src = repo.dir("uploads");
    fs::create_dir_all(&src).unwrap();
    let evil = std::ffi::OsStr::from_bytes(b"evil\x1b]0;pwned\x07.txt");
    fs::write(src.join(evil), b"x").unwrap();
    fs::write(src.join(latin1_name()), b"y").unwrap();
    fs::write(src.join("caf\\xe9"), b"z").unwrap();
    std::os::unix::fs::symlink("\x1b[2J", src.join("link")).unwrap();
    repo.push(&src, &["--host", "web\x1b[31m1", "--tag", "t\u{9b}2J"]);

    let ls = stdout(&repo.ok(&["ls", "latest"]));
    assert!(!ls.contains('\x1b') && !ls.contains('\x07'), "{ls:?}");
    assert!(ls.contains("/evil\\x1b]0;pwned\\x07.txt"), "{ls}");
    assert!(ls.contains("-> \\x1b[2J"), "{ls}");
    // A name that is not UTF-8 and one that spells its escape stay distinct.
    let latin1 = common::latin1_name();
    let shown = format!(
        "/{}",
        latin1
            .as_bytes()
            .iter()
            .map(|&b| if b.is_ascii() {
                (b as char).to_string()
            } else {
                format!("\\x{b:02x}")
            })
            .collect::<String>()
    );
    assert!(ls.contains(&shown), "{shown} not in {ls}");
    assert!(ls.contains("/caf\\\\xe9"), "{ls}");

    let list = stdout(&repo.ok(&["snapshots"]));
    assert!(
        !list.contains('\x1b') && !list.contains('\u{9b}'),
        "{list:?}"
    );
    assert!(list.contains("web\\x1b[31m1"), "{list}");
    assert!(list.contains("t\\x9b2J"), "{list}");
    // JSON keeps its own escaping: the host comes back exactly.
    let v = repo.snapshots(&[]);
    assert_eq!(v[0]["host"], "web\x1b[31m1");
}
