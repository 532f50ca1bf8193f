//! `snap restore SNAPSHOT --target DIR [--include PATH]...`

use super::{Ctx, FilterArgs};
use anyhow::Result;
use snap::ops::{restore, select};
use snap::repo::Mode;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

/// Restore a snapshot, or parts of it, into a directory.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Snapshot id (prefix) or `latest`.
    snapshot: String,
    /// Directory to restore into (created if missing; files in it are overwritten).
    #[arg(long)]
    target: PathBuf,
    /// Restore only this path of the snapshot, or as it was backed up (repeatable).
    #[arg(long = "include")]
    includes: Vec<std::ffi::OsString>,
    #[command(flatten)]
    filter: FilterArgs,
}

pub fn run(ctx: &Ctx, a: Args) -> Result<i32> {
    if let Ok(md) = std::fs::metadata(&a.target) {
        if !md.is_dir() {
            anyhow::bail!(
                "--target {} is a file, not a directory: give a directory to restore into (it is created if missing)",
                a.target.display()
            );
        }
    }
    let repo = ctx.open(Mode::Read, "restore")?;
    let (id, snap) = select::resolve(&repo, &a.snapshot, &a.filter.filter())?;
    let includes: Vec<Vec<u8>> = a
        .includes
        .iter()
        .map(|i| select::snapshot_path(&repo, &snap, &id.short(), i.as_bytes()))
        .collect::<snap::error::Result<_>>()?;
    let progress = ctx.progress(None);
    let started = std::time::Instant::now();
    let stats = restore::restore(&repo, &snap, &a.target, &includes, &progress)?;
    progress.finish();
    if ctx.json {
        super::print_json(&serde_json::json!({
            "snapshot": id.to_hex(), "target": a.target, "files": stats.files, "dirs": stats.dirs,
            "bytes": stats.bytes, "errors": stats.errors, "duration_ms": started.elapsed().as_millis() as u64,
        }))?;
    } else if !ctx.quiet {
        outln!(
            "restored snapshot {} to {}: {} files, {} directories, {} in {:.1}s",
            id.short(),
            a.target.display(),
            stats.files,
            stats.dirs,
            super::bytes(stats.bytes),
            started.elapsed().as_secs_f64()
        );
    }
    if !stats.errors.is_empty() {
        anyhow::bail!(
            "{} entries could not be restored (listed above)",
            stats.errors.len()
        );
    }
    Ok(0)
}
