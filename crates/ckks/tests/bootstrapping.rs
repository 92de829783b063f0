//! Circuits at small insecure parameters against float64 references: polynomial
//! evaluation, linear transformations, each bootstrapping stage, full and sparse slots,
//! repeated refreshes, and error cases. Errors are `log2(max |error|)`.

use ckks::circuits::bootstrapping::presets;
use ckks::circuits::{Bootstrapper, GIANT_STEP_WEIGHT, LinearTransform, Polynomial, dft};
use ckks::he_math::{Backend, CpuBackend};
use ckks::{
    Ciphertext, CkksError, Complex64, Context, EvaluationKeyRequest, Evaluator, KeyGenerator,
    SecretKey, presets as scheme_presets,
};
use rand::{Rng, SeedableRng, rngs::StdRng};
use std::collections::BTreeMap;
use std::f64::consts::PI;
use std::sync::{Arc, OnceLock};

fn log2_err(got: &[Complex64], want: &[Complex64]) -> f64 {
    assert_eq!(got.len(), want.len());
    got.iter()
        .zip(want)
        .map(|(a, b)| (a - b).norm())
        .fold(0.0f64, f64::max)
        .log2()
}

/// `n` complex values with real and imaginary parts uniform in [-1, 1].
fn complex_uniform(n: usize, seed: u64) -> Vec<Complex64> {
    let mut r = StdRng::seed_from_u64(seed);
    (0..n)
        .map(|_| Complex64::new(r.random_range(-1.0..1.0), r.random_range(-1.0..1.0)))
        .collect()
}

fn real_uniform(n: usize, lo: f64, hi: f64, seed: u64) -> Vec<Complex64> {
    let mut r = StdRng::seed_from_u64(seed);
    (0..n)
        .map(|_| Complex64::new(r.random_range(lo..hi), 0.0))
        .collect()
}

type Cpu = CpuBackend;

struct Keys {
    ctx: Arc<Context<Cpu>>,
    sk: SecretKey<Cpu>,
    eval: Arc<Evaluator<Cpu>>,
}

impl Keys {
    fn enc(&self, z: &[Complex64], level: usize) -> Ciphertext<Cpu> {
        let s = self.ctx.params().scale_at(level).unwrap();
        self.sk
            .encrypt(&self.ctx.encode_complex(z, level, s).unwrap())
            .unwrap()
    }

    fn dec(&self, ct: &Ciphertext<Cpu>) -> Vec<Complex64> {
        self.ctx
            .decode_complex(&self.sk.decrypt(ct).unwrap())
            .unwrap()
    }
}

/// Keys for the N = 2^12 bootstrapping preset, full slots (2048) and 512 sparse slots.
fn boot_keys() -> &'static Keys {
    static K: OnceLock<Keys> = OnceLock::new();
    K.get_or_init(|| {
        let (lit, cfg) = presets::insecure_n12_boot();
        let ctx = Context::new_cpu(lit).unwrap();
        let mut kg = KeyGenerator::new(&ctx);
        let sk = kg.gen_secret_key().unwrap();
        let mut req = cfg.key_request(ctx.params(), 2048).unwrap();
        req.rotations
            .extend(cfg.rotations(ctx.params(), 512).unwrap());
        let keys = kg.gen_evaluation_keys(&sk, &req).unwrap();
        let eval = Arc::new(Evaluator::new(&ctx, Arc::new(keys)));
        Keys { ctx, sk, eval }
    })
}

fn bootstrapper(slots: usize) -> Bootstrapper<Cpu> {
    let (_, cfg) = presets::insecure_n12_boot();
    Bootstrapper::new(boot_keys().eval.clone(), cfg, slots).unwrap()
}

// ----- polynomial evaluation -----------------------------------------------------------

#[test]
fn chebyshev_and_monomial_polynomials() {
    let k = boot_keys();
    let top = k.ctx.params().max_level();
    let x = real_uniform(2048, -1.0, 1.0, 1);
    let ct = k.enc(&x, top);
    let cases: Vec<(Polynomial, &str)> = vec![
        (
            Polynomial::chebyshev_interpolant(|t| (3.0 * t).exp() / 20.0, -1.0, 1.0, 31).unwrap(),
            "exp(3x)/20, degree 31",
        ),
        (
            Polynomial::chebyshev_interpolant(|t| 1.0 / (1.0 + (-t).exp()), -8.0, 8.0, 63).unwrap(),
            "sigmoid on [-8, 8], degree 63 (affine map)",
        ),
        (
            Polynomial::chebyshev_interpolant(|t| (2.0 * t).sin(), -1.0, 1.0, 27).unwrap(),
            "sin(2x), odd, degree 27",
        ),
        (
            Polynomial::monomial(vec![0.5, -1.0, 0.25, 0.0, 0.125, 0.3, -0.2]).unwrap(),
            "power basis, degree 6",
        ),
        (Polynomial::monomial(vec![0.75]).unwrap(), "constant"),
    ];
    for (p, what) in cases {
        let (lo, hi) = match p.basis() {
            ckks::PolynomialBasis::Chebyshev { a, b } => (a, b),
            ckks::PolynomialBasis::Monomial => (-1.0, 1.0),
        };
        // Map the inputs into the polynomial's interval.
        let xs: Vec<Complex64> = x
            .iter()
            .map(|v| Complex64::new(lo + (v.re + 1.0) / 2.0 * (hi - lo), 0.0))
            .collect();
        let ct = if (lo, hi) == (-1.0, 1.0) {
            ct.clone()
        } else {
            k.enc(&xs, top)
        };
        let out = k.eval.evaluate_polynomial(&ct, &p).unwrap();
        let want: Vec<Complex64> = xs
            .iter()
            .map(|v| Complex64::new(p.eval(v.re), 0.0))
            .collect();
        let e = log2_err(&k.dec(&out), &want);
        eprintln!("{what}: depth {}, error 2^{e:.1}", p.depth());
        assert_eq!(out.level(), top - p.depth(), "{what}");
        assert_eq!(out.scale(), k.ctx.params().scale_at(out.level()).unwrap());
        assert!(e < -30.0, "{what}: 2^{e}");
    }
}

#[test]
fn polynomial_depth_is_near_optimal() {
    for d in [1usize, 2, 3, 7, 8, 15, 16, 30, 31, 60, 63, 100, 127] {
        let p = Polynomial::chebyshev(vec![0.1; d + 1], -1.0, 1.0).unwrap();
        let optimal = (usize::BITS - d.leading_zeros()) as usize;
        assert!(
            p.depth() >= optimal && p.depth() <= optimal + 1,
            "degree {d}: depth {}",
            p.depth()
        );
    }
}

#[test]
fn polynomial_errors() {
    let k = boot_keys();
    let ct = k.enc(&real_uniform(2048, -1.0, 1.0, 2), 3);
    let deep = Polynomial::chebyshev(vec![0.1; 64], -1.0, 1.0).unwrap();
    assert!(matches!(
        k.eval.evaluate_polynomial(&ct, &deep),
        Err(CkksError::LevelTooLow { .. })
    ));
    assert!(Polynomial::chebyshev(vec![1.0], 1.0, -1.0).is_err());
    assert!(Polynomial::monomial(vec![]).is_err());
    assert!(Polynomial::monomial(vec![f64::NAN]).is_err());
}

// ----- linear transformations ----------------------------------------------------------

/// A transform on `n` slots with random complex diagonals at `offsets`, and a random
/// input vector.
fn random_transform(n: usize, offsets: &[usize], seed: u64) -> (LinearTransform, Vec<Complex64>) {
    let mut r = StdRng::seed_from_u64(seed);
    let mut random = |len: usize| -> Vec<Complex64> {
        (0..len)
            .map(|_| Complex64::new(r.random_range(-1.0..1.0), r.random_range(-1.0..1.0)))
            .collect()
    };
    let diags: BTreeMap<usize, Vec<Complex64>> = offsets.iter().map(|&d| (d, random(n))).collect();
    (LinearTransform::new(n, diags).unwrap(), random(n))
}

/// A fresh secret key and an evaluator with exactly the rotation keys `m` names.
fn transform_keys(
    ctx: &Arc<Context<CpuBackend>>,
    m: &LinearTransform,
) -> (SecretKey<CpuBackend>, Evaluator<CpuBackend>) {
    let mut kg = KeyGenerator::new(ctx);
    let sk = kg.gen_secret_key().unwrap();
    let req = EvaluationKeyRequest {
        relinearization: false,
        rotations: m.rotations(),
        conjugation: false,
        encapsulation: None,
        rotations_up_to: Vec::new(),
    };
    let ev = Evaluator::new(ctx, Arc::new(kg.gen_evaluation_keys(&sk, &req).unwrap()));
    (sk, ev)
}

/// `x` encrypted under `sk` at `enc`'s level and input scale, then transformed by `ev`:
/// the input and output ciphertexts and the decrypted output.
fn transform_encrypted(
    ctx: &Arc<Context<CpuBackend>>,
    sk: &SecretKey<CpuBackend>,
    ev: &Evaluator<CpuBackend>,
    enc: &ckks::circuits::EncodedLinearTransform<CpuBackend>,
    x: &[Complex64],
) -> (
    Ciphertext<CpuBackend>,
    Ciphertext<CpuBackend>,
    Vec<Complex64>,
) {
    let ct = sk
        .encrypt(
            &ctx.encode_complex(x, enc.level(), enc.input_scale())
                .unwrap(),
        )
        .unwrap();
    let out = ev.linear_transform(&ct, enc).unwrap();
    let got = ctx.decode_complex(&sk.decrypt(&out).unwrap()).unwrap();
    (ct, out, got)
}

#[test]
fn linear_transform_matches_plaintext() {
    let k = boot_keys();
    // Diagonals at a few offsets, including ones far apart.
    let (m, x) = random_transform(2048, &[0, 1, 2, 3, 5, 8, 100, 2047], 3);
    let want = m.apply(&x).unwrap();
    // Keys for exactly the rotations the transform names.
    let (sk, ev) = transform_keys(&k.ctx, &m);
    let level = 6;
    let p = k.ctx.params();
    let (s_in, s_out) = (p.scale_at(level).unwrap(), p.scale_at(level - 1).unwrap());
    let enc = m.encode(&k.ctx, level, s_in, s_out).unwrap();
    let (ct, out, got) = transform_encrypted(&k.ctx, &sk, &ev, &enc, &x);
    let e = log2_err(&got, &want);
    eprintln!(
        "random 8-diagonal transform (n1 = {}): 2^{e:.1}",
        m.baby_step()
    );
    // Full slots: `Auto` (the default) is single hoisting over encoded diagonals.
    assert_eq!(2 * m.slots(), p.n());
    let auto = m
        .encode_with(&k.ctx, level, s_in, s_out, Default::default())
        .unwrap();
    assert_eq!(auto.storage(), ckks::circuits::DiagonalStorage::Encoded);
    assert_eq!(auto.diagonal_bytes(), enc.diagonal_bytes());
    assert!(e < -30.0, "2^{e}");
    assert_eq!(out.level(), level - 1);
    assert_eq!(out.scale(), s_out);
    // Diagonals kept as coefficients and encoded when used: the same ciphertext, bit for
    // bit, from a twentieth of the memory or less.
    let lean = m
        .encode_with(
            &k.ctx,
            level,
            s_in,
            s_out,
            ckks::circuits::DiagonalStorage::Coefficients,
        )
        .unwrap();
    assert!(lean.diagonal_bytes() * (level + 1) <= enc.diagonal_bytes());
    let out_lean = ev.linear_transform(&ct, &lean).unwrap();
    assert_eq!(
        k.ctx.serialize_ciphertext(&out_lean).unwrap(),
        k.ctx.serialize_ciphertext(&out).unwrap()
    );
    // Diagonals over Q ∪ P, double hoisting: the same map within the noise, from
    // (ℓ + 1 + |P|)/(ℓ + 1) of the memory.
    let wide = m
        .encode_with(
            &k.ctx,
            level,
            s_in,
            s_out,
            ckks::circuits::DiagonalStorage::Extended,
        )
        .unwrap();
    let special = p.p_basis().len();
    assert_eq!(
        wide.diagonal_bytes() * (level + 1),
        enc.diagonal_bytes() * (level + 1 + special)
    );
    let out_wide = ev.linear_transform(&ct, &wide).unwrap();
    assert_eq!(out_wide.level(), level - 1);
    assert_eq!(out_wide.scale(), s_out);
    let e_wide = log2_err(
        &k.ctx
            .decode_complex(&sk.decrypt(&out_wide).unwrap())
            .unwrap(),
        &want,
    );
    eprintln!("double hoisting: 2^{e_wide:.1}");
    assert!(e_wide < -30.0, "2^{e_wide}");
    // Without the keys: an error naming the missing rotation.
    let keyless = Evaluator::new(&k.ctx, Arc::new(ckks::EvaluationKeySet::default()));
    assert!(matches!(
        keyless.linear_transform(&k.enc(&x, level), &wide),
        Err(CkksError::MissingGaloisKey { .. })
    ));
    assert!(matches!(
        keyless.linear_transform(&k.enc(&x, level), &enc),
        Err(CkksError::MissingGaloisKey { .. })
    ));
    // Wrong level / scale are errors.
    let wrong = k.enc(&x, level - 1);
    assert!(matches!(
        k.eval.linear_transform(&wrong, &enc),
        Err(CkksError::LevelMismatch(..))
    ));
}

/// Every baby-step span evaluates the same map (within the noise); the rotations, and so
/// the keys, follow the span; a span that is not a power of two in `1..=n` is an error.
#[test]
fn fixed_baby_step_spans_agree() {
    let k = boot_keys();
    let (m, x) = random_transform(512, &[0, 1, 2, 3, 5, 8, 64, 100, 300, 511], 5);
    let want = m.apply(&x).unwrap();
    let level = 4;
    let p = k.ctx.params();
    let (s_in, s_out) = (p.scale_at(level).unwrap(), p.scale_at(level - 1).unwrap());
    let chosen = m.baby_step();
    for n1 in [1, 4, chosen, 512] {
        let fixed = m.clone().with_baby_step(n1).unwrap();
        assert_eq!(fixed.baby_step(), n1);
        assert_eq!(fixed.apply(&x).unwrap(), want);
        let (sk, ev) = transform_keys(&k.ctx, &fixed);
        for storage in [
            ckks::circuits::DiagonalStorage::Encoded,
            ckks::circuits::DiagonalStorage::Extended,
        ] {
            let enc = fixed
                .encode_with(&k.ctx, level, s_in, s_out, storage)
                .unwrap();
            let (_, _, got) = transform_encrypted(&k.ctx, &sk, &ev, &enc, &x);
            let e = log2_err(&got, &want);
            assert!(e < -30.0, "n1 = {n1}, {storage:?}: 2^{e}");
        }
    }
    // The chosen span has the lowest weighted count of baby and giant rotations.
    let cost = |t: &LinearTransform| {
        let n1 = t.baby_step();
        let r = t.rotations();
        let babies = r.iter().filter(|&&k| (k as usize) < n1).count();
        babies + GIANT_STEP_WEIGHT * (r.len() - babies)
    };
    for n1 in [1, 2, 4, 8, 16, 32, 64, 128, 256, 512] {
        let c = cost(&m.clone().with_baby_step(n1).unwrap());
        assert!(c >= cost(&m), "n1 = {n1}: cost {c} < {}", cost(&m));
    }
    for bad in [0, 3, 1024] {
        assert!(matches!(
            m.clone().with_baby_step(bad),
            Err(CkksError::InvalidValue(_))
        ));
    }
}

/// Diagonals kept as coefficients on sparse slots (`2n < N` coefficients, placed with a
/// gap): the same ciphertext as with encoded diagonals (compressed by runs), bit for bit;
/// the compressed diagonals' memory; double hoisting on sparse slots.
#[test]
fn coefficient_diagonals_on_sparse_slots() {
    let k = boot_keys();
    let (m, x) = random_transform(256, &[0, 1, 7, 64, 255], 4);
    let (sk, ev) = transform_keys(&k.ctx, &m);
    let level = 5;
    let p = k.ctx.params();
    let (s_in, s_out) = (p.scale_at(level).unwrap(), p.scale_at(level - 1).unwrap());
    let ct = sk
        .encrypt(&k.ctx.encode_complex(&x, level, s_in).unwrap())
        .unwrap();
    let out = |storage| {
        let lt = m.encode_with(&k.ctx, level, s_in, s_out, storage).unwrap();
        ev.linear_transform(&ct, &lt).unwrap()
    };
    let lean = out(ckks::circuits::DiagonalStorage::Coefficients);
    assert_eq!(
        k.ctx.serialize_ciphertext(&lean).unwrap(),
        k.ctx
            .serialize_ciphertext(&out(ckks::circuits::DiagonalStorage::Encoded))
            .unwrap()
    );
    let got = k.ctx.decode_complex(&sk.decrypt(&lean).unwrap()).unwrap();
    assert!(log2_err(&got, &m.apply(&x).unwrap()) < -30.0);
    // The NTT-form diagonals of a plaintext on 256 slots repeat in runs of N/512 words,
    // kept once each: 1/run of the memory, over Q_ℓ or over Q_ℓ ∪ P.
    let run = p.n() / 512;
    let words = |storage, limbs: usize| {
        let lt = m.encode_with(&k.ctx, level, s_in, s_out, storage).unwrap();
        assert_eq!(
            lt.diagonal_bytes(),
            m.diagonals().len() * limbs * p.n() / run * 8
        );
    };
    words(ckks::circuits::DiagonalStorage::Encoded, level + 1);
    let special = p.p_basis().len();
    words(
        ckks::circuits::DiagonalStorage::Extended,
        level + 1 + special,
    );
    // `Auto` (the default) is double hoisting on sparse slots.
    let auto = m
        .encode_with(&k.ctx, level, s_in, s_out, Default::default())
        .unwrap();
    assert_eq!(auto.storage(), ckks::circuits::DiagonalStorage::Extended);
    let wide = out(ckks::circuits::DiagonalStorage::Extended);
    let got = k.ctx.decode_complex(&sk.decrypt(&wide).unwrap()).unwrap();
    let e = log2_err(&got, &m.apply(&x).unwrap());
    assert!(e < -30.0, "double hoisting on sparse slots: 2^{e}");
}

#[test]
fn linear_transform_algebra() {
    let n = 16;
    let dense: Vec<Vec<Complex64>> = (0..n)
        .map(|i| {
            (0..n)
                .map(|j| Complex64::new(((i * 3 + j * 5) % 7) as f64 - 3.0, (i + j) as f64 / 10.0))
                .collect()
        })
        .collect();
    let a = LinearTransform::from_dense(&dense).unwrap();
    let b = dft::fft_stage(n, 4, false).unwrap();
    let x: Vec<Complex64> = (0..n)
        .map(|i| Complex64::new(i as f64, -(i as f64) / 3.0))
        .collect();
    let ab = a.compose(&b).unwrap();
    let want = a.apply(&b.apply(&x).unwrap()).unwrap();
    assert!(log2_err(&ab.apply(&x).unwrap(), &want) < -40.0);
    // Dense product check of one row.
    let row0: Complex64 = (0..n).map(|j| dense[0][j] * x[j]).sum();
    assert!((a.apply(&x).unwrap()[0] - row0).norm() < 1e-9);
    // Lifting to 2n slots acts the same on a periodic vector.
    let x2: Vec<Complex64> = (0..2 * n).map(|i| x[i % n]).collect();
    let y2 = ab.lifted(2 * n).unwrap().apply(&x2).unwrap();
    assert!(log2_err(&y2[..n], &want) < -40.0 && log2_err(&y2[n..], &want) < -40.0);
    assert!(LinearTransform::new(12, BTreeMap::new()).is_err());
    assert!(LinearTransform::new(8, [(8usize, vec![Complex64::new(1.0, 0.0); 8])].into()).is_err());
}

// ----- bootstrapping stages ------------------------------------------------------------

/// The centred coefficients of the polynomial a ciphertext decrypts to.
fn decrypted_coefficients(k: &Keys, ct: &Ciphertext<Cpu>) -> Vec<f64> {
    let pt = k.sk.decrypt(ct).unwrap();
    let be = k.ctx.backend();
    let mut p = pt.poly().clone();
    be.inverse_ntt(&mut p).unwrap();
    be.download(&p)
        .unwrap()
        .to_bigint_centered(k.ctx.params().ring())
        .unwrap()
        .iter()
        .map(|x| x.to_string().parse::<f64>().unwrap())
        .collect()
}

#[test]
fn each_stage_against_float64() {
    let k = boot_keys();
    let bt = bootstrapper(2048);
    let n = 2048;
    let cfg = bt.config().clone();
    let q0 = k.ctx.params().q()[0] as f64;
    let kk = cfg.eval_mod_range();
    let z = real_uniform(n, -1.0, 1.0, 4);
    let ct = k.enc(&z, 0);

    // ModRaise: t = m + q0·I with |I| < K.
    let raised = bt.mod_raise(&ct).unwrap();
    assert_eq!(raised.level(), k.ctx.params().max_level());
    let t = decrypted_coefficients(k, &raised);
    let max_i = t.iter().map(|x| (x / q0).round().abs()).fold(0.0, f64::max);
    eprintln!("ModRaise: max |I| = {max_i}");
    assert!(max_i < f64::from(cfg.k) - 1.0);

    // CoeffsToSlots: bit-reversed coefficients over q0·K' (K' = K + 1/4), real and
    // imaginary halves.
    let u: Vec<Complex64> = (0..n)
        .map(|i| Complex64::new(t[i], t[n + i]) / (q0 * kk))
        .collect();
    let ur = dft::bit_reverse(&u);
    let re: Vec<Complex64> = ur.iter().map(|x| Complex64::new(x.re, 0.0)).collect();
    let im: Vec<Complex64> = ur.iter().map(|x| Complex64::new(x.im, 0.0)).collect();
    let halves = bt.coeffs_to_slots(&raised).unwrap();
    assert_eq!(halves.len(), 2);
    let (e_re, e_im) = (
        log2_err(&k.dec(&halves[0]), &re),
        log2_err(&k.dec(&halves[1]), &im),
    );
    eprintln!("CoeffsToSlots: 2^{e_re:.1}, 2^{e_im:.1}");
    assert!(e_re < -40.0 && e_im < -40.0);
    assert_eq!(
        halves[0].level(),
        k.ctx.params().max_level() - cfg.cts_levels
    );

    // EvalMod on a fresh encryption of the exact CtS output: sin(2πK' y).
    let fresh = k.enc(&re, halves[0].level());
    let em = bt.eval_mod(&fresh).unwrap();
    let want: Vec<Complex64> = re
        .iter()
        .map(|x| Complex64::new((2.0 * PI * kk * x.re).sin(), 0.0))
        .collect();
    let e = log2_err(&k.dec(&em), &want);
    eprintln!("EvalMod: 2^{e:.1}, depth {}", cfg.eval_mod_depth().unwrap());
    assert!(e < -30.0);
    assert_eq!(
        em.level(),
        halves[0].level() - cfg.eval_mod_depth().unwrap()
    );

    // SlotsToCoeffs on fresh encryptions of 2π·m/q0 (bit-reversed halves).
    let d0 = k.ctx.params().scale_at(0).unwrap();
    let m = k.ctx.embedding(n).unwrap().encode(&z).unwrap();
    let v: Vec<Complex64> = (0..n)
        .map(|i| Complex64::new(m[i], m[n + i]) * (2.0 * PI * d0 / q0))
        .collect();
    let vr = dft::bit_reverse(&v);
    let lvl = bt.output_level() + cfg.s2c_levels;
    let a = k.enc(
        &vr.iter()
            .map(|x| Complex64::new(x.re, 0.0))
            .collect::<Vec<_>>(),
        lvl,
    );
    let b = k.enc(
        &vr.iter()
            .map(|x| Complex64::new(x.im, 0.0))
            .collect::<Vec<_>>(),
        lvl,
    );
    let out = bt.slots_to_coeffs(&[a, b]).unwrap();
    let e = log2_err(&k.dec(&out), &z);
    eprintln!("SlotsToCoeffs: 2^{e:.1}");
    assert!(e < -25.0);
    assert_eq!(out.level(), bt.output_level());
    assert_eq!(out.scale(), k.ctx.params().scale_at(out.level()).unwrap());
}

#[test]
fn full_slot_bootstrap_real_and_complex() {
    let k = boot_keys();
    let bt = bootstrapper(2048);
    let z = real_uniform(2048, -1.0, 1.0, 5);
    let out = bt.bootstrap(&k.enc(&z, 0)).unwrap();
    let e = log2_err(&k.dec(&out), &z);
    eprintln!("full slots, real: level {} error 2^{e:.1}", out.level());
    assert_eq!(out.level(), bt.output_level());
    assert_eq!(out.level(), k.ctx.params().max_user_level());
    assert!(e < -20.0, "2^{e}");

    let zc = complex_uniform(2048, 6);
    // From a higher level: brought down to level 0 by the bootstrapper.
    let out = bt.bootstrap(&k.enc(&zc, 2)).unwrap();
    let e = log2_err(&k.dec(&out), &zc);
    eprintln!("full slots, complex: error 2^{e:.1}");
    assert!(e < -20.0, "2^{e}");
}

#[test]
fn sparse_slot_bootstrap() {
    let k = boot_keys();
    let bt = bootstrapper(512);
    let z = complex_uniform(512, 7);
    let out = bt.bootstrap(&k.enc(&z, 0)).unwrap();
    assert_eq!(out.slots(), 512);
    let e = log2_err(&k.dec(&out), &z);
    eprintln!("512 slots, complex: error 2^{e:.1}");
    assert!(e < -20.0, "2^{e}");
}

/// Double hoisting ([`ckks::circuits::DiagonalStorage::Extended`]) in the whole
/// circuit, full and sparse slots: as precise as single hoisting over encoded diagonals;
/// the default (`Auto`) is single hoisting on full slots, double on sparse ones.
#[test]
fn bootstrap_with_double_hoisting() {
    use ckks::circuits::{BootstrapperOptions, DiagonalStorage};
    let k = boot_keys();
    for (slots, seed, default) in [
        (2048, 21, DiagonalStorage::Encoded),
        (512, 22, DiagonalStorage::Extended),
    ] {
        let with = |diagonals| {
            let (_, cfg) = presets::insecure_n12_boot();
            let options = BootstrapperOptions {
                diagonals,
                ..Default::default()
            };
            Bootstrapper::with_options(k.eval.clone(), cfg, slots, options).unwrap()
        };
        let (wide, single) = (
            with(DiagonalStorage::Extended),
            with(DiagonalStorage::Encoded),
        );
        assert_eq!(bootstrapper(slots).diagonal_storage(), default);
        assert_eq!(wide.diagonal_storage(), DiagonalStorage::Extended);
        assert_eq!(wide.options().diagonals, DiagonalStorage::Extended);
        assert_eq!(
            bootstrapper(slots).options(),
            BootstrapperOptions::default()
        );
        let z = complex_uniform(slots, seed);
        let ct = k.enc(&z, 0);
        let e_wide = log2_err(&k.dec(&wide.bootstrap(&ct).unwrap()), &z);
        let e = log2_err(&k.dec(&single.bootstrap(&ct).unwrap()), &z);
        eprintln!("{slots} slots: double hoisting 2^{e_wide:.1}, single 2^{e:.1}");
        assert!(
            e_wide < -20.0 && e_wide < e + 1.0,
            "2^{e_wide} against 2^{e}"
        );
        assert!(wide.diagonal_bytes() > single.diagonal_bytes());
    }
}

#[test]
fn ten_refreshes_do_not_drift() {
    let k = boot_keys();
    let bt = bootstrapper(2048);
    let z = real_uniform(2048, -1.0, 1.0, 8);
    let mut ct = k.enc(&z, 0);
    let mut errs = Vec::new();
    for _ in 0..10 {
        ct = bt.bootstrap(&ct).unwrap();
        errs.push(log2_err(&k.dec(&ct), &z));
    }
    eprintln!("errors after each refresh: {errs:.1?}");
    // Independent errors add up like a random walk (~ +1.7 bits after 10), no blow-up.
    assert!(errs.iter().all(|&e| e < -19.0), "{errs:?}");
    assert!(errs[9] < errs[0] + 3.0);
}

#[test]
fn meta_bts_gains_precision_for_one_level() {
    let k = boot_keys();
    let bt = bootstrapper(2048);
    let z = complex_uniform(2048, 11);
    let ct = k.enc(&z, 0);
    let single = log2_err(&k.dec(&bt.bootstrap(&ct).unwrap()), &z);
    let out = bt
        .bootstrap_meta(&ct, ckks::circuits::DEFAULT_META_LOG_GAIN)
        .unwrap();
    assert_eq!(out.level(), bt.meta_output_level());
    assert_eq!(out.level() + 1, bt.output_level());
    assert_eq!(out.scale(), k.ctx.params().scale_at(out.level()).unwrap());
    let meta = log2_err(&k.dec(&out), &z);
    eprintln!("one pass 2^{single:.1}, Meta-BTS 2^{meta:.1}");
    // The second pass's error is scaled by 2^-16; what stays are the two final rescales'
    // roundings (about 2^-29 at N = 2^12 with its dense secret): 3.5–4.2 bits seen.
    assert!(
        meta < single - 2.0 && meta < -27.0,
        "one pass 2^{single}, two 2^{meta}"
    );
    // Ten two-pass refreshes in a row stay below one single pass's error.
    let mut c = ct;
    for _ in 0..10 {
        c = bt.bootstrap_meta(&c, 16).unwrap();
    }
    let chained = log2_err(&k.dec(&c), &z);
    eprintln!("ten Meta-BTS refreshes: 2^{chained:.1}");
    // Seen: 2^-26.7 … 2^-27.5 (ten single passes: about 2^-23.6).
    assert!(chained < -25.5, "2^{chained}");
    // Gains outside 1..=20 are refused.
    for g in [0, 21] {
        assert!(matches!(
            bt.bootstrap_meta(&k.enc(&z, 0), g),
            Err(CkksError::InvalidValue(_))
        ));
    }
}

#[test]
fn bootstrap_errors() {
    let k = boot_keys();
    let bt = bootstrapper(2048);
    // Wrong slot count.
    let small = k.enc(&real_uniform(512, -1.0, 1.0, 9), 0);
    assert!(matches!(
        bt.bootstrap(&small),
        Err(CkksError::SlotsMismatch(..))
    ));
    // Level 0 at a non-canonical scale.
    let s = k.ctx.params().scale_at(0).unwrap() * 2.0;
    let odd =
        k.sk.encrypt(&k.ctx.encode(&[0.5; 2048], 0, s).unwrap())
            .unwrap();
    assert!(matches!(
        bt.mod_raise(&odd),
        Err(CkksError::ScaleMismatch(..))
    ));
    // SlotsToCoeffs with the wrong number of halves.
    let x = k.enc(&real_uniform(2048, -1.0, 1.0, 10), bt.output_level() + 2);
    assert!(bt.slots_to_coeffs(&[x]).is_err());
    // Missing keys: an evaluator without the bootstrapping rotations.
    let mut kg = KeyGenerator::new(&k.ctx);
    let sk = kg.gen_secret_key().unwrap();
    let keys = kg
        .gen_evaluation_keys(
            &sk,
            &EvaluationKeyRequest {
                relinearization: true,
                rotations: vec![],
                conjugation: false,
                encapsulation: None,
                rotations_up_to: Vec::new(),
            },
        )
        .unwrap();
    let (_, cfg) = presets::insecure_n12_boot();
    let bare_eval = Arc::new(Evaluator::new(&k.ctx, Arc::new(keys)));
    assert!(matches!(
        Bootstrapper::new(bare_eval.clone(), cfg.clone(), 2048),
        Err(CkksError::MissingEncapsulationKeys(32))
    ));
    let no_encapsulation = ckks::BootstrappingConfig {
        encapsulation: None,
        k: 32,
        ..cfg.clone()
    };
    // Without encapsulation the dense secret makes K = 32 fail often: refused by default.
    assert!(matches!(
        Bootstrapper::new(bare_eval.clone(), no_encapsulation.clone(), 2048),
        Err(CkksError::InvalidParameters(m)) if m.contains("failure probability")
    ));
    let bare =
        Bootstrapper::with_failure_bound(bare_eval, no_encapsulation, 2048, f64::INFINITY).unwrap();
    let s0 = k.ctx.params().scale_at(0).unwrap();
    let ct = sk
        .encrypt(&k.ctx.encode(&[0.5; 2048], 0, s0).unwrap())
        .unwrap();
    assert!(matches!(
        bare.bootstrap(&ct),
        Err(CkksError::MissingGaloisKey { .. })
    ));
    // A chain too short for the circuit.
    let ctx = Context::new_cpu(scheme_presets::insecure_n12_depth6()).unwrap();
    let ev = Arc::new(Evaluator::new(
        &ctx,
        Arc::new(ckks::EvaluationKeySet::default()),
    ));
    assert!(matches!(
        Bootstrapper::new(ev, cfg.clone(), 2048),
        Err(CkksError::InvalidParameters(_))
    ));
    // Slot counts.
    assert!(cfg.rotations(k.ctx.params(), 3).is_err());
    assert!(cfg.rotations(k.ctx.params(), 4096).is_err());
}

#[test]
fn configuration_reports() {
    let (lit, cfg) = presets::n16_logqp1755_dense_boot();
    let params = ckks::Parameters::new(lit).unwrap();
    assert!(params.is_secure_128());
    assert_eq!(params.log_qp_bound_128(), Some(1772));
    assert!(params.encapsulation_log_q() <= 121.0);
    let depth = cfg.depth().unwrap();
    assert_eq!(params.max_level() - depth, params.max_user_level());
    assert_eq!(params.max_user_level(), 11);
    // Digits cut by bits: 4 digits at the top, the largest (6 bootstrapping primes)
    // below log P; groups of ⌈26/4⌉ = 7 primes would not be.
    assert_eq!(params.digits_at(params.max_level()), 4);
    println!("digit starts {:?}", params.digit_starts());
    let log_p: f64 = params.p().iter().map(|&p| (p as f64).log2()).sum();
    for j in 0..4 {
        let d: f64 = params
            .digit_basis(j, params.max_level())
            .iter()
            .map(|&i| (params.q()[i] as f64).log2())
            .sum();
        assert!(d < log_p, "digit {j}: {d:.1} bits, log P {log_p:.1}");
    }
    assert!(cfg.failure_log2(&params, 1 << 15) < -64.0);
    assert!(cfg.eval_mod_approximation_error().unwrap().log2() < -40.0);
    // Without encapsulation the same K would fail often: the bound says so.
    let plain = ckks::BootstrappingConfig {
        encapsulation: None,
        ..cfg.clone()
    };
    assert!(plain.failure_log2(&params, 1 << 15) > 0.0);
}

#[test]
fn bootstrap_without_encapsulation() {
    // ModRaise under the main secret itself needs a sparse one: weight 192 here
    // (K = 32 covers |I|, failure bound ~2^-27), not the preset's dense N/2.
    let (mut lit, cfg) = presets::insecure_n12_boot();
    lit.secret = ckks::SecretDistribution::SparseTernary {
        hamming_weight: 192,
    };
    let ctx = Context::new_cpu(lit).unwrap();
    let mut kg = KeyGenerator::new(&ctx);
    let sk = kg.gen_secret_key().unwrap();
    let req = EvaluationKeyRequest {
        encapsulation: None,
        ..cfg.key_request(ctx.params(), 2048).unwrap()
    };
    let keys = kg.gen_evaluation_keys(&sk, &req).unwrap();
    let eval = Arc::new(Evaluator::new(&ctx, Arc::new(keys)));
    let k = Keys { ctx, sk, eval };
    let cfg = ckks::BootstrappingConfig {
        encapsulation: None,
        k: 32,
        double_angle: 3,
        sine_degree: 60,
        ..cfg
    };
    // Its failure bound (about 2^-27) is above the default 2^-40: accepted explicitly.
    assert!(Bootstrapper::new(k.eval.clone(), cfg.clone(), 2048).is_err());
    let bt = Bootstrapper::with_failure_bound(k.eval.clone(), cfg, 2048, -20.0).unwrap();
    let z = real_uniform(2048, -1.0, 1.0, 11);
    let out = bt.bootstrap(&k.enc(&z, 0)).unwrap();
    let e = log2_err(&k.dec(&out), &z);
    eprintln!(
        "without encapsulation (K = 32): error 2^{e:.1}, level {}",
        out.level()
    );
    assert!(e < -20.0, "2^{e}");
}

#[test]
fn slots_to_coeffs_first_order() {
    let k = boot_keys();
    let (_, cfg) = presets::insecure_n12_boot();
    let top = k.ctx.params().max_level();
    let z = complex_uniform(2048, 12);
    let run = |shrink: u32| {
        let cfg = ckks::BootstrappingConfig {
            order: ckks::circuits::BootstrapOrder::SlotsToCoeffsFirst,
            s2c_shrink_log2: shrink,
            ..cfg.clone()
        };
        let bt = Bootstrapper::new(k.eval.clone(), cfg.clone(), 2048).unwrap();
        // No level for the factor q_0/(2πΔ_0): EvalMod lands on the scale that carries it.
        assert_eq!(
            bt.output_level(),
            top - cfg.cts_levels - cfg.eval_mod_depth().unwrap()
        );
        // Input at the top user level (SlotsToCoeffs needs s2c_levels = 2 levels).
        let out = bt.bootstrap(&k.enc(&z, 2)).unwrap();
        assert_eq!(out.level(), bt.output_level());
        assert_eq!(out.scale(), k.ctx.params().scale_at(out.level()).unwrap());
        (bt, out)
    };
    // Unshrunk, the slot values themselves become the coefficients EvalMod reduces, so
    // the sine's relative error (2π Δ_0/q_0)²/6 ≈ 2^-17.3 at q_0/Δ_0 = 2^10 bounds the
    // precision; shrunk by 2^-4 that falls by 8 bits and the noise grows by 4.
    let (_, out0) = run(0);
    let e0 = log2_err(&k.dec(&out0), &z);
    let (bt, out) = run(4);
    let e = log2_err(&k.dec(&out), &z);
    eprintln!(
        "SlotsToCoeffs first: level {}, error 2^{e0:.1} unshrunk, 2^{e:.1} shrunk by 2^-4",
        out.level()
    );
    assert!(e0 < -16.0 && e0 > -19.0, "2^{e0}");
    assert!(e < -22.0, "2^{e}");
    // Refresh again from the output (no level-0 input needed).
    let again = bt.bootstrap(&out).unwrap();
    assert!(log2_err(&k.dec(&again), &z) < -21.0);
    // Too low a level for SlotsToCoeffs, and sparse slots, are errors.
    assert!(matches!(
        bt.bootstrap(&k.enc(&z, 1)),
        Err(CkksError::LevelTooLow { .. })
    ));
    assert!(Bootstrapper::new(k.eval.clone(), bt.config().clone(), 512).is_err());
}
