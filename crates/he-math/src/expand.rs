//! Public uniform randomness expanded from a seed: the `a_j` of a switching key, limb by
//! limb, in any order.
//!
//! A switching key's uniform parts `a_j` are public and carry no information beyond
//! their seed, so a party can keep the 32-byte seed and expand `a_j` when it is used
//! (halving the memory of the keys), as long as every residue can be regenerated on its
//! own. Each residue vector `a_j mod q_i` (digit `j`, moduli-table index `i`) is
//! therefore its own stream: AES-128 in counter mode, keyed by the first 16 bytes of
//! `SHA-256(DOMAIN ‖ seed)`, with the 128-bit counter block `stream id ‖ block index` where
//! `stream id = j·2^32 + i` (64 bits, big-endian, then a 64-bit big-endian block
//! counter). Words are 8 keystream bytes read little-endian, mapped to `[0, q_i)` by
//! Lemire's multiply-and-reject ([`UniformStream::fill`]: uniform, no bias). Because a
//! stream's accepted words come out in keystream order, filling a limb in one call or in
//! chunks gives the same residues.
//!
//! AES-128-CTR is the expansion tfhe-rs uses for its public masks (`tfhe-csprng`);
//! with AES-NI it produces 6–8 GB/s on one core here (ChaCha20, the project's secret
//! CSPRNG in [`crate::sampling`], 1.4 GB/s), so a key-switching inner product can afford
//! to regenerate its key's `a_j` (docs/results/bootstrap.md). The seed is public and
//! is drawn from the CSPRNG by whoever generates the key.

use crate::modulus::Modulus;
use aes::Aes128;
use aes::cipher::{BlockEncrypt, KeyInit, generic_array::GenericArray};
use sha2::{Digest, Sha256};

/// Domain separation of the key derivation.
const DOMAIN: &[u8] = b"he-math switching-key a_j v1";

/// AES blocks (two words each) encrypted per pass.
const PASS_BLOCKS: usize = 128;

/// The expansion of one 32-byte public seed (see the module docs).
#[derive(Clone)]
pub struct SeedExpander {
    cipher: Aes128,
}

impl std::fmt::Debug for SeedExpander {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SeedExpander(AES-128-CTR)")
    }
}

impl SeedExpander {
    /// The expander of `seed` (AES key: see the module docs).
    pub fn new(seed: &[u8; 32]) -> Self {
        let digest = Sha256::new()
            .chain_update(DOMAIN)
            .chain_update(seed)
            .finalize();
        Self {
            cipher: Aes128::new(GenericArray::from_slice(&digest[..16])),
        }
    }

    /// The stream of residues modulo `m` (moduli-table index `modulus_index`) of digit
    /// `digit`: `a_digit mod q_modulus_index`.
    pub fn stream<'a>(
        &'a self,
        digit: usize,
        modulus_index: usize,
        m: &'a Modulus,
    ) -> UniformStream<'a> {
        UniformStream {
            cipher: &self.cipher,
            id: (((digit as u64) << 32) | (modulus_index as u64 & 0xffff_ffff)).to_be_bytes(),
            counter: 0,
            modulus: m,
            blocks: [GenericArray::default(); PASS_BLOCKS],
            words: [0; 2 * PASS_BLOCKS],
            pos: 2 * PASS_BLOCKS,
        }
    }

    /// Fills `out` with the first `out.len()` residues of [`Self::stream`]
    /// `(digit, modulus_index)`.
    pub fn fill(&self, digit: usize, modulus_index: usize, m: &Modulus, out: &mut [u64]) {
        self.stream(digit, modulus_index, m).fill(out);
    }
}

/// One stream of uniform residues modulo a prime (see [`SeedExpander::stream`]); each
/// [`Self::fill`] continues where the previous one stopped.
pub struct UniformStream<'a> {
    cipher: &'a Aes128,
    /// The stream id, big-endian: the first half of every counter block.
    id: [u8; 8],
    /// Index of the next counter block.
    counter: u64,
    modulus: &'a Modulus,
    blocks: [GenericArray<u8, aes::cipher::consts::U16>; PASS_BLOCKS],
    /// Keystream words of the last pass; `words[pos..]` are not consumed yet.
    words: [u64; 2 * PASS_BLOCKS],
    pos: usize,
}

impl UniformStream<'_> {
    /// Fills `out` with the stream's next residues, uniform in `[0, q)`.
    ///
    /// Each keystream word `x` (8 bytes, little-endian) gives `⌊x·q / 2^64⌋` unless the
    /// low half of `x·q` is below `2^64 mod q`, in which case it is skipped (Lemire,
    /// "Fast random integer generation in an interval", ACM TOMACS 2019: exactly
    /// uniform, and a skip is rare for every modulus of the presets — at most
    /// `q/2^64`).
    pub fn fill(&mut self, out: &mut [u64]) {
        let q = self.modulus.value();
        let threshold = q.wrapping_neg() % q;
        let mut done = 0;
        while done < out.len() {
            if self.pos == self.words.len() {
                self.refill();
            }
            let take = (out.len() - done).min(self.words.len() - self.pos);
            let dst = &mut out[done..done + take];
            // Branch-free compaction: a skipped word's value is overwritten by the next.
            let mut kept = 0;
            for &x in &self.words[self.pos..self.pos + take] {
                let p = u128::from(x) * u128::from(q);
                dst[kept] = (p >> 64) as u64;
                kept += usize::from((p as u64) >= threshold);
            }
            self.pos += take;
            done += kept;
        }
    }

    /// Encrypts the next [`PASS_BLOCKS`] counter blocks into [`Self::words`].
    fn refill(&mut self) {
        for b in &mut self.blocks {
            b[..8].copy_from_slice(&self.id);
            b[8..].copy_from_slice(&self.counter.to_be_bytes());
            self.counter += 1;
        }
        self.cipher.encrypt_blocks(&mut self.blocks);
        for (w, b) in self.words.chunks_exact_mut(2).zip(&self.blocks) {
            w[0] = u64::from_le_bytes(b[..8].try_into().expect("8 bytes"));
            w[1] = u64::from_le_bytes(b[8..].try_into().expect("8 bytes"));
        }
        self.pos = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn modulus(bits: u32) -> Modulus {
        // A prime just above 2^(bits−1).
        let mut q = (1u64 << (bits - 1)) + 1;
        while !crate::primes::is_prime(q) {
            q += 2;
        }
        Modulus::new(q).unwrap()
    }

    #[test]
    fn chunked_fill_equals_one_fill_and_rejects_out_of_range() {
        let seed = [3u8; 32];
        let ex = SeedExpander::new(&seed);
        // At 61 bits (q just above 2^60) about one word in 16 is skipped.
        for bits in [20, 40, 50, 61] {
            let m = modulus(bits);
            let mut whole = vec![0u64; 5000];
            ex.fill(1, 7, &m, &mut whole);
            assert!(whole.iter().all(|&x| x < m.value()));
            let mut parts = vec![0u64; 5000];
            let mut s = ex.stream(1, 7, &m);
            for c in parts.chunks_mut(333) {
                s.fill(c);
            }
            assert_eq!(whole, parts, "{bits}-bit modulus");
            // Roughly uniform: the mean is within 5 % of q/2.
            let mean = whole.iter().map(|&x| x as f64).sum::<f64>() / whole.len() as f64;
            assert!(
                (mean / m.value() as f64 - 0.5).abs() < 0.05,
                "{bits}: {mean}"
            );
        }
    }

    #[test]
    fn streams_and_seeds_differ() {
        let m = modulus(50);
        let a = SeedExpander::new(&[1u8; 32]);
        let b = SeedExpander::new(&[2u8; 32]);
        let mut x = [0u64; 64];
        let mut y = [0u64; 64];
        a.fill(0, 0, &m, &mut x);
        for (d, i) in [(0, 1), (1, 0)] {
            a.fill(d, i, &m, &mut y);
            assert_ne!(x, y, "stream ({d}, {i})");
        }
        b.fill(0, 0, &m, &mut y);
        assert_ne!(x, y, "another seed");
        a.fill(0, 0, &m, &mut y);
        assert_eq!(x, y, "deterministic");
    }
}
