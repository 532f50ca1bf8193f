//! The command line, end to end (ls, cat, restore): the real `snap` binary
//! on temporary directories, restores compared byte for byte.

mod common;

use common::*;
use std::collections::BTreeSet;
use std::fs;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt};

#[test]
fn ls_lists_paths_as_text_json_and_under_a_path() {
    let repo = Repo::new();
    let src = repo.dir("site");
    make_tree(&src);
    repo.push(&src, &[]);

    let want = tree_path_set(&src);
    assert_eq!(ls_paths(&repo, &["latest"]), want);

    let text = stdout(&repo.ok(&["ls", "latest"]));
    let printed: BTreeSet<String> = text
        .lines()
        .map(|l| {
            let p = l.split_once(" /").expect("a path on every line").1;
            format!("/{}", p.split(" -> ").next().unwrap())
        })
        .collect();
    // Text output escapes what is not UTF-8 (losslessly); JSON replaces it.
    let escape = |p: &str| p.replace('\u{fffd}', "");
    let strip_bytes = |p: &str| {
        let mut out = String::new();
        let mut rest = p;
        while let Some(i) = rest.find("\\x") {
            out.push_str(&rest[..i]);
            rest = &rest[i + 4..];
        }
        out + rest
    };
    let escaped: BTreeSet<String> = printed.iter().map(|p| strip_bytes(p)).collect();
    assert_eq!(escaped, want.iter().map(|p| escape(p)).collect());
    assert!(text.contains("caf\\xe9 \\xff.txt"), "{text}");
    assert!(text.contains("/link-rel -> index.php"), "{text}");
    assert!(text.contains("-rwxr-xr-x"), "{text}");
    assert!(text
        .lines()
        .any(|l| l.starts_with('p') && l.ends_with("/pipe")));

    let v = repo.json(&["ls", "latest", "/wp-content"]);
    let items = v.as_array().unwrap();
    let under: BTreeSet<String> = items.iter().map(|l| str_of(l, "path")).collect();
    let want_under: BTreeSet<String> = want
        .iter()
        .filter(|p| p.starts_with("/wp-content"))
        .cloned()
        .collect();
    assert_eq!(under, want_under);
    let zip = items
        .iter()
        .find(|l| l["path"] == "/wp-content/uploads/big.zip")
        .unwrap();
    assert_eq!(zip["kind"], "file");
    assert_eq!(zip["size"], 5_000_000);
    assert_eq!(zip["mode"], 0o644);

    let one = repo.json(&["ls", "latest", "link-dir"]);
    assert_eq!(
        one.as_array().unwrap().len(),
        1,
        "a symlink is not followed"
    );
    assert_eq!(one[0]["target"], "wp-content/uploads");

    let out = repo.run(&["ls", "latest", "/no/such/dir"]);
    assert_code(&out, 1, "ls of a missing path");
    assert!(stderr(&out).contains("/no/such/dir"));
}

#[test]
fn cat_writes_a_file_and_names_a_missing_path() {
    let repo = Repo::new();
    let src = repo.dir("site");
    make_tree(&src);
    let s = repo.push(&src, &[]);
    let short = str_of(&s, "short_id");

    for p in [
        "index.php",
        "empty",
        "wp-content/uploads/big.zip",
        "wp-includes/hard-b",
    ] {
        let out = repo.ok(&["cat", &short, &format!("/{p}")]);
        assert_eq!(out.stdout, fs::read(src.join(p)).unwrap(), "{p}");
    }
    let out = repo.run(&["cat", &short, "/wp-content/missing.php"]);
    assert_code(&out, 1, "cat of a missing path");
    let e = stderr(&out);
    assert!(
        e.contains("/wp-content/missing.php") && e.contains(&short),
        "the error should name the path and the snapshot: {e}"
    );
    assert!(out.stdout.is_empty());
    let out = repo.run(&["cat", &short, "/wp-includes"]);
    assert_code(&out, 1, "cat of a directory");
    assert!(stderr(&out).contains("wp-includes"));
    let out = repo.run(&["cat", &short, "/"]);
    assert_code(&out, 1, "cat of the root");
}

#[test]
fn restore_reproduces_the_tree_byte_for_byte() {
    let repo = Repo::new();
    let src = repo.dir("site");
    make_tree(&src);
    let s = repo.push(&src, &[]);
    let target = repo.dir("restored");
    let out = repo.json(&[
        "restore",
        &str_of(&s, "short_id"),
        "--target",
        target.to_str().unwrap(),
    ]);
    assert_eq!(out["snapshot"], s["id"]);
    assert_eq!(out["errors"], serde_json::json!([]));
    assert_eq!(out["files"], count_files(&src));
    assert_same_tree(&src, &target, &[]);

    // Restoring again over the first restore leaves the same tree.
    fs::write(target.join("index.php"), b"defaced").unwrap();
    repo.ok(&["restore", "latest", "--target", target.to_str().unwrap()]);
    assert_same_tree(&src, &target, &[]);
}

#[test]
fn restore_include_takes_only_that_subtree() {
    let repo = Repo::new();
    let src = repo.dir("site");
    make_tree(&src);
    repo.push(&src, &[]);
    let target = repo.dir("restored");
    let t = target.to_str().unwrap();
    repo.ok(&[
        "restore",
        "latest",
        "--target",
        t,
        "--include",
        "/wp-content/uploads",
    ]);
    let top: Vec<_> = fs::read_dir(&target)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(top, vec![std::ffi::OsString::from("wp-content")]);
    let below: Vec<_> = fs::read_dir(target.join("wp-content"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(below, vec![std::ffi::OsString::from("uploads")]);
    assert_same_tree(
        &src.join("wp-content/uploads"),
        &target.join("wp-content/uploads"),
        &[],
    );

    // A hard link whose other name is not restored is restored as a file.
    let t2 = repo.dir("one-file");
    repo.ok(&[
        "restore",
        "latest",
        "--target",
        t2.to_str().unwrap(),
        "--include",
        "wp-includes/hard-b",
    ]);
    assert_eq!(
        fs::read(t2.join("wp-includes/hard-b")).unwrap(),
        fs::read(src.join("hard-a")).unwrap()
    );
    assert_eq!(fs::read_dir(t2.join("wp-includes")).unwrap().count(), 1);
    assert!(!t2.join("hard-a").exists());

    let out = repo.run(&["restore", "latest", "--target", t, "--include", "/nope"]);
    assert_code(&out, 1, "--include of a missing path");
    assert!(stderr(&out).contains("/nope"));
}

#[test]
fn restore_keeps_a_sparse_file_sparse() {
    let repo = Repo::new();
    let src = repo.dir("vm");
    fs::create_dir(&src).unwrap();
    // Past 4 GiB, so 32-bit offsets would show.
    const SIZE: u64 = 5 << 30;
    let writes: [(u64, &[u8]); 4] = [
        (1_000_000, b"superblock"),
        (700 << 20, b"middle"),
        ((4 << 30) + 12_345, b"past 4 GiB"),
        (SIZE - 3, b"end"),
    ];
    let f = fs::File::create(src.join("disk.img")).unwrap();
    f.set_len(SIZE).unwrap();
    for (off, data) in writes {
        f.write_all_at(data, off).unwrap();
    }
    drop(f);
    set_mtime(&src.join("disk.img"), 1_700_000_000, 5);
    repo.push(&src, &[]);
    let target = repo.dir("restored");
    repo.ok(&["restore", "latest", "--target", target.to_str().unwrap()]);

    let p = target.join("disk.img");
    let md = fs::metadata(&p).unwrap();
    assert_eq!(md.len(), SIZE);
    assert_eq!((md.mtime(), md.mtime_nsec()), (1_700_000_000, 5));
    assert!(
        md.blocks() * 512 < 64 << 20,
        "restored file allocates {} bytes of {SIZE}: not sparse",
        md.blocks() * 512
    );
    let f = fs::File::open(&p).unwrap();
    for (off, data) in writes {
        let mut buf = vec![0u8; data.len()];
        f.read_exact_at(&mut buf, off).unwrap();
        assert_eq!(buf, data, "bytes at {off}");
    }
    // Every byte outside the holes is what was written, zero elsewhere.
    let expected = |off: u64| -> u8 {
        writes
            .iter()
            .find(|(o, d)| off >= *o && off < o + d.len() as u64)
            .map_or(0, |(o, d)| d[(off - o) as usize])
    };
    let fd = std::os::fd::AsRawFd::as_raw_fd(&f);
    let mut pos: i64 = 0;
    let mut data_bytes = 0u64;
    loop {
        // SAFETY: fd is an open file.
        let start = unsafe { libc::lseek(fd, pos, libc::SEEK_DATA) };
        if start < 0 {
            break;
        }
        // SAFETY: as above.
        let end = unsafe { libc::lseek(fd, start, libc::SEEK_HOLE) };
        let mut buf = vec![0u8; (end - start) as usize];
        let mut g = &f;
        g.seek(SeekFrom::Start(start as u64)).unwrap();
        g.read_exact(&mut buf).unwrap();
        for (i, b) in buf.iter().enumerate() {
            let off = start as u64 + i as u64;
            assert_eq!(*b, expected(off), "byte at {off}");
        }
        data_bytes += buf.len() as u64;
        pos = end;
    }
    assert!(
        data_bytes > 0 && data_bytes < 64 << 20,
        "{data_bytes} data bytes"
    );
}

#[test]
fn restore_a_300_deep_tree() {
    let repo = Repo::new();
    let src = repo.dir("deep");
    let mut p = src.clone();
    for i in 0..300 {
        p.push(format!("d{i:03}"));
        if i == 150 {
            fs::create_dir_all(&p).unwrap();
            fs::write(p.join("middle.txt"), b"half way").unwrap();
        }
    }
    fs::create_dir_all(&p).unwrap();
    fs::write(p.join("bottom.txt"), b"the bottom").unwrap();
    let s = repo.push(&src, &[]);
    assert_eq!(s["summary"]["dirs"], 301);
    let target = repo.dir("restored");
    repo.ok(&["restore", "latest", "--target", target.to_str().unwrap()]);
    assert_same_tree(&src, &target, &[]);
    let rel = p.strip_prefix(&src).unwrap().join("bottom.txt");
    let out = repo.ok(&["cat", "latest", rel.to_str().unwrap()]);
    assert_eq!(out.stdout, b"the bottom");
    assert_eq!(ls_paths(&repo, &["latest"]).len(), 302);
}

#[test]
fn restore_replaces_planted_symlinks_instead_of_following_them() {
    // After a break-in the target may hold symlinks the intruder left where
    // the snapshot has a directory or a file: restore must not write through
    // them to places outside the target.
    let repo = Repo::new();
    let src = repo.dir("site");
    fs::create_dir_all(src.join("wp-content/uploads")).unwrap();
    fs::write(src.join("wp-content/uploads/a.jpg"), b"jpeg").unwrap();
    fs::write(src.join("index.php"), b"<?php").unwrap();
    repo.push(&src, &[]);

    let outside = repo.dir("outside");
    fs::create_dir(&outside).unwrap();
    fs::write(outside.join("passwd"), b"root:x:0:0").unwrap();
    let target = repo.dir("www");
    fs::create_dir(&target).unwrap();
    std::os::unix::fs::symlink(&outside, target.join("wp-content")).unwrap();
    std::os::unix::fs::symlink(outside.join("passwd"), target.join("index.php")).unwrap();
    repo.ok(&["restore", "latest", "--target", target.to_str().unwrap()]);

    let left: Vec<_> = fs::read_dir(&outside)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        left,
        vec![std::ffi::OsString::from("passwd")],
        "restore wrote outside the target"
    );
    assert_eq!(fs::read(outside.join("passwd")).unwrap(), b"root:x:0:0");
    assert_same_tree(&src, &target, &[]);
}

#[test]
fn cat_and_include_take_non_utf8_paths() {
    let r = Repo::new();
    let src = r.dir("site");
    let dir = src.join(std::ffi::OsStr::from_bytes(b"t\xe9l\xe9chargements"));
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join(latin1_name()), b"bonjour").unwrap();
    fs::write(src.join("other.txt"), b"left out").unwrap();
    r.push(&src, &[]);

    let mut rel = b"t\xe9l\xe9chargements/".to_vec();
    rel.extend_from_slice(latin1_name().as_bytes());
    // `ls --json` gives the exact bytes of a name that is not UTF-8.
    let listed = r.json(&["ls", "latest"]);
    let entry = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|e| {
            e["path"].as_str().unwrap().ends_with(".txt")
                && e["path"].as_str().unwrap().contains('\u{fffd}')
        })
        .expect("the non-UTF-8 file is listed");
    let bytes: Vec<u8> = entry["path_bytes"]
        .as_array()
        .expect("path_bytes is given for a non-UTF-8 path")
        .iter()
        .map(|b| b.as_u64().unwrap() as u8)
        .collect();
    assert_eq!(bytes, [b"/".as_slice(), &rel].concat());
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["path"] == "/other.txt" && e.get("path_bytes").is_none()),
        "a UTF-8 path has no path_bytes"
    );
    let rel = std::ffi::OsStr::from_bytes(&rel);
    let out = r.cmd().args(["cat", "latest"]).arg(rel).output().unwrap();
    assert_success(&out, "cat of a non-UTF-8 path");
    assert_eq!(out.stdout, b"bonjour");

    let target = r.dir("restored");
    let out = r
        .cmd()
        .args(["restore", "latest", "--target"])
        .arg(&target)
        .arg("--include")
        .arg(rel)
        .output()
        .unwrap();
    assert_success(&out, "restore --include of a non-UTF-8 path");
    let got = target
        .join(std::ffi::OsStr::from_bytes(b"t\xe9l\xe9chargements"))
        .join(latin1_name());
    assert_eq!(fs::read(got).unwrap(), b"bonjour");
    assert!(
        !target.join("other.txt").exists(),
        "--include restored more than asked"
    );
}
