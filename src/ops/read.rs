//! Reading a snapshot without restoring it: finding one entry, listing a
//! sub-tree (`ls`), writing one file out (`cat`).

use crate::error::{Error, Result};
use crate::format::snapshot::Snapshot;
use crate::format::tree::{Node, NodeKind};
use crate::ops::cache::size_mismatch;
use crate::ops::cache::ReadCache;
use crate::ops::walk::{self, Flow};
use crate::repo::Repository;
use std::io::Write;

/// Splits a path inside a snapshot into its components (raw bytes: names
/// need not be UTF-8).
pub fn components(path: &[u8]) -> Vec<&[u8]> {
    path.split(|&b| b == b'/')
        .filter(|c| !c.is_empty() && *c != b".")
        .collect()
}

/// Finds the node at `path` in the snapshot; `None` stands for the root.
/// Every entry on the way is validated as the walker does.
pub fn find_node(
    repo: &Repository,
    snap: &Snapshot,
    short: &str,
    path: &[u8],
) -> Result<Option<Node>> {
    let comps = components(path);
    if comps.is_empty() {
        return Ok(None);
    }
    let missing = || Error::NoSuchPath {
        snapshot: short.into(),
        path: String::from_utf8_lossy(path).into_owned(),
    };
    let mut tree = repo.load_tree(&snap.tree)?;
    let mut at: Vec<Vec<u8>> = Vec::new();
    for (i, c) in comps.iter().enumerate() {
        let node = tree.get(c).cloned().ok_or_else(missing)?;
        at.push(node.name.clone());
        walk::validate(&node).map_err(|why| {
            Error::corrupt(format!("tree entry {}", walk::display_path(&at)), why)
        })?;
        if i + 1 == comps.len() {
            return Ok(Some(node));
        }
        match node.subtree {
            Some(id) if node.kind == NodeKind::Dir => tree = repo.load_tree(&id)?,
            _ => return Err(missing()),
        }
    }
    unreachable!("the loop returns at the last component")
}

/// One listed entry.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Listed {
    /// Path inside the snapshot, starting with '/'.
    pub path: String,
    /// Kind.
    pub kind: NodeKind,
    /// Mode bits.
    pub mode: u32,
    /// Size.
    pub size: u64,
    /// Modification time, RFC 3339.
    pub mtime: String,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Symlink target.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// For `--json`, when the path is not UTF-8 (`path` then has U+FFFD
    /// in place of the invalid bytes): its exact bytes, as numbers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path_bytes: Option<Vec<u8>>,
    /// Likewise for a symlink target that is not UTF-8.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_bytes: Option<Vec<u8>>,
    /// The path as stored (names need not be UTF-8; `path` replaces what is
    /// not with U+FFFD).
    #[serde(skip)]
    pub raw_path: Vec<u8>,
    /// The symlink target as stored.
    #[serde(skip)]
    pub raw_target: Option<Vec<u8>>,
}

/// An entry's modification time, RFC 3339 in local time.
pub fn mtime_text(n: &Node) -> String {
    chrono::DateTime::from_timestamp(n.mtime, n.mtime_ns)
        .map(|t| {
            t.with_timezone(&chrono::Local)
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, false)
        })
        .unwrap_or_default()
}

/// Lists everything under `path` (recursively), calling `out` per entry.
pub fn list(
    repo: &Repository,
    snap: &Snapshot,
    short: &str,
    path: &[u8],
    out: &mut dyn FnMut(Listed),
) -> Result<()> {
    let base: Vec<Vec<u8>> = components(path).into_iter().map(<[u8]>::to_vec).collect();
    let start = match find_node(repo, snap, short, path)? {
        None => Some(snap.tree),
        Some(n) => {
            out(listed(&raw_path(&base), &n));
            match n.kind {
                NodeKind::Dir => n.subtree,
                _ => None,
            }
        }
    };
    if let Some(id) = start {
        walk::walk(
            repo,
            &id,
            &base,
            &mut walk::strict(|p: &[Vec<u8>], n: &Node| {
                out(listed(&raw_path(p), n));
                Ok(Flow::Continue)
            }),
        )?;
    }
    Ok(())
}

/// A path inside the snapshot as stored: `/` before each component.
fn raw_path(components: &[Vec<u8>]) -> Vec<u8> {
    components
        .iter()
        .flat_map(|c| [b"/".as_slice(), c].concat())
        .collect()
}

fn listed(path: &[u8], n: &Node) -> Listed {
    let path = if path.is_empty() { b"/" } else { path };
    Listed {
        path: String::from_utf8_lossy(path).into_owned(),
        path_bytes: std::str::from_utf8(path).is_err().then(|| path.to_vec()),
        target_bytes: n
            .target
            .as_ref()
            .filter(|t| std::str::from_utf8(t).is_err())
            .cloned(),
        raw_path: path.to_vec(),
        raw_target: n.target.clone(),
        kind: n.kind,
        mode: n.mode,
        size: n.size,
        mtime: mtime_text(n),
        uid: n.uid,
        gid: n.gid,
        target: n
            .target
            .as_ref()
            .map(|t| String::from_utf8_lossy(t).into_owned()),
    }
}

/// Chunks `cat` keeps: a chunk repeated in a file (runs of zeros, a
/// dump's repeated pages) is read once while it stays.
const CAT_CACHE: usize = 32 << 20;

/// Writes a file's contents to `w`, checking each chunk's length and the
/// total against the tree as restore does.
pub fn cat(repo: &Repository, node: &Node, w: &mut dyn Write) -> Result<u64> {
    let content = node.content.as_ref().ok_or_else(|| {
        Error::Usage(format!(
            "{} is not a regular file",
            String::from_utf8_lossy(&node.name)
        ))
    })?;
    let cache = ReadCache::new(CAT_CACHE);
    let mut n = 0;
    let mut closed = false;
    repo.for_each_chunk_group(content, &mut |group| {
        for (id, len) in group {
            if closed {
                return Ok(());
            }
            let data = cache.chunk(repo, id, *len)?;
            match w.write_all(&data) {
                Ok(()) => n += data.len() as u64,
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => closed = true,
                Err(e) => return Err(Error::io("standard output", e)),
            }
        }
        Ok(())
    })?;
    if !closed && n != node.size {
        return Err(size_mismatch(node, n));
    }
    Ok(n)
}
