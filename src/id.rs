//! Typed 32-byte identifiers.
//!
//! Every object in a repository is named by 32 bytes. The types below keep a
//! chunk id from being used where a pack id is expected: they share one
//! representation but never mix across module boundaries.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// Length in bytes of every identifier.
pub const ID_LEN: usize = 32;

/// Error returned when text is not a valid identifier.
#[derive(Debug, thiserror::Error)]
#[error("{0:?} is not a 64-character hexadecimal id")]
pub struct ParseIdError(pub String);

macro_rules! typed_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
        pub struct $name(pub [u8; ID_LEN]);

        impl $name {
            /// The id as lowercase hexadecimal.
            pub fn to_hex(&self) -> String {
                hex::encode(self.0)
            }

            /// The first 8 hexadecimal characters, as shown to people.
            pub fn short(&self) -> String {
                hex::encode(&self.0[..4])
            }

            /// Parses a full 64-character hexadecimal id.
            pub fn from_hex(s: &str) -> Result<Self, ParseIdError> {
                let mut out = [0u8; ID_LEN];
                hex::decode_to_slice(s, &mut out).map_err(|_| ParseIdError(s.to_string()))?;
                Ok(Self(out))
            }

            /// Reads an id from the first 32 bytes of `b`.
            pub fn from_slice(b: &[u8]) -> Option<Self> {
                let arr: [u8; ID_LEN] = b.get(..ID_LEN)?.try_into().ok()?;
                Some(Self(arr))
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.short())
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.to_hex())
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                if s.is_human_readable() {
                    s.serialize_str(&self.to_hex())
                } else {
                    s.serialize_bytes(&self.0)
                }
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                if d.is_human_readable() {
                    let s = String::deserialize(d)?;
                    Self::from_hex(&s).map_err(serde::de::Error::custom)
                } else {
                    let b: serde_bytes::ByteBuf = serde_bytes::ByteBuf::deserialize(d)?;
                    Self::from_slice(&b)
                        .filter(|_| b.len() == ID_LEN)
                        .ok_or_else(|| serde::de::Error::custom("id must be 32 bytes"))
                }
            }
        }
    };
}

typed_id!(
    /// Keyed BLAKE3 hash of a chunk's plaintext.
    ChunkId
);
typed_id!(
    /// Keyed BLAKE3 hash of an encoded tree's plaintext.
    TreeId
);
typed_id!(
    /// Keyed BLAKE3 hash of an encoded chunk-list's plaintext.
    ListId
);
typed_id!(
    /// Unkeyed BLAKE3 hash of a pack file's bytes.
    PackId
);
typed_id!(
    /// Unkeyed BLAKE3 hash of a snapshot file's bytes.
    SnapshotId
);
typed_id!(
    /// Random id of a repository, chosen at `init`.
    RepoId
);

/// The kind of a blob, stored in pack headers and index keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum BlobKind {
    /// File contents.
    Data,
    /// An encoded directory.
    Tree,
    /// A group of a large file's chunk list.
    List,
}

impl BlobKind {
    /// The byte that stands for this kind on disk.
    pub fn to_byte(self) -> u8 {
        match self {
            BlobKind::Data => 0,
            BlobKind::Tree => 1,
            BlobKind::List => 2,
        }
    }

    /// Inverse of [`BlobKind::to_byte`].
    pub fn from_byte(b: u8) -> Option<Self> {
        match b {
            0 => Some(BlobKind::Data),
            1 => Some(BlobKind::Tree),
            2 => Some(BlobKind::List),
            _ => None,
        }
    }

    /// Data blobs go to data packs; trees and lists to metadata packs.
    pub fn is_metadata(self) -> bool {
        !matches!(self, BlobKind::Data)
    }
}

/// A blob's raw id together with its kind: the key of the index.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BlobRef {
    /// What the blob holds.
    pub kind: BlobKind,
    /// Its keyed hash.
    pub id: [u8; ID_LEN],
}

impl From<ChunkId> for BlobRef {
    fn from(c: ChunkId) -> Self {
        BlobRef {
            kind: BlobKind::Data,
            id: c.0,
        }
    }
}
impl From<TreeId> for BlobRef {
    fn from(c: TreeId) -> Self {
        BlobRef {
            kind: BlobKind::Tree,
            id: c.0,
        }
    }
}
impl From<ListId> for BlobRef {
    fn from(c: ListId) -> Self {
        BlobRef {
            kind: BlobKind::List,
            id: c.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip_and_rejects_bad_text() {
        let id = PackId([7u8; 32]);
        assert_eq!(PackId::from_hex(&id.to_hex()).unwrap(), id);
        assert!(PackId::from_hex("xyz").is_err());
        assert!(PackId::from_hex(&"0".repeat(63)).is_err());
        assert_eq!(id.short().len(), 8);
    }

    #[test]
    fn blob_kind_bytes_are_stable() {
        for k in [BlobKind::Data, BlobKind::Tree, BlobKind::List] {
            assert_eq!(BlobKind::from_byte(k.to_byte()), Some(k));
        }
        assert_eq!(BlobKind::from_byte(9), None);
        assert_eq!(BlobKind::Data.to_byte(), 0);
        assert_eq!(BlobKind::List.to_byte(), 2);
    }
}
