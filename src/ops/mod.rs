//! Operations over an open repository: push, restore/ls/cat, check, prune, report.

pub mod check;
pub mod prune;
pub mod push;
pub mod report;
pub mod restore;
pub mod select;
pub mod sparse;
pub mod walk;
