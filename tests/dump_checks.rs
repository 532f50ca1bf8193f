//! Suspect dumps and pipelines: an empty dump, or one much smaller than the
//! previous dump of its group, is saved but flagged (exit 7, a line in the
//! report, exit 4 there until a healthy dump follows); `--from-shell` runs a
//! pipeline with pipefail, so a failing stage records no snapshot.

mod common;

use common::*;
use std::path::Path;

/// `snap push --site SITE --name NAME --from-command -- ARGS...` plus `extra`.
fn dump(
    repo: &Repo,
    site: &str,
    name: &str,
    extra: &[&str],
    command: &[&str],
) -> std::process::Output {
    let mut a = vec!["push", "--site", site, "--name", name];
    a.extend_from_slice(extra);
    a.push("--from-command");
    a.push("--");
    a.extend_from_slice(command);
    repo.run(&a)
}

/// A file of `len` noise bytes beside the repository.
fn dump_file(repo: &Repo, name: &str, len: usize) -> String {
    let p = repo.dir(name);
    std::fs::write(&p, noise(len as u64, len)).unwrap();
    p.to_str().unwrap().to_string()
}

/// The newest snapshot of `site`.
fn newest(repo: &Repo, site: &str) -> serde_json::Value {
    repo.snapshots(&["--site", site])
        .last()
        .cloned()
        .unwrap_or_else(|| panic!("no snapshot of {site}"))
}

#[test]
fn empty_dump_is_saved_flagged_reported_until_a_healthy_one() {
    let repo = Repo::new();
    let out = dump(&repo, "client-a", "client_a.sql", &["--quiet"], &["true"]);
    assert_code(&out, 7, "an empty dump");
    let err = stderr(&out);
    assert!(
        err.contains("client-a")
            && err.contains("client_a.sql")
            && err.contains("EMPTY")
            && err.contains("0 B"),
        "the warning names the site, the file and the size even with --quiet: {err}"
    );
    let s = newest(&repo, "client-a");
    assert_eq!(s["dump_check"]["reason"], "empty", "{s}");
    assert_eq!(s["dump_check"]["bytes"], 0);
    assert!(s["dump_check"]["previous"].is_null());

    let out = repo.run(&["report"]);
    assert_code(&out, 4, "report with a suspect newest dump");
    let text = stdout(&out);
    let line = text
        .lines()
        .find(|l| l.contains("last dump"))
        .unwrap_or_else(|| panic!("no 'last dump' line: {text}"));
    let short = str_of(&s, "short_id");
    assert!(
        line.contains("SUSPECT") && line.contains(&short) && line.contains("0 B"),
        "{line}"
    );
    let out = repo.run(&["--json", "report"]);
    assert_code(&out, 4, "report --json with a suspect newest dump");
    let groups = parse_json(&out);
    assert_eq!(groups[0]["dump_alert"]["reason"], "empty", "{groups}");
    assert_eq!(groups[0]["dump_alert"]["snapshot"], short.as_str());

    let out = dump(
        &repo,
        "client-a",
        "client_a.sql",
        &[],
        &["printf", "CREATE TABLE t;"],
    );
    assert_code(&out, 0, "a healthy dump after an empty one");
    assert!(newest(&repo, "client-a").get("dump_check").is_none());
    let out = repo.ok(&["report"]);
    assert!(!stdout(&out).contains("SUSPECT"), "{}", stdout(&out));
    assert!(repo.json(&["report"])[0].get("dump_alert").is_none());
}

#[test]
fn shrunk_dump_against_the_previous_one_of_its_group() {
    let repo = Repo::new();
    let big = dump_file(&repo, "big.sql", 100 * 1024);
    let small = dump_file(&repo, "small.sql", 20 * 1024);
    let most = dump_file(&repo, "most.sql", 80 * 1024);

    assert_code(
        &dump(&repo, "a", "a.sql", &[], &["cat", &big]),
        0,
        "first dump",
    );
    let first = str_of(&newest(&repo, "a"), "id");
    // Another group (other site) in between is not "the previous one".
    assert_code(
        &dump(&repo, "b", "a.sql", &[], &["cat", &small]),
        0,
        "other site",
    );
    let out = dump(&repo, "a", "a.sql", &[], &["cat", &small]);
    assert_code(&out, 7, "20 KiB after 100 KiB");
    let err = stderr(&out);
    assert!(
        err.contains("SMALLER") && err.contains("20480") && err.contains("102400"),
        "{err}"
    );
    let d = &newest(&repo, "a")["dump_check"];
    assert_eq!(d["reason"], "shrunk", "{d}");
    assert_eq!(
        (d["bytes"].as_u64(), d["previous_bytes"].as_u64()),
        (Some(20480), Some(102400))
    );
    assert_eq!(d["previous"], first.as_str());

    assert_code(
        &dump(&repo, "c", "c.sql", &[], &["cat", &big]),
        0,
        "first dump",
    );
    let out = dump(
        &repo,
        "c",
        "c.sql",
        &["--min-dump-ratio", "0.1"],
        &["cat", &small],
    );
    assert_code(&out, 0, "20 KiB after 100 KiB with --min-dump-ratio 0.1");
    assert!(newest(&repo, "c").get("dump_check").is_none());

    assert_code(
        &dump(&repo, "d", "d.sql", &[], &["cat", &big]),
        0,
        "first dump",
    );
    assert_code(
        &dump(&repo, "d", "d.sql", &[], &["cat", &most]),
        0,
        "80 KiB after 100 KiB",
    );

    // The policy file's [alerts] min_dump_ratio, and 0 disabling the
    // shrink check but never the empty one.
    let policy = repo.dir("policies.toml");
    std::fs::write(&policy, "[alerts]\nmin_dump_ratio = 0.0\n").unwrap();
    let p = policy.to_str().unwrap();
    assert_code(
        &dump(&repo, "e", "e.sql", &[], &["cat", &big]),
        0,
        "first dump",
    );
    let out = dump(&repo, "e", "e.sql", &["--policy-file", p], &["cat", &small]);
    assert_code(&out, 0, "shrink check off in the policy file");
    let out = dump(&repo, "e", "e.sql", &["--policy-file", p], &["true"]);
    assert_code(&out, 7, "an empty dump with the shrink check off");
    assert_eq!(newest(&repo, "e")["dump_check"]["reason"], "empty");

    let out = dump(&repo, "e", "e.sql", &["--min-dump-ratio", "2"], &["true"]);
    assert_code(&out, 2, "a ratio above 1 is a usage error");
    assert!(stderr(&out).contains("from 0 to 1"), "{}", stderr(&out));
    let out = repo.run(&[
        "push",
        "--min-dump-ratio",
        "0.5",
        repo.dir("big.sql").to_str().unwrap(),
    ]);
    assert_code(&out, 1, "--min-dump-ratio on a push of files");
    assert!(stderr(&out).contains("for dumps"), "{}", stderr(&out));
}

#[test]
fn from_shell_runs_pipelines_with_pipefail() {
    let repo = Repo::new();
    let shell = |line: &str| {
        repo.run(&[
            "push",
            "--site",
            "a",
            "--name",
            "a.sql.gz",
            "--from-shell",
            line,
        ])
    };
    let out = shell("false | gzip");
    assert_ne!(out.status.code(), Some(0), "a failed stage fails the push");
    let err = stderr(&out);
    assert!(
        err.contains("false | gzip")
            && err.contains("exit status: 1")
            && err.contains("no snapshot"),
        "{err}"
    );
    assert!(
        repo.snapshots(&[]).is_empty(),
        "a failed pipeline records no snapshot"
    );

    let out = shell("printf data | gzip");
    assert_code(&out, 0, "a good pipeline");
    let want = std::process::Command::new("bash")
        .args(["-c", "printf data | gzip"])
        .output()
        .unwrap()
        .stdout;
    assert_eq!(repo.ok(&["cat", "latest", "a.sql.gz"]).stdout, want);
    let s = newest(&repo, "a");
    assert_eq!(
        s["command"],
        serde_json::json!(["bash", "-o", "pipefail", "-c", "printf data | gzip"])
    );

    // --from-command keeps the last stage's status, as sh does: the README
    // sends pipelines to --from-shell.
    let out = dump(&repo, "b", "b.sql.gz", &[], &["sh", "-c", "false | gzip"]);
    assert_code(&out, 0, "sh -c with a failing first stage");
    assert_eq!(repo.snapshots(&["--site", "b"]).len(), 1);

    let out = repo.run(&["push", "--name", "x", "--from-shell", "true", "--stdin"]);
    assert_code(&out, 2, "--from-shell with --stdin");
}

#[test]
fn from_shell_without_bash_says_so() {
    let repo = Repo::new();
    let empty = repo.dir("no-bash");
    std::fs::create_dir(&empty).unwrap();
    let out = repo
        .cmd()
        .env("PATH", Path::new(&empty))
        .args(["push", "--name", "a.sql", "--from-shell", "true"])
        .output()
        .unwrap();
    assert_code(&out, 1, "--from-shell without bash");
    assert!(
        stderr(&out).contains("bash is not in PATH"),
        "{}",
        stderr(&out)
    );
    assert!(repo.snapshots(&[]).is_empty());
}
