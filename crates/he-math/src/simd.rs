//! AVX-512 kernels for limb-wise modular arithmetic, with runtime detection and scalar
//! fallbacks.
//!
//! - Products `a·b mod q` for `q < 2^50` use AVX-512 IFMA (`vpmadd52{lo,hi}uq`): the
//!   104-bit product is split into 52-bit halves and reduced by a Barrett quotient
//!   estimate `floor(floor(x / 2^{L-1}) · floor(2^{L+51}/q) / 2^52)` (L = bits of q),
//!   which is at most 2 below the true quotient, so two conditional subtractions finish.
//! - Products by a fixed scalar use Shoup's method in radix 2^52.
//! - Products and sums of products for moduli of 55 to 61 bits (the bootstrapping and large
//!   special primes): the key-switching inner product, the fast basis conversion and
//!   limb products split both factors as `x = x_1·2^52 + x_0` and accumulate the seven
//!   IFMA partial products in three radix-2^52 lane accumulators (weights `1`, `2^52`,
//!   `2^104`), with no reduction inside a sum; each output is reduced once in registers:
//!   `2^104` folded as `2^104 mod q`, then a Barrett quotient of at most 52 bits.
//! - Additions and subtractions are plain loops compiled with AVX-512 (else AVX2)
//!   enabled so the compiler vectorises them.
//!
//! Every entry point checks the CPU at run time (`is_x86_feature_detected!`, cached by
//! the standard library) and falls back to the scalar code of [`crate::modulus`].

use crate::modulus::Modulus;

/// Largest modulus (exclusive) handled by the IFMA kernels that reduce every product.
pub const IFMA_MAX_MODULUS: u64 = 1 << 50;

/// Most terms a wide (radix-2^52, three-accumulator) sum of products may have: the middle
/// accumulator gains less than `3·2^52` per term and must stay below `2^64`.
const WIDE_MAX_TERMS: usize = 1024;

/// Fewest bits of a modulus for the wide kernels (their Barrett quotient must fit 52 bits).
const WIDE_MIN_BITS: u32 = 55;

/// Whether this CPU has AVX-512F and AVX-512 IFMA.
#[inline]
pub fn has_ifma() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512ifma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Whether this CPU has AVX-512F.
#[inline]
pub fn has_avx512() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// The widest kernels this CPU runs (runtime detection): which of this module's code
/// paths the CPU-SIMD backend takes, so that a benchmark's numbers can be read for the
/// machine that produced them (a rotation at level 20 of the N = 2^16 bootstrapping
/// preset: 82–90 ms with IFMA, 150–174 ms on an AVX2-only AMD EPYC of the same 2-vCPU
/// size; docs/results/ckks.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum KernelTier {
    /// AVX-512F and AVX-512 IFMA: the vector products of this module and tfhe-ntt's
    /// IFMA transform for primes below 2^51.
    Avx512Ifma,
    /// AVX-512F without IFMA: vectorised element-wise loops, scalar products.
    Avx512,
    /// AVX2 (e.g. AMD Zen 2/3): vectorised element-wise loops, scalar 64-bit products
    /// (one-word Barrett, 128-bit sums), tfhe-ntt's AVX2 transform.
    Avx2,
    /// None of the above: scalar code throughout.
    Portable,
}

impl KernelTier {
    /// The tier of the CPU this runs on.
    pub fn detect() -> Self {
        if has_ifma() {
            Self::Avx512Ifma
        } else if has_avx512() {
            Self::Avx512
        } else if has_avx2() {
            Self::Avx2
        } else {
            Self::Portable
        }
    }

    /// Short name (`"avx512-ifma"`, `"avx512"`, `"avx2"`, `"portable"`), as the
    /// benchmarks' JSON reports it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Avx512Ifma => "avx512-ifma",
            Self::Avx512 => "avx512",
            Self::Avx2 => "avx2",
            Self::Portable => "portable",
        }
    }
}

/// Whether this CPU has AVX2 (the vector width the element-wise loops fall back to
/// without AVX-512, e.g. on AMD Zen 3 and most laptop CPUs).
#[inline]
pub fn has_avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

#[inline(always)]
fn use_ifma(m: &Modulus) -> bool {
    m.value() < IFMA_MAX_MODULUS && has_ifma()
}

/// Whether the wide IFMA kernels apply: moduli of 55 to 61 bits (the bootstrapping and
/// large special primes), where their vector reduction is exact.
#[inline(always)]
fn use_wide(m: &Modulus) -> bool {
    m.bits() >= WIDE_MIN_BITS && has_ifma()
}

macro_rules! autovec {
    ($(#[$doc:meta])* $name:ident, $inner:ident, ($($arg:ident : $ty:ty),*)) => {
        $(#[$doc])*
        pub fn $name(m: &Modulus, $($arg: $ty),*) {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx512vl")]
                fn wide(m: &Modulus, $($arg: $ty),*) {
                    $inner(m, $($arg),*)
                }
                #[target_feature(enable = "avx2")]
                fn narrow(m: &Modulus, $($arg: $ty),*) {
                    $inner(m, $($arg),*)
                }
                if has_avx512() {
                    // SAFETY: the CPU supports AVX-512F/VL (checked just above).
                    unsafe { wide(m, $($arg),*) };
                    return;
                }
                if has_avx2() {
                    // SAFETY: the CPU supports AVX2 (checked just above).
                    unsafe { narrow(m, $($arg),*) };
                    return;
                }
            }
            $inner(m, $($arg),*)
        }
    };
}

#[inline(always)]
fn add_scalar(m: &Modulus, a: &mut [u64], b: &[u64]) {
    let q = m.value();
    for (x, &y) in a.iter_mut().zip(b) {
        let s = *x + y;
        *x = if s >= q { s - q } else { s };
    }
}

#[inline(always)]
fn sub_scalar(m: &Modulus, a: &mut [u64], b: &[u64]) {
    let q = m.value();
    for (x, &y) in a.iter_mut().zip(b) {
        let s = *x + q - y;
        *x = if s >= q { s - q } else { s };
    }
}

#[inline(always)]
fn neg_scalar(m: &Modulus, a: &mut [u64]) {
    let q = m.value();
    for x in a.iter_mut() {
        *x = if *x == 0 { 0 } else { q - *x };
    }
}

#[inline(always)]
fn add_const_scalar(m: &Modulus, a: &mut [u64], c: u64) {
    let q = m.value();
    for x in a.iter_mut() {
        let s = *x + c;
        *x = if s >= q { s - q } else { s };
    }
}

autovec!(
    /// `a ← (a + b) mod q`, inputs below `q`.
    add_assign, add_scalar, (a: &mut [u64], b: &[u64]));
autovec!(
    /// `a ← (a − b) mod q`, inputs below `q`.
    sub_assign, sub_scalar, (a: &mut [u64], b: &[u64]));
autovec!(
    /// `a ← (−a) mod q`, input below `q`.
    neg_assign, neg_scalar, (a: &mut [u64]));
autovec!(
    /// `a ← (a + c) mod q` for a constant `c < q`.
    add_const_assign, add_const_scalar, (a: &mut [u64], c: u64));

/// `a ← a · b mod q`, inputs below `q`.
pub fn mul_assign(m: &Modulus, a: &mut [u64], b: &[u64]) {
    #[cfg(target_arch = "x86_64")]
    if use_ifma(m) {
        // SAFETY: AVX-512F and IFMA are present and q < 2^50 (checked by `use_ifma`).
        unsafe { ifma::mul(m, ifma::Dst::InPlace(a), b) };
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if use_wide(m) {
        // SAFETY: AVX-512F and IFMA are present and 2^54 ≤ q < 2^61.
        unsafe { ifma::mul_wide(m, ifma::Dst::InPlace(a), b) };
        return;
    }
    for (x, &y) in a.iter_mut().zip(b) {
        *x = m.reduce_product(*x as u128 * y as u128);
    }
}

/// `acc ← (acc + a · b) mod q`, inputs below `q`.
pub fn mul_add_assign(m: &Modulus, acc: &mut [u64], a: &[u64], b: &[u64]) {
    #[cfg(target_arch = "x86_64")]
    if use_ifma(m) {
        // SAFETY: AVX-512F and IFMA are present and q < 2^50.
        unsafe { ifma::mul(m, ifma::Dst::Accumulate(acc, a), b) };
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if use_wide(m) {
        // SAFETY: AVX-512F and IFMA are present and 2^54 ≤ q < 2^61.
        unsafe { ifma::mul_wide(m, ifma::Dst::Accumulate(acc, a), b) };
        return;
    }
    for ((x, &u), &v) in acc.iter_mut().zip(a).zip(b) {
        *x = m.reduce_product(u as u128 * v as u128 + *x as u128);
    }
}

/// `out ← Σ_t a_t · b_t mod q` (a dot product of limbs, e.g. the key-switching inner
/// product), inputs below `q`, every slice at least `out.len()` long.
///
/// # Panics
/// If `a.len() != b.len()` or a slice is shorter than `out`.
pub fn dot_assign(m: &Modulus, out: &mut [u64], a: &[&[u64]], b: &[&[u64]]) {
    assert!(
        a.len() == b.len() && a.iter().chain(b).all(|x| x.len() >= out.len()),
        "dot product operands too short"
    );
    #[cfg(target_arch = "x86_64")]
    if use_ifma(m) {
        // SAFETY: AVX-512F and IFMA are present, q < 2^50, lengths checked.
        unsafe { ifma::dot(m, out, a, b) };
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if use_wide(m) && a.len() <= WIDE_MAX_TERMS {
        // SAFETY: AVX-512F and IFMA are present, inputs below q, 2^54 ≤ q < 2^61, at most
        // WIDE_MAX_TERMS terms, lengths checked.
        unsafe { ifma::dot_wide(m, out, a, b) };
        return;
    }
    dot_scalar(m, out, a, b);
}

/// Outputs computed together by the scalar sums of products: independent 128-bit
/// accumulation chains, so that the multiplier is not waiting on one chain's carries.
const SCALAR_LANES: usize = 4;

/// The scalar dot product: lazy 128-bit sums of products of residues (each below
/// `2^122`, so 63 of them and a carried residue fit), one [`Modulus::reduce_u128`] per
/// sum; [`SCALAR_LANES`] outputs at a time (about 25 % faster on an AVX2 EPYC than one
/// output at a time; docs/results/ckks.md).
fn dot_scalar(m: &Modulus, out: &mut [u64], a: &[&[u64]], b: &[&[u64]]) {
    const PER: usize = 63;
    let len = out.len();
    let body = len - len % SCALAR_LANES;
    if a.len() <= PER {
        // One sum per output (key switching has at most a few digits).
        for t in (0..body).step_by(SCALAR_LANES) {
            let mut acc = [0u128; SCALAR_LANES];
            for (x, y) in a.iter().zip(b) {
                let (x, y) = (&x[t..t + SCALAR_LANES], &y[t..t + SCALAR_LANES]);
                for j in 0..SCALAR_LANES {
                    acc[j] += x[j] as u128 * y[j] as u128;
                }
            }
            for (o, v) in out[t..t + SCALAR_LANES].iter_mut().zip(acc) {
                *o = m.reduce_u128(v);
            }
        }
    } else {
        for t in (0..body).step_by(SCALAR_LANES) {
            let mut acc = [0u128; SCALAR_LANES];
            for (ca, cb) in a.chunks(PER).zip(b.chunks(PER)) {
                for (x, y) in ca.iter().zip(cb) {
                    let (x, y) = (&x[t..t + SCALAR_LANES], &y[t..t + SCALAR_LANES]);
                    for j in 0..SCALAR_LANES {
                        acc[j] += x[j] as u128 * y[j] as u128;
                    }
                }
                for v in &mut acc {
                    *v = m.reduce_u128(*v) as u128;
                }
            }
            for (o, v) in out[t..t + SCALAR_LANES].iter_mut().zip(acc) {
                *o = v as u64;
            }
        }
    }
    for (t, o) in out.iter_mut().enumerate().skip(body) {
        let mut acc = 0u128;
        for (ca, cb) in a.chunks(PER).zip(b.chunks(PER)) {
            for (x, y) in ca.iter().zip(cb) {
                acc += x[t] as u128 * y[t] as u128;
            }
            acc = m.reduce_u128(acc) as u128;
        }
        *o = acc as u64;
    }
}

/// `a ← a · s mod q` for a constant `s < q` (Shoup).
pub fn scalar_mul_assign(m: &Modulus, a: &mut [u64], s: u64) {
    #[cfg(target_arch = "x86_64")]
    if use_ifma(m) {
        // SAFETY: AVX-512F and IFMA are present and q < 2^50.
        unsafe { ifma::mul_const(m, a, None, s) };
        return;
    }
    let ss = m.shoup(s);
    for x in a.iter_mut() {
        *x = m.mul_shoup(*x, s, ss);
    }
}

/// `acc ← acc + a · s mod q` for a constant `s < q` (Shoup), inputs below `q`, `a` at
/// least as long as `acc`.
///
/// # Panics
/// If `a` is shorter than `acc`.
pub fn scalar_mul_add_assign(m: &Modulus, acc: &mut [u64], a: &[u64], s: u64) {
    assert!(
        a.len() >= acc.len(),
        "scalar multiply-add operand too short"
    );
    #[cfg(target_arch = "x86_64")]
    if use_ifma(m) {
        // SAFETY: AVX-512F and IFMA are present, q < 2^50, a at least as long as acc.
        unsafe { ifma::mul_const_add(m, acc, a, s) };
        return;
    }
    let ss = m.shoup(s);
    for (x, &y) in acc.iter_mut().zip(a) {
        *x = m.add(*x, m.mul_shoup(y, s, ss));
    }
}

/// `a ← (a − b) · s mod q` for a constant `s < q`, inputs below `q`.
pub fn sub_scalar_mul_assign(m: &Modulus, a: &mut [u64], b: &[u64], s: u64) {
    #[cfg(target_arch = "x86_64")]
    if use_ifma(m) {
        // SAFETY: AVX-512F and IFMA are present and q < 2^50.
        unsafe { ifma::mul_const(m, a, Some(b), s) };
        return;
    }
    let ss = m.shoup(s);
    let q = m.value();
    for (x, &y) in a.iter_mut().zip(b) {
        *x = m.mul_shoup(*x + q - y, s, ss);
    }
}

/// One output limb of a fast basis conversion: `out[k] = Σ_i y[i·len + k] · row[i] mod c`
/// with `len = out.len()`, `row[i] < c`, and every `y` value below `y_bound ≤ 2^61`.
///
/// With IFMA and `c < 2^50`: inputs above 2^52 are split as `y_hi·2^52 + y_lo`; the
/// 104-bit products of each group of three terms are accumulated as separate low/high
/// 52-bit sums in vector lanes, reduced in-register as `high·(2^52 mod c) + low` with two
/// Shoup products, and summed modulo `c`. With IFMA and a larger `c`: the wide kernel
/// (module docs). Otherwise a scalar loop with lazy 128-bit accumulation.
pub fn basis_convert_limb(c: &Modulus, row: &[u64], y: &[u64], y_bound: u64, out: &mut [u64]) {
    let len = out.len();
    assert!(
        y.len() >= row.len() * len,
        "basis conversion input too short"
    );
    #[cfg(target_arch = "x86_64")]
    if use_ifma(c) && y_bound <= (1 << 61) {
        // SAFETY: AVX-512F and IFMA present, c < 2^50, y < 2^61, lengths checked.
        unsafe { ifma::convert_limb(c, row, y, y_bound, out) };
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if use_wide(c) && y_bound <= (1 << 61) && row.len() <= WIDE_MAX_TERMS {
        // SAFETY: AVX-512F and IFMA present, 2^54 ≤ c < 2^61, y < 2^61, at most
        // WIDE_MAX_TERMS terms, lengths checked.
        unsafe { ifma::convert_limb_wide(c, row, y, out) };
        return;
    }
    convert_limb_scalar(c, row, y, y_bound, out);
}

/// The scalar basis conversion: lazy 128-bit sums of as many products (each below
/// `y_bound · c`) as fit beside a carried residue (63 for `y_bound ≤ 2^61`), one
/// [`Modulus::reduce_u128`] per sum; [`SCALAR_LANES`] outputs at a time.
fn convert_limb_scalar(c: &Modulus, row: &[u64], y: &[u64], y_bound: u64, out: &mut [u64]) {
    let cq = c.value() as u128;
    let per = ((u128::MAX - cq) / (u128::from(y_bound.max(1)) * cq)).clamp(1, 64) as usize;
    let len = out.len();
    let body = len - len % SCALAR_LANES;
    if row.len() <= per {
        // One sum per output (up to 64 terms for `y_bound ≤ 2^61`): the plain loop,
        // about 20 % faster on an AVX2 EPYC than the chunked one below.
        for k in (0..body).step_by(SCALAR_LANES) {
            let mut acc = [0u128; SCALAR_LANES];
            for (i, &w) in row.iter().enumerate() {
                let at = i * len + k;
                let ys = &y[at..at + SCALAR_LANES];
                for j in 0..SCALAR_LANES {
                    acc[j] += ys[j] as u128 * w as u128;
                }
            }
            for (o, v) in out[k..k + SCALAR_LANES].iter_mut().zip(acc) {
                *o = c.reduce_u128(v);
            }
        }
    } else {
        for k in (0..body).step_by(SCALAR_LANES) {
            let mut acc = [0u128; SCALAR_LANES];
            // Each chunk of terms with its own slice of `y`.
            for (ws, yc) in row.chunks(per).zip(y.chunks(per * len)) {
                for (i, &w) in ws.iter().enumerate() {
                    let at = i * len + k;
                    let ys = &yc[at..at + SCALAR_LANES];
                    for j in 0..SCALAR_LANES {
                        acc[j] += ys[j] as u128 * w as u128;
                    }
                }
                for v in &mut acc {
                    *v = c.reduce_u128(*v) as u128;
                }
            }
            for (o, v) in out[k..k + SCALAR_LANES].iter_mut().zip(acc) {
                *o = v as u64;
            }
        }
    }
    for (k, o) in out.iter_mut().enumerate().skip(body) {
        let mut acc = 0u128;
        for (ws, yc) in row.chunks(per).zip(y.chunks(per * len)) {
            for (i, &w) in ws.iter().enumerate() {
                acc += yc[i * len + k] as u128 * w as u128;
            }
            acc = c.reduce_u128(acc) as u128;
        }
        *o = acc as u64;
    }
}

/// `out[i] = a[perm[i]]` for a permutation that maps every aligned block of 8 words of
/// `out` onto one aligned block of 8 words of `a`, as the NTT-domain Galois permutations
/// of [`crate::galois::ntt_permutation`] do (their top index bits map to top index bits,
/// [`crate::galois::is_block_permutation`]). With AVX-512F a block is one 64-byte load
/// and one lane permutation (`vpermq`) instead of 8 scalar loads; memory-safe for any
/// `perm` (a block address is clamped into `a`), but only a block permutation gives
/// `a[perm[i]]` (checked in debug builds). `perm` may be a run of a longer permutation
/// (`out` and `perm` of one length, a multiple of 8 for the vector path; `a` the whole
/// source).
///
/// # Panics
/// If `out` and `perm` differ in length, or (scalar path) if an index of `perm` is out
/// of range.
pub(crate) fn permute_blocks(a: &[u64], perm: &[u32], out: &mut [u64]) {
    // SAFETY: `MaybeUninit<u64>` has the layout of `u64`, and only initialized words are
    // written through the view.
    let out = unsafe { &mut *(out as *mut [u64] as *mut [std::mem::MaybeUninit<u64>]) };
    permute_blocks_into(a, perm, out);
}

/// [`permute_blocks`] into memory not yet initialized; every word of `out` is written.
///
/// # Panics
/// As [`permute_blocks`].
pub(crate) fn permute_blocks_into(a: &[u64], perm: &[u32], out: &mut [std::mem::MaybeUninit<u64>]) {
    assert_eq!(
        out.len(),
        perm.len(),
        "permutation and output must have the same length"
    );
    #[cfg(target_arch = "x86_64")]
    if a.len() >= 8 && a.len().is_multiple_of(8) && perm.len().is_multiple_of(8) && has_avx512() {
        debug_assert!(perm.chunks_exact(8).all(|b| {
            b.iter()
                .all(|&p| p >> 3 == b[0] >> 3 && (p as usize) < a.len())
        }));
        // SAFETY: AVX-512F is present; `perm` and `out` have one length, a multiple of
        // 8, `a` a multiple of 8 (checked); the kernel clamps every block into `a`.
        unsafe { permute::blocks8(a, perm, out) };
        return;
    }
    for (o, &p) in out.iter_mut().zip(perm) {
        o.write(a[p as usize]);
    }
}

#[cfg(target_arch = "x86_64")]
mod permute {
    use std::arch::x86_64::*;

    /// [`super::permute_blocks`] with AVX-512F.
    ///
    /// # Safety
    /// AVX-512F available; `perm` and `out` of one length, a multiple of 8; `a` a
    /// non-zero multiple of 8 long.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn blocks8(a: &[u64], perm: &[u32], out: &mut [std::mem::MaybeUninit<u64>]) {
        let last = a.len() - 8;
        for b in (0..perm.len()).step_by(8) {
            // SAFETY: b + 8 ≤ len for `perm` and `out`; `base + 8 ≤ a.len()` by the clamp.
            unsafe {
                let idx32 = _mm256_loadu_si256(perm.as_ptr().add(b) as *const __m256i);
                // vpermq reads the low 3 bits of each 64-bit index: the lane in the block.
                let idx = _mm512_cvtepu32_epi64(idx32);
                let base = (*perm.get_unchecked(b) as usize & !7).min(last);
                let src = _mm512_loadu_si512(a.as_ptr().add(base) as *const __m512i);
                let v = _mm512_permutexvar_epi64(idx, src);
                _mm512_storeu_si512(out.as_mut_ptr().add(b) as *mut __m512i, v);
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod ifma {
    use super::Modulus;
    use std::arch::x86_64::*;

    const MASK52: u64 = (1 << 52) - 1;

    /// Destination of [`mul`]: `a ← a·b`, or `acc ← acc + a·b`.
    pub(super) enum Dst<'a> {
        InPlace(&'a mut [u64]),
        Accumulate(&'a mut [u64], &'a [u64]),
    }

    /// Barrett product of 8 lanes (`x, y < q < 2^50`), result in `[0, q)`.
    #[inline]
    #[target_feature(enable = "avx512f,avx512ifma")]
    fn mul8(
        x: __m512i,
        y: __m512i,
        vq: __m512i,
        vmu: __m512i,
        sh_hi: __m128i,
        sh_lo: __m128i,
    ) -> __m512i {
        let zero = _mm512_setzero_si512();
        let mask = _mm512_set1_epi64(MASK52 as i64);
        let lo = _mm512_madd52lo_epu64(zero, x, y);
        let hi = _mm512_madd52hi_epu64(zero, x, y);
        let t = _mm512_or_si512(_mm512_sll_epi64(hi, sh_hi), _mm512_srl_epi64(lo, sh_lo));
        let qe = _mm512_madd52hi_epu64(zero, t, vmu);
        let r = _mm512_and_si512(
            _mm512_sub_epi64(lo, _mm512_madd52lo_epu64(zero, qe, vq)),
            mask,
        );
        let r = _mm512_min_epu64(r, _mm512_sub_epi64(r, vq));
        _mm512_min_epu64(r, _mm512_sub_epi64(r, vq))
    }

    /// `a ← a·b mod q`, or `acc ← acc + a·b mod q`.
    ///
    /// # Safety
    /// AVX-512F and AVX-512 IFMA must be available, `q < 2^50`, all inputs below `q`,
    /// and `b` (and the accumulated `a`) at least as long as the destination.
    #[target_feature(enable = "avx512f,avx512ifma")]
    pub(super) unsafe fn mul(m: &Modulus, dst: Dst<'_>, b: &[u64]) {
        let q = m.value();
        let l = m.bits() as u64;
        let mu = ((1u128 << (l + 51)) / q as u128) as u64;
        let vq = _mm512_set1_epi64(q as i64);
        let vmu = _mm512_set1_epi64(mu as i64);
        let sh_hi = _mm_cvtsi64_si128((53 - l) as i64);
        let sh_lo = _mm_cvtsi64_si128((l - 1) as i64);
        match dst {
            Dst::InPlace(a) => {
                assert!(b.len() >= a.len());
                let len = a.len();
                let mut chunks = a.chunks_exact_mut(8);
                for (i, c) in (&mut chunks).enumerate() {
                    // SAFETY: c has 8 elements, b has at least 8·(i+1).
                    unsafe {
                        let x = _mm512_loadu_si512(c.as_ptr() as *const __m512i);
                        let y = _mm512_loadu_si512(b.as_ptr().add(8 * i) as *const __m512i);
                        _mm512_storeu_si512(
                            c.as_mut_ptr() as *mut __m512i,
                            mul8(x, y, vq, vmu, sh_hi, sh_lo),
                        );
                    }
                }
                let rem = chunks.into_remainder();
                let off = len - rem.len();
                for (j, x) in rem.iter_mut().enumerate() {
                    *x = m.mul(*x, b[off + j]);
                }
            }
            Dst::Accumulate(acc, a) => {
                assert!(b.len() >= acc.len() && a.len() >= acc.len());
                let len = acc.len();
                let mut chunks = acc.chunks_exact_mut(8);
                for (i, c) in (&mut chunks).enumerate() {
                    // SAFETY: c has 8 elements, a and b at least 8·(i+1).
                    unsafe {
                        let x = _mm512_loadu_si512(a.as_ptr().add(8 * i) as *const __m512i);
                        let y = _mm512_loadu_si512(b.as_ptr().add(8 * i) as *const __m512i);
                        let p = mul8(x, y, vq, vmu, sh_hi, sh_lo);
                        let s =
                            _mm512_add_epi64(p, _mm512_loadu_si512(c.as_ptr() as *const __m512i));
                        let s = _mm512_min_epu64(s, _mm512_sub_epi64(s, vq));
                        _mm512_storeu_si512(c.as_mut_ptr() as *mut __m512i, s);
                    }
                }
                let rem = chunks.into_remainder();
                let off = len - rem.len();
                for (j, x) in rem.iter_mut().enumerate() {
                    *x = m.mul_add(a[off + j], b[off + j], *x);
                }
            }
        }
    }

    /// Reduction of lazily summed 52-bit halves modulo `c < 2^50` (the narrow lazy dot
    /// product and basis conversion): `lo + hi·2^52` with `hi + ⌊lo/2^52⌋ < 2^52` is
    /// `high·(2^52 mod c) + low`, two Shoup products in radix 2^52, each in `[0, 2c)`.
    #[derive(Clone, Copy)]
    struct HalvesReducer {
        vc: __m512i,
        vc2: __m512i,
        vr: __m512i,
        vr_sh: __m512i,
        vone: __m512i,
        vone_sh: __m512i,
    }

    impl HalvesReducer {
        #[inline]
        #[target_feature(enable = "avx512f")]
        fn new(c: &Modulus) -> Self {
            let cv = c.value();
            // 2^52 mod c and the Shoup companions (w·2^52/c) of 2^52 mod c and of 1.
            let r52 = ((1u128 << 52) % cv as u128) as u64;
            Self {
                vc: _mm512_set1_epi64(cv as i64),
                vc2: _mm512_set1_epi64(2 * cv as i64),
                vr: _mm512_set1_epi64(r52 as i64),
                vr_sh: _mm512_set1_epi64((((r52 as u128) << 52) / cv as u128) as i64),
                vone: _mm512_set1_epi64(1),
                vone_sh: _mm512_set1_epi64(((1u128 << 52) / cv as u128) as i64),
            }
        }

        /// Shoup product `x·w mod c` in `[0, 2c)` for `x < 2^52`, `w < c`,
        /// `ws = ⌊w·2^52/c⌋`.
        #[inline]
        #[target_feature(enable = "avx512f,avx512ifma")]
        fn shoup(&self, x: __m512i, w: __m512i, ws: __m512i) -> __m512i {
            let zero = _mm512_setzero_si512();
            let qh = _mm512_madd52hi_epu64(zero, x, ws);
            _mm512_and_si512(
                _mm512_sub_epi64(
                    _mm512_madd52lo_epu64(zero, x, w),
                    _mm512_madd52lo_epu64(zero, qh, self.vc),
                ),
                _mm512_set1_epi64(MASK52 as i64),
            )
        }

        /// `acc + (vlo + vhi·2^52) mod c` in `[0, c)`, for `acc < c`.
        #[inline]
        #[target_feature(enable = "avx512f,avx512ifma")]
        fn add_reduced(&self, acc: __m512i, vlo: __m512i, vhi: __m512i) -> __m512i {
            let h = _mm512_add_epi64(vhi, _mm512_srli_epi64::<52>(vlo));
            let l = _mm512_and_si512(vlo, _mm512_set1_epi64(MASK52 as i64));
            let s = _mm512_add_epi64(
                self.shoup(h, self.vr, self.vr_sh),
                self.shoup(l, self.vone, self.vone_sh),
            );
            let s = _mm512_min_epu64(s, _mm512_sub_epi64(s, self.vc2));
            let s = _mm512_min_epu64(s, _mm512_sub_epi64(s, self.vc));
            let a = _mm512_add_epi64(acc, s);
            _mm512_min_epu64(a, _mm512_sub_epi64(a, self.vc))
        }
    }

    /// IFMA body of [`super::basis_convert_limb`].
    ///
    /// # Safety
    /// AVX-512F and IFMA available, `c < 2^50`, `y < 2^52`, `row.len() ≤ 2^11`,
    /// `y.len() ≥ row.len() · out.len()`.
    #[target_feature(enable = "avx512f,avx512ifma")]
    pub(super) unsafe fn convert_limb(
        c: &Modulus,
        row: &[u64],
        y: &[u64],
        y_bound: u64,
        out: &mut [u64],
    ) {
        let len = out.len();
        let body = len - len % 8;
        let cv = c.value();
        let zero = _mm512_setzero_si512();
        let red = HalvesReducer::new(c);
        // Inputs above 2^52 are split y = y_hi·2^52 + y_lo; w2 = w·2^52 mod c.
        let wide = y_bound > (1 << 52);
        let w2: Vec<u64> = if wide {
            row.iter()
                .map(|&w| (((w as u128) << 52) % cv as u128) as u64)
                .collect()
        } else {
            Vec::new()
        };
        let mut k = 0;
        while k < body {
            let mut acc = zero;
            // Groups of three terms keep the high sum below 2^52 (each high part
            // < 2^50, plus the low-sum carry), so one Shoup step reduces it.
            for g in (0..row.len()).step_by(3) {
                let mut vlo = zero;
                let mut vhi = zero;
                for i in g..(g + 3).min(row.len()) {
                    let vw = _mm512_set1_epi64(row[i] as i64);
                    // SAFETY: i·len + k + 8 ≤ y.len() by the caller's length guarantee.
                    let vy = unsafe {
                        _mm512_loadu_si512(y.as_ptr().add(i * len + k) as *const __m512i)
                    };
                    vlo = _mm512_madd52lo_epu64(vlo, vy, vw);
                    vhi = _mm512_madd52hi_epu64(vhi, vy, vw);
                    if wide {
                        let yh = _mm512_srli_epi64::<52>(vy);
                        let vw2 = _mm512_set1_epi64(w2[i] as i64);
                        vlo = _mm512_madd52lo_epu64(vlo, yh, vw2);
                        vhi = _mm512_madd52hi_epu64(vhi, yh, vw2);
                    }
                }
                acc = red.add_reduced(acc, vlo, vhi);
            }
            // SAFETY: k + 8 ≤ len.
            unsafe { _mm512_storeu_si512(out.as_mut_ptr().add(k) as *mut __m512i, acc) };
            k += 8;
        }
        for (t, o) in out.iter_mut().enumerate().skip(body) {
            let mut acc: u128 = 0;
            for (i, &w) in row.iter().enumerate() {
                acc += y[i * len + t] as u128 * w as u128;
                if i % 64 == 63 {
                    acc = c.reduce_u128(acc) as u128;
                }
            }
            *o = c.reduce_u128(acc);
        }
    }

    /// Seven IFMA partial products of `x·w` (`x, w < 2^62`; `x1 = x >> 52`,
    /// `w1 = w >> 52`; IFMA reads only the low 52 bits of `x` and `w`) added to the
    /// radix-2^52 accumulators `a[0]` (weight 1), `a[1]` (2^52) and `a[2]` (2^104). Per
    /// term `a[0]` gains `< 2^52`, `a[1]` `< 3·2^52`, `a[2]` `< 2^21`.
    #[inline]
    #[target_feature(enable = "avx512f,avx512ifma")]
    fn wide_mul_acc(a: &mut [__m512i; 3], x: __m512i, x1: __m512i, w: __m512i, w1: __m512i) {
        a[0] = _mm512_madd52lo_epu64(a[0], x, w);
        a[1] = _mm512_madd52hi_epu64(a[1], x, w);
        a[1] = _mm512_madd52lo_epu64(a[1], x1, w);
        a[1] = _mm512_madd52lo_epu64(a[1], x, w1);
        a[2] = _mm512_madd52hi_epu64(a[2], x1, w);
        a[2] = _mm512_madd52hi_epu64(a[2], x, w1);
        a[2] = _mm512_madd52lo_epu64(a[2], x1, w1);
    }

    /// Constants of [`wide_reduce`] for one modulus `q` (`2^54 ≤ q < 2^61`).
    #[derive(Clone, Copy)]
    struct WideReducer {
        /// `2^104 mod q` split in radix 2^52, `q` and its high part, the Barrett
        /// constant `⌊2^{L+51}/q⌋` (`L` = bits of `q`) and the shift `L − 53`.
        vr0: __m512i,
        vr1: __m512i,
        vq: __m512i,
        vq1: __m512i,
        vmu: __m512i,
        shift: __m128i,
    }

    impl WideReducer {
        #[inline]
        #[target_feature(enable = "avx512f")]
        fn new(m: &Modulus) -> Self {
            let q = m.value();
            let l = m.bits() as u64;
            let r104 = ((1u128 << 104) % q as u128) as u64;
            Self {
                vr0: _mm512_set1_epi64((r104 & MASK52) as i64),
                vr1: _mm512_set1_epi64((r104 >> 52) as i64),
                vq: _mm512_set1_epi64(q as i64),
                vq1: _mm512_set1_epi64((q >> 52) as i64),
                vmu: _mm512_set1_epi64(((1u128 << (l + 51)) / q as u128) as i64),
                shift: _mm_cvtsi64_si128(l.saturating_sub(53) as i64),
            }
        }
    }

    /// Reduces the 8 lanes of the wide accumulators `a` modulo `q` into `out[..8]`.
    ///
    /// The value is `V = a_0 + a_1·2^52 + a_2·2^104`. Carries give radix-2^52 digits
    /// `d_0, d_1 < 2^52` and `e < 2^32` (at most `WIDE_MAX_TERMS` terms); `e·2^104` is
    /// replaced by `e·(2^104 mod q)`, leaving `V_1 = u_0 + u_1·2^52 < 2^105`. For `L ≥ 55`
    /// bits the Barrett estimate `Q̂ = ⌊⌊u_1/2^{L−53}⌋·μ / 2^52⌋`, `μ = ⌊2^{L+51}/q⌋`,
    /// fits a 52-bit lane, never exceeds `⌊V_1/q⌋` and is at most 4 below it, so
    /// `V_1 − Q̂·q` (exact modulo 2^64) lies in `[0, 5q)` and three conditional
    /// subtractions (`4q`, `2q`, `q`) finish.
    #[inline]
    #[target_feature(enable = "avx512f,avx512ifma")]
    fn wide_reduce(c: &WideReducer, a: &[__m512i; 3], out: &mut [u64]) {
        let mask = _mm512_set1_epi64(MASK52 as i64);
        let zero = _mm512_setzero_si512();
        let a1 = _mm512_add_epi64(a[1], _mm512_srli_epi64::<52>(a[0]));
        let d0 = _mm512_and_si512(a[0], mask);
        let e = _mm512_add_epi64(a[2], _mm512_srli_epi64::<52>(a1));
        let d1 = _mm512_and_si512(a1, mask);
        // Fold e·(2^104 mod q): e < 2^32, r0 < 2^52, r1 < 2^10.
        let u0 = _mm512_madd52lo_epu64(d0, e, c.vr0);
        let u1 = _mm512_madd52hi_epu64(d1, e, c.vr0);
        let u1 = _mm512_madd52lo_epu64(u1, e, c.vr1);
        let u1 = _mm512_add_epi64(u1, _mm512_srli_epi64::<52>(u0));
        let u0 = _mm512_and_si512(u0, mask);
        // Barrett: t = ⌊u_1 / 2^{L−53}⌋ ≤ ⌊V_1 / 2^{L−1}⌋ < 2^52.
        let t = _mm512_srl_epi64(u1, c.shift);
        let qe = _mm512_madd52hi_epu64(zero, t, c.vmu);
        // Q̂·q mod 2^64 = lo(Q̂·q_0) + (hi(Q̂·q_0) + Q̂·q_1)·2^52.
        let p_lo = _mm512_madd52lo_epu64(zero, qe, c.vq);
        let p_hi = _mm512_madd52hi_epu64(zero, qe, c.vq);
        let p_hi = _mm512_madd52lo_epu64(p_hi, qe, c.vq1);
        let prod = _mm512_add_epi64(p_lo, _mm512_slli_epi64::<52>(p_hi));
        let v = _mm512_add_epi64(u0, _mm512_slli_epi64::<52>(u1));
        let r = _mm512_sub_epi64(v, prod);
        let q4 = _mm512_slli_epi64::<2>(c.vq);
        let q2 = _mm512_slli_epi64::<1>(c.vq);
        let r = _mm512_min_epu64(r, _mm512_sub_epi64(r, q4));
        let r = _mm512_min_epu64(r, _mm512_sub_epi64(r, q2));
        let r = _mm512_min_epu64(r, _mm512_sub_epi64(r, c.vq));
        // SAFETY: out holds at least 8 u64.
        unsafe { _mm512_storeu_si512(out.as_mut_ptr() as *mut __m512i, r) };
    }

    /// `a ← a·b mod q`, or `acc ← acc + a·b mod q`, for `2^54 ≤ q < 2^61`: the product
    /// (plus the accumulator, as radix-2^52 digits) in wide accumulators, one reduction.
    ///
    /// # Safety
    /// AVX-512F and IFMA available, `2^54 ≤ q < 2^61`, all inputs below `q`, `b` (and
    /// the accumulated `a`) at least as long as the destination.
    #[target_feature(enable = "avx512f,avx512ifma")]
    pub(super) unsafe fn mul_wide(m: &Modulus, dst: Dst<'_>, b: &[u64]) {
        let red = WideReducer::new(m);
        let zero = _mm512_setzero_si512();
        let mask = _mm512_set1_epi64(MASK52 as i64);
        let (out, a) = match dst {
            Dst::InPlace(a) => (a, None),
            Dst::Accumulate(acc, a) => (acc, Some(a)),
        };
        let len = out.len();
        assert!(b.len() >= len && a.is_none_or(|a| a.len() >= len));
        let body = len - len % 8;
        let mut k = 0;
        while k < body {
            // SAFETY: k + 8 ≤ len ≤ the lengths of out, a and b.
            let (vo, vx, vy) = unsafe {
                let vo = _mm512_loadu_si512(out.as_ptr().add(k) as *const __m512i);
                let vx = match a {
                    Some(a) => _mm512_loadu_si512(a.as_ptr().add(k) as *const __m512i),
                    None => vo,
                };
                (
                    vo,
                    vx,
                    _mm512_loadu_si512(b.as_ptr().add(k) as *const __m512i),
                )
            };
            let mut acc = if a.is_some() {
                [
                    _mm512_and_si512(vo, mask),
                    _mm512_srli_epi64::<52>(vo),
                    zero,
                ]
            } else {
                [zero; 3]
            };
            let (x1, y1) = (_mm512_srli_epi64::<52>(vx), _mm512_srli_epi64::<52>(vy));
            wide_mul_acc(&mut acc, vx, x1, vy, y1);
            wide_reduce(&red, &acc, &mut out[k..k + 8]);
            k += 8;
        }
        for t in body..len {
            out[t] = match a {
                Some(a) => m.mul_add(a[t], b[t], out[t]),
                None => m.mul(out[t], b[t]),
            };
        }
    }

    /// `out[k] = Σ_i x_i[k]·w_i[k] mod q` over `terms` terms for every chunk of 8
    /// outputs, `term(i, k)` giving the 8 lanes of both factors of term `i` at offset `k`
    /// (each below `2^61`): wide accumulation, one reduction per output. Outputs past the
    /// last full chunk are left to the caller.
    #[inline]
    #[target_feature(enable = "avx512f,avx512ifma")]
    fn wide_sums(
        m: &Modulus,
        out: &mut [u64],
        terms: usize,
        term: impl Fn(usize, usize) -> (__m512i, __m512i),
    ) {
        let red = WideReducer::new(m);
        let body = out.len() - out.len() % 8;
        for k in (0..body).step_by(8) {
            let mut acc = [_mm512_setzero_si512(); 3];
            for i in 0..terms {
                let (x, w) = term(i, k);
                let (x1, w1) = (_mm512_srli_epi64::<52>(x), _mm512_srli_epi64::<52>(w));
                wide_mul_acc(&mut acc, x, x1, w, w1);
            }
            wide_reduce(&red, &acc, &mut out[k..k + 8]);
        }
    }

    /// [`super::dot_assign`] for `2^54 ≤ q < 2^61`: wide accumulation, one reduction per
    /// output.
    ///
    /// # Safety
    /// AVX-512F and IFMA available, `2^54 ≤ q < 2^61`, inputs below `q`, `a.len() == b.len() ≤
    /// WIDE_MAX_TERMS`, every `a_t`, `b_t` at least as long as `out`.
    #[target_feature(enable = "avx512f,avx512ifma")]
    pub(super) unsafe fn dot_wide(m: &Modulus, out: &mut [u64], a: &[&[u64]], b: &[&[u64]]) {
        let len = out.len();
        wide_sums(m, out, a.len(), |i, k| {
            // SAFETY: k + 8 ≤ len ≤ a[i].len(), b[i].len() by the caller's guarantee.
            unsafe {
                (
                    _mm512_loadu_si512(a[i].as_ptr().add(k) as *const __m512i),
                    _mm512_loadu_si512(b[i].as_ptr().add(k) as *const __m512i),
                )
            }
        });
        for t in len - len % 8..len {
            out[t] = sum_products(m, a.iter().zip(b).map(|(x, y)| (x[t], y[t])));
        }
    }

    /// [`super::basis_convert_limb`] for `2^54 ≤ c < 2^61`: wide accumulation, one
    /// reduction per output.
    ///
    /// # Safety
    /// AVX-512F and IFMA available, `2^54 ≤ c < 2^61`, `y < 2^61`, `row[i] < c`, `row.len() ≤
    /// WIDE_MAX_TERMS`, `y.len() ≥ row.len() · out.len()`.
    #[target_feature(enable = "avx512f,avx512ifma")]
    pub(super) unsafe fn convert_limb_wide(c: &Modulus, row: &[u64], y: &[u64], out: &mut [u64]) {
        let len = out.len();
        wide_sums(c, out, row.len(), |i, k| {
            // SAFETY: i·len + k + 8 ≤ y.len() by the caller's length guarantee.
            let vy = unsafe { _mm512_loadu_si512(y.as_ptr().add(i * len + k) as *const __m512i) };
            (vy, _mm512_set1_epi64(row[i] as i64))
        });
        for (t, o) in out.iter_mut().enumerate().skip(len - len % 8) {
            *o = sum_products(c, row.iter().enumerate().map(|(i, &w)| (y[i * len + t], w)));
        }
    }

    /// `Σ x·w mod q` in scalar code for factors below `2^62`: 128-bit accumulation,
    /// reduced every 8 terms (each product is below `2^124`).
    fn sum_products(m: &Modulus, terms: impl Iterator<Item = (u64, u64)>) -> u64 {
        let mut acc: u128 = 0;
        for (i, (x, w)) in terms.enumerate() {
            acc += x as u128 * w as u128;
            if i % 8 == 7 {
                acc = m.reduce_u128(acc) as u128;
            }
        }
        m.reduce_u128(acc)
    }

    /// Terms per group of the narrow lazy dot product: each product's high half is below
    /// `2^48` (factors below `2^50`), so 15 of them plus the low sum's carry stay below
    /// `2^52`, the bound of the Shoup step that reduces the group.
    const DOT_GROUP: usize = 15;

    /// `out ← Σ_t a_t · b_t mod q` with lazy reduction: the 104-bit products of a group of
    /// up to [`DOT_GROUP`] terms are summed as separate low/high 52-bit halves in vector
    /// lanes, reduced once per group as `high·(2^52 mod q) + low` with two Shoup products,
    /// and the groups are summed modulo `q`.
    ///
    /// # Safety
    /// AVX-512F and AVX-512 IFMA must be available, `q < 2^50`, all inputs below `q`,
    /// `a.len() == b.len()` and every `a_t`, `b_t` at least as long as `out`.
    #[target_feature(enable = "avx512f,avx512ifma")]
    pub(super) unsafe fn dot(m: &Modulus, out: &mut [u64], a: &[&[u64]], b: &[&[u64]]) {
        let zero = _mm512_setzero_si512();
        let red = HalvesReducer::new(m);
        let len = out.len();
        let body = len - len % 8;
        let mut k = 0;
        while k < body {
            let mut acc = zero;
            for (ga, gb) in a.chunks(DOT_GROUP).zip(b.chunks(DOT_GROUP)) {
                let mut vlo = zero;
                let mut vhi = zero;
                for (x, y) in ga.iter().zip(gb) {
                    // SAFETY: k + 8 ≤ len ≤ x.len(), y.len().
                    let (vx, vy) = unsafe {
                        (
                            _mm512_loadu_si512(x.as_ptr().add(k) as *const __m512i),
                            _mm512_loadu_si512(y.as_ptr().add(k) as *const __m512i),
                        )
                    };
                    vlo = _mm512_madd52lo_epu64(vlo, vx, vy);
                    vhi = _mm512_madd52hi_epu64(vhi, vx, vy);
                }
                acc = red.add_reduced(acc, vlo, vhi);
            }
            // SAFETY: k + 8 ≤ len.
            unsafe { _mm512_storeu_si512(out.as_mut_ptr().add(k) as *mut __m512i, acc) };
            k += 8;
        }
        for t in body..len {
            out[t] = a
                .iter()
                .zip(b)
                .fold(0, |s, (x, y)| m.mul_add(x[t], y[t], s));
        }
    }

    /// Shoup product of 8 lanes `x·s mod q` in `[0, q)`, for `x < 2^52`, `s < q < 2^50`
    /// and `ss = ⌊s·2^52/q⌋`.
    #[inline]
    #[target_feature(enable = "avx512f,avx512ifma")]
    fn shoup8(x: __m512i, vs: __m512i, vss: __m512i, vq: __m512i) -> __m512i {
        let zero = _mm512_setzero_si512();
        let qh = _mm512_madd52hi_epu64(zero, x, vss);
        let prod = _mm512_madd52lo_epu64(zero, x, vs);
        let r = _mm512_and_si512(
            _mm512_sub_epi64(prod, _mm512_madd52lo_epu64(zero, qh, vq)),
            _mm512_set1_epi64(MASK52 as i64),
        );
        _mm512_min_epu64(r, _mm512_sub_epi64(r, vq))
    }

    /// `acc ← acc + a·s mod q` by Shoup multiplication in radix 2^52.
    ///
    /// # Safety
    /// AVX-512F and AVX-512 IFMA must be available, `q < 2^50`, `s < q`, inputs below
    /// `q` and `a` at least as long as `acc`.
    #[target_feature(enable = "avx512f,avx512ifma")]
    pub(super) unsafe fn mul_const_add(m: &Modulus, acc: &mut [u64], a: &[u64], s: u64) {
        let q = m.value();
        let vq = _mm512_set1_epi64(q as i64);
        let vs = _mm512_set1_epi64(s as i64);
        let vss = _mm512_set1_epi64((((s as u128) << 52) / q as u128) as i64);
        let n = acc.len();
        let body = n - n % 8;
        let mut i = 0;
        while i < body {
            // SAFETY: i + 8 ≤ len of acc and a; unaligned loads/stores.
            unsafe {
                let pa = acc.as_mut_ptr().add(i) as *mut __m512i;
                let x = _mm512_loadu_si512(a.as_ptr().add(i) as *const __m512i);
                let r = shoup8(x, vs, vss, vq);
                let r = _mm512_add_epi64(r, _mm512_loadu_si512(pa as *const __m512i));
                _mm512_storeu_si512(pa, _mm512_min_epu64(r, _mm512_sub_epi64(r, vq)));
            }
            i += 8;
        }
        let ss = m.shoup(s);
        for j in body..n {
            acc[j] = m.add(acc[j], m.mul_shoup(a[j], s, ss));
        }
    }

    /// `a ← (a − b?)·s mod q` by Shoup multiplication in radix 2^52.
    ///
    /// # Safety
    /// AVX-512F and AVX-512 IFMA must be available, `q < 2^50`, `s < q`, inputs below
    /// `q` and `b` at least as long as `a`.
    #[target_feature(enable = "avx512f,avx512ifma")]
    pub(super) unsafe fn mul_const(m: &Modulus, a: &mut [u64], b: Option<&[u64]>, s: u64) {
        let q = m.value();
        let s_shoup = (((s as u128) << 52) / q as u128) as u64;
        let vq = _mm512_set1_epi64(q as i64);
        let vs = _mm512_set1_epi64(s as i64);
        let vss = _mm512_set1_epi64(s_shoup as i64);
        let n = a.len();
        let body = n - n % 8;
        let mut i = 0;
        while i < body {
            // SAFETY: i + 8 ≤ len of a (and b); unaligned loads/stores.
            unsafe {
                let pa = a.as_mut_ptr().add(i) as *mut __m512i;
                let mut x = _mm512_loadu_si512(pa as *const __m512i);
                if let Some(b) = b {
                    let y = _mm512_loadu_si512(b.as_ptr().add(i) as *const __m512i);
                    x = _mm512_sub_epi64(_mm512_add_epi64(x, vq), y); // in [1, 2q) < 2^51
                }
                _mm512_storeu_si512(pa, shoup8(x, vs, vss, vq));
            }
            i += 8;
        }
        let ss = m.shoup(s);
        for j in body..n {
            let x = match b {
                Some(b) => a[j] + q - b[j],
                None => a[j],
            };
            a[j] = m.mul_shoup(x, s, ss);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn kernels_match_scalar(bits in 20u32..62, seed in any::<u64>(), s in any::<u64>(), len in 0usize..40) {
            let q = crate::primes::PrimeGenerator::new(bits.min(61), 16, crate::primes::Direction::Down)
                .unwrap().next().unwrap();
            let m = Modulus::new(q).unwrap();
            let mut st = seed | 1;
            let mut next = || { st ^= st << 13; st ^= st >> 7; st ^= st << 17; st % q };
            let a: Vec<u64> = (0..len).map(|_| next()).collect();
            let b: Vec<u64> = (0..len).map(|_| next()).collect();
            let c: Vec<u64> = (0..len).map(|_| next()).collect();
            let s = s % q;
            let mut x = a.clone(); mul_assign(&m, &mut x, &b);
            prop_assert_eq!(x, a.iter().zip(&b).map(|(&u, &v)| m.mul(u, v)).collect::<Vec<_>>());
            let mut x = c.clone(); mul_add_assign(&m, &mut x, &a, &b);
            prop_assert_eq!(x, a.iter().zip(&b).zip(&c).map(|((&u, &v), &w)| m.mul_add(u, v, w)).collect::<Vec<_>>());
            let mut x = a.clone(); scalar_mul_assign(&m, &mut x, s);
            prop_assert_eq!(x, a.iter().map(|&u| m.mul(u, s)).collect::<Vec<_>>());
            let mut x = c.clone(); scalar_mul_add_assign(&m, &mut x, &a, s);
            prop_assert_eq!(x, a.iter().zip(&c).map(|(&u, &w)| m.mul_add(u, s, w)).collect::<Vec<_>>());
            let mut x = a.clone(); sub_scalar_mul_assign(&m, &mut x, &b, s);
            prop_assert_eq!(x, a.iter().zip(&b).map(|(&u, &v)| m.mul(m.sub(u, v), s)).collect::<Vec<_>>());
            let mut x = a.clone(); add_assign(&m, &mut x, &b);
            prop_assert_eq!(x, a.iter().zip(&b).map(|(&u, &v)| m.add(u, v)).collect::<Vec<_>>());
            let mut x = a.clone(); sub_assign(&m, &mut x, &b);
            prop_assert_eq!(x, a.iter().zip(&b).map(|(&u, &v)| m.sub(u, v)).collect::<Vec<_>>());
            let mut x = a.clone(); neg_assign(&m, &mut x);
            prop_assert_eq!(x, a.iter().map(|&u| m.neg(u)).collect::<Vec<_>>());
            let mut x = a.clone(); add_const_assign(&m, &mut x, s);
            prop_assert_eq!(x, a.iter().map(|&u| m.add(u, s)).collect::<Vec<_>>());
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        #[test]
        fn dot_and_conversion_match_u128(
            bits in 20u32..62, src_bits in 20u32..62, terms in 1usize..40,
            len in 0usize..40, seed in any::<u64>(),
        ) {
            let prime = |b: u32| crate::primes::PrimeGenerator::new(b, 16, crate::primes::Direction::Down)
                .unwrap().next().unwrap();
            let q = prime(bits);
            let m = Modulus::new(q).unwrap();
            let y_bound = prime(src_bits);
            let mut st = seed | 1;
            let mut next = |bound: u64| { st ^= st << 13; st ^= st >> 7; st ^= st << 17; st % bound };
            let a: Vec<Vec<u64>> = (0..terms).map(|_| (0..len).map(|_| next(q)).collect()).collect();
            let b: Vec<Vec<u64>> = (0..terms).map(|_| (0..len).map(|_| next(q)).collect()).collect();
            let ar: Vec<&[u64]> = a.iter().map(|v| v.as_slice()).collect();
            let br: Vec<&[u64]> = b.iter().map(|v| v.as_slice()).collect();
            let mut out = vec![0u64; len];
            dot_assign(&m, &mut out, &ar, &br);
            for k in 0..len {
                let want = (0..terms).map(|t| a[t][k] as u128 * b[t][k] as u128).sum::<u128>() % q as u128;
                prop_assert_eq!(out[k] as u128, want);
            }
            // Basis conversion with inputs up to the source bound (incl. the extremes).
            let row: Vec<u64> = (0..terms).map(|_| next(q)).collect();
            let mut y: Vec<u64> = (0..terms * len).map(|_| next(y_bound)).collect();
            if let Some(first) = y.first_mut() { *first = y_bound - 1; }
            let mut out = vec![0u64; len];
            basis_convert_limb(&m, &row, &y, y_bound, &mut out);
            for k in 0..len {
                let want = (0..terms).map(|i| y[i * len + k] as u128 * row[i] as u128).sum::<u128>() % q as u128;
                prop_assert_eq!(out[k] as u128, want);
            }
        }
    }

    #[test]
    fn wide_sums_at_their_term_limit() {
        // Largest residues of the largest supported prime, WIDE_MAX_TERMS terms: the
        // accumulators' headroom is exactly what the wide kernels rely on.
        let q = crate::primes::PrimeGenerator::new(61, 16, crate::primes::Direction::Down)
            .unwrap()
            .next()
            .unwrap();
        let m = Modulus::new(q).unwrap();
        let len = 24;
        let x = vec![q - 1; len];
        let terms = WIDE_MAX_TERMS;
        let want = m.reduce(terms as u64); // (q−1)² ≡ 1, summed `terms` times
        let a: Vec<&[u64]> = vec![&x; terms];
        let mut out = vec![0u64; len - 3];
        dot_assign(&m, &mut out, &a, &a);
        assert!(out.iter().all(|&v| v == want), "{out:?} vs {want}");
        let y = vec![(1u64 << 61) - 1; terms * len];
        let row = vec![q - 1; terms];
        let mut out = vec![0u64; len];
        basis_convert_limb(&m, &row, &y, 1 << 61, &mut out);
        let one = m.mul(m.reduce((1u64 << 61) - 1), q - 1);
        let want = m.mul(one, m.reduce(terms as u64));
        assert!(out.iter().all(|&v| v == want), "{out:?} vs {want}");
    }

    #[test]
    fn scalar_sums_at_their_limits() {
        // The portable fallbacks, called directly so that every host tests them: largest
        // residues, term counts on both sides of the one-sum limits (63 and 64), output
        // lengths with and without a tail after the four-lane body.
        let q = crate::primes::PrimeGenerator::new(61, 16, crate::primes::Direction::Down)
            .unwrap()
            .next()
            .unwrap();
        let m = Modulus::new(q).unwrap();
        for terms in [1usize, 4, 63, 64, 65, 200] {
            for len in [8usize, 11] {
                let x = vec![q - 1; len];
                let a: Vec<&[u64]> = vec![&x; terms];
                let mut out = vec![0u64; len];
                dot_scalar(&m, &mut out, &a, &a);
                let want = m.reduce(terms as u64);
                assert!(out.iter().all(|&v| v == want), "dot, {terms} terms");
                let y = vec![(1u64 << 61) - 1; terms * len];
                let row = vec![q - 1; terms];
                convert_limb_scalar(&m, &row, &y, 1 << 61, &mut out);
                let one = m.mul(m.reduce((1u64 << 61) - 1), q - 1);
                let want = m.mul(one, m.reduce(terms as u64));
                assert!(out.iter().all(|&v| v == want), "conversion, {terms} terms");
            }
        }
    }

    #[test]
    fn ifma_extreme_values() {
        // Largest residues for primes just below 2^50 and small primes.
        for bits in [20u32, 35, 49, 50] {
            let q = crate::primes::PrimeGenerator::new(bits, 16, crate::primes::Direction::Down)
                .unwrap()
                .next()
                .unwrap();
            let m = Modulus::new(q).unwrap();
            let a = vec![q - 1; 16];
            let mut x = a.clone();
            mul_assign(&m, &mut x, &a);
            assert!(x.iter().all(|&v| v == 1));
            let mut x = a.clone();
            scalar_mul_assign(&m, &mut x, q - 1);
            assert!(x.iter().all(|&v| v == 1));
            // Lazy dot product over several groups of the largest products.
            let terms: Vec<&[u64]> = vec![&a; 47];
            let mut out = vec![0u64; 16];
            dot_assign(&m, &mut out, &terms, &terms);
            assert!(out.iter().all(|&v| v == 47 % q), "{bits} bits: {out:?}");
        }
    }
}
