//! The state record in a repository (format-spec.md §23): reading the
//! newest state at open and comparing it with this machine's high-water
//! mark, writing the next state after a change (create-if-absent, retried
//! with the next number when another writer took it), keeping the newest
//! [`KEEP_STATES`], and comparing the state with what is listed.
//!
//! The high-water mark is `index/snap-state-mark`, beside the index and
//! never copied with the repository; `repair index` writes it back after
//! rebuilding. It only ever moves forward.

use super::{index_path, lock, read, Repository};
use crate::backend::{Backend, FileType};
use crate::error::{Error, Result};
use crate::format::crypto::Keys;
use crate::format::state::{
    compare, file_hash, name_of, seq_of, stamp, Adopted, Change, Finding, FindingKind, Listing,
    State, Unlisted, Written, ACCEPT_HINT, KEEP_STATES,
};
use crate::id::{RepoId, SnapshotId};
use chrono::Utc;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

/// Attempts at a free number before a writer gives up.
const MAX_TRIES: usize = 64;

/// This machine's high-water mark for one repository.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Mark {
    /// Repository id (hex): a mark of another repository is ignored.
    pub repo: String,
    /// The highest state number seen.
    pub seq: u64,
    /// BLAKE3 (hex) of that state's file.
    pub hash: String,
}

fn mark_path(root: &Path) -> PathBuf {
    index_path(root).join("snap-state-mark")
}

/// The mark for `repo` kept under `root`, if any.
pub(super) fn read_mark(root: &Path, repo: &RepoId) -> Option<Mark> {
    let bytes = std::fs::read(mark_path(root)).ok()?;
    serde_json::from_slice::<Mark>(&bytes)
        .ok()
        .filter(|m| m.repo == repo.to_hex())
}

/// Moves the mark to `seq`/`hash` unless it is already there or beyond
/// (`force`: set it whatever it says, as `state accept` does). Writers of
/// the mark take turns on a `flock`, so two processes never move it back.
pub(super) fn advance_mark(
    root: &Path,
    repo: &RepoId,
    seq: u64,
    hash: &str,
    force: bool,
) -> std::io::Result<()> {
    let dir = index_path(root);
    super::create_private_dir(&dir)?;
    let guard = std::fs::File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join("snap-state-mark.lock"))?;
    // SAFETY: flock on a descriptor this function owns; released when
    // `guard` is dropped.
    if unsafe { libc::flock(guard.as_raw_fd(), libc::LOCK_EX) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    if !force && read_mark(root, repo).is_some_and(|m| m.seq >= seq) {
        return Ok(());
    }
    let mark = Mark {
        repo: repo.to_hex(),
        seq,
        hash: hash.to_string(),
    };
    let tmp = dir.join(format!(".snap-state-mark-{}", std::process::id()));
    std::fs::write(&tmp, serde_json::to_vec(&mark).expect("mark serialises"))?;
    std::fs::File::open(&tmp)?.sync_all()?;
    std::fs::rename(&tmp, mark_path(root))?;
    std::fs::File::open(&dir)?.sync_all()
}

/// The newest state file of a repository.
#[derive(Clone, Debug)]
pub enum Newest {
    /// `state/` holds no state.
    None,
    /// It opened: the state and the hash of its file.
    Verified(State, String),
    /// It did not open or decode.
    Unverifiable(String, String),
}

/// The state as the repository was opened.
#[derive(Clone, Debug)]
pub(super) struct StateView {
    pub newest: Newest,
    /// The mark before this open moved it.
    pub mark: Option<Mark>,
    /// A rollback or an unverifiable newest state: writers refuse.
    pub blocking: Option<Finding>,
}

/// State numbers listed, and the names that are not state numbers.
fn list_states(backend: &dyn Backend) -> Result<(Vec<u64>, Vec<String>)> {
    let mut seqs = Vec::new();
    let mut stray = Vec::new();
    for n in backend.list(FileType::State)? {
        match seq_of(&n) {
            Some(s) => seqs.push(s),
            None => stray.push(format!(
                "state/{n} is not a state number: skipped (move it out of the repository)"
            )),
        }
    }
    seqs.sort_unstable();
    Ok((seqs, stray))
}

fn read_newest(backend: &dyn Backend, keys: &Keys) -> Result<(Newest, Vec<String>)> {
    let (seqs, stray) = list_states(backend)?;
    let Some(&seq) = seqs.last() else {
        return Ok((Newest::None, stray));
    };
    let name = name_of(seq);
    let bytes = match read::bounded(backend, FileType::State, &name, read::MAX_STATE) {
        Ok(b) => b,
        // Corrupt (oversized) is a finding; a storage failure stops the command.
        Err(e @ Error::Corrupt { .. }) => {
            return Ok((Newest::Unverifiable(name, e.to_string()), stray))
        }
        Err(e) => return Err(e),
    };
    Ok((
        match State::decode(&name, &bytes, keys) {
            Ok(s) => Newest::Verified(s, file_hash(&bytes)),
            Err(e) => Newest::Unverifiable(name, e.to_string()),
        },
        stray,
    ))
}

/// A rollback, when the newest state is behind `mark`.
fn rollback(newest: &Newest, mark: &Mark) -> Option<Finding> {
    let seen = format!(
        "this machine last saw state {} (file hash {})",
        mark.seq,
        &mark.hash[..mark.hash.len().min(16)]
    );
    let found = match newest {
        Newest::None => "state/ holds no state at all".to_string(),
        Newest::Verified(s, _) if s.seq < mark.seq => format!(
            "the repository's newest is state {} ({}, written by {})",
            s.seq, s.time, s.host
        ),
        Newest::Verified(s, h) if s.seq == mark.seq && *h != mark.hash => format!(
            "the repository's state {} is another file (hash {})",
            s.seq,
            &h[..16]
        ),
        _ => return None,
    };
    Some(Finding::new(
        FindingKind::Rollback,
        format!("state/{}", name_of(mark.seq)),
        format!("repository state rolled back: {seen}, but {found}. The repository was put back to an older copy, or its newest states were deleted or replaced: what was saved since may be missing. Pushes, prunes, protections and key changes are refused; restores still work. {ACCEPT_HINT}"),
    ))
}

/// Reads the newest state, compares it with this machine's mark and moves
/// the mark forward when the state is newer. Returns the view and the
/// names in `state/` that are not states.
pub(super) fn open_view(
    backend: &dyn Backend,
    keys: &Keys,
    root: &Path,
    repo: &RepoId,
) -> Result<(StateView, Vec<String>)> {
    // The mark first: a mark moved by another process names a state that
    // was written before it, so the listing that follows sees it.
    let mark = read_mark(root, repo);
    let (newest, stray) = read_newest(backend, keys)?;
    let blocking = match (&newest, &mark) {
        (Newest::Unverifiable(name, why), _) => Some(Finding::new(
            FindingKind::Unverifiable,
            format!("state/{name}"),
            format!("the newest repository state cannot be verified ({why}): it was damaged or planted. Prune, pushes, protections and key changes are refused. Move the file out of state/ if an older state is the real one, or {ACCEPT_HINT}"),
        )),
        (n, Some(m)) => rollback(n, m),
        _ => None,
    };
    if let (None, Newest::Verified(s, h)) = (&blocking, &newest) {
        if mark.as_ref().is_none_or(|m| s.seq > m.seq) {
            // A read-only index directory keeps the old mark: harmless.
            let _ = advance_mark(root, repo, s.seq, h, false);
        }
    }
    Ok((
        StateView {
            newest,
            mark,
            blocking,
        },
        stray,
    ))
}

impl Repository {
    /// Whether this repository keeps a state record (format version 4).
    pub fn has_state(&self) -> bool {
        self.state.is_some()
    }

    /// Fails when the state cannot be built on (rolled back, or the newest
    /// does not verify): every command that writes a state calls it before
    /// it changes anything.
    pub fn ensure_state_writable(&self) -> Result<()> {
        match self.state.as_ref().and_then(|v| v.blocking.as_ref()) {
            Some(f) => Err(Error::State(f.message.clone())),
            None => Ok(()),
        }
    }

    /// Puts back the mark this open read, after `repair index` removed the
    /// index directory it lives in.
    pub(super) fn restore_mark(&self) {
        let Some(view) = &self.state else { return };
        if let Some(m) = &view.mark {
            let _ = advance_mark(&self.cache, &self.config.id, m.seq, &m.hash, false);
        }
        if let (None, Newest::Verified(s, h)) = (&view.blocking, &view.newest) {
            let _ = advance_mark(&self.cache, &self.config.id, s.seq, h, false);
        }
    }

    /// The key files the state read at open records, with its number.
    pub(super) fn recorded_keys(
        &self,
    ) -> Option<(u64, std::collections::BTreeMap<String, String>)> {
        match self.state.as_ref().map(|v| &v.newest) {
            Some(Newest::Verified(s, _)) => Some((s.seq, s.keys.clone())),
            _ => None,
        }
    }

    fn written_of(&self, id: &SnapshotId) -> Written {
        self.load_snapshot(id)
            .map(|s| s.written_at())
            .map_err(|e| e.to_string())
    }

    fn key_hashes(&self) -> Result<Vec<(String, String)>> {
        let mut out = Vec::new();
        for name in self.backend.list(FileType::Key)? {
            let hash = match read::bounded(&*self.backend, FileType::Key, &name, read::MAX_KEY_FILE)
            {
                Ok(b) => file_hash(&b),
                Err(e) if matches!(e, Error::Corrupt { .. }) => format!("unreadable: {e}"),
                Err(e) => return Err(e),
            };
            out.push((name, hash));
        }
        Ok(out)
    }

    /// What the repository holds now: every snapshot file, not only those
    /// a reader listed at open.
    fn listing(&self) -> Result<Listing> {
        let snapshots =
            read::snapshot_names(FileType::Snapshot, &self.backend.list(FileType::Snapshot)?).0;
        Ok(Listing {
            snapshots: snapshots.into_iter().collect(),
            protected: self.protected()?.into_iter().collect(),
            keys: self.key_hashes()?.into_iter().collect(),
            config: self.config_hash.clone(),
        })
    }

    /// Compares the state with the repository (empty for versions 1 to 3):
    /// rollbacks, deleted and replayed snapshots, deleted markers, planted
    /// or altered key files. `check` and `report` fail on the errors among
    /// them; prune refuses.
    pub fn state_findings(&self) -> Result<Vec<Finding>> {
        if self.state.is_none() {
            return Ok(Vec::new());
        }
        // Read again, not the view of the open: this handle may have written
        // states since. The state comes first, the listing after it.
        let (view, _) = open_view(&*self.backend, &self.keys, &self.cache, &self.config.id)?;
        let mut out: Vec<Finding> = view.blocking.iter().cloned().collect();
        let before = match &view.newest {
            Newest::Verified(s, _) => s,
            Newest::Unverifiable(..) => return Ok(out),
            Newest::None => {
                if view.mark.is_none() {
                    out.push(Finding::new(
                        FindingKind::NoState,
                        "state/",
                        "the repository has no state record (made before snap kept one, or state/ was deleted): deletions and rollbacks cannot be told until one is written; the next push, prune or protection writes one, or run `snap state accept`",
                    ));
                }
                return Ok(out);
            }
        };
        let listing = self.listing()?;
        // A writer may have recorded more since: what is listed and not in
        // the first state is judged against the newest one.
        let unlisted = listing
            .snapshots
            .iter()
            .any(|i| !before.snapshots.contains(i))
            || listing
                .protected
                .iter()
                .any(|i| !before.protected.contains(i))
            || listing.keys.keys().any(|k| !before.keys.contains_key(k));
        let after = match unlisted {
            true => match read_newest(&*self.backend, &self.keys)?.0 {
                Newest::Verified(s, _) if s.seq > before.seq => s,
                _ => before.clone(),
            },
            false => before.clone(),
        };
        out.extend(compare(before, &after, &listing, &|id| self.written_of(id)));
        Ok(out)
    }

    /// What a writer adopts besides its own change (see [`Adopted`]).
    fn adopt(&self, base: &State, change: &Change) -> Result<Adopted> {
        let starting = base.seq == 0;
        let mut a = Adopted::default();
        let listed =
            read::snapshot_names(FileType::Snapshot, &self.backend.list(FileType::Snapshot)?).0;
        let own = |id: &SnapshotId| {
            change.add_snapshots.contains(id)
                || change.removing.contains(id)
                || change.removed.contains(id)
        };
        for id in listed
            .iter()
            .filter(|id| !base.snapshots.contains(id) && !own(id))
        {
            if base.removing.contains(id) {
                a.still_there.insert(*id);
            } else if starting || base.classify(id, self.written_of(id)) == Unlisted::Unrecorded {
                a.snapshots.push(*id);
            }
        }
        a.protected = self
            .protected()?
            .into_iter()
            .filter(|id| !base.protected.contains(id) && !change.remove_protected.contains(id))
            .collect();
        if starting {
            a.keys = self.key_hashes()?;
            a.config = Some(self.config_hash.clone());
        }
        Ok(a)
    }

    /// Writes the next state: the newest one with `change` and what is
    /// adopted. Nothing to do in repositories of versions 1 to 3.
    pub(crate) fn record_state(&self, change: &Change) -> Result<()> {
        if self.state.is_none() {
            return Ok(());
        }
        self.ensure_state_writable()?;
        let host = lock::host_name();
        for _ in 0..MAX_TRIES {
            self.check_lock()?;
            let mark = read_mark(&self.cache, &self.config.id);
            let (newest, _) = read_newest(&*self.backend, &self.keys)?;
            if let Some(f) = mark.as_ref().and_then(|m| rollback(&newest, m)) {
                return Err(Error::State(f.message));
            }
            let base = match newest {
                Newest::Verified(s, _) => s,
                Newest::None => State::empty(self.config_hash.clone()),
                Newest::Unverifiable(name, why) => {
                    return Err(Error::State(format!("state/{name} cannot be verified ({why}); nothing more is recorded on top of it. {ACCEPT_HINT}")))
                }
            };
            let next = base.next(change, &self.adopt(&base, change)?, &host, Utc::now());
            match self.write_state(&next, false) {
                Err(e) if e.is_already_exists() => continue,
                other => return other,
            }
        }
        Err(Error::State(format!("could not record the repository state: {MAX_TRIES} times another writer took the next number first; run the command again")))
    }

    /// Writes `s` if its number is free, moves the mark and deletes the
    /// states [`KEEP_STATES`] older.
    fn write_state(&self, s: &State, force_mark: bool) -> Result<()> {
        let (name, bytes) = s.encode(&self.keys);
        self.backend.write(FileType::State, &name, &bytes)?;
        let _ = advance_mark(
            &self.cache,
            &self.config.id,
            s.seq,
            &file_hash(&bytes),
            force_mark,
        );
        // Old states are only history: a failure to delete one is retried
        // by the next writer.
        if let Ok((seqs, _)) = list_states(&*self.backend) {
            for old in seqs.into_iter().filter(|o| o + KEEP_STATES <= s.seq) {
                if self.check_lock().is_err() {
                    break;
                }
                let _ = self.backend.remove(FileType::State, &name_of(old));
            }
        }
        Ok(())
    }

    /// Records the repository as it is now, after the operator found it
    /// good: a new state listing what is there, numbered past everything
    /// this machine or the repository saw, and the mark moved to it.
    /// Returns what differed and the new state's number.
    pub fn accept_state(&self) -> Result<(Vec<Finding>, u64)> {
        if self.state.is_none() {
            return Err(Error::Usage(format!(
                "this repository has format version {}, which keeps no state record: nothing to accept",
                self.config.version
            )));
        }
        let (view, _) = open_view(&*self.backend, &self.keys, &self.cache, &self.config.id)?;
        let differences = self.state_findings()?;
        let listing = self.listing()?;
        let (seqs, _) = list_states(&*self.backend)?;
        let highest = seqs
            .last()
            .copied()
            .into_iter()
            .chain(view.mark.as_ref().map(|m| m.seq))
            .max()
            .unwrap_or(0);
        let mut s = match &view.newest {
            Newest::Verified(s, _) => s.clone(),
            _ => State::empty(self.config_hash.clone()),
        };
        s.removed.retain(|id, _| !listing.snapshots.contains(id));
        s.removing.clear();
        s.snapshots = listing.snapshots;
        s.protected = listing.protected;
        s.keys = listing.keys;
        s.config = listing.config;
        s.time = stamp(Utc::now());
        s.host = lock::host_name();
        for seq in highest + 1..highest + 1 + MAX_TRIES as u64 {
            self.check_lock()?;
            s.seq = seq;
            match self.write_state(&s, true) {
                Err(e) if e.is_already_exists() => continue,
                Err(e) => return Err(e),
                Ok(()) => return Ok((differences, seq)),
            }
        }
        Err(Error::State(
            "could not find a free state number; run `snap state accept` again".into(),
        ))
    }
}

/// The change of a `protect` (or with `false`, an `unprotect`) of `id`.
pub(super) fn protect_change(id: SnapshotId, protect: bool) -> Change {
    match protect {
        true => Change {
            add_protected: vec![id],
            ..Change::default()
        },
        false => Change {
            remove_protected: vec![id],
            ..Change::default()
        },
    }
}

/// The first state of a new repository: its one key file and its config.
pub(super) fn initial(
    backend: &dyn Backend,
    keys: &Keys,
    key: (String, String),
    config_hash: String,
) -> Result<()> {
    let s = State::empty(config_hash).next(
        &Change {
            add_keys: vec![key],
            ..Change::default()
        },
        &Adopted::default(),
        &lock::host_name(),
        Utc::now(),
    );
    let (name, bytes) = s.encode(keys);
    backend.write(FileType::State, &name, &bytes)
}
