//! Trees (directories) and chunk lists, encoded deterministically.
//!
//! A tree is CBOR (RFC 8949) of `{v: 1, entries: [node...]}` with entries
//! sorted by the bytes of their names, fields in a fixed order and absent
//! optional fields left out, so identical directories encode to identical
//! bytes and get identical ids. Names and symlink targets are byte strings:
//! non-UTF-8 names survive.
//!
//! A file's contents are a chunk list: `N × (chunk id (32) || length (u32 LE))`
//! in one byte string. Lists longer than [`INLINE_MAX`] are cut into groups at
//! content-defined points (an id whose first two bytes read as a u16 are a
//! multiple of [`GROUP_DIVISOR`]) and each group is stored as a List blob, so
//! a file that grew at its end shares all but its last groups with the
//! previous version, and memory for a huge file stays small.

use crate::error::{Error, Result};
use crate::id::{ChunkId, ListId, TreeId};
use serde::{Deserialize, Serialize};

/// Tree encoding version.
pub const TREE_VERSION: u32 = 1;
/// Longest chunk list stored inside the tree.
pub const INLINE_MAX: usize = 512;
/// Average group length of an indirect chunk list, in chunks.
pub const GROUP_DIVISOR: u16 = 256;
/// Longest group.
pub const GROUP_MAX: usize = 4096;
/// One chunk of a file: its id and length.
pub type ChunkRecord = (ChunkId, u32);

/// Bytes per chunk-list record.
pub const RECORD_LEN: usize = 36;

/// What a node is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeKind {
    /// Regular file.
    File,
    /// Directory.
    Dir,
    /// Symbolic link.
    Symlink,
    /// Named pipe.
    Fifo,
    /// Character device.
    Chardev,
    /// Block device.
    Blockdev,
}

/// One group of an indirect chunk list.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListRef {
    /// The List blob holding the group's records.
    pub id: ListId,
    /// Bytes of file content the group covers.
    pub bytes: u64,
    /// Number of chunks in the group.
    pub chunks: u32,
}

/// A file's contents.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Content {
    /// The records themselves.
    Inline(#[serde(with = "serde_bytes")] Vec<u8>),
    /// Groups stored as List blobs.
    Groups(Vec<ListRef>),
}

/// One directory entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    /// Name, raw bytes.
    #[serde(with = "serde_bytes")]
    pub name: Vec<u8>,
    /// What it is.
    pub kind: NodeKind,
    /// Permission and special bits (no file type bits).
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Modification time, seconds since the epoch.
    pub mtime: i64,
    /// Nanoseconds of the modification time.
    pub mtime_ns: u32,
    /// Status change time, seconds (used to detect unchanged files).
    pub ctime: i64,
    /// Nanoseconds of the change time.
    pub ctime_ns: u32,
    /// Inode number.
    pub inode: u64,
    /// Device number of the file system.
    pub dev: u64,
    /// Hard link count.
    pub nlink: u64,
    /// Size in bytes (files: content length).
    pub size: u64,
    /// Files: the chunk list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<Content>,
    /// Directories: the subtree.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subtree: Option<TreeId>,
    /// Symlinks: the target, raw bytes.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "opt_bytes")]
    pub target: Option<Vec<u8>>,
    /// Devices: the device number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rdev: Option<u64>,
    /// Set when the entry could not be saved faithfully (e.g. changed while read).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

mod opt_bytes {
    use serde::{Deserialize, Deserializer, Serializer};
    pub fn serialize<S: Serializer>(v: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(b) => s.serialize_bytes(b),
            None => s.serialize_none(),
        }
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
        Ok(Option::<serde_bytes::ByteBuf>::deserialize(d)?.map(|b| b.into_vec()))
    }
}

/// A directory.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tree {
    /// Encoding version.
    pub v: u32,
    /// Entries, sorted by name bytes, names unique.
    pub entries: Vec<Node>,
}

impl Node {
    /// An entry with this name and kind and every other field zero or
    /// absent (one link): fill in the rest with struct update syntax.
    pub fn new(name: &[u8], kind: NodeKind) -> Node {
        Node {
            name: name.to_vec(),
            kind,
            mode: 0,
            uid: 0,
            gid: 0,
            mtime: 0,
            mtime_ns: 0,
            ctime: 0,
            ctime_ns: 0,
            inode: 0,
            dev: 0,
            nlink: 1,
            size: 0,
            content: None,
            subtree: None,
            target: None,
            rdev: None,
            error: None,
        }
    }
}

impl Tree {
    /// A tree of `entries`, sorted.
    pub fn new(mut entries: Vec<Node>) -> Self {
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        Tree {
            v: TREE_VERSION,
            entries,
        }
    }

    /// Deterministic bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        ciborium::into_writer(self, &mut out).expect("writing CBOR to memory does not fail");
        out
    }

    /// Decodes and validates a tree.
    pub fn decode(bytes: &[u8], id: &TreeId) -> Result<Self> {
        let what = || format!("tree {id}");
        let t: Tree =
            ciborium::from_reader(bytes).map_err(|e| Error::corrupt(what(), e.to_string()))?;
        if t.v != TREE_VERSION {
            return Err(Error::UnsupportedVersion {
                what: what(),
                found: t.v,
                supported: TREE_VERSION,
            });
        }
        if t.entries.windows(2).any(|w| w[0].name >= w[1].name) {
            return Err(Error::corrupt(what(), "entries are not sorted and unique"));
        }
        Ok(t)
    }

    /// The entry called `name`.
    pub fn get(&self, name: &[u8]) -> Option<&Node> {
        self.entries
            .binary_search_by(|n| n.name.as_slice().cmp(name))
            .ok()
            .map(|i| &self.entries[i])
    }
}

/// Encodes chunk records.
pub fn encode_records(chunks: &[(ChunkId, u32)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(chunks.len() * RECORD_LEN);
    for (id, len) in chunks {
        out.extend_from_slice(&id.0);
        out.extend_from_slice(&len.to_le_bytes());
    }
    out
}

/// Decodes chunk records.
pub fn decode_records(bytes: &[u8], what: &dyn Fn() -> String) -> Result<Vec<(ChunkId, u32)>> {
    if bytes.len() % RECORD_LEN != 0 {
        return Err(Error::corrupt(
            what(),
            format!(
                "chunk list of {} bytes is not a multiple of {RECORD_LEN}",
                bytes.len()
            ),
        ));
    }
    Ok(bytes
        .chunks_exact(RECORD_LEN)
        .map(|r| {
            (
                ChunkId::from_slice(r).expect("32 bytes"),
                u32::from_le_bytes(r[32..].try_into().expect("4 bytes")),
            )
        })
        .collect())
}

/// Whether a group of `len` records whose last record is `last` ends there.
pub fn ends_group(len: usize, last: &ChunkId) -> bool {
    let cut = u16::from_le_bytes([last.0[0], last.0[1]]) % GROUP_DIVISOR == 0;
    (cut && len >= 16) || len >= GROUP_MAX
}

/// Splits a long chunk list into groups at content-defined points.
pub fn split_groups(chunks: &[(ChunkId, u32)]) -> Vec<&[(ChunkId, u32)]> {
    let mut out = Vec::new();
    let mut start = 0;
    for (i, (id, _)) in chunks.iter().enumerate() {
        if ends_group(i + 1 - start, id) {
            out.push(&chunks[start..=i]);
            start = i + 1;
        }
    }
    if start < chunks.len() {
        out.push(&chunks[start..]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn node(name: &[u8]) -> Node {
        Node {
            name: name.to_vec(),
            kind: NodeKind::File,
            mode: 0o644,
            uid: 1,
            gid: 2,
            mtime: 3,
            mtime_ns: 4,
            ctime: 5,
            ctime_ns: 6,
            inode: 7,
            dev: 8,
            nlink: 1,
            size: 9,
            content: Some(Content::Inline(encode_records(&[(ChunkId([1; 32]), 9)]))),
            subtree: None,
            target: None,
            rdev: None,
            error: None,
        }
    }

    #[test]
    fn encoding_is_order_independent_and_round_trips() {
        let a = Tree::new(vec![node(b"b"), node(b"a"), node(&[0xff, 0xfe])]);
        let b = Tree::new(vec![node(&[0xff, 0xfe]), node(b"a"), node(b"b")]);
        assert_eq!(a.encode(), b.encode());
        let id = TreeId([0; 32]);
        assert_eq!(Tree::decode(&a.encode(), &id).unwrap(), a);
        assert_eq!(a.get(&[0xff, 0xfe]).unwrap().size, 9);
        assert!(a.get(b"zz").is_none());
    }

    #[test]
    fn unsorted_or_unknown_version_is_refused() {
        let mut t = Tree::new(vec![node(b"a"), node(b"b")]);
        t.entries.swap(0, 1);
        assert!(Tree::decode(&t.encode(), &TreeId::default()).is_err());
        let mut u = Tree::new(vec![]);
        u.v = 7;
        assert!(matches!(
            Tree::decode(&u.encode(), &TreeId::default()),
            Err(Error::UnsupportedVersion { .. })
        ));
        assert!(Tree::decode(b"\xff\x00", &TreeId::default()).is_err());
    }

    proptest! {
        #[test]
        fn records_round_trip(ids in proptest::collection::vec((any::<[u8; 32]>(), any::<u32>()), 0..200)) {
            let chunks: Vec<(ChunkId, u32)> = ids.into_iter().map(|(i, l)| (ChunkId(i), l)).collect();
            let enc = encode_records(&chunks);
            prop_assert_eq!(decode_records(&enc, &|| "x".into()).unwrap(), chunks.clone());
            let groups = split_groups(&chunks);
            let joined: Vec<_> = groups.iter().flat_map(|g| g.iter().copied()).collect();
            prop_assert_eq!(&joined, &chunks);
            prop_assert!(groups.iter().all(|g| !g.is_empty() && g.len() <= GROUP_MAX));
        }

        #[test]
        fn tree_round_trip(names in proptest::collection::btree_set(proptest::collection::vec(any::<u8>(), 1..20), 0..30)) {
            let t = Tree::new(names.iter().map(|n| node(n)).collect());
            prop_assert_eq!(Tree::decode(&t.encode(), &TreeId::default()).unwrap(), t);
        }
    }
}
