//! One repository: a backend, the keys, the config and the index.
//!
//! The order in which things are written lives here and in [`writer`]:
//! packs, then their index entries, then (in the operations) the snapshot
//! file last. A crash before the snapshot file leaves only unreferenced
//! packs, which cost space but never correctness.

pub mod cache;
pub mod journal;
mod keys;
pub mod lock;
#[cfg(test)]
mod lock_tests;
mod packs;
pub mod read;
pub mod reads;
mod scratch;
mod state;
pub mod writer;

use keys::write_key_file;
pub use keys::{calibrate_kdf, KeyListing, NewKey, KDF_TARGET, UNLOCK_BUDGET};
use packs::NoIndex;
pub use packs::RebuildReport;

use crate::backend::local::LocalBackend;
use crate::backend::{Backend, FileType};
use crate::error::{Error, Result};
use crate::format::blob;
use crate::format::config::{Chunking, Config};
use crate::format::crypto::Keys;
use crate::format::snapshot::Snapshot;
use crate::format::tree::{decode_records, ChunkRecord, Content, ListRef, Tree};
use crate::id::{BlobRef, SnapshotId, TreeId};
use crate::index::rocks::{Access, RocksIndex};
use crate::index::Index;
use lock::Lock;
use rayon::prelude::*;
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// How a repository is opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Reading only; a shared lock.
    Read,
    /// Adding data; a shared lock and the index for writing.
    Write,
    /// Rewriting or removing; an exclusive lock.
    Exclusive,
    /// Rebuilding the index: an exclusive lock, and the index is not opened
    /// (it may be damaged or another repository's); call
    /// [`Repository::rebuild_index`] next.
    Repair,
}

/// An open, unlocked repository.
pub struct Repository {
    /// The storage.
    pub backend: Arc<dyn Backend>,
    /// The decoded config.
    pub config: Config,
    keys: Arc<Keys>,
    key_id: String,
    index: Arc<dyn Index>,
    /// This repository's directory in the local cache (index, journal, mark).
    cache: PathBuf,
    staging: cache::Staging,
    visible: Option<std::collections::HashSet<String>>,
    /// What opening found and repaired on its own (index entries of packs
    /// that are gone), for the command line to show.
    pub warnings: Vec<String>,
    stray: Vec<String>,
    lock: Option<Lock>,
    notes: Vec<String>,
    reads: reads::PackReads,
    /// Copies elsewhere of the blobs of packs that failed to read, found
    /// once per such pack (see [`Repository::other_copy`]).
    other_copies: std::sync::Mutex<
        std::collections::HashMap<
            crate::id::PackId,
            std::collections::HashMap<BlobRef, crate::index::BlobLocation>,
        >,
    >,
    /// For a reader: blobs of packs its index did not know, found on the
    /// first miss (see [`Repository::locate`]).
    late: std::sync::Mutex<Option<std::collections::HashMap<BlobRef, crate::index::BlobLocation>>>,
    /// The key epoch that opened each pack's blobs so far (after a rotation).
    epoch_hints: std::sync::Mutex<std::collections::HashMap<crate::id::PackId, usize>>,
    /// The state record as read at open; `None` before format version 4.
    state: Option<state::StateView>,
    /// BLAKE3 (hex) of the config file's bytes.
    config_hash: String,
    // Declared after `index`, so the index is closed before its directory goes.
    _scratch: Option<scratch::ScratchDir>,
}

/// The index directory in a repository's cache directory.
fn index_path(cache: &Path) -> PathBuf {
    cache.join("index")
}

/// Creates `path` and its missing parents for this user only (0700).
pub(crate) fn create_private_dir(path: &Path) -> std::io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
}

/// A warning naming the repository directory and `keys/` when group or
/// others may enter them: key files are for the repository's user only. Nothing is changed: an
/// existing repository's modes are the operator's to set.
fn loose_permissions(root: &Path) -> Option<String> {
    let loose: Vec<String> = [root.to_path_buf(), root.join("keys")]
        .iter()
        .filter_map(|p| {
            let mode = std::fs::metadata(p).ok()?.permissions().mode() & 0o777;
            (mode & 0o055 != 0).then(|| format!("{} (mode {mode:04o})", p.display()))
        })
        .collect();
    (!loose.is_empty()).then(|| {
        format!(
            "{} can be read or entered by group or others, but key files are for this user only: run `chmod -R go-rwx {}`",
            loose.join(", "),
            root.display()
        )
    })
}

/// Whether `path` starts like a snap config: another tool's repository
/// must never be touched.
fn is_snap_config(path: &Path) -> bool {
    use std::io::Read;
    let mut magic = [0u8; 8];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok()
        && &magic == crate::format::config::MAGIC
}

/// Whether `root` holds something that is not a snap repository.
fn check_is_repository(root: &Path) -> Result<()> {
    if root.join("config").is_file() {
        return Ok(());
    }
    let none = || Error::NoRepository {
        path: root.to_path_buf(),
        unmounted: unmounted(root),
    };
    match std::fs::read_dir(root) {
        Err(_) => Err(none()),
        Ok(mut rd) => {
            if rd.next().is_none() {
                Err(none())
            } else {
                Err(Error::NotARepository {
                    path: root.to_path_buf(),
                    found: scratch::describe_foreign(root),
                })
            }
        }
    }
}

/// Refuses to make a repository at `root` unless it is missing or an empty
/// directory on storage that is mounted.
pub fn check_new_place(root: &Path) -> Result<()> {
    if root.join("config").exists() {
        return Err(Error::AlreadyExists {
            path: root.to_path_buf(),
        });
    }
    if let Ok(mut rd) = std::fs::read_dir(root) {
        if rd.next().is_some() {
            return Err(Error::ForeignRepository {
                path: root.to_path_buf(),
                why: "the directory is not empty".into(),
            });
        }
    }
    // The off-site disk not mounted: the repository would land on the
    // local disk under its mount point, and look like the off-site copy.
    if let Some(why) = not_mounted(root) {
        return Err(Error::ForeignRepository {
            path: root.to_path_buf(),
            why: format!("{why}; mount it first"),
        });
    }
    Ok(())
}

/// Mount points of a table: the second field of each line (`/etc/fstab`)
/// or the fifth (`/proc/self/mountinfo`), with the `\NNN` octal escapes
/// both use decoded. Names need not be UTF-8.
pub fn mount_points(table: &[u8], field: usize) -> Vec<PathBuf> {
    table
        .split(|&b| b == b'\n')
        .filter(|l| !l.trim_ascii_start().starts_with(b"#"))
        .filter_map(|l| {
            l.split(|b| b.is_ascii_whitespace())
                .filter(|f| !f.is_empty())
                .nth(field)
        })
        .map(|f| {
            let mut out = Vec::with_capacity(f.len());
            let mut i = 0;
            while i < f.len() {
                let oct = f
                    .get(i + 1..i + 4)
                    .filter(|o| f[i] == b'\\' && o.iter().all(|c| (b'0'..=b'7').contains(c)));
                match oct {
                    Some(o) => {
                        out.push((o[0] - b'0') * 64 + (o[1] - b'0') * 8 + (o[2] - b'0'));
                        i += 4;
                    }
                    None => {
                        out.push(f[i]);
                        i += 1;
                    }
                }
            }
            PathBuf::from(std::ffi::OsString::from_vec(out))
        })
        .collect()
}

/// The mount points of this process's namespace.
pub fn mounted_now() -> Vec<PathBuf> {
    std::fs::read("/proc/self/mountinfo")
        .map(|t| mount_points(&t, 4))
        .unwrap_or_default()
}

/// Why the missing or empty repository directory `root` looks like storage
/// that is not mounted: it, or a directory above it, is a mount point in
/// /etc/fstab that is not mounted now; or it is a mounted file system with
/// nothing on it (the wrong share, a fresh disk).
fn unmounted(root: &Path) -> Option<String> {
    if let Some(why) = not_mounted(root) {
        return Some(why);
    }
    let root = std::path::absolute(root).ok()?;
    if mounted_now().contains(&root) {
        return Some(format!(
            "{} is a mounted file system with nothing on it: is the right storage mounted there?",
            root.display()
        ));
    }
    None
}

/// Why `root` lies on storage that is not mounted: it, or a directory
/// above it, is a mount point in /etc/fstab and is not mounted now.
fn not_mounted(root: &Path) -> Option<String> {
    let mounted = mounted_now();
    let fstab = std::fs::read("/etc/fstab")
        .map(|t| mount_points(&t, 1))
        .unwrap_or_default();
    let root = std::path::absolute(root).ok()?;
    for a in root.ancestors() {
        if a == Path::new("/") {
            break;
        }
        if fstab.iter().any(|m| m == a) && !mounted.iter().any(|m| m == a) {
            return Some(format!(
                "{} is a mount point in /etc/fstab that is not mounted now (`mount {}`)",
                a.display(),
                a.display()
            ));
        }
    }
    None
}

impl Repository {
    /// Creates a repository at `root` (missing or empty directory), with
    /// its cache under `cache` (see [`cache`]).
    pub fn init(
        root: &Path,
        cache: &Path,
        password: &[u8],
        key: &NewKey,
        chunking: Chunking,
    ) -> Result<Self> {
        check_new_place(root)?;
        let lb = LocalBackend::new(root);
        lb.create_layout()?;
        // An empty directory given to init becomes the repository: private
        // like the directories init creates. Where this user may not change
        // it, the warning at open says what to do.
        let _ = std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o700));
        Self::init_with(Arc::new(lb), cache, password, key, chunking)
    }

    /// Creates a repository in an empty `backend`, with its cache under the
    /// local directory `cache`.
    pub fn init_with(
        backend: Arc<dyn Backend>,
        cache: &Path,
        password: &[u8],
        key: &NewKey,
        chunking: Chunking,
    ) -> Result<Self> {
        if backend.exists(FileType::Config, "config")? {
            return Err(Error::AlreadyExists {
                path: PathBuf::from(backend.location()),
            });
        }
        let mut config = Config::new();
        config.chunking = chunking;
        Self::init_from(backend, cache, Keys::generate(), config, password, key)
    }

    /// Creates a repository in an empty `backend` with the master key,
    /// chunking and format version of `other`, under a new repository id,
    /// and a key file for `password`: a copy elsewhere (an off-site remote,
    /// a local clone of one) whose chunk ids are `other`'s, so that blobs
    /// and snapshot files are copied between them as they are.
    pub fn init_sharing_keys(
        backend: Arc<dyn Backend>,
        cache: &Path,
        other: &Repository,
        password: &[u8],
        key: &NewKey,
    ) -> Result<Self> {
        if backend.exists(FileType::Config, "config")? {
            return Err(Error::AlreadyExists {
                path: PathBuf::from(backend.location()),
            });
        }
        let mut config = other.config.clone();
        config.id = Config::new().id;
        let keys = Keys::from_keyring(&other.keys.keyring())
            .expect("a keyring this process made reads back");
        Self::init_from(backend, cache, keys, config, password, key)
    }

    fn init_from(
        backend: Arc<dyn Backend>,
        cache: &Path,
        keys: Keys,
        config: Config,
        password: &[u8],
        key: &NewKey,
    ) -> Result<Self> {
        let written = write_key_file(&*backend, &keys, &config, password, key)?;
        let config_bytes = config.encode(&keys);
        state::initial(
            &*backend,
            &keys,
            written,
            crate::format::state::file_hash(&config_bytes),
        )?;
        // The config goes last: a directory without it is not a repository yet.
        backend.write(FileType::Config, "config", &config_bytes)?;
        Self::open_with(
            backend,
            cache,
            password,
            Mode::Write,
            "init",
            Duration::ZERO,
        )
    }

    /// Opens the repository at `root` with `password` and its cache under
    /// `cache`, waiting at most `wait` for a conflicting lock or another
    /// writer of the index.
    pub fn open(
        root: &Path,
        cache: &Path,
        password: &[u8],
        mode: Mode,
        command: &str,
        wait: Duration,
    ) -> Result<Self> {
        Self::open_telling_waits(root, cache, password, mode, command, wait, &|_| {})
    }

    /// [`Repository::open`], calling `waiting` once with what it waits for
    /// when a lock or the index is held by another process.
    pub fn open_telling_waits(
        root: &Path,
        cache: &Path,
        password: &[u8],
        mode: Mode,
        command: &str,
        wait: Duration,
        waiting: &dyn Fn(&str),
    ) -> Result<Self> {
        check_is_repository(root)?;
        let lb = Arc::new(LocalBackend::new(root));
        // A repository copied by a tool that drops empty directories (git,
        // some sync tools, object storage) lacks `locks/` and `data/xx/`:
        // they are made again. On a read-only disk this fails, harmlessly.
        let missing = !root.join("locks").is_dir() || !root.join("data").join("ff").is_dir();
        if missing && is_snap_config(&root.join("config")) {
            let _ = lb.create_layout();
        }
        let backend: Arc<dyn Backend> = lb.clone();
        let mut repo = Self::open_backend(
            backend,
            cache,
            Some(root),
            Opener::Password(password),
            mode,
            command,
            wait,
            waiting,
        )?;
        if mode != Mode::Read {
            // Half-written files of processes killed on this host are garbage.
            lb.remove_temporary(&|pid| !lock::process_alive(pid));
        }
        repo.warnings.extend(loose_permissions(root));
        Ok(repo)
    }

    /// Opens the repository stored in `backend`, with its cache under the
    /// local directory `cache`.
    pub fn open_with(
        backend: Arc<dyn Backend>,
        cache: &Path,
        password: &[u8],
        mode: Mode,
        command: &str,
        wait: Duration,
    ) -> Result<Self> {
        Self::open_backend(
            backend,
            cache,
            None,
            Opener::Password(password),
            mode,
            command,
            wait,
            &|_| {},
        )
    }

    /// Opens the repository stored in `backend` with the keys of `other`,
    /// which shares its master key (a remote made by
    /// [`Repository::init_sharing_keys`]): no password, no key derivation.
    pub fn open_sharing_keys(
        backend: Arc<dyn Backend>,
        cache: &Path,
        other: &Repository,
        mode: Mode,
        command: &str,
        wait: Duration,
    ) -> Result<Self> {
        Self::open_backend(
            backend,
            cache,
            None,
            Opener::Keys(other.keys.clone()),
            mode,
            command,
            wait,
            &|_| {},
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn open_backend(
        backend: Arc<dyn Backend>,
        cache_base: &Path,
        local_root: Option<&Path>,
        opener: Opener,
        mode: Mode,
        command: &str,
        wait: Duration,
        waiting: &dyn Fn(&str),
    ) -> Result<Self> {
        let cfg_bytes = read::bounded(&*backend, FileType::Config, "config", read::MAX_CONFIG)?;
        if !cfg_bytes.starts_with(crate::format::config::MAGIC) {
            return Err(match local_root {
                Some(root) => Error::NotARepository {
                    path: root.to_path_buf(),
                    found: scratch::describe_foreign(root),
                },
                None => Error::NotARepository {
                    path: PathBuf::from(backend.location()),
                    found: "its config is not a snap config".into(),
                },
            });
        }
        Config::check_header(&cfg_bytes)?;
        let mut notes = Vec::new();
        let (root, scratch_cache) = match open_cache(cache_base, &cfg_bytes, &*backend) {
            Ok(dir) => (dir, None),
            // A reader still reads, with a cache that goes when it is done.
            Err(e) if mode == Mode::Read => {
                let dir = scratch::ScratchDir::new()?;
                notes.push(format!(
                    "the cache directory {} cannot be used ({e}): a temporary index is built in a temporary cache instead (choose one with --cache-dir)",
                    cache_base.display()
                ));
                (dir.path().to_path_buf(), Some(dir))
            }
            Err(e) => {
                return Err(Error::io(
                    cache_base,
                    std::io::Error::new(
                        e.kind(),
                        format!("{e}: the cache directory must be writable (choose another with --cache-dir or SNAP_CACHE_DIR)"),
                    ),
                ))
            }
        };
        let root = root.as_path();
        // Where snap kept the index before the cache directory.
        if let Some(old) = local_root.filter(|_| scratch_cache.is_none()) {
            notes.extend(cache::adopt_legacy_index(
                &index_path(old),
                &index_path(root),
            ));
        }
        let (keys, config, warnings, hint) = match opener {
            Opener::Password(password) => {
                let u = keys::unlock(&*backend, &cfg_bytes, password, &index_path(root))?;
                (Arc::new(u.keys), u.config, u.warnings, Some(u.hint))
            }
            // The keys of another repository sharing the master key (a
            // remote): they must open this config.
            Opener::Keys(keys) => {
                let config = Config::decode(&cfg_bytes, &keys)?;
                (keys, config, Vec::new(), None)
            }
        };
        let exclusive = matches!(mode, Mode::Exclusive | Mode::Repair);
        let lock = match Lock::acquire(backend.clone(), exclusive, command, wait, waiting) {
            Ok(l) => {
                notes.extend(l.notes().iter().cloned());
                Some(l)
            }
            // A reader of a read-only mount, or of another user's repository,
            // still reads: the conflict check ran before the write that failed.
            Err(e) if mode == Mode::Read && scratch::is_read_only(&e) => {
                notes.push(format!(
                    "{} is read-only here ({e}): no lock was taken, so a prune started elsewhere meanwhile is not held off",
                    backend.location()
                ));
                None
            }
            Err(e) => return Err(e),
        };
        let staging = cache::Staging::new(root.join("staging"));
        if mode != Mode::Read {
            // Packs half-staged by processes killed on this host are garbage.
            staging.remove_leftovers(&|pid| !lock::process_alive(pid));
        }
        let ipath = index_path(root);
        // The state is read before anything is listed, so that whatever it
        // lists was written before the listing (format-spec.md §23).
        let (state, state_stray) = if config.version >= 4 {
            let (v, s) = state::open_view(&*backend, &keys, root, &config.id)?;
            (Some(v), s)
        } else {
            (None, Vec::new())
        };
        // A reader sees the index as it is when opened. Snapshots listed
        // before that moment had all their blobs indexed before they were
        // written, so a reader only considers those.
        let snapshot_names = backend.list(FileType::Snapshot)?;
        let mut stray = read::snapshot_names(FileType::Snapshot, &snapshot_names).1;
        stray.extend(read::snapshot_names(FileType::Protect, &backend.list(FileType::Protect)?).1);
        stray.extend(state_stray);
        let visible = match mode {
            Mode::Read => Some(snapshot_names.into_iter().collect()),
            _ => None,
        };
        let remote = backend.is_remote();
        let mut repo = Repository {
            backend,
            config,
            keys,
            key_id: hint.as_ref().map(|h| h.key_id.clone()).unwrap_or_default(),
            index: Arc::new(NoIndex),
            cache: root.to_path_buf(),
            staging,
            visible,
            warnings,
            stray,
            lock,
            notes,
            reads: reads::PackReads::new(remote),
            epoch_hints: Default::default(),
            late: Default::default(),
            other_copies: Default::default(),
            state,
            config_hash: crate::format::state::file_hash(&cfg_bytes),
            _scratch: scratch_cache,
        };
        if mode == Mode::Write {
            // A push onto a rolled-back state would bury the rollback.
            repo.ensure_state_writable()?;
        }
        let access = match mode {
            Mode::Read => Access::ReadOnly,
            _ => Access::ReadWrite(wait),
        };
        if mode == Mode::Repair {
            return Ok(repo);
        }
        if let Some(hint) = &hint {
            keys::remember(&ipath, hint);
        }
        if mode == Mode::Read && !scratch::writable(&ipath, root) {
            // (Only a cache made unwritable by hand gets here.)
            repo.open_index_read_only(&ipath)?;
            return Ok(repo);
        }
        // The usual case opens the index once. A missing index, or one whose
        // rebuild was interrupted, is rebuilt from the packs before anything
        // reads it, then opened as asked.
        if RocksIndex::exists(&ipath) {
            let idx = RocksIndex::open(&ipath, &repo.config.id, access)?;
            if idx.is_complete()? {
                repo.index = Arc::new(idx);
                if mode != Mode::Read {
                    // Prune indexes unknown packs itself, and counts them.
                    repo.reconcile_with_packs(mode == Mode::Write)?;
                }
                return Ok(repo);
            }
        }
        let idx = RocksIndex::open_with(&ipath, &repo.config.id, Access::ReadWrite(wait), waiting)?;
        if !idx.is_complete()? {
            repo.index = Arc::new(idx);
            repo.rebuild_index_into()?;
            repo.index = Arc::new(NoIndex);
        } else {
            drop(idx);
        }
        repo.index = Arc::new(RocksIndex::open_with(
            &ipath,
            &repo.config.id,
            access,
            waiting,
        )?);
        Ok(repo)
    }

    /// Names in `snapshots/` and `protected/` that are not snapshot ids:
    /// skipped by every command, for the command line to warn about.
    pub fn stray_names(&self) -> &[String] {
        &self.stray
    }

    /// Where this user cannot write the index: the repository's own index if
    /// it is complete, else one built from the pack headers in a scratch
    /// directory that goes when the repository is dropped.
    fn open_index_read_only(&mut self, ipath: &Path) -> Result<()> {
        let why = if RocksIndex::exists(ipath) {
            match RocksIndex::open(ipath, &self.config.id, Access::ReadOnly) {
                Ok(idx) if idx.is_complete()? => {
                    self.index = Arc::new(idx);
                    return Ok(());
                }
                Ok(_) => "it is incomplete".to_string(),
                Err(e) => e.to_string(),
            }
        } else {
            "there is none".to_string()
        };
        let dir = scratch::ScratchDir::new()?;
        let idx = RocksIndex::open(
            &dir.path().join("index"),
            &self.config.id,
            Access::ReadWrite(Duration::ZERO),
        )?;
        self.index = Arc::new(idx);
        let report = self.rebuild_index_into()?;
        self.notes.push(format!(
            "the index at {} cannot be written by this user and is not usable ({why}): read the headers of {} packs into a temporary index instead",
            ipath.display(),
            report.packs
        ));
        self._scratch = Some(dir);
        Ok(())
    }

    /// A handle on this command's lock for other threads (none when no lock
    /// was taken, as on a read-only disk).
    pub(crate) fn lock_watch(&self) -> Option<lock::LockWatch> {
        self.lock.as_ref().map(Lock::watch)
    }

    /// Gives up this command's repository lock now, for a long-lived reader
    /// (`snap mount`) that must not hold a prune off for its whole life: it
    /// re-opens the repository to see what changed, and a read that finds a
    /// pack gone is retried on a new view (format-spec.md §17).
    pub fn release_lock(&mut self) {
        self.lock = None;
    }

    /// Fails once this command's lock can no longer be trusted (a refresh
    /// failed, or another process removed it). Every writer calls it before
    /// each write to the repository.
    pub fn check_lock(&self) -> Result<()> {
        match &self.lock {
            Some(l) => l.check(),
            None => Ok(()),
        }
    }

    /// What the user should know about how the repository was opened (no
    /// lock taken, a temporary index, files in `locks/` that are not locks).
    pub fn notes(&self) -> &[String] {
        &self.notes
    }

    /// This repository's directory in the local cache.
    pub fn cache_dir(&self) -> &Path {
        &self.cache
    }

    /// Where packs are staged before the backend gets them.
    pub fn staging(&self) -> &cache::Staging {
        &self.staging
    }

    /// Makes writes into staging files fail as `faults` plans (tests of
    /// what a filling cache disk does).
    pub fn inject_staging_faults(&mut self, faults: crate::backend::faulty::Faults) {
        self.staging.inject(faults);
    }

    /// The keys.
    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    pub(crate) fn keys_arc(&self) -> Arc<Keys> {
        self.keys.clone()
    }

    /// The index.
    pub fn index(&self) -> &dyn Index {
        &*self.index
    }

    pub(crate) fn index_arc(&self) -> Arc<dyn Index> {
        self.index.clone()
    }

    /// Reads and opens one blob, and checks that its plaintext hashes to its
    /// id. When the copy the index names is damaged, planted or gone, the
    /// other packs are searched for another copy that verifies (rare: after
    /// an interrupted push or a repair, a blob can be in several packs).
    pub fn read_blob(&self, b: &BlobRef) -> Result<Vec<u8>> {
        Ok(self.read_verified(b)?.0)
    }

    /// [`Repository::read_blob`], also returning the sealed bytes as
    /// stored and the plaintext length: what a copy into another repository
    /// sharing the keys writes as it is.
    pub fn read_sealed(&self, b: &BlobRef) -> Result<(Vec<u8>, Vec<u8>, u32)> {
        self.read_verified(b)
    }

    fn read_verified(&self, b: &BlobRef) -> Result<(Vec<u8>, Vec<u8>, u32)> {
        let loc = self.locate(b)?.ok_or_else(|| Error::Missing {
            object: format!("{:?} blob {}", b.kind, hex::encode(b.id)),
        })?;
        match self.read_blob_at(b, &loc) {
            Err(e @ Error::Corrupt { .. }) => match self.other_copy(b, &loc.pack) {
                Some(found) => Ok(found),
                None => Err(e),
            },
            r => r,
        }
    }

    /// A copy of `b` that verifies in another pack than `not`, if any. The
    /// first time a pack fails, the headers of the other packs of its class
    /// are read once for every blob the index places in it, and the copies
    /// found are kept: a pack that is gone, with thousands of blobs, costs
    /// one pass over the headers, not one per blob.
    fn other_copy(&self, b: &BlobRef, not: &crate::id::PackId) -> Option<(Vec<u8>, Vec<u8>, u32)> {
        let loc = {
            let mut copies = self.other_copies.lock().expect("not poisoned");
            if !copies.contains_key(not) {
                let found = self.copies_elsewhere(not, b.kind.is_metadata());
                copies.insert(*not, found);
            }
            copies[not].get(b).copied()?
        };
        self.read_blob_at(b, &loc).ok()
    }

    /// Where the blobs the index places in pack `not` have copies in other
    /// packs of the same class (`metadata` or data).
    fn copies_elsewhere(
        &self,
        not: &crate::id::PackId,
        metadata: bool,
    ) -> std::collections::HashMap<BlobRef, crate::index::BlobLocation> {
        let mut out = std::collections::HashMap::new();
        let wanted: std::collections::HashSet<BlobRef> =
            match self.index.rows_in(&std::iter::once(*not).collect()) {
                Ok(rows) => rows.into_iter().map(|(b, _)| b).collect(),
                Err(_) => return out,
            };
        let Ok(packs) = self.index.packs() else {
            return out;
        };
        for (id, info) in packs
            .iter()
            .filter(|(id, info)| id != not && info.metadata == metadata)
        {
            let Ok(entries) = self.read_pack_header(id, info.size) else {
                continue;
            };
            for e in entries.iter().filter(|e| wanted.contains(&e.blob)) {
                out.entry(e.blob).or_insert(crate::index::BlobLocation {
                    pack: *id,
                    offset: e.offset,
                    length: e.length,
                    raw_len: e.raw_len,
                });
            }
        }
        out
    }

    /// Reads and opens blob `b` at `loc`: its plaintext, the sealed bytes
    /// and the plaintext length.
    pub(super) fn read_blob_at(
        &self,
        b: &BlobRef,
        loc: &crate::index::BlobLocation,
    ) -> Result<(Vec<u8>, Vec<u8>, u32)> {
        blob::check_lengths(b, loc.length, loc.raw_len)?;
        let sealed = self
            .read_pack_range(
                &loc.pack,
                None,
                loc.offset,
                loc.length as u64,
                b.kind.is_metadata(),
            )
            .map_err(|e| {
                if e.is_not_found() {
                    Error::corrupt(
                        format!("pack {}", loc.pack),
                        "missing from the repository (deleted?); run `snap check` to see what it affects",
                    )
                } else {
                    e
                }
            })?;
        if self.keys.epoch() == 0 {
            let plain = blob::open(&self.keys, b, &sealed, loc.raw_len)?;
            return Ok((plain, sealed, loc.raw_len));
        }
        // After a rotation, a pack's blobs share the epoch that opened the
        // first one read: tried first, so older data costs no failed tag
        // check per blob (format-spec.md §6.2).
        let hint = self
            .epoch_hints
            .lock()
            .expect("not poisoned")
            .get(&loc.pack)
            .copied();
        let (plain, epoch) = blob::open_trying(&self.keys, hint, b, &sealed, loc.raw_len)?;
        if hint != Some(epoch) {
            self.epoch_hints
                .lock()
                .expect("not poisoned")
                .insert(loc.pack, epoch);
        }
        Ok((plain, sealed, loc.raw_len))
    }

    /// `len` bytes at `offset` of pack `id` (of `size` bytes, looked up when
    /// not given), read by the rule of the backend: exact ranges from the
    /// local disk, whole aligned blocks (or, for a `metadata` pack, the whole
    /// pack) from a remote one (format-spec.md §9.1).
    pub fn read_pack_range(
        &self,
        id: &crate::id::PackId,
        size: Option<u64>,
        offset: u64,
        len: u64,
        metadata: bool,
    ) -> Result<Vec<u8>> {
        if !self.backend.is_remote() {
            return self
                .backend
                .read_range(FileType::Pack, &id.to_hex(), offset, len);
        }
        let size = match size {
            Some(s) => s,
            None => match self.index.pack(id)? {
                Some(info) => info.size,
                None => self.backend.size(FileType::Pack, &id.to_hex())?,
            },
        };
        self.reads
            .range(&*self.backend, id, size, offset, len, metadata)
    }

    /// Loads a tree.
    pub fn load_tree(&self, id: &TreeId) -> Result<Tree> {
        // Reading checks the keyed hash: a tree sealed under an id that is
        // not its hash (how a holder of the key would plant a cycle) is refused.
        let bytes = self.read_blob(&(*id).into())?;
        Tree::decode(&bytes, id)
    }

    /// Calls `f` with a file's chunk list, one group at a time, so a huge
    /// file's list is never in memory whole.
    pub fn for_each_chunk_group(
        &self,
        content: &Content,
        f: &mut dyn FnMut(&[ChunkRecord]) -> Result<()>,
    ) -> Result<()> {
        match content {
            Content::Inline(r) => f(&decode_records(r, &|| "inline chunk list".into())?),
            Content::Groups(gs) => {
                for g in gs {
                    f(&self.load_chunk_group(g)?)?;
                }
                Ok(())
            }
        }
    }

    /// Loads one group of an indirect chunk list and checks it against the
    /// tree's totals for it.
    pub fn load_chunk_group(&self, g: &ListRef) -> Result<Vec<ChunkRecord>> {
        let bytes = self.read_blob(&g.id.into())?;
        let what = || format!("chunk list {}", g.id);
        let records = decode_records(&bytes, &what)?;
        // The group entry's totals are what sizes and offsets are planned
        // from: a list that disagrees is refused.
        let sum: u64 = records.iter().map(|(_, l)| *l as u64).sum();
        if records.len() != g.chunks as usize || sum != g.bytes {
            return Err(Error::corrupt(
                what(),
                format!(
                    "{} records of {sum} bytes, the tree says {} of {}",
                    records.len(),
                    g.chunks,
                    g.bytes
                ),
            ));
        }
        Ok(records)
    }

    /// Protects a snapshot from every retention policy: the marker, then
    /// the state that lists it.
    pub fn protect(&self, id: &SnapshotId) -> Result<bool> {
        self.ensure_state_writable()?;
        let name = self.marker_name(id);
        if self.backend.exists(FileType::Protect, &name)? {
            return Ok(false);
        }
        let marker = serde_json::json!({ "version": 1, "snapshot": id.to_hex(), "time": chrono::Local::now().to_rfc3339() });
        let aad = [b"snap protect v1".as_slice(), &id.0].concat();
        match self.backend.write(
            FileType::Protect,
            &name,
            &self.keys.seal(&aad, marker.to_string().as_bytes()),
        ) {
            // Another `protect` of the same snapshot got there first.
            Err(e) if e.is_already_exists() => return Ok(false),
            other => other?,
        }
        self.record_state(&state::protect_change(*id, true))?;
        Ok(true)
    }

    /// Lifts a protection; returns whether there was one. The state stops
    /// listing the marker first: a crash before the marker goes leaves a
    /// marker the state does not list, which only keeps more.
    pub fn unprotect(&self, id: &SnapshotId) -> Result<bool> {
        self.ensure_state_writable()?;
        let name = self.marker_name(id);
        if !self.backend.exists(FileType::Protect, &name)? {
            return Ok(false);
        }
        self.record_state(&state::protect_change(*id, false))?;
        self.check_lock()?;
        self.backend.remove(FileType::Protect, &name)?;
        Ok(true)
    }

    /// The protected snapshots. A marker counts by its name alone: in doubt,
    /// a snapshot is kept.
    pub fn protected(&self) -> Result<std::collections::HashSet<SnapshotId>> {
        let names = self.backend.list(FileType::Protect)?;
        if self.config.version < 4 {
            return Ok(names
                .iter()
                .filter_map(|n| SnapshotId::from_hex(n).ok())
                .collect());
        }
        // Names are keyed hashes of snapshot ids: matched against the
        // snapshots there are.
        let names: std::collections::HashSet<String> = names.into_iter().collect();
        Ok(
            read::snapshot_names(FileType::Snapshot, &self.backend.list(FileType::Snapshot)?)
                .0
                .into_iter()
                .filter(|id| names.contains(&self.marker_name(id)))
                .collect(),
        )
    }

    /// The file name of snapshot `id`'s protection marker: its id before
    /// format version 4, a keyed hash of it since (format-spec.md §22.1).
    pub fn marker_name(&self, id: &SnapshotId) -> String {
        if self.config.version < 4 {
            id.to_hex()
        } else {
            hex::encode(self.keys.marker_name(&id.0))
        }
    }

    /// Ids of all snapshots; names that are not ids are skipped (see
    /// [`Repository::stray_names`]).
    pub fn snapshot_ids(&self) -> Result<Vec<SnapshotId>> {
        let names: Vec<String> = self
            .backend
            .list(FileType::Snapshot)?
            .into_iter()
            .filter(|n| self.visible.as_ref().is_none_or(|v| v.contains(n)))
            .collect();
        Ok(read::snapshot_names(FileType::Snapshot, &names).0)
    }

    /// The bytes of snapshot `id`'s file, as stored.
    pub fn snapshot_bytes(&self, id: &SnapshotId) -> Result<Vec<u8>> {
        read::bounded(
            &*self.backend,
            FileType::Snapshot,
            &id.to_hex(),
            read::MAX_SNAPSHOT,
        )
    }

    /// Loads one snapshot.
    pub fn load_snapshot(&self, id: &SnapshotId) -> Result<Snapshot> {
        let name = id.to_hex();
        let bytes = read::bounded(
            &*self.backend,
            FileType::Snapshot,
            &name,
            read::MAX_SNAPSHOT,
        )?;
        Snapshot::decode(id, &bytes, &self.keys)
    }

    /// All snapshots that can be read, oldest first, and those that cannot,
    /// with the reason: one damaged file must not hide the others.
    pub fn load_snapshots(&self) -> Result<SnapshotSet> {
        let ids = self.snapshot_ids()?;
        let loaded: Vec<(SnapshotId, Result<Snapshot>)> = ids
            .par_iter()
            .map(|id| (*id, self.load_snapshot(id)))
            .collect();
        let mut set = SnapshotSet::default();
        for (id, r) in loaded {
            match r {
                Ok(s) => set.ok.push((id, s)),
                Err(e) => set.damaged.push((id, e.to_string())),
            }
        }
        // Each key parses two times: computed once per snapshot.
        set.ok.sort_by_cached_key(|(id, s)| s.order_key(id));
        Ok(set)
    }

    /// All readable snapshots, oldest first (damaged ones are left out;
    /// `check` reports them).
    pub fn snapshots(&self) -> Result<Vec<(SnapshotId, Snapshot)>> {
        Ok(self.load_snapshots()?.ok)
    }

    /// Writes a snapshot file, then the state that lists it: the last
    /// steps of a push.
    pub fn save_snapshot(&self, s: &Snapshot) -> Result<SnapshotId> {
        self.index.sync()?;
        self.check_lock()?;
        let (id, bytes) = s.encode_padded(&self.keys, self.config.version >= 4);
        self.backend
            .write(FileType::Snapshot, &id.to_hex(), &bytes)?;
        // Only what a later push trusts as parent: if it cannot be
        // recorded, that push reads every file again.
        let _ = journal::record(&index_path(&self.cache), &id);
        // A failure here leaves the snapshot saved but not in the state:
        // the next writer adopts it (format-spec.md §23.2).
        self.record_state(&crate::format::state::Change {
            add_snapshots: vec![id],
            ..Default::default()
        })?;
        Ok(id)
    }

    /// Writes the file of snapshot `id`, as another repository sharing the
    /// keys holds it (`bytes`), then the state that lists it; false when it
    /// is here already. The caller has stored every blob it needs first.
    pub fn adopt_snapshot(&self, id: &SnapshotId, bytes: &[u8]) -> Result<bool> {
        // Its name is its hash, and it must open with these keys.
        Snapshot::decode(id, bytes, &self.keys)?;
        self.index.sync()?;
        self.check_lock()?;
        match self.backend.write(FileType::Snapshot, &id.to_hex(), bytes) {
            Err(e) if e.is_already_exists() => return Ok(false),
            other => other?,
        }
        self.record_state(&crate::format::state::Change {
            add_snapshots: vec![*id],
            ..Default::default()
        })?;
        Ok(true)
    }

    /// The snapshots this machine wrote (format-spec.md §16.2).
    pub fn written_here(&self) -> std::collections::HashSet<SnapshotId> {
        journal::load(&index_path(&self.cache))
    }
}

/// How a repository is unlocked.
enum Opener<'a> {
    /// With a password, through a key file.
    Password(&'a [u8]),
    /// With keys already unlocked (another repository sharing them).
    Keys(Arc<Keys>),
}

/// Creates (or finds) the cache directory of the repository whose config
/// is `cfg` under `base`.
fn open_cache(base: &Path, cfg: &[u8], backend: &dyn Backend) -> std::io::Result<PathBuf> {
    let dir = cache::repo_dir(base, cfg);
    cache::prepare(base, &dir, &backend.location())?;
    Ok(dir)
}

/// Removes stale locks and files in `locks/` that are not locks, or, with
/// `names`, exactly those lock files. Needs no password: lock files are not
/// encrypted, and anyone who can write `locks/` can remove them.
pub fn unlock(root: &Path, names: &[String]) -> Result<lock::Unlocked> {
    check_is_repository(root)?;
    lock::unlock(&LocalBackend::new(root), names)
}

/// Snapshots as loaded: the readable ones, oldest first, and the damaged ones.
#[derive(Debug, Default)]
pub struct SnapshotSet {
    /// Readable snapshots, oldest first.
    pub ok: Vec<(SnapshotId, Snapshot)>,
    /// Snapshots that could not be read, with the reason.
    pub damaged: Vec<(SnapshotId, String)>,
}
