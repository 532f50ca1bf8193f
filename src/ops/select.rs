//! Choosing snapshots: filters and `SNAPSHOT` arguments (an id prefix or `latest`).

use crate::error::{Error, Result};
use crate::format::snapshot::{Kind, Snapshot};
use crate::id::SnapshotId;
use crate::repo::Repository;

/// Which snapshots a command considers.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    /// Only this site.
    pub site: Option<String>,
    /// Only this kind.
    pub kind: Option<Kind>,
    /// Only this level.
    pub level: Option<u8>,
    /// Only snapshots carrying all these tags.
    pub tags: Vec<String>,
    /// Only this host.
    pub host: Option<String>,
}

impl Filter {
    /// Whether `s` passes.
    pub fn matches(&self, s: &Snapshot) -> bool {
        self.site
            .as_ref()
            .is_none_or(|x| s.site.as_ref() == Some(x))
            && self.kind.is_none_or(|k| s.kind == k)
            && self.level.is_none_or(|l| s.level == l)
            && self.host.as_ref().is_none_or(|h| &s.host == h)
            && self.tags.iter().all(|t| s.tags.contains(t))
    }
}

/// The snapshots passing `f`, oldest first.
pub fn list(repo: &Repository, f: &Filter) -> Result<Vec<(SnapshotId, Snapshot)>> {
    Ok(repo
        .snapshots()?
        .into_iter()
        .filter(|(_, s)| f.matches(s))
        .collect())
}

/// Resolves a `SNAPSHOT` argument.
pub fn resolve(repo: &Repository, spec: &str, f: &Filter) -> Result<(SnapshotId, Snapshot)> {
    if spec == "latest" {
        return list(repo, f)?.pop().ok_or_else(|| {
            Error::Snapshot("no snapshot matches the filters; see `snap snapshots`".into())
        });
    }
    let spec_l = spec.to_ascii_lowercase();
    if spec_l.is_empty() || !spec_l.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(Error::Snapshot(format!(
            "{spec:?} is neither `latest` nor a snapshot id (prefix)"
        )));
    }
    let ids: Vec<SnapshotId> = repo
        .snapshot_ids()?
        .into_iter()
        .filter(|id| id.to_hex().starts_with(&spec_l))
        .collect();
    match ids.as_slice() {
        [one] => Ok((*one, repo.load_snapshot(one)?)),
        [] => Err(Error::Snapshot(format!(
            "no snapshot id starts with {spec:?}; see `snap snapshots`"
        ))),
        _ => Err(Error::Snapshot(format!(
            "{spec:?} matches {} snapshots; give more characters",
            ids.len()
        ))),
    }
}
