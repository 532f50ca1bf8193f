//! Repair packs: keep what can be kept of damaged and missing packs.
//!
//! Every pack is read (or only the ones named). A pack that hashes to its
//! name and whose blobs all open is healthy. From a damaged one, every blob
//! that still authenticates and hashes to its id is copied, sealed bytes as
//! they are, into new packs; the blobs that do not are dropped from the
//! index, and the damaged file is removed. A pack the index names but the
//! backend lacks has its blobs dropped from the index.
//!
//! A dropped blob is no longer found by deduplication, so the next push of a
//! source that still has the data stores it again, and every snapshot that
//! named it is whole again (ids are content hashes). `check` names the
//! snapshots and paths that stay broken.
//!
//! Order, so that an interruption loses nothing more: the salvaged blobs are
//! written and indexed first, then the dropped rows are removed from the
//! index and the index is synced, and only then are damaged files deleted.

use crate::backend::FileType;
use crate::error::Result;
use crate::format::blob;
use crate::format::pack::{read_header, PackEntry};
use crate::id::PackId;
use crate::progress::Progress;
use crate::repo::writer::BlobWriter;
use crate::repo::Repository;
use rayon::prelude::*;
use std::collections::{HashMap, HashSet};

/// What repair did to one pack.
#[derive(Clone, Debug, serde::Serialize)]
pub struct PackRepair {
    /// The pack's name.
    pub pack: String,
    /// What was wrong with it.
    pub problem: String,
    /// Blobs copied into new packs.
    pub salvaged: u64,
    /// Blobs kept elsewhere already (another copy in a healthy pack).
    pub elsewhere: u64,
    /// Blobs lost: dropped from the index.
    pub lost: u64,
    /// Whether the damaged file was removed.
    pub removed: bool,
}

/// What `repair packs` found and did.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct RepairReport {
    /// Packs examined.
    pub packs_checked: u64,
    /// The damaged or missing ones.
    pub repaired: Vec<PackRepair>,
}

/// A pack to repair: its id, what is wrong, its bytes when they could be
/// read, and its header's entries when the header could be read.
type Bad = (PackId, String, Option<Vec<u8>>, Option<Vec<PackEntry>>);

enum Verdict {
    Healthy,
    /// The file is not there (or could not be read at all); its blobs are
    /// known only from the index.
    Missing(String),
    /// Read, but damaged: what is wrong, the bytes, and the entries read
    /// from its header (None when the header is unreadable).
    Damaged(String, Vec<u8>, Option<Vec<PackEntry>>),
}

fn examine(repo: &Repository, id: &PackId, on_disk: bool) -> Result<Verdict> {
    if !on_disk {
        return Ok(Verdict::Missing(
            "is in the index but missing from the repository".into(),
        ));
    }
    let bytes = match repo.backend.read(FileType::Pack, &id.to_hex()) {
        Ok(b) => b,
        Err(e) if e.is_not_found() => {
            return Ok(Verdict::Missing("disappeared while being read".into()))
        }
        Err(e) => return Err(e),
    };
    let hash_ok = blake3::hash(&bytes).as_bytes() == &id.0;
    let entries = match read_header(repo.keys(), id, &bytes) {
        Ok(e) => e,
        Err(e) => return Ok(Verdict::Damaged(e.to_string(), bytes, None)),
    };
    let bad = entries.iter().filter(|e| !blob_ok(repo, &bytes, e)).count();
    if hash_ok && bad == 0 {
        return Ok(Verdict::Healthy);
    }
    let problem = if hash_ok {
        format!("{bad} blob(s) do not open")
    } else {
        format!(
            "contents do not hash to its name (bit rot or tampering); {bad} blob(s) do not open"
        )
    };
    Ok(Verdict::Damaged(problem, bytes, Some(entries)))
}

/// The sealed bytes of `e` in `bytes`, if they lie inside it.
fn sealed<'a>(bytes: &'a [u8], e: &PackEntry) -> Option<&'a [u8]> {
    let end = e.offset.checked_add(e.length as u64)?;
    bytes.get(e.offset as usize..usize::try_from(end).ok()?)
}

fn blob_ok(repo: &Repository, bytes: &[u8], e: &PackEntry) -> bool {
    sealed(bytes, e).is_some_and(|s| {
        blob::open(repo.keys(), &e.blob, s, e.raw_len)
            .is_ok_and(|plain| repo.keys().blob_id(&plain) == e.blob.id)
    })
}

/// Repairs the packs named in `only` (all packs when empty). The repository
/// must be open exclusively.
pub fn repair_packs(
    repo: &Repository,
    only: &[PackId],
    progress: &dyn Progress,
) -> Result<RepairReport> {
    let on_disk: HashSet<String> = repo.backend.list(FileType::Pack)?.into_iter().collect();
    let mut candidates: HashSet<PackId> = repo.index().packs()?.into_iter().map(|p| p.0).collect();
    candidates.extend(on_disk.iter().filter_map(|n| PackId::from_hex(n).ok()));
    if !only.is_empty() {
        candidates.retain(|id| only.contains(id));
    }
    let candidates: Vec<PackId> = candidates.into_iter().collect();
    let verdicts: Vec<(PackId, Result<Verdict>)> = candidates
        .par_iter()
        .map(|id| {
            let v = examine(repo, id, on_disk.contains(&id.to_hex()));
            progress.file_done();
            (*id, v)
        })
        .collect();
    let mut report = RepairReport {
        packs_checked: candidates.len() as u64,
        ..Default::default()
    };
    let mut bad: Vec<Bad> = Vec::new();
    for (id, v) in verdicts {
        match v? {
            Verdict::Healthy => {}
            Verdict::Missing(why) => bad.push((id, why, None, None)),
            Verdict::Damaged(why, bytes, entries) => bad.push((id, why, Some(bytes), entries)),
        }
    }
    if bad.is_empty() {
        return Ok(report);
    }
    // Packs whose header is unknown: their blobs are found through the index.
    let headless: HashSet<PackId> = bad.iter().filter(|b| b.3.is_none()).map(|b| b.0).collect();
    let mut rows: HashMap<PackId, Vec<PackEntry>> = HashMap::new();
    for (blob, loc) in repo.index().rows_in(&headless)? {
        rows.entry(loc.pack).or_default().push(PackEntry {
            blob,
            offset: loc.offset,
            length: loc.length,
            raw_len: loc.raw_len,
        });
    }
    let writer = BlobWriter::new(repo);
    let mut plans = Vec::new();
    for (id, problem, bytes, entries) in bad {
        let entries = entries.unwrap_or_else(|| rows.remove(&id).unwrap_or_default());
        let mut r = PackRepair {
            pack: id.to_hex(),
            problem,
            salvaged: 0,
            elsewhere: 0,
            lost: 0,
            removed: false,
        };
        for e in &entries {
            let here = repo.index().get(&e.blob)?.is_none_or(|l| l.pack == id);
            if !here {
                r.elsewhere += 1;
            } else if let Some(b) = bytes.as_deref().filter(|b| blob_ok(repo, b, e)) {
                let s = sealed(b, e).expect("checked by blob_ok");
                writer.copy_sealed(e.blob, s, e.raw_len)?;
                r.salvaged += 1;
            } else {
                r.lost += 1;
            }
        }
        plans.push((id, bytes.is_some(), entries, r));
    }
    writer.finish()?;
    for (id, _, entries, _) in &plans {
        // Rows of salvaged blobs now point to their new packs and are kept.
        repo.index().remove_pack(id, entries)?;
    }
    repo.index().sync()?;
    for (id, read, _, mut r) in plans {
        if read {
            repo.backend.remove(FileType::Pack, &id.to_hex())?;
            r.removed = true;
        }
        report.repaired.push(r);
    }
    report.repaired.sort_by(|a, b| a.pack.cmp(&b.pack));
    Ok(report)
}
