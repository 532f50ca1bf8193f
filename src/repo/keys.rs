//! Key files: one per password, each wrapping the master key (format-spec.md
//! §6); adding, listing and removing them.

use super::{lock, read, Repository};
use crate::backend::{Backend, FileType};
use crate::error::{Error, Result};
use crate::format::crypto::{KdfParams, KeyFile, Keys};
use crate::format::state::{file_hash, Change};

/// What `snap key list` shows.
#[derive(Clone, Debug, serde::Serialize)]
pub struct KeyListing {
    /// Key file name.
    pub id: String,
    /// Whether it is the key this session opened with.
    pub current: bool,
    /// When it was added.
    pub created: String,
    /// Host and user that added it.
    pub host: String,
    /// User that added it.
    pub user: String,
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

fn user_name() -> String {
    std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "unknown".into())
}

/// Wraps the master key with `password` in a new key file; returns its name
/// and the BLAKE3 hash (hex) of its bytes, as the state records it.
pub(super) fn write_key_file(
    backend: &dyn Backend,
    keys: &Keys,
    password: &[u8],
    kdf: KdfParams,
) -> Result<(String, String)> {
    let kf = KeyFile::wrap(
        keys,
        password,
        kdf,
        chrono::Local::now().to_rfc3339(),
        lock::host_name(),
        user_name(),
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

impl Repository {
    /// Adds a key file for `password`, then records it in the state;
    /// returns its name.
    pub fn add_key(&self, password: &[u8], kdf: KdfParams) -> Result<String> {
        self.ensure_state_writable()?;
        let (name, hash) = write_key_file(&*self.backend, &self.keys, password, kdf)?;
        self.record_state(&Change {
            add_keys: vec![(name.clone(), hash)],
            ..Change::default()
        })?;
        Ok(name)
    }

    /// Lists key files.
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
                    created: kf.created,
                    host: kf.host,
                    user: kf.user,
                    damaged: None,
                    unrecorded,
                },
                Err(e) => KeyListing {
                    current: false,
                    id: name,
                    created: String::new(),
                    host: String::new(),
                    user: String::new(),
                    damaged: Some(e.to_string()),
                    unrecorded,
                },
            });
        }
        out.sort_by(|a, b| a.created.cmp(&b.created));
        Ok(out)
    }

    /// Removes a key file (by name prefix); the current key and the last key
    /// cannot be removed.
    pub fn remove_key(&self, prefix: &str) -> Result<String> {
        let names: Vec<String> = self
            .backend
            .list(FileType::Key)?
            .into_iter()
            .filter(|n| n.starts_with(prefix))
            .collect();
        let name = match names.as_slice() {
            [one] => one.clone(),
            [] => {
                return Err(Error::Usage(format!(
                    "no key file starts with {prefix:?}; see `snap key list`"
                )))
            }
            _ => {
                return Err(Error::Usage(format!(
                    "{prefix:?} matches {} key files; give more characters",
                    names.len()
                )))
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
