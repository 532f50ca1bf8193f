//! `snap check [--read-data]`

use super::Ctx;
use anyhow::Result;
use snap::ops::check;
use snap::repo::Mode;

/// Verify the repository.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Also read every pack, decrypt every blob and re-hash it.
    #[arg(long, conflicts_with = "read_data_subset")]
    read_data: bool,
    /// Read only a random share of the packs, e.g. 5% (or 0.05): a remote copy verified a part per run.
    #[arg(long, value_parser = parse_share)]
    read_data_subset: Option<f64>,
}

fn parse_share(s: &str) -> std::result::Result<f64, String> {
    let (n, scale) = match s.strip_suffix('%') {
        Some(n) => (n, 100.0),
        None => (s, 1.0),
    };
    match n.trim().parse::<f64>() {
        Ok(v) if v / scale > 0.0 && v / scale <= 1.0 => Ok(v / scale),
        _ => Err(format!(
            "{s:?} is not a share of the packs such as 5% or 0.05"
        )),
    }
}

pub fn run(ctx: &Ctx, a: Args) -> Result<i32> {
    let repo = ctx.open(Mode::Read, "check")?;
    let progress = ctx.progress(None);
    let share = match a.read_data_subset {
        Some(f) => f,
        None if a.read_data => 1.0,
        None => 0.0,
    };
    let r = check::check_reading(&repo, share, &progress)?;
    progress.finish();
    // A closed stdout (`snap check | head -0`) is only forgiven when the
    // repository is sound: the verdict never depends on the reader.
    let printed = print(ctx, &r, share > 0.0);
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
