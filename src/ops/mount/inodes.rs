//! Inode numbers: derived from what an entry is, so that listing a
//! directory needs no table, and kept in a table only while the kernel
//! holds a reference (from a lookup until its forget): memory follows what
//! is in use, not what was ever listed.
//!
//! An entry's number is a hash of its parent's number and its name; a
//! snapshot's root adds the snapshot id (so `latest/<site>/<kind>` is a new
//! inode when a newer snapshot takes its place, and the kernel never mixes
//! the two's cached pages); a file with several hard links hashes its
//! device, inode number and contents instead, so its names share one inode
//! as they did on disk. Two keys whose hashes meet (about 2^-64 per pair)
//! are told apart by the full key, the later one taking the next free number.

use super::layout::Dir;
use crate::format::snapshot::Snapshot;
use crate::format::tree::{Content, Node, NodeKind};
use crate::id::SnapshotId;
use std::collections::HashMap;
use std::sync::Arc;

/// The mount point's inode.
pub const ROOT: u64 = 1;

/// What an inode is.
#[derive(Clone)]
pub enum What {
    /// A directory above the snapshots.
    Virtual(Dir),
    /// A snapshot's root directory.
    Root(SnapshotId, Arc<Snapshot>),
    /// An entry inside a snapshot, reached through the root `root`.
    Node {
        /// The snapshot.
        snap: SnapshotId,
        /// The inode of the snapshot root it was reached from.
        root: u64,
        /// The entry.
        node: Arc<Node>,
    },
}

/// An inode in use.
#[derive(Clone)]
pub struct Inode {
    /// What it is.
    pub what: What,
    /// Its path from the mount point, for messages.
    pub path: Arc<str>,
    key: [u8; 32],
    lookups: u64,
}

/// The key of an entry: what its number is derived from.
pub fn key(parent: u64, name: &[u8], what: &What) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    match what {
        What::Node { root, node, .. }
            if node.kind == NodeKind::File && node.nlink > 1 && node.content.is_some() =>
        {
            h.update(b"hard link");
            h.update(&root.to_le_bytes());
            h.update(&node.dev.to_le_bytes());
            h.update(&node.inode.to_le_bytes());
            h.update(&node.size.to_le_bytes());
            match &node.content {
                Some(Content::Inline(r)) => {
                    h.update(r);
                }
                Some(Content::Groups(gs)) => {
                    for g in gs {
                        h.update(&g.id.0);
                    }
                }
                None => {}
            }
        }
        _ => {
            h.update(b"entry");
            h.update(&parent.to_le_bytes());
            h.update(&(name.len() as u64).to_le_bytes());
            h.update(name);
            if let What::Root(id, _) = what {
                h.update(&id.0);
            }
        }
    }
    *h.finalize().as_bytes()
}

/// The number a key asks for (0 and [`ROOT`] are never given).
pub fn number(key: &[u8; 32]) -> u64 {
    let n = u64::from_le_bytes(key[..8].try_into().expect("8 bytes"));
    n % (u64::MAX - 2) + 2
}

/// The inodes the kernel holds.
pub struct Inodes {
    map: HashMap<u64, Inode>,
}

impl Inodes {
    /// A table holding the mount point.
    pub fn new() -> Inodes {
        let mut map = HashMap::new();
        map.insert(
            ROOT,
            Inode {
                what: What::Virtual(Dir::Root),
                path: Arc::from(""),
                key: [0; 32],
                lookups: 1,
            },
        );
        Inodes { map }
    }

    /// The inode `ino`.
    pub fn get(&self, ino: u64) -> Option<&Inode> {
        self.map.get(&ino)
    }

    /// Counts one more lookup of the entry `name` of `parent` (whose path
    /// is `parent_path`), adding it if new; returns its number.
    pub fn lookup(&mut self, parent: u64, parent_path: &str, name: &[u8], what: What) -> u64 {
        let key = key(parent, name, &what);
        let mut ino = number(&key);
        loop {
            match self.map.get_mut(&ino) {
                Some(i) if i.key == key => {
                    i.lookups += 1;
                    return ino;
                }
                Some(_) => ino = if ino == u64::MAX { 2 } else { ino + 1 },
                None => break,
            }
        }
        let path = format!("{parent_path}/{}", String::from_utf8_lossy(name));
        self.map.insert(
            ino,
            Inode {
                what,
                path: Arc::from(path),
                key,
                lookups: 1,
            },
        );
        ino
    }

    /// The kernel forgets `n` lookups of `ino`; at none it is dropped.
    pub fn forget(&mut self, ino: u64, n: u64) {
        if ino == ROOT {
            return;
        }
        if let Some(i) = self.map.get_mut(&ino) {
            i.lookups = i.lookups.saturating_sub(n);
            if i.lookups == 0 {
                self.map.remove(&ino);
            }
        }
    }

    /// How many inodes are held.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether only the mount point is held.
    pub fn is_empty(&self) -> bool {
        self.map.len() <= 1
    }
}

impl Default for Inodes {
    fn default() -> Self {
        Inodes::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &[u8], nlink: u64, inode: u64) -> What {
        What::Node {
            snap: SnapshotId([0; 32]),
            root: 7,
            node: Arc::new(Node {
                mode: 0o644,
                inode,
                dev: 1,
                nlink,
                content: Some(Content::Inline(Vec::new())),
                ..Node::new(name, NodeKind::File)
            }),
        }
    }

    #[test]
    fn numbers_follow_the_entry_and_are_dropped_when_forgotten() {
        let mut t = Inodes::new();
        let a = t.lookup(10, "/x", b"a", file(b"a", 1, 5));
        assert_eq!(a, number(&key(10, b"a", &file(b"a", 1, 5))));
        assert_eq!(t.lookup(10, "/x", b"a", file(b"a", 1, 5)), a);
        assert_eq!(&*t.get(a).unwrap().path, "/x/a");
        let b = t.lookup(11, "/y", b"a", file(b"a", 1, 5));
        assert_ne!(a, b, "another parent, another inode");
        // Hard links share one.
        let h1 = t.lookup(10, "/x", b"h1", file(b"h1", 2, 9));
        let h2 = t.lookup(11, "/y", b"h2", file(b"h2", 2, 9));
        assert_eq!(h1, h2);
        t.forget(a, 1);
        assert!(t.get(a).is_some(), "one lookup left");
        t.forget(a, 1);
        assert!(t.get(a).is_none());
        t.forget(ROOT, 5);
        assert!(t.get(ROOT).is_some());
    }
}
