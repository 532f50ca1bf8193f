//! A TCP proxy on 127.0.0.1 between a client and an HTTP server that
//! injects faults into chosen requests: a dropped connection, a 503, a
//! request that takes effect but whose answer is lost, an answer held back
//! until the client gives up. It only injects faults; the server behind it
//! does the real work.
//!
//! Each connection carries one request: the proxy asks the server to close
//! after answering (`Connection: close`), so requests and connections are
//! the same thing and a fault hits exactly the request it was planned for.
//! Every socket has a time-out, so every thread ends by itself.

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// How long any socket of the proxy waits for bytes.
const IDLE: Duration = Duration::from_secs(60);

/// What to do to one request.
pub enum Fault {
    /// Close the connection once the request is read, answering nothing.
    Drop,
    /// Answer with this status and S3 error code; the server never sees
    /// the request.
    Answer(u16, &'static str),
    /// Pass the request on (it takes effect), then answer 503 instead of
    /// the server's answer.
    LandThen503,
    /// Pass the request on, never pass the answer back, and hold the
    /// connection until the client gives up.
    Stall,
    /// Run this first (another writer acting meanwhile), then answer 503.
    Before(Box<dyn FnOnce() + Send>),
    /// Pass the request on, and give the answer back with an ETag that is
    /// not the MD5 of the object (as buckets with KMS encryption do).
    ForeignEtag,
}

impl Fault {
    fn name(&self) -> &'static str {
        match self {
            Fault::Drop => "drop",
            Fault::Answer(..) => "answer",
            Fault::LandThen503 => "land then 503",
            Fault::Stall => "stall",
            Fault::Before(_) => "before",
            Fault::ForeignEtag => "foreign etag",
        }
    }
}

/// One request the proxy saw, and the fault it got.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Seen {
    /// The method.
    pub method: String,
    /// The request target (path and query).
    pub target: String,
    /// Its `Range` header, if any (`bytes=A-B`).
    pub range: Option<String>,
    /// The fault applied, if any.
    pub fault: Option<&'static str>,
}

struct Planned {
    method: &'static str,
    target_has: &'static str,
    fault: Fault,
}

#[derive(Default)]
struct Shared {
    plan: Mutex<VecDeque<Planned>>,
    seen: Mutex<Vec<Seen>>,
    stop: AtomicBool,
    relay_early: AtomicBool,
}

/// A running proxy.
pub struct FaultProxy {
    /// Its port on 127.0.0.1.
    pub port: u16,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

impl FaultProxy {
    /// A proxy to the server on 127.0.0.1:`upstream`.
    pub fn start(upstream: u16) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port");
        let port = listener.local_addr().unwrap().port();
        let shared = Arc::new(Shared::default());
        let s = shared.clone();
        let accept = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s.stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let s = s.clone();
                std::thread::spawn(move || serve(conn, upstream, &s));
            }
        });
        FaultProxy {
            port,
            shared,
            accept: Some(accept),
        }
    }

    /// Applies `fault` to the next request with this method whose target
    /// contains `target_has`, after the faults planned before it.
    pub fn plan(&self, method: &'static str, target_has: &'static str, fault: Fault) {
        self.shared.plan.lock().unwrap().push_back(Planned {
            method,
            target_has,
            fault,
        });
    }

    /// The requests seen so far, and forgets them.
    pub fn take_seen(&self) -> Vec<Seen> {
        std::mem::take(&mut self.shared.seen.lock().unwrap())
    }

    /// From now on, passes back the server's answer to a request whose
    /// body it stopped reading (an early 412 to a large conditional PUT,
    /// after which the server closes): by default the proxy gives up on
    /// such a request, and the client sees a dropped connection that the
    /// server never caused.
    #[allow(dead_code)] // not every test binary that includes this file uses it
    pub fn relay_early_answers(&self) {
        self.shared.relay_early.store(true, Ordering::SeqCst);
    }

    /// How many planned faults have not happened yet.
    pub fn pending(&self) -> usize {
        self.shared.plan.lock().unwrap().len()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wakes the accepting thread so that it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(h) = self.accept.take() {
            let _ = h.join();
        }
    }
}

/// A request read off a connection.
struct Request {
    method: String,
    target: String,
    range: Option<String>,
    /// The head to send on, with `Connection: close`.
    head: Vec<u8>,
    body: Vec<u8>,
}

fn read_request(conn: &mut TcpStream) -> Option<Request> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 << 10];
    let end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        if buf.len() > 1 << 20 {
            return None;
        }
        let n = conn.read(&mut chunk).ok().filter(|&n| n > 0)?;
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let first = lines.next()?.to_string();
    let mut parts = first.split(' ');
    let (method, target) = (parts.next()?.to_string(), parts.next()?.to_string());
    let mut out_head = format!("{first}\r\n");
    let mut length = 0usize;
    let mut range = None;
    for line in lines {
        let lower = line.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("range:") {
            range = Some(v.trim().to_string());
        }
        if lower.starts_with("connection:") {
            continue;
        }
        if let Some(v) = lower.strip_prefix("content-length:") {
            length = v.trim().parse().ok()?;
        }
        out_head.push_str(line);
        out_head.push_str("\r\n");
    }
    out_head.push_str("Connection: close\r\n\r\n");
    let mut body = buf[end + 4..].to_vec();
    while body.len() < length {
        let n = conn.read(&mut chunk).ok().filter(|&n| n > 0)?;
        body.extend_from_slice(&chunk[..n]);
    }
    Some(Request {
        method,
        target,
        range,
        head: out_head.into_bytes(),
        body,
    })
}

/// Sends `req` to the server; returns the connection to read its answer
/// from. When the server stops reading the body, there is no answer to
/// read unless `early` (see [`FaultProxy::relay_early_answers`]).
fn pass_on(req: &Request, upstream: u16, early: bool) -> Option<TcpStream> {
    let mut up = TcpStream::connect(("127.0.0.1", upstream)).ok()?;
    up.set_read_timeout(Some(IDLE)).ok()?;
    up.write_all(&req.head).ok()?;
    if up.write_all(&req.body).is_err() && !early {
        return None;
    }
    Some(up)
}

fn answer(conn: &mut TcpStream, status: u16, code: &str) {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{code}</Code><Message>injected by the test proxy</Message></Error>"
    );
    let reason = if status == 503 {
        "Service Unavailable"
    } else {
        "Injected"
    };
    let _ = write!(
        conn,
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}

fn serve(mut conn: TcpStream, upstream: u16, s: &Shared) {
    if s.stop.load(Ordering::SeqCst) {
        return;
    }
    let _ = conn.set_read_timeout(Some(IDLE));
    let Some(req) = read_request(&mut conn) else {
        return;
    };
    let early = s.relay_early.load(Ordering::SeqCst);
    let fault = {
        let mut plan = s.plan.lock().unwrap();
        let due = plan
            .front()
            .is_some_and(|p| p.method == req.method && req.target.contains(p.target_has));
        if due {
            plan.pop_front().map(|p| p.fault)
        } else {
            None
        }
    };
    s.seen.lock().unwrap().push(Seen {
        method: req.method.clone(),
        target: req.target.clone(),
        range: req.range.clone(),
        fault: fault.as_ref().map(Fault::name),
    });
    match fault {
        None => {
            if let Some(mut up) = pass_on(&req, upstream, early) {
                let _ = std::io::copy(&mut up, &mut conn);
            }
        }
        Some(Fault::Drop) => {}
        Some(Fault::Answer(status, code)) => answer(&mut conn, status, code),
        Some(Fault::LandThen503) => {
            if let Some(mut up) = pass_on(&req, upstream, early) {
                let _ = std::io::copy(&mut up, &mut std::io::sink());
            }
            answer(&mut conn, 503, "ServiceUnavailable");
        }
        Some(Fault::Stall) => {
            if let Some(mut up) = pass_on(&req, upstream, early) {
                let _ = std::io::copy(&mut up, &mut std::io::sink());
            }
            // Until the client closes, or the idle time-out.
            let _ = std::io::copy(&mut conn, &mut std::io::sink());
        }
        Some(Fault::Before(f)) => {
            f();
            answer(&mut conn, 503, "ServiceUnavailable");
        }
        Some(Fault::ForeignEtag) => {
            let mut got = Vec::new();
            if let Some(mut up) = pass_on(&req, upstream, early) {
                let _ = up.read_to_end(&mut got);
            }
            let _ = conn.write_all(&foreign_etag(&got));
        }
    }
    let _ = conn.shutdown(Shutdown::Both);
}

/// An HTTP answer with its ETag header replaced.
fn foreign_etag(answer: &[u8]) -> Vec<u8> {
    let Some(end) = answer.windows(4).position(|w| w == b"\r\n\r\n") else {
        return answer.to_vec();
    };
    let head = String::from_utf8_lossy(&answer[..end]);
    let mut out = String::new();
    for line in head.split("\r\n") {
        if line.to_ascii_lowercase().starts_with("etag:") {
            out.push_str("ETag: \"0123456789abcdef0123456789abcdef-1\"");
        } else {
            out.push_str(line);
        }
        out.push_str("\r\n");
    }
    let mut out = out.into_bytes();
    out.extend_from_slice(&answer[end + 2..]);
    out
}
