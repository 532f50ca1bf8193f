//! Crash test in the style of sled: `snap push` is killed with SIGKILL at
//! random moments, again and again, and after every kill the repository must
//! pass `snap check`, every snapshot a push reported as saved must restore
//! byte for byte (contents, modes, symlink targets, directories), and the
//! next push must work.
//!
//! Each round changes a generated source tree (a few hundred small files, a
//! few multi-megabyte ones, some symlinks, about 40 MB) or a generated SQL
//! dump (about 15 MB), so every push writes new packs; one round in three
//! pushes the dump through `--stdin`, so kills also land mid-stream. The kill
//! delay is drawn uniformly below an estimate of a push's duration, which
//! adapts so that about 30% of the pushes finish before the kill: the kills
//! spread over the whole push, from opening the repository to writing the
//! snapshot file and closing the index. Every sixth round is left to finish.
//!
//! Contents are compared through their length and BLAKE3 hash; modes and
//! symlink targets directly. Every saved snapshot is restored after every
//! round, so the run time grows with the square of the rounds.
//!
//! Environment: `SNAP_CRASH_SEED` replays a run's data and kill delays (the
//! seed is printed first; where a kill lands still varies with the machine),
//! `SNAP_CRASH_ITERATIONS` sets the number of rounds (default 25),
//! `SNAP_CRASH_KEEP=1` keeps the temporary directory for a post-mortem.

use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};
use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Output, Stdio};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

mod common;
use common::manifest::{manifest, stream_manifest, Manifest};
use common::runner::{env_u64, random_bytes, Snap as Repo};

const DUMP_NAME: &str = "dump.sql";

// ---------------------------------------------------------------------------
// The generated sources.

const WORDS: &str = "client site page article image backup theme plugin order user comment \
    menu footer header gallery contact price product cart lorem ipsum dolor amet été donnée \
    serveur hébergé";

fn words(rng: &mut StdRng, n: usize) -> String {
    let list: Vec<&str> = WORDS.split_whitespace().collect();
    let picked: Vec<&str> = (0..n).map(|_| list[rng.gen_range(0..list.len())]).collect();
    picked.join(" ")
}

/// A site tree: small files (text or binary), a few big binary files,
/// symlinks, various modes.
struct Tree {
    root: PathBuf,
    rng: StdRng,
    dirs: Vec<PathBuf>,
    small: Vec<PathBuf>,
    big: Vec<PathBuf>,
    links: Vec<PathBuf>,
    serial: u32,
}

const MODES: &[u32] = &[0o644, 0o644, 0o600, 0o640, 0o755, 0o700];

impl Tree {
    fn create(root: PathBuf, seed: u64) -> Tree {
        let mut t = Tree {
            root,
            rng: StdRng::seed_from_u64(seed),
            dirs: Vec::new(),
            small: Vec::new(),
            big: Vec::new(),
            links: Vec::new(),
            serial: 0,
        };
        for site in ["client-a", "client-b", "client-c"] {
            for sub in [
                "",
                "htdocs",
                "htdocs/img",
                "htdocs/docs",
                "htdocs/js",
                "conf",
            ] {
                let d = PathBuf::from(site).join(sub);
                std::fs::create_dir_all(t.root.join(&d)).expect("mkdir");
                t.dirs.push(d);
            }
        }
        for _ in 0..350 {
            t.add_small();
        }
        for _ in 0..5 {
            t.add_big();
        }
        for _ in 0..3 {
            t.add_link();
        }
        t
    }

    fn fresh_name(&mut self, ext: &str) -> PathBuf {
        self.serial += 1;
        let dir = self.dirs[self.rng.gen_range(0..self.dirs.len())].clone();
        dir.join(format!("f{:05}.{ext}", self.serial))
    }

    fn small_contents(&mut self) -> Vec<u8> {
        let len = match self.rng.gen_range(0..20) {
            0 => 0,
            1..=9 => self.rng.gen_range(1..2_000),
            _ => self.rng.gen_range(2_000..150_000),
        };
        if self.rng.gen_bool(0.5) {
            let mut s = words(&mut self.rng, len / 4 + 1).into_bytes();
            s.truncate(len);
            s
        } else {
            random_bytes(&mut self.rng, len)
        }
    }

    fn write(&mut self, rel: &Path, bytes: &[u8]) {
        let p = self.root.join(rel);
        std::fs::write(&p, bytes).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        let mode = MODES[self.rng.gen_range(0..MODES.len())];
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).expect("chmod");
    }

    fn add_small(&mut self) {
        let ext = if self.rng.gen_bool(0.5) { "php" } else { "jpg" };
        let rel = self.fresh_name(ext);
        let bytes = self.small_contents();
        self.write(&rel, &bytes);
        self.small.push(rel);
    }

    fn add_big(&mut self) {
        let rel = self.fresh_name("mp4");
        let len = self.rng.gen_range(2 << 20..8 << 20);
        let bytes = random_bytes(&mut self.rng, len);
        self.write(&rel, &bytes);
        self.big.push(rel);
    }

    fn add_link(&mut self) {
        let rel = self.fresh_name("lnk");
        let target = if self.small.is_empty() || self.rng.gen_bool(0.3) {
            PathBuf::from("../nowhere/dangling")
        } else {
            self.root
                .join(&self.small[self.rng.gen_range(0..self.small.len())])
        };
        std::os::unix::fs::symlink(&target, self.root.join(&rel)).expect("symlink");
        self.links.push(rel);
    }

    fn remove_one(list: &mut Vec<PathBuf>, rng: &mut StdRng, root: &Path) {
        if !list.is_empty() {
            let rel = list.swap_remove(rng.gen_range(0..list.len()));
            std::fs::remove_file(root.join(rel)).expect("remove");
        }
    }

    /// Changes, adds and removes files so that the next push has new data.
    fn mutate(&mut self) {
        if self.rng.gen_bool(0.2) {
            let parent = self.dirs[self.rng.gen_range(0..self.dirs.len())].clone();
            self.serial += 1;
            let d = parent.join(format!("d{:05}", self.serial));
            std::fs::create_dir(self.root.join(&d)).expect("mkdir");
            self.dirs.push(d);
        }
        for _ in 0..self.rng.gen_range(5..30) {
            let rel = self.small[self.rng.gen_range(0..self.small.len())].clone();
            let bytes = self.small_contents();
            self.write(&rel, &bytes);
        }
        for _ in 0..self.rng.gen_range(3..15) {
            self.add_small();
        }
        for _ in 0..self.rng.gen_range(0..10) {
            Self::remove_one(&mut self.small, &mut self.rng, &self.root);
        }
        for _ in 0..self.rng.gen_range(0..5) {
            let rel = &self.small[self.rng.gen_range(0..self.small.len())];
            let mode = MODES[self.rng.gen_range(0..MODES.len())];
            std::fs::set_permissions(self.root.join(rel), std::fs::Permissions::from_mode(mode))
                .expect("chmod");
        }
        // Big files: patched in place (most chunks dedup), rewritten whole,
        // or replaced.
        let i = self.rng.gen_range(0..self.big.len());
        let p = self.root.join(&self.big[i]);
        let mut bytes = std::fs::read(&p).expect("read big");
        let at = self.rng.gen_range(0..bytes.len());
        let n = self.rng.gen_range(4 << 10..512 << 10).min(bytes.len() - at);
        self.rng.fill_bytes(&mut bytes[at..at + n]);
        std::fs::write(&p, &bytes).expect("patch big");
        if self.rng.gen_bool(0.6) {
            let rel = self.big[self.rng.gen_range(0..self.big.len())].clone();
            let len = self.rng.gen_range(2 << 20..8 << 20);
            let bytes = random_bytes(&mut self.rng, len);
            self.write(&rel, &bytes);
        }
        if self.rng.gen_bool(0.2) {
            if self.big.len() > 3 {
                Self::remove_one(&mut self.big, &mut self.rng, &self.root);
            }
            self.add_big();
        }
        if self.rng.gen_bool(0.2) {
            Self::remove_one(&mut self.links, &mut self.rng, &self.root);
            self.add_link();
        }
    }
}

/// A database dump that changes a little between pushes, as real ones do.
struct Dump {
    rng: StdRng,
    rows: Vec<String>,
    next_id: u64,
}

impl Dump {
    fn new(seed: u64) -> Dump {
        let mut d = Dump {
            rng: StdRng::seed_from_u64(seed),
            rows: Vec::new(),
            next_id: 1,
        };
        for _ in 0..100_000 {
            let r = d.row();
            d.rows.push(r);
        }
        d
    }

    fn row(&mut self) -> String {
        self.next_id += 1;
        let n = self.rng.gen_range(3..30);
        let text = words(&mut self.rng, n);
        let day = self.rng.gen_range(1..29);
        format!(
            "INSERT INTO wp_posts VALUES ({}, '{text}', '2025-11-{day:02}', {});\n",
            self.next_id,
            self.rng.gen::<u32>()
        )
    }

    fn mutate(&mut self) {
        for _ in 0..self.rng.gen_range(50..500) {
            let i = self.rng.gen_range(0..self.rows.len());
            self.rows[i] = self.row();
        }
        for _ in 0..self.rng.gen_range(100..1_000) {
            let i = self.rng.gen_range(0..=self.rows.len());
            let r = self.row();
            self.rows.insert(i, r);
        }
        for _ in 0..self.rng.gen_range(0..200) {
            let i = self.rng.gen_range(0..self.rows.len());
            self.rows.remove(i);
        }
    }

    fn bytes(&self) -> Vec<u8> {
        let mut out = b"-- snap crash test dump\nBEGIN;\n".to_vec();
        for r in &self.rows {
            out.extend_from_slice(r.as_bytes());
        }
        out.extend_from_slice(b"COMMIT;\n");
        out
    }
}

// ---------------------------------------------------------------------------
// Running the binary.

/// A push in flight.
struct Running {
    child: Child,
    feeder: Option<JoinHandle<()>>,
    started: Instant,
}

fn spawn_push(repo: &Repo, args: &[&OsStr], stdin: Option<Arc<Vec<u8>>>) -> Running {
    let mut c = repo.cmd();
    c.arg("push").arg("--json").args(args);
    if stdin.is_some() {
        c.stdin(Stdio::piped());
    }
    let started = Instant::now();
    let mut child = c.spawn().expect("spawn snap push");
    let feeder = stdin.map(|data| {
        let mut pipe = child.stdin.take().expect("stdin is piped");
        // Writes fail with EPIPE once the push is killed; that is expected.
        std::thread::spawn(move || {
            for piece in data.chunks(256 << 10) {
                if pipe.write_all(piece).is_err() {
                    return;
                }
            }
        })
    });
    Running {
        child,
        feeder,
        started,
    }
}

/// How a push ended.
struct Outcome {
    /// Whether the kill landed while the process ran.
    killed: bool,
    /// The snapshot the push printed as saved, if it got that far: a push
    /// killed while closing the repository has already reported.
    reported: Option<String>,
    /// From spawn to exit or kill.
    took: Duration,
}

/// The id in a push's `--json` report, if the report is whole.
fn reported_id(stdout: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(stdout).ok()?;
    assert_eq!(
        v["complete"], true,
        "push reported an incomplete snapshot: {v}"
    );
    Some(v["id"].as_str().expect("push JSON has an id").to_string())
}

/// Kills the push after `delay` (or lets it finish when `None`) and says
/// what happened.
fn finish(mut r: Running, delay: Option<Duration>) -> Outcome {
    let mut took = None;
    if let Some(d) = delay {
        // Polls, so that a push that ends first is timed.
        loop {
            if r.child.try_wait().expect("poll push").is_some() {
                took = Some(r.started.elapsed());
                break;
            }
            let left = d.saturating_sub(r.started.elapsed());
            if left.is_zero() {
                took = Some(r.started.elapsed());
                // A push that exited since the poll is a zombie until reaped:
                // the kill is then harmless and the exit status says so.
                let _ = r.child.kill();
                break;
            }
            std::thread::sleep(left.min(Duration::from_millis(2)));
        }
    }
    let out: Output = r.child.wait_with_output().expect("wait for push");
    let took = took.unwrap_or_else(|| r.started.elapsed());
    if let Some(f) = r.feeder {
        f.join().expect("stdin feeder");
    }
    let killed = out.status.signal() == Some(libc::SIGKILL);
    assert!(
        killed || out.status.success(),
        "a push that was not killed failed ({}):\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let reported = reported_id(&out.stdout);
    assert!(
        killed || reported.is_some(),
        "push succeeded without a JSON report: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    Outcome {
        killed,
        reported,
        took,
    }
}

/// A snapshot that must keep restoring to `want`.
struct Saved {
    id: String,
    want: Manifest,
    /// False for a snapshot file that a killed push wrote before it could
    /// report it: not promised, but it exists, so it must be whole.
    reported: bool,
}

/// Number and total size of the `.tmp-*` files under `dir`.
fn temp_files(dir: &Path) -> (u64, u64) {
    let mut found = (0, 0);
    for e in std::fs::read_dir(dir).expect("read dir") {
        let e = e.expect("directory entry");
        let md = e.metadata().expect("metadata");
        if md.is_dir() {
            let (n, b) = temp_files(&e.path());
            found = (found.0 + n, found.1 + b);
        } else if e.file_name().to_string_lossy().starts_with(".tmp-") {
            found = (found.0 + 1, found.1 + md.len());
        }
    }
    found
}

#[derive(Default)]
struct Tally {
    killed: u32,
    killed_after_snapshot: u32,
    killed_after_report: u32,
    finished_before_kill: u32,
    not_killed: u32,
    stdin_pushes: u32,
}

fn push_files(repo: &Repo, src: &Path, force: bool) -> (Running, Manifest) {
    let mut args = vec![src.as_os_str()];
    if force {
        args.push(OsStr::new("--force"));
    }
    let want = manifest(src);
    (spawn_push(repo, &args, None), want)
}

fn push_dump(repo: &Repo, dump: &Dump) -> (Running, Manifest) {
    let bytes = Arc::new(dump.bytes());
    let want = stream_manifest(DUMP_NAME, &bytes);
    let args = ["--stdin", "--name", DUMP_NAME].map(OsStr::new);
    (spawn_push(repo, &args, Some(bytes)), want)
}

#[test]
fn push_killed_at_random_moments_leaves_a_good_repository() {
    let seed = env_u64("SNAP_CRASH_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock after 1970")
            .as_nanos() as u64
    });
    let rounds = env_u64("SNAP_CRASH_ITERATIONS").unwrap_or(25);
    eprintln!("crash test: seed {seed}, {rounds} rounds (replay with SNAP_CRASH_SEED={seed})");
    let began = Instant::now();
    let mut rng = StdRng::seed_from_u64(seed);

    let tmp = tempfile::Builder::new()
        .prefix("snap-crash-")
        .tempdir()
        .expect("temp dir");
    let keep = std::env::var_os("SNAP_CRASH_KEEP").is_some();
    if keep {
        eprintln!("crash test: keeping {}", tmp.path().display());
    }
    // Restores dominate the run time: creating a file costs about 1 ms on a
    // virtual disk and nothing on tmpfs, so they go to /dev/shm if it exists.
    let shm = Path::new("/dev/shm");
    let scratch_dir = if shm.is_dir() {
        tempfile::Builder::new()
            .prefix("snap-crash-restore-")
            .tempdir_in(shm)
    } else {
        tempfile::Builder::new()
            .prefix("restore-")
            .tempdir_in(tmp.path())
    }
    .expect("scratch dir");
    let scratch = scratch_dir.path();
    let repo = Repo {
        dir: tmp.path().join("repo"),
    };
    repo.ok(&["init"]);
    let mut tree = Tree::create(tmp.path().join("src"), rng.gen());
    let mut dump = Dump::new(rng.gen());
    let src = tree.root.clone();

    let mut saved: Vec<Saved> = Vec::new();
    let mut tally = Tally::default();

    // A first push of each kind runs to the end: the baseline, and a first
    // measure of how long a push takes.
    let mut estimate = [Duration::ZERO; 2];
    for (i, estimate) in estimate.iter_mut().enumerate() {
        let (run, want) = if i == 0 {
            push_files(&repo, &src, false)
        } else {
            push_dump(&repo, &dump)
        };
        let o = finish(run, None);
        let id = o
            .reported
            .expect("finish checks a push that was not killed");
        repo.verify(scratch, &id, &want);
        saved.push(Saved {
            id,
            want,
            reported: true,
        });
        *estimate = o.took;
    }

    for round in 0..rounds {
        let stdin = rng.gen_bool(1.0 / 3.0);
        let (run, want) = if stdin {
            tally.stdin_pushes += 1;
            dump.mutate();
            push_dump(&repo, &dump)
        } else {
            tree.mutate();
            // Now and then everything is read again: a longer push over
            // mostly known data.
            push_files(&repo, &src, rng.gen_bool(0.25))
        };
        let est = &mut estimate[stdin as usize];
        // Every sixth push, coming after a killed one, is left to finish:
        // the push after a crash must work.
        let delay = (round % 6 != 5)
            .then(|| Duration::from_micros(rng.gen_range(0..=est.as_micros() as u64)));
        let o = finish(run, delay);

        let known: BTreeSet<String> = saved.iter().map(|s| s.id.clone()).collect();
        let listed = repo.snapshot_ids();
        for s in &saved {
            assert!(listed.contains(&s.id), "snapshot {} disappeared", s.id);
        }
        let new: Vec<String> = listed.difference(&known).cloned().collect();
        assert!(new.len() <= 1, "one push added several snapshots: {new:?}");
        if let Some(id) = &o.reported {
            assert_eq!(new, [id.as_str()], "the reported snapshot is not listed");
        }
        let what = match (o.killed, &o.reported, new.first()) {
            (true, None, None) => "killed",
            // Its snapshot file is not promised, but it exists, so it must be whole.
            (true, None, Some(_)) => "killed after writing its snapshot",
            (true, Some(_), _) => "killed after reporting its snapshot",
            (false, _, _) if delay.is_some() => "finished before the kill",
            (false, _, _) => "let run",
        };
        if o.killed {
            tally.killed += 1;
            *est = est.mul_f64(1.07).min(Duration::from_secs(20));
        } else if delay.is_some() {
            tally.finished_before_kill += 1;
            *est = est.mul_f64(0.85).max(Duration::from_millis(5));
        } else {
            tally.not_killed += 1;
        }
        tally.killed_after_snapshot += (o.killed && o.reported.is_none() && !new.is_empty()) as u32;
        tally.killed_after_report += (o.killed && o.reported.is_some()) as u32;
        if let Some(id) = new.into_iter().next() {
            saved.push(Saved {
                reported: o.reported.is_some(),
                id,
                want,
            });
        }
        eprintln!(
            "round {round:>3}: {} push {what} at {:.1?}{}",
            if stdin { "stdin" } else { "files" },
            o.took,
            delay.map_or(String::new(), |d| format!(" (kill due at {d:.1?})")),
        );

        if round % 4 == 3 {
            repo.ok(&["check", "--read-data"]);
        } else {
            repo.ok(&["check"]);
        }
        for s in &saved {
            repo.verify(scratch, &s.id, &s.want);
        }
    }

    // The end: a push that is not killed, then everything read in full, also
    // through an index rebuilt from the packs alone (which needs an exclusive
    // lock despite the locks the killed pushes left).
    tree.mutate();
    let (run, want) = push_files(&repo, &src, false);
    let id = finish(run, None)
        .reported
        .expect("finish checks a push that was not killed");
    saved.push(Saved {
        id,
        want,
        reported: true,
    });
    repo.ok(&["check", "--read-data"]);
    repo.ok(&["repair", "index"]);
    repo.ok(&["check", "--read-data"]);
    for s in &saved {
        repo.verify(scratch, &s.id, &s.want);
    }

    // What the killed pushes left behind, which nothing reads: reported so
    // that a change in the clean-up shows.
    let locks_left = std::fs::read_dir(repo.dir.join("locks"))
        .expect("locks dir")
        .count();
    let (tmp_files, tmp_bytes) = temp_files(&repo.dir);
    eprintln!(
        "crash test: seed {seed}: {rounds} rounds ({} of stdin) in {:.1}s: {} kills landed \
         mid-push ({} after the snapshot file was written but before it was reported, {} after \
         it was reported), {} pushes finished before their kill, {} were let run; {} snapshots \
         verified after every round ({} reported as saved); left behind: {locks_left} lock files, \
         {tmp_files} temporary files ({tmp_bytes} bytes)",
        tally.stdin_pushes,
        began.elapsed().as_secs_f64(),
        tally.killed,
        tally.killed_after_snapshot,
        tally.killed_after_report,
        tally.finished_before_kill,
        tally.not_killed,
        saved.len(),
        saved.iter().filter(|s| s.reported).count(),
    );
    if keep {
        let _ = tmp.keep();
        let _ = scratch_dir.keep();
    }
}
