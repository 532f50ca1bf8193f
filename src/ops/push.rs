//! Push: walk sources (or read a stream), store what is new, record a snapshot.
//!
//! Files whose size, mtime, ctime and inode match the parent snapshot's entry
//! are not read again: the parent's chunk list is reused. Everything else is
//! read in windows, cut into chunks, hashed and sealed in parallel (Rayon)
//! and handed to the [`BlobWriter`]. Memory is bounded by the window size
//! times the number of threads plus the open packs, whatever the input.
//!
//! Two kinds of failure are kept apart. A source that cannot be read (a
//! file removed or unreadable, a directory that cannot be listed) is recorded
//! in the snapshot and the push goes on. A failure of the repository (a full
//! or read-only disk, EIO, a failed sync) stops the push: no snapshot is
//! written, since blobs it would name may not be stored.
//!
//! An unchanged file's chunk list is reused from the parent only when every
//! chunk it names is in the index: after a pack was lost or repaired away,
//! the file is read again and the missing chunks are stored anew.
//!
//! Sources are read with ordinary reads, not memory maps: a file truncated
//! while mapped would kill the process with SIGBUS, and a 3 a.m. backup must
//! survive logrotate. Packs, which never change, are the ones memory-mapped.

use crate::error::{Error, Result};
use crate::format::blob;
use crate::format::chunker::{Chunker, StreamChunker};
use crate::format::snapshot::{
    DumpCheck, Kind, PushError, RootMeta, Snapshot, Summary, SNAPSHOT_VERSION,
};
use crate::format::tree::{
    decode_records, encode_records, ends_group, split_groups, Content, ListRef, Node, NodeKind,
    Tree, INLINE_MAX,
};
use crate::id::{BlobKind, BlobRef, ChunkId, ListId, SnapshotId, TreeId};
use crate::ops::changes::Tracker;
use crate::ops::prune::GroupKey;
use crate::ops::walk::MAX_DEPTH;
use crate::progress::Progress;
use crate::repo::writer::BlobWriter;
use crate::repo::Repository;
use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use rayon::prelude::*;
use std::ffi::OsStr;
use std::fs::{File, Metadata};
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Files up to this size are read whole; larger ones in windows.
const SMALL_FILE: u64 = 4 * 1024 * 1024;
/// Entries whose mtime or ctime lies this close to the parent's start (or
/// after it) are read again.
const RACY_MARGIN_NS: i64 = 50_000_000;
/// Bytes read per window of a large file or stream.
const WINDOW: usize = 16 * 1024 * 1024;

/// What to record about a push.
#[derive(Clone, Debug, Default)]
pub struct PushOptions {
    /// Client site, if the push is per site.
    pub site: Option<String>,
    /// Files or db.
    pub kind: Option<Kind>,
    /// Plan level, or [`crate::format::snapshot::ADHOC`].
    pub level: u8,
    /// For an ad-hoc snapshot: how long after its time it expires.
    pub keep_for: Option<chrono::Duration>,
    /// Tags.
    pub tags: Vec<String>,
    /// Glob patterns of paths to leave out.
    pub excludes: Vec<String>,
    /// Read every file even when the parent says it is unchanged.
    pub force: bool,
    /// Use this parent instead of the latest matching snapshot.
    pub parent: Option<SnapshotId>,
    /// Snapshot time instead of now.
    pub time: Option<chrono::DateTime<chrono::FixedOffset>>,
    /// Host name to record.
    pub host: String,
    /// Mark the snapshot's changes as an alert when their ratio to the
    /// parent's entries exceeds this.
    pub alert_changed_ratio: Option<f64>,
    /// For a dump (a stream of kind db): judge it against the previous dump
    /// of its group with this shrink threshold (format-spec.md §11,
    /// `dump_check`). `None`: no check.
    pub min_dump_ratio: Option<f64>,
}

impl PushOptions {
    fn kind(&self) -> Kind {
        self.kind.unwrap_or(Kind::Files)
    }
}

#[derive(Default)]
struct Counters {
    new: AtomicU64,
    changed: AtomicU64,
    unchanged: AtomicU64,
    dirs: AtomicU64,
    read: AtomicU64,
    total: AtomicU64,
}

/// One push in progress.
pub struct Pusher<'a> {
    repo: &'a Repository,
    writer: BlobWriter,
    chunker: Chunker,
    opts: PushOptions,
    excludes: GlobSet,
    excludes_by_name: GlobSet,
    counters: Counters,
    errors: Mutex<Vec<PushError>>,
    skipped: Mutex<Vec<PushError>>,
    progress: &'a dyn Progress,
    started: Instant,
    time: chrono::DateTime<chrono::FixedOffset>,
    racy_after: AtomicI64,
    /// Ids of all-zero chunks by length, stored already: a sparse file's
    /// holes are then neither hashed nor looked up again.
    zero_chunks: Mutex<std::collections::HashMap<usize, ChunkId>>,
    root: Mutex<Option<RootMeta>>,
    /// Why the newest matching snapshot was not taken as the parent.
    parent_note: Mutex<Option<String>>,
    /// Counts the changes against the parent, when there is one.
    changes: Mutex<Option<Arc<Tracker>>>,
}

fn build_globs(patterns: &[String], with_slash: bool) -> Result<GlobSet> {
    let mut b = GlobSetBuilder::new();
    // A trailing '/' ("stats/") does not make a name pattern a path pattern.
    let trimmed = patterns.iter().map(|p| p.trim_end_matches('/'));
    for p in trimmed.filter(|p| p.contains('/') == with_slash) {
        let g = GlobBuilder::new(p)
            .literal_separator(true)
            .build()
            .map_err(|e| Error::Usage(format!("bad --exclude pattern {p:?}: {e}")))?;
        b.add(g);
    }
    b.build()
        .map_err(|e| Error::Usage(format!("bad --exclude patterns: {e}")))
}

/// The outcome of a push.
#[derive(Clone, Debug)]
pub struct PushOutcome {
    /// The new snapshot's id.
    pub id: SnapshotId,
    /// The snapshot.
    pub snapshot: Snapshot,
}

impl<'a> Pusher<'a> {
    /// Starts a push into `repo`, which must be open for writing.
    pub fn new(
        repo: &'a Repository,
        opts: PushOptions,
        progress: &'a dyn Progress,
    ) -> Result<Self> {
        let params = match opts.kind() {
            Kind::Files => repo.config.chunking.files,
            Kind::Db => repo.config.chunking.db,
        };
        let opts_time = opts
            .time
            .unwrap_or_else(|| chrono::Local::now().fixed_offset());
        Ok(Pusher {
            repo,
            writer: {
                let mut w = BlobWriter::new(repo);
                w.one_data_pack();
                w
            },
            chunker: Chunker::new(
                params,
                &repo
                    .keys()
                    .gear_for(repo.config.version, opts.kind() == Kind::Db),
            ),
            excludes: build_globs(&opts.excludes, true)?,
            excludes_by_name: build_globs(&opts.excludes, false)?,
            opts,
            counters: Counters::default(),
            errors: Mutex::default(),
            skipped: Mutex::default(),
            progress,
            started: Instant::now(),
            time: opts_time,
            racy_after: AtomicI64::new(i64::MIN),
            parent_note: Mutex::default(),
            zero_chunks: Mutex::default(),
            root: Mutex::default(),
            changes: Mutex::default(),
        })
    }

    fn problem(&self, path: &Path, message: impl Into<String>) {
        let message = message.into();
        let path = path.display().to_string();
        self.progress.warn(&path, &message);
        self.errors
            .lock()
            .expect("errors")
            .push(PushError { path, message });
    }

    fn skip(&self, path: &Path, message: &str) {
        let path = path.display().to_string();
        self.progress.warn(&path, message);
        self.skipped.lock().expect("skipped").push(PushError {
            path,
            message: message.into(),
        });
    }

    /// Why [`Pusher::find_parent`] passed over the newest matching snapshot
    /// (it was not written on this machine), for the user.
    pub fn parent_note(&self) -> Option<String> {
        self.parent_note.lock().expect("not poisoned").clone()
    }

    /// The snapshot a push of `paths` should take unchanged entries from.
    pub fn find_parent(&self, paths: &[String]) -> Result<Option<(SnapshotId, Snapshot)>> {
        let parent = if let Some(id) = self.opts.parent {
            Some((id, self.repo.load_snapshot(&id)?))
        } else {
            let kind = self.opts.kind();
            // A snapshot dated after this push (a wrong clock, a typo in
            // --time) is not what this push follows.
            let mut same = self.repo.snapshots()?.into_iter().rev().filter(|(_, s)| {
                s.timestamp() <= self.time
                    && s.host == self.opts.host
                    && s.site == self.opts.site
                    && s.kind == kind
                    && s.paths == paths
                    && s.command.is_none()
            });
            // Only a snapshot this machine wrote: a forged one would hand
            // its entries to every unchanged file (format-spec.md §16.2).
            let written = self.repo.written_here();
            let newest = same.next();
            match newest {
                Some((id, _)) if !written.contains(&id) => {
                    *self.parent_note.lock().expect("not poisoned") = Some(format!(
                        "snapshot {} was not written on this machine (it is not in {}):                          it is not trusted as the parent, so files it has are read again",
                        &id.to_hex()[..8],
                        crate::repo::journal::path(&self.repo.cache_dir().join("index")).display()
                    ));
                    same.find(|(id, _)| written.contains(id))
                }
                other => other,
            }
        };
        if let Some((_, s)) = &parent {
            // File times come from a coarse clock (a few ms per tick): a file
            // rewritten at the same size just after the parent read it can
            // keep the times the parent saw. Entries stamped within a margin
            // of the parent's start are therefore not trusted, but read again.
            // `time` may be set by the user (a day ahead, say): the start
            // the push's own clock recorded counts when it is earlier.
            let start = match s.push_started() {
                Some(w) if w < s.timestamp() => w.timestamp_nanos_opt(),
                _ => s.timestamp().timestamp_nanos_opt(),
            }
            .unwrap_or(i64::MIN);
            self.racy_after
                .store(start.saturating_sub(RACY_MARGIN_NS), Ordering::Relaxed);
        }
        Ok(parent)
    }

    fn excluded(&self, path: &Path, name: &OsStr) -> bool {
        self.excludes.is_match(path) || self.excludes_by_name.is_match(Path::new(name))
    }

    /// Saves directories and files; returns the root tree. One directory is
    /// saved as the root itself; several paths become entries of the root,
    /// named by their last component.
    pub fn save_paths(&self, paths: &[PathBuf], parent: Option<&Tree>) -> Result<TreeId> {
        if parent.is_some() {
            *self.changes.lock().expect("not poisoned") = Some(Arc::default());
        }
        if let [one] = paths {
            let md = std::fs::symlink_metadata(one).map_err(|e| Error::source(one, e))?;
            if md.is_dir() {
                self.counters.dirs.fetch_add(1, Ordering::Relaxed);
                *self.root.lock().expect("root") = Some(RootMeta::of(&md));
                return self.save_dir(one, parent, 1);
            }
        }
        let mut names = std::collections::HashSet::new();
        for p in paths {
            let name = p.file_name().ok_or_else(|| {
                Error::Usage(format!(
                    "{} has no file name to store it under",
                    p.display()
                ))
            })?;
            if !names.insert(name.to_os_string()) {
                return Err(Error::Usage(format!(
                    "two sources are named {name:?}; push them separately"
                )));
            }
            std::fs::symlink_metadata(p).map_err(|e| Error::source(p, e))?;
        }
        let nodes: Vec<Option<Node>> = paths
            .par_iter()
            .map(|p| {
                let name = p.file_name().expect("checked above");
                self.save_entry(p, name, parent.and_then(|t| t.get(name.as_bytes())), 1)
            })
            .collect::<Result<_>>()?;
        let nodes: Vec<Node> = nodes.into_iter().flatten().collect();
        let listed: Vec<&[u8]> = paths
            .iter()
            .filter_map(|p| p.file_name())
            .map(|n| n.as_bytes())
            .collect();
        self.track(Path::new("/"), parent, &listed, &nodes);
        self.store_tree(Path::new("/"), Tree::new(nodes))
    }

    /// Stores the tree of `dir`. One too large for readers (§8) is a problem
    /// of that source directory, not of the repository.
    fn store_tree(&self, dir: &Path, t: Tree) -> Result<TreeId> {
        let bytes = t.encode();
        if bytes.len() > blob::MAX_TREE as usize {
            return Err(Error::source(
                dir,
                std::io::Error::other(format!(
                    "its listing takes {} bytes, more than the {} a snapshot's tree may hold: exclude part of it",
                    bytes.len(),
                    blob::MAX_TREE
                )),
            ));
        }
        let (id, _) = self.writer.store_new(BlobKind::Tree, &bytes)?;
        Ok(TreeId(id))
    }

    /// Saves a directory whose tree is `level` levels deep (the root tree
    /// is level 1).
    fn save_dir(&self, dir: &Path, parent: Option<&Tree>, level: usize) -> Result<TreeId> {
        let mut entries = Vec::new();
        for e in std::fs::read_dir(dir).map_err(|e| Error::source(dir, e))? {
            match e {
                Ok(e) => {
                    let (name, path) = (e.file_name(), e.path());
                    if !self.excluded(&path, &name) {
                        entries.push((name, path));
                    }
                }
                Err(err) => self.problem(dir, format!("reading the directory: {err}")),
            }
        }
        entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
        let nodes: Vec<Option<Node>> = entries
            .par_iter()
            .map(|(name, path)| {
                self.save_entry(
                    path,
                    name,
                    parent.and_then(|t| t.get(name.as_bytes())),
                    level,
                )
            })
            .collect::<Result<_>>()?;
        let nodes: Vec<Node> = nodes.into_iter().flatten().collect();
        let listed: Vec<&[u8]> = entries.iter().map(|(n, _)| n.as_bytes()).collect();
        self.track(dir, parent, &listed, &nodes);
        self.store_tree(dir, Tree::new(nodes))
    }

    /// Counts a directory's changes against its parent tree (none: a new
    /// directory, all added), when the push has a parent.
    fn track(&self, dir: &Path, parent: Option<&Tree>, listed: &[&[u8]], saved: &[Node]) {
        let Some(t) = self.changes.lock().expect("not poisoned").clone() else {
            return;
        };
        let empty = Tree::new(Vec::new());
        t.directory(self.repo, dir, parent.unwrap_or(&empty), listed, saved);
    }

    /// Saves one entry of a tree `level` levels deep. `Ok(None)`: a source problem, recorded, and the
    /// entry left out; `Err`: the repository failed and the push must stop.
    fn save_entry(
        &self,
        path: &Path,
        name: &OsStr,
        prev: Option<&Node>,
        level: usize,
    ) -> Result<Option<Node>> {
        let md = match std::fs::symlink_metadata(path) {
            Ok(md) => md,
            Err(e) => {
                self.problem(path, format!("cannot read metadata ({e}); not saved"));
                return Ok(None);
            }
        };
        let ft = md.file_type();
        let mut node = node_from_metadata(name.as_bytes(), &md);
        if ft.is_dir() {
            self.counters.dirs.fetch_add(1, Ordering::Relaxed);
            let prev_tree = prev
                .filter(|n| n.kind == NodeKind::Dir)
                .and_then(|n| n.subtree)
                .and_then(|id| self.repo.load_tree(&id).ok());
            if level >= MAX_DEPTH {
                // Readers refuse deeper trees (format-spec.md §10.1).
                self.problem(
                    path,
                    format!(
                        "nested deeper than the {MAX_DEPTH} levels a snapshot may hold; not saved"
                    ),
                );
                return Ok(None);
            }
            match self.save_dir(path, prev_tree.as_ref(), level + 1) {
                Ok(id) => node.subtree = Some(id),
                Err(e) if e.is_source() => {
                    self.problem(path, format!("directory not saved: {e}"));
                    node.subtree = Some(self.store_tree(path, Tree::new(Vec::new()))?);
                    node.error = Some(e.to_string());
                }
                Err(e) => return Err(e),
            }
        } else if ft.is_symlink() {
            node.kind = NodeKind::Symlink;
            match std::fs::read_link(path) {
                Ok(t) => node.target = Some(t.as_os_str().as_bytes().to_vec()),
                Err(e) => {
                    self.problem(path, format!("cannot read symlink ({e}); not saved"));
                    return Ok(None);
                }
            }
        } else if ft.is_file() {
            return self.save_file(path, &md, prev, node);
        } else if ft.is_fifo() {
            node.kind = NodeKind::Fifo;
        } else if ft.is_char_device() || ft.is_block_device() {
            node.kind = if ft.is_char_device() {
                NodeKind::Chardev
            } else {
                NodeKind::Blockdev
            };
            node.rdev = Some(md.rdev());
        } else {
            self.skip(path, "socket: skipped (a socket has no contents to save)");
            return Ok(None);
        }
        Ok(Some(node))
    }

    /// Whether every blob `c` names is stored (or being stored by this
    /// push), so that a parent's chunk list can be reused as it is.
    fn content_stored(&self, c: &Content) -> Result<bool> {
        let all_stored = |records: &[u8], what: &dyn Fn() -> String| -> Result<bool> {
            let Ok(list) = decode_records(records, what) else {
                return Ok(false);
            };
            for (id, _) in list {
                if self.writer.needs(&BlobRef::from(id))? {
                    return Ok(false);
                }
            }
            Ok(true)
        };
        match c {
            Content::Inline(r) => all_stored(r, &|| "the parent's chunk list".into()),
            Content::Groups(gs) => {
                for g in gs {
                    // Fails when the list blob is not indexed.
                    let Ok(bytes) = self.repo.read_blob(&g.id.into()) else {
                        return Ok(false);
                    };
                    if !all_stored(&bytes, &|| format!("chunk list {}", g.id))? {
                        return Ok(false);
                    }
                }
                Ok(true)
            }
        }
    }

    fn save_file(
        &self,
        path: &Path,
        md: &Metadata,
        prev: Option<&Node>,
        mut node: Node,
    ) -> Result<Option<Node>> {
        let same_stat = !self.opts.force
            && prev.is_some_and(|p| {
                p.kind == NodeKind::File
                    && p.error.is_none()
                    && p.content.is_some()
                    && p.size == node.size
                    && (p.mtime, p.mtime_ns) == (node.mtime, node.mtime_ns)
                    && (p.ctime, p.ctime_ns) == (node.ctime, node.ctime_ns)
                    && p.inode == node.inode
                    && stamp_ns(p.mtime, p.mtime_ns).max(stamp_ns(p.ctime, p.ctime_ns))
                        < self.racy_after.load(Ordering::Relaxed)
            });
        let reused = match prev.and_then(|p| p.content.as_ref()) {
            Some(c) if same_stat && self.content_stored(c)? => Some(c.clone()),
            _ => None,
        };
        if let Some(content) = reused {
            node.content = Some(content);
            self.counters.total.fetch_add(node.size, Ordering::Relaxed);
            self.counters.unchanged.fetch_add(1, Ordering::Relaxed);
            self.progress.file_done();
            return Ok(Some(node));
        }
        let file = match File::open(path) {
            Ok(f) => f,
            Err(e) => {
                self.problem(path, format!("cannot open ({e}); not saved"));
                return Ok(None);
            }
        };
        let res = if md.len() <= SMALL_FILE {
            self.store_small(path, file, md.len())
        } else {
            if md.blocks() * 512 < md.len() {
                // Sparse: holes are not read (a 5 GiB disk image with little
                // data costs what its data costs).
                self.store_stream(path, crate::ops::sparse::HoleSkipping::new(file, md.len()))
            } else {
                self.store_stream(path, file)
            }
        };
        match res {
            Ok((content, len)) => {
                node.content = Some(content);
                node.size = len;
                let counter = if prev.is_some() {
                    &self.counters.changed
                } else {
                    &self.counters.new
                };
                counter.fetch_add(1, Ordering::Relaxed);
                self.counters.total.fetch_add(len, Ordering::Relaxed);
                if let Ok(after) = std::fs::symlink_metadata(path) {
                    if after.len() != md.len()
                        || after.mtime() != md.mtime()
                        || after.mtime_nsec() != md.mtime_nsec()
                    {
                        let msg =
                            "changed while being read; the saved copy may mix old and new contents";
                        self.problem(path, msg);
                        node.error = Some(msg.into());
                    }
                }
                self.progress.file_done();
                Ok(Some(node))
            }
            Err(Error::Source { source, .. }) => {
                self.problem(path, format!("read failed ({source}); not saved"));
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    fn store_small(&self, path: &Path, mut f: File, size: u64) -> Result<(Content, u64)> {
        let mut buf = Vec::with_capacity(size as usize + 1);
        f.read_to_end(&mut buf)
            .map_err(|e| Error::source(path, e))?;
        self.counters
            .read
            .fetch_add(buf.len() as u64, Ordering::Relaxed);
        self.progress.bytes(buf.len() as u64);
        let mut list = ListBuilder::default();
        let lens = self.chunker.lengths(&buf);
        for rec in self.store_chunks(&buf, &lens)? {
            list.push(rec, &self.writer)?;
        }
        Ok((list.finish(&self.writer)?, buf.len() as u64))
    }

    /// Reads a stream (the source at `path`) to its end and stores it;
    /// returns its chunk list and length.
    pub fn store_stream(&self, path: &Path, r: impl Read + Send) -> Result<(Content, u64)> {
        let mut sc = StreamChunker::new(r, self.chunker.clone(), WINDOW);
        let mut list = ListBuilder::default();
        let mut total = 0u64;
        let mut batch = sc.next_batch().map_err(|e| Error::source(path, e))?;
        while !batch.lens.is_empty() {
            total += batch.data.len() as u64;
            self.counters
                .read
                .fetch_add(batch.data.len() as u64, Ordering::Relaxed);
            self.progress.bytes(batch.data.len() as u64);
            // Read and cut the next window while this one is hashed and sealed.
            let (stored, next) = rayon::join(
                || self.store_chunks(&batch.data, &batch.lens),
                || sc.next_batch(),
            );
            for rec in stored? {
                list.push(rec, &self.writer)?;
            }
            let next = next.map_err(|e| Error::source(path, e))?;
            sc.recycle(std::mem::replace(&mut batch, next));
        }
        Ok((list.finish(&self.writer)?, total))
    }

    fn store_chunks(&self, buf: &[u8], lens: &[usize]) -> Result<Vec<(ChunkId, u32)>> {
        let mut slices = Vec::with_capacity(lens.len());
        let mut pos = 0;
        for &l in lens {
            slices.push(&buf[pos..pos + l]);
            pos += l;
        }
        let store = |s: &&[u8]| -> Result<(ChunkId, u32)> {
            let zero = s.iter().all(|&b| b == 0);
            if zero {
                if let Some(id) = self.zero_chunks.lock().expect("zero chunks").get(&s.len()) {
                    return Ok((*id, s.len() as u32));
                }
            }
            let id = ChunkId(self.repo.keys().blob_id(s));
            self.writer.store(BlobRef::from(id), s)?;
            if zero {
                self.zero_chunks
                    .lock()
                    .expect("zero chunks")
                    .insert(s.len(), id);
            }
            Ok((id, s.len() as u32))
        };
        if slices.len() == 1 {
            return slices.iter().map(store).collect();
        }
        slices.par_iter().map(store).collect()
    }

    /// Saves a stream (a database dump) as a single file named `name`.
    pub fn save_stream(&self, name: &str, r: impl Read + Send) -> Result<TreeId> {
        if name.is_empty() || name.contains('/') {
            return Err(Error::Usage(format!(
                "--name {name:?} must be a plain file name, such as client_a.sql"
            )));
        }
        let (content, len) = self.store_stream(Path::new(name), r)?;
        self.counters.new.fetch_add(1, Ordering::Relaxed);
        self.counters.total.fetch_add(len, Ordering::Relaxed);
        let now = self.time;
        // SAFETY: getuid/getgid cannot fail.
        let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
        let node = Node {
            name: name.as_bytes().to_vec(),
            kind: NodeKind::File,
            mode: 0o600,
            uid,
            gid,
            mtime: now.timestamp(),
            mtime_ns: now.timestamp_subsec_nanos(),
            ctime: now.timestamp(),
            ctime_ns: now.timestamp_subsec_nanos(),
            inode: 0,
            dev: 0,
            nlink: 1,
            size: len,
            content: Some(content),
            subtree: None,
            target: None,
            rdev: None,
            error: None,
        };
        self.store_tree(Path::new(name), Tree::new(vec![node]))
    }

    /// Flushes every pack and writes the snapshot file.
    pub fn commit(
        self,
        tree: TreeId,
        paths: Vec<String>,
        parent: Option<SnapshotId>,
        command: Option<Vec<String>>,
    ) -> Result<PushOutcome> {
        let time = self.time;
        let ws = self.writer.finish()?;
        let c = &self.counters;
        let errors = self.errors.into_inner().expect("errors");
        let skipped = self.skipped.into_inner().expect("skipped");
        let snapshot = Snapshot {
            version: SNAPSHOT_VERSION,
            time: time.to_rfc3339_opts(chrono::SecondsFormat::Nanos, false),
            host: self.opts.host.clone(),
            site: self.opts.site.clone(),
            kind: self.opts.kind(),
            level: self.opts.level,
            tags: self.opts.tags.clone(),
            paths,
            tree,
            parent,
            command,
            complete: errors.is_empty(),
            errors,
            skipped,
            written: Some(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)),
            root: self.root.into_inner().expect("root"),
            changes: None,
            expires: self
                .opts
                .keep_for
                .map(|d| (time.to_utc() + d).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
            dump_check: None,
            summary: Summary {
                files_new: c.new.load(Ordering::Relaxed),
                files_changed: c.changed.load(Ordering::Relaxed),
                files_unchanged: c.unchanged.load(Ordering::Relaxed),
                dirs: c.dirs.load(Ordering::Relaxed),
                bytes_read: c.read.load(Ordering::Relaxed),
                bytes_total: c.total.load(Ordering::Relaxed),
                bytes_added: ws.raw_bytes,
                bytes_stored: ws.stored_bytes,
                blobs_added: ws.blobs,
                duration_ms: self.started.elapsed().as_millis() as u64,
            },
        };
        let mut snapshot = snapshot;
        snapshot.changes = self
            .changes
            .into_inner()
            .expect("not poisoned")
            .and_then(Arc::into_inner)
            .map(|t| {
                let mut c = t.finish();
                c.alert = self.opts.alert_changed_ratio.is_some_and(|r| c.ratio() > r);
                c
            });
        if let Some(ratio) = self
            .opts
            .min_dump_ratio
            .filter(|_| snapshot.kind == Kind::Db)
        {
            let previous = previous_dump(self.repo, &snapshot)?;
            snapshot.dump_check = DumpCheck::judge(
                snapshot.summary.bytes_total,
                previous.map(|(id, s)| (id, s.summary.bytes_total)),
                ratio,
            );
        }
        let id = self.repo.save_snapshot(&snapshot)?;
        Ok(PushOutcome { id, snapshot })
    }
}

/// The dump `s` follows: its parent, else the newest snapshot of its
/// group not dated after it.
fn previous_dump(repo: &Repository, s: &Snapshot) -> Result<Option<(SnapshotId, Snapshot)>> {
    if let Some(id) = s.parent {
        return Ok(Some((id, repo.load_snapshot(&id)?)));
    }
    let group = GroupKey::of(s);
    let time = s.timestamp();
    Ok(repo
        .snapshots()?
        .into_iter()
        .rev()
        .find(|(_, p)| p.timestamp() <= time && GroupKey::of(p) == group))
}

fn stamp_ns(secs: i64, nanos: u32) -> i64 {
    secs.saturating_mul(1_000_000_000)
        .saturating_add(nanos as i64)
}

/// A tree entry for the file-system entry `md` named `name`: kind (file or
/// directory; the caller sets others), times, owner, mode, inode and size.
pub(crate) fn node_from_metadata(name: &[u8], md: &Metadata) -> Node {
    Node {
        name: name.to_vec(),
        kind: if md.is_dir() {
            NodeKind::Dir
        } else {
            NodeKind::File
        },
        mode: md.mode() & 0o7777,
        uid: md.uid(),
        gid: md.gid(),
        mtime: md.mtime(),
        mtime_ns: md.mtime_nsec() as u32,
        ctime: md.ctime(),
        ctime_ns: md.ctime_nsec() as u32,
        inode: md.ino(),
        dev: md.dev(),
        nlink: md.nlink(),
        size: if md.is_file() { md.len() } else { 0 },
        content: None,
        subtree: None,
        target: None,
        rdev: None,
        error: None,
    }
}

/// Accumulates a file's chunk records; spills them into List blobs once the
/// list is too long to keep inline, so memory stays bounded.
#[derive(Default)]
struct ListBuilder {
    current: Vec<(ChunkId, u32)>,
    groups: Vec<ListRef>,
    spilled: bool,
}

impl ListBuilder {
    fn push(&mut self, rec: (ChunkId, u32), w: &BlobWriter) -> Result<()> {
        self.current.push(rec);
        if !self.spilled {
            if self.current.len() <= INLINE_MAX {
                return Ok(());
            }
            self.spilled = true;
            let all = std::mem::take(&mut self.current);
            let groups = split_groups(&all);
            let (last, done) = groups.split_last().expect("more than INLINE_MAX records");
            for g in done {
                self.flush(g, w)?;
            }
            self.current = last.to_vec();
        }
        if ends_group(
            self.current.len(),
            &self.current.last().expect("just pushed").0,
        ) {
            let g = std::mem::take(&mut self.current);
            self.flush(&g, w)?;
        }
        Ok(())
    }

    fn flush(&mut self, g: &[(ChunkId, u32)], w: &BlobWriter) -> Result<()> {
        let (id, _) = w.store_new(BlobKind::List, &encode_records(g))?;
        self.groups.push(ListRef {
            id: ListId(id),
            bytes: g.iter().map(|(_, l)| *l as u64).sum(),
            chunks: g.len() as u32,
        });
        Ok(())
    }

    fn finish(mut self, w: &BlobWriter) -> Result<Content> {
        if !self.spilled {
            return Ok(Content::Inline(encode_records(&self.current)));
        }
        if !self.current.is_empty() {
            let g = std::mem::take(&mut self.current);
            self.flush(&g, w)?;
        }
        Ok(Content::Groups(self.groups))
    }
}
