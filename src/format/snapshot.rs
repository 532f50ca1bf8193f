//! Snapshots: one sealed JSON file per saved point in time.
//!
//! The file is `sealed(JSON)` with associated data `"snap snapshot v1"`; its
//! name (the snapshot id) is the unkeyed BLAKE3 hash of the file's bytes.

use crate::error::{Error, Result};
use crate::format::crypto::Keys;
use crate::id::{SnapshotId, TreeId};
use serde::{Deserialize, Serialize};

/// Snapshot encoding version.
pub const SNAPSHOT_VERSION: u32 = 1;
const AAD: &[u8] = b"snap snapshot v1";

/// What a snapshot holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Hash, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Site files.
    Files,
    /// A database dump.
    Db,
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Kind::Files => "files",
            Kind::Db => "db",
        })
    }
}

/// Figures recorded at the end of a push.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    /// Files not in the parent snapshot.
    pub files_new: u64,
    /// Files in the parent whose metadata changed, so they were read again.
    pub files_changed: u64,
    /// Files whose parent entry was reused without reading.
    pub files_unchanged: u64,
    /// Directories saved.
    pub dirs: u64,
    /// Bytes read from the source.
    pub bytes_read: u64,
    /// Total size of the files in the snapshot.
    pub bytes_total: u64,
    /// Plaintext bytes of blobs that were new to the repository.
    pub bytes_added: u64,
    /// Bytes those blobs take in packs (compressed, sealed).
    pub bytes_stored: u64,
    /// Blobs new to the repository.
    pub blobs_added: u64,
    /// Wall time of the push, in milliseconds.
    pub duration_ms: u64,
}

/// A problem met during a push.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushError {
    /// Path on the source machine.
    pub path: String,
    /// What went wrong.
    pub message: String,
}

/// A saved point in time.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Encoding version.
    pub version: u32,
    /// When it was taken, RFC 3339 with the local UTC offset.
    pub time: String,
    /// Host name.
    pub host: String,
    /// Client site, or absent for global snapshots.
    #[serde(default)]
    pub site: Option<String>,
    /// Files or db.
    pub kind: Kind,
    /// Backup plan level (1 or 2).
    pub level: u8,
    /// Free tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Source paths, absolute, or the dump's name for stream sources.
    pub paths: Vec<String>,
    /// Root tree.
    pub tree: TreeId,
    /// The snapshot whose entries were reused, if any.
    #[serde(default)]
    pub parent: Option<SnapshotId>,
    /// The command whose output was saved, for command sources.
    #[serde(default)]
    pub command: Option<Vec<String>>,
    /// False when some files could not be read.
    pub complete: bool,
    /// The problems met, one per path.
    #[serde(default)]
    pub errors: Vec<PushError>,
    /// Entries left out on purpose (sockets), one per path.
    #[serde(default)]
    pub skipped: Vec<PushError>,
    /// Figures.
    pub summary: Summary,
}

impl Snapshot {
    /// Seals the snapshot; returns its id and file bytes.
    pub fn encode(&self, keys: &Keys) -> (SnapshotId, Vec<u8>) {
        let json = serde_json::to_vec(self).expect("snapshot serialises");
        let bytes = keys.seal(AAD, &json);
        (SnapshotId(*blake3::hash(&bytes).as_bytes()), bytes)
    }

    /// Opens a snapshot file, checking that its bytes match its name.
    pub fn decode(id: &SnapshotId, bytes: &[u8], keys: &Keys) -> Result<Self> {
        let what = || format!("snapshot {id}");
        if blake3::hash(bytes).as_bytes() != &id.0 {
            return Err(Error::corrupt(what(), "its bytes do not hash to its name"));
        }
        let json = keys.open(AAD, bytes, &what)?;
        let v: serde_json::Value =
            serde_json::from_slice(&json).map_err(|e| Error::corrupt(what(), e.to_string()))?;
        let version = v.get("version").and_then(|x| x.as_u64()).unwrap_or(0) as u32;
        if version != SNAPSHOT_VERSION {
            return Err(Error::UnsupportedVersion {
                what: what(),
                found: version,
                supported: SNAPSHOT_VERSION,
            });
        }
        serde_json::from_value(v).map_err(|e| Error::corrupt(what(), e.to_string()))
    }

    /// The time as a timestamp.
    pub fn timestamp(&self) -> chrono::DateTime<chrono::FixedOffset> {
        chrono::DateTime::parse_from_rfc3339(&self.time).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_name_check() {
        let k = Keys::generate();
        let s = Snapshot {
            version: 1,
            time: "2026-11-25T03:00:00+01:00".into(),
            host: "web1".into(),
            site: Some("client-a".into()),
            kind: Kind::Db,
            level: 2,
            tags: vec!["weekly".into()],
            paths: vec!["client_a.sql".into()],
            tree: TreeId([3; 32]),
            parent: None,
            command: Some(vec!["mysqldump".into(), "client_a".into()]),
            complete: true,
            errors: vec![],
            skipped: vec![],
            summary: Summary::default(),
        };
        let (id, bytes) = s.encode(&k);
        assert_eq!(Snapshot::decode(&id, &bytes, &k).unwrap(), s);
        assert!(Snapshot::decode(&SnapshotId([0; 32]), &bytes, &k).is_err());
        assert_eq!(s.timestamp().offset().local_minus_utc(), 3600);
    }
}
