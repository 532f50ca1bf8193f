//! `snap prune --policy NAME`

use super::term::human_time;
use super::Ctx;
use anyhow::Result;
use snap::ops::prune::{self, PruneOptions};
use snap::repo::Mode;

/// Apply a retention policy and reclaim the space of what is removed.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The policy: level1, level2, one from the policy file or the configuration, or `all` (each group by the policy in charge of it).
    #[arg(long)]
    policy: String,
    /// Show what would be removed and freed; change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Only this site's snapshots.
    #[arg(long, value_parser = super::push::non_empty)]
    site: Option<String>,
    /// Repack until at most this share of the repository is unused, in percent.
    #[arg(long, default_value_t = 5.0)]
    max_unused: f64,
    #[command(flatten)]
    clock: super::PolicyArgs,
}

pub fn run(ctx: &Ctx, a: Args) -> Result<i32> {
    let policies = a.clock.policies(ctx)?;
    let now = a.clock.now()?;
    if !(0.0..=100.0).contains(&a.max_unused) {
        anyhow::bail!(
            "--max-unused {} is not a percentage between 0 and 100",
            a.max_unused
        );
    }
    let repo = ctx.open(Mode::Exclusive, "prune")?;
    let opts = PruneOptions {
        policy: a.policy.clone(),
        policies,
        site: a.site.clone(),
        now,
        max_unused: a.max_unused / 100.0,
    };
    let progress = ctx.progress(None);
    let plan = prune::plan(&repo, &opts, &progress)?;
    let stats = if a.dry_run {
        None
    } else {
        Some(prune::execute(&repo, &plan, &progress)?)
    };
    progress.finish();
    if ctx.json {
        super::print_json(
            &serde_json::json!({ "dry_run": a.dry_run, "plan": plan, "done": stats }),
        )?;
        return Ok(0);
    }
    if ctx.quiet {
        return Ok(0);
    }
    let tz = ctx.timezone();
    for g in &plan.groups {
        outln!(
            "{}: keep {}, remove {}",
            super::term::escape_message(&g.group.to_string()),
            g.keep.len(),
            g.remove.len()
        );
        let mut rows: Vec<Vec<String>> = Vec::new();
        for kept in &g.keep {
            rows.push(vec![
                "  keep  ".into(),
                kept.id.short(),
                human_time(&kept.time, tz),
                kept.reasons.join(", "),
            ]);
        }
        for r in &g.remove {
            rows.push(vec![
                "  remove".into(),
                r.id.short(),
                human_time(&r.time, tz),
            ]);
        }
        for line in super::term::table(&rows, &[]) {
            outln!("{line}");
        }
    }
    let a_plan = &plan.adhoc;
    if !a_plan.expired.is_empty() || !a_plan.keep.is_empty() {
        outln!(
            "expired ad-hoc: remove {}; ad-hoc kept: {}",
            a_plan.expired.len(),
            a_plan.keep.len()
        );
        for x in &a_plan.expired {
            outln!(
                "  remove {}  {}  expired {}  {}",
                x.id.short(),
                x.time,
                x.expires.as_deref().unwrap_or("-"),
                super::term::escape(&x.group.to_string())
            );
        }
        for x in &a_plan.keep {
            let why = if x.protected {
                "protected".to_string()
            } else {
                match &x.expires {
                    Some(e) => format!("expires {e}"),
                    None => "no expiry recorded".into(),
                }
            };
            outln!(
                "  keep   {}  {}  {}  {}",
                x.id.short(),
                x.time,
                why,
                super::term::escape(&x.group.to_string())
            );
        }
    }
    let p = &plan.packs;
    outln!(
        "{}{} snapshot(s); packs: {} to delete, {} to repack ({} copied); {} of {} freed, {} left unused",
        if a.dry_run { "would remove " } else { "removed " },
        plan.remove.len(),
        p.delete.len(),
        p.repack.len(),
        super::bytes(p.bytes_repacked),
        super::bytes(p.bytes_freed),
        super::bytes(p.bytes_before),
        super::bytes(p.unused_after)
    );
    Ok(0)
}
