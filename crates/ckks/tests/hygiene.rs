//! Secret hygiene: the copies of secret material that `ckks` makes while encrypting,
//! decrypting and generating keys are wiped (`Backend::zeroize`) before they are freed.
//!
//! A backend that delegates to the CPU backend and records every `zeroize` of a
//! polynomial that was not already zero counts the wipes per operation; removing any of
//! the `Wiped` guards in `keys.rs` / `encryption.rs` lowers a count below what is
//! asserted here. What this cannot see: host buffers wiped with `zeroize` directly
//! (sampled errors and ternary coefficients), which are covered by reading the code.
//! Because that backend overrides none of the trait's provided methods, it also checks
//! one of their defaults against the CPU backend's own (`dot_parts_runs`).

use ckks::he_math::{Backend, CpuBackend, Representation, Result, RingContext, RnsPoly};
use ckks::{Context, EvaluationKeyRequest, KeyGenerator, Parameters, presets};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The CPU backend, counting wipes of non-zero polynomials.
struct Counting {
    inner: CpuBackend,
    wipes: AtomicUsize,
}

impl Counting {
    fn take(&self) -> usize {
        self.wipes.swap(0, Ordering::SeqCst)
    }
}

type P = <CpuBackend as Backend>::Poly;

impl Backend for Counting {
    type Poly = P;
    fn name(&self) -> &'static str {
        "counting"
    }
    fn context(&self) -> &Arc<RingContext> {
        self.inner.context()
    }
    fn zero(&self, basis: &[usize], repr: Representation) -> Result<P> {
        self.inner.zero(basis, repr)
    }
    fn upload(&self, host: &RnsPoly) -> Result<P> {
        self.inner.upload(host)
    }
    fn download(&self, p: &P) -> Result<RnsPoly> {
        self.inner.download(p)
    }
    fn zeroize(&self, p: &mut P) {
        let was_secret = self
            .inner
            .download(p)
            .is_ok_and(|h| h.data().iter().any(|&x| x != 0));
        self.inner.zeroize(p);
        let now = self.inner.download(p).expect("download");
        assert!(now.data().iter().all(|&x| x == 0), "zeroize left data");
        if was_secret {
            self.wipes.fetch_add(1, Ordering::SeqCst);
        }
    }
    fn basis<'a>(&self, p: &'a P) -> &'a [usize] {
        self.inner.basis(p)
    }
    fn repr(&self, p: &P) -> Representation {
        self.inner.repr(p)
    }
    fn select_limbs(&self, p: &P, keep: &[usize]) -> Result<P> {
        self.inner.select_limbs(p, keep)
    }
    fn forward_ntt(&self, p: &mut P) -> Result<()> {
        self.inner.forward_ntt(p)
    }
    fn inverse_ntt(&self, p: &mut P) -> Result<()> {
        self.inner.inverse_ntt(p)
    }
    fn add_assign(&self, a: &mut P, b: &P) -> Result<()> {
        self.inner.add_assign(a, b)
    }
    fn sub_assign(&self, a: &mut P, b: &P) -> Result<()> {
        self.inner.sub_assign(a, b)
    }
    fn neg_assign(&self, a: &mut P) -> Result<()> {
        self.inner.neg_assign(a)
    }
    fn mul_assign(&self, a: &mut P, b: &P) -> Result<()> {
        self.inner.mul_assign(a, b)
    }
    fn mul_add_assign(&self, acc: &mut P, a: &P, b: &P) -> Result<()> {
        self.inner.mul_add_assign(acc, a, b)
    }
    fn compress_runs(&self, a: &P, run: usize) -> Result<P> {
        self.inner.compress_runs(a, run)
    }
    fn expand_runs(&self, a: &P, run: usize) -> Result<P> {
        self.inner.expand_runs(a, run)
    }
    fn scalar_mul_assign(&self, a: &mut P, scalars: &[u64]) -> Result<()> {
        self.inner.scalar_mul_assign(a, scalars)
    }
    fn scalar_mul_add_assign(&self, acc: &mut P, a: &P, scalars: &[u64]) -> Result<()> {
        self.inner.scalar_mul_add_assign(acc, a, scalars)
    }
    fn scalar_add_assign(&self, a: &mut P, scalars: &[u64]) -> Result<()> {
        self.inner.scalar_add_assign(a, scalars)
    }
    fn automorphism(&self, a: &P, galois_element: usize, out: &mut P) -> Result<()> {
        self.inner.automorphism(a, galois_element, out)
    }
    fn basis_convert(&self, a: &P, to: &[usize]) -> Result<P> {
        self.inner.basis_convert(a, to)
    }
    fn rescale(&self, a: &mut P) -> Result<()> {
        self.inner.rescale(a)
    }
    fn mod_up(&self, a: &P, digit: &[usize], special: &[usize]) -> Result<P> {
        self.inner.mod_up(a, digit, special)
    }
    fn mod_down(&self, a: &P, special: &[usize]) -> Result<P> {
        self.inner.mod_down(a, special)
    }
    fn mod_down_rescale(&self, a: &P, b: P, special: &[usize]) -> Result<P> {
        self.inner.mod_down_rescale(a, b, special)
    }
    fn mod_raise(&self, a: &P, target: &[usize]) -> Result<P> {
        self.inner.mod_raise(a, target)
    }
    fn key_switch_inner_product(
        &self,
        digits: &[P],
        key_b: &[P],
        key_a: ckks::he_math::UniformParts<'_, P>,
    ) -> Result<[P; 2]> {
        self.inner.key_switch_inner_product(digits, key_b, key_a)
    }
}

#[test]
fn secret_copies_are_wiped() {
    let params = Arc::new(Parameters::new(presets::insecure_n10_depth3()).unwrap());
    let inner = CpuBackend::new(params.ring()).unwrap();
    let ctx = Context::new(
        params,
        Counting {
            inner,
            wipes: AtomicUsize::new(0),
        },
    )
    .unwrap();
    let be = ctx.backend();
    let mut kg = KeyGenerator::new(&ctx);
    let sk = kg.gen_secret_key().unwrap();
    be.take();

    // Secret-key encryption: the restriction of `s` and `a·s`.
    let x = vec![0.25; ctx.params().n() / 2];
    let pt = ctx.encode_at_level(&x, ctx.params().max_level()).unwrap();
    let ct = sk.encrypt(&pt).unwrap();
    assert!(be.take() >= 2, "encryption under the secret key");
    // Decryption: the restriction of `s`.
    let _ = sk.decrypt(&ct).unwrap();
    assert!(be.take() >= 1, "decryption");
    // Public-key encryption: the ephemeral `u`.
    let pk = kg.gen_public_key(&sk).unwrap();
    be.take();
    let _ = pk.encrypt(&pt).unwrap();
    assert!(be.take() >= 1, "public-key encryption");
    // Key generation: a relinearization key (`s²`, `a·s` per digit, gadget products)
    // and one rotation key (`σ(s)`).
    let req = EvaluationKeyRequest {
        relinearization: true,
        rotations: vec![1],
        conjugation: false,
        encapsulation: None,
        rotations_up_to: Vec::new(),
    };
    let _ = kg.gen_evaluation_keys(&sk, &req).unwrap();
    let keygen = be.take();
    assert!(keygen >= 4, "key generation wiped {keygen} copies");
    // The secret key itself when dropped.
    drop(sk);
    assert_eq!(be.take(), 1, "the secret key on drop");
}

/// The counting backend overrides none of the trait's provided methods, so it also runs
/// their defaults: `Backend::dot_parts_runs`' (expand every compressed right factor,
/// then `dot_parts`) must give the CPU backend's fused sums bit for bit.
#[test]
fn default_dot_parts_runs_matches_the_fused_one() {
    use ckks::he_math::sampling::Csprng;
    let params = Arc::new(Parameters::new(presets::insecure_n10_depth3()).unwrap());
    let inner = CpuBackend::new(params.ring()).unwrap();
    let be = Counting {
        inner: CpuBackend::new(params.ring()).unwrap(),
        wipes: AtomicUsize::new(0),
    };
    let ring = inner.context().clone();
    let n = ring.n();
    let basis: Vec<usize> = (0..3).collect();
    let mut rng = Csprng::from_seed([7; 32]);
    // Uniform coefficients on the multiples of `run` (a polynomial in X^run), NTT form.
    let random = |rng: &mut Csprng, run: usize| {
        let mut p = RnsPoly::zero(n, &basis, Representation::Coeff);
        for (j, &bi) in basis.iter().enumerate() {
            rng.uniform_mod(ring.modulus(bi), p.limb_mut(j));
            for (i, w) in p.limb_mut(j).iter_mut().enumerate() {
                if i % run != 0 {
                    *w = 0;
                }
            }
        }
        let mut p = inner.upload(&p).unwrap();
        inner.forward_ntt(&mut p).unwrap();
        p
    };
    for (run, terms) in [(2usize, 3usize), (4, 40)] {
        let xs: Vec<[P; 2]> = (0..terms)
            .map(|_| [random(&mut rng, 1), random(&mut rng, 1)])
            .collect();
        let ys: Vec<P> = (0..terms)
            .map(|_| {
                let y = random(&mut rng, run);
                inner.compress_runs(&y, run).unwrap()
            })
            .collect();
        let x_refs: Vec<&[P]> = xs.iter().map(|g| &g[..]).collect();
        let y_refs: Vec<&P> = ys.iter().collect();
        let fused = inner.dot_parts_runs(&x_refs, &y_refs, run).unwrap();
        let default = be.dot_parts_runs(&x_refs, &y_refs, run).unwrap();
        assert_eq!(fused, default, "run {run}, {terms} terms");
    }
    assert_eq!(be.take(), 0, "no wipes in public arithmetic");
}
