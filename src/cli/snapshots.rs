//! `snap snapshots`

use super::term::{escape, escape_message};
use super::{Ctx, FilterArgs};
use anyhow::Result;
use snap::repo::Mode;

/// List snapshots.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    filter: FilterArgs,
}

/// A level as shown: its number, or `adhoc` for an ad-hoc snapshot.
pub fn level_name(level: u8) -> String {
    if level == snap::format::snapshot::ADHOC {
        "adhoc".into()
    } else {
        level.to_string()
    }
}

pub fn run(ctx: &Ctx, a: Args) -> Result<i32> {
    let repo = ctx.open(Mode::Read, "snapshots")?;
    let set = repo.load_snapshots()?;
    for (id, why) in &set.damaged {
        eprintln!(
            "snap: warning: snapshot {} cannot be read and is not listed: {}",
            id.short(),
            escape_message(why)
        );
    }
    let protected = repo.protected()?;
    let f = a.filter.filter();
    let snaps: Vec<_> = set.ok.into_iter().filter(|(_, s)| f.matches(s)).collect();
    if ctx.json {
        let v: Vec<serde_json::Value> = snaps
            .iter()
            .map(|(id, s)| {
                let mut v = serde_json::to_value(s).expect("snapshot serialises");
                v["id"] = serde_json::Value::String(id.to_hex());
                v["short_id"] = serde_json::Value::String(id.short());
                v["protected"] = serde_json::Value::Bool(protected.contains(id));
                v
            })
            .collect();
        return super::print_json(&v).map(|_| 0);
    }
    outln!(
        "{:<8}  {:<25}  {:<12}  {:<12}  {:<5}  {:>5}  {:>10}  paths",
        "id",
        "time",
        "host",
        "site",
        "kind",
        "lv",
        "size"
    );
    for (id, s) in &snaps {
        let mut flag = String::new();
        if !s.complete {
            flag.push_str(" (incomplete)");
        }
        if protected.contains(id) {
            flag.push_str(" (protected)");
        }
        if let Some(e) = &s.expires {
            flag.push_str(&format!(" (expires {})", escape(e)));
        }
        outln!(
            "{:<8}  {:<25}  {:<12}  {:<12}  {:<5}  {:>5}  {:>10}  {}{}{}",
            id.short(),
            s.timestamp().format("%Y-%m-%d %H:%M:%S%:z"),
            escape(&s.host),
            s.site.as_deref().map(escape).unwrap_or_else(|| "-".into()),
            s.kind.to_string(),
            level_name(s.level),
            super::bytes(s.summary.bytes_total),
            s.paths
                .iter()
                .map(|p| escape(p))
                .collect::<Vec<_>>()
                .join(" "),
            if s.tags.is_empty() {
                String::new()
            } else {
                format!(
                    " [{}]",
                    s.tags
                        .iter()
                        .map(|t| escape(t))
                        .collect::<Vec<_>>()
                        .join(",")
                )
            },
            flag
        );
    }
    outln!("{} snapshot(s)", snaps.len());
    Ok(0)
}
