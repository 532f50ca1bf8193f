//! Operations over an open repository: push, restore/ls/cat, check.

pub mod check;
pub mod push;
pub mod restore;
pub mod select;
