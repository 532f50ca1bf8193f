//! Content-defined chunking: FastCDC (2020) cut points with a secret gear table.
//!
//! The gear table comes from the repository key, so where chunks are cut
//! depends on the key as well as the content: someone who sees only chunk
//! sizes cannot test whether a known file is stored. A cut depends only on
//! the next `max` bytes, which is what lets [`StreamChunker`] give the same
//! boundaries on a stream as on the whole buffer.

use crate::format::config::ChunkerParams;
use fastcdc::v2020::{cut_gear, select_masks, Normalization};
use std::io::Read;

/// Finds chunk boundaries with fixed parameters and gear table.
#[derive(Clone)]
pub struct Chunker {
    p: ChunkerParams,
    mask_s: u64,
    mask_l: u64,
    gear: Box<[u64; 256]>,
    gear_ls: Box<[u64; 256]>,
    /// Length of a chunk cut from `max` zero bytes: a cut only looks at
    /// the next `max` bytes, so every chunk that starts with `max` zeros
    /// has this length, and long zero runs (sparse files) need no scan.
    zero_len: usize,
}

impl Chunker {
    /// A chunker for `params` (already validated) and a 256-entry gear table.
    pub fn new(params: ChunkerParams, gear: &[u64; 256]) -> Self {
        let (mask_s, mask_l) = select_masks(params.avg as usize, Normalization::Level1);
        let mut gear_ls = Box::new([0u64; 256]);
        for (d, s) in gear_ls.iter_mut().zip(gear.iter()) {
            *d = s << 1;
        }
        let mut c = Chunker {
            p: params,
            mask_s,
            mask_l,
            gear: Box::new(*gear),
            gear_ls,
            zero_len: 0,
        };
        c.zero_len = c.scan(&vec![0u8; params.max as usize]);
        c
    }

    /// The parameters.
    pub fn params(&self) -> ChunkerParams {
        self.p
    }

    /// Length of the chunk that starts at `data[0]`. `data` must hold at least
    /// `max` bytes, or everything up to the end of the input.
    pub fn next_len(&self, data: &[u8]) -> usize {
        let max = self.p.max as usize;
        if data.len() >= max && data[..max].iter().all(|&b| b == 0) {
            return self.zero_len;
        }
        self.scan(data)
    }

    fn scan(&self, data: &[u8]) -> usize {
        if data.len() <= self.p.min as usize {
            return data.len();
        }
        let (_, len) = cut_gear(
            data,
            self.p.min as usize,
            self.p.avg as usize,
            self.p.max as usize,
            self.mask_s,
            self.mask_l,
            self.mask_s << 1,
            self.mask_l << 1,
            &self.gear[..],
            &self.gear_ls[..],
        );
        len.max(1)
    }

    /// All chunk lengths of a complete buffer.
    pub fn lengths(&self, data: &[u8]) -> Vec<usize> {
        let mut out = Vec::new();
        let mut pos = 0;
        while pos < data.len() {
            let n = self.next_len(&data[pos..]);
            out.push(n);
            pos += n;
        }
        out
    }
}

/// Cuts a reader into chunks, a window at a time. Each batch is handed out
/// as an owned buffer so that the next window can be read and cut while the
/// caller still works on the previous one; [`StreamChunker::recycle`] gives
/// buffers back so that no fresh memory is touched per window.
pub struct StreamChunker<R> {
    reader: R,
    chunker: Chunker,
    buf: Vec<u8>,
    spare: Option<Vec<u8>>,
    eof: bool,
    window: usize,
}

/// Whole chunks: the bytes and the length of each chunk, in order.
pub struct Batch {
    /// The chunks' bytes, back to back.
    pub data: Vec<u8>,
    /// Chunk lengths; they add up to `data.len()`.
    pub lens: Vec<usize>,
}

impl<R: Read> StreamChunker<R> {
    /// Reads `reader` in windows of about `window` bytes.
    pub fn new(reader: R, chunker: Chunker, window: usize) -> Self {
        let window = window.max(chunker.p.max as usize * 2);
        StreamChunker {
            reader,
            chunker,
            buf: Vec::with_capacity(window),
            spare: None,
            eof: false,
            window,
        }
    }

    fn fill(&mut self) -> std::io::Result<()> {
        while !self.eof && self.buf.len() < self.window {
            let old = self.buf.len();
            self.buf.resize(self.window, 0);
            match self.reader.read(&mut self.buf[old..]) {
                Ok(0) => {
                    self.buf.truncate(old);
                    self.eof = true;
                }
                Ok(n) => self.buf.truncate(old + n),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => self.buf.truncate(old),
                Err(e) => {
                    self.buf.truncate(old);
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    /// The next batch of whole chunks; an empty batch means the end of the input.
    pub fn next_batch(&mut self) -> std::io::Result<Batch> {
        self.fill()?;
        let max = self.chunker.p.max as usize;
        let mut lens = Vec::new();
        let mut pos = 0;
        while pos < self.buf.len() {
            let rest = &self.buf[pos..];
            if !self.eof && rest.len() < max {
                break;
            }
            let n = self.chunker.next_len(rest);
            lens.push(n);
            pos += n;
        }
        let mut next = self
            .spare
            .take()
            .unwrap_or_else(|| Vec::with_capacity(self.window));
        next.clear();
        next.extend_from_slice(&self.buf[pos..]);
        let mut data = std::mem::replace(&mut self.buf, next);
        data.truncate(pos);
        Ok(Batch { data, lens })
    }

    /// Gives a batch's buffer back for reuse.
    pub fn recycle(&mut self, b: Batch) {
        self.spare = Some(b.data);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn gear(seed: u8) -> [u64; 256] {
        let mut x = blake3::Hasher::new_derive_key("test gear")
            .update(&[seed])
            .finalize_xof();
        let mut raw = [0u8; 2048];
        x.fill(&mut raw);
        let mut g = [0u64; 256];
        for (v, b) in g.iter_mut().zip(raw.chunks_exact(8)) {
            *v = u64::from_le_bytes(b.try_into().unwrap());
        }
        g
    }

    fn data(len: usize, seed: u8) -> Vec<u8> {
        let mut x = blake3::Hasher::new_derive_key("test data")
            .update(&[seed])
            .finalize_xof();
        let mut v = vec![0u8; len];
        x.fill(&mut v);
        v
    }

    const P: ChunkerParams = ChunkerParams {
        min: 1024,
        avg: 4096,
        max: 16384,
    };

    #[test]
    fn golden_boundaries_are_stable() {
        // If this fails, the chunker changed: every existing repository would
        // stop deduplicating against new pushes. Bump the format version.
        let c = Chunker::new(P, &gear(1));
        let lens = c.lengths(&data(64 * 1024, 2));
        let first: Vec<usize> = lens.iter().copied().take(8).collect();
        assert_eq!(lens.iter().sum::<usize>(), 64 * 1024);
        assert_eq!(first, GOLDEN_FIRST_8);
        assert_eq!(lens.len(), GOLDEN_COUNT);
    }

    const GOLDEN_FIRST_8: [usize; 8] = [6659, 5159, 1860, 7611, 6329, 3789, 3150, 7363];
    const GOLDEN_COUNT: usize = 14;

    #[test]
    fn zero_runs_cut_exactly_as_a_scan_would() {
        let c = Chunker::new(P, &gear(5));
        let mut d = data(40_000, 6);
        d.extend(std::iter::repeat_n(0u8, 200_000));
        d.extend(data(30_000, 7));
        d.extend(std::iter::repeat_n(0u8, 70_000));
        let fast = c.lengths(&d);
        let mut slow = Vec::new();
        let mut pos = 0;
        while pos < d.len() {
            let n = c.scan(&d[pos..]);
            slow.push(n);
            pos += n;
        }
        assert_eq!(fast, slow);
    }

    #[test]
    fn keyed_gear_changes_boundaries() {
        let d = data(256 * 1024, 3);
        let a = Chunker::new(P, &gear(1)).lengths(&d);
        let b = Chunker::new(P, &gear(2)).lengths(&d);
        assert_ne!(a, b);
    }

    #[test]
    fn insertion_only_changes_nearby_chunks() {
        let c = Chunker::new(P, &gear(1));
        let d = data(512 * 1024, 4);
        let mut e = d.clone();
        e.splice(100_000..100_000, b"INSERTED ROW".iter().copied());
        let a = c.lengths(&d);
        let b = c.lengths(&e);
        let common = a
            .iter()
            .rev()
            .zip(b.iter().rev())
            .take_while(|(x, y)| x == y)
            .count();
        assert!(
            common > a.len() * 3 / 4,
            "only {common} of {} chunks survived",
            a.len()
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]
        #[test]
        fn stream_matches_whole_buffer(len in 0usize..300_000, seed in 0u8..8, window in 1usize..5) {
            let c = Chunker::new(P, &gear(seed));
            let d = data(len, seed);
            let whole = c.lengths(&d);
            let mut s = StreamChunker::new(&d[..], c.clone(), window * 20_000);
            let mut got = Vec::new();
            let mut joined = Vec::new();
            loop {
                let b = s.next_batch().unwrap();
                if b.lens.is_empty() { break; }
                joined.extend_from_slice(&b.data);
                got.extend(b.lens.iter().copied());
                s.recycle(b);
            }
            prop_assert_eq!(got.iter().sum::<usize>(), len);
            for &l in &got[..got.len().saturating_sub(1)] {
                prop_assert!(l >= P.min as usize && l <= P.max as usize);
            }
            prop_assert_eq!(whole, got);
            prop_assert_eq!(joined, d);
        }
    }
}
