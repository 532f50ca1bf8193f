//! The RocksDB index: the only module that names `rocksdb`.
//!
//! Column families:
//! - `blobs`: key `kind (u8) || id (32)`, value `pack id (32) || offset (u64 LE)
//!   || sealed length (u32 LE) || plaintext length (u32 LE)`;
//! - `packs`: key `pack id (32)`, value `metadata flag (u8) || blob count (u32 LE)
//!   || size (u64 LE)`;
//! - `meta`: `repo-id` (32 bytes) and `index-version` (u32 LE).
//!
//! A pack's entries and its `packs` row are written in one batch, so the
//! index never lists half a pack.

use super::{BlobLocation, Index, PackInfo, PackUsage};
use crate::error::{Error, Result};
use crate::format::pack::PackEntry;
use crate::id::{BlobKind, BlobRef, PackId, RepoId};
use rocksdb::{
    BlockBasedOptions, Cache, ColumnFamilyDescriptor, DBCompressionType, IteratorMode, LogLevel,
    Options, WriteBatch, DB,
};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const CF_BLOBS: &str = "blobs";
const CF_PACKS: &str = "packs";
const CF_META: &str = "meta";
const CF_MARKS: &str = "marks";
const INDEX_VERSION: u32 = 1;

/// How the index is opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Shared reading; does not wait for writers.
    ReadOnly,
    /// One writer at a time; waits up to the duration for the previous one.
    ReadWrite(Duration),
}

/// The index in a RocksDB database.
pub struct RocksIndex {
    db: DB,
    path: PathBuf,
    writable: bool,
    // Declared after `db`: released only once the database is closed.
    _writer: Option<std::fs::File>,
}

impl Drop for RocksIndex {
    fn drop(&mut self) {
        // Memtables left at close live only in the write-ahead log, which
        // every later open (each reader's too) would replay: write them out,
        // every column family's (`flush` alone writes only `default`).
        if self.writable {
            for name in [CF_BLOBS, CF_PACKS, CF_META, CF_MARKS] {
                if let Some(cf) = self.db.cf_handle(name) {
                    let _ = self.db.flush_cf(cf);
                }
            }
        }
    }
}

fn err(path: &Path, e: rocksdb::Error) -> Error {
    Error::Index {
        path: path.to_path_buf(),
        why: format!("{e}; the index is a cache: `snap repair index` rebuilds it from the packs"),
    }
}

fn options() -> (Options, Vec<ColumnFamilyDescriptor>) {
    let mut o = Options::default();
    o.create_if_missing(true);
    o.create_missing_column_families(true);
    o.set_compression_type(DBCompressionType::None);
    o.set_max_open_files(256);
    // Every writer's open starts a new info log of ~70 KB (the option dump,
    // written whatever the level), and statistics were added every ten
    // minutes: keep warnings only, and one file.
    o.set_log_level(LogLevel::Warn);
    o.set_keep_log_file_num(1);
    o.set_max_log_file_size(64 << 10);
    o.set_stats_dump_period_sec(0);
    // One bound on all memtables together, whatever the column families.
    o.set_db_write_buffer_size(48 << 20);
    // One block cache shared by every column family. Index and filter blocks
    // stay with their table files, not in the cache: a large table's filter
    // would not fit one of the cache's shards and would be read back from
    // disk on every lookup.
    let cache = Cache::new_lru_cache(32 << 20);
    let table = |bloom: bool| {
        let mut bb = BlockBasedOptions::default();
        bb.set_block_cache(&cache);
        if bloom {
            bb.set_bloom_filter(10.0, false);
        }
        bb.set_cache_index_and_filter_blocks(false);
        bb
    };
    let family = |bloom: bool, buffer: usize| {
        let mut f = Options::default();
        f.set_block_based_table_factory(&table(bloom));
        f.set_compression_type(DBCompressionType::None);
        f.set_write_buffer_size(buffer);
        f
    };
    let cfs = vec![
        ColumnFamilyDescriptor::new(CF_BLOBS, family(true, 32 << 20)),
        ColumnFamilyDescriptor::new(CF_PACKS, family(false, 4 << 20)),
        ColumnFamilyDescriptor::new(CF_META, family(false, 1 << 20)),
        // Up to one key per blob during a prune: a small memtable keeps
        // memory flat, the rest goes to table files.
        ColumnFamilyDescriptor::new(CF_MARKS, family(true, 8 << 20)),
    ];
    (o, cfs)
}

/// What a writer changes when it opens, flushes or compacts: the names of
/// the files and the manifest `CURRENT` names. Info logs are left out: every
/// open, a reader's too, starts a new one.
fn dir_state(path: &Path) -> (Vec<std::ffi::OsString>, Vec<u8>) {
    let mut names: Vec<_> = std::fs::read_dir(path)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name())
                .filter(|n| !n.as_encoded_bytes().starts_with(b"LOG"))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    (
        names,
        std::fs::read(path.join("CURRENT")).unwrap_or_default(),
    )
}

/// The file writers lock (`flock`) in turn, in the index directory.
const WRITER_LOCK: &str = "snap-writer.lock";

fn in_use(path: &Path) -> String {
    format!(
        "the local index {} is in use by another snap process",
        path.display()
    )
}

/// Takes the writers' file lock of the index at `path`, waiting up to `wait`
/// (from `start`); `say` is told once that it waits.
fn writer_lock(
    path: &Path,
    wait: Duration,
    start: Instant,
    say: &mut dyn FnMut(&str),
) -> Result<std::fs::File> {
    use std::os::fd::AsRawFd;
    // The index gives exact blob sizes in clear: this user's only.
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .map_err(|e| Error::io(path, e))?;
    let p = path.join(WRITER_LOCK);
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&p)
        .map_err(|e| Error::io(&p, e))?;
    loop {
        // SAFETY: flock on a descriptor this function owns.
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
            return Ok(f);
        }
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EWOULDBLOCK) {
            return Err(Error::io(&p, e));
        }
        if start.elapsed() >= wait {
            return Err(Error::Locked {
                detail: format!(
                    "{} (waited {}s; raise --lock-wait to wait longer)",
                    in_use(path),
                    wait.as_secs()
                ),
            });
        }
        say(&in_use(path));
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn is_lock_error(e: &rocksdb::Error) -> bool {
    let s = e.to_string();
    s.contains("LOCK") || s.contains("lock hold") || s.contains("Resource temporarily unavailable")
}

impl RocksIndex {
    /// Whether an index exists at `path`.
    pub fn exists(path: &Path) -> bool {
        path.join("CURRENT").exists()
    }

    /// Opens (creating when writable) the index at `path` for repository `repo`.
    pub fn open(path: &Path, repo: &RepoId, access: Access) -> Result<Self> {
        Self::open_with(path, repo, access, &|_| {})
    }

    /// [`RocksIndex::open`], calling `waiting` once, with what it waits for,
    /// when another process writes the index.
    pub fn open_with(
        path: &Path,
        repo: &RepoId,
        access: Access,
        waiting: &dyn Fn(&str),
    ) -> Result<Self> {
        let (o, cfs) = options();
        let mut writer = None;
        let db = match access {
            Access::ReadOnly => {
                // Every table file is opened up front, so a writer's compaction
                // that deletes files afterwards cannot pull them from under a
                // reader. A writer that opens, flushes or compacts while the
                // reader opens can still remove a file the reader was about to
                // read: the open fails, or worse succeeds without the rows of
                // a write-ahead log the writer had just flushed and deleted.
                // So an open during which the directory changed is done again,
                // however slow the machine. An error on a directory that did
                // not change is damage, and is reported.
                let mut o = o.clone();
                o.set_max_open_files(-1);
                // A reader's info log goes to a private directory, removed
                // once open: every open rotates and trims the logs in its log
                // directory, and two processes trimming the same files fail
                // each other's open (`unlink() ... No such file`).
                let logs = crate::tempdir::ScratchDir::new()?;
                o.set_db_log_dir(logs.path());
                loop {
                    let ro: Vec<ColumnFamilyDescriptor> = options()
                        .1
                        .into_iter()
                        .filter(|d| d.name() != CF_MARKS)
                        .collect();
                    let before = dir_state(path);
                    let r = DB::open_cf_descriptors_read_only(&o, path, ro, false);
                    let changed = dir_state(path) != before;
                    match r {
                        Ok(db) if !changed => break db,
                        Ok(_) => {}
                        Err(_) if changed => {}
                        Err(e) => return Err(err(path, e)),
                    }
                }
            }
            Access::ReadWrite(wait) => {
                let start = Instant::now();
                let mut said = false;
                let mut say = |what: &str| {
                    if !said {
                        said = true;
                        waiting(what);
                    }
                };
                // Writers take turns on a file lock of their own before
                // RocksDB opens at all: a failed open still creates (and
                // rotates, and trims) the info log, which races the holder's.
                writer = Some(writer_lock(path, wait, start, &mut say)?);
                loop {
                    let (o, cfs) = (o.clone(), options().1);
                    match DB::open_cf_descriptors(&o, path, cfs) {
                        Ok(db) => break db,
                        Err(e) if is_lock_error(&e) && start.elapsed() < wait => {
                            say(&in_use(path));
                            std::thread::sleep(Duration::from_millis(200));
                        }
                        Err(e) if is_lock_error(&e) => {
                            return Err(Error::Locked {
                                detail: format!(
                                    "the local index {} is in use by another snap process (waited {}s; raise --lock-wait to wait longer)",
                                    path.display(),
                                    wait.as_secs()
                                ),
                            })
                        }
                        Err(e) => return Err(err(path, e)),
                    }
                }
            }
        };
        drop(cfs);
        let idx = RocksIndex {
            db,
            path: path.to_path_buf(),
            writable: matches!(access, Access::ReadWrite(_)),
            _writer: writer,
        };
        idx.check_meta(repo, access)?;
        Ok(idx)
    }

    fn cf(&self, name: &str) -> &rocksdb::ColumnFamily {
        self.db
            .cf_handle(name)
            .expect("column families are created at open")
    }

    fn check_meta(&self, repo: &RepoId, access: Access) -> Result<()> {
        let meta = self.cf(CF_META);
        let stored = self
            .db
            .get_cf(meta, b"repo-id")
            .map_err(|e| err(&self.path, e))?;
        match stored {
            Some(v) if v == repo.0 => {}
            Some(_) => {
                return Err(Error::Index {
                    path: self.path.clone(),
                    why: "belongs to another repository; run `snap repair index` to rebuild it"
                        .into(),
                })
            }
            None if matches!(access, Access::ReadWrite(_)) => {
                let mut b = WriteBatch::default();
                b.put_cf(meta, b"repo-id", repo.0);
                b.put_cf(meta, b"index-version", INDEX_VERSION.to_le_bytes());
                self.db.write(b).map_err(|e| err(&self.path, e))?;
            }
            None => {}
        }
        if let Some(v) = self
            .db
            .get_cf(meta, b"index-version")
            .map_err(|e| err(&self.path, e))?
        {
            let v = u32::from_le_bytes(v.as_slice().try_into().unwrap_or([0; 4]));
            if v != INDEX_VERSION {
                return Err(Error::Index {
                    path: self.path.clone(),
                    why: format!(
                        "index version {v} is not {INDEX_VERSION}; run `snap repair index`"
                    ),
                });
            }
        }
        Ok(())
    }
}

fn blob_key(b: &BlobRef) -> [u8; 33] {
    let mut k = [0u8; 33];
    k[0] = b.kind.to_byte();
    k[1..].copy_from_slice(&b.id);
    k
}

fn decode_pack_info(v: &[u8]) -> Option<PackInfo> {
    if v.len() != 13 {
        return None;
    }
    Some(PackInfo {
        metadata: v[0] == 1,
        blobs: u32::from_le_bytes(v[1..5].try_into().ok()?),
        size: u64::from_le_bytes(v[5..13].try_into().ok()?),
    })
}

fn encode_location(loc: &BlobLocation) -> Vec<u8> {
    let mut v = Vec::with_capacity(48);
    v.extend_from_slice(&loc.pack.0);
    v.extend_from_slice(&loc.offset.to_le_bytes());
    v.extend_from_slice(&loc.length.to_le_bytes());
    v.extend_from_slice(&loc.raw_len.to_le_bytes());
    v
}

fn decode_location(v: &[u8]) -> Option<BlobLocation> {
    if v.len() != 48 {
        return None;
    }
    Some(BlobLocation {
        pack: PackId::from_slice(&v[..32])?,
        offset: u64::from_le_bytes(v[32..40].try_into().ok()?),
        length: u32::from_le_bytes(v[40..44].try_into().ok()?),
        raw_len: u32::from_le_bytes(v[44..48].try_into().ok()?),
    })
}

impl Index for RocksIndex {
    fn get(&self, b: &BlobRef) -> Result<Option<BlobLocation>> {
        let v = self
            .db
            .get_pinned_cf(self.cf(CF_BLOBS), blob_key(b))
            .map_err(|e| err(&self.path, e))?;
        match v {
            None => Ok(None),
            Some(v) => decode_location(&v).map(Some).ok_or_else(|| Error::Index {
                path: self.path.clone(),
                why: "a blob entry is damaged; run `snap repair index`".into(),
            }),
        }
    }

    fn add_pack(&self, pack: &PackId, info: PackInfo, entries: &[PackEntry]) -> Result<()> {
        let mut b = WriteBatch::default();
        let blobs = self.cf(CF_BLOBS);
        for e in entries {
            let loc = BlobLocation {
                pack: *pack,
                offset: e.offset,
                length: e.length,
                raw_len: e.raw_len,
            };
            b.put_cf(blobs, blob_key(&e.blob), encode_location(&loc));
        }
        let mut p = Vec::with_capacity(13);
        p.push(info.metadata as u8);
        p.extend_from_slice(&info.blobs.to_le_bytes());
        p.extend_from_slice(&info.size.to_le_bytes());
        b.put_cf(self.cf(CF_PACKS), pack.0, p);
        self.db.write(b).map_err(|e| err(&self.path, e))
    }

    fn packs(&self) -> Result<Vec<(PackId, PackInfo)>> {
        let mut out = Vec::new();
        for kv in self.db.iterator_cf(self.cf(CF_PACKS), IteratorMode::Start) {
            let (k, v) = kv.map_err(|e| err(&self.path, e))?;
            let bad = || Error::Index {
                path: self.path.clone(),
                why: "a pack entry is damaged; run `snap repair index`".into(),
            };
            let id = PackId::from_slice(&k).ok_or_else(bad)?;
            out.push((id, decode_pack_info(&v).ok_or_else(bad)?));
        }
        Ok(out)
    }

    fn pack(&self, id: &PackId) -> Result<Option<PackInfo>> {
        let v = self
            .db
            .get_pinned_cf(self.cf(CF_PACKS), id.0)
            .map_err(|e| err(&self.path, e))?;
        match v {
            None => Ok(None),
            Some(v) => decode_pack_info(&v).map(Some).ok_or_else(|| Error::Index {
                path: self.path.clone(),
                why: "a pack entry is damaged; run `snap repair index`".into(),
            }),
        }
    }

    fn sync(&self) -> Result<()> {
        self.db.flush_wal(true).map_err(|e| err(&self.path, e))
    }

    fn set_location(&self, b: &BlobRef, loc: &BlobLocation) -> Result<()> {
        self.db
            .put_cf(self.cf(CF_BLOBS), blob_key(b), encode_location(loc))
            .map_err(|e| err(&self.path, e))
    }

    fn remove_pack(&self, pack: &PackId, entries: &[PackEntry]) -> Result<()> {
        let mut b = WriteBatch::default();
        let blobs = self.cf(CF_BLOBS);
        if entries.is_empty() {
            // The pack's header is unknown (missing or damaged file): find
            // its rows the long way, so none is left pointing at nothing.
            for kv in self.db.iterator_cf(blobs, IteratorMode::Start) {
                let (k, v) = kv.map_err(|e| err(&self.path, e))?;
                if decode_location(&v).is_some_and(|l| l.pack == *pack) {
                    b.delete_cf(blobs, k);
                }
            }
        }
        for e in entries {
            if self.get(&e.blob)?.is_some_and(|l| l.pack == *pack) {
                b.delete_cf(blobs, blob_key(&e.blob));
            }
        }
        b.delete_cf(self.cf(CF_PACKS), pack.0);
        self.db.write(b).map_err(|e| err(&self.path, e))
    }

    fn blob_totals(&self) -> Result<super::BlobTotals> {
        let mut out = super::BlobTotals::default();
        for kv in self.db.iterator_cf(self.cf(CF_BLOBS), IteratorMode::Start) {
            let (k, v) = kv.map_err(|e| err(&self.path, e))?;
            let damaged = |what: &str| Error::Index {
                path: self.path.clone(),
                why: format!("a blob {what} is damaged; run `snap repair index`"),
            };
            let loc = decode_location(&v).ok_or_else(|| damaged("entry"))?;
            let kind = k
                .first()
                .and_then(|b| BlobKind::from_byte(*b))
                .ok_or_else(|| damaged("key"))?;
            let sum = if kind.is_metadata() {
                &mut out.metadata
            } else {
                &mut out.data
            };
            sum.blobs += 1;
            sum.raw_bytes += loc.raw_len as u64;
            sum.sealed_bytes += loc.length as u64;
        }
        Ok(out)
    }

    fn rows_in(
        &self,
        packs: &std::collections::HashSet<PackId>,
    ) -> Result<Vec<(BlobRef, BlobLocation)>> {
        let mut out = Vec::new();
        if packs.is_empty() {
            return Ok(out);
        }
        for kv in self.db.iterator_cf(self.cf(CF_BLOBS), IteratorMode::Start) {
            let (k, v) = kv.map_err(|e| err(&self.path, e))?;
            let Some(loc) = decode_location(&v).filter(|l| packs.contains(&l.pack)) else {
                continue;
            };
            let kind = k.first().and_then(|b| BlobKind::from_byte(*b));
            match (kind, <[u8; 32]>::try_from(k.get(1..).unwrap_or_default())) {
                (Some(kind), Ok(id)) => out.push((BlobRef { kind, id }, loc)),
                _ => {
                    return Err(Error::Index {
                        path: self.path.clone(),
                        why: "a blob key is damaged; run `snap repair index`".into(),
                    })
                }
            }
        }
        Ok(out)
    }

    fn clear_marks(&self) -> Result<()> {
        let marks = self.cf(CF_MARKS);
        self.db
            .delete_range_cf(marks, &[0u8][..], &[0xffu8; 34][..])
            .map_err(|e| err(&self.path, e))?;
        self.db
            .delete_cf(marks, [0xffu8; 34])
            .map_err(|e| err(&self.path, e))
    }

    fn mark(&self, blobs: &[BlobRef]) -> Result<()> {
        let mut b = WriteBatch::default();
        let marks = self.cf(CF_MARKS);
        for r in blobs {
            b.put_cf(marks, blob_key(r), []);
        }
        self.db.write(b).map_err(|e| err(&self.path, e))
    }

    fn is_marked(&self, b: &BlobRef) -> Result<bool> {
        Ok(self
            .db
            .get_pinned_cf(self.cf(CF_MARKS), blob_key(b))
            .map_err(|e| err(&self.path, e))?
            .is_some())
    }

    fn usage(&self) -> Result<std::collections::HashMap<PackId, PackUsage>> {
        let mut out: std::collections::HashMap<PackId, PackUsage> =
            std::collections::HashMap::new();
        for (id, _) in self.packs()? {
            out.insert(id, PackUsage::default());
        }
        // Both families are sorted by the same key: walk them side by side.
        let mut marks = self
            .db
            .iterator_cf(self.cf(CF_MARKS), IteratorMode::Start)
            .peekable();
        for kv in self.db.iterator_cf(self.cf(CF_BLOBS), IteratorMode::Start) {
            let (k, v) = kv.map_err(|e| err(&self.path, e))?;
            let loc = decode_location(&v).ok_or_else(|| Error::Index {
                path: self.path.clone(),
                why: "a blob entry is damaged; run `snap repair index`".into(),
            })?;
            let mut used = false;
            while let Some(m) = marks.peek() {
                let mk = match m {
                    Ok((mk, _)) => mk.clone(),
                    Err(e) => return Err(err(&self.path, e.clone())),
                };
                match mk.as_ref().cmp(k.as_ref()) {
                    std::cmp::Ordering::Less => {
                        marks.next();
                    }
                    std::cmp::Ordering::Equal => {
                        used = true;
                        marks.next();
                        break;
                    }
                    std::cmp::Ordering::Greater => break,
                }
            }
            let u = out.entry(loc.pack).or_default();
            if used {
                u.used_blobs += 1;
                u.used_bytes += loc.length as u64;
            } else {
                u.unused_blobs += 1;
                u.unused_bytes += loc.length as u64;
            }
        }
        Ok(out)
    }

    fn is_complete(&self) -> Result<bool> {
        Ok(self
            .db
            .get_cf(self.cf(CF_META), b"complete")
            .map_err(|e| err(&self.path, e))?
            .is_some())
    }

    fn mark_complete(&self) -> Result<()> {
        self.sync()?;
        self.db
            .put_cf(self.cf(CF_META), b"complete", [1u8])
            .map_err(|e| err(&self.path, e))?;
        self.sync()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::BlobKind;

    #[test]
    fn add_get_list_reopen() {
        let d = tempfile::tempdir().unwrap();
        let repo = RepoId([1; 32]);
        let pack = PackId([2; 32]);
        let e = PackEntry {
            blob: BlobRef {
                kind: BlobKind::Data,
                id: [3; 32],
            },
            offset: 10,
            length: 20,
            raw_len: 30,
        };
        {
            let i = RocksIndex::open(d.path(), &repo, Access::ReadWrite(Duration::ZERO)).unwrap();
            assert!(!i.contains(&e.blob).unwrap());
            i.add_pack(
                &pack,
                PackInfo {
                    metadata: false,
                    blobs: 1,
                    size: 99,
                },
                &[e],
            )
            .unwrap();
            i.sync().unwrap();
            let l = i.get(&e.blob).unwrap().unwrap();
            assert_eq!((l.pack, l.offset, l.length, l.raw_len), (pack, 10, 20, 30));
            assert!(!i
                .contains(&BlobRef {
                    kind: BlobKind::Tree,
                    id: [3; 32]
                })
                .unwrap());
            // A second writer waits, then reports the lock.
            let second = RocksIndex::open(
                d.path(),
                &repo,
                Access::ReadWrite(Duration::from_millis(300)),
            );
            assert!(matches!(second, Err(Error::Locked { .. })));
            // Readers do not wait.
            let r = RocksIndex::open(d.path(), &repo, Access::ReadOnly).unwrap();
            assert!(r.contains(&e.blob).unwrap());
        }
        let i = RocksIndex::open(d.path(), &repo, Access::ReadOnly).unwrap();
        assert_eq!(
            i.packs().unwrap(),
            vec![(
                pack,
                PackInfo {
                    metadata: false,
                    blobs: 1,
                    size: 99
                }
            )]
        );
        assert!(RocksIndex::open(d.path(), &RepoId([9; 32]), Access::ReadOnly).is_err());
    }

    fn log_files(dir: &Path) -> (usize, u64) {
        std::fs::read_dir(dir)
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with("LOG"))
            .fold((0, 0), |(n, b), e| (n + 1, b + e.metadata().unwrap().len()))
    }

    /// Each open starts a new info log: twenty commands (as many readers as
    /// writers) leave little behind.
    #[test]
    fn twenty_opens_leave_small_info_logs() {
        let d = tempfile::tempdir().unwrap();
        let repo = RepoId([1; 32]);
        for i in 0..20 {
            let access = if i % 2 == 0 {
                Access::ReadWrite(Duration::ZERO)
            } else {
                Access::ReadOnly
            };
            drop(RocksIndex::open(d.path(), &repo, access).unwrap());
        }
        let (files, bytes) = log_files(d.path());
        // One file: the option dump RocksDB writes at every writer's open
        // (about 67 KB for our five column families, whatever the level).
        assert!(files <= 1, "{files} info log files");
        assert!(bytes <= 96 << 10, "{bytes} bytes of info logs");
    }

    #[test]
    fn a_damaged_index_names_the_repair() {
        let d = tempfile::tempdir().unwrap();
        let repo = RepoId([1; 32]);
        drop(RocksIndex::open(d.path(), &repo, Access::ReadWrite(Duration::ZERO)).unwrap());
        std::fs::write(d.path().join("CURRENT"), b"garbage\n").unwrap();
        for access in [Access::ReadOnly, Access::ReadWrite(Duration::ZERO)] {
            let e = RocksIndex::open(d.path(), &repo, access)
                .err()
                .expect("a garbage CURRENT is refused")
                .to_string();
            assert!(e.contains("snap repair index"), "{e}");
        }
    }
}
