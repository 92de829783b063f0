//! Noise flooding of decryptions (`ckks::flooding`): the estimate tracks the real noise,
//! the added noise has the announced size, fresh randomness each time, bad policies and
//! levels without room are refused.

use ckks::{CkksError, Context, EvaluationKeyRequest, Evaluator, Flooding, KeyGenerator, presets};
use rand::{Rng, SeedableRng, rngs::StdRng};
use std::sync::Arc;

fn max_abs(v: &[f64]) -> f64 {
    v.iter().fold(0f64, |m, x| m.max(x.abs()))
}

#[test]
fn flooding_follows_the_noise_and_adds_what_it_reports() {
    let ctx = Context::new_cpu(presets::insecure_n12_depth6()).unwrap();
    let mut kg = KeyGenerator::new(&ctx);
    let sk = kg.gen_secret_key().unwrap();
    let req = EvaluationKeyRequest {
        relinearization: true,
        rotations: vec![],
        conjugation: false,
        encapsulation: None,
        rotations_up_to: Vec::new(),
    };
    let eval = Evaluator::new(&ctx, Arc::new(kg.gen_evaluation_keys(&sk, &req).unwrap()));
    let slots = ctx.params().n() / 2;
    let mut r = StdRng::seed_from_u64(5);
    let x: Vec<f64> = (0..slots).map(|_| r.random_range(-1.0..1.0)).collect();
    let top = ctx.params().max_level();
    let ct = sk.encrypt(&ctx.encode_at_level(&x, top).unwrap()).unwrap();
    // Two multiplications: the noise grows well beyond a fresh encryption's.
    let sq = eval.mul_relin_rescale(&ct, &ct).unwrap();
    let quad = eval.mul_relin_rescale(&sq, &sq).unwrap();
    let want: Vec<f64> = x.iter().map(|v| v.powi(4)).collect();
    let pt = sk.decrypt(&quad).unwrap();
    let plain = ctx.decode(&pt).unwrap();

    // The real part's noise, as a polynomial (message units), against the estimate.
    let err: Vec<ckks::Complex64> = plain
        .iter()
        .zip(&want)
        .map(|(a, b)| ckks::Complex64::new(a - b, 0.0))
        .collect();
    let real_noise = max_abs(&ctx.embedding(slots).unwrap().encode(&err).unwrap());
    let f = Flooding::default();
    let a = ctx.decode_flooded(&pt, &f).unwrap();
    let t = a.report.noise_log2.exp2();
    assert!(
        real_noise <= 2.0 * t && t <= 16.0 * real_noise,
        "estimate 2^{:.1} vs real-part noise 2^{:.1}",
        a.report.noise_log2,
        real_noise.log2()
    );
    assert!((a.report.flooding_log2 - a.report.noise_log2 - f.log2_factor()).abs() < 1e-9);
    assert!((f.log2_factor() - (0.5 * 12f64.log2() + 15.0)).abs() < 1e-12);

    // The added noise: mean 0, standard deviation `slot_std` per slot.
    let d: Vec<f64> = a.values.iter().zip(&plain).map(|(a, b)| a - b).collect();
    let mean = d.iter().sum::<f64>() / d.len() as f64;
    let std = (d.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / d.len() as f64).sqrt();
    let expected = a.report.slot_std;
    assert!(
        (std / expected - 1.0).abs() < 0.1,
        "std {std:e} vs {expected:e}"
    );
    assert!(mean.abs() < 5.0 * expected / (d.len() as f64).sqrt());
    // It is far above the ciphertext's own error, and still a usable result.
    let own = max_abs(
        &plain
            .iter()
            .zip(&want)
            .map(|(a, b)| a - b)
            .collect::<Vec<_>>(),
    );
    assert!(
        expected > 1000.0 * own,
        "flooding {expected:e} vs error {own:e}"
    );
    assert!(max_abs(&d) < 7.0 * expected);

    // Fresh randomness every time.
    let b = ctx.decode_flooded(&pt, &f).unwrap();
    assert_ne!(a.values, b.values);
    assert_eq!(a.report, b.report);

    // More queries or more security: more noise, as the formula says.
    let g = Flooding::new(40, 1024).unwrap();
    let c = ctx.decode_flooded(&pt, &g).unwrap();
    assert!((c.report.flooding_log2 - a.report.flooding_log2 - 10.0).abs() < 1e-9);
}

#[test]
fn bad_policies_and_levels_without_room_are_refused() {
    assert!(matches!(
        Flooding::new(0, 1),
        Err(CkksError::InvalidValue(_))
    ));
    assert!(matches!(
        Flooding::new(129, 1),
        Err(CkksError::InvalidValue(_))
    ));
    assert!(matches!(
        Flooding::new(30, 0),
        Err(CkksError::InvalidValue(_))
    ));
    assert!(matches!(
        Flooding::new(30, (1 << 40) + 1),
        Err(CkksError::InvalidValue(_))
    ));
    let ctx = Context::new_cpu(presets::insecure_n10_depth3()).unwrap();
    let mut kg = KeyGenerator::new(&ctx);
    let sk = kg.gen_secret_key().unwrap();
    let x = vec![0.5; ctx.params().n() / 2];
    let pt = sk
        .decrypt(&sk.encrypt(&ctx.encode_at_level(&x, 0).unwrap()).unwrap())
        .unwrap();
    // 2^64 times the noise does not fit level 0's modulus.
    let huge = Flooding::new(128, 1).unwrap();
    assert!(matches!(
        ctx.decode_flooded(&pt, &huge),
        Err(CkksError::InvalidValue(_))
    ));
    assert!(ctx.decode_flooded(&pt, &Flooding::default()).is_ok());
}
