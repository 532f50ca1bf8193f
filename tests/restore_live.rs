//! Restoring a hacked site in place: `restore --delete --overwrite
//! if-changed [--verify] [--dry-run]` brings the live tree back to the
//! snapshot exactly, removes only inside its scope, never follows a planted
//! symlink, and resumes after kill -9.

mod common;

use common::*;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

/// A site pushed, and restored as the live tree `live` (what the web
/// server serves); `want` is a second, untouched restore to compare with.
fn site(repo: &Repo) -> (std::path::PathBuf, std::path::PathBuf) {
    let src = repo.dir("src");
    make_tree(&src);
    fs::create_dir_all(src.join("wp-content/plugins/seo")).unwrap();
    fs::write(src.join("wp-content/plugins/seo/seo.php"), "<?php // seo\n").unwrap();
    repo.push(&src, &["--site", "a"]);
    let live = repo.dir("www/a");
    let want = repo.dir("want");
    for d in [&live, &want] {
        repo.ok(&["restore", "latest", "--target", d.to_str().unwrap()]);
    }
    (live, want)
}

/// The break-in: content modified, web shells in uploads (one in a new
/// directory), a file deleted, a permission changed, a symlink planted
/// pointing outside, and a directory replaced by a symlink to outside.
fn hack(live: &Path, outside: &Path) {
    fs::create_dir_all(outside).unwrap();
    fs::write(outside.join("precious"), "not the site's\n").unwrap();
    fs::write(
        live.join("index.php"),
        "<?php eval($_POST['x']); // hacked\n",
    )
    .unwrap();
    fs::write(
        live.join("wp-content/uploads/2026/x.php"),
        "<?php system($_GET['c']);\n",
    )
    .unwrap();
    fs::create_dir_all(live.join("wp-content/uploads/.cache")).unwrap();
    fs::write(live.join("wp-content/uploads/.cache/shell.php"), "<?php\n").unwrap();
    fs::remove_file(live.join("wp-includes/version.php")).unwrap();
    fs::set_permissions(
        live.join("wp-config.php"),
        fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    std::os::unix::fs::symlink(outside, live.join("wp-content/uploads/evil")).unwrap();
    fs::remove_dir_all(live.join("wp-content/plugins/seo")).unwrap();
    std::os::unix::fs::symlink(outside, live.join("wp-content/plugins/seo")).unwrap();
}

fn restore(repo: &Repo, live: &Path, extra: &[&str]) -> serde_json::Value {
    let mut a = vec!["restore", "latest", "--target", live.to_str().unwrap()];
    a.extend_from_slice(extra);
    repo.json(&a)
}

#[test]
fn a_hacked_site_is_brought_back_exactly_and_nothing_outside_is_touched() {
    let repo = Repo::new();
    let (live, want) = site(&repo);
    let outside = repo.dir("outside");
    // A neighbour of the target, next to it.
    let neighbour = repo.dir("www/b");
    fs::create_dir_all(&neighbour).unwrap();
    fs::write(neighbour.join("index.php"), "site b\n").unwrap();
    hack(&live, &outside);

    // The dry run lists exactly the changes, and touches nothing.
    let before = tree_path_set(&live);
    let plan = restore(
        &repo,
        &live,
        &["--delete", "--overwrite", "if-changed", "--dry-run"],
    );
    assert_eq!(tree_path_set(&live), before, "a dry run changed the tree");
    let changes: Vec<(String, String)> = plan["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let p = c["path"].as_str().unwrap();
            let rel = p.strip_prefix(live.to_str().unwrap()).unwrap().to_string();
            (c["action"].as_str().unwrap().to_string(), rel)
        })
        .collect();
    let want_changes: Vec<(String, String)> = [
        ("overwrite", "/index.php"),
        ("metadata", "/wp-config.php"),
        ("create", "/wp-content/plugins/seo"),
        ("create", "/wp-content/plugins/seo/seo.php"),
        ("delete", "/wp-content/uploads/.cache"),
        ("delete", "/wp-content/uploads/2026/x.php"),
        ("delete", "/wp-content/uploads/evil"),
        ("create", "/wp-includes/version.php"),
    ]
    .iter()
    .map(|(a, p)| (a.to_string(), p.to_string()))
    .collect();
    let mut got = changes.clone();
    got.sort_by(|a, b| a.1.cmp(&b.1));
    let mut wanted = want_changes.clone();
    wanted.sort_by(|a, b| a.1.cmp(&b.1));
    assert_eq!(got, wanted);
    assert_eq!(plan["delete"], 3);

    let out = restore(&repo, &live, &["--delete", "--overwrite", "if-changed"]);
    assert_eq!(out["deleted"], 3, "{out}");
    assert_eq!(out["overwritten"], 1, "{out}");
    assert_eq!(out["metadata"], 1, "{out}");
    assert!(out["unchanged"].as_u64().unwrap() > 10, "{out}");
    assert_same_tree(&want, &live, &[]);
    // Outside the scope: the planted links' targets and the neighbour.
    assert_eq!(
        fs::read(outside.join("precious")).unwrap(),
        b"not the site's\n"
    );
    assert_eq!(
        fs::read_dir(&outside).unwrap().count(),
        1,
        "written through a planted link"
    );
    assert_eq!(fs::read(neighbour.join("index.php")).unwrap(), b"site b\n");
    // A second run has nothing to do.
    let again = restore(&repo, &live, &["--delete", "--overwrite", "if-changed"]);
    assert_eq!(
        (
            again["created"].as_u64(),
            again["overwritten"].as_u64(),
            again["deleted"].as_u64()
        ),
        (Some(0), Some(0), Some(0)),
        "{again}"
    );
}

#[test]
fn delete_keeps_to_the_included_paths() {
    let repo = Repo::new();
    let (live, want) = site(&repo);
    let outside = repo.dir("outside");
    hack(&live, &outside);
    restore(
        &repo,
        &live,
        &[
            "--include",
            "wp-content/uploads",
            "--delete",
            "--overwrite",
            "if-changed",
        ],
    );
    // Inside the included path: exactly the snapshot.
    assert_same_tree(
        &want.join("wp-content/uploads"),
        &live.join("wp-content/uploads"),
        &[],
    );
    // Outside it, the hack stays: restore does what it was asked, no more.
    assert!(fs::read(live.join("index.php"))
        .unwrap()
        .ends_with(b"// hacked\n"));
    assert!(!live.join("wp-includes/version.php").exists());
    assert!(fs::symlink_metadata(live.join("wp-content/plugins/seo"))
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(fs::read_dir(&outside).unwrap().count(), 1);
}

#[test]
fn overwrite_modes_and_verify() {
    let repo = Repo::new();
    let (live, want) = site(&repo);
    let index = live.join("index.php");
    let orig = fs::metadata(&index).unwrap();
    // Same size and times as the snapshot's, other bytes: only --verify
    // sees it.
    let mut bytes = fs::read(&index).unwrap();
    bytes[0] = b'#';
    fs::write(&index, &bytes).unwrap();
    let t = filetime(&orig);
    set_mtime(&index, t.0, t.1);
    restore(&repo, &live, &["--overwrite", "if-changed"]);
    assert_eq!(
        fs::read(&index).unwrap()[0],
        b'#',
        "size and mtime match: kept"
    );
    let out = restore(&repo, &live, &["--overwrite", "if-changed", "--verify"]);
    assert_eq!(out["overwritten"], 1, "{out}");
    assert_same_tree(&want, &live, &[]);

    // Only the mtime differs: --verify proves the bytes and sets the time.
    set_mtime(&index, 1_700_000_000, 0);
    let out = restore(&repo, &live, &["--overwrite", "if-changed", "--verify"]);
    assert_eq!(
        (out["overwritten"].as_u64(), out["metadata"].as_u64()),
        (Some(0), Some(1)),
        "{out}"
    );
    assert_same_tree(&want, &live, &[]);

    // never: what is there stays; missing files are still made.
    fs::write(&index, "mine\n").unwrap();
    fs::remove_file(live.join("empty")).unwrap();
    restore(&repo, &live, &["--overwrite", "never"]);
    assert_eq!(fs::read(&index).unwrap(), b"mine\n");
    assert!(live.join("empty").exists());
    // if-newer: a live file newer than the snapshot's stays, an older one goes.
    set_mtime(&index, 2_000_000_000, 0);
    restore(&repo, &live, &["--overwrite", "if-newer"]);
    assert_eq!(fs::read(&index).unwrap(), b"mine\n");
    set_mtime(&index, 1_000_000, 0);
    restore(&repo, &live, &["--overwrite", "if-newer"]);
    assert_same_tree(&want, &live, &[]);

    // A directory where the snapshot has a file: refused without --delete.
    fs::remove_file(&index).unwrap();
    fs::create_dir(&index).unwrap();
    fs::write(index.join("inside"), "x").unwrap();
    let out = repo.run(&["restore", "latest", "--target", live.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("--delete"), "{}", stderr(&out));
    restore(&repo, &live, &["--delete"]);
    assert_same_tree(&want, &live, &[]);
}

fn filetime(md: &fs::Metadata) -> (i64, i64) {
    use std::os::unix::fs::MetadataExt;
    (md.mtime(), md.mtime_nsec())
}

#[test]
fn a_restore_killed_half_way_is_finished_by_the_next() {
    let repo = Repo::new();
    let src = repo.dir("src");
    for i in 0..3000u64 {
        let d = src.join(format!("d{}", i % 30));
        fs::create_dir_all(&d).unwrap();
        fs::write(
            d.join(format!("f{i}.php")),
            noise(i, 2000 + (i as usize * 13) % 20_000),
        )
        .unwrap();
    }
    repo.push(&src, &["--site", "a"]);
    let want = repo.dir("want");
    repo.ok(&["restore", "latest", "--target", want.to_str().unwrap()]);
    let live = repo.dir("live");
    // The live tree: the snapshot, then 1% of the files damaged and extras
    // planted; a restore over it is killed once it has started writing.
    repo.ok(&["restore", "latest", "--target", live.to_str().unwrap()]);
    for i in (0..3000u64).step_by(100) {
        fs::write(
            live.join(format!("d{}/f{i}.php", i % 30)),
            "<?php // planted\n",
        )
        .unwrap();
        fs::write(live.join(format!("d{}/shell{i}.php", i % 30)), "<?php\n").unwrap();
    }
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("snap"))
        .env("SNAP_REPO", &repo.path)
        .env("SNAP_CACHE_DIR", repo.cache())
        .env("SNAP_REMOTES_FILE", "/dev/null")
        .env("SNAP_PASSWORD", PASSWORD)
        .args([
            "restore",
            "latest",
            "--target",
            live.to_str().unwrap(),
            "--overwrite",
            "always",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Killed as soon as it writes: a temporary name appears in the tree.
    let deadline = Instant::now() + Duration::from_secs(120);
    let caught = loop {
        let writing = (0..30).any(|d| {
            fs::read_dir(live.join(format!("d{d}")))
                .map(|rd| {
                    rd.flatten().any(|e| {
                        e.file_name()
                            .to_string_lossy()
                            .starts_with(".snap-restore-")
                    })
                })
                .unwrap_or(false)
        });
        if writing {
            break true;
        }
        if child.try_wait().unwrap().is_some() {
            break false;
        }
        assert!(
            Instant::now() < deadline,
            "the restore never started writing"
        );
        std::thread::sleep(Duration::from_millis(1));
    };
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        caught,
        "the restore ended before it could be killed half-way"
    );
    let out = restore(&repo, &live, &["--delete", "--overwrite", "if-changed"]);
    assert_same_tree(&want, &live, &[]);
    assert!(out["deleted"].as_u64().unwrap() >= 30, "{out}");
    // Most files were found in place: the rerun rewrote few.
    assert!(out["overwritten"].as_u64().unwrap() <= 30, "{out}");
}

#[test]
fn diff_live_lists_exactly_the_break_in_and_flags_the_planted_scripts() {
    let repo = Repo::new();
    let (live, _) = site(&repo);
    // Nothing changed yet: nothing listed (directories' own times included).
    let clean = repo.json(&["diff", "latest", "--live", live.to_str().unwrap()]);
    assert_eq!(clean["entries"].as_array().unwrap().len(), 0, "{clean}");
    hack(&live, &repo.dir("outside"));
    let v = repo.json(&["diff", "latest", "--live", live.to_str().unwrap()]);
    let got: Vec<(String, String, Option<String>)> = v["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| {
            !(e["change"] == "metadata"
                && e["what"] == serde_json::json!(["mtime"])
                && e["old"]["kind"] == "dir")
        })
        .map(|e| {
            (
                e["change"].as_str().unwrap().to_string(),
                e["path"].as_str().unwrap().to_string(),
                e["flag"].as_str().map(String::from),
            )
        })
        .collect();
    let want: Vec<(String, String, Option<String>)> = [
        ("modified", "/index.php", None),
        ("metadata", "/wp-config.php", None),
        ("modified", "/wp-content/plugins/seo", None),
        ("added", "/wp-content/uploads/.cache", None),
        (
            "added",
            "/wp-content/uploads/.cache/shell.php",
            Some("script in uploads"),
        ),
        (
            "added",
            "/wp-content/uploads/2026/x.php",
            Some("script in uploads"),
        ),
        ("added", "/wp-content/uploads/evil", None),
        ("removed", "/wp-includes/version.php", None),
    ]
    .iter()
    .map(|(c, p, f)| (c.to_string(), p.to_string(), f.map(String::from)))
    .collect();
    assert_eq!(got, want);
    // The mode change is named.
    let config = v["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["path"] == "/wp-config.php")
        .unwrap();
    assert_eq!(config["what"], serde_json::json!(["mode"]));
    // Through the planted link nothing of the outside is listed.
    assert!(!v.to_string().contains("precious"));

    // A sub-path, and the text output with its flags.
    let out = repo.ok(&[
        "diff",
        "latest",
        "wp-content/uploads",
        "--live",
        live.join("wp-content/uploads").to_str().unwrap(),
    ]);
    let text = stdout(&out);
    assert!(
        text.contains("+ /wp-content/uploads/2026/x.php  (file 26 B)  !! script in uploads"),
        "{text}"
    );
    assert!(!text.contains("/index.php"), "{text}");

    // Same size, same mtime, other bytes: only --verify sees it.
    let idx = live.join("wp-includes/run.sh");
    let md = fs::metadata(&idx).unwrap();
    let mut b = fs::read(&idx).unwrap();
    b[0] = b'X';
    fs::write(&idx, &b).unwrap();
    let t = filetime(&md);
    set_mtime(&idx, t.0, t.1);
    let plain = repo.json(&["diff", "latest", "--live", live.to_str().unwrap()]);
    assert!(!plain.to_string().contains("run.sh"));
    let verified = repo.json(&[
        "diff",
        "latest",
        "--live",
        live.to_str().unwrap(),
        "--verify",
    ]);
    let e = verified["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["path"] == "/wp-includes/run.sh")
        .expect("--verify finds the changed bytes");
    assert_eq!(e["change"], "modified");
}
