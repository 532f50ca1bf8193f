//! `snap generate`: shell completions and manual pages, from the command
//! line's own definition (so they never disagree with `--help`).

use super::Ctx;
use anyhow::{Context, Result};
use clap::CommandFactory;
use std::path::PathBuf;

/// Shell completions and manual pages (the set-up script installs them).
#[derive(clap::Subcommand, Debug)]
pub enum GenerateCommand {
    /// Print the completion script of a shell on stdout.
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
    /// Write the manual pages (snap.1, snap-push.1, …) into a directory.
    Man {
        /// Where to write them (e.g. /usr/local/share/man/man1).
        dir: PathBuf,
    },
}

pub fn run(_ctx: &Ctx, c: GenerateCommand) -> Result<i32> {
    let mut cmd = super::Cli::command();
    match c {
        GenerateCommand::Completions { shell } => {
            let mut out = Vec::new();
            clap_complete::generate(shell, &mut cmd, "snap", &mut out);
            use std::io::Write;
            std::io::stdout().write_all(&out)?;
        }
        GenerateCommand::Man { dir } => {
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            clap_mangen::generate_to(cmd, &dir)
                .with_context(|| format!("writing the manual pages into {}", dir.display()))?;
        }
    }
    Ok(0)
}
