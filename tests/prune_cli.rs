//! `snap prune` through the command line: the dry run, the JSON plan, space
//! reclaimed, `--site`, protected snapshots, user policy files, repacking,
//! and refusal on a damaged snapshot.

mod common;

use common::*;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;
use std::process::Output;

const TZ: &str = "Europe/Paris";

fn snap_cmd(repo: &Repo, args: &[&str]) -> assert_cmd::Command {
    InZone { repo, tz: TZ }.cmd(args)
}

fn run(repo: &Repo, args: &[&str]) -> Output {
    InZone { repo, tz: TZ }.run(args)
}

fn ok(repo: &Repo, args: &[&str]) -> Output {
    InZone { repo, tz: TZ }.ok(args)
}

fn json(repo: &Repo, args: &[&str]) -> Value {
    InZone { repo, tz: TZ }.json(args)
}

fn push_stdin(repo: &Repo, args: &[&str], data: &[u8]) -> String {
    let mut a = vec!["--json", "push", "--stdin"];
    a.extend_from_slice(args);
    let out = snap_cmd(repo, &a)
        .write_stdin(data.to_vec())
        .output()
        .expect("snap runs");
    assert_success(&out, &format!("snap {}", a.join(" ")));
    snapshot_id(&parse_json(&out))
}

fn push_dir(repo: &Repo, dir: &Path, args: &[&str]) -> String {
    let mut a = vec!["--json", "push"];
    a.extend_from_slice(args);
    a.push(dir.to_str().unwrap());
    snapshot_id(&parse_json(&ok(repo, &a)))
}

fn snapshot_id(push: &Value) -> String {
    push["id"]
        .as_str()
        .or_else(|| push["snapshot"]["id"].as_str())
        .or_else(|| push["snapshot"].as_str())
        .unwrap_or_else(|| panic!("no snapshot id in push output {push:#}"))
        .to_string()
}

fn ids(repo: &Repo) -> BTreeSet<String> {
    json(repo, &["snapshots"])
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect()
}

fn du(repo: &Repo) -> u64 {
    repo.files().values().map(|b| b.len() as u64).sum()
}

const NOW: &str = "2026-03-02 12:00:00";

/// Eight weekly level-2 dumps of client-a and client-b (Mondays of 2026-01
/// and 2026-02, each a distinct 200 KB so removing one frees a pack's
/// worth), and four monthly level-2 file snapshots of client-a. Returns the
/// dump contents by snapshot id.
fn weekly_history(repo: &Repo) -> BTreeMap<String, Vec<u8>> {
    let mut dumps = BTreeMap::new();
    for (w, day) in [
        "01-05", "01-12", "01-19", "01-26", "02-02", "02-09", "02-16", "02-23",
    ]
    .iter()
    .enumerate()
    {
        for (k, site) in ["client-a", "client-b"].iter().enumerate() {
            let data = noise(100 + 10 * w as u64 + k as u64, 200_000);
            let id = push_stdin(
                repo,
                &[
                    "--name",
                    &format!("{}.sql", site.replace('-', "_")),
                    "--site",
                    site,
                    "--level",
                    "2",
                    "--time",
                    &format!("2026-{day} 03:00:00"),
                ],
                &data,
            );
            dumps.insert(id, data);
        }
    }
    dumps
}

fn site_files(repo: &Repo) -> BTreeMap<String, Vec<u8>> {
    let dir = repo.dir("client-a");
    fs::create_dir_all(&dir).unwrap();
    let mut out = BTreeMap::new();
    for (m, month) in ["2025-12", "2026-01", "2026-02", "2026-03"]
        .iter()
        .enumerate()
    {
        let data = noise(500 + m as u64, 100_000);
        fs::write(dir.join("upload.bin"), &data).unwrap();
        let id = push_dir(
            repo,
            &dir,
            &[
                "--site",
                "client-a",
                "--level",
                "2",
                "--time",
                &format!("{month}-01 03:00:00"),
            ],
        );
        out.insert(id, data);
    }
    out
}

#[test]
fn dry_run_changes_nothing_and_prints_the_plan() {
    let repo = Repo::new();
    weekly_history(&repo);
    site_files(&repo);
    let before = repo.files();
    let out = ok(
        &repo,
        &["prune", "--policy", "level2", "--dry-run", "--now", NOW],
    );
    let text = stdout(&out);
    assert!(text.contains("would remove"), "{text}");
    assert!(
        text.contains("  keep   ") && text.contains("  remove "),
        "{text}"
    );
    assert!(text.contains("weekly 2026-W"), "reasons shown: {text}");
    assert!(
        text.contains("2026-02-23 03:00:00 CET") && !text.contains(".000"),
        "times local, to the second: {text}"
    );
    assert!(text.contains("to delete"), "pack plan shown: {text}");
    assert_eq!(repo.files(), before, "--dry-run changed the repository");

    let v = json(
        &repo,
        &["prune", "--policy", "level2", "--dry-run", "--now", NOW],
    );
    assert_eq!(
        repo.files(),
        before,
        "--json --dry-run changed the repository"
    );
    assert_eq!(v["dry_run"], true);
    assert!(v["done"].is_null());
    let plan = &v["plan"];
    let groups = plan["groups"].as_array().unwrap();
    // client-a db, client-b db, client-a files.
    assert_eq!(groups.len(), 3, "{plan:#}");
    let mut removed = BTreeSet::new();
    for grp in groups {
        let kind = grp["group"]["kind"].as_str().unwrap();
        let keep = grp["keep"].as_array().unwrap();
        let remove = grp["remove"].as_array().unwrap();
        let (k, r) = if kind == "db" { (4, 4) } else { (2, 2) };
        assert_eq!((keep.len(), remove.len()), (k, r), "{grp:#}");
        for kept in keep {
            let reasons = kept["reasons"].as_array().unwrap();
            assert!(!reasons.is_empty(), "{kept:#}");
            let prefix = if kind == "db" { "weekly " } else { "monthly " };
            assert!(
                reasons
                    .iter()
                    .any(|r| r.as_str().unwrap().starts_with(prefix)),
                "{kept:#}"
            );
            assert!(kept["time"].as_str().unwrap().starts_with("202"));
        }
        for r in remove {
            removed.insert(r["id"].as_str().unwrap().to_string());
            assert!(r["time"].as_str().unwrap().starts_with("202"));
        }
    }
    let plan_remove: BTreeSet<String> = plan["remove"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap().to_string())
        .collect();
    assert_eq!(plan_remove, removed);
    let packs = &plan["packs"];
    assert!(
        packs["delete"].is_array() && packs["repack"].is_array(),
        "{packs:#}"
    );
    assert!(
        packs["bytes_freed"].as_u64().unwrap() > 1_000_000,
        "{packs:#}"
    );
    assert!(
        !packs["delete"].as_array().unwrap().is_empty()
            || !packs["repack"].as_array().unwrap().is_empty(),
        "{packs:#}"
    );
}

#[test]
fn prune_frees_space_and_every_kept_snapshot_restores() {
    let repo = Repo::new();
    let mut contents = weekly_history(&repo);
    let files = site_files(&repo);
    let all = ids(&repo);
    let du_before = du(&repo);
    let v = json(&repo, &["prune", "--policy", "level2", "--now", NOW]);
    let du_after = du(&repo);
    let freed = v["plan"]["packs"]["bytes_freed"].as_u64().unwrap();
    assert!(
        du_after + 1_000_000 < du_before,
        "prune freed too little: {du_before} -> {du_after} bytes"
    );
    assert_eq!(v["done"]["snapshots_removed"], 10);
    assert!(v["done"]["packs_deleted"].as_u64().unwrap() > 0);
    // What the plan announced is about what went.
    let diff = du_before - du_after;
    assert!(
        diff + 100_000 >= freed && freed + 100_000 >= diff,
        "plan said {freed} bytes freed, du says {diff}"
    );
    let left = ids(&repo);
    assert_eq!(left.len(), all.len() - 10);
    ok(&repo, &["-q", "check", "--read-data"]);
    for id in &left {
        if let Some(data) = contents.remove(id) {
            let snap = json(&repo, &["snapshots"]);
            let name = snap
                .as_array()
                .unwrap()
                .iter()
                .find(|s| s["id"] == id.as_str())
                .unwrap()["paths"][0]
                .as_str()
                .unwrap()
                .to_string();
            let out = ok(&repo, &["cat", id, &name]);
            assert!(out.stdout == data, "dump {id} restores differently");
        } else {
            let data = &files[id];
            let target = repo.dir(&format!("r-{id}"));
            ok(
                &repo,
                &["-q", "restore", id, "--target", target.to_str().unwrap()],
            );
            assert!(
                fs::read(target.join("upload.bin")).unwrap() == *data,
                "files {id} restore differently"
            );
        }
    }
    // Pruning again with the same clock finds nothing more to do.
    let v = json(&repo, &["prune", "--policy", "level2", "--now", NOW]);
    assert_eq!(v["plan"]["remove"], serde_json::json!([]));
    assert_eq!(v["plan"]["packs"]["delete"], serde_json::json!([]));
}

#[test]
fn site_limits_the_groups() {
    let repo = Repo::new();
    weekly_history(&repo);
    let v = json(
        &repo,
        &[
            "prune", "--policy", "level2", "--site", "client-b", "--now", NOW,
        ],
    );
    let groups = v["plan"]["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 1);
    assert_eq!(groups[0]["group"]["site"], "client-b");
    let snaps = json(&repo, &["snapshots"]);
    let per_site = |s: &str| {
        snaps
            .as_array()
            .unwrap()
            .iter()
            .filter(|x| x["site"] == s)
            .count()
    };
    assert_eq!(per_site("client-a"), 8, "client-a left alone");
    assert_eq!(per_site("client-b"), 4);
}

#[test]
fn protect_keeps_what_the_policy_would_remove() {
    let repo = Repo::new();
    weekly_history(&repo);
    let snaps = json(&repo, &["snapshots", "--site", "client-a"]);
    let oldest = snaps.as_array().unwrap()[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    ok(&repo, &["-q", "protect", &oldest[..12]]);
    let listed = json(&repo, &["snapshots", "--site", "client-a"]);
    let flags: Vec<bool> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["protected"].as_bool().unwrap())
        .collect();
    assert_eq!(
        flags.iter().filter(|p| **p).count(),
        1,
        "snapshots --json shows the protection"
    );
    assert!(flags[0], "the oldest is the protected one");
    let v = json(
        &repo,
        &[
            "prune", "--policy", "level2", "--site", "client-a", "--now", NOW,
        ],
    );
    let kept = v["plan"]["groups"][0]["keep"].as_array().unwrap();
    let k = kept
        .iter()
        .find(|k| k["id"] == oldest.as_str())
        .expect("the protected snapshot is kept");
    assert!(
        k["reasons"]
            .as_array()
            .unwrap()
            .contains(&"protected".into()),
        "{k:#}"
    );
    assert!(ids(&repo).contains(&oldest));
    assert_eq!(v["done"]["snapshots_removed"], 3);

    ok(&repo, &["-q", "unprotect", &oldest[..12]]);
    let v = json(
        &repo,
        &[
            "prune", "--policy", "level2", "--site", "client-a", "--now", NOW,
        ],
    );
    assert_eq!(v["plan"]["remove"], serde_json::json!([oldest]));
    assert!(!ids(&repo).contains(&oldest));
    ok(&repo, &["-q", "check", "--read-data"]);
}

#[test]
fn a_policy_file_gives_one_site_a_stricter_contract() {
    let repo = Repo::new();
    weekly_history(&repo);
    let file = repo.dir("policies.toml");
    fs::write(
        &file,
        "timezone = \"Europe/Paris\"\n\n[policy.client-b]\nlevel = 2\nsites = [\"client-b\"]\ndb = { weekly = 6 }\n",
    )
    .unwrap();
    let f = file.to_str().unwrap();
    // level2 leaves client-b to its own policy.
    let v = json(
        &repo,
        &[
            "prune",
            "--policy",
            "level2",
            "--policy-file",
            f,
            "--now",
            NOW,
        ],
    );
    let groups = v["plan"]["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 1, "{v:#}");
    assert_eq!(groups[0]["group"]["site"], "client-a");
    let other = v["plan"]["other_groups"].to_string();
    assert!(other.contains("client-b"), "{other}");
    let count = |site: &str| {
        json(&repo, &["snapshots", "--site", site])
            .as_array()
            .unwrap()
            .len()
    };
    assert_eq!((count("client-a"), count("client-b")), (4, 8));
    // The site's own policy keeps six weeks.
    let v = json(
        &repo,
        &[
            "prune",
            "--policy",
            "client-b",
            "--policy-file",
            f,
            "--now",
            NOW,
        ],
    );
    assert_eq!(v["plan"]["groups"].as_array().unwrap().len(), 1);
    assert_eq!((count("client-a"), count("client-b")), (4, 6));
    // The report judges client-b by its contract.
    let out = run(
        &repo,
        &["--json", "report", "--policy-file", f, "--now", NOW],
    );
    let r = parse_json(&out);
    let b = r
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["group"]["site"] == "client-b")
        .unwrap();
    assert_eq!(b["policy"], "client-b");
    assert_eq!(b["checks"][0]["promise"], "weekly x6", "{b:#}");
}

#[test]
fn a_bad_policy_file_names_the_line() {
    let repo = Repo::new();
    weekly_history(&repo);
    let before = repo.files();
    let file = repo.dir("bad.toml");
    fs::write(
        &file,
        "[policy.client-b]\nlevel = 2\nsites = [\"client-b\"]\ndb = { weekly = \"four\" }\n",
    )
    .unwrap();
    let out = run(
        &repo,
        &[
            "prune",
            "--policy",
            "level2",
            "--policy-file",
            file.to_str().unwrap(),
            "--now",
            NOW,
        ],
    );
    assert_code(&out, 1, "prune with a bad policy file");
    let err = stderr(&out);
    assert!(err.contains("bad.toml") && err.contains("line 4"), "{err}");
    // Unknown rule names are errors too, with their line.
    fs::write(
        &file,
        "[policy.x]\nlevel = 2\nsites = [\"client-b\"]\n\ndb = { wekly = 4 }\n",
    )
    .unwrap();
    let out = run(
        &repo,
        &[
            "report",
            "--policy-file",
            file.to_str().unwrap(),
            "--now",
            NOW,
        ],
    );
    assert_code(&out, 1, "report with a bad policy file");
    assert!(stderr(&out).contains("line 5"), "{}", stderr(&out));
    // A missing file named on the command line is an error, not the defaults.
    let out = run(
        &repo,
        &[
            "prune",
            "--policy",
            "level2",
            "--policy-file",
            repo.dir("nope.toml").to_str().unwrap(),
        ],
    );
    assert_code(&out, 1, "prune with a missing policy file");
    assert_eq!(repo.files(), before);
}

#[test]
fn an_unknown_policy_lists_the_known_ones() {
    let repo = Repo::new();
    weekly_history(&repo);
    let before = repo.files();
    let out = run(&repo, &["prune", "--policy", "level3", "--now", NOW]);
    assert_code(&out, 1, "prune --policy level3");
    let err = stderr(&out);
    assert!(
        err.contains("level3") && err.contains("level1") && err.contains("level2"),
        "{err}"
    );
    assert_eq!(repo.files(), before);
}

#[test]
fn mostly_unused_packs_are_repacked() {
    let repo = Repo::new();
    let dir = repo.dir("www");
    fs::create_dir_all(&dir).unwrap();
    for i in 0..60 {
        fs::write(dir.join(format!("f{i:02}")), noise(1000 + i, 4000)).unwrap();
    }
    let first = push_dir(&repo, &dir, &["--time", "2026-01-01 03:00:00"]);
    for i in 1..60 {
        fs::remove_file(dir.join(format!("f{i:02}"))).unwrap();
    }
    let second = push_dir(&repo, &dir, &["--time", "2026-01-02 03:00:00"]);
    let file = repo.dir("policies.toml");
    fs::write(&file, "[policy.level1]\nlevel = 1\nfiles = { last = 1 }\n").unwrap();
    let f = file.to_str().unwrap();
    let base = [
        "prune",
        "--policy",
        "level1",
        "--policy-file",
        f,
        "--now",
        "2026-01-02 04:00:00",
        "--max-unused",
        "0",
    ];
    let mut dry = base.to_vec();
    dry.push("--dry-run");
    let plan = json(&repo, &dry);
    let packs = &plan["plan"]["packs"];
    assert!(
        !packs["repack"].as_array().unwrap().is_empty(),
        "nothing to repack: {packs:#}"
    );
    assert_eq!(plan["plan"]["remove"], serde_json::json!([first]));
    // Carry it out: the pack, 59/60 unused, is copied down to what is kept.
    let du_before = du(&repo);
    let v = json(&repo, &base);
    assert!(v["done"]["packs_written"].as_u64().unwrap() >= 1, "{v:#}");
    let du_after = du(&repo);
    assert!(
        du_after + 150_000 < du_before,
        "repacking freed too little: {du_before} -> {du_after}"
    );
    assert_eq!(ids(&repo), BTreeSet::from([second.clone()]));
    ok(&repo, &["-q", "check", "--read-data"]);
    let target = repo.dir("restored");
    ok(
        &repo,
        &[
            "-q",
            "restore",
            &second,
            "--target",
            target.to_str().unwrap(),
        ],
    );
    assert_same_tree(&dir, &target, &[]);
    // Nothing is left to reclaim.
    let v = json(&repo, &dry);
    assert_eq!(v["plan"]["packs"]["repack"], serde_json::json!([]), "{v:#}");
    assert_eq!(v["plan"]["packs"]["delete"], serde_json::json!([]), "{v:#}");
}

#[test]
fn a_damaged_snapshot_makes_prune_refuse() {
    let repo = Repo::new();
    weekly_history(&repo);
    let all = ids(&repo);
    let victim = all.iter().next().unwrap().clone();
    let path = repo.path.join("snapshots").join(&victim);
    assert!(path.is_file(), "snapshot files live in snapshots/");
    let mut bytes = fs::read(&path).unwrap();
    let n = bytes.len();
    bytes[n / 2] ^= 0x40;
    fs::write(&path, &bytes).unwrap();
    let before = repo.files();
    let out = run(&repo, &["prune", "--policy", "level2", "--now", NOW]);
    assert_code(&out, 1, "prune with a damaged snapshot");
    assert!(stderr(&out).contains(&victim[..8]), "{}", stderr(&out));
    assert_eq!(repo.files(), before, "prune deleted something");
}

#[test]
fn many_small_packs_are_merged_once() {
    let repo = Repo::new();
    let mut dumps = Vec::new();
    for d in 1..=12 {
        let data = noise(d, 50_000);
        let time = format!("2026-10-{d:02} 03:00:00");
        push_stdin(
            &repo,
            &["--name", "a.sql", "--site", "client-a", "--time", &time],
            &data,
        );
        dumps.push(data);
    }
    // Each tiny push wrote a data pack and a metadata pack.
    assert_eq!(repo.packs().len(), 24);
    let now = ["--now", "2026-10-12 04:00:00"];
    let plan = json(
        &repo,
        &[&["prune", "--policy", "level1", "--dry-run"][..], &now[..]].concat(),
    );
    assert_eq!(
        plan["plan"]["packs"]["repack"].as_array().unwrap().len(),
        24,
        "{plan}"
    );
    ok(
        &repo,
        &[&["prune", "--policy", "level1"][..], &now[..]].concat(),
    );
    assert!(
        repo.packs().len() <= 2,
        "merged into {} packs",
        repo.packs().len()
    );
    // Merged packs are not small any more in number: nothing to do next time.
    let again = json(
        &repo,
        &[&["prune", "--policy", "level1", "--dry-run"][..], &now[..]].concat(),
    );
    assert!(
        again["plan"]["packs"]["repack"]
            .as_array()
            .unwrap()
            .is_empty(),
        "{again}"
    );
    ok(&repo, &["check", "--read-data"]);
    for (i, want) in dumps.iter().enumerate() {
        let list = repo.snapshots(&[]);
        let id = str_of(&list[i], "id");
        let out = ok(&repo, &["cat", &id, "a.sql"]);
        assert_eq!(&out.stdout, want, "dump {i}");
    }
}
