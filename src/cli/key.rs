//! `snap key add | list | remove | rotate`

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
    /// Start a new key epoch after a password leak: what is written from now
    /// on is sealed with a new key that only the password in use (and those
    /// added again afterwards) can open; other key files keep opening older
    /// data only.
    Rotate {
        /// A label for the new key file of the password in use [default: user@host].
        #[arg(long)]
        label: Option<String>,
    },
}

pub fn run(ctx: &Ctx, c: KeyCommand) -> Result<i32> {
    // Removing a key rewrites who can open the repository: nobody else may
    // be working meanwhile.
    let mode = if matches!(c, KeyCommand::Remove { .. } | KeyCommand::Rotate { .. }) {
        Mode::Exclusive
    } else {
        Mode::Read
    };
    if let KeyCommand::Rotate { label } = c {
        return rotate(ctx, label);
    }
    let repo = ctx.open(mode, "key")?;
    match c {
        KeyCommand::Rotate { .. } => unreachable!("handled above"),
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

/// `snap key rotate`: a new epoch, the password in use re-wrapped.
fn rotate(ctx: &Ctx, label: Option<String>) -> Result<i32> {
    if let Some(l) = &label {
        snap::format::crypto::check_label(l)?;
    }
    let (mut repo, pw) = ctx.open_keeping_password(Mode::Exclusive, "key")?;
    let key = NewKey {
        kdf: kdf_params()?,
        label,
    };
    let (new, old) = repo.rotate_key(pw.as_bytes(), &key)?;
    let others: Vec<String> = repo
        .list_keys()?
        .into_iter()
        .filter(|k| k.id != new)
        .map(|k| k.id)
        .collect();
    if ctx.json {
        super::print_json(&serde_json::json!({
            "epoch": repo.keys().epoch(),
            "added": new,
            "removed": old,
            "older_keys": others,
        }))?;
    } else {
        outln!(
            "key epoch {}: key {new} replaces {old} for this password; from now on everything is sealed with a key only it holds",
            repo.keys().epoch()
        );
        if !others.is_empty() {
            outln!(
                "these key files still open only what was written before: {}; `snap key add` the passwords that should keep full access (from a session with this password), then `snap key remove` every one of them",
                others.join(", ")
            );
        }
    }
    Ok(0)
}
