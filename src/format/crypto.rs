//! Keys and sealing.
//!
//! A repository has one random 64-byte master key. Each password wraps it in
//! its own key file through Argon2id and XChaCha20-Poly1305. Three subkeys are
//! derived from the master key with BLAKE3's key derivation: one keys the
//! BLAKE3 ids of blobs, one seals blobs and metadata, one draws the chunker's
//! gear table. Sealed bytes are `nonce (24) || ciphertext || tag (16)`; the
//! associated data binds each sealed object to its role and name so that a
//! valid object cannot be passed off as another.
//!
//! Pure: no I/O here.

use crate::error::{Error, Result};
use chacha20poly1305::aead::{Aead, AeadInPlace, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

/// Length of the random nonce in front of every sealed object.
pub const NONCE_LEN: usize = 24;
/// Length of the Poly1305 tag after every ciphertext.
pub const TAG_LEN: usize = 16;
/// Bytes that sealing adds to a plaintext.
pub const SEAL_OVERHEAD: usize = NONCE_LEN + TAG_LEN;

const CONTEXT_ID: &str = "snap 2026-11 blob id key";
const CONTEXT_SEAL: &str = "snap 2026-11 seal key";
const CONTEXT_GEAR: &str = "snap 2026-11 chunker gear table";
/// From format version 4 each chunk-size set has its own table, so that
/// recovering one (from boundaries observed with chosen plaintext) predicts
/// nothing about the other.
const CONTEXT_GEAR_FILES: &str = "snap 2026-12 chunker gear table files";
const CONTEXT_GEAR_DB: &str = "snap 2026-12 chunker gear table db";
/// Names protection markers in format version 4, so the provider cannot see
/// which snapshot is the one kept on purpose.
const CONTEXT_MARKER: &str = "snap 2026-12 protection marker names";
const KEYFILE_AAD: &[u8] = b"snap keyfile v1";

/// A gear table: the first 2048 bytes of the XOF of BLAKE3 keyed with the
/// subkey of `context`, read as 256 u64 LE.
fn gear_table(context: &str, master: &[u8; 64]) -> Box<[u64; 256]> {
    let gear_key = Zeroizing::new(blake3::derive_key(context, &master[..]));
    let mut xof = blake3::Hasher::new_keyed(&gear_key).finalize_xof();
    let mut raw = [0u8; 256 * 8];
    xof.fill(&mut raw);
    let mut gear = Box::new([0u64; 256]);
    for (g, b) in gear.iter_mut().zip(raw.chunks_exact(8)) {
        *g = u64::from_le_bytes(b.try_into().expect("8 bytes"));
    }
    gear
}

/// The repository's secret, and what is derived from it.
pub struct Keys {
    master: Zeroizing<[u8; 64]>,
    id_key: Zeroizing<[u8; 32]>,
    cipher: XChaCha20Poly1305,
    gear: Box<[u64; 256]>,
}

impl Keys {
    /// A fresh random master key.
    pub fn generate() -> Self {
        let mut m = [0u8; 64];
        rand::rngs::OsRng.fill_bytes(&mut m);
        Self::from_master(m)
    }

    /// Derives the subkeys of a master key.
    pub fn from_master(master: [u8; 64]) -> Self {
        let master = Zeroizing::new(master);
        let id_key = Zeroizing::new(blake3::derive_key(CONTEXT_ID, &master[..]));
        let seal_key = Zeroizing::new(blake3::derive_key(CONTEXT_SEAL, &master[..]));
        let cipher = XChaCha20Poly1305::new((&*seal_key).into());
        let gear = gear_table(CONTEXT_GEAR, &master);
        Keys {
            master,
            id_key,
            cipher,
            gear,
        }
    }

    /// The gear table for one chunk-size set (`db` or else `files`) in a
    /// repository of format version `format`: versions 1 to 3 share one
    /// table, version 4 on derive one per set (format-spec.md §3).
    pub fn gear_for(&self, format: u32, db: bool) -> Box<[u64; 256]> {
        match (format >= 4, db) {
            (false, _) => self.gear.clone(),
            (true, false) => gear_table(CONTEXT_GEAR_FILES, &self.master),
            (true, true) => gear_table(CONTEXT_GEAR_DB, &self.master),
        }
    }

    /// The keyed BLAKE3 id of a plaintext.
    pub fn blob_id(&self, plaintext: &[u8]) -> [u8; 32] {
        *blake3::keyed_hash(&self.id_key, plaintext).as_bytes()
    }

    /// The name of a snapshot's protection marker in format version 4: the
    /// keyed BLAKE3 of the snapshot id under the marker key.
    pub fn marker_name(&self, snapshot: &[u8; 32]) -> [u8; 32] {
        let key = Zeroizing::new(blake3::derive_key(CONTEXT_MARKER, &self.master[..]));
        *blake3::keyed_hash(&key, snapshot).as_bytes()
    }

    /// The secret gear table of format versions 1 to 3 (see
    /// [`Keys::gear_for`]).
    pub fn gear(&self) -> &[u64; 256] {
        &self.gear
    }

    /// Seals `plaintext`, binding it to `aad`.
    pub fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
        seal_with(&self.cipher, aad, plaintext)
    }

    /// Seals the concatenation of `parts` (saves a copy when the plaintext
    /// comes in pieces, such as a frame byte and a body).
    pub fn seal_parts(&self, aad: &[u8], parts: &[&[u8]]) -> Vec<u8> {
        seal_parts_with(&self.cipher, aad, parts)
    }

    /// Opens what [`Keys::seal`] produced; `what` names the object in errors.
    pub fn open(&self, aad: &[u8], sealed: &[u8], what: &dyn Fn() -> String) -> Result<Vec<u8>> {
        open_with(&self.cipher, aad, sealed, what)
    }
}

fn seal_with(cipher: &XChaCha20Poly1305, aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
    seal_parts_with(cipher, aad, &[plaintext])
}

/// Seals the concatenation of `parts`, copying each byte once: the nonce,
/// the parts and the tag go straight into the one output buffer.
fn seal_parts_with(cipher: &XChaCha20Poly1305, aad: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    let mut out = Vec::with_capacity(NONCE_LEN + len + TAG_LEN);
    out.resize(NONCE_LEN, 0);
    rand::rngs::OsRng.fill_bytes(&mut out[..NONCE_LEN]);
    for p in parts {
        out.extend_from_slice(p);
    }
    let (nonce, body) = out.split_at_mut(NONCE_LEN);
    let tag = cipher
        .encrypt_in_place_detached(XNonce::from_slice(nonce), aad, body)
        .expect("XChaCha20-Poly1305 encryption does not fail for in-memory buffers");
    out.extend_from_slice(&tag);
    out
}

fn open_with(
    cipher: &XChaCha20Poly1305,
    aad: &[u8],
    sealed: &[u8],
    what: &dyn Fn() -> String,
) -> Result<Vec<u8>> {
    if sealed.len() < SEAL_OVERHEAD {
        return Err(Error::corrupt(
            what(),
            format!("{} bytes is too short to be sealed", sealed.len()),
        ));
    }
    let (nonce, ct) = sealed.split_at(NONCE_LEN);
    cipher
        .decrypt(XNonce::from_slice(nonce), Payload { msg: ct, aad })
        .map_err(|_| {
            Error::corrupt(
                what(),
                "authentication failed (bytes changed on disk, or not this repository's key)",
            )
        })
}

/// Argon2id cost parameters, stored in each key file.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct KdfParams {
    /// Memory in KiB.
    pub memory_kib: u32,
    /// Passes over memory.
    pub iterations: u32,
    /// Lanes.
    pub parallelism: u32,
}

impl Default for KdfParams {
    fn default() -> Self {
        // 64 MiB and 2 passes: above OWASP's Argon2id floor (19 MiB, 2 passes)
        // while keeping each command's unlock under a tenth of a second here.
        KdfParams {
            memory_kib: 64 * 1024,
            iterations: 2,
            parallelism: 1,
        }
    }
}

/// A key file: the master key wrapped by one password. Stored as JSON.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct KeyFile {
    /// Key file format version (1).
    pub version: u32,
    /// Always "argon2id".
    pub kdf: String,
    /// Argon2id costs.
    pub params: KdfParams,
    /// 32 random bytes, hex.
    pub salt: String,
    /// The sealed master key, hex.
    pub wrapped: String,
    /// When the key was added (RFC 3339).
    pub created: String,
    /// Host that added it.
    pub host: String,
    /// User that added it.
    pub user: String,
}

/// Largest Argon2id costs a key file may ask for: a planted key file must
/// not make unlocking exhaust memory or time. 1 GiB is 16 times the default
/// and fits beside a web server's working set; the passes are bounded
/// together with the memory by [`KDF_MAX_WORK_KIB`].
pub const KDF_MAX: KdfParams = KdfParams {
    memory_kib: 1024 * 1024,
    iterations: 16,
    parallelism: 16,
};

/// Largest memory × passes (KiB): what sets Argon2id's running time, a few
/// seconds at most here (2 GiB·passes; the default is 128 MiB·passes).
pub const KDF_MAX_WORK_KIB: u64 = 2 * 1024 * 1024;

/// Whether `p` is within the costs a reader pays.
pub fn affordable(p: &KdfParams) -> bool {
    p.memory_kib <= KDF_MAX.memory_kib
        && p.iterations <= KDF_MAX.iterations
        && p.parallelism <= KDF_MAX.parallelism
        && p.memory_kib as u64 * p.iterations as u64 <= KDF_MAX_WORK_KIB
}

fn kek(password: &[u8], salt: &[u8], p: KdfParams) -> Result<XChaCha20Poly1305> {
    if !affordable(&p) {
        return Err(Error::corrupt(
            "key file",
            format!("Argon2id costs {p:?} exceed the limits {KDF_MAX:?} and {KDF_MAX_WORK_KIB} KiB × passes"),
        ));
    }
    let params = argon2::Params::new(p.memory_kib, p.iterations, p.parallelism, Some(32))
        .map_err(|e| Error::corrupt("key file", format!("bad Argon2id parameters: {e}")))?;
    let a = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let mut out = Zeroizing::new([0u8; 32]);
    a.hash_password_into(password, salt, &mut out[..])
        .map_err(|e| Error::corrupt("key file", format!("Argon2id failed: {e}")))?;
    Ok(XChaCha20Poly1305::new((&*out).into()))
}

impl KeyFile {
    /// Wraps the master key of `keys` with `password`.
    pub fn wrap(
        keys: &Keys,
        password: &[u8],
        params: KdfParams,
        created: String,
        host: String,
        user: String,
    ) -> Result<Self> {
        let mut salt = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut salt);
        let cipher = kek(password, &salt, params)?;
        let wrapped = seal_with(&cipher, KEYFILE_AAD, &keys.master[..]);
        Ok(KeyFile {
            version: 1,
            kdf: "argon2id".into(),
            params,
            salt: hex::encode(salt),
            wrapped: hex::encode(wrapped),
            created,
            host,
            user,
        })
    }

    /// Unwraps the master key; `None` when the password does not open it.
    pub fn unwrap(&self, password: &[u8], name: &str) -> Result<Option<Keys>> {
        if self.version != 1 {
            return Err(Error::UnsupportedVersion {
                what: format!("key file {name}"),
                found: self.version,
                supported: 1,
            });
        }
        if self.kdf != "argon2id" {
            return Err(Error::corrupt(
                format!("key file {name}"),
                format!("unknown kdf {:?}", self.kdf),
            ));
        }
        let salt = hex::decode(&self.salt)
            .map_err(|_| Error::corrupt(format!("key file {name}"), "salt is not hex"))?;
        let wrapped = hex::decode(&self.wrapped)
            .map_err(|_| Error::corrupt(format!("key file {name}"), "wrapped key is not hex"))?;
        let cipher = kek(password, &salt, self.params)?;
        match open_with(&cipher, KEYFILE_AAD, &wrapped, &|| String::new()) {
            Ok(m) => {
                let m = Zeroizing::new(m);
                let master: [u8; 64] = m[..].try_into().map_err(|_| {
                    Error::corrupt(format!("key file {name}"), "master key is not 64 bytes")
                })?;
                Ok(Some(Keys::from_master(master)))
            }
            Err(_) => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cheap() -> KdfParams {
        KdfParams {
            memory_kib: 256,
            iterations: 1,
            parallelism: 1,
        }
    }

    #[test]
    fn format_4_has_one_gear_table_per_chunk_size_set() {
        let k = Keys::generate();
        assert_eq!(k.gear_for(3, false)[..], k.gear()[..]);
        assert_eq!(k.gear_for(3, true)[..], k.gear()[..]);
        let (files, db) = (k.gear_for(4, false), k.gear_for(4, true));
        assert_ne!(files[..], db[..]);
        assert_ne!(files[..], k.gear()[..]);
        assert_ne!(db[..], k.gear()[..]);
        assert_eq!(k.gear_for(4, true)[..], db[..], "derived, not drawn");
    }

    #[test]
    fn seal_open_round_trip_and_aad_binding() {
        let k = Keys::generate();
        let s = k.seal(b"a", b"hello");
        assert_eq!(k.open(b"a", &s, &|| "x".into()).unwrap(), b"hello");
        assert!(k.open(b"b", &s, &|| "x".into()).is_err());
        let mut t = s.clone();
        t[30] ^= 1;
        assert!(k.open(b"a", &t, &|| "x".into()).is_err());
        assert!(k.open(b"a", &s[..10], &|| "x".into()).is_err());
    }

    #[test]
    fn key_file_opens_with_right_password_only() {
        let k = Keys::generate();
        let f = KeyFile::wrap(&k, b"pw", cheap(), "t".into(), "h".into(), "u".into()).unwrap();
        let back = f.unwrap(b"pw", "k").unwrap().expect("opens");
        assert_eq!(back.blob_id(b"x"), k.blob_id(b"x"));
        assert_eq!(back.gear()[..], k.gear()[..]);
        assert!(f.unwrap(b"wrong", "k").unwrap().is_none());
    }

    #[test]
    fn costs_beyond_the_caps_are_refused_before_hashing() {
        let k = Keys::generate();
        let mut f = KeyFile::wrap(&k, b"pw", cheap(), "t".into(), "h".into(), "u".into()).unwrap();
        for p in [
            KdfParams {
                memory_kib: 4 * 1024 * 1024,
                ..cheap()
            },
            KdfParams {
                memory_kib: 1024 * 1024,
                iterations: 3,
                parallelism: 1,
            },
            KdfParams {
                iterations: 17,
                ..cheap()
            },
        ] {
            f.params = p;
            let t = std::time::Instant::now();
            assert!(f.unwrap(b"pw", "k").is_err(), "{p:?}");
            assert!(
                t.elapsed() < std::time::Duration::from_secs(1),
                "{p:?} was computed"
            );
        }
        assert!(affordable(&KdfParams::default()));
    }

    #[test]
    fn ids_are_keyed() {
        let a = Keys::generate();
        let b = Keys::generate();
        assert_ne!(a.blob_id(b"same"), b.blob_id(b"same"));
        assert_ne!(a.blob_id(b"same"), *blake3::hash(b"same").as_bytes());
    }
}
