//! Sizes at rest (format-spec.md §9.2, issue 7 part 2): what the storage
//! provider can read from file sizes in a repository of format version 4.
//! Packs are padded to their Padmé size (at least 64 KiB), the sealed
//! header's length does not give the blob count, every push writes a data
//! pack even when nothing new was stored, snapshot files are padded, and
//! lock files name no command.

mod common;

use common::*;
use snap::format::pad::{padme, PACK_FLOOR, SMALL_FLOOR};
use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

/// Every pack file with its size, by name.
fn packs(repo: &Path) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for d in fs::read_dir(repo.join("data")).unwrap() {
        for f in fs::read_dir(d.unwrap().path()).unwrap() {
            let f = f.unwrap();
            let name = f.file_name().to_string_lossy().into_owned();
            if !name.starts_with(".tmp-") {
                out.insert(name, f.metadata().unwrap().len());
            }
        }
    }
    out
}

/// The sealed header length a pack's clear trailer gives.
fn header_len(repo: &Path, pack: &str) -> u32 {
    let bytes = fs::read(repo.join("data").join(&pack[..2]).join(pack)).unwrap();
    let t = &bytes[bytes.len() - 12..];
    u32::from_le_bytes(t[..4].try_into().unwrap())
}

/// Packs that appeared between two listings.
fn new_packs(before: &BTreeMap<String, u64>, after: &BTreeMap<String, u64>) -> Vec<(String, u64)> {
    after
        .iter()
        .filter(|(n, _)| !before.contains_key(*n))
        .map(|(n, s)| (n.clone(), *s))
        .collect()
}

#[test]
fn pack_and_snapshot_sizes_say_little_about_what_was_stored() {
    let repo = Repo::new();
    let src = repo.dir("site");
    fs::create_dir_all(src.join("uploads")).unwrap();
    for i in 0..40u64 {
        fs::write(
            src.join(format!("page{i}.php")),
            noise(i, 300 + i as usize * 50),
        )
        .unwrap();
    }
    repo.ok(&["push", src.to_str().unwrap()]);
    let first = packs(&repo.path);
    assert!(!first.is_empty());
    for (name, size) in &first {
        assert!(
            *size >= PACK_FLOOR,
            "pack {name} is {size} bytes, under the floor"
        );
        assert_eq!(padme(*size), *size, "pack {name} is not at a Padmé size");
    }

    // One new 1 KiB upload, then an upload that is already stored (a copy
    // of a page): each push writes one data pack, of the same size, so the
    // provider cannot tell a new file from one stored anywhere before.
    let before = packs(&repo.path);
    fs::write(src.join("uploads/new.jpg"), noise(1000, 1024)).unwrap();
    repo.ok(&["push", src.to_str().unwrap()]);
    let after_new = packs(&repo.path);
    let added_new = new_packs(&before, &after_new);
    fs::write(src.join("uploads/copy.php"), noise(7, 300 + 7 * 50)).unwrap();
    repo.ok(&["push", src.to_str().unwrap()]);
    let after_dup = packs(&repo.path);
    let added_dup = new_packs(&after_new, &after_dup);
    let data_sizes = |added: &[(String, u64)]| -> Vec<u64> {
        let mut v: Vec<u64> = added.iter().map(|(_, s)| *s).collect();
        v.sort();
        v
    };
    assert_eq!(
        added_new.len(),
        added_dup.len(),
        "{added_new:?} {added_dup:?}"
    );
    assert_eq!(data_sizes(&added_new), data_sizes(&added_dup));
    // An unchanged push still writes a data pack.
    let before = packs(&repo.path);
    repo.ok(&["push", src.to_str().unwrap()]);
    assert!(
        !new_packs(&before, &packs(&repo.path)).is_empty(),
        "no pack for an unchanged push"
    );

    // The header length does not give the blob count: the first push's
    // packs (40 blobs and more) and a one-blob pack have headers of one size.
    let lens: std::collections::BTreeSet<u32> = packs(&repo.path)
        .keys()
        .map(|p| header_len(&repo.path, p))
        .collect();
    assert_eq!(lens.len(), 1, "header lengths {lens:?}");

    // Snapshot files: padded plaintext, at least 4 KiB (plus 40 bytes of seal).
    for e in fs::read_dir(repo.path.join("snapshots")).unwrap() {
        let size = e.unwrap().metadata().unwrap().len();
        assert!(
            size >= SMALL_FLOOR + 40 && padme(size - 40) == size - 40,
            "{size}"
        );
    }
    // Everything still reads back.
    let out = repo.dir("out");
    repo.ok(&["restore", "latest", "--target", out.to_str().unwrap()]);
    assert_eq!(
        fs::read(out.join("uploads/new.jpg")).unwrap(),
        noise(1000, 1024)
    );
    repo.ok(&["check", "--read-data"]);
}

#[test]
fn a_lock_file_names_no_command() {
    // A push that waits on its stdin holds its lock meanwhile.
    let repo = Repo::new();
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("snap"))
        .env("SNAP_REPO", &repo.path)
        .env(
            "SNAP_CACHE_DIR",
            std::path::Path::new(&repo.path).with_file_name("cache"),
        )
        .env("SNAP_PASSWORD", PASSWORD)
        .env("SNAP_KDF_MEMORY_KIB", "1024")
        .env("SNAP_INSECURE_KDF", "1")
        .env_remove("SNAP_PASSWORD_FILE")
        .args(["push", "--stdin", "--name", "dump.sql"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let locks = repo.path.join("locks");
    let lock = loop {
        if let Some(e) = fs::read_dir(&locks)
            .unwrap()
            .flatten()
            .find(|e| !e.file_name().to_string_lossy().starts_with(".tmp-"))
        {
            if let Ok(bytes) = fs::read(e.path()) {
                if !bytes.is_empty() {
                    break bytes;
                }
            }
        }
        std::thread::yield_now();
    };
    // A dump with content: an empty one would be flagged (exit 7).
    let mut stdin = child.stdin.take().unwrap();
    std::io::Write::write_all(&mut stdin, b"CREATE TABLE t;\n").unwrap();
    drop(stdin);
    assert!(child.wait().unwrap().success());
    let v: serde_json::Value = serde_json::from_slice(&lock).unwrap();
    assert_eq!(v["command"], "", "{v}");
    assert!(!String::from_utf8_lossy(&lock).contains("push"));
}
