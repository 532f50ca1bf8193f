//! Operations over an open repository: push, restore, ls/cat (read), check, repair, prune, report,
//! replicate.

pub mod cache;
pub mod check;
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
pub mod verify;
pub mod walk;
