//! The whole plan from one configuration: `snap run` over 60 simulated days
//! for three sites with real MariaDB dumps (a private mariadbd on a socket
//! in the test's directory) and a local off-site remote. It injects a site
//! whose database name is wrong, a failing dump, an empty dump and a missed
//! day, and checks the exit codes, that cron would mail nothing on good
//! days, and what `snap report` says on each day.

mod common;

use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Utc, Weekday};
use common::*;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

const SITES: [&str; 3] = ["boulangerie", "fleuriste", "garage"];

/// A MariaDB server of the test's own, stopped when dropped.
struct Mariadb {
    child: Child,
    socket: PathBuf,
}

impl Mariadb {
    /// Starts one in `dir`, or says why it cannot (no server installed).
    fn start(dir: &Path) -> Option<Mariadb> {
        let server = ["/usr/sbin/mariadbd", "/usr/sbin/mysqld"]
            .into_iter()
            .map(PathBuf::from)
            .find(|p| p.is_file());
        let Some(server) = server else {
            if std::env::var_os("CI").is_some() {
                panic!(
                    "mariadbd is not installed: scripts/install-deps.sh installs mariadb-server"
                );
            }
            eprintln!("SKIPPED: mariadbd is not installed (scripts/install-deps.sh installs mariadb-server)");
            return None;
        };
        let data = dir.join("data");
        let out = Command::new("mariadb-install-db")
            .args(["--no-defaults", "--user=root", "--skip-test-db"])
            .arg(format!("--datadir={}", data.display()))
            .arg("--auth-root-authentication-method=socket")
            .output()
            .expect("mariadb-install-db runs");
        assert_success(&out, "mariadb-install-db");
        let socket = dir.join("sock");
        let child = Command::new(server)
            .arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--socket={}", socket.display()))
            .arg(format!("--pid-file={}", dir.join("pid").display()))
            .arg(format!("--log-error={}", dir.join("error.log").display()))
            .args([
                "--skip-networking",
                "--user=root",
                "--innodb-buffer-pool-size=16M",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mariadbd starts");
        let db = Mariadb { child, socket };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            let ping = Command::new("mariadb-admin")
                .arg(format!("--socket={}", db.socket.display()))
                .arg("ping")
                .output()
                .expect("mariadb-admin runs");
            if ping.status.success() {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "mariadbd did not answer within 60 s: {}",
                std::fs::read_to_string(dir.join("error.log")).unwrap_or_default()
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        Some(db)
    }

    fn sql(&self, statements: &str) {
        let out = Command::new("mariadb")
            .arg(format!("--socket={}", self.socket.display()))
            .args(["-e", statements])
            .output()
            .expect("mariadb runs");
        assert_success(&out, statements);
    }
}

impl Drop for Mariadb {
    fn drop(&mut self) {
        // SAFETY: kill on the server's own pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

/// 03:00 in Paris on `day` days after 1 September 2026 (a Tuesday).
fn at(day: i64, hour: u32) -> DateTime<Utc> {
    let tz: chrono_tz::Tz = "Europe/Paris".parse().unwrap();
    let date = NaiveDate::from_ymd_opt(2026, 9, 1).unwrap() + Duration::days(day);
    tz.from_local_datetime(&date.and_hms_opt(hour, 0, 0).unwrap())
        .unwrap()
        .with_timezone(&Utc)
}

fn config_text(t: &Path, socket: &Path, garage_db: &str) -> String {
    let www = t.join("www");
    let flags = t.join("flags");
    format!(
        r#"timezone = "Europe/Paris"

[schedule]      # level2_db = "monday" is the default
level2_files = 1
deadline = "06:00"

[level1]
dump = "mariadb-dump --socket={socket} --all-databases --single-transaction"

[defaults]
# A flag file makes a site's dump fail, or come out empty.
dump = "if [ -e {flags}/fail-{{site}} ]; then echo 'simulated failure' >&2; exit 3; elif [ -e {flags}/empty-{{site}} ]; then true; else mariadb-dump --socket={socket} --single-transaction {{database}}; fi"

[sites.boulangerie]
paths = ["{www}/boulangerie"]
wordpress = true

[sites.fleuriste]
paths = ["{www}/fleuriste"]
databases = ["fleuriste"]

[sites.garage]
paths = ["{www}/garage"]
databases = ["{garage_db}"]

[remote.offsite]
url = "{offsite}"
"#,
        socket = socket.display(),
        flags = flags.display(),
        www = www.display(),
        offsite = t.join("offsite").display(),
    )
}

/// What `snap report --json` says is broken: (group label, promise).
fn broken(report: &serde_json::Value) -> Vec<String> {
    let mut out = Vec::new();
    for g in report.as_array().expect("a list of groups") {
        let grp = &g["group"];
        let label = format!(
            "{} {} level{}",
            grp["site"].as_str().unwrap_or("global"),
            grp["kind"].as_str().unwrap(),
            grp["level"]
        );
        for c in g["checks"].as_array().unwrap() {
            if c["status"] == "MISSING" {
                out.push(format!(
                    "{label}: {}: {}",
                    c["promise"].as_str().unwrap(),
                    c["detail"].as_str().unwrap()
                ));
            }
        }
        if !g["dump_alert"].is_null() {
            out.push(format!("{label}: suspect dump"));
        }
    }
    out
}

#[test]
fn sixty_days_of_snap_run_with_real_dumps() {
    let repo = Repo::new();
    let t = repo.tmp.path().to_path_buf();
    let Some(db) = Mariadb::start(&{
        let d = t.join("mdb");
        std::fs::create_dir_all(&d).unwrap();
        d
    }) else {
        return;
    };
    std::fs::create_dir_all(t.join("flags")).unwrap();
    for site in SITES {
        db.sql(&format!(
            "CREATE DATABASE {site}; CREATE TABLE {site}.posts (id INT PRIMARY KEY, body TEXT);"
        ));
        let root = t.join("www").join(site);
        std::fs::create_dir_all(root.join("wp-content/uploads")).unwrap();
        std::fs::create_dir_all(root.join("stats")).unwrap();
        std::fs::write(root.join("index.php"), format!("<?php // {site}\n")).unwrap();
        std::fs::write(
            root.join("wp-config.php"),
            format!("<?php\ndefine( 'DB_NAME', '{site}' );\ndefine( 'DB_USER', '{site}' );\n"),
        )
        .unwrap();
        std::fs::write(
            root.join("wp-content/uploads/logo.png"),
            noise(site.len() as u64, 200_000),
        )
        .unwrap();
        std::fs::write(
            root.join("stats/visits.html"),
            "visit statistics, never saved",
        )
        .unwrap();
    }
    let cfg = t.join("snap.toml");
    // Day 0: garage's database is misspelled in the configuration.
    std::fs::write(&cfg, config_text(&t, &db.socket, "garag")).unwrap();
    let snap = |args: &[&str]| -> Output {
        repo.cmd()
            .arg("--config")
            .arg(&cfg)
            .args(args)
            .output()
            .expect("snap runs")
    };
    assert_success(&snap(&["remote", "init", "offsite"]), "remote init");

    let mondays: Vec<i64> = (0..60)
        .filter(|&d| at(d, 3).with_timezone(&chrono_tz::Europe::Paris).weekday() == Weekday::Mon)
        .collect();
    let fail_day = mondays[1]; // 14 September: boulangerie's dump fails
    let empty_day = mondays[2]; // 21 September: fleuriste's dump is empty
    let missed_day = 45; // 16 October: the server was down at 03:00
    let mut quiet_days = 0;
    for day in 0..60i64 {
        let now = at(day, 3).to_rfc3339();
        // The sites live: a post a day, a page edited.
        for site in SITES {
            db.sql(&format!(
                "INSERT INTO {site}.posts VALUES ({day}, 'day {day} of {site}');"
            ));
            let page = t.join("www").join(site).join("index.php");
            let mut text = std::fs::read_to_string(&page).unwrap();
            text.push_str(&format!("// day {day}\n"));
            std::fs::write(&page, text).unwrap();
        }
        if day == 3 {
            // The typo is fixed.
            std::fs::write(&cfg, config_text(&t, &db.socket, "garage")).unwrap();
        }
        let flag = |name: &str, on: bool| {
            let p = t.join("flags").join(name);
            if on {
                std::fs::write(&p, "").unwrap();
            } else {
                let _ = std::fs::remove_file(&p);
            }
        };
        flag("fail-boulangerie", day == fail_day);
        flag("empty-fleuriste", day == empty_day);
        if day == missed_day {
            // No run today: by the deadline, the report says what is missing.
            let out = snap(&["report", "--now", &at(day, 7).to_rfc3339(), "--json"]);
            assert_code(&out, 4, "report on the missed day");
            let b = broken(&parse_json(&out));
            for want in ["global files level1", "global db level1"] {
                assert!(
                    b.iter()
                        .any(|x| x.starts_with(want) && x.contains("none by the deadline")),
                    "day {day}: {want} should be missing: {b:#?}"
                );
            }
            continue;
        }
        if day == empty_day + 1 {
            // The suspect dump did not count: tonight's run dumps again.
            let plan = parse_json(&snap(&["--json", "run", "--dry-run", "--now", &now]));
            let due: Vec<&str> = plan["steps"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s["label"].as_str().unwrap())
                .collect();
            assert!(
                due.contains(&"fleuriste db level2 (fleuriste.sql)"),
                "{due:?}"
            );
        }
        let out = snap(&["run", "--now", &now]);
        let (o, e) = (stdout(&out), stderr(&out));
        let code = out.status.code();
        let report = snap(&["report", "--now", &now, "--json"]);
        let b = broken(&parse_json(&report));
        match day {
            0..=2 => {
                assert_eq!(
                    code,
                    Some(1),
                    "day {day}: the misspelled database fails the run\n{o}{e}"
                );
                assert!(
                    o.contains("garage db level2 (garag.sql)")
                        && o.contains("Unknown database 'garag'"),
                    "day {day}: the failure is named with mariadb-dump's reason:\n{o}"
                );
                assert!(
                    o.contains("no snapshot at all"),
                    "day {day}: the report part says garage has no dump:\n{o}"
                );
                assert_eq!(
                    b.len(),
                    1,
                    "day {day}: only garage's dump is missing: {b:#?}"
                );
                assert!(
                    b[0].starts_with("garage db level2") && b[0].contains("no snapshot at all"),
                    "{b:#?}"
                );
            }
            d if d == fail_day => {
                assert_eq!(
                    code,
                    Some(1),
                    "day {day}: the failing dump fails the run\n{o}{e}"
                );
                assert!(
                    o.contains("boulangerie db level2 (boulangerie.sql) — exit 1")
                        && o.contains("simulated failure"),
                    "{o}"
                );
                let other_lines: Vec<&str> = o
                    .lines()
                    .filter(|l| !l.starts_with("    ") && !l.starts_with("snap run at"))
                    .collect();
                assert_eq!(
                    other_lines.len(),
                    1,
                    "day {day}: one failure, one block:\n{o}"
                );
                // At 03:00 the weekly dump is still due today; at 07:00 it is late.
                assert!(
                    b.is_empty(),
                    "day {day}: before the deadline nothing is broken yet: {b:#?}"
                );
                let late = snap(&["report", "--now", &at(day, 7).to_rfc3339(), "--json"]);
                assert_code(&late, 4, "report after the deadline");
                let lb = broken(&parse_json(&late));
                assert!(
                    lb.len() == 1
                        && lb[0].starts_with("boulangerie db level2")
                        && lb[0].contains("none by the deadline"),
                    "day {day}: {lb:#?}"
                );
                let text = snap(&[
                    "report",
                    "--now",
                    &at(day, 7).to_rfc3339(),
                    "--problems-only",
                ]);
                assert_code(&text, 4, "report --problems-only");
                assert_eq!(
                    stdout(&text).lines().count(),
                    2,
                    "only the broken group and its check:\n{}",
                    stdout(&text)
                );
                assert!(
                    stdout(&text).contains("2026-09-14 06:00:00 CEST"),
                    "the deadline in local time:\n{}",
                    stdout(&text)
                );
            }
            d if d == empty_day => {
                assert_eq!(
                    code,
                    Some(7),
                    "day {day}: the empty dump is saved but flagged\n{o}{e}"
                );
                assert!(
                    o.contains("fleuriste db level2 (fleuriste.sql) — exit 7"),
                    "{o}"
                );
                assert_eq!(
                    b,
                    vec!["fleuriste db level2: suspect dump".to_string()],
                    "day {day}"
                );
            }
            d if d > missed_day => {
                // The missed pushes are caught up, but the restore points of
                // 16 October do not exist: the daily dumps promised for 30
                // days and the level-1 ladder's D-1 and D-2 say so, every
                // day, and nothing else does.
                assert_eq!(code, Some(4), "day {day}\n{o}{e}");
                assert!(e.is_empty(), "day {day}: {e}");
                let heads: Vec<&str> = o.lines().filter(|l| !l.starts_with("    ")).collect();
                assert_eq!(heads.len(), 2, "day {day}: only the report's block:\n{o}");
                assert!(heads[1].starts_with("report — exit 4"), "{o}");
                assert!(
                    b.iter()
                        .any(|x| x.starts_with("global db level1: daily x30")
                            && x.contains("none in 2026-10-16")),
                    "day {day}: {b:#?}"
                );
                assert!(
                    b.iter().all(|x| x.contains("2026-10-16")
                        || (day <= missed_day + 2 && x.starts_with("global files level1: ladder"))),
                    "day {day}: {b:#?}"
                );
            }
            _ => {
                assert_eq!(code, Some(0), "day {day}: a good day\n{o}{e}");
                assert!(
                    o.is_empty() && e.is_empty(),
                    "day {day}: cron would mail this:\nstdout:\n{o}\nstderr:\n{e}"
                );
                assert!(b.is_empty(), "day {day}: {b:#?}");
                quiet_days += 1;
            }
        }
    }
    assert!(quiet_days >= 39, "{quiet_days} quiet days");

    // What was due was pushed: a level-1 files and db snapshot every day
    // but the missed one (before prune thins them), the weekly dumps, the
    // monthly files; the statistics never.
    let snaps = repo.snapshots(&[]);
    let count = |site: Option<&str>, kind: &str, level: u64| {
        snaps
            .iter()
            .filter(|s| s["site"].as_str() == site && s["kind"] == kind && s["level"] == level)
            .count()
    };
    assert!(
        count(None, "db", 1) >= 29 && count(None, "db", 1) <= 31,
        "level-1 dumps: {}",
        count(None, "db", 1)
    );
    for site in SITES {
        // Four weeks kept (a catch-up push can add one).
        let n = count(Some(site), "db", 2);
        assert!((4..=6).contains(&n), "{site}: {n} level-2 dumps");
        assert!(count(Some(site), "files", 2) >= 2, "{site}: level-2 files");
    }
    let ls = ls_paths(&repo, &["latest", "--level", "1", "--kind", "files"]);
    assert!(
        ls.iter()
            .any(|p| p.ends_with("wp-content/uploads/logo.png")),
        "{ls:?}"
    );
    assert!(
        !ls.iter().any(|p| p.contains("/stats")),
        "statistics are never saved: {ls:?}"
    );

    // The newest dumps hold the last day's rows, and restore byte for byte.
    let cat = repo.ok(&[
        "cat",
        "latest",
        "--level",
        "1",
        "--kind",
        "db",
        "all-databases.sql",
    ]);
    let all = stdout(&cat);
    for site in SITES {
        assert!(
            all.contains(&format!("day 59 of {site}")),
            "{site}'s last post is in the level-1 dump"
        );
    }
    let target = t.join("restored");
    repo.ok(&[
        "restore",
        "latest",
        "--level",
        "2",
        "--site",
        "garage",
        "--kind",
        "db",
        "--target",
        target.to_str().unwrap(),
    ]);
    let dump = std::fs::read_to_string(target.join("garage.sql")).unwrap();
    assert!(
        dump.contains("CREATE TABLE `posts`") && dump.contains("day 55 of garage"),
        "the last Monday's garage dump"
    );

    // The off-site copy holds the level-2 snapshots and nothing else, and reads back whole.
    let remote: serde_json::Value =
        parse_json(&snap(&["--remote", "offsite", "snapshots", "--json"]));
    let remote = remote.as_array().unwrap();
    assert!(
        !remote.is_empty() && remote.iter().all(|s| s["level"] == 2),
        "{remote:#?}"
    );
    assert_success(
        &snap(&["--remote", "offsite", "check", "--read-data"]),
        "check of the remote",
    );
    assert_success(
        &snap(&["check", "--read-data"]),
        "check of the local repository",
    );

    // The last report names only the missed day's hole.
    let out = snap(&[
        "report",
        "--now",
        &at(59, 7).to_rfc3339(),
        "--problems-only",
    ]);
    assert_code(&out, 4, "the last report");
    let text = stdout(&out);
    assert!(
        text.lines().count() == 2 && text.contains("none in 2026-10-16"),
        "{text}"
    );
}

/// A configuration of one site whose dump is `dump`, in the repository's
/// temporary directory.
fn one_site_config(repo: &Repo, dump: &str) -> PathBuf {
    let site = repo.dir("www/shop");
    std::fs::create_dir_all(&site).unwrap();
    std::fs::write(site.join("index.php"), "<?php\n").unwrap();
    let cfg = repo.dir("snap.toml");
    std::fs::write(
        &cfg,
        format!(
            "timezone = \"Europe/Paris\"\n[defaults]\ndump = {dump:?}\n[sites.shop]\npaths = [{:?}]\ndatabases = [\"shop\"]\nlevels = [2]\n",
            site.display().to_string()
        ),
    )
    .unwrap();
    cfg
}

#[test]
fn run_without_a_configuration_says_what_to_write() {
    let repo = Repo::new();
    // /dev/null is an empty configuration: no site, so only prune and report run.
    let out = repo.run(&["run"]);
    assert_success(&out, "run with SNAP_CONFIG=/dev/null");
    assert_eq!((stdout(&out), stderr(&out)), (String::new(), String::new()));
    let repo2 = Repo::new();
    let out = repo2
        .cmd()
        .env_remove("SNAP_CONFIG")
        .env("HOME", repo2.dir("home"))
        .env("XDG_CONFIG_HOME", repo2.dir("xdg"))
        .arg("run")
        .output()
        .unwrap();
    if std::path::Path::new("/etc/snap/snap.toml").exists() {
        eprintln!("SKIPPED the no-configuration message: this machine has /etc/snap/snap.toml");
    } else {
        assert_code(&out, 1, "run without any configuration file");
        assert!(
            stderr(&out).contains("/etc/snap/snap.toml"),
            "{}",
            stderr(&out)
        );
    }
}

#[test]
fn dry_run_lists_what_is_due_and_runs_nothing() {
    let repo = Repo::new();
    let cfg = one_site_config(&repo, "printf 'dump of {database}'");
    let out = repo
        .cmd()
        .arg("--config")
        .arg(&cfg)
        .args(["run", "--dry-run", "--now", "2026-11-30T03:00:00+01:00"])
        .output()
        .unwrap();
    assert_success(&out, "run --dry-run");
    let text = stdout(&out);
    for want in [
        "shop db level2 (shop.sql)",
        "never pushed",
        "--from-shell",
        "shop files level2",
        "prune --policy all",
        "report --problems-only",
    ] {
        assert!(text.contains(want), "{want}:\n{text}");
    }
    assert!(repo.snapshots(&[]).is_empty(), "a dry run saves nothing");
    // Done once, nothing is due again in the same period.
    let out = repo
        .cmd()
        .arg("--config")
        .arg(&cfg)
        .args(["run", "--now", "2026-11-30T03:00:00+01:00"])
        .output()
        .unwrap();
    assert_success(&out, "run");
    assert_eq!(stdout(&out), "", "{}", stderr(&out));
    assert_eq!(repo.snapshots(&[]).len(), 2);
    let out = repo
        .cmd()
        .arg("--config")
        .arg(&cfg)
        .args([
            "--json",
            "run",
            "--dry-run",
            "--now",
            "2026-11-30T04:00:00+01:00",
        ])
        .output()
        .unwrap();
    let v = parse_json(&out);
    let labels: Vec<&str> = v["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["label"].as_str().unwrap())
        .collect();
    assert_eq!(
        labels,
        ["prune", "report"],
        "only the maintenance steps are due again"
    );
}

#[test]
fn two_runs_never_overlap() {
    use std::os::fd::AsRawFd;
    let repo = Repo::new();
    let cfg = one_site_config(&repo, "printf x");
    std::fs::create_dir_all(repo.cache()).unwrap();
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(repo.cache().join("snap-run.lock"))
        .unwrap();
    // SAFETY: flock on an open descriptor; this test plays the other run.
    assert_eq!(
        unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) },
        0
    );
    let out = repo
        .cmd()
        .arg("--config")
        .arg(&cfg)
        .arg("run")
        .output()
        .unwrap();
    assert_code(&out, 11, "a second run");
    assert!(
        stderr(&out).contains("another snap run"),
        "{}",
        stderr(&out)
    );
    assert!(repo.snapshots(&[]).is_empty(), "the second run did nothing");
    drop(lock);
    let out = repo
        .cmd()
        .arg("--config")
        .arg(&cfg)
        .arg("run")
        .output()
        .unwrap();
    assert_success(&out, "the run once the lock is free");
}

#[test]
fn a_signal_stops_the_run_and_its_dump_and_records_nothing() {
    let repo = Repo::new();
    let started = repo.dir("started");
    let cfg = one_site_config(
        &repo,
        &format!("echo $$ > {}; exec sleep 300", started.display()),
    );
    let mut child = Command::new(assert_cmd::cargo::cargo_bin("snap"))
        .env("SNAP_REPO", &repo.path)
        .env("SNAP_CACHE_DIR", repo.cache())
        .env("SNAP_PASSWORD", PASSWORD)
        .env("SNAP_POLICY_FILE", "/dev/null")
        .env("SNAP_REMOTES_FILE", "/dev/null")
        .arg("--config")
        .arg(&cfg)
        .arg("run")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let pid = loop {
        if let Some(p) = std::fs::read_to_string(&started)
            .ok()
            .and_then(|t| t.trim().parse::<i32>().ok())
        {
            break p;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the dump never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    // SAFETY: signals the run we started.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(143), "128 + SIGTERM");
    // The dump (a grandchild) went with it.
    let gone = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .unwrap_or_default()
            .contains(") Z ")
    {
        assert!(
            std::time::Instant::now() < gone,
            "the dump {pid} outlived the run"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(
        repo.snapshots(&[]).is_empty(),
        "a stopped dump is no snapshot"
    );
    assert_success(&repo.run(&["check"]), "check after the stop");
    // The lock went with the process: the next run works.
    let cfg = one_site_config(&repo, "printf 'dump of {database}'");
    let out = repo
        .cmd()
        .arg("--config")
        .arg(&cfg)
        .arg("run")
        .output()
        .unwrap();
    assert_success(&out, "the next run");
    assert_eq!(repo.snapshots(&[]).len(), 2);
}

#[test]
fn the_configuration_merges_the_policy_and_remotes_files_and_refuses_a_name_in_both() {
    let repo = Repo::new();
    let cfg = repo.dir("snap.toml");
    std::fs::write(
        &cfg,
        "timezone = \"Europe/Paris\"\n[policy.client-a]\nlevel = 2\nsites = [\"a\"]\ndb = { weekly = 8 }\n[remote.here]\nurl = \"/nonexistent/here\"\n",
    )
    .unwrap();
    let policies = repo.dir("policies.toml");
    std::fs::write(
        &policies,
        "[policy.client-b]\nlevel = 2\nsites = [\"b\"]\ndb = { weekly = 6 }\n",
    )
    .unwrap();
    let remotes = repo.dir("remotes.toml");
    std::fs::write(&remotes, "[remote.there]\nurl = \"/nonexistent/there\"\n").unwrap();
    let snap = |args: &[&str]| {
        repo.cmd()
            .env("SNAP_POLICY_FILE", &policies)
            .env("SNAP_REMOTES_FILE", &remotes)
            .arg("--config")
            .arg(&cfg)
            .args(args)
            .output()
            .unwrap()
    };
    for p in ["client-a", "client-b", "level1", "all"] {
        assert_success(&snap(&["prune", "--policy", p, "--dry-run"]), p);
    }
    let out = snap(&["remote", "list"]);
    assert_success(&out, "remote list");
    assert!(
        stdout(&out).contains("here") && stdout(&out).contains("there"),
        "{}",
        stdout(&out)
    );
    // The same policy in both files: which one holds would be a guess.
    std::fs::write(
        &policies,
        "[policy.client-a]\nlevel = 2\nsites = [\"a\"]\ndb = { weekly = 2 }\n",
    )
    .unwrap();
    let out = snap(&["snapshots"]);
    assert_code(&out, 1, "a policy in both files");
    assert!(
        stderr(&out).contains("\"client-a\" is defined in both")
            && stderr(&out).contains("policies.toml"),
        "{}",
        stderr(&out)
    );
    // The policy file's alerts merge in, and one set in both is refused.
    std::fs::write(&policies, "[alerts]\nmin_dump_ratio = 0.9\n").unwrap();
    let dump = |extra: &[&str]| {
        let mut c = repo.cmd();
        c.env("SNAP_POLICY_FILE", &policies)
            .env("SNAP_REMOTES_FILE", "/dev/null")
            .arg("--config")
            .arg(&cfg)
            .args(["push", "--site", "a", "--name", "a.sql", "--from-shell"])
            .args(extra);
        c
    };
    assert_success(
        &dump(&["printf 1234567890"]).output().unwrap(),
        "first dump",
    );
    let out = dump(&["printf 12345678"]).output().unwrap();
    assert_code(
        &out,
        7,
        "80 % of the previous dump under the policy file's 0.9",
    );
    std::fs::write(
        &cfg,
        "[alerts]\nmin_dump_ratio = 0.5\n[remote.here]\nurl = \"/nonexistent/here\"\n",
    )
    .unwrap();
    let out = snap(&["snapshots"]);
    assert_code(&out, 1, "min_dump_ratio in both files");
    assert!(
        stderr(&out).contains("alerts.min_dump_ratio is set in both"),
        "{}",
        stderr(&out)
    );
    // The policy file is held to its own terms even beside a configuration.
    std::fs::write(&policies, "[sites.x]\npaths = [\"/x\"]\n").unwrap();
    let out = snap(&["snapshots"]);
    assert_code(&out, 1, "a configuration section in the policy file");
    assert!(
        stderr(&out).contains("policies.toml, line 1") && stderr(&out).contains("unknown field"),
        "{}",
        stderr(&out)
    );
    std::fs::write(&policies, "").unwrap();
    std::fs::write(&remotes, "[remote.here]\nurl = \"/elsewhere\"\n").unwrap();
    let out = snap(&["remote", "list"]);
    assert_code(&out, 1, "a remote in both files");
    assert!(
        stderr(&out).contains("\"here\" is defined in both"),
        "{}",
        stderr(&out)
    );
    // A policy named "all" would shadow prune --policy all.
    std::fs::write(&cfg, "[policy.all]\nlevel = 2\nsites = [\"a\"]\n").unwrap();
    let out = snap(&["snapshots"]);
    assert_code(&out, 1, "a policy named all");
    assert!(
        stderr(&out).contains("snap.toml, line 1") && stderr(&out).contains("another name"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_site_whose_wp_config_is_missing_fails_alone_and_the_others_are_saved() {
    let repo = Repo::new();
    let good = repo.dir("www/good");
    let broken = repo.dir("www/broken");
    std::fs::create_dir_all(&good).unwrap();
    std::fs::create_dir_all(&broken).unwrap();
    std::fs::write(good.join("index.php"), "<?php\n").unwrap();
    std::fs::write(
        good.join("wp-config.php"),
        "<?php define('DB_NAME', 'good_db');\n",
    )
    .unwrap();
    std::fs::write(broken.join("index.php"), "<?php\n").unwrap();
    let cfg = repo.dir("snap.toml");
    std::fs::write(
        &cfg,
        format!(
            "[defaults]\nlevels = [2]\nwordpress = true\ndump = \"printf 'dump of %s' {{database}}\"\n[sites.good]\npaths = [{:?}]\n[sites.broken]\npaths = [{:?}]\n",
            good.display().to_string(),
            broken.display().to_string()
        ),
    )
    .unwrap();
    let out = repo
        .cmd()
        .arg("--config")
        .arg(&cfg)
        .arg("run")
        .output()
        .unwrap();
    assert_code(&out, 1, "one site cannot be dumped");
    let text = stdout(&out);
    let wp = broken.join("wp-config.php");
    assert!(
        text.contains("broken db level2") && text.contains(&wp.display().to_string()),
        "the failing step names the missing wp-config.php:\n{text}"
    );
    // Everything else went on: the good site's dump and files, the broken
    // site's files.
    let snaps = repo.snapshots(&[]);
    let labels: std::collections::BTreeSet<String> = snaps
        .iter()
        .map(|s| {
            format!(
                "{} {}",
                s["site"].as_str().unwrap(),
                s["kind"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        labels.into_iter().collect::<Vec<_>>(),
        ["broken files", "good db", "good files"]
    );
    let cat = repo.ok(&[
        "cat",
        "latest",
        "--site",
        "good",
        "--kind",
        "db",
        "good_db.sql",
    ]);
    assert_eq!(
        stdout(&cat),
        "dump of good_db",
        "the database name came from wp-config.php"
    );
}

/// Every file under `dir`.
fn walk_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk_files(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// The pids of the processes whose command line holds `needle`.
fn pids_with(needle: &str) -> Vec<i32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let cmd = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmd)
            .replace('\0', " ")
            .contains(needle)
        {
            out.push(pid);
        }
    }
    out
}

#[test]
fn a_run_killed_with_its_push_mid_dump_leaves_a_good_repository_and_the_next_run_finishes() {
    let repo = Repo::new();
    let data = repo.dir("shop.sql");
    std::fs::write(&data, noise(7, 24_000_000)).unwrap();
    let started = repo.dir("started");
    // The dump sends its data, then hangs: the push has written packs of it.
    let cfg = one_site_config(
        &repo,
        &format!(
            "cat {}; echo $$ > {}; exec sleep 300",
            data.display(),
            started.display()
        ),
    );
    let mut run = Command::new(assert_cmd::cargo::cargo_bin("snap"))
        .env("SNAP_REPO", &repo.path)
        .env("SNAP_CACHE_DIR", repo.cache())
        .env("SNAP_PASSWORD", PASSWORD)
        .env("SNAP_POLICY_FILE", "/dev/null")
        .env("SNAP_REMOTES_FILE", "/dev/null")
        .arg("--config")
        .arg(&cfg)
        .arg("run")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    let dump = loop {
        if let Some(p) = std::fs::read_to_string(&started)
            .ok()
            .and_then(|t| t.trim().parse::<i32>().ok())
        {
            break p;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the dump never got through its data"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    // The machine dies: the run, its push and the dump, all with SIGKILL.
    let cfg_text = cfg.display().to_string();
    let pushes: Vec<i32> = pids_with(&cfg_text)
        .into_iter()
        .filter(|&p| p != run.id() as i32)
        .collect();
    assert!(!pushes.is_empty(), "the run's push is running");
    // SAFETY: signals the processes this test started.
    unsafe {
        libc::kill(run.id() as i32, libc::SIGKILL);
        for p in &pushes {
            libc::kill(*p, libc::SIGKILL);
        }
        libc::kill(dump, libc::SIGKILL);
    }
    run.wait().unwrap();
    let gone = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while pushes.iter().chain([&dump]).any(|p| {
        std::fs::read_to_string(format!("/proc/{p}/stat")).is_ok_and(|s| !s.contains(") Z "))
    }) {
        assert!(std::time::Instant::now() < gone, "killed processes linger");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let written: u64 = [repo.path.clone(), repo.cache()]
        .iter()
        .flat_map(|d| walk_files(d))
        .map(|f| std::fs::metadata(f).map(|m| m.len()).unwrap_or(0))
        .sum();
    assert!(
        written > 10_000_000,
        "the push was killed after writing packs ({written} bytes)"
    );
    assert!(repo.snapshots(&[]).is_empty(), "nothing was reported saved");
    assert_success(
        &repo.run(&["check", "--read-data"]),
        "check --read-data after the kill",
    );

    // The next night, with a dump that ends: both pushes are due and saved.
    let cfg = one_site_config(&repo, &format!("cat {}", data.display()));
    let out = repo
        .cmd()
        .arg("--config")
        .arg(&cfg)
        .arg("run")
        .output()
        .unwrap();
    assert_success(&out, "the next run");
    assert_eq!(stdout(&out), "", "{}", stderr(&out));
    assert_eq!(repo.snapshots(&[]).len(), 2);
    let cat = repo.ok(&[
        "cat", "latest", "--site", "shop", "--kind", "db", "shop.sql",
    ]);
    assert!(
        cat.stdout == std::fs::read(&data).unwrap(),
        "the dump, byte for byte"
    );
    let target = repo.dir("out");
    repo.ok(&[
        "restore",
        "latest",
        "--site",
        "shop",
        "--kind",
        "files",
        "--target",
        target.to_str().unwrap(),
    ]);
    assert_same_tree(&repo.dir("www/shop"), &target, &[]);
    assert_success(&repo.run(&["check", "--read-data"]), "final check");
}
