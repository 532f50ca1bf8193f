//! Reading a sparse file without reading its holes.
//!
//! `SEEK_DATA`/`SEEK_HOLE` tell where the file's data lies; the holes are
//! handed out as zeros without a system call per page. The bytes are the
//! same as a plain read's, so chunk boundaries and ids do not change.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::os::unix::io::AsRawFd;

/// A reader over the first `len` bytes of a file that skips its holes.
pub struct HoleSkipping {
    file: File,
    pos: u64,
    len: u64,
    /// Start of the next data region (holes lie before it).
    next_data: u64,
    /// End of the current data region.
    data_end: u64,
}

impl HoleSkipping {
    /// Reads `file` up to `len` bytes (its size when opened).
    pub fn new(file: File, len: u64) -> Self {
        HoleSkipping {
            file,
            pos: 0,
            len,
            next_data: 0,
            data_end: 0,
        }
    }

    fn seek(&self, from: u64, whence: libc::c_int) -> Option<u64> {
        // SAFETY: lseek on an open descriptor has no memory effects; the
        // file's offset is not used by the positioned reads below.
        let r = unsafe { libc::lseek(self.file.as_raw_fd(), from as libc::off_t, whence) };
        (r >= 0).then_some(r as u64)
    }

    /// Finds the data region at or after `pos`.
    fn locate(&mut self) {
        match self.seek(self.pos, libc::SEEK_DATA) {
            Some(d) => {
                self.next_data = d.min(self.len);
                self.data_end = self
                    .seek(d, libc::SEEK_HOLE)
                    .unwrap_or(self.len)
                    .min(self.len);
            }
            // No data after pos (ENXIO), or no support: all hole, or all data.
            None if std::io::Error::last_os_error().raw_os_error() == Some(libc::ENXIO) => {
                self.next_data = self.len;
                self.data_end = self.len;
            }
            None => {
                self.next_data = self.pos;
                self.data_end = self.len;
            }
        }
    }
}

impl Read for HoleSkipping {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.pos >= self.len || buf.is_empty() {
            return Ok(0);
        }
        if self.pos >= self.data_end && self.pos >= self.next_data {
            self.locate();
        }
        if self.pos < self.next_data {
            let n = buf.len().min((self.next_data - self.pos) as usize);
            buf[..n].fill(0);
            self.pos += n as u64;
            return Ok(n);
        }
        let n = buf
            .len()
            .min((self.data_end.max(self.pos + 1) - self.pos) as usize);
        let m = self.file.read_at(&mut buf[..n], self.pos)?;
        self.pos += m as u64;
        if m == 0 {
            // The file shrank while being read: stop here, the caller sees it.
            self.len = self.pos;
        }
        Ok(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Seek, SeekFrom, Write};

    #[test]
    fn reads_the_same_bytes_as_a_plain_read() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("sparse");
        let mut f = File::create(&p).unwrap();
        f.write_all(b"head").unwrap();
        f.seek(SeekFrom::Start(3 << 20)).unwrap();
        f.write_all(b"middle").unwrap();
        f.set_len(9 << 20).unwrap();
        drop(f);
        let plain = std::fs::read(&p).unwrap();
        for chunk in [1usize, 4096, 1 << 20, 5 << 20] {
            let mut r = HoleSkipping::new(File::open(&p).unwrap(), plain.len() as u64);
            let mut got = Vec::new();
            let mut buf = vec![0u8; chunk];
            loop {
                let n = r.read(&mut buf).unwrap();
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&buf[..n]);
            }
            assert_eq!(got.len(), plain.len(), "chunk {chunk}");
            assert!(got == plain, "chunk {chunk}: contents differ");
        }
    }
}
