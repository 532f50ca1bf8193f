//! Where a repository is: a local directory, or an S3 bucket and prefix.
//!
//! `s3://bucket/prefix` takes its endpoint from `AWS_ENDPOINT_URL` (else
//! AWS itself); `s3+https://host[:port]/bucket/prefix` and
//! `s3+http://host[:port]/bucket/prefix` name the endpoint (plain HTTP is
//! for a private network or loopback). Anything else is a directory.

use crate::backend::local::LocalBackend;
use crate::backend::s3::{S3Backend, S3Config, S3Options};
use crate::backend::Backend;
use crate::error::Result;
use crate::repo::{Mode, NewKey, Repository};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// A repository's place.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    /// A directory.
    Local(PathBuf),
    /// An S3 URL (`s3://`, `s3+http://`, `s3+https://`).
    S3(String),
}

impl Location {
    /// Reads `--repo`.
    pub fn parse(s: &str) -> Location {
        if s.starts_with("s3://") || s.starts_with("s3+http://") || s.starts_with("s3+https://") {
            Location::S3(s.to_string())
        } else {
            Location::Local(PathBuf::from(s))
        }
    }

    /// For messages (never with credentials: they are not in the URL).
    pub fn display(&self) -> String {
        match self {
            Location::Local(p) => p.display().to_string(),
            Location::S3(u) => u.clone(),
        }
    }

    /// The S3 backend of an S3 location, its settings read through `env`
    /// (credentials, endpoint, region, addressing).
    fn s3(url: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<S3Backend> {
        S3Backend::new(S3Config::from_url(url, env)?, S3Options::default())
    }

    /// Creates a repository here.
    pub fn init(
        &self,
        cache: &Path,
        env: &dyn Fn(&str) -> Option<String>,
        password: &[u8],
        key: &NewKey,
        chunking: crate::format::config::Chunking,
    ) -> Result<Repository> {
        match self {
            Location::Local(p) => Repository::init(p, cache, password, key, chunking),
            Location::S3(u) => {
                let b = Self::s3(u, env)?;
                b.ensure_bucket()?;
                Repository::init_with(Arc::new(b), cache, password, key, chunking)
            }
        }
    }

    /// The backend of the repository here, for opening it.
    pub fn backend(&self, env: &dyn Fn(&str) -> Option<String>) -> Result<Arc<dyn Backend>> {
        Ok(match self {
            Location::Local(p) => Arc::new(LocalBackend::new(p)),
            Location::S3(u) => Arc::new(Self::s3(u, env)?),
        })
    }

    /// The backend of an empty place where a repository is to be made
    /// (the layout of a directory created; a bucket created if missing).
    pub fn new_backend(&self, env: &dyn Fn(&str) -> Option<String>) -> Result<Arc<dyn Backend>> {
        Ok(match self {
            Location::Local(p) => {
                crate::repo::check_new_place(p)?;
                let lb = LocalBackend::new(p);
                lb.create_layout()?;
                Arc::new(lb)
            }
            Location::S3(u) => {
                let b = Self::s3(u, env)?;
                b.ensure_bucket()?;
                Arc::new(b)
            }
        })
    }

    /// Opens the repository here with a password.
    #[allow(clippy::too_many_arguments)]
    pub fn open(
        &self,
        cache: &Path,
        env: &dyn Fn(&str) -> Option<String>,
        password: &[u8],
        mode: Mode,
        command: &str,
        wait: Duration,
        waiting: &dyn Fn(&str),
    ) -> Result<Repository> {
        match self {
            Location::Local(p) => {
                Repository::open_telling_waits(p, cache, password, mode, command, wait, waiting)
            }
            Location::S3(u) => Repository::open_with(
                Arc::new(Self::s3(u, env)?),
                cache,
                password,
                mode,
                command,
                wait,
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_paths() {
        assert_eq!(Location::parse("s3://b/p"), Location::S3("s3://b/p".into()));
        assert_eq!(
            Location::parse("s3+http://127.0.0.1:9000/b"),
            Location::S3("s3+http://127.0.0.1:9000/b".into())
        );
        assert_eq!(
            Location::parse("/var/lib/snap/repo"),
            Location::Local("/var/lib/snap/repo".into())
        );
        assert_eq!(
            Location::parse("s3-backups"),
            Location::Local("s3-backups".into())
        );
    }
}
