//! Blobs: one chunk, tree or chunk-list group, compressed then sealed.
//!
//! Plaintext framing before sealing: one byte, `0` for stored or `1` for
//! zstd, then the bytes. zstd is kept only when it saves at least 1/32 of the
//! size, so already-compressed media (JPEG, MP4, zip) is stored as is. The
//! associated data is `kind byte || id`, so a sealed blob cannot be served in
//! place of another.
//!
//! Every length the repository declares is bounded before anything is
//! allocated from it (format-spec.md §8): a blob's plaintext by
//! [`max_plaintext`] for its kind, its sealed length by the plaintext plus
//! [`MAX_FRAMING`], and zstd output by the declared length.

use crate::error::{Error, Result};
use crate::format::crypto::{Keys, SEAL_OVERHEAD};
use crate::format::tree::{GROUP_MAX, RECORD_LEN};
use crate::id::{BlobKind, BlobRef};
use std::cell::RefCell;

const STORED: u8 = 0;
const ZSTD: u8 = 1;

thread_local! {
    // Creating a zstd context costs more than compressing a 4 KiB chunk, so
    // each thread keeps one of each.
    static COMPRESSOR: RefCell<Option<(i32, zstd::bulk::Compressor<'static>)>> = const { RefCell::new(None) };
    static DECOMPRESSOR: RefCell<Option<zstd::bulk::Decompressor<'static>>> = const { RefCell::new(None) };
}

fn compress(plaintext: &[u8], level: i32) -> Option<Vec<u8>> {
    COMPRESSOR.with(|c| {
        let mut c = c.borrow_mut();
        if c.as_ref().is_none_or(|(l, _)| *l != level) {
            *c = Some((level, zstd::bulk::Compressor::new(level).ok()?));
        }
        c.as_mut()?.1.compress(plaintext).ok()
    })
}

fn decompress(body: &[u8], raw_len: usize) -> std::io::Result<Vec<u8>> {
    DECOMPRESSOR.with(|d| {
        let mut d = d.borrow_mut();
        if d.is_none() {
            *d = Some(zstd::bulk::Decompressor::new()?);
        }
        d.as_mut().expect("just set").decompress(body, raw_len)
    })
}

/// Largest data blob: the largest chunk a config may ask for.
pub const MAX_DATA: u32 = 16 * 1024 * 1024;
/// Largest tree blob: a directory of about a million entries.
pub const MAX_TREE: u32 = 256 * 1024 * 1024;
/// Largest list blob: a full group of chunk records.
pub const MAX_LIST: u32 = (GROUP_MAX * RECORD_LEN) as u32;
/// What framing and sealing add at most: zstd is kept only when it is
/// shorter than the plaintext, so a sealed blob is never longer than its
/// plaintext stored.
pub const MAX_FRAMING: u32 = 1 + SEAL_OVERHEAD as u32;

/// The largest plaintext a reader accepts for a blob of `kind`.
pub fn max_plaintext(kind: BlobKind) -> u32 {
    match kind {
        BlobKind::Data => MAX_DATA,
        BlobKind::Tree => MAX_TREE,
        BlobKind::List => MAX_LIST,
    }
}

/// Refuses declared lengths no writer produces, before they are used to
/// read or allocate: `sealed_len` bytes sealing `raw_len` of plaintext.
pub fn check_lengths(r: &BlobRef, sealed_len: u32, raw_len: u32) -> Result<()> {
    let max = max_plaintext(r.kind);
    if raw_len > max {
        return Err(Error::corrupt(
            what(r),
            format!("declares {raw_len} bytes of plaintext, more than the {max} a {:?} blob may hold (crafted or damaged pack header)", r.kind),
        ));
    }
    if sealed_len as u64 > raw_len as u64 + MAX_FRAMING as u64 {
        return Err(Error::corrupt(
            what(r),
            format!("{sealed_len} sealed bytes for {raw_len} of plaintext (crafted or damaged pack header)"),
        ));
    }
    Ok(())
}

fn what(r: &BlobRef) -> String {
    format!("{:?} blob {}", r.kind, hex::encode(r.id))
}

fn aad(r: &BlobRef) -> [u8; 33] {
    let mut a = [0u8; 33];
    a[0] = r.kind.to_byte();
    a[1..].copy_from_slice(&r.id);
    a
}

/// Compresses (when it pays) and seals a blob's plaintext.
pub fn seal(keys: &Keys, r: &BlobRef, plaintext: &[u8], zstd_level: i32) -> Vec<u8> {
    let compressed = if plaintext.len() >= 64 {
        compress(plaintext, zstd_level)
    } else {
        None
    };
    match compressed {
        Some(c) if c.len() < plaintext.len() - plaintext.len() / 32 => {
            keys.seal_parts(&aad(r), &[&[ZSTD], &c])
        }
        _ => keys.seal_parts(&aad(r), &[&[STORED], plaintext]),
    }
}

/// Opens a sealed blob; `raw_len` is its plaintext length from the pack header.
pub fn open(keys: &Keys, r: &BlobRef, sealed: &[u8], raw_len: u32) -> Result<Vec<u8>> {
    open_trying(keys, None, r, sealed, raw_len).map(|(p, _)| p)
}

/// [`open`], trying key epoch `epoch` first (see [`Keys::open_trying`]);
/// returns the epoch that opened it too.
pub fn open_trying(
    keys: &Keys,
    epoch: Option<usize>,
    r: &BlobRef,
    sealed: &[u8],
    raw_len: u32,
) -> Result<(Vec<u8>, usize)> {
    let what = || what(r);
    let sealed_len = u32::try_from(sealed.len()).unwrap_or(u32::MAX);
    check_lengths(r, sealed_len, raw_len)?;
    let (mut framed, epoch) = keys.open_trying(epoch, &aad(r), sealed, &what)?;
    let (&flag, body) = framed
        .split_first()
        .ok_or_else(|| Error::corrupt(what(), "empty frame"))?;
    let out = match flag {
        STORED => {
            // Shift out the frame byte in place rather than copy the body.
            framed.remove(0);
            framed
        }
        ZSTD => {
            // The frame states its size; one that disagrees is refused
            // before the output buffer is made.
            match zstd::zstd_safe::get_frame_content_size(body) {
                Ok(Some(n)) if n == raw_len as u64 => {}
                Ok(n) => {
                    return Err(Error::corrupt(
                        what(),
                        format!(
                            "zstd frame of {} bytes, the pack header says {raw_len}",
                            n.map_or("unstated".into(), |n| n.to_string())
                        ),
                    ))
                }
                Err(_) => return Err(Error::corrupt(what(), "not a zstd frame")),
            }
            decompress(body, raw_len as usize)
                .map_err(|e| Error::corrupt(what(), format!("zstd: {e}")))?
        }
        f => {
            return Err(Error::corrupt(
                what(),
                format!("unknown compression flag {f}"),
            ))
        }
    };
    if out.len() != raw_len as usize {
        return Err(Error::corrupt(
            what(),
            format!("{} bytes, the pack header says {raw_len}", out.len()),
        ));
    }
    // The AEAD only proves a holder of the key sealed this under this id:
    // a stolen password is enough to plant other bytes under an existing
    // chunk's id. Every read checks the keyed hash (format-spec.md §8).
    if keys.blob_id(&out) != r.id {
        return Err(Error::corrupt(what(), NOT_ITS_HASH));
    }
    Ok((out, epoch))
}

/// Why a blob that opened is refused: its plaintext is not what its id names.
pub const NOT_ITS_HASH: &str =
    "its contents do not hash to its id (planted by a holder of the key, or damaged)";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::BlobKind;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn seal_open_round_trip(data in proptest::collection::vec(any::<u8>(), 0..5000), rep in 0usize..4) {
            let k = Keys::generate();
            let mut d = data.clone();
            for _ in 0..rep { d.extend_from_slice(&data); }
            let r = BlobRef { kind: BlobKind::Data, id: k.blob_id(&d) };
            let s = seal(&k, &r, &d, 3);
            prop_assert_eq!(open(&k, &r, &s, d.len() as u32).unwrap(), d);
        }
    }

    #[test]
    fn compressible_data_shrinks_and_wrong_id_fails() {
        let k = Keys::generate();
        let d = vec![b'a'; 100_000];
        let r = BlobRef {
            kind: BlobKind::Data,
            id: k.blob_id(&d),
        };
        let s = seal(&k, &r, &d, 3);
        assert!(s.len() < 1000);
        let other = BlobRef {
            kind: BlobKind::Tree,
            id: r.id,
        };
        assert!(open(&k, &other, &s, d.len() as u32).is_err());
        assert!(open(&k, &r, &s, 5).is_err());
    }

    #[test]
    fn a_blob_sealed_under_another_plaintexts_id_is_refused() {
        // What a holder of the key can do: seal other bytes under the id of
        // an existing chunk. The seal opens; the keyed hash gives it away.
        let k = Keys::generate();
        let good = b"<?php echo 'hello';".repeat(10);
        let shell = b"<?php system($_GET['c']);".repeat(10);
        let r = BlobRef {
            kind: BlobKind::Data,
            id: k.blob_id(&good),
        };
        let planted = seal(&k, &r, &shell, 3);
        let e = open(&k, &r, &planted, shell.len() as u32).unwrap_err();
        assert!(e.to_string().contains("do not hash to its id"), "{e}");
        assert_eq!(
            open(&k, &r, &seal(&k, &r, &good, 3), good.len() as u32).unwrap(),
            good
        );
    }

    #[test]
    fn declared_lengths_are_bounded_before_allocation() {
        let k = Keys::generate();
        let d = vec![0u8; 1 << 20];
        let r = BlobRef {
            kind: BlobKind::Data,
            id: k.blob_id(&d),
        };
        let s = seal(&k, &r, &d, 3);
        assert!(s.len() < 1000);
        // The frame states 1 MiB: any other declaration is refused before
        // an output buffer is made.
        let e = open(&k, &r, &s, 1000).unwrap_err().to_string();
        assert!(e.contains("zstd frame of 1048576 bytes"), "{e}");
        let e = open(&k, &r, &s, u32::MAX).unwrap_err().to_string();
        assert!(e.contains("declares 4294967295"), "{e}");
        assert!(check_lengths(&r, 1000 + MAX_FRAMING, 1000).is_ok());
        assert!(check_lengths(&r, 1001 + MAX_FRAMING, 1000).is_err());
        let list = BlobRef {
            kind: BlobKind::List,
            id: r.id,
        };
        assert!(check_lengths(&list, 10, MAX_LIST + 1).is_err());
    }
}
