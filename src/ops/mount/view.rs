//! The mount's view of the repository: an open [`Repository`] and the
//! snapshots placed by [`Catalog`], replaced by a newer view when the
//! snapshot list changes or a read finds a blob gone.
//!
//! A reader sees the index as it was when it opened, and only the snapshots
//! listed then (format-spec.md §17), so a mount that lives for days opens
//! the repository again to see what was pushed or pruned since: at most
//! every [`RECHECK`] when a directory above the snapshots is listed or
//! looked up, and it then re-opens only when `snapshots/` changed. The mount
//! holds no repository lock between opens (each open takes a shared lock and
//! gives it up at once; a prune running meanwhile keeps the old view), so a
//! prune from cron never waits for it. A read whose blob a prune removed or
//! moved is retried once on a fresh view; what is gone for good is EIO.

use super::layout::Catalog;
use crate::backend::FileType;
use crate::error::Result;
use crate::format::snapshot::Snapshot;
use crate::id::SnapshotId;
use crate::repo::{Mode, Repository};
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};

/// How often the snapshot list is looked at again, at most.
pub const RECHECK: Duration = Duration::from_secs(2);
/// Least time between two re-opens forced by failed reads.
const REOPEN_AFTER_ERROR: Duration = Duration::from_millis(250);

/// One consistent view.
pub struct View {
    /// The repository as opened for this view.
    pub repo: Arc<Repository>,
    /// Its snapshots, placed.
    pub catalog: Catalog,
    /// When this view's snapshot list was read (the mtime of the
    /// directories above the snapshots).
    pub since: SystemTime,
    snapshots: HashMap<SnapshotId, Arc<Snapshot>>,
    /// The ids `snapshots/` listed (damaged ones too).
    listed: HashSet<SnapshotId>,
}

struct Clock {
    checked: Instant,
    reopened: Instant,
    /// Whether the last re-open failed (said once, not at every check).
    failing: bool,
}

/// The current view, and how to get a newer one.
pub struct Views {
    current: RwLock<Arc<View>>,
    clock: Mutex<Clock>,
    /// The cache directory the repository was opened with.
    cache_base: PathBuf,
    /// The zone snapshot times are named in.
    tz: chrono_tz::Tz,
    warn: Arc<dyn Fn(String) + Send + Sync>,
}

/// Places the snapshots of `repo`, reusing those already loaded (a
/// snapshot file never changes: its name is its hash); unreadable ones are
/// left out with a warning, as `snap snapshots` does.
fn view(
    repo: Repository,
    known: &HashMap<SnapshotId, Arc<Snapshot>>,
    tz: chrono_tz::Tz,
    warn: &dyn Fn(String),
) -> Result<View> {
    let mut snaps = Vec::new();
    let listed: HashSet<SnapshotId> = repo.snapshot_ids()?.into_iter().collect();
    for id in listed.iter().copied() {
        match known.get(&id) {
            Some(s) => snaps.push((id, s.clone())),
            None => match repo.load_snapshot(&id) {
                Ok(s) => snaps.push((id, Arc::new(s))),
                Err(e) => warn(format!(
                    "snapshot {} is left out of the mount: {e}",
                    id.short()
                )),
            },
        }
    }
    snaps.sort_by_cached_key(|(id, s)| s.order_key(id));
    Ok(View {
        repo: Arc::new(repo),
        catalog: Catalog::build(&snaps, chrono::Utc::now(), tz),
        since: SystemTime::now(),
        snapshots: snaps.into_iter().collect(),
        listed,
    })
}

impl Views {
    /// Views of `repo`, opened (for reading) with its cache under
    /// `cache_base`; `warn` gets what the user should know (a snapshot
    /// left out, a re-open that failed).
    pub fn new(
        mut repo: Repository,
        cache_base: PathBuf,
        tz: chrono_tz::Tz,
        warn: Arc<dyn Fn(String) + Send + Sync>,
    ) -> Result<Views> {
        repo.release_lock();
        let first = view(repo, &HashMap::new(), tz, &*warn)?;
        let now = Instant::now();
        Ok(Views {
            current: RwLock::new(Arc::new(first)),
            clock: Mutex::new(Clock {
                checked: now,
                reopened: now,
                failing: false,
            }),
            cache_base,
            tz,
            warn,
        })
    }

    /// The current view.
    pub fn get(&self) -> Arc<View> {
        self.current.read().expect("not poisoned").clone()
    }

    /// The current view, after looking at `snapshots/` again if that was
    /// last done [`RECHECK`] ago, and re-opening when it changed.
    pub fn fresh(&self) -> Arc<View> {
        let cur = self.get();
        {
            let mut clock = self.clock.lock().expect("not poisoned");
            if clock.checked.elapsed() < RECHECK {
                return cur;
            }
            clock.checked = Instant::now();
        }
        let changed = match cur.repo.backend.list(FileType::Snapshot) {
            Ok(names) => {
                let ids: HashSet<SnapshotId> = names
                    .iter()
                    .filter_map(|n| SnapshotId::from_hex(n).ok())
                    .collect();
                ids != cur.listed
            }
            Err(e) => {
                (self.warn)(format!("listing the snapshots again failed: {e}"));
                false
            }
        };
        if changed {
            self.reopen(&cur);
        }
        self.get()
    }

    /// After a read failed on view `failed`: a newer view, opened after the
    /// failure if none was. Re-opens are [`REOPEN_AFTER_ERROR`] apart at
    /// least (reads of a pruned snapshot fail again and again): a read that
    /// fails sooner waits for the next one rather than fail for good, since
    /// the prune that moved its blob may have ended just now.
    pub fn after_error(&self, failed: &Arc<View>) -> Option<Arc<View>> {
        let cur = self.get();
        if !Arc::ptr_eq(&cur, failed) {
            return Some(cur);
        }
        let wait = {
            let clock = self.clock.lock().expect("not poisoned");
            REOPEN_AFTER_ERROR.saturating_sub(clock.reopened.elapsed())
        };
        if !wait.is_zero() {
            std::thread::sleep(wait);
        }
        let cur = self.get();
        if !Arc::ptr_eq(&cur, failed) {
            return Some(cur);
        }
        self.reopen(&cur);
        let new = self.get();
        (!Arc::ptr_eq(&new, failed)).then_some(new)
    }

    /// Opens the repository again and makes that the current view, unless
    /// another thread did meanwhile. A failure (a prune holds the exclusive
    /// lock) keeps the current view; the next check tries again.
    fn reopen(&self, cur: &Arc<View>) {
        let mut clock = self.clock.lock().expect("not poisoned");
        if !Arc::ptr_eq(cur, &self.get()) {
            return;
        }
        clock.reopened = Instant::now();
        let opened = Repository::open_sharing_keys(
            cur.repo.backend.clone(),
            &self.cache_base,
            &cur.repo,
            Mode::Read,
            "mount",
            Duration::ZERO,
        )
        .and_then(|mut repo| {
            repo.release_lock();
            view(repo, &cur.snapshots, self.tz, &*self.warn)
        });
        match opened {
            Ok(v) => {
                clock.failing = false;
                *self.current.write().expect("not poisoned") = Arc::new(v);
            }
            Err(e) if !clock.failing => {
                clock.failing = true;
                (self.warn)(format!(
                    "opening the repository again failed, the mount keeps showing it as it was (tried again as it is used): {e}"
                ));
            }
            Err(_) => {}
        }
    }
}
