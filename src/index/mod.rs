//! The index: where each blob lives. A cache of what pack headers say.
//!
//! Nothing is in the index that is not in a pack on the backend; a lost or
//! damaged index is rebuilt from the packs (`snap repair index`).

pub mod rocks;

use crate::error::Result;
use crate::format::pack::PackEntry;
use crate::id::{BlobRef, PackId};

/// Where a blob is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlobLocation {
    /// The pack.
    pub pack: PackId,
    /// Offset of the sealed blob in the pack.
    pub offset: u64,
    /// Sealed length.
    pub length: u32,
    /// Plaintext length.
    pub raw_len: u32,
}

/// What the index records about a pack.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PackInfo {
    /// Holds trees and chunk lists rather than file data.
    pub metadata: bool,
    /// Number of blobs.
    pub blobs: u32,
    /// Size of the pack file.
    pub size: u64,
}

/// How much of a pack the marked blobs use.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PackUsage {
    /// Blobs in use.
    pub used_blobs: u64,
    /// Their sealed bytes.
    pub used_bytes: u64,
    /// Blobs no longer used (or whose row points to another copy).
    pub unused_blobs: u64,
    /// Their sealed bytes.
    pub unused_bytes: u64,
}

/// Blobs of one sort (file data, or trees and chunk lists) the index holds,
/// one row per blob: a blob stored twice counts once.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct BlobSum {
    /// Blobs.
    pub blobs: u64,
    /// Their plaintext bytes (before compression).
    pub raw_bytes: u64,
    /// Their sealed bytes in packs (compressed, encrypted).
    pub sealed_bytes: u64,
}

/// What the index holds, summed in one pass.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct BlobTotals {
    /// File contents.
    pub data: BlobSum,
    /// Trees and chunk lists.
    pub metadata: BlobSum,
}

/// Lookups and updates of blob locations.
pub trait Index: Send + Sync {
    /// Where `b` is.
    fn get(&self, b: &BlobRef) -> Result<Option<BlobLocation>>;
    /// Whether `b` is stored.
    fn contains(&self, b: &BlobRef) -> Result<bool> {
        Ok(self.get(b)?.is_some())
    }
    /// Records a pack and all its blobs, atomically.
    fn add_pack(&self, pack: &PackId, info: PackInfo, entries: &[PackEntry]) -> Result<()>;
    /// What the index records about one pack.
    fn pack(&self, id: &PackId) -> Result<Option<PackInfo>>;
    /// All packs the index knows.
    fn packs(&self) -> Result<Vec<(PackId, PackInfo)>>;
    /// Makes everything added so far durable.
    fn sync(&self) -> Result<()>;
    /// Whether the index holds every pack (a rebuild ran to its end).
    fn is_complete(&self) -> Result<bool>;
    /// Records, durably, that the index holds every pack.
    fn mark_complete(&self) -> Result<()>;
    /// Points `b`'s row at another copy of it (a pack the index holds).
    fn set_location(&self, b: &BlobRef, loc: &BlobLocation) -> Result<()>;
    /// Removes a pack and the blob rows that point into it (rows of blobs
    /// since stored elsewhere are left), atomically.
    fn remove_pack(&self, pack: &PackId, entries: &[PackEntry]) -> Result<()>;
    /// Forgets every mark (the set of blobs a prune found in use).
    fn clear_marks(&self) -> Result<()>;
    /// Marks blobs as in use.
    fn mark(&self, blobs: &[BlobRef]) -> Result<()>;
    /// Whether a blob is marked.
    fn is_marked(&self, b: &BlobRef) -> Result<bool>;
    /// For every pack the index knows, how much of it is marked, in one pass
    /// over the index (nothing per blob is held in memory).
    fn usage(&self) -> Result<std::collections::HashMap<PackId, PackUsage>>;
    /// Every blob row summed by sort, in one pass over the index (nothing
    /// per blob is held in memory).
    fn blob_totals(&self) -> Result<BlobTotals>;
    /// The blob rows that point into any of `packs`, in one pass over the
    /// index (for packs whose header cannot be read: missing or damaged).
    fn rows_in(
        &self,
        packs: &std::collections::HashSet<PackId>,
    ) -> Result<Vec<(BlobRef, BlobLocation)>>;
}
