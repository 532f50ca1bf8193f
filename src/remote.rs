//! Named remotes: where off-site copies go, read from the remotes file
//! (TOML). Found, in order, at `--remotes-file`, `SNAP_REMOTES_FILE`,
//! `/etc/snap/remotes.toml`, `~/.config/snap/remotes.toml`.
//!
//! ```toml
//! # Data residency is a contract term: nothing is sent to a remote
//! # declared anywhere else.
//! allowed_jurisdictions = ["FR"]
//!
//! [remote.offsite]
//! url = "s3+https://s3.gra.io.cloud.ovh.net/agency-backups/snap"
//! jurisdiction = "FR"
//! credentials_file = "/etc/snap/offsite.credentials"
//! region = "gra"
//! levels = [2]              # the default
//! sites = ["client-a"]      # default: every site, and global snapshots
//! uploads = 4               # packs uploaded at once
//! limit_upload = "20M"      # bytes per second, on average
//! ```

use crate::error::{Error, Result};
use crate::ops::replicate::Filter;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The remotes file's top level: nothing else is allowed in it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct StrictToml {
    allowed_jurisdictions: Option<toml::Value>,
    remote: Option<toml::Value>,
}

/// The sections this module reads, from a remotes file or from the
/// configuration file (which has others).
#[derive(Deserialize)]
struct FileToml {
    allowed_jurisdictions: Option<Vec<String>>,
    #[serde(default)]
    remote: BTreeMap<String, RemoteToml>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RemoteToml {
    url: String,
    jurisdiction: Option<String>,
    credentials_file: Option<PathBuf>,
    access_key_id: Option<String>,
    secret_access_key: Option<String>,
    endpoint: Option<String>,
    region: Option<String>,
    path_style: Option<bool>,
    levels: Option<Vec<u8>>,
    sites: Option<Vec<String>>,
    uploads: Option<usize>,
    limit_upload: Option<String>,
}

/// One remote.
#[derive(Clone)]
pub struct Remote {
    /// Its name in the file.
    pub name: String,
    /// A directory, or `s3://…`, `s3+http://…`, `s3+https://…`.
    pub url: String,
    /// Where its data is, as declared (`FR`).
    pub jurisdiction: Option<String>,
    /// What it receives.
    pub filter: Filter,
    /// Packs uploaded at once.
    pub uploads: usize,
    /// Average bytes per second at most.
    pub limit_upload: Option<u64>,
    /// Settings for the storage client, by environment variable name
    /// (`AWS_ACCESS_KEY_ID`, `AWS_ENDPOINT_URL`…): they win over the
    /// process environment.
    settings: BTreeMap<String, String>,
}

impl std::fmt::Debug for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Credentials never reach a message.
        f.debug_struct("Remote")
            .field("name", &self.name)
            .field("url", &self.url)
            .field("jurisdiction", &self.jurisdiction)
            .finish_non_exhaustive()
    }
}

impl Remote {
    /// A setting of the storage client: this remote's, else the process
    /// environment's.
    pub fn setting(&self, var: &str) -> Option<String> {
        self.settings
            .get(var)
            .cloned()
            .or_else(|| std::env::var(var).ok())
    }
}

/// The remotes file as read.
#[derive(Debug, Default, Clone)]
pub struct Remotes {
    /// Where it was read from (`None`: no file).
    pub path: Option<PathBuf>,
    /// The jurisdictions anything may be sent to; `None`: no restriction.
    pub allowed: Option<Vec<String>>,
    /// By name.
    pub remotes: BTreeMap<String, Remote>,
}

/// The file to read: `explicit`, else `SNAP_REMOTES_FILE`, else the first
/// of `/etc/snap/remotes.toml` and `~/.config/snap/remotes.toml` that exists.
pub fn find(explicit: Option<&Path>) -> Option<PathBuf> {
    if let Some(p) = explicit {
        return Some(p.to_path_buf());
    }
    if let Some(p) = std::env::var_os("SNAP_REMOTES_FILE") {
        return Some(PathBuf::from(p));
    }
    let mut candidates = vec![PathBuf::from("/etc/snap/remotes.toml")];
    if let Some(h) = std::env::var_os("HOME") {
        candidates.push(PathBuf::from(h).join(".config/snap/remotes.toml"));
    }
    candidates.into_iter().find(|p| p.is_file())
}

/// Reads the remotes file (see [`find`]); no file is no remotes.
pub fn load(explicit: Option<&Path>) -> Result<Remotes> {
    let Some(path) = find(explicit) else {
        return Ok(Remotes::default());
    };
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    parse(&text, &path)
}

fn bad(path: &Path, what: String) -> Error {
    Error::Usage(format!("{}: {what}", path.display()))
}

/// Parses the text of a remotes file read from `path`.
pub fn parse(text: &str, path: &Path) -> Result<Remotes> {
    toml::from_str::<StrictToml>(text).map_err(|e| bad(path, e.to_string()))?;
    parse_section(text, path)
}

/// Parses the remotes of the configuration file's text read from `path`.
pub fn parse_section(text: &str, path: &Path) -> Result<Remotes> {
    let f: FileToml = toml::from_str(text).map_err(|e| bad(path, e.to_string()))?;
    let allowed = f
        .allowed_jurisdictions
        .map(|v| v.into_iter().map(|j| j.to_uppercase()).collect());
    let mut remotes = BTreeMap::new();
    for (name, r) in f.remote {
        let at = |what: String| bad(path, format!("remote {name:?}: {what}"));
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            return Err(at(
                "a remote's name is letters, digits, '-', '_' and '.'".into()
            ));
        }
        let mut settings = BTreeMap::new();
        if let Some(cf) = &r.credentials_file {
            let cf = if cf.is_relative() {
                path.parent().unwrap_or(Path::new(".")).join(cf)
            } else {
                cf.clone()
            };
            let text = std::fs::read_to_string(&cf).map_err(|e| {
                at(format!(
                    "reading the credentials file {}: {e}",
                    cf.display()
                ))
            })?;
            settings.extend(parse_credentials(&text));
            if !settings.contains_key("AWS_ACCESS_KEY_ID")
                || !settings.contains_key("AWS_SECRET_ACCESS_KEY")
            {
                return Err(at(format!(
                    "the credentials file {} names no aws_access_key_id and aws_secret_access_key",
                    cf.display()
                )));
            }
        }
        for (var, v) in [
            ("AWS_ACCESS_KEY_ID", &r.access_key_id),
            ("AWS_SECRET_ACCESS_KEY", &r.secret_access_key),
            ("AWS_ENDPOINT_URL", &r.endpoint),
            ("AWS_REGION", &r.region),
        ] {
            if let Some(v) = v {
                settings.insert(var.to_string(), v.clone());
            }
        }
        if let Some(e) = &r.endpoint {
            // Over the environment's, whichever of the two it sets.
            settings.insert("AWS_ENDPOINT_URL_S3".into(), e.clone());
        }
        if let Some(p) = r.path_style {
            settings.insert(
                "SNAP_S3_PATH_STYLE".into(),
                if p { "1" } else { "0" }.into(),
            );
        }
        let levels = r.levels.unwrap_or_else(|| vec![2]);
        if levels.is_empty() || levels.iter().any(|l| !(1..=2).contains(l)) {
            return Err(at(format!(
                "levels = {levels:?}: the plan's levels are 1 and 2"
            )));
        }
        let limit_upload = match &r.limit_upload {
            None => None,
            Some(s) => Some(parse_rate(s).map_err(at)?),
        };
        remotes.insert(
            name.clone(),
            Remote {
                name,
                url: r.url,
                jurisdiction: r.jurisdiction.map(|j| j.to_uppercase()),
                filter: Filter {
                    levels,
                    sites: r.sites,
                },
                uploads: r.uploads.unwrap_or(4).clamp(1, 64),
                limit_upload,
                settings,
            },
        );
    }
    Ok(Remotes {
        path: Some(path.to_path_buf()),
        allowed,
        remotes,
    })
}

/// `KEY = value` lines (the shared credentials file of the AWS tools, or
/// environment-style `KEY=value`); section headers and comments are
/// skipped. Keys are returned as environment variable names.
fn parse_credentials(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty()
            || line.starts_with('#')
            || line.starts_with(';')
            || line.starts_with('[')
        {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        let v = v.trim().trim_matches('"').trim_matches('\'').to_string();
        let k = k.trim().to_uppercase();
        if matches!(
            k.as_str(),
            "AWS_ACCESS_KEY_ID" | "AWS_SECRET_ACCESS_KEY" | "AWS_SESSION_TOKEN"
        ) {
            out.insert(k, v);
        }
    }
    out
}

/// `"20M"`, `"512K"`, `"1G"` or plain bytes, per second.
pub fn parse_rate(s: &str) -> std::result::Result<u64, String> {
    let t = s.trim();
    let t = t.strip_suffix("/s").unwrap_or(t);
    let t = t.strip_suffix('B').unwrap_or(t);
    let t = t.strip_suffix('i').unwrap_or(t);
    let (num, mult) = match t.chars().last() {
        Some('K' | 'k') => (&t[..t.len() - 1], 1u64 << 10),
        Some('M' | 'm') => (&t[..t.len() - 1], 1 << 20),
        Some('G' | 'g') => (&t[..t.len() - 1], 1 << 30),
        _ => (t, 1),
    };
    match num.trim().parse::<f64>() {
        Ok(n) if n > 0.0 && n.is_finite() => Ok((n * mult as f64) as u64),
        _ => Err(format!(
            "limit_upload = {s:?} is not a rate such as \"20M\" (bytes per second; K, M, G)"
        )),
    }
}

impl Remotes {
    /// The configuration file's remotes (`self`) and the remotes file's
    /// together. A remote named in both, or two different
    /// `allowed_jurisdictions`, is an error: which one holds would be a
    /// guess.
    pub fn merge(mut self, other: Remotes) -> Result<Remotes> {
        let name = |p: &Option<PathBuf>| {
            p.as_deref()
                .map(|p| p.display().to_string())
                .unwrap_or_default()
        };
        let (mine, theirs) = (name(&self.path), name(&other.path));
        for (n, r) in other.remotes {
            if self.remotes.contains_key(&n) {
                return Err(Error::Usage(format!(
                    "remote {n:?} is defined in both {mine} and {theirs}: keep one"
                )));
            }
            self.remotes.insert(n, r);
        }
        match (&self.allowed, other.allowed) {
            (Some(a), Some(b)) if *a != b => {
                return Err(Error::Usage(format!(
                "allowed_jurisdictions differ between {mine} ({}) and {theirs} ({}): keep one list",
                a.join(", "),
                b.join(", ")
            )))
            }
            (None, b) => self.allowed = b,
            _ => {}
        }
        if self.path.is_none() {
            self.path = other.path;
        }
        Ok(self)
    }

    /// The remote called `name`.
    pub fn get(&self, name: &str) -> Result<&Remote> {
        self.remotes.get(name).ok_or_else(|| {
            Error::Usage(match &self.path {
                None => format!(
                    "there is no remote {name:?}: no remotes file was found (--remotes-file, SNAP_REMOTES_FILE, /etc/snap/remotes.toml, ~/.config/snap/remotes.toml)"
                ),
                Some(p) => format!(
                    "there is no remote {name:?} in {} (it has: {})",
                    p.display(),
                    if self.remotes.is_empty() {
                        "none".to_string()
                    } else {
                        self.remotes.keys().cloned().collect::<Vec<_>>().join(", ")
                    }
                ),
            })
        })
    }

    /// Refuses to send anything to `r` when the file restricts where data
    /// may go and `r` is declared elsewhere, or not declared.
    pub fn check_allowed(&self, r: &Remote) -> Result<()> {
        let Some(allowed) = &self.allowed else {
            return Ok(());
        };
        match &r.jurisdiction {
            Some(j) if allowed.contains(j) => Ok(()),
            Some(j) => Err(Error::Usage(format!(
                "remote {:?} is declared in jurisdiction {j}, but allowed_jurisdictions in {} is {}: nothing is sent there (data residency). Fix the remote, or the list if the contract changed",
                r.name,
                self.path.as_deref().unwrap_or(Path::new("?")).display(),
                allowed.join(", ")
            ))),
            None => Err(Error::Usage(format!(
                "remote {:?} declares no jurisdiction, and {} allows only {}: add jurisdiction = \"…\" to it",
                r.name,
                self.path.as_deref().unwrap_or(Path::new("?")).display(),
                allowed.join(", ")
            ))),
        }
    }

    /// The remotes that receive a snapshot of `level` and `site`.
    pub fn receiving(&self, level: u8, site: Option<&str>) -> Vec<&Remote> {
        self.remotes
            .values()
            .filter(|r| {
                r.filter.levels.contains(&level)
                    && r.filter
                        .sites
                        .as_ref()
                        .is_none_or(|s| site.is_some_and(|x| s.iter().any(|y| y == x)))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remotes_credentials_and_jurisdictions() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(
            d.path().join("creds"),
            "[default]\naws_access_key_id = AKIA1\naws_secret_access_key = \"s3cr3t\"\n",
        )
        .unwrap();
        let text = r#"
allowed_jurisdictions = ["fr"]
[remote.offsite]
url = "s3+http://127.0.0.1:9000/b/p"
jurisdiction = "FR"
credentials_file = "creds"
limit_upload = "2M"
[remote.abroad]
url = "/mnt/x"
jurisdiction = "US"
levels = [1, 2]
sites = ["a"]
"#;
        let r = parse(text, &d.path().join("remotes.toml")).unwrap();
        let off = r.get("offsite").unwrap();
        assert_eq!(
            off.setting("AWS_SECRET_ACCESS_KEY").as_deref(),
            Some("s3cr3t")
        );
        assert_eq!(off.limit_upload, Some(2 << 20));
        assert_eq!(off.filter.levels, vec![2]);
        assert!(!format!("{off:?}").contains("s3cr3t"));
        r.check_allowed(off).unwrap();
        let e = r.check_allowed(r.get("abroad").unwrap()).unwrap_err();
        assert!(e.to_string().contains("jurisdiction US"), "{e}");
        assert_eq!(r.receiving(2, Some("a")).len(), 2);
        assert_eq!(r.receiving(2, Some("b")).len(), 1);
        assert_eq!(r.receiving(1, Some("a")).len(), 1);
        assert!(r
            .get("nope")
            .unwrap_err()
            .to_string()
            .contains("abroad, offsite"));
        let e = parse("[remote.x]\nurl = \"/a\"\nlevels = [3]\n", Path::new("f")).unwrap_err();
        assert!(e.to_string().contains("levels"), "{e}");
    }

    #[test]
    fn rates() {
        assert_eq!(parse_rate("512K"), Ok(512 << 10));
        assert_eq!(parse_rate("1.5MiB/s"), Ok(3 << 19));
        assert_eq!(parse_rate("1000"), Ok(1000));
        assert!(parse_rate("fast").is_err());
    }
}
