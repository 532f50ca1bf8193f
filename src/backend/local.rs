//! A repository in a local directory.
//!
//! Layout: `config`, `keys/<id>`, `snapshots/<id>`, `locks/<id>`,
//! `protected/<id>`, `state/<seq>`, `data/<first two hex digits>/<id>`. A
//! write goes to a temporary file in the destination directory, is synced,
//! put in place, and the directory is synced, so a crash leaves either the
//! old state or the whole new file (plus perhaps a `.tmp-` file that
//! nothing reads).
//!
//! A file other than a lock is put in place with a hard link, which fails
//! when the name is taken: of two writers of one name exactly one wins, and
//! nothing is overwritten. Where the file system has no hard links (FAT,
//! some network mounts) it falls back to a check for the name, then a
//! rename, which leaves a small window between the two.

use super::{Backend, FileType};
use crate::error::{Error, Result};
use memmap2::Mmap;
use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Packs kept mapped at once: mapped pages count as resident memory, so few.
const OPEN_PACKS: usize = 4;
/// Reads of packs this long or longer are not mapped.
const LARGE_READ: u64 = 1 << 20;

/// A local directory backend.
pub struct LocalBackend {
    root: PathBuf,
    maps: Mutex<HashMap<String, Arc<Mmap>>>,
}

impl LocalBackend {
    /// A backend rooted at `root` (which need not exist yet).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        LocalBackend {
            root: root.into(),
            maps: Mutex::new(HashMap::new()),
        }
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Creates the directory layout, each directory this user's only
    /// (0700; existing ones are left as they are).
    pub fn create_layout(&self) -> Result<()> {
        for d in ["keys", "snapshots", "locks", "data", "protected"] {
            let d = self.root.join(d);
            private_dir(&d).map_err(|e| self.fail("creating", &d, e))?;
        }
        for i in 0..=255u8 {
            let d = self.root.join("data").join(format!("{i:02x}"));
            private_dir(&d).map_err(|e| self.fail("creating", &d, e))?;
        }
        Ok(())
    }

    /// Removes the temporary files (`.tmp-<pid>-…`) that processes for
    /// which `gone(pid)` is true left in the repository; returns how many.
    pub fn remove_temporary(&self, gone: &dyn Fn(u32) -> bool) -> u64 {
        let data = self.dir(FileType::Pack);
        let mut dirs = vec![
            self.root.join("keys"),
            self.root.join("snapshots"),
            self.root.join("locks"),
            self.root.join("protected"),
            self.root.join("state"),
            data.clone(),
        ];
        dirs.extend((0..=255u8).map(|i| data.join(format!("{i:02x}"))));
        dirs.iter()
            .map(|d| super::remove_temporary_in(d, gone))
            .sum()
    }

    fn dir(&self, t: FileType) -> PathBuf {
        match t {
            FileType::Config => self.root.clone(),
            FileType::Key => self.root.join("keys"),
            FileType::Pack => self.root.join("data"),
            FileType::Snapshot => self.root.join("snapshots"),
            FileType::Lock => self.root.join("locks"),
            FileType::Protect => self.root.join("protected"),
            FileType::State => self.root.join("state"),
        }
    }

    fn path(&self, t: FileType, name: &str) -> PathBuf {
        match t {
            FileType::Config => self.root.join("config"),
            FileType::Pack => self.dir(t).join(name.get(..2).unwrap_or("00")).join(name),
            _ => self.dir(t).join(name),
        }
    }

    /// A storage error on `path` while doing `what` ("reading", "syncing"…).
    fn fail(&self, what: &str, path: &Path, e: std::io::Error) -> Error {
        let shown = path.strip_prefix(&self.root).unwrap_or(path);
        Error::storage(self.location(), format!("{what} {}", shown.display()), e)
    }

    fn map(&self, name: &str) -> Result<Arc<Mmap>> {
        if let Some(m) = self.maps.lock().expect("map cache").get(name) {
            return Ok(m.clone());
        }
        let p = self.path(FileType::Pack, name);
        let f = File::open(&p).map_err(|e| self.fail("opening", &p, e))?;
        // SAFETY: packs are immutable once renamed into place; they are only
        // ever removed whole, which leaves an existing mapping valid.
        let m = Arc::new(unsafe { Mmap::map(&f) }.map_err(|e| self.fail("mapping", &p, e))?);
        let mut cache = self.maps.lock().expect("map cache");
        if cache.len() >= OPEN_PACKS {
            cache.clear();
        }
        cache.insert(name.to_string(), m.clone());
        Ok(m)
    }

    fn list_dir(&self, dir: &Path, out: &mut Vec<(String, u64)>) -> Result<()> {
        let rd = match fs::read_dir(dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(self.fail("listing", dir, e)),
        };
        for e in rd {
            let e = e.map_err(|err| self.fail("listing", dir, err))?;
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with(".tmp-") {
                continue;
            }
            let md = match e.metadata() {
                Ok(md) => md,
                // Removed between the listing and the stat (a prune).
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => continue,
                Err(err) => return Err(self.fail("listing", &e.path(), err)),
            };
            if md.is_file() {
                out.push((name, md.len()));
            }
        }
        Ok(())
    }
}

fn taken() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::AlreadyExists, "refusing to overwrite")
}

/// Puts the synced file `tmp` in place as `p` unless `p` exists (then an
/// `AlreadyExists` error, and `tmp` is left for the caller to remove). With
/// `link`, a hard link decides atomically; where links are not supported,
/// and without `link`, a check for `p` comes before a rename.
fn put_if_absent(tmp: &Path, p: &Path, link: bool) -> std::io::Result<()> {
    if link {
        match fs::hard_link(tmp, p) {
            Ok(()) => return fs::remove_file(tmp),
            Err(e) if !links_unsupported(&e) => return Err(e),
            Err(_) => {}
        }
    }
    if p.exists() {
        return Err(taken());
    }
    fs::rename(tmp, p)
}

/// Whether a failed hard link means the file system has none.
fn links_unsupported(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EPERM | libc::ENOTSUP | libc::EXDEV | libc::EMLINK | libc::ENOSYS)
    ) || (libc::EOPNOTSUPP != libc::ENOTSUP && e.raw_os_error() == Some(libc::EOPNOTSUPP))
}

/// Creates `d` and its missing parents with mode 0700. The modes are given
/// here, not by a process umask: restore sets the modes of what it writes.
fn private_dir(d: &Path) -> std::io::Result<()> {
    fs::DirBuilder::new().recursive(true).mode(0o700).create(d)
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir).and_then(|d| d.sync_all())
}

impl Backend for LocalBackend {
    fn location(&self) -> String {
        self.root.display().to_string()
    }

    fn list(&self, t: FileType) -> Result<Vec<String>> {
        Ok(self.list_sizes(t)?.into_iter().map(|(n, _)| n).collect())
    }

    fn list_sizes(&self, t: FileType) -> Result<Vec<(String, u64)>> {
        let mut out = Vec::new();
        match t {
            FileType::Config => {
                if let Ok(md) = fs::metadata(self.path(t, "config")) {
                    out.push(("config".into(), md.len()));
                }
            }
            FileType::Pack => {
                let dir = self.dir(t);
                let rd = fs::read_dir(&dir).map_err(|e| self.fail("listing", &dir, e))?;
                for sub in rd {
                    let sub = sub.map_err(|e| self.fail("listing", &dir, e))?;
                    let ft = sub
                        .file_type()
                        .map_err(|e| self.fail("listing", &sub.path(), e))?;
                    if ft.is_dir() {
                        self.list_dir(&sub.path(), &mut out)?;
                    }
                }
            }
            _ => self.list_dir(&self.dir(t), &mut out)?,
        }
        Ok(out)
    }

    fn read(&self, t: FileType, name: &str) -> Result<Vec<u8>> {
        let p = self.path(t, name);
        fs::read(&p).map_err(|e| self.fail("reading", &p, e))
    }

    fn read_range(&self, t: FileType, name: &str, offset: u64, len: u64) -> Result<Vec<u8>> {
        // Small reads (blobs) come from a mapping, large ones (a pack read
        // in pieces) are read: mapped pages would stay resident.
        if t == FileType::Pack && len < LARGE_READ {
            let m = self.map(name)?;
            let end = offset
                .checked_add(len)
                .filter(|&e| e <= m.len() as u64)
                .ok_or_else(|| {
                    Error::corrupt(
                        format!("pack {name}"),
                        format!(
                            "range {offset}+{len} is past its {} bytes (truncated?)",
                            m.len()
                        ),
                    )
                })?;
            return Ok(m[offset as usize..end as usize].to_vec());
        }
        let p = self.path(t, name);
        let f = File::open(&p).map_err(|e| self.fail("reading", &p, e))?;
        if t == FileType::Pack {
            let size = f
                .metadata()
                .map_err(|e| self.fail("reading the size of", &p, e))?
                .len();
            if offset.checked_add(len).is_none_or(|end| end > size) {
                return Err(Error::corrupt(
                    format!("pack {name}"),
                    format!("range {offset}+{len} is past its {size} bytes (truncated?)"),
                ));
            }
        }
        let mut buf = vec![0u8; len as usize];
        std::os::unix::fs::FileExt::read_exact_at(&f, &mut buf, offset)
            .map_err(|e| self.fail("reading", &p, e))?;
        Ok(buf)
    }

    fn size(&self, t: FileType, name: &str) -> Result<u64> {
        let p = self.path(t, name);
        Ok(fs::metadata(&p)
            .map_err(|e| self.fail("reading the size of", &p, e))?
            .len())
    }

    fn exists(&self, t: FileType, name: &str) -> Result<bool> {
        Ok(self.path(t, name).exists())
    }

    fn write(&self, t: FileType, name: &str, data: &[u8]) -> Result<()> {
        let p = self.path(t, name);
        let dir = p.parent().expect("files live in a directory").to_path_buf();
        if t != FileType::Lock && p.exists() {
            return Err(self.fail("writing", &p, taken()));
        }
        if matches!(t, FileType::Protect | FileType::State) {
            // Repositories of format version 1 have no protected/, those
            // of versions 1 to 3 no state/ (and never get one).
            private_dir(&dir).map_err(|e| self.fail("creating", &dir, e))?;
        }
        let tmp = dir.join(format!(
            ".tmp-{}-{}",
            std::process::id(),
            rand::random::<u64>()
        ));
        let res = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .and_then(|mut f| {
                f.write_all(data)?;
                f.sync_all()
            })
            .and_then(|()| {
                if t == FileType::Lock {
                    fs::rename(&tmp, &p)
                } else {
                    put_if_absent(&tmp, &p, true)
                }
            });
        if let Err(e) = res {
            let _ = fs::remove_file(&tmp);
            return Err(self.fail("writing", &p, e));
        }
        sync_dir(&dir).map_err(|e| self.fail("syncing", &dir, e))
    }

    fn write_file(&self, t: FileType, name: &str, src: &Path) -> Result<()> {
        let p = self.path(t, name);
        let dir = p.parent().expect("files live in a directory").to_path_buf();
        if p.exists() {
            return Err(self.fail("writing", &p, taken()));
        }
        // The bytes are durable before they get a name in the repository.
        File::open(src)
            .and_then(|f| f.sync_all())
            .map_err(|e| self.fail("syncing", src, e))?;
        match fs::hard_link(src, &p) {
            Ok(()) => {}
            Err(e) if links_unsupported(&e) => {
                // Another file system (the cache on another disk): a copy,
                // synced, then put in place like any write.
                let tmp = dir.join(format!(
                    ".tmp-{}-{}",
                    std::process::id(),
                    rand::random::<u64>()
                ));
                let res = File::open(src)
                    .and_then(|mut from| {
                        let mut to = OpenOptions::new()
                            .write(true)
                            .create_new(true)
                            .mode(0o600)
                            .open(&tmp)?;
                        std::io::copy(&mut from, &mut to)?;
                        to.sync_all()
                    })
                    .and_then(|()| put_if_absent(&tmp, &p, true));
                if let Err(e) = res {
                    let _ = fs::remove_file(&tmp);
                    return Err(self.fail("writing", &p, e));
                }
            }
            Err(e) => return Err(self.fail("writing", &p, e)),
        }
        sync_dir(&dir).map_err(|e| self.fail("syncing", &dir, e))
    }

    fn remove(&self, t: FileType, name: &str) -> Result<()> {
        self.maps.lock().expect("map cache").remove(name);
        let p = self.path(t, name);
        fs::remove_file(&p).map_err(|e| self.fail("removing", &p, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conformance_local() {
        let d = tempfile::tempdir().unwrap();
        let b = LocalBackend::new(d.path().join("r"));
        b.create_layout().unwrap();
        crate::backend::conformance::run(&b);
    }

    #[test]
    fn racing_writers_of_one_name_one_wins_nothing_is_overwritten() {
        let d = tempfile::tempdir().unwrap();
        let b = LocalBackend::new(d.path().join("r"));
        b.create_layout().unwrap();
        for round in 0..20u64 {
            let name = crate::format::state::name_of(round);
            let wins: Vec<Option<u8>> = std::thread::scope(|s| {
                let hs: Vec<_> = (0..4u8)
                    .map(|i| {
                        let (b, name) = (&b, &name);
                        s.spawn(move || match b.write(FileType::State, name, &[i; 64]) {
                            Ok(()) => Some(i),
                            Err(e) => {
                                assert!(e.is_already_exists(), "{e}");
                                None
                            }
                        })
                    })
                    .collect();
                hs.into_iter().map(|h| h.join().unwrap()).collect()
            });
            let winners: Vec<u8> = wins.into_iter().flatten().collect();
            assert_eq!(winners.len(), 1, "round {round}: {winners:?}");
            assert_eq!(
                b.read(FileType::State, &name).unwrap(),
                vec![winners[0]; 64]
            );
        }
        let left: Vec<_> = fs::read_dir(d.path().join("r/state"))
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with(".tmp-"))
            .collect();
        assert!(left.is_empty(), "temporary files left behind");
    }

    #[test]
    fn without_hard_links_the_name_is_still_never_overwritten() {
        let d = tempfile::tempdir().unwrap();
        let (tmp, p) = (d.path().join(".tmp-1"), d.path().join("0000000000000001"));
        fs::write(&tmp, b"one").unwrap();
        put_if_absent(&tmp, &p, false).unwrap();
        fs::write(&tmp, b"two").unwrap();
        let e = put_if_absent(&tmp, &p, false).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::AlreadyExists);
        assert_eq!(fs::read(&p).unwrap(), b"one");
        assert!(links_unsupported(&std::io::Error::from_raw_os_error(
            libc::EPERM
        )));
        assert!(!links_unsupported(&std::io::Error::from_raw_os_error(
            libc::EEXIST
        )));
    }

    #[test]
    fn a_file_from_another_file_system_is_copied_whole_and_synced() {
        // /dev/shm is a tmpfs: no hard link reaches the repository from it.
        let Ok(shm) = tempfile::tempdir_in("/dev/shm") else {
            eprintln!("skipped: no /dev/shm here to stage a file on another file system");
            return;
        };
        let d = tempfile::tempdir().unwrap();
        let b = LocalBackend::new(d.path().join("r"));
        b.create_layout().unwrap();
        let staged = shm.path().join("staged");
        let bytes: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        fs::write(&staged, &bytes).unwrap();
        let name = "cd".repeat(32);
        b.write_file(FileType::Pack, &name, &staged).unwrap();
        assert_eq!(b.read(FileType::Pack, &name).unwrap(), bytes);
        assert_eq!(fs::read(&staged).unwrap(), bytes, "the source stays");
        let e = b.write_file(FileType::Pack, &name, &staged).unwrap_err();
        assert!(e.is_already_exists(), "{e}");
        assert_eq!(
            b.remove_temporary(&|_| true),
            0,
            "no temporary file is left"
        );
    }

    #[test]
    fn directories_and_files_are_this_users_only() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("a/r");
        let b = LocalBackend::new(&root);
        b.create_layout().unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        for p in [
            "",
            "keys",
            "snapshots",
            "locks",
            "data",
            "data/00",
            "data/ff",
            "protected",
        ] {
            assert_eq!(mode(&root.join(p)), 0o700, "{p}");
        }
        b.write(FileType::Key, "k", b"key").unwrap();
        b.write(FileType::Lock, "l", b"lock").unwrap();
        assert_eq!(mode(&root.join("keys/k")), 0o600);
        assert_eq!(mode(&root.join("locks/l")), 0o600);
        let staged = d.path().join("staged");
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&staged)
            .unwrap()
            .write_all(b"pack")
            .unwrap();
        let name = "ab".repeat(32);
        b.write_file(FileType::Pack, &name, &staged).unwrap();
        assert_eq!(mode(&root.join("data/ab").join(&name)), 0o600);
        // Version 1 repositories get protected/ on the first protect.
        fs::remove_dir(root.join("protected")).unwrap();
        b.write(FileType::Protect, &name, b"marker").unwrap();
        assert_eq!(mode(&root.join("protected")), 0o700);
    }
}
