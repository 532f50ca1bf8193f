//! `snap report`: the restore points against the plan's promises.

use super::Ctx;
use anyhow::Result;
use snap::format::policy::Status;
use snap::ops::report;
use snap::repo::Mode;

/// Exit code when a promise of the plan is broken.
pub const EXIT_BROKEN_PROMISE: i32 = 4;

/// Compare the restore points with what the policies promise.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Only this site.
    #[arg(long, value_parser = super::push::non_empty)]
    site: Option<String>,
    /// Print only what is wrong (nothing when every promise holds): for mail. `--quiet` does the same.
    #[arg(long)]
    problems_only: bool,
    #[command(flatten)]
    policy: super::PolicyArgs,
}

/// The pushes the configuration expects, for the report at `now`.
pub fn expectations(ctx: &Ctx, now: chrono::DateTime<chrono::Utc>) -> Vec<report::Expect> {
    let Some(c) = &ctx.config else {
        return Vec::new();
    };
    let host = c.host.clone().unwrap_or_else(snap::repo::lock::host_name);
    c.expected()
        .into_iter()
        .map(|e| {
            let (since, deadline) = e.due(now, c);
            report::Expect {
                schedule: format!("{}, by {}", e.period, c.schedule.deadline.format("%H:%M")),
                level: e.level,
                kind: e.kind,
                site: e.site,
                paths: e.paths,
                host: host.clone(),
                since,
                deadline,
            }
        })
        .collect()
}

pub fn run(ctx: &Ctx, a: Args) -> Result<i32> {
    let policies = a.policy.policies(ctx)?;
    let now = a.policy.now()?;
    let repo = ctx.open(Mode::Read, "report")?;
    let tz = ctx.timezone();
    let show = |t: chrono::DateTime<chrono::Utc>| super::term::human_time(&t.to_rfc3339(), tz);
    let expected = expectations(ctx, now);
    let mut groups = report::report(&repo, &policies, a.site.as_deref(), now, &expected, &show)?;
    let problems_only = a.problems_only || ctx.quiet;
    if problems_only {
        groups.retain(|g| g.status == Status::Missing || g.dump_alert.is_some());
        for g in &mut groups {
            g.checks.retain(|c| c.status == Status::Missing);
        }
    }
    // A suspect newest dump breaks the promise as surely as a missing one:
    // the newest restore point is probably not a restore point.
    let broken = groups
        .iter()
        .any(|g| g.status == Status::Missing || g.dump_alert.is_some());
    // The restore points counted below are only those the storage shows:
    // a state that contradicts them fails the report.
    let findings = repo.state_findings()?;
    super::state::print_findings(&findings, ctx.quiet, |f| {
        eprintln!(
            "snap: error: {}: {}",
            super::escape_message(&f.object),
            super::escape_message(&f.message)
        );
        Ok(())
    })?;
    if ctx.json {
        super::print_json(&groups)?;
    } else {
        let labels: Vec<String> = groups
            .iter()
            .map(|g| super::escape_message(&g.group.to_string()))
            .collect();
        let width = labels.iter().map(|l| l.chars().count()).max().unwrap_or(0);
        for (g, label) in groups.iter().zip(&labels) {
            let future = match g.future {
                0 => String::new(),
                n => format!(" ({n} more dated after now, not counted)"),
            };
            outln!(
                "{label:<width$}  {:<7}  {:>3} point(s)  newest {:<23}  policy {}{future}",
                format!("{:?}", g.status).to_uppercase(),
                g.points,
                g.newest
                    .as_deref()
                    .map(|t| super::term::human_time(t, tz))
                    .unwrap_or_else(|| "-".into()),
                g.policy.as_deref().unwrap_or("none"),
            );
            for c in &g.checks {
                outln!(
                    "    {:<18} {:<8} {}",
                    c.promise,
                    format!("{:?}", c.status).to_uppercase(),
                    c.detail
                );
            }
            if let Some(a) = &g.last_alert {
                let mut what = vec![format!(
                    "{}% changed ({} added, {} modified, {} deleted){}",
                    a.changed_percent,
                    a.added,
                    a.modified,
                    a.deleted,
                    if a.over_ratio {
                        ", over the alert ratio"
                    } else {
                        ""
                    }
                )];
                if a.suspicious > 0 {
                    what.push(format!(
                        "{} new script(s) under upload directories",
                        a.suspicious
                    ));
                }
                outln!(
                    "    {:<18} {:<8} snapshot {} of {}: {}",
                    "last alert",
                    "ALERT",
                    a.snapshot,
                    super::term::human_time(&a.time, tz),
                    what.join("; ")
                );
            }
            if let Some(d) = &g.dump_alert {
                let previous = match d.previous_bytes {
                    Some(b) => format!("previous {}", super::bytes(b)),
                    None => "no previous dump".into(),
                };
                outln!(
                    "    {:<18} {:<8} snapshot {} of {}: {}, {} ({previous})",
                    "last dump",
                    "SUSPECT",
                    d.snapshot,
                    d.time,
                    super::bytes(d.bytes),
                    d.reason
                );
            }
        }
        if groups.is_empty() && !problems_only {
            outln!("no snapshots");
        }
    }
    if findings.iter().any(|f| f.is_error()) {
        anyhow::bail!(
            "the repository does not match its state record (see the errors above, each says what to do): the restore points reported may not be all there should be"
        );
    }
    Ok(if broken { EXIT_BROKEN_PROMISE } else { 0 })
}
