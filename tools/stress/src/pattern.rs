//! What each message carries: bytes computed from (connection, message number,
//! offset), never stored.
//!
//! To check every echoed byte the tool must know what every byte should be. Keeping
//! a copy of everything sent would cost `connections × pipeline × size` of memory
//! (gigabytes at 10000 connections of 64 KiB messages), so the bytes are a pure
//! function instead: the writer computes them just before `write()`, the reader
//! computes them again just after `read()` and compares.
//!
//! Every byte depends on all three numbers, so the check catches what real echo
//! bugs do: a corrupted byte, a byte lost or doubled (everything after it shifts),
//! two connections' data crossed, an old buffer sent again (wrong message number),
//! a chunk repeated within one message (wrong offset).
//!
//! The function is SplitMix64 (Steele, Lea, Flood 2014; the seeder of Java's
//! `SplittableRandom`): message `m` of connection `c` gets a seed, and its 8-byte
//! word `w` is `mix(seed + (w + 1) * GOLDEN)`, written little-endian. Two multiplies
//! per 8 bytes: generating costs a few GB/s, well above what one thread can push
//! through loopback, so the check never becomes the bottleneck.
//!
//! Offsets here are *stream* offsets: byte `k` of everything one connection sends,
//! so that `k / size` is the message number and `k % size` the offset in it. TCP
//! keeps no message boundaries, so reads and writes land anywhere in that stream,
//! and [`Pattern::fill`] accepts any start and length.

/// 2^64 / φ, SplitMix64's increment: consecutive words land far apart.
const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

/// SplitMix64's finalizer: a cheap bijection on u64 whose output bits each
/// depend on every input bit.
#[inline]
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The byte stream of every connection, for one message size.
#[derive(Debug, Clone, Copy)]
pub struct Pattern {
    /// Bytes per message (at least 1).
    size: u64,
}

impl Pattern {
    /// The pattern for messages of `size` bytes (`size` is at least 1).
    pub fn new(size: u64) -> Pattern {
        Pattern { size: size.max(1) }
    }

    /// Bytes per message.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The seed of message `msg` on connection `conn`: two mixes so that
    /// neighbouring connections and neighbouring messages share no structure.
    #[inline]
    fn seed(conn: u32, msg: u64) -> u64 {
        mix(msg ^ mix(u64::from(conn).wrapping_add(GOLDEN)))
    }

    /// Write into `out` the bytes of connection `conn`'s stream from stream offset
    /// `offset` on.
    pub fn fill(&self, conn: u32, offset: u64, out: &mut [u8]) {
        let mut pos = offset;
        let mut done = 0;
        while done < out.len() {
            let msg = pos / self.size;
            let start = pos % self.size;
            // Never cross into the next message within one call: it has another seed.
            let take = (self.size - start).min((out.len() - done) as u64) as usize;
            fill_message(Self::seed(conn, msg), start, &mut out[done..done + take]);
            done += take;
            pos += take as u64;
        }
    }

    /// Compare `got` with connection `conn`'s stream at `offset`, using `scratch`
    /// (at least as long as `got`) for the expected bytes. Returns the index in
    /// `got` of the first wrong byte and the byte that was expected there.
    pub fn first_mismatch(
        &self,
        conn: u32,
        offset: u64,
        got: &[u8],
        scratch: &mut [u8],
    ) -> Option<(usize, u8)> {
        let expected = &mut scratch[..got.len()];
        self.fill(conn, offset, expected);
        // Slice equality is a memcmp: the common, all-correct case stays fast.
        if got == &expected[..] {
            return None;
        }
        got.iter().zip(expected.iter()).position(|(a, b)| a != b).map(|i| (i, expected[i]))
    }
}

/// Write bytes `start..start + out.len()` of the message whose seed is `seed`.
#[inline]
fn fill_message(seed: u64, start: u64, out: &mut [u8]) {
    // Word `w` of the message is mix(seed + (w + 1) * GOLDEN): keep the sum
    // running instead of multiplying for every word.
    let word = start / 8;
    let mut state = seed.wrapping_add(word.wrapping_add(1).wrapping_mul(GOLDEN));
    // A start inside a word: the tail of that word first.
    let skip = (start % 8) as usize;
    let mut rest = &mut out[..];
    if skip != 0 {
        let take = (8 - skip).min(rest.len());
        let (head, tail) = rest.split_at_mut(take);
        head.copy_from_slice(&mix(state).to_le_bytes()[skip..skip + take]);
        rest = tail;
        state = state.wrapping_add(GOLDEN);
    }
    // Whole words: the hot loop, 8 bytes per step with no length checks inside.
    let mut words = rest.chunks_exact_mut(8);
    for chunk in &mut words {
        chunk.copy_from_slice(&mix(state).to_le_bytes());
        state = state.wrapping_add(GOLDEN);
    }
    // A message (or a read) ending inside a word: the head of that word.
    let tail = words.into_remainder();
    if !tail.is_empty() {
        let len = tail.len();
        tail.copy_from_slice(&mix(state).to_le_bytes()[..len]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(p: &Pattern, conn: u32, offset: u64, len: usize) -> Vec<u8> {
        let mut v = vec![0; len];
        p.fill(conn, offset, &mut v);
        v
    }

    #[test]
    fn any_split_gives_the_same_bytes() {
        // TCP may cut the stream anywhere: filling piece by piece must equal
        // filling at once, for sizes around the 8-byte word.
        for size in [1u64, 3, 7, 8, 9, 13, 64, 100] {
            let p = Pattern::new(size);
            let whole = stream(&p, 5, 0, 300);
            for cut in 0..300 {
                let mut pieces = stream(&p, 5, 0, cut);
                pieces.extend(stream(&p, 5, cut as u64, 300 - cut));
                assert_eq!(pieces, whole, "size {size} cut {cut}");
            }
        }
    }

    #[test]
    fn bytes_follow_the_definition() {
        // Byte i of message m on connection c is byte i % 8 of
        // mix(seed(c, m) + (i / 8 + 1) * GOLDEN), little-endian (the module docs).
        let size = 37u64;
        let p = Pattern::new(size);
        let got = stream(&p, 3, 0, 200);
        for (k, byte) in got.iter().enumerate() {
            let (m, i) = (k as u64 / size, k as u64 % size);
            let word = mix(Pattern::seed(3, m).wrapping_add((i / 8 + 1).wrapping_mul(GOLDEN)));
            assert_eq!(*byte, word.to_le_bytes()[(i % 8) as usize], "stream offset {k}");
        }
    }

    #[test]
    fn connections_messages_and_offsets_differ() {
        let p = Pattern::new(64);
        let a = stream(&p, 1, 0, 64);
        assert_ne!(a, stream(&p, 2, 0, 64), "another connection");
        assert_ne!(a, stream(&p, 1, 64, 64), "the next message");
        // Within one message no 8-byte word repeats (a repeated chunk is caught).
        let words: std::collections::HashSet<&[u8]> = a.chunks(8).collect();
        assert_eq!(words.len(), 8);
    }

    #[test]
    fn mismatch_is_found_at_its_index() {
        let p = Pattern::new(512);
        let mut got = stream(&p, 9, 1000, 2000);
        let mut scratch = vec![0; 2000];
        assert_eq!(p.first_mismatch(9, 1000, &got, &mut scratch), None);
        let right = got[1234];
        got[1234] ^= 0x20;
        assert_eq!(p.first_mismatch(9, 1000, &got, &mut scratch), Some((1234, right)));
        // The same bytes at the wrong offset (a shifted stream) are wrong too.
        let shifted = stream(&p, 9, 1001, 16);
        assert!(p.first_mismatch(9, 1000, &shifted, &mut scratch).is_some());
    }
}
