//! `snap push`: directories, a piped dump (`--stdin`), or a command's output
//! (`--from-command -- CMD ARGS...`, or a shell pipeline run with pipefail,
//! `--from-shell 'CMD | gzip'`). A dump that is empty or much smaller than
//! the previous one of its group is saved and flagged (exit 7).

use super::{Ctx, EXIT_INCOMPLETE};
use anyhow::{Context, Result};
use snap::format::policy_file::Alerts;
use snap::format::snapshot::{Changes, DumpCheck, DumpReason, Kind, Snapshot, ADHOC};
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
    #[arg(long, conflicts_with_all = ["from_command", "from_shell"])]
    stdin: bool,
    /// Run the command after `--` and save its output as one file named
    /// --name; the snapshot is recorded only if the command exits 0. A
    /// pipeline belongs in --from-shell: `sh -c 'a | b'` reports only b's
    /// status.
    #[arg(long, conflicts_with = "from_shell")]
    from_command: bool,
    /// Run this shell pipeline with `bash -o pipefail -c` and save its
    /// output as one file named --name; the snapshot is recorded only if
    /// every stage exits 0.
    #[arg(long, value_name = "PIPELINE", value_parser = non_empty)]
    from_shell: Option<String>,
    /// File name for --stdin, --from-command or --from-shell (e.g. client_a.sql).
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
    /// A dump (kind db from --stdin, --from-command or --from-shell) smaller
    /// than this share of the group's previous dump is saved but flagged,
    /// exit 7; 0 flags only an empty dump [default: the policy file's
    /// [alerts] min_dump_ratio, else 0.5].
    #[arg(long, value_name = "RATIO", value_parser = dump_ratio)]
    min_dump_ratio: Option<f64>,
    /// Policy file, for its [alerts] [default: SNAP_POLICY_FILE, /etc/snap/policies.toml, ~/.config/snap/policies.toml].
    #[arg(long)]
    policy_file: Option<PathBuf>,
    /// The command for --from-command.
    #[arg(last = true)]
    command: Vec<String>,
}

/// Exit code: saved, but the changes since the parent exceed the alert ratio.
pub const EXIT_CHANGES_ALERT: i32 = 6;
/// Exit code: saved, but the dump is empty or much smaller than the
/// previous one of its group.
pub const EXIT_SUSPICIOUS_DUMP: i32 = 7;

fn dump_ratio(s: &str) -> std::result::Result<f64, String> {
    let r = s
        .parse::<f64>()
        .map_err(|_| format!("{s:?} is not a number: give e.g. 0.5"))?;
    snap::format::policy_file::check_min_dump_ratio(r)
}

fn ratio(s: &str) -> std::result::Result<f64, String> {
    match s.parse::<f64>() {
        Ok(r) if r.is_finite() && r > 0.0 => Ok(r),
        _ => Err(format!(
            "{s:?} is not a share above 0: give e.g. 0.25 for a quarter of the files"
        )),
    }
}

/// The early warning's thresholds (`[alerts]`): the configuration's,
/// else the policy file's. A policy file that cannot be read costs the
/// alert, never the backup: it is named in a warning, and `what` says what
/// this push does without it.
fn policy_alerts(ctx: &Ctx, a: &Args, what: &str) -> Option<Alerts> {
    if let (None, Some(c)) = (&a.policy_file, &ctx.config) {
        return Some(c.alerts.clone());
    }
    match snap::format::policy_file::load_alerts(a.policy_file.as_deref()) {
        Ok(alerts) => Some(alerts),
        Err(e) => {
            eprintln!(
                "snap: warning: {what}: {}",
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

/// The alert ratio of this push: the flag, else the configuration's or the
/// policy file's for the site.
fn alert_ratio(ctx: &Ctx, a: &Args) -> Option<f64> {
    if a.alert_changed_ratio.is_some() {
        return a.alert_changed_ratio;
    }
    policy_alerts(ctx, a, "no change alert for this push")
        .and_then(|x| x.for_site(a.site.as_deref()))
}

/// The dump shrink threshold of this push: the flag, else the
/// configuration's or the policy file's, else the default.
fn min_dump_ratio(ctx: &Ctx, a: &Args) -> f64 {
    if let Some(r) = a.min_dump_ratio {
        return r;
    }
    policy_alerts(
        ctx,
        a,
        "the dump is checked with the default --min-dump-ratio 0.5",
    )
    .unwrap_or_default()
    .min_dump_ratio()
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
    let stream = a.stdin || a.from_command || a.from_shell.is_some();
    if stream && !a.paths.is_empty() {
        anyhow::bail!("give either paths, or --stdin / --from-command / --from-shell, not both");
    }
    if !stream && a.paths.is_empty() {
        anyhow::bail!("nothing to push: give directories, or --stdin / --from-command -- CMD / --from-shell 'CMD | gzip'");
    }
    if a.from_command && a.command.is_empty() {
        anyhow::bail!("--from-command needs the command after `--`, e.g. snap push --from-command --name db.sql -- mysqldump client_a");
    }
    if !stream && a.min_dump_ratio.is_some() {
        anyhow::bail!("--min-dump-ratio is for dumps (--stdin, --from-command, --from-shell); a push of files is checked with --alert-changed-ratio");
    }
    if !a.from_command && !a.command.is_empty() {
        anyhow::bail!("arguments after `--` are only for --from-command");
    }
    let (level, keep_for) = level_and_expiry(&a)?;
    let name = match (stream, &a.name) {
        (true, Some(n)) => Some(n.clone()),
        (true, None) => {
            anyhow::bail!("--stdin, --from-command and --from-shell need --name FILE (e.g. --name client_a.sql)")
        }
        (false, Some(_)) => {
            anyhow::bail!("--name is only for --stdin, --from-command and --from-shell")
        }
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
        min_dump_ratio: stream.then(|| min_dump_ratio(ctx, &a)),
    };
    let alert_ratio = opts.alert_changed_ratio;
    let progress = ctx.progress(None);
    let pusher = Pusher::new(&repo, opts, &progress)?;
    let outcome = if let Some(name) = name {
        let command = match &a.from_shell {
            Some(line) => Some(shell_command(line)?),
            None => a.from_command.then(|| a.command.clone()),
        };
        if let Some(command) = command {
            let tree = save_command_output(&pusher, &name, &command);
            if tree.is_err() {
                progress.finish();
            }
            pusher.commit(tree?, vec![name], None, Some(command))?
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
    if let Some(d) = &outcome.snapshot.dump_check {
        warn_dump(&outcome.id, &outcome.snapshot, d);
    }
    Ok(if alert {
        EXIT_CHANGES_ALERT
    } else if outcome.snapshot.dump_check.is_some() {
        EXIT_SUSPICIOUS_DUMP
    } else if !replicated.ok() {
        super::remote::EXIT_REPLICATION_FAILED
    } else if outcome.snapshot.complete {
        0
    } else {
        EXIT_INCOMPLETE
    })
}

/// The program `--from-shell` runs its pipeline with, and how: every stage's
/// status counts (pipefail), not only the last one's.
const SHELL: [&str; 3] = ["bash", "-o", "pipefail"];

/// The command line of `--from-shell LINE`, once bash is known to be there.
fn shell_command(line: &str) -> Result<Vec<String>> {
    let found = std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(SHELL[0]).is_file()));
    if !found {
        anyhow::bail!(
            "--from-shell runs the pipeline with `bash -o pipefail -c`, and bash is not in PATH: install bash (apt-get install bash), or run a single command with --from-command"
        );
    }
    let mut c: Vec<String> = SHELL.iter().map(|s| s.to_string()).collect();
    c.extend(["-c".to_string(), line.to_string()]);
    Ok(c)
}

/// Runs `command` and saves its standard output as the file `name`. An
/// error when it cannot start or exits with a failure: a failed dump is not
/// a backup, and no snapshot is recorded.
fn save_command_output(
    pusher: &Pusher,
    name: &str,
    command: &[String],
) -> Result<snap::id::TreeId> {
    // Its own process group: a signal to snap ends the dump and everything
    // it started (see signals.rs), nothing is orphaned.
    let spawning = super::signals::spawning();
    let mut cmd = Command::new(&command[0]);
    cmd.args(&command[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .process_group(0);
    super::signals::unblock_in_child(&mut cmd);
    let mut child = cmd
        .spawn()
        .with_context(|| format!("starting {:?}", command[0]))?;
    super::signals::set_child_group(child.id() as i32);
    drop(spawning);
    let out = child.stdout.take().expect("stdout is piped");
    let tree = pusher.save_stream(name, out);
    let status = child.wait().context("waiting for the command");
    super::signals::set_child_group(0);
    let status = status?;
    let tree = tree?;
    if !status.success() {
        anyhow::bail!(
            "{} exited with {status}; no snapshot was recorded (a failed dump is not a backup)",
            super::term::escape(&snap::config::shell_words(command))
        );
    }
    Ok(tree)
}

/// The warning for a suspect dump, on stderr even with --quiet.
fn warn_dump(id: &snap::id::SnapshotId, s: &Snapshot, d: &DumpCheck) {
    let previous = match (d.previous, d.previous_bytes) {
        (Some(p), Some(b)) => format!(
            "the previous dump, snapshot {}, had {}",
            p.short(),
            bytes_exact(b)
        ),
        _ => "there is no previous dump to compare with".to_string(),
    };
    let what = match d.reason {
        DumpReason::Empty => "is EMPTY".to_string(),
        DumpReason::Shrunk => "is much SMALLER than the previous one".to_string(),
    };
    eprintln!(
        "snap: warning: site {}: dump {} {what}: {}; {previous}. It is saved as snapshot {}, but it is probably not a restore point: check the dump command (exit code {EXIT_SUSPICIOUS_DUMP})",
        super::term::escape(s.site.as_deref().unwrap_or("(global)")),
        super::term::escape(&s.paths.join(" ")),
        bytes_exact(d.bytes),
        id.short(),
    );
}

/// A size with its exact byte count when that is not already what is shown.
fn bytes_exact(n: u64) -> String {
    let b = super::bytes(n);
    if n < 1024 {
        b
    } else {
        format!("{b} ({n} bytes)")
    }
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
    // Each figure says what it is: "read" is what came from the source (an
    // unchanged file is not read), "new data" the plaintext the repository
    // did not hold yet (metadata included), "stored" what it took in packs.
    outln!(
        "snapshot {} saved {} files ({}): {} new, {} changed, {} unchanged; read {}; new data {}, stored after compression {}; {:.2}s",
        o.id.short(),
        super::count(m.files_new + m.files_changed + m.files_unchanged),
        super::bytes(m.bytes_total),
        super::count(m.files_new),
        super::count(m.files_changed),
        super::count(m.files_unchanged),
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
