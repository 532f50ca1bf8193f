//! The read rule for remote backends (format-spec.md §9.1): whoever serves
//! the packs sees the ranges read, so no read of pack data may be one
//! blob's exact range. A repository on a backend that records every request
//! pushes, restores, cats, checks and rebuilds its index; every request for
//! a pack must start on the 1 MiB grid and end on it or at the pack's end,
//! and metadata packs are read whole.

mod common;

use common::noise;
use snap::backend::mem::MemBackend;
use snap::backend::recording::{RecordingBackend, Request};
use snap::backend::{Backend, FileType};
use snap::format::config::Chunking;
use snap::format::crypto::KdfParams;
use snap::id::PackId;
use snap::ops::push::{PushOptions, Pusher};
use snap::progress::Silent;
use snap::repo::reads::GRID;
use snap::repo::{Mode, NewKey, Repository};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

const PASSWORD: &[u8] = b"read rule";

/// Checks every pack request of `reads` against the rule; returns how many
/// there were.
fn assert_rule(repo: &Repository, reads: &[Request], what: &str) -> usize {
    let sizes: HashMap<String, u64> = repo
        .backend
        .list_sizes(FileType::Pack)
        .unwrap()
        .into_iter()
        .collect();
    let metadata: HashSet<String> = repo
        .index()
        .packs()
        .unwrap()
        .into_iter()
        .filter(|(_, i)| i.metadata)
        .map(|(id, _)| id.to_hex())
        .collect();
    // Every blob's exact range, from the headers (read directly, not
    // through the rule: the list is the test's own).
    let mut exact = HashSet::new();
    for (name, size) in &sizes {
        let id = PackId::from_hex(name).unwrap();
        for e in repo.read_pack_header(&id, *size).unwrap() {
            exact.insert((name.clone(), e.offset, e.length as u64));
        }
    }
    let mut n = 0;
    for r in reads.iter().filter(|r| r.t == FileType::Pack) {
        n += 1;
        let size = sizes[&r.name];
        let (off, len) = r.range.unwrap_or((0, size));
        assert!(
            !exact.contains(&(r.name.clone(), off, len))
                || (off % GRID == 0 && (off + len) % GRID == 0),
            "{what}: a blob's exact range was asked: {r:?}"
        );
        assert_eq!(off % GRID, 0, "{what}: {r:?} does not start on the grid");
        assert!(
            (off + len) % GRID == 0 || off + len == size,
            "{what}: {r:?} ends neither on the grid nor at the end ({size})"
        );
        if metadata.contains(&r.name) {
            assert_eq!(
                (off, len),
                (0, size),
                "{what}: a metadata pack is read whole: {r:?}"
            );
        }
    }
    n
}

#[test]
fn reads_from_a_remote_backend_never_ask_for_one_blob() {
    let tmp = tempfile::tempdir().unwrap();
    let rec = Arc::new(RecordingBackend::new(Arc::new(MemBackend::new())));
    let backend: Arc<dyn Backend> = rec.clone();
    let kdf = KdfParams {
        memory_kib: 1024,
        iterations: 1,
        parallelism: 1,
    };
    let local = tmp.path().join("local");
    drop(
        Repository::init_with(
            backend.clone(),
            &local,
            PASSWORD,
            &NewKey::with_kdf(kdf),
            Chunking::default(),
        )
        .unwrap(),
    );
    // A site: many one-chunk files of different sizes (what a provider
    // would like to measure one by one), and two larger files.
    let src = tmp.path().join("site");
    for i in 0..300u64 {
        let d = src.join(format!("d{}", i % 7));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(
            d.join(format!("f{i}.php")),
            noise(i, 200 + (i as usize * 37) % 9000),
        )
        .unwrap();
    }
    std::fs::write(src.join("big.bin"), noise(1000, 5_000_000)).unwrap();
    std::fs::write(src.join("dump.sql"), noise(1001, 2_500_000)).unwrap();
    let repo = Repository::open_with(
        backend.clone(),
        &local,
        PASSWORD,
        Mode::Write,
        "t",
        Duration::ZERO,
    )
    .unwrap();
    let p = Pusher::new(
        &repo,
        PushOptions {
            host: "web1".into(),
            level: 1,
            ..Default::default()
        },
        &Silent,
    )
    .unwrap();
    let tree = p.save_paths(std::slice::from_ref(&src), None).unwrap();
    let id = p
        .commit(tree, vec![src.display().to_string()], None, None)
        .unwrap()
        .id;
    drop(repo);
    rec.take();

    let repo = Repository::open_with(
        backend.clone(),
        &local,
        PASSWORD,
        Mode::Read,
        "t",
        Duration::ZERO,
    )
    .unwrap();
    let s = repo.load_snapshot(&id).unwrap();
    let out = tmp.path().join("out");
    snap::ops::restore::restore(&repo, &s, &out, &[], &Silent).unwrap();
    for i in [0u64, 150, 299] {
        let f = out.join(format!("d{}", i % 7)).join(format!("f{i}.php"));
        assert_eq!(
            std::fs::read(f).unwrap(),
            noise(i, 200 + (i as usize * 37) % 9000)
        );
    }
    assert_eq!(
        std::fs::read(out.join("big.bin")).unwrap(),
        noise(1000, 5_000_000)
    );
    let restore_reads = rec.take();
    let n = assert_rule(&repo, &restore_reads, "restore");
    assert!(n > 0, "restore read packs");
    // Blocks are kept: the 300 small files cost a few requests, not 300.
    assert!(n < 60, "restore asked {n} times: {restore_reads:?}");

    let report = snap::ops::check::check(&repo, true, &Silent).unwrap();
    assert!(report.ok(), "{:?}", report.errors);
    let check_reads = rec.take();
    assert!(assert_rule(&repo, &check_reads, "check --read-data") > 0);
    drop(repo);

    let mut repo = Repository::open_with(
        backend.clone(),
        &local,
        PASSWORD,
        Mode::Repair,
        "t",
        Duration::ZERO,
    )
    .unwrap();
    let rebuilt = repo.rebuild_index().unwrap();
    assert!(rebuilt.packs > 0 && rebuilt.damaged.is_empty());
    let rebuild_reads = rec.take();
    assert!(assert_rule(&repo, &rebuild_reads, "repair index") > 0);
}
