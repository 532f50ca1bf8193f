//! `snap remote init NAME`, `snap remote list`, `snap replicate REMOTE`,
//! `snap clone REMOTE`: the off-site copies of the plan.

use super::{kdf_params, Ctx};
use anyhow::{Context, Result};
use snap::location::Location;
use snap::ops::replicate::{self, Filter, Summary};
use snap::remote::Remote;
use snap::repo::{Mode, NewKey, Repository};

/// Exit code: the snapshot is saved locally, but replicating it failed.
pub const EXIT_REPLICATION_FAILED: i32 = 5;

/// Manage remotes.
#[derive(clap::Subcommand, Debug)]
pub enum RemoteCommand {
    /// Create the repository of a remote of the remotes file, with this
    /// repository's master key (so that both deduplicate alike).
    Init {
        /// The remote's name in the remotes file.
        name: String,
    },
    /// List the remotes of the remotes file.
    List,
}

/// Copy to a remote the snapshots it receives and does not hold yet.
#[derive(clap::Args, Debug)]
pub struct ReplicateArgs {
    /// The remote's name in the remotes file.
    #[arg(value_name = "REMOTE")]
    name: String,
    /// Packs uploaded at once [default: the remote's `uploads`, else 4].
    #[arg(long)]
    uploads: Option<usize>,
    /// Average upload rate at most, bytes per second ("20M", "512K") [default: the remote's `limit_upload`].
    #[arg(long, value_parser = parse_rate)]
    limit_upload: Option<u64>,
}

/// Rebuild a local repository (--repo) from a remote, with the remote's password.
#[derive(clap::Args, Debug)]
pub struct CloneArgs {
    /// A remote's name in the remotes file, or a repository URL or directory.
    #[arg(value_name = "REMOTE")]
    source: String,
}

fn parse_rate(s: &str) -> std::result::Result<u64, String> {
    snap::remote::parse_rate(s)
}

pub fn run(ctx: &Ctx, c: RemoteCommand) -> Result<i32> {
    match c {
        RemoteCommand::Init { name } => init(ctx, &name),
        RemoteCommand::List => list(ctx),
    }
}

fn list(ctx: &Ctx) -> Result<i32> {
    let remotes = ctx.remotes()?;
    if ctx.json {
        let v: Vec<serde_json::Value> = remotes
            .remotes
            .values()
            .map(|r| {
                serde_json::json!({
                    "name": r.name,
                    "url": r.url,
                    "jurisdiction": r.jurisdiction,
                    "levels": r.filter.levels,
                    "sites": r.filter.sites,
                    "allowed": remotes.check_allowed(r).is_ok(),
                })
            })
            .collect();
        return super::print_json(&v).map(|_| 0);
    }
    for r in remotes.remotes.values() {
        outln!(
            "{}\t{}\t{}\tlevels {:?}\t{}{}",
            r.name,
            r.url,
            r.jurisdiction.as_deref().unwrap_or("(no jurisdiction)"),
            r.filter.levels,
            r.filter
                .sites
                .as_ref()
                .map_or("every site".to_string(), |s| format!(
                    "sites {}",
                    s.join(",")
                )),
            if remotes.check_allowed(r).is_ok() {
                ""
            } else {
                "\tREFUSED (jurisdiction)"
            }
        );
    }
    Ok(0)
}

/// The remote called `name`, once it may receive data.
fn sendable(ctx: &Ctx, name: &str) -> Result<Remote> {
    let remotes = ctx.remotes()?;
    let r = remotes.get(name)?.clone();
    remotes.check_allowed(&r)?;
    Ok(r)
}

fn init(ctx: &Ctx, name: &str) -> Result<i32> {
    ctx.local_only("remote init")?;
    let r = sendable(ctx, name)?;
    let (local, pw) = ctx.open_keeping_password(Mode::Read, "remote init")?;
    let backend = Location::parse(&r.url).new_backend(&|v| r.setting(v))?;
    let key = NewKey {
        kdf: kdf_params()?,
        label: Some(format!("remote-{name}")),
    };
    let remote = Repository::init_sharing_keys(backend, &ctx.cache, &local, pw.as_bytes(), &key)?;
    if ctx.json {
        super::print_json(&serde_json::json!({
            "remote": name,
            "url": r.url,
            "id": remote.config.id.to_hex(),
        }))?;
    } else {
        outln!(
            "created remote {name} at {} (repository {}, with the master key and password of {}): `snap replicate {name}` copies to it",
            r.url,
            remote.config.id.short(),
            local.config.id.short()
        );
    }
    Ok(0)
}

/// Opens the repository of remote `r` with the keys of `local`.
fn open_remote(ctx: &Ctx, r: &Remote, local: &Repository, command: &str) -> Result<Repository> {
    let backend = Location::parse(&r.url).backend(&|v| r.setting(v))?;
    Repository::open_sharing_keys(
        backend,
        &ctx.cache,
        local,
        Mode::Write,
        command,
        ctx.lock_wait,
    )
    .map_err(|e| {
        if e.is_not_found() {
            anyhow::anyhow!(
                "remote {} at {} holds no snap repository ({e}): run `snap remote init {}`",
                r.name,
                r.url,
                r.name
            )
        } else {
            anyhow::anyhow!("remote {} at {}: {e}", r.name, r.url)
        }
    })
}

pub fn replicate_cmd(ctx: &Ctx, a: ReplicateArgs) -> Result<i32> {
    ctx.local_only("replicate")?;
    let r = sendable(ctx, &a.name)?;
    let local = ctx.open(Mode::Read, "replicate")?;
    let dst = open_remote(ctx, &r, &local, "replicate")?;
    let opts = replicate::Options {
        filter: r.filter.clone(),
        uploads: a.uploads.unwrap_or(r.uploads),
        limit_upload: a.limit_upload.or(r.limit_upload),
        ..Default::default()
    };
    let progress = ctx.progress(None);
    let sum = replicate::replicate(&local, &dst, &opts, &progress)
        .with_context(|| format!("replicating to remote {} ({})", r.name, r.url))?;
    progress.finish();
    print_summary(ctx, &r.name, &sum)?;
    Ok(0)
}

fn print_summary(ctx: &Ctx, name: &str, s: &Summary) -> Result<()> {
    if ctx.json {
        let mut v = serde_json::to_value(s)?;
        v["remote"] = serde_json::Value::String(name.to_string());
        return super::print_json(&v);
    }
    if !ctx.quiet {
        outln!("{}", summary_line(name, s));
    }
    Ok(())
}

fn summary_line(name: &str, s: &Summary) -> String {
    format!(
        "{name}: {} snapshot(s) copied, {} already there (of {} it receives); {} blob(s), {} sent in {} pack(s) in {:.1}s",
        s.copied.len(),
        s.snapshots_present,
        s.snapshots_wanted,
        s.blobs_sent,
        super::bytes(s.bytes_sent),
        s.packs_written,
        s.duration_s
    )
}

/// What replicating one new snapshot to the remotes that receive it did,
/// for the push that saved it: one line per remote, and whether all went.
pub struct AfterPush {
    /// Per remote: its name, and the summary or the error.
    pub outcomes: Vec<(String, std::result::Result<Summary, String>)>,
}

impl AfterPush {
    /// Whether every remote got the snapshot.
    pub fn ok(&self) -> bool {
        self.outcomes.iter().all(|(_, r)| r.is_ok())
    }

    /// As JSON for the push's output.
    pub fn json(&self) -> serde_json::Value {
        serde_json::Value::Array(
            self.outcomes
                .iter()
                .map(|(n, r)| match r {
                    Ok(s) => serde_json::json!({"remote": n, "ok": true, "summary": s}),
                    Err(e) => serde_json::json!({"remote": n, "ok": false, "error": e}),
                })
                .collect(),
        )
    }

    /// Tells the user (stderr for failures, stdout for the rest).
    pub fn print(&self, ctx: &Ctx) -> Result<()> {
        for (n, r) in &self.outcomes {
            match r {
                Ok(s) if !ctx.quiet && !ctx.json => outln!("replicated to {}", summary_line(n, s)),
                Ok(_) => {}
                Err(e) => eprintln!(
                    "snap: error: the snapshot is saved here, but replicating it to remote {n} failed: {}; `snap replicate {n}` (or the next push) catches up (exit code {EXIT_REPLICATION_FAILED})",
                    super::term::escape_message(e)
                ),
            }
        }
        Ok(())
    }
}

/// Replicates to every remote that receives a snapshot of `level` and
/// `site` (the one just saved in `local`) what it lacks.
pub fn after_push(
    ctx: &Ctx,
    local: &Repository,
    level: u8,
    site: Option<&str>,
) -> Result<AfterPush> {
    let remotes = ctx.remotes()?;
    let mut outcomes = Vec::new();
    for r in remotes.receiving(level, site) {
        let res = (|| -> Result<Summary> {
            remotes.check_allowed(r)?;
            let dst = open_remote(ctx, r, local, "replicate")?;
            // Everything the remote lacks, not only this snapshot: a push
            // after a failed one catches up.
            let opts = replicate::Options {
                filter: r.filter.clone(),
                uploads: r.uploads,
                limit_upload: r.limit_upload,
                ..Default::default()
            };
            Ok(replicate::replicate(
                local,
                &dst,
                &opts,
                &snap::progress::Silent,
            )?)
        })();
        outcomes.push((r.name.clone(), res.map_err(|e| format!("{e:#}"))));
    }
    Ok(AfterPush { outcomes })
}

pub fn clone_cmd(ctx: &Ctx, a: CloneArgs) -> Result<i32> {
    ctx.local_only("clone (its --repo is the new local repository)")?;
    let named = !a.source.contains('/') && !a.source.contains(':');
    let (loc, remote) = if named {
        let r = ctx.remotes()?.get(&a.source)?.clone();
        (Location::parse(&r.url), Some(r))
    } else {
        (Location::parse(&a.source), None)
    };
    let setting = |v: &str| match &remote {
        Some(r) => r.setting(v),
        None => std::env::var(v).ok(),
    };
    let pw = ctx.password("repository password: ")?;
    let src = loc
        .open(
            &ctx.cache,
            &setting,
            pw.as_bytes(),
            Mode::Read,
            "clone",
            ctx.lock_wait,
            &|_| {},
        )
        .with_context(|| format!("opening {}", loc.display()))?;
    let backend = ctx.repo.new_backend(&|v| std::env::var(v).ok())?;
    let key = NewKey {
        kdf: kdf_params()?,
        label: None,
    };
    let dst = Repository::init_sharing_keys(backend, &ctx.cache, &src, pw.as_bytes(), &key)?;
    let opts = replicate::Options {
        filter: Filter::everything(),
        uploads: 2,
        batch_bytes: 1 << 30,
        ..Default::default()
    };
    let progress = ctx.progress(None);
    let sum = replicate::replicate(&src, &dst, &opts, &progress)?;
    progress.finish();
    drop(dst);
    if ctx.json {
        let mut v = serde_json::to_value(&sum)?;
        v["repository"] = serde_json::Value::String(ctx.repo.display());
        super::print_json(&v)?;
    } else if !ctx.quiet {
        outln!(
            "cloned {} into {}: {} snapshot(s), {} in {:.1}s; `snap check --read-data` verifies it",
            loc.display(),
            ctx.repo.display(),
            sum.copied.len(),
            super::bytes(sum.bytes_sent),
            sum.duration_s
        );
    }
    Ok(0)
}
