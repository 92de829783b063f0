//! Chiang's encrypted training (`hetal_train::encrypted::chiang`) against its float64
//! simulation with the same cubic, on small insecure parameters (N = 2^12).

use he_linalg::Matrix;
use he_linalg::ckks::Context;
use hetal_train::HyperParams;
use hetal_train::chiang::{ChiangConfig, SigmoidKind, train_chiang};
use hetal_train::encrypted::{Client, SessionConfig, chiang, presets};
use rand::{Rng, SeedableRng};

#[test]
fn encrypted_iterations_match_the_simulation() {
    let env = |k: &str, v: usize| std::env::var(k).map_or(v, |s| s.parse().unwrap());
    let (classes, d, n) = (
        env("CHIANG_C", 3),
        env("CHIANG_D", 12),
        env("CHIANG_N", 150),
    );
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(5);
    let y: Vec<usize> = (0..n).map(|i| i % classes).collect();
    // Preprocessed features in [−1, 1] with the bias column last.
    let x = Matrix::from_fn(n, d + 1, |i, j| {
        if j == d {
            1.0
        } else if j == 0 {
            // A feature that is zero everywhere (DermaMNIST has one): no step for it.
            0.0
        } else {
            let centre = if j % classes == y[i] { 0.6 } else { -0.2 };
            (centre + rng.random_range(-0.3..0.3f64)).clamp(-1.0, 1.0)
        }
    });
    let hyper = HyperParams {
        batch: 64,
        learning_rate: 1.0,
        epochs: 2,
        patience: 3,
    };
    let (lit, boot) = presets::insecure_n12_train();
    let ctx = Context::new_cpu(lit).unwrap();
    let config = SessionConfig::from_hyper(classes, d + 1, &hyper);
    let client = Client::new(ctx, boot, config).unwrap();
    let iterations = 2;
    let run = chiang::run_in_process(&client, &x, &y, iterations, |_, _| {}).unwrap();
    assert_eq!(run.timings.len(), iterations);
    // One refresh of `Y − P` per batch, one of `V'`.
    let batches = n.div_ceil(hyper.batch);
    for t in &run.timings {
        assert!(
            t.bootstraps >= batches && t.bootstraps <= batches + 1,
            "{t:?}"
        );
    }
    let cfg = ChiangConfig {
        iterations,
        patience: None,
        ..ChiangConfig::default()
    };
    let sim = train_chiang((&x, &y), (&x, &y), classes, &cfg, SigmoidKind::Poly3, None).unwrap();
    let diff = run.w.max_abs_diff(&sim.last_w).unwrap();
    let scale = sim
        .last_w
        .as_slice()
        .iter()
        .fold(0.0f64, |m, v| m.max(v.abs()));
    eprintln!(
        "|W_encrypted − W_simulated| = {diff:.3e} (weights up to {scale:.3}), {:?}",
        run.timings
    );
    assert!(scale > 0.1, "the simulation moved: {scale}");
    assert!(diff < 1e-3 * scale.max(1.0), "{diff:e}");
}
