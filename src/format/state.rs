//! The repository state record (format version 4): a sealed,
//! sequence-numbered list of what the repository must hold (snapshots,
//! protection markers, key files and the config), written by every command
//! that changes one of them.
//!
//! `state/<seq as 16 hex digits>` holds `seal(JSON)` with associated data
//! `"snap state v1" ‖ seq (u64 LE)`, so a state cannot be served under
//! another number. This module is pure: encoding, decoding, the next state a
//! writer builds, and the comparison of a state with what is listed. Reading
//! and writing files, and the local high-water mark, live in `repo::state`.

use crate::error::{Error, Result};
use crate::format::crypto::Keys;
use crate::id::SnapshotId;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// State encoding version.
pub const STATE_VERSION: u32 = 1;
const AAD: &[u8] = b"snap state v1";
/// States kept: a writer deletes those at least this much older than the
/// one it wrote.
pub const KEEP_STATES: u64 = 16;
/// Allowed clock difference between the host that pushed a snapshot and the
/// host that wrote the state: a snapshot not in the state but written less
/// than this before it is an unrecorded push, not a replay.
pub const SKEW_MARGIN: chrono::Duration = chrono::Duration::minutes(10);
/// How long a removed snapshot's id is kept in `removed`. Past that, the
/// time rule alone tells a replay (its `written` is older than the state).
pub const REMOVED_KEPT: chrono::Duration = chrono::Duration::days(1);

/// One state record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// Encoding version.
    pub version: u32,
    /// Sequence number, equal to the file's name.
    pub seq: u64,
    /// When it was written, by the writer's clock (RFC 3339, UTC).
    pub time: String,
    /// The writer's host name.
    pub host: String,
    /// Snapshots that must be in `snapshots/`.
    pub snapshots: BTreeSet<SnapshotId>,
    /// Snapshots a prune is removing: present or absent, neither is a finding.
    #[serde(default)]
    pub removing: BTreeSet<SnapshotId>,
    /// Snapshots removed recently, with the time of removal: one that shows
    /// up again is a replay.
    #[serde(default)]
    pub removed: BTreeMap<SnapshotId, String>,
    /// Protection markers that must be in `protected/`.
    pub protected: BTreeSet<SnapshotId>,
    /// Key file names, each with the BLAKE3 hash (hex) of its bytes.
    pub keys: BTreeMap<String, String>,
    /// BLAKE3 hash (hex) of the config file.
    pub config: String,
}

/// The file name of state `seq`.
pub fn name_of(seq: u64) -> String {
    format!("{seq:016x}")
}

/// The sequence number a state file's name gives, if it is one.
pub fn seq_of(name: &str) -> Option<u64> {
    let ok = name.len() == 16
        && name
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    ok.then(|| u64::from_str_radix(name, 16).ok()).flatten()
}

fn aad(seq: u64) -> Vec<u8> {
    [AAD, &seq.to_le_bytes()].concat()
}

/// BLAKE3 of a file's bytes, in hex: how states name key files and the
/// config, and how the high-water mark names a state.
pub fn file_hash(bytes: &[u8]) -> String {
    blake3::hash(bytes).to_hex().to_string()
}

/// A time as states write it.
pub fn stamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

/// What a writer changes, applied to the newest state.
#[derive(Clone, Debug, Default)]
pub struct Change {
    /// Snapshots written.
    pub add_snapshots: Vec<SnapshotId>,
    /// Snapshots about to be removed (a prune, before deleting).
    pub removing: Vec<SnapshotId>,
    /// Snapshots removed (a prune, after deleting).
    pub removed: Vec<SnapshotId>,
    /// Markers written.
    pub add_protected: Vec<SnapshotId>,
    /// Markers removed.
    pub remove_protected: Vec<SnapshotId>,
    /// Key files written, with their hashes.
    pub add_keys: Vec<(String, String)>,
    /// Key files removed.
    pub remove_keys: Vec<String>,
}

/// What is in the repository now.
#[derive(Clone, Debug, Default)]
pub struct Listing {
    /// Names in `snapshots/` that are ids.
    pub snapshots: BTreeSet<SnapshotId>,
    /// Names in `protected/` that are ids.
    pub protected: BTreeSet<SnapshotId>,
    /// Key files and their hashes.
    pub keys: BTreeMap<String, String>,
    /// The config's hash.
    pub config: String,
}

/// How serious a finding is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// `check` and `report` fail, prune refuses.
    Error,
    /// Shown, but fails nothing.
    Warning,
    /// Expected after an interruption; the next writer records it.
    Note,
}

/// What comparing the state with the repository found.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    /// The newest state is older than this machine saw, or another one
    /// with the same number, or gone.
    Rollback,
    /// The newest state does not open or decode.
    Unverifiable,
    /// A version-4 repository without any state (made before states were
    /// written), and this machine saw none.
    NoState,
    /// A snapshot the state lists is missing.
    Deleted,
    /// A protection marker the state lists is missing.
    MarkerDeleted,
    /// A snapshot not in the state that was removed, or written before it.
    Replayed,
    /// A snapshot not in the state, written after it: a push that stopped
    /// before recording it, or one still running.
    Unrecorded,
    /// A marker not in the state (it only keeps more).
    MarkerUnrecorded,
    /// A key file not in the state (planted?).
    KeyUnrecorded,
    /// A key file whose bytes differ from the state's (altered?).
    KeyAltered,
    /// A key file the state lists is missing.
    KeyMissing,
    /// The config differs from the state's.
    ConfigChanged,
}

impl FindingKind {
    /// How serious it is.
    pub fn severity(self) -> Severity {
        use FindingKind::*;
        match self {
            Rollback | Unverifiable | Deleted | MarkerDeleted | Replayed | ConfigChanged => {
                Severity::Error
            }
            NoState | KeyUnrecorded | KeyAltered | KeyMissing => Severity::Warning,
            Unrecorded | MarkerUnrecorded => Severity::Note,
        }
    }
}

/// One finding, naming the object and saying what to do.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// What was found.
    pub kind: FindingKind,
    /// How serious.
    pub severity: Severity,
    /// The object, as a path in the repository.
    pub object: String,
    /// What was expected, what was found, what to do.
    pub message: String,
}

impl Finding {
    /// A finding of `kind` on `object`.
    pub fn new(kind: FindingKind, object: impl Into<String>, message: impl Into<String>) -> Self {
        Finding {
            kind,
            severity: kind.severity(),
            object: object.into(),
            message: message.into(),
        }
    }

    /// Whether it fails `check` and `report` and stops a prune.
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

/// What to do once a finding is understood, said in every error.
pub const ACCEPT_HINT: &str = "find out who changed the repository; once it is known good (or restored from the off-site copy on purpose), run `snap state accept` to record it as it is now";

/// When a snapshot file was written (its `written`), or why it could not
/// be read.
pub type Written = std::result::Result<Option<DateTime<Utc>>, String>;

/// What a snapshot missing from the state is, by its `written` time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Unlisted {
    /// Written after the state (less the skew margin): adopt it.
    Unrecorded,
    /// Removed, or older than the state: a file put back.
    Replayed(String),
}

impl State {
    /// State number 0: what a writer starts from in a repository without
    /// any state (it then records everything listed).
    pub fn empty(config: String) -> State {
        State {
            version: STATE_VERSION,
            seq: 0,
            time: stamp(DateTime::<Utc>::UNIX_EPOCH),
            host: String::new(),
            snapshots: BTreeSet::new(),
            removing: BTreeSet::new(),
            removed: BTreeMap::new(),
            protected: BTreeSet::new(),
            keys: BTreeMap::new(),
            config,
        }
    }

    /// When it was written.
    pub fn time_at(&self) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(&self.time)
            .map(|t| t.to_utc())
            .unwrap_or_default()
    }

    /// Seals the state; returns its file name and bytes.
    pub fn encode(&self, keys: &Keys) -> (String, Vec<u8>) {
        let json = serde_json::to_vec(self).expect("state serialises");
        (name_of(self.seq), keys.seal(&aad(self.seq), &json))
    }

    /// Opens `state/<name>`.
    pub fn decode(name: &str, bytes: &[u8], keys: &Keys) -> Result<State> {
        let what = || format!("state/{name}");
        let seq = seq_of(name)
            .ok_or_else(|| Error::corrupt(what(), "the name is not 16 hexadecimal digits"))?;
        let json = keys.open(&aad(seq), bytes, &what)?;
        #[derive(Deserialize)]
        struct Head {
            version: u32,
        }
        let head: Head =
            serde_json::from_slice(&json).map_err(|e| Error::corrupt(what(), e.to_string()))?;
        if head.version != STATE_VERSION {
            return Err(Error::UnsupportedVersion {
                what: what(),
                found: head.version,
                supported: STATE_VERSION,
            });
        }
        let s: State =
            serde_json::from_slice(&json).map_err(|e| Error::corrupt(what(), e.to_string()))?;
        if s.seq != seq {
            return Err(Error::corrupt(
                what(),
                format!("it says it is state {}", s.seq),
            ));
        }
        if DateTime::parse_from_rfc3339(&s.time).is_err() {
            return Err(Error::corrupt(
                what(),
                format!("time {:?} is not RFC 3339", s.time),
            ));
        }
        Ok(s)
    }

    /// Classifies a listed snapshot this state does not list, from the time
    /// its file was written (`Err` when it could not be read).
    pub fn classify(&self, id: &SnapshotId, written: Written) -> Unlisted {
        if let Some(when) = self.removed.get(id) {
            return Unlisted::Replayed(format!("it was removed at {when}"));
        }
        match written {
            Ok(Some(w)) if w > self.time_at() - SKEW_MARGIN => Unlisted::Unrecorded,
            Ok(Some(w)) => Unlisted::Replayed(format!(
                "it was written at {}, before state {} ({}) that does not list it",
                stamp(w),
                self.seq,
                self.time
            )),
            Ok(None) => Unlisted::Replayed("it carries no write time".into()),
            Err(e) => Unlisted::Replayed(format!("it cannot be read ({e})")),
        }
    }

    /// The next state: this one with `change`, plus the snapshots and
    /// markers a writer adopts (pushes and protects that stopped before
    /// recording their state). Snapshots this state lists stay listed even
    /// when their file is gone, so a deletion stays visible.
    pub fn next(
        &self,
        change: &Change,
        adopted: &Adopted,
        host: &str,
        now: DateTime<Utc>,
    ) -> State {
        let mut s = self.clone();
        s.seq = self.seq + 1;
        s.time = stamp(now);
        s.host = host.to_string();
        // An interrupted prune's snapshots: back in the list when their file
        // is still there, else removed.
        for id in std::mem::take(&mut s.removing) {
            if adopted.still_there.contains(&id) {
                s.snapshots.insert(id);
            } else {
                s.removed.insert(id, stamp(now));
            }
        }
        s.removed.retain(|_, t| {
            DateTime::parse_from_rfc3339(t).is_ok_and(|t| t.to_utc() > now - REMOVED_KEPT)
        });
        for id in change.add_snapshots.iter().chain(&adopted.snapshots) {
            s.snapshots.insert(*id);
            s.removed.remove(id);
        }
        for id in &change.removing {
            s.snapshots.remove(id);
            s.removing.insert(*id);
        }
        for id in &change.removed {
            s.snapshots.remove(id);
            s.removing.remove(id);
            s.removed.insert(*id, stamp(now));
        }
        for id in change.add_protected.iter().chain(&adopted.protected) {
            s.protected.insert(*id);
        }
        for id in &change.remove_protected {
            s.protected.remove(id);
        }
        for (name, hash) in change.add_keys.iter().chain(&adopted.keys) {
            s.keys.insert(name.clone(), hash.clone());
        }
        for name in &change.remove_keys {
            s.keys.remove(name);
        }
        if let Some(c) = &adopted.config {
            s.config = c.clone();
        }
        s
    }
}

/// What a writer takes from the listing into its state besides its own
/// change.
#[derive(Clone, Debug, Default)]
pub struct Adopted {
    /// Unrecorded snapshots (see [`State::classify`]).
    pub snapshots: Vec<SnapshotId>,
    /// Of the state's `removing`, those whose file is still there.
    pub still_there: BTreeSet<SnapshotId>,
    /// Markers not in the state.
    pub protected: Vec<SnapshotId>,
    /// Key files (only when starting a record, or when accepting).
    pub keys: Vec<(String, String)>,
    /// The config's hash (only when starting a record, or when accepting).
    pub config: Option<String>,
}

/// Compares the listing with the states: `before` was read before the
/// listing was made (what it lists must be there), `after` after it (what
/// is listed and not in it is classified against it). `written` gives a
/// listed snapshot's write time.
pub fn compare(
    before: &State,
    after: &State,
    listing: &Listing,
    written: &dyn Fn(&SnapshotId) -> Written,
) -> Vec<Finding> {
    let mut out = Vec::new();
    let seen = format!("state {} ({}, {})", before.seq, before.time, before.host);
    for id in before.snapshots.difference(&listing.snapshots) {
        out.push(Finding::new(
            FindingKind::Deleted,
            format!("snapshots/{id}"),
            format!("{seen} lists snapshot {id}, but its file is missing (deleted?); restore the file from a copy of the repository, or {ACCEPT_HINT}"),
        ));
    }
    for id in before.protected.difference(&listing.protected) {
        out.push(Finding::new(
            FindingKind::MarkerDeleted,
            format!("the protection marker of snapshot {id}"),
            format!("{seen} lists snapshot {id} as protected, but its marker is missing (deleted?): prune will not run; run `snap protect {id}` if it should stay protected, and {ACCEPT_HINT}"),
        ));
    }
    let recorded = |id: &SnapshotId| {
        after.snapshots.contains(id)
            || after.removing.contains(id)
            || before.snapshots.contains(id)
            || before.removing.contains(id)
    };
    for id in listing.snapshots.iter().filter(|id| !recorded(id)) {
        match after.classify(id, written(id)) {
            Unlisted::Unrecorded => out.push(Finding::new(
                FindingKind::Unrecorded,
                format!("snapshots/{id}"),
                format!("snapshot {id} is not in state {} yet: a push that stopped before recording it, or one still running; the next command that writes records it", after.seq),
            )),
            Unlisted::Replayed(why) => out.push(Finding::new(
                FindingKind::Replayed,
                format!("snapshots/{id}"),
                format!("snapshot {id} is not in state {} and {why}: a removed snapshot put back (replayed)? Move the file out of snapshots/ unless you put it back yourself; then {ACCEPT_HINT}", after.seq),
            )),
        }
    }
    for id in listing
        .protected
        .iter()
        .filter(|id| !after.protected.contains(id) && !before.protected.contains(id))
    {
        out.push(Finding::new(
            FindingKind::MarkerUnrecorded,
            format!("the protection marker of snapshot {id}"),
            format!("the marker of snapshot {id} is not in state {}: it only keeps more; the next command that writes records it", after.seq),
        ));
    }
    for (name, hash) in &listing.keys {
        match after.keys.get(name).or_else(|| before.keys.get(name)) {
            None => out.push(Finding::new(
                FindingKind::KeyUnrecorded,
                format!("keys/{name}"),
                format!("key file {name} is not in state {}: planted? If nobody here added it, remove it (`snap key remove {name}`); if it is yours, {ACCEPT_HINT}", after.seq),
            )),
            Some(h) if h != hash => out.push(Finding::new(
                FindingKind::KeyAltered,
                format!("keys/{name}"),
                format!("key file {name} differs from the one state {} records (altered?): remove it (`snap key remove {name}`) and add the password again, or {ACCEPT_HINT}", after.seq),
            )),
            Some(_) => {}
        }
    }
    for name in before
        .keys
        .keys()
        .filter(|n| !listing.keys.contains_key(*n))
    {
        out.push(Finding::new(
            FindingKind::KeyMissing,
            format!("keys/{name}"),
            format!("{seen} lists key file {name}, but it is missing (deleted?): its password no longer opens the repository; restore the file from a copy, or {ACCEPT_HINT}"),
        ));
    }
    if before.config != listing.config && after.config != listing.config {
        out.push(Finding::new(
            FindingKind::ConfigChanged,
            "config",
            format!("the config's hash is {}, {seen} records {}: the config is never rewritten, so it was replaced; restore it from a copy, or {ACCEPT_HINT}", listing.config, before.config),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(b: u8) -> SnapshotId {
        SnapshotId([b; 32])
    }

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().to_utc()
    }

    fn state(seq: u64, time: &str, snaps: &[u8]) -> State {
        let mut s = State::empty("c0".into());
        s.seq = seq;
        s.time = time.into();
        s.snapshots = snaps.iter().map(|b| id(*b)).collect();
        s.keys.insert("k1".into(), "h1".into());
        s
    }

    fn listing(s: &State) -> Listing {
        Listing {
            snapshots: s.snapshots.clone(),
            protected: s.protected.clone(),
            keys: s.keys.clone(),
            config: s.config.clone(),
        }
    }

    #[test]
    fn names_sort_and_parse() {
        assert_eq!(name_of(1), "0000000000000001");
        assert_eq!(seq_of(&name_of(0x1234_abcd)), Some(0x1234_abcd));
        assert!(name_of(9) < name_of(10));
        for bad in [
            "1",
            "000000000000000A",
            "00000000000000000",
            "zzzzzzzzzzzzzzzz",
        ] {
            assert_eq!(seq_of(bad), None, "{bad}");
        }
    }

    #[test]
    fn round_trip_and_the_number_is_bound() {
        let k = Keys::generate();
        let mut s = state(7, "2026-12-01T10:00:00.000000000Z", &[1, 2]);
        s.protected.insert(id(1));
        s.removed.insert(id(3), "2026-12-01T09:00:00Z".into());
        let (name, bytes) = s.encode(&k);
        assert_eq!(name, "0000000000000007");
        assert_eq!(State::decode(&name, &bytes, &k).unwrap(), s);
        // Served under another number, or opened with another key: refused.
        let err = State::decode(&name_of(8), &bytes, &k).unwrap_err();
        assert!(err.to_string().contains("state/0000000000000008"), "{err}");
        assert!(State::decode(&name, &bytes, &Keys::generate()).is_err());
        let mut flipped = bytes.clone();
        flipped[30] ^= 1;
        assert!(State::decode(&name, &flipped, &k).is_err());
        // A seal whose JSON claims another number is refused too.
        let mut liar = s.clone();
        liar.seq = 9;
        let json = serde_json::to_vec(&liar).unwrap();
        let sealed = k.seal(&aad(7), &json);
        assert!(State::decode(&name, &sealed, &k).is_err());
        // An unknown version is named as such.
        let mut v2 = serde_json::to_value(&s).unwrap();
        v2["version"] = 2.into();
        let sealed = k.seal(&aad(7), v2.to_string().as_bytes());
        assert!(matches!(
            State::decode(&name, &sealed, &k),
            Err(Error::UnsupportedVersion { found: 2, .. })
        ));
    }

    #[test]
    fn an_unchanged_repository_has_no_finding() {
        let s = state(3, "2026-12-01T10:00:00Z", &[1, 2]);
        assert!(compare(&s, &s, &listing(&s), &|_| Ok(None)).is_empty());
    }

    #[test]
    fn deletions_replays_and_unrecorded_pushes_are_told_apart() {
        let s = state(3, "2026-12-01T10:00:00Z", &[1, 2]);
        let mut l = listing(&s);
        l.snapshots.remove(&id(1));
        l.snapshots.insert(id(5)); // written just after the state
        l.snapshots.insert(id(6)); // written an hour before it
        l.snapshots.insert(id(7)); // no write time
        let written = |i: &SnapshotId| match i.0[0] {
            5 => Ok(Some(at("2026-12-01T10:00:05Z"))),
            6 => Ok(Some(at("2026-12-01T09:00:00Z"))),
            _ => Ok(None),
        };
        let f = compare(&s, &s, &l, &written);
        let kinds: Vec<(FindingKind, String)> =
            f.iter().map(|f| (f.kind, f.object.clone())).collect();
        assert_eq!(
            kinds,
            vec![
                (FindingKind::Deleted, format!("snapshots/{}", id(1))),
                (FindingKind::Unrecorded, format!("snapshots/{}", id(5))),
                (FindingKind::Replayed, format!("snapshots/{}", id(6))),
                (FindingKind::Replayed, format!("snapshots/{}", id(7))),
            ]
        );
        assert!(f[0].message.contains("snap state accept"));
        // A snapshot written a few minutes before the state (another
        // host's clock behind) is within the margin.
        let early = |_: &SnapshotId| Ok(Some(at("2026-12-01T09:55:00Z")));
        assert_eq!(s.classify(&id(9), early(&id(9))), Unlisted::Unrecorded);
        // One removed recently is a replay whatever its time.
        let mut r = s.clone();
        r.removed.insert(id(9), "2026-12-01T10:00:00Z".into());
        assert!(matches!(
            r.classify(&id(9), early(&id(9))),
            Unlisted::Replayed(_)
        ));
    }

    #[test]
    fn markers_keys_and_config() {
        let mut s = state(3, "2026-12-01T10:00:00Z", &[1]);
        s.protected.insert(id(1));
        let mut l = listing(&s);
        l.protected.remove(&id(1));
        l.protected.insert(id(2));
        l.keys.insert("k1".into(), "other".into());
        l.keys.insert("k2".into(), "h2".into());
        l.config = "c1".into();
        let kinds: Vec<FindingKind> = compare(&s, &s, &l, &|_| Ok(None))
            .iter()
            .map(|f| f.kind)
            .collect();
        assert_eq!(
            kinds,
            vec![
                FindingKind::MarkerDeleted,
                FindingKind::MarkerUnrecorded,
                FindingKind::KeyAltered,
                FindingKind::KeyUnrecorded,
                FindingKind::ConfigChanged
            ]
        );
        l.keys.clear();
        assert!(compare(&s, &s, &l, &|_| Ok(None))
            .iter()
            .any(|f| f.kind == FindingKind::KeyMissing));
    }

    #[test]
    fn a_state_written_after_the_listing_classifies_what_it_added() {
        // A push recorded its snapshot between the two reads: not a finding,
        // and not a deletion although the later state lists it.
        let before = state(3, "2026-12-01T10:00:00Z", &[1]);
        let after = state(4, "2026-12-01T11:00:00Z", &[1, 2, 3]);
        let mut l = listing(&before);
        l.snapshots.insert(id(2));
        assert!(compare(&before, &after, &l, &|_| Ok(None)).is_empty());
    }

    #[test]
    fn next_applies_the_change_and_keeps_deletions_visible() {
        let now = at("2026-12-02T10:00:00Z");
        let s = state(3, "2026-12-01T10:00:00Z", &[1, 2, 3]);
        let pre = s.next(
            &Change {
                removing: vec![id(2), id(3)],
                ..Change::default()
            },
            &Adopted::default(),
            "h",
            now,
        );
        assert_eq!(pre.seq, 4);
        assert_eq!(pre.snapshots, [id(1)].into());
        assert_eq!(pre.removing, [id(2), id(3)].into());
        // A writer after an interrupted prune: 3's file is still there.
        let after_crash = pre.next(
            &Change {
                add_snapshots: vec![id(4)],
                ..Change::default()
            },
            &Adopted {
                still_there: [id(3)].into(),
                snapshots: vec![id(5)],
                ..Adopted::default()
            },
            "h",
            now,
        );
        assert_eq!(after_crash.snapshots, [id(1), id(3), id(4), id(5)].into());
        assert!(after_crash.removing.is_empty());
        assert_eq!(after_crash.removed.keys().collect::<Vec<_>>(), [&id(2)]);
        // Removed ids are forgotten after a day.
        let later = after_crash.next(
            &Change::default(),
            &Adopted::default(),
            "h",
            now + chrono::Duration::days(2),
        );
        assert!(later.removed.is_empty());
    }
}
