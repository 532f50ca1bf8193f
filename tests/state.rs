//! The state record (format-spec.md §23): what the storage can do behind
//! snap's back — delete a snapshot or a protection marker, put back a
//! pruned snapshot, roll the whole repository back — is found by `check`
//! and `report` and stops prune; a push interrupted before its state is
//! adopted, not taken for an attack; concurrent writers lose nothing; and
//! `snap state accept` is the way out.

mod common;

use common::*;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;

/// A repository with two pushes of one directory, a day apart.
fn two_pushes() -> (Repo, String, String) {
    let repo = Repo::new();
    let src = repo.dir("www");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("index.php"), "one").unwrap();
    let a = repo.push(&src, &["--time", "2026-01-01 03:00:00"])["id"]
        .as_str()
        .unwrap()
        .to_string();
    fs::write(src.join("index.php"), "two").unwrap();
    let b = repo.push(&src, &["--time", "2026-01-02 03:00:00"])["id"]
        .as_str()
        .unwrap()
        .to_string();
    (repo, a, b)
}

/// A policy file that keeps only the newest snapshot.
fn last_one(repo: &Repo) -> PathBuf {
    let file = repo.dir("policies.toml");
    fs::write(&file, "[policy.level1]\nlevel = 1\nfiles = { last = 1 }\n").unwrap();
    file
}

fn prune(repo: &Repo, policy: &Path) -> Output {
    repo.run(&[
        "prune",
        "--policy",
        "level1",
        "--policy-file",
        policy.to_str().unwrap(),
        "--now",
        "2026-01-03 04:00:00",
    ])
}

/// The state findings of `check --json`, as (kind, object); check's exit
/// code is not asserted here.
fn findings(repo: &Repo) -> Vec<(String, String)> {
    let out = repo.run(&["--json", "check"]);
    let v = parse_json(&out);
    v["state"]
        .as_array()
        .expect("check --json has a state array")
        .iter()
        .map(|f| {
            (
                f["kind"].as_str().unwrap().to_string(),
                f["object"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// Asserts `out` failed with code 1 and says every one of `want`.
fn fails_saying(out: &Output, want: &[&str], what: &str) {
    let text = format!("{}{}", stdout(out), stderr(out));
    assert_eq!(out.status.code(), Some(1), "{what}: exit code\n{text}");
    for w in want {
        assert!(text.contains(w), "{what} does not say {w:?}:\n{text}");
    }
}

fn snapshot_file(repo: &Repo, id: &str) -> PathBuf {
    repo.path.join("snapshots").join(id)
}

#[test]
fn a_deleted_snapshot_fails_check_and_report_and_stops_prune() {
    let (repo, a, b) = two_pushes();
    repo.ok(&["check"]);
    assert!(findings(&repo).is_empty());
    fs::remove_file(snapshot_file(&repo, &b)).unwrap();

    fails_saying(
        &repo.run(&["check"]),
        &[&b, "missing (deleted?)", "snap state accept"],
        "check",
    );
    assert_eq!(
        findings(&repo),
        vec![("deleted".to_string(), format!("snapshots/{b}"))]
    );
    fails_saying(
        &repo.run(&["report", "--now", "2026-01-03 04:00:00"]),
        &[&b, "does not match its state record"],
        "report",
    );
    let policy = last_one(&repo);
    fails_saying(&prune(&repo, &policy), &["prune refused", &b], "prune");
    assert!(
        snapshot_file(&repo, &a).exists(),
        "a refused prune removed a snapshot"
    );

    // The operator decides the deletion was theirs: accepted, check is clean.
    let out = repo.ok(&["state", "accept"]);
    assert!(stdout(&out).contains(&b), "{}", stdout(&out));
    repo.ok(&["check"]);
    assert!(findings(&repo).is_empty());
}

#[test]
fn a_rolled_back_repository_is_found_and_refused() {
    let repo = Repo::new();
    let src = repo.dir("www");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("a"), "one").unwrap();
    repo.push(&src, &[]);
    let copy = repo.dir("copy");
    copy_dir(&repo.path, &copy);
    fs::write(src.join("a"), "two").unwrap();
    repo.push(&src, &[]);
    // The storage puts back the old copy; this machine keeps its mark, in
    // its cache.
    let mark = fs::read(repo.index_dir().join("snap-state-mark")).unwrap();
    fs::remove_dir_all(&repo.path).unwrap();
    fs::rename(&copy, &repo.path).unwrap();

    let said = ["rolled back", "last saw state 3", "newest is state 2"];
    fails_saying(&repo.run(&["check"]), &said, "check");
    assert_eq!(findings(&repo)[0].0, "rollback");
    fails_saying(&repo.run(&["report"]), &said, "report");
    fails_saying(&repo.run(&["push", src.to_str().unwrap()]), &said, "push");
    assert_eq!(repo.snapshots(&[]).len(), 1, "a refused push wrote");
    fails_saying(&prune(&repo, &last_one(&repo)), &said, "prune");
    fails_saying(&repo.run(&["protect", "latest"]), &said, "protect");
    // Restores still work: this may be the copy to restore from.
    repo.ok(&["cat", "latest", "/a"]);
    // The mark is not moved back by any of this.
    assert_eq!(
        fs::read(repo.index_dir().join("snap-state-mark")).unwrap(),
        mark
    );

    let out = repo.ok(&["--json", "state", "accept"]);
    assert_eq!(parse_json(&out)["state"], 4);
    repo.ok(&["check"]);
    repo.push(&src, &[]);
    repo.ok(&["check"]);
}

#[test]
fn the_mark_survives_repair_index() {
    let (repo, _, _) = two_pushes();
    let copy = repo.dir("copy");
    copy_dir(&repo.path, &copy);
    let src = repo.dir("www");
    repo.push(&src, &[]);
    repo.ok(&["repair", "index"]);
    assert!(repo.index_dir().join("snap-state-mark").exists());
    // Rolled back to the copy: the mark is in this machine's cache, which
    // a rollback of the repository's directory does not touch.
    fs::remove_dir_all(&repo.path).unwrap();
    fs::rename(&copy, &repo.path).unwrap();
    fails_saying(&repo.run(&["check"]), &["rolled back"], "check");
}

#[test]
fn a_deleted_marker_is_found_and_its_snapshot_survives_prune() {
    let (repo, a, _) = two_pushes();
    repo.ok(&["protect", &a]);
    assert!(findings(&repo).is_empty());
    // The marker's name is a keyed hash of the snapshot id (format 4): the
    // provider cannot tell which snapshot is kept on purpose, but can
    // delete every marker.
    let markers: Vec<_> = fs::read_dir(repo.path.join("protected"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(markers.len(), 1);
    let marker_name = markers[0]
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(marker_name.len(), 64);
    assert!(
        !marker_name.starts_with(&a[..8]),
        "the marker names its snapshot in clear"
    );
    fs::remove_file(&markers[0]).unwrap();

    fails_saying(
        &repo.run(&["check"]),
        &[&a, "marker is missing", "snap state accept"],
        "check",
    );
    assert_eq!(
        findings(&repo),
        vec![(
            "marker_deleted".to_string(),
            format!("the protection marker of snapshot {a}")
        )]
    );
    let policy = last_one(&repo);
    fails_saying(&prune(&repo, &policy), &["prune refused", &a], "prune");
    assert!(
        snapshot_file(&repo, &a).exists(),
        "the snapshot whose marker was deleted was pruned"
    );
    // Protected again, the state is whole and prune keeps it.
    repo.ok(&["protect", &a]);
    repo.ok(&["check"]);
    repo.ok(&[
        "prune",
        "--policy",
        "level1",
        "--policy-file",
        policy.to_str().unwrap(),
        "--now",
        "2026-01-03 04:00:00",
    ]);
    assert!(snapshot_file(&repo, &a).exists());
    repo.ok(&["check"]);
}

#[test]
fn a_pruned_snapshot_put_back_is_a_replay() {
    let (repo, a, b) = two_pushes();
    let aside = repo.dir("aside");
    fs::copy(snapshot_file(&repo, &a), &aside).unwrap();
    let policy = last_one(&repo);
    assert_success(&prune(&repo, &policy), "prune");
    assert!(!snapshot_file(&repo, &a).exists());
    repo.ok(&["check"]);

    fs::copy(&aside, snapshot_file(&repo, &a)).unwrap();
    fails_saying(
        &repo.run(&["check"]),
        &[&a, "replayed", "was removed at"],
        "check",
    );
    assert_eq!(
        findings(&repo),
        vec![("replayed".to_string(), format!("snapshots/{a}"))]
    );
    fails_saying(&prune(&repo, &policy), &["prune refused"], "prune");
    // The next push does not adopt it either.
    let src = repo.dir("www");
    repo.push(&src, &[]);
    assert_eq!(findings(&repo)[0].0, "replayed");
    assert!(snapshot_file(&repo, &b).exists());
}

#[test]
fn a_push_stopped_before_its_state_is_adopted_not_flagged() {
    let (repo, _, b) = two_pushes();
    // What a push killed between its snapshot file and its state leaves: the
    // snapshot, no state for it, and the mark where it was.
    let mark_before = fs::read(repo.index_dir().join("snap-state-mark")).unwrap();
    let src = repo.dir("www");
    fs::write(src.join("index.php"), "three").unwrap();
    let c = repo.push(&src, &[])["id"].as_str().unwrap().to_string();
    let newest = newest_state(&repo);
    fs::remove_file(&newest).unwrap();
    fs::write(repo.index_dir().join("snap-state-mark"), &mark_before).unwrap();

    let out = repo.ok(&["check"]);
    assert!(
        stderr(&out).contains("not in state 3 yet"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        findings(&repo),
        vec![("unrecorded".to_string(), format!("snapshots/{c}"))]
    );
    repo.ok(&["report", "--now", "2026-01-03 04:00:00"]);
    // The next writer records it.
    repo.ok(&["protect", &b]);
    assert!(findings(&repo).is_empty());
    repo.ok(&["check"]);
}

#[test]
fn concurrent_writers_lose_no_update() {
    let repo = Repo::new();
    let mut ids = Vec::new();
    for i in 0..4 {
        let src = repo.dir(&format!("s{i}"));
        fs::create_dir_all(&src).unwrap();
        fs::write(src.join("f"), format!("{i}")).unwrap();
        ids.push(repo.push(&src, &[])["id"].as_str().unwrap().to_string());
    }
    // Two pushes and four protections at once: pushes and `protect` take
    // shared locks, so their states race for the same numbers.
    let mut children = Vec::new();
    for i in 0..2 {
        let src = repo.dir(&format!("s{i}"));
        fs::write(src.join("g"), format!("more {i}")).unwrap();
        let mut c = std::process::Command::new(assert_cmd::cargo::cargo_bin("snap"));
        c.env("SNAP_REPO", &repo.path)
            .env(
                "SNAP_CACHE_DIR",
                std::path::Path::new(&repo.path).with_file_name("cache"),
            )
            .env("SNAP_PASSWORD", PASSWORD)
            .env("SNAP_KDF_MEMORY_KIB", "1024")
            .args(["--json", "push", src.to_str().unwrap()]);
        children.push(c.output_spawned());
    }
    for id in &ids {
        let mut c = std::process::Command::new(assert_cmd::cargo::cargo_bin("snap"));
        c.env("SNAP_REPO", &repo.path)
            .env(
                "SNAP_CACHE_DIR",
                std::path::Path::new(&repo.path).with_file_name("cache"),
            )
            .env("SNAP_PASSWORD", PASSWORD)
            .env("SNAP_KDF_MEMORY_KIB", "1024")
            .args(["protect", id]);
        children.push(c.output_spawned());
    }
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert_success(&out, "a concurrent writer");
    }
    assert_eq!(repo.snapshots(&[]).len(), 6);
    // Had one state overwritten another, a snapshot or a marker would now
    // be unrecorded.
    assert!(findings(&repo).is_empty(), "{:?}", findings(&repo));
    repo.ok(&["check"]);
}

#[test]
fn old_states_are_deleted_sixteen_behind() {
    let repo = Repo::new();
    let src = repo.dir("www");
    fs::create_dir_all(&src).unwrap();
    for i in 0..20 {
        fs::write(src.join("f"), format!("{i}")).unwrap();
        repo.push(&src, &[]);
    }
    let mut names: Vec<String> = fs::read_dir(repo.path.join("state"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    // States 1 (init) to 21: the writer of 21 deleted 1 to 5.
    assert_eq!(names.len(), 16, "{names:?}");
    assert_eq!(names[0], "0000000000000006");
    assert_eq!(names[15], "0000000000000015");
    repo.ok(&["check"]);
}

#[test]
fn a_planted_key_file_is_named() {
    let (repo, _, _) = two_pushes();
    let keys = repo.path.join("keys");
    let existing = fs::read_dir(&keys).unwrap().next().unwrap().unwrap().path();
    let planted = keys.join("00112233445566778899aabbccddeeff");
    fs::copy(&existing, &planted).unwrap();
    let out = repo.ok(&["check"]);
    assert!(
        stderr(&out).contains("keys/00112233445566778899aabbccddeeff")
            && stderr(&out).contains("planted?"),
        "{}",
        stderr(&out)
    );
    let listed = stdout(&repo.ok(&["key", "list"]));
    assert!(
        listed.contains("00112233445566778899aabbccddeeff")
            && listed.contains("WARNING: not in state"),
        "{listed}"
    );
    repo.ok(&["key", "remove", "0011"]);
    assert!(findings(&repo).is_empty());
}

fn newest_state(repo: &Repo) -> PathBuf {
    let mut names: Vec<PathBuf> = fs::read_dir(repo.path.join("state"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    names.sort();
    names.pop().expect("a state")
}

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

/// Starts a command with its output captured.
trait Spawned {
    fn output_spawned(&mut self) -> std::process::Child;
}

impl Spawned for std::process::Command {
    fn output_spawned(&mut self) -> std::process::Child {
        self.stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("snap starts")
    }
}
