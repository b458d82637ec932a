//! A cheap "can this text contain any pattern at all?" test that runs before the Aho-Corasick
//! pass.
//!
//! Why: a run's redactor knows every encoding of every secret (a hundred secrets are well over a
//! thousand patterns), and with that many patterns the automaton has no prefilter and walks every
//! byte through a large NFA (~300 MB/s measured). Almost every line a run prints contains no
//! secret, so the common answer is "no", and it can be given faster.
//!
//! How: every pattern is at least `width` bytes long (the shortest pattern, capped at 8), so any
//! match starts with `width` bytes that are the first `width` bytes of some pattern. Those
//! prefixes go into a Bloom filter (two bits each in a 2^20-bit table, 128 KiB, which stays in
//! the L2 cache). Scanning hashes each `width`-byte window of the text; a window whose bits are
//! not both set cannot start a match. Only when some window passes does the caller run the
//! automaton — so the result is exactly the automaton's, only skipped when it would find nothing.
//! With 1 500 prefixes a window passes by chance about once in 10^5, i.e. a false "maybe" for
//! about one 170-byte line in 600.

/// log2 of the filter's size in bits.
const BITS_LOG2: u32 = 20;
const WORDS: usize = (1 << BITS_LOG2) / 64;
/// Shortest window worth filtering: shorter prefixes would set too many bits to reject much.
pub(super) const MIN_WIDTH: usize = 4;

#[derive(Clone)]
pub(super) struct WindowFilter {
    width: usize,
    mask: u64,
    bits: Vec<u64>,
}

impl WindowFilter {
    /// A filter for `patterns`, or `None` when some pattern is shorter than [`MIN_WIDTH`] (a
    /// filter on such short prefixes would pass nearly every text).
    pub(super) fn new<'a>(patterns: impl IntoIterator<Item = &'a str> + Clone) -> Option<Self> {
        let width = patterns.clone().into_iter().map(str::len).min()?.min(8);
        if width < MIN_WIDTH {
            return None;
        }
        let mask = if width == 8 {
            u64::MAX
        } else {
            (1u64 << (width * 8)) - 1
        };
        let mut f = WindowFilter {
            width,
            mask,
            bits: vec![0; WORDS],
        };
        for p in patterns {
            let key = f.key(&p.as_bytes()[..width]);
            let (a, b) = hashes(key);
            f.set(a);
            f.set(b);
        }
        Some(f)
    }

    /// False only when no pattern can occur in `text`.
    pub(super) fn may_match(&self, text: &[u8]) -> bool {
        let w = self.width;
        if text.len() < w {
            return false;
        }
        let last = text.len() - w;
        // Fast path: an unaligned 8-byte load per position while 8 bytes remain (positions
        // `0..fast_len`).
        let fast_len = (text.len() + 1).saturating_sub(8).min(last + 1);
        let mut i = 0;
        while i < fast_len {
            let mut word = [0u8; 8];
            word.copy_from_slice(&text[i..i + 8]);
            if self.window_passes(u64::from_le_bytes(word) & self.mask) {
                return true;
            }
            i += 1;
        }
        // The last few positions, where fewer than 8 bytes are left.
        while i <= last {
            if self.window_passes(self.key(&text[i..i + w])) {
                return true;
            }
            i += 1;
        }
        false
    }

    fn window_passes(&self, key: u64) -> bool {
        let (a, b) = hashes(key);
        self.get(a) && self.get(b)
    }

    /// `bytes` (at most 8) as a little-endian integer.
    fn key(&self, bytes: &[u8]) -> u64 {
        let mut word = [0u8; 8];
        word[..bytes.len()].copy_from_slice(bytes);
        u64::from_le_bytes(word) & self.mask
    }

    fn set(&mut self, bit: usize) {
        self.bits[bit / 64] |= 1 << (bit % 64);
    }

    fn get(&self, bit: usize) -> bool {
        self.bits[bit / 64] & (1 << (bit % 64)) != 0
    }
}

/// Two bit positions from one multiplicative hash (the high bits of two products).
fn hashes(key: u64) -> (usize, usize) {
    let h1 = key.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let h2 = key.wrapping_mul(0xC2B2_AE3D_27D4_EB4F).rotate_left(29);
    (
        (h1 >> (64 - BITS_LOG2)) as usize,
        (h2 >> (64 - BITS_LOG2)) as usize,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn short_patterns_get_no_filter() {
        assert!(WindowFilter::new(["abc", "longer-pattern"]).is_none());
        assert!(WindowFilter::new(Vec::<&str>::new()).is_none());
        assert!(WindowFilter::new(["abcd"]).is_some());
    }

    #[test]
    fn text_without_any_prefix_is_rejected_and_with_one_is_not() {
        let f = WindowFilter::new(["s3cret-value-1", "another-one-22"]).expect("filter");
        assert!(!f.may_match(b""));
        assert!(!f.may_match(b"nothing to see here at all, just ordinary log output"));
        assert!(f.may_match(b"token=s3cret-value-1;"));
        assert!(f.may_match(b"xx another-"), "a prefix ending the text");
        assert!(
            !f.may_match(b"xx another"),
            "only part of the shortest prefix"
        );
        // Shorter than 8 bytes in all: only the tail path runs.
        let short = WindowFilter::new(["abcde"]).expect("filter");
        assert!(short.may_match(b"xabcde"));
        assert!(short.may_match(b"abcde"));
        assert!(!short.may_match(b"abcd"));
    }

    proptest! {
        /// Never a false "no": wherever a pattern occurs, the filter lets the text through.
        #[test]
        fn a_pattern_anywhere_always_passes(
            patterns in prop::collection::vec("[ -~]{4,24}", 1..40),
            // Short texts too, so the tail path (fewer than 8 bytes left) is covered.
            pick in any::<prop::sample::Index>(),
            before in "[ -~]{0,10}",
            after in "[ -~]{0,10}",
        ) {
            let f = WindowFilter::new(patterns.iter().map(String::as_str)).expect("filter");
            let p = &patterns[pick.index(patterns.len())];
            let text = format!("{before}{p}{after}");
            prop_assert!(f.may_match(text.as_bytes()));
        }
    }
}
