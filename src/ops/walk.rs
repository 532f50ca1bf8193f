//! The one tree walker, and the one node validation, used by restore, ls,
//! cat and check.
//!
//! The walk is iterative (a hostile chain of nested trees cannot overflow the
//! stack), bounded to [`MAX_DEPTH`] levels and to [`MAX_PATH_TREE_BYTES`] of
//! trees held at once, and refuses a tree that appears
//! twice on the current path (a cycle); a tree reused at two places that are
//! not nested (identical directories dedupe to one tree) is walked at each.
//! The visitor can skip any subtree by its id. Every entry is validated with
//! [`validate`] before the visitor sees it, so every reader applies the same
//! rules (format-spec.md §10.1, §10.3).

use crate::error::{Error, Result};
use crate::format::blob::MAX_TREE;
use crate::format::tree::{decode_records, Content, Node, NodeKind, Tree, GROUP_MAX};
use crate::id::{BlobRef, TreeId};
use crate::ops::cache::ReadCache;
use crate::repo::Repository;
use std::collections::HashSet;
use std::sync::Arc;

/// Deepest directory nesting a reader follows, counting the root tree as one
/// level (format-spec.md §10.1).
pub const MAX_DEPTH: usize = 1024;

/// Most tree plaintext held at once, over the trees of the current path:
/// each is in memory until its last entry is visited, so depth times the
/// largest tree (§8) would be too much.
pub const MAX_PATH_TREE_BYTES: u64 = 512 * 1024 * 1024;

/// What the walker reports to its visitor.
pub enum Event<'a> {
    /// A tree is about to be loaded; [`Flow::Skip`] leaves it (and all
    /// beneath it) unread.
    Enter {
        /// Components of the directory's path.
        path: &'a [Vec<u8>],
        /// Its tree.
        id: &'a TreeId,
    },
    /// An entry that follows the rules; for a directory, [`Flow::Skip`]
    /// does not descend into it.
    Node {
        /// Components of the entry's path, its own name last.
        path: &'a [Vec<u8>],
        /// The entry.
        node: &'a Node,
    },
    /// An entry that breaks a rule of the format; never descended into.
    Invalid {
        /// Components of the entry's path, its own name last.
        path: &'a [Vec<u8>],
        /// The entry.
        node: &'a Node,
        /// The rule it breaks.
        why: String,
    },
    /// A tree that cannot be read, would close a cycle, or lies too deep.
    TreeError {
        /// Components of the directory's path.
        path: &'a [Vec<u8>],
        /// Its tree.
        id: &'a TreeId,
        /// Why.
        error: Error,
    },
    /// Every entry of a tree has been visited.
    Leave {
        /// Components of the directory's path.
        path: &'a [Vec<u8>],
        /// Its tree.
        id: &'a TreeId,
    },
}

/// What the visitor wants next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flow {
    /// Go on (and into a directory).
    Continue,
    /// Do not read this tree, or do not descend into this directory.
    Skip,
}

struct Frame {
    id: TreeId,
    tree: Arc<Tree>,
    next: usize,
    /// Its plaintext length, as the index gives it.
    bytes: u64,
}

/// Walks the tree `root` whose path is `base`, depth first, entries in name
/// order. The visitor's errors stop the walk; the walker's own findings
/// (invalid entries, unreadable trees) are events, so a strict visitor turns
/// them into errors with [`strict`] and `check` records them and goes on.
pub fn walk(
    repo: &Repository,
    root: &TreeId,
    base: &[Vec<u8>],
    visit: &mut dyn FnMut(Event) -> Result<Flow>,
) -> Result<()> {
    walk_cached(repo, None, root, base, visit)
}

/// [`walk`], loading trees through `cache` when one is given: a tree met
/// again (at another place, or in the next snapshot walked) is not read and
/// decoded again.
pub fn walk_cached(
    repo: &Repository,
    cache: Option<&ReadCache>,
    root: &TreeId,
    base: &[Vec<u8>],
    visit: &mut dyn FnMut(Event) -> Result<Flow>,
) -> Result<()> {
    let mut path: Vec<Vec<u8>> = base.to_vec();
    let mut stack: Vec<Frame> = Vec::new();
    let mut on_path: HashSet<TreeId> = HashSet::new();
    if let Some(f) = enter(repo, cache, root, &path, &stack, &on_path, visit)? {
        on_path.insert(f.id);
        stack.push(f);
    }
    while let Some(top) = stack.last_mut() {
        let i = top.next;
        if i == top.tree.entries.len() {
            let done = stack.pop().expect("a frame is on the stack");
            on_path.remove(&done.id);
            visit(Event::Leave {
                path: &path,
                id: &done.id,
            })?;
            if !stack.is_empty() {
                path.pop();
            }
            continue;
        }
        top.next += 1;
        let node = &stack.last().expect("a frame is on the stack").tree.entries[i];
        path.push(node.name.clone());
        let sub = match validate(node) {
            Err(why) => {
                visit(Event::Invalid {
                    path: &path,
                    node,
                    why,
                })?;
                None
            }
            Ok(()) => match visit(Event::Node { path: &path, node })? {
                Flow::Continue if node.kind == NodeKind::Dir => node.subtree,
                _ => None,
            },
        };
        let pushed = match sub {
            Some(id) => enter(repo, cache, &id, &path, &stack, &on_path, visit)?,
            None => None,
        };
        match pushed {
            Some(f) => {
                on_path.insert(f.id);
                stack.push(f);
            }
            None => {
                path.pop();
            }
        }
    }
    Ok(())
}

/// Asks the visitor, checks depth and cycles, loads the tree.
fn enter(
    repo: &Repository,
    cache: Option<&ReadCache>,
    id: &TreeId,
    path: &[Vec<u8>],
    stack: &[Frame],
    on_path: &HashSet<TreeId>,
    visit: &mut dyn FnMut(Event) -> Result<Flow>,
) -> Result<Option<Frame>> {
    if visit(Event::Enter { path, id })? == Flow::Skip {
        return Ok(None);
    }
    let bytes = repo
        .index()
        .get(&BlobRef::from(*id))?
        .map_or(0, |l| l.raw_len as u64);
    let held: u64 = stack.iter().map(|f| f.bytes).sum();
    let refused = if on_path.contains(id) {
        Some(format!(
            "contains itself (a cycle at {}): the tree was crafted or damaged",
            display_path(path)
        ))
    } else if stack.len() >= MAX_DEPTH {
        Some(format!(
            "is nested deeper than {MAX_DEPTH} levels (at {}): the tree was crafted or damaged",
            display_path(path)
        ))
    } else if bytes <= MAX_TREE as u64 && !fits(held, bytes) {
        // A tree over its own bound is left to load_tree, which names that.
        Some(format!(
            "would make the trees on the path to {} hold more than {MAX_PATH_TREE_BYTES} bytes: the tree was crafted or damaged",
            display_path(path)
        ))
    } else {
        None
    };
    let loaded = match refused {
        Some(why) => Err(Error::corrupt(format!("tree {id}"), why)),
        None => match cache {
            Some(c) => c.tree(repo, id),
            None => repo.load_tree(id).map(Arc::new),
        },
    };
    match loaded {
        Ok(tree) => Ok(Some(Frame {
            id: *id,
            tree,
            next: 0,
            bytes,
        })),
        Err(error) => {
            visit(Event::TreeError { path, id, error })?;
            Ok(None)
        }
    }
}

/// Whether a tree of `bytes` may be held beside `held` bytes of trees.
fn fits(held: u64, bytes: u64) -> bool {
    held.saturating_add(bytes) <= MAX_PATH_TREE_BYTES
}

/// Turns the walker's findings into errors, for commands that must not go
/// on past them (restore, ls, cat): `on_node` sees only valid entries.
pub fn strict<'v>(
    mut on_node: impl FnMut(&[Vec<u8>], &Node) -> Result<Flow> + 'v,
) -> impl FnMut(Event) -> Result<Flow> + 'v {
    move |e| match e {
        Event::Node { path, node } => on_node(path, node),
        Event::Invalid { path, why, .. } => Err(Error::corrupt(
            format!("tree entry {}", display_path(path)),
            format!("{why}; run `snap check` to see what else the snapshot holds"),
        )),
        Event::TreeError { error, .. } => Err(error),
        Event::Enter { .. } | Event::Leave { .. } => Ok(Flow::Continue),
    }
}

/// `/a/b` for the components `a`, `b`; `/` for none. Names that are not
/// UTF-8 are shown lossily.
pub fn display_path(path: &[Vec<u8>]) -> String {
    if path.is_empty() {
        return "/".into();
    }
    path.iter()
        .map(|c| format!("/{}", String::from_utf8_lossy(c)))
        .collect()
}

/// Whether `name` may name an entry: not empty, not `.` or `..`, no `/` and
/// no NUL (format-spec.md §10.1).
pub fn check_name(name: &[u8]) -> std::result::Result<(), String> {
    if name.is_empty() || name == b"." || name == b".." || name.contains(&b'/') || name.contains(&0)
    {
        return Err(format!(
            "unsafe name {:?} (empty, `.`, `..`, or holding `/` or NUL)",
            String::from_utf8_lossy(name)
        ));
    }
    Ok(())
}

/// The rules one entry must follow on its own: its name, the fields its
/// kind requires, and a file size equal to its chunk lengths where the tree
/// alone tells (inline records, group totals).
pub fn validate(n: &Node) -> std::result::Result<(), String> {
    check_name(&n.name)?;
    match n.kind {
        NodeKind::File => {
            let content = n.content.as_ref().ok_or("a file entry without content")?;
            let total = match content {
                Content::Inline(r) => decode_records(r, &|| "inline chunk list".into())
                    .map_err(|e| e.to_string())?
                    .iter()
                    .map(|(_, l)| *l as u64)
                    .sum::<u64>(),
                Content::Groups(gs) => {
                    if gs.is_empty() {
                        return Err("a grouped chunk list with no group".into());
                    }
                    let mut total = 0u64;
                    for g in gs {
                        if g.chunks == 0 || g.chunks as usize > GROUP_MAX {
                            return Err(format!(
                                "chunk list group {} claims {} records (1 to {GROUP_MAX} allowed)",
                                g.id, g.chunks
                            ));
                        }
                        if g.bytes > g.chunks as u64 * u32::MAX as u64 {
                            return Err(format!(
                                "chunk list group {} claims {} bytes in {} records",
                                g.id, g.bytes, g.chunks
                            ));
                        }
                        total = total.saturating_add(g.bytes);
                    }
                    total
                }
            };
            if total != n.size {
                return Err(format!("size {} but its chunks hold {total} bytes", n.size));
            }
        }
        NodeKind::Dir if n.subtree.is_none() => return Err("a directory without a subtree".into()),
        NodeKind::Symlink if n.target.is_none() => {
            return Err("a symbolic link without a target".into())
        }
        NodeKind::Chardev | NodeKind::Blockdev if n.rdev.is_none() => {
            return Err("a device without a device number".into())
        }
        _ => {}
    }
    if n.kind != NodeKind::File && n.content.is_some() {
        return Err(format!("a {:?} entry with file content", n.kind));
    }
    if n.kind != NodeKind::Dir && n.subtree.is_some() {
        return Err(format!("a {:?} entry with a subtree", n.kind));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::tree::{encode_records, ListRef};
    use crate::id::{ChunkId, ListId};

    fn file(name: &[u8], size: u64, content: Option<Content>) -> Node {
        Node {
            mode: 0o644,
            size,
            content,
            ..Node::new(name, NodeKind::File)
        }
    }

    #[test]
    fn the_trees_of_one_path_are_bounded_together() {
        let max_tree = MAX_TREE as u64;
        assert!(fits(0, max_tree));
        assert!(fits(max_tree, max_tree));
        assert!(!fits(2 * max_tree, 1));
        assert!(!fits(u64::MAX, 1));
    }

    #[test]
    fn names_and_required_fields() {
        let ok = Content::Inline(encode_records(&[(ChunkId([1; 32]), 5)]));
        assert!(validate(&file(b"a", 5, Some(ok.clone()))).is_ok());
        for bad in [&b""[..], b".", b"..", b"a/b", b"/etc", b"a\0b"] {
            assert!(
                validate(&file(bad, 5, Some(ok.clone()))).is_err(),
                "{bad:?}"
            );
        }
        assert!(validate(&file(b"a", 6, Some(ok.clone()))).is_err());
        assert!(validate(&file(b"a", 0, None)).is_err());
        let mut d = file(b"d", 0, None);
        d.kind = NodeKind::Dir;
        assert!(validate(&d).is_err());
        d.subtree = Some(TreeId([2; 32]));
        assert!(validate(&d).is_ok());
        let g = |chunks, bytes| {
            Content::Groups(vec![ListRef {
                id: ListId([3; 32]),
                bytes,
                chunks,
            }])
        };
        assert!(validate(&file(b"a", 10, Some(g(2, 10)))).is_ok());
        assert!(validate(&file(b"a", 11, Some(g(2, 10)))).is_err());
        assert!(validate(&file(b"a", 10, Some(g(0, 10)))).is_err());
        assert!(validate(&file(b"a", 0, Some(Content::Groups(vec![])))).is_err());
    }
}

#[cfg(test)]
mod proptests {
    use super::validate;
    use crate::format::tree::Tree;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn whatever_decodes_as_a_tree_is_validated_without_panicking(
            data in proptest::collection::vec(any::<u8>(), 0..70_000),
        ) {
            if let Ok(t) = ciborium::from_reader::<Tree, _>(&data[..]) {
                for n in &t.entries {
                    let _ = validate(n);
                }
            }
        }
    }
}
