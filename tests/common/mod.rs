//! Shared fixtures for the command-line tests: a temporary repository that
//! runs the real `snap` binary, a source-tree generator, and a byte-for-byte
//! tree comparison (contents, modes, owners, mtimes to the nanosecond,
//! symlink targets, hard-link identity, special files, non-UTF-8 names).

#![allow(dead_code)] // each test binary uses a different part of this module

pub mod manifest;
pub mod runner;

use assert_cmd::Command;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ffi::{CString, OsStr, OsString};
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Output;

/// The password every fixture repository is created with.
pub const PASSWORD: &str = "correct horse battery staple";

/// A repository in a temporary directory, with the environment `snap` needs.
pub struct Repo {
    /// Holds the repository and anything else the test puts beside it.
    pub tmp: tempfile::TempDir,
    /// The repository directory.
    pub path: PathBuf,
}

impl Repo {
    /// A fresh, initialised repository.
    pub fn new() -> Repo {
        let r = Repo::uninit();
        let out = r.cmd().arg("init").output().expect("snap runs");
        assert_success(&out, "snap init");
        assert!(r.path.join("config").is_file(), "init wrote no config");
        r
    }

    /// A temporary directory where a repository would go, not initialised.
    pub fn uninit() -> Repo {
        let tmp = tempfile::tempdir().expect("temp dir");
        let path = tmp.path().join("repo");
        Repo { tmp, path }
    }

    /// A path beside the repository, inside the temporary directory.
    pub fn dir(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    /// The cache directory the commands use (SNAP_CACHE_DIR): beside the
    /// repository.
    pub fn cache(&self) -> PathBuf {
        cache_of(&self.path)
    }

    /// This repository's index directory in the cache (it exists once a
    /// command opened the repository).
    pub fn index_dir(&self) -> PathBuf {
        index_dir_of(&self.path)
    }

    /// `snap` with SNAP_REPO, SNAP_PASSWORD and a cheap key derivation set,
    /// and nothing inherited that could change what it does.
    pub fn cmd(&self) -> Command {
        let mut c = Command::cargo_bin("snap").expect("the snap binary is built");
        c.env("SNAP_REPO", &self.path)
            .env("SNAP_CACHE_DIR", self.cache())
            // No remotes unless a test names its own file.
            .env("SNAP_REMOTES_FILE", "/dev/null")
            // No policy file (policies, alerts) from the machine.
            .env("SNAP_POLICY_FILE", "/dev/null")
            // No configuration file from the machine.
            .env("SNAP_CONFIG", "/dev/null")
            .env("SNAP_PASSWORD", PASSWORD)
            .env("SNAP_KDF_MEMORY_KIB", "1024")
            .env("SNAP_INSECURE_KDF", "1")
            .env_remove("SNAP_PASSWORD_FILE")
            .env_remove("SNAP_NEW_PASSWORD")
            .env_remove("SNAP_NEW_PASSWORD_FILE")
            .timeout(std::time::Duration::from_secs(120));
        c
    }

    /// Runs `snap ARGS`, returning its output whatever the exit code.
    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().expect("snap runs")
    }

    /// Runs `snap ARGS` and asserts it exits 0.
    pub fn ok(&self, args: &[&str]) -> Output {
        let out = self.run(args);
        assert_success(&out, &format!("snap {}", args.join(" ")));
        out
    }

    /// Runs `snap --json ARGS`, asserts exit 0, and parses stdout.
    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut a = vec!["--json"];
        a.extend_from_slice(args);
        let out = self.ok(&a);
        parse_json(&out)
    }

    /// Pushes `src` with extra arguments; returns the JSON outcome.
    pub fn push(&self, src: &Path, extra: &[&str]) -> serde_json::Value {
        let s = src.to_str().expect("utf-8 temp path");
        let mut a = vec!["push"];
        a.extend_from_slice(extra);
        a.push(s);
        self.json(&a)
    }

    /// The snapshot list as JSON (oldest first).
    pub fn snapshots(&self, filters: &[&str]) -> Vec<serde_json::Value> {
        let mut a = vec!["snapshots"];
        a.extend_from_slice(filters);
        self.json(&a)
            .as_array()
            .expect("snapshots --json is an array")
            .clone()
    }

    /// Every file of the repository except the local index (a cache that
    /// RocksDB rewrites on open), with its bytes.
    pub fn files(&self) -> BTreeMap<PathBuf, Vec<u8>> {
        let mut out = BTreeMap::new();
        collect_files(&self.path, &self.path, &mut out);
        out
    }

    /// The pack files under data/, largest first.
    pub fn packs(&self) -> Vec<(PathBuf, u64)> {
        let mut v: Vec<(PathBuf, u64)> = self
            .files()
            .into_iter()
            .filter(|(p, _)| p.starts_with("data"))
            .map(|(p, b)| (self.path.join(p), b.len() as u64))
            .collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        v
    }
}

/// The cache directory of the repository at `repo` in the tests: beside it.
pub fn cache_of(repo: &Path) -> PathBuf {
    repo.with_file_name("cache")
}

/// The index directory of the repository at `repo`, in its cache.
pub fn index_dir_of(repo: &Path) -> PathBuf {
    let config = fs::read(repo.join("config")).expect("the repository has a config");
    snap::repo::cache::repo_dir(&cache_of(repo), &config).join("index")
}

fn collect_files(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
    for e in fs::read_dir(dir).expect("read repo dir") {
        let e = e.expect("dir entry");
        let p = e.path();
        let rel = p.strip_prefix(root).expect("under root").to_path_buf();
        if rel == Path::new("index") {
            continue;
        }
        if e.file_type().expect("file type").is_dir() {
            collect_files(root, &p, out);
        } else {
            out.insert(rel, fs::read(&p).expect("read repo file"));
        }
    }
}

/// Asserts a command exited 0, showing its output if not.
pub fn assert_success(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed with {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Asserts a command's exit code.
pub fn assert_code(out: &Output, code: i32, what: &str) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "{what}: wrong exit code\nstdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// stdout as text.
pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// stderr as text.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// stdout parsed as JSON.
pub fn parse_json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}):\n{}\nstderr:\n{}",
            stdout(out),
            stderr(out)
        )
    })
}

/// Deterministic bytes that do not compress (xorshift).
pub fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

fn cpath(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).expect("no NUL in path")
}

/// Sets a path's mtime (and atime) to `sec.nsec` without following symlinks.
pub fn set_mtime(p: &Path, sec: i64, nsec: i64) {
    let t = libc::timespec {
        tv_sec: sec as libc::time_t,
        tv_nsec: nsec as libc::c_long,
    };
    let times = [t, t];
    let c = cpath(p);
    // SAFETY: c is a valid NUL-terminated path; times has two entries.
    let r = unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            c.as_ptr(),
            times.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    assert_eq!(r, 0, "utimensat {}", p.display());
}

/// Makes a named pipe.
pub fn mkfifo(p: &Path) {
    let c = cpath(p);
    // SAFETY: c is a valid NUL-terminated path.
    let r = unsafe { libc::mkfifo(c.as_ptr(), 0o640) };
    assert_eq!(r, 0, "mkfifo {}", p.display());
}

fn chmod(p: &Path, mode: u32) {
    fs::set_permissions(p, fs::Permissions::from_mode(mode)).expect("chmod");
}

/// A non-UTF-8 file name.
pub fn latin1_name() -> OsString {
    OsStr::from_bytes(b"caf\xe9 \xff.txt").to_os_string()
}

/// Fills `root` (created) with a small site: text and binary files of
/// several modes, an empty file, a file over the 4 MiB windowed-read limit,
/// nested and non-UTF-8-named directories, symlinks (relative, absolute,
/// dangling, to a directory), a hard-linked pair in two directories, a FIFO,
/// and odd mtimes with nanoseconds.
pub fn make_tree(root: &Path) {
    fs::create_dir_all(root.join("wp-content/uploads/2026")).unwrap();
    fs::create_dir_all(root.join("wp-includes")).unwrap();
    fs::create_dir_all(root.join("stats")).unwrap();
    fs::create_dir_all(root.join("private")).unwrap();
    let odd = root.join(OsStr::from_bytes(b"d\xfe\xff"));
    fs::create_dir_all(&odd).unwrap();

    fs::write(
        root.join("index.php"),
        b"<?php require 'wp-blog-header.php';\n",
    )
    .unwrap();
    fs::write(root.join("empty"), b"").unwrap();
    fs::write(root.join("wp-includes/version.php"), b"<?php $v = '6.7';\n").unwrap();
    fs::write(root.join("wp-includes/run.sh"), b"#!/bin/sh\necho hi\n").unwrap();
    chmod(&root.join("wp-includes/run.sh"), 0o755);
    fs::write(
        root.join("wp-config.php"),
        b"define('DB_PASSWORD', 's3cret');\n",
    )
    .unwrap();
    chmod(&root.join("wp-config.php"), 0o600);
    fs::write(root.join("stats/access.log"), b"GET / 200\n".repeat(100)).unwrap();
    fs::write(
        root.join("wp-content/uploads/2026/photo.jpg"),
        noise(1, 300_000),
    )
    .unwrap();
    fs::write(root.join("wp-content/uploads/big.zip"), noise(2, 5_000_000)).unwrap();
    fs::write(root.join(latin1_name()), b"non-utf-8 name\n").unwrap();
    fs::write(odd.join("inside"), b"in a non-utf-8 dir\n").unwrap();
    fs::write(root.join("private/notes"), b"staff only\n").unwrap();
    chmod(&root.join("private/notes"), 0o640);

    fs::write(root.join("hard-a"), b"one inode, two names\n").unwrap();
    fs::hard_link(root.join("hard-a"), root.join("wp-includes/hard-b")).unwrap();

    std::os::unix::fs::symlink("index.php", root.join("link-rel")).unwrap();
    std::os::unix::fs::symlink("/nonexistent/target", root.join("link-dangling")).unwrap();
    std::os::unix::fs::symlink("wp-content/uploads", root.join("link-dir")).unwrap();
    mkfifo(&root.join("pipe"));

    // Odd times, with nanoseconds, on files, links and directories; the
    // directories last since creating entries changes their mtime.
    set_mtime(&root.join("index.php"), 1_600_000_000, 123_456_789);
    set_mtime(&root.join("empty"), 1_000_000_000, 1);
    set_mtime(&root.join("hard-a"), 1_500_000_000, 999_999_999);
    set_mtime(&root.join("link-rel"), 1_400_000_000, 500);
    set_mtime(&root.join("pipe"), 1_300_000_000, 42);
    set_mtime(&root.join(latin1_name()), 1_234_567_890, 987_654_321);
    chmod(&root.join("private"), 0o750);
    set_mtime(&root.join("private"), 1_100_000_000, 7);
    set_mtime(&root.join("wp-content/uploads/2026"), 1_650_000_000, 1);
    set_mtime(&odd, 1_660_000_000, 2);
}

/// Regular files (by path, so hard links count twice) under `root`.
pub fn count_files(root: &Path) -> u64 {
    let mut n = 0;
    for e in fs::read_dir(root).unwrap() {
        let e = e.unwrap();
        let t = e.file_type().unwrap();
        if t.is_dir() {
            n += count_files(&e.path());
        } else if t.is_file() {
            n += 1;
        }
    }
    n
}

fn sorted_entries(dir: &Path) -> Vec<OsString> {
    let mut v: Vec<OsString> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read_dir {}: {e}", dir.display()))
        .map(|e| e.unwrap().file_name())
        .collect();
    v.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    v
}

fn same_contents(a: &Path, b: &Path) -> bool {
    use std::io::Read;
    let (mut fa, mut fb) = (fs::File::open(a).unwrap(), fs::File::open(b).unwrap());
    let (mut ba, mut bb) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
    loop {
        let na = read_full(&mut fa, &mut ba);
        let nb = read_full(&mut fb, &mut bb);
        if na != nb || ba[..na] != bb[..nb] {
            return false;
        }
        if na == 0 {
            return true;
        }
    }
    fn read_full(f: &mut fs::File, buf: &mut [u8]) -> usize {
        let mut n = 0;
        while n < buf.len() {
            match f.read(&mut buf[n..]).unwrap() {
                0 => break,
                k => n += k,
            }
        }
        n
    }
}

/// Asserts that the tree under `got` equals the one under `want`: the same
/// names (as bytes), kinds, modes, owners, mtimes to the nanosecond, file
/// contents byte for byte, symlink targets and device numbers, and the same
/// hard-link groups (two paths share an inode in one tree exactly when they
/// share one in the other). The two roots' own metadata is not compared.
/// Paths in `skip` (relative to the roots) are left out of `want` and must
/// be absent from `got`.
pub fn assert_same_tree(want: &Path, got: &Path, skip: &[&Path]) {
    let mut inodes: Vec<(PathBuf, u64, u64)> = Vec::new();
    compare_dir(want, got, Path::new(""), skip, &mut inodes);
    // Hard-link identity: equal source inodes iff equal restored inodes.
    let mut by_want: HashMap<u64, u64> = HashMap::new();
    let mut by_got: HashMap<u64, u64> = HashMap::new();
    for (rel, wi, gi) in &inodes {
        let g = *by_want.entry(*wi).or_insert(*gi);
        assert_eq!(
            g,
            *gi,
            "{}: hard link not restored as one inode",
            rel.display()
        );
        let w = *by_got.entry(*gi).or_insert(*wi);
        assert_eq!(
            w,
            *wi,
            "{}: restored as a hard link to an unrelated file",
            rel.display()
        );
    }
}

fn compare_dir(
    want: &Path,
    got: &Path,
    rel: &Path,
    skip: &[&Path],
    inodes: &mut Vec<(PathBuf, u64, u64)>,
) {
    let wn: Vec<OsString> = sorted_entries(&want.join(rel))
        .into_iter()
        .filter(|n| !skip.contains(&rel.join(n).as_path()))
        .collect();
    let gn = sorted_entries(&got.join(rel));
    assert_eq!(
        wn,
        gn,
        "entries of {:?} differ (want vs restored)",
        rel.display()
    );
    for name in wn {
        let r = rel.join(&name);
        let (wp, gp) = (want.join(&r), got.join(&r));
        let (wm, gm) = (
            fs::symlink_metadata(&wp).unwrap(),
            fs::symlink_metadata(&gp).unwrap(),
        );
        let what = r.display().to_string();
        let (wt, gt) = (wm.file_type(), gm.file_type());
        assert_eq!(
            (wt.is_dir(), wt.is_file(), wt.is_symlink(), wt.is_fifo()),
            (gt.is_dir(), gt.is_file(), gt.is_symlink(), gt.is_fifo()),
            "{what}: kind differs"
        );
        assert_eq!(wm.mode(), gm.mode(), "{what}: mode differs");
        assert_eq!(
            (wm.uid(), wm.gid()),
            (gm.uid(), gm.gid()),
            "{what}: owner differs"
        );
        assert_eq!(
            (wm.mtime(), wm.mtime_nsec()),
            (gm.mtime(), gm.mtime_nsec()),
            "{what}: mtime differs"
        );
        if wt.is_symlink() {
            assert_eq!(
                fs::read_link(&wp).unwrap(),
                fs::read_link(&gp).unwrap(),
                "{what}: symlink target differs"
            );
        } else if wt.is_file() {
            assert_eq!(wm.len(), gm.len(), "{what}: size differs");
            assert!(same_contents(&wp, &gp), "{what}: contents differ");
            assert_eq!(wm.nlink(), gm.nlink(), "{what}: link count differs");
            inodes.push((r.clone(), wm.ino(), gm.ino()));
        } else if wt.is_char_device() || wt.is_block_device() {
            assert_eq!(wm.rdev(), gm.rdev(), "{what}: device differs");
        }
        if wt.is_dir() {
            compare_dir(want, got, &r, skip, inodes);
        }
    }
}

// Helpers of the command-line tests.

pub fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: buf is writable for its whole length.
    let r = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    assert_eq!(r, 0);
    let n = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

pub fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

pub fn str_of(v: &serde_json::Value, key: &str) -> String {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("{key} is not a string in {v}"))
        .to_string()
}

/// The paths `snap ls --json` prints.
pub fn ls_paths(repo: &Repo, args: &[&str]) -> BTreeSet<String> {
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
pub fn tree_paths(dir: &Path, rel: &str, out: &mut BTreeSet<String>) {
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

pub fn tree_path_set(root: &Path) -> BTreeSet<String> {
    let mut s = BTreeSet::new();
    tree_paths(root, "", &mut s);
    s
}

/// `snap` run in one time zone, with no policy file but the ones a test
/// names: the clock-dependent tests (policies, times) all run this way.
pub struct InZone<'a> {
    /// The repository.
    pub repo: &'a Repo,
    /// A TZ value, e.g. `UTC` or `Europe/Paris`.
    pub tz: &'static str,
}

impl InZone<'_> {
    /// The command, not yet run.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = self.repo.cmd();
        c.env("TZ", self.tz)
            .env_remove("SNAP_POLICY_FILE")
            .env("XDG_CONFIG_HOME", self.repo.dir("no-config"))
            .args(args);
        c
    }

    /// Runs it, whatever the exit code.
    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().expect("snap runs")
    }

    /// Runs it and asserts it exits 0.
    pub fn ok(&self, args: &[&str]) -> Output {
        let out = self.run(args);
        assert_success(&out, &format!("snap {}", args.join(" ")));
        out
    }

    /// Runs it with `--json`, asserts exit 0, and parses stdout.
    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut a = vec!["--json"];
        a.extend_from_slice(args);
        parse_json(&self.ok(&a))
    }
}
