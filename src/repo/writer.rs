//! The blob writer: deduplicates, seals and packs blobs, and writes full
//! packs from a background thread.
//!
//! Write order for every pack: the pack file is written and synced, then its
//! entries go into the index in one batch, then its blobs leave the pending
//! set. So the index never names a pack that is not on disk, and a blob is
//! always either pending or indexed once accepted.

use crate::error::{Error, Result};
use crate::format::blob;
use crate::format::pack::PackBuilder;
use crate::id::{BlobKind, BlobRef};
use crate::index::PackInfo;
use crate::repo::Repository;
use crossbeam_channel::{bounded, Sender};
use std::collections::HashSet;
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

struct Open {
    data: PackBuilder,
    meta: PackBuilder,
}

/// Accepts blobs for one repository and writes them in packs.
pub struct BlobWriter {
    repo_keys: Arc<crate::format::crypto::Keys>,
    index: Arc<dyn crate::index::Index>,
    zstd_level: i32,
    pack_size: usize,
    open: Mutex<Open>,
    pending: Arc<Mutex<HashSet<BlobRef>>>,
    tx: Option<Sender<PackBuilder>>,
    thread: Option<JoinHandle<Result<u64>>>,
    failed: Arc<Mutex<Option<String>>>,
    blobs: AtomicU64,
    raw: AtomicU64,
    stored: AtomicU64,
}

impl BlobWriter {
    /// A writer for `repo`, which must have been opened for writing.
    pub fn new(repo: &Repository) -> Self {
        let (tx, rx) = bounded::<PackBuilder>(1);
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
                for builder in rx {
                    let res = (|| -> Result<()> {
                        let metadata = builder_is_metadata(&builder);
                        let (id, bytes, entries) = builder.finish(&keys);
                        backend.write(crate::backend::FileType::Pack, &id.to_hex(), &bytes)?;
                        let info = PackInfo {
                            metadata,
                            blobs: entries.len() as u32,
                            size: bytes.len() as u64,
                        };
                        index.add_pack(&id, info, &entries)?;
                        let mut p = pending.lock().expect("pending set");
                        for e in &entries {
                            p.remove(&e.blob);
                        }
                        Ok(())
                    })();
                    if let Err(e) = res {
                        *failed.lock().expect("failure slot") = Some(e.to_string());
                        return Err(e);
                    }
                    packs += 1;
                }
                Ok(packs)
            })
        };
        BlobWriter {
            repo_keys: repo.keys_arc(),
            index: repo.index_arc(),
            zstd_level: repo.config.zstd_level,
            pack_size: repo.config.pack_size as usize,
            open: Mutex::new(Open {
                data: PackBuilder::new(),
                meta: PackBuilder::new(),
            }),
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
        let sealed = blob::seal(&self.repo_keys, &b, plaintext, self.zstd_level);
        self.add_sealed(b, &sealed, plaintext.len() as u32)
    }

    /// Hashes, then stores, a blob of `kind`; returns its id and whether it was new.
    pub fn store_new(&self, kind: BlobKind, plaintext: &[u8]) -> Result<([u8; 32], bool)> {
        let id = self.repo_keys.blob_id(plaintext);
        let added = self.store(BlobRef { kind, id }, plaintext)?;
        Ok((id, added))
    }

    fn add_sealed(&self, b: BlobRef, sealed: &[u8], raw_len: u32) -> Result<bool> {
        self.check_failed()?;
        let full = {
            if !self.pending.lock().expect("pending set").insert(b) {
                return Ok(false);
            }
            let mut open = self.open.lock().expect("open packs");
            let builder = if b.kind.is_metadata() {
                &mut open.meta
            } else {
                &mut open.data
            };
            builder.add(b, sealed, raw_len);
            if builder.len() >= self.pack_size {
                Some(std::mem::take(builder))
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

    fn send(&self, p: PackBuilder) -> Result<()> {
        if self.tx.as_ref().expect("writer is open").send(p).is_err() {
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
        let open = std::mem::replace(
            &mut *self.open.lock().expect("open packs"),
            Open {
                data: PackBuilder::new(),
                meta: PackBuilder::new(),
            },
        );
        for p in [open.data, open.meta] {
            if !p.is_empty() {
                self.send(p)?;
            }
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

fn builder_is_metadata(b: &PackBuilder) -> bool {
    b.first_kind().is_some_and(|k| k.is_metadata())
}

impl Drop for BlobWriter {
    fn drop(&mut self) {
        drop(self.tx.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
