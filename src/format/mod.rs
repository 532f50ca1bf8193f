//! Pure encodings of everything stored: bytes in, bytes out, no I/O.

pub mod blob;
pub mod chunker;
pub mod config;
pub mod crypto;
pub mod pack;
pub mod pad;
pub mod policy;
pub mod policy_file;
#[cfg(test)]
mod robustness;
pub mod snapshot;
pub mod state;
pub mod tree;
