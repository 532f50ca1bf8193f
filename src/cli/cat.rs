//! `snap cat SNAPSHOT PATH`

use super::{Ctx, FilterArgs};
use anyhow::Result;
use snap::ops::{read, select};
use snap::repo::Mode;
use std::os::unix::ffi::OsStrExt;

/// Write one file of a snapshot to stdout.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Snapshot id (prefix) or `latest`.
    snapshot: String,
    /// Path of a file inside the snapshot, or as it was backed up (for a dump: its --name).
    path: std::ffi::OsString,
    #[command(flatten)]
    filter: FilterArgs,
}

pub fn run(ctx: &Ctx, a: Args) -> Result<i32> {
    let repo = ctx.open(Mode::Read, "cat")?;
    let (id, snap) = select::resolve(&repo, &a.snapshot, &a.filter.filter(ctx))?;
    ctx.using(&id, &snap);
    let path = select::snapshot_path(&repo, &snap, &id.short(), a.path.as_bytes())?;
    let node = read::find_node(&repo, &snap, &id.short(), &path)?.ok_or_else(|| {
        anyhow::anyhow!(
            "give the path of a file inside snapshot {}; see `snap ls {}`",
            id.short(),
            id.short()
        )
    })?;
    let mut out = std::io::stdout().lock();
    read::cat(&repo, &node, &mut out)?;
    Ok(0)
}
