//! `snap key add | list | remove`

use super::{kdf_params, password, Ctx};
use anyhow::Result;
use snap::repo::{Mode, NewKey};

#[derive(clap::Subcommand, Debug)]
pub enum KeyCommand {
    /// Add a password (read from SNAP_NEW_PASSWORD_FILE, SNAP_NEW_PASSWORD or the terminal).
    Add {
        /// A name for the key (who or what uses the password) [default: user@host].
        #[arg(long)]
        label: Option<String>,
    },
    /// List key files.
    List,
    /// Remove a key file by id (prefix) or exact label; not the one in use.
    Remove {
        /// Key id, unique prefix of one, or a label.
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
        KeyCommand::Add { label } => {
            if let Some(l) = &label {
                snap::format::crypto::check_label(l)?;
            }
            let pw = password(
                "SNAP_NEW_PASSWORD",
                "SNAP_NEW_PASSWORD_FILE",
                "new password: ",
            )?;
            if pw.is_empty() {
                anyhow::bail!("refusing an empty password");
            }
            let key = NewKey {
                kdf: kdf_params()?,
                label,
            };
            let id = repo.add_key(pw.as_bytes(), &key)?;
            if ctx.json {
                super::print_json(&serde_json::json!({ "added": id, "kdf": key.kdf }))?;
            } else {
                outln!("added key {id} ({})", key.kdf);
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
                    // Other key files' fields are as the storage returned them.
                    let line = format!(
                        "{} {:<32} {:<24} {} {}@{}{}",
                        if k.current { "*" } else { " " },
                        k.id,
                        k.label.as_deref().unwrap_or("-"),
                        k.created,
                        k.user,
                        k.host,
                        k.unrecorded
                            .as_ref()
                            .map(|w| format!("  WARNING: {w}"))
                            .unwrap_or_default()
                    );
                    outln!("{}", super::term::escape_message(&line));
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
