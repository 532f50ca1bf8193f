//! `snap key add | list | remove`

use super::{kdf_params, password, Ctx};
use anyhow::Result;
use snap::repo::Mode;

#[derive(clap::Subcommand, Debug)]
pub enum KeyCommand {
    /// Add a password (read from SNAP_NEW_PASSWORD_FILE, SNAP_NEW_PASSWORD or the terminal).
    Add,
    /// List key files.
    List,
    /// Remove a key file by id (prefix); not the one in use.
    Remove {
        /// Key id or unique prefix.
        id: String,
    },
}

pub fn run(ctx: &Ctx, c: KeyCommand) -> Result<i32> {
    // Removing a key rewrites who can open the repository: nobody else may
    // be working meanwhile.
    let mode = if matches!(c, KeyCommand::Remove { .. }) {
        Mode::Exclusive
    } else {
        Mode::Read
    };
    let repo = ctx.open(mode, "key")?;
    match c {
        KeyCommand::Add => {
            let pw = password(
                "SNAP_NEW_PASSWORD",
                "SNAP_NEW_PASSWORD_FILE",
                "new password: ",
            )?;
            if pw.is_empty() {
                anyhow::bail!("refusing an empty password");
            }
            let id = repo.add_key(pw.as_bytes(), kdf_params())?;
            if ctx.json {
                super::print_json(&serde_json::json!({ "added": id }))?;
            } else {
                outln!("added key {id}");
            }
        }
        KeyCommand::List => {
            let keys = repo.list_keys()?;
            if ctx.json {
                super::print_json(&keys)?;
            } else {
                for k in keys {
                    if let Some(why) = &k.damaged {
                        outln!("  {:<32} unusable: {why}", k.id);
                        continue;
                    }
                    outln!(
                        "{} {:<32} {} {}@{}{}",
                        if k.current { "*" } else { " " },
                        k.id,
                        super::escape_message(&k.created),
                        super::escape_message(&k.user),
                        super::escape_message(&k.host),
                        k.unrecorded
                            .as_ref()
                            .map(|w| format!("  WARNING: {w}"))
                            .unwrap_or_default()
                    );
                }
            }
        }
        KeyCommand::Remove { id } => {
            let removed = repo.remove_key(&id)?;
            if ctx.json {
                super::print_json(&serde_json::json!({ "removed": removed }))?;
            } else {
                outln!("removed key {removed}");
            }
        }
    }
    Ok(0)
}
