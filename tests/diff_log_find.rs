//! `snap diff`, `snap log` and `snap find` through the real binary, their
//! refusal of crafted trees, and (through the library) proof that diff,
//! log and find skip the trees two snapshots share.

mod common;
#[path = "common/craft.rs"]
mod craft;

use common::*;
use craft::{dir, file, Crafter};
use snap::format::tree::{Node, Tree};
use snap::id::{BlobKind, TreeId};
use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;

const T0: i64 = 1_700_000_000;

fn write(p: &Path, data: &[u8], mode: u32, mtime: i64) {
    fs::write(p, data).unwrap();
    fs::set_permissions(p, fs::Permissions::from_mode(mode)).unwrap();
    set_mtime(p, mtime, 0);
}

fn mkdir(p: &Path) {
    fs::create_dir_all(p).unwrap();
    fs::set_permissions(p, fs::Permissions::from_mode(0o755)).unwrap();
}

/// Sets every directory's mtime to T0 (adding or removing an entry
/// changes it), so that only the changes a test makes on purpose show.
fn settle_dirs(root: &Path) {
    let mut stack = vec![root.to_path_buf()];
    let mut dirs = Vec::new();
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            }
        }
        dirs.push(d);
    }
    for d in dirs {
        set_mtime(&d, T0, 0);
    }
}

fn lines(out: &std::process::Output) -> Vec<String> {
    stdout(out).lines().map(str::to_string).collect()
}

/// A site before and after an intrusion, pushed as two snapshots; returns
/// the repository, the source and both short ids.
fn two_pushes() -> (Repo, std::path::PathBuf, String, String) {
    let repo = Repo::new();
    let src = repo.dir("site");
    mkdir(&src.join("keep/deep"));
    mkdir(&src.join("olddir"));
    mkdir(&src.join("wp-content/uploads"));
    write(&src.join("index.php"), b"<?php", 0o644, T0);
    write(&src.join("gone.txt"), b"gone", 0o644, T0);
    write(&src.join("chmod.txt"), b"abc", 0o644, T0);
    write(&src.join("touched.txt"), b"t", 0o644, T0);
    write(&src.join("thing"), b"th", 0o644, T0);
    write(&src.join("olddir/x"), b"xx", 0o644, T0);
    write(&src.join("keep/deep/file"), b"same", 0o644, T0);
    write(
        &src.join("wp-content/uploads/photo.jpg"),
        b"jpeg",
        0o644,
        T0,
    );
    symlink("a", src.join("link")).unwrap();
    set_mtime(&src.join("link"), T0, 0);
    settle_dirs(&src);
    let a = str_of(
        &repo.push(&src, &["--time", "2026-11-01T03:00:00Z"]),
        "short_id",
    );

    write(&src.join("index.php"), b"<?php evil", 0o644, T0);
    fs::remove_file(src.join("gone.txt")).unwrap();
    fs::set_permissions(src.join("chmod.txt"), fs::Permissions::from_mode(0o755)).unwrap();
    set_mtime(&src.join("touched.txt"), T0 + 60, 0);
    fs::remove_file(src.join("thing")).unwrap();
    mkdir(&src.join("thing"));
    write(&src.join("thing/inner"), b"in", 0o644, T0);
    fs::remove_dir_all(src.join("olddir")).unwrap();
    mkdir(&src.join("newdir"));
    write(&src.join("newdir/a"), b"aaa", 0o644, T0);
    write(&src.join("new.txt"), b"fresh", 0o644, T0);
    write(
        &src.join("wp-content/uploads/shell.php"),
        b"<?php x",
        0o644,
        T0,
    );
    fs::remove_file(src.join("link")).unwrap();
    symlink("b", src.join("link")).unwrap();
    set_mtime(&src.join("link"), T0, 0);
    settle_dirs(&src);
    let b = str_of(
        &repo.push(&src, &["--time", "2026-11-08T03:00:00Z"]),
        "short_id",
    );
    (repo, src, a, b)
}

#[test]
fn diff_lists_each_kind_of_change_in_path_order() {
    let (repo, src, a, b) = two_pushes();
    let got = lines(&repo.ok(&["diff", &a, &b]));
    let want = [
        "U /chmod.txt  (file 3 B; mode 0644 -> 0755)",
        "- /gone.txt  (file 4 B)",
        "M /index.php  (file 5 B -> file 10 B; content)",
        "U /link  (symlink; target a -> b)",
        "+ /new.txt  (file 5 B)",
        "+ /newdir  (dir)",
        "+ /newdir/a  (file 3 B)",
        "- /olddir  (dir)",
        "- /olddir/x  (file 2 B)",
        "M /thing  (file 2 B -> dir; type, mode 0644 -> 0755)",
        "+ /thing/inner  (file 2 B)",
        "U /touched.txt  (file 1 B; mtime)",
        "+ /wp-content/uploads/shell.php  (file 7 B)",
    ];
    let summary = format!(
        "{a} -> {b}: 5 added, 3 removed, 2 modified, 3 metadata only; 17 B in added files, 6 B in removed files"
    );
    let mut all: Vec<&str> = want.to_vec();
    all.push(&summary);
    assert_eq!(got, all);

    let v = repo.json(&["diff", &a, &b]);
    let entries: Vec<(String, String)> = v["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (str_of(e, "change"), str_of(e, "path")))
        .collect();
    let mark = |c: &str| match c {
        "added" => "+",
        "removed" => "-",
        "modified" => "M",
        "metadata" => "U",
        other => panic!("unknown change {other}"),
    };
    let from_json: Vec<String> = entries
        .iter()
        .map(|(c, p)| format!("{} {p}", mark(c)))
        .collect();
    let from_text: Vec<String> = want
        .iter()
        .map(|l| l.split("  ").next().unwrap().to_string())
        .collect();
    assert_eq!(from_json, from_text);
    let c = &v["counts"];
    assert_eq!(
        (&c["added"], &c["removed"], &c["modified"], &c["metadata"]),
        (&5.into(), &3.into(), &2.into(), &3.into())
    );
    assert_eq!(
        (&c["bytes_added"], &c["bytes_removed"]),
        (&17.into(), &6.into())
    );
    let index = &v["entries"][2];
    assert_eq!(index["what"], serde_json::json!(["content"]));
    assert_eq!(
        (&index["old"]["size"], &index["new"]["size"]),
        (&5.into(), &10.into())
    );
    assert_eq!(v["old"]["short_id"], serde_json::json!(a));
    assert_eq!(v["new"]["short_id"], serde_json::json!(b));

    // The same snapshot twice, and reversed.
    let same = lines(&repo.ok(&["diff", &b, "latest"]));
    assert_eq!(same.len(), 1, "{same:?}");
    let back = lines(&repo.ok(&["diff", &b, &a]));
    assert!(
        back.contains(&"+ /gone.txt  (file 4 B)".to_string()),
        "{back:?}"
    );
    assert!(
        back.contains(&"- /newdir/a  (file 3 B)".to_string()),
        "{back:?}"
    );

    // A path restricts the diff; it may be missing on one side, and may be
    // given as it was backed up.
    let only = |args: &[&str]| -> Vec<String> {
        let out = repo.ok(args);
        let mut l = lines(&out);
        l.pop();
        l
    };
    assert_eq!(
        only(&["diff", &a, &b, "/newdir"]),
        ["+ /newdir  (dir)", "+ /newdir/a  (file 3 B)"]
    );
    assert_eq!(
        only(&["diff", &a, &b, "/olddir"]),
        ["- /olddir  (dir)", "- /olddir/x  (file 2 B)"]
    );
    assert_eq!(
        only(&["diff", &a, &b, "wp-content"]),
        ["+ /wp-content/uploads/shell.php  (file 7 B)"]
    );
    let backed_up = src.join("thing");
    assert_eq!(
        only(&["diff", &a, &b, backed_up.to_str().unwrap()]),
        [
            "M /thing  (file 2 B -> dir; type, mode 0644 -> 0755)",
            "+ /thing/inner  (file 2 B)"
        ]
    );
    assert!(only(&["diff", &a, &b, "/keep"]).is_empty());
}

#[test]
fn diff_names_what_it_cannot_find() {
    let (repo, _src, a, b) = two_pushes();
    let out = repo.run(&["diff", "deadbeef", &b]);
    assert_code(&out, 1, "unknown snapshot");
    assert!(stderr(&out).contains("deadbeef"), "{}", stderr(&out));
    let out = repo.run(&["diff", &a, &b, "/no/such/file"]);
    assert_code(&out, 1, "path in neither snapshot");
    let err = stderr(&out);
    assert!(
        err.contains("/no/such/file") && err.contains(&a) && err.contains(&b),
        "{err}"
    );
    let out = repo.run(&["diff", &a, "latest", "--site", "nobody"]);
    assert_code(&out, 1, "no snapshot matches");
    assert!(
        stderr(&out).contains("no snapshot matches"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn log_follows_one_file_through_its_life() {
    let repo = Repo::new();
    let src = repo.dir("site");
    mkdir(&src);
    write(&src.join("other"), b"o", 0o644, T0);
    let push = |day: u32| {
        let t = format!("2026-11-{day:02}T03:00:00Z");
        str_of(
            &repo.push(&src, &["--site", "client-a", "--time", &t]),
            "short_id",
        )
    };
    let s0 = push(1);
    write(&src.join("index.php"), b"<?php ok", 0o644, T0);
    let s1 = push(2);
    let s2 = push(3);
    write(&src.join("index.php"), b"<?php evil", 0o644, T0 + 5);
    let s3 = push(4);
    fs::remove_file(src.join("index.php")).unwrap();
    let s4 = push(5);
    let s5 = push(6);
    write(&src.join("index.php"), b"<?php ok", 0o644, T0);
    let s6 = push(7);
    chmod(&src.join("index.php"), 0o600);
    let s7 = push(8);

    let v = repo.json(&["log", "--site", "client-a", "/index.php"]);
    let rows: Vec<(String, String)> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (str_of(r, "short_id"), str_of(r, "status")))
        .collect();
    let want = [
        (&s1, "first_seen"),
        (&s2, "unchanged"),
        (&s3, "changed"),
        (&s4, "deleted"),
        (&s6, "reappeared"),
        (&s7, "metadata_changed"),
    ];
    let want: Vec<(String, String)> = want
        .iter()
        .map(|(s, st)| (s.to_string(), st.to_string()))
        .collect();
    assert_eq!(rows, want, "s0 {s0} and s5 {s5} hold no index.php");
    assert_eq!(v[2]["entry"]["size"], 10);
    assert!(v[3]["entry"].is_null());

    // Text; --changed drops the unchanged rows; the backed-up path works.
    let text = lines(&repo.ok(&["log", "--site", "client-a", "/index.php"]));
    assert_eq!(text.len(), 8, "{text:?}");
    assert!(
        text[3].starts_with(&s3) && text[3].ends_with("  changed"),
        "{text:?}"
    );
    assert!(text[3].contains("10 B"), "{text:?}");
    assert!(text[4].ends_with("  deleted"), "{text:?}");
    let backed_up = src.join("index.php");
    let changed = lines(&repo.ok(&["log", "--changed", backed_up.to_str().unwrap()]));
    assert_eq!(changed.len(), 7, "{changed:?}");
    assert!(
        !changed.iter().any(|l| l.ends_with("  unchanged")),
        "{changed:?}"
    );

    // A directory changes when its subtree does.
    let dirs = repo.json(&["log", "/"]);
    let st: Vec<String> = dirs
        .as_array()
        .unwrap()
        .iter()
        .map(|r| str_of(r, "status"))
        .collect();
    assert_eq!(
        st,
        [
            "first_seen",
            "changed",
            "unchanged",
            "changed",
            "changed",
            "unchanged",
            "changed",
            "changed"
        ]
    );

    let out = repo.run(&["log", "/never.php"]);
    assert_code(&out, 1, "a path in no snapshot");
    assert!(stderr(&out).contains("/never.php"), "{}", stderr(&out));
}

fn chmod(p: &Path, mode: u32) {
    fs::set_permissions(p, fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn find_lists_matching_paths_newest_first() {
    let repo = Repo::new();
    let src = repo.dir("site");
    mkdir(&src.join("wp-content/uploads/2026"));
    mkdir(&src.join("wp-includes"));
    write(&src.join("index.php"), b"<?php", 0o644, T0);
    write(&src.join("wp-includes/load.php"), b"<?php", 0o644, T0);
    write(&src.join("wp-content/uploads/2026/a.jpg"), b"j", 0o644, T0);
    let s1 = str_of(
        &repo.push(&src, &["--time", "2026-11-01T03:00:00Z"]),
        "short_id",
    );
    write(
        &src.join("wp-content/uploads/2026/x.php"),
        b"<?php",
        0o644,
        T0,
    );
    for i in 0..25 {
        write(
            &src.join(format!("wp-content/uploads/s{i:02}.php")),
            b"<?php",
            0o644,
            T0,
        );
    }
    let s2 = str_of(
        &repo.push(&src, &["--time", "2026-11-02T03:00:00Z"]),
        "short_id",
    );

    let v = repo.json(&["find", "*.php"]);
    let per: Vec<(String, u64)> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (str_of(s, "short_id"), s["count"].as_u64().unwrap()))
        .collect();
    assert_eq!(per, [(s2.clone(), 28), (s1.clone(), 2)]);
    let first: Vec<&str> = v[1]["paths"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    assert_eq!(first, ["/index.php", "/wp-includes/load.php"]);
    assert_eq!(v[0]["paths"].as_array().unwrap().len(), 28);

    let uploads = repo.json(&["find", "wp-content/uploads/**"]);
    let paths: BTreeSet<&str> = uploads[0]["paths"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    assert_eq!(uploads[0]["short_id"], serde_json::json!(s2));
    assert_eq!(paths.len(), 28, "{paths:?}");
    assert!(paths.contains("/wp-content/uploads/2026/x.php"));
    assert!(paths.contains("/wp-content/uploads/2026"));
    assert_eq!(uploads[1]["count"], 2, "{uploads}");

    let php_in_uploads = repo.json(&["find", "/wp-content/uploads/**/*.php"]);
    assert_eq!(php_in_uploads.as_array().unwrap().len(), 1);
    assert_eq!(php_in_uploads[0]["count"], 26);

    let text = lines(&repo.ok(&["find", "*.php", "--max-paths", "3"]));
    assert!(
        text[0].starts_with(&s2) && text[0].ends_with(": 28 path(s)"),
        "{text:?}"
    );
    assert_eq!(
        text[1..5],
        [
            "    /index.php",
            "    /wp-content/uploads/2026/x.php",
            "    /wp-content/uploads/s00.php",
            "    and 25 more"
        ]
    );
    assert!(text[5].starts_with(&s1), "{text:?}");
    assert_eq!(
        text.last().unwrap(),
        "2 of 2 snapshot(s) hold paths matching *.php"
    );

    let none = lines(&repo.ok(&["find", "*.exe"]));
    assert_eq!(none, ["0 of 2 snapshot(s) hold paths matching *.exe"]);
    let out = repo.run(&["find", "a[b"]);
    assert_code(&out, 1, "a bad glob");
    assert!(stderr(&out).contains("a[b"), "{}", stderr(&out));
}

/// Asserts a clean failure (exit 1, no panic) whose output says `want`.
fn refused(out: &std::process::Output, want: &str, what: &str) {
    let text = format!("{}{}", stdout(out), stderr(out));
    assert_eq!(out.status.code(), Some(1), "{what}: {text}");
    assert!(text.contains(want), "{what}: expected {want:?} in\n{text}");
    assert!(!text.contains("panicked"), "{what}: {text}");
}

fn short(id: &snap::id::SnapshotId) -> String {
    id.to_hex()[..8].to_string()
}

#[test]
fn crafted_trees_give_diff_log_and_find_a_clean_error() {
    let repo = Repo::new();
    let mut c = Crafter::open(&repo.path, PASSWORD);
    let chain = |c: &Crafter, leaf: &[u8]| {
        let f = c.chunk(leaf);
        let mut id = c.dir(vec![file(b"f", &[f])]);
        for _ in 0..2000 {
            id = c.dir(vec![dir(b"d", id)]);
        }
        id
    };
    let old = chain(&c, b"old");
    let new = chain(&c, b"new");
    let empty = c.dir(vec![]);
    let deep_old = short(&c.snapshot(old));
    let deep_new = short(&c.snapshot(new));
    let bare = short(&c.snapshot(empty));
    // A tree sealed under an id that is not its hash (how a cycle would be
    // planted) and an entry with an unsafe name.
    let loop_id = [0x5a; 32];
    let t = Tree::new(vec![dir(b"again", TreeId(loop_id))]);
    c.forged(
        BlobKind::Tree,
        loop_id,
        &t.encode(),
        t.encode().len() as u32,
    );
    let cyclic = short(&c.snapshot(c.dir(vec![dir(b"www", TreeId(loop_id))])));
    let x = c.chunk(b"x");
    let mut bad: Node = file(b"ok", &[x]);
    bad.name = b"../escape".to_vec();
    let mut lie: Node = file(b"lie.php", &[x]);
    lie.size = 99;
    let www = c.tree(&Tree {
        v: 1,
        entries: vec![bad, lie],
    });
    // The oldest snapshot, so that `log` meets it before the cycle.
    let unsafe_root = c.dir(vec![dir(b"www", www)]);
    let unsafe_name = short(&c.snapshot_at(unsafe_root, "2026-11-01T03:00:00Z"));
    drop(c);

    let deep = "deeper than 1024";
    refused(
        &repo.run(&["diff", &deep_old, &deep_new]),
        deep,
        "both sides deep",
    );
    refused(
        &repo.run(&["diff", &bare, &deep_new]),
        deep,
        "added deep chain",
    );
    refused(
        &repo.run(&["diff", &deep_old, &bare]),
        deep,
        "removed deep chain",
    );
    let out = repo.run(&["diff", &bare, &cyclic]);
    refused(&out, "do not hash to its id", "cycle");
    assert!(stderr(&out).contains("(at /www)"), "{}", stderr(&out));
    let out = repo.run(&["diff", &bare, &unsafe_name]);
    refused(&out, "unsafe name", "unsafe name");
    assert!(stderr(&out).contains("/www/../escape"), "{}", stderr(&out));
    refused(&repo.run(&["find", "*.php"]), "is damaged", "find");
    refused(
        &repo.run(&["find", "*.php", "--host", "crafted"]),
        "is damaged",
        "find",
    );
    let out = repo.run(&["log", "/www/lie.php"]);
    refused(&out, "size 99 but its chunks hold 1 bytes", "log");
    assert!(stderr(&out).contains("/www/lie.php"), "{}", stderr(&out));
}

/// A site of `fan`³ directories, each holding a few files; `variant`
/// changes one file at the bottom of the last directory.
fn big_site(c: &Crafter, fan: usize, variant: &[u8]) -> TreeId {
    let chunk = c.chunk(b"same bytes");
    let changed = c.chunk(variant);
    let mut top = Vec::new();
    for i in 0..fan {
        let mut mid = Vec::new();
        for j in 0..fan {
            let mut leaves = Vec::new();
            for k in 0..fan {
                let last = (i, j, k) == (fan - 1, fan - 1, fan - 1);
                let files = vec![
                    file(format!("f{i}{j}{k}.php").as_bytes(), &[chunk]),
                    file(b"target.txt", &[if last { changed } else { chunk }]),
                ];
                leaves.push(dir(format!("l{k}").as_bytes(), c.dir(files)));
            }
            mid.push(dir(format!("m{j}").as_bytes(), c.dir(leaves)));
        }
        top.push(dir(format!("t{i}").as_bytes(), c.dir(mid)));
    }
    c.dir(top)
}

#[test]
fn diff_log_and_find_load_only_the_trees_that_changed() {
    let repo = Repo::new();
    let mut c = Crafter::open(&repo.path, PASSWORD);
    let fan = 6;
    let a = big_site(&c, fan, b"before");
    let b = big_site(&c, fan, b"after!");
    let sa = c.snapshot_at(a, "2026-11-01T03:00:00Z");
    let sb = c.snapshot_at(b, "2026-11-02T03:00:00Z");
    let trees_per_side = 1 + fan + fan * fan + fan * fan * fan;

    let mut seen = Vec::new();
    let cache = snap::ops::cache::ReadCache::new(64 << 20);
    let stats = snap::ops::diff::trees(&c.repo, &cache, &a, &b, &[], &mut |e| {
        seen.push((e.change, e.path));
        Ok(())
    })
    .unwrap();
    assert_eq!(
        seen,
        [(
            snap::ops::diff::Change::Modified,
            "/t5/m5/l5/target.txt".to_string()
        )]
    );
    // The root, t5, m5 and l5 on each side: 8 of 2 × 259 trees.
    assert_eq!(stats.trees_loaded, 8, "of {} per side", trees_per_side);

    // log: the second snapshot reaches the changed file through new trees
    // only; the unchanged path costs nothing once looked up.
    let snaps = c.repo.snapshots().unwrap();
    let mut lookup = snap::ops::log::Lookup::default();
    let rows = snap::ops::log::history(
        &c.repo,
        &cache,
        &snaps,
        b"/t0/m0/l0/target.txt",
        &mut lookup,
    )
    .unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[1].status, snap::ops::log::Status::Unchanged);
    assert_eq!(
        lookup.trees_loaded,
        4 + 1,
        "the new root only, the rest memoized"
    );
    let mut again = lookup;
    snap::ops::log::history(&c.repo, &cache, &snaps, b"/t0/m0/l0/target.txt", &mut again).unwrap();
    assert_eq!(again.trees_loaded, 5, "a second pass loads nothing");

    // find: the second snapshot walks only the trees on the changed path.
    let mut finder = snap::ops::find::Finder::new("*.php").unwrap();
    assert_eq!(snaps[0].0, sa);
    let first = finder.find(&c.repo, &cache, &snaps[0].1.tree).unwrap();
    assert_eq!(first.len(), fan * fan * fan);
    assert_eq!(finder.trees_loaded, trees_per_side as u64);
    assert_eq!(snaps[1].0, sb);
    let second = finder.find(&c.repo, &cache, &snaps[1].1.tree).unwrap();
    assert_eq!(second, first);
    assert_eq!(finder.trees_loaded, trees_per_side as u64 + 4);
    drop(c);
}

#[test]
fn names_that_are_not_utf8_keep_their_bytes() {
    use std::os::unix::ffi::OsStrExt;
    let repo = Repo::new();
    let src = repo.dir("site");
    mkdir(&src);
    let name = std::ffi::OsStr::from_bytes(b"caf\xe9.php");
    let s1 = str_of(
        &repo.push(&src, &["--time", "2026-11-01T03:00:00Z"]),
        "short_id",
    );
    write(&src.join(name), b"<?php", 0o644, T0);
    let s2 = str_of(
        &repo.push(&src, &["--time", "2026-11-02T03:00:00Z"]),
        "short_id",
    );
    let found = repo.json(&["find", "*.php"]);
    assert_eq!(
        found[0]["paths_bytes"],
        serde_json::json!([b"/caf\xe9.php"])
    );
    let text = lines(&repo.ok(&["diff", &s1, &s2]));
    assert_eq!(text[0], "+ /caf\\xe9.php  (file 5 B)");
    let v = repo.json(&["diff", &s1, &s2]);
    assert_eq!(
        v["entries"][0]["path_bytes"],
        serde_json::json!(b"/caf\xe9.php")
    );
}
