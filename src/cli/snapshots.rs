//! `snap snapshots`

use super::term::{escape, escape_message, human_time, table};
use super::{Ctx, FilterArgs};
use anyhow::Result;
use snap::repo::Mode;

/// List snapshots.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    filter: FilterArgs,
}

/// A level as shown in a column: its number, or `adhoc` for an ad-hoc
/// snapshot.
pub fn level_name(level: u8) -> String {
    snap::format::snapshot::level_name(level)
        .trim_start_matches("level")
        .to_string()
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
    let f = a.filter.filter(ctx);
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
    let tz = ctx.timezone();
    let mut rows = vec![
        ["id", "time", "lv", "kind", "site", "host", "size", "paths"]
            .map(String::from)
            .to_vec(),
    ];
    for (id, s) in &snaps {
        let mut paths = s
            .paths
            .iter()
            .map(|p| escape(p))
            .collect::<Vec<_>>()
            .join(" ");
        if !s.tags.is_empty() {
            let tags: Vec<String> = s.tags.iter().map(|t| escape(t)).collect();
            paths.push_str(&format!(" [{}]", tags.join(",")));
        }
        if !s.complete {
            paths.push_str(" (incomplete)");
        }
        if protected.contains(id) {
            paths.push_str(" (protected)");
        }
        if let Some(e) = &s.expires {
            paths.push_str(&format!(" (expires {})", human_time(e, tz)));
        }
        rows.push(vec![
            id.short(),
            human_time(&s.time, tz),
            level_name(s.level),
            s.kind.to_string(),
            s.site.as_deref().map(escape).unwrap_or_else(|| "-".into()),
            escape(&s.host),
            super::bytes(s.summary.bytes_total),
            paths,
        ]);
    }
    for line in table(
        &rows,
        &[false, false, true, false, false, false, true, false],
    ) {
        outln!("{line}");
    }
    outln!("{} snapshot(s)", snaps.len());
    Ok(0)
}
