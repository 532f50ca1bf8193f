//! A real S3 server for tests: s3s-fs (installed by scripts/install-deps.sh)
//! on a free loopback port, with random credentials, storing into a
//! temporary directory, killed when dropped.

use snap::backend::s3::{S3Backend, S3Config, S3Options};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The version scripts/install-deps.sh installs.
pub const S3S_FS_VERSION: &str = "0.14.1";

/// A running s3s-fs.
pub struct S3Server {
    child: Child,
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// The access key it accepts.
    pub access_key: String,
    /// The secret key it accepts.
    pub secret_key: String,
    /// Where it stores the buckets (one directory each).
    pub root: PathBuf,
    log: PathBuf,
    _work: tempfile::TempDir,
}

/// The s3s-fs binary: `SNAP_S3S_FS`, else where scripts/install-deps.sh
/// puts it (`$CARGO_HOME/bin`, by default `~/.cargo/bin`).
pub fn s3s_fs_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("SNAP_S3S_FS") {
        let p = PathBuf::from(p);
        assert!(
            p.is_file(),
            "SNAP_S3S_FS is {}, which is not a file: point it at an s3s-fs {S3S_FS_VERSION} binary, or unset it and run scripts/install-deps.sh",
            p.display()
        );
        return p;
    }
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .expect("HOME or CARGO_HOME is set");
    let p = cargo_home.join("bin").join("s3s-fs");
    assert!(
        p.is_file(),
        "the S3 tests need s3s-fs {S3S_FS_VERSION}, which is not at {}: run scripts/install-deps.sh (scripts/test.sh does), or set SNAP_S3S_FS to an s3s-fs binary",
        p.display()
    );
    p
}

fn random_token(len: usize) -> String {
    use rand::Rng;
    const CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut rng = rand::thread_rng();
    (0..len)
        .map(|_| CHARS[rng.gen_range(0..CHARS.len())] as char)
        .collect()
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

/// Whether an HTTP server answers on `port` (any status will do).
fn answers(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let req = format!("GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    if s.write_all(req.as_bytes()).is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    s.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.")
}

impl S3Server {
    /// Starts s3s-fs and waits until it answers; panics if it cannot.
    pub fn start() -> S3Server {
        let bin = s3s_fs_binary();
        let work = tempfile::tempdir().expect("a temporary directory");
        let root = work.path().join("buckets");
        std::fs::create_dir(&root).expect("the data directory");
        let log = work.path().join("s3s-fs.log");
        // Another process may take the free port before s3s-fs binds it:
        // then it exits, and another port is tried.
        for _ in 0..5 {
            let port = free_port();
            let (access_key, secret_key) = (random_token(20), random_token(40));
            let mut child = Command::new(&bin)
                .args(["--host", "127.0.0.1", "--port", &port.to_string()])
                .args(["--access-key", &access_key, "--secret-key", &secret_key])
                .arg(&root)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log).expect("a log file"))
                .spawn()
                .unwrap_or_else(|e| panic!("starting {}: {e}", bin.display()));
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                if answers(port) {
                    return S3Server {
                        child,
                        port,
                        access_key,
                        secret_key,
                        root,
                        log,
                        _work: work,
                    };
                }
                if child.try_wait().expect("s3s-fs's state").is_some() {
                    break;
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "s3s-fs did not answer on port {port} within 60 s: {}",
                        std::fs::read_to_string(&log).unwrap_or_default()
                    );
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        panic!(
            "s3s-fs exited at start five times: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }

    /// What s3s-fs wrote to its standard error.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The configuration of a repository at `bucket`/`prefix` on the server
    /// listening on `port` (the server's own, or a proxy's in front of it),
    /// with this server's credentials.
    pub fn config_via(&self, port: u16, bucket: &str, prefix: &str) -> S3Config {
        let (a, s) = (self.access_key.clone(), self.secret_key.clone());
        let env = move |k: &str| match k {
            "AWS_ACCESS_KEY_ID" => Some(a.clone()),
            "AWS_SECRET_ACCESS_KEY" => Some(s.clone()),
            _ => None,
        };
        S3Config::from_url(
            &format!("s3+http://127.0.0.1:{port}/{bucket}/{prefix}"),
            &env,
        )
        .expect("a valid URL")
    }

    /// A backend on `bucket`/`prefix` (the bucket is created if missing),
    /// with fast retries and a request log.
    pub fn backend(&self, bucket: &str, prefix: &str, options: S3Options) -> S3Backend {
        let b =
            S3Backend::new(self.config_via(self.port, bucket, prefix), options).expect("a backend");
        b.ensure_bucket().expect("the bucket exists");
        b
    }
}

/// Options for tests: a request log, quick retries.
pub fn test_options() -> S3Options {
    S3Options {
        log_requests: true,
        base_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(50),
        request_timeout: Duration::from_secs(60),
        ..S3Options::default()
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
