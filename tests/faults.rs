//! Storage faults injected under push, prune and repair: the Nth write into
//! a staged pack, the Nth sync/rename of a pack, the Nth whole-file write
//! (snapshot, lock), read, listing or removal fails with ENOSPC or EIO,
//! before or after the storage did it. After every round the repository is
//! reopened without faults; `check --read-data` must find nothing wrong, and
//! every snapshot that was reported saved must restore byte for byte.

use snap::backend::faulty::{Fault, Faults, FaultyBackend, Op};
use snap::backend::local::LocalBackend;
use snap::backend::Backend;
use snap::error::Error;
use snap::format::config::Chunking;
use snap::format::crypto::KdfParams;
use snap::id::SnapshotId;
use snap::ops::push::{PushOptions, Pusher};
use snap::progress::Silent;
use snap::repo::{Mode, NewKey, Repository};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

const PASSWORD: &[u8] = b"fault injection";

type Files = BTreeMap<PathBuf, Vec<u8>>;

fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn read_tree(root: &Path, dir: &Path, out: &mut Files) {
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let p = e.path();
        if e.file_type().unwrap().is_dir() {
            read_tree(root, &p, out);
        } else {
            out.insert(
                p.strip_prefix(root).unwrap().into(),
                std::fs::read(&p).unwrap(),
            );
        }
    }
}

fn files_of(root: &Path) -> Files {
    let mut out = Files::new();
    read_tree(root, root, &mut out);
    out
}

/// A repository in a temporary directory whose storage fails on demand,
/// a source tree, and every snapshot reported saved with what it held.
struct Rig {
    tmp: tempfile::TempDir,
    root: PathBuf,
    src: PathBuf,
    faults: Faults,
    saved: Vec<(SnapshotId, Files)>,
    round: u64,
}

impl Rig {
    fn new() -> Rig {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("repo");
        let src = tmp.path().join("src");
        std::fs::create_dir_all(src.join("sub")).unwrap();
        let kdf = KdfParams {
            memory_kib: 1024,
            iterations: 1,
            parallelism: 1,
        };
        Repository::init(
            &root,
            &tmp.path().join("cache"),
            PASSWORD,
            &NewKey::with_kdf(kdf),
            Chunking::default(),
        )
        .unwrap();
        for i in 0..6u64 {
            let len = 50_000 + (i as usize) * 150_000;
            std::fs::write(src.join(format!("f{i}")), noise(i, len)).unwrap();
        }
        // Duplicates: one chunk stored, named twice.
        std::fs::write(src.join("sub/copy-of-f1"), noise(1, 200_000)).unwrap();
        Rig {
            tmp,
            root,
            src,
            faults: Faults::new(),
            saved: Vec::new(),
            round: 100,
        }
    }

    fn open(&self, mode: Mode) -> snap::Result<Repository> {
        let inner: Arc<dyn Backend> = Arc::new(LocalBackend::new(&self.root));
        let b = Arc::new(FaultyBackend::new(inner, self.faults.clone()));
        let mut repo = Repository::open_with(
            b,
            &self.tmp.path().join("cache"),
            PASSWORD,
            mode,
            "test",
            Duration::from_secs(30),
        )?;
        repo.inject_staging_faults(self.faults.clone());
        Ok(repo)
    }

    /// Changes the source: one file rewritten, one new file each time.
    fn mutate(&mut self) {
        self.round += 1;
        let r = self.round;
        std::fs::write(
            self.src.join(format!("f{}", r % 6)),
            noise(r, 120_000 + (r as usize % 7) * 90_000),
        )
        .unwrap();
        std::fs::write(
            self.src.join("sub").join(format!("new{}", r % 4)),
            noise(r * 7, 30_000),
        )
        .unwrap();
    }

    fn push_at(
        &self,
        time: Option<chrono::DateTime<chrono::FixedOffset>>,
    ) -> snap::Result<SnapshotId> {
        let repo = self.open(Mode::Write)?;
        let opts = PushOptions {
            host: "rig".into(),
            level: 1,
            time,
            ..Default::default()
        };
        let p = Pusher::new(&repo, opts, &Silent)?;
        let paths = vec![self.src.display().to_string()];
        let parent = p.find_parent(&paths)?;
        let ptree = parent
            .as_ref()
            .and_then(|(_, s)| repo.load_tree(&s.tree).ok());
        let tree = p.save_paths(std::slice::from_ref(&self.src), ptree.as_ref())?;
        Ok(p.commit(tree, paths, parent.map(|x| x.0), None)?.id)
    }

    /// Pushes; a snapshot reported saved is remembered with the source.
    fn push(
        &mut self,
        time: Option<chrono::DateTime<chrono::FixedOffset>>,
    ) -> snap::Result<SnapshotId> {
        let r = self.push_at(time);
        if let Ok(id) = &r {
            self.saved.push((*id, files_of(&self.src)));
        }
        r
    }

    /// Without faults: check --read-data is clean and the given snapshots
    /// (default: all reported saved that still exist) restore exactly.
    fn verify(&self, what: &str, only_last: bool) {
        self.faults.clear();
        // The command that failed has exited: its lock, if a failed removal
        // left it, belongs to a dead process (here the test's own, alive).
        for e in std::fs::read_dir(self.root.join("locks")).unwrap() {
            std::fs::remove_file(e.unwrap().path()).unwrap();
        }
        let repo = self
            .open(Mode::Write)
            .unwrap_or_else(|e| panic!("{what}: reopen: {e}"));
        let report = snap::ops::check::check(&repo, true, &Silent).unwrap();
        assert!(
            report.ok(),
            "{what}: check --read-data found {:?} {:?}",
            report.errors,
            report.affected
        );
        let exist: std::collections::HashSet<SnapshotId> =
            repo.snapshot_ids().unwrap().into_iter().collect();
        let list: Vec<&(SnapshotId, Files)> = if only_last {
            self.saved.last().into_iter().collect()
        } else {
            self.saved
                .iter()
                .filter(|(id, _)| exist.contains(id))
                .collect()
        };
        for (id, files) in list {
            assert!(
                exist.contains(id),
                "{what}: snapshot {id} reported saved is gone"
            );
            let target = self.tmp.path().join("restored");
            let _ = std::fs::remove_dir_all(&target);
            let s = repo.load_snapshot(id).unwrap();
            let st = snap::ops::restore::restore(&repo, &s, &target, &[], &Silent)
                .unwrap_or_else(|e| panic!("{what}: restore {id}: {e}"));
            assert!(
                st.errors.is_empty(),
                "{what}: restore {id}: {:?}",
                st.errors
            );
            let got = files_of(&target);
            assert!(
                got == *files,
                "{what}: snapshot {id} does not restore byte for byte"
            );
        }
    }
}

/// The failure is the repository's, said as such, never a source problem.
fn assert_storage_error(e: &Error, what: &str) {
    // A key file that cannot be read is named as such (NoUsableKey), never
    // taken for a wrong password.
    assert!(
        matches!(e, Error::Storage { .. } | Error::NoUsableKey { .. }),
        "{what}: expected a storage error, got {e:?}"
    );
    assert!(!e.is_source(), "{what}");
}

fn faults_for(op: Op) -> Vec<Fault> {
    match op {
        Op::WriteFile | Op::Write | Op::Remove => {
            vec![Fault::NoSpace, Fault::Eio, Fault::EioAfter]
        }
        Op::StagingWrite => vec![Fault::NoSpace, Fault::Eio, Fault::Short],
        _ => vec![Fault::NoSpace, Fault::Eio],
    }
}

#[test]
fn push_under_storage_faults_never_records_a_broken_snapshot() {
    let mut rig = Rig::new();
    rig.push(None).unwrap();
    let mut failures = 0;
    for op in [
        Op::StagingWrite,
        Op::WriteFile,
        Op::Write,
        Op::Read,
        Op::List,
    ] {
        // How many calls of `op` one push makes.
        rig.mutate();
        let before = rig.faults.count(op);
        rig.push(None).unwrap();
        let per_push = (rig.faults.count(op) - before).min(6);
        for n in 1..=per_push {
            for fault in faults_for(op) {
                rig.mutate();
                rig.faults.fail_nth(op, n, fault);
                let what = format!("{op:?} #{n} {fault:?}");
                match rig.push(None) {
                    Ok(_) => {}
                    Err(e) => {
                        assert_storage_error(&e, &what);
                        failures += 1;
                    }
                }
                rig.verify(&what, true);
                // After the fault, the next push stores what is missing.
                rig.push(None)
                    .unwrap_or_else(|e| panic!("{what}: push after: {e}"));
                rig.verify(&format!("{what}, push after"), true);
            }
        }
    }
    assert!(
        failures > 10,
        "only {failures} pushes failed: the faults did not fire"
    );
    rig.verify("end", false);
}

#[test]
fn prune_under_storage_faults_keeps_every_kept_snapshot_whole() {
    use chrono::TimeZone;
    let day = |d: i64| {
        chrono::FixedOffset::east_opt(0)
            .unwrap()
            .timestamp_opt(1_780_000_000 + d * 86_400, 0)
            .unwrap()
    };
    let mut rounds = 0;
    for op in [
        Op::StagingWrite,
        Op::WriteFile,
        Op::Write,
        Op::Remove,
        Op::Read,
    ] {
        for n in [1u64, 3] {
            for fault in faults_for(op) {
                let mut rig = Rig::new();
                for d in 0..8 {
                    rig.mutate();
                    rig.push(Some(day(d))).unwrap();
                }
                let what = format!("prune, {op:?} #{n} {fault:?}");
                rig.faults.fail_nth(op, n, fault);
                let result = (|| -> snap::Result<Vec<SnapshotId>> {
                    let repo = rig.open(Mode::Exclusive)?;
                    let opts = snap::ops::prune::PruneOptions {
                        policy: "level1".into(),
                        policies: snap::format::policy::builtin_policies(chrono_tz::UTC),
                        site: None,
                        now: day(8).with_timezone(&chrono::Utc),
                        max_unused: 0.0,
                    };
                    let plan = snap::ops::prune::plan(&repo, &opts, &Silent)?;
                    let kept: Vec<SnapshotId> = rig
                        .saved
                        .iter()
                        .map(|s| s.0)
                        .filter(|id| !plan.remove.contains(id))
                        .collect();
                    snap::ops::prune::execute(&repo, &plan, &Silent)?;
                    Ok(kept)
                })();
                if let Err(e) = &result {
                    assert!(!e.is_source(), "{what}: {e}");
                    rounds += 1;
                }
                rig.verify(&what, false);
                if let Ok(kept) = result {
                    let repo = rig.open(Mode::Read).unwrap();
                    let exist = repo.snapshot_ids().unwrap();
                    for id in kept {
                        assert!(exist.contains(&id), "{what}: kept snapshot {id} is gone");
                    }
                }
            }
        }
    }
    assert!(
        rounds > 5,
        "only {rounds} prunes failed: the faults did not fire"
    );
}

/// Flips one byte inside the sealed blob of `content`'s single chunk.
fn damage_chunk_of(rig: &Rig, content: &[u8]) {
    let repo = rig.open(Mode::Read).unwrap();
    let id = snap::id::ChunkId(repo.keys().blob_id(content));
    let loc = repo
        .index()
        .get(&id.into())
        .unwrap()
        .expect("chunk is stored");
    let hex = loc.pack.to_hex();
    let p = rig.root.join("data").join(&hex[..2]).join(&hex);
    let mut bytes = std::fs::read(&p).unwrap();
    bytes[loc.offset as usize + 40] ^= 0x55;
    std::fs::write(&p, bytes).unwrap();
}

#[test]
fn repair_under_storage_faults_then_a_push_makes_every_snapshot_whole() {
    let mut repaired_rounds = 0;
    for op in [
        Op::StagingWrite,
        Op::WriteFile,
        Op::Remove,
        Op::Read,
        Op::List,
    ] {
        for n in [1u64, 2] {
            for fault in faults_for(op) {
                let mut rig = Rig::new();
                rig.push(None).unwrap();
                let victim = std::fs::read(rig.src.join("f0")).unwrap();
                damage_chunk_of(&rig, &victim);
                let what = format!("repair, {op:?} #{n} {fault:?}");
                rig.faults.fail_nth(op, n, fault);
                let r = (|| {
                    let repo = rig.open(Mode::Exclusive)?;
                    snap::ops::repair::repair_packs(&repo, &[], &Silent)
                })();
                match &r {
                    Err(e) => assert!(!e.is_source(), "{what}: {e}"),
                    Ok(_) => repaired_rounds += 1,
                }
                rig.faults.clear();
                for e in std::fs::read_dir(rig.root.join("locks")).unwrap() {
                    std::fs::remove_file(e.unwrap().path()).unwrap();
                }
                let repo = rig.open(Mode::Exclusive).unwrap();
                let report = snap::ops::repair::repair_packs(&repo, &[], &Silent).unwrap();
                let lost: u64 = report.repaired.iter().map(|p| p.lost).sum();
                assert!(lost <= 1, "{what}: {lost} blobs lost, only one was damaged");
                // Everything salvageable was kept: only the victim is affected.
                let c = snap::ops::check::check(&repo, true, &Silent).unwrap();
                assert!(c.errors.is_empty(), "{what}: {:?}", c.errors);
                let paths: Vec<&str> = c.affected.iter().map(|a| a.path.as_str()).collect();
                assert!(
                    paths.iter().all(|p| p.ends_with("f0")) && !paths.is_empty(),
                    "{what}: affected {paths:?}"
                );
                drop(repo);
                // The source still has the data: the next push stores it again
                // and the first snapshot is whole.
                rig.push(None).unwrap();
                rig.verify(&what, false);
            }
        }
    }
    assert!(repaired_rounds > 0);
}

#[test]
fn a_pack_gone_from_the_backend_is_forgotten_when_a_writer_opens() {
    let mut rig = Rig::new();
    rig.push(None).unwrap();
    let repo = rig.open(Mode::Read).unwrap();
    // f2's first chunk, from its node: the file may be cut in several
    // chunks (boundaries depend on the repository's random key).
    let first = first_chunk_of(&repo, b"f2");
    let loc = repo.index().get(&first).unwrap().unwrap();
    drop(repo);
    let hex = loc.pack.to_hex();
    std::fs::remove_file(rig.root.join("data").join(&hex[..2]).join(&hex)).unwrap();
    let repo = rig.open(Mode::Write).unwrap();
    assert!(
        repo.warnings
            .iter()
            .any(|w| w.contains(&hex) && w.contains("missing")),
        "{:?}",
        repo.warnings
    );
    assert!(repo.index().get(&first).unwrap().is_none());
    drop(repo);
    // Unchanged files are not reused from the parent when their chunks are
    // gone: the push reads them again, and every snapshot is whole.
    rig.push(None).unwrap();
    rig.verify("after a lost pack", false);
}

/// The first chunk of the top-level file `name` in the latest snapshot.
fn first_chunk_of(repo: &Repository, name: &[u8]) -> snap::id::BlobRef {
    let (_, s) = repo.snapshots().unwrap().pop().unwrap();
    let tree = repo.load_tree(&s.tree).unwrap();
    let node = tree.get(name).expect("the file is in the snapshot");
    let mut first = None;
    repo.for_each_chunk_group(node.content.as_ref().unwrap(), &mut |records| {
        first.get_or_insert(records[0].0);
        Ok(())
    })
    .unwrap();
    first.expect("the file has a chunk").into()
}

/// The same operations on the in-memory backend: a repository that never
/// touches a disk (but for staged packs and the index) pushes, prunes,
/// checks and restores like a local one.
#[test]
fn push_prune_check_and_restore_on_the_in_memory_backend() {
    use snap::backend::mem::MemBackend;
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    std::fs::create_dir(&src).unwrap();
    let backend: Arc<dyn Backend> = Arc::new(MemBackend::new());
    let kdf = KdfParams {
        memory_kib: 1024,
        iterations: 1,
        parallelism: 1,
    };
    let local = tmp.path().join("local");
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
    let mut saved = Vec::new();
    for day in 0..4u64 {
        std::fs::write(src.join(format!("f{day}")), noise(day, 300_000)).unwrap();
        let repo = Repository::open_with(
            backend.clone(),
            &local,
            PASSWORD,
            Mode::Write,
            "t",
            Duration::ZERO,
        )
        .unwrap();
        let opts = PushOptions {
            host: "mem".into(),
            level: 1,
            time: Some(
                chrono::DateTime::from_timestamp(1_780_000_000 + day as i64 * 86_400, 0)
                    .unwrap()
                    .fixed_offset(),
            ),
            ..Default::default()
        };
        let p = Pusher::new(&repo, opts, &Silent).unwrap();
        let tree = p.save_paths(std::slice::from_ref(&src), None).unwrap();
        let id = p
            .commit(tree, vec![src.display().to_string()], None, None)
            .unwrap()
            .id;
        saved.push((id, files_of(&src)));
    }
    let repo = Repository::open_with(
        backend.clone(),
        &local,
        PASSWORD,
        Mode::Exclusive,
        "t",
        Duration::ZERO,
    )
    .unwrap();
    let opts = snap::ops::prune::PruneOptions {
        policy: "level1".into(),
        policies: snap::format::policy::builtin_policies(chrono_tz::UTC),
        site: None,
        now: chrono::DateTime::from_timestamp(1_780_000_000 + 20 * 86_400, 0).unwrap(),
        max_unused: 0.0,
    };
    let plan = snap::ops::prune::plan(&repo, &opts, &Silent).unwrap();
    assert!(!plan.remove.is_empty(), "the plan removes something");
    snap::ops::prune::execute(&repo, &plan, &Silent).unwrap();
    let report = snap::ops::check::check(&repo, true, &Silent).unwrap();
    assert!(report.ok(), "{:?} {:?}", report.errors, report.state);
    let left = repo.snapshot_ids().unwrap();
    for (id, files) in saved.iter().filter(|(id, _)| left.contains(id)) {
        let target = tmp.path().join(format!("out-{id}"));
        let s = repo.load_snapshot(id).unwrap();
        snap::ops::restore::restore(&repo, &s, &target, &[], &Silent).unwrap();
        assert!(files_of(&target) == *files, "{id} restores byte for byte");
    }
    assert!(
        backend
            .list(snap::backend::FileType::Snapshot)
            .unwrap()
            .len()
            == left.len()
    );
}

/// `key rotate` under storage faults: whichever write, removal or state
/// write fails, the password still opens the repository, every snapshot
/// reported saved restores byte for byte, the next push works and
/// `check --read-data` is clean.
#[test]
fn key_rotate_under_storage_faults_loses_nothing() {
    let mut failures = 0;
    for op in [Op::Write, Op::Remove, Op::List, Op::Read] {
        for n in [1u64, 2, 3] {
            for fault in faults_for(op) {
                let mut rig = Rig::new();
                rig.push(None).unwrap();
                let what = format!("rotate, {op:?} #{n} fails with {fault:?}");
                let mut repo = rig.open(Mode::Exclusive).unwrap();
                rig.faults.fail_nth(op, n, fault);
                let kdf = KdfParams {
                    memory_kib: 1024,
                    iterations: 1,
                    parallelism: 1,
                };
                match repo.rotate_key(PASSWORD, &NewKey::with_kdf(kdf)) {
                    Ok(_) => {}
                    Err(e) => {
                        failures += 1;
                        assert_storage_error(&e, &what);
                    }
                }
                drop(repo);
                rig.verify(&what, false);
                rig.mutate();
                rig.push(None)
                    .unwrap_or_else(|e| panic!("{what}: push after: {e}"));
                rig.verify(&format!("{what}, then a push"), false);
            }
        }
    }
    assert!(
        failures > 5,
        "only {failures} rotations failed: the faults did not fire"
    );
}

/// protect, unprotect, key add and key remove under storage faults: each
/// writes a file (or removes one) and a state record; whichever step
/// fails, the password still opens, `check --read-data` is clean (a marker
/// or key file the state does not list yet is a note, not damage), every
/// saved snapshot restores and the next push works.
#[test]
fn protections_and_key_changes_under_storage_faults_lose_nothing() {
    let kdf = KdfParams {
        memory_kib: 1024,
        iterations: 1,
        parallelism: 1,
    };
    let mut failures = 0;
    for step in ["protect", "unprotect", "key add", "key remove"] {
        for op in [Op::Write, Op::Remove, Op::List, Op::Read] {
            for n in [1u64, 2] {
                for fault in faults_for(op) {
                    let mut rig = Rig::new();
                    let id = rig.push(None).unwrap();
                    let setup = rig.open(Mode::Exclusive).unwrap();
                    if step == "unprotect" {
                        setup.protect(&id).unwrap();
                    }
                    let spare = if step == "key remove" {
                        Some(setup.add_key(b"spare", &NewKey::with_kdf(kdf)).unwrap())
                    } else {
                        None
                    };
                    drop(setup);
                    let what = format!("{step}, {op:?} #{n} fails with {fault:?}");
                    let repo = rig.open(Mode::Exclusive).unwrap();
                    rig.faults.fail_nth(op, n, fault);
                    let r = match step {
                        "protect" => repo.protect(&id).map(|_| ()),
                        "unprotect" => repo.unprotect(&id).map(|_| ()),
                        "key add" => repo.add_key(b"new", &NewKey::with_kdf(kdf)).map(|_| ()),
                        _ => repo.remove_key(spare.as_deref().unwrap()).map(|_| ()),
                    };
                    if let Err(e) = r {
                        failures += 1;
                        assert_storage_error(&e, &what);
                    }
                    drop(repo);
                    rig.verify(&what, false);
                    rig.mutate();
                    rig.push(None)
                        .unwrap_or_else(|e| panic!("{what}: push after: {e}"));
                    rig.verify(&format!("{what}, then a push"), false);
                }
            }
        }
    }
    assert!(
        failures > 10,
        "only {failures} steps failed: the faults did not fire"
    );
}
