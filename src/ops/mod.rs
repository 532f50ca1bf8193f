//! Operations over an open repository: push, restore, ls/cat (read), check, repair, prune, forget, report,
//! replicate, diff, log and find.

pub mod cache;
pub mod changes;
pub mod check;
pub mod diff;
pub mod find;
pub mod forget;
pub mod live;
pub mod log;
pub mod mount;
pub mod place;
pub mod prune;
pub mod push;
pub mod read;
pub mod repair;
pub mod replicate;
pub mod report;
pub mod restore;
pub mod select;
pub mod sparse;
pub mod stats;
pub mod verify;
pub mod walk;
