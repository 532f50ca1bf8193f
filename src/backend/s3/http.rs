//! One S3 request on the wire: signing, sending, the request log, what an
//! answer means (not found, transient, permanent) and retries with backoff.
//!
//! Requests are signed as presigned URLs (SigV4 in the query string), so a
//! URL is a credential for its lifetime: no URL is ever put in a message,
//! and transport errors are stripped of theirs. The payload is not signed;
//! writes carry a `Content-MD5` the server checks instead.

use super::S3Backend;
use crate::backend::Backend;
use crate::error::{Error, StorageKind};
use reqwest::blocking::{Body, Response};
use reqwest::Method;
use rusty_s3::S3Action;
use std::io::Read;
use std::time::Duration;
use url::Url;

/// How long a signed URL stays valid: enough for the request to start.
const SIGNED_FOR: Duration = Duration::from_secs(15 * 60);

/// The most of an error answer that is read.
const MAX_ERROR_BODY: u64 = 64 << 10;

/// One request the backend sent, as the request log keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoggedRequest {
    /// The S3 action (`GetObject`, `PutObject`, `UploadPart`…).
    pub action: &'static str,
    /// The HTTP method.
    pub method: &'static str,
    /// The object key under the repository's prefix (`data/ab/ab…`,
    /// `config`), or the prefix listed.
    pub key: String,
    /// Offset and length of a ranged read, or of an uploaded part.
    pub range: Option<(u64, u64)>,
    /// The HTTP status of the answer; `None` when none came (a dropped
    /// connection, a time-out).
    pub status: Option<u16>,
}

/// A request to send: what the log and the messages say of it, and the
/// signed URL and headers.
pub(super) struct Call<'a> {
    pub action: &'static str,
    pub method: Method,
    /// The key under the prefix, for the log.
    pub key: &'a str,
    pub range: Option<(u64, u64)>,
    pub url: Url,
    /// Headers sent as they were signed.
    pub headers: Vec<(&'static str, String)>,
}

/// Why one attempt failed.
#[derive(Debug)]
pub(super) struct Failure {
    pub kind: StorageKind,
    /// What happened, for the message: never a URL or a credential.
    pub what: String,
    pub timed_out: bool,
}

impl Failure {
    pub(super) fn permanent(what: impl Into<String>) -> Failure {
        Failure {
            kind: StorageKind::Permanent,
            what: what.into(),
            timed_out: false,
        }
    }

    /// An HTTP answer other than the ones expected, with its body.
    pub(super) fn answer(status: u16, body: &str) -> Failure {
        let code = tag(body, "Code");
        let message = tag(body, "Message");
        let mut what = format!("HTTP {status}");
        if let Some(c) = &code {
            what.push(' ');
            what.push_str(c);
        }
        if let Some(m) = message {
            what.push_str(": ");
            what.push_str(&m);
        }
        Failure {
            kind: classify(status, code.as_deref()),
            what,
            timed_out: false,
        }
    }

    /// A request that got no answer.
    fn transport(e: reqwest::Error) -> Failure {
        let timed_out = e.is_timeout();
        let kind = if e.is_builder() {
            StorageKind::Permanent
        } else {
            StorageKind::Transient
        };
        let mut what = if timed_out {
            "no answer in time".to_string()
        } else {
            "no answer".to_string()
        };
        let e = e.without_url();
        let mut cause: Option<&dyn std::error::Error> = Some(&e);
        while let Some(c) = cause {
            what.push_str(": ");
            what.push_str(&c.to_string());
            cause = c.source();
        }
        Failure {
            kind,
            what,
            timed_out,
        }
    }

    /// The body of an answer broke off.
    pub(super) fn body(e: std::io::Error) -> Failure {
        let timed_out = e.kind() == std::io::ErrorKind::TimedOut;
        let mut what = format!("the answer broke off: {e}");
        let mut cause = std::error::Error::source(&e);
        while let Some(c) = cause {
            what.push_str(": ");
            what.push_str(&c.to_string());
            cause = c.source();
        }
        Failure {
            kind: StorageKind::Transient,
            what,
            timed_out,
        }
    }
}

/// What an HTTP status and S3 error code mean for the caller.
pub(super) fn classify(status: u16, code: Option<&str>) -> StorageKind {
    match (status, code) {
        (404, _) => StorageKind::NotFound,
        (408 | 429 | 500..=599, _) => StorageKind::Transient,
        // An idle connection the server gave up on, and bytes that changed
        // on the way (the server refused them: nothing was stored).
        (_, Some("RequestTimeout" | "BadDigest" | "SlowDown" | "InternalError")) => {
            StorageKind::Transient
        }
        _ => StorageKind::Permanent,
    }
}

/// The text of the first `<name>` element of an S3 error document.
fn tag(xml: &str, name: &str) -> Option<String> {
    let open = format!("<{name}>");
    let start = xml.find(&open)? + open.len();
    let len = xml[start..].find(&format!("</{name}>"))?;
    let text = xml[start..start + len]
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&");
    Some(text.trim().to_string()).filter(|t| !t.is_empty())
}

/// Signs `action` with `headers` (names in lowercase), which the request
/// must then carry as they are.
pub(super) fn signed<'a>(mut action: impl S3Action<'a>, headers: &[(&'static str, String)]) -> Url {
    for (k, v) in headers {
        action.headers_mut().insert(*k, v.clone());
    }
    action.sign(SIGNED_FOR)
}

impl S3Backend {
    /// Sends one request. An answer with a 2xx status or one of `expected`
    /// is returned; any other is read and turned into a failure.
    pub(super) fn send(
        &self,
        call: Call<'_>,
        body: Option<Body>,
        expected: &[u16],
    ) -> Result<Response, Failure> {
        let mut req = self.client.request(call.method.clone(), call.url.clone());
        for (k, v) in &call.headers {
            req = req.header(*k, v);
        }
        if let Some(b) = body {
            req = req.body(b);
        }
        let res = req.send();
        self.note(&call, res.as_ref().ok().map(|r| r.status().as_u16()));
        let resp = res.map_err(Failure::transport)?;
        let status = resp.status().as_u16();
        if resp.status().is_success() || expected.contains(&status) {
            return Ok(resp);
        }
        let mut text = String::new();
        // An error document that does not arrive whole still has a status.
        let _ = resp.take(MAX_ERROR_BODY).read_to_string(&mut text);
        let mut f = Failure::answer(status, &text);
        f.what = self.scrub(f.what);
        Err(f)
    }

    fn note(&self, call: &Call<'_>, status: Option<u16>) {
        if let Some(log) = &self.log {
            log.lock().expect("request log").push(LoggedRequest {
                action: call.action,
                method: method_name(&call.method),
                key: call.key.to_string(),
                range: call.range,
                status,
            });
        }
    }

    /// Removes the credentials from a text a server sent back.
    fn scrub(&self, text: String) -> String {
        let mut text = text;
        for secret in [&self.config.secret_key, &self.config.access_key] {
            if !secret.is_empty() {
                text = text.replace(secret.as_str(), "<redacted>");
            }
        }
        text
    }

    /// Runs `attempt` (given the number of attempts before it) until it
    /// succeeds, fails other than transiently, or the attempts run out,
    /// waiting between attempts. `op` names the object for the error.
    pub(super) fn retrying<T>(
        &self,
        op: &str,
        mut attempt: impl FnMut(u32) -> Result<T, Failure>,
    ) -> Result<T, Error> {
        let mut n = 0;
        loop {
            match attempt(n) {
                Ok(v) => return Ok(v),
                Err(f) if f.kind == StorageKind::Transient && n + 1 < self.options.max_attempts => {
                    std::thread::sleep(self.backoff(n));
                    n += 1;
                }
                Err(f) => return Err(self.error(op, f, n + 1)),
            }
        }
    }

    /// The wait before retry `n + 1`: a random time up to
    /// `base_delay * 2^n`, at most `max_delay` ("full jitter", so that
    /// clients failed together do not come back together).
    pub(super) fn backoff(&self, n: u32) -> Duration {
        let bound = self
            .options
            .base_delay
            .saturating_mul(1u32.checked_shl(n).unwrap_or(u32::MAX))
            .min(self.options.max_delay);
        bound.mul_f64(rand::random::<f64>())
    }

    /// The library error for a failure of `op` after `attempts` attempts.
    pub(super) fn error(&self, op: &str, f: Failure, attempts: u32) -> Error {
        use std::io::ErrorKind as K;
        let io_kind = match f.kind {
            StorageKind::NotFound => K::NotFound,
            StorageKind::Transient if f.timed_out => K::TimedOut,
            StorageKind::Transient => K::ConnectionAborted,
            StorageKind::Permanent => K::Other,
        };
        let mut what = f.what;
        if attempts > 1 {
            what.push_str(&format!(" (gave up after {attempts} attempts)"));
        }
        Error::Storage {
            location: self.location(),
            op: op.to_string(),
            kind: f.kind,
            source: std::io::Error::new(io_kind, what),
        }
    }

    /// The error of a create-if-absent write whose object exists.
    pub(super) fn exists_error(&self, op: &str, why: &str) -> Error {
        Error::Storage {
            location: self.location(),
            op: op.to_string(),
            kind: StorageKind::Permanent,
            source: std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                format!("refusing to overwrite: {why}"),
            ),
        }
    }
}

fn method_name(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::PUT => "PUT",
        Method::POST => "POST",
        Method::DELETE => "DELETE",
        _ => "OTHER",
    }
}

/// Reads an answer's whole body, at most `max` bytes.
pub(super) fn read_body(resp: Response, max: u64) -> Result<Vec<u8>, Failure> {
    let mut out =
        Vec::with_capacity(resp.content_length().unwrap_or(0).min(max).min(64 << 20) as usize);
    resp.take(max.saturating_add(1))
        .read_to_end(&mut out)
        .map_err(Failure::body)?;
    if out.len() as u64 > max {
        return Err(Failure::permanent(format!(
            "the answer is larger than the {max} bytes expected"
        )));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_and_codes_have_the_kinds_a_caller_acts_on() {
        assert_eq!(classify(404, Some("NoSuchKey")), StorageKind::NotFound);
        assert_eq!(classify(404, None), StorageKind::NotFound);
        for s in [500, 502, 503, 504, 429, 408] {
            assert_eq!(classify(s, None), StorageKind::Transient, "{s}");
        }
        assert_eq!(
            classify(400, Some("RequestTimeout")),
            StorageKind::Transient
        );
        assert_eq!(classify(400, Some("BadDigest")), StorageKind::Transient);
        for (s, c) in [
            (403, Some("AccessDenied")),
            (403, Some("SignatureDoesNotMatch")),
            (400, Some("InvalidArgument")),
            (412, Some("PreconditionFailed")),
            (301, None),
        ] {
            assert_eq!(classify(s, c), StorageKind::Permanent, "{s} {c:?}");
        }
    }

    #[test]
    fn error_documents_give_their_code_and_message_only() {
        let doc = "<?xml version=\"1.0\"?><Error><Code>SignatureDoesNotMatch</Code>\
                   <Message>The signature &amp; key &lt;do not&gt; match</Message>\
                   <AWSAccessKeyId>AKIDEXAMPLE</AWSAccessKeyId>\
                   <StringToSign>AWS4-HMAC-SHA256 x</StringToSign></Error>";
        let f = Failure::answer(403, doc);
        assert_eq!(
            f.what,
            "HTTP 403 SignatureDoesNotMatch: The signature & key <do not> match"
        );
        assert_eq!(f.kind, StorageKind::Permanent);
        let f = Failure::answer(503, "");
        assert_eq!(
            (f.what.as_str(), f.kind),
            ("HTTP 503", StorageKind::Transient)
        );
    }
}
