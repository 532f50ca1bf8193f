//! The command line, end to end: every subcommand run as the real `snap`
//! binary on temporary directories, with its output, exit codes and what it
//! leaves on disk checked.

mod common;

use common::*;
use std::collections::BTreeSet;
use std::fs;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::Path;

fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: buf is writable for its whole length.
    let r = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    assert_eq!(r, 0);
    let n = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn str_of(v: &serde_json::Value, key: &str) -> String {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("{key} is not a string in {v}"))
        .to_string()
}

/// The paths `snap ls --json` prints.
fn ls_paths(repo: &Repo, args: &[&str]) -> BTreeSet<String> {
    let mut a = vec!["ls"];
    a.extend_from_slice(args);
    repo.json(&a)
        .as_array()
        .expect("ls --json is an array")
        .iter()
        .map(|l| str_of(l, "path"))
        .collect()
}

/// The paths under `dir` as `ls` shows them ("/a/b", names made UTF-8).
fn tree_paths(dir: &Path, rel: &str, out: &mut BTreeSet<String>) {
    for e in fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let p = format!(
            "{rel}/{}",
            String::from_utf8_lossy(e.file_name().as_bytes())
        );
        out.insert(p.clone());
        if e.file_type().unwrap().is_dir() {
            tree_paths(&e.path(), &p, out);
        }
    }
}

fn tree_path_set(root: &Path) -> BTreeSet<String> {
    let mut s = BTreeSet::new();
    tree_paths(root, "", &mut s);
    s
}

#[test]
fn init_refuses_an_existing_repository_and_a_foreign_directory() {
    let repo = Repo::new();
    for d in ["keys", "snapshots", "locks", "data"] {
        assert!(repo.path.join(d).is_dir(), "init made no {d}/");
    }
    assert_eq!(fs::read_dir(repo.path.join("keys")).unwrap().count(), 1);

    let before = repo.files();
    let again = repo.run(&["init"]);
    assert_code(&again, 1, "init on an existing repository");
    assert!(stderr(&again).contains("already holds a snap repository"));
    assert_eq!(
        repo.files(),
        before,
        "a refused init changed the repository"
    );

    let foreign = repo.dir("www");
    fs::create_dir(&foreign).unwrap();
    fs::write(foreign.join("index.html"), b"<h1>client</h1>").unwrap();
    let out = repo
        .cmd()
        .env("SNAP_REPO", &foreign)
        .arg("init")
        .output()
        .unwrap();
    assert_code(&out, 1, "init on a non-empty foreign directory");
    assert!(
        stderr(&out).contains("not a snap repository"),
        "{}",
        stderr(&out)
    );
    let names: Vec<_> = fs::read_dir(&foreign)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("index.html")]);
    assert_eq!(
        fs::read(foreign.join("index.html")).unwrap(),
        b"<h1>client</h1>"
    );

    // Opening the foreign directory is refused without touching it either.
    let out = repo
        .cmd()
        .env("SNAP_REPO", &foreign)
        .arg("snapshots")
        .output()
        .unwrap();
    assert_code(&out, 1, "snapshots on a foreign directory");
    assert_eq!(fs::read_dir(&foreign).unwrap().count(), 1);
}

#[test]
fn missing_repository_exits_10_and_creates_nothing() {
    let repo = Repo::uninit();
    let src = repo.dir("src");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("f"), b"x").unwrap();
    for args in [
        vec!["snapshots"],
        vec!["ls", "latest"],
        vec!["push", src.to_str().unwrap()],
        vec!["check"],
        vec!["key", "list"],
    ] {
        let out = repo.run(&args);
        assert_code(&out, 10, &args.join(" "));
        assert!(
            stderr(&out).contains("no snap repository") && stderr(&out).contains("snap init"),
            "{}",
            stderr(&out)
        );
    }
    assert!(
        !repo.path.exists(),
        "a failed command created the repository"
    );
}

#[test]
fn a_held_exclusive_lock_exits_11() {
    let repo = Repo::new();
    let src = repo.dir("src");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("f"), b"x").unwrap();
    let lock = repo.path.join("locks").join("heldbytest");
    let info = serde_json::json!({
        "host": hostname(), "pid": std::process::id(), "time": now_secs(),
        "exclusive": true, "command": "test-holder",
    });
    fs::write(&lock, serde_json::to_vec(&info).unwrap()).unwrap();

    for args in [
        vec!["--lock-wait", "0", "push", src.to_str().unwrap()],
        vec!["--lock-wait", "0", "snapshots"],
        vec!["--lock-wait", "1", "check"],
    ] {
        let out = repo.run(&args);
        assert_code(&out, 11, &args.join(" "));
        let e = stderr(&out);
        assert!(
            e.contains("locked") && e.contains("test-holder"),
            "the message should say who holds the lock: {e}"
        );
    }
    assert_eq!(
        fs::read_dir(repo.path.join("locks")).unwrap().count(),
        1,
        "a refused command left its own lock behind"
    );

    // A lock whose process is gone is stale: ignored, and deleted.
    let dead = serde_json::json!({
        "host": hostname(), "pid": 999_999_999u32, "time": now_secs(),
        "exclusive": true, "command": "dead",
    });
    fs::write(&lock, serde_json::to_vec(&dead).unwrap()).unwrap();
    assert_eq!(repo.snapshots(&[]).len(), 0, "the refused push saved");
    assert!(!lock.exists(), "the dead process's lock was left in place");
    repo.push(&src, &[]);
    assert_eq!(repo.snapshots(&[]).len(), 1);
}

#[test]
fn key_add_list_remove() {
    let repo = Repo::new();
    let keys = repo.json(&["key", "list"]);
    let keys = keys.as_array().unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0]["current"], true);
    let first = str_of(&keys[0], "id");

    let added = repo
        .cmd()
        .env("SNAP_NEW_PASSWORD", "second password")
        .args(["--json", "key", "add"])
        .output()
        .unwrap();
    assert_success(&added, "key add");
    let second = str_of(&parse_json(&added), "added");
    assert_ne!(first, second);

    let listed = repo.json(&["key", "list"]);
    let ids: BTreeSet<String> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|k| str_of(k, "id"))
        .collect();
    assert_eq!(ids, BTreeSet::from([first.clone(), second.clone()]));

    // The new password opens the repository, and is then the current key.
    let with_new = |args: &[&str]| {
        repo.cmd()
            .env("SNAP_PASSWORD", "second password")
            .args(args)
            .output()
            .unwrap()
    };
    let out = with_new(&["--json", "key", "list"]);
    assert_success(&out, "key list with the new password");
    let current: Vec<String> = parse_json(&out)
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["current"] == true)
        .map(|k| str_of(k, "id"))
        .collect();
    assert_eq!(current, vec![second.clone()]);

    // The key in use cannot be removed.
    let out = repo.run(&["key", "remove", &first]);
    assert_code(&out, 1, "removing the key in use");
    assert!(stderr(&out).contains(&first), "{}", stderr(&out));
    assert_eq!(fs::read_dir(repo.path.join("keys")).unwrap().count(), 2);

    let out = repo.run(&["key", "remove", "ffffffffffffffffff"]);
    assert_code(&out, 1, "removing an unknown key");

    // From the other key it can; then the old password no longer opens.
    let out = with_new(&["key", "remove", &first[..8]]);
    assert_success(&out, "key remove");
    assert!(stdout(&out).contains(&first));
    assert_code(&repo.run(&["snapshots"]), 12, "old password after removal");
    assert_success(&with_new(&["snapshots"]), "new password after removal");
}

#[test]
fn push_counts_new_changed_unchanged_and_force_rereads() {
    let repo = Repo::new();
    let src = repo.dir("site");
    make_tree(&src);
    let n = count_files(&src);
    let abs = src.to_str().unwrap().to_string();
    // Files stamped just before a push are read again by the next one (their
    // times may hide a later rewrite): let the tree age past that margin.
    std::thread::sleep(std::time::Duration::from_millis(300));

    let first = repo.push(&src, &[]);
    let id1 = str_of(&first, "id");
    assert_eq!(id1.len(), 64);
    assert!(id1.starts_with(&str_of(&first, "short_id")));
    assert_eq!(first["paths"], serde_json::json!([abs]));
    assert_eq!(first["kind"], "files");
    assert_eq!(first["level"], 1);
    assert_eq!(first["host"], hostname());
    assert_eq!(first["complete"], true);
    assert_eq!(first["errors"], serde_json::json!([]));
    assert_eq!(first["parent"], serde_json::Value::Null);
    let m = &first["summary"];
    assert_eq!(
        (&m["files_new"], &m["files_changed"], &m["files_unchanged"]),
        (&n.into(), &0.into(), &0.into())
    );
    assert_eq!(m["bytes_read"], m["bytes_total"]);
    assert!(m["bytes_total"].as_u64().unwrap() > 5_000_000);
    assert!(m["blobs_added"].as_u64().unwrap() > 0);
    assert!(m["dirs"].as_u64().unwrap() >= 7);

    let second = repo.push(&src, &[]);
    assert_eq!(second["parent"], serde_json::Value::String(id1));
    let m = &second["summary"];
    assert_eq!(
        (&m["files_new"], &m["files_changed"], &m["files_unchanged"]),
        (&0.into(), &0.into(), &n.into())
    );
    assert_eq!(m["bytes_read"], 0);
    assert_eq!(m["blobs_added"], 0, "an unchanged tree adds nothing");

    let mut f = fs::OpenOptions::new()
        .append(true)
        .open(src.join("index.php"))
        .unwrap();
    std::io::Write::write_all(&mut f, b"// edited\n").unwrap();
    drop(f);
    fs::write(src.join("new.html"), b"<p>new</p>").unwrap();
    let out = repo.ok(&["push", &abs]);
    let text = stdout(&out);
    assert!(
        text.contains(&format!("1 files new, 1 changed, {} unchanged", n - 1)),
        "{text}"
    );
    let third = repo.snapshots(&[]).pop().unwrap();
    let edited = fs::metadata(src.join("index.php")).unwrap().len();
    assert_eq!(
        third["summary"]["bytes_read"],
        edited + "<p>new</p>".len() as u64
    );

    let forced = repo.push(&src, &["--force"]);
    let m = &forced["summary"];
    assert_eq!(m["files_unchanged"], 0, "--force must read every file");
    assert_eq!(
        m["files_new"].as_u64().unwrap() + m["files_changed"].as_u64().unwrap(),
        n + 1
    );
    assert_eq!(m["bytes_read"], m["bytes_total"]);
    assert_eq!(
        m["blobs_added"], 0,
        "a reread of unchanged data adds nothing"
    );
}

#[test]
fn push_records_site_kind_level_tags_and_time() {
    let repo = Repo::new();
    let src = repo.dir("client-a");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("index.html"), b"hello").unwrap();
    let s = repo.push(
        &src,
        &[
            "--site",
            "client-a",
            "--level",
            "2",
            "--tag",
            "monthly",
            "--tag",
            "offsite",
            "--time",
            "2026-03-01T02:30:00+01:00",
            "--host",
            "web7",
        ],
    );
    assert_eq!(s["site"], "client-a");
    assert_eq!(s["kind"], "files");
    assert_eq!(s["level"], 2);
    assert_eq!(s["tags"], serde_json::json!(["monthly", "offsite"]));
    assert_eq!(s["host"], "web7");
    let t = str_of(&s, "time");
    assert!(
        t.starts_with("2026-03-01T02:30:00") && t.ends_with("+01:00"),
        "{t}"
    );
    // What was reported is what was stored.
    let listed = repo.snapshots(&[]);
    assert_eq!(listed.len(), 1);
    for k in ["site", "kind", "level", "tags", "host", "time", "id"] {
        assert_eq!(listed[0][k], s[k], "{k}");
    }
    let text = stdout(&repo.ok(&["snapshots"]));
    assert!(text.contains("2026-03-01 02:30:00+01:00"), "{text}");
    assert!(text.contains("[monthly,offsite]"), "{text}");

    let out = repo.run(&["push", "--time", "yesterday-ish", src.to_str().unwrap()]);
    assert_code(&out, 1, "a bad --time");
    assert!(stderr(&out).contains("yesterday-ish"));
    let out = repo.run(&["push", "--level", "3", src.to_str().unwrap()]);
    assert_code(&out, 2, "--level 3 is a usage error");
    assert_eq!(repo.snapshots(&[]).len(), 1);
}

#[test]
fn push_excludes_by_name_by_path_and_from_a_file() {
    let repo = Repo::new();
    let src = repo.dir("site");
    make_tree(&src);
    let abs = src.to_str().unwrap();
    let list = repo.dir("excludes.txt");
    fs::write(&list, "# secrets stay home\n\n  wp-config.php  \n*.sh\n").unwrap();
    let private = format!("{abs}/private");
    repo.push(
        &src,
        &[
            "--exclude",
            "stats/",
            "--exclude",
            "*.zip",
            "--exclude",
            "**/uploads/2026",
            "--exclude",
            &private,
            "--exclude-file",
            list.to_str().unwrap(),
        ],
    );
    let got = ls_paths(&repo, &["latest"]);
    let gone = [
        "/stats",
        "/stats/access.log",
        "/wp-content/uploads/big.zip",
        "/wp-content/uploads/2026",
        "/wp-content/uploads/2026/photo.jpg",
        "/private",
        "/private/notes",
        "/wp-config.php",
        "/wp-includes/run.sh",
    ];
    for g in gone {
        assert!(!got.contains(g), "{g} was not excluded");
    }
    let mut want = tree_path_set(&src);
    for g in gone {
        want.remove(g);
    }
    assert_eq!(got, want, "exclusions took more than they named");

    let out = repo.run(&["push", "--exclude-file", "/nonexistent/list", abs]);
    assert_code(&out, 1, "a missing exclude file");
    assert!(stderr(&out).contains("/nonexistent/list"));
}

#[test]
fn push_stdin_round_trips_and_is_always_read() {
    let repo = Repo::new();
    let dump1: Vec<u8> = (0..20_000)
        .flat_map(|i| format!("INSERT INTO posts VALUES ({i}, 'title {i}');\n").into_bytes())
        .collect();
    let mut dump2 = dump1.clone();
    dump2.extend_from_slice(b"INSERT INTO posts VALUES (-1, 'injected');\n");
    let push = |data: &[u8]| {
        let out = repo
            .cmd()
            .args([
                "--json",
                "push",
                "--stdin",
                "--name",
                "client_a.sql",
                "--site",
                "client-a",
            ])
            .write_stdin(data.to_vec())
            .output()
            .unwrap();
        assert_success(&out, "push --stdin");
        parse_json(&out)
    };
    let s1 = push(&dump1);
    assert_eq!(s1["kind"], "db", "a dump defaults to kind db");
    assert_eq!(s1["paths"], serde_json::json!(["client_a.sql"]));
    assert_eq!(s1["summary"]["bytes_read"], dump1.len() as u64);
    let s2 = push(&dump2);
    assert_eq!(
        s2["summary"]["bytes_read"],
        dump2.len() as u64,
        "stdin must be read again, whatever the previous push saved"
    );
    assert!(
        s2["summary"]["bytes_added"].as_u64().unwrap() < dump1.len() as u64 / 4,
        "the unchanged start of the dump should deduplicate"
    );
    let id1 = str_of(&s1, "id");
    let id2 = str_of(&s2, "id");
    assert_ne!(id1, id2);
    assert_eq!(repo.ok(&["cat", &id1, "client_a.sql"]).stdout, dump1);
    assert_eq!(repo.ok(&["cat", &id2[..12], "/client_a.sql"]).stdout, dump2);
    assert_eq!(repo.ok(&["cat", "latest", "client_a.sql"]).stdout, dump2);

    let out = repo
        .cmd()
        .args(["push", "--stdin"])
        .write_stdin("x")
        .output()
        .unwrap();
    assert_code(&out, 1, "--stdin without --name");
    assert!(stderr(&out).contains("--name"));
    assert_eq!(repo.snapshots(&[]).len(), 2);
}

#[test]
fn push_from_command_records_the_command_and_refuses_a_failed_dump() {
    let repo = Repo::new();
    let script = "for i in 1 2 3; do echo \"row $i\"; done";
    let s = repo.json(&[
        "push",
        "--from-command",
        "--name",
        "client_b.sql",
        "--site",
        "client-b",
        "--level",
        "2",
        "--",
        "sh",
        "-c",
        script,
    ]);
    assert_eq!(s["command"], serde_json::json!(["sh", "-c", script]));
    assert_eq!(s["kind"], "db");
    assert_eq!(s["site"], "client-b");
    assert_eq!(
        repo.ok(&["cat", "latest", "client_b.sql"]).stdout,
        b"row 1\nrow 2\nrow 3\n"
    );

    let before = repo.files();
    let out = repo.run(&[
        "push",
        "--from-command",
        "--name",
        "client_b.sql",
        "--",
        "sh",
        "-c",
        "echo partial; exit 3",
    ]);
    assert_code(&out, 1, "a failed dump");
    assert!(
        stderr(&out).contains("no snapshot was recorded"),
        "{}",
        stderr(&out)
    );
    assert_eq!(repo.snapshots(&[]).len(), 1, "a failed dump was recorded");
    let snaps = |files: &std::collections::BTreeMap<std::path::PathBuf, Vec<u8>>| {
        files
            .keys()
            .filter(|p| p.starts_with("snapshots"))
            .cloned()
            .collect::<Vec<_>>()
    };
    assert_eq!(snaps(&repo.files()), snaps(&before));

    let out = repo.run(&["push", "--from-command", "--name", "x.sql"]);
    assert_code(&out, 1, "--from-command without a command");
    let out = repo.run(&[
        "push",
        "--from-command",
        "--name",
        "x.sql",
        "--",
        "/nonexistent/mysqldump",
    ]);
    assert_code(&out, 1, "a command that does not exist");
    assert!(stderr(&out).contains("/nonexistent/mysqldump"));
    assert_eq!(repo.snapshots(&[]).len(), 1);
}

/// The labels of the i-th stream snapshot of the selection test.
struct Labels {
    site: &'static str,
    level: u8,
    weekly: bool,
    kind: &'static str,
}

fn labels(i: usize) -> Labels {
    Labels {
        site: ["a", "b", "c"][i % 3],
        level: 1 + (i % 2) as u8,
        weekly: i % 4 == 0,
        kind: if i % 5 == 0 { "files" } else { "db" },
    }
}

#[test]
fn snapshots_filters_latest_and_id_prefixes() {
    let repo = Repo::new();
    const N: usize = 17; // more than 16, so two ids share a first hex digit
    for i in 0..N {
        let l = labels(i);
        let time = format!("2026-01-01T{i:02}:00:00+00:00");
        let level = l.level.to_string();
        let mut args = vec![
            "push", "--stdin", "--name", "dump.sql", "--site", l.site, "--level", &level, "--kind",
            l.kind, "--time", &time,
        ];
        if l.weekly {
            args.extend(["--tag", "weekly"]);
        }
        let out = repo
            .cmd()
            .args(&args)
            .arg("-q")
            .write_stdin(format!("dump {i}\n"))
            .output()
            .unwrap();
        assert_success(&out, "push --stdin");
    }
    let all = repo.snapshots(&[]);
    assert_eq!(all.len(), N);
    let times: Vec<String> = all.iter().map(|s| str_of(s, "time")).collect();
    let mut sorted = times.clone();
    sorted.sort();
    assert_eq!(times, sorted, "snapshots are listed oldest first");

    // Listed oldest first, so all[i] is push i.
    let expect = |f: &dyn Fn(&Labels) -> bool| -> Vec<String> {
        (0..N)
            .filter(|&i| f(&labels(i)))
            .map(|i| str_of(&all[i], "id"))
            .collect()
    };
    let cases: Vec<(Vec<&str>, Vec<String>)> = vec![
        (vec!["--site", "a"], expect(&|l| l.site == "a")),
        (vec!["--kind", "files"], expect(&|l| l.kind == "files")),
        (vec!["--kind", "db"], expect(&|l| l.kind == "db")),
        (vec!["--level", "2"], expect(&|l| l.level == 2)),
        (vec!["--tag", "weekly"], expect(&|l| l.weekly)),
        (
            vec!["--site", "b", "--level", "1", "--kind", "db"],
            expect(&|l| l.site == "b" && l.level == 1 && l.kind == "db"),
        ),
        (vec!["--site", "nobody"], vec![]),
        (vec!["--tag", "weekly", "--tag", "other"], vec![]),
    ];
    for (filter, want) in &cases {
        let got: Vec<String> = repo
            .snapshots(filter)
            .iter()
            .map(|s| str_of(s, "id"))
            .collect();
        assert_eq!(&got, want, "snapshots {filter:?}");
    }
    let text = stdout(&repo.ok(&["snapshots", "--site", "c"]));
    assert!(
        text.contains(&format!("{} snapshot(s)", expect(&|l| l.site == "c").len())),
        "{text}"
    );

    // `latest` takes the newest snapshot that passes the filters.
    let newest = |f: &dyn Fn(&Labels) -> bool| (0..N).rev().find(|&i| f(&labels(i))).unwrap();
    let cat = |args: &[&str]| {
        let mut a = vec!["cat", "latest", "dump.sql"];
        a.extend_from_slice(args);
        stdout(&repo.ok(&a))
    };
    assert_eq!(cat(&[]), format!("dump {}\n", N - 1));
    let i = newest(&|l| l.site == "b" && l.level == 2);
    assert_eq!(cat(&["--site", "b", "--level", "2"]), format!("dump {i}\n"));
    let i = newest(&|l| l.weekly && l.kind == "files");
    assert_eq!(
        cat(&["--tag", "weekly", "--kind", "files"]),
        format!("dump {i}\n")
    );
    let out = repo.run(&["cat", "latest", "dump.sql", "--site", "nobody"]);
    assert_code(&out, 1, "latest with no match");
    assert!(stderr(&out).contains("no snapshot matches"));

    // Id prefixes: unique, ambiguous, unknown, malformed.
    let ids: Vec<String> = all.iter().map(|s| str_of(s, "id")).collect();
    let (a, b) = ids
        .iter()
        .enumerate()
        .find_map(|(i, x)| {
            ids[i + 1..]
                .iter()
                .find(|y| y[..1] == x[..1])
                .map(|y| (x.clone(), y.clone()))
        })
        .expect("17 ids share a first digit");
    let common = a
        .chars()
        .zip(b.chars())
        .take_while(|(x, y)| x == y)
        .map(|(x, _)| x)
        .collect::<String>();
    let out = repo.run(&["cat", &common, "dump.sql"]);
    assert_code(&out, 1, "an ambiguous prefix");
    assert!(
        stderr(&out).contains("matches") && stderr(&out).contains("more characters"),
        "{}",
        stderr(&out)
    );
    let k = ids.iter().position(|x| *x == a).unwrap();
    let unique = &a[..common.len() + 1];
    assert_eq!(
        stdout(&repo.ok(&["cat", unique, "dump.sql"])),
        format!("dump {k}\n")
    );
    let unknown = (0..0x10000u32)
        .map(|v| format!("{v:04x}"))
        .find(|p| !ids.iter().any(|x| x.starts_with(p.as_str())))
        .unwrap();
    let out = repo.run(&["ls", &unknown]);
    assert_code(&out, 1, "an unknown prefix");
    assert!(stderr(&out).contains(&unknown), "{}", stderr(&out));
    let out = repo.run(&["ls", "not-an-id"]);
    assert_code(&out, 1, "a malformed id");
    assert!(stderr(&out).contains("not-an-id"));
}

#[test]
fn ls_lists_paths_as_text_json_and_under_a_path() {
    let repo = Repo::new();
    let src = repo.dir("site");
    make_tree(&src);
    repo.push(&src, &[]);

    let want = tree_path_set(&src);
    assert_eq!(ls_paths(&repo, &["latest"]), want);

    let text = stdout(&repo.ok(&["ls", "latest"]));
    let printed: BTreeSet<String> = text
        .lines()
        .map(|l| {
            let p = l.split_once(" /").expect("a path on every line").1;
            format!("/{}", p.split(" -> ").next().unwrap())
        })
        .collect();
    assert_eq!(printed, want);
    assert!(text.contains("/link-rel -> index.php"), "{text}");
    assert!(text.contains("-rwxr-xr-x"), "{text}");
    assert!(text
        .lines()
        .any(|l| l.starts_with('p') && l.ends_with("/pipe")));

    let v = repo.json(&["ls", "latest", "/wp-content"]);
    let items = v.as_array().unwrap();
    let under: BTreeSet<String> = items.iter().map(|l| str_of(l, "path")).collect();
    let want_under: BTreeSet<String> = want
        .iter()
        .filter(|p| p.starts_with("/wp-content"))
        .cloned()
        .collect();
    assert_eq!(under, want_under);
    let zip = items
        .iter()
        .find(|l| l["path"] == "/wp-content/uploads/big.zip")
        .unwrap();
    assert_eq!(zip["kind"], "file");
    assert_eq!(zip["size"], 5_000_000);
    assert_eq!(zip["mode"], 0o644);

    let one = repo.json(&["ls", "latest", "link-dir"]);
    assert_eq!(
        one.as_array().unwrap().len(),
        1,
        "a symlink is not followed"
    );
    assert_eq!(one[0]["target"], "wp-content/uploads");

    let out = repo.run(&["ls", "latest", "/no/such/dir"]);
    assert_code(&out, 1, "ls of a missing path");
    assert!(stderr(&out).contains("/no/such/dir"));
}

#[test]
fn cat_writes_a_file_and_names_a_missing_path() {
    let repo = Repo::new();
    let src = repo.dir("site");
    make_tree(&src);
    let s = repo.push(&src, &[]);
    let short = str_of(&s, "short_id");

    for p in [
        "index.php",
        "empty",
        "wp-content/uploads/big.zip",
        "wp-includes/hard-b",
    ] {
        let out = repo.ok(&["cat", &short, &format!("/{p}")]);
        assert_eq!(out.stdout, fs::read(src.join(p)).unwrap(), "{p}");
    }
    let out = repo.run(&["cat", &short, "/wp-content/missing.php"]);
    assert_code(&out, 1, "cat of a missing path");
    let e = stderr(&out);
    assert!(
        e.contains("/wp-content/missing.php") && e.contains(&short),
        "the error should name the path and the snapshot: {e}"
    );
    assert!(out.stdout.is_empty());
    let out = repo.run(&["cat", &short, "/wp-includes"]);
    assert_code(&out, 1, "cat of a directory");
    assert!(stderr(&out).contains("wp-includes"));
    let out = repo.run(&["cat", &short, "/"]);
    assert_code(&out, 1, "cat of the root");
}

#[test]
fn restore_reproduces_the_tree_byte_for_byte() {
    let repo = Repo::new();
    let src = repo.dir("site");
    make_tree(&src);
    let s = repo.push(&src, &[]);
    let target = repo.dir("restored");
    let out = repo.json(&[
        "restore",
        &str_of(&s, "short_id"),
        "--target",
        target.to_str().unwrap(),
    ]);
    assert_eq!(out["snapshot"], s["id"]);
    assert_eq!(out["errors"], serde_json::json!([]));
    assert_eq!(out["files"], count_files(&src));
    assert_same_tree(&src, &target, &[]);

    // Restoring again over the first restore leaves the same tree.
    fs::write(target.join("index.php"), b"defaced").unwrap();
    repo.ok(&["restore", "latest", "--target", target.to_str().unwrap()]);
    assert_same_tree(&src, &target, &[]);
}

#[test]
fn restore_include_takes_only_that_subtree() {
    let repo = Repo::new();
    let src = repo.dir("site");
    make_tree(&src);
    repo.push(&src, &[]);
    let target = repo.dir("restored");
    let t = target.to_str().unwrap();
    repo.ok(&[
        "restore",
        "latest",
        "--target",
        t,
        "--include",
        "/wp-content/uploads",
    ]);
    let top: Vec<_> = fs::read_dir(&target)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(top, vec![std::ffi::OsString::from("wp-content")]);
    let below: Vec<_> = fs::read_dir(target.join("wp-content"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(below, vec![std::ffi::OsString::from("uploads")]);
    assert_same_tree(
        &src.join("wp-content/uploads"),
        &target.join("wp-content/uploads"),
        &[],
    );

    // A hard link whose other name is not restored is restored as a file.
    let t2 = repo.dir("one-file");
    repo.ok(&[
        "restore",
        "latest",
        "--target",
        t2.to_str().unwrap(),
        "--include",
        "wp-includes/hard-b",
    ]);
    assert_eq!(
        fs::read(t2.join("wp-includes/hard-b")).unwrap(),
        fs::read(src.join("hard-a")).unwrap()
    );
    assert_eq!(fs::read_dir(t2.join("wp-includes")).unwrap().count(), 1);
    assert!(!t2.join("hard-a").exists());

    let out = repo.run(&["restore", "latest", "--target", t, "--include", "/nope"]);
    assert_code(&out, 1, "--include of a missing path");
    assert!(stderr(&out).contains("/nope"));
}

#[test]
fn restore_keeps_a_sparse_file_sparse() {
    let repo = Repo::new();
    let src = repo.dir("vm");
    fs::create_dir(&src).unwrap();
    // Past 4 GiB, so 32-bit offsets would show.
    const SIZE: u64 = 5 << 30;
    let writes: [(u64, &[u8]); 4] = [
        (1_000_000, b"superblock"),
        (700 << 20, b"middle"),
        ((4 << 30) + 12_345, b"past 4 GiB"),
        (SIZE - 3, b"end"),
    ];
    let f = fs::File::create(src.join("disk.img")).unwrap();
    f.set_len(SIZE).unwrap();
    for (off, data) in writes {
        f.write_all_at(data, off).unwrap();
    }
    drop(f);
    set_mtime(&src.join("disk.img"), 1_700_000_000, 5);
    repo.push(&src, &[]);
    let target = repo.dir("restored");
    repo.ok(&["restore", "latest", "--target", target.to_str().unwrap()]);

    let p = target.join("disk.img");
    let md = fs::metadata(&p).unwrap();
    assert_eq!(md.len(), SIZE);
    assert_eq!((md.mtime(), md.mtime_nsec()), (1_700_000_000, 5));
    assert!(
        md.blocks() * 512 < 64 << 20,
        "restored file allocates {} bytes of {SIZE}: not sparse",
        md.blocks() * 512
    );
    let f = fs::File::open(&p).unwrap();
    for (off, data) in writes {
        let mut buf = vec![0u8; data.len()];
        f.read_exact_at(&mut buf, off).unwrap();
        assert_eq!(buf, data, "bytes at {off}");
    }
    // Every byte outside the holes is what was written, zero elsewhere.
    let expected = |off: u64| -> u8 {
        writes
            .iter()
            .find(|(o, d)| off >= *o && off < o + d.len() as u64)
            .map_or(0, |(o, d)| d[(off - o) as usize])
    };
    let fd = std::os::fd::AsRawFd::as_raw_fd(&f);
    let mut pos: i64 = 0;
    let mut data_bytes = 0u64;
    loop {
        // SAFETY: fd is an open file.
        let start = unsafe { libc::lseek(fd, pos, libc::SEEK_DATA) };
        if start < 0 {
            break;
        }
        // SAFETY: as above.
        let end = unsafe { libc::lseek(fd, start, libc::SEEK_HOLE) };
        let mut buf = vec![0u8; (end - start) as usize];
        let mut g = &f;
        g.seek(SeekFrom::Start(start as u64)).unwrap();
        g.read_exact(&mut buf).unwrap();
        for (i, b) in buf.iter().enumerate() {
            let off = start as u64 + i as u64;
            assert_eq!(*b, expected(off), "byte at {off}");
        }
        data_bytes += buf.len() as u64;
        pos = end;
    }
    assert!(
        data_bytes > 0 && data_bytes < 64 << 20,
        "{data_bytes} data bytes"
    );
}

#[test]
fn restore_a_300_deep_tree() {
    let repo = Repo::new();
    let src = repo.dir("deep");
    let mut p = src.clone();
    for i in 0..300 {
        p.push(format!("d{i:03}"));
        if i == 150 {
            fs::create_dir_all(&p).unwrap();
            fs::write(p.join("middle.txt"), b"half way").unwrap();
        }
    }
    fs::create_dir_all(&p).unwrap();
    fs::write(p.join("bottom.txt"), b"the bottom").unwrap();
    let s = repo.push(&src, &[]);
    assert_eq!(s["summary"]["dirs"], 301);
    let target = repo.dir("restored");
    repo.ok(&["restore", "latest", "--target", target.to_str().unwrap()]);
    assert_same_tree(&src, &target, &[]);
    let rel = p.strip_prefix(&src).unwrap().join("bottom.txt");
    let out = repo.ok(&["cat", "latest", rel.to_str().unwrap()]);
    assert_eq!(out.stdout, b"the bottom");
    assert_eq!(ls_paths(&repo, &["latest"]).len(), 302);
}

fn chown_tree(p: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::lchown(p, Some(uid), Some(gid)).unwrap();
    if fs::symlink_metadata(p).unwrap().is_dir() {
        for e in fs::read_dir(p).unwrap() {
            chown_tree(&e.unwrap().path(), uid, gid);
        }
    }
}

#[test]
fn an_unreadable_file_exits_3_with_an_incomplete_snapshot() {
    use std::os::unix::fs::PermissionsExt;
    let repo = Repo::new();
    let src = repo.dir("site");
    make_tree(&src);
    let locked = src.join("wp-includes/locked.php");
    fs::write(&locked, b"<?php // nobody may read this").unwrap();
    fs::set_permissions(&locked, fs::Permissions::from_mode(0o000)).unwrap();

    // As root, permission bits do not stop a read: push as `nobody`, who can
    // traverse everything but open neither the 000 file nor the 0600 ones.
    let root = unsafe { libc::geteuid() } == 0;
    let mut cmd = if root {
        fs::set_permissions(repo.tmp.path(), fs::Permissions::from_mode(0o755)).unwrap();
        chown_tree(&repo.path, 65534, 65534);
        let mut c = std::process::Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(assert_cmd::cargo::cargo_bin("snap"));
        c
    } else {
        std::process::Command::new(assert_cmd::cargo::cargo_bin("snap"))
    };
    let unreadable: Vec<&str> = if root {
        vec!["wp-includes/locked.php", "wp-config.php"]
    } else {
        vec!["wp-includes/locked.php"]
    };
    // The 0750 directory is readable by its owner only: keep it out.
    let private = format!("{}/private", src.display());
    let out = cmd
        .env("SNAP_REPO", &repo.path)
        .env("SNAP_PASSWORD", PASSWORD)
        .args(["push", "--exclude", &private, src.to_str().unwrap()])
        .output()
        .unwrap();
    assert_code(&out, 3, "push with an unreadable file");
    let e = stderr(&out);
    for u in &unreadable {
        assert!(
            e.contains(&*src.join(u).to_string_lossy()),
            "stderr must name {u}: {e}"
        );
    }
    assert!(stdout(&out).contains("incomplete"), "{}", stdout(&out));

    let s = repo.snapshots(&[]).pop().unwrap();
    assert_eq!(s["complete"], false);
    let errs: BTreeSet<String> = s["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| str_of(e, "path"))
        .collect();
    let want: BTreeSet<String> = unreadable
        .iter()
        .map(|u| src.join(u).to_string_lossy().into_owned())
        .collect();
    assert_eq!(errs, want);
    assert!(stdout(&repo.ok(&["snapshots"])).contains("(incomplete)"));

    // Everything else restores.
    let target = repo.dir("restored");
    repo.ok(&["restore", "latest", "--target", target.to_str().unwrap()]);
    let mut skip: Vec<&Path> = unreadable.iter().map(Path::new).collect();
    skip.push(Path::new("private"));
    assert_same_tree(&src, &target, &skip);
}

#[test]
fn a_closed_pipe_is_not_an_error() {
    let repo = Repo::new();
    let src = repo.dir("many");
    fs::create_dir(&src).unwrap();
    for i in 0..2000 {
        fs::write(
            src.join(format!(
                "a-rather-long-file-name-to-fill-the-pipe-{i:05}.html"
            )),
            i.to_string(),
        )
        .unwrap();
    }
    fs::write(src.join("big.bin"), noise(9, 3_000_000)).unwrap();
    repo.push(&src, &[]);
    let snap = assert_cmd::cargo::cargo_bin("snap");
    for (pipeline, lines) in [
        (format!("'{}' ls latest | head -1", snap.display()), 1),
        (
            format!(
                "'{}' cat latest big.bin | head -c 100 | wc -c",
                snap.display()
            ),
            1,
        ),
        (format!("'{}' snapshots | true", snap.display()), 0),
        (format!("'{}' snapshots --json | true", snap.display()), 0),
        (format!("'{}' ls latest --json | true", snap.display()), 0),
    ] {
        let out = std::process::Command::new("bash")
            .args(["-c", &format!("{pipeline}; exit ${{PIPESTATUS[0]}}")])
            .env("SNAP_REPO", &repo.path)
            .env("SNAP_PASSWORD", PASSWORD)
            .output()
            .unwrap();
        assert_code(&out, 0, &pipeline);
        assert_eq!(stderr(&out), "", "{pipeline}: no error message");
        assert_eq!(stdout(&out).lines().count(), lines, "{pipeline}");
    }
}

#[test]
fn restore_replaces_planted_symlinks_instead_of_following_them() {
    // After a break-in the target may hold symlinks the intruder left where
    // the snapshot has a directory or a file: restore must not write through
    // them to places outside the target.
    let repo = Repo::new();
    let src = repo.dir("site");
    fs::create_dir_all(src.join("wp-content/uploads")).unwrap();
    fs::write(src.join("wp-content/uploads/a.jpg"), b"jpeg").unwrap();
    fs::write(src.join("index.php"), b"<?php").unwrap();
    repo.push(&src, &[]);

    let outside = repo.dir("outside");
    fs::create_dir(&outside).unwrap();
    fs::write(outside.join("passwd"), b"root:x:0:0").unwrap();
    let target = repo.dir("www");
    fs::create_dir(&target).unwrap();
    std::os::unix::fs::symlink(&outside, target.join("wp-content")).unwrap();
    std::os::unix::fs::symlink(outside.join("passwd"), target.join("index.php")).unwrap();
    repo.ok(&["restore", "latest", "--target", target.to_str().unwrap()]);

    let left: Vec<_> = fs::read_dir(&outside)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        left,
        vec![std::ffi::OsString::from("passwd")],
        "restore wrote outside the target"
    );
    assert_eq!(fs::read(outside.join("passwd")).unwrap(), b"root:x:0:0");
    assert_same_tree(&src, &target, &[]);
}

#[test]
fn cat_and_include_take_non_utf8_paths() {
    let r = Repo::new();
    let src = r.dir("site");
    let dir = src.join(std::ffi::OsStr::from_bytes(b"t\xe9l\xe9chargements"));
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join(latin1_name()), b"bonjour").unwrap();
    fs::write(src.join("other.txt"), b"left out").unwrap();
    r.push(&src, &[]);

    let mut rel = b"t\xe9l\xe9chargements/".to_vec();
    rel.extend_from_slice(latin1_name().as_bytes());
    let rel = std::ffi::OsStr::from_bytes(&rel);
    let out = r.cmd().args(["cat", "latest"]).arg(rel).output().unwrap();
    assert_success(&out, "cat of a non-UTF-8 path");
    assert_eq!(out.stdout, b"bonjour");

    let target = r.dir("restored");
    let out = r
        .cmd()
        .args(["restore", "latest", "--target"])
        .arg(&target)
        .arg("--include")
        .arg(rel)
        .output()
        .unwrap();
    assert_success(&out, "restore --include of a non-UTF-8 path");
    let got = target
        .join(std::ffi::OsStr::from_bytes(b"t\xe9l\xe9chargements"))
        .join(latin1_name());
    assert_eq!(fs::read(got).unwrap(), b"bonjour");
    assert!(
        !target.join("other.txt").exists(),
        "--include restored more than asked"
    );
}
