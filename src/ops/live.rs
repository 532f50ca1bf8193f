//! Comparing a snapshot's entries with what a live directory holds now:
//! what `restore --overwrite` decides from, and what `restore --delete`
//! removes. Entries of the live tree are looked at with `lstat`, never
//! followed: a symlink planted in a site is a symlink, not what it points
//! to.

use crate::error::{Error, IoContext, Result};
use crate::format::chunker::{Chunker, StreamChunker};
use crate::format::snapshot::Kind;
use crate::format::tree::{ChunkRecord, Node, NodeKind};
use crate::id::{ChunkId, TreeId};
use crate::ops::cache::ReadCache;
use crate::ops::diff::{Change, Entry, Stats};
use crate::ops::walk::{self, Flow};
use crate::repo::Repository;
use std::collections::HashSet;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

/// When a restore replaces an entry that is there already.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Overwrite {
    /// Every entry is written again.
    #[default]
    Always,
    /// Only entries whose size, modification time or kind differ (metadata
    /// alone is set in place).
    IfChanged,
    /// Only entries older in the live tree than in the snapshot.
    IfNewer,
    /// Entries already there are left as they are.
    Never,
}

/// How the live entry at a path stands against a snapshot's entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Nothing there.
    Missing,
    /// The same kind, size, modification time (and link target or device),
    /// mode and owner.
    Same,
    /// The same contents as far as size and time tell; mode or owner differ.
    MetadataOnly,
    /// Something else (other contents, another kind), not a directory.
    Differs,
    /// A real directory where the snapshot has something else.
    DirInTheWay,
}

/// What to do with one entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Make it: nothing is there.
    Create,
    /// Replace what is there.
    Overwrite,
    /// Only set mode, owner and times.
    Metadata,
    /// Leave it.
    Keep,
}

/// Whether a live regular file holds exactly a snapshot file's contents,
/// by cutting it with the repository's chunker and hashing each chunk with
/// its keyed hash: the proof that a file is untouched, whatever its times
/// say.
pub struct Verifier<'a> {
    repo: &'a Repository,
    chunker: Chunker,
}

impl<'a> Verifier<'a> {
    /// A verifier for files of snapshots of `kind` in `repo`.
    pub fn new(repo: &'a Repository, kind: Kind) -> Verifier<'a> {
        let params = match kind {
            Kind::Files => repo.config.chunking.files,
            Kind::Db => repo.config.chunking.db,
        };
        let gear = repo.keys().gear_for(repo.config.version, kind == Kind::Db);
        Verifier {
            repo,
            chunker: Chunker::new(params, &gear),
        }
    }

    /// Whether the file at `p` has `n`'s contents. A file that cannot be
    /// read does not.
    pub fn same(&self, p: &Path, n: &Node) -> Result<bool> {
        let Some(content) = &n.content else {
            return Ok(false);
        };
        let mut want: Vec<ChunkRecord> = Vec::new();
        self.repo.for_each_chunk_group(content, &mut |g| {
            want.extend_from_slice(g);
            Ok(())
        })?;
        let Ok(f) = fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(p)
        else {
            return Ok(false);
        };
        let mut sc = StreamChunker::new(f, self.chunker.clone(), VERIFY_WINDOW);
        let mut i = 0usize;
        loop {
            let Ok(batch) = sc.next_batch() else {
                return Ok(false);
            };
            if batch.lens.is_empty() {
                return Ok(i == want.len());
            }
            let mut at = 0usize;
            for len in &batch.lens {
                let data = &batch.data[at..at + len];
                at += len;
                let id = ChunkId(self.repo.keys().blob_id(data));
                match want.get(i) {
                    Some((w, l)) if *w == id && *l as usize == data.len() => i += 1,
                    _ => return Ok(false),
                }
            }
            sc.recycle(batch);
        }
    }
}

/// Bytes read at a time when verifying a live file.
const VERIFY_WINDOW: usize = 8 << 20;

/// Compares the live entry at `p` with `n` (owners only when `owners`: an
/// ordinary user cannot give files away, so owners are not a difference).
/// With a verifier, a file of the same size is compared by contents, and a
/// different modification time alone is metadata.
pub fn compare(p: &Path, n: &Node, owners: bool, verify: Option<&Verifier>) -> State {
    let Ok(md) = fs::symlink_metadata(p) else {
        return State::Missing;
    };
    let ft = md.file_type();
    if ft.is_dir() {
        return if n.kind == NodeKind::Dir {
            State::Same
        } else {
            State::DirInTheWay
        };
    }
    let same_kind = match n.kind {
        NodeKind::File => ft.is_file(),
        NodeKind::Symlink => ft.is_symlink(),
        NodeKind::Fifo => ft.is_fifo(),
        NodeKind::Chardev => ft.is_char_device(),
        NodeKind::Blockdev => ft.is_block_device(),
        NodeKind::Dir => false,
    };
    if !same_kind {
        return State::Differs;
    }
    let same_time = md.mtime() == n.mtime && md.mtime_nsec() == n.mtime_ns as i64;
    let same_content = match (n.kind, verify) {
        (NodeKind::File, Some(v)) => md.len() == n.size && v.same(p, n).unwrap_or(false),
        (NodeKind::File, None) => md.len() == n.size && same_time,
        (NodeKind::Symlink, _) => {
            fs::read_link(p).is_ok_and(|t| Some(t.as_os_str().as_bytes()) == n.target.as_deref())
        }
        (NodeKind::Chardev | NodeKind::Blockdev, _) => Some(md.rdev()) == n.rdev,
        _ => true,
    };
    if !same_content {
        return State::Differs;
    }
    let mode_ok = n.kind == NodeKind::Symlink || md.mode() & 0o7777 == n.mode & 0o7777;
    let mode_ok = mode_ok && (n.kind != NodeKind::File || same_time);
    let owner_ok = !owners || (md.uid(), md.gid()) == (n.uid, n.gid);
    if mode_ok && owner_ok {
        State::Same
    } else {
        State::MetadataOnly
    }
}

/// The action for an entry in state `s` under `mode`; `delete` allows
/// replacing a directory in the way. `p` is only read for `IfNewer`.
pub fn decide(p: &Path, n: &Node, s: State, mode: Overwrite, delete: bool) -> Result<Action> {
    Ok(match s {
        State::Missing => Action::Create,
        State::DirInTheWay if !delete => {
            return Err(Error::Usage(format!(
                "{}: a directory is where the snapshot has a {:?}; restore with --delete to replace it (everything in it goes), or move it away",
                p.display(),
                n.kind
            )))
        }
        _ if mode == Overwrite::Never => Action::Keep,
        State::DirInTheWay => Action::Overwrite,
        _ if mode == Overwrite::Always => Action::Overwrite,
        State::Same => Action::Keep,
        State::MetadataOnly if mode == Overwrite::IfChanged => Action::Metadata,
        State::Differs if mode == Overwrite::IfChanged => Action::Overwrite,
        // IfNewer: the live entry's time against the snapshot's.
        _ => {
            let live = fs::symlink_metadata(p)
                .map(|m| (m.mtime(), m.mtime_nsec()))
                .unwrap_or((i64::MIN, 0));
            if live < (n.mtime, n.mtime_ns as i64) {
                Action::Overwrite
            } else {
                Action::Keep
            }
        }
    })
}

/// An entry of the live tree that is not in the snapshot.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Extra {
    /// Its path.
    pub path: PathBuf,
    /// Whether it is a directory (removed with everything in it).
    pub dir: bool,
}

/// The entries of the live directory `dir` whose names are not in `keep`
/// (nor restore's own temporary files). Symlinks are entries, not followed.
pub fn extras(dir: &Path, keep: &HashSet<Vec<u8>>) -> Result<Vec<Extra>> {
    // A symlink (or anything else) where the snapshot has a directory is
    // replaced by the directory, never listed through: what it points to
    // is not the site's.
    match fs::symlink_metadata(dir) {
        Ok(md) if md.is_dir() => {}
        _ => return Ok(Vec::new()),
    }
    let rd = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(dir, e)),
    };
    let mut out = Vec::new();
    for e in rd {
        let e = e.at(dir)?;
        let name = e.file_name();
        let name = name.as_bytes();
        if keep.contains(name) || name.starts_with(crate::ops::place::PREFIX.as_bytes()) {
            continue;
        }
        let dir = e.file_type().at(e.path())?.is_dir();
        out.push(Extra {
            path: e.path(),
            dir,
        });
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

/// Removes an extra entry: a directory with everything in it (no symlink
/// inside is followed), anything else by its name.
pub fn remove(x: &Extra) -> Result<()> {
    if x.dir {
        fs::remove_dir_all(&x.path).at(&x.path)
    } else {
        fs::remove_file(&x.path).at(&x.path)
    }
}

/// A live entry as a tree entry (no contents), for comparing and showing:
/// push's reading of metadata, with the kinds push sets itself.
fn node_of(name: &[u8], md: &fs::Metadata, target: Option<Vec<u8>>) -> Node {
    let ft = md.file_type();
    let mut n = crate::ops::push::node_from_metadata(name, md);
    if ft.is_symlink() {
        n.kind = NodeKind::Symlink;
    } else if ft.is_fifo() {
        n.kind = NodeKind::Fifo;
    } else if ft.is_char_device() || ft.is_block_device() {
        n.kind = if ft.is_char_device() {
            NodeKind::Chardev
        } else {
            NodeKind::Blockdev
        };
        n.rdev = Some(md.rdev());
    }
    n.target = target;
    n
}

fn live_node(p: &Path, name: &[u8]) -> Option<Node> {
    let md = fs::symlink_metadata(p).ok()?;
    let target = md
        .file_type()
        .is_symlink()
        .then(|| {
            fs::read_link(p)
                .ok()
                .map(|t| t.as_os_str().as_bytes().to_vec())
        })
        .flatten();
    Some(node_of(name, &md, target))
}

/// What differs between the snapshot's tree `root` (whose path in the
/// snapshot is `base`) and the live directory `dir`, entry by entry in path
/// order: `Added` for what only the live tree has (the planted files,
/// flagged when they are scripts or lie under an upload directory),
/// `Removed`, `Modified` (kind, or contents: size and mtime, or with a
/// verifier the bytes) and `Metadata` (mode, owner, mtime, link target).
/// Live symlinks are compared as links, never followed.
pub fn diff_live(
    repo: &Repository,
    cache: &ReadCache,
    root: &TreeId,
    base: &[Vec<u8>],
    dir: &Path,
    verify: Option<&Verifier>,
) -> Result<(Vec<Entry>, Stats)> {
    let mut entries: Vec<Entry> = Vec::new();
    let live_of = |path: &[Vec<u8>]| -> PathBuf {
        let mut p = dir.to_path_buf();
        for c in &path[base.len()..] {
            p.push(std::ffi::OsStr::from_bytes(c));
        }
        p
    };
    let mut visit = |e: walk::Event| -> Result<Flow> {
        match e {
            walk::Event::Enter { path, id } => {
                let here = live_of(path);
                let tree = cache.tree(repo, id)?;
                let names: HashSet<Vec<u8>> = tree.entries.iter().map(|n| n.name.clone()).collect();
                for x in extras(&here, &names)? {
                    let mut p = path.to_vec();
                    p.push(x.path.file_name().unwrap_or_default().as_bytes().to_vec());
                    added(&x.path, &p, &mut entries);
                }
                Ok(Flow::Continue)
            }
            walk::Event::Node { path, node } => {
                let p = live_of(path);
                let Some(live) = live_node(&p, &node.name) else {
                    entries.push(Entry::new(path, Change::Removed, vec![], Some(node), None));
                    return Ok(Flow::Continue);
                };
                if live.kind != node.kind {
                    entries.push(Entry::new(
                        path,
                        Change::Modified,
                        vec!["type"],
                        Some(node),
                        Some(&live),
                    ));
                    if live.kind == NodeKind::Dir {
                        // Everything in a live directory the snapshot does
                        // not have as one is new.
                        for x in extras(&p, &HashSet::new())? {
                            let mut sub = path.to_vec();
                            sub.push(x.path.file_name().unwrap_or_default().as_bytes().to_vec());
                            added(&x.path, &sub, &mut entries);
                        }
                    }
                    return Ok(Flow::Skip);
                }
                let mut what = Vec::new();
                let same_time = (live.mtime, live.mtime_ns) == (node.mtime, node.mtime_ns);
                if node.kind == NodeKind::File {
                    let same = match verify {
                        Some(v) => live.size == node.size && v.same(&p, node)?,
                        None => live.size == node.size && same_time,
                    };
                    if !same {
                        what.push("content");
                    }
                }
                if !same_time && node.kind != NodeKind::Symlink {
                    what.push("mtime");
                }
                if node.kind != NodeKind::Symlink && live.mode != node.mode & 0o7777 {
                    what.push("mode");
                }
                if (live.uid, live.gid) != (node.uid, node.gid) {
                    what.push("owner");
                }
                if live.target != node.target {
                    what.push("target");
                }
                if live.rdev != node.rdev
                    && matches!(node.kind, NodeKind::Chardev | NodeKind::Blockdev)
                {
                    what.push("device");
                }
                if !what.is_empty() {
                    let change = if what.contains(&"content") {
                        Change::Modified
                    } else {
                        Change::Metadata
                    };
                    entries.push(Entry::new(path, change, what, Some(node), Some(&live)));
                }
                Ok(Flow::Continue)
            }
            walk::Event::Invalid { path, why, .. } => Err(Error::corrupt(
                format!("tree entry {}", walk::display_path(path)),
                why,
            )),
            walk::Event::TreeError { error, .. } => Err(error),
            walk::Event::Leave { .. } => Ok(Flow::Continue),
        }
    };
    walk::walk_cached(repo, Some(cache), root, base, &mut visit)?;
    entries.sort_by(|a, b| {
        let ca: Vec<&[u8]> = a.raw_path.split(|&c| c == b'/').collect();
        let cb: Vec<&[u8]> = b.raw_path.split(|&c| c == b'/').collect();
        ca.cmp(&cb)
    });
    let mut stats = Stats::default();
    for e in &entries {
        stats.count(e);
    }
    Ok((entries, stats))
}

/// The live entry `p` (at `path` in the snapshot's terms) and, for a real
/// directory, everything beneath it, as added; no symlink is followed.
fn added(p: &Path, path: &[Vec<u8>], out: &mut Vec<Entry>) {
    let mut stack = vec![(p.to_path_buf(), path.to_vec())];
    while let Some((p, path)) = stack.pop() {
        let name = path.last().cloned().unwrap_or_default();
        let Some(n) = live_node(&p, &name) else {
            continue;
        };
        let mut e = Entry::new(&path, Change::Added, vec![], None, Some(&n));
        e.flag = crate::ops::changes::flag(&p, &n);
        out.push(e);
        if n.kind == NodeKind::Dir {
            if let Ok(rd) = fs::read_dir(&p) {
                for c in rd.flatten() {
                    let mut sub = path.clone();
                    sub.push(c.file_name().as_bytes().to_vec());
                    stack.push((c.path(), sub));
                }
            }
        }
    }
}
