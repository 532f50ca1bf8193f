//! Reading the small files of a repository (config, key files, snapshots)
//! with their size bounded before anything is allocated, and telling apart
//! the names that belong in a directory from stray ones.
//!
//! A storage provider can replace or grow any file; one planted multi-GiB
//! file must give an error naming it, not exhaust memory (format-spec.md §2.2).

use crate::backend::{Backend, FileType};
use crate::error::{Error, Result};
use crate::id::SnapshotId;
use std::path::{Path, PathBuf};

/// Largest config file: a few hundred bytes are written.
pub const MAX_CONFIG: u64 = 64 * 1024;
/// Largest key file: under a kilobyte is written.
pub const MAX_KEY_FILE: u64 = 64 * 1024;
/// Largest snapshot file: its size grows with the paths a push could not
/// read (one entry each), so the bound is generous.
pub const MAX_SNAPSHOT: u64 = 64 * 1024 * 1024;

/// Largest state file: it lists every snapshot id (about 67 bytes each).
pub const MAX_STATE: u64 = 64 * 1024 * 1024;

/// Reads `name` of type `t` whole, refusing it (with its place in the
/// repository) when it is larger than `max`.
pub fn bounded(backend: &dyn Backend, t: FileType, name: &str, max: u64) -> Result<Vec<u8>> {
    let size = backend.size(t, name)?;
    if size > max {
        return Err(Error::corrupt(
            place(t, name),
            format!("{size} bytes, more than the {max} such a file may have (planted or damaged; move it out of the repository)"),
        ));
    }
    // Read exactly the size checked: a file that grows meanwhile is not
    // read past the bound.
    backend.read_range(t, name, 0, size)
}

/// Where a file of the repository lives, for messages.
pub fn place(t: FileType, name: &str) -> String {
    match t {
        FileType::Config => "config".into(),
        FileType::Key => format!("keys/{name}"),
        FileType::Pack => format!("data/{}/{name}", name.get(..2).unwrap_or("")),
        FileType::Snapshot => format!("snapshots/{name}"),
        FileType::Lock => format!("locks/{name}"),
        FileType::Protect => format!("protected/{name}"),
        FileType::State => format!("state/{name}"),
    }
}

/// Splits the names listed in `snapshots/` or `protected/` into snapshot ids
/// and a note for each name that is not one: those are skipped, so one
/// stray file (a `README`) does not stop every command.
pub fn snapshot_names(t: FileType, names: &[String]) -> (Vec<SnapshotId>, Vec<String>) {
    let mut ids = Vec::new();
    let mut stray = Vec::new();
    for n in names {
        match SnapshotId::from_hex(n) {
            Ok(id) => ids.push(id),
            Err(_) => stray.push(format!(
                "{} is not a snapshot id: skipped (move it out of the repository)",
                place(t, n)
            )),
        }
    }
    (ids, stray)
}

/// The local file naming the key file that opened the repository last: it
/// is tried first, so key files planted with high costs are only paid for
/// when the password is not the usual one. It lives with the local index,
/// never in what is copied.
pub fn last_key_path(index: &Path) -> PathBuf {
    index.join("snap-last-key")
}

/// Key file names in the order to try them: the last one that worked
/// first, then the others in listing order.
pub fn key_order(mut names: Vec<String>, last: Option<&str>) -> Vec<String> {
    if let Some(i) = last.and_then(|l| names.iter().position(|n| n == l)) {
        let n = names.remove(i);
        names.insert(0, n);
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stray_names_are_set_aside_and_last_key_goes_first() {
        let good = "ab".repeat(32);
        let (ids, stray) = snapshot_names(FileType::Snapshot, &[good.clone(), "README".into()]);
        assert_eq!(ids.len(), 1);
        assert!(stray[0].contains("snapshots/README"), "{stray:?}");
        let order = key_order(vec!["a".into(), "b".into(), "c".into()], Some("c"));
        assert_eq!(order, ["c", "a", "b"]);
        let order = key_order(vec!["a".into(), "b".into()], Some("gone"));
        assert_eq!(order, ["a", "b"]);
    }
}
