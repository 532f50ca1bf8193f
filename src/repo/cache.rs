//! The local cache of a repository: this machine's files about it, kept
//! outside it, so that a repository is only a backend's opaque bytes.
//!
//! Under the cache directory (`--cache-dir`, `SNAP_CACHE_DIR`, else
//! `/var/cache/snap` for root and `$XDG_CACHE_HOME/snap` or
//! `~/.cache/snap` for others), each repository has a directory named by
//! the first 32 hex digits of the BLAKE3 hash of its config file. The config
//! is written once, at init, and holds the random repository id, so that name
//! is the repository's identity, readable before any password is given (the
//! last key file that opened is tried first). Two copies of one repository
//! share it; a remote made by `snap remote init` has its own config.
//!
//! In it: `index/` (the RocksDB index, and beside it this machine's journal
//! of the snapshots it wrote, the state mark and the last key that opened),
//! `staging/` (packs being written, handed whole to the backend), and
//! `location` (where the repository was last opened from, for people).

use crate::backend::faulty::Faults;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// The default cache directory of this user.
pub fn default_base() -> PathBuf {
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        return PathBuf::from("/var/cache/snap");
    }
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir)
        .join("snap")
}

/// The marker that tells backup tools a directory is a cache, not data
/// (the Cache Directory Tagging convention).
const CACHEDIR_TAG: &str = "Signature: 8a477f597d28d172789f06886806bc55\n\
# This file is a cache directory tag created by snap.\n\
# Its contents can be rebuilt from the repositories; backups can skip it.\n";

/// The directory of the repository whose config file is `config` under
/// the cache directory `base`.
pub fn repo_dir(base: &Path, config: &[u8]) -> PathBuf {
    let h = blake3::hash(config);
    base.join(hex::encode(&h.as_bytes()[..16]))
}

/// Creates the repository's cache directory (and the base, tagged) for
/// this user only, and records where the repository is.
pub fn prepare(base: &Path, dir: &Path, location: &str) -> std::io::Result<()> {
    let fresh_base = !base.exists();
    super::create_private_dir(dir)?;
    if fresh_base || !base.join("CACHEDIR.TAG").exists() {
        let _ = std::fs::write(base.join("CACHEDIR.TAG"), CACHEDIR_TAG);
    }
    let loc = dir.join("location");
    if std::fs::read_to_string(&loc).ok().as_deref() != Some(location) {
        let _ = std::fs::write(&loc, location);
    }
    Ok(())
}

/// Brings an index kept inside a local repository (`old`, where snap
/// before the cache directory kept it) to `new`: moved when both are on
/// one writable file system, else copied (and the original removed when
/// the repository can be written). Returns what to tell the user, once:
/// afterwards `new` exists and nothing is done.
pub fn adopt_legacy_index(old: &Path, new: &Path) -> Option<String> {
    if new.exists() || !old.join("CURRENT").is_file() && !old.join("snap-written").is_file() {
        return None;
    }
    if std::fs::rename(old, new).is_ok() {
        return Some(format!(
            "the index moved from {} to {} (the cache directory: see --cache-dir); nothing to do",
            old.display(),
            new.display()
        ));
    }
    let tmp = new.with_file_name(format!("index.tmp-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    match copy_dir(old, &tmp).and_then(|()| std::fs::rename(&tmp, new)) {
        Ok(()) => {
            let removed = std::fs::remove_dir_all(old).is_ok();
            Some(format!(
                "the index was copied from {} to {} (the cache directory: see --cache-dir){}",
                old.display(),
                new.display(),
                if removed {
                    ""
                } else {
                    "; the original stays, since the repository cannot be changed here"
                }
            ))
        }
        Err(e) => {
            let _ = std::fs::remove_dir_all(&tmp);
            Some(format!(
                "the index at {} could not be copied to {} ({e}): it is rebuilt from the packs instead",
                old.display(),
                new.display()
            ))
        }
    }
}

fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    super::create_private_dir(to)?;
    for e in std::fs::read_dir(from)? {
        let e = e?;
        let ft = e.file_type()?;
        let dest = to.join(e.file_name());
        if ft.is_dir() {
            copy_dir(&e.path(), &dest)?;
        } else if ft.is_file() {
            std::fs::copy(e.path(), &dest)?;
        }
    }
    Ok(())
}

/// Where the packs of one writer are staged before the backend gets them.
#[derive(Clone)]
pub struct Staging {
    dir: PathBuf,
    faults: Option<Faults>,
}

impl Staging {
    /// Staging in `dir` (created when the first pack is).
    pub fn new(dir: PathBuf) -> Self {
        Staging { dir, faults: None }
    }

    /// Makes the writes into staging files fail as `faults` plans (tests).
    pub fn inject(&mut self, faults: Faults) {
        self.faults = Some(faults);
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A new staging file, this user's only, named for this process so that
    /// the leftovers of a killed one can be told apart.
    pub fn create(&self) -> std::io::Result<(PathBuf, Box<dyn Write + Send>)> {
        super::create_private_dir(&self.dir)?;
        let path = self.dir.join(format!(
            ".tmp-pack-{}-{:016x}",
            std::process::id(),
            rand::random::<u64>()
        ));
        let f = std::fs::File::options()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)?;
        let w: Box<dyn Write + Send> = Box::new(f);
        Ok((
            path,
            match &self.faults {
                Some(f) => f.staging_file(w),
                None => w,
            },
        ))
    }

    /// Removes the staging files of processes for which `gone(pid)` holds.
    pub fn remove_leftovers(&self, gone: &dyn Fn(u32) -> bool) -> u64 {
        crate::backend::remove_temporary_in(&self.dir, gone)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_directory_per_config_and_the_base_is_tagged() {
        let d = tempfile::tempdir().unwrap();
        let base = d.path().join("cache");
        let a = repo_dir(&base, b"config a");
        assert_ne!(a, repo_dir(&base, b"config b"));
        assert_eq!(a, repo_dir(&base, b"config a"));
        prepare(&base, &a, "/srv/repo").unwrap();
        assert!(std::fs::read_to_string(base.join("CACHEDIR.TAG"))
            .unwrap()
            .starts_with("Signature: 8a477f597d28d172789f06886806bc55"));
        assert_eq!(
            std::fs::read_to_string(a.join("location")).unwrap(),
            "/srv/repo"
        );
    }

    #[test]
    fn a_legacy_index_is_moved_once_and_its_files_kept() {
        let d = tempfile::tempdir().unwrap();
        let old = d.path().join("repo/index");
        std::fs::create_dir_all(old.join("sub")).unwrap();
        std::fs::write(old.join("CURRENT"), b"MANIFEST-1").unwrap();
        std::fs::write(old.join("snap-written"), b"journal").unwrap();
        std::fs::write(old.join("sub/x"), b"x").unwrap();
        let new = d.path().join("cache/r/index");
        std::fs::create_dir_all(new.parent().unwrap()).unwrap();
        let note = adopt_legacy_index(&old, &new).unwrap();
        assert!(note.contains("moved"), "{note}");
        assert!(!old.exists());
        assert_eq!(std::fs::read(new.join("snap-written")).unwrap(), b"journal");
        assert_eq!(std::fs::read(new.join("sub/x")).unwrap(), b"x");
        assert!(adopt_legacy_index(&old, &new).is_none(), "said once");
    }

    #[test]
    fn staging_files_are_private_and_leftovers_of_gone_processes_go() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let s = Staging::new(d.path().join("staging"));
        let (path, mut w) = s.create().unwrap();
        w.write_all(b"pack").unwrap();
        drop(w);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        std::fs::write(s.dir().join(".tmp-pack-4000000-1"), b"x").unwrap();
        let mine = std::process::id();
        assert_eq!(s.remove_leftovers(&|pid| pid != mine), 1);
        assert!(path.exists(), "a live process's file stays");
    }
}
