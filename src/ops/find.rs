//! `find`: the paths of a snapshot matching a glob, across many snapshots.
//!
//! A glob without `/` matches an entry's name at any depth; one with `/`
//! matches the whole path inside the snapshot (without its leading `/`).
//! The matches under each tree are memoized by tree id (and, for a
//! whole-path glob, by the tree's path, on which its matches depend), so a
//! tree already seen in another snapshot is not walked again: scanning a
//! hundred snapshots of a mostly unchanged site walks each distinct tree
//! once. The walk is the one walker's, strict: a damaged entry is an error.

use crate::error::{Error, Result};
use crate::id::TreeId;
use crate::ops::cache::ReadCache;
use crate::ops::diff::at_path;
use crate::ops::walk::{self, Event, Flow};
use crate::repo::Repository;
use globset::{GlobBuilder, GlobMatcher};
use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Arc;

/// The matches beneath one tree, relative to it, in name order.
#[derive(Default)]
struct Found {
    /// Entry name, whether the entry itself matches, and the matches
    /// beneath it (for a directory holding some).
    entries: Vec<(Vec<u8>, bool, Option<Arc<Found>>)>,
    /// Matches in all.
    count: usize,
}

impl Found {
    fn attach(&mut self, name: &[u8], sub: Arc<Found>) {
        if sub.count == 0 {
            return;
        }
        self.count += sub.count;
        match self.entries.last_mut() {
            Some(last) if last.0 == name => last.2 = Some(sub),
            _ => self.entries.push((name.to_vec(), false, Some(sub))),
        }
    }
}

/// Finds the paths matching one glob, remembering what it saw.
pub struct Finder {
    glob: GlobMatcher,
    whole_path: bool,
    memo: HashMap<(TreeId, Vec<Vec<u8>>), Arc<Found>>,
    /// Trees walked so far (read, or taken from the cache).
    pub trees_loaded: u64,
}

impl Finder {
    /// A finder for `glob` (globset syntax; `*` does not cross `/`).
    pub fn new(glob: &str) -> Result<Finder> {
        let whole_path = glob.contains('/');
        let pattern = glob.trim_start_matches('/');
        let glob = GlobBuilder::new(pattern)
            .literal_separator(true)
            .backslash_escape(true)
            .build()
            .map_err(|e| Error::Usage(format!("{glob:?} is not a valid glob: {e}")))?
            .compile_matcher();
        Ok(Finder {
            glob,
            whole_path,
            memo: HashMap::new(),
            trees_loaded: 0,
        })
    }

    fn matches(&self, path: &[Vec<u8>]) -> bool {
        let text = if self.whole_path {
            path.join(&b'/')
        } else {
            path.last().cloned().unwrap_or_default()
        };
        self.glob.is_match(Path::new(OsStr::from_bytes(&text)))
    }

    fn key(&self, id: &TreeId, path: &[Vec<u8>]) -> (TreeId, Vec<Vec<u8>>) {
        let at = if self.whole_path {
            path.to_vec()
        } else {
            Vec::new()
        };
        (*id, at)
    }

    /// The paths (starting with `/`, as stored) under the tree `root`
    /// matching the glob, in path order.
    pub fn find(
        &mut self,
        repo: &Repository,
        cache: &ReadCache,
        root: &TreeId,
    ) -> Result<Vec<Vec<u8>>> {
        let mut building: Vec<Found> = Vec::new();
        let mut result: Option<Arc<Found>> = None;
        walk::walk_cached(repo, Some(cache), root, &[], &mut |e| match e {
            Event::Enter { path, id } => {
                if let Some(f) = self.memo.get(&self.key(id, path)).cloned() {
                    match building.last_mut() {
                        Some(parent) => parent.attach(path.last().expect("below the root"), f),
                        None => result = Some(f),
                    }
                    return Ok(Flow::Skip);
                }
                self.trees_loaded += 1;
                building.push(Found::default());
                Ok(Flow::Continue)
            }
            Event::Node { path, node } => {
                if self.matches(path) {
                    let here = building.last_mut().expect("a node lies in a tree");
                    here.entries.push((node.name.clone(), true, None));
                    here.count += 1;
                }
                Ok(Flow::Continue)
            }
            Event::Leave { path, id } => {
                let done = Arc::new(building.pop().expect("a tree was entered"));
                self.memo.insert(self.key(id, path), done.clone());
                match building.last_mut() {
                    Some(parent) => parent.attach(path.last().expect("below the root"), done),
                    None => result = Some(done),
                }
                Ok(Flow::Continue)
            }
            Event::Invalid { path, why, .. } => Err(Error::corrupt(
                format!("tree entry {}", walk::display_path(path)),
                format!("{why}; run `snap check` to see what else the snapshot holds"),
            )),
            Event::TreeError { path, error, .. } => Err(at_path(error, path)),
        })?;
        Ok(result.map(|f| expand(&f)).unwrap_or_default())
    }
}

/// Full paths of the matches under `root`, without recursion.
fn expand(root: &Arc<Found>) -> Vec<Vec<u8>> {
    let mut out = Vec::with_capacity(root.count);
    let mut stack: Vec<(Vec<u8>, Arc<Found>, usize)> = vec![(Vec::new(), root.clone(), 0)];
    while let Some((prefix, found, i)) = stack.pop() {
        let Some((name, matched, sub)) = found.entries.get(i) else {
            continue;
        };
        let path = [prefix.as_slice(), b"/", name].concat();
        if *matched {
            out.push(path.clone());
        }
        let sub = sub.clone();
        stack.push((prefix, found, i + 1));
        if let Some(sub) = sub {
            stack.push((path, sub, 0));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(p: &str) -> Vec<Vec<u8>> {
        p.split('/').map(|c| c.as_bytes().to_vec()).collect()
    }

    #[test]
    fn a_glob_without_slash_matches_names_one_with_slash_whole_paths() {
        let name = Finder::new("*.php").unwrap();
        assert!(name.matches(&path("a/b/x.php")));
        assert!(name.matches(&path("x.php")));
        assert!(!name.matches(&path("x.php/y")));
        let whole = Finder::new("wp-content/uploads/**").unwrap();
        assert!(whole.matches(&path("wp-content/uploads/2024/x.php")));
        assert!(!whole.matches(&path("site/wp-content/uploads/x.php")));
        assert!(!whole.matches(&path("wp-content/x.php")));
        let star = Finder::new("/wp-content/*.php").unwrap();
        assert!(star.matches(&path("wp-content/x.php")));
        assert!(!star.matches(&path("wp-content/a/x.php")));
        assert!(Finder::new("a[").is_err());
    }

    #[test]
    fn expansion_lists_paths_in_order() {
        let leaf = Arc::new(Found {
            entries: vec![(b"c".to_vec(), true, None)],
            count: 1,
        });
        let root = Arc::new(Found {
            entries: vec![
                (b"a".to_vec(), true, Some(leaf.clone())),
                (b"b".to_vec(), false, Some(leaf)),
                (b"z".to_vec(), true, None),
            ],
            count: 5,
        });
        let got: Vec<String> = expand(&root)
            .into_iter()
            .map(|p| String::from_utf8(p).unwrap())
            .collect();
        assert_eq!(got, ["/a", "/a/c", "/b/c", "/z"]);
    }
}
