//! What a reader does where it cannot write: decide whether the repository
//! is writable here, and a scratch directory for a temporary index.
//!
//! Only the open path of a reader uses this; writers need a writable
//! repository and fail on their first write.

use crate::error::Error;
use std::path::Path;

/// Whether `e` says the repository cannot be written by this process (a
/// read-only mount, or another user's files), whichever variant carries the
/// system's error.
pub fn is_read_only(e: &Error) -> bool {
    io_cause(e).is_some_and(|io| {
        matches!(
            io.raw_os_error(),
            Some(libc::EROFS | libc::EACCES | libc::EPERM)
        )
    })
}

/// The first `std::io::Error` in `e`'s chain of causes.
pub fn io_cause(e: &Error) -> Option<&std::io::Error> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cur {
        if let Some(io) = c.downcast_ref::<std::io::Error>() {
            return Some(io);
        }
        cur = c.source();
    }
    None
}

/// Whether this process may create and change files in the index at `index`
/// (or, when there is none yet, in the repository at `root`).
pub fn writable(index: &Path, root: &Path) -> bool {
    let p = if index.exists() { index } else { root };
    let Ok(c) = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()) else {
        return false;
    };
    // SAFETY: `c` is a valid C string; access only reads it. It also reports
    // EROFS for a read-only mount, which permission bits do not show.
    unsafe { libc::access(c.as_ptr(), libc::W_OK) == 0 }
}

pub use crate::tempdir::ScratchDir;

/// What a directory that is not a snap repository holds, for the message:
/// another backup tool's repository, or the first few names.
pub fn describe_foreign(root: &Path) -> String {
    let has = |n: &str| root.join(n).exists();
    // Only its first lines tell; a README of any size is not read whole.
    let mut readme = Vec::new();
    if let Ok(f) = std::fs::File::open(root.join("README")) {
        use std::io::Read;
        let _ = f.take(4096).read_to_end(&mut readme);
    }
    if readme.windows(6).any(|w| w == b"Borg B") {
        return "it holds a Borg repository (its README says so)".into();
    }
    if has("kopia.repository.f") || has("kopia.repository") {
        return "it holds a Kopia repository (kopia.repository.f)".into();
    }
    if has("config") && has("keys") && has("data") && has("index") && has("snapshots") {
        return "it holds a restic repository (config, keys/, index/, data/, snapshots/, and a config that is not snap's)".into();
    }
    let mut names: Vec<String> = std::fs::read_dir(root)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    let n = names.len();
    names.truncate(5);
    format!(
        "it holds {n} other entr{} ({}{}) and no snap config",
        if n == 1 { "y" } else { "ies" },
        names.join(", "),
        if n > 5 { ", …" } else { "" }
    )
}
