//! snap: a deduplicating, content-addressed snapshot store for a web agency's
//! backup plan. See `format-spec.md` for the bytes on disk.
//!
//! Layers, lowest first: `id`/`error`/`progress`, `format` (pure encodings),
//! `backend` and `index` (storage), `repo` (one repository and its write
//! order), `ops` (push, restore, check). The command line lives in the binary.

pub mod backend;
pub mod config;
pub mod error;
pub mod format;
pub mod id;
pub mod index;
pub mod location;
pub mod ops;
pub mod progress;
pub mod remote;
pub mod repo;
pub mod tempdir;

pub use error::{Error, Result};
