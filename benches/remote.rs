//! Off-site figures (issue 8), measured in one run against a real S3 server
//! (s3s-fs on 127.0.0.1, installed by scripts/install-deps.sh):
//!
//! 1. replication throughput (`snap replicate`) against a plain upload of
//!    the same bytes (the remote's pack files) by the same HTTP client
//!    (snap's S3 backend) at the same concurrency;
//! 2. bytes sent by the second replication after one day of changes,
//!    against that day's new data in the local repository;
//! 3. restore throughput from the S3 repository against the local one;
//! 4. peak memory of `snap replicate`, for two repository sizes.
//!
//! `cargo bench --bench remote` (env: SIZE_MB, default 1024; UPLOADS,
//! default 4; REPS, default 3). Writes benches/results/remote.md.

use snap::backend::s3::{S3Backend, S3Config, S3Options};
use snap::backend::{Backend, FileType};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const PASSWORD: &str = "bench-password";

fn env_u64(var: &str, default: u64) -> u64 {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn s3s_fs() -> PathBuf {
    if let Some(p) = std::env::var_os("SNAP_S3S_FS") {
        return PathBuf::from(p);
    }
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .expect("HOME is set");
    let p = home.join("bin/s3s-fs");
    assert!(
        p.is_file(),
        "s3s-fs is not at {}: run scripts/install-deps.sh",
        p.display()
    );
    p
}

struct Server {
    child: std::process::Child,
    port: u16,
    root: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_server(work: &Path) -> Server {
    let root = work.join("s3-root");
    std::fs::create_dir_all(&root).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(s3s_fs())
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .args(["--access-key", "benchkey", "--secret-key", "benchsecret"])
        .arg(&root)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("s3s-fs starts");
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "s3s-fs does not answer");
        std::thread::yield_now();
    }
    Server { child, port, root }
}

fn env_of(key: &str) -> Option<String> {
    match key {
        "AWS_ACCESS_KEY_ID" => Some("benchkey".into()),
        "AWS_SECRET_ACCESS_KEY" => Some("benchsecret".into()),
        _ => None,
    }
}

/// Runs snap; returns stdout, the wall time and the peak RSS (KiB).
// The child is reaped by wait4 (which also gives its peak RSS).
#[allow(clippy::zombie_processes)]
fn snap(work: &Path, remotes: &Path, args: &[&str]) -> (String, f64, i64) {
    let started = Instant::now();
    let child = Command::new(env!("CARGO_BIN_EXE_snap"))
        .env("SNAP_REPO", work.join("repo"))
        .env("SNAP_CACHE_DIR", work.join("cache"))
        .env("SNAP_PASSWORD", PASSWORD)
        .env("SNAP_REMOTES_FILE", remotes)
        .env("AWS_ACCESS_KEY_ID", "benchkey")
        .env("AWS_SECRET_ACCESS_KEY", "benchsecret")
        .env_remove("SNAP_PASSWORD_FILE")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let pid = child.id() as i32;
    let mut out = String::new();
    {
        use std::io::Read;
        child.stdout.unwrap().read_to_string(&mut out).unwrap();
    }
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value to fill.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waits for our own child, filling `status` and `ru`.
    unsafe { libc::wait4(pid, &mut status, 0, &mut ru) };
    let wall = started.elapsed().as_secs_f64();
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "snap {} failed",
        args.join(" ")
    );
    (out, wall, ru.ru_maxrss)
}

fn json(s: &str) -> serde_json::Value {
    serde_json::from_str(s).unwrap()
}

/// Incompressible bytes, seeded.
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut v = Vec::with_capacity(len);
    while v.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(len);
    v
}

/// A site of `mb` MiB: files of 64 KiB to 4 MiB.
fn make_site(dir: &Path, mb: u64) -> Vec<PathBuf> {
    std::fs::create_dir_all(dir).unwrap();
    let mut files = Vec::new();
    let mut left = mb << 20;
    let mut i = 0u64;
    while left > 0 {
        let len = ((64u64 << 10) << (i % 7)).min(left);
        let p = dir.join(format!("d{}/f{i}.bin", i % 16));
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, noise(i + 1, len as usize)).unwrap();
        files.push(p);
        left -= len;
        i += 1;
    }
    files
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

/// The pack files of the repository under `prefix` of bucket `bucket` in
/// the server's root directory (s3s-fs keeps each object as a file).
fn pack_files(root: &Path, bucket: &str, prefix: &str) -> Vec<PathBuf> {
    let data = root.join(bucket).join(prefix).join("data");
    let mut out = Vec::new();
    for d in std::fs::read_dir(&data).unwrap().flatten() {
        for f in std::fs::read_dir(d.path()).unwrap().flatten() {
            let name = f.file_name().to_string_lossy().into_owned();
            if name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit()) {
                out.push(f.path());
            }
        }
    }
    out
}

/// Uploads `files` as packs to a fresh prefix with `uploads` threads;
/// returns the wall time.
fn plain_upload(port: u16, files: &[PathBuf], uploads: usize, rep: u64) -> f64 {
    let url = format!("s3+http://127.0.0.1:{port}/plain/r{rep}");
    let b = S3Backend::new(
        S3Config::from_url(&url, &env_of).unwrap(),
        S3Options::default(),
    )
    .unwrap();
    b.ensure_bucket().unwrap();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let started = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..uploads {
            s.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let Some(f) = files.get(i) else { break };
                let name = f.file_name().unwrap().to_string_lossy().into_owned();
                b.write_file(FileType::Pack, &name, f).unwrap();
            });
        }
    });
    started.elapsed().as_secs_f64()
}

struct Run {
    size_mb: u64,
    rep_bytes: u64,
    rep_s: Vec<f64>,
    rep_wall: Vec<f64>,
    plain_s: Vec<f64>,
    rss_kib: i64,
    day2_stored: u64,
    day2_sent: u64,
    restore_local: Vec<f64>,
    restore_s3: Vec<f64>,
}

fn one_size(size_mb: u64, uploads: usize, reps: u64, full: bool) -> Run {
    let work = PathBuf::from(format!(
        "/var/tmp/snap-bench-remote-{}-{size_mb}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).unwrap();
    let server = start_server(&work);
    let site = work.join("site");
    let files = make_site(&site, size_mb);
    let remotes = work.join("remotes.toml");
    let none = work.join("no-remotes.toml");
    std::fs::write(&none, "").unwrap();
    let remote_toml = |rep: u64| {
        format!(
            "[remote.offsite]\nurl = \"s3+http://127.0.0.1:{}/offsite/r{rep}\"\njurisdiction = \"FR\"\nuploads = {uploads}\n",
            server.port
        )
    };
    snap(&work, &none, &["init"]);
    let site_s = site.to_str().unwrap();
    snap(
        &work,
        &none,
        &["push", "--level", "2", "--site", "bench", "-q", site_s],
    );
    let mut run = Run {
        size_mb,
        rep_bytes: 0,
        rep_s: vec![],
        rep_wall: vec![],
        plain_s: vec![],
        rss_kib: 0,
        day2_stored: 0,
        day2_sent: 0,
        restore_local: vec![],
        restore_s3: vec![],
    };
    for rep in 0..reps {
        // A fresh remote each repetition: the whole first replication.
        std::fs::write(&remotes, remote_toml(rep)).unwrap();
        snap(&work, &remotes, &["remote", "init", "offsite"]);
        let (out, wall, rss) = snap(&work, &remotes, &["--json", "replicate", "offsite"]);
        let v = json(&out);
        run.rep_bytes = v["bytes_sent"].as_u64().unwrap();
        run.rep_s.push(v["duration_s"].as_f64().unwrap());
        run.rep_wall.push(wall);
        run.rss_kib = run.rss_kib.max(rss);
        // The same bytes, by the same client, at the same concurrency.
        let packs = pack_files(&server.root, "offsite", &format!("r{rep}"));
        run.plain_s
            .push(plain_upload(server.port, &packs, uploads, rep));
        eprintln!(
            "  {size_mb} MiB rep {rep}: replicate {:.2}s ({wall:.2}s wall, {} KiB), plain upload {:.2}s",
            run.rep_s.last().unwrap(),
            rss,
            run.plain_s.last().unwrap()
        );
    }
    if full {
        // Day 2: 2% of the files rewritten, 1% more added; pushed with no
        // remote, then replicated to the last remote.
        for (i, f) in files.iter().enumerate().filter(|(i, _)| i % 50 == 7) {
            let len = std::fs::metadata(f).unwrap().len() as usize;
            std::fs::write(f, noise(1_000_000 + i as u64, len)).unwrap();
        }
        std::fs::write(
            site.join("added.bin"),
            noise(7, (size_mb << 20) as usize / 100),
        )
        .unwrap();
        let (out, _, _) = snap(
            &work,
            &none,
            &["--json", "push", "--level", "2", "--site", "bench", site_s],
        );
        run.day2_stored = json(&out)["summary"]["bytes_stored"].as_u64().unwrap();
        let (out, _, _) = snap(&work, &remotes, &["--json", "replicate", "offsite"]);
        run.day2_sent = json(&out)["bytes_sent"].as_u64().unwrap();
        for rep in 0..reps {
            let t1 = work.join(format!("out-local-{rep}"));
            let (_, w, _) = snap(
                &work,
                &none,
                &["restore", "-q", "latest", "--target", t1.to_str().unwrap()],
            );
            run.restore_local.push(w);
            let t2 = work.join(format!("out-s3-{rep}"));
            let (_, w, _) = snap(
                &work,
                &remotes,
                &[
                    "--remote",
                    "offsite",
                    "restore",
                    "-q",
                    "latest",
                    "--target",
                    t2.to_str().unwrap(),
                ],
            );
            run.restore_s3.push(w);
            let same = Command::new("diff")
                .args(["-rq"])
                .arg(&t1)
                .arg(&t2)
                .status()
                .unwrap()
                .success();
            assert!(same, "the two restores differ");
            std::fs::remove_dir_all(&t1).unwrap();
            std::fs::remove_dir_all(&t2).unwrap();
        }
    }
    drop(server);
    let _ = std::fs::remove_dir_all(&work);
    run
}

/// Replication when the level-2 snapshot's blobs share packs with level-1
/// data (a global level-1 push holding every site): only the blobs one
/// site needs can go, one by one, into new packs. Returns (replicate's own
/// seconds, plain upload seconds, bytes sent).
fn mixed(size_mb: u64, uploads: usize) -> (f64, f64, u64) {
    let work = PathBuf::from(format!("/var/tmp/snap-bench-mixed-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).unwrap();
    let server = start_server(&work);
    // Two sites' files interleaved in one global tree: each level-1 pack
    // holds both; site a is the even files (hard links).
    let all = work.join("www");
    let files = make_site(&all, size_mb * 2);
    let a = work.join("site-a");
    for (i, f) in files.iter().enumerate().filter(|(i, _)| i % 2 == 0) {
        let to = a.join(f.strip_prefix(&all).unwrap());
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::hard_link(f, &to).unwrap_or_else(|e| panic!("link {i}: {e}"));
    }
    let none = work.join("no-remotes.toml");
    std::fs::write(&none, "").unwrap();
    let remotes = work.join("remotes.toml");
    std::fs::write(
        &remotes,
        format!(
            "[remote.offsite]\nurl = \"s3+http://127.0.0.1:{}/offsite/mixed\"\njurisdiction = \"FR\"\nuploads = {uploads}\n",
            server.port
        ),
    )
    .unwrap();
    snap(&work, &none, &["init"]);
    snap(
        &work,
        &none,
        &["push", "--level", "1", "-q", all.to_str().unwrap()],
    );
    snap(
        &work,
        &none,
        &[
            "push",
            "--level",
            "2",
            "--site",
            "a",
            "-q",
            a.to_str().unwrap(),
        ],
    );
    snap(&work, &remotes, &["remote", "init", "offsite"]);
    let (out, _, _) = snap(&work, &remotes, &["--json", "replicate", "offsite"]);
    let v = json(&out);
    let packs = pack_files(&server.root, "offsite", "mixed");
    let plain = plain_upload(server.port, &packs, uploads, 99);
    drop(server);
    let _ = std::fs::remove_dir_all(&work);
    (
        v["duration_s"].as_f64().unwrap(),
        plain,
        v["bytes_sent"].as_u64().unwrap(),
    )
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` too: run once.
    let size = env_u64("SIZE_MB", 1024);
    let uploads = env_u64("UPLOADS", 4) as usize;
    let reps = env_u64("REPS", 3);
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    eprintln!("remote bench: {size} MiB, {uploads} uploads at once, {reps} repetitions");
    let big = one_size(size, uploads, reps, true);
    let small = one_size((size / 4).max(16), uploads, 1, false);
    let (mixed_rep, mixed_plain, mixed_bytes) = mixed((size / 2).max(16), uploads);
    eprintln!(
        "  mixed: replicate {mixed_rep:.2}s, plain upload {mixed_plain:.2}s, {mixed_bytes} bytes"
    );
    let mb = |b: u64| b as f64 / (1 << 20) as f64;
    let rep_tp = mb(big.rep_bytes) / median(big.rep_s.clone());
    let plain_tp = mb(big.rep_bytes) / median(big.plain_s.clone());
    let size_bytes = (big.size_mb << 20) as f64 / (1 << 20) as f64;
    let mut md = String::new();
    md += &format!(
        "# Off-site figures (`cargo bench --bench remote`, SIZE_MB={size}, UPLOADS={uploads}, REPS={reps})\n\n"
    );
    md += "s3s-fs 0.14.1 on 127.0.0.1 (files on the same disk), snap's S3 backend for both sides; medians, all runs in brackets.\n\n";
    md += "| figure | value | target |\n|---|---:|---|\n";
    md += &format!(
        "| replication throughput (bytes sent / replicate's own duration) | {rep_tp:.0} MiB/s ({}) | |\n",
        big.rep_s.iter().map(|s| format!("{s:.2}s")).collect::<Vec<_>>().join(", ")
    );
    md += &format!(
        "| plain upload of the same pack files, same client, {uploads} at once | {plain_tp:.0} MiB/s ({}) | |\n",
        big.plain_s.iter().map(|s| format!("{s:.2}s")).collect::<Vec<_>>().join(", ")
    );
    md += &format!(
        "| **replication / plain upload** | **{:.2}** | ≥ 0.8 |\n",
        rep_tp / plain_tp
    );
    md += &format!(
        "| level-2 blobs inside level-1 packs ({} MiB of a {} MiB global push): replication / plain upload of its packs | {:.2} ({:.0} vs {:.0} MiB/s) | |\n",
        (size / 2).max(16),
        (size / 2).max(16) * 2,
        mixed_plain / mixed_rep,
        mb(mixed_bytes) / mixed_rep,
        mb(mixed_bytes) / mixed_plain
    );
    md += &format!(
        "| replicate, whole process (open, unlock, replicate) | {:.2}s wall ({}) | |\n",
        median(big.rep_wall.clone()),
        big.rep_wall
            .iter()
            .map(|s| format!("{s:.2}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    md += &format!(
        "| **day 2: bytes sent / day's new data stored** | **{:.3}** ({} / {} bytes) | ≤ 1.1 |\n",
        big.day2_sent as f64 / big.day2_stored.max(1) as f64,
        big.day2_sent,
        big.day2_stored
    );
    let rl = median(big.restore_local.clone());
    let rs = median(big.restore_s3.clone());
    md += &format!(
        "| restore, local repository | {:.0} MiB/s ({rl:.2}s) | |\n",
        size_bytes / rl
    );
    md += &format!(
        "| restore, S3 repository | {:.0} MiB/s ({rs:.2}s) | |\n",
        size_bytes / rs
    );
    md += &format!(
        "| **restore from S3 / restore from local (throughput)** | **{:.2}** | measured |\n",
        rl / rs
    );
    md += &format!(
        "| **peak RSS of replicate** | **{:.0} MB** at {} MiB, {:.0} MB at {} MiB | < 200 MB |\n",
        big.rss_kib as f64 / 1024.0,
        big.size_mb,
        small.rss_kib as f64 / 1024.0,
        small.size_mb
    );
    print!("{md}");
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/results/remote.md");
    std::fs::write(&out, md).unwrap();
    eprintln!("written to {}", out.display());
}
