//! `snap find GLOB`

use super::term::{escape, escape_bytes, human_time};
use super::{Ctx, FilterArgs};
use anyhow::Result;
use snap::ops::cache::ReadCache;
use snap::ops::find::Finder;
use snap::ops::select;
use snap::repo::Mode;

/// Show which snapshots hold paths matching a glob, newest first.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Glob: without `/` it matches names at any depth (`*.php`); with `/`,
    /// the whole path inside the snapshot (`wp-content/uploads/**/*.php`).
    glob: String,
    /// Paths printed per snapshot (--json gives all).
    #[arg(long, default_value_t = 20)]
    max_paths: usize,
    #[command(flatten)]
    filter: FilterArgs,
}

pub fn run(ctx: &Ctx, a: Args) -> Result<i32> {
    let mut finder = Finder::new(&a.glob)?;
    let repo = ctx.open(Mode::Read, "find")?;
    let mut snaps = select::list_scoped(&repo, &a.filter.filter(ctx))?;
    snaps.reverse();
    let cache = ReadCache::new(super::READ_CACHE_BYTES);
    let mut json = Vec::new();
    let mut holding = 0;
    let tz = ctx.timezone();
    for (id, s) in &snaps {
        let paths = finder.find(&repo, &cache, &s.tree)?;
        if paths.is_empty() {
            continue;
        }
        holding += 1;
        if ctx.json {
            let mut v = serde_json::json!({
                "id": id.to_hex(),
                "short_id": id.short(),
                "time": s.time,
                "site": s.site,
                "level": s.level,
                "kind": s.kind,
                "count": paths.len(),
                "paths": paths.iter().map(|p| String::from_utf8_lossy(p)).collect::<Vec<_>>(),
            });
            // As `ls --json`: the exact bytes when a path is not UTF-8.
            if paths.iter().any(|p| std::str::from_utf8(p).is_err()) {
                v["paths_bytes"] = serde_json::json!(paths);
            }
            json.push(v);
            continue;
        }
        outln!(
            "{}  {}  {}  level {}  {}: {} path(s)",
            id.short(),
            human_time(&s.time, tz),
            s.site.as_deref().map(escape).unwrap_or_else(|| "-".into()),
            s.level,
            s.kind,
            paths.len()
        );
        for p in paths.iter().take(a.max_paths) {
            outln!("    {}", escape_bytes(p));
        }
        if paths.len() > a.max_paths {
            outln!("    and {} more", paths.len() - a.max_paths);
        }
    }
    if ctx.json {
        return super::print_json(&json).map(|_| 0);
    }
    outln!(
        "{holding} of {} snapshot(s) hold paths matching {}",
        snaps.len(),
        escape(&a.glob)
    );
    Ok(0)
}
