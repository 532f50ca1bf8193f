//! Prune: apply a retention policy, then reclaim the space of what no
//! snapshot needs any more. Plan first (a value that `--dry-run` prints and
//! tests inspect), then execute.
//!
//! Marking what is in use goes through the index (a `marks` column family),
//! so memory holds per-pack figures, never per-chunk state. Execution order,
//! each step safe to interrupt: (1) copy the used blobs of packs to repack
//! into new packs, which are indexed; (2) delete the snapshot files the
//! policy removes; (3) remove the index rows of the packs to delete; (4)
//! delete those pack files. A crash leaves at worst packs that no snapshot
//! needs (the next prune deletes them) or packs not in the index (the next
//! prune indexes them first). Prune holds the exclusive lock throughout.

use crate::backend::FileType;
use crate::error::{Error, Result};
use crate::format::pack::read_header;
use crate::format::policy::{apply, Candidate, Policy};
use crate::format::snapshot::{Kind, Snapshot, ADHOC};
use crate::format::state::Change;
use crate::format::tree::Content;
use crate::id::{BlobRef, PackId, SnapshotId, TreeId};
use crate::ops::walk::{self, Flow};
use crate::progress::Progress;
use crate::repo::writer::BlobWriter;
use crate::repo::Repository;
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::{BTreeMap, HashSet};

/// Which snapshots compete for the same restore points.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct GroupKey {
    /// Plan level.
    pub level: u8,
    /// Files or db.
    pub kind: Kind,
    /// Client site (None: global).
    pub site: Option<String>,
    /// Host that pushed.
    pub host: String,
    /// Source paths (or the dump's name).
    pub paths: Vec<String>,
}

impl std::fmt::Display for GroupKey {
    /// `client-a db level2 (web1: client_a.sql)`, `global files level1 (web1: /var/www)`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let level = crate::format::snapshot::level_name(self.level);
        write!(
            f,
            "{} {} {level} ({}: {})",
            self.site.as_deref().unwrap_or("global"),
            self.kind,
            self.host,
            self.paths.join(" ")
        )
    }
}

impl GroupKey {
    /// The group of a snapshot.
    pub fn of(s: &Snapshot) -> Self {
        GroupKey {
            level: s.level,
            kind: s.kind,
            site: s.site.clone(),
            host: s.host.clone(),
            paths: s.paths.clone(),
        }
    }
}

/// The policy in charge of a group: a user policy naming the site, else the
/// policy named after the level (`level1`, `level2`). None for ad-hoc
/// snapshots (level 0), whatever the policies say: their own `expires`
/// decides.
pub fn effective_policy<'p>(
    policies: &'p [Policy],
    level: u8,
    site: Option<&str>,
) -> Option<&'p Policy> {
    if level == ADHOC {
        return None;
    }
    policies
        .iter()
        .find(|p| {
            p.level == level
                && site.is_some_and(|s| p.sites.as_ref().is_some_and(|l| l.iter().any(|x| x == s)))
        })
        .or_else(|| {
            policies.iter().find(|p| {
                p.level == level && p.sites.is_none() && p.name == format!("level{level}")
            })
        })
}

/// One kept snapshot and why.
#[derive(Clone, Debug, Serialize)]
pub struct Kept {
    /// Snapshot id.
    pub id: SnapshotId,
    /// Its time.
    pub time: String,
    /// The rules that keep it.
    pub reasons: Vec<String>,
}

/// One removed snapshot.
#[derive(Clone, Debug, Serialize)]
pub struct Removed {
    /// Snapshot id.
    pub id: SnapshotId,
    /// Its time.
    pub time: String,
}

/// The policy's decision for one group.
#[derive(Clone, Debug, Serialize)]
pub struct GroupPlan {
    /// The group.
    pub group: GroupKey,
    /// The policy applied.
    pub policy: String,
    /// Kept snapshots, newest first.
    pub keep: Vec<Kept>,
    /// Removed snapshots, newest first.
    pub remove: Vec<Removed>,
}

/// What happens to the packs.
#[derive(Clone, Debug, Default, Serialize)]
pub struct PackPlan {
    /// Packs no snapshot needs: deleted.
    pub delete: Vec<PackId>,
    /// Packs mostly unused: their used blobs are copied, then they are deleted.
    pub repack: Vec<PackId>,
    /// Packs in the index but missing from the repository, needed by nobody.
    pub forget: Vec<PackId>,
    /// Bytes of all packs before.
    pub bytes_before: u64,
    /// Bytes freed (deleted packs, and repacked packs less what is copied).
    pub bytes_freed: u64,
    /// Bytes copied by repacking.
    pub bytes_repacked: u64,
    /// Unused bytes left in kept packs afterwards.
    pub unused_after: u64,
}

/// An ad-hoc snapshot (level 0) and what prune does with it.
#[derive(Clone, Debug, Serialize)]
pub struct AdhocSnapshot {
    /// Snapshot id.
    pub id: SnapshotId,
    /// Its group (site, kind, host, paths).
    pub group: GroupKey,
    /// Its time.
    pub time: String,
    /// When it expires (None: it carries no readable expiry, and is kept).
    pub expires: Option<String>,
    /// Whether a protection marker keeps it.
    pub protected: bool,
}

/// Ad-hoc snapshots: no policy is in charge of them; prune removes those
/// whose expiry has passed (unless protected) and keeps the others.
#[derive(Clone, Debug, Default, Serialize)]
pub struct AdhocPlan {
    /// Expired ad-hoc snapshots, removed.
    pub expired: Vec<AdhocSnapshot>,
    /// Ad-hoc snapshots kept: not expired yet, or protected.
    pub keep: Vec<AdhocSnapshot>,
}

/// The whole plan.
#[derive(Clone, Debug, Serialize)]
pub struct PrunePlan {
    /// The policy asked for.
    pub policy: String,
    /// The clock the policy used.
    pub now: String,
    /// Decisions, per group the policy is in charge of.
    pub groups: Vec<GroupPlan>,
    /// Groups left alone, with the policy in charge of them.
    pub other_groups: Vec<(GroupKey, String)>,
    /// Ad-hoc snapshots ("expired ad-hoc" are removed), whatever the policy.
    pub adhoc: AdhocPlan,
    /// Snapshot files to delete.
    pub remove: Vec<SnapshotId>,
    /// Packs.
    pub packs: PackPlan,
    /// Packs found on disk but not in the index, indexed before planning.
    pub indexed_first: usize,
}

/// How to prune.
#[derive(Clone, Debug)]
pub struct PruneOptions {
    /// The policy to apply, by name.
    pub policy: String,
    /// All known policies (built-in and the user's).
    pub policies: Vec<Policy>,
    /// Only this site's groups.
    pub site: Option<String>,
    /// The clock.
    pub now: DateTime<Utc>,
    /// Repack until at most this share of the repository is unused (0.05 = 5 %).
    pub max_unused: f64,
}

pub use crate::format::policy::ALL;

/// Plans a prune; `repo` must be open exclusively.
pub fn plan(repo: &Repository, opts: &PruneOptions, progress: &dyn Progress) -> Result<PrunePlan> {
    let all = opts.policy == ALL;
    let asked = opts
        .policies
        .iter()
        .find(|p| p.name == opts.policy || all)
        .ok_or_else(|| {
            let names: Vec<&str> = opts.policies.iter().map(|p| p.name.as_str()).collect();
            Error::Usage(format!(
                "no policy named {:?}; known: {}",
                opts.policy,
                names.join(", ")
            ))
        })?;
    // A prune acts on what the state says must be there: a rolled-back,
    // unverifiable or contradicted state could make it delete the wrong
    // snapshots (a marker deleted by the storage, a pruned snapshot put back).
    let blocking: Vec<String> = repo
        .state_findings()?
        .into_iter()
        .filter(|f| f.is_error())
        .map(|f| f.message)
        .collect();
    if !blocking.is_empty() {
        return Err(Error::State(format!(
            "prune refused: the repository does not match its state record: {}",
            blocking.join("; ")
        )));
    }
    let set = repo.load_snapshots()?;
    if let Some((id, why)) = set.damaged.first() {
        return Err(Error::Usage(format!(
            "snapshot {} cannot be read ({why}); prune will not guess what data it needs: run `snap check`",
            id.short()
        )));
    }
    let protected = repo.protected()?;
    let mut groups: BTreeMap<GroupKey, Vec<(SnapshotId, Snapshot)>> = BTreeMap::new();
    for (id, s) in set.ok {
        groups.entry(GroupKey::of(&s)).or_default().push((id, s));
    }
    let mut plans = Vec::new();
    let mut other = Vec::new();
    let mut remove = Vec::new();
    let mut keep_all: Vec<(SnapshotId, TreeId)> = Vec::new();
    let mut adhoc = AdhocPlan::default();
    for (key, snaps) in &groups {
        if key.level == ADHOC {
            let ours = opts
                .site
                .as_ref()
                .is_none_or(|s| key.site.as_ref() == Some(s));
            for (id, s) in snaps {
                let a = AdhocSnapshot {
                    id: *id,
                    group: key.clone(),
                    time: s.time.clone(),
                    expires: s.expires.clone(),
                    protected: protected.contains(id),
                };
                if ours && !a.protected && s.expires_at().is_some_and(|e| e < opts.now) {
                    remove.push(*id);
                    adhoc.expired.push(a);
                } else {
                    keep_all.push((*id, s.tree));
                    if ours {
                        adhoc.keep.push(a);
                    }
                }
            }
            continue;
        }
        let in_charge = effective_policy(&opts.policies, key.level, key.site.as_deref());
        let ours = in_charge.is_some_and(|p| all || p.name == asked.name)
            && opts
                .site
                .as_ref()
                .is_none_or(|s| key.site.as_ref() == Some(s));
        if !ours {
            other.push((
                key.clone(),
                in_charge
                    .map(|p| p.name.clone())
                    .unwrap_or_else(|| "none".into()),
            ));
            keep_all.extend(snaps.iter().map(|(id, s)| (*id, s.tree)));
            continue;
        }
        let policy = in_charge.expect("a group is ours only with a policy in charge");
        let rules = match key.kind {
            Kind::Files => &policy.files,
            Kind::Db => &policy.db,
        };
        let cands: Vec<Candidate> = snaps
            .iter()
            .map(|(id, s)| Candidate {
                id: *id,
                time: s.timestamp(),
                written: s.written_at(),
                protected: protected.contains(id),
            })
            .collect();
        let d = apply(&cands, rules, policy.timezone, opts.now);
        let time_of = |id: &SnapshotId| {
            snaps
                .iter()
                .find(|(i, _)| i == id)
                .map(|(_, s)| s.time.clone())
                .unwrap_or_default()
        };
        for (id, _) in &d.keep {
            let tree = snaps
                .iter()
                .find(|(i, _)| i == id)
                .map(|(_, s)| s.tree)
                .expect("kept ids come from the group");
            keep_all.push((*id, tree));
        }
        remove.extend(d.remove.iter().copied());
        plans.push(GroupPlan {
            group: key.clone(),
            policy: policy.name.clone(),
            keep: d
                .keep
                .iter()
                .map(|(id, r)| Kept {
                    id: *id,
                    time: time_of(id),
                    reasons: r.clone(),
                })
                .collect(),
            remove: d
                .remove
                .iter()
                .map(|id| Removed {
                    id: *id,
                    time: time_of(id),
                })
                .collect(),
        });
    }

    let indexed_first = index_unindexed_packs(repo)?;
    mark_used(repo, &keep_all, progress)?;
    let packs = plan_packs(repo, opts.max_unused)?;
    Ok(PrunePlan {
        policy: if all { ALL.into() } else { asked.name.clone() },
        now: opts.now.to_rfc3339(),
        groups: plans,
        other_groups: other,
        adhoc,
        remove,
        packs,
        indexed_first,
    })
}

/// Packs on disk that the index does not know (an interrupted push or prune)
/// are indexed, so that what they hold is counted.
fn index_unindexed_packs(repo: &Repository) -> Result<usize> {
    let listed = repo.backend.list_sizes(FileType::Pack)?;
    let unknown = repo.unknown_packs(&listed)?;
    for (id, size) in &unknown {
        repo.add_to_index(id, *size, &repo.read_pack_header(id, *size)?)?;
    }
    repo.index().sync()?;
    Ok(unknown.len())
}

/// Marks every blob the kept snapshots reach. A tree already marked was
/// walked before (snapshots share most of their trees), so it is skipped.
fn mark_used(
    repo: &Repository,
    keep: &[(SnapshotId, TreeId)],
    progress: &dyn Progress,
) -> Result<()> {
    let index = repo.index();
    index.clear_marks()?;
    let mut batch: Vec<BlobRef> = Vec::with_capacity(4096);
    let flush = |batch: &mut Vec<BlobRef>| -> Result<()> {
        index.mark(batch)?;
        batch.clear();
        Ok(())
    };
    for (sid, root) in keep {
        let stop = |e: Error| {
            Error::Usage(format!(
                "snapshot {} cannot be walked ({e}); prune stops: run `snap check`",
                sid.short()
            ))
        };
        walk::walk(repo, root, &[], &mut |e| match e {
            // A tree marked in this run was walked whole already (trees are
            // marked on leaving them, after everything beneath).
            walk::Event::Enter { id, .. } => Ok(if index.is_marked(&BlobRef::from(*id))? {
                Flow::Skip
            } else {
                Flow::Continue
            }),
            walk::Event::Node { node, .. } => {
                if let Some(c) = &node.content {
                    if let Content::Groups(gs) = c {
                        batch.extend(gs.iter().map(|g| BlobRef::from(g.id)));
                    }
                    repo.for_each_chunk_group(c, &mut |group| {
                        batch.extend(group.iter().map(|(id, _)| BlobRef::from(*id)));
                        if batch.len() >= 4096 {
                            flush(&mut batch)?;
                        }
                        Ok(())
                    })?;
                }
                Ok(Flow::Continue)
            }
            walk::Event::Leave { id, .. } => {
                flush(&mut batch)?;
                index.mark(&[BlobRef::from(*id)])?;
                progress.file_done();
                Ok(Flow::Continue)
            }
            walk::Event::Invalid { path, why, .. } => Err(Error::corrupt(
                format!("tree entry {}", walk::display_path(path)),
                why,
            )),
            walk::Event::TreeError { error, .. } => Err(error),
        })
        .map_err(stop)?;
    }
    flush(&mut batch)
}

/// Packs smaller than a quarter of the target size count as small; once
/// there are this many, they are merged into full packs (each small push
/// writes two small packs, and thousands of them slow every listing).
const SMALL_PACKS_TO_MERGE: usize = 16;

fn plan_packs(repo: &Repository, max_unused: f64) -> Result<PackPlan> {
    let usage = repo.index().usage()?;
    let on_disk: HashSet<String> = repo.backend.list(FileType::Pack)?.into_iter().collect();
    let mut plan = PackPlan::default();
    let mut candidates = Vec::new();
    let mut small = Vec::new();
    let small_size = repo.config.pack_size as u64 / 4;
    let mut unused_total = 0u64;
    for (id, info) in repo.index().packs()? {
        let u = usage.get(&id).copied().unwrap_or_default();
        if !on_disk.contains(&id.to_hex()) {
            if u.used_blobs > 0 {
                return Err(Error::Usage(format!(
                    "pack {id} holds data that kept snapshots need but is missing from the repository; prune stops: run `snap check`"
                )));
            }
            plan.forget.push(id);
            continue;
        }
        plan.bytes_before += info.size;
        if u.used_blobs == 0 {
            plan.delete.push(id);
            plan.bytes_freed += info.size;
        } else {
            unused_total += u.unused_bytes;
            if u.unused_blobs > 0 {
                candidates.push((id, info.size, u));
            }
            if info.size < small_size {
                small.push((id, info.size, u));
            }
        }
    }
    // Repack the emptiest packs first, until the unused share is low enough.
    candidates.sort_by(|a, b| {
        let fa = a.2.unused_bytes as f64 / a.1.max(1) as f64;
        let fb = b.2.unused_bytes as f64 / b.1.max(1) as f64;
        fb.total_cmp(&fa).then(a.0.cmp(&b.0))
    });
    let kept_size = plan.bytes_before - plan.bytes_freed;
    for (id, size, u) in candidates {
        if (unused_total as f64) <= max_unused * kept_size as f64 {
            break;
        }
        plan.repack.push(id);
        plan.bytes_repacked += u.used_bytes;
        plan.bytes_freed += size.saturating_sub(u.used_bytes);
        unused_total -= u.unused_bytes;
    }
    let chosen: HashSet<PackId> = plan.repack.iter().copied().collect();
    small.retain(|(id, _, _)| !chosen.contains(id));
    if small.len() >= SMALL_PACKS_TO_MERGE {
        for (id, size, u) in small {
            plan.repack.push(id);
            plan.bytes_repacked += u.used_bytes;
            plan.bytes_freed += size.saturating_sub(u.used_bytes);
            unused_total -= u.unused_bytes;
        }
    }
    plan.unused_after = unused_total;
    Ok(plan)
}

/// What a prune did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct PruneStats {
    /// Snapshot files deleted.
    pub snapshots_removed: u64,
    /// Packs deleted (including repacked ones).
    pub packs_deleted: u64,
    /// Packs written by repacking.
    pub packs_written: u64,
    /// Bytes of pack files deleted.
    pub bytes_deleted: u64,
    /// Bytes of pack files written.
    pub bytes_written: u64,
}

/// Deletes snapshot files, under the exclusive lock: step 2 of a prune, and
/// `snap forget`. A command whose lock was lost stops before each deletion
/// (others may be running on the packs it would free). The state says the
/// snapshots are being removed before the first goes, and that they are gone
/// after the last, so an interruption leaves no finding and a rerun finishes.
/// Returns how many were deleted.
pub fn remove_snapshots(repo: &Repository, ids: &[SnapshotId]) -> Result<u64> {
    if ids.is_empty() {
        return Ok(0);
    }
    repo.record_state(&Change {
        removing: ids.to_vec(),
        ..Change::default()
    })?;
    for id in ids {
        repo.check_lock()?;
        repo.backend.remove(FileType::Snapshot, &id.to_hex())?;
    }
    repo.record_state(&Change {
        removed: ids.to_vec(),
        ..Change::default()
    })?;
    Ok(ids.len() as u64)
}

/// Carries out a plan; `repo` must be open exclusively, as for [`plan`].
pub fn execute(repo: &Repository, plan: &PrunePlan, progress: &dyn Progress) -> Result<PruneStats> {
    let mut stats = PruneStats::default();
    let index = repo.index();
    // 1. Copy what is still used out of the packs to repack.
    if !plan.packs.repack.is_empty() {
        let writer = BlobWriter::new(repo);
        for id in &plan.packs.repack {
            let bytes = repo.backend.read(FileType::Pack, &id.to_hex())?;
            for e in read_header(repo.keys(), id, &bytes)? {
                let here = index.get(&e.blob)?.is_some_and(|l| l.pack == *id);
                if here && index.is_marked(&e.blob)? {
                    let sealed = &bytes[e.offset as usize..(e.offset + e.length as u64) as usize];
                    writer.copy_sealed(e.blob, sealed, e.raw_len)?;
                }
            }
            progress.file_done();
        }
        let w = writer.finish()?;
        stats.packs_written = w.packs;
        stats.bytes_written = w.stored_bytes;
    }
    // 2. The snapshots the policy removes.
    stats.snapshots_removed = remove_snapshots(repo, &plan.remove)?;
    // 3. Forget the packs in the index, durably, before the files go.
    let mut doomed = Vec::new();
    for id in plan.packs.delete.iter().chain(&plan.packs.repack) {
        let size = repo.backend.size(FileType::Pack, &id.to_hex())?;
        let entries = repo.read_pack_header(id, size).unwrap_or_default();
        index.remove_pack(id, &entries)?;
        doomed.push((*id, size));
    }
    for id in &plan.packs.forget {
        index.remove_pack(id, &[])?;
    }
    index.sync()?;
    // 4. Delete the pack files.
    for (id, size) in doomed {
        repo.check_lock()?;
        repo.backend.remove(FileType::Pack, &id.to_hex())?;
        stats.packs_deleted += 1;
        stats.bytes_deleted += size;
    }
    index.clear_marks()?;
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::policy::builtin_policies;

    #[test]
    fn no_policy_is_in_charge_of_adhoc_snapshots() {
        let mut policies = builtin_policies(chrono_tz::UTC);
        assert_eq!(
            effective_policy(&policies, 1, Some("s")).map(|p| p.name.as_str()),
            Some("level1")
        );
        // Even a policy of level 0 (which the policy file refuses) is not.
        let mut zero = policies[0].clone();
        zero.name = "level0".into();
        zero.level = ADHOC;
        policies.push(zero.clone());
        zero.name = "s".into();
        zero.sites = Some(vec!["s".into()]);
        policies.push(zero);
        assert!(effective_policy(&policies, ADHOC, Some("s")).is_none());
        assert!(effective_policy(&policies, ADHOC, None).is_none());
    }
}
