//! Hostile and damaged repositories: what someone holding the password (a
//! compromised web server) or the storage provider could plant. Every
//! command must answer with a clear error and bounded memory, never a
//! crash; `check` must see everything restore refuses; `cat` and `ls`
//! validate like restore.

mod common;
#[path = "common/craft.rs"]
mod craft;

use common::*;
use craft::{dir, file, grouped_file, Crafter};
use snap::format::tree::{ListRef, Node, NodeKind, Tree};
use snap::id::{BlobKind, TreeId};
use std::fs;
use std::path::Path;
use std::process::{Command, Output, Stdio};

/// Address space a command may use in the memory-bound tests: far below
/// the 3-4 GiB a planted length asks for, well above what snap needs. The
/// thread pool and malloc arenas are fixed in size (see [`limited_to`]) so
/// that the bound does not depend on the number of cores.
const ADDRESS_SPACE: &str = "--as=1073741824";

/// Runs `snap ARGS` on `repo` under an address-space limit (through
/// `prlimit`), so that a planted length that is allocated fails the test
/// instead of the machine.
fn limited(repo: &Repo, args: &[&str]) -> Output {
    limited_to(ADDRESS_SPACE, repo, args)
}

fn limited_to(limit: &str, repo: &Repo, args: &[&str]) -> Output {
    let mut c = Command::new("prlimit");
    c.arg(limit)
        .arg("--")
        .arg(assert_cmd::cargo::cargo_bin("snap"));
    // Each worker thread reserves its stack and may get a malloc arena:
    // address space that grows with the cores, not with what is read.
    c.env("RAYON_NUM_THREADS", "2").env("MALLOC_ARENA_MAX", "2");
    with_env(&mut c, repo)
        .args(args)
        .output()
        .expect("prlimit runs snap")
}

/// The environment of [`Repo::cmd`], on a plain command.
fn with_env<'c>(c: &'c mut Command, repo: &Repo) -> &'c mut Command {
    c.env("SNAP_REPO", &repo.path)
        .env(
            "SNAP_CACHE_DIR",
            std::path::Path::new(&repo.path).with_file_name("cache"),
        )
        .env("SNAP_PASSWORD", PASSWORD)
        .env("SNAP_KDF_MEMORY_KIB", "1024")
        .env("SNAP_INSECURE_KDF", "1")
        .env_remove("SNAP_PASSWORD_FILE")
}

/// Asserts the command failed with exit code 1 (not a crash: no signal, no
/// abort) and that stderr or stdout says `want`.
fn refused(out: &Output, want: &str, what: &str) {
    let text = format!("{}{}", stdout(out), stderr(out));
    assert_eq!(
        out.status.code(),
        Some(1),
        "{what}: expected a clean failure (exit 1), got {:?}\n{text}",
        out.status
    );
    assert!(text.contains(want), "{what}: expected {want:?} in\n{text}");
    assert!(
        !text.contains("panicked") && !text.contains("memory allocation"),
        "{what}: crashed\n{text}"
    );
}

fn short(id: &snap::id::SnapshotId) -> String {
    id.to_hex()[..8].to_string()
}

/// A repository and a crafter on it.
fn crafted() -> (Repo, Crafter) {
    let repo = Repo::new();
    let c = Crafter::open(&repo.path, PASSWORD);
    (repo, c)
}

#[test]
fn a_tree_that_contains_itself_is_refused_by_ls_restore_and_check() {
    let (repo, mut c) = crafted();
    // Ids are keyed hashes, so a tree cannot name itself honestly; one
    // holding the key can seal any tree under any id. Readers check a
    // tree's hash before walking it (the walker also refuses cycles).
    let loop_id = [0x5a; 32];
    let t = Tree::new(vec![dir(b"again", TreeId(loop_id))]);
    c.forged(
        BlobKind::Tree,
        loop_id,
        &t.encode(),
        t.encode().len() as u32,
    );
    let s = c.snapshot(TreeId(loop_id));
    drop(c);
    let s = short(&s);
    refused(&limited(&repo, &["ls", &s]), "do not hash to its id", "ls");
    let target = repo.dir("out");
    let t = target.to_str().unwrap();
    refused(
        &limited(&repo, &["restore", &s, "--target", t]),
        "do not hash to its id",
        "restore",
    );
    refused(
        &limited(&repo, &["check"]),
        "do not hash to its id",
        "check",
    );
}

#[test]
fn a_chain_of_10000_nested_trees_is_refused_at_the_depth_limit() {
    let (repo, mut c) = crafted();
    let mut id = c.dir(vec![]);
    for _ in 0..10_000 {
        id = c.dir(vec![dir(b"d", id)]);
    }
    let s = short(&c.snapshot(id));
    drop(c);
    refused(&limited(&repo, &["ls", &s]), "deeper than 1024", "ls");
    let target = repo.dir("out");
    refused(
        &limited(
            &repo,
            &["restore", &s, "--target", target.to_str().unwrap()],
        ),
        "deeper than 1024",
        "restore",
    );
    refused(&limited(&repo, &["check"]), "deeper than 1024", "check");
}

#[test]
fn a_tree_reused_at_two_places_still_lists_restores_and_checks() {
    let (repo, mut c) = crafted();
    let ch = c.chunk(b"shared contents\n");
    let sub = c.dir(vec![file(b"f", &[ch])]);
    let root = c.dir(vec![dir(b"a", sub), dir(b"b", sub)]);
    let s = short(&c.snapshot(root));
    drop(c);
    let listed = stdout(&repo.ok(&["ls", &s]));
    assert!(
        listed.contains("/a/f") && listed.contains("/b/f"),
        "{listed}"
    );
    let target = repo.dir("out");
    repo.ok(&["restore", &s, "--target", target.to_str().unwrap()]);
    assert_eq!(fs::read(target.join("b/f")).unwrap(), b"shared contents\n");
    repo.ok(&["check", "--read-data"]);
}

#[test]
fn a_blob_declaring_4_gib_is_refused_before_it_is_allocated() {
    let (repo, mut c) = crafted();
    // Compressible, so it is sealed as a zstd frame: the path that sized
    // its output buffer from the pack header.
    let data = vec![b'a'; 100_000];
    let chunk_id = c.repo.keys().blob_id(&data);
    c.forged(BlobKind::Data, chunk_id, &data, u32::MAX);
    let big_tree = [0x77; 32];
    let t = Tree::new(vec![]).encode();
    c.forged(BlobKind::Tree, big_tree, &t, u32::MAX);
    let f = file(b"big", &[(snap::id::ChunkId(chunk_id), data.len() as u32)]);
    let root = c.dir(vec![f, dir(b"sub", TreeId(big_tree))]);
    let s = short(&c.snapshot(root));
    drop(c);
    refused(
        &limited(&repo, &["cat", &s, "big"]),
        "declares 4294967295",
        "cat",
    );
    refused(&limited(&repo, &["ls", &s]), "declares 4294967295", "ls");
    let target = repo.dir("out");
    refused(
        &limited(
            &repo,
            &["restore", &s, "--target", target.to_str().unwrap()],
        ),
        "declares 4294967295",
        "restore",
    );
    refused(
        &limited(&repo, &["check", "--read-data"]),
        "declares 4294967295",
        "check --read-data",
    );
}

/// Plants a sparse file of 3 GiB at `p` (no disk space used).
fn plant_huge(p: &Path) {
    let f = fs::File::create(p).unwrap();
    f.set_len(3 << 30).unwrap();
}

#[test]
fn oversized_config_snapshot_and_key_files_are_refused_by_their_size() {
    let repo = Repo::new();
    let src = repo.dir("site");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("index.html"), b"<h1>hi</h1>\n").unwrap();
    repo.push(&src, &[]);

    // A huge key file is skipped: the real one still opens.
    plant_huge(&repo.path.join("keys/ffffffffffffffffffffffffffffffff"));
    let out = limited(&repo, &["snapshots"]);
    assert_success(&out, "snapshots beside a 3 GiB key file");
    let out = limited(&repo, &["key", "list"]);
    assert_success(&out, "key list beside a 3 GiB key file");
    assert!(
        stdout(&out).contains("ffffffffffffffffffffffffffffffff unusable: keys/ffffffffffffffffffffffffffffffff is damaged: 3221225472 bytes"),
        "{}",
        stdout(&out)
    );

    // A huge snapshot file is named, the others still listed.
    let fake = "ab".repeat(32);
    plant_huge(&repo.path.join("snapshots").join(&fake));
    let out = limited(&repo, &["check"]);
    refused(
        &out,
        &format!("snapshots/{fake}"),
        "check beside a 3 GiB snapshot",
    );
    assert!(stdout(&out).contains("more than the"), "{}", stdout(&out));
    fs::remove_file(repo.path.join("snapshots").join(&fake)).unwrap();

    // A huge config stops everything, with its name.
    let config = repo.path.join("config");
    fs::rename(&config, repo.dir("config.saved")).unwrap();
    plant_huge(&config);
    refused(
        &limited(&repo, &["snapshots"]),
        "config is damaged",
        "a 3 GiB config",
    );
}

#[test]
fn key_files_with_unaffordable_costs_are_skipped_and_the_last_key_goes_first() {
    let repo = Repo::new();
    let keys = repo.path.join("keys");
    let real = fs::read_dir(&keys).unwrap().next().unwrap().unwrap().path();
    let mut kf: serde_json::Value = serde_json::from_slice(&fs::read(&real).unwrap()).unwrap();
    // Beyond the caps: refused without running Argon2id.
    kf["params"]["memory_kib"] = (4u64 << 20).into();
    fs::write(
        keys.join("00000000000000000000000000000001"),
        kf.to_string(),
    )
    .unwrap();
    // Within the caps (1 GiB × 2 passes), but with another password's
    // salt: it can only cost time and memory. The key that opened the
    // repository last is tried before it, so the limit is never reached.
    kf["params"]["memory_kib"] = (1u64 << 20).into();
    kf["params"]["iterations"] = 2.into();
    fs::write(
        keys.join("00000000000000000000000000000002"),
        kf.to_string(),
    )
    .unwrap();
    let t = std::time::Instant::now();
    let out = limited_to("--as=805306368", &repo, &["snapshots"]);
    assert_success(&out, "snapshots beside costly key files");
    assert!(
        t.elapsed() < std::time::Duration::from_secs(20),
        "took {:?}",
        t.elapsed()
    );
}

#[test]
fn stray_names_are_warned_about_and_skipped() {
    let repo = Repo::new();
    let src = repo.dir("site");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("a.txt"), b"a\n").unwrap();
    repo.push(&src, &[]);
    fs::write(repo.path.join("snapshots/README"), b"hello").unwrap();
    fs::write(repo.path.join("protected/notes.txt"), b"hello").unwrap();
    for args in [&["snapshots"][..], &["check"], &["ls", "latest"]] {
        let out = repo.ok(args);
        let err = stderr(&out);
        assert!(
            err.contains("snapshots/README is not a snapshot id")
                && err.contains("protected/notes.txt is not a snapshot id"),
            "snap {args:?}: {err}"
        );
    }
    assert_eq!(repo.snapshots(&[]).len(), 1);
    fs::write(repo.path.join("data/00/README"), b"hello").unwrap();
    let out = repo.ok(&["check", "--read-data"]);
    assert!(
        stderr(&out).contains("\"README\" in a directory under data/ is not a pack id"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_tree_as_deep_as_the_limit_is_read_and_one_level_more_is_refused() {
    let (repo, mut c) = crafted();
    let ch = c.chunk(b"at the bottom\n");
    // The root counts as one level: 1023 directories below it make 1024.
    let mut id = c.dir(vec![file(b"f", &[ch])]);
    for _ in 0..1022 {
        id = c.dir(vec![dir(b"d", id)]);
    }
    let deepest = short(&c.snapshot(c.dir(vec![dir(b"d", id)])));
    let id = c.dir(vec![dir(b"d", id)]);
    let too_deep = short(&c.snapshot(c.dir(vec![dir(b"d", id)])));
    drop(c);
    let listed = stdout(&limited(&repo, &["ls", &deepest]));
    let bottom = format!("{}/f", "/d".repeat(1023));
    assert!(listed.contains(&bottom), "the deepest file is listed");
    let path = format!("{}/f", "d/".repeat(1023).trim_end_matches('/'));
    assert_eq!(
        stdout(&repo.ok(&["cat", &deepest, &path])),
        "at the bottom\n"
    );
    refused(
        &limited(&repo, &["ls", &too_deep]),
        "deeper than 1024",
        "ls",
    );
    let out = limited(&repo, &["check"]);
    refused(&out, "deeper than 1024", "check");
    assert!(
        stdout(&out).contains(&too_deep),
        "only the deeper snapshot is damaged: {}",
        stdout(&out)
    );
    assert!(!stdout(&out).contains(&deepest), "{}", stdout(&out));
}

#[test]
fn replication_walks_with_the_same_rules_and_stops_at_a_crafted_tree() {
    let (repo, mut c) = crafted();
    let ch = c.chunk(b"fine\n");
    let root = c.dir(vec![file(b"f", &[ch])]);
    let fine = c.snapshot_at(root, "2026-11-19T03:00:00+01:00");
    let deep = c.chunk(b"at the bottom\n");
    let mut id = c.dir(vec![file(b"f", &[deep])]);
    for _ in 0..1024 {
        id = c.dir(vec![dir(b"d", id)]);
    }
    let too_deep = c.snapshot(id);
    drop(c);
    let offsite = repo.dir("offsite");
    let remotes = repo.dir("remotes.toml");
    fs::write(
        &remotes,
        format!(
            "[remote.off]\nurl = \"{}\"\nlevels = [1]\n",
            offsite.display()
        ),
    )
    .unwrap();
    let run = |args: &[&str]| {
        let mut c = Command::new(assert_cmd::cargo::cargo_bin("snap"));
        with_env(&mut c, &repo)
            .env("SNAP_REMOTES_FILE", &remotes)
            .args(args)
            .output()
            .unwrap()
    };
    assert_success(&run(&["remote", "init", "off"]), "remote init");
    refused(&run(&["replicate", "off"]), "deeper than 1024", "replicate");
    // What came before the crafted snapshot went whole; the crafted one
    // was never written there.
    let out = run(&["--json", "--remote", "off", "snapshots"]);
    assert_success(&out, "snapshots on the remote");
    let listed = stdout(&out);
    assert!(listed.contains(&fine.to_hex()), "{listed}");
    assert!(!listed.contains(&too_deep.to_hex()), "{listed}");
    assert_success(
        &run(&["--remote", "off", "check", "--read-data"]),
        "check the remote",
    );
}

#[test]
fn a_tree_found_clean_higher_up_is_still_refused_where_it_lies_too_deep() {
    let (repo, mut c) = crafted();
    // `chain` is 1000 levels high. Under `a` it fits; under `b`, 30
    // directories further down in the same snapshot, it does not.
    let mut chain = c.dir(vec![]);
    for _ in 0..999 {
        chain = c.dir(vec![dir(b"d", chain)]);
    }
    let mut deep = chain;
    for _ in 0..30 {
        deep = c.dir(vec![dir(b"x", deep)]);
    }
    let root = c.dir(vec![dir(b"a", chain), dir(b"b", deep)]);
    let s = short(&c.snapshot(root));
    drop(c);
    refused(&limited(&repo, &["ls", &s]), "deeper than 1024", "ls");
    let out = limited(&repo, &["check"]);
    refused(&out, "deeper than 1024", "check");
    assert!(stdout(&out).contains("path /b/x/x"), "{}", stdout(&out));
    assert!(!stdout(&out).contains("path /a"), "{}", stdout(&out));
}

fn bad_name_snapshot(name: &[u8]) -> (Repo, String) {
    let (repo, mut c) = crafted();
    let ch = c.chunk(b"planted\n");
    let ok = c.chunk(b"fine\n");
    let t = Tree {
        v: 1,
        entries: vec![file(name, &[ch]), file(b"zz-ok", &[ok])],
    };
    let root = c.tree(&t);
    let s = short(&c.snapshot(root));
    drop(c);
    (repo, s)
}

#[test]
fn unsafe_names_are_refused_by_ls_cat_restore_and_check() {
    for name in [&b"."[..], b"..", b"a/b", b"", b"/etc/cron.d/x"] {
        let what = String::from_utf8_lossy(name).into_owned();
        let (repo, s) = bad_name_snapshot(name);
        refused(
            &repo.run(&["ls", &s]),
            "unsafe name",
            &format!("ls {what:?}"),
        );
        let target = repo.dir("out");
        refused(
            &repo.run(&["restore", &s, "--target", target.to_str().unwrap()]),
            "unsafe name",
            &format!("restore {what:?}"),
        );
        refused(
            &repo.run(&["check", "--read-data"]),
            "unsafe name",
            &format!("check {what:?}"),
        );
        // The valid file next to it is still readable by name.
        assert_eq!(stdout(&repo.ok(&["cat", &s, "zz-ok"])), "fine\n");
    }
    let (repo, s) = bad_name_snapshot(b"..");
    refused(&repo.run(&["cat", &s, ".."]), "unsafe name", "cat ..");
}

#[test]
fn a_chunk_record_that_lies_about_its_length_is_refused_by_cat_and_check() {
    let (repo, mut c) = crafted();
    let (id, _) = c.chunk(b"ten bytes!");
    let root = c.dir(vec![file(b"f", &[(id, 5)])]);
    let s = short(&c.snapshot(root));
    drop(c);
    refused(&repo.run(&["cat", &s, "f"]), "the chunk list says 5", "cat");
    let target = repo.dir("out");
    refused(
        &repo.run(&["restore", &s, "--target", target.to_str().unwrap()]),
        "the chunk list says 5",
        "restore",
    );
    refused(&repo.run(&["check"]), "the chunk list says 5", "check");
}

#[test]
fn sizes_and_group_counts_that_lie_are_refused_everywhere() {
    let (repo, mut c) = crafted();
    let a = c.chunk(b"aaaa");
    let b = c.chunk(b"bbbbbb");
    let mut wrong_size = file(b"f", &[a, b]);
    wrong_size.size = 99;
    let s1 = short(&c.snapshot(c.dir(vec![wrong_size])));
    let list = c.list(&[a, b]);
    let lying_group = grouped_file(
        b"g",
        vec![ListRef {
            id: list,
            bytes: 10,
            chunks: 3,
        }],
    );
    let s2 = short(&c.snapshot(c.dir(vec![lying_group])));
    drop(c);
    refused(
        &repo.run(&["ls", &s1]),
        "size 99 but its chunks hold 10",
        "ls",
    );
    refused(&repo.run(&["cat", &s1, "f"]), "size 99", "cat");
    refused(
        &repo.run(&["cat", &s2, "g"]),
        "the tree says 3 of 10",
        "cat",
    );
    let target = repo.dir("out");
    refused(
        &repo.run(&["restore", &s2, "--target", target.to_str().unwrap()]),
        "the tree says 3 of 10",
        "restore",
    );
    let out = repo.run(&["check"]);
    refused(&out, "size 99 but its chunks hold 10", "check");
    refused(&out, "the tree says 3 of 10", "check");
}

#[test]
fn a_file_without_content_or_a_directory_without_subtree_is_refused() {
    let (repo, mut c) = crafted();
    let mut f = file(b"f", &[]);
    f.content = None;
    let mut d = dir(b"d", TreeId([0; 32]));
    d.subtree = None;
    let s = short(&c.snapshot(c.dir(vec![f, d])));
    drop(c);
    refused(&repo.run(&["ls", &s]), "tree entry /d", "ls");
    let out = repo.run(&["check"]);
    refused(&out, "a file entry without content", "check");
    refused(&out, "a directory without a subtree", "check");
}

/// A member of hard-link group (dev 7, inode 42) holding `chunk`.
fn link(name: &[u8], chunk: (snap::id::ChunkId, u32)) -> Node {
    let mut n: Node = file(name, &[chunk]);
    n.nlink = 2;
    n.inode = 42;
    n.dev = 7;
    n
}

#[test]
fn hard_links_with_different_contents_are_found_by_check() {
    let (repo, mut c) = crafted();
    let same = c.chunk(b"same\n");
    let root = c.dir(vec![link(b"a", same), link(b"b", same)]);
    c.snapshot(root);
    let other = c.chunk(b"other\n");
    let root = c.dir(vec![link(b"a", same), link(b"b", other)]);
    c.snapshot(root);
    drop(c);
    let out = repo.run(&["check"]);
    refused(&out, "with other contents", "check");
    assert_eq!(
        stdout(&out).matches("with other contents").count(),
        1,
        "only the second snapshot is inconsistent: {}",
        stdout(&out)
    );
}

#[test]
fn hard_links_across_a_directory_checked_in_an_earlier_snapshot_are_compared() {
    let (repo, mut c) = crafted();
    let one = c.chunk(b"one\n");
    let two = c.chunk(b"two\n");
    let a = c.dir(vec![link(b"x", one)]);
    c.snapshot(c.dir(vec![dir(b"a", a)]));
    let b = c.dir(vec![link(b"y", two)]);
    let second = short(&c.snapshot(c.dir(vec![dir(b"a", a), dir(b"b", b)])));
    drop(c);
    let out = repo.run(&["check"]);
    refused(&out, "with other contents", "check");
    assert!(
        stdout(&out).contains(&format!("snapshot {second} path /b/y")),
        "{}",
        stdout(&out)
    );
}

#[test]
fn a_snapshot_time_that_does_not_parse_is_found_by_check() {
    let (repo, mut c) = crafted();
    let root = c.dir(vec![]);
    c.snapshot_at(root, "yesterday at noon");
    drop(c);
    refused(&repo.run(&["check"]), "is not RFC 3339", "check");
}

#[test]
fn check_with_a_closed_stdout_still_fails_on_a_damaged_repository() {
    let (repo, _) = bad_name_snapshot(b"..");
    let run = |repo: &Repo| {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let mut c = Command::new(assert_cmd::cargo::cargo_bin("snap"));
        with_env(&mut c, repo)
            .arg("check")
            .stdout(Stdio::from(writer))
            .stderr(Stdio::piped())
            .output()
            .unwrap()
    };
    let out = run(&repo);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("damaged"), "{}", stderr(&out));
    // A sound repository with a closed stdout is not a failure.
    let sound = Repo::new();
    let out = run(&sound);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[test]
fn a_node_kind_without_its_field_is_named_in_the_error() {
    let (repo, mut c) = crafted();
    let mut l = file(b"link", &[]);
    l.kind = NodeKind::Symlink;
    l.content = None;
    l.size = 0;
    let s = short(&c.snapshot(c.dir(vec![l])));
    drop(c);
    refused(&repo.run(&["ls", &s]), "tree entry /link", "ls");
}

/// A site beside `repo` whose index.php is a page, and a web shell of the
/// page's length: what an attacker would put in its place.
fn bakery(repo: &Repo) -> (std::path::PathBuf, Vec<u8>, Vec<u8>) {
    let src = repo.dir("site");
    fs::create_dir_all(&src).unwrap();
    let page = b"<?php echo 'welcome to the bakery'; ?>\n".repeat(20);
    let mut shell = b"<?php system($_GET['c']); ?>\n".repeat(20);
    shell.resize(page.len(), b'\n');
    fs::write(src.join("index.php"), &page).unwrap();
    (src, page, shell)
}

/// Where the one data pack holding `id` lives, found by reading headers.
fn packs_holding(c: &Crafter, id: [u8; 32]) -> Vec<String> {
    let mut out = Vec::new();
    for (pack, info) in c.repo.index().packs().unwrap() {
        let entries = c.repo.read_pack_header(&pack, info.size).unwrap();
        if entries.iter().any(|e| e.blob.id == id) {
            out.push(pack.to_hex());
        }
    }
    out
}

#[test]
fn a_planted_copy_of_a_chunk_is_never_restored() {
    // A holder of the password seals a web shell under the id of a page's
    // chunk, in a pack of its own. The AEAD opens it; the keyed hash does
    // not match, so every read falls back to the genuine copy, and an index
    // rebuild (a disaster-recovery clone) prefers it too.
    let repo = Repo::new();
    let (src, page, shell) = bakery(&repo);
    repo.ok(&["push", src.to_str().unwrap()]);
    let c = Crafter::open(&repo.path, PASSWORD);
    let id = c.repo.keys().blob_id(&page);
    let genuine = packs_holding(&c, id);
    assert_eq!(genuine.len(), 1, "the page is stored once");
    let planted = c.planted_pack(BlobKind::Data, id, &shell);
    assert_eq!(
        c.repo
            .index()
            .get(&snap::id::BlobRef {
                kind: BlobKind::Data,
                id
            })
            .unwrap()
            .unwrap()
            .pack
            .to_hex(),
        planted,
        "the index names the planted copy"
    );
    drop(c);
    let restored = |repo: &Repo| {
        let out = repo.dir("out");
        let _ = fs::remove_dir_all(&out);
        repo.ok(&["restore", "latest", "--target", out.to_str().unwrap()]);
        fs::read(out.join("index.php")).unwrap()
    };
    assert_eq!(
        restored(&repo),
        page,
        "restore falls back to the genuine copy"
    );
    assert_eq!(repo.ok(&["cat", "latest", "index.php"]).stdout, page);
    repo.ok(&["repair", "index"]);
    let c = Crafter::open(&repo.path, PASSWORD);
    let row = c
        .repo
        .index()
        .get(&snap::id::BlobRef {
            kind: BlobKind::Data,
            id,
        })
        .unwrap()
        .unwrap();
    assert_eq!(
        row.pack.to_hex(),
        genuine[0],
        "a rebuilt index names the copy that verifies"
    );
    drop(c);
    assert_eq!(restored(&repo), page);
    // With the genuine copy gone, the planted one is refused, not restored.
    let p = &genuine[0];
    fs::remove_file(repo.path.join("data").join(&p[..2]).join(p)).unwrap();
    repo.ok(&["repair", "index"]);
    let out = repo.dir("out2");
    let r = repo
        .cmd()
        .args(["restore", "latest", "--target", out.to_str().unwrap()])
        .output()
        .unwrap();
    assert_ne!(r.status.code(), Some(0));
    let text = format!("{}{}", stdout(&r), stderr(&r));
    assert!(text.contains("do not hash to its id"), "{text}");
    assert!(!out.join("index.php").exists() || fs::read(out.join("index.php")).unwrap() != shell);
    let cat = repo
        .cmd()
        .args(["cat", "latest", "index.php"])
        .output()
        .unwrap();
    assert_ne!(cat.status.code(), Some(0));
    assert_ne!(cat.stdout, shell);
    let check = repo.cmd().args(["check", "--read-data"]).output().unwrap();
    assert_ne!(check.status.code(), Some(0), "check sees the planted copy");
}

#[test]
fn a_forged_latest_snapshot_is_not_taken_as_the_parent() {
    // A holder of the password writes a "latest" snapshot of the same paths
    // whose index.php, with the live file's size and times, holds a web
    // shell. A push that took it as parent would carry the shell into
    // every later snapshot while index.php does not change.
    let repo = Repo::new();
    let (src, page, shell) = bakery(&repo);
    let old = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
    fs::File::options()
        .write(true)
        .open(src.join("index.php"))
        .unwrap()
        .set_modified(old)
        .unwrap();
    repo.ok(&["push", "--host", "web1", src.to_str().unwrap()]);
    let first = repo.snapshots(&[]);
    let mut c = Crafter::open(&repo.path, PASSWORD);
    let sets = c.repo.snapshots().unwrap();
    let (_, genuine) = sets.last().unwrap();
    let mut tree = c.repo.load_tree(&genuine.tree).unwrap();
    let chunk = c.chunk(&shell);
    for n in tree.entries.iter_mut().filter(|n| n.name == b"index.php") {
        n.content = Some(snap::format::tree::Content::Inline(
            snap::format::tree::encode_records(&[chunk]),
        ));
    }
    let forged_tree = c.tree(&tree);
    let mut forged = genuine.clone();
    forged.tree = forged_tree;
    forged.time = chrono::Utc::now().to_rfc3339();
    forged.written = None;
    c.save(&forged);
    drop(c);
    // Another machine wrote it: it is not in this machine's journal.
    let journal = repo.index_dir().join("snap-written");
    let kept: String = fs::read_to_string(&journal)
        .unwrap()
        .lines()
        .filter(|l| first.iter().any(|s| s["id"].as_str() == Some(l)))
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(!kept.is_empty(), "the genuine push is in the journal");
    fs::write(&journal, kept).unwrap();
    assert_eq!(
        repo.ok(&["cat", "latest", "index.php"]).stdout,
        shell,
        "the forgery is the latest"
    );
    let out = repo.ok(&["push", "--host", "web1", src.to_str().unwrap()]);
    assert!(
        stderr(&out).contains("was not written on this machine"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        repo.ok(&["cat", "latest", "index.php"]).stdout,
        page,
        "the new snapshot holds the live file, not the forged entry"
    );
}

#[test]
fn a_pack_that_states_gigabytes_after_its_blobs_is_checked_in_bounded_memory() {
    // Anyone who can write the storage can stretch a pack: its blobs, then
    // 3 GiB (a sparse hole), then its real header and trailer. The header
    // still opens, so a rebuilt index takes the pack at its new size;
    // check --read-data must hash the tail in pieces, not allocate it.
    let repo = Repo::new();
    let (src, _, _) = bakery(&repo);
    repo.ok(&["push", src.to_str().unwrap()]);
    let c = Crafter::open(&repo.path, PASSWORD);
    let (pack, info) = c
        .repo
        .index()
        .packs()
        .unwrap()
        .into_iter()
        .find(|(_, i)| !i.metadata)
        .unwrap();
    let entries = c.repo.read_pack_header(&pack, info.size).unwrap();
    drop(c);
    let name = pack.to_hex();
    let path = repo.path.join("data").join(&name[..2]).join(&name);
    let bytes = fs::read(&path).unwrap();
    let blobs_end = entries
        .iter()
        .map(|e| e.offset + e.length as u64)
        .max()
        .unwrap() as usize;
    let trailer = &bytes[bytes.len() - 12..];
    let header_len = u32::from_le_bytes(trailer[..4].try_into().unwrap()) as usize;
    let tail = &bytes[bytes.len() - 12 - header_len..];
    let mut f = fs::File::create(&path).unwrap();
    use std::io::{Seek, SeekFrom, Write};
    f.write_all(&bytes[..blobs_end]).unwrap();
    f.seek(SeekFrom::Start(blobs_end as u64 + (3u64 << 30)))
        .unwrap();
    f.write_all(tail).unwrap();
    drop(f);
    repo.ok(&["repair", "index"]);
    // Under a 1 GiB address-space limit: the pack is reported (damaged, or
    // not mappable here), never read whole into memory, never a crash.
    let out = limited(&repo, &["check", "--read-data"]);
    refused(&out, &name, "check --read-data");
    assert!(stdout(&out).contains("damaged"), "{}", stdout(&out));
}
