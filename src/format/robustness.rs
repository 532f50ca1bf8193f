//! Decoders of untrusted bytes never panic: arbitrary input and bit-flipped
//! valid encodings must give an error (or, for flips outside authenticated
//! bytes, a value), never a crash, and lengths they declare never size an
//! allocation beyond the stated bounds. A stand-in for coverage-guided
//! fuzzing, which needs a nightly toolchain this project does not assume.
//! Sealed inputs are sealed with the test key, so the fuzzing reaches past
//! authentication into the decoders behind it.

use super::crypto::{KeyFile, Keys};
use super::pack::{decode_header, decode_trailer, read_header, PackBuilder};
use super::snapshot::Snapshot;
use super::tree::{decode_records, Tree};
use super::{blob, config::Config};
use crate::id::{BlobKind, BlobRef, PackId, SnapshotId, TreeId};
use proptest::prelude::*;
use std::sync::OnceLock;

fn keys() -> &'static Keys {
    static K: OnceLock<Keys> = OnceLock::new();
    K.get_or_init(Keys::generate)
}

fn sample_pack() -> Vec<u8> {
    let k = keys();
    let mut b = PackBuilder::new();
    for d in [&b"first blob"[..], &[7u8; 3000][..]] {
        let r = BlobRef {
            kind: BlobKind::Data,
            id: k.blob_id(d),
        };
        b.add(r, &blob::seal(k, &r, d, 3), d.len() as u32);
    }
    b.finish(k).1
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let k = keys();
        let id = PackId([1; 32]);
        let _ = read_header(k, &id, &data);
        let _ = decode_header(k, &id, data.len() as u64 + 12, &data);
        if data.len() >= 12 {
            let _ = decode_trailer(&id, data.len() as u64, &data[..12]);
        }
        let _ = Tree::decode(&data, &TreeId::default());
        let _ = decode_records(&data, &|| "x".into());
        let _ = Snapshot::decode(&SnapshotId(*blake3::hash(&data).as_bytes()), &data, k);
        let _ = Config::decode(&data, k);
        let _ = blob::open(k, &BlobRef { kind: BlobKind::Tree, id: [0; 32] }, &data, 10);
        let _ = ciborium::from_reader::<Tree, _>(&data[..]);
    }

    #[test]
    fn flipped_packs_are_refused_or_decoded_never_panic(pos in 0usize..4000, bit in 0u8..8, cut in 0usize..64) {
        let mut p = sample_pack();
        let i = pos % p.len();
        p[i] ^= 1 << bit;
        let id = PackId(*blake3::hash(&p).as_bytes());
        let _ = read_header(keys(), &id, &p);
        let n = p.len().saturating_sub(cut);
        let _ = read_header(keys(), &id, &p[..n]);
    }

    #[test]
    fn flipped_trees_never_panic(pos in 0usize..512, bit in 0u8..8) {
        let t = Tree::new(vec![]);
        let mut b = t.encode();
        b.extend_from_slice(&[0xa2, 0x61, 0x76, 0x01]);
        let i = pos % b.len();
        b[i] ^= 1 << bit;
        let _ = Tree::decode(&b, &TreeId::default());
    }

    #[test]
    fn large_sealed_inputs_reach_the_decoders_and_never_panic(
        data in proptest::collection::vec(any::<u8>(), 0..70_000),
        kind in 0u8..3,
        raw_len in any::<u32>(),
    ) {
        let k = keys();
        let id = blake3::hash(&data);
        let _ = Tree::decode(&data, &TreeId::default());
        let r = BlobRef { kind: BlobKind::from_byte(kind).unwrap(), id: *id.as_bytes() };
        // A validly sealed frame of random bytes, with a random declared length.
        let sealed = k.seal_parts(&[&[r.kind.to_byte()][..], &r.id].concat(), &[&[1], &data]);
        let _ = blob::open(k, &r, &sealed, raw_len);
        let _ = blob::open(k, &r, &blob::seal(k, &r, &data, 3), raw_len);
        let snap_bytes = k.seal(b"snap snapshot v1", &data);
        let _ = Snapshot::decode(&SnapshotId(*blake3::hash(&snap_bytes).as_bytes()), &snap_bytes, k);
        let _ = serde_json::from_slice::<KeyFile>(&data);
        let mut config = b"SNAPCONF".to_vec();
        config.extend_from_slice(&2u32.to_le_bytes());
        config.extend_from_slice(&k.seal(b"snap config v1", &data));
        let _ = Config::decode(&config, k);
    }

    #[test]
    fn key_files_with_random_costs_are_refused_or_opened_cheaply(
        memory_kib in any::<u32>(),
        iterations in any::<u32>(),
        parallelism in any::<u32>(),
    ) {
        let k = keys();
        let mut f = KeyFile::wrap(k, b"pw", super::crypto::KdfParams { memory_kib: 64, iterations: 1, parallelism: 1 }, 2, super::crypto::KeyInfo { label: "l".into(), created: String::new(), host: String::new(), user: String::new(), repository: crate::id::RepoId([0; 32]) }).unwrap();
        f.params = super::crypto::KdfParams { memory_kib, iterations, parallelism };
        // Only costs a test can afford are run; every other is refused
        // before Argon2id starts.
        let cheap = memory_kib <= 1024 && iterations <= 2;
        if cheap || !super::crypto::affordable(&f.params) {
            let _ = f.unwrap(b"pw", "fuzzed");
        }
    }

    #[test]
    fn pack_headers_with_random_entries_never_panic(
        entries in proptest::collection::vec((any::<u8>(), any::<u64>(), any::<u32>(), any::<u32>()), 0..300),
        count in any::<u32>(),
        pack_len in any::<u64>(),
    ) {
        let k = keys();
        let mut h = vec![1u8];
        h.extend_from_slice(&count.to_le_bytes());
        for (kind, off, len, raw) in &entries {
            h.push(*kind);
            h.extend_from_slice(&[9; 32]);
            h.extend_from_slice(&off.to_le_bytes());
            h.extend_from_slice(&len.to_le_bytes());
            h.extend_from_slice(&raw.to_le_bytes());
        }
        let sealed = k.seal(b"snap pack header v1", &h);
        let id = PackId([2; 32]);
        if let Ok(es) = decode_header(k, &id, pack_len.max(sealed.len() as u64 + 12), &sealed) {
            for e in es {
                let _ = blob::check_lengths(&e.blob, e.length, e.raw_len);
            }
        }
    }
}
