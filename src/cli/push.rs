//! `snap push`: directories, a piped dump (`--stdin`), or a command's output
//! (`--from-command -- CMD ARGS...`).

use super::{Ctx, EXIT_INCOMPLETE};
use anyhow::{Context, Result};
use snap::format::snapshot::{Changes, Kind, ADHOC};
use snap::ops::push::{PushOptions, PushOutcome, Pusher};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// Save a snapshot.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Directories or files to save.
    paths: Vec<PathBuf>,
    /// Client site this snapshot belongs to (omit for global snapshots).
    #[arg(long, value_parser = non_empty)]
    site: Option<String>,
    /// files or db [default: files for paths, db for --stdin and --from-command]
    #[arg(long, value_parser = super::parse_kind)]
    kind: Option<Kind>,
    /// Backup plan level: 1 or 2, or 0 for an ad-hoc snapshot (as --adhoc).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(0..=2))]
    level: u8,
    /// An ad-hoc snapshot outside the plan (level 0), e.g. before an update:
    /// no policy counts or removes it, the report ignores it, and prune
    /// removes it once --keep-for has passed.
    #[arg(long, conflicts_with = "level")]
    adhoc: bool,
    /// How long an ad-hoc snapshot is kept (36h, 30d, 4w); required with --adhoc.
    #[arg(long, value_name = "DURATION", value_parser = keep_for)]
    keep_for: Option<chrono::Duration>,
    /// Tag (repeatable).
    #[arg(long = "tag", value_parser = non_empty)]
    tags: Vec<String>,
    /// Leave out paths matching this glob (repeatable). A pattern with a '/'
    /// matches the whole path, one without matches any file or directory name.
    #[arg(long = "exclude")]
    excludes: Vec<String>,
    /// Read exclude patterns from a file, one per line ('#' starts a comment).
    #[arg(long = "exclude-file")]
    exclude_files: Vec<PathBuf>,
    /// Save standard input as one file named --name.
    #[arg(long, conflicts_with = "from_command")]
    stdin: bool,
    /// Run the command after `--` and save its output as one file named
    /// --name; the snapshot is recorded only if the command exits 0.
    #[arg(long)]
    from_command: bool,
    /// File name for --stdin or --from-command (e.g. client_a.sql).
    #[arg(long, value_parser = file_name)]
    name: Option<String>,
    /// Read every file again, even those unchanged since the parent snapshot.
    #[arg(long)]
    force: bool,
    /// Take unchanged entries from this snapshot instead of the latest match.
    #[arg(long)]
    parent: Option<String>,
    /// Record this time instead of now (RFC 3339, or "YYYY-MM-DD HH:MM:SS" local).
    #[arg(long)]
    time: Option<String>,
    /// Record this host name instead of this machine's.
    #[arg(long, value_parser = non_empty)]
    host: Option<String>,
    /// Exit 6 (after saving) when the share of entries added, modified or
    /// deleted since the parent exceeds this (0.25 = a quarter) [default: the
    /// policy file's [alerts]].
    #[arg(long, value_name = "RATIO", value_parser = ratio)]
    alert_changed_ratio: Option<f64>,
    /// Policy file, for its [alerts] [default: SNAP_POLICY_FILE, /etc/snap/policies.toml, ~/.config/snap/policies.toml].
    #[arg(long)]
    policy_file: Option<PathBuf>,
    /// The command for --from-command.
    #[arg(last = true)]
    command: Vec<String>,
}

/// Exit code: saved, but the changes since the parent exceed the alert ratio.
pub const EXIT_CHANGES_ALERT: i32 = 6;

fn ratio(s: &str) -> std::result::Result<f64, String> {
    match s.parse::<f64>() {
        Ok(r) if r.is_finite() && r > 0.0 => Ok(r),
        _ => Err(format!(
            "{s:?} is not a share above 0: give e.g. 0.25 for a quarter of the files"
        )),
    }
}

/// The alert ratio of this push: the flag, else the policy file's for the
/// site. A policy file that cannot be read costs the alert, never the
/// backup: it is named in a warning.
fn alert_ratio(ctx: &Ctx, a: &Args) -> Option<f64> {
    if a.alert_changed_ratio.is_some() {
        return a.alert_changed_ratio;
    }
    if let (None, Some(c)) = (&a.policy_file, &ctx.config) {
        return c.alerts.for_site(a.site.as_deref());
    }
    match snap::format::policy_file::load_alerts(a.policy_file.as_deref()) {
        Ok(alerts) => alerts.for_site(a.site.as_deref()),
        Err(e) => {
            eprintln!(
                "snap: warning: no change alert for this push: {}",
                super::term::escape_message(&e.to_string())
            );
            None
        }
    }
}

fn keep_for(s: &str) -> std::result::Result<chrono::Duration, String> {
    let secs = snap::format::policy::parse_duration(s)?;
    if secs == 0 {
        return Err(format!(
            "{s:?} would expire at once: give how long to keep it, e.g. 30d"
        ));
    }
    Ok(chrono::Duration::seconds(secs))
}

/// The level of the push and, for an ad-hoc one, how long it is kept.
fn level_and_expiry(a: &Args) -> Result<(u8, Option<chrono::Duration>)> {
    let level = if a.adhoc { ADHOC } else { a.level };
    match (level == ADHOC, a.keep_for) {
        (true, Some(d)) => Ok((level, Some(d))),
        (true, None) => anyhow::bail!(
            "an ad-hoc snapshot needs --keep-for DURATION (e.g. --keep-for 30d): no policy removes it, so it says itself when it may go"
        ),
        (false, Some(_)) => anyhow::bail!(
            "--keep-for is for ad-hoc snapshots (--adhoc or --level 0); to keep a level-{level} snapshot beyond its policy, use `snap protect`"
        ),
        (false, None) => Ok((level, None)),
    }
}

/// Refuses an empty value (or only blanks): an empty `--site` would make a
/// group of its own that no policy names.
pub fn non_empty(s: &str) -> std::result::Result<String, String> {
    if s.trim().is_empty() {
        return Err("an empty value is not allowed: give a name, or leave the option out".into());
    }
    Ok(s.to_string())
}

/// A stream's `--name` is the one file of the snapshot: a single valid file
/// name, or the snapshot could not be restored.
fn file_name(s: &str) -> std::result::Result<String, String> {
    if s.is_empty() || s == "." || s == ".." || s.contains('/') || s.contains('\0') {
        return Err(format!(
            "{s:?} is not a file name: give a single name without '/', not '.' or '..' (e.g. client_a.sql)"
        ));
    }
    Ok(s.to_string())
}

/// Times before this are refused: no file system or backup has them.
const EARLIEST: &str = "1970-01-01T00:00:00Z";
/// Years ahead of now beyond which a `--time` is refused as absurd.
const MAX_YEARS_AHEAD: i64 = 100;

/// Parses `--time` and checks it against the clock: absurd values (before
/// 1970, a century ahead) are refused, and a time more than a day ahead
/// draws a warning: such a snapshot is "in the future", counts for no
/// retention rule and is neither `latest` nor a parent until its time comes.
pub fn push_time(
    s: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(chrono::DateTime<chrono::FixedOffset>, Option<String>)> {
    let t = parse_time("--time", s)?;
    let earliest = chrono::DateTime::parse_from_rfc3339(EARLIEST).expect("valid constant");
    if t < earliest {
        anyhow::bail!("--time {s:?} is before 1970: give the real time of the backup");
    }
    if t.to_utc() > now + chrono::Duration::days(365 * MAX_YEARS_AHEAD) {
        anyhow::bail!(
            "--time {s:?} is more than {MAX_YEARS_AHEAD} years ahead: give the real time of the backup"
        );
    }
    let warning = (t.to_utc() > now + chrono::Duration::days(1)).then(|| {
        format!("--time {s:?} is more than a day ahead of this machine's clock: the snapshot counts for no retention rule, and is not `latest`, until then")
    });
    Ok((t, warning))
}

/// Parses a user-given time; `flag` names the option in errors.
pub fn parse_time(flag: &str, s: &str) -> Result<chrono::DateTime<chrono::FixedOffset>> {
    use chrono::TimeZone;
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(t);
    }
    for fmt in ["%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M"] {
        if let Ok(n) = chrono::NaiveDateTime::parse_from_str(s, fmt) {
            return match chrono::Local.from_local_datetime(&n).earliest() {
                Some(t) => Ok(t.fixed_offset()),
                None => anyhow::bail!("{flag} {s:?} does not exist in the local time zone (a daylight-saving gap): give another time, or an RFC 3339 time with its offset"),
            };
        }
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        if let Some(t) = chrono::Local
            .from_local_datetime(&d.and_hms_opt(0, 0, 0).expect("midnight"))
            .earliest()
        {
            return Ok(t.fixed_offset());
        }
    }
    anyhow::bail!("{flag} {s:?} is not a time: use RFC 3339 (2026-11-25T03:00:00+01:00) or \"2026-11-25 03:00:00\"")
}

fn read_excludes(a: &Args) -> Result<Vec<String>> {
    let mut out = a.excludes.clone();
    for f in &a.exclude_files {
        let text = std::fs::read_to_string(f)
            .with_context(|| format!("reading exclude file {}", f.display()))?;
        out.extend(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(String::from),
        );
    }
    Ok(out)
}

pub fn run(ctx: &Ctx, a: Args) -> Result<i32> {
    let stream = a.stdin || a.from_command;
    if stream && !a.paths.is_empty() {
        anyhow::bail!("give either paths, or --stdin / --from-command, not both");
    }
    if !stream && a.paths.is_empty() {
        anyhow::bail!("nothing to push: give directories, or --stdin / --from-command -- CMD");
    }
    if a.from_command && a.command.is_empty() {
        anyhow::bail!("--from-command needs the command after `--`, e.g. snap push --from-command --name db.sql -- mysqldump client_a");
    }
    if !a.from_command && !a.command.is_empty() {
        anyhow::bail!("arguments after `--` are only for --from-command");
    }
    let (level, keep_for) = level_and_expiry(&a)?;
    let name = match (stream, &a.name) {
        (true, Some(n)) => Some(n.clone()),
        (true, None) => {
            anyhow::bail!("--stdin and --from-command need --name FILE (e.g. --name client_a.sql)")
        }
        (false, Some(_)) => anyhow::bail!("--name is only for --stdin and --from-command"),
        (false, None) => None,
    };
    let time = match &a.time {
        Some(t) => {
            let (t, warning) = push_time(t, chrono::Utc::now())?;
            if let Some(w) = warning {
                eprintln!("snap: warning: {w}");
            }
            Some(t)
        }
        None => None,
    };
    let abs: Vec<PathBuf> = a
        .paths
        .iter()
        .map(|p| std::path::absolute(p).with_context(|| format!("resolving {}", p.display())))
        .collect::<Result<_>>()?;
    for p in &abs {
        std::fs::symlink_metadata(p).with_context(|| format!("cannot push {}", p.display()))?;
    }
    ctx.local_only("push")?;
    let repo = ctx.open(ctx.write_mode(), "push")?;
    let parent = match &a.parent {
        Some(p) => Some(snap::ops::select::resolve(&repo, p, &Default::default())?.0),
        None => None,
    };
    // Read once: a file that vanished during the push must not turn a saved
    // snapshot into an error.
    let excludes = read_excludes(&a)?;
    let opts = PushOptions {
        site: a.site.clone(),
        kind: Some(
            a.kind
                .unwrap_or(if stream { Kind::Db } else { Kind::Files }),
        ),
        level,
        keep_for,
        tags: a.tags.clone(),
        excludes: excludes.clone(),
        force: a.force,
        parent,
        time,
        host: a
            .host
            .clone()
            .or_else(|| ctx.config.as_ref().and_then(|c| c.host.clone()))
            .unwrap_or_else(snap::repo::lock::host_name),
        alert_changed_ratio: if stream { None } else { alert_ratio(ctx, &a) },
    };
    let alert_ratio = opts.alert_changed_ratio;
    let progress = ctx.progress(None);
    let pusher = Pusher::new(&repo, opts, &progress)?;
    let outcome = if let Some(name) = name {
        if a.from_command {
            // Its own process group: a signal to snap ends the dump and
            // everything it started (see signals.rs), nothing is orphaned.
            let spawning = super::signals::spawning();
            let mut cmd = Command::new(&a.command[0]);
            cmd.args(&a.command[1..])
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .process_group(0);
            super::signals::unblock_in_child(&mut cmd);
            let mut child = cmd
                .spawn()
                .with_context(|| format!("starting {:?}", a.command[0]))?;
            super::signals::set_child_group(child.id() as i32);
            drop(spawning);
            let out = child.stdout.take().expect("stdout is piped");
            let tree = pusher.save_stream(&name, out);
            let status = child.wait().context("waiting for the command");
            super::signals::set_child_group(0);
            let status = status?;
            let tree = tree?;
            if !status.success() {
                progress.finish();
                anyhow::bail!(
                    "{} exited with {status}; no snapshot was recorded (a failed dump is not a backup)",
                    a.command.join(" ")
                );
            }
            pusher.commit(tree, vec![name], None, Some(a.command.clone()))?
        } else {
            let tree = pusher.save_stream(&name, std::io::stdin())?;
            pusher.commit(tree, vec![name], None, None)?
        }
    } else {
        // `src` and `src/` are the same source for choosing a parent.
        let paths: Vec<String> = abs
            .iter()
            .map(|p| p.components().collect::<PathBuf>().display().to_string())
            .collect();
        let parent = pusher.find_parent(&paths)?;
        if let Some(n) = pusher.parent_note() {
            eprintln!("snap: note: {}", super::term::escape_message(&n));
        }
        // A parent whose tree cannot be read (a pack lost, then repaired)
        // only costs reading every file again.
        let parent_tree = parent
            .as_ref()
            .and_then(|(_, s)| repo.load_tree(&s.tree).ok());
        let tree = pusher.save_paths(&abs, parent_tree.as_ref())?;
        pusher.commit(tree, paths, parent.map(|(id, _)| id), None)?
    };
    progress.finish();
    let m = &outcome.snapshot.summary;
    let nothing = m.files_new + m.files_changed + m.files_unchanged == 0;
    if !stream && nothing && !excludes.is_empty() {
        eprintln!(
            "snap: warning: the excludes ({}) left no file to save from {}",
            super::term::escape(&excludes.join(", ")),
            super::term::escape(&paths_text(&abs))
        );
    }
    // The snapshot is saved: replication to the remotes that receive it
    // (level 2 by default) follows, and its failure loses nothing here.
    let replicated = super::remote::after_push(
        ctx,
        &repo,
        outcome.snapshot.level,
        outcome.snapshot.site.as_deref(),
    );
    let replicated = match replicated {
        Ok(r) => r,
        Err(e) => super::remote::AfterPush {
            outcomes: vec![("(remotes file)".into(), Err(format!("{e:#}")))],
        },
    };
    report(ctx, &outcome, &replicated)?;
    replicated.print(ctx)?;
    let alert = outcome.snapshot.changes.as_ref().is_some_and(|c| c.alert);
    if let Some(c) = &outcome.snapshot.changes {
        warn_changes(&outcome.id, c, alert_ratio);
    }
    Ok(if alert {
        EXIT_CHANGES_ALERT
    } else if !replicated.ok() {
        super::remote::EXIT_REPLICATION_FAILED
    } else if outcome.snapshot.complete {
        0
    } else {
        EXIT_INCOMPLETE
    })
}

/// Warnings about a push's changes, on stderr even with --quiet (cron mails
/// them): new scripts in upload directories, and the alert.
fn warn_changes(id: &snap::id::SnapshotId, c: &Changes, ratio: Option<f64>) {
    if c.suspicious_total > 0 {
        eprintln!(
            "snap: warning: snapshot {}: {} new script or executable file(s) under upload directories, where only media belong (a planted web shell looks like this):",
            id.short(),
            c.suspicious_total
        );
        for p in &c.suspicious {
            eprintln!("snap: warning:   {}", super::term::escape(p));
        }
        if c.suspicious_total > c.suspicious.len() as u64 {
            eprintln!(
                "snap: warning:   and {} more (snap diff lists them all)",
                c.suspicious_total - c.suspicious.len() as u64
            );
        }
    }
    if c.alert {
        let dirs: Vec<String> = c
            .top_dirs
            .iter()
            .take(5)
            .map(|d| format!("{} ({})", super::term::escape(&d.path), d.changes))
            .collect();
        eprintln!(
            "snap: ALERT: snapshot {} is saved, but {:.1}% of the entries changed since its parent ({} added, {} modified, {} deleted of {}): more than the alert ratio {}. Most changed: {}. Check the site for a break-in; `snap diff` shows every change (exit code {EXIT_CHANGES_ALERT})",
            id.short(),
            c.ratio() * 100.0,
            c.added,
            c.modified,
            c.deleted,
            c.parent_entries,
            ratio.map_or_else(String::new, |r| format!("({:.1}%)", r * 100.0)),
            dirs.join(", ")
        );
    }
}

fn paths_text(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(" ")
}

fn report(ctx: &Ctx, o: &PushOutcome, replicated: &super::remote::AfterPush) -> Result<()> {
    let s = &o.snapshot;
    if ctx.json {
        let mut v = serde_json::to_value(s)?;
        v["id"] = serde_json::Value::String(o.id.to_hex());
        v["short_id"] = serde_json::Value::String(o.id.short());
        if !replicated.outcomes.is_empty() {
            v["replication"] = replicated.json();
        }
        return super::print_json(&v);
    }
    if ctx.quiet {
        return Ok(());
    }
    let m = &s.summary;
    outln!(
        "snapshot {} saved: {} files new, {} changed, {} unchanged; {} read, {} added ({} stored) in {:.2}s",
        o.id.short(),
        m.files_new,
        m.files_changed,
        m.files_unchanged,
        super::bytes(m.bytes_read),
        super::bytes(m.bytes_added),
        super::bytes(m.bytes_stored),
        m.duration_ms as f64 / 1000.0
    );
    if let Some(c) = &s.changes {
        let pct = |n: u64| 100.0 * n as f64 / c.parent_entries.max(1) as f64;
        outln!(
            "changes since the parent: {} added ({:.1}%), {} modified ({:.1}%), {} deleted ({:.1}%) of {} files",
            c.added,
            pct(c.added),
            c.modified,
            pct(c.modified),
            c.deleted,
            pct(c.deleted),
            c.parent_entries
        );
    }
    if !s.complete {
        outln!(
            "{} path(s) could not be saved; the snapshot is marked incomplete (exit code 3)",
            s.errors.len()
        );
    }
    Ok(())
}
