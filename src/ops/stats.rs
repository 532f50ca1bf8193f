//! Repository statistics from what is recorded, never from the trees: each
//! snapshot's `summary` (format-spec.md §11), the index's blob rows and the
//! backend's pack listing. A repository of thousands of snapshots is
//! summed without reading one tree.
//!
//! `bytes_added` and `bytes_stored` of a snapshot are counted when it was
//! pushed: data it added may be shared by later snapshots, and stays when
//! the snapshot is pruned. So the added bytes of a group are what its pushes
//! brought, not what removing it would free.

use crate::backend::FileType;
use crate::error::Result;
use crate::format::snapshot::{Kind, Snapshot};
use crate::id::SnapshotId;
use crate::index::BlobSum;
use crate::ops::prune::GroupKey;
use crate::repo::Repository;
use serde::Serialize;
use std::collections::BTreeMap;

/// The whole repository.
#[derive(Clone, Debug, Serialize)]
pub struct Totals {
    /// Snapshots (readable ones).
    pub snapshots: u64,
    /// Pack files on the storage.
    pub packs: u64,
    /// Their bytes (the storage listing).
    pub pack_bytes: u64,
    /// Packs on the storage this machine's index does not know: the blob
    /// figures leave them out.
    pub packs_not_indexed: u64,
    /// File data blobs, each counted once (the index).
    pub data: BlobSum,
    /// Trees and chunk lists, each counted once (the index).
    pub metadata: BlobSum,
    /// Sum of every snapshot's size (`summary.bytes_total`): what restoring
    /// each of them would write.
    pub logical_bytes: u64,
    /// `logical_bytes` over the plaintext of the data blobs.
    pub dedup_ratio: Option<f64>,
    /// Plaintext of the data blobs over their sealed bytes.
    pub compression_ratio: Option<f64>,
}

/// One site, kind and level.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    /// Client site (None: global).
    pub site: Option<String>,
    /// Files or db.
    pub kind: Kind,
    /// Plan level.
    pub level: u8,
    /// Snapshots.
    pub snapshots: u64,
    /// Size of the newest snapshot of each source (host and paths) of the
    /// row, summed: what a restore of the row's newest points writes.
    pub newest_bytes: u64,
    /// Time of the newest snapshot.
    pub newest_time: Option<String>,
    /// New data the row's snapshots added when pushed (`bytes_added`).
    pub added_bytes: u64,
    /// What that took in packs when pushed (`bytes_stored`).
    pub stored_bytes: u64,
}

/// One snapshot.
#[derive(Clone, Debug, Serialize)]
pub struct SnapshotRow {
    /// Its id.
    pub id: SnapshotId,
    /// Its time as recorded.
    pub time: String,
    /// Client site.
    pub site: Option<String>,
    /// Files or db.
    pub kind: Kind,
    /// Plan level.
    pub level: u8,
    /// Its size (`bytes_total`).
    pub bytes: u64,
    /// New data it added when pushed.
    pub added_bytes: u64,
    /// What that took in packs.
    pub stored_bytes: u64,
}

/// Everything `snap stats` shows.
#[derive(Clone, Debug, Serialize)]
pub struct Stats {
    /// The repository.
    pub repository: Totals,
    /// By site, kind and level, sorted.
    pub groups: Vec<Row>,
    /// One per snapshot, oldest first, when asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snapshots: Option<Vec<SnapshotRow>>,
}

fn ratio(a: u64, b: u64) -> Option<f64> {
    (b > 0).then(|| a as f64 / b as f64)
}

/// Sums the repository; `site` limits the groups and snapshot rows (the
/// repository totals stay whole), `per_snapshot` adds the snapshot rows.
pub fn stats(repo: &Repository, site: Option<&str>, per_snapshot: bool) -> Result<Stats> {
    let snapshots = repo.snapshots()?;
    let listed = repo.backend.list_sizes(FileType::Pack)?;
    let unknown = repo.unknown_packs(&listed)?;
    let blobs = repo.index().blob_totals()?;
    let logical_bytes = snapshots.iter().map(|(_, s)| s.summary.bytes_total).sum();
    let repository = Totals {
        snapshots: snapshots.len() as u64,
        packs: listed.len() as u64,
        pack_bytes: listed.iter().map(|(_, n)| n).sum(),
        packs_not_indexed: unknown.len() as u64,
        data: blobs.data,
        metadata: blobs.metadata,
        logical_bytes,
        dedup_ratio: ratio(logical_bytes, blobs.data.raw_bytes),
        compression_ratio: ratio(blobs.data.raw_bytes, blobs.data.sealed_bytes),
    };
    let mine: Vec<&(SnapshotId, Snapshot)> = snapshots
        .iter()
        .filter(|(_, s)| site.is_none_or(|x| s.site.as_deref() == Some(x)))
        .collect();
    Ok(Stats {
        repository,
        groups: rows(&mine),
        snapshots: per_snapshot.then(|| {
            mine.iter()
                .map(|(id, s)| SnapshotRow {
                    id: *id,
                    time: s.time.clone(),
                    site: s.site.clone(),
                    kind: s.kind,
                    level: s.level,
                    bytes: s.summary.bytes_total,
                    added_bytes: s.summary.bytes_added,
                    stored_bytes: s.summary.bytes_stored,
                })
                .collect()
        }),
    })
}

/// The rows by site, kind and level of `snapshots` (oldest first).
fn rows(snapshots: &[&(SnapshotId, Snapshot)]) -> Vec<Row> {
    let mut rows: BTreeMap<(Option<String>, Kind, u8), Row> = BTreeMap::new();
    let mut newest: BTreeMap<GroupKey, &Snapshot> = BTreeMap::new();
    for (_, s) in snapshots {
        let row = rows
            .entry((s.site.clone(), s.kind, s.level))
            .or_insert_with(|| Row {
                site: s.site.clone(),
                kind: s.kind,
                level: s.level,
                snapshots: 0,
                newest_bytes: 0,
                newest_time: None,
                added_bytes: 0,
                stored_bytes: 0,
            });
        row.snapshots += 1;
        row.added_bytes += s.summary.bytes_added;
        row.stored_bytes += s.summary.bytes_stored;
        row.newest_time = Some(s.time.clone());
        // Oldest first: the last one seen of each source stays.
        newest.insert(GroupKey::of(s), s);
    }
    for (g, s) in newest {
        if let Some(row) = rows.get_mut(&(g.site, g.kind, g.level)) {
            row.newest_bytes += s.summary.bytes_total;
        }
    }
    rows.into_values().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::snapshot::Summary;
    use crate::id::TreeId;

    fn snap(site: Option<&str>, kind: Kind, path: &str, total: u64, added: u64) -> Snapshot {
        let mut s = Snapshot::new(
            TreeId([0; 32]),
            "2026-11-25T03:00:00+01:00".into(),
            "web1".into(),
            vec![path.into()],
        );
        s.site = site.map(String::from);
        s.kind = kind;
        s.summary = Summary {
            bytes_total: total,
            bytes_added: added,
            bytes_stored: added / 2,
            ..Default::default()
        };
        s
    }

    #[test]
    fn rows_sum_added_and_take_the_newest_of_each_source() {
        let all = [
            (
                SnapshotId([1; 32]),
                snap(Some("a"), Kind::Db, "a.sql", 100, 100),
            ),
            (
                SnapshotId([2; 32]),
                snap(Some("a"), Kind::Db, "a.sql", 120, 30),
            ),
            (
                SnapshotId([3; 32]),
                snap(Some("a"), Kind::Db, "b.sql", 7, 7),
            ),
            (
                SnapshotId([4; 32]),
                snap(None, Kind::Files, "/var/www", 1000, 900),
            ),
        ];
        let refs: Vec<&(SnapshotId, Snapshot)> = all.iter().collect();
        let r = rows(&refs);
        assert_eq!(r.len(), 2);
        let global = &r[0];
        assert_eq!((global.site.as_deref(), global.snapshots), (None, 1));
        let a = &r[1];
        assert_eq!(
            (a.site.as_deref(), a.kind, a.snapshots),
            (Some("a"), Kind::Db, 3)
        );
        assert_eq!(
            a.newest_bytes,
            120 + 7,
            "the newest a.sql and the only b.sql"
        );
        assert_eq!((a.added_bytes, a.stored_bytes), (137, 50 + 15 + 3));
    }
}
