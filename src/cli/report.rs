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
    #[command(flatten)]
    policy: super::PolicyArgs,
}

pub fn run(ctx: &Ctx, a: Args) -> Result<i32> {
    let policies = a.policy.policies()?;
    let now = a.policy.now()?;
    let repo = ctx.open(Mode::Read, "report")?;
    let groups = report::report(&repo, &policies, a.site.as_deref(), now)?;
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
        for g in &groups {
            let future = match g.future {
                0 => String::new(),
                n => format!(" ({n} more dated after now, not counted)"),
            };
            outln!(
                "{}: {} point(s){future}, newest {}, policy {} — {:?}",
                g.group,
                g.points,
                g.newest.as_deref().unwrap_or("-"),
                g.policy.as_deref().unwrap_or("none"),
                g.status
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
                    a.time,
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
        if groups.is_empty() {
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
