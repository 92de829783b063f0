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
//! AES-128-CTR is the expansion tfhe-rs uses for its public masks (`tfhe-csprng`). The
//! `aes` crate (AES-NI) produces 6–8 GB/s on one core here (ChaCha20, the project's
//! secret CSPRNG in [`crate::sampling`], 1.4 GB/s); where the CPU has VAES, a kernel of
//! this module encrypts four blocks per AVX-512 instruction instead (the same
//! keystream, checked against the crate in the tests), and the map to residues runs in
//! groups of eight words ([`UniformStream::fill`]; with AVX-512F eight words per
//! instruction). A limb of `2^16` residues took 0.08–0.09 ms with VAES on a quiet hour
//! of the word-by-word map; in paired runs on a loaded machine, 0.19–0.24 ms with that
//! map, 0.10–0.16 ms with the scalar groups, 0.07–0.10 ms with AVX-512. Regenerating
//! still costs a key switch at the top of the bootstrapping chain about 5 ms more than
//! reading a stored key (docs/results/bootstrap.md, seventeenth session). The seed is
//! public and is drawn from the CSPRNG by whoever generates the key.

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
    /// The same key's round keys for the VAES kernel, when the CPU has it.
    #[cfg(target_arch = "x86_64")]
    vaes: Option<vaes::RoundKeys>,
    /// Whether the CPU has AVX-512F: the map to residues then runs eight words per
    /// instruction (`wide::map_words`).
    #[cfg(target_arch = "x86_64")]
    avx512: bool,
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
        let key: [u8; 16] = digest[..16].try_into().expect("16 bytes");
        Self {
            cipher: Aes128::new(GenericArray::from_slice(&key)),
            #[cfg(target_arch = "x86_64")]
            vaes: vaes::RoundKeys::new(&key),
            #[cfg(target_arch = "x86_64")]
            avx512: is_x86_feature_detected!("avx512f"),
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
            expander: self,
            id: (((digit as u64) << 32) | (modulus_index as u64 & 0xffff_ffff)).to_be_bytes(),
            counter: 0,
            modulus: m,
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
    expander: &'a SeedExpander,
    /// The stream id, big-endian: the first half of every counter block.
    id: [u8; 8],
    /// Index of the next counter block.
    counter: u64,
    modulus: &'a Modulus,
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
            let words = &self.words[self.pos..self.pos + take];
            let dst = &mut out[done..done + take];
            #[cfg(target_arch = "x86_64")]
            let kept = if self.expander.avx512 {
                // SAFETY: AVX-512F was detected when the expander was made.
                unsafe { wide::map_words(words, q, threshold, dst) }
            } else {
                map_words(words, q, threshold, dst)
            };
            #[cfg(not(target_arch = "x86_64"))]
            let kept = map_words(words, q, threshold, dst);
            self.pos += take;
            done += kept;
        }
    }

    /// Encrypts the next [`PASS_BLOCKS`] counter blocks into [`Self::words`].
    fn refill(&mut self) {
        #[cfg(target_arch = "x86_64")]
        if let Some(keys) = &self.expander.vaes {
            let id = u64::from_be_bytes(self.id);
            keys.ctr(id, self.counter, &mut self.words);
            self.counter += PASS_BLOCKS as u64;
            self.pos = 0;
            return;
        }
        let mut blocks = [GenericArray::default(); PASS_BLOCKS];
        for b in &mut blocks {
            b[..8].copy_from_slice(&self.id);
            b[8..].copy_from_slice(&self.counter.to_be_bytes());
            self.counter += 1;
        }
        self.expander.cipher.encrypt_blocks(&mut blocks);
        for (w, b) in self.words.chunks_exact_mut(2).zip(&blocks) {
            w[0] = u64::from_le_bytes(b[..8].try_into().expect("8 bytes"));
            w[1] = u64::from_le_bytes(b[8..].try_into().expect("8 bytes"));
        }
        self.pos = 0;
    }
}

/// Lemire's map of keystream words to `[0, q)` (see [`UniformStream::fill`]): writes
/// the accepted words' residues, in order, to the front of `dst` (`dst.len() ≥
/// words.len()`) and returns how many were accepted.
///
/// Groups of [`GROUP`] words whose products all pass the test (the common case: a word
/// is skipped with probability below `q/2^64`) are stored without the data-dependent
/// store index of the compaction, which bounds the loop by its multiplier instead of a
/// chain through `kept`; a group with a skipped word takes the compaction. The output is
/// the same either way (`compaction_matches_the_reference` in the tests).
#[inline]
fn map_words(words: &[u64], q: u64, threshold: u64, dst: &mut [u64]) -> usize {
    let mut kept = 0;
    let mut groups = words.chunks_exact(GROUP);
    for g in &mut groups {
        let mut hi = [0u64; GROUP];
        let mut ok = true;
        for (h, &x) in hi.iter_mut().zip(g) {
            let p = u128::from(x) * u128::from(q);
            *h = (p >> 64) as u64;
            ok &= (p as u64) >= threshold;
        }
        // `kept ≤` the words consumed before this group, so `kept + GROUP ≤ dst.len()`.
        if ok {
            dst[kept..kept + GROUP].copy_from_slice(&hi);
            kept += GROUP;
        } else {
            kept += compact(g, q, threshold, &mut dst[kept..]);
        }
    }
    kept + compact(groups.remainder(), q, threshold, &mut dst[kept..])
}

/// Words mapped per group by [`map_words`].
const GROUP: usize = 8;

/// Branch-free compaction: a skipped word's value is overwritten by the next.
#[inline]
fn compact(words: &[u64], q: u64, threshold: u64, dst: &mut [u64]) -> usize {
    let mut kept = 0;
    for &x in words {
        let p = u128::from(x) * u128::from(q);
        dst[kept] = (p >> 64) as u64;
        kept += usize::from((p as u64) >= threshold);
    }
    kept
}

/// Lemire's map with AVX-512F, eight words per step: the same output as [`map_words`].
#[cfg(target_arch = "x86_64")]
mod wide {
    use std::arch::x86_64::*;

    /// [`super::map_words`] eight words at a time: `x·q` from four 32 × 32-bit products
    /// per lane (`x = x_1·2^32 + x_0`, `q = q_1·2^32 + q_0`: the middle sum
    /// `⌊x_0q_0/2^32⌋ + [x_1q_0]_32 + [x_0q_1]_32` carries into the high word), the test
    /// on the low word as a lane mask, and the accepted high words compressed to the front
    /// of a register stored at `dst[kept..kept + 8]` (the lanes past the accepted ones are
    /// overwritten by the next step or lie past the returned count).
    ///
    /// # Safety
    /// The CPU must have AVX-512F.
    ///
    /// # Panics
    /// If `dst.len() < words.len()`.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn map_words(
        words: &[u64],
        q: u64,
        threshold: u64,
        dst: &mut [u64],
    ) -> usize {
        assert!(dst.len() >= words.len());
        let qv = _mm512_set1_epi64(q as i64);
        let q1 = _mm512_srli_epi64::<32>(qv);
        let low32 = _mm512_set1_epi64(0xffff_ffff);
        let th = _mm512_set1_epi64(threshold as i64);
        let mut kept = 0;
        let mut steps = words.chunks_exact(8);
        for w in &mut steps {
            // SAFETY: `w` holds 8 words.
            let x = unsafe { _mm512_loadu_si512(w.as_ptr() as *const __m512i) };
            let x1 = _mm512_srli_epi64::<32>(x);
            let a = _mm512_mul_epu32(x, qv);
            let b = _mm512_mul_epu32(x1, qv);
            let c = _mm512_mul_epu32(x, q1);
            let d = _mm512_mul_epu32(x1, q1);
            let mid = _mm512_add_epi64(
                _mm512_add_epi64(_mm512_srli_epi64::<32>(a), _mm512_and_si512(b, low32)),
                _mm512_and_si512(c, low32),
            );
            let hi = _mm512_add_epi64(
                _mm512_add_epi64(d, _mm512_srli_epi64::<32>(b)),
                _mm512_add_epi64(_mm512_srli_epi64::<32>(c), _mm512_srli_epi64::<32>(mid)),
            );
            let lo = _mm512_or_si512(_mm512_slli_epi64::<32>(mid), _mm512_and_si512(a, low32));
            let keep = _mm512_cmpge_epu64_mask(lo, th);
            let packed = _mm512_maskz_compress_epi64(keep, hi);
            // SAFETY: `kept` is at most the words consumed before this step, so
            // `kept + 8 ≤ words.len() ≤ dst.len()`.
            unsafe { _mm512_storeu_si512(dst.as_mut_ptr().add(kept) as *mut __m512i, packed) };
            kept += keep.count_ones() as usize;
        }
        kept + super::compact(steps.remainder(), q, threshold, &mut dst[kept..])
    }
}

/// AES-128 in counter mode with VAES (four blocks per AVX-512 instruction), for the
/// same key and counter blocks as the `aes` crate path (checked in the tests).
#[cfg(target_arch = "x86_64")]
mod vaes {
    use super::PASS_BLOCKS;
    use std::arch::x86_64::*;

    /// The 11 round keys of AES-128, each broadcast to the four 128-bit lanes.
    #[derive(Clone, Copy)]
    pub(super) struct RoundKeys([__m512i; 11]);

    impl RoundKeys {
        /// The round keys of `key` if the CPU has VAES and AVX-512F (else `None`: the
        /// `aes` crate's AES-NI or software path is used).
        pub(super) fn new(key: &[u8; 16]) -> Option<Self> {
            if is_x86_feature_detected!("vaes")
                && is_x86_feature_detected!("avx512f")
                && is_x86_feature_detected!("aes")
            {
                // SAFETY: the features were just detected.
                Some(unsafe { Self::expand(key) })
            } else {
                None
            }
        }

        /// FIPS-197 key expansion with AES-NI's `aeskeygenassist`.
        #[target_feature(enable = "avx512f,aes")]
        unsafe fn expand(key: &[u8; 16]) -> Self {
            // SAFETY: 16 readable bytes.
            let mut k = unsafe { _mm_loadu_si128(key.as_ptr() as *const __m128i) };
            let mut rk = [_mm512_broadcast_i32x4(k); 11];
            macro_rules! round {
                ($i:expr, $rcon:expr) => {{
                    let t = _mm_shuffle_epi32(_mm_aeskeygenassist_si128(k, $rcon), 0xff);
                    k = _mm_xor_si128(k, _mm_slli_si128(k, 4));
                    k = _mm_xor_si128(k, _mm_slli_si128(k, 4));
                    k = _mm_xor_si128(k, _mm_slli_si128(k, 4));
                    k = _mm_xor_si128(k, t);
                    rk[$i] = _mm512_broadcast_i32x4(k);
                }};
            }
            round!(1, 0x01);
            round!(2, 0x02);
            round!(3, 0x04);
            round!(4, 0x08);
            round!(5, 0x10);
            round!(6, 0x20);
            round!(7, 0x40);
            round!(8, 0x80);
            round!(9, 0x1b);
            round!(10, 0x36);
            Self(rk)
        }

        /// Encrypts the counter blocks `id ‖ counter + b` (both big-endian) for
        /// `b < PASS_BLOCKS` into `words` (two little-endian words per block).
        pub(super) fn ctr(&self, id: u64, counter: u64, words: &mut [u64; 2 * PASS_BLOCKS]) {
            // SAFETY: `Self` exists only when the features were detected.
            unsafe { self.ctr_impl(id, counter, words) }
        }

        #[target_feature(enable = "avx512f,vaes")]
        unsafe fn ctr_impl(&self, id: u64, counter: u64, words: &mut [u64; 2 * PASS_BLOCKS]) {
            let lo = id.swap_bytes() as i64;
            let rk = &self.0;
            // Four registers (16 blocks) per iteration keep the AES units busy.
            for (g, out) in words.chunks_exact_mut(32).enumerate() {
                let c = counter + 16 * g as u64;
                let hi = |j: u64| (c + j).swap_bytes() as i64;
                let mut x = [
                    _mm512_set_epi64(hi(3), lo, hi(2), lo, hi(1), lo, hi(0), lo),
                    _mm512_set_epi64(hi(7), lo, hi(6), lo, hi(5), lo, hi(4), lo),
                    _mm512_set_epi64(hi(11), lo, hi(10), lo, hi(9), lo, hi(8), lo),
                    _mm512_set_epi64(hi(15), lo, hi(14), lo, hi(13), lo, hi(12), lo),
                ];
                for v in &mut x {
                    *v = _mm512_xor_si512(*v, rk[0]);
                }
                for r in &rk[1..10] {
                    for v in &mut x {
                        *v = _mm512_aesenc_epi128(*v, *r);
                    }
                }
                for (v, o) in x.iter().zip(out.chunks_exact_mut(8)) {
                    let e = _mm512_aesenclast_epi128(*v, rk[10]);
                    // SAFETY: `o` holds 8 words.
                    unsafe { _mm512_storeu_si512(o.as_mut_ptr() as *mut __m512i, e) };
                }
            }
        }
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
    fn compaction_matches_the_reference() {
        // The grouped map against the word-by-word definition, with thresholds that
        // skip no word, some words and most words (forcing the compaction path).
        let ex = SeedExpander::new(&[9u8; 32]);
        let mut words = [0u64; 2 * PASS_BLOCKS];
        let m61 = modulus(61);
        let mut s = ex.stream(0, 0, &m61);
        s.refill();
        words.copy_from_slice(&s.words);
        for q in [modulus(61).value(), (1u64 << 60) + 33, modulus(40).value()] {
            for threshold in [0, q.wrapping_neg() % q, 1 << 62, u64::MAX - (1 << 60)] {
                for len in [0, 1, 7, 8, 9, 100, words.len()] {
                    let w = &words[..len];
                    let want: Vec<u64> = w
                        .iter()
                        .map(|&x| u128::from(x) * u128::from(q))
                        .filter(|&p| (p as u64) >= threshold)
                        .map(|p| (p >> 64) as u64)
                        .collect();
                    let mut dst = vec![0u64; len];
                    let kept = map_words(w, q, threshold, &mut dst);
                    assert_eq!(
                        &dst[..kept],
                        &want[..],
                        "q {q}, threshold {threshold}, {len}"
                    );
                    #[cfg(target_arch = "x86_64")]
                    if ex.avx512 {
                        let mut dst = vec![0u64; len];
                        // SAFETY: AVX-512F detected; `dst` as long as `w`.
                        let kept = unsafe { wide::map_words(w, q, threshold, &mut dst) };
                        assert_eq!(
                            &dst[..kept],
                            &want[..],
                            "AVX-512: q {q}, {threshold}, {len}"
                        );
                    } else {
                        eprintln!("SKIPPED the AVX-512 map's check: this CPU has no AVX-512F");
                    }
                }
            }
        }
    }

    #[test]
    fn vaes_matches_the_aes_crate() {
        #[cfg(target_arch = "x86_64")]
        {
            let ex = SeedExpander::new(&[11u8; 32]);
            if ex.vaes.is_none() {
                eprintln!("SKIPPED vaes_matches_the_aes_crate: this CPU has no VAES");
                return;
            }
            let m = modulus(61);
            let plain = SeedExpander {
                vaes: None,
                ..ex.clone()
            };
            for (d, i) in [(0, 0), (3, 17), (1 << 20, 5)] {
                let mut x = vec![0u64; 3000];
                let mut y = vec![0u64; 3000];
                ex.fill(d, i, &m, &mut x);
                plain.fill(d, i, &m, &mut y);
                assert_eq!(x, y, "stream ({d}, {i})");
            }
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
