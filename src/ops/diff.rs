//! `diff`: what changed between two trees, entry by entry.
//!
//! Both trees are walked together, merging their sorted entry lists, and a
//! directory whose subtree id is the same on both sides is not entered: a
//! diff of two large snapshots that differ in one file loads only the trees
//! on that file's path. A directory present on one side only is listed
//! entry by entry with the one walker ([`walk::walk`]).
//!
//! The paired walk keeps the walker's rules: it uses an explicit stack, no
//! recursion; it refuses a tree nested deeper than [`MAX_DEPTH`] levels,
//! one that appears twice on its side's path (a cycle), and trees on the
//! path holding more than [`MAX_PATH_TREE_BYTES`]; every entry is checked
//! with [`walk::validate`]. A crafted tree is an error naming its path.
//!
//! Entries come out depth first, in name order: sorted by path component by
//! component.

use crate::error::{Error, Result};
use crate::format::blob::MAX_TREE;
use crate::format::tree::{Node, NodeKind, Tree};
use crate::id::{BlobRef, TreeId};
use crate::ops::cache::ReadCache;
use crate::ops::read::mtime_text;
use crate::ops::walk::{self, display_path, Event, Flow, MAX_DEPTH, MAX_PATH_TREE_BYTES};
use crate::repo::Repository;
use serde::Serialize;
use std::cmp::Ordering;
use std::sync::Arc;

/// How an entry changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Change {
    /// Only in the new tree.
    Added,
    /// Only in the old tree.
    Removed,
    /// Its content (the chunk list) or its type changed.
    Modified,
    /// Only its metadata changed (mode, owner, mtime, symlink target,
    /// device number).
    Metadata,
}

impl Change {
    /// The one-character mark of the text output.
    pub fn mark(self) -> char {
        match self {
            Change::Added => '+',
            Change::Removed => '-',
            Change::Modified => 'M',
            Change::Metadata => 'U',
        }
    }
}

/// One side of a changed entry.
#[derive(Clone, Debug, Serialize)]
pub struct Side {
    /// Kind.
    pub kind: NodeKind,
    /// Size in bytes.
    pub size: u64,
    /// Mode bits.
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Modification time, RFC 3339.
    pub mtime: String,
    /// Symlink target (lossy when not UTF-8).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
}

impl Side {
    /// The side of the entry `n`.
    pub fn of(n: &Node) -> Side {
        Side {
            kind: n.kind,
            size: n.size,
            mode: n.mode,
            uid: n.uid,
            gid: n.gid,
            mtime: mtime_text(n),
            target: n
                .target
                .as_ref()
                .map(|t| String::from_utf8_lossy(t).into_owned()),
        }
    }
}

/// One changed entry.
#[derive(Clone, Debug, Serialize)]
pub struct Entry {
    /// Path inside the snapshot, starting with '/' (lossy when not UTF-8).
    pub path: String,
    /// The path's exact bytes, when it is not UTF-8.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path_bytes: Option<Vec<u8>>,
    /// How it changed.
    pub change: Change,
    /// What changed: `type`, `content`, `mode`, `owner`, `mtime`, `target`,
    /// `device` (empty for added and removed entries).
    pub what: Vec<&'static str>,
    /// For `diff --live`: why an added file deserves a look (`script`,
    /// `upload`, `script in uploads`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flag: Option<&'static str>,
    /// The entry in the old tree.
    pub old: Option<Side>,
    /// The entry in the new tree.
    pub new: Option<Side>,
    /// The path as stored.
    #[serde(skip)]
    pub raw_path: Vec<u8>,
}

impl Entry {
    /// The entry at `path` (components), with its sides.
    pub fn new(
        path: &[Vec<u8>],
        change: Change,
        what: Vec<&'static str>,
        old: Option<&Node>,
        new: Option<&Node>,
    ) -> Entry {
        let raw_path = raw_path(path);
        Entry {
            path: String::from_utf8_lossy(&raw_path).into_owned(),
            path_bytes: std::str::from_utf8(&raw_path)
                .is_err()
                .then(|| raw_path.clone()),
            change,
            what,
            flag: None,
            old: old.map(Side::of),
            new: new.map(Side::of),
            raw_path,
        }
    }
}

/// Counts of a diff.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Stats {
    /// Entries added.
    pub added: u64,
    /// Entries removed.
    pub removed: u64,
    /// Entries whose content or type changed.
    pub modified: u64,
    /// Entries whose metadata alone changed.
    pub metadata: u64,
    /// Total size of the added files.
    pub bytes_added: u64,
    /// Total size of the removed files.
    pub bytes_removed: u64,
    /// Trees asked for to find the changes, both sides (read, or taken
    /// from the cache).
    pub trees_loaded: u64,
}

impl Stats {
    /// Counts one entry.
    pub fn count(&mut self, e: &Entry) {
        let file_size = |s: &Option<Side>| {
            s.as_ref()
                .filter(|s| s.kind == NodeKind::File)
                .map_or(0, |s| s.size)
        };
        match e.change {
            Change::Added => {
                self.added += 1;
                self.bytes_added += file_size(&e.new);
            }
            Change::Removed => {
                self.removed += 1;
                self.bytes_removed += file_size(&e.old);
            }
            Change::Modified => self.modified += 1,
            Change::Metadata => self.metadata += 1,
        }
    }
}

/// Differences between the directories `old` and `new` whose path is
/// `base`, passed to `out` in path order. Trees are read through `cache`.
pub fn trees(
    repo: &Repository,
    cache: &ReadCache,
    old: &TreeId,
    new: &TreeId,
    base: &[Vec<u8>],
    out: &mut dyn FnMut(Entry) -> Result<()>,
) -> Result<Stats> {
    let mut d = Differ::new(repo, cache, out);
    let path = base.to_vec();
    d.descend(&path, *old, *new)?;
    d.run(path)?;
    Ok(d.stats)
}

/// Differences of one entry whose path is `base` (its name last), present
/// in the old tree, the new one, or both: the entry itself, then what lies
/// beneath it.
pub fn entries(
    repo: &Repository,
    cache: &ReadCache,
    old: Option<&Node>,
    new: Option<&Node>,
    base: &[Vec<u8>],
    out: &mut dyn FnMut(Entry) -> Result<()>,
) -> Result<Stats> {
    let mut d = Differ::new(repo, cache, out);
    let path = base.to_vec();
    d.compare(&path, old, new)?;
    d.run(path)?;
    Ok(d.stats)
}

/// A pair of directories being merged.
struct Frame {
    ids: (TreeId, TreeId),
    old: Arc<Tree>,
    new: Arc<Tree>,
    /// Next entry of each side.
    next: (usize, usize),
    /// Length of the directory's path.
    depth: usize,
    /// Plaintext bytes of both trees.
    bytes: u64,
}

struct Differ<'r, 'o> {
    repo: &'r Repository,
    cache: &'r ReadCache,
    out: &'o mut dyn FnMut(Entry) -> Result<()>,
    stack: Vec<Frame>,
    stats: Stats,
}

impl<'r, 'o> Differ<'r, 'o> {
    fn new(
        repo: &'r Repository,
        cache: &'r ReadCache,
        out: &'o mut dyn FnMut(Entry) -> Result<()>,
    ) -> Self {
        Differ {
            repo,
            cache,
            out,
            stack: Vec::new(),
            stats: Stats::default(),
        }
    }

    /// Merges the directories on the stack until it is empty.
    fn run(&mut self, mut path: Vec<Vec<u8>>) -> Result<()> {
        while let Some(top) = self.stack.last_mut() {
            let (i, j) = top.next;
            let order = match (top.old.entries.get(i), top.new.entries.get(j)) {
                (None, None) => {
                    self.stack.pop();
                    continue;
                }
                (Some(_), None) => Ordering::Less,
                (None, Some(_)) => Ordering::Greater,
                (Some(a), Some(b)) => a.name.cmp(&b.name),
            };
            let (take_old, take_new) = (order != Ordering::Greater, order != Ordering::Less);
            top.next = (i + take_old as usize, j + take_new as usize);
            let (old, new, depth) = (top.old.clone(), top.new.clone(), top.depth);
            let o = take_old.then(|| &old.entries[i]);
            let n = take_new.then(|| &new.entries[j]);
            path.truncate(depth);
            path.push(o.or(n).expect("one side has an entry").name.clone());
            self.compare(&path, o, n)?;
        }
        Ok(())
    }

    /// Reports how the entry at `path` changed, and enters both sides when
    /// they are directories with different contents.
    fn compare(&mut self, path: &[Vec<u8>], old: Option<&Node>, new: Option<&Node>) -> Result<()> {
        for n in old.iter().chain(new.iter()) {
            walk::validate(n).map_err(|why| invalid(path, why))?;
        }
        match (old, new) {
            (None, None) => {}
            (Some(o), None) => {
                self.emit(path, Change::Removed, Vec::new(), Some(o), None)?;
                self.one_side(path, o, Change::Removed)?;
            }
            (None, Some(n)) => {
                self.emit(path, Change::Added, Vec::new(), None, Some(n))?;
                self.one_side(path, n, Change::Added)?;
            }
            (Some(o), Some(n)) => {
                let mut what = metadata_changes(o, n);
                if o.kind != n.kind {
                    what.insert(0, "type");
                    self.emit(path, Change::Modified, what, Some(o), Some(n))?;
                    self.one_side(path, o, Change::Removed)?;
                    self.one_side(path, n, Change::Added)?;
                    return Ok(());
                }
                if o.kind == NodeKind::File && o.content != n.content {
                    what.insert(0, "content");
                    self.emit(path, Change::Modified, what, Some(o), Some(n))?;
                } else if !what.is_empty() {
                    self.emit(path, Change::Metadata, what, Some(o), Some(n))?;
                }
                if let (Some(a), Some(b)) = (o.subtree, n.subtree) {
                    if a != b {
                        self.descend(path, a, b)?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Pushes the pair of directories at `path`, refusing what the walker
    /// refuses.
    fn descend(&mut self, path: &[Vec<u8>], a: TreeId, b: TreeId) -> Result<()> {
        if a == b {
            return Ok(());
        }
        let cycle = |id: &TreeId, side: fn(&Frame) -> TreeId| {
            self.stack.iter().any(|f| side(f) == *id).then_some(*id)
        };
        if let Some(id) = cycle(&a, |f| f.ids.0).or(cycle(&b, |f| f.ids.1)) {
            return Err(Error::corrupt(
                format!("tree {id}"),
                format!(
                    "contains itself (a cycle at {}): the tree was crafted or damaged",
                    display_path(path)
                ),
            ));
        }
        if path.len() >= MAX_DEPTH {
            return Err(too_deep(&a, path));
        }
        let bytes = self.tree_len(&a)? + self.tree_len(&b)?;
        let held: u64 = self.stack.iter().map(|f| f.bytes).sum();
        if bytes <= 2 * MAX_TREE as u64 && held.saturating_add(bytes) > MAX_PATH_TREE_BYTES {
            return Err(Error::corrupt(
                format!("tree {a}"),
                format!(
                    "would make the trees on the path to {} hold more than {MAX_PATH_TREE_BYTES} bytes: the tree was crafted or damaged",
                    display_path(path)
                ),
            ));
        }
        let old = self.load(&a, path)?;
        let new = self.load(&b, path)?;
        self.stack.push(Frame {
            ids: (a, b),
            old,
            new,
            next: (0, 0),
            depth: path.len(),
            bytes,
        });
        Ok(())
    }

    fn tree_len(&self, id: &TreeId) -> Result<u64> {
        Ok(self
            .repo
            .index()
            .get(&BlobRef::from(*id))?
            .map_or(0, |l| l.raw_len as u64))
    }

    fn load(&mut self, id: &TreeId, path: &[Vec<u8>]) -> Result<Arc<Tree>> {
        self.stats.trees_loaded += 1;
        self.cache.tree(self.repo, id).map_err(|e| at_path(e, path))
    }

    /// Lists everything beneath `node` (a directory present on one side
    /// only) as `change`, with the walker.
    fn one_side(&mut self, path: &[Vec<u8>], node: &Node, change: Change) -> Result<()> {
        let Some(sub) = node.subtree.filter(|_| node.kind == NodeKind::Dir) else {
            return Ok(());
        };
        walk::walk_cached(self.repo, Some(self.cache), &sub, path, &mut |e| match e {
            Event::Enter { path, id } => {
                // The walker counts depth from where it starts; the bound
                // is on the depth in the snapshot.
                if path.len() >= MAX_DEPTH {
                    return Err(too_deep(id, path));
                }
                self.stats.trees_loaded += 1;
                Ok(Flow::Continue)
            }
            Event::Node { path, node } => {
                let (o, n) = match change {
                    Change::Removed => (Some(node), None),
                    _ => (None, Some(node)),
                };
                self.emit(path, change, Vec::new(), o, n)?;
                Ok(Flow::Continue)
            }
            Event::Invalid { path, why, .. } => Err(invalid(path, why)),
            Event::TreeError { path, error, .. } => Err(at_path(error, path)),
            Event::Leave { .. } => Ok(Flow::Continue),
        })
    }

    fn emit(
        &mut self,
        path: &[Vec<u8>],
        change: Change,
        what: Vec<&'static str>,
        old: Option<&Node>,
        new: Option<&Node>,
    ) -> Result<()> {
        let e = Entry::new(path, change, what, old, new);
        self.stats.count(&e);
        (self.out)(e)
    }
}

/// The metadata that differs between two versions of an entry. ctime,
/// inode, device and link count are left out: a restore or a copy changes
/// them without anyone touching the file.
pub fn metadata_changes(o: &Node, n: &Node) -> Vec<&'static str> {
    let mut what = Vec::new();
    if o.mode != n.mode {
        what.push("mode");
    }
    if (o.uid, o.gid) != (n.uid, n.gid) {
        what.push("owner");
    }
    if (o.mtime, o.mtime_ns) != (n.mtime, n.mtime_ns) {
        what.push("mtime");
    }
    if o.target != n.target {
        what.push("target");
    }
    if o.rdev != n.rdev {
        what.push("device");
    }
    what
}

/// `/a/b` for the components `a`, `b`, as stored; `/` for none.
pub fn raw_path(components: &[Vec<u8>]) -> Vec<u8> {
    if components.is_empty() {
        return b"/".to_vec();
    }
    components
        .iter()
        .flat_map(|c| [b"/".as_slice(), c].concat())
        .collect()
}

fn invalid(path: &[Vec<u8>], why: String) -> Error {
    Error::corrupt(
        format!("tree entry {}", display_path(path)),
        format!("{why}; run `snap check` to see what else the snapshot holds"),
    )
}

fn too_deep(id: &TreeId, path: &[Vec<u8>]) -> Error {
    Error::corrupt(
        format!("tree {id}"),
        format!(
            "is nested deeper than {MAX_DEPTH} levels (at {}): the tree was crafted or damaged",
            display_path(path)
        ),
    )
}

/// A damaged tree's error, saying where in the snapshot it lies.
pub(crate) fn at_path(e: Error, path: &[Vec<u8>]) -> Error {
    match e {
        Error::Corrupt { object, why } => Error::Corrupt {
            object: format!("{object} (at {})", display_path(path)),
            why,
        },
        e => e,
    }
}
