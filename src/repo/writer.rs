//! The blob writer: deduplicates, seals and packs blobs.
//!
//! Sealed blobs are appended straight to a staged pack file (hashed as they
//! go), so a pack never sits in memory. A full pack goes to a background
//! thread that appends the header, syncs the file, puts it in place and
//! indexes it, while pushing goes on into the next pack.
//!
//! Write order for every pack: the pack file is written, synced and renamed
//! into place, then its entries go into the index in one batch, then its
//! blobs leave the pending set. So the index never names a pack that is not
//! on disk, and a blob is always either pending or indexed once accepted.

use crate::backend::{Backend, FileType};
use crate::error::{Error, IoContext, Result};
use crate::format::blob;
use crate::format::crypto::Keys;
use crate::format::pack::{encode_tail, PackEntry};
use crate::id::{BlobKind, BlobRef, PackId};
use crate::index::{Index, PackInfo};
use crate::repo::Repository;
use crossbeam_channel::{bounded, Sender};
use std::collections::HashSet;
use std::fs::File;
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

/// Largest plaintext a blob may have: lengths in pack headers are u32, and
/// sealing adds a little.
const MAX_BLOB: usize = u32::MAX as usize - 1024;
/// Full packs waiting for their sync; they are on disk, not in memory.
const QUEUED_PACKS: usize = 4;

/// A pack being written to a staging file.
struct StagedPack {
    out: BufWriter<File>,
    path: PathBuf,
    hasher: blake3::Hasher,
    entries: Vec<PackEntry>,
    len: u64,
    metadata: bool,
}

impl StagedPack {
    fn create(backend: &dyn Backend, metadata: bool) -> Result<Self> {
        let path = backend.staging_dir().join(format!(
            ".tmp-pack-{}-{:016x}",
            std::process::id(),
            rand::random::<u64>()
        ));
        let f = File::options()
            .write(true)
            .create_new(true)
            .open(&path)
            .at(&path)?;
        Ok(StagedPack {
            out: BufWriter::with_capacity(1 << 20, f),
            path,
            hasher: blake3::Hasher::new(),
            entries: Vec::new(),
            len: 0,
            metadata,
        })
    }

    fn add(&mut self, b: BlobRef, sealed: &[u8], raw_len: u32) -> Result<()> {
        self.out.write_all(sealed).at(&self.path)?;
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
    ) -> Result<Vec<PackEntry>> {
        let tail = encode_tail(keys, &self.entries);
        self.out.write_all(&tail).at(&self.path)?;
        self.hasher.update(&tail);
        self.out.flush().at(&self.path)?;
        let id = PackId(*self.hasher.finalize().as_bytes());
        let size = self.len + tail.len() as u64;
        drop(self.out);
        backend.write_staged(FileType::Pack, &id.to_hex(), &self.path)?;
        let info = PackInfo {
            metadata: self.metadata,
            blobs: self.entries.len() as u32,
            size,
        };
        index.add_pack(&id, info, &self.entries)?;
        Ok(self.entries)
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
    zstd_level: i32,
    pack_size: u64,
    open: Mutex<Open>,
    pending: Arc<Mutex<HashSet<BlobRef>>>,
    tx: Option<Sender<StagedPack>>,
    thread: Option<JoinHandle<Result<u64>>>,
    failed: Arc<Mutex<Option<String>>>,
    blobs: AtomicU64,
    raw: AtomicU64,
    stored: AtomicU64,
}

impl BlobWriter {
    /// A writer for `repo`, which must have been opened for writing.
    pub fn new(repo: &Repository) -> Self {
        let (tx, rx) = bounded::<StagedPack>(QUEUED_PACKS);
        let pending: Arc<Mutex<HashSet<BlobRef>>> = Arc::default();
        let failed: Arc<Mutex<Option<String>>> = Arc::default();
        let thread = {
            let (keys, backend, index, pending, failed) = (
                repo.keys_arc(),
                repo.backend.clone(),
                repo.index_arc(),
                pending.clone(),
                failed.clone(),
            );
            std::thread::spawn(move || -> Result<u64> {
                let mut packs = 0;
                for staged in rx {
                    let path = staged.path.clone();
                    match staged.commit(&keys, &*backend, &*index) {
                        Ok(entries) => {
                            let mut p = pending.lock().expect("pending set");
                            for e in &entries {
                                p.remove(&e.blob);
                            }
                            packs += 1;
                        }
                        Err(e) => {
                            let _ = std::fs::remove_file(&path);
                            *failed.lock().expect("failure slot") = Some(e.to_string());
                            return Err(e);
                        }
                    }
                }
                Ok(packs)
            })
        };
        BlobWriter {
            keys: repo.keys_arc(),
            backend: repo.backend.clone(),
            index: repo.index_arc(),
            zstd_level: repo.config.zstd_level,
            pack_size: repo.config.pack_size as u64,
            open: Mutex::default(),
            pending,
            tx: Some(tx),
            thread: Some(thread),
            failed,
            blobs: AtomicU64::new(0),
            raw: AtomicU64::new(0),
            stored: AtomicU64::new(0),
        }
    }

    fn check_failed(&self) -> Result<()> {
        match &*self.failed.lock().expect("failure slot") {
            Some(e) => Err(Error::Usage(format!("writing a pack failed: {e}"))),
            None => Ok(()),
        }
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
        if plaintext.len() > MAX_BLOB {
            return Err(Error::Usage(format!(
                "a {:?} blob of {} bytes is over the {MAX_BLOB}-byte limit of the pack format",
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
                *slot = Some(StagedPack::create(&*self.backend, b.kind.is_metadata())?);
            }
            let pack = slot.as_mut().expect("just created");
            pack.add(b, sealed, raw_len)?;
            if pack.len >= self.pack_size {
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
            return Err(Error::Usage("the pack writer stopped".into()));
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
        let open = std::mem::take(&mut *self.open.lock().expect("open packs"));
        for p in [open.data, open.meta].into_iter().flatten() {
            self.send(p)?;
        }
        drop(self.tx.take());
        let packs = self
            .thread
            .take()
            .expect("thread runs until finish")
            .join()
            .map_err(|_| Error::Usage("the pack writer panicked".into()))??;
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
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
