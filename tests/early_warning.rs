//! The early warning: every push with a parent counts what changed, names
//! new scripts under upload directories, and with an alert ratio (flag or
//! the policy file's `[alerts]`) exits 6 after saving when too much changed;
//! `report` shows the last alert of each group.

mod common;

use common::*;
use serde_json::Value;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// A small WordPress-like site: 20 core files, 2 uploads, 2 plugin files.
fn site(root: &Path) {
    let inc = root.join("wp-includes");
    let up = root.join("wp-content/uploads/2026/11");
    let plug = root.join("wp-content/plugins/seo");
    for d in [&inc, &up, &plug] {
        fs::create_dir_all(d).unwrap();
    }
    for i in 0..20 {
        fs::write(
            inc.join(format!("f{i}.php")),
            format!("<?php // core {i}\n"),
        )
        .unwrap();
    }
    fs::write(up.join("photo.jpg"), noise(1, 5000)).unwrap();
    fs::write(up.join("logo.png"), noise(2, 3000)).unwrap();
    fs::write(plug.join("seo.php"), "<?php // seo\n").unwrap();
    fs::write(plug.join("readme.txt"), "seo\n").unwrap();
}

fn push(repo: &Repo, src: &Path, extra: &[&str]) -> (i32, Value, String) {
    let mut a = vec!["--json", "push", "--site", "a"];
    a.extend_from_slice(extra);
    a.push(src.to_str().unwrap());
    let out = repo.run(&a);
    let code = out.status.code().unwrap_or(-1);
    assert!(
        code == 0 || code == 6,
        "push exited {code}: {}",
        stderr(&out)
    );
    (code, parse_json(&out), stderr(&out))
}

fn changes(v: &Value) -> &Value {
    &v["changes"]
}

/// The break-in of these tests: 6 core files rewritten, one chmod'ed, a
/// shell and an .htaccess planted in uploads, a plugin removed.
fn hack(src: &Path) {
    for i in 0..6 {
        fs::write(
            src.join(format!("wp-includes/f{i}.php")),
            "<?php eval(base64_decode($_POST['x']));\n",
        )
        .unwrap();
    }
    fs::set_permissions(
        src.join("wp-includes/f10.php"),
        fs::Permissions::from_mode(0o777),
    )
    .unwrap();
    let up = src.join("wp-content/uploads/2026/11");
    fs::write(up.join("cache.php"), "<?php system($_GET['c']);\n").unwrap();
    fs::write(up.join(".htaccess"), "AddHandler php .jpg\n").unwrap();
    fs::remove_dir_all(src.join("wp-content/plugins/seo")).unwrap();
}

#[test]
fn a_push_counts_its_changes_and_names_planted_scripts() {
    let repo = Repo::new();
    let src = repo.dir("site");
    site(&src);
    let (code, first, _) = push(&repo, &src, &[]);
    assert_eq!(code, 0);
    assert!(
        first.get("changes").is_none(),
        "a first push has nothing to compare with"
    );

    hack(&src);
    let (code, v, err) = push(&repo, &src, &[]);
    assert_eq!(code, 0, "no alert ratio, no alert: {err}");
    let c = changes(&v);
    assert_eq!(c["parent_entries"], 24, "{c}");
    assert_eq!(c["added"], 2, "{c}");
    assert_eq!(c["modified"], 7, "6 rewritten, 1 chmod'ed: {c}");
    assert_eq!(c["deleted"], 2, "the plugin's two files: {c}");
    assert_eq!(c["alert"], false);
    let planted: Vec<String> = c["suspicious"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap().to_string())
        .collect();
    let up = src.join("wp-content/uploads/2026/11");
    assert_eq!(
        planted,
        vec![
            up.join(".htaccess").display().to_string(),
            up.join("cache.php").display().to_string()
        ]
    );
    assert_eq!(
        c["top_dirs"][0]["path"],
        src.join("wp-includes").display().to_string()
    );
    assert_eq!(c["top_dirs"][0]["changes"], 7);
    // The warning reaches stderr even in --json and --quiet runs (cron).
    assert!(err.contains("2 new script or executable file(s)"), "{err}");
    assert!(err.contains("cache.php"), "{err}");

    // Text output: the shares.
    fs::write(src.join("wp-includes/new.txt"), "x").unwrap();
    let out = repo.ok(&["push", "--site", "a", src.to_str().unwrap()]);
    let text = stdout(&out);
    assert!(
        text.contains("changes since the parent: 1 added (4.2%), 0 modified (0.0%), 0 deleted (0.0%) of 24 files"),
        "{text}"
    );

    // A dump has no file-by-file changes.
    let out = repo
        .cmd()
        .args([
            "--json", "push", "--site", "a", "--stdin", "--name", "a.sql",
        ])
        .write_stdin("dump")
        .output()
        .unwrap();
    assert_success(&out, "dump push");
    assert!(parse_json(&out).get("changes").is_none());
}

#[test]
fn over_the_alert_ratio_the_push_is_saved_then_exits_6() {
    let repo = Repo::new();
    let src = repo.dir("site");
    site(&src);
    push(&repo, &src, &[]);
    hack(&src);
    let (code, v, err) = push(&repo, &src, &["--alert-changed-ratio", "0.3"]);
    assert_eq!(code, 6, "11 of 24 changed is over 30%: {err}");
    assert_eq!(changes(&v)["alert"], true);
    assert!(err.contains("ALERT"), "{err}");
    assert!(
        err.contains(&format!("{} (7)", src.join("wp-includes").display())),
        "the most-changed directory is named: {err}"
    );
    // Saved, and restorable, before the alert.
    let id = v["id"].as_str().unwrap();
    let out = repo.dir("out");
    repo.ok(&["restore", id, "--target", out.to_str().unwrap()]);
    assert_same_tree(&src, &out, &[]);

    // Under the ratio: no alert.
    fs::write(src.join("wp-includes/f19.php"), "<?php // updated\n").unwrap();
    let (code, v, _) = push(&repo, &src, &["--alert-changed-ratio", "0.3"]);
    assert_eq!(code, 0);
    assert_eq!(changes(&v)["alert"], false);

    // The report shows the last alert of the group, and its exit code is
    // still the promises' (an alert breaks none).
    let report = repo.run(&["report"]);
    let text = stdout(&report);
    assert!(text.contains("last alert"), "{text}");
    assert!(
        text.contains(&v["parent"].as_str().unwrap()[..8]) || text.contains(&id[..8]),
        "{text}"
    );
    assert!(text.contains("over the alert ratio"), "{text}");
    assert!(
        text.contains("2 new script(s) under upload directories"),
        "{text}"
    );
    let j = repo.json(&["report"]);
    let g = &j.as_array().unwrap()[0];
    assert_eq!(g["last_alert"]["snapshot"], id[..8].to_string(), "{g}");
    assert_eq!(g["last_alert"]["suspicious"], 2);
}

#[test]
fn the_policy_file_sets_the_ratio_per_site_and_a_bad_one_costs_only_the_alert() {
    let repo = Repo::new();
    let a = repo.dir("a");
    let b = repo.dir("b");
    site(&a);
    site(&b);
    let policies = repo.dir("policies.toml");
    fs::write(
        &policies,
        "[alerts]\nchanged_ratio = 0.2\n[alerts.sites]\nb = 0.9\n",
    )
    .unwrap();
    let p = policies.to_str().unwrap();
    for (site, src) in [("a", &a), ("b", &b)] {
        repo.ok(&[
            "push",
            "--site",
            site,
            "--policy-file",
            p,
            src.to_str().unwrap(),
        ]);
        hack(src);
    }
    let out = repo.run(&[
        "push",
        "--site",
        "a",
        "--policy-file",
        p,
        a.to_str().unwrap(),
    ]);
    assert_code(&out, 6, "site a's ratio is the default 0.2");
    let out = repo.run(&[
        "push",
        "--site",
        "b",
        "--policy-file",
        p,
        b.to_str().unwrap(),
    ]);
    assert_code(&out, 0, "site b has 0.9 of its own");
    // SNAP_POLICY_FILE works as for prune and report.
    fs::write(a.join("wp-includes/f1.php"), "x").unwrap();
    for i in 7..20 {
        fs::write(a.join(format!("wp-includes/f{i}.php")), "y").unwrap();
    }
    let out = repo
        .cmd()
        .env("SNAP_POLICY_FILE", &policies)
        .args(["push", "--site", "a", a.to_str().unwrap()])
        .output()
        .unwrap();
    assert_code(&out, 6, "13 of 24 changed, over 0.2");
    // A policy file that cannot be parsed: the backup is saved, the alert
    // is lost, and the warning says why.
    fs::write(&policies, "[alerts]\nchanged_ratio = \"lots\"\n").unwrap();
    fs::write(a.join("wp-includes/f2.php"), "z").unwrap();
    let out = repo.run(&[
        "push",
        "--site",
        "a",
        "--policy-file",
        p,
        a.to_str().unwrap(),
    ]);
    assert_code(&out, 0, "a bad policy file never costs the backup");
    let err = stderr(&out);
    assert!(
        err.contains("no change alert") && err.contains("line 2"),
        "{err}"
    );
    // A bad flag is refused before anything is read.
    let out = repo.run(&["push", "--alert-changed-ratio=-1", a.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("share above 0"), "{}", stderr(&out));
}
