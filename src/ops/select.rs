//! Choosing snapshots: filters and `SNAPSHOT` arguments (an id prefix or `latest`).
//!
//! A site's snapshots are its own (`site = S`) and, when the site's paths
//! are known (from the configuration), the global files snapshots that hold
//! one of them: a global snapshot whose recorded source is the site's path
//! or a parent directory of it, compared component by component. Such a
//! snapshot is *scoped* ([`scope`]) before use: its root becomes the site's
//! directory inside it and its source that path, so restore, ls, cat, diff,
//! log and find see it exactly as they see a per-site snapshot of the same
//! directory. A global snapshot whose tree turns out not to hold the site's
//! directory (excluded, or created later) is passed over.

use crate::error::{Error, Result};
use crate::format::snapshot::{Kind, RootMeta, Snapshot};
use crate::format::tree::NodeKind;
use crate::id::SnapshotId;
use crate::ops::read::{components, find_node};
use crate::repo::Repository;

/// Which snapshots a command considers.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    /// Only this site.
    pub site: Option<String>,
    /// The paths of `site` (absolute, as pushes record them), when known:
    /// global snapshots holding one of them are the site's too.
    pub site_paths: Vec<String>,
    /// Only global (site-less) snapshots.
    pub global: bool,
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
        let site = match (&self.site, self.global) {
            (_, true) => s.site.is_none(),
            (None, false) => true,
            (Some(x), false) => {
                s.site.as_ref() == Some(x)
                    || (s.site.is_none() && !held_paths(s, &self.site_paths).is_empty())
            }
        };
        site && self.kind.is_none_or(|k| s.kind == k)
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

/// The paths of `site_paths` that the global files snapshot `s` holds: each
/// equal to one of its sources or under one, compared by components.
pub fn held_paths<'a>(s: &Snapshot, site_paths: &'a [String]) -> Vec<&'a str> {
    if s.site.is_some() || s.kind != Kind::Files || s.command.is_some() {
        return Vec::new();
    }
    site_paths
        .iter()
        .filter(|p| {
            let want = components(p.as_bytes());
            s.paths.iter().any(|src| {
                let src = components(src.as_bytes());
                !src.is_empty() && want.starts_with(&src)
            })
        })
        .map(String::as_str)
        .collect()
}

/// `snap` as the site of `f` sees it. A global snapshot holding the site's
/// paths (see [`held_paths`]) becomes the site's directory: its root tree is
/// that directory's, its source that path (with several held paths, their
/// closest common directory when it is inside one source, else the first).
/// `None` when the directory is not in its tree or is not a directory there.
/// Any other snapshot is returned as it is.
pub fn scope(
    repo: &Repository,
    id: &SnapshotId,
    snap: Snapshot,
    f: &Filter,
) -> Result<Option<Snapshot>> {
    if f.global || f.site.is_none() {
        return Ok(Some(snap));
    }
    let held = held_paths(&snap, &f.site_paths);
    if held.is_empty() {
        return Ok(Some(snap));
    }
    let mut dir = common_dir(&held);
    if source_candidates(&snap, dir.as_bytes()).is_empty() {
        // Held under different sources: no one directory of the snapshot
        // holds them all; the first stands for the site.
        dir = held[0].to_string();
    }
    let mut found = None;
    for at in source_candidates(&snap, dir.as_bytes()) {
        if components(&at).is_empty() {
            // The site's directory was pushed alone: the snapshot is it.
            return Ok(Some(snap));
        }
        match find_node(repo, &snap, &id.short(), &at) {
            Ok(n) => {
                found = n;
                break;
            }
            Err(Error::NoSuchPath { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    let Some(node) = found else {
        return Ok(None);
    };
    let Some(tree) = node.subtree.filter(|_| node.kind == NodeKind::Dir) else {
        return Ok(None);
    };
    Ok(Some(Snapshot {
        tree,
        paths: vec![dir],
        root: Some(RootMeta {
            mode: node.mode & 0o7777,
            uid: node.uid,
            gid: node.gid,
            mtime: node.mtime,
            mtime_ns: node.mtime_ns,
        }),
        ..snap
    }))
}

/// The closest directory holding every one of `paths` (absolute).
fn common_dir(paths: &[&str]) -> String {
    let mut common: Vec<&[u8]> = components(paths[0].as_bytes());
    for p in &paths[1..] {
        let c = components(p.as_bytes());
        let same = common.iter().zip(&c).take_while(|(a, b)| a == b).count();
        common.truncate(same);
    }
    String::from_utf8(join(&common)).expect("components of UTF-8 strings split at '/'")
}

/// [`list`] with every snapshot [`scope`]d: global snapshots that do not
/// hold the site's directory are left out.
pub fn list_scoped(repo: &Repository, f: &Filter) -> Result<Vec<(SnapshotId, Snapshot)>> {
    let mut out = Vec::new();
    for (id, s) in list(repo, f)? {
        if let Some(s) = scope(repo, &id, s, f)? {
            out.push((id, s));
        }
    }
    Ok(out)
}

/// Resolves a `SNAPSHOT` argument, [`scope`]d to the filter's site. With
/// `latest`, the newest snapshot passing `f` (see [`latest`]) whose scope
/// holds the site; an id names one snapshot whatever the filters, and a
/// global one holding the site's paths is scoped too.
pub fn resolve(repo: &Repository, spec: &str, f: &Filter) -> Result<(SnapshotId, Snapshot)> {
    if spec == "latest" {
        let mut snaps = list(repo, f)?;
        let now = chrono::Utc::now();
        while let Some((id, s)) = latest(snaps.clone(), now) {
            if let Some(scoped) = scope(repo, &id, s, f)? {
                return Ok((id, scoped));
            }
            snaps.retain(|(i, _)| *i != id);
        }
        return Err(Error::Snapshot(
            "no snapshot matches the filters; see `snap snapshots`".into(),
        ));
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
        [one] => {
            let snap = repo.load_snapshot(one)?;
            let scoped = scope(repo, one, snap.clone(), f)?;
            Ok((*one, scoped.unwrap_or(snap)))
        }
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
    fn a_site_is_held_by_global_files_snapshots_of_it_or_a_parent() {
        let site = vec!["/var/www/boulangerie".to_string()];
        let held = |paths: &[&str]| held_paths(&snap(paths), &site).len();
        assert_eq!(held(&["/var/www"]), 1);
        assert_eq!(held(&["/var/www/"]), 1);
        assert_eq!(held(&["/var"]), 1);
        assert_eq!(held(&["/var/www/boulangerie"]), 1);
        assert_eq!(held(&["/etc", "/var/www/boulangerie"]), 1);
        assert_eq!(held(&["/var/ww"]), 0, "components, not string prefixes");
        assert_eq!(held(&["/var/www/boulangerie/wp-content"]), 0);
        assert_eq!(held(&["/var/www/fleuriste"]), 0);
        assert_eq!(held(&["/"]), 0);
        let mut own = snap(&["/var/www"]);
        own.site = Some("fleuriste".into());
        assert!(
            held_paths(&own, &site).is_empty(),
            "a site's snapshot is its own"
        );
        let mut db = snap(&["/var/www"]);
        db.kind = Kind::Db;
        assert!(held_paths(&db, &site).is_empty());
    }

    #[test]
    fn the_site_filter_takes_global_snapshots_holding_the_site() {
        let mut f = Filter {
            site: Some("boulangerie".into()),
            site_paths: vec!["/var/www/boulangerie".into()],
            ..Filter::default()
        };
        let global = snap(&["/var/www"]);
        let mut own = snap(&["/var/www/boulangerie"]);
        own.site = Some("boulangerie".into());
        let mut other = snap(&["/var/www/fleuriste"]);
        other.site = Some("fleuriste".into());
        assert!(f.matches(&global) && f.matches(&own) && !f.matches(&other));
        assert!(!f.matches(&snap(&["/srv"])));
        f.site_paths.clear();
        assert!(!f.matches(&global), "without the site's paths, as before");
        let g = Filter {
            global: true,
            ..Filter::default()
        };
        assert!(g.matches(&global) && !g.matches(&own));
        f.level = Some(2);
        f.site_paths = vec!["/var/www/boulangerie".into()];
        assert!(!f.matches(&global), "the other filters still apply");
    }

    #[test]
    fn several_site_paths_scope_to_their_common_directory() {
        assert_eq!(common_dir(&["/var/www/a"]), "/var/www/a");
        assert_eq!(common_dir(&["/var/www/a/x", "/var/www/a/y"]), "/var/www/a");
        assert_eq!(common_dir(&["/var/www/ab", "/var/www/a"]), "/var/www");
        assert_eq!(common_dir(&["/srv/a", "/var/b"]), "/");
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
