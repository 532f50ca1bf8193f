//! Check: is everything the snapshots need present, and (with `read_data`)
//! intact?
//!
//! Structure check: every snapshot decodes, every tree and chunk list it
//! reaches decodes, every chunk it names is in the index, and every pack the
//! index names exists with the recorded size. Data check: every pack hashes
//! to its name, its header decodes, and every blob opens and hashes to its
//! id. Damage is reported with the snapshots and paths it affects.

use crate::backend::FileType;
use crate::error::{Error, Result};
use crate::format::blob;
use crate::format::pack::read_header;
use crate::format::tree::{Content, NodeKind};
use crate::id::{BlobRef, PackId, SnapshotId, TreeId};
use crate::progress::Progress;
use crate::repo::Repository;
use rayon::prelude::*;
use std::collections::{HashMap, HashSet};

/// One problem found.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Problem {
    /// The damaged or missing object.
    pub object: String,
    /// What is wrong.
    pub message: String,
}

/// A snapshot path that cannot be restored as saved.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Affected {
    /// Snapshot id.
    pub snapshot: String,
    /// Path inside it.
    pub path: String,
    /// Why.
    pub reason: String,
}

/// What check found.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct CheckReport {
    /// Snapshots checked.
    pub snapshots: usize,
    /// Distinct trees read.
    pub trees: usize,
    /// Packs in the repository.
    pub packs: usize,
    /// Packs read and verified (with read_data).
    pub packs_read: usize,
    /// Damaged or missing objects.
    pub errors: Vec<Problem>,
    /// What the damage breaks.
    pub affected: Vec<Affected>,
    /// Harmless findings (unreferenced or unindexed packs).
    pub warnings: Vec<String>,
}

impl CheckReport {
    /// True when nothing is damaged.
    pub fn ok(&self) -> bool {
        self.errors.is_empty() && self.affected.is_empty()
    }
}

/// Runs the check.
pub fn check(repo: &Repository, read_data: bool, progress: &dyn Progress) -> Result<CheckReport> {
    let mut report = CheckReport::default();
    let on_disk: HashMap<String, u64> = repo
        .backend
        .list_sizes(FileType::Pack)?
        .into_iter()
        .collect();
    report.packs = on_disk.len();
    let indexed = repo.index().packs()?;
    let indexed_names: HashSet<String> = indexed.iter().map(|(id, _)| id.to_hex()).collect();
    let mut bad_packs: HashSet<PackId> = HashSet::new();
    for (id, info) in &indexed {
        match on_disk.get(&id.to_hex()) {
            None => {
                bad_packs.insert(*id);
                report.errors.push(Problem {
                    object: format!("pack {id}"),
                    message: "in the index but missing from the repository".into(),
                });
            }
            Some(&size) if size != info.size => {
                bad_packs.insert(*id);
                report.errors.push(Problem {
                    object: format!("pack {id}"),
                    message: format!(
                        "is {size} bytes, the index says {} (truncated or replaced)",
                        info.size
                    ),
                });
            }
            _ => {}
        }
    }
    for name in on_disk.keys().filter(|n| !indexed_names.contains(*n)) {
        report.warnings.push(format!("pack {name} is not in the index (left by an interrupted push, or the index is stale: `snap repair index` adds it)"));
    }

    let mut bad_blobs: HashSet<BlobRef> = HashSet::new();
    if read_data {
        let names: Vec<(&String, &u64)> = on_disk.iter().collect();
        let found: Vec<(String, PackVerdict)> = names
            .par_iter()
            .map(|(name, _)| {
                let r = verify_pack(repo, name);
                progress.file_done();
                ((*name).clone(), r)
            })
            .collect();
        for (name, (probs, blobs, whole)) in found {
            report.errors.extend(probs);
            bad_blobs.extend(blobs);
            if whole {
                if let Ok(id) = PackId::from_hex(&name) {
                    bad_packs.insert(id);
                }
            }
        }
        report.packs_read = names.len();
    }

    let snaps = repo.snapshot_ids()?;
    report.snapshots = snaps.len();
    let mut seen_trees: HashSet<TreeId> = HashSet::new();
    let mut clean_trees: HashSet<TreeId> = HashSet::new();
    for sid in snaps {
        let snap = match repo.load_snapshot(&sid) {
            Ok(s) => s,
            Err(e) => {
                report.errors.push(Problem {
                    object: format!("snapshot {sid}"),
                    message: e.to_string(),
                });
                continue;
            }
        };
        let mut w = Walker {
            repo,
            sid,
            bad_packs: &bad_packs,
            bad_blobs: &bad_blobs,
            seen_trees: &mut seen_trees,
            clean_trees: &mut clean_trees,
            report: &mut report,
        };
        w.tree(&snap.tree, "")?;
    }
    report.trees = seen_trees.len();
    Ok(report)
}

struct Walker<'a> {
    repo: &'a Repository,
    sid: SnapshotId,
    bad_packs: &'a HashSet<PackId>,
    bad_blobs: &'a HashSet<BlobRef>,
    seen_trees: &'a mut HashSet<TreeId>,
    /// Trees with nothing damaged beneath them: not walked again.
    clean_trees: &'a mut HashSet<TreeId>,
    report: &'a mut CheckReport,
}

impl Walker<'_> {
    fn blob_problem(&self, b: &BlobRef) -> Result<Option<String>> {
        if self.bad_blobs.contains(b) {
            return Ok(Some(format!(
                "{:?} blob {} is damaged",
                b.kind,
                hex::encode(b.id)
            )));
        }
        match self.repo.index().get(b)? {
            None => Ok(Some(format!(
                "{:?} blob {} is missing",
                b.kind,
                hex::encode(b.id)
            ))),
            Some(loc) if self.bad_packs.contains(&loc.pack) => Ok(Some(format!(
                "{:?} blob {} is in damaged pack {}",
                b.kind,
                hex::encode(b.id),
                loc.pack
            ))),
            Some(_) => Ok(None),
        }
    }

    fn affected(&mut self, path: &str, reason: String) {
        self.report.affected.push(Affected {
            snapshot: self.sid.short(),
            path: if path.is_empty() {
                "/".into()
            } else {
                path.into()
            },
            reason,
        });
    }

    fn tree(&mut self, id: &TreeId, path: &str) -> Result<()> {
        // A clean tree seen in an earlier snapshot need not be walked again,
        // but the paths a damaged one breaks are reported per snapshot.
        if self.clean_trees.contains(id) {
            return Ok(());
        }
        let first = self.seen_trees.insert(*id);
        let affected_before = self.report.affected.len();
        if let Some(p) = self.blob_problem(&(*id).into())? {
            if first {
                self.report.errors.push(Problem {
                    object: format!("tree {id}"),
                    message: p.clone(),
                });
            }
            self.affected(path, p);
            return Ok(());
        }
        let tree = match self.repo.load_tree(id) {
            Ok(t) => t,
            Err(e) => {
                if first {
                    self.report.errors.push(Problem {
                        object: format!("tree {id}"),
                        message: e.to_string(),
                    });
                }
                self.affected(path, e.to_string());
                return Ok(());
            }
        };
        for n in &tree.entries {
            let p = format!("{path}/{}", String::from_utf8_lossy(&n.name));
            match (n.kind, &n.subtree, &n.content) {
                (NodeKind::Dir, Some(sub), _) => self.tree(sub, &p)?,
                (NodeKind::File, _, Some(content)) => self.file(content, &p)?,
                _ => {}
            }
        }
        if self.report.affected.len() == affected_before {
            self.clean_trees.insert(*id);
        }
        Ok(())
    }

    fn file(&mut self, content: &Content, path: &str) -> Result<()> {
        if let Content::Groups(gs) = content {
            for g in gs {
                if let Some(p) = self.blob_problem(&g.id.into())? {
                    self.affected(path, p);
                    return Ok(());
                }
            }
        }
        // The first problem of a file is enough to report it; the walk over
        // its chunk list stops there.
        let mut problem: Option<String> = None;
        let walked = self.repo.for_each_chunk_group(content, &mut |group| {
            for (c, _) in group {
                if problem.is_some() {
                    break;
                }
                problem = self.blob_problem(&(*c).into())?;
            }
            Ok(())
        });
        match (walked, problem) {
            (Err(e), _) => self.affected(path, e.to_string()),
            (Ok(()), Some(p)) => self.affected(path, p),
            (Ok(()), None) => {}
        }
        Ok(())
    }
}

/// What reading one pack found: problems, damaged blobs, and whether the
/// whole pack is unreadable (so every blob the index places in it is lost).
type PackVerdict = (Vec<Problem>, Vec<BlobRef>, bool);

fn verify_pack(repo: &Repository, name: &str) -> PackVerdict {
    let obj = || format!("pack {name}");
    let mut probs = Vec::new();
    let mut bad = Vec::new();
    let bytes = match repo.backend.read(FileType::Pack, name) {
        Ok(b) => b,
        Err(e) => {
            return (
                vec![Problem {
                    object: obj(),
                    message: e.to_string(),
                }],
                bad,
                true,
            )
        }
    };
    let Ok(id) = PackId::from_hex(name) else {
        return (
            vec![Problem {
                object: obj(),
                message: "name is not a pack id".into(),
            }],
            bad,
            true,
        );
    };
    if blake3::hash(&bytes).as_bytes() != &id.0 {
        probs.push(Problem {
            object: obj(),
            message: "contents do not hash to its name (bit rot or tampering)".into(),
        });
    }
    let entries = match read_header(repo.keys(), &id, &bytes) {
        Ok(e) => e,
        Err(e) => {
            probs.push(Problem {
                object: obj(),
                message: e.to_string(),
            });
            return (probs, bad, true);
        }
    };
    for e in entries {
        let sealed = &bytes[e.offset as usize..(e.offset + e.length as u64) as usize];
        let ok = blob::open(repo.keys(), &e.blob, sealed, e.raw_len)
            .map(|plain| repo.keys().blob_id(&plain) == e.blob.id);
        let why = match ok {
            Ok(true) => continue,
            Ok(false) => "plaintext does not hash to its id".to_string(),
            Err(err) => err.to_string(),
        };
        probs.push(Problem {
            object: format!(
                "{:?} blob {} in {}",
                e.blob.kind,
                hex::encode(e.blob.id),
                obj()
            ),
            message: why,
        });
        bad.push(e.blob);
    }
    (probs, bad, false)
}

/// Makes sure check found no problem, for callers that want an error.
pub fn require_ok(r: &CheckReport) -> Result<()> {
    if r.ok() {
        Ok(())
    } else {
        Err(Error::corrupt(
            "repository",
            format!("{} problem(s) found", r.errors.len() + r.affected.len()),
        ))
    }
}
