//! `snap state accept`, and how state findings are shown.

use super::Ctx;
use anyhow::Result;
use snap::format::state::{Finding, Severity};
use snap::repo::Mode;

#[derive(clap::Subcommand, Debug)]
pub enum StateCommand {
    /// Record the repository as it is now as its state, after finding it good
    /// (or restoring it from the off-site copy on purpose): clears rollback,
    /// deletion and replay findings, and moves this machine's mark.
    Accept,
}

/// Shows findings: errors through `error`, warnings and notes on stderr
/// (notes not with `quiet`).
pub fn print_findings(
    findings: &[Finding],
    quiet: bool,
    mut error: impl FnMut(&Finding) -> Result<()>,
) -> Result<()> {
    for f in findings {
        let text = format!(
            "{}: {}",
            super::escape_message(&f.object),
            super::escape_message(&f.message)
        );
        match f.severity {
            Severity::Error => error(f)?,
            Severity::Warning => eprintln!("snap: warning: {text}"),
            Severity::Note if !quiet => eprintln!("snap: note: {text}"),
            Severity::Note => {}
        }
    }
    Ok(())
}

pub fn run(ctx: &Ctx, c: StateCommand) -> Result<i32> {
    match c {
        StateCommand::Accept => {
            let repo = ctx.open(Mode::Exclusive, "state accept")?;
            let (differences, seq) = repo.accept_state()?;
            if ctx.json {
                super::print_json(
                    &serde_json::json!({ "state": seq, "differences": differences }),
                )?;
                return Ok(0);
            }
            for f in &differences {
                outln!(
                    "accepted: {}: {}",
                    super::escape_message(&f.object),
                    super::escape_message(&f.message)
                );
            }
            outln!(
                "recorded the repository as it is now as state {seq} ({} difference(s) from the previous state accepted); this machine's mark moved to it",
                differences.len()
            );
            Ok(0)
        }
    }
}
