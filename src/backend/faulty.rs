//! A backend wrapper that fails chosen operations, to test that nothing
//! reported as saved is lost when the storage fails: the Nth write, staged
//! write, rename, read or removal fails with ENOSPC or EIO, before or after
//! the inner backend did it, and the Nth write into a staging file writes
//! only part of its buffer before failing (a disk that fills mid-write).

use super::{Backend, FileType};
use crate::error::{Error, Result};
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};

/// Operations that can be made to fail.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    /// [`Backend::write`] (snapshots, keys, locks, config).
    Write,
    /// [`Backend::write_file`] (a staged pack put in place).
    WriteFile,
    /// One `write` call into a staging file.
    StagingWrite,
    /// [`Backend::read`] and [`Backend::read_range`].
    Read,
    /// [`Backend::remove`].
    Remove,
    /// [`Backend::list`] and [`Backend::list_sizes`].
    List,
}

/// How an operation fails.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// ENOSPC, nothing done (for a staging write: half the buffer written).
    NoSpace,
    /// EIO, nothing done (for a staging write: half the buffer written).
    Eio,
    /// The inner backend did the operation, then EIO is returned (a rename
    /// that happened but whose directory sync failed).
    EioAfter,
    /// For a staging write: the whole buffer is reported written but only
    /// half of it is kept (a short write nobody reported). Elsewhere, EIO.
    Short,
}

#[derive(Default)]
struct Plan {
    rules: Vec<(Op, u64, Fault)>,
    counts: std::collections::HashMap<Op, u64>,
    fired: u64,
}

/// The faults to inject, shared by a backend and the staging files it made.
#[derive(Clone, Default)]
pub struct Faults(Arc<Mutex<Plan>>);

impl Faults {
    /// No faults yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes the `n`th (1-based, counted from now) call of `op` fail.
    pub fn fail_nth(&self, op: Op, n: u64, fault: Fault) {
        let mut p = self.0.lock().expect("fault plan");
        let base = p.counts.get(&op).copied().unwrap_or(0);
        p.rules.push((op, base + n, fault));
    }

    /// Forgets every rule not yet fired.
    pub fn clear(&self) {
        self.0.lock().expect("fault plan").rules.clear();
    }

    /// How many calls of `op` were made.
    pub fn count(&self, op: Op) -> u64 {
        self.0
            .lock()
            .expect("fault plan")
            .counts
            .get(&op)
            .copied()
            .unwrap_or(0)
    }

    /// How many faults were injected.
    pub fn fired(&self) -> u64 {
        self.0.lock().expect("fault plan").fired
    }

    /// Counts a call of `op`; the fault to inject, if any.
    fn next(&self, op: Op) -> Option<Fault> {
        let mut p = self.0.lock().expect("fault plan");
        let c = p.counts.entry(op).or_insert(0);
        *c += 1;
        let c = *c;
        let i = p.rules.iter().position(|r| r.0 == op && r.1 == c)?;
        let (_, _, f) = p.rules.remove(i);
        p.fired += 1;
        Some(f)
    }
}

fn io_error(f: Fault) -> std::io::Error {
    match f {
        Fault::NoSpace => std::io::Error::from_raw_os_error(libc::ENOSPC),
        Fault::Eio | Fault::EioAfter | Fault::Short => std::io::Error::from_raw_os_error(libc::EIO),
    }
}

/// A backend that injects [`Faults`] into another.
pub struct FaultyBackend {
    inner: Arc<dyn Backend>,
    faults: Faults,
}

impl FaultyBackend {
    /// Wraps `inner`; faults are added to `faults` at any time.
    pub fn new(inner: Arc<dyn Backend>, faults: Faults) -> Self {
        FaultyBackend { inner, faults }
    }

    fn run<T>(&self, op: Op, what: String, f: impl FnOnce() -> Result<T>) -> Result<T> {
        match self.faults.next(op) {
            None => f(),
            Some(Fault::EioAfter) => {
                f()?;
                Err(Error::storage(
                    self.location(),
                    what,
                    io_error(Fault::EioAfter),
                ))
            }
            Some(fault) => Err(Error::storage(self.location(), what, io_error(fault))),
        }
    }
}

impl Backend for FaultyBackend {
    fn location(&self) -> String {
        self.inner.location()
    }
    fn is_remote(&self) -> bool {
        self.inner.is_remote()
    }
    fn list(&self, t: FileType) -> Result<Vec<String>> {
        self.run(Op::List, format!("listing {t:?}"), || self.inner.list(t))
    }
    fn list_sizes(&self, t: FileType) -> Result<Vec<(String, u64)>> {
        self.run(Op::List, format!("listing {t:?}"), || {
            self.inner.list_sizes(t)
        })
    }
    fn read(&self, t: FileType, name: &str) -> Result<Vec<u8>> {
        self.run(Op::Read, format!("reading {name}"), || {
            self.inner.read(t, name)
        })
    }
    fn read_range(&self, t: FileType, name: &str, offset: u64, len: u64) -> Result<Vec<u8>> {
        self.run(Op::Read, format!("reading {name}"), || {
            self.inner.read_range(t, name, offset, len)
        })
    }
    fn size(&self, t: FileType, name: &str) -> Result<u64> {
        self.inner.size(t, name)
    }
    fn exists(&self, t: FileType, name: &str) -> Result<bool> {
        self.inner.exists(t, name)
    }
    fn write(&self, t: FileType, name: &str, data: &[u8]) -> Result<()> {
        self.run(Op::Write, format!("writing {name}"), || {
            self.inner.write(t, name, data)
        })
    }
    fn remove(&self, t: FileType, name: &str) -> Result<()> {
        self.run(Op::Remove, format!("removing {name}"), || {
            self.inner.remove(t, name)
        })
    }
    fn write_file(&self, t: FileType, name: &str, path: &Path) -> Result<()> {
        self.run(Op::WriteFile, format!("putting {name} in place"), || {
            self.inner.write_file(t, name, path)
        })
    }
}

impl Faults {
    /// Wraps a staging file so that its writes fail as planned for
    /// [`Op::StagingWrite`] (staging files live in the cache directory, not
    /// in a backend: the repository hands them to this).
    pub fn staging_file(&self, inner: Box<dyn Write + Send>) -> Box<dyn Write + Send> {
        Box::new(FaultyFile {
            inner,
            faults: self.clone(),
        })
    }
}

/// A staging file whose writes can fail part-way.
struct FaultyFile {
    inner: Box<dyn Write + Send>,
    faults: Faults,
}

impl Write for FaultyFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self.faults.next(Op::StagingWrite) {
            None => self.inner.write(buf),
            Some(Fault::Short) => {
                self.inner.write_all(&buf[..buf.len() / 2])?;
                Ok(buf.len())
            }
            Some(f) => {
                // What a filling disk does: part of the buffer lands, then
                // the error.
                let half = buf.len() / 2;
                self.inner.write_all(&buf[..half])?;
                Err(io_error(f))
            }
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::mem::MemBackend;

    #[test]
    fn conformance_faulty_without_faults() {
        let b = FaultyBackend::new(Arc::new(MemBackend::new()), Faults::new());
        crate::backend::conformance::run(&b);
    }

    #[test]
    fn the_nth_call_fails_with_the_chosen_error() {
        let faults = Faults::new();
        let b = FaultyBackend::new(Arc::new(MemBackend::new()), faults.clone());
        faults.fail_nth(Op::Write, 2, Fault::NoSpace);
        b.write(FileType::Snapshot, "a", b"1").unwrap();
        let e = b.write(FileType::Snapshot, "b", b"2").unwrap_err();
        assert!(
            matches!(
                &e,
                Error::Storage {
                    kind: crate::error::StorageKind::Transient,
                    ..
                }
            ),
            "{e:?}"
        );
        assert!(!b.exists(FileType::Snapshot, "b").unwrap());
        faults.fail_nth(Op::Write, 1, Fault::EioAfter);
        assert!(b.write(FileType::Snapshot, "c", b"3").is_err());
        assert!(
            b.exists(FileType::Snapshot, "c").unwrap(),
            "done, then failed"
        );
        assert_eq!(faults.fired(), 2);
        assert_eq!(faults.count(Op::Write), 3);
    }
}
