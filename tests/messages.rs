//! Messages: each names what is wrong and what to do, and is not mistaken
//! for another (an empty password file is not a wrong password).

mod common;

use common::*;
use std::fs;
use std::path::Path;

fn small_site(repo: &Repo) -> std::path::PathBuf {
    let src = repo.dir("site");
    fs::create_dir_all(src.join("wp-content")).unwrap();
    fs::write(src.join("index.php"), b"<?php echo 1;").unwrap();
    fs::write(src.join("wp-content/big.bin"), noise(3, 1 << 20)).unwrap();
    repo.push(&src, &[]);
    src
}

fn err_of(out: &std::process::Output) -> String {
    assert!(!out.status.success(), "expected a failure: {}", stdout(out));
    stderr(out)
}

#[test]
fn now_garbage_names_now() {
    let repo = Repo::new();
    let e = err_of(&repo.run(&["report", "--now", "garbage"]));
    assert!(e.contains("--now \"garbage\""), "{e}");
    assert!(!e.contains("--time"), "{e}");
}

#[test]
fn an_empty_password_file_says_so() {
    let repo = Repo::new();
    let pw = repo.dir("pw");
    fs::write(&pw, b"\n").unwrap();
    let out = repo
        .cmd()
        .env("SNAP_PASSWORD_FILE", &pw)
        .arg("snapshots")
        .output()
        .unwrap();
    let e = err_of(&out);
    assert!(e.contains("is empty"), "{e}");
    assert!(e.contains(&*pw.to_string_lossy()), "{e}");
    assert!(!e.contains("wrong password"), "{e}");
}

#[test]
fn a_truncated_or_deleted_key_file_is_not_a_wrong_password() {
    let repo = Repo::new();
    let keys: Vec<_> = fs::read_dir(repo.path.join("keys"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(keys.len(), 1);
    let name = keys[0].file_name().unwrap().to_string_lossy().into_owned();
    let bytes = fs::read(&keys[0]).unwrap();
    fs::write(&keys[0], &bytes[..bytes.len() / 2]).unwrap();
    let out = repo.run(&["snapshots"]);
    let e = err_of(&out);
    assert!(!e.contains("wrong password"), "{e}");
    assert!(e.contains(&format!("keys/{name}")), "{e}");
    assert_ne!(out.status.code(), Some(12), "{e}");

    fs::remove_file(&keys[0]).unwrap();
    let out = repo.run(&["snapshots"]);
    let e = err_of(&out);
    assert!(!e.contains("wrong password"), "{e}");
    assert!(e.contains("no key file"), "{e}");
    assert_ne!(out.status.code(), Some(12), "{e}");
}

fn foreign(repo: &Repo, dir: &Path, want: &str) {
    let before = fs::read_dir(dir).unwrap().count();
    let out = repo
        .cmd()
        .env("SNAP_REPO", dir)
        .env(
            "SNAP_CACHE_DIR",
            std::path::Path::new(dir).with_file_name("cache"),
        )
        .arg("snapshots")
        .output()
        .unwrap();
    assert_code(&out, 10, &format!("snapshots on {}", dir.display()));
    let e = stderr(&out);
    assert!(e.contains(want), "{want} not in {e}");
    assert!(e.contains("not a snap repository"), "{e}");
    assert_eq!(fs::read_dir(dir).unwrap().count(), before, "it was touched");
}

#[test]
fn another_tools_repository_or_other_files_exit_10_saying_what_is_there() {
    let repo = Repo::uninit();
    let restic = repo.dir("restic");
    for d in ["keys", "data", "index", "snapshots", "locks"] {
        fs::create_dir_all(restic.join(d)).unwrap();
    }
    fs::write(restic.join("config"), noise(1, 200)).unwrap();
    foreign(&repo, &restic, "restic repository");

    let borg = repo.dir("borg");
    fs::create_dir_all(borg.join("data")).unwrap();
    fs::write(
        borg.join("README"),
        b"This is a Borg Backup repository.\nSee https://borgbackup.readthedocs.io/\n",
    )
    .unwrap();
    fs::write(borg.join("config"), b"[repository]\nversion = 1\n").unwrap();
    foreign(&repo, &borg, "Borg repository");

    let www = repo.dir("www");
    fs::create_dir_all(&www).unwrap();
    fs::write(www.join("index.html"), b"<h1>client</h1>").unwrap();
    foreign(&repo, &www, "index.html");
}

#[test]
fn restore_target_on_a_file_says_so() {
    let repo = Repo::new();
    small_site(&repo);
    let f = repo.dir("a-file");
    fs::write(&f, b"x").unwrap();
    let e = err_of(&repo.run(&["restore", "latest", "--target", f.to_str().unwrap()]));
    assert!(e.contains("is a file, not a directory"), "{e}");
    assert_eq!(fs::read(&f).unwrap(), b"x");
}

#[test]
fn restore_warnings_name_the_path_once() {
    let repo = Repo::new();
    small_site(&repo);
    let t = repo.dir("target");
    // A non-empty directory where the snapshot has a file.
    fs::create_dir_all(t.join("index.php/keep")).unwrap();
    let out = repo.run(&["restore", "latest", "--target", t.to_str().unwrap()]);
    let e = stderr(&out);
    let p = t.join("index.php").display().to_string();
    let line = e
        .lines()
        .find(|l| l.starts_with("snap: warning:") && l.contains(&p))
        .unwrap_or_else(|| panic!("no warning for {p}: {e}"));
    assert_eq!(line.matches(&p).count(), 1, "{line}");
}

#[test]
fn excludes_that_leave_nothing_warn() {
    let repo = Repo::new();
    let src = repo.dir("site");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("a.log"), b"x").unwrap();
    let out = repo.ok(&["push", "--exclude", "*.log", src.to_str().unwrap()]);
    let e = stderr(&out);
    assert!(e.contains("left no file to save"), "{e}");
    assert!(e.contains("*.log"), "{e}");
    let out = repo.ok(&["push", src.to_str().unwrap()]);
    assert!(!stderr(&out).contains("left no file"));
}

#[test]
fn a_damaged_index_names_repair_index() {
    let repo = Repo::new();
    small_site(&repo);
    let idx = repo.index_dir();
    let sst = fs::read_dir(&idx)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "sst"))
        .expect("an .sst file");
    let len = fs::metadata(&sst).unwrap().len();
    fs::OpenOptions::new()
        .write(true)
        .open(&sst)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    let e = err_of(&repo.run(&["ls", "latest"]));
    assert!(e.contains("snap repair index"), "{e}");
    repo.ok(&["repair", "index"]);
    repo.ok(&["ls", "latest"]);

    fs::write(idx.join("CURRENT"), b"\x00garbage").unwrap();
    for cmd in [&["ls", "latest"][..], &["push", "/dev/null"][..]] {
        let e = err_of(&repo.run(cmd));
        assert!(e.contains("snap repair index"), "{cmd:?}: {e}");
    }
    repo.ok(&["repair", "index"]);
    repo.ok(&["ls", "latest"]);
}

#[test]
fn an_unreadable_pack_is_named_with_its_cause_not_called_missing() {
    let repo = Repo::new();
    small_site(&repo);
    for (pack, _) in repo.packs() {
        // A directory where the pack file was: present, but unreadable.
        fs::remove_file(&pack).unwrap();
        fs::create_dir(&pack).unwrap();
    }
    let out = repo.run(&["cat", "latest", "/wp-content/big.bin"]);
    let e = err_of(&out);
    assert!(e.contains("data/"), "{e}");
    assert!(!e.contains("missing"), "{e}");
}
