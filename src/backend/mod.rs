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
    /// Puts the bytes of the local file `path` in place as `name`, with
    /// the rules of [`Backend::write`]. The file is left as it is, for the
    /// caller to remove: a backend on the same file system may link it
    /// rather than copy it, and a remote one streams it.
    fn write_file(&self, t: FileType, name: &str, path: &std::path::Path) -> Result<()> {
        let data = std::fs::read(path).map_err(|e| {
            crate::error::Error::storage(
                self.location(),
                format!("reading the staged file {}", path.display()),
                e,
            )
        })?;
        self.write(t, name, &data)
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

    /// A fresh local directory for the files the suite hands to
    /// [`Backend::write_file`].
    fn tempdir_for_conformance() -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!(
            "snap-conformance-{}-{:016x}",
            std::process::id(),
            rand::random::<u64>()
        ));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

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
        let dir = tempdir_for_conformance();
        let staged = dir.join("staged");
        std::fs::write(&staged, b"staged bytes").unwrap();
        b.write_file(FileType::Pack, &name, &staged).unwrap();
        assert_eq!(
            std::fs::read(&staged).unwrap(),
            b"staged bytes",
            "the local file is left to the caller"
        );
        assert_eq!(b.read(FileType::Pack, &name).unwrap(), b"staged bytes");
        std::fs::write(dir.join("other"), b"other bytes").unwrap();
        let taken = b
            .write_file(FileType::Pack, &name, &dir.join("other"))
            .unwrap_err();
        assert!(taken.is_already_exists(), "{taken}");
        assert_eq!(b.read(FileType::Pack, &name).unwrap(), b"staged bytes");
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(b.list(FileType::Pack).unwrap(), vec![name.clone()]);
        b.remove(FileType::Pack, &name).unwrap();
        let gone = b.read(FileType::Pack, &name).unwrap_err();
        assert!(gone.is_not_found(), "a missing file is NotFound: {gone}");
        assert!(b.remove(FileType::Pack, &name).unwrap_err().is_not_found());
        assert!(b.list(FileType::Pack).unwrap().is_empty());
    }
}
