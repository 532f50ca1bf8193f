//! Choosing snapshots: filters and `SNAPSHOT` arguments (an id prefix or `latest`).

use crate::error::{Error, Result};
use crate::format::snapshot::{Kind, Snapshot};
use crate::id::SnapshotId;
use crate::ops::read::{components, find_node};
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

/// The newest of `snaps` (oldest first) not dated after `now`: a snapshot
/// from a wrong clock or a typo in `--time` does not hide the real ones.
/// When every snapshot is dated after `now`, the newest of them.
pub fn latest(
    mut snaps: Vec<(SnapshotId, Snapshot)>,
    now: chrono::DateTime<chrono::Utc>,
) -> Option<(SnapshotId, Snapshot)> {
    match snaps.iter().rposition(|(_, s)| !s.is_future(now)) {
        Some(i) => Some(snaps.swap_remove(i)),
        None => snaps.pop(),
    }
}

/// Resolves a `SNAPSHOT` argument.
pub fn resolve(repo: &Repository, spec: &str, f: &Filter) -> Result<(SnapshotId, Snapshot)> {
    if spec == "latest" {
        return latest(list(repo, f)?, chrono::Utc::now()).ok_or_else(|| {
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

/// The path inside `snap` that a user's `path` names. A path as it was
/// backed up (`/var/www/site2` of a push of `/var/www`) is mapped through the
/// snapshot's source paths, as restic users expect; the snapshot-relative
/// form (`/site2`) is taken as is, and wins when both exist. A path found in
/// neither form gets the error of the snapshot-relative form.
pub fn snapshot_path(
    repo: &Repository,
    snap: &Snapshot,
    short: &str,
    path: &[u8],
) -> Result<Vec<u8>> {
    let as_is = match find_node(repo, snap, short, path) {
        Ok(_) => return Ok(path.to_vec()),
        Err(e @ Error::NoSuchPath { .. }) => e,
        Err(e) => return Err(e),
    };
    for candidate in source_candidates(snap, path) {
        if find_node(repo, snap, short, &candidate).is_ok() {
            return Ok(candidate);
        }
    }
    Err(as_is)
}

/// Snapshot-relative forms of an absolute `path` under one of the sources.
/// One directory pushed alone is the root itself; several sources (or one
/// file) are root entries named by their last component.
pub fn source_candidates(snap: &Snapshot, path: &[u8]) -> Vec<Vec<u8>> {
    if !path.starts_with(b"/") || snap.command.is_some() {
        return Vec::new();
    }
    let wanted = components(path);
    let mut out = Vec::new();
    for src in &snap.paths {
        let src_c = components(src.as_bytes());
        let Some(last) = src_c.last() else { continue };
        if wanted.len() < src_c.len() || wanted[..src_c.len()] != src_c[..] {
            continue;
        }
        let rest = &wanted[src_c.len()..];
        if snap.paths.len() == 1 {
            out.push(join(rest));
        }
        out.push(join(&[&[*last][..], rest].concat()));
    }
    out
}

fn join(comps: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for c in comps {
        out.push(b'/');
        out.extend_from_slice(c);
    }
    if out.is_empty() {
        out.push(b'/');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::TreeId;

    fn snap(paths: &[&str]) -> Snapshot {
        Snapshot::new(
            TreeId([0; 32]),
            "2026-11-25T02:00:00Z".into(),
            "h".into(),
            paths.iter().map(|p| p.to_string()).collect(),
        )
    }

    fn cands(paths: &[&str], p: &str) -> Vec<String> {
        source_candidates(&snap(paths), p.as_bytes())
            .into_iter()
            .map(|c| String::from_utf8(c).unwrap())
            .collect()
    }

    #[test]
    fn backed_up_paths_map_through_the_sources() {
        assert_eq!(
            cands(&["/var/www"], "/var/www/site2/a"),
            ["/site2/a", "/www/site2/a"]
        );
        assert_eq!(cands(&["/var/www"], "/var/www/"), ["/", "/www"]);
        assert_eq!(cands(&["/var/www"], "/var/wwwx/a"), Vec::<String>::new());
        assert_eq!(cands(&["/var/www"], "site2"), Vec::<String>::new());
        assert_eq!(
            cands(&["/etc/hosts", "/var/www"], "/var/www/site2"),
            ["/www/site2"]
        );
        assert_eq!(cands(&["/etc/hosts"], "/etc/hosts"), ["/", "/hosts"]);
    }

    #[test]
    fn latest_skips_snapshots_dated_after_now() {
        let now = chrono::DateTime::parse_from_rfc3339("2026-11-26T00:00:00Z")
            .unwrap()
            .to_utc();
        let a = snap(&["/x"]);
        let mut b = snap(&["/x"]);
        b.time = "2027-11-25T02:00:00Z".into();
        let v = vec![(SnapshotId([1; 32]), a), (SnapshotId([2; 32]), b)];
        assert_eq!(latest(v.clone(), now).unwrap().0, SnapshotId([1; 32]));
        let only_future = vec![v[1].clone()];
        assert_eq!(latest(only_future, now).unwrap().0, SnapshotId([2; 32]));
        assert!(latest(vec![], now).is_none());
    }
}
