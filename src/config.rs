//! The plan as configuration: one TOML file (`snap.toml`) naming the
//! repository, its password file, the time zone, the remotes, the
//! policies, the schedule and the sites. `snap run` does what it says is
//! due; `snap report` expects what it promises.
//!
//! Found, in order, at `--config`, `SNAP_CONFIG`, `/etc/snap/snap.toml`,
//! then `$XDG_CONFIG_HOME/snap/snap.toml` (or `~/.config/snap/snap.toml`).
//! Without one, every command works as before from its flags and the
//! policy and remotes files.
//!
//! ```toml
//! repository = "/var/lib/snap/repo"
//! password_file = "/etc/snap/password"
//! timezone = "Europe/Paris"
//!
//! [schedule]
//! level2_db = "monday"        # weekly dumps: "daily", or a day of the week
//! level2_files = 1            # monthly files: a day of the month (1-28), a weekday, or "daily"
//! deadline = "06:00"          # by then, what is due today must have been pushed
//!
//! [level1]                    # the global backups, daily
//! dump = "mysqldump --all-databases --single-transaction"
//!
//! [defaults]
//! levels = [1, 2]
//! dump = "mysqldump --single-transaction --routines --events {database}"
//!
//! [sites.boulangerie]
//! paths = ["/var/www/boulangerie"]
//! databases = ["boulangerie"]
//!
//! [sites.fleuriste]
//! paths = ["/var/www/fleuriste"]
//! wordpress = true            # the database is wp-config.php's DB_NAME
//! ```
//!
//! The policy file's sections (`[policy.NAME]`, `[alerts]`) and the remotes
//! file's (`[remote.NAME]`, `allowed_jurisdictions`) may be written here;
//! those files, when they exist too, are merged in, and a name defined in
//! both is an error.

use crate::error::{Error, Result};
use crate::format::policy::Policy;
use crate::format::policy_file::{self, line_at, Alerts};
use crate::format::snapshot::Kind;
use chrono::{DateTime, Datelike, Duration, NaiveTime, TimeZone, Utc, Weekday};
use chrono_tz::Tz;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use toml::Spanned;

/// Name patterns left out of every web root unless `default_excludes =
/// false`: visit statistics are not backed up (the plan says so).
pub const STATS_EXCLUDES: [&str; 4] = ["awstats", "webalizer", "goaccess", ".awstats"];

/// Directories of a web root's top level left out by default, for the same
/// reason: `<path>/stats`, `<path>/statistics`.
pub const STATS_ROOT_DIRS: [&str; 2] = ["stats", "statistics"];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigToml {
    repository: Option<String>,
    password_file: Option<PathBuf>,
    cache_dir: Option<PathBuf>,
    host: Option<String>,
    // Read by the policy file's parser, from the same text.
    #[allow(dead_code)]
    timezone: Option<toml::Value>,
    #[allow(dead_code)]
    policy: Option<toml::Value>,
    #[allow(dead_code)]
    alerts: Option<toml::Value>,
    // Read by the remotes file's parser, from the same text.
    #[allow(dead_code)]
    remote: Option<toml::Value>,
    #[allow(dead_code)]
    allowed_jurisdictions: Option<toml::Value>,
    schedule: Option<ScheduleToml>,
    level1: Option<Level1Toml>,
    #[serde(default)]
    defaults: SiteToml,
    #[serde(default)]
    sites: BTreeMap<String, Spanned<SiteToml>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ScheduleToml {
    level2_db: Option<Spanned<toml::Value>>,
    level2_files: Option<Spanned<toml::Value>>,
    deadline: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Level1Toml {
    files: Option<bool>,
    paths: Option<Vec<PathBuf>>,
    excludes: Option<Vec<String>>,
    dump: Option<String>,
    dump_name: Option<String>,
}

#[derive(Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
struct SiteToml {
    paths: Option<Vec<PathBuf>>,
    levels: Option<Spanned<Vec<u8>>>,
    excludes: Option<Vec<String>>,
    default_excludes: Option<bool>,
    databases: Option<Vec<String>>,
    wordpress: Option<bool>,
    dump: Option<String>,
    dump_name: Option<String>,
}

/// When a level-2 push of one kind is due.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Period {
    /// Every day.
    Daily,
    /// Once a week, from this day on.
    Weekly(Weekday),
    /// Once a month, from this day of the month on (1 to 28).
    Monthly(u32),
}

impl std::fmt::Display for Period {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Period::Daily => f.write_str("daily"),
            Period::Weekly(d) => write!(f, "weekly ({})", weekday_name(*d)),
            Period::Monthly(d) => write!(f, "monthly (day {d})"),
        }
    }
}

fn weekday_name(d: Weekday) -> &'static str {
    match d {
        Weekday::Mon => "monday",
        Weekday::Tue => "tuesday",
        Weekday::Wed => "wednesday",
        Weekday::Thu => "thursday",
        Weekday::Fri => "friday",
        Weekday::Sat => "saturday",
        Weekday::Sun => "sunday",
    }
}

impl Period {
    /// The start of the period `now` falls in, as a local date: a push
    /// taken since then is this period's.
    pub fn start(&self, now: DateTime<Utc>, tz: Tz) -> chrono::NaiveDate {
        let today = now.with_timezone(&tz).date_naive();
        match *self {
            Period::Daily => today,
            Period::Weekly(d) => {
                let back =
                    (7 + today.weekday().num_days_from_monday() - d.num_days_from_monday()) % 7;
                today - Duration::days(back as i64)
            }
            Period::Monthly(d) => {
                let this = today.with_day(d).expect("days 1-28 exist in every month");
                if this <= today {
                    this
                } else {
                    let prev = today.with_day(1).expect("day 1") - Duration::days(1);
                    prev.with_day(d).expect("days 1-28 exist in every month")
                }
            }
        }
    }
}

/// The schedule of `snap run` and the deadline `snap report` holds it to.
#[derive(Clone, Debug, PartialEq)]
pub struct Schedule {
    /// Level-2 dumps (weekly on Monday by default: a dump that fails is
    /// caught up by the next run in the same ISO week, which the weekly
    /// promise counts in; a Sunday's catch-up would land in the next week
    /// and leave a week without a restore point).
    pub level2_db: Period,
    /// Level-2 files (monthly on the 1st by default).
    pub level2_files: Period,
    /// Local time of day by which what is due today must exist.
    pub deadline: NaiveTime,
}

impl Default for Schedule {
    fn default() -> Self {
        Schedule {
            level2_db: Period::Weekly(Weekday::Mon),
            level2_files: Period::Monthly(1),
            deadline: NaiveTime::from_hms_opt(6, 0, 0).expect("valid"),
        }
    }
}

/// One database dump.
#[derive(Clone, Debug, PartialEq)]
pub struct Dump {
    /// The database, or `wp-config.php` of `from_wp_config`.
    pub database: Database,
    /// Shell command (run with `bash -o pipefail -c`), `{database}` and
    /// `{site}` not yet substituted.
    pub command: String,
    /// The snapshot's file name, placeholders not yet substituted.
    pub name: String,
}

/// Where a dump's database name comes from.
#[derive(Clone, Debug, PartialEq)]
pub enum Database {
    /// Given.
    Named(String),
    /// DB_NAME of this wp-config.php, read when the dump runs.
    WpConfig(PathBuf),
    /// None: the command dumps what it dumps (`--all-databases`).
    All,
}

impl Dump {
    /// The database name, reading wp-config.php when asked to.
    pub fn database_name(&self) -> Result<Option<String>> {
        match &self.database {
            Database::Named(n) => Ok(Some(n.clone())),
            Database::All => Ok(None),
            Database::WpConfig(p) => {
                // The site's own file: a hacked site may have made it huge.
                let text = read_bounded(p, MAX_WP_CONFIG)?;
                wp_db_name(&text).map(Some).ok_or_else(|| {
                    Error::Usage(format!(
                        "{}: no define('DB_NAME', '…') found: give the site's databases = [\"…\"] in the config instead of wordpress = true",
                        p.display()
                    ))
                })
            }
        }
    }

    /// The command and the file name with `{database}` and `{site}`
    /// substituted (the database shell-quoted in the command).
    pub fn resolve(&self, site: Option<&str>) -> Result<(String, String)> {
        let db = self.database_name()?;
        let command = fill(&self.command, db.as_deref(), site, shell_quote);
        let name = fill(&self.name, db.as_deref(), site, str::to_string);
        Ok((command, name))
    }

    /// How the dump is named before it runs (in plans and reports): its
    /// file name, or which wp-config.php could not give the database.
    pub fn label(&self, site: Option<&str>) -> String {
        match (self.database_name(), &self.database) {
            (Ok(db), _) => fill(&self.name, db.as_deref(), site, str::to_string),
            (Err(_), Database::WpConfig(p)) => format!("the database of {}", p.display()),
            (Err(_), _) => self.name.clone(),
        }
    }
}

/// The most of a configuration file read: a larger one is a mistake
/// (`--config /dev/zero`, a dump named by accident).
pub const MAX_CONFIG: u64 = 4 << 20;

/// The most of a wp-config.php read for its DB_NAME: WordPress's own is a
/// few KiB, and the site's files are not to be trusted.
pub const MAX_WP_CONFIG: u64 = 1 << 20;

/// A text file of at most `max` bytes, refused (naming it) when longer.
fn read_bounded(path: &Path, max: u64) -> Result<String> {
    use std::io::Read;
    let f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut bytes = Vec::new();
    f.take(max + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io(path, e))?;
    if bytes.len() as u64 > max {
        return Err(Error::Usage(format!(
            "{}: more than {} KiB, which no configuration or wp-config.php is: check the path",
            path.display(),
            max >> 10
        )));
    }
    String::from_utf8(bytes).map_err(|_| {
        Error::Usage(format!(
            "{}: not UTF-8 text: check the path",
            path.display()
        ))
    })
}

/// `template` with `{database}` (`all-databases` for none) and `{site}`
/// (`global` for none) replaced by `quote` of them.
fn fill(template: &str, db: Option<&str>, site: Option<&str>, quote: fn(&str) -> String) -> String {
    template
        .replace("{database}", &quote(db.unwrap_or("all-databases")))
        .replace("{site}", &quote(site.unwrap_or("global")))
}

/// The value of `define('DB_NAME', '…')` in a wp-config.php.
pub fn wp_db_name(text: &str) -> Option<String> {
    for line in text.lines() {
        let l = line.trim();
        if l.starts_with("//") || l.starts_with('#') || l.starts_with('*') {
            continue;
        }
        let Some(i) = l.find("DB_NAME") else { continue };
        if !l[..i].contains("define") {
            continue;
        }
        let rest = &l[i + "DB_NAME".len()..];
        let rest = rest.trim_start_matches(['\'', '"']).trim_start();
        let rest = rest.strip_prefix(',')?.trim_start();
        let q = rest.chars().next()?;
        if q != '\'' && q != '"' {
            continue;
        }
        let body = &rest[1..];
        let end = body.find(q)?;
        let name = &body[..end];
        if !name.is_empty() {
            return Some(name.to_string());
        }
    }
    None
}

/// `s` quoted for bash.
pub fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:@%+,".contains(c))
    {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Words as a shell command line: each quoted when it needs to be.
pub fn shell_words(words: &[String]) -> String {
    words
        .iter()
        .map(|w| shell_quote(w))
        .collect::<Vec<_>>()
        .join(" ")
}

/// One client site.
#[derive(Clone, Debug, PartialEq)]
pub struct Site {
    /// Its name (`--site`).
    pub name: String,
    /// Its web roots, absolute.
    pub paths: Vec<PathBuf>,
    /// Exclude patterns of its files pushes.
    pub excludes: Vec<String>,
    /// The plan levels it belongs to.
    pub levels: Vec<u8>,
    /// Its database dumps.
    pub dumps: Vec<Dump>,
}

/// The level-1 (global) backups.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Level1 {
    /// Paths of the global files snapshot (empty: none).
    pub paths: Vec<PathBuf>,
    /// Its exclude patterns.
    pub excludes: Vec<String>,
    /// Global dumps.
    pub dumps: Vec<Dump>,
}

/// The configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// Where it was read from.
    pub origin: PathBuf,
    /// The repository, unless `--repo` or SNAP_REPO says otherwise.
    pub repository: Option<String>,
    /// The password file, unless SNAP_PASSWORD_FILE or SNAP_PASSWORD is set.
    pub password_file: Option<PathBuf>,
    /// The cache directory, unless `--cache-dir` or SNAP_CACHE_DIR says.
    pub cache_dir: Option<PathBuf>,
    /// The host name pushes record (default: this machine's).
    pub host: Option<String>,
    /// Time zone of the calendar and of the times printed.
    pub timezone: Tz,
    /// Every policy: built-in, the config's and the policy file's.
    pub policies: Vec<Policy>,
    /// The early warning's thresholds.
    pub alerts: Alerts,
    /// The remotes written here (the remotes file's are merged in by
    /// [`crate::remote::Remotes::merge`] where they are used).
    pub remotes: crate::remote::Remotes,
    /// When level-2 pushes are due.
    pub schedule: Schedule,
    /// The global backups.
    pub level1: Level1,
    /// The sites, by name order.
    pub sites: Vec<Site>,
}

/// A push the plan expects: what `snap run` does when it is due and what
/// `snap report` holds it to.
#[derive(Clone, Debug, PartialEq)]
pub struct Expected {
    /// Plan level.
    pub level: u8,
    /// Files or db.
    pub kind: Kind,
    /// The site (None: global).
    pub site: Option<String>,
    /// Source paths as a push records them, or the dump's file name.
    pub paths: Vec<String>,
    /// When it is due.
    pub period: Period,
    /// Files: excludes. Db: unused.
    pub excludes: Vec<String>,
    /// Db: the dump (command and name unresolved).
    pub dump: Option<Dump>,
}

impl Expected {
    /// `boulangerie db level2 (boulangerie.sql)`.
    pub fn label(&self) -> String {
        format!(
            "{} {} level{} ({})",
            self.site.as_deref().unwrap_or("global"),
            self.kind,
            self.level,
            self.paths.join(" ")
        )
    }

    /// When the current period began, and when its push is late: the
    /// deadline of the period's first day.
    pub fn due(&self, now: DateTime<Utc>, c: &Config) -> (DateTime<Utc>, DateTime<Utc>) {
        let day = self.period.start(now, c.timezone);
        let at = |t: NaiveTime| -> DateTime<Utc> {
            let local = day.and_time(t);
            c.timezone
                .from_local_datetime(&local)
                .earliest()
                .unwrap_or_else(|| Utc.from_utc_datetime(&local).with_timezone(&c.timezone))
                .with_timezone(&Utc)
        };
        (at(NaiveTime::MIN), at(c.schedule.deadline))
    }
}

/// A path as a push records it: absolute, `.` and trailing `/` gone.
pub fn recorded_path(p: &Path) -> String {
    p.components().collect::<PathBuf>().display().to_string()
}

impl Config {
    /// Every push the plan expects, global first, then by site.
    pub fn expected(&self) -> Vec<Expected> {
        let mut out = Vec::new();
        if !self.level1.paths.is_empty() {
            out.push(Expected {
                level: 1,
                kind: Kind::Files,
                site: None,
                paths: self.level1.paths.iter().map(|p| recorded_path(p)).collect(),
                period: Period::Daily,
                excludes: self.level1.excludes.clone(),
                dump: None,
            });
        }
        for d in &self.level1.dumps {
            out.push(Expected {
                level: 1,
                kind: Kind::Db,
                site: None,
                paths: vec![d.label(None)],
                period: Period::Daily,
                excludes: vec![],
                dump: Some(d.clone()),
            });
        }
        for s in &self.sites {
            if !s.levels.contains(&2) {
                continue;
            }
            for d in &s.dumps {
                out.push(Expected {
                    level: 2,
                    kind: Kind::Db,
                    site: Some(s.name.clone()),
                    paths: vec![d.label(Some(&s.name))],
                    period: self.schedule.level2_db,
                    excludes: vec![],
                    dump: Some(d.clone()),
                });
            }
            if !s.paths.is_empty() {
                out.push(Expected {
                    level: 2,
                    kind: Kind::Files,
                    site: Some(s.name.clone()),
                    paths: s.paths.iter().map(|p| recorded_path(p)).collect(),
                    period: self.schedule.level2_files,
                    excludes: s.excludes.clone(),
                    dump: None,
                });
            }
        }
        out
    }

    /// The configured site of this name.
    pub fn site(&self, name: &str) -> Option<&Site> {
        self.sites.iter().find(|s| s.name == name)
    }
}

/// The file to read: `explicit`, else SNAP_CONFIG, else the first of
/// /etc/snap/snap.toml and ~/.config/snap/snap.toml that exists.
pub fn find(explicit: Option<&Path>) -> Option<PathBuf> {
    if let Some(p) = explicit {
        return Some(p.to_path_buf());
    }
    if let Some(p) = std::env::var_os("SNAP_CONFIG") {
        return Some(PathBuf::from(p));
    }
    std::iter::once(PathBuf::from("/etc/snap/snap.toml"))
        .chain(policy_file::config_home().map(|c| c.join("snap/snap.toml")))
        .find(|p| p.is_file())
}

/// Reads the configuration found as [`find`] finds it; `None` without one.
/// A file named explicitly must exist.
pub fn load(explicit: Option<&Path>) -> Result<Option<Config>> {
    let Some(path) = find(explicit) else {
        return Ok(None);
    };
    let text = read_bounded(&path, MAX_CONFIG)?;
    parse(&text, &path).map(Some)
}

fn period(v: &toml::Value, what: &str) -> std::result::Result<Period, String> {
    let days = [
        ("monday", Weekday::Mon),
        ("tuesday", Weekday::Tue),
        ("wednesday", Weekday::Wed),
        ("thursday", Weekday::Thu),
        ("friday", Weekday::Fri),
        ("saturday", Weekday::Sat),
        ("sunday", Weekday::Sun),
    ];
    match v {
        toml::Value::Integer(d) if (1..=28).contains(d) => Ok(Period::Monthly(*d as u32)),
        toml::Value::String(s) => {
            let l = s.to_ascii_lowercase();
            if l == "daily" {
                return Ok(Period::Daily);
            }
            days.iter()
                .find(|(n, _)| *n == l || (l.len() == 3 && n.starts_with(&l)))
                .map(|(_, d)| Period::Weekly(*d))
                .ok_or_else(|| format!("{what} = {s:?}: give \"daily\", a day of the week (\"sunday\") or a day of the month (1 to 28)"))
        }
        other => Err(format!(
            "{what} = {other}: give \"daily\", a day of the week (\"sunday\") or a day of the month (1 to 28)"
        )),
    }
}

/// Parses a configuration's text read from `path`.
pub fn parse(text: &str, path: &Path) -> Result<Config> {
    let origin = path.display().to_string();
    let bad = |line: usize, msg: String| Error::Usage(format!("{origin}, line {line}: {msg}"));
    let f: ConfigToml = toml::from_str(text).map_err(|e| {
        let line = e.span().map(|s| line_at(text, s.start)).unwrap_or(1);
        bad(line, e.message().to_string())
    })?;
    let (policies, timezone) = policy_file::parse_section(text, &origin)?;
    let alerts = policy_file::parse_alerts_section(text, &origin)?;

    let mut schedule = Schedule::default();
    if let Some(s) = &f.schedule {
        if let Some(v) = &s.level2_db {
            schedule.level2_db = period(v.get_ref(), "schedule.level2_db")
                .map_err(|m| bad(line_at(text, v.span().start), m))?;
        }
        if let Some(v) = &s.level2_files {
            schedule.level2_files = period(v.get_ref(), "schedule.level2_files")
                .map_err(|m| bad(line_at(text, v.span().start), m))?;
        }
        if let Some(v) = &s.deadline {
            schedule.deadline = NaiveTime::parse_from_str(v.get_ref(), "%H:%M").map_err(|_| {
                bad(
                    line_at(text, v.span().start),
                    format!(
                        "schedule.deadline = {:?}: give a time of day as HH:MM, e.g. \"06:00\"",
                        v.get_ref()
                    ),
                )
            })?;
        }
    }

    let absolute = |p: &PathBuf, what: &str| -> Result<PathBuf> {
        if p.is_absolute() {
            Ok(p.clone())
        } else {
            Err(Error::Usage(format!(
                "{origin}: {what}: {} is not an absolute path: give the full path (e.g. /var/www/site)",
                p.display()
            )))
        }
    };

    let d = &f.defaults;
    let default_dump = d.dump.clone().unwrap_or_else(|| {
        "mysqldump --single-transaction --quick --routines --events {database}".into()
    });
    let default_name = d
        .dump_name
        .clone()
        .unwrap_or_else(|| "{database}.sql".into());
    if d.paths.is_some() || d.databases.is_some() {
        return Err(Error::Usage(format!(
            "{origin}: [defaults] holds what all sites share (levels, excludes, dump, dump_name, wordpress, default_excludes), not paths or databases: give those under [sites.NAME]"
        )));
    }

    let mut sites = Vec::new();
    for (name, s) in &f.sites {
        let line = line_at(text, s.span().start);
        let s = s.get_ref();
        let at = |m: String| bad(line, format!("site {name:?}: {m}"));
        if name.is_empty()
            || name.trim() != name
            || name.contains('/')
            || name.chars().any(char::is_control)
        {
            return Err(at(
                "a site's name is a word without '/', such as boulangerie".into(),
            ));
        }
        let paths: Vec<PathBuf> = s
            .paths
            .clone()
            .unwrap_or_default()
            .iter()
            .map(|p| absolute(p, &format!("site {name}")))
            .collect::<Result<_>>()?;
        let levels = match s.levels.as_ref().or(d.levels.as_ref()) {
            Some(l) => {
                let v = l.get_ref().clone();
                if v.iter().any(|x| !(1..=2).contains(x)) {
                    return Err(bad(
                        line_at(text, l.span().start),
                        format!("site {name:?}: levels = {v:?}: the plan's levels are 1 and 2"),
                    ));
                }
                v
            }
            None => vec![1, 2],
        };
        let mut excludes = d.excludes.clone().unwrap_or_default();
        excludes.extend(s.excludes.clone().unwrap_or_default());
        if s.default_excludes.or(d.default_excludes).unwrap_or(true) {
            excludes.extend(STATS_EXCLUDES.iter().map(|x| x.to_string()));
            for p in &paths {
                for dir in STATS_ROOT_DIRS {
                    excludes.push(recorded_path(&p.join(dir)));
                }
            }
        }
        let command = s.dump.clone().unwrap_or_else(|| default_dump.clone());
        let dump_name = s.dump_name.clone().unwrap_or_else(|| default_name.clone());
        let mut dumps = Vec::new();
        for db in s.databases.clone().unwrap_or_default() {
            if db.trim().is_empty() {
                return Err(at("databases holds an empty name".into()));
            }
            dumps.push(Dump {
                database: Database::Named(db),
                command: command.clone(),
                name: dump_name.clone(),
            });
        }
        if s.wordpress.or(d.wordpress).unwrap_or(false) && s.databases.is_none() {
            let Some(root) = paths.first() else {
                return Err(at(
                    "wordpress = true reads wp-config.php from the site's first path: give paths"
                        .into(),
                ));
            };
            // WordPress also looks one directory up.
            let here = root.join("wp-config.php");
            let up = root.parent().map(|p| p.join("wp-config.php"));
            let file = match up {
                Some(u) if !here.exists() && u.exists() => u,
                _ => here,
            };
            dumps.push(Dump {
                database: Database::WpConfig(file),
                command: command.clone(),
                name: dump_name.clone(),
            });
        }
        if paths.is_empty() && dumps.is_empty() {
            return Err(at(
                "nothing to back up: give paths, databases, or wordpress = true".into(),
            ));
        }
        sites.push(Site {
            name: name.clone(),
            paths,
            excludes,
            levels,
            dumps,
        });
    }

    let l1 = f.level1.unwrap_or_default();
    let mut level1 = Level1::default();
    if l1.files.unwrap_or(true) {
        level1.paths = match &l1.paths {
            Some(p) => p
                .iter()
                .map(|p| absolute(p, "level1.paths"))
                .collect::<Result<_>>()?,
            None => sites
                .iter()
                .filter(|s| s.levels.contains(&1))
                .flat_map(|s| s.paths.iter().cloned())
                .collect(),
        };
        let mut ex = l1.excludes.clone().unwrap_or_default();
        if l1.paths.is_none() {
            for s in sites.iter().filter(|s| s.levels.contains(&1)) {
                for e in &s.excludes {
                    if !ex.contains(e) {
                        ex.push(e.clone());
                    }
                }
            }
        }
        level1.excludes = ex;
    }
    if let Some(cmd) = &l1.dump {
        level1.dumps.push(Dump {
            database: Database::All,
            command: cmd.clone(),
            name: l1
                .dump_name
                .clone()
                .unwrap_or_else(|| "all-databases.sql".into()),
        });
    }

    let mut config = Config {
        origin: path.to_path_buf(),
        repository: f.repository,
        password_file: f
            .password_file
            .map(|p| absolute(&p, "password_file"))
            .transpose()?,
        cache_dir: f.cache_dir,
        host: f.host,
        timezone,
        policies,
        alerts,
        remotes: crate::remote::parse_section(text, path)?,
        schedule,
        level1,
        sites,
    };
    merge_policy_file(&mut config)?;
    Ok(config)
}

/// Merges the policy file, when there is one, into the config's policies
/// and alerts; a policy or alert set in both is an error.
fn merge_policy_file(c: &mut Config) -> Result<()> {
    let Some((text, origin)) = policy_file::find(None)? else {
        return Ok(());
    };
    // The policy file on its own terms: nothing but its sections in it.
    let theirs = policy_file::parse(&text, &origin)?;
    let builtin = crate::format::policy::builtin_policies(c.timezone);
    // A policy as the built-in one of its name: not a definition of its own.
    let is_builtin = |p: &Policy| {
        builtin
            .iter()
            .any(|b| b.name == p.name && b.files == p.files && b.db == p.db && b.sites == p.sites)
    };
    for p in theirs {
        if is_builtin(&p) {
            continue;
        }
        match c.policies.iter_mut().find(|x| x.name == p.name) {
            Some(mine) => {
                if !is_builtin(mine) {
                    return Err(Error::Usage(format!(
                        "policy {:?} is defined in both {} and {}: keep one",
                        p.name,
                        c.origin.display(),
                        origin
                    )));
                }
                *mine = p;
            }
            None => c.policies.push(p),
        }
    }
    let a = policy_file::parse_alerts(&text, &origin)?;
    for (key, mine, theirs) in [
        (
            "changed_ratio",
            &mut c.alerts.changed_ratio,
            a.changed_ratio,
        ),
        (
            "min_dump_ratio",
            &mut c.alerts.min_dump_ratio,
            a.min_dump_ratio,
        ),
    ] {
        if theirs.is_some() {
            if mine.is_some() {
                return Err(Error::Usage(format!(
                    "alerts.{key} is set in both {} and {}: keep one",
                    c.origin.display(),
                    origin
                )));
            }
            *mine = theirs;
        }
    }
    for (site, r) in a.sites {
        if c.alerts.sites.insert(site.clone(), r).is_some() {
            return Err(Error::Usage(format!(
                "alerts.sites.{site} is set in both {} and {}: keep one",
                c.origin.display(),
                origin
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wp_config_db_name() {
        let t = "<?php\n// ** MySQL settings ** //\n/** The name of the database */\ndefine( 'DB_NAME', 'wp_boulangerie' );\ndefine('DB_USER', 'u');\n";
        assert_eq!(wp_db_name(t).as_deref(), Some("wp_boulangerie"));
        assert_eq!(
            wp_db_name("define(\"DB_NAME\",\"x\");").as_deref(),
            Some("x")
        );
        assert_eq!(wp_db_name("// define('DB_NAME', 'no');"), None);
        assert_eq!(wp_db_name("$x = 1;"), None);
    }

    #[test]
    fn huge_or_binary_files_are_refused_by_name() {
        let dir = std::env::temp_dir().join(format!("snap-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let big = dir.join("wp-config.php");
        let f = std::fs::File::create(&big).unwrap();
        f.set_len(MAX_WP_CONFIG + 1).unwrap();
        let d = Dump {
            database: Database::WpConfig(big.clone()),
            command: "true".into(),
            name: "{database}.sql".into(),
        };
        let e = d.database_name().unwrap_err().to_string();
        assert!(e.contains("wp-config.php") && e.contains("1024 KiB"), "{e}");
        assert_eq!(
            d.label(Some("s")),
            format!("the database of {}", big.display())
        );
        std::fs::write(&big, [0xff, 0xfe, 0x00]).unwrap();
        assert!(d
            .database_name()
            .unwrap_err()
            .to_string()
            .contains("not UTF-8"));
        let e = load(Some(Path::new("/dev/zero"))).unwrap_err().to_string();
        assert!(e.contains("/dev/zero") && e.contains("4096 KiB"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn periods_start_where_they_should() {
        let tz: Tz = "Europe/Paris".parse().unwrap();
        // Monday 30 November 2026, 10:00 in Paris.
        let now = Utc.with_ymd_and_hms(2026, 11, 30, 9, 0, 0).unwrap();
        let d = |y, m, dd| chrono::NaiveDate::from_ymd_opt(y, m, dd).unwrap();
        assert_eq!(Period::Daily.start(now, tz), d(2026, 11, 30));
        assert_eq!(Period::Weekly(Weekday::Sun).start(now, tz), d(2026, 11, 29));
        assert_eq!(Period::Weekly(Weekday::Mon).start(now, tz), d(2026, 11, 30));
        assert_eq!(Period::Monthly(1).start(now, tz), d(2026, 11, 1));
        assert_eq!(Period::Monthly(28).start(now, tz), d(2026, 11, 28));
        let early = Utc.with_ymd_and_hms(2026, 12, 1, 1, 0, 0).unwrap();
        assert_eq!(Period::Monthly(15).start(early, tz), d(2026, 11, 15));
    }

    #[test]
    fn a_config_with_three_sites() {
        let text = r#"
repository = "/var/lib/snap/repo"
password_file = "/etc/snap/password"
timezone = "Europe/Paris"

[schedule]
level2_db = "sun"
level2_files = 1
deadline = "05:30"

[level1]
dump = "mysqldump --all-databases"

[defaults]
excludes = ["*.log"]

[policy.client-b]
level = 2
sites = ["fleuriste"]
db = { weekly = 8 }

[sites.boulangerie]
paths = ["/var/www/boulangerie/"]
databases = ["boulangerie", "boulangerie_shop"]

[sites.fleuriste]
paths = ["/var/www/fleuriste"]
levels = [2]
default_excludes = false
"#;
        let c = parse(text, Path::new("snap.toml")).unwrap();
        assert_eq!(c.timezone.name(), "Europe/Paris");
        assert_eq!(c.schedule.level2_db, Period::Weekly(Weekday::Sun));
        assert_eq!(
            c.schedule.deadline,
            NaiveTime::from_hms_opt(5, 30, 0).unwrap()
        );
        assert!(c.policies.iter().any(|p| p.name == "client-b"));
        let b = c.site("boulangerie").unwrap();
        assert_eq!(b.dumps.len(), 2);
        assert!(b.excludes.contains(&"*.log".to_string()));
        assert!(b.excludes.contains(&"awstats".to_string()));
        assert!(b
            .excludes
            .contains(&"/var/www/boulangerie/stats".to_string()));
        let f = c.site("fleuriste").unwrap();
        assert_eq!(f.excludes, vec!["*.log".to_string()]);
        // Level 1: the global snapshot of the level-1 sites' paths.
        assert_eq!(c.level1.paths, vec![PathBuf::from("/var/www/boulangerie/")]);
        let e = c.expected();
        let labels: Vec<String> = e.iter().map(Expected::label).collect();
        assert_eq!(
            labels,
            [
                "global files level1 (/var/www/boulangerie)",
                "global db level1 (all-databases.sql)",
                "boulangerie db level2 (boulangerie.sql)",
                "boulangerie db level2 (boulangerie_shop.sql)",
                "boulangerie files level2 (/var/www/boulangerie)",
                "fleuriste files level2 (/var/www/fleuriste)",
            ]
        );
        let (cmd, name) = b.dumps[0].resolve(Some("boulangerie")).unwrap();
        assert_eq!(
            cmd,
            "mysqldump --single-transaction --quick --routines --events boulangerie"
        );
        assert_eq!(name, "boulangerie.sql");
    }

    #[test]
    fn the_shipped_example_is_valid() {
        let text = include_str!("../scripts/snap.example.toml");
        // Its remote's credentials file is on the agency's machine, not here.
        let text = text.replace("credentials_file = \"/etc/snap/offsite.credentials\"\n", "");
        let c = parse(&text, Path::new("snap.example.toml")).unwrap();
        assert_eq!(c.sites.len(), 3);
        assert_eq!(c.schedule.level2_db, Period::Weekly(Weekday::Mon));
        assert_eq!(c.alerts.changed_ratio, Some(0.25));
        assert!(c.remotes.remotes.contains_key("offsite"));
        assert!(c.policies.iter().any(|p| p.name == "garage"));
        let g = c.site("garage").unwrap();
        assert_eq!(
            g.dumps.len(),
            2,
            "databases named win over wordpress = true"
        );
        let b = c.site("boulangerie").unwrap();
        assert_eq!(
            b.dumps[0].database,
            Database::WpConfig(PathBuf::from("/var/www/boulangerie/wp-config.php"))
        );
    }

    #[test]
    fn errors_name_the_line() {
        for (text, line, what) in [
            ("[sites.a]\npaths = [\"rel\"]\n", 0, "not an absolute path"),
            ("[sites.a]\n", 1, "nothing to back up"),
            (
                "[schedule]\nlevel2_db = \"someday\"\n",
                2,
                "day of the week",
            ),
            ("[schedule]\nlevel2_files = 31\n", 2, "day of the month"),
            ("[schedule]\ndeadline = \"6h\"\n", 2, "HH:MM"),
            (
                "\n[sites.a]\npaths = [\"/x\"]\nlevels = [3]\n",
                4,
                "levels are 1 and 2",
            ),
            ("reposit = \"/x\"\n", 1, "unknown field"),
            (
                "[defaults]\npaths = [\"/x\"]\n",
                0,
                "not paths or databases",
            ),
        ] {
            let e = parse(text, Path::new("c.toml")).unwrap_err().to_string();
            let want = if line == 0 {
                "c.toml".to_string()
            } else {
                format!("c.toml, line {line}")
            };
            assert!(e.contains(&want) && e.contains(what), "{text:?}: {e}");
        }
    }
}
