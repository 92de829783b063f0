//! Full-size bootstrapping at N = 2^16 (the `n16_logqp1755_dense_boot` preset, full slots):
//! `#[ignore]`d because it needs about 6 GB of keys and a minute; run with
//! `cargo test --release -p ckks --test bootstrapping_n16 -- --ignored`, or through
//! `cargo xtask bench-bootstrap`.

use ckks::circuits::Bootstrapper;
use ckks::circuits::bootstrapping::presets;
use ckks::{Context, Evaluator, KeyGenerator};
use rand::{Rng, SeedableRng, rngs::StdRng};
use std::sync::Arc;

#[global_allocator]
static GLOBAL: he_math::allocator::MiMalloc = he_math::allocator::MiMalloc;

#[test]
#[ignore = "N = 2^16: about 6 GB of keys and a minute of CPU"]
fn n16_full_slot_bootstrap_precision() {
    he_math::allocator::configure();
    let (lit, cfg) = presets::n16_logqp1755_dense_boot();
    let ctx = Context::new_cpu(lit).unwrap();
    let slots = ctx.params().max_slots();
    let mut kg = KeyGenerator::new(&ctx);
    let sk = kg.gen_secret_key().unwrap();
    let req = cfg.key_request(ctx.params(), slots).unwrap();
    let eval = Arc::new(Evaluator::new(
        &ctx,
        Arc::new(kg.gen_evaluation_keys(&sk, &req).unwrap()),
    ));
    let bt = Bootstrapper::new(eval, cfg, slots).unwrap();
    let mut r = StdRng::seed_from_u64(16);
    let z: Vec<f64> = (0..slots).map(|_| r.random_range(-1.0..1.0)).collect();
    let ct = sk
        .encrypt(
            &ctx.encode(&z, 0, ctx.params().scale_at(0).unwrap())
                .unwrap(),
        )
        .unwrap();
    let out = bt.bootstrap(&ct).unwrap();
    assert_eq!(out.level(), 11);
    let got = ctx.decode(&sk.decrypt(&out).unwrap()).unwrap();
    let err = got
        .iter()
        .zip(&z)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f64, f64::max)
        .log2();
    eprintln!("N = 2^16 full-slot bootstrap: max error 2^{err:.1}");
    // Measured 2^-18.6 with the dense secret at q_0/Δ_0 = 2^10 (docs/results/bootstrap.md).
    assert!(err < -17.5, "2^{err}");
}
