//! `snap unlock [NAME]...`: removes lock files that hold others off for no
//! reason (stale ones, and files in `locks/` that are not locks), or exactly
//! the named ones once the user knows their processes are gone.

use super::Ctx;
use anyhow::Result;

/// Remove stale or named lock files.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Lock file names (as in `locks/NAME`) to remove even if they look live.
    names: Vec<String>,
}

pub fn run(ctx: &Ctx, a: Args) -> Result<i32> {
    let u = match &ctx.repo {
        snap::location::Location::Local(p) => snap::repo::unlock(p, &a.names)?,
        other => snap::repo::lock::unlock(&*other.backend(&|v| ctx.setting(v))?, &a.names)?,
    };
    if ctx.json {
        return super::print_json(&u).map(|_| 0);
    }
    if ctx.quiet {
        return Ok(0);
    }
    for (name, why) in &u.removed {
        outln!(
            "removed locks/{} ({})",
            super::term::escape(name),
            super::term::escape(why)
        );
    }
    for name in &u.kept {
        outln!(
            "kept locks/{} (its process is alive; name it to remove it anyway)",
            super::term::escape(name)
        );
    }
    outln!("{} lock file(s) removed", u.removed.len());
    Ok(0)
}
