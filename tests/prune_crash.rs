//! Crash and concurrency tests of `snap prune`.
//!
//! 1. `prune_killed_at_random_moments_keeps_what_the_policy_keeps`: a
//!    repository gets a files snapshot (level 1, age ladder) and a database
//!    snapshot (level 2, client-a, weekly) per simulated day (`push --time`),
//!    with a few megabytes of new data a day, so that prune has packs to
//!    delete (a dump that is new every day) and packs to repack (files that
//!    later snapshots still share; `--max-unused 0`). Every round adds a day,
//!    asks `prune --dry-run --json` what the policy (level1 or level2, drawn
//!    at random, `--now` a few hours after the day's pushes) keeps and
//!    removes, runs the prune and kills it with SIGKILL after a random delay.
//!    The execution (repack, snapshot removal, index update, pack deletion)
//!    takes a few milliseconds against tens for opening and planning, and
//!    timings vary more than that, so four kills in ten come after a delay
//!    (half within a dry run's duration, half from the end of the planning
//!    through an adaptive estimate of the execution) and the rest 0-600 µs
//!    after the test, polling the repository, sees a step begin: a new pack
//!    file (repacking), a snapshot file gone, or an old pack file gone.
//!    Kills so land in every step, and some prunes finish first. After the kill: `snap check` passes
//!    (`--read-data` every third round), no snapshot but the policy's
//!    removals has gone, and every listed snapshot (all the kept ones, and
//!    any doomed one the kill spared) restores as pushed (contents through
//!    BLAKE3, modes, symlink targets). Then the prune is run to completion:
//!    exactly the policy's removals are gone and `check` passes.
//! 2. `push_and_prune_at_the_same_time_lose_nothing`: a push of about 30 MB
//!    (which also holds copies of files that only the doomed snapshots hold,
//!    so the push dedups against packs the prune deletes) and a level2 prune
//!    that deletes and repacks are started together, the push first in one
//!    round and the prune first in the other. Both exit 0 (the second waits
//!    for the first's lock), the pushed snapshot restores, `check
//!    --read-data` passes and exactly the policy's removals are gone.
//!
//! Environment: `SNAP_PRUNE_CRASH_SEED` replays a run's data and kill delays
//! (the seed is printed; where a kill lands still varies with the machine),
//! `SNAP_PRUNE_CRASH_ITERATIONS` sets the rounds of test 1 (default 15),
//! `SNAP_PRUNE_CRASH_KEEP=1` keeps the temporary directories.

use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};
use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::manifest::{manifest, stream_manifest, Manifest};
use common::runner::{assert_ok, env_u64, random_bytes, Snap as Repo};

const DUMP_NAME: &str = "client_a.sql";

// ---------------------------------------------------------------------------
// Generated sources.

const MODES: &[u32] = &[0o644, 0o644, 0o600, 0o640, 0o755, 0o700];

fn write_file(rng: &mut StdRng, path: &Path, bytes: &[u8]) {
    std::fs::write(path, bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mode = MODES[rng.gen_range(0..MODES.len())];
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// A site tree of about 5 MB: small files of text or noise, a few big
/// files, a symlink, various modes. Each day rewrites one big file whole
/// and patches another, and changes a few small files.
struct Tree {
    root: PathBuf,
    rng: StdRng,
    dirs: Vec<PathBuf>,
    small: Vec<PathBuf>,
    big: Vec<PathBuf>,
    serial: u32,
}

impl Tree {
    fn create(root: PathBuf, seed: u64) -> Tree {
        let mut t = Tree {
            root,
            rng: StdRng::seed_from_u64(seed),
            dirs: Vec::new(),
            small: Vec::new(),
            big: Vec::new(),
            serial: 0,
        };
        for sub in ["", "htdocs", "htdocs/img", "htdocs/docs", "conf"] {
            let d = PathBuf::from(sub);
            std::fs::create_dir_all(t.root.join(&d)).expect("mkdir");
            t.dirs.push(d);
        }
        for _ in 0..60 {
            t.add_small();
        }
        for _ in 0..4 {
            t.add_big();
        }
        std::os::unix::fs::symlink("htdocs/../conf", t.root.join("conf-link")).expect("symlink");
        t
    }

    fn fresh_name(&mut self, ext: &str) -> PathBuf {
        self.serial += 1;
        let dir = self.dirs[self.rng.gen_range(0..self.dirs.len())].clone();
        dir.join(format!("f{:05}.{ext}", self.serial))
    }

    fn small_contents(&mut self) -> Vec<u8> {
        let len = self.rng.gen_range(0..40_000);
        if self.rng.gen_bool(0.5) {
            let mut s = "<?php echo 'page'; ?>\n".repeat(len / 22 + 1).into_bytes();
            s.truncate(len);
            let n = self.rng.gen_range(0..=s.len().min(64));
            let at = self.rng.gen_range(0..=s.len() - n);
            self.rng.fill_bytes(&mut s[at..at + n]);
            s
        } else {
            random_bytes(&mut self.rng, len)
        }
    }

    fn add_small(&mut self) {
        let rel = self.fresh_name("php");
        let bytes = self.small_contents();
        write_file(&mut self.rng, &self.root.join(&rel), &bytes);
        self.small.push(rel);
    }

    fn add_big(&mut self) {
        let rel = self.fresh_name("jpg");
        let len = self.rng.gen_range(1_000_000..2_500_000);
        let bytes = random_bytes(&mut self.rng, len);
        write_file(&mut self.rng, &self.root.join(&rel), &bytes);
        self.big.push(rel);
    }

    fn mutate(&mut self) {
        // One big file rewritten whole: its old chunks die with the snapshots
        // that hold them.
        let i = self.rng.gen_range(0..self.big.len());
        let len = self.rng.gen_range(1_000_000..2_500_000);
        let bytes = random_bytes(&mut self.rng, len);
        let p = self.root.join(&self.big[i]);
        write_file(&mut self.rng, &p, &bytes);
        // Another patched in place: most of its chunks live on.
        let j = self.rng.gen_range(0..self.big.len());
        let p = self.root.join(&self.big[j]);
        let mut bytes = std::fs::read(&p).expect("read big");
        let at = self.rng.gen_range(0..bytes.len());
        let n = self.rng.gen_range(1_000..100_000).min(bytes.len() - at);
        self.rng.fill_bytes(&mut bytes[at..at + n]);
        std::fs::write(&p, &bytes).expect("patch big");
        for _ in 0..self.rng.gen_range(1..6) {
            let rel = self.small[self.rng.gen_range(0..self.small.len())].clone();
            let bytes = self.small_contents();
            write_file(&mut self.rng, &self.root.join(&rel), &bytes);
        }
        for _ in 0..self.rng.gen_range(0..4) {
            self.add_small();
        }
        if self.small.len() > 40 {
            for _ in 0..self.rng.gen_range(0..3) {
                let rel = self
                    .small
                    .swap_remove(self.rng.gen_range(0..self.small.len()));
                std::fs::remove_file(self.root.join(rel)).expect("remove");
            }
        }
        if self.rng.gen_bool(0.3) {
            let rel = self.small[self.rng.gen_range(0..self.small.len())].clone();
            let mode = MODES[self.rng.gen_range(0..MODES.len())];
            std::fs::set_permissions(self.root.join(rel), std::fs::Permissions::from_mode(mode))
                .expect("chmod");
        }
    }
}

/// A day's database dump: a part that never changes, a part that changes
/// now and then, and a part that is new every day.
fn dump(rng: &mut StdRng, stable: &[u8], slow: &[u8]) -> Vec<u8> {
    let mut out = b"-- snap prune crash test dump\n".to_vec();
    out.extend_from_slice(stable);
    out.extend_from_slice(slow);
    let n = rng.gen_range(500_000..1_000_000);
    out.extend_from_slice(&random_bytes(rng, n));
    out
}

// ---------------------------------------------------------------------------
// Running the binary.

impl Repo {
    fn push_dir(&self, src: &Path, time: &str, extra: &[&str]) -> String {
        let mut args: Vec<&OsStr> = vec![OsStr::new("push"), OsStr::new("--json")];
        args.extend(["--time", time].map(OsStr::new));
        args.extend(extra.iter().map(OsStr::new));
        args.push(src.as_os_str());
        let v = self.json(&args);
        v["id"].as_str().expect("push id").to_string()
    }

    fn push_dump(&self, bytes: &[u8], time: &str) -> String {
        let mut child = self
            .cmd()
            .args(["push", "--json", "--time", time, "--level", "2"])
            .args(["--site", "client-a", "--stdin", "--name", DUMP_NAME])
            .stdin(Stdio::piped())
            .spawn()
            .expect("spawn push");
        child
            .stdin
            .take()
            .expect("piped")
            .write_all(bytes)
            .expect("feed push");
        let out = child.wait_with_output().expect("wait push");
        assert_ok(&out, "push --stdin");
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("push JSON");
        v["id"].as_str().expect("push id").to_string()
    }

    /// Names of the files under `sub` (recursively), temporary ones aside.
    fn names(&self, sub: &str) -> BTreeSet<String> {
        fn walk(d: &Path, out: &mut BTreeSet<String>) {
            let Ok(rd) = std::fs::read_dir(d) else {
                return;
            };
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    walk(&e.path(), out);
                } else if !name.starts_with(".tmp-") {
                    out.insert(name);
                }
            }
        }
        let mut out = BTreeSet::new();
        walk(&self.dir.join(sub), &mut out);
        out
    }

    fn pack_count(&self) -> usize {
        fn count(d: &Path) -> usize {
            let mut n = 0;
            for e in std::fs::read_dir(d).expect("read dir") {
                let e = e.expect("entry");
                if e.file_type().expect("type").is_dir() {
                    n += count(&e.path());
                } else if !e.file_name().to_string_lossy().starts_with(".tmp-") {
                    n += 1;
                }
            }
            n
        }
        count(&self.dir.join("data"))
    }
}

/// What a policy decides, read from `prune --dry-run --json`.
struct Decision {
    keep: BTreeSet<String>,
    remove: BTreeSet<String>,
    packs_delete: usize,
    packs_repack: usize,
}

fn decision(v: &serde_json::Value) -> Decision {
    let plan = &v["plan"];
    let ids = |list: &serde_json::Value| -> Vec<String> {
        list.as_array()
            .expect("a list")
            .iter()
            .map(|x| x["id"].as_str().expect("id").to_string())
            .collect()
    };
    let mut keep = BTreeSet::new();
    let mut remove = BTreeSet::new();
    for g in plan["groups"].as_array().expect("groups") {
        keep.extend(ids(&g["keep"]));
        remove.extend(ids(&g["remove"]));
    }
    let flat: BTreeSet<String> = plan["remove"]
        .as_array()
        .expect("remove")
        .iter()
        .map(|x| x.as_str().expect("id").to_string())
        .collect();
    assert_eq!(
        flat, remove,
        "plan.remove differs from the groups' removals"
    );
    assert!(
        keep.is_disjoint(&remove),
        "a snapshot both kept and removed"
    );
    Decision {
        keep,
        remove,
        packs_delete: plan["packs"]["delete"].as_array().expect("delete").len(),
        packs_repack: plan["packs"]["repack"].as_array().expect("repack").len(),
    }
}

fn prune_args(policy: &str, now: &str, dry_run: bool) -> Vec<String> {
    let mut a: Vec<String> = ["prune", "--json", "--policy", policy, "--now", now]
        .map(String::from)
        .to_vec();
    a.extend(["--max-unused", "0"].map(String::from));
    if dry_run {
        a.push("--dry-run".into());
    }
    a
}

fn seed() -> u64 {
    env_u64("SNAP_PRUNE_CRASH_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock after 1970")
            .as_nanos() as u64
    })
}

/// A temporary directory for the repository and one for restores (on
/// tmpfs when there is one: creating files there costs nothing).
fn dirs(what: &str) -> (tempfile::TempDir, tempfile::TempDir) {
    let tmp = tempfile::Builder::new()
        .prefix(&format!("snap-{what}-"))
        .tempdir()
        .expect("temp dir");
    let shm = Path::new("/dev/shm");
    let scratch = if shm.is_dir() {
        tempfile::Builder::new()
            .prefix(&format!("snap-{what}-restore-"))
            .tempdir_in(shm)
    } else {
        tempfile::Builder::new()
            .prefix("restore-")
            .tempdir_in(tmp.path())
    }
    .expect("scratch dir");
    (tmp, scratch)
}

fn keep_dirs(tmp: tempfile::TempDir, scratch: tempfile::TempDir) {
    if std::env::var_os("SNAP_PRUNE_CRASH_KEEP").is_some() {
        eprintln!("keeping {}", tmp.path().display());
        let _ = tmp.keep();
        let _ = scratch.keep();
    }
}

/// Local time string of day `day` after 2026-01-05 at `hour` (Paris).
fn day_time(day: u32, hour: u32) -> String {
    let d =
        chrono::NaiveDate::from_ymd_opt(2026, 1, 5).expect("date") + chrono::Days::new(day as u64);
    format!("{} {hour:02}:00:00", d.format("%Y-%m-%d"))
}

/// When to kill a prune.
#[derive(Clone, Copy, Debug)]
enum Trigger {
    /// After a delay.
    Delay,
    /// Once a pack file that was not there before appears (repacking).
    NewPack,
    /// Once a snapshot file is gone.
    SnapshotGone,
    /// Once a pack file that was there before is gone.
    PackGone,
}

/// Kills `child` after `delay`, or, for the other triggers, `delay` after the
/// trigger's event is seen on disk, unless it exits first; returns its
/// output, whether the kill landed, and how long it ran.
fn kill_after(
    repo: &Repo,
    mut child: Child,
    started: Instant,
    trigger: Trigger,
    delay: Duration,
) -> (Output, bool, Duration) {
    let took;
    let packs = repo.names("data");
    let snapshots = repo.names("snapshots").len();
    let mut due = match trigger {
        Trigger::Delay => Some(started + delay),
        _ => None,
    };
    loop {
        if child.try_wait().expect("poll prune").is_some() {
            took = started.elapsed();
            break;
        }
        if due.is_none() {
            let seen = match trigger {
                Trigger::Delay => unreachable!("due is set"),
                Trigger::NewPack => !repo.names("data").is_subset(&packs),
                Trigger::SnapshotGone => repo.names("snapshots").len() < snapshots,
                Trigger::PackGone => !packs.is_subset(&repo.names("data")),
            };
            if seen {
                due = Some(Instant::now() + delay);
            } else {
                std::thread::sleep(Duration::from_micros(100));
                continue;
            }
        }
        let left = due
            .expect("due is set")
            .saturating_duration_since(Instant::now());
        if left.is_zero() {
            took = started.elapsed();
            // A prune that exited since the poll is a zombie until reaped:
            // the kill is then harmless and the exit status says so.
            let _ = child.kill();
            break;
        }
        std::thread::sleep(left.min(Duration::from_millis(1)));
    }
    let out = child.wait_with_output().expect("wait for prune");
    let killed = out.status.signal() == Some(libc::SIGKILL);
    if !killed {
        assert_ok(&out, "prune (not killed)");
    }
    (out, killed, took)
}

// ---------------------------------------------------------------------------
// 1. Prune killed at random moments.

#[derive(Default)]
struct Tally {
    finished: u32,
    killed_planning: u32,
    killed_repacking: u32,
    killed_removing_snapshots: u32,
    killed_deleting_packs: u32,
    killed_at_the_end: u32,
    packs_deleted: usize,
    packs_repacked: usize,
    snapshots_removed: usize,
}

/// A day: one files snapshot (level 1) and one dump (level 2, client-a).
fn push_day(
    repo: &Repo,
    rng: &mut StdRng,
    tree: &mut Tree,
    stable: &[u8],
    slow: &mut Vec<u8>,
    wants: &mut BTreeMap<String, Manifest>,
    day: u32,
) {
    tree.mutate();
    let id = repo.push_dir(&tree.root, &day_time(day, 3), &[]);
    wants.insert(id, manifest(&tree.root));
    if rng.gen_bool(0.2) {
        *slow = random_bytes(rng, 200_000);
    }
    let bytes = dump(rng, stable, slow);
    let id = repo.push_dump(&bytes, &day_time(day, 3));
    wants.insert(id, stream_manifest(DUMP_NAME, &bytes));
}

#[test]
fn prune_killed_at_random_moments_keeps_what_the_policy_keeps() {
    let seed = seed();
    let rounds = env_u64("SNAP_PRUNE_CRASH_ITERATIONS").unwrap_or(15);
    eprintln!(
        "prune crash test: seed {seed}, {rounds} rounds (replay with SNAP_PRUNE_CRASH_SEED={seed})"
    );
    let began = Instant::now();
    let mut rng = StdRng::seed_from_u64(seed);
    let (tmp, scratch_dir) = dirs("prune-crash");
    let scratch = scratch_dir.path();
    let repo = Repo {
        dir: tmp.path().join("repo"),
    };
    repo.ok(&["init"]);
    let mut tree = Tree::create(tmp.path().join("www"), rng.gen());
    let stable = random_bytes(&mut rng, 300_000);
    let mut slow = random_bytes(&mut rng, 200_000);
    let mut wants: BTreeMap<String, Manifest> = BTreeMap::new();

    let mut day = 0;
    while day < 16 {
        push_day(
            &repo, &mut rng, &mut tree, &stable, &mut slow, &mut wants, day,
        );
        day += 1;
    }
    eprintln!(
        "history: {} snapshots, {} pack files, built in {:.1?}",
        wants.len(),
        repo.pack_count(),
        began.elapsed()
    );

    // Where kills land: a fifth of them anywhere in the time a dry run
    // takes (opening the repository and planning, which the prune does
    // too), the rest from the end of the planning to past an estimate of
    // the execution's duration (learnt from the prunes that finish first,
    // raised after each kill), which is much shorter than the planning.
    let mut exec_estimate = Duration::ZERO;
    let mut tally = Tally::default();
    for round in 0..rounds {
        // Now and then two days between prunes.
        for _ in 0..rng.gen_range(1..=2) {
            push_day(
                &repo, &mut rng, &mut tree, &stable, &mut slow, &mut wants, day,
            );
            day += 1;
        }
        let policy = if rng.gen_bool(0.5) {
            "level1"
        } else {
            "level2"
        };
        let now = day_time(day - 1, rng.gen_range(4..24));
        let t = Instant::now();
        let d = decision(&repo.json(&prune_args(policy, &now, true)));
        let planning = t.elapsed();
        if exec_estimate.is_zero() {
            exec_estimate = planning;
        }
        let before = repo.snapshot_ids();
        assert!(
            d.keep.is_subset(&before) && d.remove.is_subset(&before),
            "the plan names snapshots that are not listed"
        );
        let packs_before = repo.pack_count();

        let micros = |d: Duration| d.as_micros() as u64;
        let trigger = match rng.gen_range(0..10) {
            0..=3 => Trigger::Delay,
            4..=5 => Trigger::NewPack,
            6..=7 => Trigger::SnapshotGone,
            _ => Trigger::PackGone,
        };
        let delay = Duration::from_micros(match trigger {
            Trigger::Delay if rng.gen_bool(0.5) => rng.gen_range(0..=micros(planning)),
            Trigger::Delay => rng.gen_range(
                micros(planning) * 19 / 20..=micros(planning) + micros(exec_estimate) * 6 / 5,
            ),
            _ => rng.gen_range(0..=600),
        });
        let started = Instant::now();
        let child = repo
            .cmd()
            .args(prune_args(policy, &now, false))
            .spawn()
            .expect("spawn prune");
        let (_, killed, took) = kill_after(&repo, child, started, trigger, delay);

        let listed = repo.snapshot_ids();
        let packs_after_kill = repo.pack_count();
        assert!(
            listed.is_subset(&before),
            "prune added snapshots: {:?}",
            listed.difference(&before).collect::<Vec<_>>()
        );
        let gone: BTreeSet<String> = before.difference(&listed).cloned().collect();
        assert!(
            gone.is_subset(&d.remove),
            "round {round}: snapshots the policy keeps disappeared: {:?}",
            gone.difference(&d.remove).collect::<Vec<_>>()
        );
        if matches!(trigger, Trigger::Delay) {
            if killed {
                exec_estimate = exec_estimate.mul_f64(1.1).min(Duration::from_secs(20));
            } else {
                // What the execution took beyond a dry run, this time.
                let beyond = took.saturating_sub(planning);
                exec_estimate = (exec_estimate.mul_f64(0.85) + beyond) / 2;
                exec_estimate = exec_estimate.max(Duration::from_millis(2));
            }
        }

        if round % 3 == 2 {
            repo.ok(&["check", "--read-data"]);
        } else {
            repo.ok(&["check"]);
        }
        // Every listed snapshot, kept or spared by the kill, restores.
        for id in &listed {
            let want = wants
                .get(id)
                .expect("every listed snapshot was pushed here");
            repo.verify(scratch, id, want);
        }

        // The prune run to its end removes exactly what the policy said.
        let v = repo.json(&prune_args(policy, &now, false));
        let again = decision(&v);
        assert_eq!(
            again.keep, d.keep,
            "round {round}: after the kill the policy keeps other snapshots"
        );
        let listed = repo.snapshot_ids();
        let expected: BTreeSet<String> = before.difference(&d.remove).cloned().collect();
        assert_eq!(
            listed, expected,
            "round {round}: the completed prune did not remove exactly the policy's removals"
        );
        repo.ok(&["check"]);
        let packs_final = repo.pack_count();
        let what = if !killed {
            tally.finished += 1;
            "finished before the kill"
        } else if gone.is_empty() && packs_after_kill == packs_before {
            tally.killed_planning += 1;
            "killed while planning (or before writing a pack)"
        } else if gone.is_empty() && !d.remove.is_empty() {
            tally.killed_repacking += 1;
            "killed while repacking"
        } else if gone.len() < d.remove.len() {
            tally.killed_removing_snapshots += 1;
            "killed while removing snapshots"
        } else if packs_after_kill > packs_final {
            tally.killed_deleting_packs += 1;
            "killed while forgetting or deleting packs"
        } else {
            tally.killed_at_the_end += 1;
            "killed at the end"
        };
        eprintln!(
            "round {round:>3}: {policy} at {now}: keep {}, remove {} ({} packs to delete, {} to \
             repack): {what} at {took:.1?} (kill due {delay:.1?} after {trigger:?}, a dry \
             run took {planning:.1?}); {} of {} removed; packs {packs_before} -> {packs_after_kill} after \
             the kill -> {packs_final} after a full prune",
            d.keep.len(),
            d.remove.len(),
            d.packs_delete,
            d.packs_repack,
            gone.len(),
            d.remove.len(),
        );
        tally.packs_deleted += d.packs_delete;
        tally.packs_repacked += d.packs_repack;
        tally.snapshots_removed += d.remove.len();
        for id in &d.remove {
            wants.remove(id);
        }
    }

    repo.ok(&["check", "--read-data"]);
    let listed = repo.snapshot_ids();
    for id in &listed {
        repo.verify(scratch, id, &wants[id]);
    }
    eprintln!(
        "prune crash test: seed {seed}: {rounds} rounds in {:.1}s: kills landed {} times while \
         planning, {} while repacking, {} while removing snapshots, {} while forgetting or \
         deleting packs, {} at the end; {} prunes finished before the kill; the policies removed \
         {} snapshots, {} packs deleted and {} repacked (as planned); {} snapshots left, all \
         restored",
        began.elapsed().as_secs_f64(),
        tally.killed_planning,
        tally.killed_repacking,
        tally.killed_removing_snapshots,
        tally.killed_deleting_packs,
        tally.killed_at_the_end,
        tally.finished,
        tally.snapshots_removed,
        tally.packs_deleted,
        tally.packs_repacked,
        listed.len()
    );
    keep_dirs(tmp, scratch_dir);
}

// ---------------------------------------------------------------------------
// 2. A push and a prune at the same time.

/// Waits until some process holds a lock on the repository (or `child`
/// has exited); says whether a lock was seen.
fn wait_for_lock(repo: &Repo, child: &mut Child) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if std::fs::read_dir(repo.dir.join("locks"))
            .map(|mut d| d.next().is_some())
            .unwrap_or(false)
        {
            return true;
        }
        if child.try_wait().expect("poll").is_some() {
            return false;
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    false
}

#[test]
fn push_and_prune_at_the_same_time_lose_nothing() {
    let seed = seed() ^ 0x5eed;
    eprintln!("concurrent push/prune test: seed {seed}");
    let began = Instant::now();
    let mut rng = StdRng::seed_from_u64(seed);
    let (tmp, scratch_dir) = dirs("prune-push");
    let scratch = scratch_dir.path();
    let repo = Repo {
        dir: tmp.path().join("repo"),
    };
    repo.ok(&["init"]);
    let site = tmp.path().join("client-a");
    std::fs::create_dir_all(site.join("htdocs")).expect("mkdir");
    for i in 0..20 {
        let len = rng.gen_range(1_000..50_000);
        let bytes = random_bytes(&mut rng, len);
        write_file(&mut rng, &site.join(format!("htdocs/page{i}.php")), &bytes);
    }
    let mut wants: BTreeMap<String, Manifest> = BTreeMap::new();

    for round in 0..2u32 {
        let push_first = round == 0;
        // Four monthly level-2 snapshots of client-a's files, each with a
        // file of its own: the policy (monthly 2) removes the older ones, and
        // with them those files, unless the push below holds them too.
        let mut unique: Vec<Vec<u8>> = Vec::new();
        let mut last = String::new();
        for m in 0..4u32 {
            let month = round * 4 + m + 1;
            let len = rng.gen_range(1_000_000..2_000_000);
            let bytes = random_bytes(&mut rng, len);
            write_file(&mut rng, &site.join("htdocs/video.mp4"), &bytes);
            unique.push(bytes);
            let page = random_bytes(&mut rng, 10_000);
            write_file(&mut rng, &site.join(format!("htdocs/m{month}.php")), &page);
            last = format!("2026-{month:02}-10 03:00:00");
            let id = repo.push_dir(&site, &last, &["--level", "2", "--site", "client-a"]);
            wants.insert(id, manifest(&site));
        }
        let now = last.replace("03:00:00", "15:00:00");
        let d = decision(&repo.json(&prune_args("level2", &now, true)));
        assert!(
            !d.remove.is_empty() && d.packs_delete + d.packs_repack > 0,
            "round {round}: the prune has no work"
        );
        let before = repo.snapshot_ids();

        // The push: about 30 MB of new data, plus copies of every file only
        // the snapshots (doomed or not) of this round hold.
        let big = tmp.path().join(format!("big-{round}"));
        std::fs::create_dir_all(big.join("media")).expect("mkdir");
        for i in 0..6 {
            let bytes = random_bytes(&mut rng, 5_000_000);
            write_file(&mut rng, &big.join(format!("media/new{i}.bin")), &bytes);
        }
        for (i, bytes) in unique.iter().enumerate() {
            write_file(&mut rng, &big.join(format!("copy{i}.mp4")), bytes);
        }
        let big_want = manifest(&big);
        let push_time = last.replace("03:00:00", "14:00:00");
        let push_args = |c: &mut Command| {
            c.args(["push", "--json", "--site", "big", "--time", &push_time])
                .arg(&big);
        };
        let prune = |c: &mut Command| {
            c.args(prune_args("level2", &now, false));
        };

        let start = Instant::now();
        let (mut first, second_is_push) = if push_first {
            let mut c = repo.cmd();
            push_args(&mut c);
            (c.spawn().expect("spawn push"), false)
        } else {
            let mut c = repo.cmd();
            prune(&mut c);
            (c.spawn().expect("spawn prune"), true)
        };
        let saw_lock = wait_for_lock(&repo, &mut first);
        let mut c = repo.cmd();
        if second_is_push {
            push_args(&mut c);
        } else {
            prune(&mut c);
        }
        let second = c.spawn().expect("spawn second");
        let second_started = start.elapsed();
        let first_out = first.wait_with_output().expect("wait first");
        let first_took = start.elapsed();
        let second_out = second.wait_with_output().expect("wait second");
        let second_took = start.elapsed();
        let (push_out, prune_out) = if push_first {
            (&first_out, &second_out)
        } else {
            (&second_out, &first_out)
        };
        assert_ok(push_out, "push (concurrent with prune)");
        assert_ok(prune_out, "prune (concurrent with push)");
        let pushed = serde_json::from_slice::<serde_json::Value>(&push_out.stdout)
            .expect("push JSON")["id"]
            .as_str()
            .expect("push id")
            .to_string();
        let done = decision(
            &serde_json::from_slice::<serde_json::Value>(&prune_out.stdout).expect("prune JSON"),
        );
        assert_eq!(
            (&done.keep, &done.remove),
            (&d.keep, &d.remove),
            "round {round}: the prune decided otherwise than its dry run"
        );
        eprintln!(
            "round {round}: {} first (lock seen: {saw_lock}), ended at {first_took:.1?}; {} \
             started at {second_started:.1?}, ended at {second_took:.1?}; prune removed {} \
             snapshots, deleted {} packs, repacked {}",
            if push_first { "push" } else { "prune" },
            if push_first { "prune" } else { "push" },
            done.remove.len(),
            done.packs_delete,
            done.packs_repack,
        );

        let listed = repo.snapshot_ids();
        let mut expected: BTreeSet<String> = before.difference(&d.remove).cloned().collect();
        expected.insert(pushed.clone());
        assert_eq!(
            listed, expected,
            "round {round}: not exactly the policy's removals are gone, or the push is missing"
        );
        repo.ok(&["check", "--read-data"]);
        repo.verify(scratch, &pushed, &big_want);
        for id in &d.remove {
            wants.remove(id);
        }
        wants.insert(pushed, big_want);
        for (id, want) in &wants {
            repo.verify(scratch, id, want);
        }
        std::fs::remove_dir_all(&big).expect("remove big");
    }
    eprintln!(
        "concurrent push/prune test: seed {seed}: done in {:.1}s",
        began.elapsed().as_secs_f64()
    );
    keep_dirs(tmp, scratch_dir);
}
