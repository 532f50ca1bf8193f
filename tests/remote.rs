//! Remotes and the replicator, with a remote in a local directory (the same
//! code as on S3, whose tests are in tests/s3_remote.rs): `remote init`,
//! `replicate` (what it sends, that it is idempotent), the replication a
//! level-2 push does, data residency, a remote that refuses deletions, and
//! kill -9 of a replication then a rerun.

mod common;

use common::*;
use std::fs;
use std::path::{Path, PathBuf};

/// A local repository, a remotes file naming `offsite` (a directory
/// beside it, jurisdiction FR, FR allowed), and a site with its dump.
struct Plan {
    repo: Repo,
    remotes: PathBuf,
    offsite: PathBuf,
    site: PathBuf,
}

impl Plan {
    fn new(extra: &str) -> Plan {
        let repo = Repo::new();
        let offsite = repo.dir("offsite");
        let remotes = repo.dir("remotes.toml");
        fs::write(
            &remotes,
            format!(
                "allowed_jurisdictions = [\"FR\"]\n[remote.offsite]\nurl = \"{}\"\njurisdiction = \"FR\"\n{extra}",
                offsite.display()
            ),
        )
        .unwrap();
        let site = repo.dir("site");
        make_tree(&site);
        Plan {
            repo,
            remotes,
            offsite,
            site,
        }
    }

    fn run(&self, args: &[&str]) -> std::process::Output {
        self.repo
            .cmd()
            .env("SNAP_REMOTES_FILE", &self.remotes)
            .args(args)
            .output()
            .unwrap()
    }

    fn ok(&self, args: &[&str]) -> std::process::Output {
        let out = self.run(args);
        assert_success(&out, &format!("snap {}", args.join(" ")));
        out
    }

    fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut a = vec!["--json"];
        a.extend_from_slice(args);
        parse_json(&self.ok(&a))
    }

    fn push_site(&self, level: &str) -> serde_json::Value {
        self.json(&[
            "push",
            "--level",
            level,
            "--site",
            "shop",
            self.site.to_str().unwrap(),
        ])
    }

    fn push_dump(&self, level: &str, day: u64) -> serde_json::Value {
        let dump = self.repo.dir(&format!("dump{day}.sql"));
        fs::write(&dump, noise(day, 400_000)).unwrap();
        let out = self
            .repo
            .cmd()
            .env("SNAP_REMOTES_FILE", &self.remotes)
            .args([
                "--json", "push", "--level", level, "--site", "shop", "--stdin", "--name",
                "shop.sql",
            ])
            .pipe_stdin(&dump)
            .unwrap()
            .output()
            .unwrap();
        assert_success(&out, "push --stdin");
        parse_json(&out)
    }

    fn remote_ids(&self) -> Vec<String> {
        let v = self.json(&["--remote", "offsite", "snapshots"]);
        v.as_array()
            .unwrap()
            .iter()
            .map(|s| s["id"].as_str().unwrap().to_string())
            .collect()
    }
}

fn ids(v: &serde_json::Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn a_remote_gets_level_2_once_and_restores_on_its_own() {
    let p = Plan::new("");
    // Level 1 stays here; level 2 goes off-site.
    p.push_site("1");
    let out = p.run(&[
        "push",
        "--level",
        "2",
        "--site",
        "shop",
        p.site.to_str().unwrap(),
    ]);
    assert_code(&out, 5, "a level-2 push whose remote has no repository");
    assert!(
        stderr(&out).contains("snap remote init offsite"),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("saved here"), "{}", stderr(&out));
    p.ok(&["remote", "init", "offsite"]);
    assert!(p.offsite.join("config").is_file());

    // The push that failed to replicate saved its snapshot here: the next
    // replicate catches up.
    let first = p.json(&["replicate", "offsite"]);
    assert_eq!(first["snapshots_wanted"], 1, "{first}");
    assert_eq!(first["copied"].as_array().unwrap().len(), 1, "{first}");
    assert!(first["bytes_sent"].as_u64().unwrap() > 0);
    // Idempotent: nothing more to send.
    let again = p.json(&["replicate", "offsite"]);
    assert_eq!(again["snapshots_present"], 1, "{again}");
    assert_eq!(again["blobs_sent"], 0, "{again}");
    assert_eq!(again["packs_written"], 0, "{again}");

    // The same snapshot ids on both sides, level 2 only.
    let local_l2 = ids(&p.json(&["snapshots", "--level", "2"]));
    let mut remote = p.remote_ids();
    remote.sort();
    let mut want = local_l2.clone();
    want.sort();
    assert_eq!(remote, want);

    // A level-2 push replicates what it saved, and says so.
    fs::write(p.site.join("new.php"), b"<?php echo 2;").unwrap();
    let pushed = p.push_site("2");
    let rep = &pushed["replication"][0];
    assert_eq!(rep["remote"], "offsite", "{pushed}");
    assert_eq!(rep["ok"], true, "{pushed}");
    assert_eq!(rep["summary"]["copied"][0], pushed["id"], "{pushed}");
    let dump = p.push_dump("2", 1);
    assert_eq!(dump["replication"][0]["ok"], true, "{dump}");
    // A push after a failed one catches up: the remote unreachable for one
    // push (its directory moved away), then back.
    let away = p.repo.dir("offsite-away");
    fs::rename(&p.offsite, &away).unwrap();
    let out = p.run(&[
        "push",
        "--level",
        "2",
        "--site",
        "shop",
        p.site.to_str().unwrap(),
    ]);
    assert_code(&out, 5, "a push while the remote is away");
    fs::rename(&away, &p.offsite).unwrap();
    let caught = p.push_dump("2", 2);
    assert_eq!(
        caught["replication"][0]["summary"]["copied"]
            .as_array()
            .unwrap()
            .len(),
        2,
        "the missed snapshot and the new one: {caught}"
    );
    assert_eq!(p.remote_ids().len(), 5);

    // The remote alone: its own password (the same), its own cache.
    let all = p.json(&["--remote", "offsite", "check", "--read-data"]);
    let part = p.json(&["--remote", "offsite", "check", "--read-data-subset", "50%"]);
    let (all, part) = (
        all["packs_read"].as_u64().unwrap(),
        part["packs_read"].as_u64().unwrap(),
    );
    assert!(
        all >= 4 && part > 0 && part == all.div_ceil(2),
        "{part} of {all}"
    );
    let target = p.repo.dir("restored");
    p.ok(&[
        "--remote",
        "offsite",
        "restore",
        "latest",
        "--kind",
        "files",
        "--target",
        target.to_str().unwrap(),
    ]);
    assert_same_tree(&p.site, &target, &[]);
    // The plan's promises, off-site: the report of the remote.
    let out = p.run(&["--json", "--remote", "offsite", "report", "--site", "shop"]);
    assert!(matches!(out.status.code(), Some(0 | 4)), "{}", stderr(&out));
    let report = parse_json(&out).to_string();
    assert!(report.contains("shop"), "{report}");
    let listed = p.json(&["remote", "list"]);
    assert_eq!(listed[0]["name"], "offsite");
    assert_eq!(listed[0]["allowed"], true);
    // Pushing to a remote is refused: replication is the only way in.
    let out = p.run(&["--remote", "offsite", "push", p.site.to_str().unwrap()]);
    assert_code(&out, 1, "push --remote");
    assert!(
        stderr(&out).contains("snap replicate offsite"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn the_second_replication_sends_only_the_days_new_data() {
    let p = Plan::new("");
    p.ok(&["remote", "init", "offsite"]);
    p.push_site("2");
    p.push_dump("2", 1);
    let packs_before: u64 = p.repo.packs().iter().map(|(_, n)| n).sum();
    // Day 2: one file rewritten, one added, the dump changed in places.
    fs::write(p.site.join("big.bin"), noise(99, 700_000)).unwrap();
    fs::write(p.site.join("added.html"), noise(98, 50_000)).unwrap();
    let mut dump = noise(1, 400_000);
    dump[200_000..210_000].copy_from_slice(&noise(97, 10_000));
    let dump_path = p.repo.dir("dump2.sql");
    fs::write(&dump_path, &dump).unwrap();
    let f = p.json(&[
        "push",
        "--level",
        "2",
        "--site",
        "shop",
        p.site.to_str().unwrap(),
    ]);
    let out = p
        .repo
        .cmd()
        .env("SNAP_REMOTES_FILE", &p.remotes)
        .args([
            "--json", "push", "--level", "2", "--site", "shop", "--stdin", "--name", "shop.sql",
        ])
        .pipe_stdin(&dump_path)
        .unwrap()
        .output()
        .unwrap();
    assert_success(&out, "push day 2 dump");
    let d = parse_json(&out);
    let stored = f["summary"]["bytes_stored"].as_u64().unwrap()
        + d["summary"]["bytes_stored"].as_u64().unwrap();
    let sent = f["replication"][0]["summary"]["bytes_sent"]
        .as_u64()
        .unwrap()
        + d["replication"][0]["summary"]["bytes_sent"]
            .as_u64()
            .unwrap();
    assert!(sent > 0);
    // The day's new data in the local repository is what its packs grew
    // by (blobs, headers, padding): what is sent is no more than that.
    let grown: u64 = p.repo.packs().iter().map(|(_, n)| n).sum::<u64>() - packs_before;
    assert!(
        sent as f64 <= grown as f64 * 1.1,
        "sent {sent} bytes, the repository grew by {grown} that day ({stored} bytes of sealed blobs)"
    );
}

#[test]
fn a_remote_outside_the_allowed_jurisdictions_gets_nothing() {
    let p = Plan::new("[remote.abroad]\nurl = \"/nonexistent/abroad\"\njurisdiction = \"US\"\n");
    p.ok(&["remote", "init", "offsite"]);
    let out = p.run(&["remote", "init", "abroad"]);
    assert_code(&out, 1, "remote init abroad");
    assert!(stderr(&out).contains("jurisdiction US"), "{}", stderr(&out));
    assert!(!Path::new("/nonexistent/abroad").exists());
    let out = p.run(&["replicate", "abroad"]);
    assert_code(&out, 1, "replicate abroad");
    assert!(stderr(&out).contains("data residency"), "{}", stderr(&out));
    // A level-2 push: saved here, sent to offsite, refused for abroad.
    let out = p.run(&[
        "--json",
        "push",
        "--level",
        "2",
        "--site",
        "shop",
        p.site.to_str().unwrap(),
    ]);
    assert_code(&out, 5, "push with one refused remote");
    let v = parse_json(&out);
    let by: std::collections::HashMap<&str, bool> = v["replication"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["remote"].as_str().unwrap(), r["ok"].as_bool().unwrap()))
        .collect();
    assert!(by["offsite"]);
    assert!(!by["abroad"]);
    assert_eq!(p.remote_ids(), vec![v["id"].as_str().unwrap().to_string()]);
    assert_eq!(p.repo.snapshots(&[]).len(), 1, "saved here all the same");
}

#[test]
fn a_replication_killed_at_any_moment_is_finished_by_the_next() {
    let p = Plan::new("uploads = 2\n");
    // Enough data for several packs per run, pushed with no remote.
    for day in 0..4u64 {
        fs::write(
            p.site.join(format!("day{day}.bin")),
            noise(day + 10, 9 << 20),
        )
        .unwrap();
        p.repo.push(&p.site, &["--level", "2", "--site", "shop"]);
    }
    p.ok(&["remote", "init", "offsite"]);
    let want = ids(&p.json(&["snapshots", "--level", "2"]));
    let packs = |dir: &Path| -> usize {
        walkdir(&dir.join("data"))
            .iter()
            .filter(|f| {
                !f.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with(".tmp-")
            })
            .count()
    };
    for kill_after in [1usize, 2] {
        let before = packs(&p.offsite);
        let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("snap"))
            .env("SNAP_REPO", &p.repo.path)
            .env("SNAP_CACHE_DIR", p.repo.cache())
            .env("SNAP_PASSWORD", PASSWORD)
            .env("SNAP_REMOTES_FILE", &p.remotes)
            .args(["replicate", "offsite", "--limit-upload", "16M"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // Wait for the packs to arrive (an event, not a time), then kill.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
        loop {
            if packs(&p.offsite) >= before + kill_after {
                break;
            }
            if let Some(status) = child.try_wait().unwrap() {
                panic!("replicate ended ({status}) before {kill_after} new packs");
            }
            assert!(std::time::Instant::now() < deadline, "no progress");
            std::thread::yield_now();
        }
        child.kill().unwrap();
        child.wait().unwrap();
        // Nothing half-visible: every snapshot there checks.
        p.ok(&["--remote", "offsite", "check"]);
        // The rerun finishes the job, sending nothing that arrived: every
        // byte it sends is a byte the remote did not have.
        let before = walkdir(&p.offsite.join("data"))
            .iter()
            .map(|f| fs::metadata(f).unwrap().len())
            .sum::<u64>();
        let rest = p.json(&["replicate", "offsite"]);
        let after = walkdir(&p.offsite.join("data"))
            .iter()
            .map(|f| fs::metadata(f).unwrap().len())
            .sum::<u64>();
        let mut got = p.remote_ids();
        got.sort();
        let mut w = want.clone();
        w.sort();
        assert_eq!(got, w, "after the rerun (kill after {kill_after} packs)");
        assert!(before > 0);
        assert!(
            rest["bytes_sent"].as_u64().unwrap() <= after - before,
            "the rerun re-sent what had arrived ({before} bytes there, {after} after): {rest}"
        );
        p.ok(&["--remote", "offsite", "check", "--read-data"]);
        // Empty the remote for the next round.
        fs::remove_dir_all(&p.offsite).unwrap();
        p.ok(&["remote", "init", "offsite"]);
    }
}

fn walkdir(d: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(rd) = fs::read_dir(d) else { return out };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walkdir(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// Storage whose credentials cannot delete: every removal is refused, and
/// counted.
struct NoDelete {
    inner: std::sync::Arc<dyn snap::backend::Backend>,
    refused: std::sync::atomic::AtomicUsize,
}

impl snap::backend::Backend for NoDelete {
    fn location(&self) -> String {
        self.inner.location()
    }
    fn is_remote(&self) -> bool {
        true
    }
    fn list(&self, t: snap::backend::FileType) -> snap::Result<Vec<String>> {
        self.inner.list(t)
    }
    fn list_sizes(&self, t: snap::backend::FileType) -> snap::Result<Vec<(String, u64)>> {
        self.inner.list_sizes(t)
    }
    fn read(&self, t: snap::backend::FileType, name: &str) -> snap::Result<Vec<u8>> {
        self.inner.read(t, name)
    }
    fn read_range(
        &self,
        t: snap::backend::FileType,
        name: &str,
        offset: u64,
        len: u64,
    ) -> snap::Result<Vec<u8>> {
        self.inner.read_range(t, name, offset, len)
    }
    fn size(&self, t: snap::backend::FileType, name: &str) -> snap::Result<u64> {
        self.inner.size(t, name)
    }
    fn exists(&self, t: snap::backend::FileType, name: &str) -> snap::Result<bool> {
        self.inner.exists(t, name)
    }
    fn write(&self, t: snap::backend::FileType, name: &str, data: &[u8]) -> snap::Result<()> {
        self.inner.write(t, name, data)
    }
    fn write_file(&self, t: snap::backend::FileType, name: &str, path: &Path) -> snap::Result<()> {
        self.inner.write_file(t, name, path)
    }
    fn remove(&self, _: snap::backend::FileType, name: &str) -> snap::Result<()> {
        self.refused
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Err(snap::Error::storage(
            self.location(),
            format!("removing {name}"),
            std::io::Error::from(std::io::ErrorKind::PermissionDenied),
        ))
    }
}

#[test]
fn replication_needs_no_right_to_delete() {
    use snap::backend::{mem::MemBackend, Backend, FileType};
    use snap::format::crypto::KdfParams;
    use snap::repo::{Mode, NewKey, Repository};
    use std::sync::Arc;
    use std::time::Duration;
    let repo = Repo::new();
    let site = repo.dir("site");
    make_tree(&site);
    let mem = Arc::new(MemBackend::new());
    let remote = Arc::new(NoDelete {
        inner: mem.clone(),
        refused: Default::default(),
    });
    let cache = repo.dir("remote-cache");
    let kdf = KdfParams {
        memory_kib: 1024,
        iterations: 1,
        parallelism: 1,
    };
    let open_local = || {
        Repository::open(
            &repo.path,
            &repo.cache(),
            PASSWORD.as_bytes(),
            Mode::Read,
            "t",
            Duration::ZERO,
        )
        .unwrap()
    };
    {
        let local = open_local();
        Repository::init_sharing_keys(
            remote.clone(),
            &cache,
            &local,
            PASSWORD.as_bytes(),
            &NewKey::with_kdf(kdf),
        )
        .unwrap();
    }
    let open_remote = |local: &Repository, mode| {
        Repository::open_sharing_keys(remote.clone(), &cache, local, mode, "t", Duration::ZERO)
            .unwrap()
    };
    // More rounds than the states a writer keeps (16): old states are not
    // deleted, and nothing fails for it.
    for round in 0..18u64 {
        fs::write(site.join("changing.txt"), noise(round, 5_000)).unwrap();
        repo.push(&site, &["--level", "2", "--site", "shop"]);
        let local = open_local();
        let dst = open_remote(&local, Mode::Write);
        let s = snap::ops::replicate::replicate(
            &local,
            &dst,
            &Default::default(),
            &snap::progress::Silent,
        )
        .unwrap();
        assert_eq!(s.copied.len(), 1, "round {round}");
    }
    assert!(
        remote.refused.load(std::sync::atomic::Ordering::SeqCst) > 0,
        "the lock and old states were offered for deletion"
    );
    assert_eq!(mem.list(FileType::Snapshot).unwrap().len(), 18);
    assert!(
        mem.list(FileType::State).unwrap().len() > 16,
        "no state deleted"
    );
    // Every lock left behind is released (stale at once): a command that
    // needs the repository alone still runs.
    let local = open_local();
    let dst = open_remote(&local, Mode::Exclusive);
    let report = snap::ops::check::check(&dst, true, &snap::progress::Silent).unwrap();
    assert!(report.ok(), "{report:?}");
}

#[test]
fn limit_upload_paces_the_bytes_sent() {
    let p = Plan::new("");
    fs::write(p.site.join("big.bin"), noise(5, 3 << 20)).unwrap();
    p.repo.push(&p.site, &["--level", "2", "--site", "shop"]);
    p.ok(&["remote", "init", "offsite"]);
    let v = p.json(&["replicate", "offsite", "--limit-upload", "1M"]);
    let sent = v["bytes_sent"].as_u64().unwrap() as f64;
    let took = v["duration_s"].as_f64().unwrap();
    assert!(sent > (3 << 20) as f64, "{v}");
    // A lower bound only: pacing never lets it go faster than the limit.
    assert!(
        took >= 0.9 * sent / (1 << 20) as f64,
        "{sent} bytes in {took:.2} s at 1 MiB/s"
    );
}
