//! Verifying a pack against its name, and each of its blobs against its id,
//! in bounded reads: what `check --read-data` and `repair packs` share.
//!
//! A pack is never held whole; a blob's lengths are checked against the
//! bounds of its kind before it is read. A failure of the storage is kept
//! apart from damage: a caller that would delete or drop something on damage
//! must not do so because a read failed.

use crate::error::{Error, Result};
use crate::format::blob;
use crate::format::pack::PackEntry;
use crate::id::PackId;
use crate::repo::Repository;

/// Bytes read at a time to hash a pack.
const HASH_PIECE: u64 = 8 << 20;

/// A blob's sealed bytes when they open and hash to its id, else why not.
pub type BlobVerdict = std::result::Result<Vec<u8>, String>;

/// Whether the `size` bytes of pack `id` hash to its name.
pub fn hashes_to_its_name(repo: &Repository, id: &PackId, size: u64) -> Result<bool> {
    let mut hasher = blake3::Hasher::new();
    hash_from(repo, id, size, 0, &mut hasher)?;
    Ok(hasher.finalize().as_bytes() == &id.0)
}

/// Feeds bytes `from..size` of pack `id` to `hasher`, [`HASH_PIECE`] at a
/// time: a pack can state any size, and is never held whole.
fn hash_from(
    repo: &Repository,
    id: &PackId,
    size: u64,
    from: u64,
    hasher: &mut blake3::Hasher,
) -> Result<()> {
    let mut at = from;
    while at < size {
        let n = HASH_PIECE.min(size - at);
        hasher.update(&repo.read_pack_range(id, Some(size), at, n, false)?);
        at += n;
    }
    Ok(())
}

/// The sealed bytes of blob `e` of pack `id`, read only when its lengths
/// are within the bounds of its kind (`Ok(Err(why))` otherwise, or when they
/// lie past the pack's end); `Err` is the storage's failure to read them.
fn sealed_bytes(repo: &Repository, id: &PackId, e: &PackEntry) -> Result<BlobVerdict> {
    let read = blob::check_lengths(&e.blob, e.length, e.raw_len)
        .and_then(|()| repo.read_pack_range(id, None, e.offset, e.length as u64, false));
    match read {
        Ok(s) => Ok(Ok(s)),
        Err(err @ Error::Storage { .. }) => Err(err),
        Err(err) => Ok(Err(err.to_string())),
    }
}

/// Whether `sealed` opens as blob `e` and hashes to its id.
fn opens(repo: &Repository, e: &PackEntry, sealed: Vec<u8>) -> BlobVerdict {
    // Opening checks the keyed hash too.
    match blob::open(repo.keys(), &e.blob, &sealed, e.raw_len) {
        Ok(_) => Ok(sealed),
        Err(err) => Err(err.to_string()),
    }
}

/// The sealed bytes of blob `e` of pack `id` when they open and hash to the
/// blob's id (`Ok(Ok(sealed))`), what is wrong with them (`Ok(Err(why))`),
/// or the storage's failure to read them (`Err`).
pub fn sound_blob(repo: &Repository, id: &PackId, e: &PackEntry) -> Result<BlobVerdict> {
    Ok(sealed_bytes(repo, id, e)?.and_then(|s| opens(repo, e, s)))
}

/// What reading a whole pack found: whether it hashes to its name, and a
/// verdict for each entry of its header, in the header's order.
pub struct PackReading {
    /// The pack's bytes hash to its name.
    pub hash_ok: bool,
    /// One verdict per header entry.
    pub blobs: Vec<BlobVerdict>,
}

/// Verifies pack `id` of `size` bytes whose header gave `entries`. When the
/// entries tile the blob area from offset 0 (as every writer makes them,
/// §9) and are all within bounds, each byte is read once: the blobs, hashed
/// as they are verified, then the header and trailer. Otherwise (a crafted
/// header) the pack is hashed in pieces and each blob read on its own.
pub fn read_pack(
    repo: &Repository,
    id: &PackId,
    size: u64,
    entries: &[PackEntry],
) -> Result<PackReading> {
    let tiled_end = entries
        .iter()
        .try_fold(0u64, |at, e| {
            let fits = e.offset == at && blob::check_lengths(&e.blob, e.length, e.raw_len).is_ok();
            fits.then(|| at + e.length as u64)
        })
        .filter(|&end| end <= size);
    let Some(end) = tiled_end else {
        return Ok(PackReading {
            hash_ok: hashes_to_its_name(repo, id, size)?,
            blobs: entries
                .iter()
                .map(|e| sound_blob(repo, id, e))
                .collect::<Result<_>>()?,
        });
    };
    let mut hasher = blake3::Hasher::new();
    let mut blobs = Vec::with_capacity(entries.len());
    for e in entries {
        let verdict = sealed_bytes(repo, id, e)?.and_then(|s| {
            hasher.update(&s);
            opens(repo, e, s)
        });
        blobs.push(verdict);
    }
    // The filler (format 4), header and trailer.
    hash_from(repo, id, size, end, &mut hasher)?;
    Ok(PackReading {
        hash_ok: hasher.finalize().as_bytes() == &id.0,
        blobs,
    })
}
