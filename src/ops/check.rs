//! Check: is everything the snapshots need present, and (with `read_data`)
//! intact?
//!
//! Structure check: every snapshot decodes and its time parses, every tree
//! and chunk list it reaches decodes, every entry follows the rules restore
//! applies (the shared walker and its validation: names, required fields,
//! sizes, group totals, depth, cycles), hard links agree, every chunk it
//! names is in the index with the length its record gives, and every pack
//! the index names exists with the recorded size. Data check: every pack hashes
//! to its name, its header decodes, and every blob opens and hashes to its
//! id. Damage is reported with the snapshots and paths it affects.

use crate::backend::FileType;
use crate::error::{Error, Result};
use crate::format::blob;
use crate::format::state::Finding;
use crate::format::tree::{Content, Node, NodeKind};
use crate::id::{BlobRef, PackId, SnapshotId, TreeId};
use crate::index::BlobLocation;
use crate::ops::verify;
use crate::ops::walk::{display_path, walk, Event, Flow, MAX_DEPTH};
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
    /// The repository against its state record (format version 4):
    /// rollbacks, deleted or replayed snapshots, deleted markers, key files
    /// planted or altered, pushes not recorded yet.
    pub state: Vec<Finding>,
}

impl CheckReport {
    /// True when nothing is damaged and nothing contradicts the state.
    pub fn ok(&self) -> bool {
        self.errors.is_empty() && self.affected.is_empty() && !self.state_failed()
    }

    /// Whether a state finding is an error.
    pub fn state_failed(&self) -> bool {
        self.state.iter().any(Finding::is_error)
    }
}

/// Runs the check.
pub fn check(repo: &Repository, read_data: bool, progress: &dyn Progress) -> Result<CheckReport> {
    check_reading(repo, if read_data { 1.0 } else { 0.0 }, progress)
}

/// [`check`], reading a random share `fraction` (0 to 1) of the packs:
/// `--read-data-subset 5%` verifies a twentieth of a remote copy per run,
/// and over many runs all of it, without downloading it whole each time.
pub fn check_reading(
    repo: &Repository,
    fraction: f64,
    progress: &dyn Progress,
) -> Result<CheckReport> {
    let read_data = fraction > 0.0;
    let mut report = CheckReport {
        state: repo.state_findings()?,
        ..CheckReport::default()
    };
    // A name that is not a pack id is not part of the repository: noted
    // and left alone, like stray names elsewhere.
    let (on_disk, stray): (HashMap<String, u64>, HashMap<String, u64>) = repo
        .backend
        .list_sizes(FileType::Pack)?
        .into_iter()
        .partition(|(n, _)| PackId::from_hex(n).is_ok());
    for name in stray.keys() {
        report.warnings.push(format!(
            "{name:?} in a directory under data/ is not a pack id: skipped (move it out of the repository)"
        ));
    }
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
        let mut names: Vec<(&String, &u64)> = on_disk.iter().collect();
        if fraction < 1.0 {
            use rand::seq::SliceRandom;
            names.shuffle(&mut rand::thread_rng());
            let keep = ((names.len() as f64 * fraction).ceil() as usize).min(names.len());
            names.truncate(keep);
        }
        let found: Vec<(String, PackVerdict)> = names
            .par_iter()
            .map(|(name, size)| {
                let r = verify_pack(repo, name, **size);
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
    let mut clean_trees: HashMap<TreeId, Clean> = HashMap::new();
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
        if let Err(e) = chrono::DateTime::parse_from_rfc3339(&snap.time) {
            report.errors.push(Problem {
                object: format!("snapshot {sid}"),
                message: format!(
                    "time {:?} is not RFC 3339 ({e}): it sorts as 1970-01-01 and retention cannot place it",
                    snap.time
                ),
            });
        }
        let mut w = Walker {
            repo,
            sid,
            bad_packs: &bad_packs,
            bad_blobs: &bad_blobs,
            seen_trees: &mut seen_trees,
            clean_trees: &mut clean_trees,
            report: &mut report,
            entered: HashSet::new(),
            open: Vec::new(),
            links: HashMap::new(),
        };
        walk(repo, &snap.tree, &[], &mut |e| w.event(e))?;
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
    /// Trees with nothing damaged beneath them, with their height (levels
    /// of trees, themselves included): not walked again where they fit
    /// under the depth bound.
    clean_trees: &'a mut HashMap<TreeId, Clean>,
    report: &'a mut CheckReport,
    /// Trees entered in this snapshot: a damaged one reused at another
    /// place is reported at its first place only, so a crafted snapshot
    /// that reuses one tree many times over cannot make the walk explode.
    entered: HashSet<TreeId>,
    /// The trees on the current path.
    open: Vec<Open>,
    /// First path and content of each hard-link group of this snapshot.
    links: HashMap<(u64, u64), (String, u64, Option<Content>)>,
}

/// What is known of a tree with nothing damaged beneath it.
#[derive(Clone, Copy)]
struct Clean {
    /// Levels of trees, itself included.
    height: usize,
    /// Whether a file beneath it may be a hard link: its group can span
    /// other trees of a snapshot, so the tree is walked in each snapshot.
    links: bool,
}

/// A tree on the current path.
struct Open {
    id: TreeId,
    /// Affected paths reported when it was entered.
    affected_before: usize,
    /// What is known so far of the trees beneath it.
    below: Clean,
}

impl Walker<'_> {
    /// Where the index places `b`, or what is wrong with it.
    fn locate(&self, b: &BlobRef) -> Result<std::result::Result<BlobLocation, String>> {
        let name = || format!("{:?} blob {}", b.kind, hex::encode(b.id));
        if self.bad_blobs.contains(b) {
            return Ok(Err(format!("{} is damaged", name())));
        }
        match self.repo.locate(b)? {
            None => Ok(Err(format!("{} is missing", name()))),
            Some(loc) if self.bad_packs.contains(&loc.pack) => {
                Ok(Err(format!("{} is in damaged pack {}", name(), loc.pack)))
            }
            Some(loc) => Ok(blob::check_lengths(b, loc.length, loc.raw_len)
                .map(|()| loc)
                .map_err(|e| e.to_string())),
        }
    }

    fn blob_problem(&self, b: &BlobRef) -> Result<Option<String>> {
        Ok(self.locate(b)?.err())
    }

    fn child_done(&mut self, child: Clean) {
        if let Some(parent) = self.open.last_mut() {
            parent.below.height = parent.below.height.max(child.height);
            parent.below.links |= child.links;
        }
    }

    fn affected(&mut self, path: &str, reason: String) {
        self.report.affected.push(Affected {
            snapshot: self.sid.short(),
            path: path.into(),
            reason,
        });
    }

    fn tree_error(&mut self, id: &TreeId, path: &str, message: String) {
        if self.seen_trees.insert(*id) {
            self.report.errors.push(Problem {
                object: format!("tree {id}"),
                message: message.clone(),
            });
        }
        self.affected(path, message);
    }

    fn event(&mut self, e: Event) -> Result<Flow> {
        match e {
            Event::Enter { path, id } => {
                // A clean tree seen in an earlier snapshot need not be walked
                // again, but the paths a damaged one breaks are reported per
                // snapshot. One on the current path is let through: the
                // walker reports the cycle.
                // A clean tree is only clean where it fits under the depth
                // bound: the same tree can sit deeper in another snapshot.
                if let Some(&clean) = self.clean_trees.get(id) {
                    if self.open.len() + clean.height <= MAX_DEPTH && !clean.links {
                        self.child_done(clean);
                        return Ok(Flow::Skip);
                    }
                }
                if self.entered.contains(id)
                    && !self.clean_trees.contains_key(id)
                    && !self.open.iter().any(|o| o.id == *id)
                {
                    return Ok(Flow::Skip);
                }
                self.entered.insert(*id);
                if let Some(p) = self.blob_problem(&(*id).into())? {
                    self.tree_error(id, &display_path(path), p);
                    return Ok(Flow::Skip);
                }
                self.open.push(Open {
                    id: *id,
                    affected_before: self.report.affected.len(),
                    below: Clean {
                        height: 0,
                        links: false,
                    },
                });
                Ok(Flow::Continue)
            }
            Event::TreeError { path, id, error } => {
                self.open.pop();
                self.tree_error(id, &display_path(path), error.to_string());
                Ok(Flow::Continue)
            }
            Event::Leave { id, .. } => {
                self.seen_trees.insert(*id);
                if let Some(o) = self.open.pop() {
                    let done = Clean {
                        height: o.below.height + 1,
                        links: o.below.links,
                    };
                    self.child_done(done);
                    if self.report.affected.len() == o.affected_before {
                        self.clean_trees.insert(*id, done);
                    }
                }
                Ok(Flow::Continue)
            }
            Event::Invalid { path, why, .. } => {
                self.affected(&display_path(path), format!("invalid entry: {why}"));
                Ok(Flow::Continue)
            }
            Event::Node { path, node } => {
                if let (NodeKind::File, Some(content)) = (node.kind, &node.content) {
                    let p = display_path(path);
                    self.hard_link(node, &p);
                    self.file(content, &p)?;
                }
                Ok(Flow::Continue)
            }
        }
    }

    /// Members of a hard-link group are restored as links to the first one:
    /// they must all have its contents.
    fn hard_link(&mut self, n: &Node, path: &str) {
        if n.nlink <= 1 || n.inode == 0 {
            return;
        }
        if let Some(o) = self.open.last_mut() {
            o.below.links = true;
        }
        match self.links.get(&(n.dev, n.inode)) {
            None => {
                self.links.insert(
                    (n.dev, n.inode),
                    (path.to_string(), n.size, n.content.clone()),
                );
            }
            Some((first, size, content)) if *size != n.size || *content != n.content => {
                let why = format!(
                    "a hard link to {first} (same device and inode) with other contents: restore would give it {first}'s"
                );
                self.affected(path, why);
            }
            Some(_) => {}
        }
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
            for (c, len) in group {
                if problem.is_some() {
                    break;
                }
                problem = match self.locate(&(*c).into())? {
                    Err(p) => Some(p),
                    Ok(loc) if loc.raw_len != *len => Some(format!(
                        "chunk {c} has {} bytes, the chunk list says {len}",
                        loc.raw_len
                    )),
                    Ok(_) => None,
                };
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

fn verify_pack(repo: &Repository, name: &str, size: u64) -> PackVerdict {
    let obj = || format!("pack {name}");
    let whole = |message: String| {
        (
            vec![Problem {
                object: obj(),
                message,
            }],
            Vec::new(),
            true,
        )
    };
    let Ok(id) = PackId::from_hex(name) else {
        return whole("name is not a pack id".into());
    };
    let mut probs = Vec::new();
    let mut bad = Vec::new();
    let hash_problem = || Problem {
        object: obj(),
        message: "contents do not hash to its name (bit rot or tampering)".into(),
    };
    let entries = match repo.read_pack_header(&id, size) {
        Ok(e) => e,
        Err(e) => {
            match verify::hashes_to_its_name(repo, &id, size) {
                Ok(true) => {}
                Ok(false) => probs.push(hash_problem()),
                Err(e) => return whole(e.to_string()),
            }
            probs.push(Problem {
                object: obj(),
                message: e.to_string(),
            });
            return (probs, bad, true);
        }
    };
    let reading = match verify::read_pack(repo, &id, size, &entries) {
        Ok(r) => r,
        Err(e) => return whole(e.to_string()),
    };
    if !reading.hash_ok {
        probs.push(hash_problem());
    }
    for (e, verdict) in entries.into_iter().zip(reading.blobs) {
        let Err(why) = verdict else { continue };
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
