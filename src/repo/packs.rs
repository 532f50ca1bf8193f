//! The index against the packs: rebuilding it from the pack headers, and
//! forgetting the packs that are gone (format-spec.md §12, §16.1).

use super::{index_path, Repository};
use crate::backend::FileType;
use crate::error::{Error, Result};
use crate::format::pack;
use crate::id::{BlobRef, PackId};
use crate::index::rocks::{Access, RocksIndex};
use crate::index::{Index, PackInfo};
use rayon::prelude::*;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

impl Repository {
    /// Compares the index with the backend's listing of packs (one listing)
    /// and forgets the blobs of indexed packs that are gone or whose size
    /// changed, so that no push deduplicates against them: what its sources
    /// still have is stored again. With `add`, packs the index does not know
    /// (written from another machine, whose cache is its own, or by a push
    /// killed before it indexed them) are indexed from their headers. Writers
    /// call it when they open.
    pub(super) fn reconcile_with_packs(&mut self, add: bool) -> Result<()> {
        let listed = self.backend.list_sizes(FileType::Pack)?;
        if add {
            self.index_unknown_packs(&listed)?;
        }
        let on_disk: std::collections::HashMap<String, u64> = listed.into_iter().collect();
        let mut lost = std::collections::HashSet::new();
        for (id, info) in self.index.packs()? {
            let why = match on_disk.get(&id.to_hex()) {
                None => "is missing from the repository".to_string(),
                Some(&size) if size != info.size => format!(
                    "has {size} bytes where {} were written (truncated or replaced)",
                    info.size
                ),
                Some(_) => continue,
            };
            self.warnings.push(format!(
                "pack {id} {why}: the index forgets its {} blob(s); the next push stores again \
                 what its sources still hold; `snap check` names the snapshots that lose data",
                info.blobs
            ));
            lost.insert(id);
        }
        if lost.is_empty() {
            return Ok(());
        }
        let mut rows: std::collections::HashMap<PackId, Vec<pack::PackEntry>> =
            lost.iter().map(|id| (*id, Vec::new())).collect();
        for (blob, loc) in self.index.rows_in(&lost)? {
            rows.entry(loc.pack).or_default().push(pack::PackEntry {
                blob,
                offset: loc.offset,
                length: loc.length,
                raw_len: loc.raw_len,
            });
        }
        for (id, entries) in rows {
            self.index.remove_pack(&id, &entries)?;
        }
        self.index.sync()
    }

    /// Reads the header of one pack from the backend.
    pub fn read_pack_header(&self, id: &PackId, size: u64) -> Result<Vec<pack::PackEntry>> {
        self.header_from(id, size, &|off, len| {
            self.read_pack_range(id, Some(size), off, len, false)
        })
    }

    /// The header of pack `id` of `size` bytes, its trailer and header read
    /// with `read(offset, len)`; the header length the trailer states is
    /// bounded by the pack's size before anything is allocated for it.
    fn header_from(
        &self,
        id: &PackId,
        size: u64,
        read: &dyn Fn(u64, u64) -> Result<Vec<u8>>,
    ) -> Result<Vec<pack::PackEntry>> {
        if size < pack::TRAILER_LEN as u64 {
            return Err(Error::corrupt(
                format!("pack {id}"),
                format!("{size} bytes is too short (truncated?)"),
            ));
        }
        let tail = pack::TRAILER_LEN as u64;
        let hl = pack::decode_trailer(id, size, &read(size - tail, tail)?)? as u64;
        let sealed = read(size - tail - hl, hl)?;
        pack::decode_header(&self.keys, id, size, &sealed)
    }

    /// The packs of `listed` (a listing with sizes) the index does not know.
    pub fn unknown_packs(&self, listed: &[(String, u64)]) -> Result<Vec<(PackId, u64)>> {
        let known: std::collections::HashSet<PackId> =
            self.index.packs()?.into_iter().map(|(id, _)| id).collect();
        Ok(listed
            .iter()
            .filter_map(|(name, size)| Some((PackId::from_hex(name).ok()?, *size)))
            .filter(|(id, _)| !known.contains(id))
            .collect())
    }

    /// Indexes pack `id` of `size` bytes, whose header lists `entries`.
    pub fn add_to_index(&self, id: &PackId, size: u64, entries: &[pack::PackEntry]) -> Result<()> {
        let info = PackInfo {
            metadata: entries.first().is_some_and(|e| e.blob.kind.is_metadata()),
            blobs: entries.len() as u32,
            size,
        };
        self.index.add_pack(id, info, entries)
    }

    pub(super) fn rebuild_index_into(&self) -> Result<RebuildReport> {
        let packs = self.backend.list_sizes(FileType::Pack)?;
        // A blob in several packs (an interrupted push stored it again, or a
        // holder of the key planted other bytes under its id): which copy a
        // parallel rebuild adds last is chance, so the copies are compared
        // afterwards and the row points at one that verifies. To find them
        // without holding every entry, the first pack of each 64-bit id
        // prefix is remembered, and later packs with the same prefix noted.
        let seen: Mutex<HashMap<u64, u32>> = Mutex::default();
        let twins: Mutex<Vec<(BlobRef, u32)>> = Mutex::default();
        let results: Vec<(String, Result<()>)> = packs
            .par_iter()
            .enumerate()
            .map(|(at, (name, size))| {
                let r = (|| {
                    let id = PackId::from_hex(name)
                        .map_err(|_| Error::corrupt(format!("data/{name}"), "not a pack name"))?;
                    let entries = self.read_pack_header(&id, *size)?;
                    {
                        let mut seen = seen.lock().expect("not poisoned");
                        let mut found = Vec::new();
                        for e in &entries {
                            let prefix = u64::from_le_bytes(e.blob.id[..8].try_into().expect("8"));
                            match seen.entry(prefix) {
                                std::collections::hash_map::Entry::Vacant(v) => {
                                    v.insert(at as u32);
                                }
                                std::collections::hash_map::Entry::Occupied(o) => {
                                    found.push((e.blob, *o.get()));
                                    found.push((e.blob, at as u32));
                                }
                            }
                        }
                        twins.lock().expect("not poisoned").extend(found);
                    }
                    let metadata = entries.first().is_some_and(|e| e.blob.kind.is_metadata());
                    self.index.add_pack(
                        &id,
                        PackInfo {
                            metadata,
                            blobs: entries.len() as u32,
                            size: *size,
                        },
                        &entries,
                    )
                })();
                (name.clone(), r)
            })
            .collect();
        drop(seen);
        self.prefer_copies_that_verify(&packs, twins.into_inner().expect("not poisoned"))?;
        self.index.mark_complete()?;
        let mut report = RebuildReport::default();
        for (name, r) in results {
            match r {
                Ok(()) => report.packs += 1,
                Err(e) => report.damaged.push((name, e.to_string())),
            }
        }
        Ok(report)
    }

    /// For each blob found in more than one pack (`twins`: the blob and the
    /// position in `packs` of a pack that may hold it), keeps the index row
    /// when its copy verifies, else points it at a copy that does.
    fn prefer_copies_that_verify(
        &self,
        packs: &[(String, u64)],
        mut twins: Vec<(BlobRef, u32)>,
    ) -> Result<()> {
        twins.sort_unstable_by(|a, b| {
            (a.0.kind.to_byte(), a.0.id, a.1).cmp(&(b.0.kind.to_byte(), b.0.id, b.1))
        });
        twins.dedup();
        let mut headers: HashMap<u32, Option<Vec<pack::PackEntry>>> = HashMap::new();
        for group in twins.chunk_by(|a, b| a.0 == b.0) {
            let b = group[0].0;
            let Some(current) = self.index.get(&b)? else {
                continue; // two blobs sharing a prefix; this one's pack failed
            };
            if self.read_blob_at(&b, &current).is_ok() {
                continue;
            }
            for &(_, at) in group {
                let (name, size) = &packs[at as usize];
                let Ok(id) = PackId::from_hex(name) else {
                    continue;
                };
                if id == current.pack {
                    continue;
                }
                let entries = headers
                    .entry(at)
                    .or_insert_with(|| self.read_pack_header(&id, *size).ok());
                let Some(e) = entries.iter().flatten().find(|e| e.blob == b) else {
                    continue;
                };
                let loc = crate::index::BlobLocation {
                    pack: id,
                    offset: e.offset,
                    length: e.length,
                    raw_len: e.raw_len,
                };
                if self.read_blob_at(&b, &loc).is_ok() {
                    self.index.set_location(&b, &loc)?;
                    break;
                }
            }
        }
        Ok(())
    }

    /// Indexes the packs of `listed` the index does not know; a pack whose
    /// header cannot be read is left out with a warning (`check` and
    /// `repair` deal with it).
    fn index_unknown_packs(&mut self, listed: &[(String, u64)]) -> Result<()> {
        let unknown = self.unknown_packs(listed)?;
        for (id, size) in &unknown {
            match self.read_pack_header(id, *size) {
                Ok(entries) => self.add_to_index(id, *size, &entries)?,
                Err(e) => self.warnings.push(format!(
                    "pack {id} is not in this machine's index and its header cannot be read ({e}): left out; `snap check` says what it affects"
                )),
            }
        }
        if !unknown.is_empty() {
            self.index.sync()?;
        }
        Ok(())
    }

    /// Where `b` is: the index's answer, or for a reader whose index lacks
    /// it, the headers of the packs the index does not know (read once,
    /// on the first miss: another machine pushed since this cache last
    /// saw the repository).
    pub fn locate(&self, b: &BlobRef) -> Result<Option<crate::index::BlobLocation>> {
        if let Some(loc) = self.index.get(b)? {
            return Ok(Some(loc));
        }
        if self.visible.is_none() {
            return Ok(None);
        }
        let mut late = self.late.lock().expect("not poisoned");
        if late.is_none() {
            let listed = self.backend.list_sizes(FileType::Pack)?;
            let mut found = HashMap::new();
            for (id, size) in self.unknown_packs(&listed)? {
                let Ok(entries) = self.read_pack_header(&id, size) else {
                    continue;
                };
                for e in entries {
                    found.entry(e.blob).or_insert(crate::index::BlobLocation {
                        pack: id,
                        offset: e.offset,
                        length: e.length,
                        raw_len: e.raw_len,
                    });
                }
            }
            *late = Some(found);
        }
        Ok(late.as_ref().and_then(|m| m.get(b).copied()))
    }

    /// Stores pack `id`, whose bytes (`size` of them, already checked to
    /// hash to its name) are in the local file `path`, and indexes it from
    /// its header; a pack of that name already stored is kept. Returns its
    /// blob count.
    pub fn adopt_pack_file(&self, id: &PackId, path: &std::path::Path, size: u64) -> Result<u32> {
        use std::os::unix::fs::FileExt;
        let f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        let entries = self.header_from(id, size, &|off, len| {
            let mut buf = vec![0u8; len as usize];
            f.read_exact_at(&mut buf, off)
                .map_err(|e| Error::io(path, e))?;
            Ok(buf)
        })?;
        self.check_lock()?;
        match self.backend.write_file(FileType::Pack, &id.to_hex(), path) {
            Err(e) if e.is_already_exists() => {
                super::writer::check_existing_pack(&*self.backend, id, size)?
            }
            other => other?,
        }
        self.check_lock()?;
        self.add_to_index(id, size, &entries)?;
        Ok(entries.len() as u32)
    }

    /// Deletes the local index and rebuilds it from the pack headers.
    /// Needs an exclusive open.
    pub fn rebuild_index(&mut self) -> Result<RebuildReport> {
        self.index = Arc::new(NoIndex);
        let ipath = index_path(&self.cache);
        // This machine's own records live beside the cache: kept.
        let kept: Vec<(&str, Vec<u8>)> = super::journal::KEPT_BY_REBUILD
            .iter()
            .filter_map(|n| Some((*n, std::fs::read(ipath.join(n)).ok()?)))
            .collect();
        if ipath.exists() {
            std::fs::remove_dir_all(&ipath).map_err(|e| Error::io(&ipath, e))?;
        }
        super::create_private_dir(&ipath).map_err(|e| Error::io(&ipath, e))?;
        for (n, bytes) in kept {
            std::fs::write(ipath.join(n), bytes).map_err(|e| Error::io(ipath.join(n), e))?;
        }
        self.index = Arc::new(RocksIndex::open(
            &ipath,
            &self.config.id,
            Access::ReadWrite(Duration::from_secs(60)),
        )?);
        // The high-water mark lived in the directory just removed.
        self.restore_mark();
        self.rebuild_index_into()
    }
}

/// What a rebuild of the index found.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct RebuildReport {
    /// Packs indexed.
    pub packs: u64,
    /// Packs whose header could not be read, with the reason.
    pub damaged: Vec<(String, String)>,
}

/// Stands in while the real index is being replaced.
pub(super) struct NoIndex;

impl Index for NoIndex {
    fn get(&self, _: &BlobRef) -> Result<Option<crate::index::BlobLocation>> {
        Ok(None)
    }
    fn add_pack(&self, _: &PackId, _: PackInfo, _: &[pack::PackEntry]) -> Result<()> {
        Err(Error::Usage("the index is not open".into()))
    }
    fn packs(&self) -> Result<Vec<(PackId, PackInfo)>> {
        Ok(Vec::new())
    }
    fn pack(&self, _: &PackId) -> Result<Option<PackInfo>> {
        Ok(None)
    }
    fn sync(&self) -> Result<()> {
        Ok(())
    }
    fn is_complete(&self) -> Result<bool> {
        Ok(false)
    }
    fn mark_complete(&self) -> Result<()> {
        Err(Error::Usage("the index is not open".into()))
    }
    fn remove_pack(&self, _: &PackId, _: &[pack::PackEntry]) -> Result<()> {
        Err(Error::Usage("the index is not open".into()))
    }
    fn set_location(&self, _: &BlobRef, _: &crate::index::BlobLocation) -> Result<()> {
        Err(Error::Usage("the index is not open".into()))
    }
    fn clear_marks(&self) -> Result<()> {
        Err(Error::Usage("the index is not open".into()))
    }
    fn mark(&self, _: &[BlobRef]) -> Result<()> {
        Err(Error::Usage("the index is not open".into()))
    }
    fn is_marked(&self, _: &BlobRef) -> Result<bool> {
        Ok(false)
    }
    fn blob_totals(&self) -> Result<crate::index::BlobTotals> {
        Ok(Default::default())
    }
    fn usage(&self) -> Result<std::collections::HashMap<PackId, crate::index::PackUsage>> {
        Ok(Default::default())
    }
    fn rows_in(
        &self,
        _: &std::collections::HashSet<PackId>,
    ) -> Result<Vec<(BlobRef, crate::index::BlobLocation)>> {
        Ok(Vec::new())
    }
}
