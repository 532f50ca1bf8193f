//! Finding a site's snapshot: `--site S` takes the global snapshots that hold
//! the site's path (from the configuration) as well as the site's own, and
//! the newest wins; `--global`; the chosen snapshot said on stderr in local
//! time; `snap snapshots` in aligned columns.

mod common;

use common::*;
use std::fs;
use std::path::{Path, PathBuf};

const TZ: &str = "Europe/Paris";

/// /var/www-like tree: two sites side by side.
fn www(repo: &Repo) -> PathBuf {
    let www = repo.dir("www");
    make_tree(&www.join("boulangerie"));
    fs::create_dir_all(www.join("fleuriste")).unwrap();
    fs::write(www.join("fleuriste/index.php"), b"<?php // fleurs\n").unwrap();
    www
}

/// A configuration naming the two sites' paths, in Europe/Paris time.
fn config(repo: &Repo, www: &Path) -> PathBuf {
    let cfg = repo.dir("snap.toml");
    fs::write(
        &cfg,
        format!(
            "timezone = \"{TZ}\"\n\n[sites.boulangerie]\npaths = [\"{0}/boulangerie\"]\n\n[sites.fleuriste]\npaths = [\"{0}/fleuriste\"]\n",
            www.display()
        ),
    )
    .unwrap();
    cfg
}

fn short(v: &serde_json::Value) -> String {
    str_of(v, "short_id")
}

fn run(repo: &Repo, args: &[&str]) -> std::process::Output {
    InZone { repo, tz: TZ }.ok(args)
}

#[test]
fn site_restore_takes_the_newest_of_its_own_and_the_global_snapshots() {
    let repo = Repo::new();
    let www = www(&repo);
    let site = www.join("boulangerie");
    let cfg = config(&repo, &www);
    let cfg = cfg.to_str().unwrap();
    let own = repo.push(
        &site,
        &[
            "--site",
            "boulangerie",
            "--level",
            "2",
            "--time",
            "2025-01-05T02:00:00Z",
        ],
    );
    // Last night's global level-1 snapshot of all of www.
    fs::write(
        site.join("index.php"),
        b"<?php // changed since the monthly\n",
    )
    .unwrap();
    let global = repo.push(&www, &["--level", "1", "--time", "2025-01-10T02:00:00Z"]);

    // Without a configuration naming the site's paths: the site's own.
    let t = repo.dir("t0");
    let out = run(
        &repo,
        &[
            "restore",
            "latest",
            "--site",
            "boulangerie",
            "--kind",
            "files",
            "--target",
            t.to_str().unwrap(),
        ],
    );
    assert!(
        stderr(&out).contains(&format!(
            "snap: using snapshot {} (boulangerie files level2, 2025-01-05 03:00:00 CET)",
            short(&own)
        )),
        "{}",
        stderr(&out)
    );

    // With it: the newer global snapshot, scoped to the site's directory.
    let t = repo.dir("t1");
    let out = run(
        &repo,
        &[
            "restore",
            "latest",
            "--site",
            "boulangerie",
            "--kind",
            "files",
            "--target",
            t.to_str().unwrap(),
            "--config",
            cfg,
        ],
    );
    assert_eq!(
        stderr(&out),
        format!(
            "snap: using snapshot {} (global files level1, 2025-01-10 03:00:00 CET)\n",
            short(&global)
        )
    );
    assert_same_tree(&site, &t, &[]);
    assert!(!t.join("fleuriste").exists() && !t.join("boulangerie").exists());

    // Paths as backed up and relative to the site both name its files.
    let out = run(
        &repo,
        &[
            "cat",
            "latest",
            "--site",
            "boulangerie",
            "--config",
            cfg,
            "/index.php",
        ],
    );
    assert_eq!(
        out.stdout, b"<?php // changed since the monthly\n",
        "cat's stdout is the file alone"
    );
    let abs = site.join("wp-config.php");
    let out = run(
        &repo,
        &[
            "cat",
            "latest",
            "--site",
            "boulangerie",
            "--config",
            cfg,
            abs.to_str().unwrap(),
        ],
    );
    assert_eq!(out.stdout, fs::read(&abs).unwrap());
    let t = repo.dir("t2");
    run(
        &repo,
        &[
            "restore",
            "latest",
            "--site",
            "boulangerie",
            "--config",
            cfg,
            "--target",
            t.to_str().unwrap(),
            "--include",
            "wp-includes",
        ],
    );
    // hard-b's other name is not included: it comes back with one link.
    let got = t.join("wp-includes");
    let hard_b = fs::read(got.join("hard-b")).unwrap();
    fs::remove_file(got.join("hard-b")).unwrap();
    assert_same_tree(&site.join("wp-includes"), &got, &[Path::new("hard-b")]);
    assert_eq!(hard_b, fs::read(site.join("wp-includes/hard-b")).unwrap());
    assert_eq!(
        fs::read_dir(&t).unwrap().count(),
        1,
        "only the included path"
    );
    let listed = stdout(&run(
        &repo,
        &[
            "ls",
            "--quiet",
            "latest",
            "--site",
            "fleuriste",
            "--config",
            cfg,
        ],
    ));
    assert!(
        listed.contains("/index.php") && !listed.contains("wp-config"),
        "{listed}"
    );
    let out = run(
        &repo,
        &[
            "ls",
            "--quiet",
            "latest",
            "--site",
            "fleuriste",
            "--config",
            cfg,
        ],
    );
    assert_eq!(stderr(&out), "", "--quiet says nothing");

    // The site's own snapshot, newer, wins again.
    fs::write(site.join("index.php"), b"<?php // newest\n").unwrap();
    let newer = repo.push(
        &site,
        &[
            "--site",
            "boulangerie",
            "--level",
            "2",
            "--time",
            "2025-07-11T02:00:00Z",
        ],
    );
    let t = repo.dir("t3");
    let out = run(
        &repo,
        &[
            "restore",
            "latest",
            "--site",
            "boulangerie",
            "--target",
            t.to_str().unwrap(),
            "--config",
            cfg,
        ],
    );
    assert!(
        stderr(&out).contains(&format!(
            "snap: using snapshot {} (boulangerie files level2, 2025-07-11 04:00:00 CEST)",
            short(&newer)
        )),
        "{}",
        stderr(&out)
    );
    assert_same_tree(&site, &t, &[]);

    // Other filters still apply: level 1 is the global snapshot's.
    let out = run(
        &repo,
        &[
            "cat",
            "latest",
            "--site",
            "boulangerie",
            "--level",
            "1",
            "--config",
            cfg,
            "index.php",
        ],
    );
    assert_eq!(out.stdout, b"<?php // changed since the monthly\n");

    // log sees both, the global one as the site's directory.
    let log = stdout(&run(
        &repo,
        &[
            "log",
            "--site",
            "boulangerie",
            "--config",
            cfg,
            "/index.php",
        ],
    ));
    assert!(
        log.contains("3 version(s) listed from 3 snapshot(s)"),
        "{log}"
    );
}

#[test]
fn a_global_snapshot_without_the_site_directory_is_passed_over() {
    let repo = Repo::new();
    let www = www(&repo);
    let cfg = config(&repo, &www);
    let own = repo.push(
        &www.join("fleuriste"),
        &[
            "--site",
            "fleuriste",
            "--level",
            "2",
            "--time",
            "2025-01-05T02:00:00Z",
        ],
    );
    // The global snapshot left the site out.
    repo.push(
        &www,
        &[
            "--level",
            "1",
            "--exclude",
            "fleuriste",
            "--time",
            "2025-01-10T02:00:00Z",
        ],
    );
    let out = run(
        &repo,
        &[
            "ls",
            "latest",
            "--site",
            "fleuriste",
            "--config",
            cfg.to_str().unwrap(),
        ],
    );
    assert!(
        stderr(&out).contains(&format!("using snapshot {} (fleuriste", short(&own))),
        "{}",
        stderr(&out)
    );
}

#[test]
fn global_selects_only_site_less_snapshots() {
    let repo = Repo::new();
    let www = www(&repo);
    repo.push(
        &www.join("boulangerie"),
        &[
            "--site",
            "boulangerie",
            "--level",
            "2",
            "--time",
            "2025-01-11T02:00:00Z",
        ],
    );
    let global = repo.push(&www, &["--level", "1", "--time", "2025-01-10T02:00:00Z"]);
    let listed = repo.snapshots(&["--global"]);
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["id"], global["id"]);
    let out = run(&repo, &["ls", "latest", "--global", "/"]);
    assert!(stdout(&out).contains("/fleuriste"), "{}", stdout(&out));
    assert!(stderr(&out).contains("(global files level1, 2025-01-10 03:00:00 CET)"));
    let out = repo.run(&["snapshots", "--global", "--site", "x"]);
    assert_code(&out, 2, "--global with --site");
    assert!(stderr(&out).contains("--global"), "{}", stderr(&out));
}

#[test]
fn snapshots_print_aligned_columns_in_local_time() {
    let repo = Repo::new();
    let src = repo.dir("src");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("a"), b"a").unwrap();
    let long = "s".repeat(40);
    repo.push(
        &src,
        &[
            "--site",
            &long,
            "--level",
            "2",
            "--time",
            "2025-01-10T02:00:00.123456789Z",
        ],
    );
    repo.push(&src, &["--site", "b", "--time", "2025-07-10T02:00:00Z"]);
    repo.push(
        &src,
        &[
            "--time",
            "2025-07-11T02:00:00Z",
            "--host",
            "a-rather-long-host-name",
        ],
    );
    // Escaped before its width is taken.
    repo.push(
        &src,
        &[
            "--site",
            "tab\there\x1b[2J",
            "--time",
            "2025-07-12T02:00:00Z",
        ],
    );
    let cfg = repo.dir("snap.toml");
    fs::write(&cfg, format!("timezone = \"{TZ}\"\n")).unwrap();
    // TZ says UTC; the configuration's zone wins.
    let text = stdout(
        &InZone {
            repo: &repo,
            tz: "UTC",
        }
        .ok(&["snapshots", "--config", cfg.to_str().unwrap()]),
    );
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 6, "{text}");
    assert!(lines[1].contains("2025-01-10 03:00:00 CET"), "{text}");
    assert!(lines[2].contains("2025-07-10 04:00:00 CEST"), "{text}");
    assert!(!text.contains(".123"), "no fractions of a second: {text}");
    for column in ["time", "kind", "site", "host", "paths"] {
        let at = lines[0].find(column).unwrap();
        for l in &lines[1..5] {
            assert_eq!(
                &l[at - 2..at],
                "  ",
                "{column} starts at {at} in every row:\n{text}"
            );
            assert_ne!(
                &l[at..at + 1],
                " ",
                "{column} starts at {at} in every row:\n{text}"
            );
        }
    }
    assert!(lines[1].contains(&format!("  {long}  ")), "{text}");
    assert!(lines[4].contains("  tab\\x09here\\x1b[2J  "), "{text}");
    assert!(!text.contains('\x1b') && !text.contains('\t'), "{text}");
    assert_eq!(lines[5], "4 snapshot(s)");
}
