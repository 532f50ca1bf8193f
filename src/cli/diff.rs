//! `snap diff OLD NEW [PATH]`

use super::term::escape_bytes;
use super::{Ctx, FilterArgs};
use anyhow::Result;
use snap::error::Error;
use snap::format::snapshot::Snapshot;
use snap::format::tree::{Node, NodeKind};
use snap::id::SnapshotId;
use snap::ops::cache::ReadCache;
use snap::ops::diff::{self, Entry, Side};
use snap::ops::{read, select};
use snap::repo::{Mode, Repository};
use std::io::Write;
use std::os::unix::ffi::OsStrExt;

/// Show what changed between two snapshots.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The older snapshot: id (prefix) or `latest`.
    old: String,
    /// The newer snapshot: id (prefix) or `latest`; with --live, the PATH.
    new: Option<String>,
    /// Only this path inside the snapshots, or as it was backed up (/var/www/site2).
    path: Option<std::ffi::OsString>,
    /// Compare the snapshot with this live directory instead of another
    /// snapshot (`snap diff SNAPSHOT --live /var/www/site2 [PATH]`): what was
    /// added since (planted files are flagged), removed, modified.
    #[arg(long, value_name = "DIR")]
    live: Option<std::path::PathBuf>,
    /// With --live: compare files of the same size by their contents (cut
    /// and hashed as the repository does), not by size and mtime.
    #[arg(long, requires = "live")]
    verify: bool,
    #[command(flatten)]
    filter: FilterArgs,
}

pub fn run(ctx: &Ctx, a: Args) -> Result<i32> {
    if let Some(dir) = &a.live {
        return live(ctx, &a, dir);
    }
    let Some(new_spec) = &a.new else {
        anyhow::bail!("give two snapshots (snap diff OLD NEW [PATH]), or one and --live DIR");
    };
    let repo = ctx.open(Mode::Read, "diff")?;
    let filter = a.filter.filter(ctx);
    let (old_id, old) = select::resolve(&repo, &a.old, &filter)?;
    let (new_id, new) = select::resolve(&repo, new_spec, &filter)?;
    let cache = ReadCache::new(super::READ_CACHE_BYTES);
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut entries = Vec::new();
    let mut print = |e: Entry| -> snap::error::Result<()> {
        if ctx.json {
            entries.push(e);
            return Ok(());
        }
        writeln!(out, "{}", line(&e)).map_err(|e| Error::io("standard output", e))
    };
    let stats = match &a.path {
        None => diff::trees(&repo, &cache, &old.tree, &new.tree, &[], &mut print)?,
        Some(p) => {
            let at = mapped_path(&repo, (&old_id, &old), (&new_id, &new), p.as_bytes())?;
            let comps: Vec<Vec<u8>> = read::components(&at)
                .into_iter()
                .map(<[u8]>::to_vec)
                .collect();
            if comps.is_empty() {
                diff::trees(&repo, &cache, &old.tree, &new.tree, &[], &mut print)?
            } else {
                let o = node_at(&repo, &old_id, &old, &at)?;
                let n = node_at(&repo, &new_id, &new, &at)?;
                diff::entries(&repo, &cache, o.as_ref(), n.as_ref(), &comps, &mut print)?
            }
        }
    };
    if ctx.json {
        drop(out);
        let side = |id: &SnapshotId, s: &Snapshot| serde_json::json!({"id": id.to_hex(), "short_id": id.short(), "time": s.time});
        return super::print_json(&serde_json::json!({
            "old": side(&old_id, &old),
            "new": side(&new_id, &new),
            "entries": entries,
            "counts": stats,
        }))
        .map(|_| 0);
    }
    writeln!(
        out,
        "{} -> {}: {} added, {} removed, {} modified, {} metadata only; {} in added files, {} in removed files",
        old_id.short(),
        new_id.short(),
        stats.added,
        stats.removed,
        stats.modified,
        stats.metadata,
        super::bytes(stats.bytes_added),
        super::bytes(stats.bytes_removed)
    )?;
    out.flush()?;
    Ok(0)
}

/// `snap diff SNAPSHOT --live DIR [PATH]`: DIR stands for the snapshot's
/// root, or for PATH in it.
fn live(ctx: &Ctx, a: &Args, dir: &std::path::Path) -> Result<i32> {
    if a.path.is_some() {
        anyhow::bail!("with --live, give one snapshot and at most one PATH: snap diff SNAPSHOT --live DIR [PATH]");
    }
    match std::fs::symlink_metadata(dir) {
        Ok(md) if md.is_dir() => {}
        Ok(_) => anyhow::bail!("--live {} is not a directory: give the live directory the snapshot (or PATH) is compared with", dir.display()),
        Err(e) => anyhow::bail!("--live {}: {e}", dir.display()),
    }
    let repo = ctx.open(Mode::Read, "diff")?;
    let (id, snap) = select::resolve(&repo, &a.old, &a.filter.filter(ctx))?;
    let cache = ReadCache::new(super::READ_CACHE_BYTES);
    let (root, base) = match &a.new {
        None => (snap.tree, Vec::new()),
        Some(p) => {
            let at = select::snapshot_path(&repo, &snap, &id.short(), p.as_bytes())?;
            let comps: Vec<Vec<u8>> = read::components(&at)
                .into_iter()
                .map(<[u8]>::to_vec)
                .collect();
            match read::find_node(&repo, &snap, &id.short(), &at)? {
                None => (snap.tree, Vec::new()),
                Some(n) if n.kind == NodeKind::Dir && n.subtree.is_some() => {
                    (n.subtree.expect("checked"), comps)
                }
                Some(_) => anyhow::bail!(
                    "{} is a file in snapshot {}: give a directory (compare one file with `snap cat {} PATH | cmp - FILE`)",
                    escape_bytes(&at),
                    id.short(),
                    id.short()
                ),
            }
        }
    };
    let verifier = a
        .verify
        .then(|| snap::ops::live::Verifier::new(&repo, snap.kind));
    let (entries, stats) =
        snap::ops::live::diff_live(&repo, &cache, &root, &base, dir, verifier.as_ref())?;
    let flagged = entries.iter().filter(|e| e.flag.is_some()).count();
    if ctx.json {
        return super::print_json(&serde_json::json!({
            "snapshot": {"id": id.to_hex(), "short_id": id.short(), "time": snap.time},
            "live": dir,
            "entries": entries,
            "counts": stats,
            "flagged": flagged,
        }))
        .map(|_| 0);
    }
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for e in &entries {
        match e.flag {
            Some(f) => writeln!(out, "{}  !! {f}", line(e))?,
            None => writeln!(out, "{}", line(e))?,
        }
    }
    writeln!(
        out,
        "{} -> {}: {} added ({} flagged: scripts or uploads), {} removed, {} modified, {} metadata only",
        id.short(),
        dir.display(),
        stats.added,
        flagged,
        stats.removed,
        stats.modified,
        stats.metadata
    )?;
    out.flush()?;
    Ok(0)
}

/// The snapshot-relative form of `path`: as the newer snapshot maps it,
/// else as the older one does; an error when neither holds it.
fn mapped_path(
    repo: &Repository,
    old: (&SnapshotId, &Snapshot),
    new: (&SnapshotId, &Snapshot),
    path: &[u8],
) -> Result<Vec<u8>> {
    for (id, s) in [new, old] {
        match select::snapshot_path(repo, s, &id.short(), path) {
            Ok(at) => return Ok(at),
            Err(Error::NoSuchPath { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    anyhow::bail!(
        "{} is in neither snapshot {} nor {}; see `snap ls {}`",
        escape_bytes(path),
        old.0.short(),
        new.0.short(),
        new.0.short()
    )
}

fn node_at(repo: &Repository, id: &SnapshotId, s: &Snapshot, path: &[u8]) -> Result<Option<Node>> {
    match read::find_node(repo, s, &id.short(), path) {
        Ok(n) => Ok(n),
        Err(Error::NoSuchPath { .. }) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

fn kind_name(k: NodeKind) -> &'static str {
    match k {
        NodeKind::File => "file",
        NodeKind::Dir => "dir",
        NodeKind::Symlink => "symlink",
        NodeKind::Fifo => "fifo",
        NodeKind::Chardev => "chardev",
        NodeKind::Blockdev => "blockdev",
    }
}

/// A side as `file 1.2 KiB` (sizes for files only), or `dir`.
fn side_text(s: &Side) -> String {
    match s.kind {
        NodeKind::File => format!("file {}", super::bytes(s.size)),
        k => kind_name(k).into(),
    }
}

/// `M /index.php  (file 1.0 KiB -> 2.0 KiB; content, mtime)`.
fn line(e: &Entry) -> String {
    let mut desc = match (&e.old, &e.new) {
        (Some(o), Some(n)) if side_text(o) != side_text(n) => {
            format!("{} -> {}", side_text(o), side_text(n))
        }
        (Some(s), _) | (None, Some(s)) => side_text(s),
        (None, None) => String::new(),
    };
    if let (Some(o), Some(n)) = (&e.old, &e.new) {
        let what: Vec<String> = e.what.iter().map(|w| detail(w, o, n)).collect();
        if !what.is_empty() {
            desc = format!("{desc}; {}", what.join(", "));
        }
    }
    format!(
        "{} {}  ({desc})",
        e.change.mark(),
        escape_bytes(&e.raw_path)
    )
}

fn detail(what: &str, o: &Side, n: &Side) -> String {
    match what {
        "mode" => format!("mode {:04o} -> {:04o}", o.mode, n.mode),
        "owner" => format!("owner {}:{} -> {}:{}", o.uid, o.gid, n.uid, n.gid),
        "target" => format!(
            "target {} -> {}",
            super::term::escape(o.target.as_deref().unwrap_or("")),
            super::term::escape(n.target.as_deref().unwrap_or(""))
        ),
        w => w.to_string(),
    }
}
