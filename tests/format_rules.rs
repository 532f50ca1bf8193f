//! Rules of format-spec.md that readers of other implementations need and
//! that no command exercises: a blob body is one zstd frame that states its
//! content size (§8); several frames, trailing bytes and a size that
//! disagrees with the pack header are refused before anything is allocated.

use snap::format::blob;
use snap::format::crypto::Keys;
use snap::id::{BlobKind, BlobRef};

fn sealed(keys: &Keys, r: &BlobRef, body: &[u8]) -> Vec<u8> {
    let mut aad = vec![r.kind.to_byte()];
    aad.extend_from_slice(&r.id);
    let mut frame = vec![1u8];
    frame.extend_from_slice(body);
    keys.seal(&aad, &frame)
}

#[test]
fn a_blob_is_one_zstd_frame_of_the_recorded_size() {
    let keys = Keys::generate();
    let (a, b) = (vec![b'a'; 3000], vec![b'b'; 5000]);
    let r = BlobRef {
        kind: BlobKind::Data,
        id: keys.blob_id(&[a.clone(), b.clone()].concat()),
    };
    let whole = zstd::bulk::compress(&[a.clone(), b.clone()].concat(), 3).unwrap();
    let plain = blob::open(&keys, &r, &sealed(&keys, &r, &whole), 8000).unwrap();
    assert_eq!(plain, [a.clone(), b.clone()].concat());

    // Two frames: the first states 3000 bytes where 8000 are recorded.
    let mut two = zstd::bulk::compress(&a, 3).unwrap();
    two.extend(zstd::bulk::compress(&b, 3).unwrap());
    let e = blob::open(&keys, &r, &sealed(&keys, &r, &two), 8000).unwrap_err();
    assert!(e.to_string().contains("3000"), "{e}");

    let mut trailing = whole.clone();
    trailing.extend_from_slice(b"xyz");
    assert!(blob::open(&keys, &r, &sealed(&keys, &r, &trailing), 8000).is_err());
    // A plaintext longer than the pack header says is refused, not allocated.
    assert!(blob::open(&keys, &r, &sealed(&keys, &r, &whole), 7999).is_err());
}
