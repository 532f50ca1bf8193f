//! `snap ls SNAPSHOT [PATH]`

use super::{Ctx, FilterArgs};
use anyhow::Result;
use snap::ops::{read, select};
use snap::repo::Mode;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;

/// List the files of a snapshot.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Snapshot id (prefix) or `latest`.
    snapshot: String,
    /// Path inside the snapshot, or as it was backed up (/var/www/site2).
    #[arg(default_value = "/")]
    path: std::ffi::OsString,
    #[command(flatten)]
    filter: FilterArgs,
}

fn mode_text(kind: snap::format::tree::NodeKind, mode: u32) -> String {
    use snap::format::tree::NodeKind::*;
    let t = match kind {
        Dir => 'd',
        Symlink => 'l',
        Fifo => 'p',
        Chardev => 'c',
        Blockdev => 'b',
        File => '-',
    };
    let mut s = String::from(t);
    for shift in [6, 3, 0] {
        let b = (mode >> shift) & 7;
        s.push(if b & 4 != 0 { 'r' } else { '-' });
        s.push(if b & 2 != 0 { 'w' } else { '-' });
        s.push(if b & 1 != 0 { 'x' } else { '-' });
    }
    s
}

pub fn run(ctx: &Ctx, a: Args) -> Result<i32> {
    let repo = ctx.open(Mode::Read, "ls")?;
    let (id, snap) = select::resolve(&repo, &a.snapshot, &a.filter.filter(ctx))?;
    ctx.using(&id, &snap);
    let tz = ctx.timezone();
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut items = Vec::new();
    let mut werr = None;
    let path = select::snapshot_path(&repo, &snap, &id.short(), a.path.as_bytes())?;
    read::list(&repo, &snap, &id.short(), &path, &mut |l| {
        if ctx.json {
            items.push(l);
        } else if werr.is_none() {
            let target = l
                .raw_target
                .as_ref()
                .map(|t| format!(" -> {}", super::term::escape_bytes(t)))
                .unwrap_or_default();
            if let Err(e) = writeln!(
                out,
                "{} {:>5} {:>5} {:>12} {} {}{}",
                mode_text(l.kind, l.mode),
                l.uid,
                l.gid,
                l.size,
                super::term::human_time(&l.mtime, tz),
                super::term::escape_bytes(&l.raw_path),
                target
            ) {
                werr = Some(e);
            }
        }
    })?;
    if let Some(e) = werr {
        return Err(e.into());
    }
    if ctx.json {
        drop(out);
        super::print_json(&items)?;
    } else {
        out.flush()?;
    }
    Ok(0)
}
