//! The plan report: per group, the restore points that exist against what
//! the policy in charge of it promises.

use crate::error::Result;
use crate::format::policy::{check_promises, Candidate, Check, Policy, Status};
use crate::format::snapshot::{DumpReason, Kind};
use crate::ops::prune::{effective_policy, GroupKey};
use crate::repo::Repository;
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::BTreeMap;

/// One group's standing.
#[derive(Clone, Debug, Serialize)]
pub struct GroupReport {
    /// The group.
    pub group: GroupKey,
    /// The policy in charge, if any.
    pub policy: Option<String>,
    /// Restore points that exist (not dated after now).
    pub points: usize,
    /// Time of the newest one not dated after now.
    pub newest: Option<String>,
    /// Snapshots dated after now (a wrong clock, a typo in `--time`): they
    /// count for no promise.
    pub future: usize,
    /// Each promise and how it stands.
    pub checks: Vec<Check>,
    /// The worst status of the checks.
    pub status: Status,
    /// The newest snapshot of the group whose push raised the early
    /// warning (changes over the alert ratio, or new scripts under upload
    /// directories).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_alert: Option<Alert>,
    /// Set when the group's newest snapshot (not dated after now) is a
    /// dump saved but flagged as suspect: the newest restore point is
    /// probably not one. A later healthy dump clears it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dump_alert: Option<DumpAlert>,
}

/// The newest dump of a group, flagged when it was pushed.
#[derive(Clone, Debug, Serialize)]
pub struct DumpAlert {
    /// The snapshot.
    pub snapshot: String,
    /// Its time.
    pub time: String,
    /// What was found: empty, or shrunk.
    pub reason: DumpReason,
    /// Its size.
    pub bytes: u64,
    /// The size of the dump before it, if there was one.
    pub previous_bytes: Option<u64>,
    /// The dump before it (short id).
    pub previous: Option<String>,
}

/// A push that raised the early warning.
#[derive(Clone, Debug, Serialize)]
pub struct Alert {
    /// The snapshot.
    pub snapshot: String,
    /// Its time.
    pub time: String,
    /// Whether its changes exceeded the alert ratio.
    pub over_ratio: bool,
    /// Share of entries changed, in percent.
    pub changed_percent: f64,
    /// Entries added, modified, deleted.
    pub added: u64,
    /// See `added`.
    pub modified: u64,
    /// See `added`.
    pub deleted: u64,
    /// New scripts or executables under upload directories.
    pub suspicious: u64,
}

/// A push the configuration expects (see `snap::config::Expected`).
#[derive(Clone, Debug)]
pub struct Expect {
    /// Plan level.
    pub level: u8,
    /// Files or db.
    pub kind: Kind,
    /// Site (None: global).
    pub site: Option<String>,
    /// Source paths as a push records them, or the dump's file name.
    pub paths: Vec<String>,
    /// The host that pushes it.
    pub host: String,
    /// Start of the current period: a push since then is this period's.
    pub since: DateTime<Utc>,
    /// When this period's push is late.
    pub deadline: DateTime<Utc>,
    /// How the period and the deadline are said (`weekly (sunday), by 06:00`).
    pub schedule: String,
}

impl Expect {
    fn matches(&self, k: &GroupKey) -> bool {
        k.level == self.level && k.kind == self.kind && k.site == self.site && k.paths == self.paths
    }

    /// The check of this period's push, given the group's newest restore
    /// point not dated after now.
    fn check(
        &self,
        newest: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
        show: &dyn Fn(DateTime<Utc>) -> String,
    ) -> Check {
        let done = newest.is_some_and(|t| t >= self.since);
        let (status, detail) = if done {
            (Status::Ok, format!("pushed since {}", show(self.since)))
        } else if newest.is_none() {
            (
                Status::Missing,
                format!(
                    "no snapshot at all: the configuration expects one, {}",
                    self.schedule
                ),
            )
        } else if now >= self.deadline {
            (
                Status::Missing,
                format!(
                    "due since {}, none by the deadline {}",
                    show(self.since),
                    show(self.deadline)
                ),
            )
        } else {
            (
                Status::Pending,
                format!(
                    "due since {}, deadline {}",
                    show(self.since),
                    show(self.deadline)
                ),
            )
        };
        Check {
            promise: "scheduled push".into(),
            status,
            points: usize::from(done),
            detail,
        }
    }
}

/// Builds the report. `site` limits it to one site. `expected` are the
/// pushes the configuration expects: a group it names that has no snapshot
/// is reported MISSING, and each gets a check of its current period's push
/// (`show` writes the times of its details).
pub fn report(
    repo: &Repository,
    policies: &[Policy],
    site: Option<&str>,
    now: DateTime<Utc>,
    expected: &[Expect],
    show: &dyn Fn(DateTime<Utc>) -> String,
) -> Result<Vec<GroupReport>> {
    let protected = repo.protected()?;
    let mut groups: BTreeMap<GroupKey, Vec<Candidate>> = BTreeMap::new();
    let mut newest: BTreeMap<GroupKey, String> = BTreeMap::new();
    let mut future: BTreeMap<GroupKey, usize> = BTreeMap::new();
    let mut alerts: BTreeMap<GroupKey, Alert> = BTreeMap::new();
    let mut dump_alerts: BTreeMap<GroupKey, DumpAlert> = BTreeMap::new();
    for (id, s) in repo.snapshots()? {
        // Ad-hoc snapshots are outside the plan: no promise counts them.
        if s.is_adhoc() || site.is_some_and(|x| s.site.as_deref() != Some(x)) {
            continue;
        }
        let key = GroupKey::of(&s);
        if s.is_future(now) {
            *future.entry(key.clone()).or_default() += 1;
        } else {
            newest.insert(key.clone(), s.time.clone());
            // Only the newest counts: a healthy dump after it clears it.
            match &s.dump_check {
                Some(d) => dump_alerts.insert(
                    key.clone(),
                    DumpAlert {
                        snapshot: id.short(),
                        time: s.time.clone(),
                        reason: d.reason,
                        bytes: d.bytes,
                        previous_bytes: d.previous_bytes,
                        previous: d.previous.map(|p| p.short()),
                    },
                ),
                None => dump_alerts.remove(&key),
            };
            // Snapshots come oldest first: the last one seen stays.
            if let Some(c) = s
                .changes
                .as_ref()
                .filter(|c| c.alert || c.suspicious_total > 0)
            {
                alerts.insert(
                    key.clone(),
                    Alert {
                        snapshot: id.short(),
                        time: s.time.clone(),
                        over_ratio: c.alert,
                        changed_percent: (c.ratio() * 1000.0).round() / 10.0,
                        added: c.added,
                        modified: c.modified,
                        deleted: c.deleted,
                        suspicious: c.suspicious_total,
                    },
                );
            }
        }
        groups.entry(key).or_default().push(Candidate {
            id,
            time: s.timestamp(),
            written: s.written_at(),
            protected: protected.contains(&id),
        });
    }
    let mut out = Vec::new();
    for (key, snaps) in groups {
        let fut = future.get(&key).copied().unwrap_or(0);
        let policy = effective_policy(policies, key.level, key.site.as_deref());
        let mut checks = match policy {
            Some(p) => {
                let rules = match key.kind {
                    Kind::Files => &p.files,
                    Kind::Db => &p.db,
                };
                check_promises(&snaps, rules, p.timezone, now)
            }
            None => Vec::new(),
        };
        if let Some(e) = expected.iter().find(|e| e.matches(&key)) {
            let newest_point = snaps
                .iter()
                .filter(|c| c.time.to_utc() <= now)
                .map(|c| c.time.to_utc())
                .max();
            checks.push(e.check(newest_point, now, show));
        }
        let status = worst(&checks);
        out.push(GroupReport {
            last_alert: alerts.remove(&key),
            dump_alert: dump_alerts.remove(&key),
            newest: newest.get(&key).cloned(),
            future: fut,
            group: key,
            policy: policy.map(|p| p.name.clone()),
            points: snaps.len() - fut,
            checks,
            status,
        });
    }
    // What the configuration expects and no snapshot stands for.
    for e in expected {
        if site.is_some_and(|x| e.site.as_deref() != Some(x)) {
            continue;
        }
        if out.iter().any(|g| e.matches(&g.group)) {
            continue;
        }
        let checks = vec![e.check(None, now, show)];
        let group = GroupKey {
            level: e.level,
            kind: e.kind,
            site: e.site.clone(),
            host: e.host.clone(),
            paths: e.paths.clone(),
        };
        out.push(GroupReport {
            policy: effective_policy(policies, e.level, e.site.as_deref()).map(|p| p.name.clone()),
            group,
            points: 0,
            newest: None,
            future: 0,
            status: worst(&checks),
            checks,
            last_alert: None,
            dump_alert: None,
        });
    }
    out.sort_by(|a, b| a.group.cmp(&b.group));
    Ok(out)
}

/// The worst status of some checks.
fn worst(checks: &[Check]) -> Status {
    if checks.iter().any(|c| c.status == Status::Missing) {
        Status::Missing
    } else if checks.iter().any(|c| c.status == Status::Pending) {
        Status::Pending
    } else {
        Status::Ok
    }
}
