//! Deterministic byte streams for tests, from the stress tool's pattern
//! (`progjar_stress::pattern`, SplitMix64): a failing test reruns with the same
//! bytes, and a receiver checks any piece of a stream against the sender
//! without either keeping hundreds of megabytes in memory.

use progjar_stress::pattern::Pattern;

/// One endless message: stream offsets are then offsets in the pattern.
const ENDLESS: u64 = u64::MAX;

/// Stream `seed` read from offset `pos` on.
#[derive(Debug, Clone, Copy)]
pub struct Stream {
    id: u32,
    pos: u64,
}

impl Stream {
    /// Stream `seed` from byte `pos`. The pattern numbers streams with 32 bits,
    /// so the seed's two halves are folded together.
    pub fn at(seed: u64, pos: u64) -> Stream {
        Stream { id: (seed ^ (seed >> 32)) as u32, pos }
    }

    /// The next `buf.len()` bytes of the stream.
    pub fn fill(&mut self, buf: &mut [u8]) {
        Pattern::new(ENDLESS).fill(self.id, self.pos, buf);
        self.pos += buf.len() as u64;
    }

    /// The next 8 bytes of the stream as a number: a deterministic "random"
    /// choice (message sizes and the like).
    pub fn next_u64(&mut self) -> u64 {
        let mut word = [0; 8];
        self.fill(&mut word);
        u64::from_le_bytes(word)
    }

    /// Check that `got` is the next piece of the stream (`scratch` is reused
    /// for the expected bytes); on a mismatch, say at which stream offset.
    pub fn check(&mut self, got: &[u8], scratch: &mut Vec<u8>) -> Result<(), String> {
        let start = self.pos;
        scratch.resize(got.len(), 0);
        let mismatch = Pattern::new(ENDLESS).first_mismatch(self.id, start, got, scratch);
        self.pos += got.len() as u64;
        match mismatch {
            None => Ok(()),
            Some((i, sent)) => Err(format!(
                "byte {} differs: got {:#04x}, sent {sent:#04x}",
                start + i as u64,
                got[i]
            )),
        }
    }
}

/// `len` deterministic pseudo-random bytes: the start of stream `seed`.
pub fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut v = vec![0; len];
    Stream::at(seed, 0).fill(&mut v);
    v
}
