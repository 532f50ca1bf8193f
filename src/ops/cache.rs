//! A bounded cache of decoded trees, chunk-list groups and chunks, shared by
//! the readers that come back to the same blobs: mount (the kernel reads a
//! file 128 KiB at a time, a chunk is larger), diff and log (consecutive
//! snapshots share most trees), restore's walk (identical directories dedupe
//! to one tree) and cat.
//!
//! Everything in it was read through [`Repository::read_blob`], so it was
//! checked against its id; a tree was decoded and a group checked against
//! its totals once. The bound is on the bytes held (plaintext lengths), and
//! the least recently used entries go first. Loads happen outside the lock:
//! two threads that miss the same blob both read it, and neither waits for
//! the other's I/O.

use crate::error::{Error, Result};
use crate::format::tree::{decode_records, ChunkRecord, Content, ListRef, Node, Tree};
use crate::id::{BlobKind, BlobRef, ChunkId, TreeId};
use crate::repo::Repository;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

/// Bytes a decoded tree entry takes beyond its encoded form (names, ids and
/// numbers are held as owned fields): counts against the bound.
const NODE_OVERHEAD: usize = 160;

#[derive(Clone)]
enum Value {
    Tree(Arc<Tree>),
    Group(Arc<Group>),
    Chunk(Arc<Vec<u8>>),
}

/// One group of a chunk list, with the offset of each chunk in the group.
pub struct Group {
    /// The records: chunk id and length.
    pub records: Vec<ChunkRecord>,
    /// `starts[i]` is where chunk `i` begins, from the group's start; one
    /// more element, the group's length.
    pub starts: Vec<u64>,
}

impl Group {
    fn new(records: Vec<ChunkRecord>) -> Group {
        let mut starts = Vec::with_capacity(records.len() + 1);
        let mut at = 0u64;
        starts.push(0);
        for (_, l) in &records {
            at += *l as u64;
            starts.push(at);
        }
        Group { records, starts }
    }

    /// Indexes of the chunks that hold bytes `from..to` of the group.
    fn covering(&self, from: u64, to: u64) -> std::ops::Range<usize> {
        let first = self
            .starts
            .partition_point(|&s| s <= from)
            .saturating_sub(1);
        let end = self.starts.partition_point(|&s| s < to);
        first..end.min(self.records.len())
    }
}

struct Entry {
    value: Value,
    weight: usize,
    tick: u64,
}

struct Inner {
    map: HashMap<BlobRef, Entry>,
    order: BTreeMap<u64, BlobRef>,
    held: usize,
    tick: u64,
    hits: u64,
    misses: u64,
}

/// The cache. Cheap to share: `Send + Sync`, all methods take `&self`.
pub struct ReadCache {
    max: usize,
    inner: Mutex<Inner>,
}

/// How often the cache answered, for tests and benchmarks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Lookups answered from memory.
    pub hits: u64,
    /// Lookups that read the repository.
    pub misses: u64,
    /// Bytes held now.
    pub held: usize,
}

impl ReadCache {
    /// A cache holding at most `max_bytes` of plaintext (an entry larger
    /// than the whole bound is returned but not kept).
    pub fn new(max_bytes: usize) -> ReadCache {
        ReadCache {
            max: max_bytes,
            inner: Mutex::new(Inner {
                map: HashMap::new(),
                order: BTreeMap::new(),
                held: 0,
                tick: 0,
                hits: 0,
                misses: 0,
            }),
        }
    }

    /// Hits, misses and bytes held so far.
    pub fn stats(&self) -> CacheStats {
        let g = self.lock();
        CacheStats {
            hits: g.hits,
            misses: g.misses,
            held: g.held,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A thread that panicked while holding the lock left the maps
        // consistent (every update is one insert or one remove at a time).
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn get(&self, key: &BlobRef) -> Option<Value> {
        let mut g = self.lock();
        g.tick += 1;
        let tick = g.tick;
        let Some(e) = g.map.get_mut(key) else {
            g.misses += 1;
            return None;
        };
        let old = std::mem::replace(&mut e.tick, tick);
        let value = e.value.clone();
        g.order.remove(&old);
        g.order.insert(tick, *key);
        g.hits += 1;
        Some(value)
    }

    fn put(&self, key: BlobRef, value: Value, weight: usize) {
        if weight > self.max {
            return;
        }
        let mut g = self.lock();
        if g.map.contains_key(&key) {
            return;
        }
        while g.held + weight > self.max {
            let Some((_, oldest)) = g.order.pop_first() else {
                break;
            };
            if let Some(e) = g.map.remove(&oldest) {
                g.held -= e.weight;
            }
        }
        g.tick += 1;
        let tick = g.tick;
        g.order.insert(tick, key);
        g.held += weight;
        g.map.insert(
            key,
            Entry {
                value,
                weight,
                tick,
            },
        );
    }

    /// The decoded tree `id`.
    pub fn tree(&self, repo: &Repository, id: &TreeId) -> Result<Arc<Tree>> {
        let key = BlobRef::from(*id);
        if let Some(Value::Tree(t)) = self.get(&key) {
            return Ok(t);
        }
        let bytes = repo.read_blob(&key)?;
        let tree = Arc::new(Tree::decode(&bytes, id)?);
        let weight = bytes.len() + tree.entries.len() * NODE_OVERHEAD;
        self.put(key, Value::Tree(tree.clone()), weight);
        Ok(tree)
    }

    /// One group of a chunk list, checked against the tree's totals.
    pub fn group(&self, repo: &Repository, g: &ListRef) -> Result<Arc<Group>> {
        let key = BlobRef::from(g.id);
        if let Some(Value::Group(v)) = self.get(&key) {
            return Ok(v);
        }
        let group = Arc::new(Group::new(repo.load_chunk_group(g)?));
        let weight = group.records.len() * (std::mem::size_of::<ChunkRecord>() + 8);
        self.put(key, Value::Group(group.clone()), weight);
        Ok(group)
    }

    /// The plaintext of chunk `id`, which the chunk list says is `len`
    /// bytes long (a chunk of another length is refused).
    pub fn chunk(&self, repo: &Repository, id: &ChunkId, len: u32) -> Result<Arc<Vec<u8>>> {
        let key = BlobRef::from(*id);
        if let Some(Value::Chunk(c)) = self.get(&key) {
            check_chunk_len(id, len, &c)?;
            return Ok(c);
        }
        let data = repo.read_blob(&key)?;
        check_chunk_len(id, len, &data)?;
        let data = Arc::new(data);
        self.put(key, Value::Chunk(data.clone()), data.len());
        Ok(data)
    }

    /// Whether the chunk is held now (a prefetcher skips those).
    pub fn holds_chunk(&self, id: &ChunkId) -> bool {
        let key = BlobRef {
            kind: BlobKind::Data,
            id: id.0,
        };
        self.lock().map.contains_key(&key)
    }

    /// A random-access reader of the file `node`.
    pub fn file(&self, node: &Node) -> Result<FileReader> {
        let content = node.content.as_ref().ok_or_else(|| {
            Error::Usage(format!(
                "{} is not a regular file",
                String::from_utf8_lossy(&node.name)
            ))
        })?;
        let (parts, inline) = match content {
            Content::Inline(r) => {
                let records = decode_records(r, &|| "inline chunk list".into())?;
                let g = Group::new(records);
                let len = *g.starts.last().expect("starts has one more element");
                (vec![(0, len, None)], Some(Arc::new(g)))
            }
            Content::Groups(gs) => {
                let mut at = 0u64;
                let mut parts = Vec::with_capacity(gs.len());
                for g in gs {
                    parts.push((at, g.bytes, Some(g.clone())));
                    at = at.saturating_add(g.bytes);
                }
                (parts, None)
            }
        };
        let total = parts.last().map_or(0, |(s, l, _)| s + l);
        if total != node.size {
            return Err(size_mismatch(node, total));
        }
        Ok(FileReader {
            size: node.size,
            parts,
            inline,
        })
    }
}

/// Reads any range of one file, loading only the chunk-list group and the
/// chunks that cover it.
pub struct FileReader {
    size: u64,
    /// Each part's start in the file, its length, and its group (none for
    /// an inline list, whose one part is `inline`).
    parts: Vec<(u64, u64, Option<ListRef>)>,
    inline: Option<Arc<Group>>,
}

impl FileReader {
    /// The file's size.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The chunks (id, length) holding bytes `offset..offset+len`, in order.
    pub fn chunks(
        &self,
        cache: &ReadCache,
        repo: &Repository,
        offset: u64,
        len: u64,
    ) -> Result<Vec<ChunkRecord>> {
        let mut out = Vec::new();
        self.visit(cache, repo, offset, len, &mut |rec, _, _| {
            out.push(*rec);
            Ok(())
        })?;
        Ok(out)
    }

    /// Bytes `offset..offset+len` of the file (fewer at its end; none past
    /// it).
    pub fn read_at(
        &self,
        cache: &ReadCache,
        repo: &Repository,
        offset: u64,
        len: u64,
    ) -> Result<Vec<u8>> {
        let end = offset.saturating_add(len).min(self.size);
        let mut out = Vec::with_capacity(end.saturating_sub(offset) as usize);
        self.visit(cache, repo, offset, len, &mut |(id, clen), from, to| {
            let data = cache.chunk(repo, id, *clen)?;
            out.extend_from_slice(&data[from..to]);
            Ok(())
        })?;
        Ok(out)
    }

    /// Calls `f` with each chunk covering the range and the part of it
    /// (`from..to`, within the chunk) the range takes.
    fn visit(
        &self,
        cache: &ReadCache,
        repo: &Repository,
        offset: u64,
        len: u64,
        f: &mut dyn FnMut(&ChunkRecord, usize, usize) -> Result<()>,
    ) -> Result<()> {
        let end = offset.saturating_add(len).min(self.size);
        if offset >= end {
            return Ok(());
        }
        let first = self
            .parts
            .partition_point(|(s, _, _)| *s <= offset)
            .saturating_sub(1);
        for (start, plen, list) in &self.parts[first..] {
            if *start >= end {
                break;
            }
            if *plen == 0 {
                continue;
            }
            let group = match list {
                Some(l) => cache.group(repo, l)?,
                None => self.inline.clone().expect("an inline list has its group"),
            };
            let from = offset.saturating_sub(*start);
            let to = (end - start).min(*plen);
            for i in group.covering(from, to) {
                let (cs, ce) = (group.starts[i], group.starts[i + 1]);
                let a = from.max(cs) - cs;
                let b = to.min(ce) - cs;
                f(&group.records[i], a as usize, b as usize)?;
            }
        }
        Ok(())
    }
}

/// Refuses a chunk whose length is not the one its chunk list records.
pub(crate) fn check_chunk_len(id: &ChunkId, len: u32, data: &[u8]) -> Result<()> {
    if data.len() != len as usize {
        return Err(Error::corrupt(
            format!("chunk {id}"),
            format!("{} bytes, the chunk list says {len}", data.len()),
        ));
    }
    Ok(())
}

/// A file whose chunks do not add up to its recorded size.
pub(crate) fn size_mismatch(node: &Node, got: u64) -> Error {
    Error::corrupt(
        format!("file {}", String::from_utf8_lossy(&node.name)),
        format!("its chunks hold {got} bytes, the tree says {}", node.size),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn covering_finds_the_chunks_of_a_range() {
        let id = |b| ChunkId([b; 32]);
        let g = Group::new(vec![(id(1), 10), (id(2), 5), (id(3), 20)]);
        assert_eq!(g.starts, vec![0, 10, 15, 35]);
        assert_eq!(g.covering(0, 1), 0..1);
        assert_eq!(g.covering(0, 10), 0..1);
        assert_eq!(g.covering(9, 11), 0..2);
        assert_eq!(g.covering(10, 15), 1..2);
        assert_eq!(g.covering(14, 35), 1..3);
        assert_eq!(g.covering(34, 35), 2..3);
    }

    #[test]
    fn the_least_recently_used_entry_goes_first() {
        let c = ReadCache::new(100);
        let key = |b| BlobRef {
            kind: BlobKind::Data,
            id: [b; 32],
        };
        let v = |n| Value::Chunk(Arc::new(vec![0; n]));
        c.put(key(1), v(40), 40);
        c.put(key(2), v(40), 40);
        assert!(c.get(&key(1)).is_some()); // 1 is now the most recent
        c.put(key(3), v(40), 40); // evicts 2
        assert!(c.get(&key(2)).is_none());
        assert!(c.get(&key(1)).is_some());
        assert!(c.get(&key(3)).is_some());
        assert_eq!(c.stats().held, 80);
        c.put(key(4), v(200), 200); // larger than the bound: not kept
        assert!(c.get(&key(4)).is_none());
        assert_eq!(c.stats().held, 80);
    }
}
