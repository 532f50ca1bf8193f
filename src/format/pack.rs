//! Packs: immutable files of sealed blobs followed by a sealed header that
//! lists them, so a pack describes itself and the index can be rebuilt from
//! packs alone.
//!
//! Layout: `blob* || sealed header || header length (u32 LE) || "SNAPPAK" || version (u8)`.
//! Header plaintext: version (u8) || count (u32 LE) || count × entry, where an
//! entry is kind (u8) || id (32) || offset (u64 LE) || sealed length (u32 LE)
//! || plaintext length (u32 LE). A pack's name is the unkeyed BLAKE3 hash of
//! all its bytes, so anyone can verify a copy without the key.

use crate::error::{Error, Result};
use crate::format::crypto::Keys;
use crate::format::pad;
use crate::id::{BlobKind, BlobRef, PackId};

/// Pack format version (the trailer's last byte, and the header version of
/// unpadded headers).
pub const PACK_VERSION: u8 = 1;
/// Header version of a padded header (format version 4): the entries are
/// followed by zeros up to the header's padded length.
pub const PADDED_HEADER_VERSION: u8 = 2;
/// Length of the clear trailer.
pub const TRAILER_LEN: usize = 12;
/// Longest sealed header a reader accepts (about 1.3 million entries): the
/// length in the trailer is checked against it before the header is read.
pub const MAX_HEADER_LEN: u32 = 64 * 1024 * 1024;
const MAGIC: &[u8; 7] = b"SNAPPAK";
const ENTRY_LEN: usize = 1 + 32 + 8 + 4 + 4;
/// The most blobs a writer puts in one pack, so that its header stays well
/// under [`MAX_HEADER_LEN`] (sealing and framing add a few bytes).
pub const MAX_ENTRIES: usize = (MAX_HEADER_LEN as usize - 4096) / ENTRY_LEN;
const HEADER_AAD: &[u8] = b"snap pack header v1";

/// One blob's place in a pack.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PackEntry {
    /// Kind and id.
    pub blob: BlobRef,
    /// Offset of the sealed blob from the start of the pack.
    pub offset: u64,
    /// Length of the sealed blob.
    pub length: u32,
    /// Length of the plaintext.
    pub raw_len: u32,
}

/// Builds a pack in memory: the pure part of the packer.
#[derive(Default)]
pub struct PackBuilder {
    bytes: Vec<u8>,
    entries: Vec<PackEntry>,
}

impl PackBuilder {
    /// An empty pack.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a sealed blob.
    pub fn add(&mut self, blob: BlobRef, sealed: &[u8], raw_len: u32) {
        self.entries.push(PackEntry {
            blob,
            offset: self.bytes.len() as u64,
            length: sealed.len() as u32,
            raw_len,
        });
        self.bytes.extend_from_slice(sealed);
    }

    /// Bytes of blobs so far.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// True when no blob was added.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Seals the header, appends it and the trailer; returns the pack's id,
    /// bytes and entries.
    pub fn finish(mut self, keys: &Keys) -> (PackId, Vec<u8>, Vec<PackEntry>) {
        self.bytes
            .extend_from_slice(&encode_tail(keys, &self.entries));
        let id = PackId(*blake3::hash(&self.bytes).as_bytes());
        (id, self.bytes, self.entries)
    }
}

/// What follows the blobs of a pack: the sealed header listing `entries`,
/// its length, the magic and the version.
pub fn encode_tail(keys: &Keys, entries: &[PackEntry]) -> Vec<u8> {
    seal_tail(keys, &encode_header(entries))
}

/// The tail of a padded pack (format version 4, format-spec.md §9.2) whose
/// blobs take `blobs_len` bytes: the number of random filler bytes to write
/// after the blobs, and the tail. The header plaintext (version 2) is
/// padded with zeros to its Padmé size, and the filler brings the whole
/// pack to its Padmé size of at least [`pad::PACK_FLOOR`], so neither the
/// number of blobs nor their total size shows.
pub fn encode_padded_tail(keys: &Keys, entries: &[PackEntry], blobs_len: u64) -> (u64, Vec<u8>) {
    let mut h = encode_header(entries);
    h[0] = PADDED_HEADER_VERSION;
    h.resize(pad::padded(h.len() as u64, pad::SMALL_FLOOR) as usize, 0);
    let tail = seal_tail(keys, &h);
    let unpadded = blobs_len + tail.len() as u64;
    (pad::padded(unpadded, pad::PACK_FLOOR) - unpadded, tail)
}

fn seal_tail(keys: &Keys, header_plain: &[u8]) -> Vec<u8> {
    let header = keys.seal(HEADER_AAD, header_plain);
    let mut out = Vec::with_capacity(header.len() + TRAILER_LEN);
    out.extend_from_slice(&header);
    out.extend_from_slice(&(header.len() as u32).to_le_bytes());
    out.extend_from_slice(MAGIC);
    out.push(PACK_VERSION);
    out
}

fn encode_header(entries: &[PackEntry]) -> Vec<u8> {
    let mut h = Vec::with_capacity(5 + entries.len() * ENTRY_LEN);
    h.push(PACK_VERSION);
    h.extend_from_slice(&(entries.len() as u32).to_le_bytes());
    for e in entries {
        h.push(e.blob.kind.to_byte());
        h.extend_from_slice(&e.blob.id);
        h.extend_from_slice(&e.offset.to_le_bytes());
        h.extend_from_slice(&e.length.to_le_bytes());
        h.extend_from_slice(&e.raw_len.to_le_bytes());
    }
    h
}

/// Reads the trailer; returns the sealed header's length.
pub fn decode_trailer(pack: &PackId, pack_len: u64, trailer: &[u8]) -> Result<u32> {
    let what = || format!("pack {pack}");
    if trailer.len() != TRAILER_LEN || pack_len < TRAILER_LEN as u64 {
        return Err(Error::corrupt(
            what(),
            "too short to hold a trailer (truncated?)",
        ));
    }
    if &trailer[4..11] != MAGIC {
        return Err(Error::corrupt(
            what(),
            "no SNAPPAK trailer (truncated or overwritten)",
        ));
    }
    if trailer[11] != PACK_VERSION {
        return Err(Error::UnsupportedVersion {
            what: what(),
            found: trailer[11] as u32,
            supported: PACK_VERSION as u32,
        });
    }
    let len = u32::from_le_bytes(trailer[..4].try_into().expect("4 bytes"));
    if len > MAX_HEADER_LEN {
        return Err(Error::corrupt(
            what(),
            format!("header length {len} is over the {MAX_HEADER_LEN} a reader accepts (crafted or damaged trailer)"),
        ));
    }
    if len as u64 + TRAILER_LEN as u64 > pack_len {
        return Err(Error::corrupt(
            what(),
            format!("header length {len} exceeds the pack's {pack_len} bytes"),
        ));
    }
    Ok(len)
}

/// Opens and decodes a sealed header; checks every entry lies before it.
pub fn decode_header(
    keys: &Keys,
    pack: &PackId,
    pack_len: u64,
    sealed: &[u8],
) -> Result<Vec<PackEntry>> {
    let what = || format!("pack {pack} header");
    let h = keys.open(HEADER_AAD, sealed, &what)?;
    if h.len() < 5 {
        return Err(Error::corrupt(what(), "too short"));
    }
    let padded = match h[0] {
        PACK_VERSION => false,
        PADDED_HEADER_VERSION => true,
        v => {
            return Err(Error::UnsupportedVersion {
                what: what(),
                found: v as u32,
                supported: PADDED_HEADER_VERSION as u32,
            })
        }
    };
    let count = u32::from_le_bytes(h[1..5].try_into().expect("4 bytes")) as usize;
    let needed = count
        .checked_mul(ENTRY_LEN)
        .and_then(|n| n.checked_add(5))
        .unwrap_or(usize::MAX);
    if h.len() != needed && !(padded && h.len() > needed) {
        return Err(Error::corrupt(
            what(),
            format!("{} bytes for {count} entries", h.len()),
        ));
    }
    let h = &h[..needed];
    let blobs_end = pack_len - TRAILER_LEN as u64 - sealed.len() as u64;
    let mut out = Vec::with_capacity(count);
    for e in h[5..].chunks_exact(ENTRY_LEN) {
        let kind = BlobKind::from_byte(e[0])
            .ok_or_else(|| Error::corrupt(what(), format!("unknown blob kind {}", e[0])))?;
        let id: [u8; 32] = e[1..33].try_into().expect("32 bytes");
        let offset = u64::from_le_bytes(e[33..41].try_into().expect("8 bytes"));
        let length = u32::from_le_bytes(e[41..45].try_into().expect("4 bytes"));
        let raw_len = u32::from_le_bytes(e[45..49].try_into().expect("4 bytes"));
        if offset
            .checked_add(length as u64)
            .is_none_or(|end| end > blobs_end)
        {
            return Err(Error::corrupt(
                what(),
                format!("entry at offset {offset} runs past the blobs"),
            ));
        }
        out.push(PackEntry {
            blob: BlobRef { kind, id },
            offset,
            length,
            raw_len,
        });
    }
    Ok(out)
}

/// Decodes a whole pack's header from its complete bytes.
pub fn read_header(keys: &Keys, pack: &PackId, bytes: &[u8]) -> Result<Vec<PackEntry>> {
    let n = bytes.len() as u64;
    if bytes.len() < TRAILER_LEN {
        return Err(Error::corrupt(
            format!("pack {pack}"),
            "too short to hold a trailer (truncated?)",
        ));
    }
    let hl = decode_trailer(pack, n, &bytes[bytes.len() - TRAILER_LEN..])? as usize;
    let start = bytes.len() - TRAILER_LEN - hl;
    decode_header(keys, pack, n, &bytes[start..bytes.len() - TRAILER_LEN])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::blob;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        #[test]
        fn pack_round_trip(blobs in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..3000), 0..20)) {
            let k = Keys::generate();
            let mut b = PackBuilder::new();
            for d in &blobs {
                let r = BlobRef { kind: BlobKind::Data, id: k.blob_id(d) };
                b.add(r, &blob::seal(&k, &r, d, 3), d.len() as u32);
            }
            let (id, bytes, entries) = b.finish(&k);
            prop_assert_eq!(id, PackId(*blake3::hash(&bytes).as_bytes()));
            let back = read_header(&k, &id, &bytes).unwrap();
            prop_assert_eq!(&back, &entries);
            for (e, d) in back.iter().zip(&blobs) {
                let s = &bytes[e.offset as usize..(e.offset + e.length as u64) as usize];
                prop_assert_eq!(&blob::open(&k, &e.blob, s, e.raw_len).unwrap(), d);
            }
        }
    }

    #[test]
    fn truncated_and_flipped_packs_are_refused() {
        let k = Keys::generate();
        let mut b = PackBuilder::new();
        let r = BlobRef {
            kind: BlobKind::Data,
            id: k.blob_id(b"x"),
        };
        b.add(r, &blob::seal(&k, &r, b"x", 3), 1);
        let (id, bytes, _) = b.finish(&k);
        assert!(read_header(&k, &id, &bytes[..bytes.len() - 1]).is_err());
        assert!(read_header(&k, &id, &bytes[..5]).is_err());
        let mut f = bytes.clone();
        let n = f.len();
        f[n - 20] ^= 0x10;
        assert!(read_header(&k, &id, &f).is_err());
        let mut h = bytes.clone();
        h[n - 12..n - 8].copy_from_slice(&(MAX_HEADER_LEN + 1).to_le_bytes());
        let e = decode_trailer(&id, u64::MAX, &h[n - 12..]).unwrap_err();
        assert!(e.to_string().contains("over the"), "{e}");
        let mut v = bytes.clone();
        v[n - 1] = 9;
        assert!(matches!(
            read_header(&k, &id, &v),
            Err(Error::UnsupportedVersion { .. })
        ));
    }
}
