//! `snap repair index`

use super::Ctx;
use anyhow::Result;
use snap::repo::Mode;

#[derive(clap::Subcommand, Debug)]
pub enum RepairCommand {
    /// Delete the local index and rebuild it from the pack headers.
    Index,
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
    }
}
