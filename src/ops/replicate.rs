//! Replication: the snapshots a destination should hold and does not, and
//! exactly the blobs they need that it lacks, copied from a source that
//! shares its master key (an off-site remote made by `snap remote init`, or
//! a local clone of one). Format-spec.md §25.
//!
//! Blobs travel sealed, as stored, after they verified on the way out, into
//! new packs of the destination. A snapshot file is written only once every
//! pack holding what it needs is stored and indexed there, so an
//! interruption leaves nothing half-visible, and the next run sends only
//! what did not arrive (the destination's writer indexes, when it opens,
//! the packs an interrupted run stored but did not index). Nothing is ever
//! deleted or overwritten on the destination.

use crate::error::{Error, Result};
use crate::format::snapshot::Snapshot;
use crate::format::tree::{Content, Tree};
use crate::id::{BlobRef, SnapshotId, TreeId};
use crate::progress::Progress;
use crate::repo::writer::BlobWriter;
use crate::repo::Repository;
use rayon::prelude::*;
use serde::Serialize;
use std::collections::HashSet;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Which snapshots a destination receives.
#[derive(Clone, Debug)]
pub struct Filter {
    /// The plan's levels it receives.
    pub levels: Vec<u8>,
    /// The sites it receives; `None`: every site, and global snapshots.
    pub sites: Option<Vec<String>>,
}

impl Default for Filter {
    /// Level 2, every site: the off-site copy of the plan.
    fn default() -> Self {
        Filter {
            levels: vec![2],
            sites: None,
        }
    }
}

impl Filter {
    /// Every snapshot.
    pub fn everything() -> Self {
        Filter {
            levels: (0..=u8::MAX).collect(),
            sites: None,
        }
    }

    /// Whether `s` is for this destination.
    pub fn wants(&self, s: &Snapshot) -> bool {
        self.levels.contains(&s.level)
            && self
                .sites
                .as_ref()
                .is_none_or(|sites| s.site.as_ref().is_some_and(|x| sites.contains(x)))
    }
}

/// How to replicate.
#[derive(Clone, Debug)]
pub struct Options {
    /// Which snapshots.
    pub filter: Filter,
    /// Only these (a push replicating what it just saved); `None`: all.
    pub only: Option<HashSet<SnapshotId>>,
    /// Packs uploaded at once.
    pub uploads: usize,
    /// Average bytes per second at most, when set.
    pub limit_upload: Option<u64>,
    /// After this many bytes sent, the packs are finished and the
    /// snapshots walked so far are written, so that a long first run that
    /// is interrupted keeps whole snapshots, not only packs.
    pub batch_bytes: u64,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            filter: Filter::default(),
            only: None,
            uploads: 4,
            limit_upload: None,
            batch_bytes: 1 << 30,
        }
    }
}

/// What a run did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Summary {
    /// Snapshots of the source the destination should hold.
    pub snapshots_wanted: usize,
    /// Of those, already there.
    pub snapshots_present: usize,
    /// Copied by this run (ids).
    pub copied: Vec<String>,
    /// Blobs sent.
    pub blobs_sent: u64,
    /// Their sealed bytes.
    pub bytes_sent: u64,
    /// Packs written on the destination.
    pub packs_written: u64,
    /// Wall time, seconds.
    pub duration_s: f64,
}

/// Paces the bytes sent to an average rate.
struct Throttle {
    limit: Option<u64>,
    started: Instant,
    sent: Mutex<u64>,
}

impl Throttle {
    fn take(&self, n: u64) {
        let Some(limit) = self.limit.filter(|l| *l > 0) else {
            return;
        };
        let due = {
            let mut sent = self.sent.lock().expect("not poisoned");
            *sent += n;
            Duration::from_secs_f64(*sent as f64 / limit as f64)
        };
        let elapsed = self.started.elapsed();
        if due > elapsed {
            std::thread::sleep(due - elapsed);
        }
    }
}

/// Copies what `dst` should hold from `src`; `dst` is open for writing.
pub fn replicate(
    src: &Repository,
    dst: &Repository,
    opts: &Options,
    progress: &dyn Progress,
) -> Result<Summary> {
    let started = Instant::now();
    let mut sum = Summary::default();
    let present: HashSet<SnapshotId> = dst.snapshot_ids()?.into_iter().collect();
    let wanted: Vec<(SnapshotId, Snapshot)> = src
        .snapshots()?
        .into_iter()
        .filter(|(id, s)| opts.only.as_ref().is_none_or(|o| o.contains(id)) && opts.filter.wants(s))
        .collect();
    sum.snapshots_wanted = wanted.len();
    let todo: Vec<(SnapshotId, Snapshot)> = wanted
        .into_iter()
        .filter(|(id, _)| !present.contains(id))
        .collect();
    sum.snapshots_present = sum.snapshots_wanted - todo.len();
    if todo.is_empty() {
        sum.duration_s = started.elapsed().as_secs_f64();
        return Ok(sum);
    }
    let throttle = Throttle {
        limit: opts.limit_upload,
        started: Instant::now(),
        sent: Mutex::new(0),
    };
    let mut copier = Copier {
        src,
        writer: BlobWriter::with_uploads(dst, opts.uploads),
        visited: HashSet::new(),
        blobs: Mutex::new(0),
        bytes: Mutex::new(0),
        throttle: &throttle,
        progress,
    };
    let mut walked: Vec<SnapshotId> = Vec::new();
    let mut batch_start = 0u64;
    for (id, snap) in &todo {
        copier.copy_tree(snap.tree).map_err(|e| {
            Error::Usage(format!(
                "replicating snapshot {}: {e}; what was sent stays, and the next run goes on from there",
                id.short()
            ))
        })?;
        walked.push(*id);
        let bytes = *copier.bytes.lock().expect("not poisoned");
        if bytes - batch_start >= opts.batch_bytes {
            batch_start = bytes;
            let w = std::mem::replace(
                &mut copier.writer,
                BlobWriter::with_uploads(dst, opts.uploads),
            );
            sum.packs_written += w.finish()?.packs;
            write_snapshots(src, dst, &mut walked, &mut sum)?;
        }
    }
    let Copier {
        writer,
        blobs,
        bytes,
        ..
    } = copier;
    sum.packs_written += writer.finish()?.packs;
    write_snapshots(src, dst, &mut walked, &mut sum)?;
    sum.blobs_sent = blobs.into_inner().expect("not poisoned");
    sum.bytes_sent = bytes.into_inner().expect("not poisoned");
    sum.duration_s = started.elapsed().as_secs_f64();
    Ok(sum)
}

/// Writes the files of the snapshots in `walked`, whose blobs are all
/// stored and indexed on `dst` by now.
fn write_snapshots(
    src: &Repository,
    dst: &Repository,
    walked: &mut Vec<SnapshotId>,
    sum: &mut Summary,
) -> Result<()> {
    for id in walked.drain(..) {
        let bytes = src.snapshot_bytes(&id)?;
        if dst.adopt_snapshot(&id, &bytes)? {
            sum.copied.push(id.to_hex());
        }
    }
    Ok(())
}

struct Copier<'a> {
    src: &'a Repository,
    writer: BlobWriter,
    visited: HashSet<TreeId>,
    blobs: Mutex<u64>,
    bytes: Mutex<u64>,
    throttle: &'a Throttle,
    progress: &'a dyn Progress,
}

/// Chunks read and sent together, in parallel.
const CHUNK_BATCH: usize = 256;

impl Copier<'_> {
    /// Sends every blob under `root` the destination lacks. Each tree is
    /// walked whole (a tree present on the destination may be the part an
    /// interrupted run sent before its children): only trees already walked
    /// by this run are skipped.
    fn copy_tree(&mut self, root: TreeId) -> Result<()> {
        let mut stack = vec![root];
        let mut chunks: Vec<BlobRef> = Vec::new();
        while let Some(t) = stack.pop() {
            if !self.visited.insert(t) {
                continue;
            }
            let tb: BlobRef = t.into();
            let (plain, sealed, raw_len) = self.src.read_sealed(&tb)?;
            let tree = Tree::decode(&plain, &t)?;
            for n in &tree.entries {
                if let Some(sub) = n.subtree {
                    stack.push(sub);
                }
                let Some(c) = &n.content else { continue };
                if let Content::Groups(gs) = c {
                    for g in gs {
                        let gb: BlobRef = g.id.into();
                        if self.writer.needs(&gb)? {
                            let (_, sealed, raw) = self.src.read_sealed(&gb)?;
                            self.send(gb, &sealed, raw)?;
                        }
                    }
                }
                let writer = &self.writer;
                self.src.for_each_chunk_group(c, &mut |group| {
                    for (id, _) in group {
                        let b = BlobRef::from(*id);
                        if writer.needs(&b)? {
                            chunks.push(b);
                        }
                    }
                    Ok(())
                })?;
                if chunks.len() >= CHUNK_BATCH {
                    self.send_chunks(&mut chunks)?;
                }
            }
            // A tree goes after what it names, within this run's packs.
            self.send_chunks(&mut chunks)?;
            if self.writer.needs(&tb)? {
                self.send(tb, &sealed, raw_len)?;
            }
            self.progress.file_done();
        }
        Ok(())
    }

    fn send_chunks(&self, chunks: &mut Vec<BlobRef>) -> Result<()> {
        let batch = std::mem::take(chunks);
        batch.par_iter().try_for_each(|b| {
            let (_, sealed, raw) = self.src.read_sealed(b)?;
            self.send(*b, &sealed, raw)
        })
    }

    fn send(&self, b: BlobRef, sealed: &[u8], raw_len: u32) -> Result<()> {
        if self.writer.copy_sealed(b, sealed, raw_len)? {
            let n = sealed.len() as u64;
            *self.blobs.lock().expect("not poisoned") += 1;
            *self.bytes.lock().expect("not poisoned") += n;
            self.progress.bytes(n);
            self.throttle.take(n);
        }
        Ok(())
    }
}
