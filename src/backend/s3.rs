//! A repository in an S3 bucket (AWS or a compatible server), over HTTP
//! with SigV4-signed requests.
//!
//! Layout under the prefix, as in a local directory: `config`,
//! `keys/<name>`, `data/<first two hex digits>/<name>`, `snapshots/<name>`,
//! `locks/<name>`, `protected/<name>`, `state/<name>`. Keys that do not fit
//! it are not listed.
//!
//! Every write carries a `Content-MD5` that the server checks before it
//! answers (AWS, and s3s-fs for single PUTs), and is created only if absent,
//! except a lock, which is replaced. "Only if absent" is asked for with
//! `If-None-Match: *`, which AWS S3 (since August 2024), MinIO and s3s-fs
//! 0.14 honour (s3s-fs checks then writes, so two racing writers can both
//! succeed there); servers that ignore the header would overwrite, so the
//! object is looked for first as well, which leaves a small window there.
//! A write retried after a transient failure that finds its object already
//! present (the first attempt landed) compares that object with its own
//! bytes, and succeeds if they are the same.
//!
//! Transient failures (5xx, 429, time-outs, dropped connections) are
//! retried with exponential backoff and full jitter. Errors name the object
//! key, the HTTP status and the S3 error code, and never a credential or a
//! signed URL.
//!
//! The backend knows nothing of packs, trees or snapshots.

mod config;
mod http;
mod upload;

pub use config::{S3Config, S3Options};
pub use http::LoggedRequest;

use super::{Backend, FileType};
use crate::error::{Error, Result};
use http::{read_body, signed, Call, Failure};
use md5::{Digest, Md5};
use reqwest::blocking::{Body, Client};
use reqwest::Method;
use rusty_s3::actions::ListObjectsV2;
use rusty_s3::{Bucket, Credentials, UrlStyle};
use std::path::Path;
use std::sync::Mutex;

/// The most one page of a listing may take.
const MAX_LISTING_PAGE: u64 = 16 << 20;

/// What a HEAD request tells of an object.
#[derive(Clone, Debug)]
struct Head {
    size: u64,
    etag: Option<String>,
}

/// A repository in an S3 bucket.
pub struct S3Backend {
    config: S3Config,
    options: S3Options,
    bucket: Bucket,
    credentials: Credentials,
    client: Client,
    /// The prefix with a trailing `/`, or empty.
    prefix: String,
    log: Option<Mutex<Vec<LoggedRequest>>>,
}

impl S3Backend {
    /// A backend for `config`, tuned by `options`. Nothing is sent yet.
    pub fn new(config: S3Config, options: S3Options) -> Result<S3Backend> {
        let style = if config.path_style {
            UrlStyle::Path
        } else {
            UrlStyle::VirtualHost
        };
        let bucket = Bucket::new(
            config.endpoint.clone(),
            style,
            config.bucket.clone(),
            config.region.clone(),
        )
        .map_err(|e| {
            Error::Usage(format!(
                "{}: cannot address bucket {:?} at {} ({e}); with an IP address or a dotted bucket name, set SNAP_S3_PATH_STYLE=1",
                config.location(),
                config.bucket,
                config.endpoint
            ))
        })?;
        let credentials = match &config.session_token {
            Some(t) => Credentials::new_with_token(&config.access_key, &config.secret_key, t),
            None => Credentials::new(&config.access_key, &config.secret_key),
        };
        let client = Client::builder()
            .connect_timeout(options.connect_timeout)
            .timeout(options.request_timeout)
            .build()
            .map_err(|e| {
                Error::storage(
                    config.location(),
                    "starting the HTTP client",
                    std::io::Error::other(e.without_url()),
                )
            })?;
        let prefix = if config.prefix.is_empty() {
            String::new()
        } else {
            format!("{}/", config.prefix)
        };
        Ok(S3Backend {
            log: options.log_requests.then(Mutex::default),
            config,
            options,
            bucket,
            credentials,
            client,
            prefix,
        })
    }

    /// The requests sent so far (each attempt), if the options asked for a
    /// log; the log is emptied.
    pub fn take_requests(&self) -> Vec<LoggedRequest> {
        self.log
            .as_ref()
            .map(|l| std::mem::take(&mut *l.lock().expect("request log")))
            .unwrap_or_default()
    }

    /// Creates the bucket if it does not exist (for `init`).
    pub fn ensure_bucket(&self) -> Result<()> {
        let op = format!("creating bucket {}", self.config.bucket);
        let found = self.retrying(&op, |_| {
            let url = signed(self.bucket.head_bucket(Some(&self.credentials)), &[]);
            let resp = self.send(self.call("HeadBucket", Method::HEAD, "", url), None, &[404])?;
            Ok(resp.status().as_u16() != 404)
        })?;
        if found {
            return Ok(());
        }
        self.retrying(&op, |_| {
            let action = self.bucket.create_bucket(&self.credentials);
            let body = action.body();
            let url = signed(action, &[]);
            // Another client creating it at the same moment is no failure.
            self.send(
                self.call("CreateBucket", Method::PUT, "", url),
                Some(Body::from(body)),
                &[409],
            )
            .map(drop)
        })
    }

    /// The object key of a file.
    fn key(&self, t: FileType, name: &str) -> String {
        let p = &self.prefix;
        match t {
            FileType::Config => format!("{p}config"),
            FileType::Pack => format!("{p}data/{}/{name}", name.get(..2).unwrap_or("00")),
            _ => format!("{p}{}/{name}", dir(t)),
        }
    }

    /// The key prefix a listing of `t` asks for.
    fn list_prefix(&self, t: FileType) -> String {
        match t {
            FileType::Config => format!("{}config", self.prefix),
            _ => format!("{}{}/", self.prefix, dir(t)),
        }
    }

    /// The name of the file of type `t` stored under `key`, if the key fits
    /// the layout.
    fn name_of(&self, t: FileType, key: &str) -> Option<String> {
        let name = key.rsplit('/').next()?;
        (!name.is_empty() && self.key(t, name) == key).then(|| name.to_string())
    }

    /// A call on `key`, logged under its part after the prefix.
    fn call<'k>(
        &self,
        action: &'static str,
        method: Method,
        key: &'k str,
        url: url::Url,
    ) -> Call<'k> {
        Call {
            action,
            method,
            key: key.strip_prefix(self.prefix.as_str()).unwrap_or(key),
            range: None,
            url,
            headers: Vec::new(),
        }
    }

    /// HEAD of an object: `None` if it does not exist.
    fn head(&self, key: &str, op: &str) -> Result<Option<Head>> {
        self.retrying(op, |_| {
            let url = signed(self.bucket.head_object(Some(&self.credentials), key), &[]);
            let resp = self.send(
                self.call("HeadObject", Method::HEAD, key, url),
                None,
                &[404],
            )?;
            if resp.status().as_u16() == 404 {
                return Ok(None);
            }
            let size = header(&resp, "content-length")
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| Failure::permanent("HEAD answered without a Content-Length"))?;
            Ok(Some(Head {
                size,
                etag: header(&resp, "etag").map(|e| e.trim_matches('"').to_string()),
            }))
        })
    }

    fn not_found(&self, op: &str, key: &str) -> Error {
        self.error(
            op,
            Failure {
                kind: crate::error::StorageKind::NotFound,
                what: format!("no object {key}"),
                timed_out: false,
            },
            1,
        )
    }

    /// Sends a PUT of `data` whose `Content-MD5` is that of other bytes,
    /// once: tests use it to see that the server checks the digest.
    #[doc(hidden)]
    pub fn put_with_wrong_digest(&self, t: FileType, name: &str, data: &[u8]) -> Result<()> {
        let key = self.key(t, name);
        let op = format!("writing {key}");
        let mut wrong = data.to_vec();
        wrong.push(0);
        let headers = vec![("content-md5", content_md5(&Md5::digest(&wrong)))];
        let url = signed(
            self.bucket.put_object(Some(&self.credentials), &key),
            &headers,
        );
        let mut call = self.call("PutObject", Method::PUT, &key, url);
        call.headers = headers;
        self.send(call, Some(Body::from(data.to_vec())), &[])
            .map(drop)
            .map_err(|f| self.error(&op, f, 1))
    }
}

/// The directory of a file type under the prefix.
fn dir(t: FileType) -> &'static str {
    match t {
        FileType::Config => "",
        FileType::Key => "keys",
        FileType::Pack => "data",
        FileType::Snapshot => "snapshots",
        FileType::Lock => "locks",
        FileType::Protect => "protected",
        FileType::State => "state",
    }
}

fn header(resp: &reqwest::blocking::Response, name: &str) -> Option<String> {
    resp.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// The `Content-MD5` header value of a digest.
fn content_md5(digest: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(digest)
}

impl Backend for S3Backend {
    fn location(&self) -> String {
        self.config.location()
    }

    fn is_remote(&self) -> bool {
        true
    }

    fn list(&self, t: FileType) -> Result<Vec<String>> {
        Ok(self.list_sizes(t)?.into_iter().map(|(n, _)| n).collect())
    }

    fn list_sizes(&self, t: FileType) -> Result<Vec<(String, u64)>> {
        let prefix = self.list_prefix(t);
        let op = format!("listing {prefix}");
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = self.retrying(&op, |_| {
                let mut action = self.bucket.list_objects_v2(Some(&self.credentials));
                action.with_prefix(prefix.as_str());
                action.with_max_keys(self.options.page_size);
                if let Some(t) = &token {
                    action.with_continuation_token(t.as_str());
                }
                let url = signed(action, &[]);
                let resp = self.send(
                    self.call("ListObjectsV2", Method::GET, &prefix, url),
                    None,
                    &[],
                )?;
                let body = read_body(resp, MAX_LISTING_PAGE)?;
                let text = String::from_utf8_lossy(&body);
                ListObjectsV2::parse_response(&text)
                    .map_err(|e| Failure::permanent(format!("the listing does not parse: {e}")))
            })?;
            out.extend(
                page.contents
                    .iter()
                    .filter_map(|c| Some((self.name_of(t, &c.key)?, c.size.unwrap_or(0)))),
            );
            match page.next_continuation_token {
                Some(next) if token.as_deref() == Some(next.as_str()) => {
                    return Err(self.error(
                        &op,
                        Failure::permanent("the server gave the same continuation token twice"),
                        1,
                    ))
                }
                Some(next) => token = Some(next),
                None => return Ok(out),
            }
        }
    }

    fn read(&self, t: FileType, name: &str) -> Result<Vec<u8>> {
        let key = self.key(t, name);
        self.retrying(&format!("reading {key}"), |_| {
            let url = signed(self.bucket.get_object(Some(&self.credentials), &key), &[]);
            let resp = self.send(self.call("GetObject", Method::GET, &key, url), None, &[])?;
            read_body(resp, u64::MAX)
        })
    }

    fn read_range(&self, t: FileType, name: &str, offset: u64, len: u64) -> Result<Vec<u8>> {
        let key = self.key(t, name);
        let op = format!("reading {key}");
        let past_end = |why: &str| {
            Error::corrupt(
                format!("object {key}"),
                format!("range {offset}+{len} is past its end ({why}; truncated?)"),
            )
        };
        let end = offset
            .checked_add(len)
            .ok_or_else(|| past_end("the range overflows"))?;
        if len == 0 {
            let size = self.size(t, name)?;
            return if offset <= size {
                Ok(Vec::new())
            } else {
                Err(past_end(&format!("it has {size} bytes")))
            };
        }
        let got = self.retrying(&op, |_| {
            let range = format!("bytes={offset}-{}", end - 1);
            let headers = vec![("range", range)];
            let url = signed(
                self.bucket.get_object(Some(&self.credentials), &key),
                &headers,
            );
            let mut call = self.call("GetObject", Method::GET, &key, url);
            call.range = Some((offset, len));
            call.headers = headers;
            let resp = self.send(call, None, &[416])?;
            match resp.status().as_u16() {
                416 => return Ok(None),
                206 => {}
                s => {
                    return Err(Failure::permanent(format!(
                        "HTTP {s} to a ranged read: the server ignored the range"
                    )))
                }
            }
            let starts = header(&resp, "content-range")
                .is_some_and(|r| r.starts_with(&format!("bytes {offset}-")));
            if !starts {
                return Err(Failure::permanent(
                    "the answer to a ranged read is for another range",
                ));
            }
            read_body(resp, len).map(Some)
        })?;
        match got {
            Some(bytes) if bytes.len() as u64 == len => Ok(bytes),
            Some(bytes) => Err(past_end(&format!("{} bytes came", bytes.len()))),
            None => Err(past_end("HTTP 416")),
        }
    }

    fn size(&self, t: FileType, name: &str) -> Result<u64> {
        let key = self.key(t, name);
        let op = format!("reading the size of {key}");
        match self.head(&key, &op)? {
            Some(h) => Ok(h.size),
            None => Err(self.not_found(&op, &key)),
        }
    }

    fn exists(&self, t: FileType, name: &str) -> Result<bool> {
        let key = self.key(t, name);
        Ok(self.head(&key, &format!("looking for {key}"))?.is_some())
    }

    fn write(&self, t: FileType, name: &str, data: &[u8]) -> Result<()> {
        self.put(t, name, upload::Source::Bytes(data))
    }

    fn remove(&self, t: FileType, name: &str) -> Result<()> {
        let key = self.key(t, name);
        let op = format!("removing {key}");
        // S3 answers a DELETE of a missing key with success.
        if self.head(&key, &op)?.is_none() {
            return Err(self.not_found(&op, &key));
        }
        self.retrying(&op, |_| {
            let url = signed(
                self.bucket.delete_object(Some(&self.credentials), &key),
                &[],
            );
            self.send(
                self.call("DeleteObject", Method::DELETE, &key, url),
                None,
                &[],
            )
            .map(drop)
        })
    }

    fn write_file(&self, t: FileType, name: &str, path: &Path) -> Result<()> {
        self.put_file(t, name, path)
    }
}
