//! Two pushes at the same time into one repository both succeed (the second
//! waits for the index), and a restore can run while a push writes.

use std::path::Path;
use std::process::{Command, Output, Stdio};

fn snap(repo: &Path) -> Command {
    let mut c = Command::new(assert_cmd::cargo::cargo_bin("snap"));
    c.env("SNAP_REPO", repo)
        .env(
            "SNAP_CACHE_DIR",
            std::path::Path::new(repo).with_file_name("cache"),
        )
        .env("SNAP_PASSWORD", "concurrent")
        .env("SNAP_KDF_MEMORY_KIB", "1024")
        .env("SNAP_INSECURE_KDF", "1");
    c
}

fn ok(o: Output) -> Output {
    assert!(
        o.status.success(),
        "snap failed: {}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

fn fill(dir: &Path, seed: u8, files: usize, size: usize) {
    std::fs::create_dir_all(dir).unwrap();
    for i in 0..files {
        let mut x = blake3::Hasher::new();
        x.update(&[seed]).update(&i.to_le_bytes());
        let mut data = vec![0u8; size];
        x.finalize_xof().fill(&mut data);
        std::fs::write(dir.join(format!("f{i}.bin")), data).unwrap();
    }
}

fn same_tree(a: &Path, b: &Path) {
    let mut names: Vec<_> = std::fs::read_dir(a)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    let mut other: Vec<_> = std::fs::read_dir(b)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    other.sort();
    assert_eq!(names, other);
    for n in names {
        assert_eq!(
            std::fs::read(a.join(&n)).unwrap(),
            std::fs::read(b.join(&n)).unwrap(),
            "{n:?} differs"
        );
    }
}

#[test]
fn concurrent_pushes_and_a_restore_during_a_push() {
    let t = tempfile::tempdir().unwrap();
    let repo = t.path().join("repo");
    ok(snap(&repo).arg("init").output().unwrap());
    let (a, b) = (t.path().join("a"), t.path().join("b"));
    fill(&a, 1, 40, 1 << 20);
    fill(&b, 2, 40, 1 << 20);
    ok(snap(&repo)
        .args(["push", "--site", "first"])
        .arg(&a)
        .output()
        .unwrap());

    let spawn = |dir: &Path, site: &str| {
        snap(&repo)
            .args(["push", "--json", "--site", site])
            .arg(dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let mut pa = spawn(&a, "a");
    let mut pb = spawn(&b, "b");
    // Both pushes have opened the repository (their locks are there), unless
    // one was done first: the restore below then runs alongside a push, on a
    // busy machine as on an idle one.
    let locks = repo.join("locks");
    loop {
        let held = std::fs::read_dir(&locks)
            .unwrap()
            .filter(|e| {
                !e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .starts_with(".tmp-")
            })
            .count();
        if held >= 2 || pa.try_wait().unwrap().is_some() || pb.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    // A restore of the first snapshot while the pushes run.
    let r1 = t.path().join("r1");
    ok(snap(&repo)
        .args(["restore", "latest", "--site", "first", "--target"])
        .arg(&r1)
        .output()
        .unwrap());
    same_tree(&a, &r1);
    ok(pa.wait_with_output().unwrap());
    ok(pb.wait_with_output().unwrap());

    for (site, src) in [("a", &a), ("b", &b)] {
        let out = t.path().join(format!("out-{site}"));
        ok(snap(&repo)
            .args(["restore", "latest", "--site", site, "--target"])
            .arg(&out)
            .output()
            .unwrap());
        same_tree(src, &out);
    }
    ok(snap(&repo).args(["check", "--read-data"]).output().unwrap());
}
