//! Restore, ls and cat: reading snapshots back.
//!
//! Restore walks the tree once to plan (directories, files, links), writes
//! file contents in parallel, then applies directory metadata deepest first
//! so that writing into a directory does not disturb its restored mtime.
//! Each entry is made under a temporary name and renamed into place
//! ([`crate::ops::place`]), so restoring over a live tree never destroys a
//! file before its replacement is complete.

use crate::error::{Error, IoContext, Result};
use crate::format::snapshot::Snapshot;
use crate::format::tree::{Node, NodeKind};
use crate::id::BlobRef;
use crate::ops::place::{self, make_dir, remove_leftovers};
use crate::ops::walk::{self, check_chunk_len, size_mismatch, Flow};
use crate::progress::Progress;
use crate::repo::Repository;
use rayon::prelude::*;

/// Threads placing files when the packs come from a remote backend.
const REMOTE_THREADS: usize = 8;
use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

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

fn mtime_text(n: &Node) -> String {
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

/// Writes a file's contents to `w`, checking each chunk's length and the
/// total against the tree as restore does.
pub fn cat(repo: &Repository, node: &Node, w: &mut dyn Write) -> Result<u64> {
    let content = node.content.as_ref().ok_or_else(|| {
        Error::Usage(format!(
            "{} is not a regular file",
            String::from_utf8_lossy(&node.name)
        ))
    })?;
    let mut n = 0;
    let mut closed = false;
    repo.for_each_chunk_group(content, &mut |group| {
        for (id, len) in group {
            if closed {
                return Ok(());
            }
            let data = repo.read_blob(&BlobRef::from(*id))?;
            check_chunk_len(id, *len, &data)?;
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

/// Figures of a restore.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct RestoreStats {
    /// Files written.
    pub files: u64,
    /// Directories created.
    pub dirs: u64,
    /// Bytes of file contents.
    pub bytes: u64,
    /// Entries that could not be restored, with the reason.
    pub errors: Vec<(String, String)>,
}

struct Plan {
    dirs: Vec<(PathBuf, Node)>,
    files: Vec<(PathBuf, Node)>,
    links: Vec<(PathBuf, PathBuf, Node)>,
    others: Vec<(PathBuf, Node)>,
    first_of_inode: HashMap<(u64, u64), PathBuf>,
}

fn selected(rel: &[&[u8]], includes: &[Vec<Vec<u8>>]) -> (bool, bool) {
    if includes.is_empty() {
        return (true, true);
    }
    let mut take = false;
    let mut descend = false;
    for inc in includes {
        let n = inc.len().min(rel.len());
        let same_prefix = inc[..n]
            .iter()
            .zip(&rel[..n])
            .all(|(a, b)| a.as_slice() == *b);
        if same_prefix && rel.len() >= inc.len() {
            take = true;
        }
        if same_prefix {
            descend = true;
        }
    }
    (take, descend)
}

/// Restores a snapshot (or the parts under `includes`) into `target`.
pub fn restore(
    repo: &Repository,
    snap: &Snapshot,
    target: &Path,
    includes: &[Vec<u8>],
    progress: &dyn Progress,
) -> Result<RestoreStats> {
    let includes: Vec<Vec<Vec<u8>>> = includes
        .iter()
        .map(|i| components(i).into_iter().map(<[u8]>::to_vec).collect())
        .collect();
    let target_existed = target.is_dir();
    fs::create_dir_all(target).at(target)?;
    let mut plan = Plan {
        dirs: vec![],
        files: vec![],
        links: vec![],
        others: vec![],
        first_of_inode: HashMap::new(),
    };
    plan_tree(repo, &snap.tree, target, &includes, &mut plan)?;
    let mut stats = RestoreStats {
        dirs: plan.dirs.len() as u64,
        ..Default::default()
    };
    // Directories this restore creates hold nothing live: files go
    // straight under their names there. Only a directory that was there can
    // hold leftovers of an interrupted restore.
    let mut fresh = std::collections::HashSet::new();
    if target_existed {
        remove_leftovers(target);
    } else {
        fresh.insert(target.to_path_buf());
    }
    for (p, _) in &plan.dirs {
        if make_dir(p)? {
            remove_leftovers(p);
        } else {
            fresh.insert(p.clone());
        }
    }
    // SAFETY: geteuid cannot fail.
    let owners = unsafe { libc::geteuid() } == 0;
    // Files are created one directory per thread where possible: creating
    // entries in one directory takes its lock, so two threads in the same
    // directory mostly wait for each other. A thread with nothing left still
    // steals from the other's directory.
    let by_dir: Vec<&[(PathBuf, Node)]> = plan
        .files
        .chunk_by(|a, b| a.0.parent() == b.0.parent())
        .collect();
    let place_all = || -> Vec<(PathBuf, Result<u64>)> {
        by_dir
            .par_iter()
            .flat_map(|files| files.par_iter())
            .map(|(p, n)| {
                let in_fresh = p.parent().is_some_and(|d| fresh.contains(d));
                let r = place::file(repo, p, n, owners, in_fresh);
                progress.file_done();
                if let Ok(b) = &r {
                    progress.bytes(*b);
                }
                (p.clone(), r)
            })
            .collect()
    };
    // From a remote backend most of a thread's time is a wait on the
    // network: more threads than cores keep more requests in flight.
    let results = match repo.backend.is_remote().then(|| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(REMOTE_THREADS)
            .build()
    }) {
        Some(Ok(pool)) => pool.install(place_all),
        _ => place_all(),
    };
    let mut failed = |p: &Path, e: Error| {
        let e = e.to_string();
        progress.warn(&p.display().to_string(), &e);
        stats.errors.push((p.display().to_string(), e));
    };
    let mut files = 0;
    let mut bytes = 0;
    for (p, r) in results {
        match r {
            Ok(b) => {
                files += 1;
                bytes += b;
            }
            Err(e) => failed(&p, e),
        }
    }
    for (p, n) in &plan.others {
        if let Err(e) = place::special(p, n, owners) {
            failed(p, e);
        }
    }
    for (p, first, _) in &plan.links {
        match place::hard_link(first, p) {
            Ok(()) => files += 1,
            Err(e) => failed(p, e),
        }
    }
    for (p, n) in plan.dirs.iter().rev() {
        if let Err(e) = place::set_metadata(p, p, n, owners) {
            failed(p, e);
        }
    }
    stats.files += files;
    stats.bytes += bytes;
    restore_root(snap, target, includes.is_empty(), owners, &mut stats);
    Ok(stats)
}

/// The pushed directory's own mode, owner and mtime go to the target, last
/// (writing into it changes its mtime), when the whole snapshot is restored.
fn restore_root(
    snap: &Snapshot,
    target: &Path,
    whole: bool,
    owners: bool,
    stats: &mut RestoreStats,
) {
    if let (true, Some(root)) = (whole, &snap.root) {
        if let Err(e) = place::set_metadata(target, target, &root.as_node(), owners) {
            stats
                .errors
                .push((target.display().to_string(), e.to_string()));
        }
    }
}

fn plan_tree(
    repo: &Repository,
    root: &crate::id::TreeId,
    target: &Path,
    includes: &[Vec<Vec<u8>>],
    plan: &mut Plan,
) -> Result<()> {
    let mut visit = walk::strict(|rel: &[Vec<u8>], n: &Node| {
        let refs: Vec<&[u8]> = rel.iter().map(|v| v.as_slice()).collect();
        let (take, descend) = selected(&refs, includes);
        let mut p = target.to_path_buf();
        for c in rel {
            p.push(OsStr::from_bytes(c));
        }
        match n.kind {
            NodeKind::Dir if descend => {
                plan.dirs.push((p, n.clone()));
                return Ok(Flow::Continue);
            }
            NodeKind::File if take => {
                if n.nlink > 1 && n.inode != 0 {
                    if let Some(first) = plan.first_of_inode.get(&(n.dev, n.inode)) {
                        plan.links.push((p, first.clone(), n.clone()));
                        return Ok(Flow::Continue);
                    }
                    plan.first_of_inode.insert((n.dev, n.inode), p.clone());
                }
                plan.files.push((p, n.clone()));
            }
            NodeKind::Symlink | NodeKind::Fifo | NodeKind::Chardev | NodeKind::Blockdev if take => {
                plan.others.push((p, n.clone()))
            }
            _ => {}
        }
        Ok(Flow::Skip)
    });
    walk::walk(repo, root, &[], &mut visit)
}
