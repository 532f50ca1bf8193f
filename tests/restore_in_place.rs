//! Restoring over a live tree never destroys a live file first: each file is
//! written under a temporary name and renamed over the old one when
//! complete; what an interrupted restore leaves is recognised and removed by
//! the next restore into the same target.

mod common;

use common::{assert_code, noise, stderr, Repo};
use std::path::Path;
use std::process::{Command, Stdio};

fn leftovers(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with(".snap-restore-") {
            out.push(name);
        }
        if e.file_type().unwrap().is_dir() {
            out.extend(leftovers(&e.path()));
        }
    }
    out
}

#[test]
fn a_file_that_cannot_be_restored_keeps_its_live_version() {
    let r = Repo::new();
    let src = r.dir("src");
    std::fs::create_dir_all(src.join("wp")).unwrap();
    std::fs::write(src.join("wp/index.php"), noise(1, 100_000)).unwrap();
    std::fs::write(src.join("wp/config.php"), noise(2, 100_000)).unwrap();
    r.push(&src, &[]);
    // Damage index.php's chunk: the data pack's first blob.
    let (pack, _) = r.packs().into_iter().next().unwrap();
    let mut bytes = std::fs::read(&pack).unwrap();
    let victim = if bytes.len() > 150_000 {
        50
    } else {
        unreachable!()
    };
    bytes[victim] ^= 0xff;
    std::fs::write(&pack, &bytes).unwrap();

    // The live site, changed since the backup.
    let live = r.dir("live");
    std::fs::create_dir_all(live.join("wp")).unwrap();
    std::fs::write(live.join("wp/index.php"), b"live index").unwrap();
    std::fs::write(live.join("wp/config.php"), b"live config").unwrap();
    let out = r.run(&["restore", "latest", "--target", live.to_str().unwrap()]);
    assert_ne!(out.status.code(), Some(0), "one file could not be restored");
    let err = stderr(&out);
    // One of the two files failed; it keeps its live contents, whole.
    let index = std::fs::read(live.join("wp/index.php")).unwrap();
    let config = std::fs::read(live.join("wp/config.php")).unwrap();
    let failed_index = index == b"live index";
    let failed_config = config == b"live config";
    assert!(failed_index ^ failed_config, "exactly one failed: {err}");
    if failed_index {
        assert_eq!(config, noise(2, 100_000), "the other is restored");
    } else {
        assert_eq!(index, noise(1, 100_000), "the other is restored");
    }
    assert!(
        leftovers(&live).is_empty(),
        "no temporary file is left: {:?}",
        leftovers(&live)
    );
}

#[test]
fn an_interrupted_restore_leaves_old_or_new_files_and_the_next_restore_cleans_up() {
    let r = Repo::new();
    let src = r.dir("src");
    std::fs::create_dir_all(&src).unwrap();
    // One big file restored slowly enough to be caught half-way, and small ones.
    std::fs::write(src.join("big.sql"), noise(3, 64 << 20)).unwrap();
    for i in 0..50u64 {
        std::fs::write(src.join(format!("page{i}.html")), noise(100 + i, 5000)).unwrap();
    }
    r.push(&src, &[]);
    let live = r.dir("live");
    std::fs::create_dir_all(&live).unwrap();
    std::fs::write(live.join("big.sql"), b"yesterday's live dump").unwrap();
    for i in 0..50u64 {
        std::fs::write(live.join(format!("page{i}.html")), b"live page").unwrap();
    }

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
        .args(["restore", "latest", "--target", live.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Kill it as soon as a temporary file exists (or it already finished).
    let killed = loop {
        if !leftovers(&live).is_empty() {
            child.kill().unwrap();
            break true;
        }
        if child.try_wait().unwrap().is_some() {
            break false;
        }
        std::thread::yield_now();
    };
    child.wait().unwrap();
    // Every file under its real name is either the live one or the restored one.
    let big = std::fs::read(live.join("big.sql")).unwrap();
    assert!(
        big == b"yesterday's live dump" || big == noise(3, 64 << 20),
        "big.sql is whole"
    );
    for i in 0..50u64 {
        let p = std::fs::read(live.join(format!("page{i}.html"))).unwrap();
        assert!(
            p == b"live page" || p == noise(100 + i, 5000),
            "page{i} is whole"
        );
    }
    if killed {
        eprintln!("killed with leftovers {:?}", leftovers(&live));
    } else {
        eprintln!("the restore ended before it could be interrupted; checking the clean-up only");
    }
    // A leftover of a dead process in a subdirectory-less target, planted too.
    std::fs::write(live.join(".snap-restore-999999999-00ff"), b"x").unwrap();
    let out = r.run(&["restore", "latest", "--target", live.to_str().unwrap()]);
    assert_code(&out, 0, "restore again");
    assert!(leftovers(&live).is_empty(), "{:?}", leftovers(&live));
    common::assert_same_tree(&src, &live, &[]);
}
