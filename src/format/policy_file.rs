//! The user's policy file (TOML): extra policies, or new rules for the
//! built-in `level1` and `level2`, and the time zone of the calendar.
//!
//! ```toml
//! timezone = "Europe/Paris"
//!
//! [policy.client-b]          # a stricter contract for one client
//! level = 2
//! sites = ["client-b"]
//! db = { weekly = 8, within = "14d" }
//! files = { monthly = 6 }
//! ```
//!
//! Errors name the line they are on: the line of the value at fault, else
//! the policy's header.

use crate::error::{Error, Result};
use crate::format::policy::{builtin_policies, Policy, Rules};
use chrono_tz::Tz;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;
use toml::Spanned;

/// The policy file's top level: nothing else is allowed in it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct StrictToml {
    timezone: Option<toml::Value>,
    policy: Option<toml::Value>,
    alerts: Option<toml::Value>,
}

/// The sections this module reads, from a policy file or from the
/// configuration file (which has others).
#[derive(Deserialize)]
struct FileToml {
    timezone: Option<Spanned<String>>,
    #[serde(default)]
    policy: BTreeMap<String, PolicyToml>,
    alerts: Option<AlertsToml>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AlertsToml {
    changed_ratio: Option<Spanned<f64>>,
    min_dump_ratio: Option<Spanned<f64>>,
    #[serde(default)]
    sites: BTreeMap<String, Spanned<f64>>,
}

/// The early warning's thresholds (`[alerts]`): a push whose share of
/// changed entries exceeds its site's ratio exits with its own code.
///
/// ```toml
/// [alerts]
/// changed_ratio = 0.25      # every site, and global snapshots
/// [alerts.sites]
/// boulangerie = 0.5         # a site that changes a lot by itself
/// ```
///
/// `min_dump_ratio` (global) flags a dump smaller than that share of the
/// previous dump of its group (default [`DEFAULT_MIN_DUMP_RATIO`]; 0 turns
/// the shrink check off, never the check for an empty dump).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Alerts {
    /// For every push without a ratio of its own.
    pub changed_ratio: Option<f64>,
    /// Per site.
    pub sites: BTreeMap<String, f64>,
    /// The dump shrink threshold, when configured.
    pub min_dump_ratio: Option<f64>,
}

/// A dump under half the size of the previous one is flagged by default.
pub const DEFAULT_MIN_DUMP_RATIO: f64 = 0.5;

/// Checks a dump shrink threshold (`--min-dump-ratio`, `min_dump_ratio`):
/// a share from 0 (no shrink check) to 1. The message says what to give.
pub fn check_min_dump_ratio(r: f64) -> std::result::Result<f64, String> {
    if r.is_finite() && (0.0..=1.0).contains(&r) {
        Ok(r)
    } else {
        Err(format!(
            "{r} is not a share from 0 to 1: give e.g. 0.5 to flag a dump under half the size of the previous one, or 0 to flag only empty dumps"
        ))
    }
}

impl Alerts {
    /// The ratio that applies to a push of `site`.
    pub fn for_site(&self, site: Option<&str>) -> Option<f64> {
        site.and_then(|s| self.sites.get(s).copied())
            .or(self.changed_ratio)
    }

    /// The dump shrink threshold that applies: the configured one, else
    /// [`DEFAULT_MIN_DUMP_RATIO`].
    pub fn min_dump_ratio(&self) -> f64 {
        self.min_dump_ratio.unwrap_or(DEFAULT_MIN_DUMP_RATIO)
    }
}

/// Reads the sections of a policy file (`strict`: nothing else allowed)
/// or of the configuration file.
fn read(text: &str, origin: &str, strict: bool) -> Result<FileToml> {
    let bad = |e: toml::de::Error| {
        let line = e.span().map(|s| line_at(text, s.start)).unwrap_or(1);
        Error::Usage(format!("{origin}, line {line}: {}", e.message()))
    };
    if strict {
        toml::from_str::<StrictToml>(text).map_err(bad)?;
    }
    toml::from_str(text).map_err(bad)
}

/// Parses the `[alerts]` of a policy file's text.
pub fn parse_alerts(text: &str, origin: &str) -> Result<Alerts> {
    alerts_of(text, origin, true)
}

/// Parses the `[alerts]` of the configuration file's text.
pub fn parse_alerts_section(text: &str, origin: &str) -> Result<Alerts> {
    alerts_of(text, origin, false)
}

fn alerts_of(text: &str, origin: &str, strict: bool) -> Result<Alerts> {
    let bad = |line: usize, msg: String| Error::Usage(format!("{origin}, line {line}: {msg}"));
    let f = read(text, origin, strict)?;
    let Some(a) = f.alerts else {
        return Ok(Alerts::default());
    };
    let check = |what: String, v: &Spanned<f64>| -> Result<f64> {
        let r = *v.get_ref();
        if !(r.is_finite() && r > 0.0) {
            return Err(bad(
                line_of_span(text, v),
                format!(
                    "{what} = {r} must be a share above 0, e.g. 0.25 for a quarter of the files"
                ),
            ));
        }
        Ok(r)
    };
    let mut out = Alerts::default();
    if let Some(r) = &a.changed_ratio {
        out.changed_ratio = Some(check("alerts.changed_ratio".into(), r)?);
    }
    if let Some(r) = &a.min_dump_ratio {
        let v = check_min_dump_ratio(*r.get_ref()).map_err(|m| {
            bad(
                line_of_span(text, r),
                format!("alerts.min_dump_ratio = {m}"),
            )
        })?;
        out.min_dump_ratio = Some(v);
    }
    for (site, r) in &a.sites {
        out.sites
            .insert(site.clone(), check(format!("alerts.sites.{site}"), r)?);
    }
    Ok(out)
}

/// The `[alerts]` of the policy file found as [`load`] finds it (none
/// configured without a file).
pub fn load_alerts(explicit: Option<&Path>) -> Result<Alerts> {
    match find(explicit)? {
        Some((text, origin)) => parse_alerts(&text, &origin),
        None => Ok(Alerts::default()),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyToml {
    level: Spanned<u8>,
    sites: Option<Spanned<Vec<String>>>,
    timezone: Option<Spanned<String>>,
    files: Option<Spanned<Rules>>,
    db: Option<Spanned<Rules>>,
}

/// The user's configuration directory: `$XDG_CONFIG_HOME`, else
/// `~/.config`.
pub(crate) fn config_home() -> Option<std::path::PathBuf> {
    std::env::var_os("XDG_CONFIG_HOME")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".config")))
}

/// The 1-based line of a byte offset.
pub(crate) fn line_at(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

fn line_of_span<T>(text: &str, v: &Spanned<T>) -> usize {
    line_at(text, v.span().start)
}

fn parse_tz(s: &str, what: &str) -> std::result::Result<Tz, String> {
    s.parse::<Tz>()
        .map_err(|_| format!("{what}: {s:?} is not a time zone name such as Europe/Paris or UTC"))
}

/// The time zone used when none is configured: `TZ`, else /etc/timezone,
/// else UTC.
pub fn default_timezone() -> Tz {
    std::env::var("TZ")
        .ok()
        .and_then(|t| t.trim_start_matches(':').parse().ok())
        .or_else(|| {
            std::fs::read_to_string("/etc/timezone")
                .ok()
                .and_then(|t| t.trim().parse().ok())
        })
        .unwrap_or(Tz::UTC)
}

/// The line of a policy's `[policy.NAME]` header (1 when not found, e.g.
/// for a dotted-key or inline definition).
fn header_line(text: &str, name: &str) -> usize {
    let bare = format!("[policy.{name}");
    let quoted = format!("[policy.\"{name}\"");
    text.lines()
        .position(|l| {
            let l = l.trim_start();
            [&bare, &quoted].iter().any(|h| {
                l.strip_prefix(h.as_str())
                    .is_some_and(|rest| rest.trim_start().starts_with([']', '.']))
            })
        })
        .map(|i| i + 1)
        .unwrap_or(1)
}

/// Parses a policy file's text; `origin` names it in errors.
pub fn parse(text: &str, origin: &str) -> Result<Vec<Policy>> {
    Ok(policies_of(text, origin, true)?.0)
}

/// Parses the policies and the time zone of the configuration file's text.
pub fn parse_section(text: &str, origin: &str) -> Result<(Vec<Policy>, Tz)> {
    policies_of(text, origin, false)
}

fn policies_of(text: &str, origin: &str, strict: bool) -> Result<(Vec<Policy>, Tz)> {
    let bad = |line: usize, msg: String| Error::Usage(format!("{origin}, line {line}: {msg}"));
    let f = read(text, origin, strict)?;
    let tz = match &f.timezone {
        Some(t) => parse_tz(t.get_ref(), "timezone").map_err(|m| bad(line_of_span(text, t), m))?,
        None => default_timezone(),
    };
    let mut policies = builtin_policies(tz);
    for (name, p) in f.policy {
        let line = header_line(text, &name);
        if name == crate::format::policy::ALL {
            return Err(bad(
                line,
                "\"all\" names every policy at once (snap prune --policy all): give this policy another name".into(),
            ));
        }
        let level = *p.level.get_ref();
        let level_line = line_of_span(text, &p.level);
        if !(1..=2).contains(&level) {
            return Err(bad(
                level_line,
                format!("policy {name}: level must be 1 or 2, not {level}"),
            ));
        }
        let ptz = match &p.timezone {
            Some(t) => parse_tz(t.get_ref(), &format!("policy {name}"))
                .map_err(|m| bad(line_of_span(text, t), m))?,
            None => tz,
        };
        let base = policies.iter().find(|b| b.name == name).cloned();
        if let Some(b) = &base {
            if b.level != level {
                return Err(bad(
                    level_line,
                    format!("policy {name} is the built-in policy of level {}, not {level}: keep level = {}, or give a policy for level {level} another name", b.level, b.level),
                ));
            }
            if let Some(s) = &p.sites {
                return Err(bad(
                    line_of_span(text, s),
                    format!("policy {name} is in charge of every level-{} group without a policy of its own, so it takes no sites: give the policy for these sites another name", b.level),
                ));
            }
        }
        if let Some(s) = &p.sites {
            let sites = s.get_ref();
            if sites.is_empty() {
                return Err(bad(
                    line_of_span(text, s),
                    format!("policy {name}: sites = [] names no site, so no group would ever be its charge: list sites, or remove the policy"),
                ));
            }
            if let Some(blank) = sites.iter().find(|x| x.trim().is_empty()) {
                return Err(bad(
                    line_of_span(text, s),
                    format!("policy {name}: {blank:?} is not a site name"),
                ));
            }
        }
        if base.is_none() && p.sites.is_none() {
            return Err(bad(
                line,
                format!("policy {name} lists no sites, so no group would ever be its charge: add sites = [...], or name it level{level} to redefine that built-in"),
            ));
        }
        let mut rules = Vec::new();
        for (kind, given, inherited) in [
            ("files", &p.files, base.as_ref().map(|b| &b.files)),
            ("db", &p.db, base.as_ref().map(|b| &b.db)),
        ] {
            let r = match given {
                Some(r) => {
                    r.get_ref().validate().map_err(|m| {
                        bad(line_of_span(text, r), format!("policy {name}, {kind}: {m}"))
                    })?;
                    r.get_ref().clone()
                }
                None => inherited.cloned().unwrap_or_default(),
            };
            rules.push(r);
        }
        let db = rules.pop().expect("two kinds");
        let files = rules.pop().expect("two kinds");
        let policy = Policy {
            name: name.clone(),
            level,
            sites: p.sites.map(Spanned::into_inner),
            timezone: ptz,
            files,
            db,
        };
        match policies.iter_mut().find(|b| b.name == name) {
            Some(b) => *b = policy,
            None => policies.push(policy),
        }
    }
    Ok((policies, tz))
}

/// Where snap looks for the policy file, in order: `--policy-file`,
/// `SNAP_POLICY_FILE`, /etc/snap/policies.toml, then
/// `$XDG_CONFIG_HOME/snap/policies.toml` (or ~/.config/...). With none,
/// the built-in policies apply.
pub fn load(explicit: Option<&Path>) -> Result<Vec<Policy>> {
    match find(explicit)? {
        Some((text, origin)) => parse(&text, &origin),
        None => Ok(builtin_policies(default_timezone())),
    }
}

/// The calendar's time zone: the policy file's `timezone` (found as
/// [`load`] finds the file), else [`default_timezone`].
pub fn load_timezone(explicit: Option<&Path>) -> Result<Tz> {
    let Some((text, origin)) = find(explicit)? else {
        return Ok(default_timezone());
    };
    let f = read(&text, &origin, false)?;
    match &f.timezone {
        Some(t) => parse_tz(t.get_ref(), "timezone")
            .map_err(|m| Error::Usage(format!("{origin}, line {}: {m}", line_of_span(&text, t)))),
        None => Ok(default_timezone()),
    }
}

/// The policy file's text and name, if there is one.
pub fn find(explicit: Option<&Path>) -> Result<Option<(String, String)>> {
    // A file the user named must exist; the usual places may not.
    let named = explicit
        .map(Path::to_path_buf)
        .or_else(|| std::env::var_os("SNAP_POLICY_FILE").map(Into::into));
    if let Some(p) = named {
        let text = std::fs::read_to_string(&p).map_err(|e| Error::io(&p, e))?;
        return Ok(Some((text, p.display().to_string())));
    }
    let usual = std::iter::once(std::path::PathBuf::from("/etc/snap/policies.toml"))
        .chain(config_home().map(|c| c.join("snap/policies.toml")));
    for p in usual {
        match std::fs::read_to_string(&p) {
            Ok(text) => return Ok(Some((text, p.display().to_string()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(Error::io(&p, e)),
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alerts_default_and_per_site() {
        let text = "[alerts]\nchanged_ratio = 0.25\n[alerts.sites]\nboulangerie = 0.5\n";
        let a = parse_alerts(text, "t.toml").unwrap();
        assert_eq!(a.for_site(Some("boulangerie")), Some(0.5));
        assert_eq!(a.for_site(Some("other")), Some(0.25));
        assert_eq!(a.for_site(None), Some(0.25));
        assert!(
            parse(text, "t.toml").is_ok(),
            "policies still parse beside alerts"
        );
        assert_eq!(parse_alerts("", "t.toml").unwrap(), Alerts::default());
        let e = parse_alerts("[alerts]\nchanged_ratio = -1.0\n", "t.toml").unwrap_err();
        assert!(e.to_string().contains("line 2"), "{e}");
        assert!(parse_alerts("[alerts]\nchanged = 0.1\n", "t.toml").is_err());
    }

    #[test]
    fn min_dump_ratio_default_zero_and_bounds() {
        assert_eq!(Alerts::default().min_dump_ratio(), DEFAULT_MIN_DUMP_RATIO);
        let a = parse_alerts("[alerts]\nmin_dump_ratio = 0.0\n", "t.toml").unwrap();
        assert_eq!(a.min_dump_ratio(), 0.0);
        let a = parse_alerts("[alerts]\nmin_dump_ratio = 0.3\n", "t.toml").unwrap();
        assert_eq!(a.min_dump_ratio(), 0.3);
        for bad in ["1.5", "-0.1", "nan"] {
            let e = parse_alerts(&format!("[alerts]\n\nmin_dump_ratio = {bad}\n"), "t.toml")
                .unwrap_err()
                .to_string();
            assert!(e.contains("line 3") && e.contains("min_dump_ratio"), "{e}");
        }
    }

    #[test]
    fn user_policies_extend_and_override() {
        let text = r#"
timezone = "Europe/Paris"

[policy.client-b]
level = 2
sites = ["client-b"]
db = { weekly = 8, within = "14d" }
files = { monthly = 6 }

[policy.level1]
level = 1
db = { daily = 45 }
"#;
        let ps = parse(text, "t.toml").unwrap();
        let b = ps.iter().find(|p| p.name == "client-b").unwrap();
        assert_eq!(b.db.weekly, Some(8));
        assert_eq!(b.sites.as_deref(), Some(&["client-b".to_string()][..]));
        assert_eq!(b.timezone.name(), "Europe/Paris");
        let l1 = ps.iter().find(|p| p.name == "level1").unwrap();
        assert_eq!(l1.db.daily, Some(45));
        assert_eq!(
            l1.files.ladder,
            Some(vec![1, 2, 3, 7, 14]),
            "files rules kept from the built-in"
        );
        assert!(ps.iter().any(|p| p.name == "level2"));
    }

    #[test]
    fn errors_name_the_line() {
        for (text, line, what) in [
            (
                "timezone = \"Europe/Paris\"\n[policy.x]\nlevel = 2\ndb = { weekly = \"four\" }\n",
                4,
                "invalid type",
            ),
            (
                "[policy.x]\nlevel = 2\n\ndb = { weakly = 4 }\n",
                4,
                "unknown field",
            ),
            (
                "\n\n[policy.x]\nlevel = 3\ndb = { weekly = 4 }\n",
                4,
                "level must be 1 or 2",
            ),
            (
                "[policy.x]\nlevel = 2\nsites = [\"s\"]\ndb = { ladder = [7, 3] }\n",
                4,
                "increasing",
            ),
            (
                "[policy.x]\nlevel = 2\ndb = { weekly = 4 }\n",
                1,
                "lists no sites",
            ),
            ("timezone = \"Mars/Olympus\"\n", 1, "not a time zone"),
            (
                "[policy.x]\nlevel = 2\nsites = [\"s\"]\nfiles = { within = \"3x\" }\n",
                4,
                "not a duration",
            ),
            (
                "# a bad ladder, reported where it is\n\n[policy.client-b]\nlevel = 2\nsites = [\"client-b\"]\nfiles = { ladder = [1, 1] }\n",
                6,
                "increasing",
            ),
            (
                "[policy.x]\nlevel = 2\nsites = [\"s\"]\n\n[policy.x.db]\nwithin = \"9999999999999999h\"\n",
                5,
                "too long",
            ),
            (
                "\n[policy.level1]\nlevel = 2\ndb = { daily = 3 }\n",
                3,
                "built-in policy of level 1",
            ),
            (
                "[policy.level2]\nlevel = 2\nsites = [\"a\"]\n",
                3,
                "takes no sites",
            ),
            (
                "[policy.x]\nlevel = 2\n\nsites = []\n",
                4,
                "names no site",
            ),
            (
                "[policy.x]\nlevel = 2\nsites = [\"a\", \"\"]\n",
                3,
                "not a site name",
            ),
        ] {
            let e = parse(text, "p.toml").unwrap_err().to_string();
            assert!(
                e.contains(&format!("p.toml, line {line}")) && e.contains(what),
                "{e}"
            );
        }
    }
}
