//! Restore, ls and cat: reading snapshots back.
//!
//! Restore walks the tree once to plan (directories, files, links), writes
//! file contents in parallel, then applies directory metadata deepest first
//! so that writing into a directory does not disturb its restored mtime.
//! All-zero chunks are skipped with a seek, so sparse files stay sparse.

use crate::error::{Error, IoContext, Result};
use crate::format::snapshot::Snapshot;
use crate::format::tree::{Node, NodeKind, Tree};
use crate::id::BlobRef;
use crate::progress::Progress;
use crate::repo::Repository;
use rayon::prelude::*;
use std::collections::HashMap;
use std::ffi::{CString, OsStr};
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// Splits a path inside a snapshot into its components (raw bytes: names
/// need not be UTF-8).
pub fn components(path: &[u8]) -> Vec<&[u8]> {
    path.split(|&b| b == b'/')
        .filter(|c| !c.is_empty() && *c != b".")
        .collect()
}

/// Finds the node at `path` in the snapshot; `None` stands for the root.
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
    let mut tree = repo.load_tree(&snap.tree)?;
    for (i, c) in comps.iter().enumerate() {
        let node = tree.get(c).cloned().ok_or_else(|| Error::NoSuchPath {
            snapshot: short.into(),
            path: String::from_utf8_lossy(path).into_owned(),
        })?;
        if i + 1 == comps.len() {
            return Ok(Some(node));
        }
        match node.subtree {
            Some(id) if node.kind == NodeKind::Dir => tree = repo.load_tree(&id)?,
            _ => {
                return Err(Error::NoSuchPath {
                    snapshot: short.into(),
                    path: String::from_utf8_lossy(path).into_owned(),
                })
            }
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
    let prefix: Vec<u8> = components(path)
        .iter()
        .flat_map(|c| [b"/".as_slice(), c].concat())
        .collect();
    let start = match find_node(repo, snap, short, path)? {
        None => Some(snap.tree),
        Some(n) => {
            let dir = n.subtree;
            out(listed(&prefix, &n));
            if n.kind == NodeKind::Dir {
                dir
            } else {
                None
            }
        }
    };
    fn walk(
        repo: &Repository,
        tree: &Tree,
        prefix: &[u8],
        out: &mut dyn FnMut(Listed),
    ) -> Result<()> {
        for n in &tree.entries {
            let p = [prefix, b"/", &n.name].concat();
            out(listed(&p, n));
            if let (NodeKind::Dir, Some(id)) = (n.kind, n.subtree) {
                walk(repo, &repo.load_tree(&id)?, &p, out)?;
            }
        }
        Ok(())
    }
    if let Some(id) = start {
        walk(repo, &repo.load_tree(&id)?, &prefix, out)?;
    }
    Ok(())
}

fn listed(path: &[u8], n: &Node) -> Listed {
    let path = if path.is_empty() { b"/" } else { path };
    Listed {
        path: String::from_utf8_lossy(path).into_owned(),
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

/// Writes a file's contents to `w`.
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
        for (id, _) in group {
            if closed {
                return Ok(());
            }
            let data = repo.read_blob(&BlobRef::from(*id))?;
            match w.write_all(&data) {
                Ok(()) => n += data.len() as u64,
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => closed = true,
                Err(e) => return Err(Error::io("standard output", e)),
            }
        }
        Ok(())
    })?;
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
    fs::create_dir_all(target).at(target)?;
    let mut plan = Plan {
        dirs: vec![],
        files: vec![],
        links: vec![],
        others: vec![],
        first_of_inode: HashMap::new(),
    };
    let root = repo.load_tree(&snap.tree)?;
    plan_tree(repo, &root, target, &mut Vec::new(), &includes, &mut plan)?;
    let mut stats = RestoreStats {
        dirs: plan.dirs.len() as u64,
        ..Default::default()
    };
    for (p, _) in &plan.dirs {
        make_dir(p)?;
    }
    let owners = unsafe { libc::geteuid() } == 0;
    let results: Vec<(PathBuf, Result<u64>)> = plan
        .files
        .par_iter()
        .map(|(p, n)| {
            let r = restore_file(repo, p, n).and_then(|b| {
                set_metadata(p, n, owners)?;
                Ok(b)
            });
            progress.file_done();
            if let Ok(b) = &r {
                progress.bytes(*b);
            }
            (p.clone(), r)
        })
        .collect();
    for (p, r) in results {
        match r {
            Ok(b) => {
                stats.files += 1;
                stats.bytes += b;
            }
            Err(e) => {
                progress.warn(&p.display().to_string(), &e.to_string());
                stats.errors.push((p.display().to_string(), e.to_string()));
            }
        }
    }
    for (p, n) in &plan.others {
        if let Err(e) = restore_special(p, n).and_then(|_| set_metadata(p, n, owners)) {
            progress.warn(&p.display().to_string(), &e.to_string());
            stats.errors.push((p.display().to_string(), e.to_string()));
        }
    }
    for (p, first, _) in &plan.links {
        let _ = fs::remove_file(p);
        if let Err(e) = fs::hard_link(first, p) {
            progress.warn(&p.display().to_string(), &e.to_string());
            stats.errors.push((p.display().to_string(), e.to_string()));
        } else {
            stats.files += 1;
        }
    }
    for (p, n) in plan.dirs.iter().rev() {
        if let Err(e) = set_metadata(p, n, owners) {
            stats.errors.push((p.display().to_string(), e.to_string()));
        }
    }
    Ok(stats)
}

/// Creates one directory of the plan (its parent comes earlier in the plan).
/// Whatever else holds its place in the target is removed first: a symlink
/// left there by an intruder must not lead the restore outside the target.
fn make_dir(p: &Path) -> Result<()> {
    match fs::symlink_metadata(p) {
        Ok(md) if md.is_dir() => return Ok(()),
        Ok(_) => fs::remove_file(p).at(p)?,
        Err(_) => {}
    }
    fs::create_dir(p).at(p)
}

fn plan_tree(
    repo: &Repository,
    tree: &Tree,
    dir: &Path,
    rel: &mut Vec<Vec<u8>>,
    includes: &[Vec<Vec<u8>>],
    plan: &mut Plan,
) -> Result<()> {
    for n in &tree.entries {
        if n.name.is_empty() || n.name == b"." || n.name == b".." || n.name.contains(&b'/') {
            return Err(Error::corrupt(
                "tree entry",
                format!("unsafe name {:?}", String::from_utf8_lossy(&n.name)),
            ));
        }
        rel.push(n.name.clone());
        let refs: Vec<&[u8]> = rel.iter().map(|v| v.as_slice()).collect();
        let (take, descend) = selected(&refs, includes);
        let p = dir.join(OsStr::from_bytes(&n.name));
        match n.kind {
            NodeKind::Dir if descend => {
                plan.dirs.push((p.clone(), n.clone()));
                if let Some(id) = n.subtree {
                    plan_tree(repo, &repo.load_tree(&id)?, &p, rel, includes, plan)?;
                }
            }
            NodeKind::File if take => {
                if n.nlink > 1 && n.inode != 0 {
                    if let Some(first) = plan.first_of_inode.get(&(n.dev, n.inode)) {
                        plan.links.push((p, first.clone(), n.clone()));
                        rel.pop();
                        continue;
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
        rel.pop();
    }
    Ok(())
}

fn restore_file(repo: &Repository, p: &Path, n: &Node) -> Result<u64> {
    // Whatever holds the place (an old file, a planted symlink) goes first,
    // and the new file is created fresh: a symlink is never followed.
    match fs::remove_file(p) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(Error::io(p, e)),
        _ => {}
    }
    let f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(p)
        .at(p)?;
    let Some(content) = &n.content else {
        return Ok(0);
    };
    let mut offset = 0u64;
    repo.for_each_chunk_group(content, &mut |group| {
        let mut starts = Vec::with_capacity(group.len());
        for (_, len) in group {
            starts.push(offset);
            offset += *len as u64;
        }
        // Chunks are fetched and written in parallel, each at its offset;
        // all-zero chunks are left as holes, so sparse files stay sparse.
        group
            .par_iter()
            .zip(starts)
            .try_for_each(|((id, len), at)| {
                let data = repo.read_blob(&BlobRef::from(*id))?;
                if data.len() != *len as usize {
                    return Err(Error::corrupt(
                        format!("chunk {id}"),
                        format!("{} bytes, the chunk list says {len}", data.len()),
                    ));
                }
                if data.iter().all(|&b| b == 0) {
                    return Ok(());
                }
                f.write_all_at(&data, at).at(p)
            })
    })?;
    f.set_len(offset).at(p)?;
    Ok(offset)
}

fn restore_special(p: &Path, n: &Node) -> Result<()> {
    let _ = fs::remove_file(p);
    match n.kind {
        NodeKind::Symlink => {
            let t = n.target.as_deref().unwrap_or_default();
            std::os::unix::fs::symlink(OsStr::from_bytes(t), p).at(p)
        }
        NodeKind::Fifo | NodeKind::Chardev | NodeKind::Blockdev => {
            let c = CString::new(p.as_os_str().as_bytes())
                .map_err(|_| Error::Usage(format!("{} has a NUL byte", p.display())))?;
            let fmt = match n.kind {
                NodeKind::Fifo => libc::S_IFIFO,
                NodeKind::Chardev => libc::S_IFCHR,
                _ => libc::S_IFBLK,
            };
            // SAFETY: c is a valid NUL-terminated path.
            let r = unsafe {
                libc::mknod(
                    c.as_ptr(),
                    fmt | (n.mode & 0o7777),
                    n.rdev.unwrap_or(0) as libc::dev_t,
                )
            };
            if r != 0 {
                return Err(Error::io(p, std::io::Error::last_os_error()));
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

fn set_metadata(p: &Path, n: &Node, owners: bool) -> Result<()> {
    let c = CString::new(p.as_os_str().as_bytes())
        .map_err(|_| Error::Usage(format!("{} has a NUL byte", p.display())))?;
    if owners {
        // SAFETY: c is a valid path; lchown does not follow symlinks.
        if unsafe { libc::lchown(c.as_ptr(), n.uid, n.gid) } != 0 {
            return Err(Error::io(p, std::io::Error::last_os_error()));
        }
    }
    if n.kind != NodeKind::Symlink {
        // SAFETY: c is a valid path.
        if unsafe { libc::chmod(c.as_ptr(), n.mode as libc::mode_t) } != 0 {
            return Err(Error::io(p, std::io::Error::last_os_error()));
        }
    }
    let times = [
        libc::timespec {
            tv_sec: n.mtime as libc::time_t,
            tv_nsec: n.mtime_ns as libc::c_long,
        },
        libc::timespec {
            tv_sec: n.mtime as libc::time_t,
            tv_nsec: n.mtime_ns as libc::c_long,
        },
    ];
    // SAFETY: c is a valid path and times has two entries.
    if unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            c.as_ptr(),
            times.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    } != 0
    {
        return Err(Error::io(p, std::io::Error::last_os_error()));
    }
    Ok(())
}
