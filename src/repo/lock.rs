//! Repository locks: files in `locks/` that say who is working.
//!
//! Pushes, checks and restores take shared locks; commands that remove or
//! rewrite (repair, and later prune) take an exclusive one. A lock is stale,
//! and ignored, when its process is gone from this host or it has not been
//! refreshed for [`STALE_AFTER`]; a held lock is refreshed every
//! [`REFRESH_EVERY`] by a background thread.

use crate::backend::{Backend, FileType};
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// A lock older than this is stale.
pub const STALE_AFTER: Duration = Duration::from_secs(30 * 60);
/// How often a held lock is rewritten.
pub const REFRESH_EVERY: Duration = Duration::from_secs(5 * 60);

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

/// A held lock; released on drop.
pub struct Lock {
    backend: Arc<dyn Backend>,
    name: String,
    stop: Arc<AtomicBool>,
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

impl Lock {
    /// Takes a lock, waiting at most `wait` for conflicting ones to go, or
    /// fails with [`Error::Locked`] naming the holder.
    pub fn acquire(
        backend: Arc<dyn Backend>,
        exclusive: bool,
        command: &str,
        wait: Duration,
    ) -> Result<Lock> {
        let start = std::time::Instant::now();
        loop {
            match Self::try_acquire(backend.clone(), exclusive, command) {
                Err(Error::Locked { .. }) if start.elapsed() < wait => {
                    std::thread::sleep(Duration::from_millis(500))
                }
                other => return other,
            }
        }
    }

    fn try_acquire(backend: Arc<dyn Backend>, exclusive: bool, command: &str) -> Result<Lock> {
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
            command: command.into(),
        };
        let conflict = |backend: &dyn Backend| -> Result<Option<String>> {
            for other in backend.list(FileType::Lock)? {
                if other == name {
                    continue;
                }
                let Ok(bytes) = backend.read(FileType::Lock, &other) else {
                    continue;
                };
                let Ok(o) = serde_json::from_slice::<LockInfo>(&bytes) else {
                    continue;
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
                        "{} lock held by `{}` (pid {} on {}, refreshed {}s ago); wait for it, or remove locks/{other} if that process is gone",
                        if o.exclusive { "an exclusive" } else { "a" },
                        o.command,
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
        if let Some(d) = conflict(&*backend)? {
            let _ = backend.remove(FileType::Lock, &name);
            return Err(Error::Locked { detail: d });
        }
        let stop = Arc::new(AtomicBool::new(false));
        {
            let (backend, name, stop, mut info) =
                (backend.clone(), name.clone(), stop.clone(), info);
            std::thread::spawn(move || {
                let step = Duration::from_secs(1);
                let mut waited = Duration::ZERO;
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(step);
                    waited += step;
                    if waited >= REFRESH_EVERY {
                        waited = Duration::ZERO;
                        info.time = now();
                        let _ = backend.write(
                            FileType::Lock,
                            &name,
                            &serde_json::to_vec(&info).expect("lock serialises"),
                        );
                    }
                }
            });
        }
        Ok(Lock {
            backend,
            name,
            stop,
        })
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.backend.remove(FileType::Lock, &self.name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::local::LocalBackend;

    #[test]
    fn shared_locks_coexist_exclusive_conflicts_and_stale_is_ignored() {
        let d = tempfile::tempdir().unwrap();
        let lb = LocalBackend::new(d.path());
        lb.create_layout().unwrap();
        let b: Arc<dyn Backend> = Arc::new(lb);
        let a = Lock::acquire(b.clone(), false, "push", Duration::ZERO).unwrap();
        let c = Lock::acquire(b.clone(), false, "push", Duration::ZERO).unwrap();
        assert!(matches!(
            Lock::acquire(b.clone(), true, "repair", Duration::ZERO),
            Err(Error::Locked { .. })
        ));
        drop(a);
        drop(c);
        let x = Lock::acquire(b.clone(), true, "repair", Duration::ZERO).unwrap();
        assert!(Lock::acquire(b.clone(), false, "push", Duration::ZERO).is_err());
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
        Lock::acquire(b.clone(), true, "repair", Duration::ZERO).unwrap();
    }
}
