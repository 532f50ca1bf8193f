//! Restore: writing a snapshot back to disk.
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
use crate::ops::cache::ReadCache;
use crate::ops::place::{self, make_dir, remove_leftovers};
use crate::ops::read::components;
use crate::ops::walk::{self, Flow};
use crate::progress::Progress;
use crate::repo::Repository;
use rayon::prelude::*;

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Threads placing files when the packs come from a remote backend.
const REMOTE_THREADS: usize = 8;

/// Decoded trees the planning walk keeps.
const TREE_CACHE: usize = 64 << 20;

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
    // A directory that appears at several places (the same plugin in
    // several sites) is one tree, read once.
    let cache = ReadCache::new(TREE_CACHE);
    walk::walk_cached(repo, Some(&cache), root, &[], &mut visit)
}
