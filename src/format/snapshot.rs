//! Snapshots: one sealed JSON file per saved point in time.
//!
//! The file is `sealed(JSON)` with associated data `"snap snapshot v1"`; its
//! name (the snapshot id) is the unkeyed BLAKE3 hash of the file's bytes.
//!
//! Snapshots are ordered by [`OrderKey`]: the instant of `time`, then the
//! instant the file was written (`written`, absent in older snapshots, which
//! sort first), then the id. "latest", the parent of a push and every
//! retention rule use that one order, so that equal times resolve to the last
//! snapshot pushed.

use crate::error::{Error, Result};
use crate::format::crypto::Keys;
use crate::id::{SnapshotId, TreeId};
use chrono::{DateTime, FixedOffset, Utc};
use serde::{Deserialize, Serialize};
use std::cmp::Ordering;

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
    /// Backup plan level: 1 or 2, or [`ADHOC`] for a snapshot outside the
    /// plan.
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
    /// When the snapshot file was written (the push's clock, UTC), unlike
    /// `time`, which the user may set: it orders snapshots of equal `time`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub written: Option<String>,
    /// The pushed directory's own metadata, when a single directory was
    /// pushed as the root; restore gives it to the target directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root: Option<RootMeta>,
    /// What changed against the parent (a files push that had one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changes: Option<Changes>,
    /// When an ad-hoc snapshot (level 0) may go: RFC 3339 in UTC. Prune
    /// removes it after that; no policy counts or removes it otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<String>,
    /// Set on a dump that was saved but looks wrong: empty, or much
    /// smaller than the group's previous dump (format-spec.md §11).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dump_check: Option<DumpCheck>,
}

/// Why a saved dump is suspect.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DumpReason {
    /// The dump holds no byte at all.
    Empty,
    /// The dump is smaller than the minimum ratio of the previous one.
    Shrunk,
}

impl std::fmt::Display for DumpReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            DumpReason::Empty => "empty",
            DumpReason::Shrunk => "shrunk",
        })
    }
}

/// A suspect dump, against the previous dump of its group.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DumpCheck {
    /// Size of the saved dump.
    pub bytes: u64,
    /// Size of the previous dump of the group, if there is one.
    #[serde(default)]
    pub previous_bytes: Option<u64>,
    /// The previous dump.
    #[serde(default)]
    pub previous: Option<SnapshotId>,
    /// Why it is suspect.
    pub reason: DumpReason,
}

impl DumpCheck {
    /// Judges a dump of `bytes` against the group's previous dump (id and
    /// size): empty always flags, smaller than `min_ratio` × the previous
    /// size flags unless `min_ratio` is 0.
    pub fn judge(bytes: u64, previous: Option<(SnapshotId, u64)>, min_ratio: f64) -> Option<Self> {
        let reason = if bytes == 0 {
            DumpReason::Empty
        } else if previous.is_some_and(|(_, p)| (bytes as f64) < min_ratio * p as f64) {
            DumpReason::Shrunk
        } else {
            return None;
        };
        Some(DumpCheck {
            bytes,
            previous_bytes: previous.map(|(_, b)| b),
            previous: previous.map(|(id, _)| id),
            reason,
        })
    }
}

/// The level of an ad-hoc snapshot: outside the plan, kept until its
/// `expires` whatever the policies say (format-spec.md §22.5).
pub const ADHOC: u8 = 0;

/// A level as people read it: `level1`, `level2`, or `adhoc`.
pub fn level_name(level: u8) -> String {
    if level == ADHOC {
        "adhoc".into()
    } else {
        format!("level{level}")
    }
}

/// What a push changed against its parent (format-spec.md §11): entries
/// that are not directories, counted as the push walked.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Changes {
    /// Such entries in the parent (the ratio's denominator).
    pub parent_entries: u64,
    /// Not in the parent.
    pub added: u64,
    /// Content, kind, mode, owner or link target changed.
    pub modified: u64,
    /// In the parent, gone now.
    pub deleted: u64,
    /// The directories with the most changes (entries directly in them),
    /// most first, at most ten.
    #[serde(default)]
    pub top_dirs: Vec<DirChanges>,
    /// New scripts or executables under upload directories (at most 100
    /// named; `suspicious_total` counts them all).
    #[serde(default)]
    pub suspicious: Vec<String>,
    /// How many there were.
    #[serde(default)]
    pub suspicious_total: u64,
    /// True when the push ran with an alert ratio and the changes exceeded
    /// it.
    #[serde(default)]
    pub alert: bool,
}

impl Changes {
    /// Added, modified and deleted entries over the parent's entries (over
    /// one when the parent had none).
    pub fn ratio(&self) -> f64 {
        (self.added + self.modified + self.deleted) as f64 / self.parent_entries.max(1) as f64
    }
}

/// Changes directly inside one directory.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirChanges {
    /// The directory, as the push read it.
    pub path: String,
    /// Entries added, modified or deleted directly in it.
    pub changes: u64,
}

/// Metadata of the directory a snapshot's root tree was read from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RootMeta {
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
}

impl RootMeta {
    /// The metadata of a directory as read from the file system.
    pub fn of(md: &std::fs::Metadata) -> Self {
        use std::os::unix::fs::MetadataExt;
        RootMeta {
            mode: md.mode() & 0o7777,
            uid: md.uid(),
            gid: md.gid(),
            mtime: md.mtime(),
            mtime_ns: md.mtime_nsec() as u32,
        }
    }
}

impl RootMeta {
    /// The directory as a tree node (nameless), for code that applies node
    /// metadata.
    pub fn as_node(&self) -> crate::format::tree::Node {
        use crate::format::tree::{Node, NodeKind};
        Node {
            mode: self.mode,
            uid: self.uid,
            gid: self.gid,
            mtime: self.mtime,
            mtime_ns: self.mtime_ns,
            nlink: 0,
            ..Node::new(b"", NodeKind::Dir)
        }
    }
}

/// A snapshot's place in the repository's order (see the module comment).
/// Field order is comparison order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct OrderKey {
    /// The instant of `time`.
    pub time: DateTime<Utc>,
    /// The instant of `written`; `None` (older snapshots) sorts first.
    pub written: Option<DateTime<Utc>>,
    /// The id, last resort.
    pub id: SnapshotId,
}

/// Compares two snapshots in the repository's order, oldest first.
pub fn order(a: &(SnapshotId, Snapshot), b: &(SnapshotId, Snapshot)) -> Ordering {
    a.1.order_key(&a.0).cmp(&b.1.order_key(&b.0))
}

impl Snapshot {
    /// A complete files snapshot of `paths` at `time` by `host`, at level 1,
    /// with no site, tags, parent, errors or figures: what a caller fills in.
    pub fn new(tree: TreeId, time: String, host: String, paths: Vec<String>) -> Snapshot {
        Snapshot {
            version: SNAPSHOT_VERSION,
            time,
            host,
            site: None,
            kind: Kind::Files,
            level: 1,
            tags: vec![],
            paths,
            tree,
            parent: None,
            command: None,
            complete: true,
            errors: vec![],
            skipped: vec![],
            summary: Summary::default(),
            written: None,
            root: None,
            changes: None,
            expires: None,
            dump_check: None,
        }
    }

    /// Seals the snapshot; returns its id and file bytes.
    pub fn encode(&self, keys: &Keys) -> (SnapshotId, Vec<u8>) {
        self.encode_padded(keys, false)
    }

    /// [`Snapshot::encode`], with the JSON followed by spaces up to its
    /// Padmé size of at least 4 KiB when `pad` (format version 4, §11): the
    /// file's size then says little about its paths and error lists.
    pub fn encode_padded(&self, keys: &Keys, pad: bool) -> (SnapshotId, Vec<u8>) {
        let mut json = serde_json::to_vec(self).expect("snapshot serialises");
        if pad {
            let n = crate::format::pad::padded(json.len() as u64, crate::format::pad::SMALL_FLOOR);
            json.resize(n as usize, b' ');
        }
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
    pub fn timestamp(&self) -> DateTime<FixedOffset> {
        DateTime::parse_from_rfc3339(&self.time).unwrap_or_default()
    }

    /// When the file was written, if recorded (and readable).
    pub fn written_at(&self) -> Option<DateTime<Utc>> {
        let w = self.written.as_deref()?;
        DateTime::parse_from_rfc3339(w).ok().map(|t| t.to_utc())
    }

    /// When the push began by its own clock (`written` less the push's
    /// duration), whatever `time` says; `None` without `written`.
    pub fn push_started(&self) -> Option<DateTime<Utc>> {
        let ms = i64::try_from(self.summary.duration_ms).ok()?;
        self.written_at()?
            .checked_sub_signed(chrono::Duration::try_milliseconds(ms)?)
    }

    /// Whether the snapshot is dated after `now` (a wrong clock, a typo in
    /// `--time`): such a snapshot takes no restore point from real ones.
    pub fn is_future(&self, now: DateTime<Utc>) -> bool {
        self.timestamp() > now
    }

    /// Whether this is an ad-hoc snapshot, outside the plan.
    pub fn is_adhoc(&self) -> bool {
        self.level == ADHOC
    }

    /// When an ad-hoc snapshot expires. `None`: no `expires`, or one that
    /// does not parse; such a snapshot never expires (in doubt, keep).
    pub fn expires_at(&self) -> Option<DateTime<Utc>> {
        let e = self.expires.as_deref()?;
        DateTime::parse_from_rfc3339(e).ok().map(|t| t.to_utc())
    }

    /// The snapshot's place in the repository's order.
    pub fn order_key(&self, id: &SnapshotId) -> OrderKey {
        OrderKey {
            time: self.timestamp().to_utc(),
            written: self.written_at(),
            id: *id,
        }
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
            written: Some("2026-11-25T02:00:01.5Z".into()),
            root: None,
            changes: None,
            expires: None,
            dump_check: None,
        };
        let (id, bytes) = s.encode(&k);
        assert_eq!(Snapshot::decode(&id, &bytes, &k).unwrap(), s);
        assert!(Snapshot::decode(&SnapshotId([0; 32]), &bytes, &k).is_err());
        assert_eq!(s.timestamp().offset().local_minus_utc(), 3600);
        let mut timed = s.clone();
        timed.summary.duration_ms = 1500;
        assert_eq!(
            timed.push_started().unwrap().to_rfc3339(),
            "2026-11-25T02:00:00+00:00",
            "written less the duration"
        );
    }

    fn at(time: &str, written: Option<&str>, id: u8) -> (SnapshotId, Snapshot) {
        let s = Snapshot {
            written: written.map(String::from),
            ..Snapshot::new(TreeId([0; 32]), time.into(), "h".into(), vec!["/x".into()])
        };
        (SnapshotId([id; 32]), s)
    }

    #[test]
    fn order_is_instant_then_written_then_id() {
        let mut v = [
            at("2026-11-25T03:00:00+01:00", Some("2026-11-29T10:00:02Z"), 1),
            at("2026-11-25T02:00:00Z", None, 9),
            at("2026-11-25T03:00:00+01:00", Some("2026-11-29T10:00:01Z"), 7),
            at("2026-11-25T02:00:00Z", None, 3),
            at("2026-11-25T01:00:00Z", Some("2026-11-29T09:00:00Z"), 8),
        ];
        v.sort_by(order);
        let ids: Vec<u8> = v.iter().map(|(id, _)| id.0[0]).collect();
        // 03:00+01:00 is 02:00Z: the same instant; unwritten ones first (by
        // id), then by written, whatever the ids say.
        assert_eq!(ids, [8, 3, 9, 7, 1]);
    }

    #[test]
    fn older_snapshots_without_new_fields_still_decode() {
        let k = Keys::generate();
        let (_, s) = at("2026-11-25T02:00:00Z", None, 1);
        let mut v = serde_json::to_value(&s).unwrap();
        assert!(v.get("written").is_none() && v.get("root").is_none());
        v.as_object_mut().unwrap().remove("written");
        let bytes = k.seal(AAD, &serde_json::to_vec(&v).unwrap());
        let id = SnapshotId(*blake3::hash(&bytes).as_bytes());
        assert_eq!(Snapshot::decode(&id, &bytes, &k).unwrap(), s);
    }

    #[test]
    fn dump_judged_against_the_previous_one() {
        let prev = Some((SnapshotId([7; 32]), 100_000));
        let empty = DumpCheck::judge(0, None, 0.5).unwrap();
        assert_eq!((empty.reason, empty.previous), (DumpReason::Empty, None));
        assert_eq!(
            DumpCheck::judge(0, prev, 0.0).unwrap().reason,
            DumpReason::Empty
        );
        let shrunk = DumpCheck::judge(20_000, prev, 0.5).unwrap();
        assert_eq!(shrunk.reason, DumpReason::Shrunk);
        assert_eq!(shrunk.previous_bytes, Some(100_000));
        assert_eq!(shrunk.previous, Some(SnapshotId([7; 32])));
        assert_eq!(DumpCheck::judge(20_000, prev, 0.1), None);
        assert_eq!(DumpCheck::judge(20_000, prev, 0.0), None);
        assert_eq!(
            DumpCheck::judge(50_000, prev, 0.5),
            None,
            "exactly the ratio is fine"
        );
        assert_eq!(
            DumpCheck::judge(20_000, None, 0.5),
            None,
            "a first dump has nothing to shrink from"
        );
    }
}
