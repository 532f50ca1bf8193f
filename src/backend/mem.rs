//! A repository held in memory, for fast tests of the writer, push, prune,
//! check and repair.

use super::{Backend, FileType};
use crate::error::{Error, Result};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// Files by type and name.
type Files = BTreeMap<(u8, String), Arc<Vec<u8>>>;

/// An in-memory backend.
#[derive(Default)]
pub struct MemBackend {
    files: Mutex<Files>,
}

fn key(t: FileType, name: &str) -> (u8, String) {
    (t as u8, name.to_string())
}

impl MemBackend {
    /// An empty backend.
    pub fn new() -> Self {
        MemBackend::default()
    }

    fn missing(&self, t: FileType, name: &str) -> Error {
        Error::storage(
            self.location(),
            format!("reading {t:?} {name}"),
            std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
        )
    }

    fn get(&self, t: FileType, name: &str) -> Result<Arc<Vec<u8>>> {
        self.files
            .lock()
            .expect("files")
            .get(&key(t, name))
            .cloned()
            .ok_or_else(|| self.missing(t, name))
    }

    /// Replaces a file's bytes as they are, bypassing every rule: tests use
    /// it to damage a repository.
    pub fn put_raw(&self, t: FileType, name: &str, data: Vec<u8>) {
        self.files
            .lock()
            .expect("files")
            .insert(key(t, name), Arc::new(data));
    }
}

impl Backend for MemBackend {
    fn location(&self) -> String {
        "memory".into()
    }

    fn list(&self, t: FileType) -> Result<Vec<String>> {
        Ok(self.list_sizes(t)?.into_iter().map(|(n, _)| n).collect())
    }

    fn list_sizes(&self, t: FileType) -> Result<Vec<(String, u64)>> {
        Ok(self
            .files
            .lock()
            .expect("files")
            .iter()
            .filter(|((ft, _), _)| *ft == t as u8)
            .map(|((_, n), v)| (n.clone(), v.len() as u64))
            .collect())
    }

    fn read(&self, t: FileType, name: &str) -> Result<Vec<u8>> {
        Ok(self.get(t, name)?.to_vec())
    }

    fn read_range(&self, t: FileType, name: &str, offset: u64, len: u64) -> Result<Vec<u8>> {
        let f = self.get(t, name)?;
        let end = offset
            .checked_add(len)
            .filter(|&e| e <= f.len() as u64)
            .ok_or_else(|| {
                Error::corrupt(
                    format!("{t:?} {name}"),
                    format!(
                        "range {offset}+{len} is past its {} bytes (truncated?)",
                        f.len()
                    ),
                )
            })?;
        Ok(f[offset as usize..end as usize].to_vec())
    }

    fn size(&self, t: FileType, name: &str) -> Result<u64> {
        Ok(self.get(t, name)?.len() as u64)
    }

    fn exists(&self, t: FileType, name: &str) -> Result<bool> {
        Ok(self
            .files
            .lock()
            .expect("files")
            .contains_key(&key(t, name)))
    }

    fn write(&self, t: FileType, name: &str, data: &[u8]) -> Result<()> {
        let mut files = self.files.lock().expect("files");
        if t != FileType::Lock && files.contains_key(&key(t, name)) {
            return Err(Error::storage(
                "memory",
                format!("writing {t:?} {name}"),
                std::io::Error::new(std::io::ErrorKind::AlreadyExists, "refusing to overwrite"),
            ));
        }
        files.insert(key(t, name), Arc::new(data.to_vec()));
        Ok(())
    }

    fn remove(&self, t: FileType, name: &str) -> Result<()> {
        match self.files.lock().expect("files").remove(&key(t, name)) {
            Some(_) => Ok(()),
            None => Err(self.missing(t, name)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conformance_mem() {
        crate::backend::conformance::run(&MemBackend::new());
    }
}
