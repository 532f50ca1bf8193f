//! Damaged repositories: what `check` and `repair` say about flipped bits,
//! truncated and deleted packs, a lost index, a damaged snapshot, an unknown
//! format version and a wrong password, and that a failed command overwrites
//! nothing.

mod common;

use common::*;
use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

/// A repository with two snapshots of a small site that share `big.bin`
/// (2 MB of noise, so the largest pack holds its chunks).
struct Fixture {
    repo: Repo,
    src: PathBuf,
    /// Short ids of the two snapshots, oldest first.
    shorts: Vec<String>,
    ids: Vec<String>,
}

fn fixture() -> Fixture {
    let repo = Repo::new();
    let src = repo.dir("site");
    fs::create_dir_all(src.join("css")).unwrap();
    fs::write(src.join("big.bin"), noise(42, 2_000_000)).unwrap();
    fs::write(src.join("index.html"), b"<h1>client</h1>\n").unwrap();
    fs::write(src.join("css/style.css"), b"h1 { color: red }\n").unwrap();
    repo.push(&src, &[]);
    fs::write(src.join("news.html"), b"<p>news</p>\n").unwrap();
    repo.push(&src, &[]);
    let snaps = repo.snapshots(&[]);
    let shorts = snaps
        .iter()
        .map(|s| s["short_id"].as_str().unwrap().to_string())
        .collect();
    let ids = snaps
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect();
    Fixture {
        repo,
        src,
        shorts,
        ids,
    }
}

fn name_of(p: &Path) -> String {
    p.file_name().unwrap().to_string_lossy().into_owned()
}

/// (snapshot, path) pairs of a check report's `affected`.
fn affected(report: &serde_json::Value) -> BTreeSet<(String, String)> {
    report["affected"]
        .as_array()
        .expect("affected is an array")
        .iter()
        .map(|a| {
            (
                a["snapshot"].as_str().unwrap().to_string(),
                a["path"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn in_both(f: &Fixture, paths: &[&str]) -> BTreeSet<(String, String)> {
    f.shorts
        .iter()
        .flat_map(|s| paths.iter().map(|p| (s.clone(), p.to_string())))
        .collect()
}

/// What losing the largest pack breaks: the first push wrote all its file
/// data into it, and both snapshots hold those files; news.html, added by
/// the second push, is in another pack.
fn first_push_files(f: &Fixture) -> BTreeSet<(String, String)> {
    in_both(f, &["/big.bin", "/index.html", "/css/style.css"])
}

#[test]
fn a_flipped_bit_in_a_data_pack_is_found_by_read_data() {
    let f = fixture();
    let (pack, size) = f.repo.packs()[0].clone();
    let mut bytes = fs::read(&pack).unwrap();
    bytes[size as usize / 2] ^= 0x04;
    fs::write(&pack, &bytes).unwrap();
    let damaged = f.repo.files();

    // The structure is intact: same packs, same sizes.
    let out = f.repo.run(&["check"]);
    assert_code(&out, 0, "structure check of a bit flip");

    let out = f.repo.run(&["check", "--read-data"]);
    assert_code(&out, 1, "check --read-data of a bit flip");
    let text = stdout(&out);
    let pack_name = name_of(&pack);
    assert!(
        text.lines()
            .any(|l| l.starts_with("error: Data blob") && l.contains(&pack_name)),
        "the damaged blob and its pack should be named:\n{text}"
    );
    for s in &f.shorts {
        assert!(
            text.contains(&format!("damaged: snapshot {s} path /big.bin")),
            "snapshot {s} and the path should be named:\n{text}"
        );
    }
    assert!(!text.contains("index.html") && !text.contains("style.css"));

    let out = f.repo.run(&["--json", "check", "--read-data"]);
    assert_code(&out, 1, "check --read-data --json");
    let r = parse_json(&out);
    assert_eq!(affected(&r), in_both(&f, &["/big.bin"]));
    let errors = r["errors"].as_array().unwrap();
    let blob_errors: Vec<&str> = errors
        .iter()
        .map(|e| e["object"].as_str().unwrap())
        .filter(|o| o.starts_with("Data blob"))
        .collect();
    assert_eq!(blob_errors.len(), 1, "one chunk is damaged: {errors:?}");
    assert!(blob_errors[0].contains(&pack_name));
    let blob_hex = blob_errors[0].split_whitespace().nth(2).unwrap();
    for a in r["affected"].as_array().unwrap() {
        assert!(
            a["reason"].as_str().unwrap().contains(blob_hex),
            "the reason should name blob {blob_hex}: {a}"
        );
    }
    assert!(
        errors
            .iter()
            .any(|e| e["object"] == format!("pack {pack_name}")
                && e["message"].as_str().unwrap().contains("hash")),
        "the pack no longer hashes to its name: {errors:?}"
    );
    assert_eq!(f.repo.files(), damaged, "check changed the repository");

    // Restore saves what it can and fails on the damaged file.
    let target = f.repo.dir("restored");
    let out = f
        .repo
        .run(&["restore", "latest", "--target", target.to_str().unwrap()]);
    assert_code(&out, 1, "restore of a damaged file");
    assert!(stderr(&out).contains("big.bin"), "{}", stderr(&out));
    assert_eq!(
        fs::read(target.join("index.html")).unwrap(),
        fs::read(f.src.join("index.html")).unwrap()
    );
    assert_eq!(
        fs::read(target.join("css/style.css")).unwrap(),
        fs::read(f.src.join("css/style.css")).unwrap()
    );
}

#[test]
fn a_truncated_pack_is_reported_and_skipped_by_repair() {
    let f = fixture();
    let (pack, size) = f.repo.packs()[0].clone();
    let file = fs::OpenOptions::new().write(true).open(&pack).unwrap();
    file.set_len(size / 2).unwrap();
    drop(file);
    let pack_name = name_of(&pack);

    let out = f.repo.run(&["--json", "check"]);
    assert_code(&out, 1, "check of a truncated pack");
    let r = parse_json(&out);
    let errors = r["errors"].as_array().unwrap();
    assert!(
        errors
            .iter()
            .any(|e| e["object"] == format!("pack {pack_name}")
                && e["message"].as_str().unwrap().contains("truncated")),
        "{errors:?}"
    );
    assert_eq!(affected(&r), first_push_files(&f));

    let out = f.repo.run(&["check", "--read-data"]);
    assert_code(&out, 1, "check --read-data of a truncated pack");
    assert!(stdout(&out).contains(&pack_name));

    let damaged = f.repo.files();
    let out = f.repo.run(&["repair", "index"]);
    assert_code(&out, 1, "repair index with a truncated pack");
    assert!(
        stderr(&out).contains(&pack_name),
        "repair should name the pack it skipped: {}",
        stderr(&out)
    );
    assert_eq!(f.repo.files(), damaged, "repair changed the packs");
    let out = f.repo.run(&["--json", "check"]);
    assert_code(&out, 1, "check after repair of a truncated pack");
    assert_eq!(affected(&parse_json(&out)), first_push_files(&f));
}

#[test]
fn a_deleted_pack_names_the_snapshots_and_paths_it_breaks() {
    let f = fixture();
    let (pack, _) = f.repo.packs()[0].clone();
    fs::remove_file(&pack).unwrap();
    let pack_name = name_of(&pack);

    let out = f.repo.run(&["check"]);
    assert_code(&out, 1, "check of a deleted pack");
    let text = stdout(&out);
    assert!(
        text.contains(&pack_name) && text.contains("missing"),
        "{text}"
    );
    for (s, p) in first_push_files(&f) {
        assert!(
            text.contains(&format!("damaged: snapshot {s} path {p}")),
            "{text}"
        );
    }
    assert!(!text.contains("news.html"), "{text}");
    assert!(stderr(&out).contains("damaged"), "{}", stderr(&out));

    let out = f.repo.run(&["--json", "check"]);
    assert_code(&out, 1, "check --json of a deleted pack");
    let r = parse_json(&out);
    assert_eq!(affected(&r), first_push_files(&f));
    assert!(r["errors"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["object"] == format!("pack {pack_name}")));

    let out = f.repo.run(&["cat", "latest", "big.bin"]);
    assert_code(&out, 1, "cat of a file whose pack is gone");
    let e = stderr(&out);
    assert!(
        e.contains(&pack_name),
        "the error should name the pack: {e}"
    );
    assert!(
        e.contains("missing from the repository") && e.contains("snap check"),
        "the error should say the pack is missing and what to do: {e}"
    );
}

#[test]
fn a_lost_index_is_rebuilt_by_the_next_command_and_by_repair() {
    let f = fixture();
    let index = f.repo.index_dir();
    assert!(index.is_dir());
    fs::remove_dir_all(&index).unwrap();

    assert_eq!(f.repo.snapshots(&[]).len(), 2);
    assert!(index.is_dir(), "the index was not rebuilt");
    let r = f.repo.json(&["check", "--read-data"]);
    assert_eq!(r["errors"], serde_json::json!([]));
    assert_eq!(r["affected"], serde_json::json!([]));
    assert_eq!(r["packs"], f.repo.packs().len());
    let target = f.repo.dir("after-loss");
    f.repo
        .ok(&["restore", "latest", "--target", target.to_str().unwrap()]);
    assert_same_tree(&f.src, &target, &[]);

    let before = f.repo.files();
    let out = f.repo.ok(&["repair", "index"]);
    assert!(
        stdout(&out).contains(&format!(
            "index rebuilt from {} packs (0 damaged",
            f.repo.packs().len()
        )),
        "{}",
        stdout(&out)
    );
    assert_eq!(f.repo.files(), before, "repair index touched the packs");
    let target = f.repo.dir("after-repair");
    f.repo.ok(&[
        "restore",
        &f.shorts[0],
        "--target",
        target.to_str().unwrap(),
    ]);
    assert_same_tree(&f.src, &target, &[Path::new("news.html")]);
    f.repo.ok(&["check"]);
}

#[test]
fn a_damaged_snapshot_file_is_named() {
    let f = fixture();
    let file = f.repo.path.join("snapshots").join(&f.ids[0]);
    let mut bytes = fs::read(&file).unwrap();
    let n = bytes.len();
    bytes[n / 2] ^= 0x01;
    fs::write(&file, &bytes).unwrap();
    let damaged = f.repo.files();

    // The listing goes on with the healthy snapshots and names the damaged one.
    let out = f.repo.run(&["snapshots"]);
    assert_code(&out, 0, "snapshots with a damaged snapshot file");
    assert!(
        stderr(&out).contains(&f.shorts[0]) && stderr(&out).contains("damaged"),
        "{}",
        stderr(&out)
    );
    assert!(stdout(&out).contains(&f.shorts[1]) && !stdout(&out).contains(&f.shorts[0]));
    let out = f.repo.run(&["check"]);
    assert_code(&out, 1, "check with a damaged snapshot file");
    assert!(
        stdout(&out).contains(&format!("error: snapshot {}", f.ids[0])),
        "{}",
        stdout(&out)
    );
    let out = f.repo.run(&["ls", &f.shorts[0]]);
    assert_code(&out, 1, "ls of the damaged snapshot");
    assert!(stderr(&out).contains(&f.ids[0]));

    // The healthy snapshot is still reachable by id.
    let target = f.repo.dir("restored");
    f.repo.ok(&[
        "restore",
        &f.shorts[1],
        "--target",
        target.to_str().unwrap(),
    ]);
    assert_same_tree(&f.src, &target, &[]);
    assert_eq!(f.repo.files(), damaged, "a command rewrote the repository");
}

#[test]
fn an_unknown_format_version_is_refused_without_writing() {
    let f = fixture();
    let index = f.repo.index_dir();
    let config = f.repo.path.join("config");
    let mut bytes = fs::read(&config).unwrap();
    bytes[8..12].copy_from_slice(&99u32.to_le_bytes());
    fs::write(&config, &bytes).unwrap();
    let before = f.repo.files();
    let index_before = fs::read_dir(&index).unwrap().count();

    let src = f.src.to_str().unwrap();
    for args in [
        vec!["snapshots"],
        vec!["push", src],
        vec!["check"],
        vec!["repair", "index"],
        vec!["key", "list"],
    ] {
        let out = f.repo.run(&args);
        assert_code(&out, 1, &args.join(" "));
        let e = stderr(&out);
        assert!(
            e.contains("version 99") && e.contains("upgrade snap"),
            "{}: {e}",
            args.join(" ")
        );
    }
    let out = f.repo.run(&["init"]);
    assert_code(&out, 1, "init over a newer repository");
    assert_eq!(f.repo.files(), before, "a refused command wrote");
    assert_eq!(
        fs::read_dir(&index).unwrap().count(),
        index_before,
        "repair index rebuilt a newer repository's index"
    );
}

#[test]
fn a_wrong_password_exits_12_without_writing() {
    let f = fixture();
    let before = f.repo.files();
    let src = f.src.to_str().unwrap();
    for args in [
        vec!["snapshots"],
        vec!["push", src],
        vec!["check"],
        vec!["repair", "index"],
        vec!["key", "add"],
        vec!["restore", "latest", "--target", "/nonexistent/never"],
    ] {
        let out = f
            .repo
            .cmd()
            .env("SNAP_PASSWORD", "wrong")
            .env("SNAP_NEW_PASSWORD", "another")
            .args(&args)
            .output()
            .unwrap();
        assert_code(&out, 12, &args.join(" "));
        assert!(stderr(&out).contains("wrong password"), "{}", stderr(&out));
    }
    assert_eq!(f.repo.files(), before, "a refused command wrote");
    assert!(!Path::new("/nonexistent/never").exists());
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

#[test]
fn another_repositorys_index_is_refused_and_replaced_by_repair() {
    let f = fixture();
    let other = Repo::new();
    other.push(&f.src, &[]);
    let index = f.repo.index_dir();
    fs::remove_dir_all(&index).unwrap();
    copy_dir(&other.index_dir(), &index);

    let out = f.repo.run(&["snapshots"]);
    assert_code(&out, 1, "snapshots with another repository's index");
    assert!(
        stderr(&out).contains("another repository") && stderr(&out).contains("snap repair index"),
        "{}",
        stderr(&out)
    );
    f.repo.ok(&["repair", "index"]);
    let r = f.repo.json(&["check", "--read-data"]);
    assert_eq!(r["errors"], serde_json::json!([]));
    let target = f.repo.dir("after-repair");
    f.repo
        .ok(&["restore", "latest", "--target", target.to_str().unwrap()]);
    assert_same_tree(&f.src, &target, &[]);
}
