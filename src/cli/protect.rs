//! `snap protect ID` / `snap unprotect ID`

use super::{Ctx, FilterArgs};
use anyhow::Result;
use snap::ops::select;
use snap::repo::Mode;

/// Snapshot to (un)protect.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Snapshot id (prefix) or `latest`.
    snapshot: String,
    #[command(flatten)]
    filter: FilterArgs,
}

pub fn run(ctx: &Ctx, a: Args, protect: bool) -> Result<i32> {
    let repo = ctx.open(
        if protect { Mode::Read } else { Mode::Exclusive },
        "protect",
    )?;
    let (id, _) = select::resolve(&repo, &a.snapshot, &a.filter.filter(ctx))?;
    let changed = if protect {
        repo.protect(&id)?
    } else {
        repo.unprotect(&id)?
    };
    if ctx.json {
        super::print_json(
            &serde_json::json!({ "snapshot": id.to_hex(), "protected": protect, "changed": changed }),
        )?;
    } else if !ctx.quiet {
        let state = if protect {
            "protected"
        } else {
            "not protected"
        };
        let how = if changed { "now" } else { "already" };
        outln!("snapshot {} is {how} {state}", id.short());
    }
    Ok(0)
}
