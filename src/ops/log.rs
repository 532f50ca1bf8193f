//! `log`: the versions of one path across snapshots, and when it changed.
//!
//! Consecutive snapshots share most of their trees, so a lookup is
//! memoized by (tree id, remaining path): once a tree is known to hold (or
//! lack) the rest of the path, another snapshot reaching the same tree gets
//! the answer without loading anything. Every entry on the way is checked
//! with [`walk::validate`]; the depth is the path's, given by the user.

use crate::error::{Error, Result};
use crate::format::snapshot::Snapshot;
use crate::format::tree::{Node, NodeKind};
use crate::id::{SnapshotId, TreeId};
use crate::ops::cache::ReadCache;
use crate::ops::diff::{at_path, metadata_changes};
use crate::ops::read::components;
use crate::ops::select::source_candidates;
use crate::ops::walk::{self, display_path};
use crate::repo::Repository;
use serde::Serialize;
use std::collections::HashMap;

/// How a version compares with the previous one listed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// The first snapshot holding the path.
    FirstSeen,
    /// Content (a file's chunk list, a directory's subtree) or type changed.
    Changed,
    /// Same content, different metadata (mode, owner, mtime, symlink target).
    MetadataChanged,
    /// Identical.
    Unchanged,
    /// The path is gone from this snapshot.
    Deleted,
    /// Back after a snapshot without it.
    Reappeared,
}

impl Status {
    /// The word the text output uses.
    pub fn text(self) -> &'static str {
        match self {
            Status::FirstSeen => "first seen",
            Status::Changed => "changed",
            Status::MetadataChanged => "metadata changed",
            Status::Unchanged => "unchanged",
            Status::Deleted => "deleted",
            Status::Reappeared => "reappeared",
        }
    }
}

/// One row of the log.
#[derive(Clone, Debug)]
pub struct Version {
    /// The snapshot.
    pub id: SnapshotId,
    /// The path inside this snapshot (mapped from a backed-up path).
    pub path: Vec<u8>,
    /// The entry, `None` when deleted.
    pub node: Option<Node>,
    /// Compared with the previous row.
    pub status: Status,
}

/// Memoized lookups of paths in trees.
#[derive(Default)]
pub struct Lookup {
    memo: HashMap<(TreeId, Vec<Vec<u8>>), Option<Node>>,
    /// Trees asked for so far (read, or taken from the cache).
    pub trees_loaded: u64,
}

impl Lookup {
    /// The entry at `path` (components) under the tree `root`, if any. The
    /// root itself (no component) is a directory entry without a name.
    pub fn find(
        &mut self,
        repo: &Repository,
        cache: &ReadCache,
        root: &TreeId,
        path: &[Vec<u8>],
    ) -> Result<Option<Node>> {
        if path.is_empty() {
            return Ok(Some(root_node(*root)));
        }
        let mut trail = Vec::new();
        let mut tree_id = *root;
        let mut depth = 0;
        let found = loop {
            let key = (tree_id, path[depth..].to_vec());
            if let Some(hit) = self.memo.get(&key) {
                break hit.clone();
            }
            trail.push(key);
            self.trees_loaded += 1;
            let tree = cache
                .tree(repo, &tree_id)
                .map_err(|e| at_path(e, &path[..depth]))?;
            let Some(node) = tree.get(&path[depth]) else {
                break None;
            };
            walk::validate(node).map_err(|why| {
                Error::corrupt(
                    format!("tree entry {}", display_path(&path[..=depth])),
                    format!("{why}; run `snap check` to see what else the snapshot holds"),
                )
            })?;
            if depth + 1 == path.len() {
                break Some(node.clone());
            }
            match node.subtree {
                Some(sub) if node.kind == NodeKind::Dir => tree_id = sub,
                _ => break None,
            }
            depth += 1;
        };
        for key in trail {
            self.memo.insert(key, found.clone());
        }
        Ok(found)
    }
}

fn root_node(tree: TreeId) -> Node {
    Node {
        nlink: 0,
        subtree: Some(tree),
        ..Node::new(b"", NodeKind::Dir)
    }
}

/// The versions of `path` across `snaps` (oldest first). `path` is a path
/// inside the snapshots, or as it was backed up (mapped through each
/// snapshot's sources, as [`crate::ops::select::snapshot_path`] does).
/// Snapshots before the first one holding the path are left out, and of a
/// run of snapshots without it only the first is listed (as deleted).
pub fn history(
    repo: &Repository,
    cache: &ReadCache,
    snaps: &[(SnapshotId, Snapshot)],
    path: &[u8],
    lookup: &mut Lookup,
) -> Result<Vec<Version>> {
    let mut out = Vec::new();
    let mut prev: Option<Node> = None;
    let mut gone = false;
    for (id, snap) in snaps {
        let mut found = None;
        for candidate in std::iter::once(path.to_vec()).chain(source_candidates(snap, path)) {
            let comps: Vec<Vec<u8>> = components(&candidate)
                .into_iter()
                .map(<[u8]>::to_vec)
                .collect();
            if let Some(n) = lookup.find(repo, cache, &snap.tree, &comps)? {
                found = Some((candidate, n));
                break;
            }
        }
        let (at, node) = match found {
            None => {
                if prev.is_some() && !gone {
                    gone = true;
                    out.push(Version {
                        id: *id,
                        path: path.to_vec(),
                        node: None,
                        status: Status::Deleted,
                    });
                }
                continue;
            }
            Some(f) => f,
        };
        let status = match &prev {
            None => Status::FirstSeen,
            Some(_) if gone => Status::Reappeared,
            Some(p) => compare(p, &node),
        };
        gone = false;
        out.push(Version {
            id: *id,
            path: at,
            node: Some(node.clone()),
            status,
        });
        prev = Some(node);
    }
    Ok(out)
}

fn compare(old: &Node, new: &Node) -> Status {
    let same_content = old.kind == new.kind
        && match old.kind {
            NodeKind::File => old.content == new.content,
            NodeKind::Dir => old.subtree == new.subtree,
            _ => true,
        };
    if !same_content {
        Status::Changed
    } else if !metadata_changes(old, new).is_empty() {
        Status::MetadataChanged
    } else {
        Status::Unchanged
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::tree::Content;

    #[test]
    fn content_type_and_metadata_changes_are_told_apart() {
        let mut a = root_node(TreeId([1; 32]));
        assert_eq!(compare(&a, &a), Status::Unchanged);
        let mut b = a.clone();
        b.mtime += 1;
        assert_eq!(compare(&a, &b), Status::MetadataChanged);
        b.subtree = Some(TreeId([2; 32]));
        assert_eq!(compare(&a, &b), Status::Changed);
        a.kind = NodeKind::File;
        a.subtree = None;
        a.content = Some(Content::Inline(vec![0; 36]));
        let mut c = a.clone();
        c.mode = 0o755;
        assert_eq!(compare(&a, &c), Status::MetadataChanged);
        c.content = Some(Content::Inline(vec![1; 36]));
        assert_eq!(compare(&a, &c), Status::Changed);
        c = a.clone();
        c.kind = NodeKind::Symlink;
        assert_eq!(compare(&a, &c), Status::Changed);
    }
}
