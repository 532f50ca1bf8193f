//! `snap run`: what the configuration says is due now, for cron and
//! systemd. Each step (a push, a replication, the prune, the report) runs
//! as its own `snap` process, so one site's failure never stops the others
//! and every step keeps its own exit code and messages. Nothing is printed
//! when every step succeeded and every promise holds.

use super::Ctx;
use anyhow::{Context, Result};
use serde::Serialize;
use snap::config::{Config, Expected};
use snap::format::snapshot::Kind;
use snap::ops::prune::GroupKey;
use snap::repo::Mode;
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::Instant;

/// Exit code of `snap run` when another run holds its lock.
pub const EXIT_ALREADY_RUNNING: i32 = 11;

/// Lines of a failed step's messages kept for the summary.
const TAIL_LINES: usize = 15;
/// Bytes of a step's output kept (the end of it).
const TAIL_BYTES: usize = 64 << 10;

/// Do what is due now: level-1 pushes daily, level-2 dumps and files on
/// their schedule, replication, every policy's prune, then the report.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Act as if it were this time (RFC 3339 or "YYYY-MM-DD HH:MM:SS"; simulations, tests): pushes record it, prune and report use it.
    #[arg(long)]
    now: Option<String>,
    /// List what is due and what would run; run nothing.
    #[arg(long)]
    dry_run: bool,
}

/// One thing to do.
#[derive(Debug, Serialize)]
struct Step {
    /// What it is (`boulangerie db level2 (boulangerie.sql)`, `prune`).
    label: String,
    /// Why it is due.
    why: String,
    /// `snap` arguments (empty: it could not even be prepared).
    args: Vec<String>,
    /// Why it could not be prepared (a wp-config.php without DB_NAME).
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// How a step went.
#[derive(Debug, Serialize)]
struct Done {
    #[serde(flatten)]
    step: Step,
    /// Its exit code.
    code: i32,
    /// Seconds it took.
    seconds: f64,
    /// The end of what it printed (stderr, then stdout).
    output: String,
}

/// The run's exit code from its steps' codes: 1 when a step failed (any
/// code but those below), else the first of 6 (change alert), 7 (suspect
/// dump), 4 (a promise broken), 5 (replication), 3 (files unreadable).
fn combined(codes: &[i32]) -> i32 {
    if codes.iter().any(|c| !matches!(c, 0 | 3 | 4 | 5 | 6 | 7)) {
        return 1;
    }
    [6, 7, 4, 5, 3]
        .into_iter()
        .find(|c| codes.contains(c))
        .unwrap_or(0)
}

pub fn run(ctx: &Ctx, a: Args) -> Result<i32> {
    let Some(config) = &ctx.config else {
        anyhow::bail!(
            "snap run does what the configuration file says, and there is none: write /etc/snap/snap.toml (see the README's quick start), or give --config FILE"
        );
    };
    ctx.local_only("run")?;
    let now = match &a.now {
        Some(t) => super::push::parse_time("--now", t)?.with_timezone(&chrono::Utc),
        None => chrono::Utc::now(),
    };
    let _lock = if a.dry_run {
        None
    } else {
        Some(RunLock::take(ctx)?)
    };
    let newest = newest_by_group(ctx, now)?;
    let steps = plan(ctx, config, &a, now, &newest);
    if a.dry_run {
        if ctx.json {
            super::print_json(
                &serde_json::json!({ "now": now.to_rfc3339(), "dry_run": true, "steps": steps }),
            )?;
        } else {
            let tz = ctx.timezone();
            outln!(
                "snap run at {}: {} step(s) due",
                super::term::human_time(&now.to_rfc3339(), tz),
                steps.len()
            );
            for s in &steps {
                match &s.error {
                    Some(e) => outln!("  {}  [{}]  cannot run: {e}", s.label, s.why),
                    None => outln!(
                        "  {}  [{}]  snap {}",
                        s.label,
                        s.why,
                        super::escape_message(&snap::config::shell_words(&s.args))
                    ),
                }
            }
        }
        return Ok(0);
    }
    let mut done = Vec::new();
    for step in steps {
        done.push(execute(step)?);
    }
    let codes: Vec<i32> = done.iter().map(|d| d.code).collect();
    let code = combined(&codes);
    if ctx.json {
        super::print_json(&serde_json::json!({
            "now": now.to_rfc3339(),
            "dry_run": false,
            "exit": code,
            "steps": done,
        }))?;
        return Ok(code);
    }
    if code != 0 {
        let bad: Vec<&Done> = done.iter().filter(|d| d.code != 0).collect();
        let tz = ctx.timezone();
        outln!(
            "snap run at {}: {} of {} step(s) need attention (exit {code})",
            super::term::human_time(&now.to_rfc3339(), tz),
            bad.len(),
            done.len()
        );
        for d in bad {
            outln!("{} — exit {}: {}", d.step.label, d.code, meaning(d.code));
            for line in d.output.lines() {
                outln!("    {}", super::escape_message(line));
            }
        }
    }
    Ok(code)
}

/// What an exit code of a step means, in a few words.
fn meaning(code: i32) -> &'static str {
    match code {
        3 => "saved, but some files could not be read",
        4 => "a promise of the plan is broken",
        5 => "saved locally, replication failed",
        6 => "saved, but many files changed or scripts appeared in uploads",
        7 => "saved, but the dump is empty or much smaller than the previous one",
        10 => "no repository there",
        11 => "locked",
        12 => "wrong password",
        c if c > 128 => "stopped by a signal",
        _ => "failed, nothing saved",
    }
}

/// The newest restore point (not dated after `now`) of every group.
/// A suspect dump (empty, or much smaller than the one before) does not
/// count: the next run dumps again, and a healthy dump clears the report.
fn newest_by_group(
    ctx: &Ctx,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<BTreeMap<GroupKey, chrono::DateTime<chrono::Utc>>> {
    let repo = ctx.open(Mode::Read, "run")?;
    let mut out: BTreeMap<GroupKey, chrono::DateTime<chrono::Utc>> = BTreeMap::new();
    for (_, s) in repo.snapshots()? {
        if s.is_future(now) || s.dump_check.is_some() {
            continue;
        }
        let t = s.timestamp().to_utc();
        let newest = out.entry(GroupKey::of(&s)).or_insert(t);
        *newest = (*newest).max(t);
    }
    Ok(out)
}

/// The global flags every step gets, so that it works on the same
/// repository with the same configuration.
fn common_args(ctx: &Ctx, config: &Config) -> Vec<String> {
    let mut v = vec![
        "--config".to_string(),
        config.origin.display().to_string(),
        "--cache-dir".into(),
        ctx.cache.display().to_string(),
        "--repo".into(),
        ctx.repo.display(),
        "--quiet".into(),
        "--lock-wait".into(),
        ctx.lock_wait.as_secs().to_string(),
    ];
    if let Some(f) = &ctx.remotes_file {
        v.push("--remotes-file".into());
        v.push(f.display().to_string());
    }
    v
}

/// What is due at `now`, in order: level-1 global pushes, each site's
/// pushes, replication to each remote, the prune, the report.
fn plan(
    ctx: &Ctx,
    config: &Config,
    a: &Args,
    now: chrono::DateTime<chrono::Utc>,
    newest: &BTreeMap<GroupKey, chrono::DateTime<chrono::Utc>>,
) -> Vec<Step> {
    let host = config
        .host
        .clone()
        .unwrap_or_else(snap::repo::lock::host_name);
    let common = common_args(ctx, config);
    let clock: Vec<String> = match &a.now {
        Some(_) => vec!["--now".into(), now.to_rfc3339()],
        None => vec![],
    };
    let tz = ctx.timezone();
    let mut steps = Vec::new();
    for e in config.expected() {
        let (since, _) = e.due(now, config);
        let last = newest
            .get(&GroupKey {
                level: e.level,
                kind: e.kind,
                site: e.site.clone(),
                host: host.clone(),
                paths: e.paths.clone(),
            })
            .copied();
        let why = match last {
            Some(t) if t >= since => continue,
            Some(t) => format!(
                "{}; last {}",
                e.period,
                super::term::human_time(&t.to_rfc3339(), tz)
            ),
            None => format!("{}; never pushed", e.period),
        };
        match push_args(&e, a, now) {
            Ok(args) => steps.push(Step {
                label: e.label(),
                why,
                args: common.iter().cloned().chain(args).collect(),
                error: None,
            }),
            Err(err) => steps.push(Step {
                label: e.label(),
                why,
                args: vec![],
                error: Some(format!("{err:#}")),
            }),
        }
    }
    let remotes = ctx
        .remotes()
        .map(|r| r.remotes.keys().cloned().collect::<Vec<_>>());
    match remotes {
        Ok(names) => {
            for name in names {
                steps.push(Step {
                    label: format!("replicate to {name}"),
                    why: "every run catches up what the remote receives".into(),
                    args: common
                        .iter()
                        .cloned()
                        .chain(["replicate".to_string(), name])
                        .collect(),
                    error: None,
                });
            }
        }
        Err(e) => steps.push(Step {
            label: "replicate".into(),
            why: "every run catches up what the remotes receive".into(),
            args: vec![],
            error: Some(format!("{e:#}")),
        }),
    }
    steps.push(Step {
        label: "prune".into(),
        why: "every policy, each group by the policy in charge of it".into(),
        args: common
            .iter()
            .cloned()
            .chain(["prune".to_string(), "--policy".into(), "all".into()])
            .chain(clock.iter().cloned())
            .collect(),
        error: None,
    });
    steps.push(Step {
        label: "report".into(),
        why: "the promises of the plan and the configured sites".into(),
        args: common
            .iter()
            .cloned()
            .chain(["report".to_string(), "--problems-only".into()])
            .chain(clock.iter().cloned())
            .collect(),
        error: None,
    });
    steps
}

/// The `snap push` arguments of an expected push.
fn push_args(e: &Expected, a: &Args, now: chrono::DateTime<chrono::Utc>) -> Result<Vec<String>> {
    let mut v = vec![
        "push".to_string(),
        "--level".into(),
        e.level.to_string(),
        "--kind".into(),
        e.kind.to_string(),
    ];
    if let Some(s) = &e.site {
        v.push("--site".into());
        v.push(s.clone());
    }
    if a.now.is_some() {
        v.push("--time".into());
        v.push(now.to_rfc3339());
    }
    match e.kind {
        Kind::Files => {
            for x in &e.excludes {
                v.push(format!("--exclude={x}"));
            }
            // Absolute paths: never taken for options.
            v.extend(e.paths.iter().cloned());
        }
        Kind::Db => {
            let dump = e.dump.as_ref().expect("a db push has its dump");
            let (command, name) = dump.resolve(e.site.as_deref())?;
            v.extend(["--name".into(), name, "--from-shell".into(), command]);
        }
    }
    Ok(v)
}

/// Keeps the end of a stream, at most [`TAIL_BYTES`].
fn tail_of(mut r: impl Read) -> Vec<u8> {
    let mut keep = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match r.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                keep.extend_from_slice(&buf[..n]);
                if keep.len() > 2 * TAIL_BYTES {
                    keep.drain(..keep.len() - TAIL_BYTES);
                }
            }
        }
    }
    if keep.len() > TAIL_BYTES {
        keep.drain(..keep.len() - TAIL_BYTES);
    }
    keep
}

/// Runs one step as its own `snap` process, in its own process group (a
/// signal to `snap run` stops it cleanly, see signals.rs).
fn execute(step: Step) -> Result<Done> {
    let started = Instant::now();
    if let Some(e) = &step.error {
        let output = e.clone();
        return Ok(Done {
            step,
            code: 1,
            seconds: 0.0,
            output,
        });
    }
    let exe = std::env::current_exe().context("finding the snap program to run the steps")?;
    let spawning = super::signals::spawning();
    let mut cmd = Command::new(&exe);
    cmd.args(step.args.iter().map(OsString::from))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    super::signals::unblock_in_child(&mut cmd);
    let mut child = cmd
        .spawn()
        .with_context(|| format!("starting {}", exe.display()))?;
    super::signals::set_child_group(child.id() as i32);
    drop(spawning);
    let out = child.stdout.take().expect("piped");
    let err = child.stderr.take().expect("piped");
    let out = std::thread::spawn(move || tail_of(out));
    let err = std::thread::spawn(move || tail_of(err));
    let status = child.wait();
    super::signals::set_child_group(0);
    let status = status.context("waiting for a step")?;
    let mut text = String::from_utf8_lossy(&err.join().unwrap_or_default()).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.join().unwrap_or_default()));
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let from = lines.len().saturating_sub(TAIL_LINES);
    let code = match (
        status.code(),
        std::os::unix::process::ExitStatusExt::signal(&status),
    ) {
        (Some(c), _) => c,
        (None, Some(s)) => 128 + s,
        (None, None) => 1,
    };
    Ok(Done {
        step,
        code,
        seconds: started.elapsed().as_secs_f64(),
        output: lines[from..].join("\n"),
    })
}

/// The lock that keeps two runs apart: `flock` on a file in the cache
/// directory, released when the process ends however it ends.
struct RunLock {
    _file: std::fs::File,
}

impl RunLock {
    fn take(ctx: &Ctx) -> Result<RunLock> {
        use std::io::{Seek, Write};
        use std::os::fd::AsRawFd;
        std::fs::create_dir_all(&ctx.cache)
            .with_context(|| format!("creating the cache directory {}", ctx.cache.display()))?;
        let path = ctx.cache.join("snap-run.lock");
        let mut f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        // SAFETY: flock on an open descriptor.
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            let mut who = String::new();
            let _ = f.read_to_string(&mut who);
            return Err(anyhow::Error::new(AlreadyRunning(format!(
                "another snap run holds {} ({}): it is still running, so this one does nothing. If no snap run is running, something else holds the file",
                path.display(),
                who.trim()
            ))));
        }
        f.set_len(0)?;
        f.rewind()?;
        writeln!(
            f,
            "pid {} since {}",
            std::process::id(),
            chrono::Utc::now().to_rfc3339()
        )?;
        Ok(RunLock { _file: f })
    }
}

/// Another run holds the lock (exit 11).
#[derive(Debug)]
pub struct AlreadyRunning(String);

impl std::fmt::Display for AlreadyRunning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for AlreadyRunning {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_combine_by_severity() {
        assert_eq!(combined(&[0, 0]), 0);
        assert_eq!(combined(&[0, 3, 5]), 5);
        assert_eq!(combined(&[4, 7]), 7);
        assert_eq!(combined(&[4, 6, 7]), 6);
        assert_eq!(combined(&[4, 12]), 1);
        assert_eq!(combined(&[143]), 1);
    }
}
