//! `snap restore SNAPSHOT --target DIR [--include PATH]...`

use super::{Ctx, FilterArgs};
use anyhow::Result;
use snap::ops::live::Overwrite;
use snap::ops::restore::RestoreOptions;
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
    /// When an entry already in the target is replaced: always, if-changed
    /// (size, mtime or kind differ; mode and owner alone are set in place),
    /// if-newer (older in the target), never.
    #[arg(long, value_enum, default_value_t = Overwrite::Always)]
    overwrite: Overwrite,
    /// Afterwards the target (or each --include path in it) holds exactly
    /// the snapshot: what it has and the snapshot does not is removed.
    /// Nothing outside the target or the included paths is touched.
    #[arg(long)]
    delete: bool,
    /// Print what would be created, overwritten and deleted; touch nothing.
    #[arg(long)]
    dry_run: bool,
    /// With --overwrite if-changed: compare files of the same size by their
    /// contents (cut and hashed as the repository does), not by their
    /// modification time: proves a file untouched.
    #[arg(long)]
    verify: bool,
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
    let (id, snap) = select::resolve(&repo, &a.snapshot, &a.filter.filter(ctx))?;
    ctx.using(&id, &snap);
    let includes: Vec<Vec<u8>> = a
        .includes
        .iter()
        .map(|i| select::snapshot_path(&repo, &snap, &id.short(), i.as_bytes()))
        .collect::<snap::error::Result<_>>()?;
    let progress = ctx.progress(None);
    let started = std::time::Instant::now();
    let opts = RestoreOptions {
        overwrite: a.overwrite,
        delete: a.delete,
        dry_run: a.dry_run,
        verify: a.verify,
    };
    let (stats, planned) =
        restore::restore_with(&repo, &snap, &a.target, &includes, opts, &progress)?;
    progress.finish();
    if a.dry_run {
        if ctx.json {
            super::print_json(&serde_json::json!({
                "snapshot": id.to_hex(), "target": a.target, "dry_run": true,
                "create": stats.created, "overwrite": stats.overwritten,
                "metadata": stats.metadata, "unchanged": stats.unchanged,
                "delete": stats.deleted, "bytes": stats.bytes, "changes": planned,
            }))?;
        } else {
            for p in &planned {
                outln!(
                    "{:<9} {:<8} {}",
                    p.action,
                    p.kind,
                    super::term::escape(&p.path.display().to_string())
                );
            }
            outln!(
                "dry run of snapshot {} into {}: would create {}, overwrite {}, set metadata of {}, delete {}; {} unchanged; {} to write",
                id.short(),
                a.target.display(),
                stats.created,
                stats.overwritten,
                stats.metadata,
                stats.deleted,
                stats.unchanged,
                super::bytes(stats.bytes)
            );
        }
        return Ok(0);
    }
    if ctx.json {
        super::print_json(&serde_json::json!({
            "snapshot": id.to_hex(), "target": a.target, "files": stats.files, "dirs": stats.dirs,
            "bytes": stats.bytes, "errors": stats.errors, "duration_ms": started.elapsed().as_millis() as u64,
            "created": stats.created, "overwritten": stats.overwritten, "metadata": stats.metadata,
            "unchanged": stats.unchanged, "deleted": stats.deleted,
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
        if a.overwrite != Overwrite::Always || a.delete {
            outln!(
                "{} created, {} overwritten, {} with metadata set, {} unchanged, {} deleted",
                stats.created,
                stats.overwritten,
                stats.metadata,
                stats.unchanged,
                stats.deleted
            );
        }
    }
    if !stats.errors.is_empty() {
        anyhow::bail!(
            "{} entries could not be restored (listed above)",
            stats.errors.len()
        );
    }
    Ok(0)
}
