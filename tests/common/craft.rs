//! A small writer of validly sealed objects, for the hostile-repository
//! tests: what an attacker who holds the password could plant. It opens the
//! repository through the library and writes trees, chunks and snapshots as
//! given, rules or no rules.

#![allow(dead_code)] // each test uses a different part

use snap::backend::FileType;
use snap::format::blob;
use snap::format::pack::PackBuilder;
use snap::format::snapshot::Snapshot;
use snap::format::tree::{encode_records, Content, ListRef, Node, NodeKind, Tree};
use snap::id::{BlobKind, BlobRef, ChunkId, ListId, SnapshotId, TreeId};
use snap::index::PackInfo;
use snap::repo::writer::BlobWriter;
use snap::repo::{Mode, Repository};
use std::path::Path;
use std::time::Duration;

/// An open repository and a blob writer on it.
pub struct Crafter {
    pub repo: Repository,
    writer: Option<BlobWriter>,
}

impl Crafter {
    /// Opens the repository at `path` with `password`.
    pub fn open(path: &Path, password: &str) -> Crafter {
        let repo = Repository::open(
            path,
            &super::cache_of(path),
            password.as_bytes(),
            Mode::Write,
            "craft",
            Duration::ZERO,
        )
        .expect("the repository opens");
        let writer = Some(BlobWriter::new(&repo));
        Crafter { repo, writer }
    }

    fn w(&self) -> &BlobWriter {
        self.writer.as_ref().expect("writer open")
    }

    /// Stores a data chunk; returns its record.
    pub fn chunk(&self, data: &[u8]) -> (ChunkId, u32) {
        let (id, _) = self.w().store_new(BlobKind::Data, data).unwrap();
        (ChunkId(id), data.len() as u32)
    }

    /// Stores `t` encoded as it is (unsorted entries stay unsorted).
    pub fn tree(&self, t: &Tree) -> TreeId {
        let (id, _) = self.w().store_new(BlobKind::Tree, &t.encode()).unwrap();
        TreeId(id)
    }

    /// A sorted tree of `entries`.
    pub fn dir(&self, entries: Vec<Node>) -> TreeId {
        self.tree(&Tree::new(entries))
    }

    /// Stores a list blob of chunk records.
    pub fn list(&self, records: &[(ChunkId, u32)]) -> ListId {
        let (id, _) = self
            .w()
            .store_new(BlobKind::List, &encode_records(records))
            .unwrap();
        ListId(id)
    }

    /// Seals `plaintext` under the id `id` (which need not be its hash) and
    /// declares `raw_len` as its plaintext length in the pack header.
    pub fn forged(&self, kind: BlobKind, id: [u8; 32], plaintext: &[u8], raw_len: u32) {
        let r = BlobRef { kind, id };
        let sealed = blob::seal(self.repo.keys(), &r, plaintext, 3);
        self.w().copy_sealed(r, &sealed, raw_len).unwrap();
    }

    /// Writes a pack of its own holding `plaintext` sealed under `id` (the
    /// id of other bytes, already stored: what a holder of the key plants),
    /// and adds it to the index after the packs already there, so the index
    /// names the planted copy. Returns the pack's name.
    pub fn planted_pack(&self, kind: BlobKind, id: [u8; 32], plaintext: &[u8]) -> String {
        let r = BlobRef { kind, id };
        let sealed = blob::seal(self.repo.keys(), &r, plaintext, 3);
        let mut b = PackBuilder::new();
        b.add(r, &sealed, plaintext.len() as u32);
        let (pack, bytes, entries) = b.finish(self.repo.keys());
        self.repo
            .backend
            .write(FileType::Pack, &pack.to_hex(), &bytes)
            .unwrap();
        let info = PackInfo {
            metadata: kind.is_metadata(),
            blobs: 1,
            size: bytes.len() as u64,
        };
        self.repo.index().add_pack(&pack, info, &entries).unwrap();
        self.repo.index().sync().unwrap();
        pack.to_hex()
    }

    /// Writes the packs, then a snapshot of `root` taken at `time`.
    pub fn snapshot_at(&mut self, root: TreeId, time: &str) -> SnapshotId {
        self.writer.take().unwrap().finish().unwrap();
        let s = Snapshot::new(root, time.into(), "crafted".into(), vec!["/crafted".into()]);
        let id = self.repo.save_snapshot(&s).unwrap();
        self.writer = Some(BlobWriter::new(&self.repo));
        id
    }

    /// Writes the packs, then snapshot `s` as given.
    pub fn save(&mut self, s: &Snapshot) -> SnapshotId {
        self.writer.take().unwrap().finish().unwrap();
        let id = self.repo.save_snapshot(s).unwrap();
        self.writer = Some(BlobWriter::new(&self.repo));
        id
    }

    /// [`Crafter::snapshot_at`] a fixed, valid time.
    pub fn snapshot(&mut self, root: TreeId) -> SnapshotId {
        self.snapshot_at(root, "2026-11-20T03:00:00+01:00")
    }
}

impl Drop for Crafter {
    fn drop(&mut self) {
        if let Some(w) = self.writer.take() {
            let _ = w.finish();
        }
    }
}

fn node(name: &[u8], kind: NodeKind) -> Node {
    Node {
        mode: 0o755,
        mtime: 1_700_000_000,
        ctime: 1_700_000_000,
        ..Node::new(name, kind)
    }
}

/// A file made of `chunks`, its size their sum.
pub fn file(name: &[u8], chunks: &[(ChunkId, u32)]) -> Node {
    let mut n = node(name, NodeKind::File);
    n.mode = 0o644;
    n.size = chunks.iter().map(|(_, l)| *l as u64).sum();
    n.content = Some(Content::Inline(encode_records(chunks)));
    n
}

/// A file whose chunk list is stored in groups.
pub fn grouped_file(name: &[u8], groups: Vec<ListRef>) -> Node {
    let mut n = node(name, NodeKind::File);
    n.size = groups.iter().map(|g| g.bytes).sum();
    n.content = Some(Content::Groups(groups));
    n
}

/// A directory whose contents are the tree `sub`.
pub fn dir(name: &[u8], sub: TreeId) -> Node {
    let mut n = node(name, NodeKind::Dir);
    n.subtree = Some(sub);
    n
}
