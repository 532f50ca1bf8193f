//! The shared read cache: random access into a file loads only what covers
//! the range, and every byte read back is the byte pushed.

mod common;

use common::noise;
use snap::backend::mem::MemBackend;
use snap::backend::Backend;
use snap::format::config::Chunking;
use snap::format::crypto::KdfParams;
use snap::format::tree::Content;
use snap::ops::cache::ReadCache;
use snap::ops::push::{PushOptions, Pusher};
use snap::progress::Silent;
use snap::repo::{Mode, NewKey, Repository};
use std::sync::Arc;
use std::time::Duration;

const PASSWORD: &[u8] = b"cache test";

/// A repository in memory holding one dump of `dump` bytes; returns it open
/// for reading, and the dump's entry.
fn repo_with_dump(dump: &[u8]) -> (tempfile::TempDir, Repository, snap::format::tree::Node) {
    let tmp = tempfile::tempdir().unwrap();
    let backend: Arc<dyn Backend> = Arc::new(MemBackend::new());
    let cache = tmp.path().join("cache");
    let kdf = KdfParams {
        memory_kib: 1024,
        iterations: 1,
        parallelism: 1,
    };
    drop(
        Repository::init_with(
            backend.clone(),
            &cache,
            PASSWORD,
            &NewKey::with_kdf(kdf),
            Chunking::default(),
        )
        .unwrap(),
    );
    let repo = Repository::open_with(
        backend.clone(),
        &cache,
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
            kind: Some(snap::format::snapshot::Kind::Db),
            ..Default::default()
        },
        &Silent,
    )
    .unwrap();
    let tree = p.save_stream("dump.sql", dump).unwrap();
    let id = p
        .commit(tree, vec!["dump.sql".into()], None, None)
        .unwrap()
        .id;
    drop(repo);
    let repo =
        Repository::open_with(backend, &cache, PASSWORD, Mode::Read, "t", Duration::ZERO).unwrap();
    let s = repo.load_snapshot(&id).unwrap();
    let node = snap::ops::read::find_node(&repo, &s, &id.short(), b"dump.sql")
        .unwrap()
        .expect("the dump");
    (tmp, repo, node)
}

#[test]
fn any_range_reads_back_the_pushed_bytes_and_only_what_covers_it() {
    let dump = noise(7, 24 * 1024 * 1024 + 12345);
    let (_tmp, repo, node) = repo_with_dump(&dump);
    let groups = match node.content.as_ref().unwrap() {
        Content::Groups(gs) => gs.len(),
        Content::Inline(_) => 1,
    };
    assert!(groups > 4, "a dump this size has several groups: {groups}");

    // The last MiB, through a fresh cache: one group, the chunks of one MiB
    // (about 256 of 4 KiB), nothing of the rest of the 24 MiB.
    let cache = ReadCache::new(64 << 20);
    let r = cache.file(&node).unwrap();
    assert_eq!(r.size(), dump.len() as u64);
    let from = dump.len() as u64 - (1 << 20);
    assert_eq!(
        r.read_at(&cache, &repo, from, 1 << 20).unwrap(),
        &dump[from as usize..]
    );
    let loaded = cache.stats().misses;
    let chunks = r.chunks(&cache, &repo, from, 1 << 20).unwrap().len() as u64;
    assert!(
        loaded <= chunks + 2,
        "reading the last MiB loaded {loaded} blobs for {chunks} chunks"
    );
    assert!(loaded < 600, "{loaded} blobs for one MiB of a 24 MiB dump");

    // Ranges at chunk and group edges, across them, past the end, empty.
    let len = dump.len() as u64;
    let mut state = 1u64;
    let mut next = || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        state >> 33
    };
    for _ in 0..200 {
        let off = next() % (len + 10);
        let n = next() % 300_000;
        let want = &dump[(off.min(len) as usize)..((off + n).min(len) as usize)];
        assert_eq!(r.read_at(&cache, &repo, off, n).unwrap(), want, "{off}+{n}");
    }
    assert!(r.read_at(&cache, &repo, len, 10).unwrap().is_empty());
    assert!(r.read_at(&cache, &repo, 5, 0).unwrap().is_empty());
    // The bound holds.
    assert!(cache.stats().held <= 64 << 20);

    // Read twice, the second read is answered from memory.
    let before = cache.stats();
    r.read_at(&cache, &repo, 1000, 100_000).unwrap();
    r.read_at(&cache, &repo, 1000, 100_000).unwrap();
    let after = cache.stats();
    assert!(after.hits > before.hits);
}

#[test]
fn a_small_cache_still_reads_everything_right() {
    let dump = noise(8, 3 * 1024 * 1024 + 7);
    let (_tmp, repo, node) = repo_with_dump(&dump);
    let cache = ReadCache::new(16 * 1024);
    let r = cache.file(&node).unwrap();
    let mut got = Vec::new();
    let mut off = 0;
    while off < dump.len() as u64 {
        got.extend(r.read_at(&cache, &repo, off, 131_072).unwrap());
        off += 131_072;
    }
    assert_eq!(got, dump);
    assert!(cache.stats().held <= 16 * 1024);
}
