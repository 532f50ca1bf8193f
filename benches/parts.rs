//! Criterion benchmarks of the pure parts a push and a restore spend their
//! CPU in: content-defined chunking, keyed hashing of chunks, compression
//! plus sealing, and opening.
//!
//! Inputs are deterministic (seeded BLAKE3 output for incompressible data, a
//! seeded SQL-dump-like text for compressible data) and every group reports
//! `Throughput::Bytes`, so results read as MiB/s and compare across runs.
//! Sample counts are small so that `cargo bench --bench parts` stays within
//! about two minutes on two cores; pass criterion's own flags
//! (`-- --sample-size 50 --measurement-time 10`) for tighter figures.

use criterion::measurement::WallTime;
use criterion::{
    criterion_group, criterion_main, BenchmarkGroup, BenchmarkId, Criterion, Throughput,
};
use rayon::prelude::*;
use snap::format::blob;
use snap::format::chunker::Chunker;
use snap::format::config::{ChunkerParams, Chunking};
use snap::format::crypto::Keys;
use snap::id::{BlobKind, BlobRef};
use std::time::Duration;

const MIB: usize = 1024 * 1024;
/// Input of the chunking and hashing groups.
const CHUNK_INPUT: usize = 32 * MIB;
/// Input of the sealing and opening groups (zstd is the slow part).
const SEAL_INPUT: usize = 8 * MIB;
const ZSTD_LEVEL: i32 = 3;

/// `len` incompressible bytes, the same for a given seed.
fn random_bytes(len: usize, seed: &str) -> Vec<u8> {
    let mut out = vec![0u8; len];
    blake3::Hasher::new_derive_key("snap bench random bytes")
        .update(seed.as_bytes())
        .finalize_xof()
        .fill(&mut out);
    out
}

/// `len` bytes of mysqldump-like text, the same for a given seed: the kind of
/// input the db chunker and zstd see.
fn dump_text(len: usize, seed: u64) -> Vec<u8> {
    const WORDS: &[&str] = &[
        "the",
        "post",
        "content",
        "widget",
        "menu",
        "header",
        "bienvenue",
        "accueil",
        "devis",
        "boulangerie",
        "cabinet",
        "avocat",
        "location",
        "agence",
        "immobilier",
        "quartier",
        "horaires",
        "tarifs",
        "comment",
        "author",
        "option",
        "réservation",
        "séjour",
        "plugin",
    ];
    // splitmix64: a tiny seeded generator, enough for picking words.
    let mut state = seed;
    let mut next = move || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    let mut out = Vec::with_capacity(len + 4096);
    let mut row = 0u64;
    while out.len() < len {
        out.extend_from_slice(b"INSERT INTO `wp_posts` VALUES ");
        for _ in 0..200 {
            row += 1;
            let r = next();
            out.extend_from_slice(
                format!(
                    "({row},{},'2024-{:02}-{:02} 12:00:00','",
                    r % 97,
                    r % 12 + 1,
                    r % 28 + 1
                )
                .as_bytes(),
            );
            for _ in 0..(8 + next() % 60) {
                out.extend_from_slice(WORDS[(next() % WORDS.len() as u64) as usize].as_bytes());
                out.push(b' ');
            }
            out.extend_from_slice(b"','publish'),");
        }
        out.extend_from_slice(b"(0,0,'','','');\n");
    }
    out.truncate(len);
    out
}

/// Fixed keys, so the gear table (and so the chunk boundaries) never vary.
fn keys() -> Keys {
    Keys::from_master([7u8; 64])
}

/// The pieces `params` cuts `data` into.
fn pieces<'a>(data: &'a [u8], params: ChunkerParams, k: &Keys) -> Vec<&'a [u8]> {
    let c = Chunker::new(params, k.gear());
    let mut out = Vec::new();
    let mut pos = 0;
    for n in c.lengths(data) {
        out.push(&data[pos..pos + n]);
        pos += n;
    }
    out
}

fn short<'a>(c: &'a mut Criterion, name: &str) -> BenchmarkGroup<'a, WallTime> {
    let mut g = c.benchmark_group(name);
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    g
}

fn chunking(c: &mut Criterion) {
    let k = keys();
    let defaults = Chunking::default();
    let random = random_bytes(CHUNK_INPUT, "chunking");
    let text = dump_text(CHUNK_INPUT, 1);
    let mut g = short(c, "chunking");
    g.throughput(Throughput::Bytes(CHUNK_INPUT as u64));
    for (kind, params) in [("files", defaults.files), ("db", defaults.db)] {
        let chunker = Chunker::new(params, k.gear());
        for (input, data) in [("random", &random), ("dump", &text)] {
            g.bench_with_input(BenchmarkId::new(kind, input), data.as_slice(), |b, d| {
                b.iter(|| chunker.lengths(d).len())
            });
        }
    }
    g.finish();
}

fn hashing(c: &mut Criterion) {
    let k = keys();
    let defaults = Chunking::default();
    let data = random_bytes(CHUNK_INPUT, "hashing");
    let mut g = short(c, "blob_id");
    g.throughput(Throughput::Bytes(CHUNK_INPUT as u64));
    for (kind, params) in [("files", defaults.files), ("db", defaults.db)] {
        let ps = pieces(&data, params, &k);
        g.bench_with_input(BenchmarkId::new("serial", kind), &ps, |b, ps| {
            b.iter(|| ps.iter().map(|p| k.blob_id(p)[0] as u64).sum::<u64>())
        });
        g.bench_with_input(BenchmarkId::new("rayon", kind), &ps, |b, ps| {
            b.iter(|| ps.par_iter().map(|p| k.blob_id(p)[0] as u64).sum::<u64>())
        });
    }
    g.finish();
}

/// Sealed pieces of `data` with their refs and plaintext lengths.
fn sealed(k: &Keys, ps: &[&[u8]]) -> Vec<(BlobRef, Vec<u8>, u32)> {
    ps.iter()
        .map(|p| {
            let r = BlobRef {
                kind: BlobKind::Data,
                id: k.blob_id(p),
            };
            (r, blob::seal(k, &r, p, ZSTD_LEVEL), p.len() as u32)
        })
        .collect()
}

fn sealing(c: &mut Criterion) {
    let k = keys();
    let defaults = Chunking::default();
    let text = dump_text(SEAL_INPUT, 2);
    let random = random_bytes(SEAL_INPUT, "sealing");
    let cases = [
        ("text-db", pieces(&text, defaults.db, &k)),
        ("text-files", pieces(&text, defaults.files, &k)),
        ("random-files", pieces(&random, defaults.files, &k)),
    ];
    let mut g = short(c, "seal");
    g.throughput(Throughput::Bytes(SEAL_INPUT as u64));
    for (name, ps) in &cases {
        let refs: Vec<BlobRef> = ps
            .iter()
            .map(|p| BlobRef {
                kind: BlobKind::Data,
                id: k.blob_id(p),
            })
            .collect();
        g.bench_with_input(BenchmarkId::new("serial", name), ps, |b, ps| {
            b.iter(|| {
                ps.iter()
                    .zip(&refs)
                    .map(|(p, r)| blob::seal(&k, r, p, ZSTD_LEVEL).len())
                    .sum::<usize>()
            })
        });
        g.bench_with_input(BenchmarkId::new("rayon", name), ps, |b, ps| {
            b.iter(|| {
                ps.par_iter()
                    .zip(&refs)
                    .map(|(p, r)| blob::seal(&k, r, p, ZSTD_LEVEL).len())
                    .sum::<usize>()
            })
        });
    }
    g.finish();

    let mut g = short(c, "open");
    g.throughput(Throughput::Bytes(SEAL_INPUT as u64));
    for (name, ps) in &cases {
        let blobs = sealed(&k, ps);
        g.bench_with_input(BenchmarkId::new("serial", name), &blobs, |b, blobs| {
            b.iter(|| {
                blobs
                    .iter()
                    .map(|(r, s, n)| blob::open(&k, r, s, *n).expect("opens").len())
                    .sum::<usize>()
            })
        });
    }
    g.finish();
}

criterion_group!(benches, chunking, hashing, sealing);
criterion_main!(benches);
