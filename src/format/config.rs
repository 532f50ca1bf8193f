//! The repository config: format version, repository id, chunker parameters
//! and compression, sealed under the master key.
//!
//! On disk: `"SNAPCONF"` (8 bytes) || format version (u32 LE) || sealed JSON.
//! The version is outside the seal so a reader refuses an unknown version
//! before it even needs a password.

use crate::error::{Error, Result};
use crate::format::crypto::Keys;
use crate::id::RepoId;
use serde::{Deserialize, Serialize};

/// The format version this program writes (and the newest it reads).
pub const FORMAT_VERSION: u32 = 4;
/// The oldest format version this program still reads (version 1 has no
/// `protected/` directory, version 2 no `written`/`root` snapshot fields,
/// versions 1 to 3 one gear table for both chunk-size sets).
pub const OLDEST_READABLE: u32 = 1;
/// The first bytes of a config file.
pub const MAGIC: &[u8; 8] = b"SNAPCONF";
const AAD: &[u8] = b"snap config v1";

/// Content-defined chunking parameters, in bytes.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ChunkerParams {
    /// No chunk is shorter, except a file's last.
    pub min: u32,
    /// The size chunks are normalised around.
    pub avg: u32,
    /// No chunk is longer.
    pub max: u32,
}

impl ChunkerParams {
    /// Checks the bounds FastCDC accepts.
    pub fn validate(&self) -> Result<()> {
        let ok = self.min >= 64
            && self.avg >= 256
            && self.max >= 1024
            && self.min < self.avg
            && self.avg < self.max
            && self.max <= crate::format::blob::MAX_DATA
            && self.avg.is_power_of_two()
            && self.min % 2 == 0
            && self.max % 2 == 0;
        if ok {
            Ok(())
        } else {
            Err(Error::corrupt(
                "config",
                format!("chunker parameters {self:?} are out of range"),
            ))
        }
    }
}

/// Per-kind chunker parameters.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Chunking {
    /// For site files: large chunks, few ids.
    pub files: ChunkerParams,
    /// For database dumps: small chunks, so a day's scattered row changes
    /// touch few bytes.
    pub db: ChunkerParams,
}

impl Default for Chunking {
    fn default() -> Self {
        Chunking {
            files: ChunkerParams {
                min: 256 * 1024,
                avg: 1024 * 1024,
                max: 4 * 1024 * 1024,
            },
            db: ChunkerParams {
                min: 1024,
                avg: 4096,
                max: 16 * 1024,
            },
        }
    }
}

/// The decoded config.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Config {
    /// Format version, equal to the clear one in front.
    pub version: u32,
    /// Random id of this repository.
    pub id: RepoId,
    /// Chunker parameters per kind.
    pub chunking: Chunking,
    /// zstd level for blobs.
    pub zstd_level: i32,
    /// Target size of a pack file in bytes.
    pub pack_size: u32,
}

impl Config {
    /// A new config with the defaults and a random id.
    pub fn new() -> Self {
        let mut id = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut id);
        Config {
            version: FORMAT_VERSION,
            id: RepoId(id),
            chunking: Chunking::default(),
            zstd_level: 3,
            pack_size: 16 * 1024 * 1024,
        }
    }

    /// Encodes and seals the config file.
    pub fn encode(&self, keys: &Keys) -> Vec<u8> {
        let json = serde_json::to_vec(self).expect("config serialises");
        let mut out = MAGIC.to_vec();
        out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        out.extend_from_slice(&keys.seal(AAD, &json));
        out
    }

    /// Reads the clear header: checks magic and version.
    pub fn check_header(bytes: &[u8]) -> Result<()> {
        if bytes.len() < 12 || &bytes[..8] != MAGIC {
            return Err(Error::corrupt("config", "does not start with SNAPCONF"));
        }
        let v = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes"));
        if !(OLDEST_READABLE..=FORMAT_VERSION).contains(&v) {
            return Err(Error::UnsupportedVersion {
                what: "repository".into(),
                found: v,
                supported: FORMAT_VERSION,
            });
        }
        Ok(())
    }

    /// Opens and decodes the config file.
    pub fn decode(bytes: &[u8], keys: &Keys) -> Result<Self> {
        Self::check_header(bytes)?;
        let json = keys.open(AAD, &bytes[12..], &|| "config".into())?;
        let c: Config =
            serde_json::from_slice(&json).map_err(|e| Error::corrupt("config", e.to_string()))?;
        if c.version != u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes")) {
            return Err(Error::UnsupportedVersion {
                what: "repository".into(),
                found: c.version,
                supported: FORMAT_VERSION,
            });
        }
        c.chunking.files.validate()?;
        c.chunking.db.validate()?;
        if !(1..=22).contains(&c.zstd_level) || !(1 << 20..=1 << 30).contains(&c.pack_size) {
            return Err(Error::corrupt(
                "config",
                format!(
                    "zstd level {} or pack size {} out of range",
                    c.zstd_level, c.pack_size
                ),
            ));
        }
        Ok(c)
    }
}

impl Default for Config {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_version_refusal() {
        let k = Keys::generate();
        let c = Config::new();
        let b = c.encode(&k);
        assert_eq!(Config::decode(&b, &k).unwrap(), c);
        let mut next = b.clone();
        next[8] = FORMAT_VERSION as u8 + 1;
        assert!(matches!(
            Config::decode(&next, &k),
            Err(Error::UnsupportedVersion { found, .. }) if found == FORMAT_VERSION + 1
        ));
        assert!(Config::decode(b"garbage garbage", &k).is_err());
    }

    #[test]
    fn defaults_are_valid() {
        Chunking::default().files.validate().unwrap();
        Chunking::default().db.validate().unwrap();
        assert!(ChunkerParams {
            min: 10,
            avg: 20,
            max: 30
        }
        .validate()
        .is_err());
    }
}
