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
//! Errors name the line they are on.

use crate::error::{Error, Result};
use crate::format::policy::{builtin_policies, Policy, Rules};
use chrono_tz::Tz;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileToml {
    timezone: Option<String>,
    #[serde(default)]
    policy: BTreeMap<String, PolicyToml>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyToml {
    level: u8,
    sites: Option<Vec<String>>,
    timezone: Option<String>,
    files: Option<Rules>,
    db: Option<Rules>,
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

fn line_of(text: &str, needle: &str) -> usize {
    text.lines()
        .position(|l| l.contains(needle))
        .map(|i| i + 1)
        .unwrap_or(1)
}

/// Parses a policy file's text; `origin` names it in errors.
pub fn parse(text: &str, origin: &str) -> Result<Vec<Policy>> {
    let bad = |line: usize, msg: String| Error::Usage(format!("{origin}, line {line}: {msg}"));
    let f: FileToml = toml::from_str(text).map_err(|e| {
        let line = e
            .span()
            .map(|s| text[..s.start.min(text.len())].lines().count().max(1))
            .unwrap_or(1);
        bad(line, e.message().to_string())
    })?;
    let tz = match &f.timezone {
        Some(t) => parse_tz(t, "timezone").map_err(|m| bad(line_of(text, "timezone"), m))?,
        None => default_timezone(),
    };
    let mut policies = builtin_policies(tz);
    for (name, p) in f.policy {
        let line = line_of(text, &format!("policy.{name}"));
        if !(1..=2).contains(&p.level) {
            return Err(bad(
                line,
                format!("policy {name}: level must be 1 or 2, not {}", p.level),
            ));
        }
        let ptz = match &p.timezone {
            Some(t) => parse_tz(t, &format!("policy {name}")).map_err(|m| bad(line, m))?,
            None => tz,
        };
        let base = policies.iter().find(|b| b.name == name).cloned();
        if base.is_none() && p.sites.is_none() {
            return Err(bad(
                line,
                format!("policy {name} lists no sites, so no group would ever be its charge: add sites = [...], or name it level{} to redefine that built-in", p.level),
            ));
        }
        let files = p
            .files
            .or_else(|| base.as_ref().map(|b| b.files.clone()))
            .unwrap_or_default();
        let db =
            p.db.or_else(|| base.as_ref().map(|b| b.db.clone()))
                .unwrap_or_default();
        for (kind, r) in [("files", &files), ("db", &db)] {
            r.validate()
                .map_err(|m| bad(line, format!("policy {name}, {kind}: {m}")))?;
        }
        let policy = Policy {
            name: name.clone(),
            level: p.level,
            sites: p.sites,
            timezone: ptz,
            files,
            db,
        };
        match policies.iter_mut().find(|b| b.name == name) {
            Some(b) => *b = policy,
            None => policies.push(policy),
        }
    }
    Ok(policies)
}

/// Where snap looks for the policy file, in order: `--policy-file`,
/// `SNAP_POLICY_FILE`, /etc/snap/policies.toml, then
/// `$XDG_CONFIG_HOME/snap/policies.toml` (or ~/.config/...). With none,
/// the built-in policies apply.
pub fn load(explicit: Option<&Path>) -> Result<Vec<Policy>> {
    // A file the user named must exist; the usual places may not.
    let named = explicit
        .map(Path::to_path_buf)
        .or_else(|| std::env::var_os("SNAP_POLICY_FILE").map(Into::into));
    if let Some(p) = named {
        let text = std::fs::read_to_string(&p).map_err(|e| Error::io(&p, e))?;
        return parse(&text, &p.display().to_string());
    }
    let config_home = std::env::var_os("XDG_CONFIG_HOME")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".config")));
    let usual = std::iter::once(std::path::PathBuf::from("/etc/snap/policies.toml"))
        .chain(config_home.map(|c| c.join("snap/policies.toml")));
    for p in usual {
        match std::fs::read_to_string(&p) {
            Ok(text) => return parse(&text, &p.display().to_string()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(Error::io(&p, e)),
        }
    }
    Ok(builtin_policies(default_timezone()))
}

#[cfg(test)]
mod tests {
    use super::*;

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
                3,
                "level must be 1 or 2",
            ),
            (
                "[policy.x]\nlevel = 2\nsites = [\"s\"]\ndb = { ladder = [7, 3] }\n",
                1,
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
                1,
                "not a duration",
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
