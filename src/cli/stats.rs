//! `snap stats`: repository size by site, kind and level, deduplication and
//! compression, from the snapshots' recorded figures, the index and the
//! pack listing (no tree is read).

use super::term::{escape, human_time};
use super::Ctx;
use anyhow::Result;
use chrono_tz::Tz;
use snap::ops::stats::{self, Row, SnapshotRow, Stats};
use snap::repo::Mode;
use std::path::PathBuf;

/// Show repository size by site, kind and level, and the deduplication ratio.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Only this site's groups and snapshots (the repository totals stay
    /// whole); lists its snapshots.
    #[arg(long, value_parser = super::push::non_empty)]
    site: Option<String>,
    /// One line per snapshot: what each added when pushed.
    #[arg(long)]
    snapshots: bool,
    /// Policy file, for its time zone [default: the configuration's time zone, else SNAP_POLICY_FILE, /etc/snap/policies.toml, ~/.config/snap/policies.toml].
    #[arg(long)]
    policy_file: Option<PathBuf>,
}

pub fn run(ctx: &Ctx, a: Args) -> Result<i32> {
    let tz = match &a.policy_file {
        Some(f) => snap::format::policy_file::load_timezone(Some(f))?,
        None => ctx.timezone(),
    };
    let repo = ctx.open(Mode::Read, "stats")?;
    let per_snapshot = a.snapshots || a.site.is_some();
    let st = stats::stats(&repo, a.site.as_deref(), per_snapshot)?;
    if ctx.json {
        super::print_json(&st)?;
        return Ok(0);
    }
    print_totals(&st)?;
    outln!();
    print_rows(&st.groups, tz)?;
    if let Some(snaps) = &st.snapshots {
        outln!();
        print_snapshots(snaps, tz)?;
    }
    Ok(0)
}

fn ratio(r: Option<f64>) -> String {
    r.map_or_else(|| "-".into(), |r| format!("{r:.2}x"))
}

fn print_totals(st: &Stats) -> Result<()> {
    let t = &st.repository;
    let b = super::bytes;
    outln!("repository");
    outln!("  snapshots            {}", t.snapshots);
    outln!(
        "  on storage           {} in {} pack(s)",
        b(t.pack_bytes),
        t.packs
    );
    outln!(
        "  unique data          {} in {} chunk(s), {} stored after compression",
        b(t.data.raw_bytes),
        t.data.blobs,
        b(t.data.sealed_bytes)
    );
    outln!(
        "  metadata             {} (trees and chunk lists), {} stored",
        b(t.metadata.raw_bytes),
        b(t.metadata.sealed_bytes)
    );
    outln!(
        "  logical size         {} (every snapshot's size, summed)",
        b(t.logical_bytes)
    );
    outln!(
        "  deduplication        {} (logical size / unique data)",
        ratio(t.dedup_ratio)
    );
    outln!(
        "  compression          {} (unique data / stored after compression)",
        ratio(t.compression_ratio)
    );
    if t.packs_not_indexed > 0 {
        outln!(
            "  note: {} pack(s) on the storage are not in this machine's index (another machine pushed them): the unique data above leaves them out",
            t.packs_not_indexed
        );
    }
    Ok(())
}

/// Prints rows of cells as aligned columns; the columns listed in `right`
/// are right-aligned.
fn table(rows: &[Vec<String>], right: &[usize]) -> Result<()> {
    let cols = rows.first().map_or(0, Vec::len);
    let right: Vec<bool> = (0..cols).map(|c| right.contains(&c)).collect();
    for line in super::term::table(rows, &right) {
        outln!("{line}");
    }
    Ok(())
}

fn print_rows(rows: &[Row], tz: Tz) -> Result<()> {
    let b = super::bytes;
    let mut cells = vec![[
        "site",
        "kind",
        "level",
        "snapshots",
        "newest",
        "newest size",
        "new data when pushed",
        "stored",
    ]
    .map(String::from)
    .to_vec()];
    for r in rows {
        cells.push(vec![
            r.site.as_deref().map_or_else(|| "(global)".into(), escape),
            r.kind.to_string(),
            r.level.to_string(),
            r.snapshots.to_string(),
            r.newest_time
                .as_deref()
                .map_or_else(|| "-".into(), |t| human_time(t, tz)),
            b(r.newest_bytes),
            b(r.added_bytes),
            b(r.stored_bytes),
        ]);
    }
    table(&cells, &[2, 3, 5, 6, 7])?;
    outln!(
        "(new data and stored are counted when each snapshot was pushed: later snapshots may share that data, so pruning a group frees less; times in {})",
        tz.name()
    );
    Ok(())
}

fn print_snapshots(snaps: &[SnapshotRow], tz: Tz) -> Result<()> {
    let b = super::bytes;
    let mut cells = vec![[
        "id", "time", "site", "level", "kind", "size", "new data", "stored",
    ]
    .map(String::from)
    .to_vec()];
    for s in snaps {
        cells.push(vec![
            s.id.short(),
            human_time(&s.time, tz),
            s.site.as_deref().map_or_else(|| "(global)".into(), escape),
            s.level.to_string(),
            s.kind.to_string(),
            b(s.bytes),
            b(s.added_bytes),
            b(s.stored_bytes),
        ]);
    }
    table(&cells, &[3, 5, 6, 7])
}
