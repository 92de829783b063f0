//! Polynomial evaluation reaches the optimal depth `⌈log2(d+1)⌉` for every degree
//! 1…255, in the Chebyshev and power bases and for odd and even polynomials, checked by
//! evaluating each polynomial on a ciphertext (N = 2^10, insecure) and comparing the
//! output level and the decrypted values with the float64 reference.

use ckks::circuits::Polynomial;
use ckks::he_math::CpuBackend;
use ckks::security::SecurityLevel;
use ckks::{
    Ciphertext, Complex64, Context, EvaluationKeyRequest, Evaluator, KeyGenerator,
    ParametersLiteral, SecretDistribution, SecretKey,
};
use rand::{Rng, SeedableRng, rngs::StdRng};
use std::sync::Arc;

type Cpu = CpuBackend;

struct Setup {
    ctx: Arc<Context<Cpu>>,
    sk: SecretKey<Cpu>,
    eval: Evaluator<Cpu>,
}

/// N = 2^10, nine 45-bit levels above a 55-bit `q_0`: room for depth 8 plus one level
/// for an affine map.
fn setup() -> Setup {
    let lit = ParametersLiteral {
        log_n: 10,
        log_q: [vec![55], vec![45; 9]].concat(),
        log_q_boot: vec![],
        log_p: vec![61, 61],
        dnum: 5,
        secret: SecretDistribution::UniformTernary,
        sigma: 3.2,
        log_scale: 45,
        security: SecurityLevel::NotSet,
    };
    let ctx = Context::new_cpu(lit).unwrap();
    let mut kg = KeyGenerator::new(&ctx);
    let sk = kg.gen_secret_key().unwrap();
    let keys = kg
        .gen_evaluation_keys(
            &sk,
            &EvaluationKeyRequest {
                relinearization: true,
                ..Default::default()
            },
        )
        .unwrap();
    let eval = Evaluator::new(&ctx, Arc::new(keys));
    Setup { ctx, sk, eval }
}

impl Setup {
    fn enc(&self, z: &[f64]) -> Ciphertext<Cpu> {
        let level = self.ctx.params().max_level();
        let s = self.ctx.params().scale_at(level).unwrap();
        let z: Vec<Complex64> = z.iter().map(|&v| Complex64::new(v, 0.0)).collect();
        self.sk
            .encrypt(&self.ctx.encode_complex(&z, level, s).unwrap())
            .unwrap()
    }

    /// Evaluates `p`, checks the level against `depth` and returns `log2` of the max error.
    fn check(&self, ct: &Ciphertext<Cpu>, xs: &[f64], p: &Polynomial, depth: usize) -> f64 {
        let out = self.eval.evaluate_polynomial(ct, p).unwrap();
        assert_eq!(
            ct.level() - out.level(),
            depth,
            "degree {} ({:?}): levels consumed",
            p.degree(),
            p.basis()
        );
        assert_eq!(
            out.scale(),
            self.ctx.params().scale_at(out.level()).unwrap()
        );
        let got = self
            .ctx
            .decode_complex(&self.sk.decrypt(&out).unwrap())
            .unwrap();
        xs.iter()
            .zip(&got)
            .map(|(&x, g)| (g.re - p.eval(x)).abs())
            .fold(0.0f64, f64::max)
            .log2()
    }
}

fn optimal(d: usize) -> usize {
    (d + 1).next_power_of_two().trailing_zeros() as usize
}

/// Coefficients decaying like `1/(i+1)²`, random signs, zero where `keep(i)` is false; the
/// leading one is non-zero.
fn coeffs(d: usize, rng: &mut StdRng, keep: impl Fn(usize) -> bool) -> Vec<f64> {
    (0..=d)
        .map(|i| {
            if i != d && !keep(i) {
                return 0.0;
            }
            let mag = rng.random_range(0.5..1.0) / ((i + 1) * (i + 1)) as f64;
            if rng.random_bool(0.5) { mag } else { -mag }
        })
        .collect()
}

#[test]
fn every_degree_up_to_255_in_optimal_depth() {
    let s = setup();
    let mut rng = StdRng::seed_from_u64(7);
    let slots = s.ctx.params().max_slots();
    let xs: Vec<f64> = (0..slots).map(|_| rng.random_range(-1.0..1.0)).collect();
    let ct = s.enc(&xs);
    let mapped: Vec<f64> = xs.iter().map(|x| 3.0 * x + 1.0).collect();
    let ct_mapped = s.enc(&mapped);
    let mut worst = f64::NEG_INFINITY;
    for d in 1..=255usize {
        // Dense Chebyshev on [−1, 1]: every degree.
        let p = Polynomial::chebyshev(coeffs(d, &mut rng, |_| true), -1.0, 1.0).unwrap();
        assert_eq!(p.depth(), optimal(d));
        worst = worst.max(s.check(&ct, &xs, &p, optimal(d)));
        // Power basis, odd and even polynomials (Chebyshev), and an interval other than
        // [−1, 1] (one more level for its affine map) on a spread of degrees.
        if d <= 40 || d % 17 == 0 || d == 255 {
            let p = Polynomial::monomial(coeffs(d, &mut rng, |_| true)).unwrap();
            assert_eq!(p.depth(), optimal(d));
            worst = worst.max(s.check(&ct, &xs, &p, optimal(d)));
            let parity = d % 2;
            let p =
                Polynomial::chebyshev(coeffs(d, &mut rng, |i| i % 2 == parity), -1.0, 1.0).unwrap();
            worst = worst.max(s.check(&ct, &xs, &p, optimal(d)));
            let p =
                Polynomial::chebyshev(coeffs(d.min(127), &mut rng, |_| true), -2.0, 4.0).unwrap();
            assert_eq!(p.depth(), optimal(d.min(127)) + 1);
            worst = worst.max(s.check(&ct_mapped, &mapped, &p, optimal(d.min(127)) + 1));
        }
    }
    eprintln!("worst error over all polynomials: 2^{worst:.1}");
    assert!(worst < -25.0, "2^{worst}");
}

#[test]
fn off_scale_input_folds_the_affine_map() {
    let s = setup();
    let mut rng = StdRng::seed_from_u64(9);
    let slots = s.ctx.params().max_slots();
    let xs: Vec<f64> = (0..slots).map(|_| rng.random_range(-4.0..4.0)).collect();
    // Off the canonical scale (2^40 where the level's is about 2^45).
    let level = s.ctx.params().max_level();
    let z: Vec<Complex64> = xs.iter().map(|&v| Complex64::new(v, 0.0)).collect();
    let ct =
        s.sk.encrypt(&s.ctx.encode_complex(&z, level, 2f64.powi(40)).unwrap())
            .unwrap();
    assert_ne!(ct.scale(), s.ctx.params().scale_at(ct.level()).unwrap());
    let p = Polynomial::chebyshev_interpolant(|t| (t / 3.0).tanh(), -4.0, 4.0, 31).unwrap();
    assert_eq!(p.depth(), 6);
    // One level brings the input to its canonical scale and maps [−4, 4] onto [−1, 1].
    let e = s.check(&ct, &xs, &p, 6);
    assert!(e < -25.0, "2^{e}");
}

/// `evaluate_polynomial_to_scale` lands on the scale asked for, at the same level as the
/// canonical evaluation, and reads the same values (the scale a bootstrap's EvalMod
/// lands on to carry `q_0/(2πΔ_0)` in the SlotsToCoeffs-first order).
#[test]
fn target_scale_costs_no_level() {
    let s = setup();
    let mut rng = StdRng::seed_from_u64(21);
    let slots = s.ctx.params().max_slots();
    let xs: Vec<f64> = (0..slots).map(|_| rng.random_range(-1.0..1.0)).collect();
    let ct = s.enc(&xs);
    let mut crng = StdRng::seed_from_u64(5);
    for (d, even) in [(7, false), (60, true), (31, false)] {
        let p = Polynomial::chebyshev(coeffs(d, &mut crng, |i| !even || i % 2 == 0), -1.0, 1.0)
            .unwrap();
        let canonical = s.eval.evaluate_polynomial(&ct, &p).unwrap();
        for factor in [2f64.powf(-7.35), 1.0 / 3.0, 2f64.powf(6.5)] {
            let want = s.ctx.params().scale_at(canonical.level()).unwrap() * factor;
            let out = s.eval.evaluate_polynomial_to_scale(&ct, &p, want).unwrap();
            assert_eq!(out.level(), canonical.level(), "degree {d}");
            assert_eq!(out.scale(), want);
            let got = s.ctx.decode_complex(&s.sk.decrypt(&out).unwrap()).unwrap();
            let e = xs
                .iter()
                .zip(&got)
                .map(|(&x, g)| (g.re - p.eval(x)).abs())
                .fold(0.0f64, f64::max)
                .log2();
            // The scale's factor moves the output rounding by its own size.
            assert!(
                e < -25.0 + factor.log2().min(0.0).abs(),
                "degree {d}, ×{factor}: 2^{e}"
            );
        }
    }
    assert!(
        s.eval
            .evaluate_polynomial_to_scale(
                &ct,
                &Polynomial::chebyshev(vec![0.0, 1.0], -1.0, 1.0).unwrap(),
                f64::NAN
            )
            .is_err()
    );
}

/// `evaluate_polynomial_weighted` gives `w ⊙ p(x)` at the depth of the plain
/// evaluation: exactly zero (up to noise) where a weight is zero, whatever `x` holds
/// there, for Chebyshev and power bases, odd, even and dense polynomials; wrong weight
/// counts and non-finite weights are refused.
#[test]
fn weighted_polynomial_costs_no_level() {
    let s = setup();
    let mut rng = StdRng::seed_from_u64(33);
    let slots = s.ctx.params().max_slots();
    let xs: Vec<f64> = (0..slots).map(|_| rng.random_range(-1.0..1.0)).collect();
    let ws: Vec<f64> = (0..slots)
        .map(|i| match i % 4 {
            0 => 1.3,
            1 => 0.0,
            2 => -0.25,
            _ => 0.0,
        })
        .collect();
    let ct = s.enc(&xs);
    let mut crng = StdRng::seed_from_u64(8);
    for (d, even, cheb) in [
        (63, true, true),
        (7, false, true),
        (31, false, false),
        (1, false, true),
    ] {
        let c = coeffs(d, &mut crng, |i| !even || i % 2 == 0);
        let p = if cheb {
            Polynomial::chebyshev(c, -1.0, 1.0).unwrap()
        } else {
            Polynomial::monomial(c).unwrap()
        };
        let plain = s.eval.evaluate_polynomial(&ct, &p).unwrap();
        let out = s.eval.evaluate_polynomial_weighted(&ct, &p, &ws).unwrap();
        assert_eq!(out.level(), plain.level(), "degree {d}");
        assert_eq!(out.scale(), plain.scale(), "degree {d}");
        let got = s.ctx.decode_complex(&s.sk.decrypt(&out).unwrap()).unwrap();
        let e = xs
            .iter()
            .zip(&ws)
            .zip(&got)
            .map(|((&x, &w), g)| (g.re - w * p.eval(x)).abs())
            .fold(0.0f64, f64::max)
            .log2();
        assert!(e < -24.0, "degree {d}: 2^{e}");
    }
    let p = Polynomial::chebyshev(vec![0.5, 1.0], -1.0, 1.0).unwrap();
    assert!(
        s.eval
            .evaluate_polynomial_weighted(&ct, &p, &ws[1..])
            .is_err()
    );
    let mut bad = ws.clone();
    bad[3] = f64::INFINITY;
    assert!(s.eval.evaluate_polynomial_weighted(&ct, &p, &bad).is_err());
}
