//! Running the real binary on a repository, for the tests that kill it:
//! a command builder with a fixed environment, success checks that print
//! what went wrong, and the byte-for-byte restore check.

use super::manifest::{first_difference, manifest, Manifest};
use rand::rngs::StdRng;
use rand::RngCore;
use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_snap");
const PASSWORD: &str = "crash test password";

/// A repository driven through the binary.
pub struct Snap {
    /// The repository directory.
    pub dir: PathBuf,
}

/// A command line, for messages.
pub fn show(args: &[&OsStr]) -> String {
    args.iter()
        .map(|a| a.to_string_lossy())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Panics with the command's output unless it succeeded.
pub fn assert_ok(out: &Output, what: &str) {
    if !out.status.success() {
        panic!(
            "`snap {what}` failed ({}):\n--- stdout\n{}\n--- stderr\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// A number from the environment (seeds, iteration counts).
pub fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().map(|v| {
        v.parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a number"))
    })
}

/// `len` random bytes.
pub fn random_bytes(rng: &mut StdRng, len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    rng.fill_bytes(&mut v);
    v
}

impl Snap {
    /// `snap` with this repository, a cheap key derivation, a fixed time
    /// zone, and nothing inherited that could change what it does.
    pub fn cmd(&self) -> Command {
        let mut c = Command::new(BIN);
        c.env("SNAP_REPO", &self.dir)
            .env(
                "SNAP_CACHE_DIR",
                std::path::Path::new(&self.dir).with_file_name("cache"),
            )
            .env("SNAP_PASSWORD", PASSWORD)
            .env("SNAP_KDF_MEMORY_KIB", "1024")
            .env("SNAP_INSECURE_KDF", "1")
            .env("TZ", "Europe/Paris")
            .env_remove("SNAP_PASSWORD_FILE")
            .env_remove("SNAP_POLICY_FILE")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        c
    }

    /// Runs a command that must succeed; returns its stdout.
    pub fn ok<S: AsRef<OsStr>>(&self, args: &[S]) -> Vec<u8> {
        let args: Vec<&OsStr> = args.iter().map(|a| a.as_ref()).collect();
        let out = self.cmd().args(&args).output().expect("run snap");
        assert_ok(&out, &show(&args));
        out.stdout
    }

    /// Runs a command that must succeed and print JSON.
    pub fn json<S: AsRef<OsStr>>(&self, args: &[S]) -> serde_json::Value {
        let out = self.ok(args);
        serde_json::from_slice(&out).unwrap_or_else(|e| {
            panic!(
                "not JSON ({e}): {}",
                String::from_utf8_lossy(&out[..out.len().min(2000)])
            )
        })
    }

    /// Ids of the snapshots listed.
    pub fn snapshot_ids(&self) -> BTreeSet<String> {
        self.json(&["snapshots", "--json"])
            .as_array()
            .expect("a list")
            .iter()
            .map(|s| s["id"].as_str().expect("id").to_string())
            .collect()
    }

    /// Restores `id` into a fresh directory and compares it with `want`.
    pub fn verify(&self, scratch: &Path, id: &str, want: &Manifest) {
        let target = scratch.join(format!("restore-{id}"));
        self.ok(&[
            OsStr::new("restore"),
            OsStr::new(id),
            OsStr::new("--target"),
            target.as_os_str(),
        ]);
        let got = manifest(&target);
        assert!(
            &got == want,
            "snapshot {id} does not restore as pushed: {}",
            first_difference(want, &got)
        );
        std::fs::remove_dir_all(&target).expect("remove restore");
    }
}
