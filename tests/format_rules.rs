//! Rules of format-spec.md that readers of other implementations need
//! and that no command exercises: here, a blob body of several zstd frames
//! (§8) is one plaintext, and trailing bytes after the frames are refused.

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
fn several_zstd_frames_are_one_plaintext() {
    let keys = Keys::generate();
    let r = BlobRef {
        kind: BlobKind::Data,
        id: [7; 32],
    };
    let (a, b) = (vec![b'a'; 3000], vec![b'b'; 5000]);
    let mut body = zstd::bulk::compress(&a, 3).unwrap();
    body.extend(zstd::bulk::compress(&b, 3).unwrap());
    // A skippable frame (magic 0x184D2A50, 4-byte length, then that many bytes).
    body.extend_from_slice(&[0x50, 0x2a, 0x4d, 0x18, 2, 0, 0, 0, 0xff, 0xff]);
    let plain = blob::open(&keys, &r, &sealed(&keys, &r, &body), 8000).unwrap();
    assert_eq!(plain, [a, b].concat());

    let mut trailing = body.clone();
    trailing.extend_from_slice(b"xyz");
    assert!(blob::open(&keys, &r, &sealed(&keys, &r, &trailing), 8000).is_err());
    // A plaintext longer than the pack header says is refused, not allocated.
    assert!(blob::open(&keys, &r, &sealed(&keys, &r, &body), 7999).is_err());
}
