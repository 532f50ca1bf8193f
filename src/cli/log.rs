//! `snap log PATH`

use super::term::{escape, escape_bytes, human_time};
use super::{Ctx, FilterArgs};
use anyhow::Result;
use snap::format::tree::NodeKind;
use snap::ops::cache::ReadCache;
use snap::ops::diff::Side;
use snap::ops::log::{history, Lookup, Status};
use snap::ops::select;
use snap::repo::Mode;
use std::os::unix::ffi::OsStrExt;

/// Show the versions of one file or directory across snapshots.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Path inside the snapshots, or as it was backed up (/var/www/site2/index.php).
    path: std::ffi::OsString,
    /// Only the versions that differ from the one before (no `unchanged` rows).
    #[arg(long)]
    changed: bool,
    #[command(flatten)]
    filter: FilterArgs,
}

pub fn run(ctx: &Ctx, a: Args) -> Result<i32> {
    let repo = ctx.open(Mode::Read, "log")?;
    let snaps = select::list_scoped(&repo, &a.filter.filter(ctx))?;
    let path = a.path.as_bytes();
    let mut lookup = Lookup::default();
    let cache = ReadCache::new(super::READ_CACHE_BYTES);
    let rows = history(&repo, &cache, &snaps, path, &mut lookup)?;
    if rows.is_empty() {
        anyhow::bail!(
            "{} is in none of the {} snapshot(s) matching the filters; see `snap ls latest`",
            escape_bytes(path),
            snaps.len()
        );
    }
    let by_id: std::collections::HashMap<_, _> = snaps.iter().map(|(i, s)| (*i, s)).collect();
    let shown: Vec<_> = rows
        .iter()
        .filter(|r| !a.changed || r.status != Status::Unchanged)
        .collect();
    if ctx.json {
        let v: Vec<serde_json::Value> = shown
            .iter()
            .map(|r| {
                let s = by_id[&r.id];
                serde_json::json!({
                    "id": r.id.to_hex(),
                    "short_id": r.id.short(),
                    "time": s.time,
                    "site": s.site,
                    "level": s.level,
                    "kind": s.kind,
                    "path": String::from_utf8_lossy(&r.path),
                    "status": r.status,
                    "entry": r.node.as_ref().map(Side::of),
                })
            })
            .collect();
        return super::print_json(&v).map(|_| 0);
    }
    let tz = ctx.timezone();
    let mut table = vec![[
        "id", "time", "site", "lv", "kind", "entry", "size", "status",
    ]
    .map(String::from)
    .to_vec()];
    for r in &shown {
        let s = by_id[&r.id];
        let (entry, size) = match &r.node {
            None => ("-", "-".to_string()),
            Some(n) => (
                kind_word(n.kind),
                match n.kind {
                    NodeKind::File => super::bytes(n.size),
                    _ => "-".into(),
                },
            ),
        };
        table.push(vec![
            r.id.short(),
            human_time(&s.time, tz),
            s.site.as_deref().map(escape).unwrap_or_else(|| "-".into()),
            s.level.to_string(),
            s.kind.to_string(),
            entry.to_string(),
            size,
            r.status.text().to_string(),
        ]);
    }
    for line in super::term::table(
        &table,
        &[false, false, false, true, false, false, true, false],
    ) {
        outln!("{line}");
    }
    let changes = rows
        .iter()
        .filter(|r| !matches!(r.status, Status::Unchanged | Status::FirstSeen))
        .count();
    outln!(
        "{} version(s) listed from {} snapshot(s); {changes} change(s)",
        shown.len(),
        snaps.len()
    );
    Ok(0)
}

fn kind_word(k: NodeKind) -> &'static str {
    match k {
        NodeKind::File => "file",
        NodeKind::Dir => "dir",
        NodeKind::Symlink => "symlink",
        NodeKind::Fifo => "fifo",
        NodeKind::Chardev => "chardev",
        NodeKind::Blockdev => "blockdev",
    }
}
