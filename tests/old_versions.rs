//! Repositories written by earlier versions of snap stay readable: the
//! fixtures under tests/fixtures/ were made by `make.sh` with the snap of
//! format version 1 (commit e7e766e) and of version 2 (commit 63b7b07).
//! Today's binary lists them, restores them byte for byte, checks them and
//! pushes into them.

mod common;

use common::*;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            fs::copy(e.path(), &dest).unwrap();
        }
    }
}

/// A copy of the fixture of format version `v` (the test never writes
/// into tests/).
fn fixture(v: u32) -> Repo {
    let r = Repo::uninit();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/fixtures/repo-v{v}"));
    copy_dir(&src, &r.path);
    // Git keeps no empty directory: put back those of the layout that init
    // makes (snap does not create locks/ or data/xx/ when they are missing).
    fs::create_dir_all(r.path.join("locks")).unwrap();
    for b in 0..=255u8 {
        fs::create_dir_all(r.path.join(format!("data/{b:02x}"))).unwrap();
    }
    let mut clear = [0u8; 12];
    clear.copy_from_slice(&fs::read(r.path.join("config")).unwrap()[..12]);
    assert_eq!(&clear[..8], b"SNAPCONF");
    assert_eq!(u32::from_le_bytes(clear[8..].try_into().unwrap()), v);
    r
}

/// What make.sh wrote into `sub/data.txt`.
fn data_txt() -> Vec<u8> {
    (0..3000u32).map(|i| b'A' + (i * 7 % 26) as u8).collect()
}

fn opens_lists_restores_and_checks(v: u32) {
    let repo = fixture(v);
    let snaps = repo.snapshots(&[]);
    assert_eq!(snaps.len(), 2, "{snaps:?}");
    assert_eq!(snaps[0]["time"], "2026-01-02T03:00:00.000000000+00:00");
    assert_eq!(snaps[0]["kind"], "files");
    assert_eq!(snaps[1]["site"], "client-a");
    let files = snaps[0]["id"].as_str().unwrap();
    let db = snaps[1]["id"].as_str().unwrap();

    let listed = stdout(&repo.ok(&["ls", files]));
    for p in ["/hello.txt", "/sub/data.txt", "/sub/link -> ../hello.txt"] {
        assert!(listed.contains(p), "ls lacks {p}:\n{listed}");
    }
    let hello = format!("hello from a version-{v} repository\n");
    assert_eq!(stdout(&repo.ok(&["cat", files, "/hello.txt"])), hello);
    assert_eq!(
        stdout(&repo.ok(&["cat", "latest", "--site", "client-a", "client_a.sql"])),
        format!("CREATE TABLE t (v{v} int);\n")
    );

    let target = repo.dir("restored");
    repo.ok(&["restore", files, "--target", target.to_str().unwrap()]);
    assert_eq!(
        fs::read(target.join("hello.txt")).unwrap(),
        hello.as_bytes()
    );
    assert_eq!(fs::read(target.join("sub/data.txt")).unwrap(), data_txt());
    assert_eq!(
        fs::read_link(target.join("sub/link")).unwrap(),
        Path::new("../hello.txt")
    );
    let md = fs::metadata(target.join("sub/data.txt")).unwrap();
    assert_eq!(md.mode() & 0o7777, 0o640);
    let t = chrono::DateTime::parse_from_rfc3339("2026-01-02T03:04:05Z").unwrap();
    assert_eq!(md.mtime(), t.timestamp());
    let dump = repo.dir("dump");
    repo.ok(&["restore", db, "--target", dump.to_str().unwrap()]);
    assert_eq!(
        fs::read(dump.join("client_a.sql")).unwrap(),
        format!("CREATE TABLE t (v{v} int);\n").as_bytes()
    );

    repo.ok(&["check", "--read-data"]);

    // Today's snap also writes into it, without changing its version.
    let more = repo.dir("more");
    fs::create_dir(&more).unwrap();
    fs::write(more.join("new.txt"), "new").unwrap();
    repo.ok(&["push", more.to_str().unwrap()]);
    assert_eq!(stdout(&repo.ok(&["cat", "latest", "/new.txt"])), "new");
    assert_eq!(repo.snapshots(&[]).len(), 3);
    repo.ok(&["check", "--read-data"]);
    assert_eq!(fs::read(repo.path.join("config")).unwrap()[8], v as u8);
    // The state record belongs to version 4: none is written here, even by
    // the commands that write one in a version-4 repository.
    repo.ok(&["protect", "latest"]);
    repo.ok(&["unprotect", "latest"]);
    let out = repo.run(&["state", "accept"]);
    assert_code(&out, 1, "state accept in an old repository");
    assert!(
        stderr(&out).contains("keeps no state record"),
        "{}",
        stderr(&out)
    );
    assert!(
        !repo.path.join("state").exists(),
        "a version-{v} repository got a state/ directory"
    );
    assert!(!repo.index_dir().join("snap-state-mark").exists());
}

#[test]
fn a_version_1_repository_stays_readable() {
    opens_lists_restores_and_checks(1);
}

#[test]
fn a_version_2_repository_stays_readable() {
    opens_lists_restores_and_checks(2);
}

#[test]
fn a_version_3_repository_stays_readable() {
    opens_lists_restores_and_checks(3);
}

#[test]
fn a_version_3_repository_keeps_getting_version_1_key_files() {
    let repo = fixture(3);
    let before: Vec<_> = fs::read_dir(repo.path.join("keys")).unwrap().collect();
    assert_eq!(before.len(), 1);
    let out = repo
        .cmd()
        .env("SNAP_NEW_PASSWORD", "second")
        .args(["--json", "key", "add"])
        .output()
        .unwrap();
    assert_success(&out, "key add");
    let name = str_of(&parse_json(&out), "added");
    let kf: serde_json::Value =
        serde_json::from_slice(&fs::read(repo.path.join("keys").join(&name)).unwrap()).unwrap();
    assert_eq!(kf["version"], 1, "an older snap must still open it: {kf}");
    assert!(kf.get("label").is_none() && kf.get("repository").is_none());
    let out = repo
        .cmd()
        .env("SNAP_PASSWORD", "second")
        .args(["--json", "key", "list"])
        .output()
        .unwrap();
    assert_success(&out, "the new key opens");
    let out = repo
        .cmd()
        .env("SNAP_NEW_PASSWORD", "third")
        .args(["key", "add", "--label", "web1"])
        .output()
        .unwrap();
    assert_code(&out, 1, "a label in a version-3 repository");
    assert!(
        stderr(&out).contains("format version 4"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn key_rotate_needs_format_version_4() {
    let repo = fixture(3);
    let out = repo.run(&["key", "rotate"]);
    assert_ne!(out.status.code(), Some(0));
    assert!(
        stderr(&out).contains("needs format version 4"),
        "{}",
        stderr(&out)
    );
    assert_eq!(repo.snapshots(&[]).len(), 2, "the repository is as it was");
}
