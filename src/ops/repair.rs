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
use crate::error::{Error, Result};
use crate::format::pack::PackEntry;
use crate::id::PackId;
use crate::ops::verify;
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

/// A pack to repair: its id, what is wrong, whether its file can be read
/// (and so must be removed), and its header's entries when the header could
/// be read.
type Bad = (PackId, String, bool, Option<Vec<PackEntry>>);

enum Verdict {
    Healthy,
    /// The file is not there; its blobs are known only from the index.
    Missing(String),
    /// Read, but damaged: what is wrong, and the entries of its header
    /// (None when the header is unreadable).
    Damaged(String, Option<Vec<PackEntry>>),
}

/// Reads pack `id` (of `size` bytes, None when not on the backend) in
/// bounded pieces. A storage failure stops the repair: nothing is dropped
/// or deleted because a read failed.
fn examine(repo: &Repository, id: &PackId, size: Option<u64>) -> Result<Verdict> {
    let Some(size) = size else {
        return Ok(Verdict::Missing(
            "is in the index but missing from the repository".into(),
        ));
    };
    let gone = || Verdict::Missing("disappeared while being read".into());
    let entries = match repo.read_pack_header(id, size) {
        Ok(e) => e,
        Err(e) if e.is_not_found() => return Ok(gone()),
        Err(e @ Error::Storage { .. }) => return Err(e),
        Err(e) => return Ok(Verdict::Damaged(e.to_string(), None)),
    };
    let reading = match verify::read_pack(repo, id, size, &entries) {
        Ok(r) => r,
        Err(e) if e.is_not_found() => return Ok(gone()),
        Err(e) => return Err(e),
    };
    let hash_ok = reading.hash_ok;
    let bad = reading.blobs.iter().filter(|v| v.is_err()).count();
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
    Ok(Verdict::Damaged(problem, Some(entries)))
}

/// Repairs the packs named in `only` (all packs when empty). The repository
/// must be open exclusively.
pub fn repair_packs(
    repo: &Repository,
    only: &[PackId],
    progress: &dyn Progress,
) -> Result<RepairReport> {
    let on_disk: HashMap<String, u64> = repo
        .backend
        .list_sizes(FileType::Pack)?
        .into_iter()
        .collect();
    let mut candidates: HashSet<PackId> = repo.index().packs()?.into_iter().map(|p| p.0).collect();
    candidates.extend(on_disk.keys().filter_map(|n| PackId::from_hex(n).ok()));
    if !only.is_empty() {
        candidates.retain(|id| only.contains(id));
    }
    let candidates: Vec<PackId> = candidates.into_iter().collect();
    let verdicts: Vec<(PackId, Result<Verdict>)> = candidates
        .par_iter()
        .map(|id| {
            let v = examine(repo, id, on_disk.get(&id.to_hex()).copied());
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
            Verdict::Missing(why) => bad.push((id, why, false, None)),
            Verdict::Damaged(why, entries) => bad.push((id, why, true, entries)),
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
    for (id, problem, read, entries) in bad {
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
            } else if let Some(sealed) = read
                .then(|| verify::sound_blob(repo, &id, e))
                .transpose()?
                .and_then(|v| v.ok())
            {
                // Read again here: what is copied is what was just verified.
                writer.copy_sealed(e.blob, &sealed, e.raw_len)?;
                r.salvaged += 1;
            } else {
                r.lost += 1;
            }
        }
        plans.push((id, read, entries, r));
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
