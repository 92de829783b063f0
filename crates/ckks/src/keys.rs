//! Key material and its generation, split by who holds it:
//!
//! - the **client** keeps the [`SecretKey`] (zeroized on drop, never printed) and uses it
//!   to encrypt and decrypt;
//! - the **server** gets an [`EvaluationKeySet`] (relinearization key and the Galois keys
//!   asked for) and optionally the [`PublicKey`]; none of these can decrypt, and the
//!   [`crate::Evaluator`] is built from them alone.
//!
//! Switching keys follow hybrid key switching (Han–Ki, CT-RSA 2020, §3; Lattigo
//! `rlwe/keygenerator.go`): for digit `j` (primes `D_j` of `Q`) the key is
//! `(b_j, a_j)` over `QP` with `b_j = −a_j·s + e_j + P·Q̂_j·s'`, where
//! `Q̂_j = (Q/D_j)·[(Q/D_j)^{-1}]_{D_j}` and `s'` is the key switched from (`s²` for
//! relinearization, `σ_k(s)` for the Galois element `k`). `P·Q̂_j` is `P mod q_i` on the
//! primes of `D_j` and `0` on every other prime of `Q` and on `P`, so no big integer is
//! needed. The uniform parts `a_j` are expanded from a public 32-byte seed
//! (`he_math::expand`: each residue vector `a_j mod q_i` is its own AES-128-CTR stream),
//! which gives the serialized form its half size and lets a holder keep only the seed
//! and regenerate `a_j` in each key switch ([`KeyStorage::Seeded`]).

use crate::context::Context;
use crate::error::{CkksError, Result};
use crate::params::SecretDistribution;
use he_math::expand::SeedExpander;
use he_math::galois;
use he_math::{Backend, Csprng, Representation, RnsPoly, UniformParts};
use std::collections::BTreeMap;
use std::sync::Arc;
use zeroize::Zeroize;

/// A switching key's first digits as the backend's inner product takes them: the `b_j`
/// and the `a_j` (stored, or their seed).
type KeyDigits<'a, P> = (&'a [P], UniformParts<'a, P>);

/// Samples a polynomial over `basis`, NTT form, with every residue uniform (uniform in
/// the NTT domain is uniform in the coefficient domain).
pub(crate) fn sample_uniform<B: Backend>(
    ctx: &Context<B>,
    rng: &mut Csprng,
    basis: &[usize],
) -> Result<B::Poly> {
    let ring = ctx.params().ring();
    let mut p = RnsPoly::zero(ring.n(), basis, Representation::Ntt);
    for (j, &bi) in basis.iter().enumerate() {
        rng.uniform_mod(ring.modulus(bi), p.limb_mut(j));
    }
    Ok(ctx.backend().upload_owned(p)?)
}

/// Digit `digit`'s uniform part `a_digit` of a switching key with public seed `seed`,
/// over `basis`, NTT form (`he_math::expand`, stream `(digit, i)` for each modulus `i`).
pub(crate) fn expand_uniform<B: Backend>(
    ctx: &Context<B>,
    seed: &[u8; 32],
    digit: usize,
    basis: &[usize],
) -> Result<B::Poly> {
    let ring = ctx.params().ring();
    let expander = SeedExpander::new(seed);
    let mut p = RnsPoly::zero(ring.n(), basis, Representation::Ntt);
    for (j, &bi) in basis.iter().enumerate() {
        expander.fill(digit, bi, ring.modulus(bi), p.limb_mut(j));
    }
    Ok(ctx.backend().upload_owned(p)?)
}

/// How a holder of switching keys keeps their uniform parts `a_j` (both forms give the
/// same key switch, bit for bit).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[non_exhaustive]
pub enum KeyStorage {
    /// Only the 32-byte seed of the `a_j` kept (the default): half the memory; each key
    /// switch regenerates the `a_j` limbs it reads (AES-128-CTR with VAES, about 0.1 ms
    /// per limb of `2^16` words here): at the top of the bootstrapping chain a key
    /// switch's inner product takes about 1.3 times as long as with a stored key
    /// (21.6 ms against 17.0 ms at 26 limbs in a loaded run, docs/results/bootstrap.md).
    /// A key set loaded or converted this way ([`EvaluationKeySet::set_key_storage`],
    /// [`crate::Context::deserialize_evaluation_keys_with`]) still keeps its
    /// relinearization key expanded ([`Self::for_relinearization`]); a
    /// [`KeyGenerator::with_key_storage`] makes every key seeded.
    #[default]
    Seeded,
    /// `a_j` stored next to `b_j`: twice the memory, no regeneration.
    Expanded,
}

impl KeyStorage {
    /// What a key set loaded or converted with `self` does with its relinearization
    /// key: it stays expanded. It is one key of the 40–50 of a bootstrapping set, and
    /// every ciphertext multiplication uses it (about a third of a full-slot
    /// bootstrap's key switches, counted in limbs: EvalMod's products).
    pub fn for_relinearization(self) -> KeyStorage {
        KeyStorage::Expanded
    }
}

/// Samples the discrete Gaussian error over `basis`, NTT form. The host copies are
/// zeroized.
pub(crate) fn sample_gaussian<B: Backend>(
    ctx: &Context<B>,
    rng: &mut Csprng,
    basis: &[usize],
) -> Result<B::Poly> {
    let ring = ctx.params().ring();
    let mut e = rng.gaussian(ring.n(), ctx.params().literal().sigma)?;
    let host = RnsPoly::from_signed(ring, basis, &e);
    e.zeroize();
    let mut host = host?;
    let up = ctx.backend().upload(&host);
    host.data_mut().zeroize();
    let mut p = up?;
    ctx.backend().forward_ntt(&mut p)?;
    Ok(p)
}

/// A secret-dependent polynomial (a copy of `s`, `a·s`, `s²`, `σ(s)`, an ephemeral
/// secret) wiped when dropped, also when an error returns early.
pub(crate) struct Wiped<'a, B: Backend> {
    be: &'a B,
    poly: B::Poly,
}

impl<'a, B: Backend> Wiped<'a, B> {
    pub(crate) fn new(be: &'a B, poly: B::Poly) -> Self {
        Self { be, poly }
    }
}

impl<B: Backend> std::ops::Deref for Wiped<'_, B> {
    type Target = B::Poly;
    fn deref(&self) -> &B::Poly {
        &self.poly
    }
}

impl<B: Backend> std::ops::DerefMut for Wiped<'_, B> {
    fn deref_mut(&mut self) -> &mut B::Poly {
        &mut self.poly
    }
}

impl<B: Backend> Drop for Wiped<'_, B> {
    fn drop(&mut self) {
        self.be.zeroize(&mut self.poly);
    }
}

/// Samples a uniform ternary polynomial over `basis`, NTT form (the ephemeral `u` of
/// public-key encryption). The host copies are zeroized.
pub(crate) fn sample_ternary<B: Backend>(
    ctx: &Context<B>,
    rng: &mut Csprng,
    basis: &[usize],
    dist: SecretDistribution,
) -> Result<B::Poly> {
    let ring = ctx.params().ring();
    let coeffs = match dist {
        SecretDistribution::UniformTernary => rng.ternary_uniform(ring.n()),
        SecretDistribution::SparseTernary { hamming_weight } => {
            rng.ternary_hamming(ring.n(), hamming_weight)?
        }
    };
    let mut host = RnsPoly::from_signed(ring, basis, &coeffs)?;
    let up = ctx.backend().upload(&host);
    host.data_mut().zeroize();
    let mut p = up?;
    ctx.backend().forward_ntt(&mut p)?;
    Ok(p)
}

/// The client's secret key `s` (ternary, per the parameters' distribution), held in NTT
/// form over `QP`. Zeroized on drop; its `Debug` output shows nothing of it; not `Clone`.
pub struct SecretKey<B: Backend> {
    pub(crate) ctx: Arc<Context<B>>,
    pub(crate) s: B::Poly,
}

impl<B: Backend> Drop for SecretKey<B> {
    fn drop(&mut self) {
        self.ctx.backend().zeroize(&mut self.s);
    }
}

impl<B: Backend> std::fmt::Debug for SecretKey<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey(<redacted>)")
    }
}

impl<B: Backend> SecretKey<B> {
    /// The context the key belongs to.
    pub fn context(&self) -> &Arc<Context<B>> {
        &self.ctx
    }

    /// `s` restricted to `basis`.
    pub(crate) fn restricted(&self, basis: &[usize]) -> Result<B::Poly> {
        Ok(self.ctx.backend().select_limbs(&self.s, basis)?)
    }
}

/// Public encryption key `(b, a) = (−a·s + e, a)` over `q_0 … q_L`, NTT form.
pub struct PublicKey<B: Backend> {
    pub(crate) ctx: Arc<Context<B>>,
    pub(crate) b: B::Poly,
    pub(crate) a: B::Poly,
}

impl<B: Backend> std::fmt::Debug for PublicKey<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PublicKey")
    }
}

impl<B: Backend> PublicKey<B> {
    /// The context the key belongs to.
    pub fn context(&self) -> &Arc<Context<B>> {
        &self.ctx
    }
}

/// A hybrid key-switching key: one `(b_j, a_j)` pair per digit, over
/// `q_0 … q_level ∪ P` (NTT form, see the module docs), usable for ciphertexts at levels
/// `≤ level`. A key for a lower level has fewer limbs and digits, so it is smaller: a
/// key at level `ℓ` takes `digits_at(ℓ)·2·(ℓ + 1 + |P|)` limbs of `N` words (Lattigo
/// generates evaluation keys at a chosen `LevelQ` the same way, `rlwe/keygenerator.go`).
/// `seed` is the public seed the `a_j` are expanded from; they are stored or not
/// ([`KeyStorage`]).
pub struct SwitchingKey<B: Backend> {
    /// `b_j`, one per digit.
    pub(crate) b: Vec<B::Poly>,
    /// `a_j`, one per digit, or empty when only the seed is kept.
    pub(crate) a: Vec<B::Poly>,
    pub(crate) seed: [u8; 32],
    pub(crate) level: usize,
}

impl<B: Backend> std::fmt::Debug for SwitchingKey<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "SwitchingKey({} digits, level {}, {:?})",
            self.b.len(),
            self.level,
            self.storage()
        )
    }
}

impl<B: Backend> SwitchingKey<B> {
    /// Number of digits ([`crate::Parameters::digits_at`] of [`Self::level`]).
    pub fn num_digits(&self) -> usize {
        self.b.len()
    }

    /// Whether the `a_j` are stored or regenerated from the seed when used.
    pub fn storage(&self) -> KeyStorage {
        if self.a.is_empty() {
            KeyStorage::Seeded
        } else {
            KeyStorage::Expanded
        }
    }

    /// The key's first `t` digits as the backend's inner product reads them: the `b_j`,
    /// and the `a_j` stored or as the seed to regenerate them from.
    ///
    /// # Errors
    /// [`CkksError::ParameterMismatch`] for more digits than the key has.
    fn digits(&self, t: usize) -> Result<KeyDigits<'_, B::Poly>> {
        if t > self.b.len() {
            return Err(CkksError::ParameterMismatch(format!(
                "switching key has {} digits, {t} needed",
                self.b.len()
            )));
        }
        let a = if self.a.is_empty() {
            UniformParts::Seeded(&self.seed)
        } else {
            UniformParts::Stored(&self.a[..t])
        };
        Ok((&self.b[..t], a))
    }

    /// The key-switching inner product of ModUp `digits` with this key's first
    /// `digits.len()` digits (`Backend::key_switch_inner_product`; the `a_j` stored or
    /// regenerated from the seed).
    ///
    /// # Errors
    /// [`CkksError::ParameterMismatch`] for more digits than the key has; backend errors.
    pub(crate) fn inner_product(&self, be: &B, digits: &[B::Poly]) -> Result<[B::Poly; 2]> {
        let (b, a) = self.digits(digits.len())?;
        Ok(be.key_switch_inner_product(digits, b, a)?)
    }

    /// [`Self::inner_product`] of the digits' images under the Galois automorphism
    /// `X ↦ X^e` ([`Backend::key_switch_inner_product_automorphism`]: the backend may
    /// permute the digits as it reads them): a hoisted rotation's inner product.
    ///
    /// # Errors
    /// As [`Self::inner_product`]; an invalid Galois element.
    pub(crate) fn inner_product_automorphism(
        &self,
        be: &B,
        digits: &[B::Poly],
        e: usize,
    ) -> Result<[B::Poly; 2]> {
        let (b, a) = self.digits(digits.len())?;
        Ok(be.key_switch_inner_product_automorphism(digits, e, b, a)?)
    }

    /// Keeps the `a_j` as `storage` says: drops them ([`KeyStorage::Seeded`]) or
    /// expands them from the seed over the key's basis ([`KeyStorage::Expanded`]).
    ///
    /// # Errors
    /// Backend errors.
    pub(crate) fn set_storage(&mut self, ctx: &Context<B>, storage: KeyStorage) -> Result<()> {
        match storage {
            KeyStorage::Seeded => self.a = Vec::new(),
            KeyStorage::Expanded if self.a.is_empty() => {
                if let Some(b0) = self.b.first() {
                    let basis = ctx.backend().basis(b0).to_vec();
                    self.a = (0..self.b.len())
                        .map(|j| expand_uniform(ctx, &self.seed, j, &basis))
                        .collect::<Result<_>>()?;
                }
            }
            KeyStorage::Expanded => {}
        }
        Ok(())
    }

    /// The highest ciphertext level the key serves.
    pub fn level(&self) -> usize {
        self.level
    }

    /// Fails unless the key serves ciphertexts at `level`.
    ///
    /// # Errors
    /// [`CkksError::KeyLevelTooLow`].
    pub(crate) fn check_level(&self, level: usize) -> Result<()> {
        if level > self.level {
            return Err(CkksError::KeyLevelTooLow {
                key_level: self.level,
                level,
            });
        }
        Ok(())
    }

    /// Size in memory, bytes, of a key whose polynomials have `special` special primes:
    /// `2·digits` polynomials (`digits` when seeded) of `level + 1 + special` limbs of
    /// `N` words of 8 bytes.
    fn memory_bytes(&self, n: usize, special: usize) -> usize {
        (self.b.len() + self.a.len()) * (self.level + 1 + special) * n * 8
    }
}

/// Relinearization key: switches `s²` to `s`.
#[derive(Debug)]
pub struct RelinearizationKey<B: Backend>(pub(crate) SwitchingKey<B>);

/// Galois key for the automorphism `X ↦ X^k`: switches `σ_k(s)` to `s`.
#[derive(Debug)]
pub struct GaloisKey<B: Backend> {
    pub(crate) element: usize,
    pub(crate) key: SwitchingKey<B>,
}

impl<B: Backend> GaloisKey<B> {
    /// The Galois element `k` (odd, `< 2N`).
    pub fn element(&self) -> usize {
        self.element
    }
}

/// What evaluation keys to generate: only what is asked for is made.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EvaluationKeyRequest {
    /// Generate the relinearization key.
    pub relinearization: bool,
    /// Slot rotations (left by `k`, negative = right) to make Galois keys for.
    pub rotations: Vec<i64>,
    /// Generate the conjugation key.
    pub conjugation: bool,
    /// Generate sparse-secret encapsulation keys for bootstrapping with an ephemeral
    /// secret of this Hamming weight ([`KeyGenerator::gen_encapsulation_keys`]).
    pub encapsulation: Option<usize>,
    /// Rotations needed only for ciphertexts at levels `≤ ℓ`, as `(k, ℓ)` pairs: their
    /// keys live over `q_0 … q_ℓ ∪ P` with the digits of `ℓ`, smaller than top-level
    /// keys (e.g. SlotsToCoeffs after EvalMod, or an application that works below the
    /// bootstrapping's output level). A rotation listed several times, or also in
    /// [`Self::rotations`] (top level), gets one key at the highest level asked for.
    /// Using such a key above its level is a [`CkksError::KeyLevelTooLow`].
    pub rotations_up_to: Vec<(i64, usize)>,
}

impl EvaluationKeyRequest {
    /// Adds everything `other` asks for (the union of both requests). When both ask
    /// for encapsulation keys, `self`'s Hamming weight is kept (one pair per key set).
    pub fn merge(&mut self, other: &EvaluationKeyRequest) {
        self.relinearization |= other.relinearization;
        self.conjugation |= other.conjugation;
        self.rotations.extend(&other.rotations);
        self.rotations.sort_unstable();
        self.rotations.dedup();
        self.rotations_up_to.extend(&other.rotations_up_to);
        self.rotations_up_to.sort_unstable();
        self.rotations_up_to.dedup();
        if self.encapsulation.is_none() {
            self.encapsulation = other.encapsulation;
        }
    }

    /// The Galois elements to generate and the highest level each key must serve
    /// (rotations by a multiple of `N/2` and the identity are left out).
    ///
    /// # Errors
    /// [`CkksError::LevelOutOfRange`] for a level in [`Self::rotations_up_to`] above
    /// `L`.
    pub fn galois_levels(&self, params: &crate::Parameters) -> Result<BTreeMap<usize, usize>> {
        let n = params.n();
        let top = params.max_level();
        let mut out = BTreeMap::new();
        let mut put = |e: usize, l: usize| {
            if e != 1 {
                let v = out.entry(e).or_insert(l);
                *v = (*v).max(l);
            }
        };
        for &r in &self.rotations {
            put(galois::galois_element_for_rotation(r, n), top);
        }
        for &(r, l) in &self.rotations_up_to {
            if l > top {
                return Err(CkksError::LevelOutOfRange { level: l, max: top });
            }
            put(galois::galois_element_for_rotation(r, n), l);
        }
        if self.conjugation {
            put(galois::galois_element_conjugation(n), top);
        }
        Ok(out)
    }
}

/// Sparse-secret encapsulation keys of bootstrapping (see
/// [`KeyGenerator::gen_encapsulation_keys`]): `s → s'` at level 0 and `s' → s`.
#[derive(Debug)]
pub struct EncapsulationKeys<B: Backend> {
    pub(crate) to_sparse: SwitchingKey<B>,
    pub(crate) from_sparse: SwitchingKey<B>,
    pub(crate) hamming_weight: usize,
}

impl<B: Backend> EncapsulationKeys<B> {
    /// Hamming weight of the ephemeral secret `s'`.
    pub fn hamming_weight(&self) -> usize {
        self.hamming_weight
    }
}

/// The server's key material: evaluation keys only (no secret, cannot decrypt).
#[derive(Debug)]
pub struct EvaluationKeySet<B: Backend> {
    pub(crate) relin: Option<RelinearizationKey<B>>,
    pub(crate) galois: BTreeMap<usize, GaloisKey<B>>,
    pub(crate) encapsulation: Option<EncapsulationKeys<B>>,
}

impl<B: Backend> Default for EvaluationKeySet<B> {
    fn default() -> Self {
        Self {
            relin: None,
            galois: BTreeMap::new(),
            encapsulation: None,
        }
    }
}

impl<B: Backend> EvaluationKeySet<B> {
    /// Whether the relinearization key is present.
    pub fn has_relinearization_key(&self) -> bool {
        self.relin.is_some()
    }

    /// The Galois elements with a key, increasing.
    pub fn galois_elements(&self) -> Vec<usize> {
        self.galois.keys().copied().collect()
    }

    /// Number of switching keys (relinearization, Galois, encapsulation).
    pub fn num_keys(&self) -> usize {
        usize::from(self.relin.is_some())
            + self.galois.len()
            + 2 * usize::from(self.encapsulation.is_some())
    }

    /// Sets the sparse-secret encapsulation keys of bootstrapping.
    pub fn set_encapsulation_keys(&mut self, keys: EncapsulationKeys<B>) {
        self.encapsulation = Some(keys);
    }

    /// The encapsulation keys, if any.
    pub fn encapsulation_keys(&self) -> Option<&EncapsulationKeys<B>> {
        self.encapsulation.as_ref()
    }

    /// Size of the keys in memory, in bytes: each switching key has the digits of its
    /// level, two polynomials each (one when [`KeyStorage::Seeded`]), over
    /// `q_0 … q_level ∪ P` (`N` words of 8 bytes per limb); the encapsulation key to `s'`
    /// lives over `q_0 ∪ {p_0}`. The serialized form
    /// ([`crate::Context::serialize_evaluation_keys`]) is the size of the seeded keys.
    pub fn memory_bytes(&self, params: &crate::Parameters) -> usize {
        let (n, p) = (params.n(), params.p_basis().len());
        let full: usize = self
            .relin
            .iter()
            .map(|k| &k.0)
            .chain(self.galois.values().map(|g| &g.key))
            .chain(self.encapsulation.iter().map(|e| &e.from_sparse))
            .map(|k| k.memory_bytes(n, p))
            .sum();
        full + self.encapsulation.as_ref().map_or(0, |e| {
            e.to_sparse
                .memory_bytes(n, params.encapsulation_special_basis().len())
        })
    }

    /// Keeps every switching key's `a_j` as `storage` says: drops them
    /// ([`KeyStorage::Seeded`]: half the memory, each key switch regenerates what it
    /// reads; the relinearization key stays expanded,
    /// [`KeyStorage::for_relinearization`]) or expands them from their seeds
    /// ([`KeyStorage::Expanded`]).
    ///
    /// # Errors
    /// Backend errors (the set may then be partly converted; every key still works).
    pub fn set_key_storage(&mut self, ctx: &Context<B>, storage: KeyStorage) -> Result<()> {
        if let Some(r) = &mut self.relin {
            r.0.set_storage(ctx, storage.for_relinearization())?;
        }
        for k in self.galois.values_mut().map(|g| &mut g.key).chain(
            self.encapsulation
                .iter_mut()
                .flat_map(|e| [&mut e.to_sparse, &mut e.from_sparse]),
        ) {
            k.set_storage(ctx, storage)?;
        }
        Ok(())
    }

    /// The keys' levels: `(Galois element, highest level it serves)`, increasing
    /// elements.
    pub fn galois_key_levels(&self) -> Vec<(usize, usize)> {
        self.galois
            .values()
            .map(|g| (g.element, g.key.level))
            .collect()
    }

    /// Adds (or replaces) a Galois key.
    pub fn insert_galois_key(&mut self, key: GaloisKey<B>) {
        self.galois.insert(key.element, key);
    }

    /// Sets the relinearization key.
    pub fn set_relinearization_key(&mut self, key: RelinearizationKey<B>) {
        self.relin = Some(key);
    }

    /// The relinearization key.
    ///
    /// # Errors
    /// [`CkksError::MissingRelinearizationKey`].
    pub fn relinearization_key(&self) -> Result<&RelinearizationKey<B>> {
        self.relin
            .as_ref()
            .ok_or(CkksError::MissingRelinearizationKey)
    }

    /// The Galois key for `element`.
    ///
    /// # Errors
    /// [`CkksError::MissingGaloisKey`].
    pub fn galois_key(&self, element: usize, rotation: Option<i64>) -> Result<&GaloisKey<B>> {
        self.galois
            .get(&element)
            .ok_or(CkksError::MissingGaloisKey { element, rotation })
    }

    /// The Galois key for `element`, checked to serve a ciphertext at `level`.
    ///
    /// # Errors
    /// [`CkksError::MissingGaloisKey`], [`CkksError::KeyLevelTooLow`].
    pub fn galois_key_at(
        &self,
        element: usize,
        rotation: Option<i64>,
        level: usize,
    ) -> Result<&GaloisKey<B>> {
        let k = self.galois_key(element, rotation)?;
        k.key.check_level(level)?;
        Ok(k)
    }
}

/// Generates keys from a CSPRNG (ChaCha20 seeded from the OS).
pub struct KeyGenerator<B: Backend> {
    ctx: Arc<Context<B>>,
    rng: Csprng,
    storage: KeyStorage,
}

impl<B: Backend> std::fmt::Debug for KeyGenerator<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyGenerator")
    }
}

impl<B: Backend> KeyGenerator<B> {
    /// A key generator drawing from the operating system's entropy.
    pub fn new(ctx: &Arc<Context<B>>) -> Self {
        Self {
            ctx: ctx.clone(),
            rng: Csprng::from_entropy(),
            storage: KeyStorage::default(),
        }
    }

    /// A key generator over a caller-provided CSPRNG (e.g. seeded, for reproducible
    /// tests; never use a fixed seed for real keys).
    pub fn with_rng(ctx: &Arc<Context<B>>, rng: Csprng) -> Self {
        Self {
            ctx: ctx.clone(),
            rng,
            storage: KeyStorage::default(),
        }
    }

    /// Makes switching keys that keep their `a_j` as `storage` says (every key,
    /// relinearization included; [`KeyStorage::Seeded`] by default). The serialized
    /// form is the same either way.
    pub fn with_key_storage(mut self, storage: KeyStorage) -> Self {
        self.storage = storage;
        self
    }

    /// A fresh secret key.
    ///
    /// # Errors
    /// Backend errors.
    pub fn gen_secret_key(&mut self) -> Result<SecretKey<B>> {
        let _span = tracing::debug_span!("gen_secret_key").entered();
        let params = self.ctx.params();
        let s = sample_ternary(
            &self.ctx,
            &mut self.rng,
            &params.qp_basis(),
            params.literal().secret,
        )?;
        Ok(SecretKey {
            ctx: self.ctx.clone(),
            s,
        })
    }

    /// The public key of `sk`, over `q_0 … q_L`.
    ///
    /// # Errors
    /// [`CkksError::ParameterMismatch`] for a key of another context; backend errors.
    pub fn gen_public_key(&mut self, sk: &SecretKey<B>) -> Result<PublicKey<B>> {
        let _span = tracing::debug_span!("gen_public_key").entered();
        self.check(sk)?;
        let be = self.ctx.backend();
        let basis = self.ctx.params().q_basis(self.ctx.params().max_level());
        let a = sample_uniform(&self.ctx, &mut self.rng, &basis)?;
        let mut b = sample_gaussian(&self.ctx, &mut self.rng, &basis)?;
        let mut t = Wiped::new(be, a.clone());
        be.mul_assign(&mut t, &Wiped::new(be, sk.restricted(&basis)?))?;
        be.sub_assign(&mut b, &t)?;
        Ok(PublicKey {
            ctx: self.ctx.clone(),
            b,
            a,
        })
    }

    fn check(&self, sk: &SecretKey<B>) -> Result<()> {
        if !Arc::ptr_eq(&sk.ctx, &self.ctx) {
            return Err(CkksError::ParameterMismatch(
                "the secret key belongs to another context".into(),
            ));
        }
        Ok(())
    }

    /// A switching key from `s_in` (NTT form over `QP`) to the secret `sk`.
    fn gen_switching_key(&mut self, sk: &SecretKey<B>, s_in: &B::Poly) -> Result<SwitchingKey<B>> {
        let params = self.ctx.params().clone();
        self.gen_switching_key_over(sk, s_in, params.max_level(), &params.p_basis())
    }

    /// A switching key from `s_in` to `sk` usable up to `level` only, with the special
    /// primes `special` (moduli-table indices, a subset of `P`): its polynomials live over
    /// `q_0 … q_level ∪ special` and it has the digits of that level; the gadget factor is
    /// the product of the `special` primes.
    fn gen_switching_key_over(
        &mut self,
        sk: &SecretKey<B>,
        s_in: &B::Poly,
        level: usize,
        special: &[usize],
    ) -> Result<SwitchingKey<B>> {
        let params = self.ctx.params().clone();
        let be = self.ctx.backend();
        let qp: Vec<usize> = params
            .q_basis(level)
            .into_iter()
            .chain(special.iter().copied())
            .collect();
        let seed = self.rng.seed_bytes();
        let p_mod = params.product_residues(special, &qp);
        let num_digits = params.digits_at(level);
        let s_out = Wiped::new(be, be.select_limbs(&sk.s, &qp)?);
        let mut bs = Vec::with_capacity(num_digits);
        let mut as_ = Vec::with_capacity(num_digits);
        for j in 0..num_digits {
            let a = expand_uniform(&self.ctx, &seed, j, &qp)?;
            let mut b = sample_gaussian(&self.ctx, &mut self.rng, &qp)?;
            let mut t = Wiped::new(be, a.clone());
            be.mul_assign(&mut t, &s_out)?;
            be.sub_assign(&mut b, &t)?;
            let digit = params.digit_basis(j, level);
            let gadget: Vec<u64> = qp
                .iter()
                .enumerate()
                .map(|(pos, i)| if digit.contains(i) { p_mod[pos] } else { 0 })
                .collect();
            let mut g = Wiped::new(be, be.select_limbs(s_in, &qp)?);
            be.scalar_mul_assign(&mut g, &gadget)?;
            be.add_assign(&mut b, &g)?;
            bs.push(b);
            if self.storage == KeyStorage::Expanded {
                as_.push(a);
            }
        }
        Ok(SwitchingKey {
            b: bs,
            a: as_,
            seed,
            level,
        })
    }

    /// The relinearization key of `sk` (switches `s²` to `s`).
    ///
    /// # Errors
    /// As [`Self::gen_public_key`].
    pub fn gen_relinearization_key(&mut self, sk: &SecretKey<B>) -> Result<RelinearizationKey<B>> {
        let _span = tracing::debug_span!("gen_relinearization_key").entered();
        self.check(sk)?;
        let ctx = self.ctx.clone();
        let be = ctx.backend();
        let mut s2 = Wiped::new(be, sk.s.clone());
        be.mul_assign(&mut s2, &sk.s)?;
        Ok(RelinearizationKey(self.gen_switching_key(sk, &s2)?))
    }

    /// The Galois key of `sk` for the element `k` (switches `σ_k(s)` to `s`).
    ///
    /// # Errors
    /// [`he_math::MathError::InvalidGaloisElement`] unless `k` is odd and `< 2N`; as
    /// [`Self::gen_public_key`].
    pub fn gen_galois_key(&mut self, sk: &SecretKey<B>, element: usize) -> Result<GaloisKey<B>> {
        let top = self.ctx.params().max_level();
        self.gen_galois_key_at(sk, element, top)
    }

    /// [`Self::gen_galois_key`] for ciphertexts at levels `≤ level` only (a smaller key,
    /// see [`SwitchingKey`]).
    ///
    /// # Errors
    /// [`CkksError::LevelOutOfRange`] above `L`; as [`Self::gen_galois_key`].
    pub fn gen_galois_key_at(
        &mut self,
        sk: &SecretKey<B>,
        element: usize,
        level: usize,
    ) -> Result<GaloisKey<B>> {
        let _span = tracing::debug_span!("gen_galois_key", element, level).entered();
        self.check(sk)?;
        galois::check_galois_element(element, self.ctx.params().n())?;
        let params = self.ctx.params().clone();
        if level > params.max_level() {
            return Err(CkksError::LevelOutOfRange {
                level,
                max: params.max_level(),
            });
        }
        let ctx = self.ctx.clone();
        let be = ctx.backend();
        let mut sk_rot = Wiped::new(be, sk.s.clone());
        be.automorphism(&sk.s, element, &mut sk_rot)?;
        let key = self.gen_switching_key_over(sk, &sk_rot, level, &params.p_basis())?;
        Ok(GaloisKey { element, key })
    }

    /// Sparse-secret encapsulation keys for bootstrapping (Bossuat–Troncoso-Pastoriza–
    /// Hubaux, ACNS 2022; Lattigo `circuits/ckks/bootstrapping/keys.go`): an ephemeral
    /// secret `s'` of Hamming weight `hamming_weight`, a key from `s` to `s'` over
    /// `q_0·p_0` only (one digit, one special prime: the RLWE instance under the sparse
    /// `s'` has the small modulus `q_0·p_0`, the one whose security is published, see
    /// [`crate::security::encapsulation_max_log_q`]), and a key from `s'` back to `s`
    /// over the whole `QP`. `s'` itself is zeroized.
    ///
    /// # Errors
    /// [`CkksError::InvalidParameters`] for a weight of 0 or above N, or `p_0 ≤ q_0` (the
    /// one-digit switch would add noise of the message's size);
    /// [`CkksError::InsecureParameters`] when the parameters ask for 128-bit security and
    /// `log2(q_0·p_0)` exceeds the published bound for this weight, or none exists; as
    /// [`Self::gen_public_key`].
    pub fn gen_encapsulation_keys(
        &mut self,
        sk: &SecretKey<B>,
        hamming_weight: usize,
    ) -> Result<EncapsulationKeys<B>> {
        let _span = tracing::debug_span!("gen_encapsulation_keys", hamming_weight).entered();
        self.check(sk)?;
        let n = self.ctx.params().n();
        if hamming_weight == 0 || hamming_weight > n {
            return Err(CkksError::InvalidParameters(format!(
                "encapsulation Hamming weight {hamming_weight} is not in 1..={n}"
            )));
        }
        let params = self.ctx.params().clone();
        if params.p()[0] <= params.q()[0] {
            return Err(CkksError::InvalidParameters(format!(
                "encapsulation needs p_0 > q_0 (p_0 has {:.1} bits, q_0 {:.1})",
                (params.p()[0] as f64).log2(),
                (params.q()[0] as f64).log2()
            )));
        }
        if params.literal().security == crate::security::SecurityLevel::Classical128 {
            crate::security::check_encapsulation_128(
                params.log_n(),
                hamming_weight,
                params.encapsulation_log_q(),
            )?;
        }
        let qp = params.qp_basis();
        let ctx = self.ctx.clone();
        let sparse = SecretKey {
            ctx: ctx.clone(),
            s: sample_ternary(
                &ctx,
                &mut self.rng,
                &qp,
                SecretDistribution::SparseTernary { hamming_weight },
            )?,
        };
        let to_sparse =
            self.gen_switching_key_over(&sparse, &sk.s, 0, &params.encapsulation_special_basis())?;
        let from_sparse = self.gen_switching_key(sk, &sparse.s)?;
        Ok(EncapsulationKeys {
            to_sparse,
            from_sparse,
            hamming_weight,
        })
    }

    /// The evaluation keys asked for in `request`: one Galois key per element, at the
    /// highest level asked for ([`EvaluationKeyRequest::galois_levels`]).
    ///
    /// # Errors
    /// As [`Self::gen_galois_key_at`] and [`EvaluationKeyRequest::galois_levels`].
    pub fn gen_evaluation_keys(
        &mut self,
        sk: &SecretKey<B>,
        request: &EvaluationKeyRequest,
    ) -> Result<EvaluationKeySet<B>> {
        let levels = request.galois_levels(self.ctx.params())?;
        let mut set = EvaluationKeySet::default();
        if request.relinearization {
            set.relin = Some(self.gen_relinearization_key(sk)?);
        }
        if let Some(h) = request.encapsulation {
            set.encapsulation = Some(self.gen_encapsulation_keys(sk, h)?);
        }
        for (k, level) in levels {
            let key = self.gen_galois_key_at(sk, k, level)?;
            set.insert_galois_key(key);
        }
        Ok(set)
    }
}
