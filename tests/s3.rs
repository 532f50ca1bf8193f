//! The S3 backend against a real S3 server (s3s-fs, started per test on a
//! loopback port): the conformance suite every backend passes, listings
//! page by page, multipart uploads, the server's check of the content
//! digest, create-if-absent, exact ranged reads, credentials kept out of
//! every message, and retries through a proxy that injects faults. A
//! repository is pushed to and restored from the bucket, and its requests
//! follow the read rule.

#[path = "common/fault_proxy.rs"]
mod fault_proxy;
#[path = "common/s3s.rs"]
mod s3s;

use fault_proxy::{Fault, FaultProxy};
use s3s::{test_options, S3Server};
use snap::backend::s3::{LoggedRequest, S3Backend, S3Options};
use snap::backend::{conformance, Backend, FileType};
use snap::error::{Error, StorageKind};
use std::time::Duration;

fn kind(e: &Error) -> StorageKind {
    match e {
        Error::Storage { kind, .. } => *kind,
        other => panic!("not a storage error: {other}"),
    }
}

fn pack_name(i: u8) -> String {
    format!("{i:02x}").repeat(32)
}

/// The statuses of the logged requests of `action`.
fn statuses(log: &[LoggedRequest], action: &str) -> Vec<Option<u16>> {
    log.iter()
        .filter(|r| r.action == action)
        .map(|r| r.status)
        .collect()
}

#[test]
fn the_s3_backend_passes_the_conformance_suite() {
    let server = S3Server::start();
    let b = server.backend("conformance", "repo/one", test_options());
    conformance::run(&b);
    assert!(b.is_remote());
    // The layout under the prefix is the local one.
    let objects = server.root.join("conformance/repo/one");
    assert!(objects.join("locks/l").is_file(), "{}", server.log_text());
    assert!(objects.join("snapshots/s").is_file());
    // A second repository in the same bucket sees none of it.
    let other = server.backend("conformance", "repo/two", test_options());
    assert!(other.list(FileType::Snapshot).unwrap().is_empty());
    assert!(other.list(FileType::Lock).unwrap().is_empty());
}

#[test]
fn listings_follow_continuation_tokens_and_ignore_keys_outside_the_layout() {
    let server = S3Server::start();
    let b = server.backend(
        "pages",
        "r",
        S3Options {
            page_size: 2,
            ..test_options()
        },
    );
    let mut names: Vec<String> = (0..7).map(|i| format!("snap{i}")).collect();
    for (i, n) in names.iter().enumerate() {
        b.write(FileType::Snapshot, n, &vec![b'x'; i + 1]).unwrap();
    }
    // Keys the layout has no place for: under snapshots/ but deeper, and a
    // pack in a directory that is not its name's first two digits.
    let stray = server.backend("pages", "r/snapshots", test_options());
    stray.write(FileType::Key, "deeper", b"k").unwrap();
    let misplaced = server.backend("pages", "r/data/zz", test_options());
    misplaced.write(FileType::Config, "config", b"c").unwrap();
    for i in [1u8, 0xab, 0xff] {
        b.write(FileType::Pack, &pack_name(i), &[i; 10]).unwrap();
    }
    b.take_requests();

    let mut listed = b.list(FileType::Snapshot).unwrap();
    listed.sort();
    names.sort();
    assert_eq!(listed, names);
    let pages = statuses(&b.take_requests(), "ListObjectsV2");
    // 8 keys under snapshots/ (7 and the stray one), 2 a page.
    assert_eq!(pages, vec![Some(200); 4]);

    let mut sizes = b.list_sizes(FileType::Snapshot).unwrap();
    sizes.sort();
    assert_eq!(sizes[3], ("snap3".to_string(), 4));
    let mut packs = b.list_sizes(FileType::Pack).unwrap();
    packs.sort();
    assert_eq!(
        packs,
        vec![
            (pack_name(1), 10),
            (pack_name(0xab), 10),
            (pack_name(0xff), 10)
        ]
    );
    assert_eq!(b.list(FileType::Config).unwrap(), Vec::<String>::new());
    b.write(FileType::Config, "config", b"cfg").unwrap();
    assert_eq!(b.list(FileType::Config).unwrap(), vec!["config"]);
}

#[test]
fn large_files_go_up_in_parts_and_come_back_whole() {
    let server = S3Server::start();
    let part = 5 << 20;
    let b = server.backend(
        "multipart",
        "",
        S3Options {
            multipart_threshold: 1 << 20,
            part_size: part,
            ..test_options()
        },
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pack");
    let len = 2 * part + 12_345;
    let data: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
    std::fs::write(&path, &data).unwrap();
    let name = pack_name(0x5a);
    b.take_requests();
    b.put_file(FileType::Pack, &name, &path).unwrap();
    let log = b.take_requests();
    let parts: Vec<_> = log
        .iter()
        .filter(|r| r.action == "UploadPart")
        .map(|r| (r.key.clone(), r.range, r.status))
        .collect();
    let key = format!("data/5a/{name}");
    assert_eq!(
        parts,
        vec![
            (key.clone(), Some((0, part)), Some(200)),
            (key.clone(), Some((part, part)), Some(200)),
            (key.clone(), Some((2 * part, 12_345)), Some(200)),
        ]
    );
    assert_eq!(statuses(&log, "CreateMultipartUpload"), vec![Some(200)]);
    assert_eq!(statuses(&log, "CompleteMultipartUpload"), vec![Some(200)]);
    assert!(statuses(&log, "PutObject").is_empty());
    assert_eq!(b.size(FileType::Pack, &name).unwrap(), len);
    assert!(b.read(FileType::Pack, &name).unwrap() == data);
    assert_eq!(
        b.read_range(FileType::Pack, &name, part - 2, 4).unwrap(),
        &data[part as usize - 2..part as usize + 2]
    );

    // Create-if-absent holds for uploads in parts too.
    let e = b.put_file(FileType::Pack, &name, &path).unwrap_err();
    assert!(e.is_already_exists(), "{e}");
    // A lock is replaced, in parts as well.
    b.put_file(FileType::Lock, "big-lock", &path).unwrap();
    std::fs::write(&path, &data[..len as usize - 1]).unwrap();
    b.put_file(FileType::Lock, "big-lock", &path).unwrap();
    assert_eq!(b.size(FileType::Lock, "big-lock").unwrap(), len - 1);
    // Below the threshold, one PUT.
    std::fs::write(&path, b"small").unwrap();
    b.take_requests();
    b.put_file(FileType::Snapshot, "small", &path).unwrap();
    assert_eq!(statuses(&b.take_requests(), "PutObject"), vec![Some(200)]);
    assert_eq!(b.read(FileType::Snapshot, "small").unwrap(), b"small");
}

#[test]
fn a_failed_multipart_upload_is_aborted() {
    let server = S3Server::start();
    let proxy = FaultProxy::start(server.port);
    server.backend("abort", "", test_options());
    let b = S3Backend::new(
        server.config_via(proxy.port, "abort", ""),
        S3Options {
            multipart_threshold: 1 << 20,
            part_size: 5 << 20,
            ..test_options()
        },
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pack");
    std::fs::write(&path, vec![3u8; 6 << 20]).unwrap();
    proxy.plan("PUT", "partNumber=2", Fault::Answer(403, "AccessDenied"));
    let e = b
        .put_file(FileType::Pack, &pack_name(3), &path)
        .unwrap_err();
    assert_eq!(kind(&e), StorageKind::Permanent, "{e}");
    assert!(e.to_string().contains("AccessDenied"), "{e}");
    let log = b.take_requests();
    assert_eq!(statuses(&log, "UploadPart"), vec![Some(200), Some(403)]);
    assert_eq!(statuses(&log, "AbortMultipartUpload"), vec![Some(204)]);
    assert!(statuses(&log, "CompleteMultipartUpload").is_empty());
    assert!(!b.exists(FileType::Pack, &pack_name(3)).unwrap());
}

#[test]
fn the_server_refuses_a_write_whose_digest_is_wrong() {
    let server = S3Server::start();
    let b = server.backend("digest", "r", test_options());
    let e = b
        .put_with_wrong_digest(FileType::Snapshot, "s", b"the bytes")
        .unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("HTTP 400 BadDigest"), "{msg}");
    assert!(msg.contains("r/snapshots/s"), "{msg}");
    // Bytes changed on the way are worth sending again.
    assert_eq!(kind(&e), StorageKind::Transient);
    let log = b.take_requests();
    assert_eq!(statuses(&log, "PutObject"), vec![Some(400)]);
    // The same bytes with their own digest are taken.
    b.write(FileType::Snapshot, "t", b"the bytes").unwrap();
    assert_eq!(b.read(FileType::Snapshot, "t").unwrap(), b"the bytes");
}

#[test]
fn states_are_created_only_if_absent_and_locks_are_replaced() {
    let server = S3Server::start();
    let proxy = FaultProxy::start(server.port);
    server.backend("states", "", test_options());
    let b = S3Backend::new(server.config_via(proxy.port, "states", ""), test_options()).unwrap();
    let seq = "0000000000000007";
    b.write(FileType::State, seq, b"first").unwrap();
    let e = b.write(FileType::State, seq, b"second").unwrap_err();
    assert!(e.is_already_exists(), "{e}");
    assert_eq!(b.read(FileType::State, seq).unwrap(), b"first");
    // The look before the write is not what refuses: told the object is
    // missing, the backend sends the PUT, and the server's If-None-Match
    // check refuses it.
    proxy.take_seen();
    b.take_requests();
    proxy.plan("HEAD", "/states/state/", Fault::Answer(404, "NoSuchKey"));
    let e = b.write(FileType::State, seq, b"third").unwrap_err();
    assert!(e.is_already_exists(), "{e}");
    assert!(e.to_string().contains("412"), "{e}");
    assert_eq!(statuses(&b.take_requests(), "PutObject"), vec![Some(412)]);
    assert_eq!(b.read(FileType::State, seq).unwrap(), b"first");

    for content in [&b"mine"[..], b"mine, refreshed"] {
        b.write(FileType::Lock, "lock1", content).unwrap();
        assert_eq!(b.read(FileType::Lock, "lock1").unwrap(), content);
    }
    // An empty object is an object.
    b.write(FileType::Protect, "p", b"").unwrap();
    assert!(b.exists(FileType::Protect, "p").unwrap());
    assert_eq!(b.size(FileType::Protect, "p").unwrap(), 0);
    assert!(b.read(FileType::Protect, "p").unwrap().is_empty());
}

#[test]
fn ranged_reads_ask_for_exactly_the_range_and_get_exactly_it() {
    let server = S3Server::start();
    let b = server.backend("ranges", "x", test_options());
    let name = pack_name(0x42);
    let data: Vec<u8> = (0..=255u8).collect();
    b.write(FileType::Pack, &name, &data).unwrap();
    b.take_requests();
    assert_eq!(
        b.read_range(FileType::Pack, &name, 10, 5).unwrap(),
        &data[10..15]
    );
    assert_eq!(b.read_range(FileType::Pack, &name, 0, 256).unwrap(), data);
    assert_eq!(b.read_range(FileType::Pack, &name, 255, 1).unwrap(), [255]);
    let log = b.take_requests();
    let gets: Vec<_> = log.iter().map(|r| (r.method, r.range, r.status)).collect();
    assert_eq!(
        gets,
        vec![
            ("GET", Some((10, 5)), Some(206)),
            ("GET", Some((0, 256)), Some(206)),
            ("GET", Some((255, 1)), Some(206)),
        ]
    );
    // Past the end: S3 would give the part that exists; that is an error.
    for (off, len) in [(250, 10), (256, 1), (1000, 4)] {
        let e = b.read_range(FileType::Pack, &name, off, len).unwrap_err();
        assert!(e.to_string().contains("past its end"), "{off}+{len}: {e}");
        assert!(!e.is_not_found());
    }
    assert!(b
        .read_range(FileType::Pack, &name, 256, 0)
        .unwrap()
        .is_empty());
    assert!(b.read_range(FileType::Pack, &name, 257, 0).is_err());
    let e = b
        .read_range(FileType::Pack, &pack_name(1), 0, 1)
        .unwrap_err();
    assert!(e.is_not_found(), "{e}");
}

#[test]
fn credentials_never_show() {
    let server = S3Server::start();
    let b = server.backend("secrets", "p", test_options());
    let config = server.config_via(server.port, "secrets", "p");
    let shown = format!("{config:?}");
    let location = b.location();
    assert_eq!(
        location,
        format!("s3+http://127.0.0.1:{}/secrets/p", server.port)
    );
    let mut messages = vec![shown, location];

    // A key that does not exist, a wrong secret, a server that is gone.
    let e = b.read(FileType::Key, "nope").unwrap_err();
    assert!(e.is_not_found());
    assert!(
        e.to_string().contains("p/keys/nope") && e.to_string().contains("404"),
        "{e}"
    );
    messages.push(e.to_string());

    let mut wrong = config.clone();
    wrong.secret_key = format!("{}x", server.secret_key);
    let bad = S3Backend::new(wrong, test_options()).unwrap();
    let e = bad.read(FileType::Key, "nope").unwrap_err();
    assert_eq!(kind(&e), StorageKind::Permanent, "{e}");
    assert!(e.to_string().contains("403"), "{e}");
    assert_eq!(bad.take_requests().len(), 1, "a refusal is not retried");
    messages.push(e.to_string());
    let e = bad.write(FileType::Key, "k", b"key").unwrap_err();
    messages.push(e.to_string());

    let gone = S3Backend::new(
        server.config_via(s3s::free_port(), "secrets", "p"),
        S3Options {
            max_attempts: 2,
            ..test_options()
        },
    )
    .unwrap();
    let e = gone.read(FileType::Key, "k").unwrap_err();
    assert_eq!(kind(&e), StorageKind::Transient, "{e}");
    assert!(e.to_string().contains("gave up after 2 attempts"), "{e}");
    messages.push(e.to_string());
    messages.push(format!("{e:?}"));

    for m in &messages {
        assert!(!m.contains(&server.secret_key), "{m}");
        assert!(!m.contains(&server.access_key), "{m}");
        assert!(!m.contains("X-Amz-"), "a signed URL in {m}");
    }
}

#[test]
fn a_missing_bucket_is_created_once() {
    let server = S3Server::start();
    let b = S3Backend::new(server.config_via(server.port, "fresh", "r"), test_options()).unwrap();
    let e = b.list(FileType::Snapshot).unwrap_err();
    assert!(e.to_string().contains("NoSuchBucket"), "{e}");
    b.ensure_bucket().unwrap();
    b.ensure_bucket().unwrap();
    assert!(server.root.join("fresh").is_dir());
    let log = b.take_requests();
    assert_eq!(statuses(&log, "CreateBucket"), vec![Some(200)]);
    assert!(b.list(FileType::Snapshot).unwrap().is_empty());
}

/// A backend on a bucket of `server`, reached through `proxy`, whose
/// requests time out after `timeout`.
fn through(server: &S3Server, proxy: &FaultProxy, bucket: &str, timeout: u64) -> S3Backend {
    server.backend(bucket, "", test_options());
    S3Backend::new(
        server.config_via(proxy.port, bucket, ""),
        S3Options {
            request_timeout: Duration::from_secs(timeout),
            ..test_options()
        },
    )
    .unwrap()
}

#[test]
fn dropped_connections_and_503s_are_retried() {
    let server = S3Server::start();
    let proxy = FaultProxy::start(server.port);
    let b = through(&server, &proxy, "retries", 60);
    b.write(FileType::Snapshot, "s", b"snapshot").unwrap();
    b.take_requests();
    proxy.take_seen();

    proxy.plan("GET", "/snapshots/s", Fault::Drop);
    proxy.plan("GET", "/snapshots/s", Fault::Drop);
    assert_eq!(b.read(FileType::Snapshot, "s").unwrap(), b"snapshot");
    assert_eq!(
        statuses(&b.take_requests(), "GetObject"),
        vec![None, None, Some(200)]
    );
    let seen = proxy.take_seen();
    assert_eq!(seen.iter().filter(|s| s.fault == Some("drop")).count(), 2);

    for _ in 0..3 {
        proxy.plan("GET", "list-type=2", Fault::Answer(503, "SlowDown"));
    }
    assert_eq!(b.list(FileType::Snapshot).unwrap(), vec!["s"]);
    assert_eq!(
        statuses(&b.take_requests(), "ListObjectsV2"),
        vec![Some(503), Some(503), Some(503), Some(200)]
    );
    assert_eq!(proxy.pending(), 0);

    // Out of attempts: the last failure is the error, and says so.
    for _ in 0..6 {
        proxy.plan("HEAD", "/snapshots/s", Fault::Answer(500, "InternalError"));
    }
    let e = b.size(FileType::Snapshot, "s").unwrap_err();
    assert_eq!(kind(&e), StorageKind::Transient);
    let msg = e.to_string();
    assert!(
        msg.contains("HTTP 500") && msg.contains("gave up after 6 attempts"),
        "{msg}"
    );
}

#[test]
fn a_stalled_answer_times_out_and_the_write_is_retried() {
    let server = S3Server::start();
    let proxy = FaultProxy::start(server.port);
    let b = through(&server, &proxy, "stall", 5);
    b.take_requests();
    // The PUT reaches the server and lands; its answer never comes back.
    proxy.plan("PUT", "/state/", Fault::Stall);
    b.write(FileType::State, "0000000000000001", b"state one")
        .unwrap();
    let log = b.take_requests();
    // A retry finds the object (412) and sees it holds these bytes. (On a
    // busy machine a retry may time out as well.)
    let puts = statuses(&log, "PutObject");
    assert_eq!(puts.first(), Some(&None), "{log:?}");
    assert_eq!(puts.last(), Some(&Some(412)), "{log:?}");
    assert_eq!(statuses(&log, "HeadObject"), vec![Some(404), Some(200)]);
    assert_eq!(
        b.read(FileType::State, "0000000000000001").unwrap(),
        b"state one"
    );
}

#[test]
fn a_write_that_landed_before_a_503_is_taken_as_done() {
    let server = S3Server::start();
    let proxy = FaultProxy::start(server.port);
    let b = through(&server, &proxy, "landed", 60);
    b.take_requests();
    proxy.plan("PUT", "/state/", Fault::LandThen503);
    b.write(FileType::State, "0000000000000002", b"two")
        .unwrap();
    let log = b.take_requests();
    assert_eq!(statuses(&log, "PutObject"), vec![Some(503), Some(412)]);
    // The ETag is the MD5 of the bytes: no need to read them back.
    assert!(statuses(&log, "GetObject").is_empty());
    assert_eq!(b.read(FileType::State, "0000000000000002").unwrap(), b"two");

    // Where the ETag says nothing of the bytes, they are read back.
    proxy.plan("PUT", "/state/", Fault::LandThen503);
    proxy.plan("HEAD", "/state/", Fault::ForeignEtag);
    b.take_requests();
    b.write(FileType::State, "0000000000000003", b"three")
        .unwrap();
    let log = b.take_requests();
    assert_eq!(statuses(&log, "PutObject"), vec![Some(503), Some(412)]);
    assert_eq!(statuses(&log, "GetObject"), vec![Some(200)]);
    assert_eq!(proxy.pending(), 0);

    // Someone else's bytes (of the same length) landed meanwhile: the
    // name is theirs.
    let other = server.backend("landed", "", test_options());
    proxy.plan(
        "PUT",
        "/state/",
        Fault::Before(Box::new(move || {
            other
                .write(FileType::State, "0000000000000004", b"theirs")
                .unwrap()
        })),
    );
    b.take_requests();
    let e = b
        .write(FileType::State, "0000000000000004", b"mine!!")
        .unwrap_err();
    assert!(e.is_already_exists(), "{e}");
    assert!(e.to_string().contains("other bytes"), "{e}");
    let log = b.take_requests();
    assert_eq!(statuses(&log, "PutObject"), vec![Some(503), Some(412)]);
    assert_eq!(statuses(&log, "GetObject"), vec![Some(200)]);
    assert_eq!(
        b.read(FileType::State, "0000000000000004").unwrap(),
        b"theirs"
    );
}

/// Bytes that do not compress or repeat, from a seed.
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

#[test]
fn a_repository_in_a_bucket_pushes_restores_and_reads_packs_on_the_grid() {
    use snap::format::config::Chunking;
    use snap::format::crypto::KdfParams;
    use snap::ops::push::{PushOptions, Pusher};
    use snap::progress::Silent;
    use snap::repo::reads::GRID;
    use snap::repo::{Mode, NewKey, Repository};
    use std::collections::HashMap;
    use std::sync::Arc;

    const PASSWORD: &[u8] = b"bucket";
    let server = S3Server::start();
    let s3 = Arc::new(server.backend("repo", "sites/web1", test_options()));
    let backend: Arc<dyn Backend> = s3.clone();
    let tmp = tempfile::tempdir().unwrap();
    let local = tmp.path().join("local");
    let kdf = KdfParams {
        memory_kib: 1024,
        iterations: 1,
        parallelism: 1,
    };
    drop(
        Repository::init_with(
            backend.clone(),
            &local,
            PASSWORD,
            &NewKey::with_kdf(kdf),
            Chunking::default(),
        )
        .unwrap(),
    );
    let src = tmp.path().join("site");
    std::fs::create_dir(&src).unwrap();
    for i in 0..40u64 {
        std::fs::write(
            src.join(format!("f{i}.php")),
            noise(i, 300 + 97 * i as usize),
        )
        .unwrap();
    }
    std::fs::write(src.join("big.bin"), noise(99, 3_000_000)).unwrap();
    let repo = Repository::open_with(
        backend.clone(),
        &local,
        PASSWORD,
        Mode::Write,
        "push",
        Duration::ZERO,
    )
    .unwrap();
    let p = Pusher::new(
        &repo,
        PushOptions {
            host: "web1".into(),
            level: 1,
            ..Default::default()
        },
        &Silent,
    )
    .unwrap();
    let tree = p.save_paths(std::slice::from_ref(&src), None).unwrap();
    let id = p
        .commit(tree, vec![src.display().to_string()], None, None)
        .unwrap()
        .id;
    drop(repo);
    assert!(!s3.list(FileType::Pack).unwrap().is_empty());

    let repo = Repository::open_with(
        backend.clone(),
        &local,
        PASSWORD,
        Mode::Read,
        "restore",
        Duration::ZERO,
    )
    .unwrap();
    let snapshot = repo.load_snapshot(&id).unwrap();
    s3.take_requests();
    let out = tmp.path().join("out");
    snap::ops::restore::restore(&repo, &snapshot, &out, &[], &Silent).unwrap();
    for i in [0u64, 17, 39] {
        assert_eq!(
            std::fs::read(out.join(format!("f{i}.php"))).unwrap(),
            noise(i, 300 + 97 * i as usize)
        );
    }
    assert!(std::fs::read(out.join("big.bin")).unwrap() == noise(99, 3_000_000));

    let sizes: HashMap<String, u64> = s3
        .list_sizes(FileType::Pack)
        .unwrap()
        .into_iter()
        .map(|(n, s)| (format!("data/{}/{n}", &n[..2]), s))
        .collect();
    let pack_reads: Vec<LoggedRequest> = s3
        .take_requests()
        .into_iter()
        .filter(|r| r.action == "GetObject" && r.key.starts_with("data/"))
        .collect();
    assert!(
        pack_reads.iter().any(|r| r.range.is_some()),
        "{pack_reads:?}"
    );
    for r in &pack_reads {
        let size = *sizes
            .get(&r.key)
            .unwrap_or_else(|| panic!("{r:?} not in {sizes:?}"));
        let (off, len) = r.range.unwrap_or((0, size));
        assert_eq!(off % GRID, 0, "{r:?} does not start on the grid");
        assert!(
            (off + len) % GRID == 0 || off + len == size,
            "{r:?} ends neither on the grid nor at the end ({size})"
        );
    }
}

/// The command line on a repository that lives only in a bucket, its
/// endpoint, region and addressing given as flags: init, push, snapshots,
/// restore, check, unlock; a wrong secret is refused with a message that
/// names neither secret.
#[test]
fn every_command_works_on_a_repository_only_in_a_bucket() {
    let server = S3Server::start();
    let tmp = tempfile::tempdir().unwrap();
    let site = tmp.path().join("site");
    std::fs::create_dir_all(site.join("wp")).unwrap();
    std::fs::write(site.join("wp/index.php"), b"<?php echo 1;").unwrap();
    std::fs::write(site.join("big.bin"), noise(3, 3 << 20)).unwrap();
    let endpoint = format!("http://127.0.0.1:{}", server.port);
    let snap = |secret: &str, args: &[&str]| {
        std::process::Command::new(assert_cmd::cargo::cargo_bin("snap"))
            .env("SNAP_PASSWORD", "pw")
            .env("SNAP_KDF_MEMORY_KIB", "1024")
            .env("SNAP_INSECURE_KDF", "1")
            .env("SNAP_CACHE_DIR", tmp.path().join("cache"))
            .env("SNAP_REMOTES_FILE", "/dev/null")
            .env("AWS_ACCESS_KEY_ID", &server.access_key)
            .env("AWS_SECRET_ACCESS_KEY", secret)
            .env_remove("AWS_ENDPOINT_URL")
            .env_remove("AWS_ENDPOINT_URL_S3")
            .args([
                "--repo",
                "s3://agency/snap",
                "--s3-endpoint",
                &endpoint,
                "--s3-region",
                "us-east-1",
                "--s3-path-style",
                "true",
            ])
            .args(args)
            .output()
            .unwrap()
    };
    let ok = |args: &[&str]| {
        let out = snap(&server.secret_key, args);
        assert!(
            out.status.success(),
            "snap {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    };
    ok(&["init"]);
    ok(&[
        "push",
        "--level",
        "2",
        "--site",
        "shop",
        site.to_str().unwrap(),
    ]);
    let list = ok(&["--json", "snapshots"]);
    let v: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 1);
    let out_dir = tmp.path().join("out");
    ok(&["restore", "latest", "--target", out_dir.to_str().unwrap()]);
    assert_eq!(
        std::fs::read(out_dir.join("big.bin")).unwrap(),
        std::fs::read(site.join("big.bin")).unwrap()
    );
    ok(&["check", "--read-data"]);
    ok(&["unlock"]);
    // Nothing of the repository on the local disk but the cache.
    assert!(!tmp.path().join("snap").exists());
    let out = snap("not-the-secret", &["snapshots"]);
    assert!(!out.status.success());
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(e.contains("agency"), "the message names the bucket: {e}");
    assert!(
        !e.contains(&server.secret_key) && !e.contains("not-the-secret"),
        "{e}"
    );
}
