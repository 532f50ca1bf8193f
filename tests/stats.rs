//! `snap stats`: exact counts and sums on a small repository of three
//! sites (files and db, two levels), deduplication when sites share files,
//! `--site`, `--snapshots` and the JSON fields.

mod common;

use common::*;
use std::fs;

const KIB: u64 = 1024;

/// Compressible text that repeats no chunk: numbered lines.
fn text(len: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let mut i = 0u64;
    while out.len() < len {
        out.extend_from_slice(format!("row {i} value {} status published\n", i * 7).as_bytes());
        i += 1;
    }
    out.truncate(len);
    out
}

/// Builds the repository; returns it with the sizes of the distinct
/// contents it holds (each once).
fn build() -> (Repo, u64) {
    let repo = Repo::new();
    let (a, b, c) = (repo.dir("a"), repo.dir("b"), repo.dir("c"));
    for d in [&a, &b, &c] {
        fs::create_dir(d).unwrap();
    }
    let shared = noise(9, 300 * KIB as usize);
    fs::write(a.join("a1.jpg"), noise(1, 150 * KIB as usize)).unwrap();
    fs::write(a.join("shared.pdf"), &shared).unwrap();
    fs::write(b.join("b1.jpg"), noise(2, 50 * KIB as usize)).unwrap();
    fs::write(b.join("shared.pdf"), &shared).unwrap();
    fs::write(c.join("c1.txt"), text(200 * KIB as usize)).unwrap();
    let dump_a = repo.dir("a.sql");
    let dump_b = repo.dir("b.sql");
    fs::write(&dump_a, noise(3, 40 * KIB as usize)).unwrap();
    fs::write(&dump_b, noise(4, 30 * KIB as usize)).unwrap();

    let s = |p: &std::path::Path| p.to_str().unwrap().to_string();
    repo.ok(&["push", "--site", "a", "--level", "1", &s(&a)]);
    repo.ok(&["push", "--site", "a", "--level", "2", &s(&a)]);
    repo.ok(&["push", "--site", "b", "--level", "1", &s(&b)]);
    repo.ok(&["push", "--site", "c", "--level", "2", &s(&c)]);
    for _ in 0..2 {
        let p = s(&dump_a);
        repo.ok(&[
            "push",
            "--site",
            "a",
            "--name",
            "a.sql",
            "--from-command",
            "--",
            "cat",
            &p,
        ]);
    }
    let p = s(&dump_b);
    repo.ok(&[
        "push",
        "--site",
        "b",
        "--level",
        "2",
        "--name",
        "b.sql",
        "--from-command",
        "--",
        "cat",
        &p,
    ]);
    (repo, (150 + 300 + 50 + 200 + 40 + 30) * KIB)
}

fn u(v: &serde_json::Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a count: {v}"))
}

#[test]
fn stats_count_and_sum_what_the_snapshots_recorded() {
    let (repo, unique) = build();
    let snaps = repo.snapshots(&[]);
    assert_eq!(snaps.len(), 7);
    let st = repo.json(&["stats"]);
    let r = &st["repository"];
    assert_eq!(u(&r["snapshots"]), 7);
    let logical: u64 = snaps.iter().map(|s| u(&s["summary"]["bytes_total"])).sum();
    assert_eq!(
        logical,
        (450 * 2 + 350 + 200 + 40 * 2 + 30) * KIB,
        "the fixture's own sum"
    );
    assert_eq!(u(&r["logical_bytes"]), logical);
    assert_eq!(
        u(&r["data"]["raw_bytes"]),
        unique,
        "every distinct content once: {r}"
    );
    let dedup = r["dedup_ratio"].as_f64().unwrap();
    assert!((dedup - logical as f64 / unique as f64).abs() < 1e-9, "{r}");
    assert!(dedup > 1.5, "two sites share a file and pushes repeat: {r}");
    let compression = r["compression_ratio"].as_f64().unwrap();
    assert!(compression > 1.2, "the text file compresses: {r}");
    let packs = repo.packs();
    assert_eq!(u(&r["packs"]), packs.len() as u64);
    assert_eq!(
        u(&r["pack_bytes"]),
        packs.iter().map(|(_, n)| n).sum::<u64>()
    );
    assert_eq!(u(&r["packs_not_indexed"]), 0);
    assert!(u(&r["metadata"]["blobs"]) > 0);
    assert!(
        st.get("snapshots").is_none(),
        "no snapshot rows unless asked"
    );

    let groups = st["groups"].as_array().unwrap();
    let key = |g: &serde_json::Value| {
        format!(
            "{} {} {}",
            g["site"].as_str().unwrap_or("-"),
            g["kind"].as_str().unwrap(),
            g["level"]
        )
    };
    let keys: Vec<String> = groups.iter().map(key).collect();
    assert_eq!(
        keys,
        [
            "a files 1",
            "a files 2",
            "a db 1",
            "b files 1",
            "b db 2",
            "c files 2"
        ],
        "sorted by site, kind, level"
    );
    for g in groups {
        let mine: Vec<&serde_json::Value> = snaps
            .iter()
            .filter(|s| {
                key(g) == format!("{} {} {}", str_of(s, "site"), str_of(s, "kind"), s["level"])
            })
            .collect();
        assert_eq!(u(&g["snapshots"]), mine.len() as u64, "{g}");
        let sum = |f: &str| mine.iter().map(|s| u(&s["summary"][f])).sum::<u64>();
        assert_eq!(u(&g["added_bytes"]), sum("bytes_added"), "{g}");
        assert_eq!(u(&g["stored_bytes"]), sum("bytes_stored"), "{g}");
        assert_eq!(
            u(&g["newest_bytes"]),
            u(&mine.last().unwrap()["summary"]["bytes_total"]),
            "{g}"
        );
    }
    let a_db = &groups[2];
    assert_eq!(u(&a_db["snapshots"]), 2);
    assert_eq!(u(&a_db["newest_bytes"]), 40 * KIB);
    let a2 = &groups[1];
    assert!(
        u(&a2["added_bytes"]) < 10 * KIB,
        "the second push of the same files adds only metadata: {a2}"
    );
}

#[test]
fn stats_site_limits_and_lists_snapshots() {
    let (repo, _) = build();
    let st = repo.json(&["stats", "--site", "b"]);
    let groups = st["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 2, "{st}");
    assert!(groups.iter().all(|g| g["site"] == "b"));
    assert_eq!(
        u(&st["repository"]["snapshots"]),
        7,
        "the totals stay whole"
    );
    let rows = st["snapshots"].as_array().expect("--site lists snapshots");
    let want: Vec<String> = repo
        .snapshots(&["--site", "b"])
        .iter()
        .map(|s| str_of(s, "id"))
        .collect();
    let got: Vec<String> = rows.iter().map(|r| str_of(r, "id")).collect();
    assert_eq!(got, want);
    for f in [
        "time",
        "kind",
        "level",
        "bytes",
        "added_bytes",
        "stored_bytes",
    ] {
        assert!(rows[0].get(f).is_some(), "{f} in {}", rows[0]);
    }
    assert_eq!(
        repo.json(&["stats", "--snapshots"])["snapshots"]
            .as_array()
            .unwrap()
            .len(),
        7
    );

    // Text: aligned columns (the last one is right-aligned, so every line
    // of a table is as long as its header), local times to the second.
    let out = stdout(
        &repo
            .cmd()
            .env("TZ", "Europe/Paris")
            .args(["stats", "--site", "b"])
            .output()
            .unwrap(),
    );
    let tables: Vec<&str> = out.split("\n\n").collect();
    assert_eq!(tables.len(), 3, "totals, groups, snapshots:\n{out}");
    for t in &tables[1..] {
        let lines: Vec<&str> = t.lines().filter(|l| !l.starts_with('(')).collect();
        let width = lines[0].chars().count();
        assert!(
            lines.iter().all(|l| l.chars().count() == width),
            "misaligned:\n{t}"
        );
    }
    assert!(out.contains("times in Europe/Paris"), "{out}");
    let short = &want[0][..8];
    let line = tables[2].lines().find(|l| l.starts_with(short)).unwrap();
    let time = line.split_whitespace().nth(2).unwrap();
    assert_eq!(time.len(), 8, "HH:MM:SS: {line}");
    assert!(out.contains("deduplication"), "{out}");
}
