//! The blob writer: deduplicates, seals and packs blobs.
//!
//! Sealed blobs are appended straight to a staged pack file (hashed as they
//! go), so a pack never sits in memory. A full pack goes to a background
//! thread that appends the header, syncs the file, puts it in place and
//! indexes it, while pushing goes on into the next pack.
//!
//! Write order for every pack: the pack file is written, its size checked,
//! synced and renamed into place, then its entries go into the index in one
//! batch, then its blobs leave the pending set. So the index never names a
//! pack that is not complete and durable on the backend.
//!
//! Any failure of the storage (ENOSPC, EIO, a short write, a failed sync or
//! rename) poisons the writer: the pack being written is discarded, and
//! every later call, and [`BlobWriter::finish`], returns the error. A blob
//! that was pending when the writer failed was never stored, so the caller
//! (a push, a prune) must stop and record nothing that references it.

use crate::backend::{Backend, FileType};
use crate::error::{Error, Result};
use crate::format::blob;
use crate::format::crypto::Keys;
use crate::format::pack::{encode_padded_tail, encode_tail, PackEntry, MAX_ENTRIES};
use crate::id::{BlobKind, BlobRef, PackId};
use crate::index::{Index, PackInfo};
use crate::repo::cache::Staging;
use crate::repo::lock::LockWatch;
use crate::repo::Repository;
use crossbeam_channel::{bounded, Sender};
use std::collections::HashSet;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// Figures of what a writer added.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WriterStats {
    /// Blobs added.
    pub blobs: u64,
    /// Their plaintext bytes.
    pub raw_bytes: u64,
    /// Their sealed bytes.
    pub stored_bytes: u64,
    /// Packs written.
    pub packs: u64,
}

/// Full packs waiting for their sync; they are on disk, not in memory.
const QUEUED_PACKS: usize = 4;

/// A pack being written to a staging file.
struct StagedPack {
    out: BufWriter<Box<dyn Write + Send>>,
    path: PathBuf,
    hasher: blake3::Hasher,
    entries: Vec<PackEntry>,
    len: u64,
    metadata: bool,
    /// Padded to hide its contents' size (format version 4, §9.2).
    pad: bool,
    /// The blob bytes at which it is closed: drawn for each pack.
    close_at: u64,
}

impl StagedPack {
    fn create(
        staging: &Staging,
        backend: &dyn Backend,
        metadata: bool,
        pad: bool,
        pack_size: u64,
    ) -> Result<Self> {
        let (path, f) = staging
            .create()
            .map_err(|e| staging_error(backend, staging.dir(), "creating", e))?;
        Ok(StagedPack {
            out: BufWriter::with_capacity(1 << 20, f),
            path,
            hasher: blake3::Hasher::new(),
            entries: Vec::new(),
            len: 0,
            metadata,
            pad,
            // A padded pack closes at a random point of the last quarter
            // of the target size, so where packs end follows no blob.
            close_at: if pad {
                pack_size - rand::random::<u64>() % (pack_size / 4).max(1)
            } else {
                pack_size
            },
        })
    }

    fn add(
        &mut self,
        backend: &dyn Backend,
        b: BlobRef,
        sealed: &[u8],
        raw_len: u32,
    ) -> Result<()> {
        self.out
            .write_all(sealed)
            .map_err(|e| staging_error(backend, &self.path, "writing", e))?;
        self.hasher.update(sealed);
        self.entries.push(PackEntry {
            blob: b,
            offset: self.len,
            length: sealed.len() as u32,
            raw_len,
        });
        self.len += sealed.len() as u64;
        Ok(())
    }

    /// Appends the header and trailer, puts the pack in place, indexes it.
    fn commit(
        mut self,
        keys: &Keys,
        backend: &dyn Backend,
        index: &dyn Index,
        lock: &Option<LockWatch>,
    ) -> Result<Vec<PackEntry>> {
        let (filler, tail) = if self.pad {
            encode_padded_tail(keys, &self.entries, self.len)
        } else {
            (0, encode_tail(keys, &self.entries))
        };
        let path = self.path.clone();
        // The filler is random: zeros would show where the blobs end.
        let mut left = filler;
        let mut piece = vec![0u8; (64 << 10).min(filler) as usize];
        while left > 0 {
            let n = piece.len().min(left as usize);
            rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut piece[..n]);
            self.out
                .write_all(&piece[..n])
                .map_err(|e| staging_error(backend, &path, "writing", e))?;
            self.hasher.update(&piece[..n]);
            left -= n as u64;
        }
        self.out
            .write_all(&tail)
            .and_then(|()| self.out.flush())
            .map_err(|e| staging_error(backend, &path, "writing", e))?;
        self.hasher.update(&tail);
        let id = PackId(*self.hasher.finalize().as_bytes());
        let size = self.len + filler + tail.len() as u64;
        drop(self.out);
        // A write the file system reported done but did not keep (a short
        // write) must not become a pack that the index trusts.
        let on_disk = std::fs::metadata(&path)
            .map_err(|e| staging_error(backend, &path, "checking", e))?
            .len();
        if on_disk != size {
            return Err(staging_error(
                backend,
                &path,
                "checking",
                std::io::Error::other(format!(
                    "{on_disk} bytes on disk, {size} written (a short write)"
                )),
            ));
        }
        // A command whose lock cannot be trusted (a prune may be deleting
        // what it deduplicated against) writes nothing more.
        check_lock(lock)?;
        match backend.write_file(FileType::Pack, &id.to_hex(), &path) {
            // Names are content hashes: the pack is there already (a retry
            // after a failure that came after the write), if its bytes say so.
            Err(e) if e.is_already_exists() => check_existing_pack(backend, &id, size)?,
            other => other?,
        }
        let _ = std::fs::remove_file(&path);
        check_lock(lock)?;
        let info = PackInfo {
            metadata: self.metadata,
            blobs: self.entries.len() as u32,
            size,
        };
        index.add_pack(&id, info, &self.entries)?;
        Ok(self.entries)
    }
}

/// A pack found under `id` where one of `size` bytes was being written:
/// trusted only if it has that size and its bytes hash to its name (a
/// server may keep an upload it refused, or a damaged copy may be in the
/// way). A rare path: read whole, once its size is known to be ours.
pub(crate) fn check_existing_pack(backend: &dyn Backend, id: &PackId, size: u64) -> Result<()> {
    let name = id.to_hex();
    if backend.size(FileType::Pack, &name)? == size {
        let bytes = backend.read(FileType::Pack, &name)?;
        if blake3::hash(&bytes).as_bytes() == &id.0 {
            return Ok(());
        }
    }
    Err(Error::corrupt(
        format!("pack {id}"),
        format!(
            "{} already holds a file of that name whose bytes do not hash to it (damaged, or an upload the server refused but kept); nothing was indexed from it: move it aside (or delete it with credentials that may), then run the command again",
            backend.location()
        ),
    ))
}

fn check_lock(lock: &Option<LockWatch>) -> Result<()> {
    lock.as_ref().map_or(Ok(()), LockWatch::check)
}

fn staging_error(
    backend: &dyn Backend,
    path: &std::path::Path,
    what: &str,
    e: std::io::Error,
) -> Error {
    Error::storage(
        backend.location(),
        format!("{what} the staged pack {}", path.display()),
        e,
    )
}

/// The first storage failure, kept for every later call. The error itself
/// goes to the first caller who sees it; later ones get its text.
#[derive(Default)]
struct Failure {
    error: Option<Error>,
    text: Option<String>,
}

impl Failure {
    fn set(&mut self, e: Error) {
        if self.text.is_none() {
            self.text = Some(e.to_string());
            self.error = Some(e);
        }
    }

    fn get(&mut self, location: &str) -> Option<Error> {
        let text = self.text.as_ref()?;
        Some(self.error.take().unwrap_or_else(|| {
            Error::storage(
                location,
                "writing packs",
                std::io::Error::other(format!("an earlier write failed: {text}")),
            )
        }))
    }
}

#[derive(Default)]
struct Open {
    data: Option<StagedPack>,
    meta: Option<StagedPack>,
}

/// Accepts blobs for one repository and writes them in packs.
pub struct BlobWriter {
    keys: Arc<Keys>,
    backend: Arc<dyn Backend>,
    index: Arc<dyn Index>,
    staging: Staging,
    zstd_level: i32,
    pack_size: u64,
    pad: bool,
    /// Whether a data pack was started (see [`BlobWriter::one_data_pack`]).
    data_started: std::sync::atomic::AtomicBool,
    one_data_pack: bool,
    open: Mutex<Open>,
    pending: Arc<Mutex<HashSet<BlobRef>>>,
    tx: Option<Sender<StagedPack>>,
    threads: Vec<JoinHandle<u64>>,
    failed: Arc<Mutex<Failure>>,
    lock: Option<LockWatch>,
    blobs: AtomicU64,
    raw: AtomicU64,
    stored: AtomicU64,
}

impl BlobWriter {
    /// A writer for `repo`, which must have been opened for writing; one
    /// pack is put in place at a time.
    pub fn new(repo: &Repository) -> Self {
        Self::with_uploads(repo, 1)
    }

    /// A writer that puts up to `uploads` packs in place at once (for a
    /// remote backend, where each upload waits on the network).
    pub fn with_uploads(repo: &Repository, uploads: usize) -> Self {
        let uploads = uploads.max(1);
        let (tx, rx) = bounded::<StagedPack>(QUEUED_PACKS.max(uploads));
        let pending: Arc<Mutex<HashSet<BlobRef>>> = Arc::default();
        let failed: Arc<Mutex<Failure>> = Arc::default();
        let workers: Vec<JoinHandle<u64>> = (0..uploads)
            .map(|_| {
                let (keys, backend, index, pending, failed, lock, rx) = (
                    repo.keys_arc(),
                    repo.backend.clone(),
                    repo.index_arc(),
                    pending.clone(),
                    failed.clone(),
                    repo.lock_watch(),
                    rx.clone(),
                );
                std::thread::spawn(move || -> u64 {
                    let mut packs = 0;
                    for staged in rx.iter() {
                        let path = staged.path.clone();
                        if failed.lock().expect("failure slot").text.is_some() {
                            // Another upload failed: nothing more goes in.
                            let _ = std::fs::remove_file(&path);
                            continue;
                        }
                        match staged.commit(&keys, &*backend, &*index, &lock) {
                            Ok(entries) => {
                                let mut p = pending.lock().expect("pending set");
                                for e in &entries {
                                    p.remove(&e.blob);
                                }
                                packs += 1;
                            }
                            Err(e) => {
                                let _ = std::fs::remove_file(&path);
                                failed.lock().expect("failure slot").set(e);
                                // Later packs are dropped with the channel; the
                                // writer's owner learns of the failure.
                                for later in rx.iter() {
                                    let _ = std::fs::remove_file(&later.path);
                                }
                                break;
                            }
                        }
                    }
                    packs
                })
            })
            .collect();
        BlobWriter {
            keys: repo.keys_arc(),
            backend: repo.backend.clone(),
            index: repo.index_arc(),
            staging: repo.staging().clone(),
            zstd_level: repo.config.zstd_level,
            pack_size: repo.config.pack_size as u64,
            pad: repo.config.version >= 4,
            data_started: Default::default(),
            one_data_pack: false,
            open: Mutex::default(),
            pending,
            tx: Some(tx),
            threads: workers,
            failed,
            lock: repo.lock_watch(),
            blobs: AtomicU64::new(0),
            raw: AtomicU64::new(0),
            stored: AtomicU64::new(0),
        }
    }

    fn check_failed(&self) -> Result<()> {
        let mut f = self.failed.lock().expect("failure slot");
        // Called for every blob: nothing is built unless a write failed.
        if f.text.is_none() {
            return Ok(());
        }
        match f.get(&self.backend.location()) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Records a storage failure: the writer accepts nothing more.
    fn fail(&self, e: Error) -> Error {
        let mut f = self.failed.lock().expect("failure slot");
        f.set(e);
        f.get(&self.backend.location()).expect("just set")
    }

    /// Makes [`BlobWriter::finish`] write a data pack even when no data
    /// blob was new (a push in a repository of format version 4): whether
    /// an upload was already stored anywhere must not show as "no data pack
    /// this night" (format-spec.md §9.2).
    pub fn one_data_pack(&mut self) {
        self.one_data_pack = true;
    }

    /// Whether `b` still has to be stored.
    pub fn needs(&self, b: &BlobRef) -> Result<bool> {
        if self.pending.lock().expect("pending set").contains(b) {
            return Ok(false);
        }
        Ok(!self.index.contains(b)?)
    }

    /// Seals `plaintext` (whose id is `b`) and adds it unless already stored.
    /// Returns whether it was added.
    pub fn store(&self, b: BlobRef, plaintext: &[u8]) -> Result<bool> {
        // Readers refuse larger blobs (format-spec.md §8): never write one.
        let max = blob::max_plaintext(b.kind) as usize;
        if plaintext.len() > max {
            return Err(Error::Usage(format!(
                "a {:?} blob of {} bytes is over the {max} bytes readers accept",
                b.kind,
                plaintext.len()
            )));
        }
        if !self.needs(&b)? {
            return Ok(false);
        }
        let sealed = blob::seal(&self.keys, &b, plaintext, self.zstd_level);
        self.add_sealed(b, &sealed, plaintext.len() as u32)
    }

    /// Hashes, then stores, a blob of `kind`; returns its id and whether it was new.
    pub fn store_new(&self, kind: BlobKind, plaintext: &[u8]) -> Result<([u8; 32], bool)> {
        let id = self.keys.blob_id(plaintext);
        let added = self.store(BlobRef { kind, id }, plaintext)?;
        Ok((id, added))
    }

    /// Adds an already sealed blob as it is, even though the index knows
    /// it: repacking moves blobs out of packs about to be deleted. (Sealed
    /// bytes do not depend on where they are stored.)
    pub fn copy_sealed(&self, b: BlobRef, sealed: &[u8], raw_len: u32) -> Result<bool> {
        self.add_sealed(b, sealed, raw_len)
    }

    fn add_sealed(&self, b: BlobRef, sealed: &[u8], raw_len: u32) -> Result<bool> {
        self.check_failed()?;
        if !self.pending.lock().expect("pending set").insert(b) {
            return Ok(false);
        }
        let full = {
            let mut open = self.open.lock().expect("open packs");
            let slot = if b.kind.is_metadata() {
                &mut open.meta
            } else {
                &mut open.data
            };
            if slot.is_none() {
                check_lock(&self.lock).map_err(|e| self.fail(e))?;
                let p = StagedPack::create(
                    &self.staging,
                    &*self.backend,
                    b.kind.is_metadata(),
                    self.pad,
                    self.pack_size,
                )
                .map_err(|e| self.fail(e))?;
                if !b.kind.is_metadata() {
                    self.data_started.store(true, Ordering::Relaxed);
                }
                *slot = Some(p);
            }
            let pack = slot.as_mut().expect("just created");
            if let Err(e) = pack.add(&*self.backend, b, sealed, raw_len) {
                // What reached the file is unknown: the pack is discarded.
                if let Some(p) = slot.take() {
                    let _ = std::fs::remove_file(&p.path);
                }
                return Err(self.fail(e));
            }
            if pack.len >= pack.close_at || pack.entries.len() >= MAX_ENTRIES {
                slot.take()
            } else {
                None
            }
        };
        self.blobs.fetch_add(1, Ordering::Relaxed);
        self.raw.fetch_add(raw_len as u64, Ordering::Relaxed);
        self.stored
            .fetch_add(sealed.len() as u64, Ordering::Relaxed);
        if let Some(p) = full {
            self.send(p)?;
        }
        Ok(true)
    }

    fn send(&self, p: StagedPack) -> Result<()> {
        if let Err(e) = self.tx.as_ref().expect("writer is open").send(p) {
            let _ = std::fs::remove_file(&e.0.path);
            self.check_failed()?;
            return Err(Error::storage(
                self.backend.location(),
                "writing packs",
                std::io::Error::other("the pack writer stopped"),
            ));
        }
        Ok(())
    }

    /// Figures so far.
    pub fn stats(&self) -> WriterStats {
        WriterStats {
            blobs: self.blobs.load(Ordering::Relaxed),
            raw_bytes: self.raw.load(Ordering::Relaxed),
            stored_bytes: self.stored.load(Ordering::Relaxed),
            packs: 0,
        }
    }

    /// Writes the partly filled packs, waits for every pack to be on disk and
    /// indexed, and makes the index durable.
    pub fn finish(mut self) -> Result<WriterStats> {
        self.check_failed()?;
        let mut open = std::mem::take(&mut *self.open.lock().expect("open packs"));
        if self.one_data_pack && self.pad && !self.data_started.load(Ordering::Relaxed) {
            // Nothing new to store: a pack of filler alone, as large as the
            // smallest real one, so that the provider cannot tell.
            check_lock(&self.lock).map_err(|e| self.fail(e))?;
            open.data = Some(
                StagedPack::create(&self.staging, &*self.backend, false, true, self.pack_size)
                    .map_err(|e| self.fail(e))?,
            );
        }
        for p in [open.data, open.meta].into_iter().flatten() {
            self.send(p)?;
        }
        drop(self.tx.take());
        let mut packs = 0;
        for t in std::mem::take(&mut self.threads) {
            packs += t
                .join()
                .map_err(|_| Error::Usage("the pack writer panicked".into()))?;
        }
        // A pack that failed after the last blob was accepted is only known
        // once the thread has stopped.
        self.check_failed()?;
        self.index.sync()?;
        let mut s = self.stats();
        s.packs = packs;
        Ok(s)
    }
}

impl Drop for BlobWriter {
    fn drop(&mut self) {
        // A writer dropped without finish (an error upstream): staged packs
        // that never reached the pack thread are removed.
        if let Ok(mut open) = self.open.lock() {
            for p in [open.data.take(), open.meta.take()].into_iter().flatten() {
                let _ = std::fs::remove_file(&p.path);
            }
        }
        drop(self.tx.take());
        for t in std::mem::take(&mut self.threads) {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::faulty::{Fault, Faults, FaultyBackend, Op};
    use crate::backend::mem::MemBackend;
    use crate::format::crypto::KdfParams;
    use crate::repo::NewKey;

    fn repo(faults: &Faults) -> (tempfile::TempDir, Arc<MemBackend>, Repository) {
        let d = tempfile::tempdir().unwrap();
        let mem = Arc::new(MemBackend::new());
        let b = Arc::new(FaultyBackend::new(mem.clone(), faults.clone()));
        let kdf = KdfParams {
            memory_kib: 1024,
            iterations: 1,
            parallelism: 1,
        };
        let mut r = Repository::init_with(
            b,
            d.path(),
            b"pw",
            &NewKey::with_kdf(kdf),
            Default::default(),
        )
        .unwrap();
        r.inject_staging_faults(faults.clone());
        (d, mem, r)
    }

    fn random(seed: u8, len: usize) -> Vec<u8> {
        let mut x = 0x2545_f491_4f6c_dd1d_u64 ^ seed as u64;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    fn leftovers(repo: &Repository) -> usize {
        std::fs::read_dir(repo.staging().dir()).map_or(0, |rd| rd.count())
    }

    #[test]
    fn a_failed_write_into_a_pack_poisons_the_writer_and_indexes_nothing() {
        let faults = Faults::new();
        let (_d, mem, repo) = repo(&faults);
        let w = BlobWriter::new(&repo);
        w.store_new(BlobKind::Data, &random(1, 1000)).unwrap();
        // Larger than the write buffer: written through at once, and the
        // disk fills half-way.
        faults.fail_nth(Op::StagingWrite, 1, Fault::NoSpace);
        let e = w
            .store_new(BlobKind::Data, &random(2, 3 << 20))
            .unwrap_err();
        assert!(matches!(e, Error::Storage { .. }), "{e:?}");
        assert!(e.to_string().contains("No space left"), "{e}");
        // Space is back, but what reached the pack is unknown: nothing more
        // is accepted, and nothing is indexed.
        assert!(w.store_new(BlobKind::Data, &random(3, 1000)).is_err());
        assert!(w.finish().is_err());
        assert!(repo.index().packs().unwrap().is_empty());
        assert!(mem.list(FileType::Pack).unwrap().is_empty());
        assert_eq!(leftovers(&repo), 0, "the staged pack is removed");
    }

    #[test]
    fn a_pack_that_fails_to_go_in_place_is_not_indexed() {
        for fault in [Fault::Eio, Fault::EioAfter] {
            let faults = Faults::new();
            let (_d, mem, repo) = repo(&faults);
            let w = BlobWriter::new(&repo);
            w.store_new(BlobKind::Data, &random(1, 5000)).unwrap();
            faults.fail_nth(Op::WriteFile, 1, fault);
            let e = w.finish().unwrap_err();
            assert!(matches!(e, Error::Storage { .. }), "{e:?}");
            assert!(repo.index().packs().unwrap().is_empty(), "{fault:?}");
            // Put in place then failed: the file may be there, unindexed,
            // which check reports and prune removes; never the reverse.
            let in_place = mem.list(FileType::Pack).unwrap().len();
            assert_eq!(in_place, usize::from(fault == Fault::EioAfter));
            assert_eq!(leftovers(&repo), 0);
        }
    }

    #[test]
    fn a_blob_larger_than_readers_accept_is_never_written() {
        let faults = Faults::new();
        let (_d, _mem, repo) = repo(&faults);
        let w = BlobWriter::new(&repo);
        let too_long = vec![7u8; crate::format::blob::MAX_LIST as usize + 36];
        let e = w.store_new(BlobKind::List, &too_long).unwrap_err();
        assert!(e.to_string().contains("readers accept"), "{e}");
        w.finish().unwrap();
        assert!(repo.index().packs().unwrap().is_empty());
    }

    #[test]
    fn a_write_the_disk_did_not_keep_is_caught_before_the_pack_is_indexed() {
        let faults = Faults::new();
        let (_d, _mem, repo) = repo(&faults);
        let w = BlobWriter::new(&repo);
        faults.fail_nth(Op::StagingWrite, 1, Fault::Short);
        w.store_new(BlobKind::Data, &random(1, 3 << 20)).unwrap();
        let e = w.finish().unwrap_err();
        assert!(e.to_string().contains("short write"), "{e}");
        assert!(repo.index().packs().unwrap().is_empty());
    }

    #[test]
    fn a_pack_found_in_the_way_is_trusted_only_if_it_hashes_to_its_name() {
        let mem = MemBackend::new();
        let good = b"the bytes of a pack".to_vec();
        let id = PackId(*blake3::hash(&good).as_bytes());
        mem.put_raw(FileType::Pack, &id.to_hex(), good);
        check_existing_pack(&mem, &id, 19).unwrap();
        // What a server that keeps a refused upload leaves: other bytes.
        mem.put_raw(
            FileType::Pack,
            &id.to_hex(),
            b"the bytes of a pack, damaged".to_vec(),
        );
        let e = check_existing_pack(&mem, &id, 19).unwrap_err();
        assert!(e.to_string().contains("do not hash to it"), "{e}");
        // Same length, other bytes: refused too.
        mem.put_raw(
            FileType::Pack,
            &id.to_hex(),
            b"the bytes of a paCK".to_vec(),
        );
        assert!(check_existing_pack(&mem, &id, 19).is_err());
    }
}
