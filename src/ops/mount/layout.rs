//! The directories above the snapshots in a mount: which snapshot is where,
//! by what name. Pure: built from the snapshot list, no I/O.
//!
//! ```text
//! sites/<site>/<kind>/<time>/…        every snapshot of a site (global ones under _global)
//! levels/<level>/<time>_<site>_<kind>/…
//! ids/<short id>/…                    (a full id or a longer prefix is found too)
//! latest/<site>/<kind>/…              the newest snapshot of that site and kind
//! ```
//!
//! `<time>` is the snapshot's local time in the configured zone, with its
//! UTC offset, as `2026-11-30T041500+0100`: no `:` (friendlier to shells,
//! scp and Windows shares), and sortable as text except within the hour
//! that repeats when clocks go back (the offset tells those apart). Two
//! snapshots that would get the same name in one directory both get their
//! short id appended (`2026-11-30T041500+0100_5a32ddcf`). A site name that is
//! not a valid file name (`/`, NUL, `.`, `..`) has those characters written
//! as `%XX`, as is `%` itself.

use crate::format::snapshot::{Kind, Snapshot};
use crate::id::SnapshotId;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// The directory name of snapshots without a site (the plan's level-1
/// global backups).
pub const GLOBAL_SITE: &str = "_global";

/// A directory above the snapshots.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Dir {
    /// The mount point.
    Root,
    /// `sites/`
    Sites,
    /// `sites/<site>/`
    Site(String),
    /// `sites/<site>/<kind>/`
    SiteKind(String, Kind),
    /// `levels/`
    Levels,
    /// `levels/<level>/`
    Level(u8),
    /// `ids/`
    Ids,
    /// `latest/`
    Latest,
    /// `latest/<site>/`
    LatestSite(String),
}

/// What a name in a [`Dir`] stands for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Child {
    /// Another directory above the snapshots.
    Dir(Dir),
    /// A snapshot's root directory.
    Snapshot(SnapshotId),
}

/// The snapshots, placed.
#[derive(Default)]
pub struct Catalog {
    snapshots: HashMap<SnapshotId, Arc<Snapshot>>,
    /// Each directory's entries, sorted by name.
    dirs: HashMap<Dir, Vec<(String, Child)>>,
}

/// `2026-11-30T041500+0100`: a snapshot's time in `tz`, to the second.
pub fn time_name(s: &Snapshot, tz: chrono_tz::Tz) -> String {
    s.timestamp()
        .with_timezone(&tz)
        .format("%Y-%m-%dT%H%M%S%z")
        .to_string()
}

/// A site (or any label) as one file name.
pub fn label_name(s: &str) -> String {
    if s == "." || s == ".." {
        return s.replace('.', "%2E");
    }
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '%' => out.push_str("%25"),
            '/' => out.push_str("%2F"),
            '\0' => out.push_str("%00"),
            c => out.push(c),
        }
    }
    out
}

fn site_name(s: &Snapshot) -> String {
    label_name(s.site.as_deref().unwrap_or(GLOBAL_SITE))
}

fn kind_name(k: Kind) -> &'static str {
    match k {
        Kind::Files => "files",
        Kind::Db => "db",
    }
}

/// Names `wanted` (snapshot, preferred name) so none collide: every
/// snapshot sharing a name gets `_<short id>` appended (the full id if even
/// that collides).
fn unique(wanted: Vec<(SnapshotId, String)>) -> Vec<(String, Child)> {
    let mut count: HashMap<&str, usize> = HashMap::new();
    for (_, n) in &wanted {
        *count.entry(n).or_default() += 1;
    }
    let mut named: Vec<(String, Child)> = wanted
        .iter()
        .map(|(id, n)| {
            let name = if count[n.as_str()] > 1 {
                format!("{n}_{}", id.short())
            } else {
                n.clone()
            };
            (name, Child::Snapshot(*id))
        })
        .collect();
    named.sort_by(|a, b| a.0.cmp(&b.0));
    // A short id shared by two snapshots of one time: their full ids.
    for i in 1..named.len() {
        if named[i].0 == named[i - 1].0 {
            for j in [i - 1, i] {
                if let (name, Child::Snapshot(id)) = &mut named[j] {
                    let base = name.rsplit_once('_').map_or(name.as_str(), |(b, _)| b);
                    *name = format!("{base}_{}", id.to_hex());
                }
            }
        }
    }
    named.sort_by(|a, b| a.0.cmp(&b.0));
    named.dedup_by(|a, b| a.0 == b.0);
    named
}

impl Catalog {
    /// Places `snaps` (oldest first, as [`crate::repo::Repository::snapshots`]
    /// gives them); `latest/` skips snapshots dated after `now`, as `latest`
    /// does everywhere. Times are named in `tz`.
    pub fn build(
        snaps: &[(SnapshotId, Arc<Snapshot>)],
        now: chrono::DateTime<chrono::Utc>,
        tz: chrono_tz::Tz,
    ) -> Self {
        let mut by_site_kind: BTreeMap<(String, Kind), Vec<(SnapshotId, String)>> = BTreeMap::new();
        let mut by_level: BTreeMap<u8, Vec<(SnapshotId, String)>> = BTreeMap::new();
        let mut ids = Vec::new();
        let mut latest: BTreeMap<(String, Kind), SnapshotId> = BTreeMap::new();
        let mut future: BTreeMap<(String, Kind), SnapshotId> = BTreeMap::new();
        for (id, s) in snaps {
            let site = site_name(s);
            let time = time_name(s, tz);
            by_site_kind
                .entry((site.clone(), s.kind))
                .or_default()
                .push((*id, time.clone()));
            by_level
                .entry(s.level)
                .or_default()
                .push((*id, format!("{time}_{site}_{}", kind_name(s.kind))));
            ids.push((*id, id.short()));
            // Oldest first: the last one seen is the newest.
            if s.is_future(now) {
                future.insert((site, s.kind), *id);
            } else {
                latest.insert((site, s.kind), *id);
            }
        }
        for (k, id) in future {
            latest.entry(k).or_insert(id);
        }

        let mut dirs: HashMap<Dir, Vec<(String, Child)>> = HashMap::new();
        dirs.insert(
            Dir::Root,
            vec![
                ("ids".into(), Child::Dir(Dir::Ids)),
                ("latest".into(), Child::Dir(Dir::Latest)),
                ("levels".into(), Child::Dir(Dir::Levels)),
                ("sites".into(), Child::Dir(Dir::Sites)),
            ],
        );
        let mut sites: BTreeMap<String, Vec<(String, Child)>> = BTreeMap::new();
        for ((site, kind), wanted) in by_site_kind {
            sites.entry(site.clone()).or_default().push((
                kind_name(kind).into(),
                Child::Dir(Dir::SiteKind(site.clone(), kind)),
            ));
            dirs.insert(Dir::SiteKind(site, kind), unique(wanted));
        }
        dirs.insert(
            Dir::Sites,
            sites
                .keys()
                .map(|s| (s.clone(), Child::Dir(Dir::Site(s.clone()))))
                .collect(),
        );
        for (site, kinds) in sites {
            dirs.insert(Dir::Site(site), kinds);
        }
        dirs.insert(
            Dir::Levels,
            by_level
                .keys()
                .map(|l| (l.to_string(), Child::Dir(Dir::Level(*l))))
                .collect(),
        );
        for (level, wanted) in by_level {
            dirs.insert(Dir::Level(level), unique(wanted));
        }
        dirs.insert(Dir::Ids, unique(ids));
        let mut latest_sites: BTreeMap<String, Vec<(String, Child)>> = BTreeMap::new();
        for ((site, kind), id) in latest {
            latest_sites
                .entry(site)
                .or_default()
                .push((kind_name(kind).into(), Child::Snapshot(id)));
        }
        dirs.insert(
            Dir::Latest,
            latest_sites
                .keys()
                .map(|s| (s.clone(), Child::Dir(Dir::LatestSite(s.clone()))))
                .collect(),
        );
        for (site, kinds) in latest_sites {
            dirs.insert(Dir::LatestSite(site), kinds);
        }
        Catalog {
            snapshots: snaps.iter().map(|(id, s)| (*id, s.clone())).collect(),
            dirs,
        }
    }

    /// The entries of `d`, sorted by name (none for a directory that is
    /// gone, such as a site whose last snapshot was pruned).
    pub fn list(&self, d: &Dir) -> &[(String, Child)] {
        self.dirs.get(d).map_or(&[], |v| v.as_slice())
    }

    /// What `name` in `d` stands for. In `ids/`, a full id or any prefix
    /// of one snapshot's id finds it too.
    pub fn lookup(&self, d: &Dir, name: &[u8]) -> Option<Child> {
        let name = std::str::from_utf8(name).ok()?;
        let entries = self.list(d);
        if let Ok(i) = entries.binary_search_by(|(n, _)| n.as_str().cmp(name)) {
            return Some(entries[i].1.clone());
        }
        if *d != Dir::Ids || name.len() < 4 || !name.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let name = name.to_ascii_lowercase();
        let mut found = self
            .snapshots
            .keys()
            .filter(|id| id.to_hex().starts_with(&name));
        match (found.next(), found.next()) {
            (Some(id), None) => Some(Child::Snapshot(*id)),
            _ => None,
        }
    }

    /// A snapshot by id.
    pub fn snapshot(&self, id: &SnapshotId) -> Option<&Arc<Snapshot>> {
        self.snapshots.get(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::TreeId;

    fn snap(time: &str, site: Option<&str>, kind: Kind, level: u8) -> Arc<Snapshot> {
        let mut s = Snapshot::new(TreeId([0; 32]), time.into(), "h".into(), vec!["/x".into()]);
        s.site = site.map(str::to_string);
        s.kind = kind;
        s.level = level;
        Arc::new(s)
    }

    fn names(c: &Catalog, d: &Dir) -> Vec<String> {
        c.list(d).iter().map(|(n, _)| n.clone()).collect()
    }

    #[test]
    fn snapshots_are_placed_by_site_level_id_and_latest() {
        let now = chrono::DateTime::parse_from_rfc3339("2026-12-01T00:00:00Z")
            .unwrap()
            .to_utc();
        let (a, b, c, d, e) = (
            SnapshotId([1; 32]),
            SnapshotId([2; 32]),
            SnapshotId([3; 32]),
            SnapshotId([4; 32]),
            SnapshotId([5; 32]),
        );
        let snaps = vec![
            (
                a,
                snap(
                    "2026-11-29T03:15:00+01:00",
                    Some("client-a"),
                    Kind::Files,
                    2,
                ),
            ),
            (
                b,
                snap("2026-11-30T03:15:00Z", Some("client-a"), Kind::Files, 2),
            ),
            (c, snap("2026-11-30T03:15:00Z", None, Kind::Db, 1)),
            (d, snap("2026-11-30T03:15:00Z", None, Kind::Db, 1)),
            (
                e,
                snap("2027-11-30T03:15:00Z", Some("client-a"), Kind::Files, 2),
            ),
        ];
        let cat = Catalog::build(&snaps, now, chrono_tz::UTC);
        assert_eq!(
            names(&cat, &Dir::Root),
            ["ids", "latest", "levels", "sites"]
        );
        assert_eq!(names(&cat, &Dir::Sites), ["_global", "client-a"]);
        assert_eq!(
            names(&cat, &Dir::SiteKind("client-a".into(), Kind::Files)),
            [
                "2026-11-29T021500+0000",
                "2026-11-30T031500+0000",
                "2027-11-30T031500+0000"
            ]
        );
        // Same time, same group: both get their short id.
        assert_eq!(
            names(&cat, &Dir::SiteKind("_global".into(), Kind::Db)),
            [
                "2026-11-30T031500+0000_03030303",
                "2026-11-30T031500+0000_04040404"
            ]
        );
        assert_eq!(names(&cat, &Dir::Levels), ["1", "2"]);
        assert_eq!(
            names(&cat, &Dir::Level(2)),
            [
                "2026-11-29T021500+0000_client-a_files",
                "2026-11-30T031500+0000_client-a_files",
                "2027-11-30T031500+0000_client-a_files"
            ]
        );
        assert_eq!(names(&cat, &Dir::Ids).len(), 5);
        // A snapshot dated after now is not latest.
        assert_eq!(
            cat.lookup(&Dir::LatestSite("client-a".into()), b"files"),
            Some(Child::Snapshot(b))
        );
        assert_eq!(
            cat.lookup(&Dir::Ids, a.to_hex().as_bytes()),
            Some(Child::Snapshot(a))
        );
        assert_eq!(cat.lookup(&Dir::Ids, b"0505"), Some(Child::Snapshot(e)));
        assert_eq!(cat.lookup(&Dir::Ids, b"zz"), None);
        assert_eq!(cat.lookup(&Dir::Sites, b"nope"), None);
        assert!(cat.list(&Dir::Site("gone".into())).is_empty());
    }

    #[test]
    fn times_are_named_in_the_configured_zone() {
        let paris: chrono_tz::Tz = "Europe/Paris".parse().unwrap();
        let at = |t: &str| time_name(&snap(t, None, Kind::Files, 1), paris);
        assert_eq!(at("2026-11-30T03:15:00.5Z"), "2026-11-30T041500+0100");
        assert_eq!(at("2026-07-01T03:15:00Z"), "2026-07-01T051500+0200");
        // The hour that repeats when clocks go back: distinct names.
        assert_ne!(at("2026-10-25T00:30:00Z"), at("2026-10-25T01:30:00Z"));
        assert_eq!(at("2026-10-25T00:30:00Z"), "2026-10-25T023000+0200");
    }

    #[test]
    fn labels_become_single_file_names() {
        assert_eq!(label_name("a/b"), "a%2Fb");
        assert_eq!(label_name("50%"), "50%25");
        assert_eq!(label_name(".."), "%2E%2E");
        assert_eq!(label_name("client-a"), "client-a");
    }
}
