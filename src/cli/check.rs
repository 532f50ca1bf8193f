//! `snap check [--read-data]`

use super::Ctx;
use anyhow::Result;
use snap::ops::check;
use snap::repo::Mode;

/// Verify the repository.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Also read every pack, decrypt every blob and re-hash it.
    #[arg(long)]
    read_data: bool,
}

pub fn run(ctx: &Ctx, a: Args) -> Result<i32> {
    let repo = ctx.open(Mode::Read, "check")?;
    let progress = ctx.progress(None);
    let r = check::check(&repo, a.read_data, &progress)?;
    progress.finish();
    // A closed stdout (`snap check | head -0`) is only forgiven when the
    // repository is sound: the verdict never depends on the reader.
    let printed = print(ctx, &r, a.read_data);
    if r.state_failed() {
        anyhow::bail!("the repository does not match its state record: see the errors above, each says what to do");
    }
    if !r.ok() {
        anyhow::bail!("the repository is damaged; see the errors above. `snap repair packs` keeps what still authenticates of damaged or missing packs and lets the next push store the rest again; `snap repair index` helps when only the index is wrong");
    }
    printed?;
    Ok(0)
}

fn print(ctx: &Ctx, r: &check::CheckReport, read_data: bool) -> Result<()> {
    if ctx.json {
        return super::print_json(r);
    }
    for w in &r.warnings {
        eprintln!("snap: note: {w}");
    }
    super::state::print_findings(&r.state, ctx.quiet, |f| {
        outln!(
            "error: {}: {}",
            super::escape_message(&f.object),
            super::escape_message(&f.message)
        );
        Ok(())
    })?;
    for e in &r.errors {
        outln!("error: {}: {}", e.object, e.message);
    }
    for a in &r.affected {
        outln!(
            "damaged: snapshot {} path {}: {}",
            a.snapshot,
            a.path,
            a.reason
        );
    }
    outln!(
        "checked {} snapshots, {} trees, {} packs{}: {}",
        r.snapshots,
        r.trees,
        r.packs,
        if read_data {
            format!(" ({} read in full)", r.packs_read)
        } else {
            String::new()
        },
        if r.ok() {
            "no errors".to_string()
        } else {
            format!(
                "{} error(s)",
                r.errors.len() + r.affected.len() + r.state.iter().filter(|f| f.is_error()).count()
            )
        }
    );
    Ok(())
}
