//! What a push changed against its parent, counted while the push walks
//! (no second pass): the early warning of issue 9. A compromised site looks
//! like many files changed at once, or new scripts in a directory where
//! only uploaded images belong.
//!
//! Counted are entries that are not directories (files, symlinks, devices):
//! added (no entry of that name in the parent, or a directory there before),
//! modified (content, kind, mode, owner or link target differ; a new mtime
//! alone is not a change), and deleted (in the parent, not in the source's
//! listing now; a deleted directory counts every entry beneath it). A file
//! the push could not read is neither.

use crate::format::snapshot::{Changes, DirChanges};
use crate::format::tree::{Node, NodeKind, Tree};
use crate::ops::walk::{self, Flow};
use crate::repo::Repository;
use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Mutex;

/// Most-changed directories recorded in a snapshot.
pub const TOP_DIRS: usize = 10;
/// Suspicious new files recorded by name (all are counted).
pub const SUSPICIOUS_LISTED: usize = 100;

/// File name endings a web server may execute, or that change how it
/// executes what sits beside them (`.htaccess`).
const SCRIPT_ENDINGS: &[&str] = &[
    ".php",
    ".php3",
    ".php4",
    ".php5",
    ".php7",
    ".php8",
    ".phtml",
    ".pht",
    ".phar",
    ".phps",
    ".inc",
    ".js",
    ".cgi",
    ".pl",
    ".py",
    ".sh",
    ".asp",
    ".aspx",
    ".jsp",
    ".shtml",
    ".htaccess",
];

/// Directory names where a site keeps uploaded media: no script belongs
/// there (WordPress `wp-content/uploads`, Drupal `sites/*/files`, generic
/// `upload`/`uploads`).
fn in_upload_dir(path: &Path) -> bool {
    let comps: Vec<&OsStr> = path.iter().collect();
    comps.iter().enumerate().any(|(i, c)| {
        let c = c.as_bytes();
        c.eq_ignore_ascii_case(b"uploads")
            || c.eq_ignore_ascii_case(b"upload")
            || (c == b"files" && i >= 2 && comps[i - 2].as_bytes() == b"sites")
    })
}

/// Why a file that appeared at `path` deserves a look: a script (by its
/// name, or executable), under an upload directory, or both.
pub fn flag(path: &Path, node: &Node) -> Option<&'static str> {
    if node.kind != NodeKind::File {
        return None;
    }
    let name = node.name.to_ascii_lowercase();
    let script =
        SCRIPT_ENDINGS.iter().any(|e| name.ends_with(e.as_bytes())) || node.mode & 0o111 != 0;
    let upload = path.parent().is_some_and(in_upload_dir);
    match (script, upload) {
        (true, true) => Some("script in uploads"),
        (true, false) => Some("script"),
        (false, true) => Some("upload"),
        (false, false) => None,
    }
}

/// Whether a new entry at `path` looks like a planted script: an
/// executable file, or a script by its name, under an upload directory.
pub fn suspicious(path: &Path, node: &Node) -> bool {
    flag(path, node) == Some("script in uploads")
}

/// Whether an entry counts as modified between the parent and now.
fn modified(old: &Node, new: &Node) -> bool {
    old.kind != new.kind
        || old.content != new.content
        || old.mode != new.mode
        || (old.uid, old.gid) != (new.uid, new.gid)
        || old.target != new.target
        || old.rdev != new.rdev
}

#[derive(Default)]
struct State {
    parent_entries: u64,
    added: u64,
    modified: u64,
    deleted: u64,
    by_dir: HashMap<String, u64>,
    suspicious: Vec<String>,
    suspicious_total: u64,
    /// Deleted directories whose entries could not be counted.
    uncounted: u64,
}

/// Counts a push's changes; shared by the push's threads.
#[derive(Default)]
pub struct Tracker {
    state: Mutex<State>,
}

impl Tracker {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Compares one directory's saved entries with its parent tree.
    /// `listed` are the names the directory holds now (saved or not),
    /// `saved` the entries saved.
    pub fn directory(
        &self,
        repo: &Repository,
        dir: &Path,
        parent: &Tree,
        listed: &[&[u8]],
        saved: &[Node],
    ) {
        let mut added = 0;
        let mut changed = 0;
        let mut deleted = 0;
        let mut seen = 0;
        let mut planted = Vec::new();
        for n in saved {
            let prev = parent.get(&n.name);
            if n.kind == NodeKind::Dir {
                // Its entries are counted when it is saved; what was there
                // under its name before, if not a directory, is gone.
                if prev.is_some_and(|p| p.kind != NodeKind::Dir) {
                    seen += 1;
                    deleted += 1;
                }
                continue;
            }
            match prev {
                None => {
                    added += 1;
                    let path = dir.join(OsStr::from_bytes(&n.name));
                    if suspicious(&path, n) {
                        planted.push(path.display().to_string());
                    }
                }
                Some(p) if p.kind == NodeKind::Dir => {
                    added += 1;
                    let (n_old, unknown) = count_entries(repo, p);
                    seen += n_old;
                    deleted += n_old;
                    self.lock().uncounted += unknown;
                }
                Some(p) => {
                    seen += 1;
                    if modified(p, n) {
                        changed += 1;
                    }
                }
            }
        }
        let mut listed: Vec<&[u8]> = listed.to_vec();
        listed.sort_unstable();
        for p in &parent.entries {
            if listed.binary_search(&p.name.as_slice()).is_ok() {
                continue;
            }
            if p.kind == NodeKind::Dir {
                let (n_old, unknown) = count_entries(repo, p);
                seen += n_old;
                deleted += n_old;
                self.lock().uncounted += unknown;
            } else {
                seen += 1;
                deleted += 1;
            }
        }
        let mut s = self.lock();
        s.parent_entries += seen;
        s.added += added;
        s.modified += changed;
        s.deleted += deleted;
        if added + changed + deleted > 0 {
            *s.by_dir.entry(dir.display().to_string()).or_default() += added + changed + deleted;
        }
        s.suspicious_total += planted.len() as u64;
        let room = SUSPICIOUS_LISTED.saturating_sub(s.suspicious.len());
        s.suspicious.extend(planted.into_iter().take(room));
    }

    /// The counts, for the snapshot.
    pub fn finish(self) -> Changes {
        let s = self.state.into_inner().unwrap_or_else(|p| p.into_inner());
        let mut dirs: Vec<(String, u64)> = s.by_dir.into_iter().collect();
        dirs.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        let mut suspicious = s.suspicious;
        suspicious.sort();
        Changes {
            parent_entries: s.parent_entries,
            added: s.added,
            modified: s.modified,
            deleted: s.deleted,
            top_dirs: dirs
                .into_iter()
                .take(TOP_DIRS)
                .map(|(path, changes)| DirChanges { path, changes })
                .collect(),
            suspicious,
            suspicious_total: s.suspicious_total,
            alert: false,
        }
    }
}

/// Entries that are not directories beneath the directory entry `dir` of
/// the parent, and whether they could not all be counted (1 if not).
fn count_entries(repo: &Repository, dir: &Node) -> (u64, u64) {
    let Some(root) = dir.subtree else {
        return (0, 1);
    };
    let mut n = 0u64;
    let mut broken = 0u64;
    let r = walk::walk(repo, &root, &[], &mut |e| {
        match e {
            walk::Event::Node { node, .. } if node.kind != NodeKind::Dir => n += 1,
            walk::Event::Invalid { .. } | walk::Event::TreeError { .. } => broken = 1,
            _ => {}
        }
        Ok(Flow::Continue)
    });
    if r.is_err() {
        broken = 1;
    }
    (n, broken)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str, mode: u32) -> Node {
        Node {
            mode,
            ..Node::new(name.as_bytes(), NodeKind::File)
        }
    }

    #[test]
    fn scripts_and_executables_in_upload_directories_are_suspicious() {
        let up = Path::new("/var/www/a/wp-content/uploads/2026/11/x");
        assert!(suspicious(up, &file("x.php", 0o644)));
        assert!(suspicious(up, &file("SHELL.PHTML", 0o644)));
        assert!(suspicious(up, &file(".htaccess", 0o644)));
        assert!(suspicious(up, &file("run", 0o755)));
        assert!(!suspicious(up, &file("photo.jpg", 0o644)));
        let drupal = Path::new("/srv/d/sites/default/files/x");
        assert!(suspicious(drupal, &file("x.php", 0o644)));
        assert!(!suspicious(
            Path::new("/var/www/a/wp-content/plugins/x"),
            &file("x.php", 0o644)
        ));
        assert!(!suspicious(
            Path::new("/srv/files/x"),
            &file("x.php", 0o644)
        ));
    }
}
