//! The command line, end to end (repository, keys, locks, exit codes): the
//! real `snap` binary on temporary directories, with its output, exit codes
//! and what it leaves on disk checked.

mod common;

use common::*;
use std::collections::BTreeSet;
use std::fs;
use std::path::Path;

#[test]
fn init_refuses_an_existing_repository_and_a_foreign_directory() {
    let repo = Repo::new();
    for d in ["keys", "snapshots", "locks", "data"] {
        assert!(repo.path.join(d).is_dir(), "init made no {d}/");
    }
    assert_eq!(fs::read_dir(repo.path.join("keys")).unwrap().count(), 1);

    let before = repo.files();
    let again = repo.run(&["init"]);
    assert_code(&again, 1, "init on an existing repository");
    assert!(stderr(&again).contains("already holds a snap repository"));
    assert_eq!(
        repo.files(),
        before,
        "a refused init changed the repository"
    );

    let foreign = repo.dir("www");
    fs::create_dir(&foreign).unwrap();
    fs::write(foreign.join("index.html"), b"<h1>client</h1>").unwrap();
    let out = repo
        .cmd()
        .env("SNAP_REPO", &foreign)
        .env(
            "SNAP_CACHE_DIR",
            std::path::Path::new(&foreign).with_file_name("cache"),
        )
        .arg("init")
        .output()
        .unwrap();
    assert_code(&out, 1, "init on a non-empty foreign directory");
    assert!(
        stderr(&out).contains("not a snap repository"),
        "{}",
        stderr(&out)
    );
    let names: Vec<_> = fs::read_dir(&foreign)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("index.html")]);
    assert_eq!(
        fs::read(foreign.join("index.html")).unwrap(),
        b"<h1>client</h1>"
    );

    // Opening the foreign directory is refused without touching it either.
    let out = repo
        .cmd()
        .env("SNAP_REPO", &foreign)
        .env(
            "SNAP_CACHE_DIR",
            std::path::Path::new(&foreign).with_file_name("cache"),
        )
        .arg("snapshots")
        .output()
        .unwrap();
    assert_code(&out, 10, "snapshots on a foreign directory");
    assert_eq!(fs::read_dir(&foreign).unwrap().count(), 1);
}

#[test]
fn missing_repository_exits_10_and_creates_nothing() {
    let repo = Repo::uninit();
    let src = repo.dir("src");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("f"), b"x").unwrap();
    for args in [
        vec!["snapshots"],
        vec!["ls", "latest"],
        vec!["push", src.to_str().unwrap()],
        vec!["check"],
        vec!["key", "list"],
    ] {
        let out = repo.run(&args);
        assert_code(&out, 10, &args.join(" "));
        assert!(
            stderr(&out).contains("no snap repository") && stderr(&out).contains("snap init"),
            "{}",
            stderr(&out)
        );
    }
    assert!(
        !repo.path.exists(),
        "a failed command created the repository"
    );
}

#[test]
fn a_held_exclusive_lock_exits_11() {
    let repo = Repo::new();
    let src = repo.dir("src");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("f"), b"x").unwrap();
    let lock = repo.path.join("locks").join("heldbytest");
    let info = serde_json::json!({
        "host": hostname(), "pid": std::process::id(), "time": now_secs(),
        "exclusive": true, "command": "test-holder",
    });
    fs::write(&lock, serde_json::to_vec(&info).unwrap()).unwrap();

    for args in [
        vec!["--lock-wait", "0", "push", src.to_str().unwrap()],
        vec!["--lock-wait", "0", "snapshots"],
        vec!["--lock-wait", "1", "check"],
    ] {
        let out = repo.run(&args);
        assert_code(&out, 11, &args.join(" "));
        let e = stderr(&out);
        assert!(
            e.contains("locked") && e.contains("test-holder"),
            "the message should say who holds the lock: {e}"
        );
    }
    assert_eq!(
        fs::read_dir(repo.path.join("locks")).unwrap().count(),
        1,
        "a refused command left its own lock behind"
    );

    // A lock whose process is gone is stale: ignored, and deleted.
    let dead = serde_json::json!({
        "host": hostname(), "pid": 999_999_999u32, "time": now_secs(),
        "exclusive": true, "command": "dead",
    });
    fs::write(&lock, serde_json::to_vec(&dead).unwrap()).unwrap();
    assert_eq!(repo.snapshots(&[]).len(), 0, "the refused push saved");
    assert!(!lock.exists(), "the dead process's lock was left in place");
    repo.push(&src, &[]);
    assert_eq!(repo.snapshots(&[]).len(), 1);
}

#[test]
fn key_add_list_remove() {
    let repo = Repo::new();
    let keys = repo.json(&["key", "list"]);
    let keys = keys.as_array().unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0]["current"], true);
    let first = str_of(&keys[0], "id");

    let added = repo
        .cmd()
        .env("SNAP_NEW_PASSWORD", "second password")
        .args(["--json", "key", "add"])
        .output()
        .unwrap();
    assert_success(&added, "key add");
    let second = str_of(&parse_json(&added), "added");
    assert_ne!(first, second);

    let listed = repo.json(&["key", "list"]);
    let ids: BTreeSet<String> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|k| str_of(k, "id"))
        .collect();
    assert_eq!(ids, BTreeSet::from([first.clone(), second.clone()]));

    // The new password opens the repository, and is then the current key.
    let with_new = |args: &[&str]| {
        repo.cmd()
            .env("SNAP_PASSWORD", "second password")
            .args(args)
            .output()
            .unwrap()
    };
    let out = with_new(&["--json", "key", "list"]);
    assert_success(&out, "key list with the new password");
    let current: Vec<String> = parse_json(&out)
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["current"] == true)
        .map(|k| str_of(k, "id"))
        .collect();
    assert_eq!(current, vec![second.clone()]);

    // The key in use cannot be removed.
    let out = repo.run(&["key", "remove", &first]);
    assert_code(&out, 1, "removing the key in use");
    assert!(stderr(&out).contains(&first), "{}", stderr(&out));
    assert_eq!(fs::read_dir(repo.path.join("keys")).unwrap().count(), 2);

    let out = repo.run(&["key", "remove", "ffffffffffffffffff"]);
    assert_code(&out, 1, "removing an unknown key");

    // From the other key it can; then the old password no longer opens.
    let out = with_new(&["key", "remove", &first[..8]]);
    assert_success(&out, "key remove");
    assert!(stdout(&out).contains(&first));
    assert_code(&repo.run(&["snapshots"]), 12, "old password after removal");
    assert_success(&with_new(&["snapshots"]), "new password after removal");
}

fn chown_tree(p: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::lchown(p, Some(uid), Some(gid)).unwrap();
    if fs::symlink_metadata(p).unwrap().is_dir() {
        for e in fs::read_dir(p).unwrap() {
            chown_tree(&e.unwrap().path(), uid, gid);
        }
    }
}

#[test]
fn an_unreadable_file_exits_3_with_an_incomplete_snapshot() {
    use std::os::unix::fs::PermissionsExt;
    let repo = Repo::new();
    let src = repo.dir("site");
    make_tree(&src);
    let locked = src.join("wp-includes/locked.php");
    fs::write(&locked, b"<?php // nobody may read this").unwrap();
    fs::set_permissions(&locked, fs::Permissions::from_mode(0o000)).unwrap();

    // As root, permission bits do not stop a read: push as `nobody`, who can
    // traverse everything but open neither the 000 file nor the 0600 ones.
    let root = unsafe { libc::geteuid() } == 0;
    let mut cmd = if root {
        fs::set_permissions(repo.tmp.path(), fs::Permissions::from_mode(0o755)).unwrap();
        chown_tree(&repo.path, 65534, 65534);
        chown_tree(&repo.cache(), 65534, 65534);
        let mut c = std::process::Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(assert_cmd::cargo::cargo_bin("snap"));
        c
    } else {
        std::process::Command::new(assert_cmd::cargo::cargo_bin("snap"))
    };
    let unreadable: Vec<&str> = if root {
        vec!["wp-includes/locked.php", "wp-config.php"]
    } else {
        vec!["wp-includes/locked.php"]
    };
    // The 0750 directory is readable by its owner only: keep it out.
    let private = format!("{}/private", src.display());
    let out = cmd
        .env("SNAP_REPO", &repo.path)
        .env(
            "SNAP_CACHE_DIR",
            std::path::Path::new(&repo.path).with_file_name("cache"),
        )
        .env("SNAP_PASSWORD", PASSWORD)
        .args(["push", "--exclude", &private, src.to_str().unwrap()])
        .output()
        .unwrap();
    assert_code(&out, 3, "push with an unreadable file");
    let e = stderr(&out);
    for u in &unreadable {
        assert!(
            e.contains(&*src.join(u).to_string_lossy()),
            "stderr must name {u}: {e}"
        );
    }
    assert!(stdout(&out).contains("incomplete"), "{}", stdout(&out));

    let s = repo.snapshots(&[]).pop().unwrap();
    assert_eq!(s["complete"], false);
    let errs: BTreeSet<String> = s["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| str_of(e, "path"))
        .collect();
    let want: BTreeSet<String> = unreadable
        .iter()
        .map(|u| src.join(u).to_string_lossy().into_owned())
        .collect();
    assert_eq!(errs, want);
    assert!(stdout(&repo.ok(&["snapshots"])).contains("(incomplete)"));

    // Everything else restores.
    let target = repo.dir("restored");
    repo.ok(&["restore", "latest", "--target", target.to_str().unwrap()]);
    let mut skip: Vec<&Path> = unreadable.iter().map(Path::new).collect();
    skip.push(Path::new("private"));
    assert_same_tree(&src, &target, &skip);
}

#[test]
fn a_closed_pipe_is_not_an_error() {
    let repo = Repo::new();
    let src = repo.dir("many");
    fs::create_dir(&src).unwrap();
    for i in 0..2000 {
        fs::write(
            src.join(format!(
                "a-rather-long-file-name-to-fill-the-pipe-{i:05}.html"
            )),
            i.to_string(),
        )
        .unwrap();
    }
    fs::write(src.join("big.bin"), noise(9, 3_000_000)).unwrap();
    repo.push(&src, &[]);
    let snap = assert_cmd::cargo::cargo_bin("snap");
    for (pipeline, lines) in [
        (format!("'{}' ls latest | head -1", snap.display()), 1),
        (
            format!(
                "'{}' cat latest big.bin | head -c 100 | wc -c",
                snap.display()
            ),
            1,
        ),
        (format!("'{}' snapshots | true", snap.display()), 0),
        (format!("'{}' snapshots --json | true", snap.display()), 0),
        (format!("'{}' ls latest --json | true", snap.display()), 0),
    ] {
        let out = std::process::Command::new("bash")
            .args(["-c", &format!("{pipeline}; exit ${{PIPESTATUS[0]}}")])
            .env("SNAP_REPO", &repo.path)
            .env(
                "SNAP_CACHE_DIR",
                std::path::Path::new(&repo.path).with_file_name("cache"),
            )
            .env("SNAP_PASSWORD", PASSWORD)
            .output()
            .unwrap();
        assert_code(&out, 0, &pipeline);
        let err = stderr(&out);
        // `ls` names the snapshot it reads, on stderr; nothing else.
        let err: Vec<&str> = err
            .lines()
            .filter(|l| !l.starts_with("snap: using snapshot "))
            .collect();
        assert!(err.is_empty(), "{pipeline}: no error message: {err:?}");
        assert_eq!(stdout(&out).lines().count(), lines, "{pipeline}");
    }
}

/// Removes every empty directory under `p`, deepest first, as git and some
/// sync tools do when they copy a tree.
fn drop_empty_dirs(p: &Path) {
    for e in fs::read_dir(p).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            drop_empty_dirs(&e.path());
            if fs::read_dir(e.path()).unwrap().next().is_none() {
                fs::remove_dir(e.path()).unwrap();
            }
        }
    }
}

#[test]
fn a_repository_copied_without_its_empty_directories_still_works() {
    let r = Repo::new();
    let src = r.dir("src");
    make_tree(&src);
    r.push(&src, &[]);
    fs::remove_dir_all(r.index_dir()).unwrap();
    drop_empty_dirs(&r.path);
    assert!(!r.path.join("locks").exists(), "the copy lost locks/");
    let target = r.dir("out");
    r.ok(&["restore", "latest", "--target", target.to_str().unwrap()]);
    assert_same_tree(&src, &target, &[]);
    fs::write(src.join("new.txt"), b"after the copy").unwrap();
    r.push(&src, &[]);
    r.ok(&["check", "--read-data"]);
    assert_eq!(r.snapshots(&[]).len(), 2);
}

#[test]
fn an_index_kept_inside_the_repository_moves_to_the_cache_once() {
    // What snap before the cache directory left: the index (and this
    // machine's journal) in <repo>/index.
    let r = Repo::new();
    let src = r.dir("src");
    make_tree(&src);
    let first = r.push(&src, &[]);
    let index = r.index_dir();
    assert!(index.join("snap-written").is_file());
    fs::rename(&index, r.path.join("index")).unwrap();
    fs::remove_dir_all(index.parent().unwrap()).unwrap();

    let out = r.ok(&["snapshots"]);
    let e = stderr(&out);
    assert!(e.contains("the index moved from"), "{e}");
    assert!(!r.path.join("index").exists());
    assert!(index.join("CURRENT").is_file() && index.join("snap-written").is_file());
    // Said once.
    assert!(!stderr(&r.ok(&["snapshots"])).contains("index moved"));
    // The journal came along: the next push takes the first snapshot as
    // its parent (only snapshots this machine wrote can be parents).
    let pushed = r.push(&src, &[]);
    assert_eq!(pushed["parent"], first["id"], "{pushed}");
}

#[test]
fn the_cache_directory_is_chosen_by_flag_or_environment() {
    let r = Repo::new();
    let src = r.dir("src");
    make_tree(&src);
    let elsewhere = r.dir("elsewhere");
    let out = r
        .cmd()
        .args(["--cache-dir", elsewhere.to_str().unwrap(), "--json", "push"])
        .arg(&src)
        .output()
        .unwrap();
    assert_success(&out, "push --cache-dir");
    let config = fs::read(r.path.join("config")).unwrap();
    let dir = snap::repo::cache::repo_dir(&elsewhere, &config);
    assert!(dir.join("index/CURRENT").is_file());
    assert!(elsewhere.join("CACHEDIR.TAG").is_file());
    assert_eq!(
        fs::read_to_string(dir.join("location")).unwrap(),
        r.path.display().to_string()
    );
    assert!(
        fs::read_dir(dir.join("staging")).unwrap().next().is_none(),
        "no staged pack is left behind"
    );
    // Another cache is another machine: the fixture's index (made by init)
    // knows none of those packs. A reader finds them by their headers...
    let target = r.dir("out");
    r.ok(&["restore", "latest", "--target", target.to_str().unwrap()]);
    assert_same_tree(&src, &target, &[]);
    r.ok(&["check", "--read-data"]);
    // ...and a writer indexes them when it opens, so it deduplicates
    // against what the other machine stored.
    let again = r.push(&src, &["--force"]);
    assert_eq!(again["summary"]["blobs_added"].as_u64(), Some(0), "{again}");
}

/// Runs `snap ARGS` in a private mount namespace after `setup` (shell
/// commands run as root there: mounts, a bind over /etc/fstab), with the
/// repository's environment. None when that cannot be done here.
fn in_namespace(repo: &Repo, setup: &str, args: &[&str]) -> Option<std::process::Output> {
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: a private mount namespace needs root");
        return None;
    }
    let snap = assert_cmd::cargo::cargo_bin("snap");
    let script = format!("{setup} && exec \"$0\" \"$@\"");
    let out = std::process::Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", &script])
        .arg(&snap)
        .args(args)
        .env("SNAP_CACHE_DIR", repo.cache())
        .env("SNAP_REMOTES_FILE", "/dev/null")
        .env("SNAP_POLICY_FILE", "/dev/null")
        .env("SNAP_PASSWORD", PASSWORD)
        .env("SNAP_KDF_MEMORY_KIB", "1024")
        .env("SNAP_INSECURE_KDF", "1")
        .output();
    match out {
        Ok(o) => Some(o),
        Err(e) => {
            eprintln!("skipped: unshare(1) does not run ({e}); scripts/install-deps.sh installs util-linux");
            None
        }
    }
}

/// The off-site disk not mounted: its mount point (in /etc/fstab) is an
/// empty directory on the local disk. Readers exit 10 saying the storage
/// looks unmounted, and `init` refuses, instead of a repository landing on
/// the local disk. A mounted file system with nothing on it is named too.
#[test]
fn storage_that_is_not_mounted_is_named_and_never_initialised() {
    let repo = Repo::uninit();
    let mnt = repo.dir("offsite");
    let target = mnt.join("snap");
    std::fs::create_dir_all(&mnt).unwrap();
    let fstab = repo.dir("fstab");
    std::fs::write(
        &fstab,
        format!(
            "# a test fstab\nUUID=1234 / ext4 defaults 0 1\n/dev/sdz1 {} ext4 noauto 0 2\n",
            mnt.display()
        ),
    )
    .unwrap();
    let bind = format!("mount --bind {} /etc/fstab", fstab.display());
    let t = target.to_str().unwrap();
    let Some(out) = in_namespace(&repo, &bind, &["--repo", t, "snapshots"]) else {
        return;
    };
    assert_eq!(out.status.code(), Some(10), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("not mounted now") && err.contains(&mnt.display().to_string()),
        "{err}"
    );
    assert!(!err.contains("run `snap init` there first"), "{err}");
    let out = in_namespace(&repo, &bind, &["--repo", t, "init"]).unwrap();
    assert!(!out.status.success(), "init on an unmounted mount point");
    assert!(stderr(&out).contains("mount it first"), "{}", stderr(&out));
    assert!(!target.exists(), "init wrote to the local disk");

    // Mounted, and empty: said as such.
    let m = mnt.to_str().unwrap();
    let out = in_namespace(
        &repo,
        &format!("mount -t tmpfs none {m}"),
        &["--repo", m, "snapshots"],
    )
    .unwrap();
    assert_eq!(out.status.code(), Some(10), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("mounted file system with nothing on it"),
        "{}",
        stderr(&out)
    );

    // An ordinary missing directory still suggests init.
    let out = repo.run(&[
        "--repo",
        repo.dir("elsewhere").to_str().unwrap(),
        "snapshots",
    ]);
    assert_eq!(out.status.code(), Some(10));
    assert!(
        stderr(&out).contains("run `snap init` there first"),
        "{}",
        stderr(&out)
    );
}
