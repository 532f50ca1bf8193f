//! Private temporary directories (mode 0700), removed when dropped: the
//! index of a read-only repository, a reader's RocksDB logs.

use crate::error::{IoContext, Result};
use std::path::{Path, PathBuf};

/// A private directory under the temporary directory, removed on drop.
pub struct ScratchDir {
    path: PathBuf,
}

impl ScratchDir {
    /// Creates one (mode 0700).
    pub fn new() -> Result<ScratchDir> {
        use std::os::unix::fs::DirBuilderExt;
        let base = std::env::temp_dir();
        let path = base.join(format!(
            "snap-{}-{:016x}",
            std::process::id(),
            rand::random::<u64>()
        ));
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&path)
            .at(&path)?;
        Ok(ScratchDir { path })
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}
