//! Key files: one per password, each wrapping the master key (format-spec.md
//! §6); unlocking with them, calibrating new ones, adding, listing and
//! removing them.
//!
//! Unlocking tries the key file that worked last on this machine first and
//! stops once Argon2id has spent the unlock budget: key files planted with
//! high costs can slow an unlock, not hold it for ever.

use super::{lock, read, Repository};
use crate::backend::{Backend, FileType};
use crate::error::{Error, Result};
use crate::format::config::Config;
use crate::format::crypto::{self, KdfParams, KeyFile, KeyInfo, Keys, Unwrapped};
use crate::format::state::{file_hash, Change};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long one derivation of a new key file should take on the machine
/// that makes it.
pub const KDF_TARGET: Duration = Duration::from_millis(500);

/// Argon2id time after which unlocking stops trying further key files.
pub const UNLOCK_BUDGET: Duration = Duration::from_secs(10);

/// What `snap key list` shows.
#[derive(Clone, Debug, serde::Serialize)]
pub struct KeyListing {
    /// Key file name.
    pub id: String,
    /// Key file version (0 when it cannot be read).
    pub version: u32,
    /// Whether it is the key this session opened with.
    pub current: bool,
    /// Its label (version 2; none in version 1). Only the current key's
    /// label is verified: the others' are as the storage returned them.
    pub label: Option<String>,
    /// When it was added.
    pub created: String,
    /// Host and user that added it.
    pub host: String,
    /// User that added it.
    pub user: String,
    /// Its Argon2id costs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kdf: Option<KdfParams>,
    /// Why the file cannot be used, when it cannot (planted, damaged,
    /// oversized): it is listed, not a reason to fail the listing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub damaged: Option<String>,
    /// Why the repository's state record does not vouch for this file
    /// (not listed: planted?; other bytes: altered?), in a version-4
    /// repository.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unrecorded: Option<String>,
}

/// The settings of a key file to write.
#[derive(Clone, Debug)]
pub struct NewKey {
    /// Argon2id costs (see [`calibrate_kdf`]).
    pub kdf: KdfParams,
    /// Its label; `user@host` when none is given. Only key files of
    /// version 2 (format version 4 on) store one.
    pub label: Option<String>,
}

impl NewKey {
    /// A key with these costs and the default label.
    pub fn with_kdf(kdf: KdfParams) -> Self {
        NewKey { kdf, label: None }
    }
}

fn user_name() -> String {
    std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "unknown".into())
}

/// Argon2id costs for a new key file: the memory and lanes of
/// [`crypto::KDF_MIN_WRITE`], and as many passes as make one derivation
/// last about `target` on this machine (at least its passes, at most what
/// the read caps allow). Times one derivation of 1 pass and one of 3.
pub fn calibrate_kdf(target: Duration) -> Result<KdfParams> {
    let probe = crypto::KDF_MIN_WRITE;
    let time = |passes: u32| -> Result<(u32, Duration)> {
        let t = Instant::now();
        crypto::derive_for_timing(KdfParams {
            iterations: passes,
            ..probe
        })?;
        Ok((passes, t.elapsed()))
    };
    let short = time(1)?;
    let long = time(probe.iterations)?;
    Ok(KdfParams {
        iterations: crypto::calibrated_passes(probe.memory_kib, short, long, target),
        ..probe
    })
}

/// Wraps the master key with `password` in a new key file of the version
/// `config`'s format uses; returns its name and the BLAKE3 hash (hex) of its
/// bytes, as the state records it.
pub(super) fn write_key_file(
    backend: &dyn Backend,
    keys: &Keys,
    config: &Config,
    password: &[u8],
    key: &NewKey,
) -> Result<(String, String)> {
    let version = crypto::key_file_version(config.version);
    if version < 2 && key.label.is_some() {
        return Err(Error::Usage(format!(
            "key labels need format version 4; this repository is version {} (its key files stay version 1, which older snap versions read)",
            config.version
        )));
    }
    let (host, user) = (lock::host_name(), user_name());
    let kf = KeyFile::wrap(
        keys,
        password,
        key.kdf,
        version,
        KeyInfo {
            label: key
                .label
                .clone()
                .unwrap_or_else(|| format!("{user}@{host}")),
            created: chrono::Local::now().to_rfc3339(),
            host,
            user,
            repository: config.id,
        },
    )?;
    let name = format!(
        "{:016x}{:016x}",
        rand::random::<u64>(),
        rand::random::<u64>()
    );
    let bytes = serde_json::to_vec_pretty(&kf).expect("key file serialises");
    backend.write(FileType::Key, &name, &bytes)?;
    Ok((name, file_hash(&bytes)))
}

/// The unlock budget: [`UNLOCK_BUDGET`], or `SNAP_UNLOCK_BUDGET_MS`
/// (tests set it low; an operator with many key files may raise it).
fn unlock_budget() -> Duration {
    std::env::var("SNAP_UNLOCK_BUDGET_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .map(Duration::from_millis)
        .unwrap_or(UNLOCK_BUDGET)
}

/// The local record of the key file that opened last: its name and a
/// digest of its bytes (key files are never rewritten, so a digest that
/// changes means the file was altered).
fn digest_path(index: &Path) -> PathBuf {
    index.join("snap-last-key.blake3")
}

fn digest(bytes: &[u8]) -> String {
    blake3::hash(bytes).to_hex().to_string()
}

/// What opening the repository found out with the password.
pub(super) struct Unlocked {
    pub keys: Keys,
    pub config: Config,
    /// Key files skipped for a reason the user should hear.
    pub warnings: Vec<String>,
    pub hint: KeyHint,
}

/// Which key file opened, for [`remember`].
pub(super) struct KeyHint {
    pub key_id: String,
    /// The name recorded on this machine before this open.
    last_key: Option<String>,
    digest: String,
}

/// Finds the key file `password` opens and decodes the config with it. The
/// key file that opened last here goes first (`index/snap-last-key`); files
/// that cannot be used are skipped, so one damaged or planted file does not
/// lock out the other passwords.
pub(super) fn unlock(
    backend: &dyn Backend,
    cfg_bytes: &[u8],
    password: &[u8],
    index: &Path,
) -> Result<Unlocked> {
    let last_key = std::fs::read_to_string(read::last_key_path(index)).ok();
    let recorded = std::fs::read_to_string(digest_path(index)).ok();
    let recorded = recorded
        .as_deref()
        .and_then(|r| r.trim_end().split_once(' '));
    let names = read::key_order(backend.list(FileType::Key)?, last_key.as_deref());
    let budget = unlock_budget();
    let mut spent = Duration::ZERO;
    let mut wrong = 0;
    let mut unusable = Vec::new();
    let mut refused = Vec::new();
    let mut config_error = None;
    let mut unreadable = None;
    for (i, name) in names.iter().enumerate() {
        if spent > budget {
            return Err(Error::UnlockBudget {
                tried: i,
                untried: names.len() - i,
                spent_ms: spent.as_millis() as u64,
                budget_ms: budget.as_millis() as u64,
            });
        }
        let bytes = match read::bounded(backend, FileType::Key, name, read::MAX_KEY_FILE) {
            Ok(b) => b,
            Err(e) => {
                unusable.push(format!("keys/{name} cannot be read ({e})"));
                if matches!(e, Error::Storage { .. }) && !e.is_not_found() {
                    unreadable.get_or_insert(e);
                }
                continue;
            }
        };
        let kf = match serde_json::from_slice::<KeyFile>(&bytes) {
            Ok(kf) => kf,
            Err(e) => {
                unusable.push(format!("keys/{name} is damaged ({e})"));
                continue;
            }
        };
        let started = Instant::now();
        let opened = kf.unwrap(password, name);
        spent += started.elapsed();
        let keys = match opened {
            Ok(Unwrapped::Keys(k)) => k,
            Ok(Unwrapped::WrongPassword) => {
                match recorded {
                    Some((n, d)) if n == name && d != digest(&bytes) => refused.push(format!(
                        "keys/{name} opened on this machine before, and its bytes have changed since (key files are never rewritten): it was altered (an edited label, cost or salt) or damaged"
                    )),
                    _ => wrong += 1,
                }
                continue;
            }
            Ok(Unwrapped::Altered) => {
                refused.push(format!(
                    "keys/{name} matches the password, but a field it states in clear (label, created, host, user, repository) or its wrapped key was changed after it was written: it was altered or damaged"
                ));
                continue;
            }
            Err(e) => {
                unusable.push(format!("keys/{name}: {e}"));
                continue;
            }
        };
        match Config::decode(cfg_bytes, &keys) {
            Ok(config) if kf.version >= 2 && kf.repository_id() != Some(config.id) => {
                refused.push(format!(
                    "keys/{name} names repository {}, but this is repository {}: it does not belong here",
                    kf.repository.as_deref().unwrap_or("?"),
                    config.id.to_hex()
                ));
            }
            Ok(config) => {
                return Ok(Unlocked {
                    keys,
                    config,
                    hint: KeyHint {
                        key_id: name.clone(),
                        last_key,
                        digest: digest(&bytes),
                    },
                    warnings: refused
                        .into_iter()
                        .map(|r| format!("{r}: skipped; remove it with `snap key remove`"))
                        .collect(),
                })
            }
            Err(e) if kf.version >= 2 => {
                refused.push(format!(
                    "keys/{name} opens with this password, but its key does not open the config ({e}): the key file belongs to another repository (it names {}), or the config is damaged",
                    kf.repository.as_deref().unwrap_or("?")
                ));
            }
            Err(e) => {
                config_error.get_or_insert(e);
            }
        }
    }
    if names.is_empty() {
        return Err(Error::NoUsableKey {
            detail: "keys/ holds no key file (deleted?)".into(),
        });
    }
    if !refused.is_empty() {
        return Err(Error::KeyFileRefused {
            detail: refused.join("; "),
        });
    }
    if let Some(e) = config_error {
        return Err(e);
    }
    if unusable.len() == names.len() {
        return Err(Error::NoUsableKey {
            detail: unusable.join("; "),
        });
    }
    // A key file the storage failed to read may be the one this password
    // opens: that is a storage failure, not a wrong password.
    match unreadable {
        Some(e) => Err(e),
        None => Err(Error::WrongPassword { keys: wrong }),
    }
}

/// Records on this machine which key file opened, and its digest. Only a
/// hint for the next open: a read-only disk may refuse it.
pub(super) fn remember(index: &Path, u: &KeyHint) {
    let record = format!("{} {}\n", u.key_id, u.digest);
    let current = std::fs::read_to_string(digest_path(index)).ok();
    if u.last_key.as_deref() == Some(u.key_id.as_str()) && current.as_deref() == Some(&record) {
        return;
    }
    let _ = super::create_private_dir(index)
        .and_then(|()| std::fs::write(read::last_key_path(index), &u.key_id))
        .and_then(|()| std::fs::write(digest_path(index), record));
}

impl Repository {
    /// Adds a key file for `password`, then records it in the state;
    /// returns its name.
    pub fn add_key(&self, password: &[u8], key: &NewKey) -> Result<String> {
        self.ensure_state_writable()?;
        let (name, hash) = write_key_file(&*self.backend, &self.keys, &self.config, password, key)?;
        self.record_state(&Change {
            add_keys: vec![(name.clone(), hash)],
            ..Change::default()
        })?;
        Ok(name)
    }

    /// Starts a new key epoch (format-spec.md §6.2): a random seal key for
    /// everything written from now on. The password in use gets a key file
    /// with the new keyring, which replaces its old one; every other key
    /// file keeps the keyring it had, so its password still opens what was
    /// written before and nothing after. Returns the new key file's name and
    /// the one it replaced. Needs an exclusive open.
    pub fn rotate_key(&mut self, password: &[u8], key: &NewKey) -> Result<(String, String)> {
        if self.config.version < 4 {
            return Err(Error::Usage(format!(
                "key rotation needs format version 4; this repository is version {} (its key files hold the master key alone)",
                self.config.version
            )));
        }
        self.ensure_state_writable()?;
        let next = Arc::new(self.keys.with_new_epoch());
        let (name, hash) = write_key_file(&*self.backend, &next, &self.config, password, key)?;
        let old = std::mem::replace(&mut self.key_id, name.clone());
        // From here on everything is sealed in the new epoch, the state
        // that records the change first: holders of the old keyring cannot
        // open it, nor forge the next one.
        self.keys = next;
        self.check_lock()?;
        self.backend.remove(FileType::Key, &old)?;
        self.record_state(&Change {
            add_keys: vec![(name.clone(), hash)],
            remove_keys: vec![old.clone()],
            ..Change::default()
        })?;
        let _ = std::fs::write(read::last_key_path(&super::index_path(&self.cache)), &name);
        Ok((name, old))
    }

    /// Lists key files, oldest first.
    pub fn list_keys(&self) -> Result<Vec<KeyListing>> {
        let recorded = self.recorded_keys();
        let mut out = Vec::new();
        for name in self.backend.list(FileType::Key)? {
            let bytes = read::bounded(&*self.backend, FileType::Key, &name, read::MAX_KEY_FILE);
            let unrecorded = match (&recorded, &bytes) {
                (Some((seq, r)), Ok(b)) => match r.get(&name) {
                    None => Some(format!("not in state {seq}: planted?")),
                    Some(h) if *h != file_hash(b) => Some(format!(
                        "differs from the file state {seq} records: altered?"
                    )),
                    Some(_) => None,
                },
                _ => None,
            };
            let kf = bytes.and_then(|bytes| {
                serde_json::from_slice::<KeyFile>(&bytes)
                    .map_err(|e| Error::corrupt(read::place(FileType::Key, &name), e.to_string()))
            });
            out.push(match kf {
                Ok(kf) => KeyListing {
                    current: name == self.key_id,
                    id: name,
                    version: kf.version,
                    label: kf.label,
                    created: kf.created,
                    host: kf.host,
                    user: kf.user,
                    kdf: Some(kf.params),
                    damaged: None,
                    unrecorded,
                },
                Err(e) => KeyListing {
                    current: false,
                    id: name,
                    version: 0,
                    label: None,
                    created: String::new(),
                    host: String::new(),
                    user: String::new(),
                    kdf: None,
                    damaged: Some(e.to_string()),
                    unrecorded,
                },
            });
        }
        out.sort_by(|a, b| a.created.cmp(&b.created));
        Ok(out)
    }

    /// Removes the key file whose name starts with `which` or whose label is
    /// exactly `which`; the current key cannot be removed.
    pub fn remove_key(&self, which: &str) -> Result<String> {
        let keys = self.list_keys()?;
        let found: Vec<&KeyListing> = keys
            .iter()
            .filter(|k| k.id.starts_with(which) || k.label.as_deref() == Some(which))
            .collect();
        let name = match found.as_slice() {
            [one] => one.id.clone(),
            [] => {
                return Err(Error::Usage(format!(
                    "no key file has an id starting with {which:?} or the label {which:?}; see `snap key list`"
                )))
            }
            _ => {
                let list: Vec<String> = found
                    .iter()
                    .map(|k| match &k.label {
                        Some(l) => format!("{} (label {l:?})", k.id),
                        None => k.id.clone(),
                    })
                    .collect();
                return Err(Error::Usage(format!(
                    "{which:?} matches {} key files: {}; give more characters of the id",
                    found.len(),
                    list.join(", ")
                )));
            }
        };
        if name == self.key_id {
            return Err(Error::Usage(format!("key {name} is the one this session opened with; open with another password to remove it")));
        }
        self.ensure_state_writable()?;
        self.backend.remove(FileType::Key, &name)?;
        self.record_state(&Change {
            remove_keys: vec![name.clone()],
            ..Change::default()
        })?;
        Ok(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::mem::MemBackend;
    use crate::id::RepoId;

    fn cheap() -> NewKey {
        NewKey::with_kdf(KdfParams {
            memory_kib: 256,
            iterations: 1,
            parallelism: 1,
        })
    }

    fn read_key(b: &dyn Backend, name: &str) -> KeyFile {
        serde_json::from_slice(&b.read(FileType::Key, name).unwrap()).unwrap()
    }

    #[test]
    fn format_4_writes_version_2_and_older_formats_version_1() {
        let mem = MemBackend::new();
        let keys = Keys::generate();
        let mut config = Config::new();
        let name = write_key_file(&mem, &keys, &config, b"pw", &cheap())
            .unwrap()
            .0;
        let kf = read_key(&mem, &name);
        assert_eq!(kf.version, 2);
        assert_eq!(kf.repository_id(), Some(config.id));
        assert!(
            kf.label.unwrap().contains('@'),
            "the default label is user@host"
        );
        config.version = 3;
        let name = write_key_file(&mem, &keys, &config, b"pw", &cheap())
            .unwrap()
            .0;
        let kf = read_key(&mem, &name);
        assert_eq!((kf.version, kf.label, kf.repository), (1, None, None));
        let labelled = NewKey {
            label: Some("web1".into()),
            ..cheap()
        };
        let e = write_key_file(&mem, &keys, &config, b"pw", &labelled).unwrap_err();
        assert!(e.to_string().contains("format version 4"), "{e}");
    }

    #[test]
    fn a_key_file_naming_another_repository_is_refused() {
        let mem = MemBackend::new();
        let keys = Keys::generate();
        let config = Config::new();
        let cfg = config.encode(&keys);
        // Crafted by a holder of the master key: it opens the config, but
        // states another repository.
        let mut elsewhere = config.clone();
        elsewhere.id = RepoId([9; 32]);
        let name = write_key_file(&mem, &keys, &elsewhere, b"pw", &cheap())
            .unwrap()
            .0;
        let d = tempfile::tempdir().unwrap();
        let index = d.path().join("index");
        match unlock(&mem, &cfg, b"pw", &index) {
            Err(Error::KeyFileRefused { detail }) => {
                assert!(detail.contains(&name), "{detail}");
                assert!(detail.contains(&"09".repeat(32)), "{detail}");
                assert!(detail.contains(&config.id.to_hex()), "{detail}");
            }
            Err(e) => panic!("{e}"),
            Ok(_) => panic!("opened with a key file of another repository"),
        }
        // This repository's own key file opens it meanwhile.
        let own = write_key_file(&mem, &keys, &config, b"pw", &cheap())
            .unwrap()
            .0;
        let u = unlock(&mem, &cfg, b"pw", &index).unwrap();
        assert_eq!(u.hint.key_id, own);
        assert_eq!(u.config.id, config.id);
    }

    #[test]
    fn the_last_key_goes_first_and_its_digest_is_kept() {
        let mem = MemBackend::new();
        let keys = Keys::generate();
        let config = Config::new();
        let cfg = config.encode(&keys);
        let d = tempfile::tempdir().unwrap();
        let index = d.path().join("index");
        for i in 0..4 {
            write_key_file(&mem, &keys, &config, format!("pw{i}").as_bytes(), &cheap()).unwrap();
        }
        let u = unlock(&mem, &cfg, b"pw2", &index).unwrap();
        remember(&index, &u.hint);
        let recorded = std::fs::read_to_string(digest_path(&index)).unwrap();
        let bytes = mem.read(FileType::Key, &u.hint.key_id).unwrap();
        assert_eq!(recorded, format!("{} {}\n", u.hint.key_id, digest(&bytes)));
        let again = unlock(&mem, &cfg, b"pw2", &index).unwrap();
        assert_eq!(again.hint.last_key.as_deref(), Some(u.hint.key_id.as_str()));
        assert_eq!(again.hint.key_id, u.hint.key_id);
    }

    #[test]
    fn calibration_stays_within_the_floor_and_the_caps() {
        let p = calibrate_kdf(Duration::from_millis(1)).unwrap();
        assert_eq!(
            p,
            crypto::KDF_MIN_WRITE,
            "a target below one run gives the floor"
        );
        let p = calibrate_kdf(Duration::from_secs(3600)).unwrap();
        assert_eq!(p.iterations, crypto::KDF_MAX.iterations);
        assert!(crypto::affordable(&p));
    }
}
