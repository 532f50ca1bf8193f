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

use crate::ops::live::{self, Action, Overwrite, State};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Threads placing files when the packs come from a remote backend.
const REMOTE_THREADS: usize = 8;

/// Decoded trees the planning walk keeps.
const TREE_CACHE: usize = 64 << 20;

/// Figures of a restore.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct RestoreStats {
    /// Files written (created or overwritten), hard links included.
    pub files: u64,
    /// Directories created or kept.
    pub dirs: u64,
    /// Bytes of file contents written.
    pub bytes: u64,
    /// Entries made where nothing was.
    pub created: u64,
    /// Entries replaced.
    pub overwritten: u64,
    /// Entries left as they were (`--overwrite if-changed|if-newer|never`).
    pub unchanged: u64,
    /// Entries whose mode, owner or times alone were set.
    pub metadata: u64,
    /// Live entries removed (`--delete`); a directory counts once.
    pub deleted: u64,
    /// Entries that could not be restored, with the reason.
    pub errors: Vec<(String, String)>,
}

/// How a restore treats what the target holds already.
#[derive(Clone, Copy, Debug, Default)]
pub struct RestoreOptions {
    /// When an entry that is there is replaced.
    pub overwrite: Overwrite,
    /// Remove what the restored part of the target holds and the snapshot
    /// does not.
    pub delete: bool,
    /// Decide, touch nothing: the plan is returned.
    pub dry_run: bool,
    /// Compare files of the same size by their contents (cut and hashed as
    /// the repository does), not by their modification time.
    pub verify: bool,
}

/// One planned change, for `--dry-run`.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Planned {
    /// The path in the target.
    pub path: PathBuf,
    /// `create`, `overwrite`, `metadata` or `delete`.
    pub action: &'static str,
    /// The entry's kind in the snapshot (`dir` for a deleted directory).
    pub kind: String,
}

struct Plan {
    dirs: Vec<(PathBuf, Node)>,
    files: Vec<(PathBuf, Node)>,
    links: Vec<(PathBuf, PathBuf, Node)>,
    others: Vec<(PathBuf, Node)>,
    first_of_inode: HashMap<(u64, u64), PathBuf>,
    /// Directories wholly restored (not only on the way to an included
    /// path), with the names the snapshot has in them: what `--delete`
    /// cleans.
    whole: BTreeMap<PathBuf, HashSet<Vec<u8>>>,
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

/// Restores a snapshot (or the parts under `includes`) into `target`,
/// overwriting what is there.
pub fn restore(
    repo: &Repository,
    snap: &Snapshot,
    target: &Path,
    includes: &[Vec<u8>],
    progress: &dyn Progress,
) -> Result<RestoreStats> {
    Ok(restore_with(
        repo,
        snap,
        target,
        includes,
        RestoreOptions::default(),
        progress,
    )?
    .0)
}

/// [`restore`] with options; with `dry_run`, nothing is touched and the
/// planned changes are returned.
pub fn restore_with(
    repo: &Repository,
    snap: &Snapshot,
    target: &Path,
    includes: &[Vec<u8>],
    opts: RestoreOptions,
    progress: &dyn Progress,
) -> Result<(RestoreStats, Vec<Planned>)> {
    let includes: Vec<Vec<Vec<u8>>> = includes
        .iter()
        .map(|i| components(i).into_iter().map(<[u8]>::to_vec).collect())
        .collect();
    let target_existed = target.is_dir();
    if let Ok(md) = fs::symlink_metadata(target) {
        if md.file_type().is_symlink() && (opts.delete || opts.overwrite != Overwrite::Always) {
            // Followed, the target would be somewhere else entirely.
            return Err(Error::Usage(format!(
                "--target {} is a symbolic link: give the real directory",
                target.display()
            )));
        }
    }
    let mut plan = Plan {
        dirs: vec![],
        files: vec![],
        links: vec![],
        others: vec![],
        first_of_inode: HashMap::new(),
        whole: BTreeMap::new(),
    };
    if includes.is_empty() {
        plan.whole.insert(target.to_path_buf(), HashSet::new());
    }
    plan_tree(repo, &snap.tree, target, &includes, &mut plan)?;
    // SAFETY: geteuid cannot fail.
    let owners = unsafe { libc::geteuid() } == 0;
    let verifier = opts.verify.then(|| live::Verifier::new(repo, snap.kind));
    let verify = verifier.as_ref();
    if opts.dry_run {
        return dry_run(&plan, target_existed, opts, owners, verify);
    }
    fs::create_dir_all(target).at(target)?;
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
    // A file or link where the snapshot has a directory is removed by
    // make_dir, whatever the overwrite mode: the directory's entries need
    // it.
    for (p, _) in &plan.dirs {
        if make_dir(p)? {
            remove_leftovers(p);
        } else {
            fresh.insert(p.clone());
        }
    }
    // Files are created one directory per thread where possible: creating
    // entries in one directory takes its lock, so two threads in the same
    // directory mostly wait for each other. A thread with nothing left still
    // steals from the other's directory.
    let by_dir: Vec<&[(PathBuf, Node)]> = plan
        .files
        .chunk_by(|a, b| a.0.parent() == b.0.parent())
        .collect();
    let place_all = || -> Vec<(PathBuf, Result<(Action, u64)>)> {
        by_dir
            .par_iter()
            .flat_map(|files| files.par_iter())
            .map(|(p, n)| {
                let in_fresh = p.parent().is_some_and(|d| fresh.contains(d));
                let r = place_one(p, n, in_fresh, opts, owners, verify, |p, n| {
                    place::file(repo, p, n, owners, in_fresh)
                });
                progress.file_done();
                if let Ok((_, b)) = &r {
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
    let mut counted: Vec<Action> = Vec::new();
    let mut bytes = 0;
    for (p, r) in results {
        match r {
            Ok((a, b)) => {
                counted.push(a);
                bytes += b;
            }
            Err(e) => failed(&p, e),
        }
    }
    // Regular files and hard links written (what `files` counts).
    let files_written = counted
        .iter()
        .filter(|a| matches!(a, Action::Create | Action::Overwrite))
        .count() as u64;
    for (p, n) in &plan.others {
        let in_fresh = p.parent().is_some_and(|d| fresh.contains(d));
        match place_one(p, n, in_fresh, opts, owners, verify, |p, n| {
            place::special(p, n, owners).map(|()| 0)
        }) {
            Ok((a, _)) => counted.push(a),
            Err(e) => failed(p, e),
        }
    }
    let mut links_written = Vec::new();
    for (p, first, _) in &plan.links {
        let live = fs::symlink_metadata(p).ok();
        let linked = match (&live, fs::symlink_metadata(first)) {
            (Some(a), Ok(b)) => a.ino() == b.ino() && a.dev() == b.dev(),
            _ => false,
        };
        if linked && opts.overwrite != Overwrite::Always {
            counted.push(Action::Keep);
            continue;
        }
        let existed = live.is_some();
        match place::hard_link(first, p) {
            Ok(()) => links_written.push(if existed {
                Action::Overwrite
            } else {
                Action::Create
            }),
            Err(e) => failed(p, e),
        }
    }
    let files_written = files_written + links_written.len() as u64;
    counted.extend(links_written);
    let mut deleted = 0;
    if opts.delete {
        for (dir, names) in &plan.whole {
            let extras = match live::extras(dir, names) {
                Ok(x) => x,
                Err(e) => {
                    failed(dir, e);
                    continue;
                }
            };
            for x in extras {
                match live::remove(&x) {
                    Ok(()) => deleted += 1,
                    Err(e) => failed(&x.path, e),
                }
            }
        }
    }
    for (p, n) in plan.dirs.iter().rev() {
        if let Err(e) = place::set_metadata(p, p, n, owners) {
            failed(p, e);
        }
    }
    for a in counted {
        match a {
            Action::Create => stats.created += 1,
            Action::Overwrite => stats.overwritten += 1,
            Action::Metadata => stats.metadata += 1,
            Action::Keep => stats.unchanged += 1,
        }
    }
    stats.files = files_written;
    stats.bytes += bytes;
    stats.deleted = deleted;
    restore_root(snap, target, includes.is_empty(), owners, &mut stats);
    Ok((stats, Vec::new()))
}

/// Decides and carries out one entry: `make` writes it (under a temporary
/// name, then renamed over what is there) and returns its length.
fn place_one(
    p: &Path,
    n: &Node,
    in_fresh: bool,
    opts: RestoreOptions,
    owners: bool,
    verify: Option<&live::Verifier>,
    make: impl FnOnce(&Path, &Node) -> Result<u64>,
) -> Result<(Action, u64)> {
    let action = if in_fresh {
        Action::Create
    } else {
        let state = live::compare(p, n, owners, verify);
        let a = live::decide(p, n, state, opts.overwrite, opts.delete)?;
        if state == State::DirInTheWay && a == Action::Overwrite {
            live::remove(&live::Extra {
                path: p.to_path_buf(),
                dir: true,
            })?;
        }
        a
    };
    match action {
        Action::Keep => Ok((action, 0)),
        Action::Metadata => place::set_metadata(p, p, n, owners).map(|()| (action, 0)),
        Action::Create | Action::Overwrite => make(p, n).map(|b| (action, b)),
    }
}

/// The changes a restore would make, without making them.
fn dry_run(
    plan: &Plan,
    target_existed: bool,
    opts: RestoreOptions,
    owners: bool,
    verify: Option<&live::Verifier>,
) -> Result<(RestoreStats, Vec<Planned>)> {
    let mut out = Vec::new();
    let mut stats = RestoreStats::default();
    let kind = |n: &Node| format!("{:?}", n.kind).to_lowercase();
    for (p, n) in &plan.dirs {
        if !target_existed || fs::symlink_metadata(p).map_or(true, |m| !m.is_dir()) {
            out.push(Planned {
                path: p.clone(),
                action: "create",
                kind: kind(n),
            });
        }
    }
    stats.dirs = plan.dirs.len() as u64;
    let entries = plan
        .files
        .iter()
        .chain(&plan.others)
        .map(|(p, n)| (p, n))
        .chain(plan.links.iter().map(|(p, _, n)| (p, n)));
    for (p, n) in entries {
        let state = if target_existed {
            live::compare(p, n, owners, verify)
        } else {
            State::Missing
        };
        let a = live::decide(p, n, state, opts.overwrite, opts.delete)?;
        let action = match a {
            Action::Create => {
                stats.created += 1;
                "create"
            }
            Action::Overwrite => {
                stats.overwritten += 1;
                "overwrite"
            }
            Action::Metadata => {
                stats.metadata += 1;
                "metadata"
            }
            Action::Keep => {
                stats.unchanged += 1;
                continue;
            }
        };
        if n.kind == NodeKind::File && action != "metadata" {
            stats.files += 1;
            stats.bytes += n.size;
        }
        out.push(Planned {
            path: p.clone(),
            action,
            kind: kind(n),
        });
    }
    if opts.delete && target_existed {
        for (dir, names) in &plan.whole {
            for x in live::extras(dir, names)? {
                stats.deleted += 1;
                out.push(Planned {
                    kind: if x.dir { "dir".into() } else { "entry".into() },
                    path: x.path,
                    action: "delete",
                });
            }
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok((stats, out))
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
        if take {
            if let Some(names) = p.parent().and_then(|d| plan.whole.get_mut(d)) {
                names.insert(n.name.clone());
            }
        }
        match n.kind {
            NodeKind::Dir if descend => {
                if take {
                    plan.whole.insert(p.clone(), HashSet::new());
                }
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
