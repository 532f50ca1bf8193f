//! `snap repair index` and `snap repair packs`

use super::Ctx;
use anyhow::Result;
use snap::id::PackId;
use snap::repo::Mode;

#[derive(clap::Subcommand, Debug)]
pub enum RepairCommand {
    /// Delete the local index and rebuild it from the pack headers.
    Index,
    /// Read every pack (or the ones named); from a damaged one keep every
    /// blob that still authenticates and drop the rest, so that the next
    /// push stores again what its sources still hold.
    Packs(PacksArgs),
}

#[derive(clap::Args, Debug)]
pub struct PacksArgs {
    /// Only these packs (ids as `snap check` names them).
    packs: Vec<String>,
}

pub fn run(ctx: &Ctx, c: RepairCommand) -> Result<i32> {
    match c {
        RepairCommand::Index => {
            let mut repo = ctx.open(Mode::Repair, "repair index")?;
            let r = repo.rebuild_index()?;
            if ctx.json {
                super::print_json(&r)?;
            } else {
                for (name, why) in &r.damaged {
                    eprintln!("snap: warning: pack {name} skipped: {why}");
                }
                outln!(
                    "index rebuilt from {} packs ({} damaged and skipped)",
                    r.packs,
                    r.damaged.len()
                );
            }
            Ok(if r.damaged.is_empty() { 0 } else { 1 })
        }
        RepairCommand::Packs(a) => {
            let only = a
                .packs
                .iter()
                .map(|p| {
                    PackId::from_hex(p).map_err(|_| {
                        anyhow::anyhow!(
                            "{p:?} is not a pack id (64 hex digits, as `snap check` prints them)"
                        )
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            let repo = ctx.open(Mode::Exclusive, "repair packs")?;
            let progress = ctx.progress(None);
            let r = snap::ops::repair::repair_packs(&repo, &only, &progress)?;
            progress.finish();
            if ctx.json {
                super::print_json(&r)?;
                return Ok(0);
            }
            for p in &r.repaired {
                outln!(
                    "pack {}: {}; {} blob(s) salvaged, {} kept elsewhere, {} lost{}",
                    p.pack,
                    p.problem,
                    p.salvaged,
                    p.elsewhere,
                    p.lost,
                    if p.removed {
                        "; damaged file removed"
                    } else {
                        ""
                    }
                );
            }
            if r.repaired.is_empty() {
                outln!("{} pack(s) read, none damaged", r.packs_checked);
            } else if r.repaired.iter().any(|p| p.lost > 0) {
                outln!(
                    "lost blobs are no longer in the index: the next push stores them again where \
                     the sources still hold them; run `snap check` to see which snapshots and paths stay damaged"
                );
            }
            Ok(0)
        }
    }
}
