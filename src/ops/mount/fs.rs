//! The FUSE file system: answers the kernel from the current [`View`] and
//! the shared [`ReadCache`]. Read-only: every call that would change
//! anything answers `EROFS` (the mount is read-only as well, so the kernel
//! refuses most of them first).
//!
//! Contents never change under an inode (see [`super::inodes`]), so the
//! kernel may keep file pages and attributes: entries inside snapshots are
//! cached for [`SNAPSHOT_TTL`], the directories above them for
//! [`VIRTUAL_TTL`] (they change when snapshots come and go).

use super::inodes::{Inode, Inodes, What};
use super::layout::Child;
use super::view::{View, Views};
use crate::error::Result;
use crate::format::tree::{decode_records, ChunkRecord, Content, Node, NodeKind, Tree};
use crate::ops::cache::{FileReader, ReadCache};
use crate::ops::walk::{self, MAX_DEPTH};
use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo,
    KernelConfig, LockOwner, OpenAccMode, OpenFlags, ReplyAttr, ReplyData, ReplyDirectory,
    ReplyDirectoryPlus, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, Request,
};
use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How long the kernel may keep what it learnt of an entry in a snapshot.
pub const SNAPSHOT_TTL: Duration = Duration::from_secs(300);
/// How long for the directories above the snapshots.
pub const VIRTUAL_TTL: Duration = Duration::from_secs(1);
/// How far ahead of a file read in order its chunks are fetched.
const READ_AHEAD: u64 = 16 << 20;
/// Threads that fetch ahead.
const PREFETCHERS: usize = 2;

/// An open file.
struct OpenFile {
    reader: FileReader,
    path: Arc<str>,
    short: String,
    /// Where the next read starts if the file is read in order.
    next: AtomicU64,
    /// Up to where chunks were asked for ahead.
    ahead: AtomicU64,
}

/// What to fetch ahead.
enum Prefetch {
    /// A range of an open file read in order.
    Range {
        view: Arc<View>,
        file: Arc<OpenFile>,
        from: u64,
        len: u64,
    },
    /// Chunks of the small files of a directory just listed (`cp -r`,
    /// `grep -r` read them next, one at a time).
    Chunks {
        view: Arc<View>,
        chunks: Vec<ChunkRecord>,
    },
}

/// Most bytes of small files fetched ahead per directory listed.
const DIR_AHEAD: u64 = 16 << 20;
/// Files up to this size count as small.
const SMALL_FILE: u64 = 1 << 20;
/// Chunks per job, so that both fetching threads get a share.
const CHUNKS_PER_JOB: usize = 8;

/// The mounted repository.
pub struct SnapFs {
    views: Arc<Views>,
    cache: Arc<ReadCache>,
    inodes: Mutex<Inodes>,
    /// Readers of the files read, by inode number: the kernel opens files
    /// without asking (FUSE_NO_OPEN_SUPPORT), so a read names the inode
    /// and no handle. Dropped when the kernel forgets the inode.
    files: Mutex<HashMap<u64, Arc<OpenFile>>>,
    /// Whether the kernel opens files without asking once `open` answers
    /// ENOSYS.
    no_open: std::sync::atomic::AtomicBool,
    uid: u32,
    gid: u32,
    warn: Arc<dyn Fn(String) + Send + Sync>,
    prefetch: crossbeam_channel::Sender<Prefetch>,
}

fn time(sec: i64, ns: u32) -> SystemTime {
    let ns = Duration::from_nanos(ns.min(999_999_999) as u64);
    let t = if sec >= 0 {
        UNIX_EPOCH.checked_add(Duration::from_secs(sec as u64))
    } else {
        UNIX_EPOCH.checked_sub(Duration::from_secs(sec.unsigned_abs()))
    };
    t.and_then(|t| t.checked_add(ns)).unwrap_or(UNIX_EPOCH)
}

/// A device number as the kernel's `new_encode_dev` packs it into 32 bits.
fn rdev32(rdev: u64) -> u32 {
    let (major, minor) = (libc::major(rdev) as u32, libc::minor(rdev) as u32);
    (minor & 0xff) | ((major & 0xfff) << 8) | ((minor & !0xff) << 12)
}

fn kind(k: NodeKind) -> FileType {
    match k {
        NodeKind::File => FileType::RegularFile,
        NodeKind::Dir => FileType::Directory,
        NodeKind::Symlink => FileType::Symlink,
        NodeKind::Fifo => FileType::NamedPipe,
        NodeKind::Chardev => FileType::CharDevice,
        NodeKind::Blockdev => FileType::BlockDevice,
    }
}

fn what_kind(w: &What) -> FileType {
    match w {
        What::Virtual(_) | What::Root(..) => FileType::Directory,
        What::Node { node, .. } => kind(node.kind),
    }
}

impl SnapFs {
    /// The file system over `views`, with a cache of `cache_bytes`; files
    /// above the snapshots belong to `uid`/`gid` (the mounting user).
    pub fn new(
        views: Views,
        cache_bytes: usize,
        uid: u32,
        gid: u32,
        warn: Arc<dyn Fn(String) + Send + Sync>,
    ) -> SnapFs {
        let cache = Arc::new(ReadCache::new(cache_bytes));
        let views = Arc::new(views);
        let (tx, rx) = crossbeam_channel::bounded::<Prefetch>(256);
        for _ in 0..PREFETCHERS {
            let rx = rx.clone();
            let cache = cache.clone();
            std::thread::spawn(move || {
                for p in rx {
                    prefetch(&cache, &p);
                }
            });
        }
        SnapFs {
            views,
            cache,
            inodes: Mutex::new(Inodes::new()),
            files: Mutex::new(HashMap::new()),
            no_open: std::sync::atomic::AtomicBool::new(false),
            uid,
            gid,
            warn,
            prefetch: tx,
        }
    }

    fn inode(&self, ino: INodeNo) -> Option<Inode> {
        self.inodes
            .lock()
            .expect("not poisoned")
            .get(ino.0)
            .cloned()
    }

    fn attr(&self, ino: u64, what: &What, view: &View) -> FileAttr {
        let base = FileAttr {
            ino: INodeNo(ino),
            size: 0,
            blocks: 0,
            atime: view.since,
            mtime: view.since,
            ctime: view.since,
            crtime: view.since,
            kind: FileType::Directory,
            perm: 0o555,
            nlink: 2,
            uid: self.uid,
            gid: self.gid,
            rdev: 0,
            blksize: 128 * 1024,
            flags: 0,
        };
        match what {
            What::Virtual(_) => base,
            What::Root(_, snap) => {
                let t = time(snap.timestamp().timestamp(), 0);
                let mut a = FileAttr {
                    atime: t,
                    mtime: t,
                    ctime: t,
                    crtime: t,
                    perm: 0o755,
                    ..base
                };
                if let Some(r) = &snap.root {
                    a.perm = (r.mode & 0o7777) as u16;
                    a.uid = r.uid;
                    a.gid = r.gid;
                    a.mtime = time(r.mtime, r.mtime_ns);
                    a.atime = a.mtime;
                }
                a
            }
            What::Node { node: n, .. } => {
                let size = match n.kind {
                    NodeKind::File => n.size,
                    NodeKind::Symlink => n.target.as_ref().map_or(0, |t| t.len() as u64),
                    _ => 0,
                };
                let mtime = time(n.mtime, n.mtime_ns);
                FileAttr {
                    size,
                    blocks: size.div_ceil(512),
                    atime: mtime,
                    mtime,
                    ctime: time(n.ctime, n.ctime_ns),
                    crtime: mtime,
                    kind: kind(n.kind),
                    perm: (n.mode & 0o7777) as u16,
                    nlink: n.nlink.clamp(1, u32::MAX as u64) as u32,
                    uid: n.uid,
                    gid: n.gid,
                    rdev: n.rdev.map_or(0, rdev32),
                    ..base
                }
            }
        }
    }

    fn ttl(what: &What) -> Duration {
        match what {
            What::Virtual(_) => VIRTUAL_TTL,
            _ => SNAPSHOT_TTL,
        }
    }

    /// Runs `f` on the current view; when it fails, once more on a newer
    /// view (a prune may have moved or removed the blob), then reports the
    /// failure with the path and answers EIO.
    fn on_view<T>(
        &self,
        path: &str,
        f: &dyn Fn(&View) -> Result<T>,
    ) -> std::result::Result<T, Errno> {
        let view = self.views.get();
        let err = match f(&view) {
            Ok(v) => return Ok(v),
            Err(e) => e,
        };
        let err = match self.views.after_error(&view) {
            Some(newer) => match f(&newer) {
                Ok(v) => return Ok(v),
                Err(e) => e,
            },
            None => err,
        };
        (self.warn)(format!(
            "reading {path}: {err}; a snapshot that was pruned is gone (see `snap snapshots`), else run `snap check`"
        ));
        Err(Errno::EIO)
    }

    /// The tree a directory inode lists, the snapshot it belongs to and its
    /// root inode.
    fn dir_tree(
        &self,
        ino: u64,
        what: &What,
    ) -> Option<(crate::id::TreeId, crate::id::SnapshotId, u64)> {
        match what {
            What::Root(id, snap) => Some((snap.tree, *id, ino)),
            What::Node {
                snap, root, node, ..
            } if node.kind == NodeKind::Dir => node.subtree.map(|t| (t, *snap, *root)),
            _ => None,
        }
    }

    fn load_tree(
        &self,
        path: &str,
        id: &crate::id::TreeId,
    ) -> std::result::Result<Arc<Tree>, Errno> {
        self.on_view(path, &|v| self.cache.tree(&v.repo, id))
    }

    /// An entry of a tree as the mount shows it, once validated.
    fn entry_of(
        &self,
        dir_path: &str,
        node: &Node,
        snap: crate::id::SnapshotId,
        root: u64,
    ) -> std::result::Result<What, Errno> {
        if let Err(why) = walk::validate(node) {
            (self.warn)(format!(
                "{dir_path}/{} is not shown: {why}; the tree was crafted or damaged, run `snap check`",
                String::from_utf8_lossy(&node.name)
            ));
            return Err(Errno::EIO);
        }
        Ok(What::Node {
            snap,
            root,
            node: Arc::new(node.clone()),
        })
    }

    /// The entries of directory `ino` from `offset` on: the offset of the
    /// next one, the name, and what it is (none for `.` and `..`); and
    /// whether the directory lies above the snapshots.
    #[allow(clippy::type_complexity)]
    fn listing(
        &self,
        ino: INodeNo,
        offset: u64,
    ) -> std::result::Result<(Vec<(u64, Vec<u8>, Option<What>)>, bool), Errno> {
        let i = self.inode(ino).ok_or(Errno::ENOENT)?;
        let dots = [b".".to_vec(), b"..".to_vec()];
        let mut out: Vec<(u64, Vec<u8>, Option<What>)> = Vec::new();
        for (n, d) in dots.into_iter().enumerate().skip(offset as usize) {
            out.push((n as u64 + 1, d, None));
        }
        // Offsets count entries of the whole directory, the dots first.
        let skip = (offset as usize).saturating_sub(2);
        match &i.what {
            What::Virtual(dir) => {
                let view = self.views.fresh();
                for (n, (name, child)) in view.catalog.list(dir).iter().enumerate().skip(skip) {
                    let what = match child {
                        Child::Dir(d) => What::Virtual(d.clone()),
                        Child::Snapshot(id) => match view.catalog.snapshot(id) {
                            Some(s) => What::Root(*id, s.clone()),
                            None => continue,
                        },
                    };
                    out.push(((n + 3) as u64, name.as_bytes().to_vec(), Some(what)));
                }
                Ok((out, true))
            }
            other => {
                let (tree, snap, root) = self.dir_tree(ino.0, other).ok_or(Errno::ENOTDIR)?;
                let tree = self.load_tree(&i.path, &tree)?;
                if offset == 0 {
                    self.read_dir_ahead(&tree);
                }
                for (n, node) in tree.entries.iter().enumerate().skip(skip) {
                    let Ok(what) = self.entry_of(&i.path, node, snap, root) else {
                        continue;
                    };
                    out.push(((n + 3) as u64, node.name.clone(), Some(what)));
                }
                Ok((out, false))
            }
        }
    }

    /// The reader of the regular file `ino`, made on its first use.
    fn open_file(&self, ino: u64) -> std::result::Result<Arc<OpenFile>, Errno> {
        if let Some(f) = self.files.lock().expect("not poisoned").get(&ino) {
            return Ok(f.clone());
        }
        let i = self.inode(INodeNo(ino)).ok_or(Errno::ENOENT)?;
        let (node, snap) = match &i.what {
            What::Node { node, snap, .. } if node.kind == NodeKind::File => (node.clone(), *snap),
            _ => return Err(Errno::EINVAL),
        };
        let reader = self.cache.file(&node).map_err(|e| {
            (self.warn)(format!("opening {}: {e}; run `snap check`", i.path));
            Errno::EIO
        })?;
        let file = Arc::new(OpenFile {
            reader,
            path: i.path.clone(),
            short: snap.short(),
            next: AtomicU64::new(0),
            ahead: AtomicU64::new(0),
        });
        Ok(self
            .files
            .lock()
            .expect("not poisoned")
            .entry(ino)
            .or_insert(file)
            .clone())
    }

    /// Fetches ahead of a file read in order.
    fn read_ahead(&self, view: Arc<View>, file: &Arc<OpenFile>, offset: u64, end: u64) {
        let in_order = file.next.swap(end, Ordering::Relaxed) == offset;
        if !in_order || end >= file.reader.size() {
            return;
        }
        let ahead = file.ahead.load(Ordering::Relaxed);
        if ahead >= end + READ_AHEAD / 2 {
            return;
        }
        let from = ahead.max(end);
        let to = (end + READ_AHEAD).min(file.reader.size());
        if from >= to {
            return;
        }
        file.ahead.store(to, Ordering::Relaxed);
        let _ = self.prefetch.try_send(Prefetch::Range {
            view,
            file: file.clone(),
            from,
            len: to - from,
        });
    }

    /// Fetches ahead the small files of a directory being listed.
    fn read_dir_ahead(&self, tree: &Tree) {
        let view = self.views.get();
        let mut total = 0u64;
        let mut job = Vec::new();
        for node in &tree.entries {
            let Some(Content::Inline(records)) = &node.content else {
                continue;
            };
            if node.kind != NodeKind::File
                || node.size > SMALL_FILE
                || walk::validate(node).is_err()
            {
                continue;
            }
            if total + node.size > DIR_AHEAD {
                break;
            }
            total += node.size;
            let Ok(records) = decode_records(records, &|| "inline chunk list".into()) else {
                continue;
            };
            job.extend(
                records
                    .into_iter()
                    .filter(|(id, _)| !self.cache.holds_chunk(id)),
            );
            if job.len() >= CHUNKS_PER_JOB {
                let chunks = std::mem::take(&mut job);
                if self
                    .prefetch
                    .try_send(Prefetch::Chunks {
                        view: view.clone(),
                        chunks,
                    })
                    .is_err()
                {
                    return;
                }
            }
        }
        if !job.is_empty() {
            let _ = self
                .prefetch
                .try_send(Prefetch::Chunks { view, chunks: job });
        }
    }
}

/// Loads into the cache the chunks it does not hold; errors are left for
/// the read that needs the chunk to report.
fn prefetch(cache: &ReadCache, p: &Prefetch) {
    let (view, chunks) = match p {
        Prefetch::Range {
            view,
            file,
            from,
            len,
        } => match file.reader.chunks(cache, &view.repo, *from, *len) {
            Ok(c) => (view, c),
            Err(_) => return,
        },
        Prefetch::Chunks { view, chunks } => (view, chunks.clone()),
    };
    for (id, len) in chunks {
        if !cache.holds_chunk(&id) && cache.chunk(&view.repo, &id, len).is_err() {
            return;
        }
    }
}

impl Filesystem for SnapFs {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        // Larger reads from the kernel: fewer round trips per chunk.
        if let Err(max) = config.set_max_readahead(1 << 20) {
            let _ = config.set_max_readahead(max);
        }
        let _ = config.set_max_background(64);
        let _ = config.add_capabilities(fuser::InitFlags::FUSE_DO_READDIRPLUS);
        // Opening a file here costs nothing (readers are made on the first
        // read): two round trips per file fewer (open, release) for
        // `cp -r` and `grep -r`.
        if config
            .add_capabilities(fuser::InitFlags::FUSE_NO_OPEN_SUPPORT)
            .is_ok()
        {
            self.no_open.store(true, Ordering::Relaxed);
        }
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let Some(p) = self.inode(parent) else {
            return reply.error(Errno::ENOENT);
        };
        let name = name.as_bytes();
        let view = match &p.what {
            What::Virtual(_) => self.views.fresh(),
            _ => self.views.get(),
        };
        let what = match &p.what {
            What::Virtual(dir) => match view.catalog.lookup(dir, name) {
                None => return reply.error(Errno::ENOENT),
                Some(Child::Dir(d)) => What::Virtual(d),
                Some(Child::Snapshot(id)) => match view.catalog.snapshot(&id) {
                    Some(s) => What::Root(id, s.clone()),
                    None => return reply.error(Errno::ENOENT),
                },
            },
            other => {
                let Some((tree, snap, root)) = self.dir_tree(parent.0, other) else {
                    return reply.error(Errno::ENOTDIR);
                };
                if p.path.matches('/').count() > MAX_DEPTH + 8 {
                    (self.warn)(format!(
                        "{} is nested deeper than {MAX_DEPTH} levels: the tree was crafted or damaged",
                        p.path
                    ));
                    return reply.error(Errno::EIO);
                }
                let tree = match self.load_tree(&p.path, &tree) {
                    Ok(t) => t,
                    Err(e) => return reply.error(e),
                };
                let Some(node) = tree.get(name) else {
                    return reply.error(Errno::ENOENT);
                };
                match self.entry_of(&p.path, node, snap, root) {
                    Ok(w) => w,
                    Err(e) => return reply.error(e),
                }
            }
        };
        let ino =
            self.inodes
                .lock()
                .expect("not poisoned")
                .lookup(parent.0, &p.path, name, what.clone());
        let attr = self.attr(ino, &what, &view);
        // A name above the snapshots may stand for another snapshot soon
        // (`latest/…`), though each inode's attributes never change.
        let entry_ttl = match p.what {
            What::Virtual(_) => VIRTUAL_TTL,
            _ => SNAPSHOT_TTL,
        };
        reply.entry_with_ttls(&Self::ttl(&what), &entry_ttl, &attr, Generation(0));
    }

    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        let mut inodes = self.inodes.lock().expect("not poisoned");
        inodes.forget(ino.0, nlookup);
        if inodes.get(ino.0).is_none() {
            self.files.lock().expect("not poisoned").remove(&ino.0);
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.inode(ino) {
            Some(i) => {
                let view = self.views.get();
                reply.attr(&Self::ttl(&i.what), &self.attr(ino.0, &i.what, &view))
            }
            None => reply.error(Errno::ENOENT),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        match self.inode(ino).map(|i| i.what) {
            Some(What::Node { node, .. }) if node.kind == NodeKind::Symlink => {
                reply.data(node.target.as_deref().unwrap_or_default())
            }
            Some(_) => reply.error(Errno::EINVAL),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        if flags.acc_mode() != OpenAccMode::O_RDONLY {
            return reply.error(Errno::EROFS);
        }
        let Some(i) = self.inode(ino) else {
            return reply.error(Errno::ENOENT);
        };
        match &i.what {
            What::Node { node, .. } if node.kind == NodeKind::File => {}
            What::Node { .. } => return reply.error(Errno::EACCES),
            _ => return reply.error(Errno::EISDIR),
        }
        if let Err(e) = self.open_file(ino.0) {
            return reply.error(e);
        }
        if self.no_open.load(Ordering::Relaxed) {
            // The kernel opens every later file by itself, keeping its
            // pages (the contents under an inode never change).
            return reply.error(Errno::ENOSYS);
        }
        // The contents under an inode never change: pages read before stay good.
        reply.opened(FileHandle(ino.0), FopenFlags::FOPEN_KEEP_CACHE);
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let file = match self.open_file(ino.0) {
            Ok(f) => f,
            Err(e) => return reply.error(e),
        };
        let label = format!("{} (snapshot {})", file.path, file.short);
        let got = self.on_view(&label, &|v| {
            file.reader
                .read_at(&self.cache, &v.repo, offset, size as u64)
        });
        match got {
            Ok(data) => {
                let end = offset + data.len() as u64;
                reply.data(&data);
                self.read_ahead(self.views.get(), &file, offset, end);
            }
            Err(e) => reply.error(e),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let (entries, _) = match self.listing(ino, offset) {
            Ok(l) => l,
            Err(e) => return reply.error(e),
        };
        for (next, name, what) in &entries {
            let (e_ino, k) = match what {
                None => (ino.0, FileType::Directory),
                Some(w) => (
                    super::inodes::number(&super::inodes::key(ino.0, name, w)),
                    what_kind(w),
                ),
            };
            if reply.add(INodeNo(e_ino), *next, k, OsStr::from_bytes(name)) {
                break;
            }
        }
        reply.ok();
    }

    /// A listing that also gives each entry's attributes: `cp -r` and
    /// `grep -r` then look up no name (one round trip per file fewer). Each
    /// entry given counts as a lookup, as the kernel counts it.
    fn readdirplus(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectoryPlus,
    ) {
        let Some(dir) = self.inode(ino) else {
            return reply.error(Errno::ENOENT);
        };
        let (entries, virtual_dir) = match self.listing(ino, offset) {
            Ok(l) => l,
            Err(e) => return reply.error(e),
        };
        let view = self.views.get();
        for (next, name, what) in entries {
            let full = match what {
                // `.` and `..` are not looked up by a listing.
                None => {
                    let attr = self.attr(ino.0, &dir.what, &view);
                    reply.add(
                        ino,
                        next,
                        OsStr::from_bytes(&name),
                        &Duration::ZERO,
                        &attr,
                        Generation(0),
                    )
                }
                Some(w) => {
                    let e_ino = self.inodes.lock().expect("not poisoned").lookup(
                        ino.0,
                        &dir.path,
                        &name,
                        w.clone(),
                    );
                    let attr = self.attr(e_ino, &w, &view);
                    let ttl = if virtual_dir {
                        VIRTUAL_TTL
                    } else {
                        Self::ttl(&w)
                    };
                    let full = reply.add(
                        INodeNo(e_ino),
                        next,
                        OsStr::from_bytes(&name),
                        &ttl,
                        &attr,
                        Generation(0),
                    );
                    if full {
                        // Not given: not counted.
                        self.inodes.lock().expect("not poisoned").forget(e_ino, 1);
                    }
                    full
                }
            };
            if full {
                break;
            }
        }
        reply.ok();
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        reply.statfs(0, 0, 0, 0, 0, 4096, 255, 4096);
    }

    fn setattr(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
        _size: Option<u64>,
        _atime: Option<fuser::TimeOrNow>,
        _mtime: Option<fuser::TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        reply.error(Errno::EROFS);
    }

    fn mknod(
        &self,
        _req: &Request,
        _parent: INodeNo,
        _name: &OsStr,
        _mode: u32,
        _umask: u32,
        _rdev: u32,
        reply: ReplyEntry,
    ) {
        reply.error(Errno::EROFS);
    }

    fn mkdir(
        &self,
        _req: &Request,
        _parent: INodeNo,
        _name: &OsStr,
        _mode: u32,
        _umask: u32,
        reply: ReplyEntry,
    ) {
        reply.error(Errno::EROFS);
    }

    fn unlink(&self, _req: &Request, _parent: INodeNo, _name: &OsStr, reply: ReplyEmpty) {
        reply.error(Errno::EROFS);
    }

    fn rmdir(&self, _req: &Request, _parent: INodeNo, _name: &OsStr, reply: ReplyEmpty) {
        reply.error(Errno::EROFS);
    }

    fn symlink(
        &self,
        _req: &Request,
        _parent: INodeNo,
        _link_name: &OsStr,
        _target: &std::path::Path,
        reply: ReplyEntry,
    ) {
        reply.error(Errno::EROFS);
    }

    fn rename(
        &self,
        _req: &Request,
        _parent: INodeNo,
        _name: &OsStr,
        _newparent: INodeNo,
        _newname: &OsStr,
        _flags: fuser::RenameFlags,
        reply: ReplyEmpty,
    ) {
        reply.error(Errno::EROFS);
    }

    fn link(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _newparent: INodeNo,
        _newname: &OsStr,
        reply: ReplyEntry,
    ) {
        reply.error(Errno::EROFS);
    }

    fn write(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _offset: u64,
        _data: &[u8],
        _write_flags: fuser::WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        reply.error(Errno::EROFS);
    }

    fn create(
        &self,
        _req: &Request,
        _parent: INodeNo,
        _name: &OsStr,
        _mode: u32,
        _umask: u32,
        _flags: i32,
        reply: fuser::ReplyCreate,
    ) {
        reply.error(Errno::EROFS);
    }
}
