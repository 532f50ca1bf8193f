//! Blobs: one chunk, tree or chunk-list group, compressed then sealed.
//!
//! Plaintext framing before sealing: one byte, `0` for stored or `1` for
//! zstd, then the bytes. zstd is kept only when it saves at least 1/32 of the
//! size, so already-compressed media (JPEG, MP4, zip) is stored as is. The
//! associated data is `kind byte || id`, so a sealed blob cannot be served in
//! place of another.

use crate::error::{Error, Result};
use crate::format::crypto::Keys;
use crate::id::BlobRef;
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
    let what = || format!("{:?} blob {}", r.kind, hex::encode(r.id));
    let mut framed = keys.open(&aad(r), sealed, &what)?;
    let (&flag, body) = framed
        .split_first()
        .ok_or_else(|| Error::corrupt(what(), "empty frame"))?;
    let out = match flag {
        STORED => {
            // Shift out the frame byte in place rather than copy the body.
            framed.remove(0);
            framed
        }
        ZSTD => decompress(body, raw_len as usize)
            .map_err(|e| Error::corrupt(what(), format!("zstd: {e}")))?,
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
    Ok(out)
}

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
}
