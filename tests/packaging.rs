//! What the set-up script installs: the systemd units and the cron.d line
//! (checked by systemd's own parser), the shell completions and manual
//! pages (generated from the options), and the README's example
//! configuration (the file the tests parse).

mod common;

use common::*;
use std::path::Path;
use std::process::Command;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn the_systemd_units_pass_systemd_analyze_verify() {
    let Ok(probe) = Command::new("systemd-analyze").arg("--version").output() else {
        eprintln!("SKIPPED: systemd-analyze is not installed, the units are not verified");
        return;
    };
    assert!(probe.status.success());
    let tmp = tempfile::tempdir().unwrap();
    let snap = assert_cmd::cargo::cargo_bin("snap");
    for unit in ["snap.service", "snap.timer", "snap-failure@.service"] {
        let text = std::fs::read_to_string(root().join("scripts/systemd").join(unit)).unwrap();
        // Verified against the built binary: /usr/local/bin/snap is where
        // setup.sh puts it, not necessarily there on a test machine.
        let text = text.replace("/usr/local/bin/snap", snap.to_str().unwrap());
        std::fs::write(tmp.path().join(unit), text).unwrap();
    }
    let service = std::fs::read_to_string(tmp.path().join("snap.service")).unwrap();
    assert!(
        service.contains("OnFailure=snap-failure@%n.service"),
        "{service}"
    );
    assert!(
        service.contains(&format!("ExecStart={} run", snap.display())),
        "{service}"
    );
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .current_dir(tmp.path())
        .args(["./snap.service", "./snap.timer", "./snap-failure@.service"])
        .output()
        .unwrap();
    assert_success(&out, "systemd-analyze verify");
    assert!(stderr(&out).trim().is_empty(), "warnings: {}", stderr(&out));
    // The check bites: a broken timer is refused.
    let bad = std::fs::read_to_string(tmp.path().join("snap.timer"))
        .unwrap()
        .replace("OnCalendar=*-*-* 02:30:00", "OnCalendar=*-*-* 25:00");
    std::fs::write(tmp.path().join("snap.timer"), bad).unwrap();
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no", "./snap.timer"])
        .current_dir(tmp.path())
        .output()
        .unwrap();
    assert!(!out.status.success(), "a bad calendar passed verification");
}

#[test]
fn the_cron_line_runs_the_plan_nightly() {
    let text = std::fs::read_to_string(root().join("scripts/cron.d/snap")).unwrap();
    let jobs: Vec<Vec<&str>> = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.contains('=') && !l.trim().is_empty())
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(jobs.len(), 1, "{text}");
    let j = &jobs[0];
    // minute hour dom month dow user command
    assert_eq!(&j[..6], ["30", "2", "*", "*", "*", "root"]);
    assert_eq!(&j[6..], ["/usr/local/bin/snap", "run"]);
    assert!(text.contains("\nMAILTO="), "cron mails the run's output");
}

#[test]
fn completions_and_manual_pages_come_from_the_options() {
    let repo = Repo::new();
    let out = repo.ok(&["generate", "completions", "bash"]);
    let script = repo.dir("snap.bash");
    std::fs::write(&script, &out.stdout).unwrap();
    let text = stdout(&out);
    for word in ["run", "forget", "stats", "--problems-only", "--dry-run"] {
        assert!(text.contains(word), "bash completion lacks {word}");
    }
    let syntax = Command::new("bash")
        .arg("-n")
        .arg(&script)
        .output()
        .unwrap();
    assert_success(&syntax, "bash -n on the completion script");
    for shell in ["zsh", "fish"] {
        let out = repo.ok(&["generate", "completions", shell]);
        assert!(stdout(&out).contains("snap"), "{shell}");
    }
    let man = repo.dir("man1");
    repo.ok(&["generate", "man", man.to_str().unwrap()]);
    let page = std::fs::read_to_string(man.join("snap-run.1")).unwrap();
    assert!(
        page.contains(".TH snap-run 1") && page.contains("dry\\-run"),
        "{page}"
    );
    assert!(man.join("snap.1").is_file() && man.join("snap-report.1").is_file());
    let bad = repo.run(&["generate", "completions", "tcsh"]);
    assert_code(&bad, 2, "an unknown shell");
}

#[test]
fn the_readme_shows_the_example_configuration_the_tests_parse() {
    let example = std::fs::read_to_string(root().join("scripts/snap.example.toml")).unwrap();
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    assert!(
        readme.contains(&format!("```toml\n{example}```")),
        "README.md's example configuration differs from scripts/snap.example.toml"
    );
}
