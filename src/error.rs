//! The library's error type.
//!
//! Each variant says what failed and on which object; the variants that a
//! user must tell apart in a script (no repository, locked, wrong password)
//! are distinct so the command line can give them their own exit codes.

use std::path::PathBuf;

/// Result alias used throughout the library.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in the library.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No repository at the given place.
    #[error("no snap repository at {path}: run `snap init` there first, or set --repo / SNAP_REPO to an existing one")]
    NoRepository {
        /// Where one was looked for.
        path: PathBuf,
    },
    /// The path exists but is not a snap repository.
    #[error("{path} is not a snap repository ({why}); refusing to touch it")]
    ForeignRepository {
        /// The directory.
        path: PathBuf,
        /// What gave it away.
        why: String,
    },
    /// A repository already exists where `init` was asked to make one.
    #[error("{path} already holds a snap repository; nothing was changed")]
    AlreadyExists {
        /// The directory.
        path: PathBuf,
    },
    /// The format version is one this program does not know.
    #[error(
        "{what} has format version {found}, this snap reads versions up to {supported}: upgrade snap"
    )]
    UnsupportedVersion {
        /// The object.
        what: String,
        /// Version found on disk.
        found: u32,
        /// Version this program reads.
        supported: u32,
    },
    /// No key file opens with the password given.
    #[error("wrong password: none of the {keys} key file(s) in the repository opens with it")]
    WrongPassword {
        /// Number of key files tried.
        keys: usize,
    },
    /// Another process holds a lock that conflicts.
    #[error("repository is locked: {detail}")]
    Locked {
        /// Who holds it.
        detail: String,
    },
    /// Stored bytes failed authentication or did not decode.
    #[error("{object} is damaged: {why}")]
    Corrupt {
        /// Which object.
        object: String,
        /// What is wrong.
        why: String,
    },
    /// A blob the metadata names is not in the index.
    #[error("{object} is missing from the repository (not in any indexed pack); run `snap check`, then `snap repair index`")]
    Missing {
        /// Which object.
        object: String,
    },
    /// A snapshot reference matched nothing, or more than one snapshot.
    #[error("{0}")]
    Snapshot(String),
    /// A path inside a snapshot does not exist.
    #[error("{path:?} is not in snapshot {snapshot}")]
    NoSuchPath {
        /// Snapshot id prefix.
        snapshot: String,
        /// Path asked for.
        path: String,
    },
    /// Bad input from the user.
    #[error("{0}")]
    Usage(String),
    /// An I/O error on a named path.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// An error from the index database.
    #[error("local index at {path}: {why}")]
    Index {
        /// The index directory.
        path: PathBuf,
        /// The database's message.
        why: String,
    },
    /// The command's lock can no longer be trusted; it stopped before writing more.
    #[error("lost the repository lock {lock}: {why}; stopped before writing more (what was written so far is cleaned up by the next writer); run the command again")]
    LockLost {
        /// The lock file, `locks/<name>`.
        lock: String,
        /// What happened to it.
        why: String,
    },
    /// The directory given as the repository holds something else.
    #[error("{path} is not a snap repository: {found}; set --repo / SNAP_REPO to a snap repository, or `snap init` an empty directory")]
    NotARepository {
        /// The directory.
        path: PathBuf,
        /// What is there instead.
        found: String,
    },
    /// No key file could be tried with the password: they are missing or damaged.
    #[error("no key file can be used, so the password was not tried: {detail}; make keys/ readable, or restore it from a copy of the repository")]
    NoUsableKey {
        /// Which key files, and what is wrong with them.
        detail: String,
    },
}

impl Error {
    /// Wraps an I/O error with the path it concerns.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// A damaged object.
    pub fn corrupt(object: impl Into<String>, why: impl Into<String>) -> Self {
        Error::Corrupt {
            object: object.into(),
            why: why.into(),
        }
    }
}

/// Adds the path to an `io::Result`.
pub trait IoContext<T> {
    /// Attaches `path` to the error.
    fn at(self, path: impl Into<PathBuf>) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn at(self, path: impl Into<PathBuf>) -> Result<T> {
        self.map_err(|e| Error::io(path, e))
    }
}
