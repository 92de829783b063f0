//! The homomorphic [`Evaluator`]: the server-side operations on ciphertexts, built from
//! evaluation keys only.
//!
//! # Levels and scales
//! Every ciphertext carries its level `ℓ` and its scale Δ exactly. Binary operations
//! refuse operands at different levels ([`CkksError::LevelMismatch`]) or, where the
//! scales must agree (addition), with different scales ([`CkksError::ScaleMismatch`]);
//! nothing is adjusted silently. Scale management follows OpenFHE's FLEXIBLEAUTO: each
//! level has a canonical scale `Δ_ℓ` ([`crate::Parameters::scale_at`],
//! `Δ_{ℓ−1} = Δ_ℓ²/q_ℓ`), so multiplying two operands at `Δ_ℓ` (ciphertexts, plaintexts
//! from [`crate::Context::encode_at_level`], constants through [`Evaluator::mul_const`])
//! and rescaling lands exactly at `Δ_{ℓ−1}`. [`Evaluator::adjust`] brings a ciphertext to
//! a lower level's canonical scale (one level consumed).
//!
//! # Key switching
//! Hybrid key switching (Han–Ki, CT-RSA 2020): ModUp of each digit of the input to
//! `Q_ℓ ∪ P`, inner product with the key, ModDown by `P` — all through the [`Backend`]
//! (Lattigo `rlwe/evaluator_keyswitch.go`). Hoisted rotations (Halevi–Shoup, Crypto 2018,
//! §5; Bossuat et al., Eurocrypt 2021, §4) decompose once and apply each automorphism
//! to the ModUp'd digits.

use crate::ciphertext::{Ciphertext, Plaintext};
use crate::context::Context;
use crate::error::{CkksError, Result};
use crate::keys::{EvaluationKeySet, SwitchingKey};
use he_math::Backend;
use he_math::galois;
use num_complex::Complex64;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Counts of homomorphic operations, as performed by an [`Evaluator`] (not computed by
/// formula): read a snapshot with [`Evaluator::op_counts`] before and after a call and
/// subtract (`after - before`), or use [`Evaluator::counting`]. The categories follow
/// HETAL (Lee et al., ICML 2023, Table 6): `cmult` plaintext×ciphertext products
/// ([`Evaluator::mul_plain`] and the diagonal products inside linear transforms), `mult`
/// ciphertext×ciphertext tensor products ([`Evaluator::mul`]), `rot` slot rotations
/// (each rotation of a hoisted batch counts one).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct OpCounts {
    /// Plaintext × ciphertext products.
    pub cmult: u64,
    /// Products by an encoded scalar (integer or real/complex constant), including the
    /// scale corrections of [`Evaluator::adjust`].
    pub const_mult: u64,
    /// Ciphertext × ciphertext tensor products.
    pub mult: u64,
    /// Slot rotations.
    pub rot: u64,
    /// Complex conjugations.
    pub conj: u64,
    /// Rescales.
    pub rescale: u64,
    /// Key switches (relinearizations, rotations and conjugations; a hoisted batch
    /// counts one per output).
    pub key_switch: u64,
    /// Bootstraps (counted by [`crate::Bootstrapper`]).
    pub bootstrap: u64,
}

impl std::ops::Sub for OpCounts {
    type Output = OpCounts;
    fn sub(self, o: OpCounts) -> OpCounts {
        OpCounts {
            cmult: self.cmult - o.cmult,
            const_mult: self.const_mult - o.const_mult,
            mult: self.mult - o.mult,
            rot: self.rot - o.rot,
            conj: self.conj - o.conj,
            rescale: self.rescale - o.rescale,
            key_switch: self.key_switch - o.key_switch,
            bootstrap: self.bootstrap - o.bootstrap,
        }
    }
}

impl std::ops::Add for OpCounts {
    type Output = OpCounts;
    fn add(self, o: OpCounts) -> OpCounts {
        OpCounts {
            cmult: self.cmult + o.cmult,
            const_mult: self.const_mult + o.const_mult,
            mult: self.mult + o.mult,
            rot: self.rot + o.rot,
            conj: self.conj + o.conj,
            rescale: self.rescale + o.rescale,
            key_switch: self.key_switch + o.key_switch,
            bootstrap: self.bootstrap + o.bootstrap,
        }
    }
}

/// The live atomic counters behind [`OpCounts`].
#[derive(Debug, Default)]
struct OpCounters {
    cmult: AtomicU64,
    const_mult: AtomicU64,
    mult: AtomicU64,
    rot: AtomicU64,
    conj: AtomicU64,
    rescale: AtomicU64,
    key_switch: AtomicU64,
    bootstrap: AtomicU64,
}

/// Which counter an operation bumps.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Op {
    CMult,
    ConstMult,
    Mult,
    Rot,
    Conj,
    Rescale,
    KeySwitch,
    Bootstrap,
}

/// Homomorphic operations. Holds the context and the server's [`EvaluationKeySet`]; it
/// has no secret key and cannot decrypt.
pub struct Evaluator<B: Backend> {
    ctx: Arc<Context<B>>,
    keys: Arc<EvaluationKeySet<B>>,
    counters: OpCounters,
}

impl<B: Backend> std::fmt::Debug for Evaluator<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Evaluator")
            .field("relinearization_key", &self.keys.has_relinearization_key())
            .field("galois_elements", &self.keys.galois_elements())
            .finish()
    }
}

/// The digits of a key-switching decomposition: ModUp of each digit of a polynomial at
/// some level to `Q_ℓ ∪ P` (NTT form). Reusable across hoisted rotations.
pub struct Decomposition<B: Backend> {
    pub(crate) digits: Vec<B::Poly>,
    pub(crate) level: usize,
}

impl<B: Backend> std::fmt::Debug for Decomposition<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Decomposition({} digits, level {})",
            self.digits.len(),
            self.level
        )
    }
}

fn check_pair<B: Backend>(a: &Ciphertext<B>, b_level: usize, b_slots: usize) -> Result<()> {
    if a.level != b_level {
        return Err(CkksError::LevelMismatch(a.level, b_level));
    }
    if a.slots != b_slots {
        return Err(CkksError::SlotsMismatch(a.slots, b_slots));
    }
    Ok(())
}

fn check_scale(a: f64, b: f64) -> Result<()> {
    if a != b {
        return Err(CkksError::ScaleMismatch(a, b));
    }
    Ok(())
}

fn check_degree1<B: Backend>(a: &Ciphertext<B>) -> Result<()> {
    if a.parts.len() != 2 {
        return Err(CkksError::DegreeTooHigh(a.degree()));
    }
    Ok(())
}

impl<B: Backend> Evaluator<B> {
    /// An evaluator over `ctx` with the server's evaluation keys.
    pub fn new(ctx: &Arc<Context<B>>, keys: Arc<EvaluationKeySet<B>>) -> Self {
        Self {
            ctx: ctx.clone(),
            keys,
            counters: OpCounters::default(),
        }
    }

    /// A snapshot of the operation counters (since construction). Subtract two
    /// snapshots to count the operations of one call; with several threads sharing this
    /// evaluator the difference includes their work too.
    pub fn op_counts(&self) -> OpCounts {
        let c = &self.counters;
        let r = |a: &AtomicU64| a.load(Ordering::Relaxed);
        OpCounts {
            cmult: r(&c.cmult),
            const_mult: r(&c.const_mult),
            mult: r(&c.mult),
            rot: r(&c.rot),
            conj: r(&c.conj),
            rescale: r(&c.rescale),
            key_switch: r(&c.key_switch),
            bootstrap: r(&c.bootstrap),
        }
    }

    /// Runs `f` and returns its result with the operations it performed on this
    /// evaluator.
    pub fn counting<T>(&self, f: impl FnOnce() -> T) -> (T, OpCounts) {
        let before = self.op_counts();
        let out = f();
        (out, self.op_counts() - before)
    }

    /// Bumps one counter by `n`.
    pub(crate) fn note(&self, op: Op, n: u64) {
        let c = &self.counters;
        let a = match op {
            Op::CMult => &c.cmult,
            Op::ConstMult => &c.const_mult,
            Op::Mult => &c.mult,
            Op::Rot => &c.rot,
            Op::Conj => &c.conj,
            Op::Rescale => &c.rescale,
            Op::KeySwitch => &c.key_switch,
            Op::Bootstrap => &c.bootstrap,
        };
        a.fetch_add(n, Ordering::Relaxed);
    }

    /// The context.
    pub fn context(&self) -> &Arc<Context<B>> {
        &self.ctx
    }

    /// The evaluation keys.
    pub fn keys(&self) -> &EvaluationKeySet<B> {
        &self.keys
    }

    pub(crate) fn be(&self) -> &B {
        self.ctx.backend()
    }

    /// Residues of the integer `v` (any size, finite, integer-valued) modulo `q_0 … q_ℓ`.
    fn int_residues(&self, v: f64, level: usize) -> Result<Vec<u64>> {
        if !v.is_finite() {
            return Err(CkksError::InvalidValue(format!("constant {v}")));
        }
        let limit = (self.ctx.params().log_q_at(level) - 1.0).exp2();
        if v.abs() >= limit {
            return Err(CkksError::InvalidValue(format!(
                "scaled constant {v:e} is not below Q_ℓ/2 = 2^{:.1}",
                limit.log2()
            )));
        }
        let ring = self.ctx.params().ring();
        Ok((0..=level)
            .map(|i| crate::encoding::f64_int_mod(v, ring.modulus(i)))
            .collect())
    }

    // ----- additive ---------------------------------------------------------------------

    /// `a + b` (same level, scale and slot count; the degree is the larger one).
    ///
    /// # Errors
    /// [`CkksError::LevelMismatch`], [`CkksError::ScaleMismatch`],
    /// [`CkksError::SlotsMismatch`].
    pub fn add(&self, a: &Ciphertext<B>, b: &Ciphertext<B>) -> Result<Ciphertext<B>> {
        let mut out = a.clone();
        self.add_assign(&mut out, b)?;
        Ok(out)
    }

    /// `a ← a + b`; see [`Self::add`].
    ///
    /// # Errors
    /// As [`Self::add`].
    pub fn add_assign(&self, a: &mut Ciphertext<B>, b: &Ciphertext<B>) -> Result<()> {
        check_pair(a, b.level, b.slots)?;
        check_scale(a.scale, b.scale)?;
        let be = self.be();
        for (i, bp) in b.parts.iter().enumerate() {
            if i < a.parts.len() {
                be.add_assign(&mut a.parts[i], bp)?;
            } else {
                a.parts.push(bp.clone());
            }
        }
        Ok(())
    }

    /// `a − b`; see [`Self::add`].
    ///
    /// # Errors
    /// As [`Self::add`].
    pub fn sub(&self, a: &Ciphertext<B>, b: &Ciphertext<B>) -> Result<Ciphertext<B>> {
        let mut out = a.clone();
        self.sub_assign(&mut out, b)?;
        Ok(out)
    }

    /// `a ← a − b`; see [`Self::add`].
    ///
    /// # Errors
    /// As [`Self::add`].
    pub fn sub_assign(&self, a: &mut Ciphertext<B>, b: &Ciphertext<B>) -> Result<()> {
        check_pair(a, b.level, b.slots)?;
        check_scale(a.scale, b.scale)?;
        let be = self.be();
        for (i, bp) in b.parts.iter().enumerate() {
            if i < a.parts.len() {
                be.sub_assign(&mut a.parts[i], bp)?;
            } else {
                let mut t = bp.clone();
                be.neg_assign(&mut t)?;
                a.parts.push(t);
            }
        }
        Ok(())
    }

    /// `−a`.
    ///
    /// # Errors
    /// Backend errors.
    pub fn neg(&self, a: &Ciphertext<B>) -> Result<Ciphertext<B>> {
        let mut out = a.clone();
        for p in &mut out.parts {
            self.be().neg_assign(p)?;
        }
        Ok(out)
    }

    /// `a + pt`. The plaintext must have the ciphertext's scale and slot count and a
    /// level `≥` the ciphertext's (its extra limbs are dropped).
    ///
    /// # Errors
    /// [`CkksError::LevelTooLow`], [`CkksError::ScaleMismatch`],
    /// [`CkksError::SlotsMismatch`].
    pub fn add_plain(&self, a: &Ciphertext<B>, pt: &Plaintext<B>) -> Result<Ciphertext<B>> {
        let m = self.plain_at(a, pt)?;
        check_scale(a.scale, pt.scale)?;
        let mut out = a.clone();
        self.be().add_assign(&mut out.parts[0], &m)?;
        Ok(out)
    }

    /// `a − pt`; see [`Self::add_plain`].
    ///
    /// # Errors
    /// As [`Self::add_plain`].
    pub fn sub_plain(&self, a: &Ciphertext<B>, pt: &Plaintext<B>) -> Result<Ciphertext<B>> {
        let m = self.plain_at(a, pt)?;
        check_scale(a.scale, pt.scale)?;
        let mut out = a.clone();
        self.be().sub_assign(&mut out.parts[0], &m)?;
        Ok(out)
    }

    /// `pt`'s polynomial at `a`'s level: borrowed when the levels agree (no copy),
    /// otherwise its limbs `q_0 … q_ℓ`.
    fn plain_at<'p>(
        &self,
        a: &Ciphertext<B>,
        pt: &'p Plaintext<B>,
    ) -> Result<std::borrow::Cow<'p, B::Poly>> {
        if pt.slots != a.slots {
            return Err(CkksError::SlotsMismatch(a.slots, pt.slots));
        }
        if pt.level < a.level {
            return Err(CkksError::LevelTooLow {
                needed: a.level,
                level: pt.level,
            });
        }
        if pt.level == a.level {
            Ok(std::borrow::Cow::Borrowed(&pt.poly))
        } else {
            Ok(std::borrow::Cow::Owned(self.be().select_limbs(
                &pt.poly,
                &self.ctx.params().q_basis(a.level),
            )?))
        }
    }

    /// `a + c` for a complex constant `c` in every slot (no level consumed, scale kept).
    ///
    /// # Errors
    /// [`CkksError::InvalidValue`] for a non-finite or too large constant.
    pub fn add_const_complex(&self, a: &Ciphertext<B>, c: Complex64) -> Result<Ciphertext<B>> {
        let mut out = a.clone();
        self.add_const_complex_assign(&mut out, c)?;
        Ok(out)
    }

    /// [`Self::add_const_complex`] in place (no copy of `a`).
    ///
    /// # Errors
    /// As [`Self::add_const_complex`]; a refused constant leaves `a` unchanged.
    pub fn add_const_complex_assign(&self, a: &mut Ciphertext<B>, c: Complex64) -> Result<()> {
        let re = self.int_residues((c.re * a.scale).round(), a.level)?;
        let im = if c.im != 0.0 {
            let im = self.int_residues((c.im * a.scale).round(), a.level)?;
            let mut mono = self.ctx.monomial_half(a.level)?;
            self.be().scalar_mul_assign(&mut mono, &im)?;
            Some(mono)
        } else {
            None
        };
        self.be().scalar_add_assign(&mut a.parts[0], &re)?;
        if let Some(mono) = im {
            self.be().add_assign(&mut a.parts[0], &mono)?;
        }
        Ok(())
    }

    /// `a + c` for a real constant `c` in every slot.
    ///
    /// # Errors
    /// As [`Self::add_const_complex`].
    pub fn add_const(&self, a: &Ciphertext<B>, c: f64) -> Result<Ciphertext<B>> {
        self.add_const_complex(a, Complex64::new(c, 0.0))
    }

    /// [`Self::add_const`] in place (no copy of `a`).
    ///
    /// # Errors
    /// As [`Self::add_const_complex_assign`].
    pub fn add_const_assign(&self, a: &mut Ciphertext<B>, c: f64) -> Result<()> {
        self.add_const_complex_assign(a, Complex64::new(c, 0.0))
    }

    // ----- multiplicative ---------------------------------------------------------------

    /// `a · pt` (no rescale): level of `a` (the plaintext's extra limbs are dropped),
    /// scale `a.scale · pt.scale`.
    ///
    /// # Errors
    /// [`CkksError::LevelTooLow`], [`CkksError::SlotsMismatch`].
    pub fn mul_plain(&self, a: &Ciphertext<B>, pt: &Plaintext<B>) -> Result<Ciphertext<B>> {
        let m = self.plain_at(a, pt)?;
        self.note(Op::CMult, 1);
        let parts = a
            .parts
            .iter()
            .map(|p| self.be().mul_new(p, &m))
            .collect::<he_math::Result<Vec<_>>>()?;
        Ok(Ciphertext {
            parts,
            level: a.level,
            scale: a.scale * pt.scale,
            slots: a.slots,
        })
    }

    /// Multiply-plaintext-then-add: `acc += a · pt` in place, without a temporary
    /// ciphertext (HETAL's masked products, whose terms are made one at a time; a sum
    /// whose terms all exist at once is cheaper with [`Self::mul_plain_sum`]). `acc` must
    /// be at `a`'s level and slot count, with `a`'s degree, and at the product's scale
    /// `a.scale · pt.scale` (relative tolerance as [`Self::add`]).
    ///
    /// # Errors
    /// [`CkksError::LevelMismatch`], [`CkksError::SlotsMismatch`],
    /// [`CkksError::ScaleMismatch`], [`CkksError::DegreeTooHigh`] (degrees differ),
    /// [`CkksError::LevelTooLow`] for a plaintext below `a`'s level.
    pub fn mul_plain_add_assign(
        &self,
        acc: &mut Ciphertext<B>,
        a: &Ciphertext<B>,
        pt: &Plaintext<B>,
    ) -> Result<()> {
        check_pair(acc, a.level, a.slots)?;
        check_scale(acc.scale, a.scale * pt.scale)?;
        if acc.parts.len() != a.parts.len() {
            return Err(CkksError::DegreeTooHigh(acc.degree().max(a.degree())));
        }
        let m = self.plain_at(a, pt)?;
        self.note(Op::CMult, 1);
        for (dst, src) in acc.parts.iter_mut().zip(&a.parts) {
            self.be().mul_add_assign(dst, src, &m)?;
        }
        Ok(())
    }

    /// `Σ_t a_t · pt_t` (no rescale) in one pass of the backend
    /// ([`he_math::Backend::dot_parts`]): each ciphertext part, plaintext and output read
    /// or written once, where [`Self::mul_plain_accumulate`] streams the accumulator once
    /// per term. The inner sums of BSGS linear transformations. Every `a_t` at one level,
    /// slot count and degree, every product at one scale; the result has them.
    ///
    /// # Errors
    /// [`CkksError::InvalidValue`] for no terms; [`CkksError::LevelMismatch`],
    /// [`CkksError::SlotsMismatch`], [`CkksError::DegreeTooHigh`] (degrees differ) or
    /// [`CkksError::ScaleMismatch`] between terms; [`CkksError::LevelTooLow`] for a
    /// plaintext below its ciphertext's level.
    pub fn mul_plain_sum(
        &self,
        terms: &[(&Ciphertext<B>, &Plaintext<B>)],
    ) -> Result<Ciphertext<B>> {
        let Some(&(a0, p0)) = terms.first() else {
            return Err(CkksError::InvalidValue(
                "a sum of plaintext products needs at least one term".into(),
            ));
        };
        let scale = a0.scale * p0.scale;
        let mut plains = Vec::with_capacity(terms.len());
        for &(a, pt) in terms {
            check_pair(a, a0.level, a0.slots)?;
            if a.parts.len() != a0.parts.len() {
                return Err(CkksError::DegreeTooHigh(a.degree().max(a0.degree())));
            }
            check_scale(scale, a.scale * pt.scale)?;
            plains.push(self.plain_at(a, pt)?);
        }
        self.note(Op::CMult, terms.len() as u64);
        let xs: Vec<&[B::Poly]> = terms.iter().map(|(a, _)| a.parts.as_slice()).collect();
        let ys: Vec<&B::Poly> = plains.iter().map(|m| m.as_ref()).collect();
        Ok(Ciphertext {
            parts: self.be().dot_parts(&xs, &ys)?,
            level: a0.level,
            scale,
            slots: a0.slots,
        })
    }

    /// `acc += a · pt` where `acc` starts empty: the first product becomes `acc`
    /// ([`Self::mul_plain`]), later ones are added in place
    /// ([`Self::mul_plain_add_assign`]). The accumulation of masked products and of BSGS
    /// diagonals kept as coefficients (encoded one at a time).
    ///
    /// # Errors
    /// As [`Self::mul_plain_add_assign`].
    pub fn mul_plain_accumulate(
        &self,
        acc: &mut Option<Ciphertext<B>>,
        a: &Ciphertext<B>,
        pt: &Plaintext<B>,
    ) -> Result<()> {
        match acc {
            None => *acc = Some(self.mul_plain(a, pt)?),
            Some(s) => self.mul_plain_add_assign(s, a, pt)?,
        }
        Ok(())
    }

    /// `acc ← acc + c·a` for a real constant `c` encoded as the integer
    /// `round(c · acc.scale / a.scale)`, so that the product lands at `acc`'s scale: the
    /// constant carries `log2(acc.scale / a.scale)` bits, so `acc` is meant to be at a
    /// product scale such as `Δ·q_{ℓ+1}`, rescaled afterwards. `a` may be at a higher
    /// level than `acc`: its extra limbs are not read (no copy, no level drop). `acc` may
    /// be of higher degree than `a` (an unrelinearized product: `a`'s parts are added to
    /// its first ones). The accumulation of the polynomial evaluator's leaves, and its
    /// `− T_{a−b}` before a product's rescale.
    ///
    /// # Errors
    /// [`CkksError::ScaleMismatch`] unless `acc.scale > a.scale`;
    /// [`CkksError::LevelMismatch`] if `a` is below `acc`'s level,
    /// [`CkksError::SlotsMismatch`], [`CkksError::DegreeTooHigh`] if `a`'s degree is
    /// higher than `acc`'s, [`CkksError::InvalidValue`] for a non-finite or too large
    /// scaled constant.
    pub fn mul_const_add_assign(
        &self,
        acc: &mut Ciphertext<B>,
        a: &Ciphertext<B>,
        c: f64,
    ) -> Result<()> {
        if a.level < acc.level {
            return Err(CkksError::LevelMismatch(acc.level, a.level));
        }
        if acc.scale.partial_cmp(&a.scale) != Some(std::cmp::Ordering::Greater) {
            return Err(CkksError::ScaleMismatch(acc.scale, a.scale));
        }
        if a.slots != acc.slots {
            return Err(CkksError::SlotsMismatch(acc.slots, a.slots));
        }
        if acc.parts.len() < a.parts.len() {
            return Err(CkksError::DegreeTooHigh(a.degree()));
        }
        let s = self.int_residues((c * acc.scale / a.scale).round(), acc.level)?;
        self.note(Op::ConstMult, 1);
        for (dst, src) in acc.parts.iter_mut().zip(&a.parts) {
            self.be().scalar_mul_add_assign(dst, src, &s)?;
        }
        Ok(())
    }

    /// `a · c` for a complex constant, the constant encoded as the integer
    /// `round(c·const_scale)` (no rescale; scale `a.scale · const_scale`). Multiplying
    /// by `i` costs one extra monomial product.
    ///
    /// # Errors
    /// [`CkksError::InvalidValue`] for a non-finite or too large scaled constant.
    pub fn mul_const_complex_with_scale(
        &self,
        a: &Ciphertext<B>,
        c: Complex64,
        const_scale: f64,
    ) -> Result<Ciphertext<B>> {
        self.mul_const_complex_with_scale_owned(a.clone(), c, const_scale)
    }

    /// [`Self::mul_const_complex_with_scale`] on an owned ciphertext, in place (no copy).
    ///
    /// # Errors
    /// As [`Self::mul_const_complex_with_scale`].
    pub fn mul_const_complex_with_scale_owned(
        &self,
        a: Ciphertext<B>,
        c: Complex64,
        const_scale: f64,
    ) -> Result<Ciphertext<B>> {
        let be = self.be();
        self.note(Op::ConstMult, 1);
        let re = self.int_residues((c.re * const_scale).round(), a.level)?;
        let im = if c.im != 0.0 {
            Some(self.int_residues((c.im * const_scale).round(), a.level)?)
        } else {
            None
        };
        let mono = match im {
            Some(_) => Some(self.ctx.monomial_half(a.level)?),
            None => None,
        };
        let mut out = a;
        for p in &mut out.parts {
            if let (Some(im), Some(mono)) = (&im, &mono) {
                let mut t = p.clone();
                be.scalar_mul_assign(&mut t, im)?;
                be.mul_assign(&mut t, mono)?;
                be.scalar_mul_assign(p, &re)?;
                be.add_assign(p, &t)?;
            } else {
                be.scalar_mul_assign(p, &re)?;
            }
        }
        out.scale *= const_scale;
        Ok(out)
    }

    /// `a · c` for a real constant at the canonical scale of `a`'s level (no rescale):
    /// after [`Self::rescale`] a ciphertext at `Δ_ℓ` lands at `Δ_{ℓ−1}`.
    ///
    /// # Errors
    /// As [`Self::mul_const_complex_with_scale`].
    pub fn mul_const(&self, a: &Ciphertext<B>, c: f64) -> Result<Ciphertext<B>> {
        let s = self.ctx.params().scale_at(a.level)?;
        self.mul_const_complex_with_scale(a, Complex64::new(c, 0.0), s)
    }

    /// `a · c` for a complex constant at the canonical scale of `a`'s level.
    ///
    /// # Errors
    /// As [`Self::mul_const_complex_with_scale`].
    pub fn mul_const_complex(&self, a: &Ciphertext<B>, c: Complex64) -> Result<Ciphertext<B>> {
        let s = self.ctx.params().scale_at(a.level)?;
        self.mul_const_complex_with_scale(a, c, s)
    }

    /// `a · k` for an integer `k` (exact, no scale change, no level consumed).
    ///
    /// # Errors
    /// As [`Self::mul_const_complex_with_scale`].
    pub fn mul_integer(&self, a: &Ciphertext<B>, k: i64) -> Result<Ciphertext<B>> {
        self.mul_integer_owned(a.clone(), k)
    }

    /// [`Self::mul_integer`] on an owned ciphertext, in place (no copy).
    ///
    /// # Errors
    /// As [`Self::mul_const_complex_with_scale`].
    pub fn mul_integer_owned(&self, a: Ciphertext<B>, k: i64) -> Result<Ciphertext<B>> {
        let scale = a.scale;
        let mut out =
            self.mul_const_complex_with_scale_owned(a, Complex64::new(k as f64, 0.0), 1.0)?;
        out.scale = scale;
        Ok(out)
    }

    /// `i · a`: multiplication by the monomial `X^{N/2}` (exact, no level consumed).
    ///
    /// # Errors
    /// Backend errors.
    pub fn mul_by_i(&self, a: &Ciphertext<B>) -> Result<Ciphertext<B>> {
        let mono = self.ctx.monomial_half(a.level)?;
        let mut out = a.clone();
        for p in &mut out.parts {
            self.be().mul_assign(p, &mono)?;
        }
        Ok(out)
    }

    /// `a · b` without relinearization: a degree-2 ciphertext `(a_0 b_0, a_0 b_1 + a_1 b_0,
    /// a_1 b_1)`, scale `a.scale · b.scale`.
    ///
    /// # Errors
    /// [`CkksError::LevelMismatch`], [`CkksError::SlotsMismatch`],
    /// [`CkksError::DegreeTooHigh`].
    pub fn mul(&self, a: &Ciphertext<B>, b: &Ciphertext<B>) -> Result<Ciphertext<B>> {
        let _span = tracing::trace_span!("mul", level = a.level).entered();
        check_pair(a, b.level, b.slots)?;
        check_degree1(a)?;
        check_degree1(b)?;
        self.note(Op::Mult, 1);
        let be = self.be();
        let d0 = be.mul_new(&a.parts[0], &b.parts[0])?;
        let mut d1 = be.mul_new(&a.parts[0], &b.parts[1])?;
        be.mul_add_assign(&mut d1, &a.parts[1], &b.parts[0])?;
        let d2 = be.mul_new(&a.parts[1], &b.parts[1])?;
        Ok(Ciphertext {
            parts: vec![d0, d1, d2],
            level: a.level,
            scale: a.scale * b.scale,
            slots: a.slots,
        })
    }

    /// Relinearizes a degree-2 ciphertext to degree 1 (key switching of `c_2` from `s²`).
    /// A degree-1 input is returned unchanged.
    ///
    /// # Errors
    /// [`CkksError::MissingRelinearizationKey`].
    pub fn relinearize(&self, a: &Ciphertext<B>) -> Result<Ciphertext<B>> {
        self.relinearize_owned(a.clone())
    }

    /// [`Self::relinearize`] consuming its input (no copy of the parts).
    ///
    /// # Errors
    /// As [`Self::relinearize`].
    pub fn relinearize_owned(&self, mut a: Ciphertext<B>) -> Result<Ciphertext<B>> {
        let _span = tracing::trace_span!("relinearize", level = a.level).entered();
        match a.parts.len() {
            2 => Ok(a),
            3 => {
                let key = &self.keys.relinearization_key()?.0;
                let [k0, k1] = self.key_switch(&a.parts[2], a.level, key)?;
                a.parts.truncate(2);
                self.be().add_assign(&mut a.parts[0], &k0)?;
                self.be().add_assign(&mut a.parts[1], &k1)?;
                Ok(a)
            }
            d => Err(CkksError::DegreeTooHigh(d - 1)),
        }
    }

    /// `a · b` followed by relinearization.
    ///
    /// # Errors
    /// As [`Self::mul`] and [`Self::relinearize`].
    pub fn mul_relin(&self, a: &Ciphertext<B>, b: &Ciphertext<B>) -> Result<Ciphertext<B>> {
        self.relinearize_owned(self.mul(a, b)?)
    }

    /// `a · b`, relinearized and rescaled: level `ℓ − 1`, scale `a.scale·b.scale/q_ℓ`.
    ///
    /// # Errors
    /// As [`Self::mul_relin`] and [`Self::rescale`].
    pub fn mul_relin_rescale(&self, a: &Ciphertext<B>, b: &Ciphertext<B>) -> Result<Ciphertext<B>> {
        self.relinearize_rescale_owned(self.mul(a, b)?)
    }

    /// Relinearization and rescale of a degree-2 ciphertext in one division: the key
    /// switch's `(u_0, u_1)` over `Q_ℓ ∪ P` are added to `P·(c_0, c_1)` and divided by
    /// `P·q_ℓ` together ([`Backend::mod_down_rescale`]), which saves the second NTT per
    /// limb that a ModDown followed by a rescale costs. Level `ℓ − 1`, scale
    /// `scale/q_ℓ`; a degree-1 input is only rescaled.
    ///
    /// # Errors
    /// [`CkksError::LevelTooLow`] at level 0; [`CkksError::MissingRelinearizationKey`];
    /// [`CkksError::DegreeTooHigh`] above degree 2.
    pub fn relinearize_rescale_owned(&self, mut a: Ciphertext<B>) -> Result<Ciphertext<B>> {
        let _span = tracing::trace_span!("relinearize_rescale", level = a.level).entered();
        match a.parts.len() {
            2 => return self.rescale_owned(a),
            3 => {}
            d => return Err(CkksError::DegreeTooHigh(d - 1)),
        }
        if a.level == 0 {
            return Err(CkksError::LevelTooLow {
                needed: 1,
                level: 0,
            });
        }
        let key = &self.keys.relinearization_key()?.0;
        key.check_level(a.level)?;
        let special = self.ctx.params().p_basis();
        let dec = self.decompose(&a.parts[2], a.level)?;
        let be = self.be();
        let [u0, u1] = key.inner_product(be, &dec.digits)?;
        self.note(Op::KeySwitch, 1);
        self.note(Op::Rescale, 1);
        drop(dec);
        let c1 = a.parts.swap_remove(1);
        let c0 = a.parts.swap_remove(0);
        a.parts = vec![
            be.mod_down_rescale(&u0, c0, &special)?,
            be.mod_down_rescale(&u1, c1, &special)?,
        ];
        a.scale /= self.ctx.params().q()[a.level] as f64;
        a.level -= 1;
        Ok(a)
    }

    /// Rescale: divides every part by `q_ℓ` with rounding; level `ℓ − 1`, scale
    /// `scale/q_ℓ`.
    ///
    /// # Errors
    /// [`CkksError::LevelTooLow`] at level 0.
    pub fn rescale(&self, a: &Ciphertext<B>) -> Result<Ciphertext<B>> {
        self.rescale_owned(a.clone())
    }

    /// [`Self::rescale`] consuming its input (no copy of the parts).
    ///
    /// # Errors
    /// As [`Self::rescale`].
    pub fn rescale_owned(&self, mut a: Ciphertext<B>) -> Result<Ciphertext<B>> {
        let _span = tracing::trace_span!("rescale", level = a.level).entered();
        if a.level == 0 {
            return Err(CkksError::LevelTooLow {
                needed: 1,
                level: 0,
            });
        }
        self.note(Op::Rescale, 1);
        for p in &mut a.parts {
            self.be().rescale(p)?;
        }
        a.scale /= self.ctx.params().q()[a.level] as f64;
        a.level -= 1;
        Ok(a)
    }

    /// Drops `a` to `level` (limbs discarded; the scale is kept).
    ///
    /// # Errors
    /// [`CkksError::LevelTooLow`] if `level > a.level`.
    pub fn drop_level(&self, a: &Ciphertext<B>, level: usize) -> Result<Ciphertext<B>> {
        if level > a.level {
            return Err(CkksError::LevelTooLow {
                needed: level,
                level: a.level,
            });
        }
        let basis = self.ctx.params().q_basis(level);
        let parts = a
            .parts
            .iter()
            .map(|p| self.be().select_limbs(p, &basis))
            .collect::<he_math::Result<Vec<_>>>()?;
        Ok(Ciphertext {
            parts,
            level,
            scale: a.scale,
            slots: a.slots,
        })
    }

    /// Brings `a` to `level < a.level` with scale exactly `scale` (typically the
    /// canonical [`crate::Parameters::scale_at`]`(level)`): drops to `level + 1`,
    /// multiplies by the integer `c = round(scale·q_{level+1}/a.scale)` and rescales. The
    /// rounding of `c` is a relative error `≤ 1/(2c)` on the message (about 2^-43 for
    /// canonical scales and 42-bit primes), below the encryption noise.
    ///
    /// # Errors
    /// [`CkksError::LevelTooLow`] unless `level < a.level`; [`CkksError::InvalidValue`]
    /// if `c` would be below 2^20 (too coarse) or does not fit.
    pub fn adjust(&self, a: &Ciphertext<B>, level: usize, scale: f64) -> Result<Ciphertext<B>> {
        self.adjust_scaled(a, level, scale, 1.0)
    }

    /// [`Self::adjust`] that also multiplies the message by the real constant `k`: the
    /// constant rides in the adjustment's integer `c = round(k·scale·q_{level+1}/a.scale)`
    /// (no level beyond the adjustment's), so the one rescale is the only error added
    /// after the scaling. A small `k` applied this way keeps the error `a` already
    /// carries relative to its message, where a constant applied before further
    /// rescales and key switches would leave their absolute noise on the small message
    /// (the last-scaling principle; he-linalg's DiagATB folds a step size here).
    ///
    /// # Errors
    /// As [`Self::adjust`]; [`CkksError::InvalidValue`] for a `k` that is not finite or
    /// so small that `|c| < 2^20`.
    pub fn adjust_scaled(
        &self,
        a: &Ciphertext<B>,
        level: usize,
        scale: f64,
        k: f64,
    ) -> Result<Ciphertext<B>> {
        if level >= a.level {
            return Err(CkksError::LevelTooLow {
                needed: level + 1,
                level: a.level,
            });
        }
        let d = self.drop_level(a, level + 1)?;
        let c = (k * scale * self.ctx.params().q()[level + 1] as f64 / a.scale).round();
        if !c.is_finite() || c.abs() < (1u64 << 20) as f64 {
            return Err(CkksError::InvalidValue(format!(
                "scale adjustment constant {c:e} is too coarse or not finite (scale ratio \
                 or factor {k:e} too small)"
            )));
        }
        let mut m = self.mul_const_complex_with_scale(&d, Complex64::new(c, 0.0), 1.0)?;
        m.scale = d.scale;
        let mut out = self.rescale(&m)?;
        out.scale = scale;
        Ok(out)
    }

    // ----- key switching ----------------------------------------------------------------

    /// Decomposes `c` (NTT form over `q_0 … q_level`): ModUp of each digit to
    /// `Q_ℓ ∪ P`.
    ///
    /// # Errors
    /// Backend errors.
    pub fn decompose(&self, c: &B::Poly, level: usize) -> Result<Decomposition<B>> {
        self.decompose_over(c, level, &self.ctx.params().p_basis())
    }

    /// [`Self::decompose`] with the special primes `special` (moduli-table indices).
    fn decompose_over(
        &self,
        c: &B::Poly,
        level: usize,
        special: &[usize],
    ) -> Result<Decomposition<B>> {
        let _span = tracing::trace_span!("decompose", level).entered();
        let params = self.ctx.params();
        let digits = (0..params.digits_at(level))
            .map(|j| self.be().mod_up(c, &params.digit_basis(j, level), special))
            .collect::<he_math::Result<Vec<_>>>()?;
        Ok(Decomposition { digits, level })
    }

    /// ModDown of both parts of a lazy key switch's output by the special primes
    /// `special`: `(u_0, u_1)` over `Q_ℓ ∪ special` → `(u_0, u_1)/special` over `Q_ℓ`.
    fn mod_down_pair(&self, [u0, u1]: [B::Poly; 2], special: &[usize]) -> Result<[B::Poly; 2]> {
        let be = self.be();
        Ok([
            be.mod_down_owned(u0, special)?,
            be.mod_down_owned(u1, special)?,
        ])
    }

    /// The inner product of decomposed digits (over `Q_ℓ ∪ P`) with a switching key,
    /// without the ModDown: `(u_0, u_1)` over `Q_ℓ ∪ P` with `u_0 + u_1·s ≈ P·c·s'`.
    /// Hoisted key switching sums such products and divides by `P` once (Bossuat et al.,
    /// Eurocrypt 2021, §4.3; Lattigo `KeySwitchHoistedLazy`).
    ///
    /// # Errors
    /// [`CkksError::KeyLevelTooLow`] when the key does not serve `level` (the digits'
    /// level); [`CkksError::ParameterMismatch`] for too few key digits.
    pub(crate) fn key_switch_lazy(
        &self,
        digits: &[B::Poly],
        level: usize,
        key: &SwitchingKey<B>,
    ) -> Result<[B::Poly; 2]> {
        key.check_level(level)?;
        let out = key.inner_product(self.be(), digits)?;
        self.note(Op::KeySwitch, 1);
        Ok(out)
    }

    /// [`Self::key_switch_lazy`] of the digits' images under `X ↦ X^e`: the lazy key
    /// switch of a hoisted rotation's baby step, `(u_0, u_1)` over `Q_ℓ ∪ P` with
    /// `u_0 + u_1·s ≈ P·σ_e(c)·σ_e(s)` for the digits of `c` and a Galois key of `e`. The
    /// backend reads the digits through the permutation
    /// ([`he_math::Backend::key_switch_inner_product_automorphism`]) instead of writing
    /// rotated copies (σ_e commutes with the decomposition).
    ///
    /// # Errors
    /// As [`Self::key_switch_lazy`]; an invalid Galois element.
    pub(crate) fn key_switch_lazy_automorphism(
        &self,
        digits: &[B::Poly],
        e: usize,
        level: usize,
        key: &SwitchingKey<B>,
    ) -> Result<[B::Poly; 2]> {
        key.check_level(level)?;
        let out = key.inner_product_automorphism(self.be(), digits, e)?;
        self.note(Op::KeySwitch, 1);
        Ok(out)
    }

    /// Hybrid key switching (Han–Ki, CT-RSA 2020, §3) of `c` (NTT form over
    /// `q_0 … q_level`) with `key` (from `s'` to `s`, over `q_0 … q_ℓ ∪ P` for a key
    /// level `ℓ ≥ level`): `(d_0, d_1)` over `q_0 … q_level` with `d_0 + d_1·s ≈ c·s'`
    /// (noise about `√N·σ·α`-digit/`P`).
    ///
    /// # Errors
    /// [`CkksError::KeyLevelTooLow`] for a key below `level`;
    /// [`CkksError::ParameterMismatch`] if the key has fewer digits than `level` needs;
    /// backend errors (basis or representation mismatch).
    pub fn key_switch(
        &self,
        c: &B::Poly,
        level: usize,
        key: &SwitchingKey<B>,
    ) -> Result<[B::Poly; 2]> {
        self.key_switch_over(c, level, key, &self.ctx.params().p_basis())
    }

    /// [`Self::key_switch`] with a key whose special basis is `special` (a subset of `P`,
    /// moduli-table indices), e.g. the encapsulation key over `q_0·p_0`
    /// ([`crate::Parameters::encapsulation_special_basis`]).
    ///
    /// # Errors
    /// As [`Self::key_switch`].
    pub fn key_switch_over(
        &self,
        c: &B::Poly,
        level: usize,
        key: &SwitchingKey<B>,
        special: &[usize],
    ) -> Result<[B::Poly; 2]> {
        let _span = tracing::trace_span!("key_switch", level).entered();
        let dec = self.decompose_over(c, level, special)?;
        self.mod_down_pair(self.key_switch_lazy(&dec.digits, level, key)?, special)
    }

    /// Applies the Galois automorphism `element` to `a` (key switching back to `s`).
    ///
    /// # Errors
    /// [`CkksError::MissingGaloisKey`], [`CkksError::DegreeTooHigh`].
    pub fn automorphism(
        &self,
        a: &Ciphertext<B>,
        element: usize,
        rotation: Option<i64>,
    ) -> Result<Ciphertext<B>> {
        let _span = tracing::trace_span!("automorphism", element, level = a.level).entered();
        check_degree1(a)?;
        if element == 1 {
            return Ok(a.clone());
        }
        let key = &self.keys.galois_key_at(element, rotation, a.level)?.key;
        self.note(
            if rotation.is_some() {
                Op::Rot
            } else {
                Op::Conj
            },
            1,
        );
        let be = self.be();
        let c1 = be.automorphism_new(&a.parts[1], element)?;
        let [k0, k1] = self.key_switch(&c1, a.level, key)?;
        // σ(c_1) is dead after the key switch: its buffer takes σ(c_0).
        let mut c0 = c1;
        be.automorphism(&a.parts[0], element, &mut c0)?;
        be.add_assign(&mut c0, &k0)?;
        Ok(Ciphertext {
            parts: vec![c0, k1],
            level: a.level,
            scale: a.scale,
            slots: a.slots,
        })
    }

    /// Rotates the slots left by `k` (negative: right): slot `j` of the result is slot
    /// `j + k mod slots` of `a`.
    ///
    /// # Errors
    /// [`CkksError::MissingGaloisKey`] if no key for `5^k mod 2N` was generated.
    pub fn rotate(&self, a: &Ciphertext<B>, k: i64) -> Result<Ciphertext<B>> {
        let _span = tracing::trace_span!("rotate", k, level = a.level).entered();
        let n = self.ctx.params().n();
        if k.rem_euclid(a.slots as i64) == 0 {
            return Ok(a.clone());
        }
        self.automorphism(a, galois::galois_element_for_rotation(k, n), Some(k))
    }

    /// The same ciphertext read with `slots` slots: no computation, the polynomial is
    /// unchanged (sparse packing as in Lattigo's `ckks` encoder: an `n`-slot message is
    /// a polynomial in `X^{N/(2n)}`, and its full-slot reading repeats with period `n`).
    /// To more slots this is always valid and the result holds the periodic extension;
    /// to fewer slots it is valid when the message repeats with period `slots` (for
    /// example `x + rotate(x, n)` of an `x` that is zero outside its first `n` slots):
    /// the caller guarantees it, or each slot read is the average of the slots it
    /// aliases.
    /// Rotations keep their Galois elements, so a sparse ciphertext rotates with the
    /// full-slot keys; bootstrapping needs a bootstrapper for that slot count.
    ///
    /// # Errors
    /// [`CkksError::InvalidSlots`] unless `slots` is a power of two `≤ N/2`.
    pub fn with_slots(&self, a: &Ciphertext<B>, slots: usize) -> Result<Ciphertext<B>> {
        let max = self.ctx.params().max_slots();
        if !slots.is_power_of_two() || slots > max {
            return Err(CkksError::InvalidSlots { slots, max });
        }
        let mut out = a.clone();
        out.slots = slots;
        Ok(out)
    }

    /// Complex conjugation of every slot.
    ///
    /// # Errors
    /// [`CkksError::MissingGaloisKey`] without the conjugation key.
    pub fn conjugate(&self, a: &Ciphertext<B>) -> Result<Ciphertext<B>> {
        let _span = tracing::trace_span!("conjugate", level = a.level).entered();
        let n = self.ctx.params().n();
        self.automorphism(a, galois::galois_element_conjugation(n), None)
    }

    /// Hoisted rotations: the rotations of `a` by each `k` in `rotations`, sharing one
    /// decomposition of `c_1` (one INTT + ModUp instead of one per rotation). Results are
    /// identical to [`Self::rotate`]'s up to the key-switching noise.
    ///
    /// # Errors
    /// As [`Self::rotate`].
    pub fn rotate_hoisted(
        &self,
        a: &Ciphertext<B>,
        rotations: &[i64],
    ) -> Result<Vec<Ciphertext<B>>> {
        let _span =
            tracing::trace_span!("rotate_hoisted", count = rotations.len(), level = a.level)
                .entered();
        check_degree1(a)?;
        let n = self.ctx.params().n();
        let be = self.be();
        // Look up every key first so a missing key fails before any work.
        let mut elements = Vec::with_capacity(rotations.len());
        for &k in rotations {
            let e = if k.rem_euclid(a.slots as i64) == 0 {
                1
            } else {
                galois::galois_element_for_rotation(k, n)
            };
            if e != 1 {
                self.keys.galois_key_at(e, Some(k), a.level)?;
            }
            elements.push(e);
        }
        if elements.iter().all(|&e| e == 1) {
            return Ok(vec![a.clone(); rotations.len()]);
        }
        let p_basis = self.ctx.params().p_basis();
        let dec = self.decompose(&a.parts[1], a.level)?;
        let mut out = Vec::with_capacity(rotations.len());
        for (&e, &k) in elements.iter().zip(rotations) {
            if e == 1 {
                out.push(a.clone());
                continue;
            }
            let key = &self.keys.galois_key(e, Some(k))?.key;
            self.note(Op::Rot, 1);
            let lazy = self.key_switch_lazy_automorphism(&dec.digits, e, a.level, key)?;
            let [k0, k1] = self.mod_down_pair(lazy, &p_basis)?;
            // k_0 is only added: σ(c_0) is written into a fresh buffer and k_0 added.
            let mut c0 = be.automorphism_new(&a.parts[0], e)?;
            be.add_assign(&mut c0, &k0)?;
            out.push(Ciphertext {
                parts: vec![c0, k1],
                level: a.level,
                scale: a.scale,
                slots: a.slots,
            });
        }
        Ok(out)
    }

    /// Rotate-and-sum: `Σ_{i < count} rotate(a, i·step)` for a power-of-two `count`, in
    /// `log2(count)` rotations (by `step, 2·step, 4·step, …`, all of whose keys are
    /// needed). With `step = 1, count = slots` every slot ends up holding the sum of all
    /// slots.
    ///
    /// # Errors
    /// [`CkksError::InvalidValue`] unless `count` is a power of two;
    /// [`CkksError::MissingGaloisKey`].
    pub fn rotate_and_sum(
        &self,
        a: &Ciphertext<B>,
        count: usize,
        step: i64,
    ) -> Result<Ciphertext<B>> {
        if !count.is_power_of_two() {
            return Err(CkksError::InvalidValue(format!(
                "rotate-and-sum count {count} is not a power of two"
            )));
        }
        let mut acc = a.clone();
        let mut shift = step;
        let mut c = 1;
        while c < count {
            let r = self.rotate(&acc, shift)?;
            self.add_assign(&mut acc, &r)?;
            shift *= 2;
            c *= 2;
        }
        Ok(acc)
    }
}
