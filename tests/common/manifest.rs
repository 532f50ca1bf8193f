//! What a snapshot must restore to: every entry under a directory with its
//! mode, and for files their length and BLAKE3 hash (so a long history can be
//! remembered without keeping copies of every tree).

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// One entry as pushed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Entry {
    /// A directory.
    Dir { mode: u32 },
    /// A file.
    File { mode: u32, len: u64, hash: String },
    /// A symbolic link.
    Symlink { target: PathBuf },
}

/// Every entry under a directory (not the directory itself), by relative path.
pub type Manifest = BTreeMap<PathBuf, Entry>;

/// The manifest of the tree at `root`.
pub fn manifest(root: &Path) -> Manifest {
    fn walk(root: &Path, dir: &Path, out: &mut Manifest) {
        for e in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = e.expect("directory entry").path();
            let md = std::fs::symlink_metadata(&path).expect("metadata");
            let rel = path.strip_prefix(root).expect("under root").to_path_buf();
            let mode = md.permissions().mode() & 0o7777;
            let entry = if md.file_type().is_symlink() {
                Entry::Symlink {
                    target: std::fs::read_link(&path).expect("link"),
                }
            } else if md.is_dir() {
                walk(root, &path, out);
                Entry::Dir { mode }
            } else {
                let bytes = std::fs::read(&path).expect("read file");
                Entry::File {
                    mode,
                    len: bytes.len() as u64,
                    hash: blake3::hash(&bytes).to_hex().to_string(),
                }
            };
            out.insert(rel, entry);
        }
    }
    let mut out = Manifest::new();
    walk(root, root, &mut out);
    out
}

/// The manifest of a stream pushed with `--stdin --name NAME` (mode 0600).
pub fn stream_manifest(name: &str, bytes: &[u8]) -> Manifest {
    Manifest::from([(
        PathBuf::from(name),
        Entry::File {
            mode: 0o600,
            len: bytes.len() as u64,
            hash: blake3::hash(bytes).to_hex().to_string(),
        },
    )])
}

/// Names the first difference, so a failure says which file broke.
pub fn first_difference(want: &Manifest, got: &Manifest) -> String {
    for (p, w) in want {
        match got.get(p) {
            None => return format!("{} is missing", p.display()),
            Some(g) if g != w => return format!("{}: expected {w:?}, restored {g:?}", p.display()),
            _ => {}
        }
    }
    match got.keys().find(|p| !want.contains_key(*p)) {
        Some(p) => format!("{} was restored but never pushed", p.display()),
        None => "no difference".into(),
    }
}
