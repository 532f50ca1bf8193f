//! SIGINT, SIGTERM and SIGHUP: a `--from-command` dump is terminated with
//! everything it started, the lock is given up, and no snapshot is recorded.

mod common;

use common::*;
use std::fs;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn spawn(repo: &Repo, args: &[&str]) -> Child {
    Command::new(assert_cmd::cargo::cargo_bin("snap"))
        .env("SNAP_REPO", &repo.path)
        .env(
            "SNAP_CACHE_DIR",
            std::path::Path::new(&repo.path).with_file_name("cache"),
        )
        .env("SNAP_PASSWORD", PASSWORD)
        .env("SNAP_KDF_MEMORY_KIB", "1024")
        .env("SNAP_INSECURE_KDF", "1")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits (up to two minutes) until `ready` holds; a test never sleeps for a
/// fixed time, it waits for what it needs.
fn wait_for(what: &str, ready: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while !ready() {
        assert!(Instant::now() < deadline, "gave up waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Whether a process still runs (a zombie, waiting for a parent that may
/// never reap it in a container, does not run).
fn running(pid: i32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => false,
        Ok(stat) => {
            let state = stat
                .rsplit_once(')')
                .map(|(_, r)| r.trim_start())
                .unwrap_or("");
            !state.starts_with('Z')
        }
    }
}

/// The lock files (a `.tmp-` file is a write cut short, never read, and
/// removed by the next writer).
fn locks(repo: &Repo) -> Vec<String> {
    fs::read_dir(repo.path.join("locks"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with(".tmp-"))
        .collect()
}

fn dump_is_terminated_by(sig: i32, code: i32) {
    let repo = Repo::new();
    let pidfile = repo.dir("dump.pid");
    let script = format!("sleep 1000 & echo $! > {}; wait", pidfile.display());
    let snap = spawn(
        &repo,
        &[
            "push",
            "--from-command",
            "--name",
            "db.sql",
            "--",
            "sh",
            "-c",
            &script,
        ],
    );
    let read_pid = || {
        fs::read_to_string(&pidfile)
            .ok()
            .filter(|s| s.ends_with('\n'))
            .and_then(|s| s.trim().parse::<i32>().ok())
    };
    wait_for("the dump to start", || read_pid().is_some());
    let dump_child = read_pid().unwrap();
    assert!(running(dump_child));
    // SAFETY: signals the snap process this test started.
    unsafe { libc::kill(snap.id() as i32, sig) };
    let out = snap.wait_with_output().unwrap();
    assert_code(&out, code, "snap push --from-command, signalled");
    assert!(
        !running(dump_child),
        "the dump's child {dump_child} outlived snap"
    );
    let e = stderr(&out);
    assert!(e.contains("no snapshot was recorded"), "{e}");
    assert!(
        locks(&repo).is_empty(),
        "the lock was left: {:?}",
        locks(&repo)
    );
    assert!(repo.snapshots(&[]).is_empty(), "a snapshot was recorded");
    repo.ok(&["check"]);
}

#[test]
fn sigterm_terminates_a_hanging_dump_and_its_children() {
    dump_is_terminated_by(libc::SIGTERM, 143);
}

#[test]
fn sigint_and_sighup_do_the_same() {
    dump_is_terminated_by(libc::SIGINT, 130);
    dump_is_terminated_by(libc::SIGHUP, 129);
}

#[test]
fn sigterm_stops_a_push_without_a_snapshot_and_the_next_push_works() {
    let repo = Repo::new();
    let src = repo.dir("site");
    fs::create_dir_all(&src).unwrap();
    for i in 0..48 {
        fs::write(src.join(format!("f{i}")), noise(i, 1 << 20)).unwrap();
    }
    let snap = spawn(&repo, &["push", src.to_str().unwrap()]);
    wait_for("the push to take its lock", || !locks(&repo).is_empty());
    // SAFETY: signals the snap process this test started.
    unsafe { libc::kill(snap.id() as i32, libc::SIGTERM) };
    let out = snap.wait_with_output().unwrap();
    match out.status.code() {
        Some(143) => {
            assert!(
                locks(&repo).is_empty(),
                "the lock was left: {:?}",
                locks(&repo)
            );
            assert!(
                repo.snapshots(&[]).is_empty(),
                "an interrupted push recorded a snapshot"
            );
        }
        // The push may have finished before the signal came.
        Some(0) => assert_eq!(repo.snapshots(&[]).len(), 1),
        other => panic!("exit {other:?}: {}", stderr(&out)),
    }
    repo.ok(&["check", "--read-data"]);
    repo.push(&src, &[]);
    let target = repo.dir("restored");
    repo.ok(&["restore", "latest", "--target", target.to_str().unwrap()]);
    assert_same_tree(&src, &target, &[]);
}
