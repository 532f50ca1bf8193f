//! Replication: the snapshots a destination should hold and does not, and
//! exactly the blobs they need that it lacks, copied from a source that
//! shares its master key (an off-site remote made by `snap remote init`, or
//! a local clone of one). Format-spec.md §25.
//!
//! A source pack all of whose blobs the destination lacks travels as it is
//! (its name, the hash of its bytes, checked on the way); other blobs
//! travel sealed, as stored, after they verified on the way out, into new
//! packs of the destination. A snapshot file is written only once every
//! pack holding what it needs is stored and indexed there, so an
//! interruption leaves nothing half-visible, and the next run sends only
//! what did not arrive (the destination's writer indexes, when it opens,
//! the packs an interrupted run stored but did not index). Nothing is ever
//! deleted or overwritten on the destination.

use crate::error::{Error, Result};
use crate::format::snapshot::Snapshot;
use crate::format::tree::Content;
use crate::id::{BlobRef, PackId, SnapshotId, TreeId};
use crate::index::{BlobLocation, PackInfo};
use crate::ops::walk::{self, Event, Flow};
use crate::progress::Progress;
use crate::repo::writer::BlobWriter;
use crate::repo::Repository;
use rayon::prelude::*;
use serde::Serialize;
use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
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
        dst,
        writer: BlobWriter::with_uploads(dst, opts.uploads),
        uploads: opts.uploads.max(1),
        visited: HashSet::new(),
        queued: HashSet::new(),
        by_pack: HashMap::new(),
        window: 0,
        blobs: AtomicU64::new(0),
        bytes: AtomicU64::new(0),
        send_failed: false,
        throttle: &throttle,
        progress,
    };
    let mut walked: Vec<SnapshotId> = Vec::new();
    let mut batch_start = 0u64;
    for (id, snap) in &todo {
        if let Err(e) = copier.copy_tree(snap.tree) {
            // A snapshot that cannot be walked (crafted, damaged): those
            // walked before it are finished and written before the error
            // goes up. Not after a failed send: what it lost is unknown.
            if !copier.send_failed {
                let _ = copier.commit(&mut walked, &mut sum);
            }
            return Err(Error::Usage(format!(
                "replicating snapshot {}: {e}; {} snapshot(s) before it were copied, what was sent stays, and the next run goes on from there",
                id.short(),
                sum.copied.len()
            )));
        }
        walked.push(*id);
        let bytes = copier.bytes.load(Ordering::Relaxed) + copier.window;
        if bytes - batch_start >= opts.batch_bytes {
            copier.commit(&mut walked, &mut sum)?;
            batch_start = copier.bytes.load(Ordering::Relaxed);
        }
    }
    copier.commit(&mut walked, &mut sum)?;
    sum.blobs_sent = copier.blobs.load(Ordering::Relaxed);
    sum.bytes_sent = copier.bytes.load(Ordering::Relaxed);
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
    dst: &'a Repository,
    writer: BlobWriter,
    uploads: usize,
    visited: HashSet<TreeId>,
    /// Blobs to send in the current window, by the source pack they are in.
    queued: HashSet<BlobRef>,
    by_pack: HashMap<PackId, Vec<(BlobRef, BlobLocation)>>,
    /// Their sealed bytes.
    window: u64,
    blobs: AtomicU64,
    bytes: AtomicU64,
    /// A send failed: what the window held may be half there.
    send_failed: bool,
    throttle: &'a Throttle,
    progress: &'a dyn Progress,
}

/// The bytes of blobs gathered before they are sent: large enough that a
/// source pack whose blobs all go is seen whole (and sent as it is),
/// bounded so that memory does not grow with the repository.
const WINDOW_BYTES: u64 = 1 << 30;
/// The blobs gathered at most (about 100 bytes each while they wait).
const WINDOW_BLOBS: usize = 500_000;

impl Copier<'_> {
    /// Gathers every blob under `root` the destination lacks, through the
    /// one tree walker (iterative, depth-bounded, cycle-safe, every entry
    /// validated). Each tree is walked whole (a tree present on the
    /// destination may be the part an interrupted run sent before its
    /// children): only trees already walked by this run are skipped. A tree
    /// is gathered after everything it names.
    fn copy_tree(&mut self, root: TreeId) -> Result<()> {
        let src = self.src;
        walk::walk(src, &root, &[], &mut |e| match e {
            Event::Enter { id, .. } => Ok(if self.visited.insert(*id) {
                Flow::Continue
            } else {
                Flow::Skip
            }),
            Event::Node { node, .. } => {
                let Some(c) = &node.content else {
                    return Ok(Flow::Continue);
                };
                let mut found: Vec<BlobRef> = Vec::new();
                if let Content::Groups(gs) = c {
                    found.extend(gs.iter().map(|g| BlobRef::from(g.id)));
                }
                src.for_each_chunk_group(c, &mut |group| {
                    found.extend(group.iter().map(|(id, _)| BlobRef::from(*id)));
                    Ok(())
                })?;
                for b in found {
                    self.want(b)?;
                }
                Ok(Flow::Continue)
            }
            Event::Leave { id, .. } => {
                self.want((*id).into())?;
                self.progress.file_done();
                Ok(Flow::Continue)
            }
            Event::Invalid { path, why, .. } => Err(Error::corrupt(
                format!("entry {}", walk::display_path(path)),
                why,
            )),
            Event::TreeError { error, .. } => Err(error),
        })
    }

    /// Sends what is gathered, waits until every pack is stored and
    /// indexed, then writes the files of the snapshots in `walked`.
    fn commit(&mut self, walked: &mut Vec<SnapshotId>, sum: &mut Summary) -> Result<()> {
        self.flush()?;
        let w = std::mem::replace(
            &mut self.writer,
            BlobWriter::with_uploads(self.dst, self.uploads),
        );
        sum.packs_written += w.finish()?.packs;
        write_snapshots(self.src, self.dst, walked, sum)
    }

    /// Notes `b` for sending if the destination lacks it.
    fn want(&mut self, b: BlobRef) -> Result<()> {
        if self.queued.contains(&b) || !self.writer.needs(&b)? {
            return Ok(());
        }
        let loc = self.src.locate(&b)?.ok_or_else(|| Error::Missing {
            object: format!("{:?} blob {}", b.kind, hex::encode(b.id)),
        })?;
        self.queued.insert(b);
        self.by_pack.entry(loc.pack).or_default().push((b, loc));
        self.window += loc.length as u64;
        if self.window >= WINDOW_BYTES || self.queued.len() >= WINDOW_BLOBS {
            self.flush()?;
        }
        Ok(())
    }

    /// Sends what the window gathered: a source pack all of whose blobs go
    /// is sent as it is (its name, the hash of its bytes, is checked on the
    /// way), several at once; the other blobs are read, opened and checked
    /// one by one, and go into new packs.
    fn flush(&mut self) -> Result<()> {
        let r = self.send_window();
        if r.is_err() {
            self.send_failed = true;
        }
        r
    }

    fn send_window(&mut self) -> Result<()> {
        let by_pack = std::mem::take(&mut self.by_pack);
        self.queued.clear();
        self.window = 0;
        let mut whole: Vec<(PackId, PackInfo)> = Vec::new();
        let mut single: Vec<BlobRef> = Vec::new();
        for (pack, blobs) in by_pack {
            match self.src.index().pack(&pack)? {
                Some(info) if info.blobs as usize == blobs.len() => whole.push((pack, info)),
                _ => single.extend(blobs.into_iter().map(|(b, _)| b)),
            }
        }
        let next = AtomicUsize::new(0);
        let failed: Mutex<Option<Error>> = Mutex::new(None);
        std::thread::scope(|s| {
            for _ in 0..self.uploads.min(whole.len()) {
                s.spawn(|| {
                    while failed.lock().expect("not poisoned").is_none() {
                        let i = next.fetch_add(1, Ordering::SeqCst);
                        let Some((id, info)) = whole.get(i) else {
                            break;
                        };
                        if let Err(e) = self.send_pack(id, info) {
                            failed.lock().expect("not poisoned").get_or_insert(e);
                        }
                    }
                });
            }
        });
        if let Some(e) = failed.into_inner().expect("not poisoned") {
            return Err(e);
        }
        single.par_iter().try_for_each(|b| {
            let (_, sealed, raw) = self.src.read_sealed(b)?;
            self.throttle.take(sealed.len() as u64);
            if self.writer.copy_sealed(*b, &sealed, raw)? {
                self.sent(1, sealed.len() as u64);
            }
            Ok::<(), Error>(())
        })?;
        self.dst.index().sync()
    }

    /// Sends source pack `id` as it is: read in pieces into a staging file
    /// of the destination (hashed on the way), then handed over whole, so
    /// that memory holds one piece per upload, never a pack.
    fn send_pack(&self, id: &PackId, info: &PackInfo) -> Result<()> {
        const PIECE: u64 = 8 << 20;
        let staging = self.dst.staging();
        let (path, mut out) = staging.create().map_err(|e| Error::io(staging.dir(), e))?;
        let res = (|| -> Result<u32> {
            let mut hasher = blake3::Hasher::new();
            let mut off = 0;
            while off < info.size {
                let len = PIECE.min(info.size - off);
                let piece =
                    self.src
                        .read_pack_range(id, Some(info.size), off, len, info.metadata)?;
                hasher.update(&piece);
                out.write_all(&piece).map_err(|e| Error::io(&path, e))?;
                self.throttle.take(len);
                off += len;
            }
            out.flush().map_err(|e| Error::io(&path, e))?;
            drop(out);
            if hasher.finalize().as_bytes() != &id.0 {
                return Err(Error::corrupt(
                    format!("pack {id}"),
                    "its bytes do not hash to its name: run `snap check --read-data` on the source",
                ));
            }
            self.dst.adopt_pack_file(id, &path, info.size)
        })();
        let _ = std::fs::remove_file(&path);
        self.sent(res? as u64, info.size);
        Ok(())
    }

    fn sent(&self, blobs: u64, bytes: u64) {
        self.blobs.fetch_add(blobs, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
        self.progress.bytes(bytes);
    }
}
