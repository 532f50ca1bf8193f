//! The proof of issue 3: 120 simulated days of the agency's backup plan
//! (../shared/brief.md) through the real `snap` binary, with three client
//! sites, a three-day outage and a few missed days. Every day is followed by
//! `snap prune --policy level1` and `snap prune --policy level2`, and every
//! day the test checks, from `snap snapshots --json`, what each policy
//! promises, and that `snap report --json` agrees with an independent
//! computation of which promises are broken.

mod common;

use chrono::{DateTime, Datelike, FixedOffset, NaiveDate, TimeZone};
use chrono_tz::Europe::Paris;
use common::*;
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;
use std::process::Output;

const DAYS: i64 = 120;
const SITES: [&str; 3] = ["client-a", "client-b", "client-c"];
/// No push at all (the datacenter is down), Sunday 22 to Tuesday 24 February.
const OUTAGE: [i64; 3] = [52, 53, 54];
/// Days the level-1 db dump did not run (besides the outage).
const DB_MISSED: [i64; 2] = [77, 101];
/// Days the level-1 files backup did not run (besides the outage).
const FILES_MISSED: [i64; 2] = [20, 101];
/// The ladder's intervals of ages in days.
const LADDER: [(i64, i64); 5] = [(1, 2), (2, 3), (3, 7), (7, 14), (14, 21)];

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct G {
    level: u8,
    kind: String,
    site: Option<String>,
}

fn g(level: u8, kind: &str, site: Option<&str>) -> G {
    G {
        level,
        kind: kind.into(),
        site: site.map(String::from),
    }
}

#[derive(Clone, Debug)]
struct Snap {
    id: String,
    g: G,
    time: DateTime<FixedOffset>,
}

fn snap_cmd(repo: &Repo, args: &[&str]) -> assert_cmd::Command {
    let mut c = repo.cmd();
    c.env("TZ", "Europe/Paris").args(args);
    c
}

fn run(repo: &Repo, args: &[&str]) -> Output {
    snap_cmd(repo, args).output().expect("snap runs")
}

fn ok(repo: &Repo, args: &[&str]) -> Output {
    let out = run(repo, args);
    assert_success(&out, &format!("snap {}", args.join(" ")));
    out
}

fn push_stdin(repo: &Repo, args: &[&str], data: &str) {
    let out = snap_cmd(repo, args)
        .write_stdin(data.as_bytes().to_vec())
        .output()
        .expect("snap runs");
    assert_success(&out, &format!("snap {}", args.join(" ")));
}

fn list(repo: &Repo) -> Vec<Snap> {
    let v = parse_json(&ok(repo, &["--json", "snapshots"]));
    v.as_array()
        .expect("array")
        .iter()
        .map(|s| Snap {
            id: s["id"].as_str().unwrap().to_string(),
            g: G {
                level: s["level"].as_u64().unwrap() as u8,
                kind: s["kind"].as_str().unwrap().to_string(),
                site: s["site"].as_str().map(String::from),
            },
            time: DateTime::parse_from_rfc3339(s["time"].as_str().unwrap()).unwrap(),
        })
        .collect()
}

fn local_date(t: &DateTime<FixedOffset>) -> NaiveDate {
    t.with_timezone(&Paris).date_naive()
}

fn at(date: NaiveDate, h: u32, m: u32) -> (String, DateTime<FixedOffset>) {
    let naive = date.and_hms_opt(h, m, 0).unwrap();
    let t = Paris
        .from_local_datetime(&naive)
        .single()
        .unwrap()
        .fixed_offset();
    (naive.format("%Y-%m-%d %H:%M:%S").to_string(), t)
}

fn week_label(d: NaiveDate) -> String {
    let w = d.iso_week();
    format!("{}-W{:02}", w.year(), w.week())
}

fn month_label(d: NaiveDate) -> String {
    format!("{}-{:02}", d.year(), d.month())
}

/// The status a calendar promise ("keep one per bucket for the last n
/// buckets") should have today, computed from what was ever pushed: a
/// finished bucket of the window without a push is a broken promise, one
/// before the group's first push is not due yet, and a newest push older
/// than the bucket length plus a day is stale.
fn calendar_status(
    pushed: &[DateTime<FixedOffset>],
    today: NaiveDate,
    n: usize,
    label: fn(NaiveDate) -> String,
    stale_after: i64,
) -> &'static str {
    let mut wanted: Vec<String> = Vec::new();
    let mut d = today;
    while wanted.len() < n {
        let l = label(d);
        if wanted.last() != Some(&l) {
            wanted.push(l);
        }
        d = d.pred_opt().unwrap();
    }
    let have: BTreeSet<String> = pushed.iter().map(|t| label(local_date(t))).collect();
    let first = label(local_date(&pushed[0]));
    let newest_age = (today - local_date(pushed.last().unwrap())).num_days();
    let mut missing = newest_age > stale_after;
    let mut not_yet = false;
    for b in wanted.iter().skip(1).filter(|b| !have.contains(*b)) {
        if *b < first {
            not_yet = true;
        } else {
            missing = true;
        }
    }
    if missing {
        "MISSING"
    } else if not_yet {
        "PENDING"
    } else {
        "OK"
    }
}

#[test]
fn a_hundred_and_twenty_days_of_the_plan() {
    let started = std::time::Instant::now();
    let repo = Repo::new();
    let www = repo.dir("www");
    fs::create_dir_all(www.join("uploads")).unwrap();
    fs::write(www.join("index.php"), b"<?php echo 'hello';\n").unwrap();
    fs::write(www.join("uploads/logo.png"), noise(7, 3000)).unwrap();
    let site_dirs: Vec<_> = SITES
        .iter()
        .map(|s| {
            let d = repo.dir(&format!("sites/{s}"));
            fs::create_dir_all(&d).unwrap();
            fs::write(d.join("style.css"), format!("/* {s} */\n")).unwrap();
            d
        })
        .collect();

    let start = NaiveDate::from_ymd_opt(2026, 1, 1).unwrap();
    let mut pushed: BTreeMap<G, Vec<DateTime<FixedOffset>>> = BTreeMap::new();
    // Every level-1 dump, by time, to check a restore at the end.
    let mut dumps: BTreeMap<DateTime<FixedOffset>, String> = BTreeMap::new();
    let mut missing_seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut max_ladder = 0;
    let l1_files = g(1, "files", None);
    let l1_db = g(1, "db", None);

    for day in 0..DAYS {
        let date = start + chrono::Days::new(day as u64);
        let outage = OUTAGE.contains(&day);
        let minute = |k: i64| ((day * 7 + k * 11) % 26) as u32; // 03:00 to 03:25
                                                                // Level 1, the hosting provider: global db and files, daily.
        if !outage && !DB_MISSED.contains(&day) {
            let (ts, t) = at(date, 3, minute(0));
            let dump = format!("-- all databases, {ts}\nINSERT INTO posts VALUES ({day});\n");
            push_stdin(
                &repo,
                &[
                    "-q", "push", "--stdin", "--name", "all.sql", "--kind", "db", "--level", "1",
                    "--time", &ts,
                ],
                &dump,
            );
            pushed.entry(l1_db.clone()).or_default().push(t);
            dumps.insert(t, dump);
        }
        if !outage && !FILES_MISSED.contains(&day) {
            fs::write(www.join("uploads/today.txt"), format!("day {day}\n")).unwrap();
            let (ts, t) = at(date, 3, minute(1));
            ok(
                &repo,
                &[
                    "-q",
                    "push",
                    "--level",
                    "1",
                    "--time",
                    &ts,
                    www.to_str().unwrap(),
                ],
            );
            pushed.entry(l1_files.clone()).or_default().push(t);
        }
        // Level 2, the agency's team: per site, db weekly (Mondays), files
        // monthly (the 1st).
        if !outage && date.weekday() == chrono::Weekday::Mon {
            for (k, s) in SITES.iter().enumerate() {
                let (ts, t) = at(date, 3, minute(2 + k as i64));
                let dump = format!("-- {s}, {ts}\n");
                let name = format!("{}.sql", s.replace('-', "_"));
                push_stdin(
                    &repo,
                    &[
                        "-q", "push", "--stdin", "--name", &name, "--site", s, "--level", "2",
                        "--time", &ts,
                    ],
                    &dump,
                );
                pushed.entry(g(2, "db", Some(s))).or_default().push(t);
            }
        }
        if !outage && date.day() == 1 {
            for (k, s) in SITES.iter().enumerate() {
                fs::write(
                    site_dirs[k].join("page.html"),
                    format!("<p>{s} {date}</p>\n"),
                )
                .unwrap();
                let (ts, t) = at(date, 3, minute(5 + k as i64));
                ok(
                    &repo,
                    &[
                        "-q",
                        "push",
                        "--site",
                        s,
                        "--level",
                        "2",
                        "--time",
                        &ts,
                        site_dirs[k].to_str().unwrap(),
                    ],
                );
                pushed.entry(g(2, "files", Some(s))).or_default().push(t);
            }
        }

        // Prune both levels, a little after the pushes.
        let (now, _) = at(date, 3, 45);
        let before = list(&repo);
        let level_of: BTreeMap<&str, u8> =
            before.iter().map(|s| (s.id.as_str(), s.g.level)).collect();
        let mut removed: BTreeSet<String> = BTreeSet::new();
        for level in [1u8, 2] {
            let policy = format!("level{level}");
            let p = parse_json(&ok(
                &repo,
                &["--json", "prune", "--policy", &policy, "--now", &now],
            ));
            for r in p["plan"]["remove"].as_array().unwrap() {
                let id = r.as_str().unwrap();
                assert_eq!(
                    level_of.get(id),
                    Some(&level),
                    "day {day}: prune --policy {policy} removed {id}, not a level-{level} snapshot"
                );
                removed.insert(id.to_string());
            }
        }
        let after = list(&repo);
        let want: BTreeSet<&str> = before
            .iter()
            .map(|s| s.id.as_str())
            .filter(|id| !removed.contains(*id))
            .collect();
        let got: BTreeSet<&str> = after.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(got, want, "day {day}: prune removed other than its plan");

        // The guarantees, group by group.
        let mut kept: BTreeMap<G, Vec<DateTime<FixedOffset>>> = BTreeMap::new();
        for s in &after {
            kept.entry(s.g.clone()).or_default().push(s.time);
        }
        for v in kept.values_mut() {
            v.sort();
        }
        let age = |t: &DateTime<FixedOffset>| (date - local_date(t)).num_days();
        for (grp, times) in &pushed {
            let k = kept.get(grp).cloned().unwrap_or_default();
            assert!(
                !k.is_empty(),
                "day {day}: group {grp:?} has no snapshot left"
            );
            assert_eq!(
                k.last(),
                times.last(),
                "day {day}: {grp:?}: the newest snapshot is not kept"
            );
            let last = |n: usize| times[times.len().saturating_sub(n)..].to_vec();
            match (grp.level, grp.kind.as_str()) {
                (1, "files") => {
                    for (lo, hi) in LADDER {
                        let ever = times.iter().any(|t| (lo..hi).contains(&age(t)));
                        let now_kept = k.iter().any(|t| (lo..hi).contains(&age(t)));
                        assert!(
                            !ever || now_kept,
                            "day {day}: ladder [{lo}, {hi}): a snapshot of that age was pushed but none is kept; kept ages {:?}",
                            k.iter().map(age).collect::<Vec<_>>()
                        );
                    }
                    max_ladder = max_ladder.max(k.len());
                    assert!(
                        k.len() <= 12,
                        "day {day}: level-1 files keeps {} snapshots (ages {:?})",
                        k.len(),
                        k.iter().map(age).collect::<Vec<_>>()
                    );
                }
                // One push a day: the newest of each of the 30 most recent
                // days that had a push are exactly the last 30 pushes.
                (1, "db") => assert_eq!(k, last(30), "day {day}: level-1 db"),
                // Mondays only: one push per ISO week.
                (2, "db") => assert_eq!(k, last(4), "day {day}: {grp:?}"),
                // The 1st only: one push per month.
                (2, "files") => assert_eq!(k, last(2), "day {day}: {grp:?}"),
                _ => unreachable!(),
            }
        }
        assert_eq!(
            kept.keys().collect::<Vec<_>>(),
            pushed.keys().collect::<Vec<_>>(),
            "day {day}: groups"
        );

        // The report agrees with our own reading of the promises.
        let out = run(&repo, &["--json", "report", "--now", &now]);
        let report = parse_json(&out);
        let mut any_missing = false;
        let mut seen_groups = BTreeSet::new();
        for r in report.as_array().unwrap() {
            let key = &r["group"];
            let grp = G {
                level: key["level"].as_u64().unwrap() as u8,
                kind: key["kind"].as_str().unwrap().to_string(),
                site: key["site"].as_str().map(String::from),
            };
            let times = &pushed[&grp];
            let k = &kept[&grp];
            let expected: Vec<(String, &str)> = match (grp.level, grp.kind.as_str()) {
                (1, "files") => LADDER
                    .iter()
                    .map(|&(lo, hi)| {
                        let status = if k.iter().any(|t| (lo..hi).contains(&age(t))) {
                            "OK"
                        } else if age(&times[0]) < lo {
                            "PENDING"
                        } else {
                            "MISSING"
                        };
                        (format!("ladder [{lo}d, {hi}d)"), status)
                    })
                    .collect(),
                (1, "db") => vec![(
                    "daily x30".into(),
                    calendar_status(times, date, 30, |d| d.to_string(), 2),
                )],
                (2, "db") => vec![(
                    "weekly x4".into(),
                    calendar_status(times, date, 4, week_label, 8),
                )],
                (2, "files") => vec![(
                    "monthly x2".into(),
                    calendar_status(times, date, 2, month_label, 32),
                )],
                _ => unreachable!(),
            };
            let got: Vec<(String, &str)> = r["checks"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| {
                    (
                        c["promise"].as_str().unwrap().to_string(),
                        c["status"].as_str().unwrap(),
                    )
                })
                .collect();
            assert_eq!(
                got, expected,
                "day {day} ({date}): report for {grp:?} disagrees:\n{r:#}"
            );
            let worst = if expected.iter().any(|e| e.1 == "MISSING") {
                "MISSING"
            } else if expected.iter().any(|e| e.1 == "PENDING") {
                "PENDING"
            } else {
                "OK"
            };
            assert_eq!(r["status"], worst, "day {day}: {grp:?} status");
            assert_eq!(r["points"], k.len(), "day {day}: {grp:?} points");
            let newest = DateTime::parse_from_rfc3339(r["newest"].as_str().unwrap()).unwrap();
            assert_eq!(Some(&newest), k.last(), "day {day}: {grp:?} newest");
            for (promise, s) in &expected {
                if *s == "MISSING" {
                    any_missing = true;
                    let what = format!("{} {} {}", grp.level, grp.kind, promise);
                    *missing_seen.entry(what).or_default() += 1;
                }
            }
            seen_groups.insert(grp);
        }
        assert_eq!(
            seen_groups.iter().collect::<Vec<_>>(),
            pushed.keys().collect::<Vec<_>>(),
            "day {day}: report groups"
        );
        assert_code(
            &out,
            if any_missing { 4 } else { 0 },
            &format!("day {day}: report exit code"),
        );
        // Right after the outage, the daily db promise is broken.
        if day == 55 {
            assert!(any_missing, "day 55: the outage went unreported");
        }

        if day % 10 == 9 {
            ok(&repo, &["-q", "check"]);
        }
    }

    // The simulation exercised broken promises, not only kept ones.
    for what in [
        "1 db daily x30",
        "2 db weekly x4",
        "1 files ladder [1d, 2d)",
    ] {
        assert!(
            missing_seen.get(what).is_some_and(|&n| n > 0),
            "{what} was never MISSING: {missing_seen:?}"
        );
    }
    eprintln!("days with a MISSING promise, by promise: {missing_seen:?}");
    eprintln!("level-1 files: at most {max_ladder} snapshots kept on any day");

    // Restores: the newest level-1 files, an old level-1 dump, a site's files.
    ok(&repo, &["-q", "check", "--read-data"]);
    let snaps = list(&repo);
    let newest_files = snaps.iter().rev().find(|s| s.g == l1_files).unwrap();
    let target = repo.dir("restored-www");
    ok(
        &repo,
        &[
            "-q",
            "restore",
            &newest_files.id,
            "--target",
            target.to_str().unwrap(),
        ],
    );
    assert_same_tree(&www, &target, &[]);
    let old_dump = snaps.iter().find(|s| s.g == l1_db).unwrap();
    assert!(
        (start + chrono::Days::new(DAYS as u64) - local_date(&old_dump.time)).num_days() >= 30,
        "the oldest dump kept is a month old"
    );
    let out = ok(&repo, &["cat", &old_dump.id, "all.sql"]);
    assert_eq!(stdout(&out), dumps[&old_dump.time], "old dump restores");
    let site = snaps
        .iter()
        .rev()
        .find(|s| s.g == g(2, "files", Some("client-b")))
        .unwrap();
    let target = repo.dir("restored-b");
    ok(
        &repo,
        &[
            "-q",
            "restore",
            &site.id,
            "--target",
            target.to_str().unwrap(),
        ],
    );
    assert_same_tree(Path::new(&site_dirs[1]), &target, &[]);
    eprintln!(
        "{DAYS} simulated days in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}
