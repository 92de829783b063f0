//! Full-size check at the N = 2^16 FGb-like preset (slow in debug builds: run with
//! `cargo test --release -p ckks --test n16_precision -- --ignored`).

use ckks::{Complex64, Context, EvaluationKeyRequest, Evaluator, KeyGenerator, presets};
use rand::{Rng, SeedableRng, rngs::StdRng};
use std::sync::Arc;

/// One mult + relinearization + rescale at the top user level (12) and at the top level
/// (24) on uniform inputs in [-1, 1]: the maximum slot error must be below 2^-20 (HETAL's
/// library reaches 2^-21.7 at level 12).
#[test]
#[ignore = "N = 2^16: about a minute in release mode"]
fn n16_mult_error_below_2_pow_minus_20() {
    let ctx = Context::new_cpu(presets::n16_logqp1558_fgb_chain()).unwrap();
    let p = ctx.params().clone();
    assert_eq!(p.n(), 1 << 16);
    assert!(p.is_secure_128());
    let mut kg = KeyGenerator::new(&ctx);
    let sk = kg.gen_secret_key().unwrap();
    let req = EvaluationKeyRequest {
        relinearization: true,
        ..Default::default()
    };
    let eval = Evaluator::new(&ctx, Arc::new(kg.gen_evaluation_keys(&sk, &req).unwrap()));
    let mut rng = StdRng::seed_from_u64(16);
    for level in [p.max_user_level(), p.max_level()] {
        let x: Vec<f64> = (0..p.max_slots())
            .map(|_| rng.random_range(-1.0..1.0))
            .collect();
        let y: Vec<f64> = (0..p.max_slots())
            .map(|_| rng.random_range(-1.0..1.0))
            .collect();
        let cx = sk
            .encrypt(&ctx.encode_at_level(&x, level).unwrap())
            .unwrap();
        let cy = sk
            .encrypt(&ctx.encode_at_level(&y, level).unwrap())
            .unwrap();
        let m = eval.mul_relin_rescale(&cx, &cy).unwrap();
        let got = ctx.decode_complex(&sk.decrypt(&m).unwrap()).unwrap();
        let err = got
            .iter()
            .zip(x.iter().zip(&y))
            .map(|(g, (a, b))| (g - Complex64::new(a * b, 0.0)).norm())
            .fold(0.0f64, f64::max)
            .log2();
        println!("level {level}: log2 max error {err:.2}");
        assert!(err < -20.0, "level {level}: error 2^{err:.2}");
    }
}
