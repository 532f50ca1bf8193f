//! How operations report progress and problems without knowing about terminals.

/// Receives progress from an operation. Every method has a no-op default.
pub trait Progress: Sync {
    /// Bytes of source read (push) or written (restore).
    fn bytes(&self, _n: u64) {}
    /// One more file handled.
    fn file_done(&self) {}
    /// A problem with one path that did not stop the operation.
    fn warn(&self, _path: &str, _message: &str) {}
    /// Something the user should know, not tied to a path.
    fn note(&self, _message: &str) {}
}

/// Reports nothing.
pub struct Silent;

impl Progress for Silent {}
