//! How pack bytes are read: exactly from the local disk, and on a fixed
//! grid from anything else (format-spec.md §9.1).
//!
//! Whoever serves a remote repository sees the byte ranges asked for. One
//! request per blob would give them every chunk's exact sealed length (most
//! site files are one chunk), the layout of directories, and the input of
//! the attacks that recover a keyed chunker from chosen text. From a remote
//! backend, a read of pack data therefore asks for whole aligned blocks of
//! [`GRID`] bytes (the last one ends at the pack's end), neighbouring
//! blocks in one request, and keeps recent blocks; a blob of a metadata
//! pack (trees, chunk lists) is read as the whole pack, which is kept too
//! (up to the cache's size; a larger one is read on the grid).

use crate::backend::{Backend, FileType};
use crate::error::{Error, Result};
use crate::id::PackId;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// The block size of remote reads: every range asked of a remote backend
/// starts at a multiple of it and ends at one or at the pack's end.
pub const GRID: u64 = 1 << 20;

/// Bytes of data blocks kept (32 blocks).
const DATA_CACHE: u64 = 32 * GRID;
/// Bytes of whole metadata packs kept.
const METADATA_CACHE: u64 = 64 * GRID;
/// Blocks asked for at once when a pack is read in order (from its start,
/// or right after the blocks read before): a restore reads packs in the
/// order they were written, and one request per block would spend its time
/// waiting on round trips.
const READ_AHEAD: u64 = 8;

/// What is cached: a block of a data pack (by its index), or a whole pack.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum Key {
    Block(PackId, u64),
    Whole(PackId),
}

/// A small cache with least-recently-used eviction, bounded in bytes.
struct Lru {
    cap: u64,
    used: u64,
    tick: u64,
    map: HashMap<Key, (Arc<Vec<u8>>, u64)>,
}

impl Lru {
    fn new(cap: u64) -> Lru {
        Lru {
            cap,
            used: 0,
            tick: 0,
            map: HashMap::new(),
        }
    }

    fn get(&mut self, k: &Key) -> Option<Arc<Vec<u8>>> {
        self.tick += 1;
        let tick = self.tick;
        self.map.get_mut(k).map(|(v, t)| {
            *t = tick;
            v.clone()
        })
    }

    fn put(&mut self, k: Key, v: Arc<Vec<u8>>) {
        let n = v.len() as u64;
        if n > self.cap {
            return;
        }
        while self.used + n > self.cap {
            let Some(oldest) = self
                .map
                .iter()
                .min_by_key(|(_, (_, t))| *t)
                .map(|(k, _)| *k)
            else {
                break;
            };
            if let Some((old, _)) = self.map.remove(&oldest) {
                self.used -= old.len() as u64;
            }
        }
        self.tick += 1;
        if let Some((old, _)) = self.map.insert(k, (v, self.tick)) {
            self.used -= old.len() as u64;
        }
        self.used += n;
    }
}

/// Reads of pack bytes by the rule of the backend they come from.
pub struct PackReads {
    remote: bool,
    data: Mutex<Lru>,
    metadata: Mutex<Lru>,
    /// Per pack read lately: the block after the last one read.
    next: Mutex<HashMap<PackId, u64>>,
}

impl PackReads {
    /// Reads for a backend that is remote (`true`: the grid rule) or the
    /// local disk.
    pub fn new(remote: bool) -> PackReads {
        PackReads {
            remote,
            data: Mutex::new(Lru::new(DATA_CACHE)),
            metadata: Mutex::new(Lru::new(METADATA_CACHE)),
            next: Mutex::new(HashMap::new()),
        }
    }

    /// `len` bytes at `offset` of pack `id`, whose file has `size` bytes;
    /// `metadata` when it is a metadata pack (read whole from a remote).
    pub fn range(
        &self,
        backend: &dyn Backend,
        id: &PackId,
        size: u64,
        offset: u64,
        len: u64,
        metadata: bool,
    ) -> Result<Vec<u8>> {
        let name = id.to_hex();
        let end = offset
            .checked_add(len)
            .filter(|&e| e <= size)
            .ok_or_else(|| {
                Error::corrupt(
                    format!("pack {id}"),
                    format!("{len} bytes at {offset} lie past its end ({size} bytes)"),
                )
            })?;
        if !self.remote {
            return backend.read_range(FileType::Pack, &name, offset, len);
        }
        // A metadata pack is read whole only within the cache's bound: a
        // size the storage states is not trusted for one allocation.
        if metadata && size <= METADATA_CACHE {
            let key = Key::Whole(*id);
            let cached = self.metadata.lock().expect("not poisoned").get(&key);
            let whole = match cached {
                Some(w) => w,
                None => {
                    let w = Arc::new(backend.read_range(FileType::Pack, &name, 0, size)?);
                    self.metadata
                        .lock()
                        .expect("not poisoned")
                        .put(key, w.clone());
                    w
                }
            };
            return Ok(whole[offset as usize..end as usize].to_vec());
        }
        let first = offset / GRID;
        let last = end.saturating_sub(1).max(offset) / GRID;
        let mut blocks: Vec<Option<Arc<Vec<u8>>>> = {
            let mut cache = self.data.lock().expect("not poisoned");
            (first..=last)
                .map(|b| cache.get(&Key::Block(*id, b)))
                .collect()
        };
        // Each run of missing blocks is one request; in-order reading asks
        // for the blocks that follow too.
        let in_order = {
            let next = self.next.lock().expect("not poisoned");
            first == 0 || next.get(id).is_some_and(|&n| n >= first && n <= last + 1)
        };
        let blocks_in_pack = size.div_ceil(GRID);
        let mut b = first;
        while b <= last {
            if blocks[(b - first) as usize].is_some() {
                b += 1;
                continue;
            }
            let run_start = b;
            while b <= last && blocks[(b - first) as usize].is_none() {
                b += 1;
            }
            let upto = if in_order && b > last {
                b.max(run_start + READ_AHEAD).min(blocks_in_pack)
            } else {
                b
            };
            let from = run_start * GRID;
            let to = (upto * GRID).min(size);
            let bytes = backend.read_range(FileType::Pack, &name, from, to - from)?;
            let mut cache = self.data.lock().expect("not poisoned");
            for (i, piece) in bytes.chunks(GRID as usize).enumerate() {
                let k = run_start + i as u64;
                let piece = Arc::new(piece.to_vec());
                cache.put(Key::Block(*id, k), piece.clone());
                if k <= last {
                    blocks[(k - first) as usize] = Some(piece);
                }
            }
        }
        {
            let mut next = self.next.lock().expect("not poisoned");
            if next.len() >= 256 {
                next.clear();
            }
            next.insert(*id, last + 1);
        }
        let mut out = Vec::with_capacity(len as usize);
        for (i, block) in blocks.iter().enumerate() {
            let block = block.as_ref().expect("every block was read");
            let at = (first + i as u64) * GRID;
            let lo = offset.max(at) - at;
            let hi = end.min(at + block.len() as u64) - at;
            if lo < hi {
                out.extend_from_slice(&block[lo as usize..hi as usize]);
            }
        }
        if out.len() as u64 != len {
            return Err(Error::corrupt(
                format!("pack {id}"),
                format!(
                    "read {} bytes where {len} were asked (it changed size?)",
                    out.len()
                ),
            ));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::mem::MemBackend;

    #[test]
    fn remote_reads_are_aligned_blocks_and_cached() {
        let mem = MemBackend::new();
        let id = PackId([7; 32]);
        let data: Vec<u8> = (0..(3 * GRID + 1000)).map(|i| (i % 251) as u8).collect();
        mem.write(FileType::Pack, &id.to_hex(), &data).unwrap();
        let size = data.len() as u64;
        let r = PackReads::new(true);
        for (off, len) in [
            (5, 10),
            (GRID - 3, 7),
            (3 * GRID + 10, 990),
            (0, size),
            (2 * GRID, 0),
        ] {
            let got = r.range(&mem, &id, size, off, len, false).unwrap();
            assert_eq!(
                got,
                &data[off as usize..(off + len) as usize],
                "{off} {len}"
            );
        }
        let got = r.range(&mem, &id, size, 100, 50, true).unwrap();
        assert_eq!(got, &data[100..150]);
        // A "metadata pack" larger than the cache is read on the grid, not
        // allocated whole.
        let big = PackId([8; 32]);
        let huge: Vec<u8> = vec![3; (METADATA_CACHE + GRID) as usize];
        mem.write(FileType::Pack, &big.to_hex(), &huge).unwrap();
        let got = r.range(&mem, &big, huge.len() as u64, 10, 5, true).unwrap();
        assert_eq!(got, &huge[10..15]);
        assert!(
            r.metadata.lock().unwrap().get(&Key::Whole(big)).is_none(),
            "not kept whole"
        );
        assert!(r.range(&mem, &id, size, size - 5, 10, false).is_err());
        let local = PackReads::new(false);
        assert_eq!(
            local.range(&mem, &id, size, 9, 3, false).unwrap(),
            &data[9..12]
        );
    }

    #[test]
    fn the_cache_stays_within_its_bound() {
        let mut l = Lru::new(10);
        for i in 0..20u64 {
            l.put(Key::Block(PackId([0; 32]), i), Arc::new(vec![0; 3]));
            assert!(l.used <= 10);
        }
        assert!(l.get(&Key::Block(PackId([0; 32]), 19)).is_some());
        assert!(l.get(&Key::Block(PackId([0; 32]), 0)).is_none());
        l.put(Key::Whole(PackId([1; 32])), Arc::new(vec![0; 11]));
        assert!(
            l.get(&Key::Whole(PackId([1; 32]))).is_none(),
            "too large to keep"
        );
    }
}
