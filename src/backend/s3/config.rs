//! Where an S3 repository is and how to reach it: the URL a user gives
//! (`s3://bucket/prefix`, `s3+http://host:port/bucket/prefix`,
//! `s3+https://…`), the credentials and region from the environment, and the
//! tuning of the backend (retries, time-outs, upload sizes).
//!
//! The environment is passed in as a function, never read here, so that
//! tests can give their own without touching the process's. The secret key
//! is never shown: not by `Debug`, not by [`S3Config::location`].

use crate::error::{Error, Result};
use std::fmt;
use std::time::Duration;
use url::Url;

/// How to reach one repository in an S3 bucket.
#[derive(Clone)]
pub struct S3Config {
    /// The server, without the bucket (`https://s3.eu-west-1.amazonaws.com`).
    pub endpoint: Url,
    /// The bucket.
    pub bucket: String,
    /// The key prefix of the repository inside the bucket, without leading
    /// or trailing `/` (empty: the repository is the whole bucket).
    pub prefix: String,
    /// The region requests are signed for.
    pub region: String,
    /// Path-style addressing (`endpoint/bucket/key`) rather than
    /// virtual-hosted (`bucket.endpoint/key`).
    pub path_style: bool,
    /// The access key id.
    pub access_key: String,
    /// The secret access key.
    pub secret_key: String,
    /// A session token, for temporary credentials.
    pub session_token: Option<String>,
    /// Whether the endpoint came from the URL (`s3+http(s)://`), so that
    /// [`S3Config::location`] gives the URL back in the form it was given.
    pub endpoint_in_url: bool,
}

impl fmt::Debug for S3Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Config")
            .field("endpoint", &self.endpoint.as_str())
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .field("region", &self.region)
            .field("path_style", &self.path_style)
            .field("access_key", &"<set>")
            .field("secret_key", &"<redacted>")
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// Characters a prefix may hold besides ASCII letters and digits: enough for
/// names people give, and none that a URL or a shell would read otherwise.
const PREFIX_PUNCTUATION: &str = "-._~/:@+=,";

impl S3Config {
    /// Parses `url` (`s3://bucket/prefix`, `s3+http://host:port/bucket/prefix`
    /// or `s3+https://host:port/bucket/prefix`) and takes the region, the
    /// credentials, the endpoint of `s3://` and the addressing style from
    /// `env` (`AWS_REGION` or `AWS_DEFAULT_REGION`, default `us-east-1`;
    /// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`;
    /// `AWS_ENDPOINT_URL_S3` or `AWS_ENDPOINT_URL`; `SNAP_S3_PATH_STYLE`).
    pub fn from_url(url: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<S3Config> {
        let var = |name: &str| env(name).filter(|v| !v.is_empty());
        let region = var("AWS_REGION")
            .or_else(|| var("AWS_DEFAULT_REGION"))
            .unwrap_or_else(|| "us-east-1".to_string());
        let (endpoint, path, endpoint_in_url) = if let Some(rest) = url.strip_prefix("s3://") {
            let endpoint = match var("AWS_ENDPOINT_URL_S3").or_else(|| var("AWS_ENDPOINT_URL")) {
                Some(e) => parse_endpoint(&e, "AWS_ENDPOINT_URL")?,
                None => Url::parse(&format!("https://s3.{region}.amazonaws.com"))
                    .map_err(|_| usage(format!("{region:?} is not a valid AWS region")))?,
            };
            (endpoint, rest.to_string(), false)
        } else if let Some(rest) = url
            .strip_prefix("s3+http://")
            .map(|r| ("http", r))
            .or_else(|| url.strip_prefix("s3+https://").map(|r| ("https", r)))
        {
            let (scheme, rest) = rest;
            let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
            if host.is_empty() {
                return Err(malformed(url, "it names no host"));
            }
            if host.contains('@') {
                return Err(malformed(
                    url,
                    "credentials do not go in the URL: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
                ));
            }
            let endpoint = parse_endpoint(&format!("{scheme}://{host}/"), "the URL")
                .map_err(|_| malformed(url, "the host part is not a host[:port]"))?;
            (endpoint, path.to_string(), true)
        } else {
            return Err(malformed(
                url,
                "use s3://bucket/prefix, s3+http://host:port/bucket/prefix or s3+https://host:port/bucket/prefix",
            ));
        };
        if path.contains(['?', '#']) {
            return Err(malformed(url, "it has a query or a fragment"));
        }
        let (bucket, prefix) = path.split_once('/').unwrap_or((&path, ""));
        if bucket.is_empty() {
            return Err(malformed(url, "it names no bucket"));
        }
        if !bucket
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
        {
            return Err(malformed(
                url,
                "a bucket name has only letters, digits, '-', '.' and '_'",
            ));
        }
        let prefix: Vec<&str> = prefix.split('/').filter(|s| !s.is_empty()).collect();
        let prefix = prefix.join("/");
        if !prefix
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || PREFIX_PUNCTUATION.contains(c))
        {
            return Err(malformed(
                url,
                &format!("a prefix has only letters, digits and {PREFIX_PUNCTUATION}"),
            ));
        }
        let path_style = match var("SNAP_S3_PATH_STYLE").as_deref() {
            None => endpoint_in_url,
            Some("1" | "true" | "yes") => true,
            Some("0" | "false" | "no") => false,
            Some(other) => {
                return Err(usage(format!(
                    "SNAP_S3_PATH_STYLE is {other:?}: set it to 1 (path-style, endpoint/bucket/key) or 0 (virtual-hosted, bucket.endpoint/key)"
                )))
            }
        };
        let (access_key, secret_key) = match (
            var("AWS_ACCESS_KEY_ID"),
            var("AWS_SECRET_ACCESS_KEY"),
        ) {
            (Some(a), Some(s)) => (a, s),
            (a, s) => {
                let missing: Vec<&str> = [
                    a.is_none().then_some("AWS_ACCESS_KEY_ID"),
                    s.is_none().then_some("AWS_SECRET_ACCESS_KEY"),
                ]
                .into_iter()
                .flatten()
                .collect();
                return Err(usage(format!(
                        "no S3 credentials for {url}: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY ({} not set)",
                        missing.join(" and ")
                    )));
            }
        };
        Ok(S3Config {
            endpoint,
            bucket: bucket.to_string(),
            prefix,
            region,
            path_style,
            access_key,
            secret_key,
            session_token: var("AWS_SESSION_TOKEN"),
            endpoint_in_url,
        })
    }

    /// The repository's URL, in the form it was given, without credentials.
    pub fn location(&self) -> String {
        let tail = if self.prefix.is_empty() {
            self.bucket.clone()
        } else {
            format!("{}/{}", self.bucket, self.prefix)
        };
        if !self.endpoint_in_url {
            return format!("s3://{tail}");
        }
        let host = self.endpoint.host_str().unwrap_or("");
        let port = self
            .endpoint
            .port()
            .map(|p| format!(":{p}"))
            .unwrap_or_default();
        let path = self.endpoint.path().trim_end_matches('/');
        format!("s3+{}://{host}{port}{path}/{tail}", self.endpoint.scheme())
    }
}

fn usage(msg: String) -> Error {
    Error::Usage(msg)
}

fn malformed(url: &str, why: &str) -> Error {
    // The URL is shown only up to its host when it may hold a password.
    let shown = if url.contains('@') {
        "the S3 URL given"
    } else {
        url
    };
    usage(format!("{shown} is not a valid S3 repository URL: {why}"))
}

fn parse_endpoint(s: &str, from: &str) -> Result<Url> {
    let bad = |why: &str| usage(format!("the S3 endpoint in {from} is not valid: {why}"));
    let url = Url::parse(s).map_err(|e| bad(&e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad("it must start with http:// or https://"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(bad("it names no host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad(
            "credentials do not go in the URL: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad("it has a query or a fragment"));
    }
    Ok(url)
}

/// How the S3 backend behaves: page and upload sizes, retries, time-outs.
#[derive(Clone, Debug)]
pub struct S3Options {
    /// Keys asked for per listing request (S3 answers at most 1000).
    pub page_size: usize,
    /// Files larger than this are uploaded in parts.
    pub multipart_threshold: u64,
    /// The size of each part but the last. S3 refuses parts under 5 MiB
    /// (other than the last one) when the upload completes.
    pub part_size: u64,
    /// Attempts of one request before a transient failure is given up on.
    pub max_attempts: u32,
    /// The first retry waits up to this long; each next one up to twice as
    /// long as the one before (full jitter: a random time below the bound).
    pub base_delay: Duration,
    /// The bound on any one wait between attempts.
    pub max_delay: Duration,
    /// How long a connection may take to open.
    pub connect_timeout: Duration,
    /// How long one request may take, its body included.
    pub request_timeout: Duration,
    /// Whether to keep a log of every request sent
    /// ([`super::S3Backend::requests`]).
    pub log_requests: bool,
}

impl Default for S3Options {
    fn default() -> Self {
        S3Options {
            page_size: 1000,
            multipart_threshold: 64 << 20,
            part_size: 16 << 20,
            max_attempts: 6,
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(300),
            log_requests: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| m.get(k).cloned()
    }

    const KEYS: [(&str, &str); 2] = [
        ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"),
        ("AWS_SECRET_ACCESS_KEY", "very-secret-value"),
    ];

    #[test]
    fn s3_url_uses_aws_endpoint_region_and_virtual_hosts() {
        let c = S3Config::from_url(
            "s3://my-bucket/backups/site1/",
            &env(&[KEYS[0], KEYS[1], ("AWS_REGION", "eu-west-3")]),
        )
        .unwrap();
        assert_eq!(c.endpoint.as_str(), "https://s3.eu-west-3.amazonaws.com/");
        assert_eq!(
            (c.bucket.as_str(), c.prefix.as_str()),
            ("my-bucket", "backups/site1")
        );
        assert_eq!(c.region, "eu-west-3");
        assert!(!c.path_style);
        assert_eq!(c.location(), "s3://my-bucket/backups/site1");
        let c = S3Config::from_url(
            "s3://b",
            &env(&[KEYS[0], KEYS[1], ("AWS_DEFAULT_REGION", "ap-south-1")]),
        )
        .unwrap();
        assert_eq!((c.region.as_str(), c.prefix.as_str()), ("ap-south-1", ""));
        assert_eq!(c.location(), "s3://b");
        let c = S3Config::from_url("s3://b", &env(&KEYS)).unwrap();
        assert_eq!(c.region, "us-east-1");
    }

    #[test]
    fn endpoint_from_the_environment_and_path_style_switch() {
        let c = S3Config::from_url(
            "s3://b/p",
            &env(&[
                KEYS[0],
                KEYS[1],
                ("AWS_ENDPOINT_URL", "http://minio.local:9000"),
                ("SNAP_S3_PATH_STYLE", "1"),
            ]),
        )
        .unwrap();
        assert_eq!(c.endpoint.as_str(), "http://minio.local:9000/");
        assert!(c.path_style);
        let c = S3Config::from_url(
            "s3+http://127.0.0.1:9000/b/a//b",
            &env(&[KEYS[0], KEYS[1], ("SNAP_S3_PATH_STYLE", "0")]),
        )
        .unwrap();
        assert!(!c.path_style);
        assert_eq!(c.prefix, "a/b");
        let e = S3Config::from_url(
            "s3://b",
            &env(&[KEYS[0], KEYS[1], ("SNAP_S3_PATH_STYLE", "maybe")]),
        )
        .unwrap_err();
        assert!(e.to_string().contains("SNAP_S3_PATH_STYLE"), "{e}");
    }

    #[test]
    fn endpoint_in_the_url_is_path_style_and_shown_back() {
        let c = S3Config::from_url("s3+https://store.example:8443/bk/x/y", &env(&KEYS)).unwrap();
        assert_eq!(c.endpoint.as_str(), "https://store.example:8443/");
        assert_eq!((c.bucket.as_str(), c.prefix.as_str()), ("bk", "x/y"));
        assert!(c.path_style);
        assert_eq!(c.location(), "s3+https://store.example:8443/bk/x/y");
        let c = S3Config::from_url("s3+http://localhost/bk", &env(&KEYS)).unwrap();
        assert_eq!(c.location(), "s3+http://localhost/bk");
    }

    #[test]
    fn malformed_urls_and_missing_credentials_say_what_to_do() {
        for (url, says) in [
            ("file:///tmp/x", "s3://bucket/prefix"),
            ("s3://", "no bucket"),
            ("s3+http:///b", "no host"),
            ("s3+http://h:notaport/b", "host[:port]"),
            ("s3+http://host:9000", "no bucket"),
            ("s3://b/p?x=1", "query"),
            ("s3://bad bucket/p", "bucket name"),
            ("s3://b/pre fix", "prefix"),
            ("s3+http://key:pw123@host/b", "do not go in the URL"),
        ] {
            let e = S3Config::from_url(url, &env(&KEYS))
                .unwrap_err()
                .to_string();
            assert!(e.contains(says), "{url}: {e}");
            assert!(!e.contains("pw123"), "{url}: {e}");
        }
        let e = S3Config::from_url("s3://b", &env(&[KEYS[0]]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("AWS_SECRET_ACCESS_KEY not set"), "{e}");
        let e = S3Config::from_url("s3://b", &env(&[]))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY not set"),
            "{e}"
        );
        let e = S3Config::from_url(
            "s3://b",
            &env(&[KEYS[0], KEYS[1], ("AWS_ENDPOINT_URL", "ftp://x")]),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("AWS_ENDPOINT_URL") && e.contains("http://"),
            "{e}"
        );
    }

    #[test]
    fn debug_shows_no_secret() {
        let mut c = S3Config::from_url("s3://b/p", &env(&KEYS)).unwrap();
        c.session_token = Some("token-value".into());
        let shown = format!("{c:?}");
        assert!(shown.contains("\"b\""), "{shown}");
        for secret in ["very-secret-value", "AKIDEXAMPLE", "token-value"] {
            assert!(!shown.contains(secret), "{shown}");
        }
    }
}
