//! The command line: argument definitions, password and repository lookup,
//! output helpers, exit codes. One file per subcommand.

/// `println!` that returns a closed pipe as an error (which `main` treats as
/// success) instead of panicking.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout(), $($arg)*)?
    }};
}

mod cat;
mod check;
mod diff;
mod find;
mod forget;
mod generate;
mod init;
mod key;
mod log;
mod ls;
mod mount;
mod protect;
mod prune;
mod push;
mod remote;
mod repair;
mod report;
mod restore;
mod run;
mod signals;
mod snapshots;
mod state;
mod stats;
mod term;
mod unlock;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use snap::error::Error;
use snap::format::crypto::{affordable, KdfParams, KDF_MAX, KDF_MAX_WORK_KIB, KDF_MIN_WRITE};
use snap::location::Location;
use snap::repo::{Mode, Repository};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

/// Bytes of decoded trees and chunks a reading command (diff, log, find)
/// keeps for reuse.
const READ_CACHE_BYTES: usize = 64 << 20;

/// Exit code: saved, but some files could not be read.
pub const EXIT_INCOMPLETE: i32 = 3;

/// snap: deduplicating, encrypted snapshots of client sites and their databases.
#[derive(Parser, Debug)]
#[command(name = "snap", version, about, long_about = None)]
pub struct Cli {
    /// Repository: a directory, or s3://bucket/prefix, s3+https://host/bucket/prefix, s3+http://… [default: /var/lib/snap/repo as root, else ~/.local/share/snap/repo]
    #[arg(long, global = true, env = "SNAP_REPO")]
    repo: Option<String>,
    /// Work on this remote of the remotes file instead of --repo (snapshots, ls, restore, check, prune, report…).
    #[arg(long, global = true)]
    remote: Option<String>,
    /// Remotes file [default: SNAP_REMOTES_FILE, /etc/snap/remotes.toml, ~/.config/snap/remotes.toml].
    #[arg(long, global = true)]
    remotes_file: Option<PathBuf>,
    /// S3 endpoint for an s3:// repository (else AWS_ENDPOINT_URL, else AWS).
    #[arg(long, global = true, value_name = "URL")]
    s3_endpoint: Option<String>,
    /// S3 region (else AWS_REGION, else us-east-1).
    #[arg(long, global = true)]
    s3_region: Option<String>,
    /// S3 addressing: path-style (true) or virtual-host (false) (else SNAP_S3_PATH_STYLE).
    #[arg(long, global = true, value_name = "BOOL")]
    s3_path_style: Option<bool>,
    /// This machine's cache of repositories (index, staged packs) [default: /var/cache/snap as root, else ~/.cache/snap]
    #[arg(long, global = true, env = "SNAP_CACHE_DIR")]
    cache_dir: Option<PathBuf>,
    /// Print machine-readable JSON on stdout.
    #[arg(long, global = true)]
    json: bool,
    /// No progress bars or notes; errors and warnings still go to stderr.
    #[arg(long, short, global = true)]
    quiet: bool,
    /// Configuration file: the repository, the password file, the sites and the schedule of `snap run` [default: SNAP_CONFIG, /etc/snap/snap.toml, ~/.config/snap/snap.toml].
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Seconds to wait for a conflicting lock (a prune, another push writing the index).
    #[arg(long, global = true, default_value_t = 1800)]
    lock_wait: u64,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Create a repository.
    Init(init::Args),
    /// Manage the passwords that open the repository.
    #[command(subcommand)]
    Key(key::KeyCommand),
    /// Save directories, a piped dump, or a command's output as a snapshot.
    Push(push::Args),
    /// List snapshots.
    Snapshots(snapshots::Args),
    /// List the files of a snapshot.
    Ls(ls::Args),
    /// Write one file of a snapshot to stdout.
    Cat(cat::Args),
    /// Show what changed between two snapshots (added, removed, modified, metadata).
    Diff(diff::Args),
    /// Show the versions of one file or directory across snapshots.
    Log(log::Args),
    /// Show which snapshots hold paths matching a glob, newest first.
    Find(find::Args),
    /// Mount the repository read-only (FUSE) to browse old versions; stays until unmounted.
    Mount(mount::Args),
    /// Restore a snapshot, or some paths of it, into a directory.
    Restore(restore::Args),
    /// Verify the repository.
    Check(check::Args),
    /// Apply a retention policy (level1, level2, or the policy file's) and reclaim space.
    Prune(prune::Args),
    /// Remove snapshots by id, or every snapshot of a site (--site S --all); prune then reclaims the space.
    Forget(forget::Args),
    /// Compare the restore points with what the policies promise (exit 4 when one is broken).
    Report(report::Args),
    /// Repository size by site, kind and level; deduplication and compression.
    Stats(stats::Args),
    /// Keep a snapshot from every retention policy.
    Protect(protect::Args),
    /// Lift a protection.
    Unprotect(protect::Args),
    /// Rebuild what can be rebuilt.
    #[command(subcommand)]
    Repair(repair::RepairCommand),
    /// Remove stale lock files and files in locks/ that are not locks, or the named ones.
    Unlock(unlock::Args),
    /// The repository's state record: accept the repository as it is now.
    #[command(subcommand)]
    State(state::StateCommand),
    /// Off-site remotes (the remotes file): create one's repository, list them.
    #[command(subcommand)]
    Remote(remote::RemoteCommand),
    /// Copy to a remote the snapshots it receives (level 2 by default) and does not hold yet.
    Replicate(remote::ReplicateArgs),
    /// Rebuild a local repository (--repo) from a remote, after losing the local one.
    Clone(remote::CloneArgs),
    /// Shell completions and manual pages.
    #[command(subcommand)]
    Generate(generate::GenerateCommand),
    /// Do what the configuration says is due now (pushes, replication, prune, report); silent when all is well.
    Run(run::Args),
}

/// Global settings every subcommand can use.
pub struct Ctx {
    repo: Location,
    /// The remote `--remote` named, whose settings (credentials, endpoint)
    /// open `repo`.
    remote: Option<snap::remote::Remote>,
    remotes_file: Option<PathBuf>,
    /// S3 settings given as flags, by environment variable name.
    flags: std::collections::BTreeMap<&'static str, String>,
    cache: PathBuf,
    json: bool,
    quiet: bool,
    lock_wait: Duration,
    /// The configuration file, when there is one.
    config: Option<snap::config::Config>,
    /// The time zone of the times printed, found once.
    timezone: std::sync::OnceLock<chrono_tz::Tz>,
}

impl Ctx {
    /// The repository password: SNAP_PASSWORD_FILE, SNAP_PASSWORD, the
    /// configuration's password file, or the terminal.
    fn password(&self, prompt: &str) -> Result<String> {
        if std::env::var_os("SNAP_PASSWORD_FILE").is_none()
            && std::env::var_os("SNAP_PASSWORD").is_none()
        {
            if let Some(f) = self.config.as_ref().and_then(|c| c.password_file.as_ref()) {
                return read_password_file(f, "password_file of the configuration");
            }
        }
        password("SNAP_PASSWORD", "SNAP_PASSWORD_FILE", prompt)
    }

    /// The time zone of the times printed: the configuration's, else the
    /// policy file's, else TZ or the system's.
    fn timezone(&self) -> chrono_tz::Tz {
        *self.timezone.get_or_init(|| match &self.config {
            Some(c) => c.timezone,
            None => snap::format::policy_file::load_timezone(None)
                .unwrap_or_else(|_| snap::format::policy_file::default_timezone()),
        })
    }

    fn open(&self, mode: Mode, command: &str) -> Result<Repository> {
        Ok(self.open_keeping_password(mode, command)?.0)
    }

    /// [`Ctx::open`], also returning the password it opened with (for a
    /// command that wraps the keys again, such as `key rotate`).
    fn open_keeping_password(&self, mode: Mode, command: &str) -> Result<(Repository, String)> {
        let pw = self.password("repository password: ")?;
        let quiet = self.quiet;
        let waiting = |what: &str| {
            if !quiet {
                eprintln!(
                    "snap: waiting up to {}s (--lock-wait): {}",
                    self.lock_wait.as_secs(),
                    term::escape_message(what)
                );
            }
        };
        let repo = self.repo.open(
            &self.cache,
            &|v| self.setting(v),
            pw.as_bytes(),
            mode,
            command,
            self.lock_wait,
            &waiting,
        )?;
        // Warnings go out even with --quiet: cron mail must carry them.
        for w in repo.warnings.iter().chain(repo.stray_names()) {
            eprintln!("snap: warning: {}", term::escape_message(w));
        }
        if !self.quiet {
            for n in repo.notes() {
                eprintln!("snap: note: {}", term::escape_message(n));
            }
        }
        Ok((repo, pw))
    }

    /// A setting of the storage client (credentials, endpoint, region):
    /// the `--remote`'s own, else the environment's.
    fn setting(&self, var: &str) -> Option<String> {
        if let Some(v) = self.flags.get(var) {
            return Some(v.clone());
        }
        match &self.remote {
            Some(r) => r.setting(var),
            None => std::env::var(var).ok(),
        }
    }

    /// The remotes file.
    fn remotes(&self) -> Result<snap::remote::Remotes> {
        load_remotes(self.remotes_file.as_deref(), self.config.as_ref())
    }

    /// Refuses a command that only works on the local repository.
    fn local_only(&self, what: &str) -> Result<()> {
        if let Some(r) = &self.remote {
            anyhow::bail!(
                "{what} works on the local repository, not on remote {:?}: `snap replicate {}` copies to it",
                r.name,
                r.name
            );
        }
        Ok(())
    }

    fn write_mode(&self) -> Mode {
        Mode::Write
    }

    /// Says on stderr which snapshot a command is about to read, unless
    /// `--quiet`: `snap: using snapshot 1a2b3c4d (global files level1,
    /// 2026-11-29 03:00:12 CET)`.
    fn using(&self, id: &snap::id::SnapshotId, s: &snap::format::snapshot::Snapshot) {
        if self.quiet {
            return;
        }
        eprintln!(
            "snap: using snapshot {} ({} {} level{}, {})",
            id.short(),
            s.site
                .as_deref()
                .map(term::escape)
                .unwrap_or_else(|| "global".into()),
            s.kind,
            s.level,
            term::human_time(&s.time, self.timezone())
        );
    }

    fn progress(&self, total_files: Option<u64>) -> term::TermProgress {
        term::TermProgress::new(self.quiet || self.json, total_files)
    }
}

fn default_repo() -> String {
    default_repo_path().display().to_string()
}

fn default_repo_path() -> PathBuf {
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        return PathBuf::from("/var/lib/snap/repo");
    }
    let base = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
        .unwrap_or_else(|| PathBuf::from("."));
    base.join("snap/repo")
}

/// The remotes of the configuration and of the remotes file.
fn load_remotes(
    file: Option<&std::path::Path>,
    config: Option<&snap::config::Config>,
) -> Result<snap::remote::Remotes> {
    let from_file = snap::remote::load(file)?;
    Ok(match config {
        Some(c) => c.remotes.clone().merge(from_file)?,
        None => from_file,
    })
}

/// Reads a password file; `what` says where its name came from.
fn read_password_file(f: &std::path::Path, what: &str) -> Result<String> {
    let s = std::fs::read_to_string(f)
        .with_context(|| format!("reading the password file {} ({what})", f.display()))?;
    let pw = s
        .strip_suffix('\n')
        .map(|x| x.strip_suffix('\r').unwrap_or(x))
        .unwrap_or(&s);
    if pw.is_empty() {
        anyhow::bail!(
            "the password file {} ({what}) is empty: put the password in it",
            f.display()
        );
    }
    Ok(pw.to_string())
}

/// Reads a password from `file_var`, `var`, or the terminal.
fn password(var: &str, file_var: &str, prompt: &str) -> Result<String> {
    if let Some(f) = std::env::var_os(file_var) {
        return read_password_file(std::path::Path::new(&f), file_var);
    }
    if let Ok(p) = std::env::var(var) {
        return Ok(p);
    }
    if std::io::stderr().is_terminal() {
        return rpassword::prompt_password(prompt)
            .context("reading the password from the terminal");
    }
    anyhow::bail!("no password: set {file_var} to a file holding it, or {var}, or run on a terminal to be asked")
}

/// A number from the environment variable `var`, if set.
fn env_u32(var: &str) -> Result<Option<u32>> {
    match std::env::var(var) {
        Ok(v) => v
            .parse()
            .map(Some)
            .with_context(|| format!("{var}={v:?} is not a number")),
        Err(_) => Ok(None),
    }
}

/// The Argon2id costs of a new key file: calibrated to about half a second
/// here, or set by SNAP_KDF_MEMORY_KIB and SNAP_KDF_ITERATIONS (either one
/// skips calibration; the other keeps its floor). Costs below the floor are
/// refused unless SNAP_INSECURE_KDF=1, which is for tests only.
fn kdf_params() -> Result<KdfParams> {
    let memory = env_u32("SNAP_KDF_MEMORY_KIB")?;
    let passes = env_u32("SNAP_KDF_ITERATIONS")?;
    if memory.is_none() && passes.is_none() {
        return Ok(snap::repo::calibrate_kdf(snap::repo::KDF_TARGET)?);
    }
    let p = KdfParams {
        memory_kib: memory.unwrap_or(KDF_MIN_WRITE.memory_kib),
        iterations: passes.unwrap_or(KDF_MIN_WRITE.iterations),
        parallelism: KDF_MIN_WRITE.parallelism,
    };
    if p.is_weak() && std::env::var("SNAP_INSECURE_KDF").as_deref() != Ok("1") {
        anyhow::bail!(
            "SNAP_KDF_MEMORY_KIB/SNAP_KDF_ITERATIONS ask for {} KiB and {} pass(es), below the floor of {} KiB and {} passes: a stolen key file would be cheap to guess against. Unset both to calibrate, or raise them (SNAP_INSECURE_KDF=1 allows weak costs, for tests only)",
            p.memory_kib,
            p.iterations,
            KDF_MIN_WRITE.memory_kib,
            KDF_MIN_WRITE.iterations
        );
    }
    if !affordable(&p) {
        anyhow::bail!(
            "SNAP_KDF_MEMORY_KIB/SNAP_KDF_ITERATIONS ask for {} KiB and {} pass(es), beyond what readers accept ({} KiB, {} passes, {} KiB × passes): lower them",
            p.memory_kib,
            p.iterations,
            KDF_MAX.memory_kib,
            KDF_MAX.iterations,
            KDF_MAX_WORK_KIB
        );
    }
    Ok(p)
}

/// Prints `v` as pretty JSON on stdout.
fn print_json<T: serde::Serialize>(v: &T) -> Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, v).map_err(std::io::Error::from)?;
    writeln!(out)?;
    Ok(())
}

/// A message made safe for the terminal (control characters escaped).
pub fn escape_message(s: &str) -> String {
    term::escape_message(s)
}

/// Takes SIGINT, SIGTERM and SIGHUP in one thread; call before any other
/// thread starts.
pub fn handle_signals() {
    signals::install();
}

/// Whether a signal is ending the process (then the signal thread exits).
pub fn stopping() -> bool {
    signals::stopping()
}

/// Runs a parsed command line; returns the exit code.
pub fn run(cli: Cli) -> Result<i32> {
    let config = snap::config::load(cli.config.as_deref()).map_err(|e| {
        anyhow::anyhow!("{e} (--config /dev/null runs without a configuration file)")
    })?;
    let remote = match &cli.remote {
        None => None,
        Some(name) => Some(
            load_remotes(cli.remotes_file.as_deref(), config.as_ref())?
                .get(name)?
                .clone(),
        ),
    };
    let repo = match &remote {
        Some(r) => Location::parse(&r.url),
        None => Location::parse(
            &cli.repo
                .or_else(|| config.as_ref().and_then(|c| c.repository.clone()))
                .unwrap_or_else(default_repo),
        ),
    };
    let mut flags = std::collections::BTreeMap::new();
    if let Some(e) = cli.s3_endpoint {
        flags.insert("AWS_ENDPOINT_URL_S3", e.clone());
        flags.insert("AWS_ENDPOINT_URL", e);
    }
    if let Some(r) = cli.s3_region {
        flags.insert("AWS_REGION", r);
    }
    if let Some(p) = cli.s3_path_style {
        flags.insert("SNAP_S3_PATH_STYLE", if p { "1" } else { "0" }.to_string());
    }
    let ctx = Ctx {
        repo,
        remote,
        remotes_file: cli.remotes_file,
        flags,
        cache: cli
            .cache_dir
            .or_else(|| config.as_ref().and_then(|c| c.cache_dir.clone()))
            .unwrap_or_else(snap::repo::cache::default_base),
        json: cli.json,
        quiet: cli.quiet,
        lock_wait: Duration::from_secs(cli.lock_wait),
        config,
        timezone: std::sync::OnceLock::new(),
    };
    match cli.command {
        Command::Init(a) => init::run(&ctx, a),
        Command::Key(a) => key::run(&ctx, a),
        Command::Push(a) => push::run(&ctx, a),
        Command::Snapshots(a) => snapshots::run(&ctx, a),
        Command::Ls(a) => ls::run(&ctx, a),
        Command::Cat(a) => cat::run(&ctx, a),
        Command::Diff(a) => diff::run(&ctx, a),
        Command::Log(a) => log::run(&ctx, a),
        Command::Find(a) => find::run(&ctx, a),
        Command::Mount(a) => mount::run(&ctx, a),
        Command::Restore(a) => restore::run(&ctx, a),
        Command::Check(a) => check::run(&ctx, a),
        Command::Repair(a) => repair::run(&ctx, a),
        Command::Prune(a) => prune::run(&ctx, a),
        Command::Forget(a) => forget::run(&ctx, a),
        Command::Report(a) => report::run(&ctx, a),
        Command::Stats(a) => stats::run(&ctx, a),
        Command::Protect(a) => protect::run(&ctx, a, true),
        Command::Unprotect(a) => protect::run(&ctx, a, false),
        Command::Unlock(a) => unlock::run(&ctx, a),
        Command::State(a) => state::run(&ctx, a),
        Command::Remote(a) => remote::run(&ctx, a),
        Command::Replicate(a) => remote::replicate_cmd(&ctx, a),
        Command::Clone(a) => remote::clone_cmd(&ctx, a),
        Command::Run(a) => run::run(&ctx, a),
        Command::Generate(c) => generate::run(&ctx, c),
    }
}

/// The exit code for an error (documented in the README).
pub fn exit_code(e: &anyhow::Error) -> i32 {
    if e.downcast_ref::<run::AlreadyRunning>().is_some() {
        return run::EXIT_ALREADY_RUNNING;
    }
    match e.downcast_ref::<Error>() {
        Some(Error::NoRepository { .. } | Error::NotARepository { .. }) => 10,
        Some(Error::Locked { .. } | Error::LockLost { .. }) => 11,
        Some(Error::WrongPassword { .. }) => 12,
        _ => 1,
    }
}

/// The error and its causes on one line. A cause whose text already ends
/// the message (an I/O error that names its path and its reason) is said once.
pub fn error_message(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if out.ends_with(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

/// Whether the error is a closed stdout (`snap ls | head`): not a failure.
pub fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// The clock and the policies, shared by `prune` and `report`.
#[derive(clap::Args, Debug, Default, Clone)]
pub struct PolicyArgs {
    /// Decide as if it were this time (RFC 3339 or "YYYY-MM-DD HH:MM:SS"; simulations, tests).
    #[arg(long)]
    now: Option<String>,
    /// Policy file [default: SNAP_POLICY_FILE, /etc/snap/policies.toml, ~/.config/snap/policies.toml].
    #[arg(long)]
    policy_file: Option<PathBuf>,
}

impl PolicyArgs {
    fn now(&self) -> Result<chrono::DateTime<chrono::Utc>> {
        Ok(match &self.now {
            Some(t) => push::parse_time("--now", t)?.with_timezone(&chrono::Utc),
            None => chrono::Utc::now(),
        })
    }

    /// The policies: `--policy-file`'s, else the configuration's (with
    /// the policy file merged in), else the policy file's or the built-in.
    fn policies(&self, ctx: &Ctx) -> Result<Vec<snap::format::policy::Policy>> {
        if let (None, Some(c)) = (&self.policy_file, &ctx.config) {
            return Ok(c.policies.clone());
        }
        Ok(snap::format::policy_file::load(
            self.policy_file.as_deref(),
        )?)
    }
}

/// Shared snapshot filter flags.
#[derive(clap::Args, Debug, Default, Clone)]
pub struct FilterArgs {
    /// Only snapshots of this site: its own, and the global snapshots holding its paths (as the configuration names them), seen as the site's directory.
    #[arg(long, value_parser = push::non_empty)]
    site: Option<String>,
    /// Only global (site-less) snapshots.
    #[arg(long, conflicts_with = "site")]
    global: bool,
    /// Only this kind (files or db).
    #[arg(long, value_parser = parse_kind)]
    kind: Option<snap::format::snapshot::Kind>,
    /// Only this plan level.
    #[arg(long)]
    level: Option<u8>,
    /// Only snapshots with this tag (repeatable: all must match).
    #[arg(long = "tag", value_parser = push::non_empty)]
    tags: Vec<String>,
    /// Only snapshots of this host.
    #[arg(long, value_parser = push::non_empty)]
    host: Option<String>,
}

impl FilterArgs {
    /// The filter, with the site's paths from the configuration.
    fn filter(&self, ctx: &Ctx) -> snap::ops::select::Filter {
        let site_paths = match (&self.site, &ctx.config) {
            (Some(name), Some(c)) => c
                .site(name)
                .map(|s| {
                    s.paths
                        .iter()
                        .map(|p| snap::config::recorded_path(p))
                        .collect()
                })
                .unwrap_or_default(),
            _ => Vec::new(),
        };
        snap::ops::select::Filter {
            site: self.site.clone(),
            site_paths,
            global: self.global,
            kind: self.kind,
            level: self.level,
            tags: self.tags.clone(),
            host: self.host.clone(),
        }
    }
}

fn parse_kind(s: &str) -> std::result::Result<snap::format::snapshot::Kind, String> {
    match s {
        "files" => Ok(snap::format::snapshot::Kind::Files),
        "db" => Ok(snap::format::snapshot::Kind::Db),
        _ => Err(format!("{s:?} is not a kind: use files or db")),
    }
}

/// Human-readable byte count.
/// A count with thousands separators: 3,054.
pub fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}
