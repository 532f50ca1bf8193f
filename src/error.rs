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
    #[error("{}", no_repository(path, unmounted.as_deref()))]
    NoRepository {
        /// Where one was looked for.
        path: PathBuf,
        /// Why the storage there looks unmounted, when it does: then
        /// `snap init` would put the repository on the wrong disk.
        unmounted: Option<String>,
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
    /// The repository's storage failed (a write, sync, rename, read or
    /// listing of the backend or of a staged pack). Never a problem of the
    /// data being backed up: a push stops on it and records no snapshot.
    #[error("repository {location}: {op} failed: {source}")]
    Storage {
        /// Where the repository is.
        location: String,
        /// What was being done, naming the object.
        op: String,
        /// Whether retrying can help.
        kind: StorageKind,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A file, directory or stream being backed up could not be read. A push
    /// records it in the snapshot and goes on with the other files.
    #[error("{path}: {source}")]
    Source {
        /// The source path (or the stream's name).
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
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
    /// The repository's state record does not match what this machine saw
    /// or what the repository holds (format-spec.md §23); the text says
    /// what was expected, what was found and what to do.
    #[error("{0}")]
    State(String),
    /// The password matches a key file that was altered, or opens one that
    /// belongs to another repository.
    #[error("{detail}; restore the key file from a copy of the repository, or open with another password, `snap key add` a new key and `snap key remove` this one")]
    KeyFileRefused {
        /// Which key files, and what is wrong with them.
        detail: String,
    },
    /// Argon2id spent the unlock budget before a key file opened.
    #[error("unlocking stopped after Argon2id ran {spent_ms} ms over {tried} key file(s), past the budget of {budget_ms} ms: {untried} key file(s) were not tried. Key files planted with high costs slow every unlock with a password that is not the one used last on this machine: move the key files you do not know out of keys/ (each states its label, host and creation time), or raise SNAP_UNLOCK_BUDGET_MS")]
    UnlockBudget {
        /// Key files tried.
        tried: usize,
        /// Key files not tried.
        untried: usize,
        /// Argon2id time spent, in milliseconds.
        spent_ms: u64,
        /// The budget, in milliseconds.
        budget_ms: u64,
    },
    /// No key file could be tried with the password: they are missing or damaged.
    #[error("no key file can be used, so the password was not tried: {detail}; make keys/ readable, or restore it from a copy of the repository")]
    NoUsableKey {
        /// Which key files, and what is wrong with them.
        detail: String,
    },
}

/// What a storage failure means for the caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum StorageKind {
    /// The object is not there.
    NotFound,
    /// It may work later (a full disk, a dropped connection, a time-out).
    Transient,
    /// It will not work by trying again (permissions, a read-only file
    /// system, an I/O error of the medium).
    Permanent,
}

impl StorageKind {
    /// The kind of an I/O error.
    pub fn of(e: &std::io::Error) -> Self {
        use std::io::ErrorKind as K;
        match e.kind() {
            K::NotFound => StorageKind::NotFound,
            K::StorageFull
            | K::Interrupted
            | K::TimedOut
            | K::WouldBlock
            | K::ConnectionReset
            | K::ConnectionAborted
            | K::BrokenPipe
            | K::QuotaExceeded => StorageKind::Transient,
            _ => StorageKind::Permanent,
        }
    }
}

impl Error {
    /// Wraps an I/O error with the path it concerns.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// A failure of the repository's storage while doing `op` (which names
    /// the object) at `location`.
    pub fn storage(
        location: impl Into<String>,
        op: impl Into<String>,
        source: std::io::Error,
    ) -> Self {
        Error::Storage {
            location: location.into(),
            op: op.into(),
            kind: StorageKind::of(&source),
            source,
        }
    }

    /// A source that could not be read.
    pub fn source(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Source {
            path: path.into(),
            source,
        }
    }

    /// Whether this is a failure to read what is being backed up (as opposed
    /// to a failure of the repository, which must stop a push).
    pub fn is_source(&self) -> bool {
        matches!(self, Error::Source { .. })
    }

    /// Whether the repository object does not exist.
    pub fn is_not_found(&self) -> bool {
        match self {
            Error::Storage { kind, .. } => *kind == StorageKind::NotFound,
            Error::Io { source, .. } => source.kind() == std::io::ErrorKind::NotFound,
            _ => false,
        }
    }

    /// Whether a write was refused because the file already exists.
    pub fn is_already_exists(&self) -> bool {
        match self {
            Error::Storage { source, .. } | Error::Io { source, .. } => {
                source.kind() == std::io::ErrorKind::AlreadyExists
            }
            _ => false,
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

fn no_repository(path: &std::path::Path, unmounted: Option<&str>) -> String {
    match unmounted {
        Some(why) => format!(
            "no snap repository at {}: {why}. Mount the storage and run again; do not run `snap init` there, it would put the repository on the wrong disk",
            path.display()
        ),
        None => format!(
            "no snap repository at {}: run `snap init` there first, or set --repo / SNAP_REPO to an existing one",
            path.display()
        ),
    }
}
