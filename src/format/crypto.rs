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
use crate::id::RepoId;
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

/// The repository's secret, and what is derived from it: the master key of
/// `init` (epoch 0), and the seal keys of the epochs `snap key rotate` added
/// since (format-spec.md §6.2).
pub struct Keys {
    master: Zeroizing<[u8; 64]>,
    id_key: Zeroizing<[u8; 32]>,
    marker_key: Zeroizing<[u8; 32]>,
    /// Seal keys of epochs 1 … n, in order.
    epochs: Vec<Zeroizing<[u8; 32]>>,
    /// One cipher per epoch, epoch 0 first; the last one seals.
    ciphers: Vec<XChaCha20Poly1305>,
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
        let marker_key = Zeroizing::new(blake3::derive_key(CONTEXT_MARKER, &master[..]));
        Keys {
            master,
            id_key,
            marker_key,
            epochs: Vec::new(),
            ciphers: vec![cipher],
            gear,
        }
    }

    /// Keys from a keyring as a key file wraps it: the 64-byte master key,
    /// then one 32-byte seal key per epoch since.
    pub fn from_keyring(ring: &[u8]) -> Option<Self> {
        if ring.len() < 64 || (ring.len() - 64) % 32 != 0 {
            return None;
        }
        let mut keys = Self::from_master(ring[..64].try_into().ok()?);
        for k in ring[64..].chunks_exact(32) {
            keys.push_epoch(k.try_into().ok()?);
        }
        Some(keys)
    }

    /// The keyring a key file wraps (see [`Keys::from_keyring`]).
    pub fn keyring(&self) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(self.master.to_vec());
        for k in &self.epochs {
            out.extend_from_slice(&k[..]);
        }
        out
    }

    fn push_epoch(&mut self, key: [u8; 32]) {
        let key = Zeroizing::new(key);
        self.ciphers.push(XChaCha20Poly1305::new((&*key).into()));
        self.epochs.push(key);
    }

    /// These keys and a new epoch with a random seal key: what `snap key
    /// rotate` gives the password in use. Ids, gear tables and marker names
    /// stay those of epoch 0, so deduplication goes on.
    pub fn with_new_epoch(&self) -> Keys {
        let mut next = Self::from_keyring(&self.keyring()).expect("a keyring made here");
        let mut k = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut k);
        next.push_epoch(k);
        next
    }

    /// The epoch new objects are sealed in (0 until the first rotation).
    pub fn epoch(&self) -> usize {
        self.epochs.len()
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
        *blake3::keyed_hash(&self.marker_key, snapshot).as_bytes()
    }

    /// The secret gear table of format versions 1 to 3 (see
    /// [`Keys::gear_for`]).
    pub fn gear(&self) -> &[u64; 256] {
        &self.gear
    }

    /// Seals `plaintext`, binding it to `aad`.
    pub fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
        seal_with(self.sealing(), aad, plaintext)
    }

    fn sealing(&self) -> &XChaCha20Poly1305 {
        self.ciphers.last().expect("epoch 0 is always there")
    }

    /// Seals the concatenation of `parts` (saves a copy when the plaintext
    /// comes in pieces, such as a frame byte and a body).
    pub fn seal_parts(&self, aad: &[u8], parts: &[&[u8]]) -> Vec<u8> {
        seal_parts_with(self.sealing(), aad, parts)
    }

    /// Opens what [`Keys::seal`] produced; `what` names the object in errors.
    /// The epochs are tried newest first: an object sealed under an epoch
    /// these keys lack (written after a rotation they predate) does not open.
    pub fn open(&self, aad: &[u8], sealed: &[u8], what: &dyn Fn() -> String) -> Result<Vec<u8>> {
        self.open_trying(None, aad, sealed, what).map(|(p, _)| p)
    }

    /// [`Keys::open`], trying epoch `first` before the others (objects of
    /// one pack share an epoch: the caller remembers it); returns the epoch
    /// that opened the object too.
    pub fn open_trying(
        &self,
        first: Option<usize>,
        aad: &[u8],
        sealed: &[u8],
        what: &dyn Fn() -> String,
    ) -> Result<(Vec<u8>, usize)> {
        let first = first.filter(|&e| e < self.ciphers.len());
        let order = first
            .into_iter()
            .chain((0..self.ciphers.len()).rev().filter(|&e| Some(e) != first));
        let mut last = None;
        for e in order {
            match open_with(&self.ciphers[e], aad, sealed, what) {
                Ok(p) => return Ok((p, e)),
                Err(err) => last = Some(err),
            }
        }
        match last {
            // Too short to be sealed: the same with every key.
            Some(e) if sealed.len() < SEAL_OVERHEAD => Err(e),
            _ => Err(Error::corrupt(
                what(),
                "authentication failed (bytes changed on disk, not this repository's key, or \
                 sealed after a `snap key rotate` that this password's key file predates)",
            )),
        }
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
        KDF_MIN_WRITE
    }
}

impl KdfParams {
    /// Whether a writer should refuse these costs (below [`KDF_MIN_WRITE`]).
    pub fn is_weak(&self) -> bool {
        self.memory_kib < KDF_MIN_WRITE.memory_kib || self.iterations < KDF_MIN_WRITE.iterations
    }
}

impl std::fmt::Display for KdfParams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Argon2id, {} KiB, {} pass(es), {} lane(s)",
            self.memory_kib, self.iterations, self.parallelism
        )
    }
}

/// The least a writer uses: 64 MiB and 3 passes (RFC 9106's second
/// recommended option; above OWASP's floor of 19 MiB and 2 passes).
/// Calibration only adds passes.
pub const KDF_MIN_WRITE: KdfParams = KdfParams {
    memory_kib: 64 * 1024,
    iterations: 3,
    parallelism: 1,
};

/// Largest Argon2id costs a key file may ask for: a planted key file must
/// not make unlocking exhaust memory or time. 256 MiB fits beside a web
/// server's working set on the smallest host we back up; lanes beyond 4 buy
/// nothing on such hosts (snap computes them one after another); the passes
/// are bounded together with the memory by [`KDF_MAX_WORK_KIB`].
pub const KDF_MAX: KdfParams = KdfParams {
    memory_kib: 256 * 1024,
    iterations: 64,
    parallelism: 4,
};

/// Largest memory × passes (KiB): what sets Argon2id's running time. 4 GiB
/// is 64 passes at 64 MiB, the most calibration picks on a fast machine, and
/// 4.7 s on the busy 2-core machine of the benchmarks.
pub const KDF_MAX_WORK_KIB: u64 = 4 * 1024 * 1024;

/// Whether `p` is within the costs a reader pays.
pub fn affordable(p: &KdfParams) -> bool {
    p.memory_kib <= KDF_MAX.memory_kib
        && p.iterations <= KDF_MAX.iterations
        && p.parallelism <= KDF_MAX.parallelism
        && p.memory_kib as u64 * p.iterations as u64 <= KDF_MAX_WORK_KIB
}

/// The passes at `memory_kib` that make one derivation last about `target`,
/// given two timed derivations `(passes, time)` with different passes: the
/// difference gives the time of a pass, the rest is what every derivation
/// pays once (allocating and faulting in the memory). Never fewer than
/// [`KDF_MIN_WRITE`]'s passes, never more than the read caps allow.
pub fn calibrated_passes(
    memory_kib: u32,
    short: (u32, std::time::Duration),
    long: (u32, std::time::Duration),
    target: std::time::Duration,
) -> u32 {
    let cap = (KDF_MAX_WORK_KIB / memory_kib.max(1) as u64).min(KDF_MAX.iterations as u64) as u32;
    let (t1, d1) = (short.0 as f64, short.1.as_secs_f64());
    let (t2, d2) = (long.0 as f64, long.1.as_secs_f64());
    let slope = (d2 - d1) / (t2 - t1);
    // On a busy machine the shorter run can take longer: then count all of
    // the longer run as passes (fewer passes, never more).
    let (per_pass, fixed) = if slope > 0.0 && t2 > t1 {
        (slope, (d1 - slope * t1).max(0.0))
    } else {
        (d2 / t2.max(1.0), 0.0)
    };
    let want = if per_pass > 0.0 {
        ((target.as_secs_f64() - fixed) / per_pass).floor()
    } else {
        f64::INFINITY
    };
    (want.max(0.0).min(cap as f64) as u32)
        .clamp(KDF_MIN_WRITE.iterations, cap.max(KDF_MIN_WRITE.iterations))
}

/// Runs Argon2id once with `p` on a fixed input, for calibration.
pub fn derive_for_timing(p: KdfParams) -> Result<()> {
    kek_bytes(b"calibration", &[0u8; 32], p).map(drop)
}

/// The key file version a repository of format version `format` gets:
/// version 2 from format 4 on, version 1 before (an older snap must still
/// open the repositories it made).
pub fn key_file_version(format: u32) -> u32 {
    if format >= 4 {
        2
    } else {
        1
    }
}

const KEYFILE_AAD_V1: &[u8] = b"snap keyfile v1";
const KEYFILE_AAD_V2: &[u8] = b"snap keyfile v2";
const CONTEXT_KEYFILE_WRAP: &str = "snap 2026-12 keyfile v2 wrap key";
const CONTEXT_KEYFILE_CHECK: &str = "snap 2026-12 keyfile v2 password check";
/// Longest label a key file may carry (UTF-8 bytes).
pub const MAX_LABEL: usize = 256;

/// What a key file states in clear besides its costs.
#[derive(Clone, Debug)]
pub struct KeyInfo {
    /// A name for people: who or what uses the password (version 2).
    pub label: String,
    /// When the key was added (RFC 3339).
    pub created: String,
    /// Host that added it.
    pub host: String,
    /// User that added it.
    pub user: String,
    /// The repository the key belongs to (version 2).
    pub repository: RepoId,
}

/// A key file: the master key wrapped by one password. Stored as JSON.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct KeyFile {
    /// Key file format version (1 or 2).
    pub version: u32,
    /// Always "argon2id".
    pub kdf: String,
    /// Argon2id costs.
    pub params: KdfParams,
    /// 32 random bytes, hex.
    pub salt: String,
    /// Version 2: 16 bytes, hex, derived from the password's Argon2id
    /// output, so an altered file is told apart from a wrong password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check: Option<String>,
    /// The sealed master key, hex.
    pub wrapped: String,
    /// Version 2: a name for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// When the key was added (RFC 3339).
    pub created: String,
    /// Host that added it.
    pub host: String,
    /// User that added it.
    pub user: String,
    /// Version 2: the repository id, hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository: Option<String>,
}

/// What the password did with one key file.
pub enum Unwrapped {
    /// It opened: the repository's keys.
    Keys(Keys),
    /// The password is not this key file's (or, for version 2, its costs,
    /// salt or check were changed, which cannot be told apart).
    WrongPassword,
    /// Version 2: the password is this key file's, but a field it states in
    /// clear (label, created, host, user, repository) or the wrapped key was
    /// changed after it was written.
    Altered,
}

/// Argon2id's 32-byte output for `password`.
fn kek_bytes(password: &[u8], salt: &[u8], p: KdfParams) -> Result<Zeroizing<[u8; 32]>> {
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
    Ok(out)
}

/// The wrapping cipher and, for version 2, the password check.
fn kek(
    version: u32,
    password: &[u8],
    salt: &[u8],
    p: KdfParams,
) -> Result<(XChaCha20Poly1305, [u8; 16])> {
    let raw = kek_bytes(password, salt, p)?;
    if version == 1 {
        return Ok((XChaCha20Poly1305::new((&*raw).into()), [0; 16]));
    }
    let wrap = Zeroizing::new(blake3::derive_key(CONTEXT_KEYFILE_WRAP, &raw[..]));
    let check = blake3::derive_key(CONTEXT_KEYFILE_CHECK, &raw[..]);
    Ok((
        XChaCha20Poly1305::new((&*wrap).into()),
        check[..16].try_into().expect("16 bytes"),
    ))
}

fn put_field(out: &mut Vec<u8>, field: &[u8]) {
    out.extend_from_slice(&(field.len() as u32).to_le_bytes());
    out.extend_from_slice(field);
}

/// The associated data of a version-2 key file's `wrapped`: every field the
/// file states in clear (format-spec.md §6 gives the bytes).
#[allow(clippy::too_many_arguments)]
fn aad_v2(
    kdf: &str,
    p: &KdfParams,
    salt: &[u8],
    check: &[u8],
    label: &str,
    created: &str,
    host: &str,
    user: &str,
    repository: &[u8; 32],
) -> Vec<u8> {
    let mut out = KEYFILE_AAD_V2.to_vec();
    put_field(&mut out, kdf.as_bytes());
    out.extend_from_slice(&p.memory_kib.to_le_bytes());
    out.extend_from_slice(&p.iterations.to_le_bytes());
    out.extend_from_slice(&p.parallelism.to_le_bytes());
    put_field(&mut out, salt);
    put_field(&mut out, check);
    put_field(&mut out, label.as_bytes());
    put_field(&mut out, created.as_bytes());
    put_field(&mut out, host.as_bytes());
    put_field(&mut out, user.as_bytes());
    out.extend_from_slice(repository);
    out
}

/// Checks a label a writer is asked to store.
pub fn check_label(label: &str) -> Result<()> {
    if label.is_empty() || label.len() > MAX_LABEL || label.chars().any(char::is_control) {
        return Err(Error::Usage(format!(
            "key label {label:?}: give 1 to {MAX_LABEL} bytes without control characters"
        )));
    }
    Ok(())
}

impl KeyFile {
    /// Wraps the master key of `keys` with `password` in a key file of
    /// `version` (1 or 2; version 1 does not store the label or repository).
    pub fn wrap(
        keys: &Keys,
        password: &[u8],
        params: KdfParams,
        version: u32,
        info: KeyInfo,
    ) -> Result<Self> {
        if !(1..=2).contains(&version) {
            return Err(Error::Usage(format!(
                "key file version {version}: this snap writes versions 1 and 2"
            )));
        }
        if version == 2 {
            check_label(&info.label)?;
        }
        let mut salt = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut salt);
        let (cipher, check) = kek(version, password, &salt, params)?;
        let kdf = "argon2id".to_string();
        let mut kf = KeyFile {
            version,
            kdf,
            params,
            salt: hex::encode(salt),
            check: None,
            wrapped: String::new(),
            label: None,
            created: info.created,
            host: info.host,
            user: info.user,
            repository: None,
        };
        if version == 1 && keys.epoch() > 0 {
            return Err(Error::Usage(
                "a key file of version 1 holds the master key alone, not later key epochs".into(),
            ));
        }
        let wrapped = if version == 1 {
            seal_with(&cipher, KEYFILE_AAD_V1, &keys.master[..])
        } else {
            let aad = aad_v2(
                &kf.kdf,
                &params,
                &salt,
                &check,
                &info.label,
                &kf.created,
                &kf.host,
                &kf.user,
                &info.repository.0,
            );
            kf.check = Some(hex::encode(check));
            kf.label = Some(info.label);
            kf.repository = Some(info.repository.to_hex());
            seal_with(&cipher, &aad, &keys.keyring())
        };
        kf.wrapped = hex::encode(wrapped);
        Ok(kf)
    }

    /// The repository a version-2 key file names.
    pub fn repository_id(&self) -> Option<RepoId> {
        self.repository
            .as_deref()
            .and_then(|r| RepoId::from_hex(r).ok())
    }

    /// Unwraps the master key with `password`; `name` names the file in
    /// errors. An error means the file cannot be used with any password
    /// (unknown version, costs beyond the caps, malformed fields).
    pub fn unwrap(&self, password: &[u8], name: &str) -> Result<Unwrapped> {
        let what = || format!("key file {name}");
        if !(1..=2).contains(&self.version) {
            return Err(Error::UnsupportedVersion {
                what: what(),
                found: self.version,
                supported: 2,
            });
        }
        if self.kdf != "argon2id" {
            return Err(Error::corrupt(
                what(),
                format!("unknown kdf {:?}", self.kdf),
            ));
        }
        let salt =
            hex::decode(&self.salt).map_err(|_| Error::corrupt(what(), "salt is not hex"))?;
        let wrapped = hex::decode(&self.wrapped)
            .map_err(|_| Error::corrupt(what(), "wrapped key is not hex"))?;
        let aad = if self.version == 1 {
            KEYFILE_AAD_V1.to_vec()
        } else {
            let missing = |f: &str| Error::corrupt(what(), format!("version 2 without {f}"));
            let check = self.check.as_deref().ok_or_else(|| missing("check"))?;
            let check =
                hex::decode(check).map_err(|_| Error::corrupt(what(), "check is not hex"))?;
            let label = self.label.as_deref().ok_or_else(|| missing("label"))?;
            let repository = self
                .repository
                .as_deref()
                .ok_or_else(|| missing("repository"))?;
            let repository = RepoId::from_hex(repository)
                .map_err(|_| Error::corrupt(what(), "repository is not 64 hex characters"))?;
            aad_v2(
                &self.kdf,
                &self.params,
                &salt,
                &check,
                label,
                &self.created,
                &self.host,
                &self.user,
                &repository.0,
            )
        };
        let (cipher, check) = kek(self.version, password, &salt, self.params)?;
        match open_with(&cipher, &aad, &wrapped, &String::new) {
            Ok(m) => {
                let m = Zeroizing::new(m);
                // Version 1: the master key alone; version 2: the keyring.
                let keys = match self.version {
                    1 if m.len() != 64 => None,
                    _ => Keys::from_keyring(&m),
                };
                keys.map(Unwrapped::Keys).ok_or_else(|| {
                    Error::corrupt(
                        what(),
                        format!(
                            "wraps {} bytes, not a master key and 32-byte epoch keys",
                            m.len()
                        ),
                    )
                })
            }
            Err(_) if self.version == 2 && self.check.as_deref() == Some(&hex::encode(check)) => {
                Ok(Unwrapped::Altered)
            }
            Err(_) => Ok(Unwrapped::WrongPassword),
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
    fn a_new_epoch_seals_what_older_keys_cannot_open() {
        let k0 = Keys::generate();
        let old = k0.seal(b"a", b"before");
        let k1 = k0.with_new_epoch();
        assert_eq!(k1.epoch(), 1);
        let new = k1.seal(b"a", b"after");
        assert_eq!(k1.open(b"a", &old, &|| "x".into()).unwrap(), b"before");
        assert_eq!(k1.open(b"a", &new, &|| "x".into()).unwrap(), b"after");
        assert!(
            k0.open(b"a", &new, &|| "x".into()).is_err(),
            "the old keys open new data"
        );
        assert_eq!(k1.blob_id(b"x"), k0.blob_id(b"x"), "ids stay");
        assert_eq!(k1.gear_for(4, true)[..], k0.gear_for(4, true)[..]);
        let back = Keys::from_keyring(&k1.keyring()).unwrap();
        assert_eq!(back.open(b"a", &new, &|| "x".into()).unwrap(), b"after");
        assert!(Keys::from_keyring(&k1.keyring()[..70]).is_none());
        // A key file of version 2 carries the keyring.
        let kf = KeyFile::wrap(&k1, b"pw", cheap(), 2, info("l")).unwrap();
        let opened = opened(kf.unwrap(b"pw", "k").unwrap());
        assert_eq!(opened.epoch(), 1);
        assert_eq!(opened.open(b"a", &new, &|| "x".into()).unwrap(), b"after");
        assert!(KeyFile::wrap(&k1, b"pw", cheap(), 1, info("l")).is_err());
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

    fn info(label: &str) -> KeyInfo {
        KeyInfo {
            label: label.into(),
            created: "2026-12-01T10:00:00+01:00".into(),
            host: "web1".into(),
            user: "root".into(),
            repository: RepoId([7; 32]),
        }
    }

    fn opened(u: Unwrapped) -> Keys {
        match u {
            Unwrapped::Keys(k) => k,
            Unwrapped::WrongPassword => panic!("wrong password"),
            Unwrapped::Altered => panic!("altered"),
        }
    }

    #[test]
    fn key_files_open_with_the_right_password_only() {
        let k = Keys::generate();
        for version in [1, 2] {
            let f = KeyFile::wrap(&k, b"pw", cheap(), version, info("admin")).unwrap();
            assert_eq!(f.version, version);
            let back = opened(f.unwrap(b"pw", "k").unwrap());
            assert_eq!(back.blob_id(b"x"), k.blob_id(b"x"));
            assert_eq!(back.gear()[..], k.gear()[..]);
            assert!(matches!(
                f.unwrap(b"wrong", "k").unwrap(),
                Unwrapped::WrongPassword
            ));
        }
    }

    #[test]
    fn version_1_states_no_label_and_version_2_its_repository() {
        let k = Keys::generate();
        let v1 = KeyFile::wrap(&k, b"pw", cheap(), 1, info("admin")).unwrap();
        let json = serde_json::to_string(&v1).unwrap();
        assert!(!json.contains("label") && !json.contains("repository") && !json.contains("check"));
        let v2 = KeyFile::wrap(&k, b"pw", cheap(), 2, info("admin")).unwrap();
        assert_eq!(v2.label.as_deref(), Some("admin"));
        assert_eq!(v2.repository_id(), Some(RepoId([7; 32])));
        let back: KeyFile = serde_json::from_str(&serde_json::to_string(&v2).unwrap()).unwrap();
        opened(back.unwrap(b"pw", "k").unwrap());
    }

    #[test]
    fn every_clear_field_of_version_2_is_bound() {
        let k = Keys::generate();
        let f = KeyFile::wrap(&k, b"pw", cheap(), 2, info("admin")).unwrap();
        type Edit = Box<dyn Fn(&mut KeyFile)>;
        let edits: Vec<(&str, Edit)> = vec![
            ("label", Box::new(|f| f.label = Some("web1".into()))),
            ("created", Box::new(|f| f.created.push('0'))),
            ("host", Box::new(|f| f.host = "web2".into())),
            ("user", Box::new(|f| f.user = "www-data".into())),
            (
                "repository",
                Box::new(|f| f.repository = Some(RepoId([8; 32]).to_hex())),
            ),
            (
                "wrapped",
                Box::new(|f| f.wrapped.replace_range(60..62, "00")),
            ),
        ];
        for (what, edit) in edits {
            let mut g = f.clone();
            edit(&mut g);
            assert!(
                matches!(g.unwrap(b"pw", "k").unwrap(), Unwrapped::Altered),
                "{what}"
            );
            assert!(
                matches!(g.unwrap(b"wrong", "k").unwrap(), Unwrapped::WrongPassword),
                "{what}"
            );
        }
        // Costs and salt feed Argon2id itself: a change is caught, but cannot
        // be told from a wrong password.
        let mut g = f.clone();
        g.params.iterations += 1;
        assert!(matches!(
            g.unwrap(b"pw", "k").unwrap(),
            Unwrapped::WrongPassword
        ));
        let mut g = f.clone();
        let other = if g.salt.starts_with("00") { "11" } else { "00" };
        g.salt.replace_range(0..2, other);
        assert!(matches!(
            g.unwrap(b"pw", "k").unwrap(),
            Unwrapped::WrongPassword
        ));
        let mut g = f.clone();
        g.label = None;
        assert!(
            g.unwrap(b"pw", "k").is_err(),
            "a version 2 file without its label"
        );
    }

    #[test]
    fn the_associated_data_of_version_2_is_as_specified() {
        let p = KdfParams {
            memory_kib: 65536,
            iterations: 3,
            parallelism: 1,
        };
        let aad = aad_v2(
            "argon2id", &p, &[1; 32], &[2; 16], "L", "t", "h", "u", &[3; 32],
        );
        let mut want = b"snap keyfile v2".to_vec();
        want.extend_from_slice(&[8, 0, 0, 0]);
        want.extend_from_slice(b"argon2id");
        want.extend_from_slice(&[0, 0, 1, 0, 3, 0, 0, 0, 1, 0, 0, 0]);
        want.extend_from_slice(&[32, 0, 0, 0]);
        want.extend_from_slice(&[1; 32]);
        want.extend_from_slice(&[16, 0, 0, 0]);
        want.extend_from_slice(&[2; 16]);
        for s in [b"L", b"t", b"h", b"u"] {
            want.extend_from_slice(&[1, 0, 0, 0]);
            want.extend_from_slice(s);
        }
        want.extend_from_slice(&[3; 32]);
        assert_eq!(aad, want);
    }

    #[test]
    fn labels_are_checked() {
        check_label("admin@web1").unwrap();
        assert!(check_label("").is_err());
        assert!(check_label("a\nb").is_err());
        assert!(check_label(&"x".repeat(MAX_LABEL + 1)).is_err());
        let k = Keys::generate();
        assert!(KeyFile::wrap(&k, b"pw", cheap(), 2, info("")).is_err());
        assert!(KeyFile::wrap(&k, b"pw", cheap(), 3, info("a")).is_err());
    }

    #[test]
    fn costs_beyond_the_caps_are_refused_before_hashing() {
        let k = Keys::generate();
        let mut f = KeyFile::wrap(&k, b"pw", cheap(), 2, info("a")).unwrap();
        for p in [
            KdfParams {
                memory_kib: 256 * 1024 + 1,
                ..cheap()
            },
            KdfParams {
                memory_kib: 128 * 1024,
                iterations: 33,
                parallelism: 1,
            },
            KdfParams {
                iterations: 65,
                ..cheap()
            },
            KdfParams {
                parallelism: 5,
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
    fn calibration_aims_at_the_target_within_floor_and_caps() {
        use std::time::Duration;
        let ms = Duration::from_millis;
        // 1 pass took 80 ms and 3 passes 180: 50 ms a pass and 30 ms paid
        // once, so 9 passes for half a second.
        assert_eq!(
            calibrated_passes(65536, (1, ms(80)), (3, ms(180)), ms(500)),
            9
        );
        // Without a fixed part: 10 passes of 50 ms.
        assert_eq!(
            calibrated_passes(65536, (1, ms(50)), (3, ms(150)), ms(500)),
            10
        );
        // A slow machine still gets the floor.
        assert_eq!(
            calibrated_passes(65536, (1, ms(1000)), (3, ms(3000)), ms(500)),
            3
        );
        // Noise that makes the short run the slower counts the long run
        // whole: 3 passes in 150 ms, 10 passes.
        assert_eq!(
            calibrated_passes(65536, (1, ms(200)), (3, ms(150)), ms(500)),
            10
        );
        // A fast one stops at the caps: 64 passes at 64 MiB, 16 at 256 MiB.
        assert_eq!(
            calibrated_passes(65536, (1, ms(1)), (3, ms(3)), ms(500)),
            64
        );
        assert_eq!(
            calibrated_passes(262144, (1, ms(1)), (3, ms(3)), ms(500)),
            16
        );
        let zero = Duration::ZERO;
        assert_eq!(calibrated_passes(65536, (1, zero), (3, zero), ms(500)), 64);
        for m in [65536, 131072, 262144] {
            let p = KdfParams {
                memory_kib: m,
                iterations: calibrated_passes(m, (1, ms(1)), (3, ms(2)), ms(500)),
                parallelism: 1,
            };
            assert!(affordable(&p), "{p:?}");
        }
        assert!(KdfParams::default().iterations >= 3 && !KdfParams::default().is_weak());
        assert!(cheap().is_weak());
    }

    #[test]
    fn ids_are_keyed() {
        let a = Keys::generate();
        let b = Keys::generate();
        assert_ne!(a.blob_id(b"same"), b.blob_id(b"same"));
        assert_ne!(a.blob_id(b"same"), *blake3::hash(b"same").as_bytes());
    }
}
