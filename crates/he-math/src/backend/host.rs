//! Host-memory backends: [`ReferenceBackend`] (scalar, single-threaded, reference NTT) and
//! [`CpuBackend`] (fast NTT engine, AVX-512/IFMA kernels, `rayon` over limbs).
//!
//! Both are [`HostBackend`] over a different [`LimbKernels`] implementation: the
//! composite algorithms (rescale, ModUp, ModDown, key-switch inner product) are written
//! once here, and the limb kernels are the part that differs.

use super::{Backend, UniformParts};
use crate::basis_conv::BasisConverter;
use crate::error::{MathError, Result};
use crate::expand::SeedExpander;
use crate::galois;
use crate::modulus::Modulus;
use crate::ntt::NttEngine;
use crate::poly::{Representation, RnsPoly};
use crate::ring::RingContext;
use crate::simd;
use rayon::prelude::*;
use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex};

/// Words of each digit's expanded `a_j` per pass of the seeded inner product (8 KiB:
/// the digits' chunks stay in L1/L2 between expansion and use).
const SEEDED_CHUNK: usize = 1024;

/// A limb of fresh memory, zero-filled and so initialized.
fn zero_filled(l: &mut [std::mem::MaybeUninit<u64>]) -> &mut [u64] {
    l.fill(std::mem::MaybeUninit::new(0));
    // SAFETY: every element of `l` was initialized on the line above, and
    // `MaybeUninit<u64>` has the layout of `u64`.
    unsafe { &mut *(l as *mut [std::mem::MaybeUninit<u64>] as *mut [u64]) }
}

/// `limbs` limbs of `n` words in fresh memory (room for `capacity` words), limb `j`
/// initialized by `init(j, limb)`, in parallel when asked: the skeleton of
/// [`fresh_data`], [`copied_data`] and [`permuted_data`], which never zero a whole
/// allocation first.
///
/// # Safety
/// `init` must initialize every element of the chunk it is given (a panic is fine: it
/// propagates before the length is set).
unsafe fn init_limbs<I>(
    n: usize,
    limbs: usize,
    capacity: usize,
    parallel: bool,
    init: I,
) -> Vec<u64>
where
    I: Fn(usize, &mut [std::mem::MaybeUninit<u64>]) + Send + Sync,
{
    let len = n * limbs;
    let mut data: Vec<u64> = Vec::with_capacity(capacity.max(len));
    let spare = &mut data.spare_capacity_mut()[..len];
    if parallel {
        spare
            .par_chunks_mut(n)
            .enumerate()
            .for_each(|(j, l)| init(j, l));
    } else {
        spare
            .chunks_mut(n)
            .enumerate()
            .for_each(|(j, l)| init(j, l));
    }
    // SAFETY: the chunks cover `0..len` and the caller's `init` initialized each.
    unsafe { data.set_len(len) };
    data
}

/// `limbs` limbs of `n` words, limb `j` written by `f(j, limb)` after it is zero-filled
/// (see `HostBackend::fresh`): the allocation is never zeroed as a whole.
fn fresh_data<F>(n: usize, limbs: usize, parallel: bool, f: F) -> Vec<u64>
where
    F: Fn(usize, &mut [u64]) + Send + Sync,
{
    // SAFETY: `zero_filled` initializes the whole chunk.
    unsafe { init_limbs(n, limbs, 0, parallel, |j, l| f(j, zero_filled(l))) }
}

/// Two such outputs written together: `f(j, limb j of the first, limb j of the second)`.
fn fresh_data_pair<F>(n: usize, limbs: usize, parallel: bool, f: F) -> [Vec<u64>; 2]
where
    F: Fn(usize, &mut [u64], &mut [u64]) + Send + Sync,
{
    let len = n * limbs;
    let mut a: Vec<u64> = Vec::with_capacity(len);
    let mut b: Vec<u64> = Vec::with_capacity(len);
    let sa = &mut a.spare_capacity_mut()[..len];
    let sb = &mut b.spare_capacity_mut()[..len];
    if parallel {
        sa.par_chunks_mut(n)
            .zip(sb.par_chunks_mut(n))
            .enumerate()
            .for_each(|(j, (x, y))| f(j, zero_filled(x), zero_filled(y)));
    } else {
        sa.chunks_mut(n)
            .zip(sb.chunks_mut(n))
            .enumerate()
            .for_each(|(j, (x, y))| f(j, zero_filled(x), zero_filled(y)));
    }
    // SAFETY: as in `fresh_data`, for both vectors.
    unsafe {
        a.set_len(len);
        b.set_len(len);
    }
    [a, b]
}

/// Limbs that start as copies: limb `j` of the result is `sources[j]` (each `n` words),
/// then passed to `f(j, limb)` while it is in cache (an inverse NTT, a premultiplication),
/// in parallel when asked. The copy writes the fresh memory directly (no zeroing pass),
/// and `capacity` words are reserved so that the caller can append limbs without a
/// reallocation. Replaces a serial `RnsPoly::select_limbs` followed by a pass per limb.
fn copied_data<F>(n: usize, sources: &[&[u64]], capacity: usize, parallel: bool, f: F) -> Vec<u64>
where
    F: Fn(usize, &mut [u64]) + Send + Sync,
{
    // SAFETY: `write_copy_of_slice` initializes the whole chunk (it panics unless the
    // lengths match).
    unsafe {
        init_limbs(n, sources.len(), capacity, parallel, |j, l| {
            f(j, l.write_copy_of_slice(sources[j]))
        })
    }
}

/// Limbs that are permutations of others: limb `j` of the result is
/// `out[i] = sources[j][perm[i]]` (the NTT-form Galois automorphism; `perm` from
/// [`galois::ntt_permutation`], a block permutation that
/// [`crate::simd::permute_blocks_into`] moves 8 words at a time), written straight into
/// fresh memory (no zeroing pass), in parallel when asked.
///
/// # Panics
/// If `perm` or a source is not `n` long, or an index of `perm` is out of range.
fn permuted_data(n: usize, sources: &[&[u64]], perm: &[u32], parallel: bool) -> Vec<u64> {
    assert!(
        perm.len() == n && sources.iter().all(|s| s.len() == n),
        "permutation and limbs must have n words"
    );
    // SAFETY: every chunk and `perm` are `n` long (asserted), and `permute_blocks_into`
    // writes each of the chunk's words.
    unsafe {
        init_limbs(n, sources.len(), 0, parallel, |j, l| {
            crate::simd::permute_blocks_into(sources[j], perm, l)
        })
    }
}

/// Words per block of [`Backend::dot_parts`] on the host: the `T` plaintext blocks of a
/// sum (8 KiB each) stay in L1/L2 while both parts of the ciphertexts are summed.
const DOT_BLOCK: usize = 1024;

/// Terms per call of the dot-product kernel (slices kept on the stack).
const DOT_TERMS: usize = 32;

/// `out ← Σ_t a_t · b_t mod m` over the blocks `a_t`, `b_t` (each at least `out.len()`
/// long), [`DOT_TERMS`] terms per kernel call, later groups added to the first.
fn dot_block<'a, K: LimbKernels>(
    m: &Modulus,
    out: &mut [u64],
    a: impl Iterator<Item = &'a [u64]>,
    b: impl Iterator<Item = &'a [u64]>,
) {
    let len = out.len();
    let mut xs = [&[][..]; DOT_TERMS];
    let mut ys = [&[][..]; DOT_TERMS];
    let mut terms = a.zip(b).peekable();
    let mut first = true;
    while first || terms.peek().is_some() {
        let mut k = 0;
        for (x, y) in terms.by_ref().take(DOT_TERMS) {
            xs[k] = &x[..len];
            ys[k] = &y[..len];
            k += 1;
        }
        if first {
            K::dot(m, out, &xs[..k], &ys[..k]);
            first = false;
        } else {
            // Only past DOT_TERMS terms: a scratch block for the group, added to `out`.
            let mut t = [0u64; DOT_BLOCK];
            let t = &mut t[..len];
            K::dot(m, t, &xs[..k], &ys[..k]);
            K::add(m, out, t);
        }
    }
}

/// Words per sub-block of [`Backend::dot_parts_runs`] on the host: the [`DOT_TERMS`]
/// right factors of a group are expanded from their runs into a 64 KiB per-thread buffer
/// and stay in L1/L2 while every part is summed.
const RUN_BLOCK: usize = 256;

/// `out[i] = src[(start + i) / run]`: words `start .. start + out.len()` of the polynomial
/// that `src` holds compressed by runs of `run` ([`Backend::compress_runs`]).
fn expand_runs_into(src: &[u64], start: usize, run: usize, out: &mut [u64]) {
    if start.is_multiple_of(run) && out.len().is_multiple_of(run) {
        let from = &src[start / run..][..out.len() / run];
        if run == 2 {
            for (o, &v) in out.chunks_exact_mut(2).zip(from) {
                o[0] = v;
                o[1] = v;
            }
        } else {
            for (o, &v) in out.chunks_exact_mut(run).zip(from) {
                o.fill(v);
            }
        }
    } else {
        for (i, o) in out.iter_mut().enumerate() {
            *o = src[(start + i) / run];
        }
    }
}

/// Limb `j` of the parts `first_part ..` of
/// [`Backend::dot_parts_runs`] (`outs[p]` for part `first_part + p`): per sub-block of
/// [`RUN_BLOCK`] words, each group of [`DOT_TERMS`] right factors is expanded once into
/// `buf` and multiplied with every part; later groups are added to the first.
#[allow(clippy::too_many_arguments)]
fn dot_runs_block<K: LimbKernels>(
    m: &Modulus,
    j: usize,
    outs: &mut [&mut [u64]],
    first_part: usize,
    xs: &[&[RnsPoly]],
    ys: &[&RnsPoly],
    run: usize,
    buf: &mut [u64],
) {
    let len = outs.first().map_or(0, |o| o.len());
    for (g, (xg, yg)) in xs.chunks(DOT_TERMS).zip(ys.chunks(DOT_TERMS)).enumerate() {
        let k = xg.len();
        for s in (0..len).step_by(RUN_BLOCK) {
            let sub = RUN_BLOCK.min(len - s);
            for (t, y) in yg.iter().enumerate() {
                expand_runs_into(y.limb(j), s, run, &mut buf[t * RUN_BLOCK..][..sub]);
            }
            let b: [&[u64]; DOT_TERMS] = std::array::from_fn(|t| {
                if t < k {
                    &buf[t * RUN_BLOCK..][..sub]
                } else {
                    &[]
                }
            });
            for (p, out) in outs.iter_mut().enumerate() {
                let a: [&[u64]; DOT_TERMS] = std::array::from_fn(|t| {
                    if t < k {
                        &xg[t][first_part + p].limb(j)[s..s + sub]
                    } else {
                        &[]
                    }
                });
                let o = &mut out[s..s + sub];
                if g == 0 {
                    K::dot(m, o, &a[..k], &b[..k]);
                } else {
                    let mut t = [0u64; RUN_BLOCK];
                    K::dot(m, &mut t[..sub], &a[..k], &b[..k]);
                    K::add(m, o, &t[..sub]);
                }
            }
        }
    }
}

thread_local! {
    /// The seeded inner product's expansion buffer, one per thread, reused (no
    /// allocation per limb once grown).
    static SEEDED_SCRATCH: std::cell::RefCell<Vec<u64>> = const { std::cell::RefCell::new(Vec::new()) };
    /// The stored-key inner product's permuted digit limbs (one limb per digit), one
    /// buffer per thread, reused.
    static PERMUTED_SCRATCH: std::cell::RefCell<Vec<u64>> = const { std::cell::RefCell::new(Vec::new()) };
    /// [`Backend::dot_parts_runs`]' expanded right factors ([`DOT_TERMS`] blocks of
    /// [`RUN_BLOCK`] words), one buffer per thread, reused.
    static RUN_SCRATCH: std::cell::RefCell<Vec<u64>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Limb-level kernels of a host backend. Every slice argument has length N unless said.
pub trait LimbKernels: Send + Sync + 'static {
    /// Backend name.
    const NAME: &'static str;
    /// Whether limbs are processed in parallel with `rayon`.
    const PARALLEL: bool;
    /// The NTT engine the backend's ring uses.
    fn engine() -> NttEngine;
    /// `a ← a + b mod q`.
    fn add(m: &Modulus, a: &mut [u64], b: &[u64]);
    /// `a ← a − b mod q`.
    fn sub(m: &Modulus, a: &mut [u64], b: &[u64]);
    /// `a ← −a mod q`.
    fn neg(m: &Modulus, a: &mut [u64]);
    /// `a ← a + c mod q`.
    fn add_const(m: &Modulus, a: &mut [u64], c: u64);
    /// `a ← a · b mod q`.
    fn mul(m: &Modulus, a: &mut [u64], b: &[u64]);
    /// `acc ← acc + a · b mod q`.
    fn mul_add(m: &Modulus, acc: &mut [u64], a: &[u64], b: &[u64]);
    /// `a ← a · s mod q`.
    fn scalar_mul(m: &Modulus, a: &mut [u64], s: u64);
    /// `acc ← acc + a · s mod q`.
    fn scalar_mul_add(m: &Modulus, acc: &mut [u64], a: &[u64], s: u64);
    /// `a ← (a − b) · s mod q`.
    fn sub_scalar_mul(m: &Modulus, a: &mut [u64], b: &[u64], s: u64);
    /// One output limb of a fast basis conversion: `out[k] = Σ_i y_i[k] · row[i] mod c`,
    /// where `y` holds `row.len()` premultiplied input limbs (limb-major, stride `out.len()`),
    /// each below `y_bound` (the largest source modulus).
    fn convert_limb(c: &Modulus, row: &[u64], y: &[u64], y_bound: u64, out: &mut [u64]);
    /// `out ← Σ_t a_t · b_t mod q` (the key-switching inner product of one limb).
    fn dot(m: &Modulus, out: &mut [u64], a: &[&[u64]], b: &[&[u64]]);
}

/// Scalar kernels: the reference implementation.
#[derive(Debug, Default, Clone, Copy)]
pub struct ScalarKernels;

impl LimbKernels for ScalarKernels {
    const NAME: &'static str = "reference";
    const PARALLEL: bool = false;
    fn engine() -> NttEngine {
        NttEngine::Reference
    }
    fn add(m: &Modulus, a: &mut [u64], b: &[u64]) {
        a.iter_mut().zip(b).for_each(|(x, &y)| *x = m.add(*x, y));
    }
    fn sub(m: &Modulus, a: &mut [u64], b: &[u64]) {
        a.iter_mut().zip(b).for_each(|(x, &y)| *x = m.sub(*x, y));
    }
    fn neg(m: &Modulus, a: &mut [u64]) {
        a.iter_mut().for_each(|x| *x = m.neg(*x));
    }
    fn add_const(m: &Modulus, a: &mut [u64], c: u64) {
        a.iter_mut().for_each(|x| *x = m.add(*x, c));
    }
    fn mul(m: &Modulus, a: &mut [u64], b: &[u64]) {
        a.iter_mut().zip(b).for_each(|(x, &y)| *x = m.mul(*x, y));
    }
    fn mul_add(m: &Modulus, acc: &mut [u64], a: &[u64], b: &[u64]) {
        acc.iter_mut()
            .zip(a.iter().zip(b))
            .for_each(|(x, (&u, &v))| *x = m.mul_add(u, v, *x));
    }
    fn scalar_mul(m: &Modulus, a: &mut [u64], s: u64) {
        a.iter_mut().for_each(|x| *x = m.mul(*x, s));
    }
    fn scalar_mul_add(m: &Modulus, acc: &mut [u64], a: &[u64], s: u64) {
        acc.iter_mut()
            .zip(a)
            .for_each(|(x, &u)| *x = m.mul_add(u, s, *x));
    }
    fn sub_scalar_mul(m: &Modulus, a: &mut [u64], b: &[u64], s: u64) {
        a.iter_mut()
            .zip(b)
            .for_each(|(x, &y)| *x = m.mul(m.sub(*x, y), s));
    }
    fn dot(m: &Modulus, out: &mut [u64], a: &[&[u64]], b: &[&[u64]]) {
        for (k, o) in out.iter_mut().enumerate() {
            *o = a
                .iter()
                .zip(b)
                .fold(0, |s, (x, y)| m.mul_add(x[k], y[k], s));
        }
    }
    fn convert_limb(c: &Modulus, row: &[u64], y: &[u64], _y_bound: u64, out: &mut [u64]) {
        let n = out.len();
        for (k, o) in out.iter_mut().enumerate() {
            let mut acc = 0u64;
            for (i, &w) in row.iter().enumerate() {
                acc = c.add(acc, c.mul(c.reduce(y[i * n + k]), w));
            }
            *o = acc;
        }
    }
}

/// AVX-512/IFMA kernels with runtime detection and scalar fallback ([`crate::simd`]).
#[derive(Debug, Default, Clone, Copy)]
pub struct SimdKernels;

impl LimbKernels for SimdKernels {
    const NAME: &'static str = "cpu-simd";
    const PARALLEL: bool = true;
    fn engine() -> NttEngine {
        NttEngine::default_engine()
    }
    fn add(m: &Modulus, a: &mut [u64], b: &[u64]) {
        simd::add_assign(m, a, b);
    }
    fn sub(m: &Modulus, a: &mut [u64], b: &[u64]) {
        simd::sub_assign(m, a, b);
    }
    fn neg(m: &Modulus, a: &mut [u64]) {
        simd::neg_assign(m, a);
    }
    fn add_const(m: &Modulus, a: &mut [u64], c: u64) {
        simd::add_const_assign(m, a, c);
    }
    fn mul(m: &Modulus, a: &mut [u64], b: &[u64]) {
        simd::mul_assign(m, a, b);
    }
    fn mul_add(m: &Modulus, acc: &mut [u64], a: &[u64], b: &[u64]) {
        simd::mul_add_assign(m, acc, a, b);
    }
    fn scalar_mul(m: &Modulus, a: &mut [u64], s: u64) {
        simd::scalar_mul_assign(m, a, s);
    }
    fn scalar_mul_add(m: &Modulus, acc: &mut [u64], a: &[u64], s: u64) {
        simd::scalar_mul_add_assign(m, acc, a, s);
    }
    fn sub_scalar_mul(m: &Modulus, a: &mut [u64], b: &[u64], s: u64) {
        simd::sub_scalar_mul_assign(m, a, b, s);
    }
    fn convert_limb(c: &Modulus, row: &[u64], y: &[u64], y_bound: u64, out: &mut [u64]) {
        simd::basis_convert_limb(c, row, y, y_bound, out);
    }
    fn dot(m: &Modulus, out: &mut [u64], a: &[&[u64]], b: &[&[u64]]) {
        simd::dot_assign(m, out, a, b);
    }
}

thread_local! {
    /// Per-thread scratch limb, so that hot paths (rescale, ModDown) do not allocate.
    static SCRATCH: std::cell::RefCell<Vec<u64>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Runs `f` on a per-thread scratch buffer of `n` words (contents unspecified).
fn with_scratch<R>(n: usize, f: impl FnOnce(&mut [u64]) -> R) -> R {
    SCRATCH.with(|s| {
        let mut s = s.borrow_mut();
        if s.len() < n {
            s.resize(n, 0);
        }
        f(&mut s[..n])
    })
}

/// The limbs of `a` over the moduli `special` (the special primes, or any sub-basis), in
/// that order.
fn special_limbs<'a>(a: &'a RnsPoly, special: &[usize]) -> Result<Vec<&'a [u64]>> {
    special
        .iter()
        .map(|&p| {
            a.position(p)
                .map(|i| a.limb(i))
                .ok_or_else(|| MathError::BasisMismatch(format!("modulus {p} is not in the basis")))
        })
        .collect()
}

/// The basis of ModDown's output: `a`'s moduli outside `special`.
///
/// # Errors
/// [`MathError::ReprMismatch`] unless `a` is in NTT form; [`MathError::BasisMismatch`]
/// unless `special` is a proper, non-empty-complement subset of `a`'s basis.
fn mod_down_basis(a: &RnsPoly, special: &[usize]) -> Result<Vec<usize>> {
    check_repr(a, Representation::Ntt)?;
    let q_basis: Vec<usize> = a
        .basis()
        .iter()
        .copied()
        .filter(|i| !special.contains(i))
        .collect();
    if q_basis.is_empty() || q_basis.len() + special.len() != a.num_limbs() {
        return Err(MathError::BasisMismatch(format!(
            "special moduli {special:?} must be a proper subset of the basis {:?}",
            a.basis()
        )));
    }
    Ok(q_basis)
}

/// Cache of basis converters keyed by (source basis, target basis).
type ConverterCache = Mutex<HashMap<(Vec<usize>, Vec<usize>), Arc<BasisConverter>>>;

/// A backend computing in host memory with the kernels `K`; `Poly = RnsPoly`.
pub struct HostBackend<K: LimbKernels> {
    ctx: Arc<RingContext>,
    converters: ConverterCache,
    permutations: Mutex<HashMap<usize, Arc<Vec<u32>>>>,
    _kernels: PhantomData<K>,
}

impl<K: LimbKernels> std::fmt::Debug for HostBackend<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostBackend")
            .field("kernels", &K::NAME)
            .field("n", &self.ctx.n())
            .finish()
    }
}

/// The scalar, single-threaded reference backend (textbook NTT, scalar kernels).
pub type ReferenceBackend = HostBackend<ScalarKernels>;

/// The CPU-SIMD backend: default fast NTT engine, AVX-512/IFMA kernels, `rayon` over limbs.
pub type CpuBackend = HostBackend<SimdKernels>;

fn check_same(a: &RnsPoly, b: &RnsPoly) -> Result<()> {
    if a.basis() != b.basis() {
        return Err(MathError::BasisMismatch(format!(
            "{:?} vs {:?}",
            a.basis(),
            b.basis()
        )));
    }
    if a.repr() != b.repr() {
        return Err(MathError::ReprMismatch {
            expected: a.repr(),
            got: b.repr(),
        });
    }
    Ok(())
}

fn check_repr(p: &RnsPoly, r: Representation) -> Result<()> {
    if p.repr() != r {
        Err(MathError::ReprMismatch {
            expected: r,
            got: p.repr(),
        })
    } else {
        Ok(())
    }
}

impl<K: LimbKernels> HostBackend<K> {
    /// A backend over `ctx`; the ring is re-planned with this backend's NTT engine if it
    /// differs (same ψ, so data is interchangeable).
    ///
    /// # Errors
    /// NTT engine errors.
    pub fn new(ctx: &Arc<RingContext>) -> Result<Self> {
        let ctx = if ctx.engine() == K::engine() {
            ctx.clone()
        } else {
            ctx.with_other_engine(K::engine())?
        };
        Ok(Self {
            ctx,
            converters: Mutex::new(HashMap::new()),
            permutations: Mutex::new(HashMap::new()),
            _kernels: PhantomData,
        })
    }

    /// A backend over `ctx` exactly as given, whatever NTT engine its plans use (no
    /// re-planning): runs these kernels over every compiled-in engine, which is what the
    /// conformance suite checks. Data is interchangeable between engines (same ψ).
    pub fn keeping_engine(ctx: &Arc<RingContext>) -> Self {
        Self {
            ctx: ctx.clone(),
            converters: Mutex::new(HashMap::new()),
            permutations: Mutex::new(HashMap::new()),
            _kernels: PhantomData,
        }
    }

    /// The cached basis converter from `from` to `to`.
    ///
    /// # Errors
    /// As [`BasisConverter::new`].
    pub fn converter(&self, from: &[usize], to: &[usize]) -> Result<Arc<BasisConverter>> {
        let key = (from.to_vec(), to.to_vec());
        if let Some(c) = self
            .converters
            .lock()
            .expect("converter cache poisoned")
            .get(&key)
        {
            return Ok(c.clone());
        }
        let c = Arc::new(BasisConverter::new(&self.ctx, from, to)?);
        self.converters
            .lock()
            .expect("converter cache poisoned")
            .insert(key, c.clone());
        Ok(c)
    }

    fn permutation(&self, k: usize) -> Result<Arc<Vec<u32>>> {
        if let Some(p) = self
            .permutations
            .lock()
            .expect("permutation cache poisoned")
            .get(&k)
        {
            return Ok(p.clone());
        }
        let p = Arc::new(galois::ntt_permutation(k, self.ctx.n())?);
        self.permutations
            .lock()
            .expect("permutation cache poisoned")
            .insert(k, p.clone());
        Ok(p)
    }

    /// Output limb `j` (modulus index `bi`) of both parts of the seeded inner product,
    /// in one pass over the digits: `out_b = Σ_t d_t ⊙ b_t` (`b_t` stored, its limb at
    /// `key_b[t].limb(pos_b[t][j])`) and `out_a = Σ_t d_t ⊙ a_t` with each `a_t` limb
    /// expanded from `expander` chunk by chunk ([`SEEDED_CHUNK`] words per digit, in a
    /// per-thread buffer), so a key's uniform part never exists whole in memory and each
    /// chunk of the digits is read from memory once for both parts.
    #[allow(clippy::too_many_arguments)]
    fn seeded_limb(
        &self,
        expander: &SeedExpander,
        digits: &[RnsPoly],
        perm: Option<&[u32]>,
        key_b: &[RnsPoly],
        pos_b: &[Vec<usize>],
        j: usize,
        bi: usize,
        out_b: &mut [u64],
        out_a: &mut [u64],
    ) {
        let m = self.ctx.modulus(bi);
        let t = digits.len();
        let chunk = SEEDED_CHUNK.min(out_a.len());
        let mut streams: Vec<_> = (0..t).map(|d| expander.stream(d, bi, m)).collect();
        SEEDED_SCRATCH.with(|scratch| {
            let mut scratch = scratch.borrow_mut();
            if scratch.len() < 2 * t * chunk {
                scratch.resize(2 * t * chunk, 0);
            }
            // Expanded `a_t` chunks, then (with `perm`) the permuted digit chunks.
            let (buf, rotated) = scratch[..2 * t * chunk].split_at_mut(t * chunk);
            for (c, (oa, ob)) in out_a
                .chunks_mut(chunk)
                .zip(out_b.chunks_mut(chunk))
                .enumerate()
            {
                let len = oa.len();
                let lo = c * chunk;
                for (s, b) in streams.iter_mut().zip(buf.chunks_mut(chunk)) {
                    s.fill(&mut b[..len]);
                }
                if let Some(perm) = perm {
                    for (d, r) in digits.iter().zip(rotated.chunks_mut(chunk)) {
                        crate::simd::permute_blocks(d.limb(j), &perm[lo..lo + len], &mut r[..len]);
                    }
                }
                // The digits' chunk: read in place, or its permuted copy.
                let digit = |k: usize| -> &[u64] {
                    match perm {
                        None => &digits[k].limb(j)[lo..lo + len],
                        Some(_) => &rotated[k * chunk..k * chunk + len],
                    }
                };
                let mut xs = [&[][..]; 32];
                let mut ys = [&[][..]; 32];
                let mut ks = [&[][..]; 32];
                let t_max = t.min(32);
                for (k, b) in buf.chunks(chunk).take(t_max).enumerate() {
                    xs[k] = digit(k);
                    ys[k] = &b[..len];
                    ks[k] = &key_b[k].limb(pos_b[k][j])[lo..lo + len];
                }
                K::dot(m, ob, &xs[..t_max], &ks[..t_max]);
                K::dot(m, oa, &xs[..t_max], &ys[..t_max]);
                for (k, b) in buf.chunks(chunk).enumerate().skip(t_max) {
                    let d = digit(k);
                    K::mul_add(m, ob, d, &key_b[k].limb(pos_b[k][j])[lo..lo + len]);
                    K::mul_add(m, oa, d, &b[..len]);
                }
            }
        });
    }

    /// A polynomial over `basis` whose every limb is written by `f(position, modulus
    /// index, limb)` (in parallel when the kernels ask for it): the output of operations
    /// that overwrite each limb (ModUp, basis conversion, ModRaise, the key-switching
    /// inner product). [`RnsPoly::zero`] followed by such a pass zeroes the whole
    /// allocation first, a pass over memory of its own (megabytes per key switch);
    /// here each limb is zero-filled just before `f` writes it, while it is in cache.
    fn fresh<F>(&self, basis: &[usize], repr: Representation, f: F) -> RnsPoly
    where
        F: Fn(usize, usize, &mut [u64]) + Send + Sync,
    {
        let data = fresh_data(self.ctx.n(), basis.len(), K::PARALLEL, |j, l| {
            f(j, basis[j], l)
        });
        RnsPoly::from_data(self.ctx.n(), basis, repr, data).expect("n·limbs words by construction")
    }

    /// Runs `f(position, modulus index, limb)` over every limb of `data`, in parallel when
    /// the kernels ask for it.
    fn limbs<F>(&self, basis: &[usize], data: &mut [u64], f: F)
    where
        F: Fn(usize, usize, &mut [u64]) + Send + Sync,
    {
        let n = self.ctx.n();
        if K::PARALLEL {
            data.par_chunks_mut(n)
                .enumerate()
                .for_each(|(j, l)| f(j, basis[j], l));
        } else {
            data.chunks_mut(n)
                .enumerate()
                .for_each(|(j, l)| f(j, basis[j], l));
        }
    }

    /// `run` is a power of two dividing `N` ([`Backend::compress_runs`]).
    fn check_run(&self, run: usize) -> Result<()> {
        let n = self.ctx.n();
        if run == 0 || !run.is_power_of_two() || run > n {
            return Err(MathError::InvalidArgument(format!(
                "run {run} is not a power of two dividing N = {n}"
            )));
        }
        Ok(())
    }

    fn check_scalars(&self, a: &RnsPoly, s: &[u64]) -> Result<()> {
        if s.len() != a.num_limbs() {
            return Err(MathError::LengthMismatch {
                expected: a.num_limbs(),
                got: s.len(),
            });
        }
        for (&v, &bi) in s.iter().zip(a.basis()) {
            let q = self.ctx.modulus(bi).value();
            if v >= q {
                return Err(MathError::ResidueOutOfRange { value: v, q });
            }
        }
        Ok(())
    }

    /// First step of a fast basis conversion on limb `i` of the coefficient-form input
    /// over `conv.from()`: `y_i = [x_i · (B/b_i)^{-1}]_{b_i}`, in place.
    fn premultiply_limb(conv: &BasisConverter, i: usize, l: &mut [u64]) {
        K::scalar_mul(&conv.from_moduli()[i], l, conv.punctured_inv()[i].0);
    }

    /// ModDown's division, first half. The whole division is `out ← (out − [x]_S)·S^{-1}`
    /// limb by limb, `S` the product of the moduli `special` (ascending, disjoint from
    /// `out`'s basis `q_basis`) and `x` given on them by `special_limbs` (NTT form): the
    /// division by `S` with rounding of a polynomial whose other limbs are `out`
    /// (ModDown; with `q_l` among `special`, a fused ModDown and rescale). `[x]_S` is the
    /// exact centred residue in `(−S/2, S/2]` (Halevi–Polyakov–Shoup, CT-RSA 2019, §2.3):
    /// the fast conversion gives `[x]_S + u·S` with `u = ⌊Σ_i y_i/s_i⌋`; subtracting
    /// `v = round(Σ_i y_i/s_i)` instead makes the rounding unbiased (no drift of the
    /// key-switching error). `v` (at most `|S|`) is appended to the premultiplied
    /// residues and converted with the weight `−S mod q_j`, so the correction costs no
    /// pass of its own.
    ///
    /// Returns the converter from `special` to `q_basis` and `y`: the `k = special.len()`
    /// premultiplied coefficient-form residues `y_i` followed by the limb `v` (`k + 1`
    /// limbs of `N` words). Each special limb is copied, inverse-transformed and
    /// premultiplied in one parallel pass; `v` is summed in parallel over blocks of
    /// coefficients (the same `f64` operations in the same order as a serial sum, so the
    /// same result). [`Self::mod_down_finish`] is the second half.
    fn mod_down_residues(
        &self,
        special: &[usize],
        q_basis: &[usize],
        special_limbs: &[&[u64]],
    ) -> Result<(Arc<BasisConverter>, Vec<u64>)> {
        /// Coefficients per block of the correction's sum.
        const BLOCK: usize = 2048;
        let n = self.ctx.n();
        let k = special.len();
        let conv = self.converter(special, q_basis)?;
        let mut y = copied_data(n, special_limbs, (k + 1) * n, K::PARALLEL, |i, l| {
            self.ctx.plan(special[i]).inverse(l);
            Self::premultiply_limb(&conv, i, l);
        });
        y.resize((k + 1) * n, 0);
        let inv: Vec<f64> = conv
            .from_moduli()
            .iter()
            .map(|m| 1.0 / m.value() as f64)
            .collect();
        let (ys, v) = y.split_at_mut(k * n);
        let ys = &*ys;
        let correction = |(c, out): (usize, &mut [u64])| {
            let lo = c * BLOCK;
            let mut frac = [0.0f64; BLOCK];
            let frac = &mut frac[..out.len()];
            for (yi, &ip) in ys.chunks_exact(n).zip(&inv) {
                frac.iter_mut()
                    .zip(&yi[lo..lo + out.len()])
                    .for_each(|(acc, &x)| *acc += x as f64 * ip);
            }
            out.iter_mut()
                .zip(&*frac)
                .for_each(|(o, x)| *o = x.round() as u64);
        };
        if K::PARALLEL {
            v.par_chunks_mut(BLOCK).enumerate().for_each(correction);
        } else {
            v.chunks_mut(BLOCK).enumerate().for_each(correction);
        }
        Ok((conv, y))
    }

    /// Second half of ModDown's division: `out ← (out − [x]_S)·S^{-1}` from the residues
    /// `y` of [`Self::mod_down_residues`] (whose converter `conv` targets `out`'s basis).
    fn mod_down_finish(
        &self,
        mut out: RnsPoly,
        special: &[usize],
        conv: &BasisConverter,
        y: &[u64],
    ) -> Result<RnsPoly> {
        let k = special.len();
        let q_basis = out.basis().to_vec();
        // Rows of the conversion extended by −S mod q_j, and S^{-1} mod q_j.
        let mut rows = Vec::with_capacity(q_basis.len() * (k + 1));
        let mut s_inv = Vec::with_capacity(q_basis.len());
        for (j, &bi) in q_basis.iter().enumerate() {
            let qi = self.ctx.modulus(bi);
            let s_mod = special.iter().fold(1u64, |acc, &p| {
                qi.mul(acc, qi.reduce(self.ctx.modulus(p).value()))
            });
            rows.extend_from_slice(conv.row(j));
            rows.push(qi.neg(s_mod));
            s_inv.push(
                special
                    .iter()
                    .fold(1u64, |acc, &p| qi.mul(acc, self.ctx.inv_mod(bi, p).0)),
            );
        }
        let y_bound = conv.max_from_modulus().max(k as u64 + 1);
        let (basis, data) = out.parts_mut();
        self.limbs(basis, data, |j, bi, l| {
            let qi = self.ctx.modulus(bi);
            with_scratch(l.len(), |t| {
                K::convert_limb(qi, &rows[j * (k + 1)..(j + 1) * (k + 1)], y, y_bound, t);
                self.ctx.plan(bi).forward(t);
                K::sub_scalar_mul(qi, l, t, s_inv[j]);
            });
        });
        Ok(out)
    }

    /// Second step: output limb `j` (modulus `conv.to()[j]`) of the conversion of the
    /// premultiplied `y`.
    fn convert_limb(conv: &BasisConverter, y: &[u64], j: usize, out: &mut [u64]) {
        K::convert_limb(
            &conv.to_moduli()[j],
            conv.row(j),
            y,
            conv.max_from_modulus(),
            out,
        );
    }
}

impl<K: LimbKernels> Backend for HostBackend<K> {
    type Poly = RnsPoly;

    fn name(&self) -> &'static str {
        K::NAME
    }

    fn context(&self) -> &Arc<RingContext> {
        &self.ctx
    }

    fn zero(&self, basis: &[usize], repr: Representation) -> Result<RnsPoly> {
        self.ctx.check_basis(basis)?;
        Ok(RnsPoly::zero(self.ctx.n(), basis, repr))
    }

    fn upload(&self, host: &RnsPoly) -> Result<RnsPoly> {
        host.validate(&self.ctx)?;
        Ok(host.clone())
    }

    fn upload_owned(&self, host: RnsPoly) -> Result<RnsPoly> {
        host.validate(&self.ctx)?;
        Ok(host)
    }

    fn download(&self, p: &RnsPoly) -> Result<RnsPoly> {
        Ok(p.clone())
    }

    fn basis<'a>(&self, p: &'a RnsPoly) -> &'a [usize] {
        p.basis()
    }

    fn repr(&self, p: &RnsPoly) -> Representation {
        p.repr()
    }

    fn zeroize(&self, p: &mut RnsPoly) {
        zeroize::Zeroize::zeroize(p.data_mut());
    }

    fn select_limbs(&self, p: &RnsPoly, keep: &[usize]) -> Result<RnsPoly> {
        self.ctx.check_basis(keep)?;
        let sources = special_limbs(p, keep)?;
        let data = copied_data(self.ctx.n(), &sources, 0, K::PARALLEL, |_, _| {});
        RnsPoly::from_data(self.ctx.n(), keep, p.repr(), data)
    }

    fn forward_ntt(&self, p: &mut RnsPoly) -> Result<()> {
        check_repr(p, Representation::Coeff)?;
        let (basis, data) = p.parts_mut();
        self.limbs(basis, data, |_, bi, l| self.ctx.plan(bi).forward(l));
        p.set_repr(Representation::Ntt);
        Ok(())
    }

    fn inverse_ntt(&self, p: &mut RnsPoly) -> Result<()> {
        check_repr(p, Representation::Ntt)?;
        let (basis, data) = p.parts_mut();
        self.limbs(basis, data, |_, bi, l| self.ctx.plan(bi).inverse(l));
        p.set_repr(Representation::Coeff);
        Ok(())
    }

    fn add_assign(&self, a: &mut RnsPoly, b: &RnsPoly) -> Result<()> {
        check_same(a, b)?;
        let (basis, data) = a.parts_mut();
        self.limbs(basis, data, |j, bi, l| {
            K::add(self.ctx.modulus(bi), l, b.limb(j))
        });
        Ok(())
    }

    fn sub_assign(&self, a: &mut RnsPoly, b: &RnsPoly) -> Result<()> {
        check_same(a, b)?;
        let (basis, data) = a.parts_mut();
        self.limbs(basis, data, |j, bi, l| {
            K::sub(self.ctx.modulus(bi), l, b.limb(j))
        });
        Ok(())
    }

    fn neg_assign(&self, a: &mut RnsPoly) -> Result<()> {
        let (basis, data) = a.parts_mut();
        self.limbs(basis, data, |_, bi, l| K::neg(self.ctx.modulus(bi), l));
        Ok(())
    }

    fn mul_assign(&self, a: &mut RnsPoly, b: &RnsPoly) -> Result<()> {
        check_same(a, b)?;
        check_repr(a, Representation::Ntt)?;
        let (basis, data) = a.parts_mut();
        self.limbs(basis, data, |j, bi, l| {
            K::mul(self.ctx.modulus(bi), l, b.limb(j))
        });
        Ok(())
    }

    fn mul_new(&self, a: &RnsPoly, b: &RnsPoly) -> Result<RnsPoly> {
        check_same(a, b)?;
        check_repr(a, Representation::Ntt)?;
        let basis = a.basis();
        let sources: Vec<&[u64]> = a.data().chunks_exact(self.ctx.n()).collect();
        let data = copied_data(self.ctx.n(), &sources, 0, K::PARALLEL, |j, l| {
            K::mul(self.ctx.modulus(basis[j]), l, b.limb(j))
        });
        RnsPoly::from_data(self.ctx.n(), basis, a.repr(), data)
    }

    fn dot_parts(&self, xs: &[&[RnsPoly]], ys: &[&RnsPoly]) -> Result<Vec<RnsPoly>> {
        let parts = super::check_dot_parts(xs, ys)?;
        let first = &xs[0][0];
        check_repr(first, Representation::Ntt)?;
        for (g, y) in xs.iter().zip(ys) {
            check_same(first, y)?;
            for x in g.iter() {
                check_same(first, x)?;
            }
        }
        let n = self.ctx.n();
        let basis = first.basis();
        let limbs = basis.len();
        // Output block [lo, lo + out.len()) of part p, limb j: one lazy dot product.
        let block = |j: usize, p: usize, lo: usize, out: &mut [u64]| {
            dot_block::<K>(
                self.ctx.modulus(basis[j]),
                out,
                xs.iter().map(|g| &g[p].limb(j)[lo..]),
                ys.iter().map(|y| &y.limb(j)[lo..]),
            );
        };
        let datas: Vec<Vec<u64>> = if parts == 2 {
            // Both parts block by block: each plaintext block is read from memory once.
            fresh_data_pair(n, limbs, K::PARALLEL, |j, o0, o1| {
                for (c, (b0, b1)) in o0
                    .chunks_mut(DOT_BLOCK)
                    .zip(o1.chunks_mut(DOT_BLOCK))
                    .enumerate()
                {
                    block(j, 0, c * DOT_BLOCK, b0);
                    block(j, 1, c * DOT_BLOCK, b1);
                }
            })
            .into()
        } else {
            (0..parts)
                .map(|p| {
                    fresh_data(n, limbs, K::PARALLEL, |j, o| {
                        for (c, b) in o.chunks_mut(DOT_BLOCK).enumerate() {
                            block(j, p, c * DOT_BLOCK, b);
                        }
                    })
                })
                .collect()
        };
        datas
            .into_iter()
            .map(|d| RnsPoly::from_data(n, basis, Representation::Ntt, d))
            .collect()
    }

    fn compress_runs(&self, a: &RnsPoly, run: usize) -> Result<RnsPoly> {
        check_repr(a, Representation::Ntt)?;
        let n = self.ctx.n();
        self.check_run(run)?;
        if a.n() != n {
            return Err(MathError::InvalidArgument(format!(
                "compressing a polynomial of {} words per limb, not N = {n}",
                a.n()
            )));
        }
        let mut data = Vec::with_capacity(a.num_limbs() * (n / run));
        for (_, l) in a.limbs() {
            for c in l.chunks_exact(run) {
                if c.iter().any(|&w| w != c[0]) {
                    return Err(MathError::InvalidArgument(format!(
                        "not a polynomial in X^{run}: its NTT words differ within a run"
                    )));
                }
                data.push(c[0]);
            }
        }
        RnsPoly::from_data(n / run, a.basis(), Representation::Ntt, data)
    }

    fn expand_runs(&self, a: &RnsPoly, run: usize) -> Result<RnsPoly> {
        let n = self.ctx.n();
        self.check_run(run)?;
        check_repr(a, Representation::Ntt)?;
        if a.n() * run != n {
            return Err(MathError::InvalidArgument(format!(
                "{} words per limb are not N/{run} (N = {n})",
                a.n()
            )));
        }
        let sources: Vec<&[u64]> = a.limbs().map(|(_, l)| l).collect();
        let data = fresh_data(n, sources.len(), K::PARALLEL, |j, o| {
            expand_runs_into(sources[j], 0, run, o)
        });
        RnsPoly::from_data(n, a.basis(), Representation::Ntt, data)
    }

    fn dot_parts_runs(
        &self,
        xs: &[&[RnsPoly]],
        ys: &[&RnsPoly],
        run: usize,
    ) -> Result<Vec<RnsPoly>> {
        if run == 1 {
            return self.dot_parts(xs, ys);
        }
        let parts = super::check_dot_parts(xs, ys)?;
        self.check_run(run)?;
        let n = self.ctx.n();
        let first = &xs[0][0];
        check_repr(first, Representation::Ntt)?;
        for (g, y) in xs.iter().zip(ys) {
            check_same(first, y)?;
            if y.n() * run != n {
                return Err(MathError::InvalidArgument(format!(
                    "a right factor of {} words per limb is not compressed by {run} (N = {n})",
                    y.n()
                )));
            }
            for x in g.iter() {
                check_same(first, x)?;
                if x.n() != n {
                    return Err(MathError::InvalidArgument(format!(
                        "a left factor of {} words per limb (N = {n})",
                        x.n()
                    )));
                }
            }
        }
        let basis = first.basis();
        let limbs = basis.len();
        let block = |j: usize, first_part: usize, outs: &mut [&mut [u64]]| {
            RUN_SCRATCH.with(|s| {
                let mut s = s.borrow_mut();
                if s.len() < DOT_TERMS * RUN_BLOCK {
                    s.resize(DOT_TERMS * RUN_BLOCK, 0);
                }
                dot_runs_block::<K>(
                    self.ctx.modulus(basis[j]),
                    j,
                    outs,
                    first_part,
                    xs,
                    ys,
                    run,
                    &mut s,
                );
            });
        };
        let datas: Vec<Vec<u64>> = if parts == 2 {
            // Both parts together: each expanded block serves both.
            fresh_data_pair(n, limbs, K::PARALLEL, |j, o0, o1| {
                block(j, 0, &mut [o0, o1])
            })
            .into()
        } else {
            (0..parts)
                .map(|p| fresh_data(n, limbs, K::PARALLEL, |j, o| block(j, p, &mut [o])))
                .collect()
        };
        datas
            .into_iter()
            .map(|d| RnsPoly::from_data(n, basis, Representation::Ntt, d))
            .collect()
    }

    fn mul_add_assign(&self, acc: &mut RnsPoly, a: &RnsPoly, b: &RnsPoly) -> Result<()> {
        check_same(acc, a)?;
        check_same(a, b)?;
        check_repr(a, Representation::Ntt)?;
        let (basis, data) = acc.parts_mut();
        self.limbs(basis, data, |j, bi, l| {
            K::mul_add(self.ctx.modulus(bi), l, a.limb(j), b.limb(j))
        });
        Ok(())
    }

    fn scalar_mul_assign(&self, a: &mut RnsPoly, scalars: &[u64]) -> Result<()> {
        self.check_scalars(a, scalars)?;
        let (basis, data) = a.parts_mut();
        self.limbs(basis, data, |j, bi, l| {
            K::scalar_mul(self.ctx.modulus(bi), l, scalars[j])
        });
        Ok(())
    }

    fn scalar_mul_add_assign(&self, acc: &mut RnsPoly, a: &RnsPoly, scalars: &[u64]) -> Result<()> {
        self.check_scalars(acc, scalars)?;
        if acc.repr() != a.repr() {
            return Err(MathError::ReprMismatch {
                expected: acc.repr(),
                got: a.repr(),
            });
        }
        // A limb whose scalar is zero adds nothing (`None`): `a` need not have that modulus.
        let src = acc
            .basis()
            .iter()
            .zip(scalars)
            .map(|(&m, &s)| match (s, a.position(m)) {
                (0, _) => Ok(None),
                (_, Some(i)) => Ok(Some(a.limb(i))),
                (_, None) => Err(MathError::BasisMismatch(format!(
                    "modulus {m} is not in the basis"
                ))),
            })
            .collect::<Result<Vec<_>>>()?;
        let (basis, data) = acc.parts_mut();
        self.limbs(basis, data, |j, bi, l| {
            if let Some(x) = src[j] {
                K::scalar_mul_add(self.ctx.modulus(bi), l, x, scalars[j]);
            }
        });
        Ok(())
    }

    fn scalar_add_assign(&self, a: &mut RnsPoly, scalars: &[u64]) -> Result<()> {
        self.check_scalars(a, scalars)?;
        let repr = a.repr();
        let (basis, data) = a.parts_mut();
        self.limbs(basis, data, |j, bi, l| {
            let m = self.ctx.modulus(bi);
            match repr {
                Representation::Ntt => K::add_const(m, l, scalars[j]),
                Representation::Coeff => l[0] = m.add(l[0], scalars[j]),
            }
        });
        Ok(())
    }

    fn automorphism(&self, a: &RnsPoly, k: usize, out: &mut RnsPoly) -> Result<()> {
        check_same(out, a)?;
        galois::check_galois_element(k, self.ctx.n())?;
        let (basis, data) = out.parts_mut();
        match a.repr() {
            Representation::Coeff => {
                self.limbs(basis, data, |j, bi, l| {
                    galois::automorphism_coeff(a.limb(j), k, self.ctx.modulus(bi), l)
                        .expect("element and lengths checked")
                });
            }
            Representation::Ntt => {
                let perm = self.permutation(k)?;
                self.limbs(basis, data, |j, _, l| {
                    crate::simd::permute_blocks(a.limb(j), &perm, l)
                });
            }
        }
        Ok(())
    }

    fn automorphism_new(&self, a: &RnsPoly, k: usize) -> Result<RnsPoly> {
        galois::check_galois_element(k, self.ctx.n())?;
        Ok(match a.repr() {
            Representation::Coeff => self.fresh(a.basis(), a.repr(), |j, bi, l| {
                galois::automorphism_coeff(a.limb(j), k, self.ctx.modulus(bi), l)
                    .expect("element and lengths checked")
            }),
            Representation::Ntt => {
                let perm = self.permutation(k)?;
                let sources: Vec<&[u64]> = a.data().chunks_exact(self.ctx.n()).collect();
                let data = permuted_data(self.ctx.n(), &sources, &perm, K::PARALLEL);
                RnsPoly::from_data(self.ctx.n(), a.basis(), a.repr(), data)?
            }
        })
    }

    fn basis_convert(&self, a: &RnsPoly, to: &[usize]) -> Result<RnsPoly> {
        check_repr(a, Representation::Coeff)?;
        let conv = self.converter(a.basis(), to)?;
        let sources: Vec<&[u64]> = a.data().chunks_exact(self.ctx.n()).collect();
        let y = copied_data(self.ctx.n(), &sources, 0, K::PARALLEL, |i, l| {
            Self::premultiply_limb(&conv, i, l)
        });
        Ok(self.fresh(to, Representation::Coeff, |j, _, l| {
            Self::convert_limb(&conv, &y, j, l)
        }))
    }

    fn rescale(&self, a: &mut RnsPoly) -> Result<()> {
        let _span = tracing::trace_span!("rescale", backend = K::NAME).entered();
        let l = a.num_limbs();
        if l < 2 {
            return Err(MathError::BasisMismatch(
                "cannot rescale a single-limb polynomial".into(),
            ));
        }
        let last_bi = a.basis()[l - 1];
        let ql = *self.ctx.modulus(last_bi);
        let ntt = a.repr() == Representation::Ntt;
        // Coefficients of the last limb, shifted by h = floor(q_l/2) for rounding.
        let mut last = a.limb(l - 1).to_vec();
        if ntt {
            self.ctx.plan(last_bi).inverse(&mut last);
        }
        let h = ql.value() / 2;
        K::add_const(&ql, &mut last, h);
        a.drop_last_limbs(1)?;
        let (basis, data) = a.parts_mut();
        self.limbs(basis, data, |_, bi, l| {
            let qi = self.ctx.modulus(bi);
            let hi = qi.reduce(h);
            with_scratch(last.len(), |t| {
                for (o, &x) in t.iter_mut().zip(&last) {
                    *o = qi.sub(qi.reduce(x), hi);
                }
                if ntt {
                    self.ctx.plan(bi).forward(t);
                }
                K::sub_scalar_mul(qi, l, t, self.ctx.inv_mod(bi, last_bi).0);
            });
        });
        Ok(())
    }

    fn mod_up(&self, a: &RnsPoly, digit: &[usize], special: &[usize]) -> Result<RnsPoly> {
        let _span = tracing::trace_span!("mod_up", backend = K::NAME).entered();
        check_repr(a, Representation::Ntt)?;
        self.ctx.check_basis(special)?;
        if special.iter().any(|p| a.position(*p).is_some()) {
            return Err(MathError::BasisMismatch(
                "special moduli overlap the polynomial's basis".into(),
            ));
        }
        let digit_limbs = special_limbs(a, digit)?;
        let mut out_basis: Vec<usize> = a.basis().iter().chain(special).copied().collect();
        out_basis.sort_unstable();
        self.ctx.check_basis(&out_basis)?;
        let targets: Vec<usize> = out_basis
            .iter()
            .copied()
            .filter(|i| !digit.contains(i))
            .collect();
        let conv = if targets.is_empty() {
            None
        } else {
            Some(self.converter(digit, &targets)?)
        };
        // The digit's limbs copied, in coefficient form and premultiplied, in one pass.
        let y = copied_data(self.ctx.n(), &digit_limbs, 0, K::PARALLEL, |i, l| {
            self.ctx.plan(digit[i]).inverse(l);
            if let Some(c) = conv.as_ref() {
                Self::premultiply_limb(c, i, l);
            }
        });
        let y = &y[..];
        let out = self.fresh(&out_basis, Representation::Ntt, |_, bi, l| {
            match (targets.binary_search(&bi), conv.as_ref()) {
                (Ok(j), Some(conv)) => {
                    Self::convert_limb(conv, y, j, l);
                    self.ctx.plan(bi).forward(l);
                }
                _ => {
                    let src = a.position(bi).expect("digit modulus is in the input basis");
                    l.copy_from_slice(a.limb(src));
                }
            }
        });
        Ok(out)
    }

    fn mod_raise(&self, a: &RnsPoly, target: &[usize]) -> Result<RnsPoly> {
        let _span = tracing::trace_span!("mod_raise", backend = K::NAME).entered();
        check_repr(a, Representation::Ntt)?;
        let &[src] = a.basis() else {
            return Err(MathError::BasisMismatch(format!(
                "ModRaise takes a one-limb polynomial, got {} limbs",
                a.basis().len()
            )));
        };
        self.ctx.check_basis(target)?;
        if !target.contains(&src) {
            return Err(MathError::BasisMismatch(
                "the ModRaise target basis does not contain the source modulus".into(),
            ));
        }
        let mut c = a.clone();
        self.inverse_ntt(&mut c)?;
        let q = self.ctx.modulus(src).value();
        let half = q / 2;
        let coeffs = c.limb(0);
        let out = self.fresh(target, Representation::Ntt, |_, bi, l| {
            let m = self.ctx.modulus(bi);
            let mv = m.value();
            // Centred lift: x > q/2 stands for x − q.
            let neg_q = m.neg(m.reduce(q));
            for (o, &x) in l.iter_mut().zip(coeffs) {
                *o = if x > half {
                    m.add(m.reduce(x), neg_q)
                } else if x < mv {
                    x
                } else {
                    m.reduce(x)
                };
            }
            self.ctx.plan(bi).forward(l);
        });
        Ok(out)
    }

    fn mod_down(&self, a: &RnsPoly, special: &[usize]) -> Result<RnsPoly> {
        let _span = tracing::trace_span!("mod_down", backend = K::NAME).entered();
        let q_basis = mod_down_basis(a, special)?;
        let limbs = special_limbs(a, special)?;
        let (conv, y) = self.mod_down_residues(special, &q_basis, &limbs)?;
        let out = self.select_limbs(a, &q_basis)?;
        self.mod_down_finish(out, special, &conv, &y)
    }

    fn mod_down_owned(&self, mut a: RnsPoly, special: &[usize]) -> Result<RnsPoly> {
        let _span = tracing::trace_span!("mod_down", backend = K::NAME).entered();
        let q_basis = mod_down_basis(&a, special)?;
        let (conv, y) = {
            let limbs = special_limbs(&a, special)?;
            self.mod_down_residues(special, &q_basis, &limbs)?
        };
        // The special limbs are a suffix of the basis when the moduli table lists P
        // after Q (every preset): the output is then `a` with its last limbs dropped.
        let out = if a.basis()[..q_basis.len()] == q_basis[..] {
            a.drop_last_limbs(special.len())?;
            a
        } else {
            self.select_limbs(&a, &q_basis)?
        };
        self.mod_down_finish(out, special, &conv, &y)
    }

    fn mod_down_rescale(&self, a: &RnsPoly, b: RnsPoly, special: &[usize]) -> Result<RnsPoly> {
        let _span = tracing::trace_span!("mod_down_rescale", backend = K::NAME).entered();
        check_repr(a, Representation::Ntt)?;
        check_repr(&b, Representation::Ntt)?;
        let mut expected: Vec<usize> = b.basis().iter().chain(special).copied().collect();
        expected.sort_unstable();
        if b.num_limbs() < 2 || special.is_empty() || a.basis() != expected.as_slice() {
            return Err(MathError::BasisMismatch(format!(
                "mod_down_rescale takes a over Q_l ∪ P = {expected:?} (got {:?}), b over \
                 Q_l with at least two limbs and P = {special:?} non-empty",
                a.basis()
            )));
        }
        // x = a + P·b on the limbs of b (on P's limbs P·b vanishes).
        let mut x = b;
        let (basis, data) = x.parts_mut();
        self.limbs(basis, data, |_, bi, l| {
            let qi = self.ctx.modulus(bi);
            let p_mod = special.iter().fold(1u64, |acc, &p| {
                qi.mul(acc, qi.reduce(self.ctx.modulus(p).value()))
            });
            K::scalar_mul(qi, l, p_mod);
            let src = a.position(bi).expect("basis of b is inside the basis of a");
            K::add(qi, l, a.limb(src));
        });
        // Divide by P·q_l: the last limb of x joins the special moduli.
        let l = x.num_limbs();
        let last_bi = x.basis()[l - 1];
        let mut all_special = vec![last_bi];
        all_special.extend_from_slice(special);
        let (conv, y) = {
            let mut limbs = vec![x.limb(l - 1)];
            limbs.extend(special_limbs(a, special)?);
            self.mod_down_residues(&all_special, &x.basis()[..l - 1], &limbs)?
        };
        x.drop_last_limbs(1)?;
        self.mod_down_finish(x, &all_special, &conv, &y)
    }

    fn key_switch_inner_product(
        &self,
        digits: &[RnsPoly],
        key_b: &[RnsPoly],
        key_a: UniformParts<'_, RnsPoly>,
    ) -> Result<[RnsPoly; 2]> {
        let _span = tracing::trace_span!("key_switch_inner_product", backend = K::NAME).entered();
        self.inner_product(digits, None, key_b, key_a)
    }

    /// Reads each digit limb through the NTT-form permutation of `k`
    /// (`he_math::simd::permute_blocks`, a chunk at a time into a per-thread buffer)
    /// instead of writing the rotated digits out and reading them back.
    fn key_switch_inner_product_automorphism(
        &self,
        digits: &[RnsPoly],
        k: usize,
        key_b: &[RnsPoly],
        key_a: UniformParts<'_, RnsPoly>,
    ) -> Result<[RnsPoly; 2]> {
        let _span =
            tracing::trace_span!("key_switch_inner_product_automorphism", backend = K::NAME)
                .entered();
        galois::check_galois_element(k, self.ctx.n())?;
        let perm = self.permutation(k)?;
        self.inner_product(digits, Some(&perm), key_b, key_a)
    }
}

impl<K: LimbKernels> HostBackend<K> {
    /// [`Backend::key_switch_inner_product`], of the digits permuted by `perm` (an
    /// NTT-form Galois permutation) where given.
    fn inner_product(
        &self,
        digits: &[RnsPoly],
        perm: Option<&[u32]>,
        key_b: &[RnsPoly],
        key_a: UniformParts<'_, RnsPoly>,
    ) -> Result<[RnsPoly; 2]> {
        if digits.is_empty() || digits.len() != key_b.len() {
            return Err(MathError::LengthMismatch {
                expected: digits.len(),
                got: key_b.len(),
            });
        }
        if let UniformParts::Stored(a) = key_a
            && a.len() != digits.len()
        {
            return Err(MathError::LengthMismatch {
                expected: digits.len(),
                got: a.len(),
            });
        }
        let basis = digits[0].basis().to_vec();
        for d in digits {
            check_same(d, &digits[0])?;
            check_repr(d, Representation::Ntt)?;
        }
        // Position of every digit-basis modulus in each stored key polynomial.
        let positions = |polys: &[RnsPoly]| -> Result<Vec<Vec<usize>>> {
            polys
                .iter()
                .map(|kp| {
                    check_repr(kp, Representation::Ntt)?;
                    basis
                        .iter()
                        .map(|&bi| {
                            kp.position(bi).ok_or_else(|| {
                                MathError::BasisMismatch(format!(
                                    "key lacks modulus {bi} of the digits"
                                ))
                            })
                        })
                        .collect()
                })
                .collect()
        };
        let pos_b = positions(key_b)?;
        let n = self.ctx.n();
        let stored = |key: &[RnsPoly], pos: &[Vec<usize>]| {
            self.fresh(&basis, Representation::Ntt, |j, bi, l| {
                let m = self.ctx.modulus(bi);
                PERMUTED_SCRATCH.with(|scratch| {
                    let mut scratch = scratch.borrow_mut();
                    if let Some(perm) = perm {
                        if scratch.len() < digits.len() * n {
                            scratch.resize(digits.len() * n, 0);
                        }
                        for (d, buf) in digits.iter().zip(scratch.chunks_mut(n)) {
                            crate::simd::permute_blocks(d.limb(j), perm, buf);
                        }
                    }
                    // The digits' limb `j`: read in place, or its permuted copy.
                    let digit = |t: usize| -> &[u64] {
                        match perm {
                            None => digits[t].limb(j),
                            Some(_) => &scratch[t * n..(t + 1) * n],
                        }
                    };
                    let mut xs = [&[][..]; 32];
                    let mut ys = [&[][..]; 32];
                    let t_max = digits.len().min(32);
                    for t in 0..t_max {
                        xs[t] = digit(t);
                        ys[t] = key[t].limb(pos[t][j]);
                    }
                    K::dot(m, l, &xs[..t_max], &ys[..t_max]);
                    for t in t_max..digits.len() {
                        K::mul_add(m, l, digit(t), key[t].limb(pos[t][j]));
                    }
                })
            })
        };
        match key_a {
            UniformParts::Stored(a) => Ok([stored(key_b, &pos_b), stored(a, &positions(a)?)]),
            UniformParts::Seeded(seed) => {
                let expander = SeedExpander::new(seed);
                let [db, da] = fresh_data_pair(n, basis.len(), K::PARALLEL, |j, lb, la| {
                    self.seeded_limb(&expander, digits, perm, key_b, &pos_b, j, basis[j], lb, la);
                });
                let poly = |d| RnsPoly::from_data(n, &basis, Representation::Ntt, d);
                Ok([poly(db)?, poly(da)?])
            }
        }
    }
}
