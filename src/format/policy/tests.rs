//! Calendar buckets at time-zone and DST edges, the rules, and the age
//! ladder's guarantee over months of simulated daily pruning.

use super::*;
use chrono::Duration;

fn paris() -> Tz {
    "Europe/Paris".parse().unwrap()
}

fn at(s: &str) -> DateTime<FixedOffset> {
    DateTime::parse_from_rfc3339(s).unwrap()
}

fn utc(s: &str) -> DateTime<Utc> {
    at(s).with_timezone(&Utc)
}

fn cand(n: u8, t: DateTime<FixedOffset>) -> Candidate {
    let mut id = [0u8; 32];
    id[0] = n;
    id[1..9].copy_from_slice(&t.timestamp().to_le_bytes());
    Candidate {
        id: SnapshotId(id),
        time: t,
        written: None,
        protected: false,
    }
}

#[test]
fn calendar_buckets_table() {
    let p = paris();
    let utc_tz: Tz = "UTC".parse().unwrap();
    let rows: &[(&str, Tz, Unit, &str)] = &[
        // 23:30 UTC on the 24th is already the 25th in Paris (UTC+1 in winter).
        ("2026-11-24T23:30:00+00:00", p, Unit::Day, "2026-11-25"),
        ("2026-11-24T23:30:00+00:00", utc_tz, Unit::Day, "2026-11-24"),
        // The recorded offset does not matter, the policy's zone does.
        ("2026-11-25T00:30:00+09:00", p, Unit::Day, "2026-11-24"),
        // Summer time: UTC+2, so 22:30 UTC is the next day in Paris.
        ("2026-07-14T22:30:00+00:00", p, Unit::Day, "2026-07-15"),
        // DST starts 2026-03-29 at 02:00 Paris: 00:59 UTC is 01:59 CET, 01:00 UTC is 03:00 CEST.
        ("2026-03-29T00:59:00+00:00", p, Unit::Day, "2026-03-29"),
        ("2026-03-28T23:30:00+00:00", p, Unit::Day, "2026-03-29"),
        ("2026-03-28T22:59:00+00:00", p, Unit::Day, "2026-03-28"),
        // DST ends 2026-10-25: 22:30 UTC on the 24th is 00:30 CEST on the 25th.
        ("2026-10-24T22:30:00+00:00", p, Unit::Day, "2026-10-25"),
        ("2026-10-25T22:59:00+00:00", p, Unit::Day, "2026-10-25"),
        ("2026-10-25T23:00:00+00:00", p, Unit::Day, "2026-10-26"),
        // ISO weeks: Monday starts a week; 2026-01-01 (Thursday) is in 2026-W01,
        // 2027-01-01 (Friday) is in 2026-W53; 2025-12-29 (Monday) is in 2026-W01.
        ("2026-01-01T12:00:00+01:00", p, Unit::Week, "2026-W01"),
        ("2027-01-01T12:00:00+01:00", p, Unit::Week, "2026-W53"),
        ("2025-12-29T12:00:00+01:00", p, Unit::Week, "2026-W01"),
        ("2025-12-28T12:00:00+01:00", p, Unit::Week, "2025-W52"),
        ("2026-11-29T23:30:00+00:00", p, Unit::Week, "2026-W49"),
        ("2026-11-29T22:30:00+00:00", p, Unit::Week, "2026-W48"),
        // Months and years turn at local midnight.
        ("2026-11-30T23:30:00+00:00", p, Unit::Month, "2026-12"),
        ("2026-11-30T22:30:00+00:00", p, Unit::Month, "2026-11"),
        ("2026-12-31T23:30:00+00:00", p, Unit::Year, "2027"),
        ("2026-12-31T22:30:00+00:00", p, Unit::Year, "2026"),
        ("2024-02-29T12:00:00+01:00", p, Unit::Month, "2024-02"),
    ];
    for (t, tz, unit, want) in rows {
        assert_eq!(bucket(&at(t), *tz, *unit), *want, "{t} {unit:?} in {tz}");
    }
}

#[test]
fn age_in_days_follows_local_dates() {
    let p = paris();
    let now = utc("2026-11-25T02:00:00+00:00"); // 03:00 in Paris
    assert_eq!(age_days(&at("2026-11-24T23:30:00+00:00"), &now, p), 0);
    assert_eq!(age_days(&at("2026-11-24T22:30:00+00:00"), &now, p), 1);
    assert_eq!(age_days(&at("2026-11-11T03:00:00+01:00"), &now, p), 14);
}

#[test]
fn last_and_bucket_rules_keep_the_newest_per_bucket() {
    let p = paris();
    let base = at("2026-11-01T03:00:00+01:00");
    let snaps: Vec<Candidate> = (0..40u8)
        .flat_map(|d| {
            let t = base + Duration::days(d as i64);
            [cand(2 * d, t), cand(2 * d + 1, t + Duration::hours(12))]
        })
        .collect();
    let now = (base + Duration::days(39) + Duration::hours(13)).with_timezone(&Utc);
    let d = apply(
        &snaps,
        &Rules {
            daily: Some(7),
            ..Rules::default()
        },
        p,
        now,
    );
    assert_eq!(d.keep.len(), 7, "{d:?}");
    // The kept ones are the afternoon pushes of the last 7 days.
    for (id, why) in &d.keep {
        let c = snaps.iter().find(|c| c.id == *id).unwrap();
        assert_eq!(c.time.time().format("%H").to_string(), "15", "{why:?}");
    }
    assert_eq!(d.keep.len() + d.remove.len(), snaps.len());

    let d = apply(
        &snaps,
        &Rules {
            last: Some(3),
            weekly: Some(2),
            ..Rules::default()
        },
        p,
        now,
    );
    let weekly = d
        .keep
        .iter()
        .filter(|(_, w)| w.iter().any(|x| x.starts_with("weekly")))
        .count();
    assert_eq!(weekly, 2);
    assert!(d.keep.len() <= 5);

    let d = apply(
        &snaps,
        &Rules {
            within: Some("36h".into()),
            ..Rules::default()
        },
        p,
        now,
    );
    assert_eq!(d.keep.len(), 3, "within is measured from now: {d:?}");

    let d = apply(
        &snaps,
        &Rules {
            monthly: Some(2),
            yearly: Some(1),
            ..Rules::default()
        },
        p,
        now,
    );
    assert_eq!(
        d.keep.len(),
        2,
        "the newest of November also stands for 2026: {d:?}"
    );
}

#[test]
fn protected_and_newest_are_always_kept() {
    let p = paris();
    let t = at("2026-01-01T03:00:00+01:00");
    let mut old = cand(1, t);
    old.protected = true;
    let snaps = vec![
        old.clone(),
        cand(2, t + Duration::days(1)),
        cand(3, t + Duration::days(2)),
    ];
    let now = utc("2026-11-25T03:00:00+01:00");
    let d = apply(
        &snaps,
        &Rules {
            within: Some("1d".into()),
            ..Rules::default()
        },
        p,
        now,
    );
    let kept: Vec<SnapshotId> = d.keep.iter().map(|(i, _)| *i).collect();
    assert!(kept.contains(&old.id), "protected");
    assert!(
        kept.contains(&snaps[2].id),
        "the newest of a group is never removed"
    );
    assert_eq!(d.remove, vec![snaps[1].id]);
}

#[test]
fn rules_validate() {
    assert!(
        Rules::default().validate().is_ok(),
        "no rule: keep everything"
    );
    assert!(Rules {
        ladder: Some(vec![3, 2]),
        ..Rules::default()
    }
    .validate()
    .is_err());
    assert!(Rules {
        within: Some("3x".into()),
        ..Rules::default()
    }
    .validate()
    .is_err());
    assert!(Rules {
        ladder: Some(vec![1, 2, 3, 7, 14]),
        ..Rules::default()
    }
    .validate()
    .is_ok());
    assert_eq!(parse_duration("36h"), Ok(36 * 3600));
    assert_eq!(parse_duration("4w"), Ok(28 * 86400));
    assert_eq!(
        ladder_intervals(&[1, 2, 3, 7, 14]),
        vec![(1, 2), (2, 3), (3, 7), (7, 14), (14, 21)]
    );
}

/// Runs `days` days of one push a day (at a jittered hour, skipping the days
/// `skip` says), each followed by a prune with the ladder; returns, per day,
/// the kept ages.
fn simulate_ladder(
    days: i64,
    rungs: &[u32],
    skip: impl Fn(i64) -> bool,
) -> Vec<(i64, Vec<i64>, Vec<i64>)> {
    let p = paris();
    let rules = Rules {
        ladder: Some(rungs.to_vec()),
        ..Rules::default()
    };
    let start = at("2026-03-01T03:00:00+01:00");
    let mut kept: Vec<Candidate> = Vec::new();
    let mut pushed_ages_source: Vec<DateTime<FixedOffset>> = Vec::new();
    let mut out = Vec::new();
    for day in 0..days {
        let jitter = Duration::minutes((day * 37) % 120 - 60);
        let t = start + Duration::days(day) + jitter;
        let now = (t + Duration::minutes(5)).with_timezone(&Utc);
        if !skip(day) {
            kept.push(cand((day % 250) as u8, t));
            pushed_ages_source.push(t);
        }
        let d = apply(&kept, &rules, p, now);
        let keep: HashSet<SnapshotId> = d.keep.iter().map(|(i, _)| *i).collect();
        kept.retain(|c| keep.contains(&c.id));
        let ages: Vec<i64> = kept.iter().map(|c| age_days(&c.time, &now, p)).collect();
        let pushed: Vec<i64> = pushed_ages_source
            .iter()
            .map(|t| age_days(t, &now, p))
            .collect();
        // Between prunes the clock moves on: check again just before the next push.
        let later = (t + Duration::days(1) - Duration::minutes(70)).with_timezone(&Utc);
        let ages_later: Vec<i64> = kept.iter().map(|c| age_days(&c.time, &later, p)).collect();
        let pushed_later: Vec<i64> = pushed_ages_source
            .iter()
            .map(|t| age_days(t, &later, p))
            .collect();
        out.push((day, ages, pushed));
        out.push((day, ages_later, pushed_later));
    }
    out
}

#[test]
fn ladder_guarantee_holds_every_day_with_few_snapshots() {
    let rungs = [1u32, 2, 3, 7, 14];
    let intervals = ladder_intervals(&rungs);
    for (day, ages, _) in simulate_ladder(120, &rungs, |_| false) {
        for &(lo, hi) in &intervals {
            if day >= hi {
                assert!(
                    ages.iter().any(|a| (lo..hi).contains(a)),
                    "day {day}: nothing in [{lo},{hi}) among {ages:?}"
                );
            }
        }
        assert!(
            ages.len() <= 2 * rungs.len(),
            "day {day}: {} kept ({ages:?})",
            ages.len()
        );
    }
}

#[test]
fn ladder_degrades_gracefully_on_missed_days() {
    let rungs = [1u32, 2, 3, 7, 14];
    let intervals = ladder_intervals(&rungs);
    // Miss every 5th day, and a whole week around day 60.
    let skip = |d: i64| d % 5 == 4 || (58..65).contains(&d);
    for (day, ages, pushed) in simulate_ladder(120, &rungs, skip) {
        assert!(!ages.is_empty(), "day {day}: everything was removed");
        for &(lo, hi) in &intervals {
            // Whenever some snapshot ever pushed has an age in the interval,
            // a kept one does: nothing the plan could offer is lost.
            if pushed.iter().any(|a| (lo..hi).contains(a)) {
                assert!(
                    ages.iter().any(|a| (lo..hi).contains(a)),
                    "day {day}: [{lo},{hi}) empty; kept {ages:?}"
                );
            }
        }
        // Where the exact interval is empty, the nearest older point is kept.
        let oldest_pushed = pushed.iter().max().copied().unwrap_or(0);
        let oldest_kept = ages.iter().max().copied().unwrap_or(0);
        assert!(
            oldest_kept >= oldest_pushed.min(14),
            "day {day}: oldest kept {oldest_kept}"
        );
        assert!(
            ages.len() <= 3 * rungs.len(),
            "day {day}: {} kept",
            ages.len()
        );
    }
}

#[test]
fn promises_report_ok_pending_and_missing() {
    let p = paris();
    let now = utc("2026-11-25T04:00:00+01:00");
    let daily = Rules {
        daily: Some(5),
        ..Rules::default()
    };
    let snaps: Vec<Candidate> = (0..6)
        .map(|d| {
            cand(
                d,
                at("2026-11-25T03:00:00+01:00") - Duration::days(d as i64),
            )
        })
        .collect();
    assert_eq!(check_promises(&snaps, &daily, p, now)[0].status, Status::Ok);
    // A hole two days ago breaks the promise.
    let holed: Vec<Candidate> = snaps.iter().filter(|c| c.id.0[0] != 2).cloned().collect();
    let c = &check_promises(&holed, &daily, p, now)[0];
    assert_eq!(c.status, Status::Missing);
    assert!(c.detail.contains("2026-11-23"), "{c:?}");
    // A young group is pending, not broken.
    assert_eq!(
        check_promises(&snaps[..2], &daily, p, now)[0].status,
        Status::Pending
    );
    // No push for three days: stale.
    assert_eq!(
        check_promises(&snaps[3..], &daily, p, now)[0].status,
        Status::Missing
    );
    let ladder = Rules {
        ladder: Some(vec![1, 2, 3, 7, 14]),
        ..Rules::default()
    };
    let checks = check_promises(&snaps, &ladder, p, now);
    assert_eq!(checks.len(), 5);
    assert_eq!(checks[2].status, Status::Ok, "{checks:?}");
    assert_eq!(
        checks[3].status,
        Status::Pending,
        "history of 5 days cannot cover [7,14)"
    );
    let mut with_old = snaps.clone();
    with_old.push(cand(40, at("2026-11-01T03:00:00+01:00")));
    let checks = check_promises(&with_old, &ladder, p, now);
    assert_eq!(checks[3].status, Status::Missing, "{checks:?}");
    assert!(checks[3].detail.contains("between 7 and 14"));
}

#[test]
fn a_snapshot_dated_after_now_displaces_no_real_one() {
    let now = utc("2026-11-29T12:00:00+00:00");
    let future = cand(99, at("2027-11-29T03:00:00+00:00"));
    let real: Vec<Candidate> = (0..4)
        .map(|d| {
            cand(
                d,
                at("2026-11-29T03:00:00+00:00") - Duration::days(d as i64),
            )
        })
        .collect();
    let mut all = real.clone();
    all.push(future.clone());
    let tz = paris();
    for rules in [
        Rules {
            ladder: Some(vec![1, 2, 3, 7, 14]),
            ..Rules::default()
        },
        Rules {
            daily: Some(2),
            ..Rules::default()
        },
        Rules {
            last: Some(1),
            ..Rules::default()
        },
    ] {
        let with = apply(&all, &rules, tz, now);
        let without = apply(&real, &rules, tz, now);
        let kept = |d: &Decision| -> Vec<SnapshotId> { d.keep.iter().map(|k| k.0).collect() };
        let reasons = |id: SnapshotId| with.keep.iter().find(|k| k.0 == id).map(|k| k.1.clone());
        assert_eq!(
            reasons(future.id),
            Some(vec![FUTURE.to_string()]),
            "{rules:?}"
        );
        // The real snapshots fare exactly as if the future one did not exist.
        let mut real_kept = kept(&with);
        real_kept.retain(|id| *id != future.id);
        assert_eq!(real_kept, kept(&without), "{rules:?}");
        assert_eq!(with.remove, without.remove, "{rules:?}");
        assert!(reasons(real[0].id)
            .unwrap()
            .contains(&"newest of its group".to_string()));
    }
}

#[test]
fn equal_times_resolve_to_the_last_written() {
    let now = utc("2026-11-29T12:00:00+00:00");
    let t = at("2026-11-28T03:00:00+00:00");
    // Ids in the opposite order of the writes: the ids must not decide.
    let snaps: Vec<Candidate> = (0..5u8)
        .map(|i| Candidate {
            written: Some(utc("2026-11-29T10:00:00+00:00") + Duration::seconds(i as i64)),
            ..cand(10 - i, t)
        })
        .collect();
    let d = apply(
        &snaps,
        &Rules {
            daily: Some(1),
            ..Rules::default()
        },
        paris(),
        now,
    );
    assert_eq!(d.keep.len(), 1);
    assert_eq!(d.keep[0].0, snaps[4].id, "the last one written is kept");
    assert_eq!(d.remove, [3, 2, 1, 0].map(|i| snaps[i].id), "newest first");
}

#[test]
fn report_before_every_snapshot_says_so() {
    let snaps = vec![cand(1, at("2026-11-25T03:00:00+01:00"))];
    let now = utc("2000-01-01T00:00:00+00:00");
    for rules in [
        Rules {
            daily: Some(3),
            ..Rules::default()
        },
        Rules {
            ladder: Some(vec![1, 2]),
            ..Rules::default()
        },
    ] {
        for c in check_promises(&snaps, &rules, paris(), now) {
            assert!(!c.detail.contains(" -"), "no negative age: {c:?}");
            assert!(c.detail.contains("dated after now"), "{c:?}");
            assert_ne!(c.status, Status::Ok, "{c:?}");
            assert_eq!(c.points, 0, "{c:?}");
        }
    }
}
