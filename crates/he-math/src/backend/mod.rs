//! The [`Backend`] trait: the boundary between the CKKS scheme and the hardware.
//!
//! A backend owns where RNS polynomials live (its associated type [`Backend::Poly`]: host
//! memory for the CPU backends, device memory for a GPU backend) and runs the batched,
//! limb-parallel polynomial operations the scheme needs. The scheme only ever holds
//! `B::Poly` handles and calls these methods, so a GPU backend keeps ciphertexts, keys and
//! temporaries resident on the device between operations; data crosses the boundary only
//! through [`Backend::upload`] and [`Backend::download`].
//!
//! # Contract
//! - A polynomial has a *basis*: strictly increasing indices into the backend's
//!   [`RingContext`] moduli table, one limb per index, and a [`Representation`].
//! - Residues are always fully reduced (`< q`), in and out.
//! - Binary operations require equal bases and representations and return
//!   [`MathError::BasisMismatch`] / [`MathError::ReprMismatch`] otherwise; no operation
//!   panics on bad input.
//! - NTT-domain data is bit-identical across backends (all share the context's ψ).
//! - Results of every implementation are bit-identical to [`ReferenceBackend`]; the
//!   [`crate::conformance`] suite checks this and the mathematical ground truth.

mod host;

pub use host::{
    CpuBackend, HostBackend, LimbKernels, ReferenceBackend, ScalarKernels, SimdKernels,
};

use crate::error::MathError;
use crate::error::Result;
use crate::poly::{Representation, RnsPoly};
use crate::ring::RingContext;
use std::sync::Arc;

/// Batched RNS polynomial arithmetic on some hardware. See the module docs for the contract.
pub trait Backend: Send + Sync {
    /// A polynomial resident in this backend's memory.
    type Poly: Clone + Send + Sync + std::fmt::Debug;

    /// Short name of the backend (`"reference"`, `"cpu-simd"`, `"cuda"`).
    fn name(&self) -> &'static str;

    /// The ring: degree, moduli table, NTT roots.
    fn context(&self) -> &Arc<RingContext>;

    // ----- memory ---------------------------------------------------------------------

    /// A zero polynomial over `basis`.
    ///
    /// # Errors
    /// [`MathError::BasisMismatch`] / [`MathError::ModulusIndexOutOfRange`] for a bad basis.
    fn zero(&self, basis: &[usize], repr: Representation) -> Result<Self::Poly>;

    /// Moves a host polynomial into the backend, validating it first (degree, basis,
    /// every residue below its modulus).
    ///
    /// # Errors
    /// As [`RnsPoly::validate`].
    fn upload(&self, host: &RnsPoly) -> Result<Self::Poly>;

    /// [`Self::upload`] of a polynomial the caller no longer needs: host backends take
    /// its memory instead of copying it (the default copies). Not for secrets, whose host
    /// copy the caller must wipe: on an error the polynomial is dropped as it is.
    ///
    /// # Errors
    /// As [`Self::upload`].
    fn upload_owned(&self, host: RnsPoly) -> Result<Self::Poly> {
        self.upload(&host)
    }

    /// Copies a polynomial back to host memory.
    ///
    /// # Errors
    /// Device errors (none for host backends).
    fn download(&self, p: &Self::Poly) -> Result<RnsPoly>;

    /// Overwrites every residue of `p` with zero in a way the compiler cannot elide
    /// (for secret-key material on drop; see [`zeroize`]).
    fn zeroize(&self, p: &mut Self::Poly);

    /// The basis of a polynomial.
    fn basis<'a>(&self, p: &'a Self::Poly) -> &'a [usize];

    /// The representation of a polynomial.
    fn repr(&self, p: &Self::Poly) -> Representation;

    /// A copy holding only the limbs listed in `keep` (a subset of the basis): dropping
    /// levels, or extracting a key-switching digit.
    ///
    /// # Errors
    /// [`MathError::BasisMismatch`] if `keep` is not a subset of the basis.
    fn select_limbs(&self, p: &Self::Poly, keep: &[usize]) -> Result<Self::Poly>;

    // ----- transforms -----------------------------------------------------------------

    /// Coefficient → NTT representation, all limbs.
    ///
    /// # Errors
    /// [`MathError::ReprMismatch`] if already in NTT representation.
    fn forward_ntt(&self, p: &mut Self::Poly) -> Result<()>;

    /// NTT → coefficient representation, all limbs.
    ///
    /// # Errors
    /// [`MathError::ReprMismatch`] if already in coefficient representation.
    fn inverse_ntt(&self, p: &mut Self::Poly) -> Result<()>;

    // ----- pointwise, limb-wise mod q_i ----------------------------------------------------

    /// `a ← a + b`.
    ///
    /// # Errors
    /// Basis or representation mismatch.
    fn add_assign(&self, a: &mut Self::Poly, b: &Self::Poly) -> Result<()>;

    /// `a ← a − b`.
    ///
    /// # Errors
    /// Basis or representation mismatch.
    fn sub_assign(&self, a: &mut Self::Poly, b: &Self::Poly) -> Result<()>;

    /// `a ← −a`.
    ///
    /// # Errors
    /// None for host backends.
    fn neg_assign(&self, a: &mut Self::Poly) -> Result<()>;

    /// `a ← a ⊙ b` (polynomial product; both in NTT representation).
    ///
    /// # Errors
    /// Basis mismatch, or [`MathError::ReprMismatch`] unless both are in NTT form.
    fn mul_assign(&self, a: &mut Self::Poly, b: &Self::Poly) -> Result<()>;

    /// `a ⊙ b` in a new polynomial: [`Self::mul_assign`] on a copy of `a`. The default
    /// clones `a` first; a backend may write each limb of the product directly (the host
    /// backend copies and multiplies limb by limb, in cache).
    ///
    /// # Errors
    /// As [`Self::mul_assign`].
    fn mul_new(&self, a: &Self::Poly, b: &Self::Poly) -> Result<Self::Poly> {
        let mut out = a.clone();
        self.mul_assign(&mut out, b)?;
        Ok(out)
    }

    /// `acc ← acc + a ⊙ b` (all in NTT representation).
    ///
    /// # Errors
    /// As [`Self::mul_assign`].
    fn mul_add_assign(&self, acc: &mut Self::Poly, a: &Self::Poly, b: &Self::Poly) -> Result<()>;

    /// Sums of products sharing their right factors: for `T ≥ 1` groups `xs[t]` of `P`
    /// polynomials each (a ciphertext's parts) and `T` polynomials `ys[t]` (plaintexts),
    /// the `P` polynomials `out_p = Σ_t xs[t][p] ⊙ ys[t]`, all in NTT representation over
    /// one basis: the inner sums of baby-step giant-step linear transformations (Bossuat
    /// et al., Eurocrypt 2021, §4). The default is one [`Self::mul_new`] and `T − 1`
    /// [`Self::mul_add_assign`] per part, which streams every accumulator `T` times; a
    /// backend may read each operand once instead (the host backend: block by block,
    /// with one lazy reduction per output word).
    ///
    /// # Errors
    /// [`MathError::LengthMismatch`] if `xs` is empty, `ys` has another length or the
    /// groups differ in size; basis and representation errors as [`Self::mul_assign`].
    fn dot_parts(&self, xs: &[&[Self::Poly]], ys: &[&Self::Poly]) -> Result<Vec<Self::Poly>> {
        let parts = check_dot_parts(xs, ys)?;
        (0..parts)
            .map(|p| {
                let mut acc = self.mul_new(&xs[0][p], ys[0])?;
                for (g, y) in xs.iter().zip(ys).skip(1) {
                    self.mul_add_assign(&mut acc, &g[p], y)?;
                }
                Ok(acc)
            })
            .collect()
    }

    /// The NTT form of a polynomial in `X^r` (`r` = `run`, a power of two dividing `N`),
    /// kept with one word per run: in this crate's bit-reversed NTT order the evaluations
    /// of `m(X^r)` at `ψ^(2·brev(i)+1)` repeat in aligned runs of `r` adjacent words
    /// (the points of one run differ by `r`-th roots of unity, which `X^r` maps to one
    /// point). A plaintext encoded on `n` slots is such a polynomial with
    /// `r = N/(2n)`, so sparse-slot linear transformations keep their diagonals in
    /// `1/r` of the memory. The result has `N/r` words per limb: it is accepted only by
    /// [`Self::dot_parts_runs`] and [`Self::expand_runs`] (other operations refuse or
    /// misread it). `run = 1` returns a copy.
    ///
    /// # Errors
    /// [`MathError::ReprMismatch`] unless `a` is in NTT form;
    /// [`MathError::InvalidArgument`] unless `run` is a power of two dividing `N`, or if
    /// some run of `a` holds different words (`a` is not a polynomial in `X^r`).
    fn compress_runs(&self, a: &Self::Poly, run: usize) -> Result<Self::Poly>;

    /// The inverse of [`Self::compress_runs`]: each word repeated `run` times.
    ///
    /// # Errors
    /// [`MathError::InvalidArgument`] unless `run` is a power of two dividing `N` and `a`
    /// has `N/run` words per limb.
    fn expand_runs(&self, a: &Self::Poly, run: usize) -> Result<Self::Poly>;

    /// [`Self::dot_parts`] with every `ys[t]` compressed by [`Self::compress_runs`] with
    /// `run` (and `xs` full): the sparse-slot diagonals of a linear transformation read
    /// from `1/run` of the memory. The default expands each `ys[t]` and calls
    /// [`Self::dot_parts`]; the host backend expands block by block in cache.
    ///
    /// # Errors
    /// As [`Self::dot_parts`]; [`MathError::InvalidArgument`] for a `ys[t]` not
    /// compressed by `run`.
    fn dot_parts_runs(
        &self,
        xs: &[&[Self::Poly]],
        ys: &[&Self::Poly],
        run: usize,
    ) -> Result<Vec<Self::Poly>> {
        if run == 1 {
            return self.dot_parts(xs, ys);
        }
        let full = ys
            .iter()
            .map(|y| self.expand_runs(y, run))
            .collect::<Result<Vec<_>>>()?;
        let refs: Vec<&Self::Poly> = full.iter().collect();
        self.dot_parts(xs, &refs)
    }

    /// `a ← a · s_i` on limb `i`, one scalar per limb (`s_i < q_i`), any representation.
    ///
    /// # Errors
    /// [`MathError::LengthMismatch`] or [`MathError::ResidueOutOfRange`].
    fn scalar_mul_assign(&self, a: &mut Self::Poly, scalars: &[u64]) -> Result<()>;

    /// `acc ← acc + a · s_j` limb by limb for one constant per limb of `acc`
    /// (`scalars[j] < q_j`). `a` may have more limbs than `acc` (a ciphertext part at a
    /// higher level, read without dropping its extra limbs): only the limbs of `acc`'s
    /// moduli are read. `a` may also lack moduli of `acc` whose scalar is zero (the
    /// term is zero there): `acc` over `Q ∪ P` plus `P·a` for `a` over `Q` takes
    /// `P mod q_i` on `Q` and zeros on `P`, as double-hoisted linear transformations
    /// need. Same representation for both.
    ///
    /// # Errors
    /// [`MathError::LengthMismatch`] / [`MathError::ResidueOutOfRange`] for bad scalars,
    /// [`MathError::ReprMismatch`], [`MathError::BasisMismatch`] if a modulus of `acc`
    /// with a non-zero scalar is not in `a`'s basis.
    fn scalar_mul_add_assign(
        &self,
        acc: &mut Self::Poly,
        a: &Self::Poly,
        scalars: &[u64],
    ) -> Result<()>;

    /// `a ← a + s` for the constant polynomial `s` given by its residues `s_i < q_i`
    /// (coefficient form: added to `a_0`; NTT form: added to every evaluation).
    ///
    /// # Errors
    /// [`MathError::LengthMismatch`] or [`MathError::ResidueOutOfRange`].
    fn scalar_add_assign(&self, a: &mut Self::Poly, scalars: &[u64]) -> Result<()>;

    /// `out ← σ_k(a)`: the Galois automorphism `X ↦ X^k`, either representation.
    ///
    /// # Errors
    /// [`MathError::InvalidGaloisElement`], or basis/representation mismatch with `out`.
    fn automorphism(
        &self,
        a: &Self::Poly,
        galois_element: usize,
        out: &mut Self::Poly,
    ) -> Result<()>;

    /// `σ_k(a)` in a new polynomial over `a`'s basis and representation:
    /// [`Self::automorphism`] into a fresh output. The default allocates a zero
    /// polynomial first; a backend may instead skip zeroing memory that the automorphism
    /// overwrites anyway (the host backend does).
    ///
    /// # Errors
    /// As [`Self::automorphism`].
    fn automorphism_new(&self, a: &Self::Poly, galois_element: usize) -> Result<Self::Poly> {
        let mut out = self.zero(self.basis(a), self.repr(a))?;
        self.automorphism(a, galois_element, &mut out)?;
        Ok(out)
    }

    // ----- RNS ---------------------------------------------------------------------------

    /// Fast basis conversion ([`crate::basis_conv`]) of a coefficient-form polynomial over
    /// basis `B` to the disjoint basis `to`: result `≡ x + u·B`, `0 ≤ u < |B|`,
    /// coefficient form.
    ///
    /// # Errors
    /// [`MathError::ReprMismatch`] in NTT form, or a basis error.
    fn basis_convert(&self, a: &Self::Poly, to: &[usize]) -> Result<Self::Poly>;

    /// Rescale: divide by the last modulus of the basis with rounding,
    /// `a ← round(a / q_last)` over the basis without its last limb. Either representation
    /// (kept).
    ///
    /// # Errors
    /// [`MathError::BasisMismatch`] if only one limb is left.
    fn rescale(&self, a: &mut Self::Poly) -> Result<()>;

    /// ModUp of hybrid key switching: takes the limbs `digit` (a subset of the basis of the
    /// NTT-form `a`) as the digit value `[a]_D ∈ [0, D)`, and extends it to the whole basis
    /// of `a` plus the special moduli `special`: result `≡ [a]_D + u·D`, `0 ≤ u < |D|`, NTT
    /// form over `basis(a) ∪ special`.
    ///
    /// # Errors
    /// Representation or basis errors (digit not in basis, special moduli overlapping).
    fn mod_up(&self, a: &Self::Poly, digit: &[usize], special: &[usize]) -> Result<Self::Poly>;

    /// ModDown of hybrid key switching: for NTT-form `a` over `Q ∪ P` (`P = special`),
    /// returns `(a − [a]_P) · P^{-1}` with `[a]_P` the centred residue in `(−P/2, P/2]`
    /// (fast conversion with the Halevi–Polyakov–Shoup correction), i.e. `a/P` rounded to
    /// the nearest integer, NTT form over `Q`.
    ///
    /// # Errors
    /// Representation or basis errors (`special` not a proper suffix-set of the basis).
    fn mod_down(&self, a: &Self::Poly, special: &[usize]) -> Result<Self::Poly>;

    /// [`Self::mod_down`] consuming `a`: a backend may reuse `a`'s memory for the output
    /// (the host backend drops the special limbs in place when they end the basis,
    /// instead of copying the other limbs). The default calls [`Self::mod_down`].
    ///
    /// # Errors
    /// As [`Self::mod_down`].
    fn mod_down_owned(&self, a: Self::Poly, special: &[usize]) -> Result<Self::Poly> {
        self.mod_down(&a, special)
    }

    /// ModDown fused with a rescale, for relinearization followed by rescaling: for `a`
    /// over `Q_ℓ ∪ P` (`P = special`) and `b` over `Q_ℓ = {q_0 … q_ℓ}` (NTT form both),
    /// returns `(a + P·b)/(P·q_ℓ)` rounded to the nearest integer (one exact centred
    /// division, as [`Self::mod_down`]) over `Q_{ℓ−1}`, in place of `b`'s buffer. Equals
    /// the rescale of `b + ModDown(a)` up to one rounding, with one NTT per output limb
    /// instead of two.
    ///
    /// # Errors
    /// Representation errors; [`MathError::BasisMismatch`] unless `a`'s basis is `b`'s
    /// and `special` together, `b` has at least two limbs and `special` is non-empty.
    fn mod_down_rescale(
        &self,
        a: &Self::Poly,
        b: Self::Poly,
        special: &[usize],
    ) -> Result<Self::Poly>;

    /// ModRaise of CKKS bootstrapping (Cheon–Han–Kim–Kim–Song, Eurocrypt 2018, §3): for
    /// `a` over one modulus `q_i` (basis `[i]`, NTT form), the centred lift of its
    /// coefficients (each taken in `(−q_i/2, q_i/2]`) onto `target` (a basis containing
    /// `i`), NTT form. Stays in the backend's memory (no host round trip).
    ///
    /// # Errors
    /// [`MathError::ReprMismatch`] unless `a` is in NTT form; [`MathError::BasisMismatch`]
    /// unless `a` has exactly one limb and `target` is a valid basis containing it.
    fn mod_raise(&self, a: &Self::Poly, target: &[usize]) -> Result<Self::Poly>;

    /// Key-switching inner product `(Σ_j d_j ⊙ b_j, Σ_j d_j ⊙ a_j)` of ModUp digits with
    /// a switching key's parts: `key_b` stored, `key_a` stored or expanded from its seed
    /// on use ([`UniformParts`]). Digits share one basis; each stored key polynomial's
    /// basis must contain it (a key made for level `ℓ` serves digits of any level
    /// `≤ ℓ`). All NTT form; result over the digits' basis.
    ///
    /// # Errors
    /// [`MathError::LengthMismatch`] if the counts differ, basis/representation errors.
    fn key_switch_inner_product(
        &self,
        digits: &[Self::Poly],
        key_b: &[Self::Poly],
        key_a: UniformParts<'_, Self::Poly>,
    ) -> Result<[Self::Poly; 2]>;

    /// [`Self::key_switch_inner_product`] of the digits' images under the Galois
    /// automorphism `X ↦ X^k` (NTT form): `(Σ_j σ_k(d_j) ⊙ b_j, Σ_j σ_k(d_j) ⊙ a_j)`, the
    /// inner product of a hoisted rotation's baby step (Bossuat et al., Eurocrypt 2021,
    /// §4; σ_k commutes with the digit decomposition). This default applies
    /// [`Self::automorphism_new`] to each digit first; a backend may permute the digits'
    /// words as it reads them instead, without writing the rotated digits out.
    ///
    /// # Errors
    /// As [`Self::key_switch_inner_product`];
    /// [`MathError::InvalidGaloisElement`] for an invalid `k`.
    fn key_switch_inner_product_automorphism(
        &self,
        digits: &[Self::Poly],
        k: usize,
        key_b: &[Self::Poly],
        key_a: UniformParts<'_, Self::Poly>,
    ) -> Result<[Self::Poly; 2]> {
        let rotated = digits
            .iter()
            .map(|d| self.automorphism_new(d, k))
            .collect::<Result<Vec<_>>>()?;
        self.key_switch_inner_product(&rotated, key_b, key_a)
    }
}

/// The uniform parts `a_j` of a switching key, as [`Backend::key_switch_inner_product`]
/// reads them.
#[derive(Debug, Clone, Copy)]
pub enum UniformParts<'a, P> {
    /// One stored polynomial per digit (NTT form).
    Stored(&'a [P]),
    /// Expanded when used: digit `j`'s residues modulo the prime of moduli-table index
    /// `i` are the stream `(j, i)` of [`crate::expand::SeedExpander`] for this public
    /// seed, taken as NTT-form values (uniform in either form).
    Seeded(&'a [u8; 32]),
}

/// Shape checks of [`Backend::dot_parts`]: `T ≥ 1` groups of one size `P ≥ 1`, as many
/// right factors; returns `P`.
///
/// # Errors
/// [`MathError::LengthMismatch`] otherwise.
pub(crate) fn check_dot_parts<P>(xs: &[&[P]], ys: &[&P]) -> Result<usize> {
    let Some(first) = xs.first() else {
        return Err(MathError::LengthMismatch {
            expected: 1,
            got: 0,
        });
    };
    if ys.len() != xs.len() {
        return Err(MathError::LengthMismatch {
            expected: xs.len(),
            got: ys.len(),
        });
    }
    let parts = first.len();
    if let Some(g) = xs.iter().find(|g| g.len() != parts || g.is_empty()) {
        return Err(MathError::LengthMismatch {
            expected: parts.max(1),
            got: g.len(),
        });
    }
    Ok(parts)
}
