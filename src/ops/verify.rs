//! Verifying a pack against its name, and each of its blobs against its id,
//! in bounded reads: what `check --read-data` and `repair packs` share.
//!
//! A pack is hashed in pieces and never held whole; a blob's lengths are
//! checked against the bounds of its kind before it is read. A failure of
//! the storage is kept apart from damage: a caller that would delete or drop
//! something on damage must not do so because a read failed.

use crate::backend::FileType;
use crate::error::{Error, Result};
use crate::format::blob;
use crate::format::pack::PackEntry;
use crate::id::PackId;
use crate::repo::Repository;

/// Bytes read at a time to hash a pack.
const HASH_PIECE: u64 = 8 << 20;

/// Whether the `size` bytes of pack `id` hash to its name.
pub fn hashes_to_its_name(repo: &Repository, id: &PackId, size: u64) -> Result<bool> {
    let name = id.to_hex();
    let mut hasher = blake3::Hasher::new();
    let mut at = 0;
    while at < size {
        let n = HASH_PIECE.min(size - at);
        hasher.update(&repo.backend.read_range(FileType::Pack, &name, at, n)?);
        at += n;
    }
    Ok(hasher.finalize().as_bytes() == &id.0)
}

/// The sealed bytes of blob `e` of pack `id` when they open and hash to the
/// blob's id (`Ok(Ok(sealed))`), what is wrong with them (`Ok(Err(why))`),
/// or the storage's failure to read them (`Err`).
pub fn sound_blob(
    repo: &Repository,
    id: &PackId,
    e: &PackEntry,
) -> Result<std::result::Result<Vec<u8>, String>> {
    let read = blob::check_lengths(&e.blob, e.length, e.raw_len).and_then(|()| {
        repo.backend
            .read_range(FileType::Pack, &id.to_hex(), e.offset, e.length as u64)
    });
    let sealed = match read {
        Ok(s) => s,
        Err(err @ Error::Storage { .. }) => return Err(err),
        Err(err) => return Ok(Err(err.to_string())),
    };
    Ok(match blob::open(repo.keys(), &e.blob, &sealed, e.raw_len) {
        Ok(plain) if repo.keys().blob_id(&plain) == e.blob.id => Ok(sealed),
        Ok(_) => Err("plaintext does not hash to its id".to_string()),
        Err(err) => Err(err.to_string()),
    })
}
