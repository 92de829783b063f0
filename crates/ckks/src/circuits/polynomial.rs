//! Polynomial evaluation on ciphertexts: Chebyshev-basis (on an interval `[a, b]`) and
//! power-basis polynomials with real coefficients, evaluated by baby-step giant-step
//! (Paterson–Stockmeyer style) in the optimal depth, with exact scale management.
//!
//! # Algorithm
//! Following Bossuat–Mouchet–Troncoso-Pastoriza–Hubaux (Eurocrypt 2021, §5) and Lattigo
//! (`he/hefloat/polynomial_evaluator.go`): the powers `T_i` (Chebyshev, or `x^i`) are
//! computed by products (`T_{2i} = 2T_i² − 1`, `T_{2i+1} = 2T_{i+1}T_i − T_1`; for the
//! power basis `x^{i+j} = x^i x^j`), so `T_i` costs `⌈log2 i⌉` levels. The polynomial is
//! split recursively as `p = q·T_g + r` on a power of two `g ≤ deg p` (Chebyshev
//! division: `q_0 = c_g`, `q_k = 2c_{g+k}`, `r_i = c_i − c_{2g−i}`), and a leaf
//! `Σ_{i<n1} c_i T_i` (`n1 = 2^⌈m/2⌉` baby steps for a degree below `2^m`) is a sum of
//! constant multiplications followed by one rescale.
//!
//! Every sub-polynomial is produced at a *target level* fixed from the top: a node of
//! degree `d` gets `⌈log2(d+1)⌉` levels. A leaf is only used where each of its powers
//! sits at least one level above the target (the constant multiplication needs that
//! level); otherwise the node is split again, down to degree-1 leaves `c_0 + c_1·T_1`
//! where needed. Only the chain of leading quotients is that tight, so the extra
//! products stay few (about `log2 n1`), and the whole polynomial costs the optimum
//! `⌈log2(d+1)⌉` levels (degree 7 in 3, degree 60 in 6). Zero coefficients are skipped,
//! so odd or even polynomials use odd or even powers only: an even one of degree 60 takes
//! 14 products instead of 16 (`T_3` is still computed, as the step to `T_6 = 2T_3² − 1`;
//! Lattigo's `circuits/ckks/mod1` keeps only the even coefficients of the
//! bootstrapping's cosine for the same reason). Two ways with fewer products were
//! measured less precise in the bootstrapping's EvalMod, whose inputs cluster near
//! `x = 0`: `T_6 = 2T_4T_2 − T_2` (13 products, 0.1 bits) and `q(T_2(x))` with
//! `T_{2k} = T_k ∘ T_2` (12 products, 0.2 bits; near `x = 0` lies `T_2 = −1`, where the
//! `T_k(T_2)` are steepest): both feed `T_2`'s rounding, amplified most there, into
//! every power, where `T_3 = 2T_2T_1 − T_1` damps it by `T_1 ≈ 0`.
//!
//! # Scales
//! No power is ever brought to another level by a rescale of its own (each would round
//! it once more, and the powers are where rounding errors are amplified most). A product
//! of operands at different levels drops the higher one to the lower level (limbs
//! discarded: exact, the scale is kept), and its scale is whatever the product gives;
//! `T_{a−b}` in `T_{a+b} = 2T_aT_b − T_{a−b}` is subtracted before the rescale, with a
//! constant encoded at the product's scale. Sub-polynomials are asked for at an exact
//! target scale instead: for `q·T_g + r` at scale `S`, `q` is evaluated at
//! `S·q_{t+1}/scale(T_g)` so that the product lands on `S` (Bossuat et al., Eurocrypt
//! 2021, §5; Lattigo's `he/hefloat/polynomial_evaluator.go`), and leaf constants are
//! encoded at the scale that makes every term land on its target. The whole polynomial
//! lands exactly on the canonical scale `Δ_ℓ` of its level
//! ([`crate::Parameters::scale_at`]). The former evaluator brought every power to the
//! canonical scale of the level where it was used, one constant multiplication and one
//! rescale each time (docs/results/bootstrap.md compares the two).
//!
//! # Depth
//! [`Polynomial::depth`]: `⌈log2(d+1)⌉` for degree `d` on a canonical-scale input, plus
//! one for a Chebyshev interval other than `[−1, 1]` (the affine map `y = αx + β` needs a
//! constant multiplication). An input off its level's canonical scale costs one level
//! to bring it there, and the affine map is folded into that same level, so such an input
//! costs `⌈log2(d+1)⌉ + 1` with or without an interval. Callers that control the
//! preceding operation can fold the map there instead and use `[−1, 1]`.

use crate::ciphertext::Ciphertext;
use crate::error::{CkksError, Result};
use crate::evaluator::Evaluator;
use he_math::Backend;
use num_complex::Complex64;
use std::collections::BTreeMap;
use std::f64::consts::PI;

/// The basis a [`Polynomial`]'s coefficients refer to.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PolynomialBasis {
    /// `Σ c_i x^i`.
    Monomial,
    /// `Σ c_i T_i(y)` with `y = (2x − a − b)/(b − a)` mapping `[a, b]` onto `[−1, 1]`.
    Chebyshev {
        /// Left end of the interval.
        a: f64,
        /// Right end of the interval.
        b: f64,
    },
}

/// A real univariate polynomial in the monomial or a Chebyshev basis.
#[derive(Debug, Clone, PartialEq)]
pub struct Polynomial {
    basis: PolynomialBasis,
    coeffs: Vec<f64>,
}

/// The smallest scale a constant is encoded at when an input is brought to its canonical
/// scale (`2^20`, as [`Evaluator::adjust`]).
const MIN_CONST_SCALE: f64 = (1u64 << 20) as f64;

/// Coefficients with `|c| ≤ 2^-60 · max|c|` are treated as zero (skipped).
fn negligible(c: f64, max: f64) -> bool {
    c == 0.0 || c.abs() <= max * 2f64.powi(-60)
}

impl Polynomial {
    /// `Σ coeffs[i]·x^i`.
    ///
    /// # Errors
    /// [`CkksError::InvalidValue`] for an empty or non-finite coefficient vector.
    pub fn monomial(coeffs: Vec<f64>) -> Result<Self> {
        Self::new(PolynomialBasis::Monomial, coeffs)
    }

    /// `Σ coeffs[i]·T_i(y)`, `y` the affine image of `x ∈ [a, b]` in `[−1, 1]`.
    ///
    /// # Errors
    /// [`CkksError::InvalidValue`] for an empty or non-finite coefficient vector or
    /// `a ≥ b`.
    pub fn chebyshev(coeffs: Vec<f64>, a: f64, b: f64) -> Result<Self> {
        if !(a.is_finite() && b.is_finite() && a < b) {
            return Err(CkksError::InvalidValue(format!(
                "Chebyshev interval [{a}, {b}]"
            )));
        }
        Self::new(PolynomialBasis::Chebyshev { a, b }, coeffs)
    }

    fn new(basis: PolynomialBasis, mut coeffs: Vec<f64>) -> Result<Self> {
        if coeffs.is_empty() || coeffs.iter().any(|c| !c.is_finite()) {
            return Err(CkksError::InvalidValue(
                "polynomial coefficients must be finite and non-empty".into(),
            ));
        }
        while coeffs.len() > 1 && coeffs.last() == Some(&0.0) {
            coeffs.pop();
        }
        Ok(Self { basis, coeffs })
    }

    /// The Chebyshev interpolant of `f` of degree `degree` on `[a, b]` (interpolation at
    /// the `degree + 1` Chebyshev nodes of the first kind; near-minimax, error within a
    /// `O(log d)` factor of the best uniform approximation).
    ///
    /// # Errors
    /// As [`Self::chebyshev`]; [`CkksError::InvalidValue`] if `f` is not finite at a node.
    pub fn chebyshev_interpolant(
        f: impl Fn(f64) -> f64,
        a: f64,
        b: f64,
        degree: usize,
    ) -> Result<Self> {
        let n = degree + 1;
        let nodes: Vec<f64> = (0..n)
            .map(|j| (PI * (j as f64 + 0.5) / n as f64).cos())
            .collect();
        let values: Vec<f64> = nodes
            .iter()
            .map(|&y| f(0.5 * (b - a) * y + 0.5 * (a + b)))
            .collect();
        let coeffs = (0..n)
            .map(|k| {
                let s: f64 = (0..n)
                    .map(|j| values[j] * (PI * k as f64 * (j as f64 + 0.5) / n as f64).cos())
                    .sum();
                if k == 0 {
                    s / n as f64
                } else {
                    2.0 * s / n as f64
                }
            })
            .collect();
        Self::chebyshev(coeffs, a, b)
    }

    /// The basis.
    pub fn basis(&self) -> PolynomialBasis {
        self.basis
    }

    /// The coefficients (index = degree of the basis element).
    pub fn coeffs(&self) -> &[f64] {
        &self.coeffs
    }

    /// The degree (index of the last coefficient).
    pub fn degree(&self) -> usize {
        self.coeffs.len() - 1
    }

    /// Evaluation in float64 (Clenshaw for the Chebyshev basis, Horner otherwise): the
    /// plaintext reference of [`Evaluator::evaluate_polynomial`].
    pub fn eval(&self, x: f64) -> f64 {
        match self.basis {
            PolynomialBasis::Monomial => self.coeffs.iter().rev().fold(0.0, |acc, &c| acc * x + c),
            PolynomialBasis::Chebyshev { a, b } => {
                let y = (2.0 * x - a - b) / (b - a);
                let (mut b1, mut b2) = (0.0, 0.0);
                for &c in self.coeffs.iter().skip(1).rev() {
                    let t = 2.0 * y * b1 - b2 + c;
                    b2 = b1;
                    b1 = t;
                }
                y * b1 - b2 + self.coeffs[0]
            }
        }
    }

    fn is_chebyshev(&self) -> bool {
        matches!(self.basis, PolynomialBasis::Chebyshev { .. })
    }

    fn needs_affine_map(&self) -> bool {
        matches!(self.basis, PolynomialBasis::Chebyshev { a, b } if a != -1.0 || b != 1.0)
    }

    /// Levels consumed by [`Evaluator::evaluate_polynomial`] on an input at its level's
    /// canonical scale: `⌈log2(d+1)⌉` for the degree `d` of the last non-negligible
    /// coefficient (`0` for a constant), plus one for a Chebyshev interval other than
    /// `[−1, 1]` (see the module docs).
    pub fn depth(&self) -> usize {
        let deg = last_nonzero(&self.coeffs, self.max_abs());
        if deg == 0 {
            return 0;
        }
        optimal_depth(deg) + usize::from(self.needs_affine_map())
    }

    fn max_abs(&self) -> f64 {
        self.coeffs.iter().fold(0.0f64, |m, c| m.max(c.abs()))
    }
}

/// Depth of the power/Chebyshev element of index `i` (computed from `T_1` at depth 0).
fn power_depth(i: usize) -> usize {
    if i <= 1 {
        0
    } else {
        (usize::BITS - (i - 1).leading_zeros()) as usize
    }
}

/// The baby-step/giant-step split.
struct Plan {
    n1: usize,
}

impl Plan {
    fn new(degree: usize) -> Self {
        let l = optimal_depth(degree).div_ceil(2).max(1); // degree < 2^m, l = ⌈m/2⌉
        Self { n1: 1 << l }
    }

    /// Whether `Σ c_i T_i` (degree `deg`) can be a leaf produced `budget` levels below
    /// the input: fewer than `n1` terms, each power at least one level above the target.
    fn is_leaf(&self, c: &[f64], deg: usize, budget: usize, max: f64) -> bool {
        deg < self.n1
            && (1..=deg)
                .filter(|&i| !negligible(c[i], max))
                .all(|i| power_depth(i) < budget)
    }
}

/// `⌈log2(d+1)⌉`: the fewest levels in which a polynomial of degree `d` can be evaluated.
fn optimal_depth(deg: usize) -> usize {
    (usize::BITS - deg.leading_zeros()) as usize
}

/// The largest power of two `≤ deg` (`deg ≥ 1`).
fn giant_step(deg: usize) -> usize {
    1 << (usize::BITS - 1 - deg.leading_zeros())
}

fn last_nonzero(c: &[f64], max: f64) -> usize {
    (0..c.len())
        .rev()
        .find(|&i| !negligible(c[i], max))
        .unwrap_or(0)
}

/// `p = q·B_g + r` for the basis element `B_g` (`T_g` or `x^g`), `deg p < 2g`.
fn split(c: &[f64], g: usize, chebyshev: bool) -> (Vec<f64>, Vec<f64>) {
    let deg = c.len() - 1;
    let mut q = vec![0.0; deg + 1 - g];
    let mut r = c[..g].to_vec();
    if chebyshev {
        q[0] = c[g];
        for k in 1..q.len() {
            q[k] = 2.0 * c[g + k];
            r[g - k] -= c[g + k];
        }
    } else {
        q.copy_from_slice(&c[g..]);
    }
    (q, r)
}

/// Memoized powers (`T_i` or `x^i`) of one input ciphertext, `T_i` at level
/// `top − power_depth(i)` and at whatever scale its products gave it (about the
/// canonical one; never adjusted, so never rounded more than once per product).
struct Powers<'a, B: Backend> {
    ev: &'a Evaluator<B>,
    chebyshev: bool,
    top: usize,
    cache: BTreeMap<usize, Ciphertext<B>>,
}

impl<B: Backend> Powers<'_, B> {
    /// `T_i` (or `x^i`), computed on first use and cached; borrowed, not copied.
    fn get(&mut self, i: usize) -> Result<&Ciphertext<B>> {
        if !self.cache.contains_key(&i) {
            let c = self.compute(i)?;
            self.cache.insert(i, c);
        }
        Ok(&self.cache[&i])
    }

    /// `T_i = 2T_aT_b − T_{a−b}` (or `x^i = x^a x^b`): the operand above the other's
    /// level is dropped to it (limbs discarded: exact), `T_{a−b}` is subtracted before
    /// the rescale with its constant encoded at the product's scale (read in place, not
    /// brought to the product's level by a rescale of its own), and one fused
    /// relinearization + rescale rounds the result once.
    fn compute(&mut self, i: usize) -> Result<Ciphertext<B>> {
        let ev = self.ev;
        let (a, b) = if i.is_power_of_two() {
            (i / 2, i / 2)
        } else {
            let hi = i.next_power_of_two() / 2;
            if self.chebyshev {
                (i.div_ceil(2), i / 2)
            } else {
                (hi, i - hi)
            }
        };
        self.get(a)?;
        self.get(b)?;
        if self.chebyshev && a != b {
            self.get(a - b)?;
        }
        let (ta, tb) = (&self.cache[&a], &self.cache[&b]);
        let (lo, hi) = if ta.level <= tb.level {
            (ta, tb)
        } else {
            (tb, ta)
        };
        let mut prod = if hi.level == lo.level {
            ev.mul(lo, hi)?
        } else {
            ev.mul(lo, &ev.drop_level(hi, lo.level)?)?
        };
        if self.chebyshev && a != b {
            // 2(T_aT_b − ½T_{a−b}): the factor 2 after the rescale (exact).
            ev.mul_const_add_assign(&mut prod, &self.cache[&(a - b)], -0.5)?;
        }
        let mut out = ev.relinearize_rescale_owned(prod)?;
        debug_assert_eq!(out.level, self.top - power_depth(i));
        if self.chebyshev {
            out = ev.mul_integer_owned(out, 2)?;
            if a == b {
                ev.add_const_assign(&mut out, -1.0)?;
            }
        }
        Ok(out)
    }
}

impl<B: Backend> Evaluator<B> {
    /// Evaluates `p` on every slot of `ct` (any level and scale). The result is at level
    /// `ct.level − depth` and at that level's canonical scale, where `depth` is
    /// [`Polynomial::depth`] for an input at its level's canonical scale; an input off
    /// that scale costs one more level, shared with the affine map of an interval (see
    /// the module docs). The caller keeps the inputs inside the interval of a Chebyshev
    /// polynomial; outside it the approximation is meaningless.
    ///
    /// # Errors
    /// [`CkksError::LevelTooLow`] if `ct` has fewer levels than needed; errors of the
    /// underlying operations (missing relinearization key, …).
    pub fn evaluate_polynomial(&self, ct: &Ciphertext<B>, p: &Polynomial) -> Result<Ciphertext<B>> {
        self.evaluate_polynomial_impl(ct, p, None, None)
    }

    /// `w ⊙ p(x)` for real slot weights `w` (one per slot), at the depth of
    /// [`Self::evaluate_polynomial`]: the leaves' constants `c_i` become the plaintexts
    /// `c_i·w`, encoded at the scale each term needs, and the constant term the plaintext
    /// `c_0·w`, so the weights cost no level. Where `w` is zero the result is zero up to
    /// the encryption noise, whatever `x` holds there (a masked polynomial: a mask after
    /// the evaluation would cost one more level). The leaves of a degree-`d` polynomial
    /// encode about `d` plaintexts per call (nothing is cached).
    ///
    /// # Errors
    /// [`CkksError::SlotsMismatch`] unless `weights` has one value per slot of `ct`;
    /// [`CkksError::InvalidValue`] for a weight that is not finite; as
    /// [`Self::evaluate_polynomial`].
    pub fn evaluate_polynomial_weighted(
        &self,
        ct: &Ciphertext<B>,
        p: &Polynomial,
        weights: &[f64],
    ) -> Result<Ciphertext<B>> {
        if weights.len() != ct.slots {
            return Err(CkksError::SlotsMismatch(ct.slots, weights.len()));
        }
        if weights.iter().any(|w| !w.is_finite()) {
            return Err(CkksError::InvalidValue(
                "polynomial weights must be finite".into(),
            ));
        }
        self.evaluate_polynomial_impl(ct, p, None, Some(weights))
    }

    /// [`Self::evaluate_polynomial`] with the result at scale exactly `scale` instead of
    /// its level's canonical scale, at no extra level: the leaves' constants and the
    /// split quotients' target scales absorb the difference (Bossuat et al., Eurocrypt
    /// 2021, §5; Lattigo's polynomial evaluator takes a target scale the same way).
    /// Bootstrapping uses it to land EvalMod's output on a scale that carries a constant
    /// factor of the message.
    ///
    /// # Errors
    /// [`CkksError::InvalidValue`] unless `scale` is finite and positive; as
    /// [`Self::evaluate_polynomial`].
    pub fn evaluate_polynomial_to_scale(
        &self,
        ct: &Ciphertext<B>,
        p: &Polynomial,
        scale: f64,
    ) -> Result<Ciphertext<B>> {
        if !(scale.is_finite() && scale > 0.0) {
            return Err(CkksError::InvalidValue(format!(
                "target scale {scale} is not a positive finite number"
            )));
        }
        self.evaluate_polynomial_impl(ct, p, Some(scale), None)
    }

    fn evaluate_polynomial_impl(
        &self,
        ct: &Ciphertext<B>,
        p: &Polynomial,
        out_scale: Option<f64>,
        weights: Option<&[f64]>,
    ) -> Result<Ciphertext<B>> {
        let _span = tracing::debug_span!("evaluate_polynomial", degree = p.degree()).entered();
        let params = self.context().params().clone();
        let (alpha, beta) = match p.basis {
            PolynomialBasis::Chebyshev { a, b } if p.needs_affine_map() => {
                (2.0 / (b - a), -(a + b) / (b - a))
            }
            _ => (1.0, 0.0),
        };
        let canonical = ct.scale == params.scale_at(ct.level)?;
        let x = if canonical && alpha == 1.0 && beta == 0.0 {
            ct.clone()
        } else {
            // One level: y = αx + β at the canonical scale of the level below. An input
            // still at a product scale (about Δ²) is rescaled first, which costs one
            // more level: the constant would otherwise be encoded too coarsely.
            let mut x = ct.clone();
            let const_scale = |x: &Ciphertext<B>| -> Result<f64> {
                if x.level == 0 {
                    return Err(CkksError::LevelTooLow {
                        needed: 1,
                        level: 0,
                    });
                }
                Ok(params.scale_at(x.level - 1)? * params.q()[x.level] as f64 / x.scale)
            };
            if const_scale(&x)? < MIN_CONST_SCALE {
                x = self.rescale_owned(x)?;
            }
            // `const_scale` errors at level 0, so `x.level ≥ 1` below.
            let cs = const_scale(&x)?;
            let target = x.level - 1;
            if cs < MIN_CONST_SCALE {
                return Err(CkksError::InvalidValue(format!(
                    "input scale 2^{:.1} too large for level {}",
                    x.scale.log2(),
                    x.level
                )));
            }
            let product_scale = params.scale_at(target)? * params.q()[x.level] as f64;
            let mut y =
                self.mul_const_complex_with_scale_owned(x, Complex64::new(alpha, 0.0), cs)?;
            y.scale = product_scale;
            let mut y = self.rescale_owned(y)?;
            y.scale = params.scale_at(target)?;
            if beta != 0.0 {
                self.add_const_assign(&mut y, beta)?;
            }
            y
        };
        let max = p.max_abs();
        let deg = last_nonzero(&p.coeffs, max);
        if deg == 0 {
            // A constant: 0·x + c keeps the level; the scale is only a label of zero.
            let mut z = self.mul_integer(&x, 0)?;
            if let Some(s) = out_scale {
                z.scale = s;
            }
            return match weights {
                None => self.add_const(&z, p.coeffs[0]),
                Some(w) => self.add_weighted_const(z, p.coeffs[0], w),
            };
        }
        let depth = optimal_depth(deg);
        if depth > x.level {
            return Err(CkksError::LevelTooLow {
                needed: depth,
                level: x.level,
            });
        }
        let top = x.level;
        let plan = Plan::new(deg);
        let mut powers = Powers {
            ev: self,
            chebyshev: p.is_chebyshev(),
            top,
            cache: BTreeMap::from([(1, x)]),
        };
        let target = top - depth;
        let scale = match out_scale {
            Some(s) => s,
            None => params.scale_at(target)?,
        };
        self.eval_rec(
            &mut powers,
            &plan,
            &p.coeffs[..=deg],
            (target, scale),
            max,
            weights,
        )
    }

    /// `out + c·w` (weights `w`, one per slot), the plaintext encoded at `out`'s level
    /// and scale.
    fn add_weighted_const(&self, out: Ciphertext<B>, c: f64, w: &[f64]) -> Result<Ciphertext<B>> {
        let v: Vec<f64> = w.iter().map(|x| c * x).collect();
        let pt = self.context().encode(&v, out.level, out.scale)?;
        self.add_plain(&out, &pt)
    }

    /// `Σ c_i T_i` at level `target` and scale exactly `scale`; every power it needs sits
    /// at or above `target + ⌈log2(deg+1)⌉` (the caller's budget). A split
    /// `q·T_g + r` asks for `q` at the scale that makes its product with `T_g` (dropped to
    /// `target + 1`, exact) land on `scale` after the rescale, as Lattigo's evaluator and
    /// Bossuat et al. (Eurocrypt 2021, §5) do, so no power is ever re-scaled on its own.
    fn eval_rec(
        &self,
        pw: &mut Powers<'_, B>,
        plan: &Plan,
        c: &[f64],
        (target, scale): (usize, f64),
        max: f64,
        weights: Option<&[f64]>,
    ) -> Result<Ciphertext<B>> {
        let q_next = self.context().params().q()[target + 1] as f64;
        let deg = last_nonzero(c, max);
        if deg == 0 || plan.is_leaf(c, deg, pw.top - target, max) {
            // Leaf: Σ c_i T_i with every term at product scale `scale·q_{t+1}`.
            let product_scale = scale * q_next;
            let mut acc: Option<Ciphertext<B>> = None;
            if deg > 0 {
                for (i, &ci) in c.iter().enumerate().take(deg + 1).skip(1) {
                    if negligible(ci, max) {
                        continue;
                    }
                    let t = pw.get(i)?;
                    if let Some(w) = weights {
                        // c_i·w at the scale that lands the term on `product_scale`.
                        let t = self.drop_level(t, target + 1)?;
                        let v: Vec<f64> = w.iter().map(|x| ci * x).collect();
                        let pt = self
                            .context()
                            .encode(&v, target + 1, product_scale / t.scale)?;
                        match &mut acc {
                            None => {
                                let mut term = self.mul_plain(&t, &pt)?;
                                term.scale = product_scale;
                                acc = Some(term);
                            }
                            Some(a) => self.mul_plain_add_assign(a, &t, &pt)?,
                        }
                        continue;
                    }
                    match &mut acc {
                        None => {
                            let t = self.drop_level(t, target + 1)?;
                            let const_scale = product_scale / t.scale;
                            let mut term = self.mul_const_complex_with_scale_owned(
                                t,
                                Complex64::new(ci, 0.0),
                                const_scale,
                            )?;
                            term.scale = product_scale;
                            acc = Some(term);
                        }
                        // Later terms: read T_i's limbs in place (no level-dropped copy).
                        Some(a) => self.mul_const_add_assign(a, t, ci)?,
                    }
                }
            }
            let mut out = match acc {
                Some(a) => self.rescale_owned(a)?,
                None => {
                    let t = self.drop_level(pw.get(1)?, target)?;
                    self.mul_integer(&t, 0)?
                }
            };
            out.scale = scale;
            if !negligible(c[0], max) {
                match weights {
                    None => self.add_const_assign(&mut out, c[0])?,
                    Some(w) => out = self.add_weighted_const(out, c[0], w)?,
                }
            }
            return Ok(out);
        }
        let g = giant_step(deg);
        let (q, r) = split(&c[..=deg], g, pw.chebyshev);
        let g_scale = pw.get(g)?.scale;
        let qc = self.eval_rec(
            pw,
            plan,
            &q,
            (target + 1, scale * q_next / g_scale),
            max,
            weights,
        )?;
        let tg = &pw.cache[&g];
        let prod = if tg.level == target + 1 {
            self.mul(&qc, tg)?
        } else {
            self.mul(&qc, &self.drop_level(tg, target + 1)?)?
        };
        let mut out = self.relinearize_rescale_owned(prod)?;
        out.scale = scale;
        let rc = self.eval_rec(pw, plan, &r, (target, scale), max, weights)?;
        self.add_assign(&mut out, &rc)?;
        Ok(out)
    }
}
