//! The negacyclic number-theoretic transform (NTT) over `Z_q[X]/(X^N + 1)`.
//!
//! [`NttPlan`] is the one type the rest of the project sees. It wraps one of three
//! interchangeable engines ([`NttEngine`]):
//! - `tfhe-ntt` (default when compiled in): AVX-512 IFMA kernels on stable Rust for
//!   primes below 2^50–2^51, AVX-512/AVX2 otherwise;
//! - `concrete-ntt`: the predecessor by the same authors (AVX2 on stable Rust);
//! - `Reference`: a textbook radix-2 Cooley–Tukey / Gentleman–Sande transform written
//!   here (Longa–Naehrig, CANS 2016, Algorithms 1–2), simple and obviously correct.
//!
//! # Output order (the NTT domain of this project)
//! For a primitive 2N-th root of unity ψ mod q, the forward transform maps the
//! coefficients `a_0 … a_{N-1}` (standard order) to
//!
//! `â[i] = a(ψ^{2·bitrev(i) + 1})`, `i = 0 … N-1`,
//!
//! where `bitrev` reverses the `log2 N` low bits: the evaluations at the odd powers of ψ
//! in **bit-reversed order**. Every engine is checked against this formula when a plan is
//! built (the transform of `X` must be the list of evaluation points), so Galois
//! automorphisms in the NTT domain ([`crate::galois`]) are plain index permutations that
//! do not depend on the engine. All engines of a [`crate::RingContext`] share the same ψ,
//! so NTT-domain data is bit-identical whatever engine or backend produced it.
//!
//! The inverse transform is exact (it includes the multiplication by `N^{-1}`).

use crate::error::{MathError, Result};
use crate::modulus::Modulus;
use crate::primes::is_prime;

/// Which implementation computes the transforms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NttEngine {
    /// `tfhe-ntt` (cargo feature `tfhe-ntt`).
    TfheNtt,
    /// `concrete-ntt` (cargo feature `concrete-ntt`).
    ConcreteNtt,
    /// The scalar reference transform of this crate.
    Reference,
}

impl NttEngine {
    /// The engine used when none is named: `tfhe-ntt` if compiled in, else
    /// `concrete-ntt`, else the reference transform.
    pub const fn default_engine() -> Self {
        if cfg!(feature = "tfhe-ntt") {
            Self::TfheNtt
        } else if cfg!(feature = "concrete-ntt") {
            Self::ConcreteNtt
        } else {
            Self::Reference
        }
    }

    /// The engines compiled into this build.
    pub fn available() -> Vec<Self> {
        let mut v = Vec::new();
        if cfg!(feature = "tfhe-ntt") {
            v.push(Self::TfheNtt);
        }
        if cfg!(feature = "concrete-ntt") {
            v.push(Self::ConcreteNtt);
        }
        v.push(Self::Reference);
        v
    }

    /// Short name (`"tfhe-ntt"`, `"concrete-ntt"`, `"reference"`).
    pub const fn name(self) -> &'static str {
        match self {
            Self::TfheNtt => "tfhe-ntt",
            Self::ConcreteNtt => "concrete-ntt",
            Self::Reference => "reference",
        }
    }
}

impl Default for NttEngine {
    fn default() -> Self {
        Self::default_engine()
    }
}

/// Reverses the `bits` low bits of `i`.
#[inline]
pub fn bit_reverse(i: usize, bits: u32) -> usize {
    if bits == 0 {
        0
    } else {
        i.reverse_bits() >> (usize::BITS - bits)
    }
}

#[derive(Clone)]
struct ReferenceTables {
    /// `ψ^{bitrev(k)}` and Shoup constants.
    psi_brev: Vec<u64>,
    psi_brev_shoup: Vec<u64>,
    /// `ψ^{-bitrev(k)}` and Shoup constants.
    psi_inv_brev: Vec<u64>,
    psi_inv_brev_shoup: Vec<u64>,
}

#[derive(Clone)]
enum Inner {
    #[cfg(feature = "tfhe-ntt")]
    Tfhe(tfhe_ntt::prime64::Plan),
    #[cfg(feature = "concrete-ntt")]
    Concrete(concrete_ntt::prime64::Plan),
    Reference(Box<ReferenceTables>),
}

/// A negacyclic NTT plan for one prime `q ≡ 1 (mod 2N)` and ring degree `N`
/// (power of two, `16 ≤ N ≤ 2^17`). See the module docs for the output order.
#[derive(Clone)]
pub struct NttPlan {
    n: usize,
    log_n: u32,
    modulus: Modulus,
    psi: u64,
    n_inv: u64,
    n_inv_shoup: u64,
    engine: NttEngine,
    inner: Inner,
}

impl std::fmt::Debug for NttPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NttPlan")
            .field("n", &self.n)
            .field("q", &self.modulus.value())
            .field("psi", &self.psi)
            .field("engine", &self.engine)
            .finish()
    }
}

fn validate(n: usize, q: u64) -> Result<Modulus> {
    if !n.is_power_of_two() || !(16..=(1 << 17)).contains(&n) {
        return Err(MathError::InvalidRingDegree(n));
    }
    let m = Modulus::new(q)?;
    if !is_prime(q) || q % (2 * n as u64) != 1 {
        return Err(MathError::NotNttFriendly { q, n });
    }
    Ok(m)
}

/// The smallest primitive 2N-th root of unity `g^{(q-1)/2N}` over generators `g = 2, 3, …`
/// whose powers give one; used only when no engine fixes ψ.
fn own_primitive_root(m: &Modulus, n: usize) -> u64 {
    let two_n = 2 * n as u64;
    let e = (m.value() - 1) / two_n;
    (2..m.value())
        .map(|g| m.pow(g, e))
        .find(|&r| m.pow(r, n as u64) == m.value() - 1)
        .expect("q ≡ 1 mod 2N prime always has a primitive 2N-th root")
}

impl NttPlan {
    /// Plan with the default engine ([`NttEngine::default_engine`]).
    ///
    /// # Errors
    /// See [`Self::with_engine`].
    pub fn new(n: usize, q: u64) -> Result<Self> {
        Self::with_engine(n, q, NttEngine::default_engine())
    }

    /// Plan with a chosen engine. For [`NttEngine::Reference`], ψ is the one the default
    /// engine would use, so that all engines agree bit for bit.
    ///
    /// # Errors
    /// [`MathError::InvalidRingDegree`], [`MathError::ModulusOutOfRange`],
    /// [`MathError::NotNttFriendly`], [`MathError::EngineUnavailable`] if the engine is
    /// not compiled in, and [`MathError::EngineOrder`] if the engine's output order
    /// differs from the documented one.
    pub fn with_engine(n: usize, q: u64, engine: NttEngine) -> Result<Self> {
        let m = validate(n, q)?;
        match engine {
            NttEngine::Reference => {
                let fast = NttEngine::default_engine();
                let psi = if fast == NttEngine::Reference {
                    own_primitive_root(&m, n)
                } else {
                    Self::with_engine(n, q, fast)?.psi
                };
                Self::reference_with_root(n, q, psi)
            }
            _ => {
                let inner = Self::engine_inner(n, q, engine)?;
                let mut plan = Self::assemble(n, m, 0, engine, inner);
                plan.psi = plan.read_root()?;
                Ok(plan)
            }
        }
    }

    /// Reference-engine plan with an explicit primitive 2N-th root of unity ψ.
    ///
    /// # Errors
    /// As [`Self::with_engine`], plus [`MathError::InvalidArgument`] if ψ is not a
    /// primitive 2N-th root of unity mod q.
    pub fn reference_with_root(n: usize, q: u64, psi: u64) -> Result<Self> {
        let m = validate(n, q)?;
        if psi >= q || m.pow(psi, n as u64) != q - 1 {
            return Err(MathError::InvalidArgument(format!(
                "{psi} is not a primitive {}-th root of unity mod {q}",
                2 * n
            )));
        }
        let log_n = n.trailing_zeros();
        let psi_inv = m.inv(psi)?;
        let (mut pb, mut pbs, mut pib, mut pibs) = (vec![0; n], vec![0; n], vec![0; n], vec![0; n]);
        let (mut w, mut wi) = (1u64, 1u64);
        for k in 0..n {
            let r = bit_reverse(k, log_n);
            pb[r] = w;
            pbs[r] = m.shoup(w);
            pib[r] = wi;
            pibs[r] = m.shoup(wi);
            w = m.mul(w, psi);
            wi = m.mul(wi, psi_inv);
        }
        let tables = ReferenceTables {
            psi_brev: pb,
            psi_brev_shoup: pbs,
            psi_inv_brev: pib,
            psi_inv_brev_shoup: pibs,
        };
        Ok(Self::assemble(
            n,
            m,
            psi,
            NttEngine::Reference,
            Inner::Reference(Box::new(tables)),
        ))
    }

    fn assemble(n: usize, m: Modulus, psi: u64, engine: NttEngine, inner: Inner) -> Self {
        let n_inv = m.inv(n as u64).expect("q is prime and larger than N");
        Self {
            n,
            log_n: n.trailing_zeros(),
            modulus: m,
            psi,
            n_inv,
            n_inv_shoup: m.shoup(n_inv),
            engine,
            inner,
        }
    }

    #[allow(unused_variables)]
    fn engine_inner(n: usize, q: u64, engine: NttEngine) -> Result<Inner> {
        let unavailable = |why: &str| MathError::EngineUnavailable(engine.name(), why.to_string());
        match engine {
            #[cfg(feature = "tfhe-ntt")]
            NttEngine::TfheNtt => tfhe_ntt::prime64::Plan::try_new(n, q)
                .map(Inner::Tfhe)
                .ok_or_else(|| unavailable("plan rejected")),
            #[cfg(feature = "concrete-ntt")]
            NttEngine::ConcreteNtt => concrete_ntt::prime64::Plan::try_new(n, q)
                .map(Inner::Concrete)
                .ok_or_else(|| unavailable("plan rejected")),
            _ => Err(unavailable("cargo feature not enabled")),
        }
    }

    /// Reads ψ off the engine (the transform of `X` is the list of evaluation points) and
    /// checks the whole list against `ψ^{2·bitrev(i)+1}`.
    fn read_root(&self) -> Result<u64> {
        let mut x = vec![0u64; self.n];
        x[1] = 1;
        self.forward(&mut x);
        let psi = x[0];
        let m = &self.modulus;
        let psi2 = m.mul(psi, psi);
        // Powers ψ^{2j+1} for j = 0..N-1.
        let mut odd = vec![0u64; self.n];
        let mut w = psi;
        for o in odd.iter_mut() {
            *o = w;
            w = m.mul(w, psi2);
        }
        let ok = m.pow(psi, self.n as u64) == m.value() - 1
            && x.iter()
                .enumerate()
                .all(|(i, &v)| v == odd[bit_reverse(i, self.log_n)]);
        if ok {
            Ok(psi)
        } else {
            Err(MathError::EngineOrder(self.engine.name()))
        }
    }

    /// Ring degree N.
    #[inline]
    pub fn n(&self) -> usize {
        self.n
    }

    /// `log2 N`.
    #[inline]
    pub fn log_n(&self) -> u32 {
        self.log_n
    }

    /// The prime modulus.
    #[inline]
    pub fn modulus(&self) -> &Modulus {
        &self.modulus
    }

    /// The primitive 2N-th root of unity ψ defining the evaluation points.
    #[inline]
    pub fn psi(&self) -> u64 {
        self.psi
    }

    /// The engine computing the transforms.
    #[inline]
    pub fn engine(&self) -> NttEngine {
        self.engine
    }

    /// Forward negacyclic NTT in place: coefficients (standard order, each `< q`) to
    /// evaluations in bit-reversed order (each `< q`).
    ///
    /// # Panics
    /// If `a.len() != N` (a programming error; backends check lengths first).
    pub fn forward(&self, a: &mut [u64]) {
        assert_eq!(a.len(), self.n, "NTT length");
        match &self.inner {
            #[cfg(feature = "tfhe-ntt")]
            Inner::Tfhe(p) => p.fwd(a),
            #[cfg(feature = "concrete-ntt")]
            Inner::Concrete(p) => p.fwd(a),
            Inner::Reference(t) => self.reference_forward(t, a),
        }
    }

    /// Inverse negacyclic NTT in place (exact: includes the factor `N^{-1}`).
    ///
    /// # Panics
    /// If `a.len() != N`.
    pub fn inverse(&self, a: &mut [u64]) {
        assert_eq!(a.len(), self.n, "NTT length");
        match &self.inner {
            #[cfg(feature = "tfhe-ntt")]
            Inner::Tfhe(p) => {
                p.inv(a);
                p.normalize(a);
            }
            #[cfg(feature = "concrete-ntt")]
            Inner::Concrete(p) => {
                p.inv(a);
                p.normalize(a);
            }
            Inner::Reference(t) => self.reference_inverse(t, a),
        }
    }

    /// `N^{-1} mod q`.
    pub fn n_inv(&self) -> u64 {
        self.n_inv
    }

    fn reference_forward(&self, t: &ReferenceTables, a: &mut [u64]) {
        let m = &self.modulus;
        let n = self.n;
        let mut half = n;
        let mut groups = 1;
        while groups < n {
            half >>= 1;
            for i in 0..groups {
                let (w, ws) = (t.psi_brev[groups + i], t.psi_brev_shoup[groups + i]);
                let start = 2 * i * half;
                for j in start..start + half {
                    let u = a[j];
                    let v = m.mul_shoup(a[j + half], w, ws);
                    a[j] = m.add(u, v);
                    a[j + half] = m.sub(u, v);
                }
            }
            groups <<= 1;
        }
    }

    fn reference_inverse(&self, t: &ReferenceTables, a: &mut [u64]) {
        let m = &self.modulus;
        let n = self.n;
        let mut half = 1;
        let mut groups = n;
        while groups > 1 {
            let h = groups >> 1;
            for i in 0..h {
                let (w, ws) = (t.psi_inv_brev[h + i], t.psi_inv_brev_shoup[h + i]);
                let start = 2 * i * half;
                for j in start..start + half {
                    let u = a[j];
                    let v = a[j + half];
                    a[j] = m.add(u, v);
                    a[j + half] = m.mul_shoup(m.sub(u, v), w, ws);
                }
            }
            half <<= 1;
            groups = h;
        }
        for x in a.iter_mut() {
            *x = m.mul_shoup(*x, self.n_inv, self.n_inv_shoup);
        }
    }
}

/// Schoolbook negacyclic product `a · b mod (X^N + 1, q)`, O(N²); the ground truth for tests.
///
/// # Panics
/// If the lengths differ.
pub fn negacyclic_schoolbook(a: &[u64], b: &[u64], m: &Modulus) -> Vec<u64> {
    assert_eq!(a.len(), b.len());
    let n = a.len();
    let mut acc = vec![0u128; 2 * n];
    for (i, &x) in a.iter().enumerate() {
        for (j, &y) in b.iter().enumerate() {
            acc[i + j] += m.mul(x, y) as u128;
        }
    }
    (0..n)
        .map(|k| {
            let lo = m.reduce_u128(acc[k]);
            let hi = m.reduce_u128(acc[k + n]);
            m.sub(lo, hi)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::primes::ntt_primes;
    use proptest::prelude::*;

    fn primes(n: usize) -> Vec<u64> {
        let mut v = ntt_primes(42, n, 1, &[]).unwrap();
        v.extend(ntt_primes(50, n, 1, &[]).unwrap());
        v.extend(ntt_primes(60, n, 1, &[]).unwrap());
        v
    }

    #[test]
    fn engines_agree_bit_for_bit() {
        for logn in [4u32, 6, 10, 12] {
            let n = 1 << logn;
            for q in primes(n) {
                let plans: Vec<NttPlan> = NttEngine::available()
                    .into_iter()
                    .map(|e| NttPlan::with_engine(n, q, e).unwrap())
                    .collect();
                let a: Vec<u64> = (0..n as u64)
                    .map(|i| i.wrapping_mul(0x9E37_79B9_7F4A_7C15) % q)
                    .collect();
                let outs: Vec<Vec<u64>> = plans
                    .iter()
                    .map(|p| {
                        let mut x = a.clone();
                        p.forward(&mut x);
                        x
                    })
                    .collect();
                for (p, o) in plans.iter().zip(&outs) {
                    assert_eq!(o, &outs[0], "engine {:?} q={q} n={n}", p.engine());
                    assert!(o.iter().all(|&v| v < q));
                    assert_eq!(p.psi(), plans[0].psi());
                }
            }
        }
    }

    #[test]
    fn rejects_bad_parameters() {
        assert!(matches!(
            NttPlan::new(12, 97),
            Err(MathError::InvalidRingDegree(12))
        ));
        assert!(matches!(
            NttPlan::new(16, 101),
            Err(MathError::NotNttFriendly { .. })
        ));
        let q = ntt_primes(30, 16, 1, &[]).unwrap()[0];
        assert!(NttPlan::reference_with_root(16, q, 1).is_err());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        #[test]
        fn round_trip_and_schoolbook(logn in 4u32..9, which in 0usize..3, seed in any::<u64>()) {
            let n = 1usize << logn;
            let q = primes(n)[which];
            let m = Modulus::new(q).unwrap();
            let mut s = seed | 1;
            let mut next = || { s ^= s << 13; s ^= s >> 7; s ^= s << 17; s % q };
            let a: Vec<u64> = (0..n).map(|_| next()).collect();
            let b: Vec<u64> = (0..n).map(|_| next()).collect();
            let want = negacyclic_schoolbook(&a, &b, &m);
            for e in NttEngine::available() {
                let p = NttPlan::with_engine(n, q, e).unwrap();
                let (mut x, mut y) = (a.clone(), b.clone());
                p.forward(&mut x);
                p.forward(&mut y);
                let mut back = x.clone();
                p.inverse(&mut back);
                prop_assert_eq!(&back, &a);
                let mut z: Vec<u64> = x.iter().zip(&y).map(|(&u, &v)| m.mul(u, v)).collect();
                p.inverse(&mut z);
                prop_assert_eq!(&z, &want);
            }
        }
    }
}
