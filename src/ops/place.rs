//! Putting restored entries in place.
//!
//! Every file, symlink, special file and hard link is first made under a
//! temporary name in its own directory (`.snap-restore-<pid>-<random>`),
//! given its contents and metadata, and only then renamed over whatever held
//! its name. So a restore into a live site that fails half-way (a full disk,
//! Ctrl-C, a damaged chunk) leaves each old file either untouched or replaced
//! by the complete new one, never truncated. The rename replaces a planted
//! symlink itself and never follows it. Leftovers of an interrupted restore
//! are recognised by their name and the dead process id in it, and removed
//! by the next restore into the same directories.

use crate::error::{Error, IoContext, Result};
use crate::format::tree::{Node, NodeKind};
use crate::id::BlobRef;
use crate::ops::cache::{check_chunk_len, size_mismatch};
use crate::repo::Repository;
use rayon::prelude::*;
use std::ffi::{CString, OsStr};
use std::fs::{self, OpenOptions};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// The start of every temporary name restore makes.
pub const PREFIX: &str = ".snap-restore-";

/// A new temporary name beside `p`.
fn temporary_for(p: &Path) -> PathBuf {
    let dir = p.parent().unwrap_or(Path::new("."));
    dir.join(format!(
        "{PREFIX}{}-{:016x}",
        std::process::id(),
        rand::random::<u64>()
    ))
}

/// Renames `tmp` over `p`; on failure `tmp` is removed and `p` untouched.
fn put_in_place(tmp: &Path, p: &Path) -> Result<()> {
    if let Err(e) = fs::rename(tmp, p) {
        let _ = fs::remove_file(tmp);
        return Err(Error::io(p, e));
    }
    Ok(())
}

/// Runs `make` on a temporary name beside `p`, then puts it in place.
fn via_temporary(p: &Path, make: impl FnOnce(&Path) -> Result<u64>) -> Result<u64> {
    let tmp = temporary_for(p);
    match make(&tmp) {
        Ok(n) => {
            put_in_place(&tmp, p)?;
            Ok(n)
        }
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            Err(e)
        }
    }
}

/// Removes what interrupted restores left in `dir` (entries named by a
/// process that is gone); returns how many.
pub fn remove_leftovers(dir: &Path) -> u64 {
    let Ok(rd) = fs::read_dir(dir) else { return 0 };
    let mut n = 0;
    for e in rd.flatten() {
        let name = e.file_name();
        let Some(rest) = name.to_str().and_then(|s| s.strip_prefix(PREFIX)) else {
            continue;
        };
        let pid = rest.split('-').next().and_then(|p| p.parse::<u32>().ok());
        if pid.is_some_and(|pid| !crate::repo::lock::process_alive(pid))
            && fs::remove_file(e.path()).is_ok()
        {
            n += 1;
        }
    }
    n
}

/// Creates one directory (its parent exists). Whatever else holds its name
/// is removed first: a symlink left there by an intruder must not lead the
/// restore outside the target. Returns whether a directory was there.
pub fn make_dir(p: &Path) -> Result<bool> {
    match fs::symlink_metadata(p) {
        Ok(md) if md.is_dir() => return Ok(true),
        Ok(_) => fs::remove_file(p).at(p)?,
        Err(_) => {}
    }
    fs::create_dir(p).at(p)?;
    Ok(false)
}

/// Restores a regular file with its metadata; returns its length. In a
/// directory this restore created (`fresh`) nothing live can be lost, and
/// the file is written under its own name.
pub fn file(repo: &Repository, p: &Path, n: &Node, owners: bool, fresh: bool) -> Result<u64> {
    if fresh {
        return write_file(repo, p, p, n, owners, true);
    }
    via_temporary(p, |tmp| write_file(repo, tmp, p, n, owners, false))
}

/// The process's umask, read without changing it (changing it, even for a
/// moment, would race with the other restoring threads).
fn umask() -> Option<u32> {
    static UMASK: std::sync::OnceLock<Option<u32>> = std::sync::OnceLock::new();
    *UMASK.get_or_init(|| {
        let status = fs::read_to_string("/proc/self/status").ok()?;
        let line = status.lines().find(|l| l.starts_with("Umask:"))?;
        u32::from_str_radix(line["Umask:".len()..].trim(), 8).ok()
    })
}

fn write_file(
    repo: &Repository,
    at: &Path,
    p: &Path,
    n: &Node,
    owners: bool,
    fresh: bool,
) -> Result<u64> {
    // Created with its permission bits when the umask keeps them all, so
    // that no chmod is needed (one system call less per file: with many
    // small files, creating them is what a restore costs).
    let bits = n.mode & 0o777;
    let f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(bits)
        .open(at)
        .at(p)?;
    let chmod = n.mode & 0o7000 != 0 || umask().is_none_or(|m| bits & m != 0);
    // In a directory this restore created (not set-group-id), a new file
    // belongs to this process's user and group already.
    // SAFETY: geteuid and getegid cannot fail.
    let chown =
        owners && !(fresh && (n.uid, n.gid) == unsafe { (libc::geteuid(), libc::getegid()) });
    let mut offset = 0u64;
    let mut hole_at_end = false;
    if let Some(content) = &n.content {
        repo.for_each_chunk_group(content, &mut |group| {
            let mut starts = Vec::with_capacity(group.len());
            for (_, len) in group {
                starts.push(offset);
                offset += *len as u64;
            }
            let write = |(id, len): &(crate::id::ChunkId, u32), at: u64| -> Result<bool> {
                let data = repo.read_blob(&BlobRef::from(*id))?;
                check_chunk_len(id, *len, &data)?;
                // All-zero chunks stay holes: sparse files stay sparse.
                if data.iter().all(|&b| b == 0) {
                    return Ok(true);
                }
                f.write_all_at(&data, at).at(p)?;
                Ok(false)
            };
            let holes: Vec<bool> = if group.len() == 1 {
                vec![write(&group[0], starts[0])?]
            } else {
                group
                    .par_iter()
                    .zip(starts)
                    .map(|(rec, at)| write(rec, at))
                    .collect::<Result<_>>()?
            };
            hole_at_end = holes.last().copied().unwrap_or(hole_at_end);
            Ok(())
        })?;
    }
    if offset != n.size {
        return Err(size_mismatch(n, offset));
    }
    if hole_at_end {
        f.set_len(offset).at(p)?;
    }
    set_fd_metadata(&f, p, n, chown, chmod)?;
    Ok(offset)
}

/// Owner (when `chown`), mode (when `chmod` or `chown`) and times of an
/// open file, by its descriptor: no path is looked up again.
fn set_fd_metadata(f: &fs::File, p: &Path, n: &Node, chown: bool, chmod: bool) -> Result<()> {
    use std::os::fd::AsRawFd;
    let fd = f.as_raw_fd();
    let fail = || Error::io(p, std::io::Error::last_os_error());
    // SAFETY: fd is an open descriptor for the whole block.
    unsafe {
        // The owner first: changing it clears set-user-id bits.
        if chown && libc::fchown(fd, n.uid, n.gid) != 0 {
            return Err(fail());
        }
        if (chown || chmod) && libc::fchmod(fd, n.mode as libc::mode_t) != 0 {
            return Err(fail());
        }
        let t = libc::timespec {
            tv_sec: n.mtime as libc::time_t,
            tv_nsec: n.mtime_ns as libc::c_long,
        };
        if libc::futimens(fd, [t, t].as_ptr()) != 0 {
            return Err(fail());
        }
    }
    Ok(())
}

/// Restores a symlink, FIFO or device node with its metadata.
pub fn special(p: &Path, n: &Node, owners: bool) -> Result<()> {
    via_temporary(p, |tmp| {
        match n.kind {
            NodeKind::Symlink => {
                let t = n.target.as_deref().unwrap_or_default();
                std::os::unix::fs::symlink(OsStr::from_bytes(t), tmp).at(p)?;
            }
            NodeKind::Fifo | NodeKind::Chardev | NodeKind::Blockdev => {
                let c = cpath(tmp)?;
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
            }
            _ => return Ok(0),
        }
        set_metadata(tmp, p, n, owners)?;
        Ok(0)
    })
    .map(|_| ())
}

/// Makes `p` a hard link to the already restored `first`.
pub fn hard_link(first: &Path, p: &Path) -> Result<()> {
    via_temporary(p, |tmp| fs::hard_link(first, tmp).at(p).map(|()| 0)).map(|_| ())
}

fn cpath(p: &Path) -> Result<CString> {
    CString::new(p.as_os_str().as_bytes())
        .map_err(|_| Error::Usage(format!("{} has a NUL byte", p.display())))
}

/// Sets owner (when `owners`), mode and times of the entry at `at` as
/// recorded in `n`; errors name `shown`, the entry's final path.
pub fn set_metadata(at: &Path, shown: &Path, n: &Node, owners: bool) -> Result<()> {
    let c = cpath(at)?;
    let fail = || Error::io(shown, std::io::Error::last_os_error());
    if owners {
        // SAFETY: c is a valid path; lchown does not follow symlinks.
        if unsafe { libc::lchown(c.as_ptr(), n.uid, n.gid) } != 0 {
            return Err(fail());
        }
    }
    if n.kind != NodeKind::Symlink {
        // SAFETY: c is a valid path.
        if unsafe { libc::chmod(c.as_ptr(), n.mode as libc::mode_t) } != 0 {
            return Err(fail());
        }
    }
    let t = libc::timespec {
        tv_sec: n.mtime as libc::time_t,
        tv_nsec: n.mtime_ns as libc::c_long,
    };
    let times = [t, t];
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
        return Err(fail());
    }
    Ok(())
}
