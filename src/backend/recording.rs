//! A backend that stands for a remote one and records every read, so tests
//! can check what a storage provider would see (format-spec.md §9.1).

use super::{Backend, FileType};
use crate::error::Result;
use std::path::Path;
use std::sync::{Arc, Mutex};

/// One read the backend served: the file, and the range (`None` for a
/// whole-file read).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// The file type.
    pub t: FileType,
    /// The file name.
    pub name: String,
    /// Offset and length of a ranged read.
    pub range: Option<(u64, u64)>,
}

/// Wraps a backend, says it is remote, and records its reads.
pub struct RecordingBackend {
    inner: Arc<dyn Backend>,
    reads: Mutex<Vec<Request>>,
}

impl RecordingBackend {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn Backend>) -> RecordingBackend {
        RecordingBackend {
            inner,
            reads: Mutex::default(),
        }
    }

    /// The reads so far, and forgets them.
    pub fn take(&self) -> Vec<Request> {
        std::mem::take(&mut self.reads.lock().expect("not poisoned"))
    }

    fn note(&self, t: FileType, name: &str, range: Option<(u64, u64)>) {
        self.reads.lock().expect("not poisoned").push(Request {
            t,
            name: name.to_string(),
            range,
        });
    }
}

impl Backend for RecordingBackend {
    fn location(&self) -> String {
        self.inner.location()
    }
    fn is_remote(&self) -> bool {
        true
    }
    fn list(&self, t: FileType) -> Result<Vec<String>> {
        self.inner.list(t)
    }
    fn list_sizes(&self, t: FileType) -> Result<Vec<(String, u64)>> {
        self.inner.list_sizes(t)
    }
    fn read(&self, t: FileType, name: &str) -> Result<Vec<u8>> {
        self.note(t, name, None);
        self.inner.read(t, name)
    }
    fn read_range(&self, t: FileType, name: &str, offset: u64, len: u64) -> Result<Vec<u8>> {
        self.note(t, name, Some((offset, len)));
        self.inner.read_range(t, name, offset, len)
    }
    fn size(&self, t: FileType, name: &str) -> Result<u64> {
        self.inner.size(t, name)
    }
    fn exists(&self, t: FileType, name: &str) -> Result<bool> {
        self.inner.exists(t, name)
    }
    fn write(&self, t: FileType, name: &str, data: &[u8]) -> Result<()> {
        self.inner.write(t, name, data)
    }
    fn remove(&self, t: FileType, name: &str) -> Result<()> {
        self.inner.remove(t, name)
    }
    fn write_file(&self, t: FileType, name: &str, path: &Path) -> Result<()> {
        self.inner.write_file(t, name, path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::mem::MemBackend;

    #[test]
    fn passes_the_conformance_suite_and_records_reads() {
        let b = RecordingBackend::new(Arc::new(MemBackend::new()));
        crate::backend::conformance::run(&b);
        let reads = b.take();
        assert!(reads.iter().any(|r| r.range == Some((2, 3))), "{reads:?}");
        assert!(b.take().is_empty());
    }
}
