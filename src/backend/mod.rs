//! Backends store opaque bytes under a file type and a name.
//!
//! They know nothing of packs, trees or snapshots. Writes are atomic (a
//! reader sees the whole file or none of it) and durable when they return.
//! Their errors are [`crate::error::Error::Storage`] with a kind (not found,
//! transient, permanent) the repository can match on.
//!
//! [`faulty::FaultyBackend`] wraps any backend to fail chosen operations
//! (ENOSPC, EIO, short writes); [`mem::MemBackend`] keeps everything in
//! memory. Both exist so that the write order can be tested under faults
//! in milliseconds.

pub mod faulty;
pub mod local;
pub mod mem;
pub mod recording;
pub mod s3;

use crate::error::Result;
use std::io::Write;

/// The kinds of files a repository holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FileType {
    /// The config file.
    Config,
    /// Key files.
    Key,
    /// Packs.
    Pack,
    /// Snapshot files.
    Snapshot,
    /// Lock files.
    Lock,
    /// Protection markers: `protected/<snapshot id>` keeps that snapshot
    /// from every policy.
    Protect,
    /// State records (format version 4): `state/<sequence number>`.
    State,
}

/// Storage for a repository's files.
pub trait Backend: Send + Sync {
    /// Where the repository is, for messages.
    fn location(&self) -> String;
    /// Whether someone else serves the bytes (and sees which ranges are
    /// read): pack data is then read on a fixed grid, never one blob's exact
    /// range (format-spec.md §9.1). The local disk is not remote.
    fn is_remote(&self) -> bool {
        false
    }
    /// Names of all files of type `t`.
    fn list(&self, t: FileType) -> Result<Vec<String>>;
    /// Names and sizes of all files of type `t`.
    fn list_sizes(&self, t: FileType) -> Result<Vec<(String, u64)>>;
    /// A whole file.
    fn read(&self, t: FileType, name: &str) -> Result<Vec<u8>>;
    /// `len` bytes at `offset`.
    fn read_range(&self, t: FileType, name: &str, offset: u64, len: u64) -> Result<Vec<u8>>;
    /// The size of a file.
    fn size(&self, t: FileType, name: &str) -> Result<u64>;
    /// Whether a file exists.
    fn exists(&self, t: FileType, name: &str) -> Result<bool>;
    /// Writes a file atomically and durably, only if no file of that name
    /// exists (two writers racing for one name: one wins, the other gets an
    /// error for which [`crate::error::Error::is_already_exists`] holds);
    /// a lock file ([`FileType::Lock`]) is replaced instead.
    fn write(&self, t: FileType, name: &str, data: &[u8]) -> Result<()>;
    /// Removes a file.
    fn remove(&self, t: FileType, name: &str) -> Result<()>;
    /// A local directory where a large file (a pack) is written before
    /// [`Backend::write_staged`] puts it in place; files there are named
    /// `.tmp-*` and never listed.
    fn staging_dir(&self) -> std::path::PathBuf;
    /// Puts a file staged in [`Backend::staging_dir`] in place atomically and
    /// durably under `name`; the staged file is gone afterwards. A file of the
    /// same name already in place is kept (names are content hashes).
    fn write_staged(&self, t: FileType, name: &str, staged: &std::path::Path) -> Result<()>;
    /// Removes the temporary files (`.tmp-<pid>-…`, `.tmp-pack-<pid>-…`) of
    /// processes for which `gone(pid)` is true; returns how many.
    fn remove_temporary(&self, gone: &dyn Fn(u32) -> bool) -> Result<u64>;
    /// Creates a new staging file at `path` (inside [`Backend::staging_dir`])
    /// for a writer to fill. A wrapper may return a writer that fails.
    fn create_staged(&self, path: &std::path::Path) -> std::io::Result<Box<dyn Write + Send>> {
        let f = std::fs::File::options()
            .write(true)
            .create_new(true)
            .open(path)?;
        Ok(Box::new(f))
    }
}

/// The process id in a temporary file's name (`.tmp-<pid>-…` or
/// `.tmp-pack-<pid>-…`), if it is one.
pub fn temporary_owner(name: &str) -> Option<u32> {
    let rest = name.strip_prefix(".tmp-")?;
    let rest = rest.strip_prefix("pack-").unwrap_or(rest);
    rest.split('-').next()?.parse().ok()
}

/// Removes the temporary files of gone processes directly in `dir`.
pub(crate) fn remove_temporary_in(dir: &std::path::Path, gone: &dyn Fn(u32) -> bool) -> u64 {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut removed = 0;
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if temporary_owner(&name).is_some_and(gone) && std::fs::remove_file(e.path()).is_ok() {
            removed += 1;
        }
    }
    removed
}

/// The suite every backend must pass: public, so that the tests of a
/// backend kept elsewhere (a real S3 server started by a test) run the same
/// checks as the local, in-memory, fault-injecting and recording ones. It
/// panics on the first rule a backend breaks, as a test does.
pub mod conformance {
    use super::*;

    /// Runs the suite against `b`, which must be empty.
    pub fn run(b: &dyn Backend) {
        let name = "ab".repeat(32);
        assert!(b.list(FileType::Pack).unwrap().is_empty());
        b.write(FileType::Pack, &name, b"0123456789").unwrap();
        assert!(b.exists(FileType::Pack, &name).unwrap());
        assert_eq!(b.read(FileType::Pack, &name).unwrap(), b"0123456789");
        assert_eq!(b.read_range(FileType::Pack, &name, 2, 3).unwrap(), b"234");
        assert!(b.read_range(FileType::Pack, &name, 8, 3).is_err());
        assert_eq!(b.size(FileType::Pack, &name).unwrap(), 10);
        assert_eq!(
            b.list_sizes(FileType::Pack).unwrap(),
            vec![(name.clone(), 10)]
        );
        assert!(
            b.write(FileType::Pack, &name, b"other").is_err(),
            "packs are never overwritten"
        );
        assert_eq!(b.read(FileType::Pack, &name).unwrap(), b"0123456789");
        b.write(FileType::Lock, "l", b"1").unwrap();
        b.write(FileType::Lock, "l", b"2").unwrap();
        assert_eq!(b.read(FileType::Lock, "l").unwrap(), b"2");
        b.write(FileType::Snapshot, "s", b"snap").unwrap();
        assert_eq!(b.list(FileType::Snapshot).unwrap(), vec!["s".to_string()]);
        b.remove(FileType::Pack, &name).unwrap();
        assert!(!b.exists(FileType::Pack, &name).unwrap());
        // States are created only if absent: a second writer of a number
        // learns that it lost, and the first one's bytes stay.
        assert!(b.list(FileType::State).unwrap().is_empty());
        b.write(FileType::State, "0000000000000001", b"first")
            .unwrap();
        let lost = b
            .write(FileType::State, "0000000000000001", b"second")
            .unwrap_err();
        assert!(lost.is_already_exists(), "{lost}");
        assert_eq!(
            b.read(FileType::State, "0000000000000001").unwrap(),
            b"first"
        );
        assert_eq!(
            b.list(FileType::State).unwrap(),
            vec!["0000000000000001".to_string()]
        );
        b.remove(FileType::State, "0000000000000001").unwrap();
        assert!(b.list(FileType::State).unwrap().is_empty());
        let staged = b.staging_dir().join(".tmp-conformance");
        std::fs::write(&staged, b"staged bytes").unwrap();
        b.write_staged(FileType::Pack, &name, &staged).unwrap();
        assert!(!staged.exists(), "the staged file is moved or removed");
        assert_eq!(b.read(FileType::Pack, &name).unwrap(), b"staged bytes");
        assert!(
            b.list(FileType::Pack).unwrap() == vec![name.clone()],
            "staging files are never listed"
        );
        b.remove(FileType::Pack, &name).unwrap();
        let gone = b.read(FileType::Pack, &name).unwrap_err();
        assert!(gone.is_not_found(), "a missing file is NotFound: {gone}");
        assert!(b.remove(FileType::Pack, &name).unwrap_err().is_not_found());
        assert!(b.list(FileType::Pack).unwrap().is_empty());
        let dead = b.staging_dir().join(".tmp-pack-4000000-1");
        let alive = b
            .staging_dir()
            .join(format!(".tmp-pack-{}-2", std::process::id()));
        std::fs::write(&dead, b"x").unwrap();
        std::fs::write(&alive, b"x").unwrap();
        let mine = std::process::id();
        assert_eq!(b.remove_temporary(&|pid| pid != mine).unwrap(), 1);
        assert!(!dead.exists() && alive.exists());
        std::fs::remove_file(alive).unwrap();
    }
}
