//! `snap forget ID…` / `snap forget --site S --all`

use super::term::escape;
use super::{Ctx, FilterArgs};
use anyhow::Result;
use snap::ops::forget::{self, Selection};
use snap::repo::Mode;

/// Remove snapshots on purpose; the next prune reclaims their data.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Snapshot ids (prefixes) or `latest` (with the filters).
    snapshots: Vec<String>,
    /// Every snapshot of the site given with --site (a departed client).
    #[arg(long, conflicts_with = "snapshots")]
    all: bool,
    /// Remove protected snapshots too, and their protection.
    #[arg(long)]
    force: bool,
    /// Show what would be removed; change nothing.
    #[arg(long)]
    dry_run: bool,
    #[command(flatten)]
    filter: FilterArgs,
}

fn selection(ctx: &Ctx, a: &Args) -> Result<Selection> {
    let mut f = a.filter.filter(ctx);
    // Removing is never by containment: `--site S` means S's own
    // snapshots, not the global snapshots that hold S's directory.
    f.site_paths.clear();
    if a.all {
        let Some(site) = f.site.clone() else {
            anyhow::bail!(
                "--all needs --site SITE: snap forget removes every snapshot of one site, never of the whole repository"
            );
        };
        if f.kind.is_some() || f.level.is_some() || f.host.is_some() || !f.tags.is_empty() {
            anyhow::bail!(
                "--all takes only --site: it removes every snapshot of the site; name snapshots by id to remove some"
            );
        }
        return Ok(Selection::Site(site));
    }
    if a.snapshots.is_empty() {
        anyhow::bail!(
            "nothing to forget: give snapshot ids (see `snap snapshots`), or --site SITE --all for every snapshot of a site"
        );
    }
    Ok(Selection::Ids(a.snapshots.clone(), f))
}

pub fn run(ctx: &Ctx, a: Args) -> Result<i32> {
    let what = selection(ctx, &a)?;
    if let (Selection::Site(site), Some(c)) = (&what, &ctx.config) {
        if c.site(site).is_some() {
            // Said even with --quiet: the next report would say MISSING.
            eprintln!(
                "snap: warning: site {:?} is still in {}: remove its [sites.{}] there too, or snap run pushes it again and snap report says it is MISSING",
                escape(site),
                c.origin.display(),
                escape(site)
            );
        }
    }
    let repo = ctx.open(Mode::Exclusive, "forget")?;
    let plan = forget::plan(&repo, &what, a.force)?;
    let removed = if a.dry_run {
        0
    } else {
        forget::execute(&repo, &plan)?
    };
    if ctx.json {
        let list: Vec<serde_json::Value> = plan
            .iter()
            .map(|f| {
                let s = &f.snapshot;
                serde_json::json!({
                    "id": f.id.to_hex(),
                    "short_id": f.id.short(),
                    "time": s.time,
                    "host": s.host,
                    "site": s.site,
                    "kind": s.kind,
                    "level": s.level,
                    "paths": s.paths,
                    "protected": f.protected,
                })
            })
            .collect();
        super::print_json(
            &serde_json::json!({ "dry_run": a.dry_run, "snapshots": list, "removed": removed }),
        )?;
        return Ok(0);
    }
    if ctx.quiet {
        return Ok(0);
    }
    let verb = if a.dry_run { "would remove" } else { "removed" };
    for f in &plan {
        let s = &f.snapshot;
        outln!(
            "{verb} {}  {}  {}  {}  {}  {}{}",
            f.id.short(),
            super::term::human_time(&s.time, ctx.timezone()),
            s.site
                .as_deref()
                .map(escape)
                .unwrap_or_else(|| "global".into()),
            s.kind,
            super::snapshots::level_name(s.level),
            s.paths
                .iter()
                .map(|p| escape(p))
                .collect::<Vec<_>>()
                .join(" "),
            if f.protected { " (was protected)" } else { "" }
        );
    }
    outln!(
        "{verb} {} snapshot(s); the data only they needed stays in the repository until the next `snap prune`",
        plan.len()
    );
    Ok(0)
}
