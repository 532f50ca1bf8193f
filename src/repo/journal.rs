//! The snapshots this machine wrote: a local journal beside the index, never
//! copied with the repository (format-spec.md §16.2).
//!
//! A push reuses the chunk lists of unchanged files from its parent. A
//! holder of the password could forge a "latest" snapshot whose entries
//! carry a web shell; taking it as parent would carry the shell into every
//! later snapshot of files that did not change. A push therefore only takes
//! as parent a snapshot this machine wrote (or one named with `--parent`).

use crate::id::SnapshotId;
use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The journal's file in the index directory `index`.
pub fn path(index: &Path) -> PathBuf {
    index.join("snap-written")
}

/// The snapshots recorded in the journal of `index` (none if it is missing
/// or unreadable: a push then reads every file once).
pub fn load(index: &Path) -> HashSet<SnapshotId> {
    std::fs::read_to_string(path(index))
        .map(|text| {
            text.lines()
                .filter_map(|l| SnapshotId::from_hex(l.trim()).ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Adds `id` to the journal of `index`.
pub fn record(index: &Path, id: &SnapshotId) -> std::io::Result<()> {
    super::create_private_dir(index)?;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path(index))?;
    writeln!(f, "{}", id.to_hex())
}

/// The files of the index directory that are this machine's own record,
/// not a cache of the packs: a rebuild of the index keeps them.
pub const KEPT_BY_REBUILD: &[&str] = &["snap-written", "snap-last-key"];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_read_back_and_garbage_lines_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let index = dir.path().join("index");
        assert!(load(&index).is_empty());
        let a = SnapshotId([1; 32]);
        let b = SnapshotId([2; 32]);
        record(&index, &a).unwrap();
        std::fs::OpenOptions::new()
            .append(true)
            .open(path(&index))
            .unwrap()
            .write_all(b"not an id\n")
            .unwrap();
        record(&index, &b).unwrap();
        assert_eq!(load(&index), [a, b].into_iter().collect());
    }
}
