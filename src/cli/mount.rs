//! `snap mount MOUNTPOINT`: the repository as a read-only file system, in
//! the foreground until it is unmounted (`fusermount -u MOUNTPOINT`, or
//! Ctrl-C / SIGTERM, which unmount it and exit 128 + the signal).

use super::{signals, term, Ctx};
use anyhow::{bail, Context, Result};
use snap::ops::mount::{SnapFs, Views};
use snap::repo::Mode;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Mount the repository read-only: sites/, levels/, ids/, latest/.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// An empty directory to mount on.
    mountpoint: PathBuf,
    /// Memory for decoded trees and chunks, in MiB.
    #[arg(long, default_value_t = 256, value_name = "MIB")]
    cache_mib: usize,
}

/// Held while the file system is being mounted, so that a signal in that
/// moment unmounts it once it is there rather than leave it behind.
static MOUNTING: Mutex<()> = Mutex::new(());

const DEV_FUSE: &str = "/dev/fuse";

fn is_root() -> bool {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Refuses a mount point that is missing, not a directory, already a
/// mount point or not empty; returns its canonical path.
fn check_mountpoint(p: &Path) -> Result<PathBuf> {
    let shown = p.display();
    let md = match std::fs::metadata(p) {
        Ok(md) => md,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            bail!("{shown} does not exist: create an empty directory there (`mkdir -p {shown}`) or mount elsewhere")
        }
        Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) => {
            bail!("{shown} is a mount whose file system is gone ({e}): unmount it with `fusermount -u {shown}` (or `umount -l {shown}`), then mount again")
        }
        Err(e) => bail!("{shown} cannot be used as a mount point: {e}"),
    };
    if !md.is_dir() {
        bail!("{shown} is not a directory: give an empty directory to mount on");
    }
    let canon = p
        .canonicalize()
        .with_context(|| format!("resolving the mount point {shown}"))?;
    if snap::repo::mounted_now().contains(&canon) {
        bail!(
            "{} is already a mount point (busy): unmount what is there first (`fusermount -u {}` for a snap mount, else `umount`), or choose another empty directory",
            canon.display(),
            canon.display()
        );
    }
    let entries = std::fs::read_dir(&canon)
        .with_context(|| format!("listing the mount point {shown}"))?
        .count();
    if entries > 0 {
        bail!("{shown} is not empty ({entries} entries): mount on an empty directory, a mount would hide what it holds");
    }
    Ok(canon)
}

/// A program on the PATH.
fn on_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .as_bytes()
        .split(|&b| b == b':')
        .map(|d| Path::new(std::ffi::OsStr::from_bytes(d)).join(name))
        .find(|p| p.is_file())
}

/// Refuses to go on without what FUSE needs here: /dev/fuse, and, for a
/// user other than root, fusermount3 or fusermount (which mount for it).
fn check_fuse() -> Result<()> {
    match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(DEV_FUSE)
    {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
            "{DEV_FUSE} is missing, so nothing can be mounted: load the kernel module (`modprobe fuse`); in a container, give it the device (`--device {DEV_FUSE} --cap-add SYS_ADMIN`)"
        ),
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied && !is_root() => {}
        Err(e) => bail!("{DEV_FUSE} cannot be opened ({e}): check the device's permissions, or run as root"),
    }
    if !is_root() && on_path("fusermount3").is_none() && on_path("fusermount").is_none() {
        bail!("mounting as a user other than root needs fusermount3 or fusermount, found on no directory of PATH: install the fuse3 package (`apt-get install fuse3`), or run as root");
    }
    Ok(())
}

/// Detaches the mount at `path` at once, even while a shell is inside it
/// (a lazy unmount): what is still open there fails from now on.
fn unmount(path: &Path) -> String {
    if is_root() {
        if let Ok(c) = std::ffi::CString::new(path.as_os_str().as_bytes()) {
            // SAFETY: `c` is a valid NUL-terminated path.
            if unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) } == 0 {
                return format!("{} was unmounted", path.display());
            }
        }
    }
    for prog in ["fusermount3", "fusermount"] {
        let done = std::process::Command::new(prog)
            .args(["-u", "-z", "--"])
            .arg(path)
            .stdin(std::process::Stdio::null())
            .output();
        if done.is_ok_and(|o| o.status.success()) {
            return format!("{} was unmounted", path.display());
        }
    }
    format!(
        "unmounting {} failed: run `fusermount -u -z {}`",
        path.display(),
        path.display()
    )
}

pub fn run(ctx: &Ctx, a: Args) -> Result<i32> {
    let mountpoint = check_mountpoint(&a.mountpoint)?;
    check_fuse()?;
    let repo = ctx.open(Mode::Read, "mount")?;
    let warn: Arc<dyn Fn(String) + Send + Sync> =
        Arc::new(|m: String| eprintln!("snap: warning: {}", term::escape_message(&m)));
    let views = Views::new(repo, ctx.cache.clone(), ctx.timezone(), warn.clone())?;
    // SAFETY: getuid and getgid cannot fail.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    let fs = SnapFs::new(views, a.cache_mib.max(16) << 20, uid, gid, warn);
    let mut config = fuser::Config::default();
    config.mount_options = vec![
        fuser::MountOption::RO,
        fuser::MountOption::FSName("snap".into()),
        fuser::MountOption::Subtype("snap".into()),
        fuser::MountOption::NoAtime,
    ];
    // Several requests at once: the kernel reads ahead while a chunk is
    // being decoded, and one slow read does not stop a listing.
    config.n_threads = Some(4);
    config.clone_fd = true;
    let hook_path = mountpoint.clone();
    signals::on_stop(Box::new(move || {
        let _mounted = MOUNTING.lock().unwrap_or_else(|p| p.into_inner());
        unmount(&hook_path)
    }));
    let session = {
        let _mounting = MOUNTING.lock().unwrap_or_else(|p| p.into_inner());
        fuser::Session::new(fs, &mountpoint, &config).with_context(|| {
            format!(
                "mounting on {} failed (is FUSE usable here? see `dmesg`)",
                mountpoint.display()
            )
        })?
    };
    if !ctx.quiet {
        eprintln!(
            "snap: mounted read-only on {m}: sites/, levels/, ids/, latest/; unmount with `fusermount -u {m}` or Ctrl-C",
            m = mountpoint.display()
        );
    }
    session
        .run()
        .with_context(|| format!("serving the mount on {}", mountpoint.display()))?;
    if !ctx.quiet {
        eprintln!("snap: {} was unmounted", mountpoint.display());
    }
    Ok(0)
}
