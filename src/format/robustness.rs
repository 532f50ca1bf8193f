//! Decoders of untrusted bytes never panic: arbitrary input and bit-flipped
//! valid encodings must give an error (or, for flips outside authenticated
//! bytes, a value), never a crash. A stand-in for coverage-guided fuzzing,
//! which needs a nightly toolchain this project does not assume.

use super::crypto::Keys;
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
}
