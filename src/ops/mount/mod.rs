//! `snap mount`: the repository as a read-only FUSE file system, to browse
//! old versions with ordinary tools (format-spec.md §17.1, README "Browsing
//! old versions"). Layout of the directories above the snapshots in
//! [`layout`], inode numbers in [`inodes`], the view of a repository that
//! changes while mounted in [`view`], the kernel's calls in [`fs`].
//!
//! Nothing here prints: what the user should know goes through the `warn`
//! callback the command line gives.

pub mod fs;
pub mod inodes;
pub mod layout;
pub mod view;

pub use fs::SnapFs;
pub use view::Views;
