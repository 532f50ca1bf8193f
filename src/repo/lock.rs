//! Repository locks: files in `locks/` that say who is working.
//!
//! Pushes, checks and restores take shared locks; commands that remove or
//! rewrite (repair, prune) take an exclusive one. A lock is stale, and
//! ignored, when its process is gone from this host or it has not been
//! refreshed for [`STALE_AFTER`]; a held lock is refreshed every
//! [`REFRESH_EVERY`] by a background thread that is woken and joined when the
//! lock drops. Once a refresh fails, or the lock file was removed by someone
//! else, [`Lock::check`] fails: writers call it before each write so that a
//! command whose lock others may no longer see stops before writing more.
//!
//! A lock file is read only when it is at most [`MAX_LOCK_FILE`] bytes; one
//! that is larger or does not parse is ignored (it neither crashes nor
//! blocks anyone) and reported in [`Lock::notes`].

use crate::backend::{Backend, FileType};
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A lock older than this is stale.
pub const STALE_AFTER: Duration = Duration::from_secs(30 * 60);
/// How often a held lock is rewritten.
pub const REFRESH_EVERY: Duration = Duration::from_secs(5 * 60);
/// The largest lock file that is read; a lock is about 100 bytes of JSON.
pub const MAX_LOCK_FILE: u64 = 64 << 10;
/// How often a waiting command looks at `locks/` again.
const RETRY_EVERY: Duration = Duration::from_millis(500);

/// What a lock file says.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LockInfo {
    /// Lock file format version (1).
    #[serde(default = "lock_version")]
    pub version: u32,
    /// Host name.
    pub host: String,
    /// Process id.
    pub pid: u32,
    /// Seconds since the epoch of the last refresh.
    pub time: i64,
    /// Exclusive or shared.
    pub exclusive: bool,
    /// The command, for messages.
    pub command: String,
}

impl LockInfo {
    fn is_stale(&self, host: &str, now: i64) -> bool {
        now - self.time > STALE_AFTER.as_secs() as i64 || self.is_dead_here(host)
    }

    /// Its process is gone from this host: the lock can be deleted.
    fn is_dead_here(&self, host: &str) -> bool {
        self.host == host && !process_alive(self.pid)
    }
}

/// Whether a process with this id exists on this host.
pub fn process_alive(pid: u32) -> bool {
    // SAFETY: kill with signal 0 only checks that the process exists.
    let r = unsafe { libc::kill(pid as i32, 0) };
    r == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
}

fn lock_version() -> u32 {
    1
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// The host name used in locks and snapshots.
pub fn host_name() -> String {
    hostname::get()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_else(|_| "unknown".into())
}

/// One file of `locks/` as read.
enum Found {
    /// A lock.
    Lock(LockInfo),
    /// Not a lock (too large, unreadable, or not lock JSON), with the reason.
    Junk(String),
    /// Gone between listing and reading.
    Gone,
}

fn read_lock(backend: &dyn Backend, name: &str, size: u64) -> Found {
    if size > MAX_LOCK_FILE {
        return Found::Junk(format!(
            "{size} bytes, larger than any lock ({MAX_LOCK_FILE} bytes at most)"
        ));
    }
    match backend.read(FileType::Lock, name) {
        Ok(bytes) if bytes.len() as u64 > MAX_LOCK_FILE => Found::Junk(format!(
            "larger than any lock ({MAX_LOCK_FILE} bytes at most)"
        )),
        Ok(bytes) => match serde_json::from_slice::<LockInfo>(&bytes) {
            Ok(i) => Found::Lock(i),
            Err(e) => Found::Junk(format!("not a lock file ({e})")),
        },
        Err(e) if e.is_not_found() => Found::Gone,
        Err(e) => Found::Junk(format!("cannot be read ({e})")),
    }
}

/// The note for a file in `locks/` that is not a lock.
fn junk_note(name: &str, why: &str) -> String {
    format!("locks/{name} is ignored: {why}; remove it with `snap unlock {name}`")
}

/// What the refresher and the command share.
struct Shared {
    /// Set when the lock drops; the refresher is woken through `wake`.
    stop: Mutex<bool>,
    wake: Condvar,
    /// Why the lock can no longer be trusted, once it cannot.
    lost: Mutex<Option<String>>,
    /// When the lock file was last written, in the lock's own clock (Unix
    /// seconds): others judge staleness by it, and it counts time suspended.
    written: Mutex<i64>,
}

/// The locks this process holds, so that [`release_held`] can give them up
/// when the process is told to stop.
static HELD: Mutex<Vec<Held>> = Mutex::new(Vec::new());

/// A held lock as [`release_held`] needs it: where, its name, its state.
type Held = (Arc<dyn Backend>, String, Arc<Shared>);

/// Held while a lock file is written (taken, or refreshed) until it is in
/// [`HELD`], so [`release_held`] never misses a file being written.
static WRITING: Mutex<()> = Mutex::new(());

/// Set by [`release_held`]: no lock file is written after it.
static RELEASED: AtomicBool = AtomicBool::new(false);

fn writing() -> std::sync::MutexGuard<'static, ()> {
    WRITING.lock().unwrap_or_else(|p| p.into_inner())
}

/// Marks every lock this process holds as lost (so [`Lock::check`] fails and
/// nothing more is written) and removes their files; no lock is taken or
/// refreshed afterwards. For a process about to exit on a signal, whose
/// destructors will not run.
pub fn release_held(why: &str) {
    let _writing = writing();
    RELEASED.store(true, Ordering::SeqCst);
    let held = std::mem::take(&mut *HELD.lock().unwrap_or_else(|p| p.into_inner()));
    for (backend, name, shared) in held {
        *shared.lost.lock().unwrap_or_else(|p| p.into_inner()) = Some(why.to_string());
        release_file(&*backend, &name);
    }
}

/// Removes a lock file this process wrote. Storage that refuses deletions
/// (an append-only off-site account, format-spec.md §13.1) gets the file
/// rewritten as a lock refreshed at time 0, which every reader takes as
/// stale at once: the lock is released either way.
fn release_file(backend: &dyn Backend, name: &str) {
    match backend.remove(FileType::Lock, name) {
        Ok(()) => {}
        Err(e) if e.is_not_found() => {}
        Err(_) => {
            let expired = LockInfo {
                version: 1,
                host: String::new(),
                pid: 0,
                time: 0,
                exclusive: false,
                command: String::new(),
            };
            if let Ok(bytes) = serde_json::to_vec(&expired) {
                let _ = backend.write(FileType::Lock, name, &bytes);
            }
        }
    }
}

/// A held lock; released on drop.
pub struct Lock {
    backend: Arc<dyn Backend>,
    name: String,
    shared: Arc<Shared>,
    refresher: Option<JoinHandle<()>>,
    notes: Vec<String>,
}

/// Checks a held lock from any thread: see [`Lock::check`].
#[derive(Clone)]
pub struct LockWatch {
    name: String,
    shared: Arc<Shared>,
}

impl LockWatch {
    /// Fails once the lock can no longer be trusted.
    pub fn check(&self) -> Result<()> {
        let lost = self.shared.lost.lock().expect("lock state").clone();
        let why = lost.or_else(|| {
            let age = now() - *self.shared.written.lock().expect("lock state");
            (age > (STALE_AFTER - REFRESH_EVERY).as_secs() as i64).then(|| {
                format!(
                    "it was last refreshed {age}s ago, and others take a lock for stale after {}s (was the machine suspended?)",
                    STALE_AFTER.as_secs()
                )
            })
        });
        match why {
            None => Ok(()),
            Some(why) => Err(Error::LockLost {
                lock: format!("locks/{}", self.name),
                why,
            }),
        }
    }
}

impl Lock {
    /// Takes a lock, waiting at most `wait` for conflicting ones to go, or
    /// fails with [`Error::Locked`] naming the holder. `waiting` is called
    /// once, with the holder, when the lock is not free at once.
    pub fn acquire(
        backend: Arc<dyn Backend>,
        exclusive: bool,
        command: &str,
        wait: Duration,
        waiting: &dyn Fn(&str),
    ) -> Result<Lock> {
        Self::acquire_refreshing(backend, exclusive, command, wait, waiting, REFRESH_EVERY)
    }

    fn acquire_refreshing(
        backend: Arc<dyn Backend>,
        exclusive: bool,
        command: &str,
        wait: Duration,
        waiting: &dyn Fn(&str),
        every: Duration,
    ) -> Result<Lock> {
        let start = Instant::now();
        let mut said = false;
        loop {
            match Self::try_acquire(backend.clone(), exclusive, command, every) {
                Err(Error::Locked { detail }) if start.elapsed() < wait => {
                    if !said {
                        said = true;
                        waiting(&detail);
                    }
                    std::thread::sleep(RETRY_EVERY.min(wait.saturating_sub(start.elapsed())));
                }
                other => return other,
            }
        }
    }

    /// The lock file's name in `locks/`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Files in `locks/` that were ignored because they are not locks.
    pub fn notes(&self) -> &[String] {
        &self.notes
    }

    /// Marks the lock lost, as a failed refresh would.
    #[cfg(test)]
    pub(crate) fn mark_lost(&self, why: &str) {
        *self.shared.lost.lock().expect("lock state") = Some(why.into());
    }

    /// Fails once the lock cannot be trusted: a refresh failed, the lock file
    /// was removed, or it was not rewritten for so long that others may take
    /// it for stale. Call it before each write.
    pub fn check(&self) -> Result<()> {
        self.watch().check()
    }

    /// A handle that checks this lock from another thread (the pack writer's).
    pub fn watch(&self) -> LockWatch {
        LockWatch {
            name: self.name.clone(),
            shared: self.shared.clone(),
        }
    }

    /// Takes the lock. The command's name is not written into the lock file
    /// (the storage provider reads lock files, format-spec.md §13).
    fn try_acquire(
        backend: Arc<dyn Backend>,
        exclusive: bool,
        _command: &str,
        every: Duration,
    ) -> Result<Lock> {
        let host = host_name();
        let name = format!(
            "{:016x}{:016x}",
            rand::random::<u64>(),
            rand::random::<u64>()
        );
        let info = LockInfo {
            version: 1,
            host: host.clone(),
            pid: std::process::id(),
            time: now(),
            exclusive,
            // Empty: kept for readers of earlier versions that require it.
            command: String::new(),
        };
        let mut notes = Vec::new();
        let mut conflict = |backend: &dyn Backend| -> Result<Option<String>> {
            notes.clear();
            for (other, size) in backend.list_sizes(FileType::Lock)? {
                if other == name {
                    continue;
                }
                let o = match read_lock(backend, &other, size) {
                    Found::Lock(o) => o,
                    Found::Junk(why) => {
                        notes.push(junk_note(&other, &why));
                        continue;
                    }
                    Found::Gone => continue,
                };
                if o.is_dead_here(&host) {
                    // Left by a process killed on this host: nobody else
                    // will ever remove it.
                    let _ = backend.remove(FileType::Lock, &other);
                    continue;
                }
                if o.is_stale(&host, now()) {
                    continue;
                }
                if exclusive || o.exclusive {
                    return Ok(Some(format!(
                        "{} lock locks/{other} is held by {}pid {} on {} (refreshed {}s ago); wait for it, or run `snap unlock {other}` if that process is gone",
                        if o.exclusive { "an exclusive" } else { "a shared" },
                        if o.command.is_empty() {
                            String::new()
                        } else {
                            format!("`{}`, ", o.command)
                        },
                        o.pid,
                        o.host,
                        now() - o.time
                    )));
                }
            }
            Ok(None)
        };
        if let Some(d) = conflict(&*backend)? {
            return Err(Error::Locked { detail: d });
        }
        let writing = writing();
        if RELEASED.load(Ordering::SeqCst) {
            return Err(Error::LockLost {
                lock: format!("locks/{name}"),
                why: "this process is stopping".into(),
            });
        }
        if let Err(e) = backend.write(
            FileType::Lock,
            &name,
            &serde_json::to_vec(&info).expect("lock serialises"),
        ) {
            // The write may have happened before it failed (a sync that
            // failed after the rename): leave no lock behind.
            let _ = backend.remove(FileType::Lock, &name);
            return Err(e);
        }
        // Re-check after writing: of two racing exclusive lockers, both back off.
        match conflict(&*backend) {
            Ok(None) => {}
            Ok(Some(d)) => {
                let _ = backend.remove(FileType::Lock, &name);
                return Err(Error::Locked { detail: d });
            }
            Err(e) => {
                let _ = backend.remove(FileType::Lock, &name);
                return Err(e);
            }
        }
        let shared = Arc::new(Shared {
            stop: Mutex::new(false),
            wake: Condvar::new(),
            lost: Mutex::new(None),
            written: Mutex::new(info.time),
        });
        HELD.lock()
            .expect("held locks")
            .push((backend.clone(), name.clone(), shared.clone()));
        drop(writing);
        let refresher = {
            let (backend, name, shared) = (backend.clone(), name.clone(), shared.clone());
            std::thread::spawn(move || {
                refresh_until_stopped(&*backend, &name, info, &shared, every)
            })
        };
        Ok(Lock {
            backend,
            name,
            shared,
            refresher: Some(refresher),
            notes,
        })
    }
}

/// The refresher: rewrites the lock every `every` until told to stop; after
/// the first failure it records why and stops refreshing.
fn refresh_until_stopped(
    backend: &dyn Backend,
    name: &str,
    mut info: LockInfo,
    shared: &Shared,
    every: Duration,
) {
    let mut stop = shared.stop.lock().expect("lock state");
    loop {
        stop = shared
            .wake
            .wait_timeout_while(stop, every, |s| !*s)
            .expect("lock state")
            .0;
        if *stop {
            return;
        }
        drop(stop);
        info.time = now();
        let writing = writing();
        let r = match backend.exists(FileType::Lock, name) {
            _ if RELEASED.load(Ordering::SeqCst) => Err("this process is stopping".to_string()),
            Ok(false) => Err("the lock file was removed by another process".to_string()),
            Ok(true) => backend
                .write(
                    FileType::Lock,
                    name,
                    &serde_json::to_vec(&info).expect("lock serialises"),
                )
                .map_err(|e| format!("refreshing it failed: {e}")),
            Err(e) => Err(format!("refreshing it failed: {e}")),
        };
        drop(writing);
        match r {
            Ok(()) => *shared.written.lock().expect("lock state") = info.time,
            Err(why) => {
                *shared.lost.lock().expect("lock state") = Some(why);
                return;
            }
        }
        stop = shared.stop.lock().expect("lock state");
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        HELD.lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|(_, n, _)| *n != self.name);
        *self.shared.stop.lock().expect("lock state") = true;
        self.shared.wake.notify_all();
        if let Some(t) = self.refresher.take() {
            let _ = t.join();
        }
        release_file(&*self.backend, &self.name);
    }
}

/// What `snap unlock` removed.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Unlocked {
    /// Lock files removed, with the reason.
    pub removed: Vec<(String, String)>,
    /// Live locks left in place.
    pub kept: Vec<String>,
}

/// Removes stale locks and files in `locks/` that are not locks; with
/// `names`, removes exactly those lock files, live or not (the user says
/// their processes are gone).
pub fn unlock(backend: &dyn Backend, names: &[String]) -> Result<Unlocked> {
    let mut out = Unlocked::default();
    let present = backend.list_sizes(FileType::Lock)?;
    for n in names {
        if !present.iter().any(|(p, _)| p == n) {
            return Err(Error::Usage(format!(
                "there is no lock file locks/{n}; see `snap unlock` without names for stale ones"
            )));
        }
    }
    let host = host_name();
    for (name, size) in present {
        let why = if !names.is_empty() {
            names.contains(&name).then(|| "named".to_string())
        } else {
            match read_lock(backend, &name, size) {
                Found::Lock(o) if o.is_stale(&host, now()) => Some("stale".into()),
                Found::Lock(_) => {
                    out.kept.push(name.clone());
                    None
                }
                Found::Gone => None,
                Found::Junk(why) => Some(why),
            }
        };
        if let Some(why) = why {
            backend.remove(FileType::Lock, &name)?;
            out.removed.push((name, why));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::local::LocalBackend;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    /// A local backend whose lock writes can be made to fail, and that
    /// remembers which lock files were read.
    struct Faulty {
        inner: LocalBackend,
        fail_writes: AtomicBool,
        writes: AtomicUsize,
        read: Mutex<Vec<String>>,
    }

    impl Faulty {
        fn new(dir: &std::path::Path) -> Arc<Faulty> {
            let inner = LocalBackend::new(dir);
            inner.create_layout().unwrap();
            Arc::new(Faulty {
                inner,
                fail_writes: AtomicBool::new(false),
                writes: AtomicUsize::new(0),
                read: Mutex::new(Vec::new()),
            })
        }
    }

    impl Backend for Faulty {
        fn location(&self) -> String {
            self.inner.location()
        }
        fn list(&self, t: FileType) -> Result<Vec<String>> {
            self.inner.list(t)
        }
        fn list_sizes(&self, t: FileType) -> Result<Vec<(String, u64)>> {
            self.inner.list_sizes(t)
        }
        fn read(&self, t: FileType, name: &str) -> Result<Vec<u8>> {
            self.read.lock().unwrap().push(name.to_string());
            self.inner.read(t, name)
        }
        fn read_range(&self, t: FileType, name: &str, offset: u64, len: u64) -> Result<Vec<u8>> {
            self.inner.read_range(t, name, offset, len)
        }
        fn size(&self, t: FileType, name: &str) -> Result<u64> {
            self.inner.size(t, name)
        }
        fn exists(&self, t: FileType, name: &str) -> Result<bool> {
            self.inner.exists(t, name)
        }
        fn write(&self, t: FileType, name: &str, data: &[u8]) -> Result<()> {
            self.writes.fetch_add(1, Ordering::SeqCst);
            if self.fail_writes.load(Ordering::SeqCst) {
                return Err(Error::io(
                    self.inner.root().join("locks"),
                    std::io::Error::from_raw_os_error(libc::EROFS),
                ));
            }
            self.inner.write(t, name, data)
        }
        fn remove(&self, t: FileType, name: &str) -> Result<()> {
            self.inner.remove(t, name)
        }
    }

    fn take(b: &Arc<Faulty>, every: Duration) -> Lock {
        Lock::acquire_refreshing(b.clone(), false, "push", Duration::ZERO, &|_| {}, every).unwrap()
    }

    /// Waits for `lock.check()` to fail (the refresher runs every few ms).
    fn lost(lock: &Lock) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match lock.check() {
                Err(e @ Error::LockLost { .. }) => return e.to_string(),
                Err(e) => panic!("unexpected error {e}"),
                Ok(()) if Instant::now() < deadline => std::thread::yield_now(),
                Ok(()) => panic!("check() still passes after a minute"),
            }
        }
    }

    #[test]
    fn shared_locks_coexist_exclusive_conflicts_and_stale_is_ignored() {
        let d = tempfile::tempdir().unwrap();
        let lb = LocalBackend::new(d.path());
        lb.create_layout().unwrap();
        let b: Arc<dyn Backend> = Arc::new(lb);
        let get = |exclusive, command| {
            Lock::acquire(b.clone(), exclusive, command, Duration::ZERO, &|_| {})
        };
        let a = get(false, "push").unwrap();
        let c = get(false, "push").unwrap();
        assert!(matches!(get(true, "repair"), Err(Error::Locked { .. })));
        drop(a);
        drop(c);
        let x = get(true, "repair").unwrap();
        let e = get(false, "push").err().unwrap().to_string();
        assert!(e.contains(&format!("locks/{}", x.name())), "{e}");
        assert!(e.contains(&format!("snap unlock {}", x.name())), "{e}");
        drop(x);
        // A lock of a dead process on this host is stale.
        let dead = LockInfo {
            version: 1,
            host: host_name(),
            pid: 999_999_999,
            time: now(),
            exclusive: true,
            command: "prune".into(),
        };
        b.write(FileType::Lock, "dead", &serde_json::to_vec(&dead).unwrap())
            .unwrap();
        let old = LockInfo {
            version: 1,
            host: "elsewhere".into(),
            pid: 1,
            time: now() - 3 * 3600,
            exclusive: true,
            command: "prune".into(),
        };
        b.write(FileType::Lock, "old", &serde_json::to_vec(&old).unwrap())
            .unwrap();
        get(true, "repair").unwrap();
    }

    #[test]
    fn a_failed_refresh_makes_check_fail() {
        let d = tempfile::tempdir().unwrap();
        let b = Faulty::new(d.path());
        let lock = take(&b, Duration::from_millis(5));
        lock.check().unwrap();
        b.fail_writes.store(true, Ordering::SeqCst);
        let e = lost(&lock);
        assert!(e.contains(&format!("locks/{}", lock.name())), "{e}");
        assert!(e.contains("refreshing it failed"), "{e}");
        // It stays failed: the command must not go on writing.
        b.fail_writes.store(false, Ordering::SeqCst);
        assert!(lock.check().is_err());
    }

    #[test]
    fn a_removed_lock_file_makes_check_fail() {
        let d = tempfile::tempdir().unwrap();
        let b = Faulty::new(d.path());
        let lock = take(&b, Duration::from_millis(5));
        b.remove(FileType::Lock, lock.name()).unwrap();
        let e = lost(&lock);
        assert!(e.contains("removed by another process"), "{e}");
        assert!(
            !b.exists(FileType::Lock, lock.name()).unwrap(),
            "a removed lock is not written back"
        );
    }

    #[test]
    fn a_lock_not_refreshed_for_nearly_the_stale_time_makes_check_fail() {
        let d = tempfile::tempdir().unwrap();
        let b = Faulty::new(d.path());
        let lock = take(&b, REFRESH_EVERY);
        // As after a suspend: the refresher had no chance to run.
        *lock.shared.written.lock().unwrap() -= (STALE_AFTER - REFRESH_EVERY).as_secs() as i64 + 1;
        let e = lock.check().unwrap_err().to_string();
        assert!(e.contains("suspended"), "{e}");
    }

    #[test]
    fn drop_wakes_and_joins_the_refresher_at_once() {
        let d = tempfile::tempdir().unwrap();
        let b = Faulty::new(d.path());
        let lock = take(&b, REFRESH_EVERY);
        let name = lock.name().to_string();
        let started = Instant::now();
        drop(lock);
        assert!(
            started.elapsed() < REFRESH_EVERY / 2,
            "drop waited {:?}",
            started.elapsed()
        );
        // The refresher held a clone of the backend: it is gone once joined.
        assert_eq!(Arc::strong_count(&b), 1, "the refresher still runs");
        assert!(!b.exists(FileType::Lock, &name).unwrap());
    }

    #[test]
    fn oversize_and_garbage_lock_files_neither_crash_nor_block() {
        let d = tempfile::tempdir().unwrap();
        let b = Faulty::new(d.path());
        let big = "b1".repeat(16);
        let junk = "ju".repeat(16);
        std::fs::write(
            d.path().join("locks").join(&big),
            vec![b'{'; MAX_LOCK_FILE as usize + 1],
        )
        .unwrap();
        std::fs::write(d.path().join("locks").join(&junk), b"\x1b[2Jnot json").unwrap();
        let lock = Lock::acquire(b.clone(), true, "prune", Duration::ZERO, &|_| {}).unwrap();
        assert!(
            !b.read.lock().unwrap().contains(&big),
            "an oversize lock file is never read"
        );
        let notes = lock.notes().join("\n");
        for n in [&big, &junk] {
            assert!(notes.contains(&format!("locks/{n}")), "{notes}");
            assert!(notes.contains(&format!("snap unlock {n}")), "{notes}");
        }
        drop(lock);
        let live = take(&b, REFRESH_EVERY);
        let u = unlock(&*b, &[]).unwrap();
        let removed: Vec<&str> = u.removed.iter().map(|(n, _)| n.as_str()).collect();
        assert!(removed.contains(&big.as_str()) && removed.contains(&junk.as_str()));
        assert_eq!(u.kept, vec![live.name().to_string()]);
        assert!(unlock(&*b, &["nope".into()]).is_err());
        let u = unlock(&*b, &[live.name().to_string()]).unwrap();
        assert_eq!(u.removed.len(), 1);
        assert!(b.list(FileType::Lock).unwrap().is_empty());
    }

    #[test]
    fn storage_that_refuses_deletions_gets_the_lock_expired_instead() {
        use crate::backend::faulty::{Fault, Faults, FaultyBackend, Op};
        let d = tempfile::tempdir().unwrap();
        let lb = LocalBackend::new(d.path());
        lb.create_layout().unwrap();
        let faults = Faults::new();
        let b: Arc<dyn Backend> = Arc::new(FaultyBackend::new(Arc::new(lb), faults.clone()));
        let lock = Lock::acquire(b.clone(), false, "replicate", Duration::ZERO, &|_| {}).unwrap();
        let name = lock.name().to_string();
        faults.fail_nth(Op::Remove, 1, Fault::Eio);
        drop(lock);
        assert_eq!(faults.fired(), 1, "the removal was refused");
        let left: LockInfo =
            serde_json::from_slice(&b.read(FileType::Lock, &name).unwrap()).unwrap();
        assert_eq!(left.time, 0, "rewritten as refreshed at time 0");
        // Stale at once: an exclusive command goes ahead.
        Lock::acquire(b.clone(), true, "prune", Duration::ZERO, &|_| {}).unwrap();
    }
}
