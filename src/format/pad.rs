//! Padding sizes so the storage provider learns little from them
//! (format-spec.md §9.2): Padmé rounding, with a floor.
//!
//! Padmé (Nikitin et al., "Reducing Metadata Leakage from Encrypted Files
//! and Communication with PURBs", 2019) keeps only the top
//! `floor(log2(floor(log2 L))) + 1` bits of a length L significant, so a
//! size reveals O(log log L) bits of the length, at a cost of at most
//! about 12% (less than 3% for the 16 MiB packs a writer closes).

/// The smallest pack a version-4 writer puts in place.
pub const PACK_FLOOR: u64 = 64 * 1024;
/// The smallest snapshot plaintext (and pack header plaintext) a version-4
/// writer seals: every command reads every snapshot, so the floor is kept
/// small.
pub const SMALL_FLOOR: u64 = 4 * 1024;

/// `len` rounded up by the Padmé rule.
pub fn padme(len: u64) -> u64 {
    if len < 2 {
        return len;
    }
    let e = 63 - len.leading_zeros() as u64; // floor(log2 len)
    let s = 64 - e.leading_zeros() as u64; // floor(log2 e) + 1
    let mask = (1u64 << (e - s)) - 1;
    (len + mask) & !mask
}

/// The size `len` bytes are padded to: Padmé of at least `floor`.
pub fn padded(len: u64, floor: u64) -> u64 {
    padme(len.max(floor))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padme_rounds_up_within_its_bound() {
        assert_eq!(padme(0), 0);
        assert_eq!(padme(1), 1);
        assert_eq!(padme(9), 10);
        for len in (2..5_000_000u64)
            .step_by(997)
            .chain([16 << 20, (16 << 20) + 1])
        {
            let p = padme(len);
            assert!(p >= len);
            assert!((p - len) as f64 <= len as f64 * 0.12 + 1.0, "{len} -> {p}");
            assert_eq!(padme(p), p, "a padded size is its own padding");
        }
        // A 16 MiB pack: 512 KiB steps.
        assert_eq!(padme((16 << 20) + 1), (16 << 20) + (512 << 10));
        assert_eq!(padded(100, PACK_FLOOR), PACK_FLOOR);
    }
}
