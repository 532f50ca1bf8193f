//! Retention policies: which snapshots of a group to keep, as a pure function
//! of the snapshots, the rules and the clock.
//!
//! A group is the snapshots of one (level, kind, site), further split by host
//! and source paths so that two different sources never compete for the same
//! restore points. Rules add up: a snapshot is kept when any rule keeps it,
//! and the newest snapshot of a group is always kept.
//!
//! Calendar buckets (day, ISO week, month, year) are taken in the policy's
//! time zone. `daily = N` keeps the newest snapshot of each of the N most
//! recent days that have one (so a stopped cron job never lets everything age
//! out). `within` is measured from now. The age ladder is a guarantee, see
//! [`ladder_keep`].
//!
//! Snapshots dated after now (a wrong clock, a typo in `--time`) take part in
//! no rule: they would otherwise fill the newest buckets and the "newest of
//! its group" guarantee in place of real restore points. They are kept, for
//! their own reason, and the rules apply to the others.

use crate::format::snapshot::OrderKey;
use crate::id::SnapshotId;
use chrono::{DateTime, Datelike, FixedOffset, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};

/// Keep rules for one kind of snapshot.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rules {
    /// Keep the N newest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last: Option<u32>,
    /// Keep the newest of each of the N most recent days that have one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub daily: Option<u32>,
    /// Same, per ISO week (Monday to Sunday).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weekly: Option<u32>,
    /// Same, per calendar month.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monthly: Option<u32>,
    /// Same, per calendar year.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub yearly: Option<u32>,
    /// Keep everything younger than this, measured from now ("36h", "30d", "4w").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub within: Option<String>,
    /// Age ladder in days, increasing (e.g. [1, 2, 3, 7, 14]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ladder: Option<Vec<u32>>,
}

impl Rules {
    /// Checks the rules; the message says what is wrong.
    pub fn validate(&self) -> Result<(), String> {
        if let Some(w) = &self.within {
            parse_duration(w)?;
        }
        if let Some(l) = &self.ladder {
            if l.is_empty() || l.windows(2).any(|w| w[0] >= w[1]) {
                return Err(format!(
                    "ladder {l:?} must be a non-empty list of increasing day counts"
                ));
            }
        }
        Ok(())
    }
}

/// The longest `within`: a longer one is a typo, and would overflow the
/// clock arithmetic (then silently keep nothing).
pub const MAX_DURATION_DAYS: i64 = 100 * 366;

/// Parses "36h", "30d", "4w" into seconds.
pub fn parse_duration(s: &str) -> Result<i64, String> {
    let t = s.trim();
    let (num, unit) = t.split_at(t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len()));
    let mult: i64 = match unit {
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => return Err(format!("{s:?} is not a duration like 36h, 30d or 4w")),
    };
    let too_long = || format!("{s:?} is too long: at most {MAX_DURATION_DAYS} days");
    // All digits, so a failed parse is an overflow.
    let n: i64 = num.parse().map_err(|_| {
        if num.is_empty() {
            format!("{s:?} is not a duration like 36h, 30d or 4w")
        } else {
            too_long()
        }
    })?;
    match n.checked_mul(mult) {
        Some(secs) if secs <= MAX_DURATION_DAYS * 86_400 => Ok(secs),
        _ => Err(too_long()),
    }
}

/// The policy name that applies every policy to the groups it is in
/// charge of, in one prune (`snap prune --policy all`, what `snap run`
/// does): no user policy may take it.
pub const ALL: &str = "all";

/// A named policy: rules per kind, for one plan level.
#[derive(Clone, Debug, PartialEq)]
pub struct Policy {
    /// Its name (`level1`, `level2`, or a user's).
    pub name: String,
    /// The plan level whose snapshots it prunes.
    pub level: u8,
    /// Only these sites (None: every site, and global snapshots).
    pub sites: Option<Vec<String>>,
    /// Time zone of the calendar buckets and ladder days.
    pub timezone: Tz,
    /// Rules for site files.
    pub files: Rules,
    /// Rules for database dumps.
    pub db: Rules,
}

/// The agency's plan (see the brief): level 1 is the hosting provider's
/// global backups, level 2 the team's per-site backups.
pub fn builtin_policies(tz: Tz) -> Vec<Policy> {
    vec![
        Policy {
            name: "level1".into(),
            level: 1,
            sites: None,
            timezone: tz,
            files: Rules {
                ladder: Some(vec![1, 2, 3, 7, 14]),
                ..Rules::default()
            },
            db: Rules {
                daily: Some(30),
                ..Rules::default()
            },
        },
        Policy {
            name: "level2".into(),
            level: 2,
            sites: None,
            timezone: tz,
            files: Rules {
                monthly: Some(2),
                ..Rules::default()
            },
            db: Rules {
                weekly: Some(4),
                ..Rules::default()
            },
        },
    ]
}

/// One snapshot as the policy sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Candidate {
    /// Its id.
    pub id: SnapshotId,
    /// When it was taken.
    pub time: DateTime<FixedOffset>,
    /// When its file was written, if recorded: breaks ties of `time`.
    pub written: Option<DateTime<Utc>>,
    /// Protected snapshots are never removed.
    pub protected: bool,
}

/// What a policy decided for one group.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Decision {
    /// Kept snapshots, newest first, each with the rules that kept it.
    pub keep: Vec<(SnapshotId, Vec<String>)>,
    /// Snapshots to remove, newest first.
    pub remove: Vec<SnapshotId>,
}

fn local_date(t: &DateTime<FixedOffset>, tz: Tz) -> NaiveDate {
    t.with_timezone(&tz).date_naive()
}

/// The calendar bucket of a time, as a label: `2026-11-25`, `2026-W48`,
/// `2026-11`, `2026`.
pub fn bucket(t: &DateTime<FixedOffset>, tz: Tz, unit: Unit) -> String {
    let d = local_date(t, tz);
    match unit {
        Unit::Day => d.format("%Y-%m-%d").to_string(),
        Unit::Week => {
            let w = d.iso_week();
            format!("{}-W{:02}", w.year(), w.week())
        }
        Unit::Month => format!("{}-{:02}", d.year(), d.month()),
        Unit::Year => format!("{}", d.year()),
    }
}

/// Calendar units of the bucket rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    /// Day.
    Day,
    /// ISO week.
    Week,
    /// Month.
    Month,
    /// Year.
    Year,
}

/// Age in whole calendar days in `tz`: 0 for today, 1 for yesterday.
pub fn age_days(t: &DateTime<FixedOffset>, now: &DateTime<Utc>, tz: Tz) -> i64 {
    let today = now.with_timezone(&tz).date_naive();
    (today - local_date(t, tz)).num_days()
}

impl Candidate {
    /// Its place in the repository's snapshot order.
    pub fn order_key(&self) -> OrderKey {
        OrderKey {
            time: self.time.to_utc(),
            written: self.written,
            id: self.id,
        }
    }
}

/// Why a snapshot dated after now is kept.
pub const FUTURE: &str = "dated after now";

/// Decides for one group. `snaps` may come in any order.
pub fn apply(snaps: &[Candidate], rules: &Rules, tz: Tz, now: DateTime<Utc>) -> Decision {
    let mut all: Vec<&Candidate> = snaps.iter().collect();
    all.sort_by_key(|c| std::cmp::Reverse(c.order_key()));
    let (future, order): (Vec<&Candidate>, Vec<&Candidate>) =
        all.iter().partition(|c| c.time > now);
    if *rules == Rules::default() {
        // A policy that says nothing about a kind removes none of it.
        return Decision {
            keep: all
                .iter()
                .map(|c| (c.id, vec!["no rule for this kind".into()]))
                .collect(),
            remove: vec![],
        };
    }
    let mut reasons: BTreeMap<SnapshotId, Vec<String>> = BTreeMap::new();
    let mut keep = |id: SnapshotId, why: String| reasons.entry(id).or_default().push(why);

    if let Some(first) = order.first() {
        keep(first.id, "newest of its group".into());
    }
    for c in &future {
        keep(c.id, FUTURE.into());
    }
    for c in all.iter().filter(|c| c.protected) {
        keep(c.id, "protected".into());
    }
    if let Some(n) = rules.last {
        for c in order.iter().take(n as usize) {
            keep(c.id, format!("last {n}"));
        }
    }
    for (count, unit, name) in [
        (rules.daily, Unit::Day, "daily"),
        (rules.weekly, Unit::Week, "weekly"),
        (rules.monthly, Unit::Month, "monthly"),
        (rules.yearly, Unit::Year, "yearly"),
    ] {
        let Some(n) = count else { continue };
        let mut seen = HashSet::new();
        for c in &order {
            if seen.len() >= n as usize {
                break;
            }
            let b = bucket(&c.time, tz, unit);
            if seen.insert(b.clone()) {
                keep(c.id, format!("{name} {b}"));
            }
        }
    }
    if let Some(w) = rules.within.as_deref().and_then(|w| parse_duration(w).ok()) {
        for c in &order {
            if now.timestamp() - c.time.timestamp() < w {
                keep(
                    c.id,
                    format!("within {}", rules.within.as_deref().unwrap_or_default()),
                );
            }
        }
    }
    if let Some(l) = &rules.ladder {
        for (id, why) in ladder_keep(&order, l, tz, now) {
            keep(id, why);
        }
    }
    let mut d = Decision::default();
    for c in all {
        match reasons.remove(&c.id) {
            Some(why) => d.keep.push((c.id, why)),
            None => d.remove.push(c.id),
        }
    }
    d
}

/// The intervals of ages, in days, that a ladder promises: `[r_i, r_i+1)` for
/// each rung, and `[r_k, r_k + (r_k - r_k-1))` for the last (`[r, 2r)` when
/// there is a single rung).
pub fn ladder_intervals(rungs: &[u32]) -> Vec<(i64, i64)> {
    let r: Vec<i64> = rungs.iter().map(|&x| x as i64).collect();
    let mut out = Vec::new();
    for i in 0..r.len() {
        let hi = if i + 1 < r.len() {
            r[i + 1]
        } else if i > 0 {
            r[i] + (r[i] - r[i - 1])
        } else {
            2 * r[i].max(1)
        };
        out.push((r[i], hi));
    }
    out
}

/// The age ladder as a guarantee.
///
/// For an interval `[lo, hi)` of width `w`, a snapshot taken on day `b`
/// covers it from day `b + lo` to day `b + hi`. Coverage never breaks as long
/// as the kept snapshots of the interval are taken at most `w` days apart and
/// each is kept until it is `hi` days old. So, per interval: start from the
/// oldest snapshot younger than `hi` days, then repeatedly keep the youngest
/// one taken at most `w` days later (the nearest later one when a gap is
/// wider: missed days degrade to the closest restore point), up to the
/// newest. With a push every day, that keeps about `hi / w + 1` snapshots per
/// interval, a handful for the whole ladder, and at every moment each
/// interval holds a kept snapshot once the group is old enough. When missed
/// days leave an interval empty, the nearest older snapshot is kept for it.
pub fn ladder_keep(
    order: &[&Candidate],
    rungs: &[u32],
    tz: Tz,
    now: DateTime<Utc>,
) -> Vec<(SnapshotId, String)> {
    // Newest snapshot of each day, by age in days (several pushes a day count once).
    let mut by_age: BTreeMap<i64, &Candidate> = BTreeMap::new();
    for c in order {
        let a = age_days(&c.time, &now, tz).max(0);
        by_age.entry(a).or_insert(c);
    }
    let mut out = Vec::new();
    for (lo, hi) in ladder_intervals(rungs) {
        let w = hi - lo;
        let why = format!("ladder [{lo}d, {hi}d)");
        if by_age.range(lo..hi).next().is_none() {
            // Missed days left the interval empty: the nearest older restore
            // point stands in until a younger one ages into it.
            if let Some((_, c)) = by_age.range(hi..).next() {
                out.push((c.id, format!("{why}, nearest older")));
            }
        }
        let Some((&oldest, _)) = by_age.range(..hi).next_back() else {
            continue;
        };
        let mut age = oldest;
        loop {
            out.push((by_age[&age].id, why.clone()));
            if age == 0 {
                break;
            }
            // Youngest snapshot taken at most w days later, else the next one.
            let next = by_age
                .range(age - w..age)
                .next()
                .or_else(|| by_age.range(..age).next_back());
            match next {
                Some((&a, _)) => age = a,
                None => break,
            }
        }
    }
    out
}

/// How a promise stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Status {
    /// Kept.
    Ok,
    /// The group's history is still shorter than the promise.
    Pending,
    /// Broken: a restore point that should exist does not.
    Missing,
}

/// One promise of a policy, checked against the snapshots that exist.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Check {
    /// What is promised.
    pub promise: String,
    /// Whether it holds.
    pub status: Status,
    /// Restore points that count for it.
    pub points: usize,
    /// Details (missing days, the empty age interval).
    pub detail: String,
}

/// Checks what `rules` promise against the snapshots of one group.
/// Snapshots dated after `now` are no restore point of any promise.
pub fn check_promises(
    snaps: &[Candidate],
    rules: &Rules,
    tz: Tz,
    now: DateTime<Utc>,
) -> Vec<Check> {
    let (future, real): (Vec<Candidate>, Vec<Candidate>) =
        snaps.iter().cloned().partition(|c| c.time > now);
    let snaps = &real[..];
    let future_note = match future.len() {
        0 => String::new(),
        n => format!("; {n} snapshot(s) dated after now, not counted"),
    };
    let mut out = Vec::new();
    let oldest_age = snaps.iter().map(|c| age_days(&c.time, &now, tz)).max();
    let newest_age = snaps.iter().map(|c| age_days(&c.time, &now, tz)).min();
    let span = |n: i64| oldest_age.is_some_and(|o| o >= n);
    for (count, unit, name, days) in [
        (rules.daily, Unit::Day, "daily", 1),
        (rules.weekly, Unit::Week, "weekly", 7),
        (rules.monthly, Unit::Month, "monthly", 31),
        (rules.yearly, Unit::Year, "yearly", 366),
    ] {
        let Some(n) = count else { continue };
        // The buckets the promise covers: the current one and the n-1 before.
        let today = now.with_timezone(&tz).date_naive();
        let mut wanted: Vec<String> = Vec::new();
        let mut d = today;
        while wanted.len() < n as usize {
            let t = tz
                .from_local_datetime(&d.and_hms_opt(12, 0, 0).expect("noon"))
                .earliest()
                .expect("noon exists")
                .fixed_offset();
            let b = bucket(&t, tz, unit);
            if wanted.last() != Some(&b) {
                wanted.push(b);
            }
            d = d.pred_opt().expect("dates go back far enough");
        }
        let have: HashSet<String> = snaps.iter().map(|c| bucket(&c.time, tz, unit)).collect();
        let oldest_bucket = snaps.iter().map(|c| bucket(&c.time, tz, unit)).min();
        // The current bucket may still be waiting for its push: only buckets
        // that are over can be missing. One older than the group's first
        // snapshot is not missing but not yet due (the history is short).
        let mut missing: Vec<&String> = Vec::new();
        let mut not_yet = false;
        for b in wanted.iter().skip(1).filter(|b| !have.contains(*b)) {
            if oldest_bucket
                .as_ref()
                .is_some_and(|o| b.as_str() < o.as_str())
            {
                not_yet = true;
            } else {
                missing.push(b);
            }
        }
        let stale = newest_age.is_none_or(|a| a > days + 1);
        let points = wanted.iter().filter(|b| have.contains(*b)).count();
        let status = if stale || !missing.is_empty() {
            Status::Missing
        } else if not_yet {
            Status::Pending
        } else {
            Status::Ok
        };
        let mut detail = match newest_age {
            Some(a) => format!("newest {a} day(s) old"),
            None => "no restore point".into(),
        };
        if !missing.is_empty() {
            let list: Vec<&str> = missing.iter().map(|s| s.as_str()).collect();
            detail.push_str(&format!("; none in {}", list.join(", ")));
        }
        detail.push_str(&future_note);
        out.push(Check {
            promise: format!("{name} x{n}"),
            status,
            points,
            detail,
        });
    }
    if let Some(l) = &rules.ladder {
        for (lo, hi) in ladder_intervals(l) {
            let points = snaps
                .iter()
                .filter(|c| (lo..hi).contains(&age_days(&c.time, &now, tz)))
                .count();
            let status = if points > 0 {
                Status::Ok
            } else if !span(lo) {
                Status::Pending
            } else {
                Status::Missing
            };
            let detail = if points > 0 {
                format!("{points} point(s) {lo} to {hi} days old{future_note}")
            } else {
                format!("no point between {lo} and {hi} days old{future_note}")
            };
            out.push(Check {
                promise: format!("ladder [{lo}d, {hi}d)"),
                status,
                points,
                detail,
            });
        }
    }
    if let Some(n) = rules.last {
        let have = snaps.len();
        let status = if have >= n as usize {
            Status::Ok
        } else {
            Status::Pending
        };
        out.push(Check {
            promise: format!("last {n}"),
            status,
            points: have.min(n as usize),
            detail: format!("{have} point(s){future_note}"),
        });
    }
    out
}

#[cfg(test)]
mod tests;
