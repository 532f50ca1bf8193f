//! The command line, end to end (push and snapshot selection): the real
//! `snap` binary on temporary directories.

mod common;

use common::*;
use std::fs;

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
        text.contains(&format!("1 new, 1 changed, {} unchanged; read ", n - 1))
            && text.contains("new data ")
            && text.contains("stored after compression "),
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
    // Printed in the local zone, to the second.
    let paris = InZone {
        repo: &repo,
        tz: "Europe/Paris",
    };
    let text = stdout(&paris.ok(&["snapshots"]));
    assert!(text.contains("2026-03-01 02:30:00 CET"), "{text}");
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
    // The shortest prefix of `a` that no other id shares (a third id may
    // share more of `a` than `b` does).
    let unique = (1..=a.len())
        .map(|n| &a[..n])
        .find(|p| ids.iter().filter(|x| x.starts_with(p)).count() == 1)
        .expect("ids are distinct");
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
fn a_source_deeper_than_readers_accept_is_saved_up_to_the_limit() {
    let r = Repo::new();
    let src = r.dir("deep");
    // The pushed directory is level 1; 1029 more levels go past the 1024
    // that readers accept.
    let mut p = src.clone();
    for _ in 0..1029 {
        p.push("d");
    }
    fs::create_dir_all(&p).unwrap();
    fs::write(p.join("bottom.txt"), b"too deep").unwrap();
    let out = r.run(&["push", src.to_str().unwrap()]);
    assert_code(&out, 3, "push of a too deep tree");
    assert!(
        stderr(&out).contains("nested deeper than the 1024 levels"),
        "{}",
        stderr(&out)
    );
    // What was saved is readable by every command.
    r.ok(&["ls", "latest"]);
    r.ok(&["check", "--read-data"]);
    let target = r.dir("out");
    let restore = r.run(&["restore", "latest", "--target", target.to_str().unwrap()]);
    assert_code(&restore, 0, "restore");
    let deepest = target.join(std::iter::repeat_n("d", 1023).collect::<Vec<_>>().join("/"));
    assert!(
        deepest.is_dir(),
        "the deepest level a reader accepts is restored"
    );
    assert!(!deepest.join("d").exists(), "nothing deeper");
}
