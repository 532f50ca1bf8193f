//! Key files from the command line: labels, version-2 binding of what a key
//! file states in clear, key files of another repository, the floor on new
//! Argon2id costs, calibration and the unlock budget (format-spec.md §6, §20).

mod common;

use common::*;
use std::fs;
use std::path::{Path, PathBuf};

fn key_files(repo: &Repo) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(repo.path.join("keys"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v
}

fn only_key_file(repo: &Repo) -> PathBuf {
    let keys = key_files(repo);
    assert_eq!(keys.len(), 1, "{keys:?}");
    keys[0].clone()
}

fn read_json(p: &Path) -> serde_json::Value {
    serde_json::from_slice(&fs::read(p).unwrap()).unwrap()
}

fn write_json(p: &Path, v: &serde_json::Value) {
    fs::write(p, serde_json::to_vec_pretty(v).unwrap()).unwrap();
}

fn add_key(repo: &Repo, password: &str, label: Option<&str>) -> String {
    let mut c = repo.cmd();
    c.env("SNAP_NEW_PASSWORD", password)
        .args(["--json", "key", "add"]);
    if let Some(l) = label {
        c.args(["--label", l]);
    }
    let out = c.output().unwrap();
    assert_success(&out, "key add");
    str_of(&parse_json(&out), "added")
}

#[test]
fn key_files_carry_labels_and_key_remove_takes_one() {
    let repo = Repo::uninit();
    let out = repo
        .cmd()
        .args(["--json", "init", "--label", "admin laptop"])
        .output()
        .unwrap();
    assert_success(&out, "init --label");
    let repo_id = str_of(&parse_json(&out), "id");
    let kf = read_json(&only_key_file(&repo));
    assert_eq!(kf["version"], 2);
    assert_eq!(kf["label"], "admin laptop");
    assert_eq!(kf["repository"], repo_id.as_str());

    let web = add_key(&repo, "web password", Some("web1"));
    let default = add_key(&repo, "third password", None);
    let listed = repo.json(&["key", "list"]);
    let label_of = |id: &str| {
        listed
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["id"] == id)
            .map(|k| k["label"].clone())
            .unwrap()
    };
    assert_eq!(label_of(&web), "web1");
    let default_label = label_of(&default);
    let default_label = default_label.as_str().unwrap();
    assert!(
        default_label.ends_with(&format!("@{}", hostname())),
        "{default_label}"
    );
    let text = stdout(&repo.ok(&["key", "list"]));
    assert!(
        text.contains("admin laptop") && text.contains("web1"),
        "{text}"
    );

    // Two keys with one label: the label alone is ambiguous.
    let other = add_key(&repo, "fourth password", Some("web1"));
    let out = repo.run(&["key", "remove", "web1"]);
    assert_code(&out, 1, "remove an ambiguous label");
    let e = stderr(&out);
    assert!(
        e.contains(&web) && e.contains(&other) && e.contains("matches 2"),
        "{e}"
    );
    assert_eq!(key_files(&repo).len(), 4);

    let out = repo.run(&["key", "remove", &other]);
    assert_success(&out, "remove by id");
    let out = repo.run(&["key", "remove", "web1"]);
    assert_success(&out, "remove by label");
    assert!(stdout(&out).contains(&web), "{}", stdout(&out));
    assert_eq!(key_files(&repo).len(), 2);
    let out = repo.run(&["key", "remove", "nobody"]);
    assert_code(&out, 1, "remove an unknown label");
    assert!(stderr(&out).contains("snap key list"), "{}", stderr(&out));
    // The key in use is not removed by its label either.
    let out = repo.run(&["key", "remove", "admin laptop"]);
    assert_code(&out, 1, "remove the current key by label");
    assert_eq!(key_files(&repo).len(), 2);

    for bad in ["", "a\u{1b}[2Jb"] {
        let out = repo
            .cmd()
            .env("SNAP_NEW_PASSWORD", "x")
            .args(["key", "add", "--label", bad])
            .output()
            .unwrap();
        assert_code(&out, 1, "a bad label");
        assert!(stderr(&out).contains("key label"), "{}", stderr(&out));
    }
}

#[test]
fn an_altered_key_file_is_not_a_wrong_password() {
    let repo = Repo::new();
    let path = only_key_file(&repo);
    let original = fs::read(&path).unwrap();
    type Edit = fn(&mut serde_json::Value);
    let edits: [(&str, Edit); 4] = [
        ("label", |k| k["label"] = "web1".into()),
        ("host", |k| k["host"] = "elsewhere".into()),
        ("repository", |k| k["repository"] = "ab".repeat(32).into()),
        ("iterations", |k| {
            k["params"]["iterations"] = (k["params"]["iterations"].as_u64().unwrap() + 1).into()
        }),
    ];
    for (what, edit) in edits {
        let mut kf = read_json(&path);
        edit(&mut kf);
        write_json(&path, &kf);
        let out = repo.run(&["snapshots"]);
        let e = stderr(&out);
        assert_code(&out, 1, what);
        assert!(e.contains("altered"), "{what}: {e}");
        assert!(!e.contains("wrong password"), "{what}: {e}");
        assert!(
            e.contains(&*path.file_name().unwrap().to_string_lossy()),
            "{e}"
        );
        fs::write(&path, &original).unwrap();
    }

    // A machine that never opened the repository (no index) still tells a
    // changed label from a wrong password: the password check matches.
    fs::remove_dir_all(repo.index_dir()).unwrap();
    let mut kf = read_json(&path);
    kf["label"] = "web1".into();
    write_json(&path, &kf);
    let out = repo.run(&["snapshots"]);
    assert_code(&out, 1, "label changed, fresh machine");
    assert!(
        stderr(&out).contains("matches the password"),
        "{}",
        stderr(&out)
    );
    let out = repo
        .cmd()
        .env("SNAP_PASSWORD", "not it")
        .arg("snapshots")
        .output()
        .unwrap();
    assert_code(&out, 12, "label changed, wrong password");

    // Changed costs feed Argon2id itself: without a record of the file on
    // this machine they look like a wrong password (format-spec.md §6).
    fs::write(&path, &original).unwrap();
    let mut kf = read_json(&path);
    kf["params"]["iterations"] = 4.into();
    write_json(&path, &kf);
    assert_code(
        &repo.run(&["snapshots"]),
        12,
        "costs changed, fresh machine",
    );

    fs::write(&path, &original).unwrap();
    assert_success(&repo.run(&["snapshots"]), "the original key file");
}

#[test]
fn a_key_file_of_another_repository_is_refused() {
    let a = Repo::new();
    let b = Repo::new();
    let b_id = read_json(&only_key_file(&b))["repository"]
        .as_str()
        .unwrap()
        .to_string();
    let a_own = only_key_file(&a);
    let b_key = only_key_file(&b);
    let planted = a.path.join("keys").join(b_key.file_name().unwrap());
    fs::copy(&b_key, &planted).unwrap();
    fs::rename(&a_own, a.dir("a-key-aside")).unwrap();
    let out = a.run(&["snapshots"]);
    assert_code(&out, 1, "only another repository's key file");
    let e = stderr(&out);
    assert!(e.contains("another repository") && e.contains(&b_id), "{e}");
    assert!(!e.contains("wrong password"), "{e}");

    // With its own key file back, the repository opens.
    fs::rename(a.dir("a-key-aside"), &a_own).unwrap();
    assert_success(&a.run(&["snapshots"]), "own key file back");
}

#[test]
fn weak_or_oversized_costs_are_refused() {
    let repo = Repo::uninit();
    for (memory, passes) in [("1024", None), ("65536", Some("2")), ("32768", Some("8"))] {
        let mut c = repo.cmd();
        c.env_remove("SNAP_INSECURE_KDF")
            .env("SNAP_KDF_MEMORY_KIB", memory)
            .arg("init");
        if let Some(p) = passes {
            c.env("SNAP_KDF_ITERATIONS", p);
        }
        let out = c.output().unwrap();
        assert_code(&out, 1, &format!("init with {memory} KiB, {passes:?}"));
        let e = stderr(&out);
        assert!(
            e.contains("SNAP_INSECURE_KDF=1") && e.contains("for tests only"),
            "{e}"
        );
        assert!(
            !repo.path.join("config").exists(),
            "a weak key file was made"
        );
    }
    let out = repo
        .cmd()
        .env("SNAP_KDF_MEMORY_KIB", "524288")
        .arg("init")
        .output()
        .unwrap();
    assert_code(&out, 1, "init beyond the read caps");
    assert!(
        stderr(&out).contains("beyond what readers accept"),
        "{}",
        stderr(&out)
    );
    assert!(!repo.path.join("config").exists());

    // key add is held to the same floor.
    let repo = Repo::new();
    let out = repo
        .cmd()
        .env_remove("SNAP_INSECURE_KDF")
        .env("SNAP_NEW_PASSWORD", "second")
        .args(["key", "add"])
        .output()
        .unwrap();
    assert_code(&out, 1, "key add with weak costs");
    assert!(stderr(&out).contains("for tests only"), "{}", stderr(&out));
    assert_eq!(key_files(&repo).len(), 1);

    // At the floor, no test variable is needed.
    let out = repo
        .cmd()
        .env_remove("SNAP_INSECURE_KDF")
        .env("SNAP_KDF_MEMORY_KIB", "65536")
        .env("SNAP_KDF_ITERATIONS", "3")
        .env("SNAP_NEW_PASSWORD", "second")
        .args(["key", "add"])
        .output()
        .unwrap();
    assert_success(&out, "key add at the floor");
    assert_eq!(key_files(&repo).len(), 2);
}

#[test]
fn init_calibrates_without_cost_variables() {
    let repo = Repo::uninit();
    let out = repo
        .cmd()
        .env_remove("SNAP_KDF_MEMORY_KIB")
        .env_remove("SNAP_INSECURE_KDF")
        .args(["--json", "init"])
        .output()
        .unwrap();
    assert_success(&out, "init, calibrated");
    let kdf = parse_json(&out)["kdf"].clone();
    let p = read_json(&only_key_file(&repo))["params"].clone();
    assert_eq!(p, kdf);
    assert_eq!(p["memory_kib"], 65536);
    assert_eq!(p["parallelism"], 1);
    let passes = p["iterations"].as_u64().unwrap();
    assert!((3..=64).contains(&passes), "{passes} passes");
}

#[test]
fn the_unlock_budget_stops_trying_key_files() {
    let repo = Repo::new();
    for i in 0..3 {
        add_key(
            &repo,
            &format!("planted {i}"),
            Some(&format!("planted {i}")),
        );
    }
    // A budget of zero lets exactly one key file be tried.
    let with_budget = |password: &str, ms: &str| {
        repo.cmd()
            .env("SNAP_PASSWORD", password)
            .env("SNAP_UNLOCK_BUDGET_MS", ms)
            .arg("snapshots")
            .output()
            .unwrap()
    };
    let out = with_budget("not any of them", "0");
    assert_code(&out, 1, "budget spent");
    let e = stderr(&out);
    assert!(e.contains("3 key file(s) were not tried"), "{e}");
    assert!(e.contains("SNAP_UNLOCK_BUDGET_MS"), "{e}");
    assert!(!e.contains("wrong password"), "{e}");

    // The key file that opened last here goes first, so the usual password
    // opens within any budget.
    assert_success(&with_budget(PASSWORD, "0"), "the usual password");
    // With a generous budget every key file is tried.
    assert_code(&with_budget("not any of them", "60000"), 12, "all tried");
    assert_success(&with_budget("planted 2", "60000"), "another password");
}

#[test]
fn after_key_rotate_an_old_password_cannot_open_what_is_written_next() {
    // The web server's password leaked: the operator rotates with theirs.
    let repo = Repo::new();
    add_key(&repo, "web server password", Some("web1"));
    let src = repo.dir("site");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("before.txt"), "written before the leak").unwrap();
    repo.ok(&["push", src.to_str().unwrap()]);
    let out = repo.json(&["key", "rotate", "--label", "admin"]);
    assert_eq!(out["epoch"], 1);
    assert_eq!(out["older_keys"].as_array().unwrap().len(), 1, "{out}");
    fs::write(src.join("after.txt"), "written after the rotation").unwrap();
    repo.ok(&["push", src.to_str().unwrap()]);
    assert_eq!(
        repo.ok(&["cat", "latest", "after.txt"]).stdout,
        b"written after the rotation"
    );
    repo.ok(&["check", "--read-data"]);

    let leaked = |args: &[&str]| {
        repo.cmd()
            .env("SNAP_PASSWORD", "web server password")
            .args(args)
            .output()
            .unwrap()
    };
    // What was written before is still readable with it: the leak had it.
    let ids: Vec<String> = repo
        .snapshots(&[])
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect();
    let old = leaked(&["cat", &ids[0], "before.txt"]);
    assert_eq!(old.stdout, b"written before the leak", "{}", stderr(&old));
    // What was written after is not, however it is asked for.
    for args in [
        vec!["cat", ids[1].as_str(), "after.txt"],
        vec!["cat", "latest", "after.txt"],
    ] {
        let out = leaked(&args);
        assert_ne!(out.status.code(), Some(0), "{args:?}: {}", stderr(&out));
        assert!(!stdout(&out).contains("after the rotation"));
    }
    // Nor can it push: the newest state record is sealed in the new epoch.
    let out = leaked(&["push", src.to_str().unwrap()]);
    assert_ne!(out.status.code(), Some(0), "the old password pushed");
    // The password in use keeps everything.
    assert_eq!(
        repo.ok(&["cat", &ids[0], "before.txt"]).stdout,
        b"written before the leak"
    );
}
