//! The repository's writes stop once its lock is lost.

use super::*;
use crate::format::crypto::KdfParams;

fn kdf() -> KdfParams {
    KdfParams {
        memory_kib: 1024,
        iterations: 1,
        parallelism: 1,
    }
}

fn snapshot() -> Snapshot {
    Snapshot::new(
        TreeId([3; 32]),
        "2026-11-25T03:00:00+01:00".into(),
        "web1".into(),
        vec!["/var/www".into()],
    )
}

/// A new local repository (and its cache) in a temporary directory.
fn fresh() -> (tempfile::TempDir, Repository) {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("repo");
    let repo = Repository::init(
        &root,
        &d.path().join("cache"),
        b"pw",
        &NewKey::with_kdf(kdf()),
        Chunking::default(),
    )
    .unwrap();
    (d, repo)
}

#[test]
fn a_lost_lock_stops_the_snapshot_write() {
    let (_d, repo) = fresh();
    repo.check_lock().unwrap();
    repo.lock
        .as_ref()
        .expect("a writer holds a lock")
        .mark_lost("the lock file was removed by another process");
    let e = repo.save_snapshot(&snapshot()).unwrap_err();
    assert!(matches!(e, Error::LockLost { .. }), "{e}");
    assert!(repo.backend.list(FileType::Snapshot).unwrap().is_empty());
}

#[test]
fn a_lost_lock_stops_the_pack_writer() {
    use crate::id::BlobKind;
    use crate::repo::writer::BlobWriter;
    let (_d, repo) = fresh();
    let w = BlobWriter::new(&repo);
    w.store_new(BlobKind::Data, b"written while the lock held")
        .unwrap();
    repo.lock
        .as_ref()
        .expect("a writer holds a lock")
        .mark_lost("refreshing it failed");
    // The pack already open is not put in place, and no new one is started.
    let e = w.finish().unwrap_err();
    assert!(matches!(e, Error::LockLost { .. }), "{e}");
    assert!(repo.backend.list(FileType::Pack).unwrap().is_empty());
    assert!(repo.index().packs().unwrap().is_empty());
    let w = BlobWriter::new(&repo);
    let e = w.store_new(BlobKind::Data, b"after").unwrap_err();
    assert!(matches!(e, Error::LockLost { .. }), "{e}");
}
