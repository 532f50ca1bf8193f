//! Modes of what snap creates: a repository and its cache are their
//! user's only (0700 directories, 0600 files), and one that group or
//! others can read is warned about, not changed (format-spec.md §2).

mod common;

use common::*;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

fn mode(p: &Path) -> u32 {
    fs::metadata(p).unwrap().permissions().mode() & 0o777
}

fn set_mode(p: &Path, m: u32) {
    fs::set_permissions(p, fs::Permissions::from_mode(m)).unwrap();
}

#[test]
fn a_new_repository_is_this_users_only() {
    let repo = Repo::new();
    let src = repo.dir("src");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("f"), noise(1, 100_000)).unwrap();
    repo.push(&src, &[]);
    repo.ok(&["protect", "latest"]);
    let p = &repo.path;
    for d in [
        "",
        "keys",
        "snapshots",
        "data",
        "data/00",
        "locks",
        "protected",
    ] {
        assert_eq!(mode(&p.join(d)), 0o700, "{d}/");
    }
    // The cache (index, staging) is this user's only too.
    let index = repo.index_dir();
    for d in [
        index.parent().unwrap(),
        &index,
        &index.with_file_name("staging"),
    ] {
        assert_eq!(mode(d), 0o700, "{}", d.display());
    }
    assert!(!p.join("index").exists(), "the index lives in the cache");
    let files = repo.files();
    for kind in ["keys/", "snapshots/", "data/", "protected/"] {
        assert!(
            files.keys().any(|f| f.to_string_lossy().starts_with(kind)),
            "no file in {kind}"
        );
    }
    for f in files.keys() {
        assert_eq!(mode(&p.join(f)), 0o600, "{}", f.display());
    }
    assert_eq!(mode(&p.join("config")), 0o600);

    // An empty directory given to init becomes private too.
    let empty = Repo::uninit();
    fs::create_dir(&empty.path).unwrap();
    set_mode(&empty.path, 0o755);
    assert_success(&empty.run(&["init"]), "init into an empty directory");
    assert_eq!(mode(&empty.path), 0o700);
    let out = empty.ok(&["snapshots"]);
    assert!(!stderr(&out).contains("warning"), "{}", stderr(&out));
}

#[test]
fn a_repository_others_can_read_is_warned_about_once() {
    let repo = Repo::new();
    let p = &repo.path;
    for d in ["", "keys"] {
        set_mode(&p.join(d), 0o755);
    }
    let out = repo.ok(&["--quiet", "snapshots"]);
    let e = stderr(&out);
    assert_eq!(e.matches("snap: warning:").count(), 1, "{e}");
    let root = p.display().to_string();
    assert!(e.contains(&format!("{root} (mode 0755)")), "{e}");
    assert!(e.contains(&format!("{root}/keys (mode 0755)")), "{e}");
    assert!(e.contains(&format!("chmod -R go-rwx {root}")), "{e}");
    // Warned about, not changed.
    assert_eq!(mode(p), 0o755);
    assert_eq!(mode(&p.join("keys")), 0o755);

    set_mode(&p.join("keys"), 0o700);
    let e = stderr(&repo.ok(&["snapshots"]));
    assert!(e.contains(&format!("{root} (mode 0755)")), "{e}");
    assert!(!e.contains("keys (mode"), "{e}");
    set_mode(p, 0o750);
    assert!(stderr(&repo.ok(&["snapshots"])).contains("(mode 0750)"));
    set_mode(p, 0o700);
    let e = stderr(&repo.ok(&["snapshots"]));
    assert!(!e.contains("warning"), "{e}");
}
