//! Time, names and order through the command line: a snapshot dated in the
//! future, equal times, refused values (empty names, absurd times, unsafe
//! stream names), `report` before every snapshot, paths as they were backed
//! up, and the pushed directory's own metadata.

mod common;

use common::*;
use serde_json::Value;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Output;

const TZ: &str = "UTC";

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

fn refused(repo: &Repo, args: &[&str], stdin: &[u8], what: &str) {
    let out = snap_cmd(repo, args)
        .write_stdin(stdin.to_vec())
        .output()
        .expect("snap runs");
    assert!(
        !out.status.success() && stderr(&out).contains(what),
        "snap {} should be refused with {what:?}:\n{}",
        args.join(" "),
        stderr(&out)
    );
}

/// A minute ago, moved by `days` (RFC 3339, UTC): never after the clock of
/// the commands the test runs next, unless `days` is positive.
fn day(days: i64) -> String {
    (chrono::Utc::now() - chrono::Duration::minutes(1) + chrono::Duration::days(days)).to_rfc3339()
}

fn kept_ids(plan: &Value) -> Vec<(String, Vec<String>)> {
    plan["plan"]["groups"][0]["keep"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            let reasons = k["reasons"].as_array().unwrap();
            (
                k["id"].as_str().unwrap().to_string(),
                reasons.iter().map(|r| r.as_str().unwrap().into()).collect(),
            )
        })
        .collect()
}

#[test]
fn a_future_dated_snapshot_displaces_no_real_restore_point() {
    let repo = Repo::new();
    let src = repo.dir("www");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("day.txt"), "future").unwrap();
    let s = src.to_str().unwrap();
    let ahead = day(365);
    let out = ok(&repo, &["--json", "push", "--time", &ahead, s]);
    assert!(
        stderr(&out).contains("more than a day ahead"),
        "a time a year ahead draws a warning: {}",
        stderr(&out)
    );
    let future_id = parse_json(&out)["id"].as_str().unwrap().to_string();
    let mut real: Vec<String> = Vec::new();
    for d in (0..4).rev() {
        fs::write(src.join("day.txt"), format!("day -{d}")).unwrap();
        let t = day(-d);
        let pushed = json(&repo, &["push", "--time", &t, s]);
        if let Some(prev) = real.last() {
            assert_eq!(
                pushed["parent"].as_str(),
                Some(prev.as_str()),
                "the parent is the previous real snapshot, not the future one"
            );
        }
        real.push(pushed["id"].as_str().unwrap().to_string());
        json(&repo, &["prune", "--policy", "level1", "--now", &t]);
    }
    let plan = json(
        &repo,
        &["prune", "--policy", "level1", "--now", &day(0), "--dry-run"],
    );
    let kept = kept_ids(&plan);
    let reasons = |id: &str| kept.iter().find(|k| k.0 == id).map(|k| k.1.clone());
    assert_eq!(
        reasons(&future_id),
        Some(vec!["dated after now".to_string()]),
        "{kept:?}"
    );
    for (i, id) in real.iter().enumerate() {
        assert!(
            reasons(id).is_some(),
            "real snapshot of day -{} was removed: {kept:?}",
            3 - i
        );
    }
    assert!(reasons(&real[3])
        .unwrap()
        .contains(&"newest of its group".to_string()));
    let latest = ok(&repo, &["cat", "latest", "/day.txt"]);
    assert_eq!(
        stdout(&latest),
        "day -0",
        "latest is the newest real snapshot"
    );
}

#[test]
fn equal_times_resolve_to_the_last_pushed() {
    let repo = Repo::new();
    let src = repo.dir("www");
    fs::create_dir(&src).unwrap();
    let s = src.to_str().unwrap();
    let t = day(-1);
    let mut ids = Vec::new();
    for i in 0..5 {
        fs::write(src.join("n.txt"), format!("push {i}")).unwrap();
        let pushed = json(&repo, &["push", "--time", &t, s]);
        ids.push(pushed["id"].as_str().unwrap().to_string());
    }
    assert_eq!(stdout(&ok(&repo, &["cat", "latest", "/n.txt"])), "push 4");
    let listed: Vec<String> = json(&repo, &["snapshots"])
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(listed, ids, "snapshots are listed in push order");
    let plan = json(
        &repo,
        &["prune", "--policy", "level1", "--now", &day(0), "--dry-run"],
    );
    let kept: Vec<String> = kept_ids(&plan).into_iter().map(|k| k.0).collect();
    assert_eq!(
        kept,
        [ids[4].clone()],
        "the last one pushed stands for the day"
    );
}

#[test]
fn absurd_times_are_refused() {
    let repo = Repo::new();
    let src = repo.dir("www");
    fs::create_dir(&src).unwrap();
    let s = src.to_str().unwrap();
    refused(
        &repo,
        &["push", "--time", "1969-12-31T23:00:00Z", s],
        b"",
        "before 1970",
    );
    refused(
        &repo,
        &["push", "--time", "9999-01-01T00:00:00Z", s],
        b"",
        "years ahead",
    );
    refused(
        &repo,
        &["push", "--time", "yesterday", s],
        b"",
        "--time \"yesterday\"",
    );
    assert!(repo.snapshots(&[]).is_empty());
    refused(
        &repo,
        &["prune", "--policy", "level1", "--now", "garbage"],
        b"",
        "--now \"garbage\"",
    );
    refused(
        &repo,
        &["report", "--now", "garbage"],
        b"",
        "--now \"garbage\"",
    );
}

#[test]
fn empty_names_are_refused() {
    let repo = Repo::new();
    let src = repo.dir("www");
    fs::create_dir(&src).unwrap();
    let s = src.to_str().unwrap();
    for flag in ["--site", "--tag", "--host"] {
        refused(&repo, &["push", flag, "", s], b"", "empty value");
        refused(&repo, &["push", flag, " ", s], b"", "empty value");
    }
    refused(
        &repo,
        &["prune", "--policy", "level2", "--site", ""],
        b"",
        "empty value",
    );
    refused(&repo, &["report", "--site", ""], b"", "empty value");
    refused(&repo, &["snapshots", "--site", ""], b"", "empty value");
    assert!(repo.snapshots(&[]).is_empty());
}

#[test]
fn stream_names_must_be_one_file_name() {
    let repo = Repo::new();
    for name in ["..", ".", "", "a/b", "/db.sql"] {
        refused(
            &repo,
            &["push", "--stdin", "--name", name],
            b"dump",
            "is not a file name",
        );
    }
    assert!(repo.snapshots(&[]).is_empty());
    let out = snap_cmd(&repo, &["push", "--stdin", "--name", "db.sql"])
        .write_stdin(b"dump".to_vec())
        .output()
        .unwrap();
    assert_success(&out, "push --name db.sql");
    assert_eq!(stdout(&ok(&repo, &["cat", "latest", "db.sql"])), "dump");
}

#[test]
fn report_before_every_snapshot_says_so() {
    let repo = Repo::new();
    let src = repo.dir("www");
    fs::create_dir(&src).unwrap();
    ok(&repo, &["push", "--time", &day(-1), src.to_str().unwrap()]);
    let out = run(&repo, &["report", "--now", "2000-01-01T00:00:00Z"]);
    let text = stdout(&out);
    assert!(text.contains("dated after now"), "{text}");
    assert!(!text.contains("day(s) old"), "no negative age: {text}");
    let v = parse_json(&run(
        &repo,
        &["--json", "report", "--now", "2000-01-01T00:00:00Z"],
    ));
    assert_eq!(v[0]["points"], 0);
    assert_eq!(v[0]["future"], 1);
}

#[test]
fn paths_as_backed_up_work_for_ls_cat_and_include() {
    let repo = Repo::new();
    let src = repo.dir("www");
    fs::create_dir_all(src.join("site2/img")).unwrap();
    fs::create_dir_all(src.join("site1")).unwrap();
    fs::write(src.join("site2/index.html"), "<h1>2</h1>").unwrap();
    fs::write(src.join("site2/img/a.png"), "png").unwrap();
    fs::write(src.join("site1/index.html"), "<h1>1</h1>").unwrap();
    ok(&repo, &["push", src.to_str().unwrap()]);
    let abs = |p: &str| src.join(p).to_str().unwrap().to_string();
    for form in [abs("site2/index.html"), "/site2/index.html".into()] {
        assert_eq!(stdout(&ok(&repo, &["cat", "latest", &form])), "<h1>2</h1>");
    }
    let listed = stdout(&ok(&repo, &["ls", "latest", &abs("site2")]));
    assert!(listed.contains("/site2/img/a.png"), "{listed}");
    assert!(!listed.contains("site1"), "{listed}");
    let whole = stdout(&ok(&repo, &["ls", "latest", src.to_str().unwrap()]));
    assert!(whole.contains("/site1/index.html"), "{whole}");
    let target = repo.dir("restored");
    ok(
        &repo,
        &[
            "restore",
            "latest",
            "--target",
            target.to_str().unwrap(),
            "--include",
            &abs("site2"),
        ],
    );
    assert_eq!(
        fs::read(target.join("site2/img/a.png")).unwrap(),
        b"png",
        "the backed-up path selects the same subtree"
    );
    assert!(!target.join("site1").exists());
    let out = run(&repo, &["cat", "latest", &abs("nothing/here")]);
    assert!(!out.status.success());
    // Several sources: each is an entry named by its last component.
    let other = repo.dir("etc");
    fs::create_dir(&other).unwrap();
    fs::write(other.join("hosts"), "127.0.0.1").unwrap();
    ok(
        &repo,
        &["push", src.to_str().unwrap(), other.to_str().unwrap()],
    );
    let hosts = other.join("hosts");
    assert_eq!(
        stdout(&ok(&repo, &["cat", "latest", hosts.to_str().unwrap()])),
        "127.0.0.1"
    );
}

fn set_mtime(p: &Path, secs: i64, nanos: i64) {
    let c = std::ffi::CString::new(p.to_str().unwrap()).unwrap();
    let t = libc::timespec {
        tv_sec: secs as libc::time_t,
        tv_nsec: nanos as libc::c_long,
    };
    // SAFETY: c is a valid path and the array has two entries.
    let r = unsafe { libc::utimensat(libc::AT_FDCWD, c.as_ptr(), [t, t].as_ptr(), 0) };
    assert_eq!(r, 0, "utimensat {}", p.display());
}

#[test]
fn the_pushed_directory_keeps_its_own_mode_and_mtime() {
    use std::os::unix::fs::MetadataExt;
    let repo = Repo::new();
    let src = repo.dir("site");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("index.html"), "x").unwrap();
    fs::set_permissions(&src, fs::Permissions::from_mode(0o710)).unwrap();
    set_mtime(&src, 1_700_000_000, 123_456_789);
    let pushed = json(&repo, &["push", src.to_str().unwrap()]);
    assert_eq!(pushed["root"]["mode"], 0o710);
    let target = repo.dir("restored");
    ok(
        &repo,
        &["restore", "latest", "--target", target.to_str().unwrap()],
    );
    let md = fs::metadata(&target).unwrap();
    assert_eq!(md.mode() & 0o7777, 0o710);
    assert_eq!((md.mtime(), md.mtime_nsec()), (1_700_000_000, 123_456_789));
    let src_md = fs::metadata(&src).unwrap();
    assert_eq!((md.uid(), md.gid()), (src_md.uid(), src_md.gid()));
}
