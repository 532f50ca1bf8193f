//! Removing things on purpose: `snap forget` by id and `--site S --all`
//! (then prune reclaims the space), and ad-hoc snapshots (level 0, with
//! `--keep-for`) that no policy counts, the report ignores, replication
//! leaves alone by default and prune removes once expired; forget on a
//! remote. Through the real binary; the interrupted forget through the
//! storage fault injector.

mod common;

use common::*;
use snap::backend::faulty::{Fault, Faults, FaultyBackend, Op};
use snap::backend::local::LocalBackend;
use snap::backend::Backend;
use snap::ops::forget::{self, Selection};
use snap::repo::{Mode, Repository};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// A site directory with `len` bytes of its own (incompressible) and a file
/// every site shares.
fn site(repo: &Repo, name: &str, seed: u64, len: usize) -> PathBuf {
    let d = repo.dir(name);
    fs::create_dir_all(d.join("wp-content")).unwrap();
    fs::write(d.join("wp-content/own.bin"), noise(seed, len)).unwrap();
    fs::write(d.join("shared.php"), noise(999, 100_000)).unwrap();
    d
}

fn push_site(repo: &Repo, name: &str, dir: &Path, extra: &[&str]) -> String {
    let mut a = vec!["--site", name];
    a.extend_from_slice(extra);
    str_of(&repo.push(dir, &a), "id")
}

fn ids(repo: &Repo) -> Vec<String> {
    repo.snapshots(&[])
        .iter()
        .map(|s| str_of(s, "id"))
        .collect()
}

fn pack_bytes(repo: &Repo) -> u64 {
    repo.packs().iter().map(|(_, n)| n).sum()
}

#[test]
fn forget_by_id_removes_exactly_those_and_dry_run_nothing() {
    let repo = Repo::new();
    let a = site(&repo, "a", 1, 50_000);
    let b = site(&repo, "b", 2, 50_000);
    let ids1 = [
        push_site(&repo, "a", &a, &["--time", "2026-01-01T00:00:00Z"]),
        push_site(&repo, "b", &b, &["--time", "2026-01-01T00:00:00Z"]),
        push_site(&repo, "a", &a, &["--time", "2026-01-02T00:00:00Z"]),
    ];
    let before = ids(&repo);
    assert_eq!(before.len(), 3);

    // Dry run: the list, nothing changed.
    let out = repo.ok(&["forget", "--dry-run", &ids1[0][..8], &ids1[1][..10]]);
    let text = stdout(&out);
    assert!(
        text.contains(&format!("would remove {}", &ids1[0][..8])),
        "{text}"
    );
    assert!(
        text.contains(&format!("would remove {}", &ids1[1][..8])),
        "{text}"
    );
    assert!(text.contains("snap prune"), "{text}");
    assert_eq!(ids(&repo), before, "a dry run removed something");

    // One unknown id among good ones: named, nothing removed.
    let out = repo.run(&["forget", &ids1[0][..8], "0000000000ff"]);
    assert_code(&out, 1, "forget of an unknown id");
    assert!(stderr(&out).contains("0000000000ff"), "{}", stderr(&out));
    assert_eq!(ids(&repo), before, "a failed forget removed something");

    let v = repo.json(&["forget", &ids1[0][..8], &ids1[1][..8]]);
    assert_eq!(v["removed"], 2);
    let listed: Vec<String> = v["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| str_of(s, "id"))
        .collect();
    assert_eq!(listed, [ids1[0].clone(), ids1[1].clone()]);
    assert_eq!(ids(&repo), [ids1[2].clone()]);
    repo.ok(&["check"]);

    // Usage: --all needs --site, --site alone is not a selection.
    assert_code(&repo.run(&["forget", "--all"]), 1, "--all alone");
    let out = repo.run(&["forget", "--site", "a"]);
    assert_code(&out, 1, "--site alone");
    assert!(stderr(&out).contains("--all"), "{}", stderr(&out));
    assert_eq!(ids(&repo), [ids1[2].clone()]);
}

#[test]
fn protected_snapshots_go_only_with_force_and_their_marker_too() {
    let repo = Repo::new();
    let a = site(&repo, "a", 1, 50_000);
    let id = push_site(&repo, "a", &a, &[]);
    let other = push_site(&repo, "a", &a, &["--tag", "x"]);
    repo.ok(&["protect", &id[..8]]);
    let markers = || fs::read_dir(repo.path.join("protected")).unwrap().count();
    assert_eq!(markers(), 1);

    let out = repo.run(&["forget", &id[..8], &other[..8]]);
    assert_code(&out, 1, "forget of a protected snapshot");
    let e = stderr(&out);
    assert!(e.contains(&id[..8]) && e.contains("--force"), "{e}");
    assert!(
        !e.contains(&other[..8]),
        "only the protected one is named: {e}"
    );
    assert_eq!(ids(&repo).len(), 2, "nothing may go when one is refused");

    let out = repo.ok(&["forget", "--force", &id[..8]]);
    assert!(stdout(&out).contains("was protected"), "{}", stdout(&out));
    assert_eq!(ids(&repo), [other]);
    assert_eq!(markers(), 0, "the protection marker stayed");
    repo.ok(&["check"]);
}

#[test]
fn a_departed_site_goes_whole_and_prune_reclaims_its_data() {
    let repo = Repo::new();
    const OWN: usize = 3_000_000;
    let gone = site(&repo, "departed", 1, OWN);
    let stays = site(&repo, "stays", 2, 200_000);
    push_site(&repo, "departed", &gone, &["--level", "2"]);
    push_site(&repo, "departed", &gone, &["--level", "1"]);
    fs::write(gone.join("wp-content/more.bin"), noise(3, OWN)).unwrap();
    push_site(&repo, "departed", &gone, &["--level", "1"]);
    let keep = push_site(&repo, "stays", &stays, &["--level", "1"]);
    let report = stdout(&repo.ok(&["--json", "report"]));
    assert!(report.contains("\"departed\""), "{report}");

    // A typo names the sites there are, and removes nothing.
    let out = repo.run(&["forget", "--site", "departd", "--all"]);
    assert_code(&out, 1, "forget of an unknown site");
    let e = stderr(&out);
    assert!(
        e.contains("departd") && e.contains("departed") && e.contains("stays"),
        "{e}"
    );
    assert_eq!(ids(&repo).len(), 4);

    let packed = pack_bytes(&repo);
    let dry = repo.json(&["forget", "--site", "departed", "--all", "--dry-run"]);
    assert_eq!(dry["snapshots"].as_array().unwrap().len(), 3);
    assert_eq!(dry["removed"], 0);
    assert_eq!(ids(&repo).len(), 4);

    let out = repo.ok(&["forget", "--site", "departed", "--all"]);
    assert!(
        stdout(&out).contains("removed 3 snapshot(s)"),
        "{}",
        stdout(&out)
    );
    assert_eq!(ids(&repo), std::slice::from_ref(&keep));
    let report = stdout(&repo.ok(&["--json", "report"]));
    assert!(!report.contains("departed"), "{report}");

    // Forget frees nothing by itself; prune does.
    let before = pack_bytes(&repo);
    assert_eq!(before, packed, "forget touched the packs");
    repo.ok(&["prune", "--policy", "level1"]);
    let after = pack_bytes(&repo);
    println!("pack bytes: {before} before prune, {after} after");
    assert!(
        before - after >= 2 * OWN as u64 * 9 / 10,
        "prune freed {} bytes, the departed site had {} of its own",
        before - after,
        2 * OWN
    );
    repo.ok(&["check", "--read-data"]);
    let target = repo.dir("restored");
    repo.ok(&["restore", &keep[..8], "--target", target.to_str().unwrap()]);
    assert_same_tree(&stays, &target, &[]);
}

/// A forget whose storage fails at the Nth snapshot deletion (before or
/// after the storage did it) leaves a repository `check` finds clean, and
/// the same command run again finishes.
#[test]
fn an_interrupted_forget_leaves_no_finding_and_a_rerun_finishes() {
    // (which deletion fails, how, snapshots left: three of site a, one of b)
    for (n, fault, left) in [
        (1, Fault::Eio, 4),
        (2, Fault::Eio, 3),
        (2, Fault::EioAfter, 2),
    ] {
        let repo = Repo::new();
        let a = site(&repo, "a", 1, 50_000);
        for day in 1..=3 {
            push_site(
                &repo,
                "a",
                &a,
                &["--time", &format!("2026-01-0{day}T00:00:00Z")],
            );
        }
        let b = push_site(&repo, "b", &site(&repo, "b", 2, 50_000), &[]);
        let faults = Faults::new();
        let inner: Arc<dyn Backend> = Arc::new(LocalBackend::new(&repo.path));
        let backend = Arc::new(FaultyBackend::new(inner, faults.clone()));
        let r = Repository::open_with(
            backend,
            &repo.cache(),
            PASSWORD.as_bytes(),
            Mode::Exclusive,
            "forget",
            Duration::from_secs(30),
        )
        .unwrap();
        let plan = forget::plan(&r, &Selection::Site("a".into()), false).unwrap();
        assert_eq!(plan.len(), 3);
        faults.fail_nth(Op::Remove, n, fault);
        let e = forget::execute(&r, &plan).expect_err("the fault fires");
        println!("removal #{n} fails with {fault:?}: {e}");
        drop(r);
        assert_eq!(ids(&repo).len(), left, "{fault:?} at #{n}");
        repo.ok(&["check"]);
        repo.ok(&["forget", "--site", "a", "--all"]);
        assert_eq!(ids(&repo), std::slice::from_ref(&b));
        repo.ok(&["check"]);
    }
}

#[test]
fn adhoc_snapshots_need_an_expiry_and_stay_outside_the_plan() {
    let repo = Repo::new();
    let a = site(&repo, "a", 1, 200_000);
    // Files stamped just before a push are read again by the next one:
    // wait until the tree's times are past that margin.
    let settled = std::time::SystemTime::now() + Duration::from_millis(200);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while std::time::SystemTime::now() < settled {
        assert!(
            std::time::Instant::now() < deadline,
            "the clock stands still"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let s = a.to_str().unwrap();
    let out = repo.run(&["push", "--adhoc", "--site", "a", s]);
    assert_code(&out, 1, "--adhoc without --keep-for");
    assert!(stderr(&out).contains("--keep-for"), "{}", stderr(&out));
    let out = repo.run(&["push", "--keep-for", "30d", "--site", "a", s]);
    assert_code(&out, 1, "--keep-for without --adhoc");
    assert!(stderr(&out).contains("--adhoc"), "{}", stderr(&out));
    assert!(ids(&repo).is_empty());

    let plan = push_site(&repo, "a", &a, &[]);
    let adhoc = repo.push(&a, &["--site", "a", "--adhoc", "--keep-for", "30d"]);
    let adhoc_id = str_of(&adhoc, "id");
    assert_eq!(adhoc["level"], 0);
    let time = chrono::DateTime::parse_from_rfc3339(&str_of(&adhoc, "time")).unwrap();
    let at = |days: i64| {
        (time.to_utc() + chrono::Duration::days(days))
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    };
    let expires = at(30);
    assert_eq!(adhoc["expires"], expires.as_str());
    // It takes the level-1 push of the same paths as its parent.
    assert_eq!(adhoc["parent"], plan.as_str());
    assert_eq!(adhoc["summary"]["files_unchanged"], 2, "{adhoc}");
    // --level 0 is the same thing.
    let zero = repo.push(
        &a,
        &[
            "--site",
            "a",
            "--level",
            "0",
            "--keep-for",
            "36h",
            "--time",
            "2026-01-03T00:00:00Z",
        ],
    );
    assert_eq!(zero["level"], 0);
    assert_eq!(zero["expires"], "2026-01-04T12:00:00Z");
    let zero_id = str_of(&zero, "id");
    repo.ok(&["protect", &zero_id[..8]]);

    let listed = repo.snapshots(&["--level", "0"]);
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[1]["expires"], expires.as_str());
    let text = stdout(&repo.ok(&["snapshots"]));
    // Shown in local time to the second (UTC here: no zone configured).
    let local = chrono::DateTime::parse_from_rfc3339(&expires)
        .unwrap()
        .format("%Y-%m-%d %H:%M:%S UTC")
        .to_string();
    assert!(
        text.contains("adhoc") && text.contains(&format!("expires {local}")),
        "{text}"
    );

    // The report sees only the level-1 group.
    // (Exit 4: the level-1 group is fifteen days old by then.)
    let report = parse_json(&repo.run(&["--json", "report", "--now", &at(15)]));
    let groups = report.to_string();
    assert!(groups.contains("\"level\":1"), "{groups}");
    assert!(!groups.contains("\"level\":0"), "{groups}");

    // Before the expiry prune keeps it; after, it goes, unless protected,
    // although it is the newest (and only) of its group.
    let v = repo.json(&["prune", "--policy", "level1", "--now", &at(15)]);
    assert_eq!(v["plan"]["adhoc"]["expired"].as_array().unwrap().len(), 0);
    let kept: Vec<String> = v["plan"]["adhoc"]["keep"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| str_of(x, "id"))
        .collect();
    assert!(kept.contains(&adhoc_id) && kept.contains(&zero_id), "{v}");
    assert!(ids(&repo).contains(&adhoc_id));

    let out = repo.ok(&["prune", "--policy", "level1", "--now", &at(31)]);
    let text = stdout(&out);
    assert!(
        text.contains("expired ad-hoc: remove 1") && text.contains(&adhoc_id[..8]),
        "{text}"
    );
    let left = ids(&repo);
    assert!(
        !left.contains(&adhoc_id),
        "the expired ad-hoc snapshot stayed"
    );
    assert!(
        left.contains(&zero_id),
        "the protected ad-hoc snapshot went"
    );
    assert!(left.contains(&plan));
    repo.ok(&["check", "--read-data"]);
    let target = repo.dir("restored");
    repo.ok(&[
        "restore",
        &zero_id[..8],
        "--target",
        target.to_str().unwrap(),
    ]);
    assert_same_tree(&a, &target, &[]);
}

#[test]
fn replication_leaves_adhoc_snapshots_home_unless_asked() {
    let repo = Repo::new();
    let offsite = repo.dir("offsite");
    let remotes = repo.dir("remotes.toml");
    let write_remotes = |levels: &str| {
        fs::write(
            &remotes,
            format!(
                "allowed_jurisdictions = [\"FR\"]\n[remote.offsite]\nurl = \"{}\"\njurisdiction = \"FR\"\n{levels}",
                offsite.display()
            ),
        )
        .unwrap();
    };
    write_remotes("");
    let run = |args: &[&str]| {
        let out = repo
            .cmd()
            .env("SNAP_REMOTES_FILE", &remotes)
            .args(args)
            .output()
            .unwrap();
        assert_success(&out, &format!("snap {}", args.join(" ")));
        out
    };
    run(&["remote", "init", "offsite"]);
    let a = site(&repo, "a", 1, 100_000);
    let s = a.to_str().unwrap();
    run(&["push", "--site", "a", "--adhoc", "--keep-for", "4w", s]);
    run(&["push", "--site", "a", "--level", "2", s]);
    run(&["replicate", "offsite"]);
    let remote_levels = |run: &dyn Fn(&[&str]) -> std::process::Output| -> Vec<u64> {
        let v = parse_json(&run(&["--json", "--remote", "offsite", "snapshots"]));
        v.as_array()
            .unwrap()
            .iter()
            .map(|s| s["level"].as_u64().unwrap())
            .collect()
    };
    assert_eq!(remote_levels(&run), [2], "by default only level 2 goes");
    write_remotes("levels = [0, 2]\n");
    run(&["replicate", "offsite"]);
    let mut got = remote_levels(&run);
    got.sort();
    assert_eq!(got, [0, 2], "levels = [0, 2] sends ad-hoc snapshots too");

    // forget works on a remote as prune does; the local copy keeps its own.
    run(&["--remote", "offsite", "forget", "--site", "a", "--all"]);
    assert!(remote_levels(&run).is_empty());
    run(&["--remote", "offsite", "check"]);
    assert_eq!(ids(&repo).len(), 2);
}
