//! Writing objects: one PUT up to the multipart threshold, a multipart
//! upload above it (create, parts, complete; abort on failure). A file is
//! streamed from disk twice, once to hash each piece and once to send it,
//! never held whole in memory.
//!
//! Every piece carries its `Content-MD5`. AWS checks it on a PUT and on an
//! UploadPart and stores nothing when it does not match. s3s-fs 0.14 checks
//! it on a PUT only, and after it has put the bytes in place: it answers
//! BadDigest but keeps the object.

use super::http::{read_body, signed, Failure};
use super::{content_md5, header, S3Backend};
use crate::backend::FileType;
use crate::error::{Error, Result};
use md5::{Digest, Md5};
use reqwest::blocking::Body;
use reqwest::Method;
use rusty_s3::actions::CreateMultipartUpload;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

/// S3 numbers parts from 1 to 10,000.
const MAX_PARTS: u64 = 10_000;

/// The bytes of an object being written.
pub(super) enum Source<'a> {
    Bytes(&'a [u8]),
    File { path: &'a Path, len: u64 },
}

impl Source<'_> {
    fn len(&self) -> u64 {
        match self {
            Source::Bytes(b) => b.len() as u64,
            Source::File { len, .. } => *len,
        }
    }

    /// A reader of `len` bytes at `offset`.
    fn reader(&self, offset: u64, len: u64) -> std::io::Result<Box<dyn Read + Send + '_>> {
        Ok(match self {
            Source::Bytes(b) => Box::new(&b[offset as usize..(offset + len) as usize]),
            Source::File { path, .. } => {
                let mut f = File::open(path)?;
                f.seek(SeekFrom::Start(offset))?;
                Box::new(f.take(len))
            }
        })
    }

    /// A request body of `len` bytes at `offset`.
    fn body(&self, offset: u64, len: u64) -> std::io::Result<Body> {
        Ok(match self {
            Source::Bytes(b) => Body::from(b[offset as usize..(offset + len) as usize].to_vec()),
            Source::File { path, .. } => {
                let mut f = File::open(path)?;
                f.seek(SeekFrom::Start(offset))?;
                Body::sized(f.take(len), len)
            }
        })
    }

    /// The MD5 digest of `len` bytes at `offset`.
    fn md5(&self, offset: u64, len: u64) -> std::io::Result<Vec<u8>> {
        let mut h = Md5::new();
        let mut r = self.reader(offset, len)?;
        let mut buf = vec![0u8; 1 << 20];
        let mut seen = 0u64;
        loop {
            let n = r.read(&mut buf)?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
            seen += n as u64;
        }
        if seen != len {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!("{seen} bytes where {len} were expected: the file changed while it was uploaded"),
            ));
        }
        Ok(h.finalize().to_vec())
    }

    /// A failure to read the source while sending it.
    fn failed(&self, e: std::io::Error) -> Failure {
        match self {
            Source::File { path, .. } => {
                Failure::permanent(format!("reading {}: {e}", path.display()))
            }
            Source::Bytes(_) => Failure::permanent(e.to_string()),
        }
    }

    /// The library error for a failure to read the source before sending.
    fn error(&self, e: std::io::Error) -> Error {
        match self {
            Source::File { path, .. } => Error::io(*path, e),
            Source::Bytes(_) => Error::io("<memory>", e),
        }
    }
}

/// How a conditional write ended.
enum Outcome {
    Stored,
    /// The object exists (412/409).
    Exists,
    /// A multipart upload is unknown (404): completed by an earlier attempt,
    /// or aborted.
    Gone,
}

impl S3Backend {
    /// Uploads the local file at `path` as file `name` of type `t`, streamed
    /// from disk: one PUT up to the multipart threshold, parts above it.
    /// Like [`crate::backend::Backend::write`], it creates the object only if
    /// absent, except a lock, which is replaced.
    pub fn put_file(&self, t: FileType, name: &str, path: &Path) -> Result<()> {
        let len = std::fs::metadata(path)
            .map_err(|e| Error::io(path, e))?
            .len();
        self.put(t, name, Source::File { path, len })
    }

    pub(super) fn put(&self, t: FileType, name: &str, src: Source<'_>) -> Result<()> {
        let key = self.key(t, name);
        let op = format!("writing {key}");
        let create = t != FileType::Lock;
        if create && self.head(&key, &op)?.is_some() {
            return Err(self.exists_error(&op, "the object exists"));
        }
        let (outcome, retried, etag) = if src.len() > self.options.multipart_threshold {
            self.put_parts(&key, &op, &src, create)?
        } else {
            self.put_whole(&key, &op, &src, create)?
        };
        match outcome {
            Outcome::Stored => Ok(()),
            // An earlier attempt may have landed before its answer was lost.
            _ if retried && self.holds(&key, &op, &src, &etag)? => Ok(()),
            Outcome::Exists => Err(self.exists_error(
                &op,
                "the object exists (HTTP 412 PreconditionFailed) and holds other bytes",
            )),
            Outcome::Gone => Err(self.error(
                &op,
                Failure::permanent("the multipart upload vanished before it completed"),
                1,
            )),
        }
    }

    /// One PUT; returns how it ended, whether it was retried, and the ETag
    /// S3 gives such an object (its MD5 in hex).
    fn put_whole(
        &self,
        key: &str,
        op: &str,
        src: &Source<'_>,
        create: bool,
    ) -> Result<(Outcome, bool, String)> {
        let len = src.len();
        let digest = src.md5(0, len).map_err(|e| src.error(e))?;
        let mut headers = vec![("content-md5", content_md5(&digest))];
        if len == 0 {
            // Some clients leave the length out of an empty body, and S3
            // then answers 411.
            headers.push(("content-length", "0".to_string()));
        }
        if create {
            headers.push(("if-none-match", "*".to_string()));
        }
        let (outcome, retried) = self.retrying(op, |n| {
            let url = signed(
                self.bucket.put_object(Some(&self.credentials), key),
                &headers,
            );
            let mut call = self.call("PutObject", Method::PUT, key, url);
            call.headers = headers.clone();
            let body = src.body(0, len).map_err(|e| src.failed(e))?;
            let resp = self.send(call, Some(body), &[409, 412])?;
            Ok((
                if resp.status().is_success() {
                    Outcome::Stored
                } else {
                    Outcome::Exists
                },
                n > 0,
            ))
        })?;
        Ok((outcome, retried, hex::encode(&digest)))
    }

    /// A multipart upload, aborted unless it completes; returns as
    /// [`S3Backend::put_whole`] does, with the ETag of a multipart object
    /// (the MD5 of the parts' MD5s, a dash, the number of parts).
    fn put_parts(
        &self,
        key: &str,
        op: &str,
        src: &Source<'_>,
        create: bool,
    ) -> Result<(Outcome, bool, String)> {
        let len = src.len();
        let part = self.options.part_size.max(1);
        let count = len.div_ceil(part);
        if count > MAX_PARTS {
            return Err(self.error(
                op,
                Failure::permanent(format!(
                    "{len} bytes make {count} parts of {part} bytes, more than the {MAX_PARTS} S3 allows: raise the part size"
                )),
                1,
            ));
        }
        let upload = self.retrying(op, |_| {
            let url = signed(
                self.bucket
                    .create_multipart_upload(Some(&self.credentials), key),
                &[],
            );
            let resp = self.send(
                self.call("CreateMultipartUpload", Method::POST, key, url),
                None,
                &[],
            )?;
            let body = read_body(resp, 1 << 20)?;
            CreateMultipartUpload::parse_response(&String::from_utf8_lossy(&body))
                .map(|r| r.upload_id().to_string())
                .map_err(|e| {
                    Failure::permanent(format!("the new upload's answer does not parse: {e}"))
                })
        })?;
        let res = self.send_parts(key, op, src, create, &upload, part, count);
        if !matches!(res, Ok((Outcome::Stored, ..))) {
            // Parts of an upload neither completed nor aborted are kept
            // (and billed) by S3; a failed abort is left to the bucket's
            // lifecycle rules.
            let _ = self.retrying(op, |_| {
                let url = signed(
                    self.bucket
                        .abort_multipart_upload(Some(&self.credentials), key, &upload),
                    &[],
                );
                self.send(
                    self.call("AbortMultipartUpload", Method::DELETE, key, url),
                    None,
                    &[404],
                )
                .map(drop)
            });
        }
        res
    }

    #[allow(clippy::too_many_arguments)]
    fn send_parts(
        &self,
        key: &str,
        op: &str,
        src: &Source<'_>,
        create: bool,
        upload: &str,
        part: u64,
        count: u64,
    ) -> Result<(Outcome, bool, String)> {
        let len = src.len();
        let mut etags = Vec::with_capacity(count as usize);
        let mut digests = Md5::new();
        for i in 0..count {
            let offset = i * part;
            let n = part.min(len - offset);
            let digest = src.md5(offset, n).map_err(|e| src.error(e))?;
            digests.update(&digest);
            let headers = vec![("content-md5", content_md5(&digest))];
            let number = u16::try_from(i + 1).expect("at most 10,000 parts");
            let etag = self.retrying(op, |_| {
                let action = self
                    .bucket
                    .upload_part(Some(&self.credentials), key, number, upload);
                let url = signed(action, &headers);
                let mut call = self.call("UploadPart", Method::PUT, key, url);
                call.headers = headers.clone();
                call.range = Some((offset, n));
                let body = src.body(offset, n).map_err(|e| src.failed(e))?;
                let resp = self.send(call, Some(body), &[])?;
                header(&resp, "etag")
                    .ok_or_else(|| Failure::permanent("UploadPart answered without an ETag"))
            })?;
            etags.push(etag);
        }
        let mut headers = Vec::new();
        if create {
            headers.push(("if-none-match", "*".to_string()));
        }
        let (outcome, retried) = self.retrying(op, |n| {
            let action = self.bucket.complete_multipart_upload(
                Some(&self.credentials),
                key,
                upload,
                etags.iter().map(String::as_str),
            );
            let body = action.clone().body();
            let url = signed(action, &headers);
            let mut call = self.call("CompleteMultipartUpload", Method::POST, key, url);
            call.headers = headers.clone();
            // A retry after a lost answer may find the upload completed and
            // its id gone: 404 from AWS, 403 from some servers (s3s-fs).
            // Either way the caller then looks at the object itself.
            let expected: &[u16] = if n > 0 {
                &[403, 404, 409, 412]
            } else {
                &[404, 409, 412]
            };
            let resp = self.send(call, Some(Body::from(body)), expected)?;
            let outcome = match resp.status().as_u16() {
                403 | 404 => Outcome::Gone,
                409 | 412 => Outcome::Exists,
                _ => {
                    // S3 may answer 200 and report a failure in the body.
                    let body = read_body(resp, 1 << 20)?;
                    let text = String::from_utf8_lossy(&body);
                    if text.contains("<Error>") {
                        return Err(Failure::answer(200, &text));
                    }
                    Outcome::Stored
                }
            };
            Ok((outcome, n > 0))
        })?;
        let etag = format!("{}-{count}", hex::encode(digests.finalize()));
        Ok((outcome, retried, etag))
    }

    /// Whether the object at `key` holds the bytes of `src`: same size, and
    /// the ETag expected of them (`etag`) or, where ETags are not MD5s
    /// (encrypted buckets), the same bytes read back.
    fn holds(&self, key: &str, op: &str, src: &Source<'_>, etag: &str) -> Result<bool> {
        let Some(head) = self.head(key, op)? else {
            return Ok(false);
        };
        if head.size != src.len() {
            return Ok(false);
        }
        if head.etag.as_deref() == Some(etag) {
            return Ok(true);
        }
        self.retrying(op, |_| {
            let url = signed(self.bucket.get_object(Some(&self.credentials), key), &[]);
            let resp = self.send(self.call("GetObject", Method::GET, key, url), None, &[])?;
            let mine = src.reader(0, src.len()).map_err(|e| src.failed(e))?;
            same(resp, mine).map_err(Failure::body)
        })
    }
}

/// Whether two readers give the same bytes.
fn same(mut a: impl Read, mut b: impl Read) -> std::io::Result<bool> {
    let (mut x, mut y) = (vec![0u8; 1 << 16], vec![0u8; 1 << 16]);
    loop {
        let n = fill(&mut a, &mut x)?;
        let m = fill(&mut b, &mut y)?;
        if x[..n] != y[..m] {
            return Ok(false);
        }
        if n == 0 {
            return Ok(true);
        }
    }
}

/// Reads until `buf` is full or the reader ends; returns how much came.
fn fill(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readers_compare_whole() {
        let a = vec![7u8; 200_000];
        let mut b = a.clone();
        assert!(same(&a[..], &b[..]).unwrap());
        b[199_999] = 8;
        assert!(!same(&a[..], &b[..]).unwrap());
        assert!(!same(&a[..], &a[..199_999]).unwrap());
        assert!(same(&[][..], &[][..]).unwrap());
    }

    #[test]
    fn a_file_source_hashes_and_reads_its_pieces() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        let data: Vec<u8> = (0..10_000u32).map(|i| (i * 7) as u8).collect();
        std::fs::write(&p, &data).unwrap();
        let src = Source::File {
            path: &p,
            len: data.len() as u64,
        };
        let mem = Source::Bytes(&data);
        assert_eq!(src.md5(100, 5000).unwrap(), mem.md5(100, 5000).unwrap());
        assert_eq!(src.md5(0, 10_000).unwrap(), Md5::digest(&data).to_vec());
        let mut piece = Vec::new();
        src.reader(9_990, 10)
            .unwrap()
            .read_to_end(&mut piece)
            .unwrap();
        assert_eq!(piece, &data[9_990..]);
        // A file that shrank under the upload is noticed before it is sent.
        let short = Source::File {
            path: &p,
            len: 20_000,
        };
        assert!(short.md5(0, 20_000).is_err());
    }
}
