//! Forget: remove chosen snapshots on purpose (a typo'd push, a departed
//! client). Only snapshot files (and, when forced, their protection markers)
//! go; the data they alone needed stays in packs until the next prune,
//! which marks what the remaining snapshots reach and deletes the rest.
//!
//! Plan, then execute, like prune: every argument is resolved before
//! anything is deleted, so one unknown id removes nothing. Runs under the
//! exclusive lock; the deletions go through [`prune::remove_snapshots`],
//! which records them in the state.

use crate::error::{Error, Result};
use crate::format::snapshot::Snapshot;
use crate::id::SnapshotId;
use crate::ops::prune;
use crate::ops::select::{self, Filter};
use crate::repo::Repository;
use serde::Serialize;
use std::collections::BTreeSet;

/// Which snapshots to forget.
#[derive(Clone, Debug)]
pub enum Selection {
    /// These arguments (id prefixes or `latest`), `latest` under the filter.
    Ids(Vec<String>, Filter),
    /// Every snapshot of this site.
    Site(String),
}

/// One snapshot to forget.
#[derive(Clone, Debug, Serialize)]
pub struct Forgotten {
    /// Its id.
    pub id: SnapshotId,
    /// Whether a protection marker kept it (it goes too, with `force`).
    pub protected: bool,
    /// The snapshot.
    pub snapshot: Snapshot,
}

/// Resolves what to forget, oldest first, without changing anything.
/// Protected snapshots are refused unless `force`.
pub fn plan(repo: &Repository, what: &Selection, force: bool) -> Result<Vec<Forgotten>> {
    let chosen: Vec<(SnapshotId, Snapshot)> = match what {
        Selection::Ids(specs, filter) => {
            let mut seen = BTreeSet::new();
            let mut out = Vec::new();
            for spec in specs {
                let (id, s) = select::resolve(repo, spec, filter)?;
                if seen.insert(id) {
                    out.push((id, s));
                }
            }
            out.sort_by(crate::format::snapshot::order);
            out
        }
        Selection::Site(site) => {
            let set = repo.load_snapshots()?;
            if let Some((id, why)) = set.damaged.first() {
                return Err(Error::Usage(format!(
                    "snapshot {} cannot be read ({why}), so whether it belongs to site {site:?} is unknown: run `snap check`, or forget it by id",
                    id.short()
                )));
            }
            let (of_site, others): (Vec<_>, Vec<_>) = set
                .ok
                .into_iter()
                .partition(|(_, s)| s.site.as_deref() == Some(site.as_str()));
            if of_site.is_empty() {
                let sites: BTreeSet<&str> = others
                    .iter()
                    .filter_map(|(_, s)| s.site.as_deref())
                    .collect();
                let known = if sites.is_empty() {
                    "no snapshot has a site".to_string()
                } else {
                    format!(
                        "sites with snapshots: {}",
                        sites.into_iter().collect::<Vec<_>>().join(", ")
                    )
                };
                return Err(Error::Snapshot(format!(
                    "no snapshot of site {site:?}; {known}"
                )));
            }
            of_site
        }
    };
    let protected = repo.protected()?;
    let out: Vec<Forgotten> = chosen
        .into_iter()
        .map(|(id, snapshot)| Forgotten {
            id,
            protected: protected.contains(&id),
            snapshot,
        })
        .collect();
    let refused: Vec<String> = out
        .iter()
        .filter(|f| f.protected)
        .map(|f| f.id.short())
        .collect();
    if !force && !refused.is_empty() {
        return Err(Error::Usage(format!(
            "snapshot(s) {} are protected: nothing was removed; give --force to remove them and their protection, or leave them out",
            refused.join(", ")
        )));
    }
    Ok(out)
}

/// Removes the planned snapshots: the protection markers of protected ones
/// first (a crash then leaves an unprotected snapshot that a rerun
/// removes), then the snapshot files. `repo` must be open exclusively.
pub fn execute(repo: &Repository, plan: &[Forgotten]) -> Result<u64> {
    for f in plan.iter().filter(|f| f.protected) {
        repo.unprotect(&f.id)?;
    }
    let ids: Vec<SnapshotId> = plan.iter().map(|f| f.id).collect();
    prune::remove_snapshots(repo, &ids)
}
