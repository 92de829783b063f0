//! Encrypted ASoftmax and encrypted training steps on small insecure parameters
//! (N = 2^12, `insecure_n12_train`), against the float64 simulation of the same
//! circuit and against exact softmax. Errors are reported in bits.

use he_linalg::CpuBackend;
use he_linalg::ckks::{Bootstrapper, Context, KeyGenerator, SecretKey};
use he_linalg::{BlockLayout, EncryptedMatrix, Evaluator, Matrix, UnitShape, padded_classes};
use hetal_train::encrypted::{
    Client, EncryptedBatch, EncryptedSoftmax, Flooding, Ops, Server, SessionConfig, presets,
};
use hetal_train::train::{SoftmaxKind, cross_entropy, gradient, softmax_rows};
use hetal_train::{ASoftmaxParams, Nesterov, softmax_row};
use rand::{Rng, SeedableRng};
use std::sync::Arc;

fn bits(err: f64) -> f64 {
    -err.max(f64::MIN_POSITIVE).log2()
}

fn random_matrix(rows: usize, cols: usize, range: f64, seed: u64) -> Matrix {
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(seed);
    Matrix::from_fn(rows, cols, |_, _| rng.random_range(-range..range))
}

/// Keys for `sm` on `ctx` (a fresh secret key), its operations and its refresher.
fn softmax_keys(
    ctx: &Arc<Context<CpuBackend>>,
    sm: &EncryptedSoftmax,
    boot_cfg: &he_linalg::ckks::BootstrappingConfig,
) -> (
    SecretKey<CpuBackend>,
    Ops<CpuBackend>,
    hetal_train::encrypted::Refresher<CpuBackend>,
) {
    let slots = ctx.params().max_slots();
    let mut kg = KeyGenerator::new(ctx);
    let sk = kg.gen_secret_key().unwrap();
    let req = sm.key_request(ctx.params(), boot_cfg).unwrap();
    let keys = Arc::new(kg.gen_evaluation_keys(&sk, &req).unwrap());
    let ev = Arc::new(Evaluator::new(ctx, keys));
    let boot = Arc::new(Bootstrapper::new(ev.clone(), boot_cfg.clone(), slots).unwrap());
    let refresher = sm.refresher(&ev, boot_cfg, boot).unwrap();
    (sk, Ops::new(ev), refresher)
}

/// Largest errors over the class columns: encrypted `got` vs the float64 circuit, vs
/// exact softmax, and the float64 circuit vs exact softmax.
fn softmax_errors(got: &Matrix, z: &Matrix, params: &ASoftmaxParams) -> (f64, f64, f64) {
    let prepared = params.prepare().unwrap();
    let (mut vs_sim, mut vs_exact, mut sim_vs_exact) = (0f64, 0f64, 0f64);
    for i in 0..z.rows() {
        let sim = prepared.eval_row(z.row(i));
        let exact = softmax_row(z.row(i));
        for j in 0..z.cols() {
            vs_sim = vs_sim.max((got.get(i, j) - sim[j]).abs());
            vs_exact = vs_exact.max((got.get(i, j) - exact[j]).abs());
            sim_vs_exact = sim_vs_exact.max((sim[j] - exact[j]).abs());
        }
    }
    (vs_sim, vs_exact, sim_vs_exact)
}

#[test]
fn encrypted_asoftmax_matches_simulated_and_exact() {
    let (lit, boot_cfg) = presets::insecure_n12_train();
    let ctx = Context::new_cpu(lit).unwrap();
    let slots = ctx.params().max_slots();
    let classes = 5;
    let shape = UnitShape::hetal(64, classes, slots).unwrap();
    let params = ASoftmaxParams::default();
    // The folded variant (sparse bootstraps) is checked here; training runs unfolded
    // (tested through the steps below).
    let sm = EncryptedSoftmax::new(&params, classes, shape.s1, slots)
        .unwrap()
        .folded()
        .unwrap();
    assert_eq!(sm.sparse_slots(), Some(slots / 2));
    let (sk, ops, refresher) = softmax_keys(&ctx, &sm, &boot_cfg);

    // Logits within ±20 (one row with a large spread, one constant row).
    let mut z = random_matrix(60, classes, 20.0, 7);
    for j in 0..classes {
        z.set(0, j, [-120.0, 100.0, 3.0, 99.0, -60.0][j]);
        z.set(1, j, 4.0);
    }
    let layout = BlockLayout::new(z.rows(), classes, shape).unwrap();
    let enc =
        EncryptedMatrix::encrypt(&ctx, &sk, &z, layout, ctx.params().max_user_level()).unwrap();
    let out = sm.evaluate(&ops, &refresher, &enc, 0).unwrap();
    let got = out.decrypt(&ctx, &sk).unwrap();
    let (vs_sim, vs_exact, sim_vs_exact) = softmax_errors(&got, &z, &params);
    let stats = refresher.stats();
    println!(
        "ASoftmax c = {classes} (c' = {}): encrypted vs simulated 2^-{:.1}, encrypted vs exact \
         2^-{:.1}, simulated vs exact 2^-{:.1}; {} bootstraps, depth {}",
        padded_classes(classes),
        bits(vs_sim),
        bits(vs_exact),
        bits(sim_vs_exact),
        stats.count,
        sm.depth().unwrap()
    );
    assert!(
        bits(vs_sim) > 9.0,
        "encrypted vs simulated: 2^-{:.1}",
        bits(vs_sim)
    );
    assert!(vs_exact < sim_vs_exact + 2f64.powi(-9));
    assert!(stats.count > 0);
    assert_eq!(
        stats.sparse, stats.count,
        "every bootstrap in the folded circuit is sparse"
    );
}

/// The packed circuit (the training default): logits encrypted at the top level and at
/// level 1, where the first refresh hands them back scaled and the raw ones are
/// corrected through the next refresh; every bootstrap full-slot.
#[test]
fn packed_asoftmax_matches_simulated_and_exact() {
    let (lit, boot_cfg) = presets::insecure_n12_train();
    let ctx = Context::new_cpu(lit).unwrap();
    let slots = ctx.params().max_slots();
    let params = ASoftmaxParams::default();
    {
        let classes = 7;
        let shape = UnitShape::hetal(64, classes, slots).unwrap();
        assert!(params.packed(padded_classes(classes)).unwrap());
        let sm = EncryptedSoftmax::new(&params, classes, shape.s1, slots).unwrap();
        assert_eq!(sm.sparse_slots(), None);
        let (sk, ops, refresher) = softmax_keys(&ctx, &sm, &boot_cfg);
        let mut z = random_matrix(60, classes, 20.0, 11 + classes as u64);
        for j in 0..classes {
            z.set(0, j, [-120.0, 100.0, 3.0, 99.0, -60.0, 127.0, -128.0][j]);
            z.set(1, j, 4.0);
            z.set(2, j, -128.0);
        }
        let layout = BlockLayout::new(z.rows(), classes, shape).unwrap();
        for level in [ctx.params().max_user_level(), 1] {
            let before = refresher.stats().count;
            let enc = EncryptedMatrix::encrypt(&ctx, &sk, &z, layout, level).unwrap();
            let out_level = 3;
            let out = sm.evaluate(&ops, &refresher, &enc, out_level).unwrap();
            assert!(out.level() >= out_level);
            let got = out.decrypt(&ctx, &sk).unwrap();
            let (vs_sim, vs_exact, sim_vs_exact) = softmax_errors(&got, &z, &params);
            let stats = refresher.stats();
            println!(
                "packed ASoftmax c = {classes}, logits at level {level}: encrypted vs simulated \
                 2^-{:.1}, vs exact 2^-{:.1}, simulated vs exact 2^-{:.1}; {} bootstraps, \
                 depth {}",
                bits(vs_sim),
                bits(vs_exact),
                bits(sim_vs_exact),
                stats.count - before,
                sm.depth().unwrap()
            );
            // Measured 2^-21.0 … 2^-21.5.
            assert!(
                bits(vs_sim) > 17.0,
                "encrypted vs simulated: 2^-{:.1}",
                bits(vs_sim)
            );
            assert!(vs_exact < sim_vs_exact + 2f64.powi(-17));
            assert_eq!(stats.sparse, 0);
        }
    }
}

fn small_session(features: usize, classes: usize) -> SessionConfig {
    SessionConfig {
        classes,
        features,
        batch: 64,
        learning_rate: 0.3,
        patience: 2,
        softmax: ASoftmaxParams::default(),
        weight_bound: 4.0,
    }
}

/// Features in [−1, 1] with a bias column, labels by a fixed linear rule.
fn toy_data(rows: usize, features: usize, classes: usize, seed: u64) -> (Matrix, Vec<usize>) {
    let mut x = random_matrix(rows, features, 1.0, seed);
    for i in 0..rows {
        x.set(i, features - 1, 1.0);
    }
    let w = random_matrix(classes, features, 1.0, seed + 1);
    let z = x.matmul_bt(&w).unwrap();
    let y = (0..rows)
        .map(|i| {
            let r = z.row(i);
            (0..classes).fold(0, |b, j| if r[j] > r[b] { j } else { b })
        })
        .collect();
    (x, y)
}

#[test]
fn encrypted_steps_match_the_simulated_steps() {
    let (lit, boot_cfg) = presets::insecure_n12_train();
    let ctx = Context::new_cpu(lit).unwrap();
    let (features, classes) = (41, 5); // two column blocks of s1 = 32
    let config = small_session(features, classes);
    let client = Client::new(ctx.clone(), boot_cfg, config.clone()).unwrap();
    let setup = client.session_setup().unwrap();
    // The setup crosses as a stream, as between two processes; the byte form agrees.
    let bytes = setup.to_bytes(&ctx).unwrap();
    let mut stream = Vec::new();
    let n = setup.write_to(&ctx, &mut stream).unwrap();
    assert_eq!(n as usize, stream.len());
    drop(setup);
    let mut r = stream.as_slice();
    let header = hetal_train::encrypted::SetupHeader::read_from(&mut r).unwrap();
    // This server stores the keys' uniform parts expanded (the other storage, seeded, is
    // the default that the in-process tests below use).
    let setup = hetal_train::encrypted::SessionSetup::read_keys(
        &ctx,
        header,
        &mut r,
        he_linalg::ckks::KeyStorage::Expanded,
    )
    .unwrap();
    assert_eq!(setup.to_bytes(&ctx).unwrap().len(), bytes.len());
    let mut server = Server::new(ctx.clone(), setup).unwrap();
    server.start(client.initial_model().unwrap());

    let (x, y) = toy_data(120, features, classes, 11);
    let mut sim = Nesterov::zeros(classes, features);
    let params = ASoftmaxParams::default();
    // Three steps: levels differ from step to step (they depend on where ASoftmax's
    // bootstraps fall), and the weight refresh runs in between.
    for (step, rows) in [(0..64), (64..120), (30..94)].into_iter().enumerate() {
        let idx: Vec<usize> = rows.collect();
        let xb = hetal_train::train::rows_of(&x, &idx);
        let yb: Vec<usize> = idx.iter().map(|&i| y[i]).collect();
        let batch = client.encrypt_batch(&xb, &yb).unwrap();
        let batch = EncryptedBatch::from_bytes(&ctx, &batch.to_bytes(&ctx).unwrap()).unwrap();
        let t = server.train_step(&batch).unwrap();
        let (g, _) = gradient(&xb, &yb, &sim.v, SoftmaxKind::Approximate, &params).unwrap();
        sim.step(&g, config.learning_rate);
        let w = client
            .decrypt_model(&server.current_model().unwrap())
            .unwrap();
        let err = w.max_abs_diff(&sim.w).unwrap();
        let scale = (0..classes)
            .flat_map(|i| (0..features).map(move |j| (i, j)))
            .fold(0f64, |m, (i, j)| m.max(sim.w.get(i, j).abs()));
        println!(
            "step {step}: max |W_enc − W_sim| = 2^-{:.1} (max |W| = {scale:.3}), \
             {} bootstraps, {:.1} s",
            bits(err),
            t.bootstraps,
            t.total()
        );
        assert!(bits(err) > 10.0, "step {step}: 2^-{:.1}", bits(err));
        assert!(scale > 1e-2);
    }
    // A checkpoint restores to the same weights; malformed bytes are an error.
    let bytes = server.checkpoint().unwrap();
    let before = client
        .decrypt_model(&server.current_model().unwrap())
        .unwrap();
    assert!(server.restore(&bytes[..bytes.len() / 2]).is_err());
    server.restore(&bytes).unwrap();
    let after = client
        .decrypt_model(&server.current_model().unwrap())
        .unwrap();
    assert_eq!(before.max_abs_diff(&after).unwrap(), 0.0);
    // Encrypted inference with the trained weights.
    let feats = client.encrypt_features(&x).unwrap();
    let model = server.current_model().unwrap();
    let z = client
        .decrypt_logits(&server.infer(&model, &feats).unwrap())
        .unwrap();
    let z_sim = x.matmul_bt(&sim.w).unwrap();
    assert!(bits(z.max_abs_diff(&z_sim).unwrap()) > 8.0);

    // Validation decryptions are flooded by default (OpenFHE's policy): the noise added
    // has the reported size, far above the ciphertext's own error, and the decision
    // statistics stay close to the exact ones.
    let logits = server.infer(&model, &feats).unwrap();
    let f = client.flooding().expect("flooding is on by default");
    assert_eq!(f, Flooding::default());
    let (zf, report) = client.decrypt_logits_flooded(&logits, &f).unwrap();
    let report = report.unwrap();
    let d: Vec<f64> = zf
        .as_slice()
        .iter()
        .zip(z.as_slice())
        .map(|(a, b)| a - b)
        .collect();
    let std = (d.iter().map(|v| v * v).sum::<f64>() / d.len() as f64).sqrt();
    let own = z.max_abs_diff(&z_sim).unwrap();
    println!(
        "flooding: estimate 2^{:.1}, σ per slot {:.2e} (measured {std:.2e}), own error {own:.2e}",
        report.noise_log2, report.slot_std
    );
    // The report is the worst block's; blocks whose estimate rounds to the power of two
    // below get half its σ.
    let ratio = std / report.slot_std;
    assert!((0.45..1.1).contains(&ratio), "{std:e} vs {report:?}");
    // Far above the ciphertext's own noise (the estimate), and above the logits' whole
    // error against the float64 run (the trained weights' drift included).
    assert!(report.slot_std > 1e4 * report.noise_log2.exp2());
    assert!(report.slot_std > 10.0 * own);
    let mut client = client;
    let exact_loss = cross_entropy(&softmax_rows(&z, SoftmaxKind::Exact, &params).unwrap(), &y);
    let v = client.validate(1, &logits, &y).unwrap();
    assert_eq!(v.flooding.map(|r| r.noise_log2), Some(report.noise_log2));
    assert!(
        (v.loss - exact_loss).abs() < 10.0 * report.slot_std,
        "{} vs {exact_loss}",
        v.loss
    );
    client.set_flooding(None);
    let v = client.validate(2, &logits, &y).unwrap();
    assert!(v.flooding.is_none());
    assert!((v.loss - exact_loss).abs() < 1e-12);
}

/// The same steps on a preset whose bootstrap runs SlotsToCoeffs first (refresh floor
/// 2): the plan moves every refreshed ciphertext up by the floor, ASoftmax and the
/// weights' rides refresh from it, and the weights still follow the float64 run.
#[test]
fn encrypted_steps_with_a_refresh_floor() {
    let (lit, boot_cfg) = presets::insecure_n12_s2c_train();
    let ctx = Context::new_cpu(lit).unwrap();
    let (features, classes) = (41, 5);
    let config = small_session(features, classes);
    let client = Client::new(ctx.clone(), boot_cfg, config.clone()).unwrap();
    let mut server = Server::new(ctx.clone(), client.session_setup().unwrap()).unwrap();
    server.start(client.initial_model().unwrap());
    let (x, y) = toy_data(120, features, classes, 11);
    let mut sim = Nesterov::zeros(classes, features);
    let params = ASoftmaxParams::default();
    for (step, rows) in [(0..64), (64..120)].into_iter().enumerate() {
        let idx: Vec<usize> = rows.collect();
        let xb = hetal_train::train::rows_of(&x, &idx);
        let yb: Vec<usize> = idx.iter().map(|&i| y[i]).collect();
        let t = server
            .train_step(&client.encrypt_batch(&xb, &yb).unwrap())
            .unwrap();
        let (g, _) = gradient(&xb, &yb, &sim.v, SoftmaxKind::Approximate, &params).unwrap();
        sim.step(&g, config.learning_rate);
        let w = client
            .decrypt_model(&server.current_model().unwrap())
            .unwrap();
        let err = w.max_abs_diff(&sim.w).unwrap();
        println!(
            "floor 2, step {step}: max |W_enc − W_sim| = 2^-{:.1}, {} bootstraps",
            bits(err),
            t.bootstraps
        );
        assert!(bits(err) > 10.0, "step {step}: 2^-{:.1}", bits(err));
        assert!(t.bootstraps > 0);
    }
}

/// Largest slot error of `ct` (decrypted with `sk`) against `want`.
fn max_err(
    ctx: &Context<CpuBackend>,
    sk: &SecretKey<CpuBackend>,
    ct: &he_linalg::ckks::Ciphertext<CpuBackend>,
    want: &[f64],
) -> f64 {
    let got = ctx.decode(&sk.decrypt(ct).unwrap()).unwrap();
    got.iter()
        .zip(want)
        .map(|(g, w)| (g - w).abs())
        .fold(0.0, f64::max)
}

/// A context, a secret key, an evaluator and a refresher.
type RefresherSetup = (
    Arc<Context<CpuBackend>>,
    SecretKey<CpuBackend>,
    Arc<Evaluator<CpuBackend>>,
    hetal_train::encrypted::Refresher<CpuBackend>,
);

/// [`RefresherSetup`] on the insecure N = 2^12 training preset whose SlotsToCoeffs
/// runs first (refresh floor 2), so that the floor's bookkeeping is exercised.
fn refresher_setup() -> RefresherSetup {
    let (lit, boot_cfg) = presets::insecure_n12_s2c_train();
    let ctx = Context::new_cpu(lit).unwrap();
    let slots = ctx.params().max_slots();
    let mut kg = KeyGenerator::new(&ctx);
    let sk = kg.gen_secret_key().unwrap();
    let req = boot_cfg.key_request(ctx.params(), slots).unwrap();
    let keys = Arc::new(kg.gen_evaluation_keys(&sk, &req).unwrap());
    let ev = Arc::new(Evaluator::new(&ctx, keys));
    let boot = Arc::new(Bootstrapper::new(ev.clone(), boot_cfg, slots).unwrap());
    (ctx, sk, ev, hetal_train::encrypted::Refresher::new(boot))
}

/// One bootstrap refreshes two real ciphertexts (`Refresher::refresh_pair`): both come
/// back at the refresh level, close to their inputs, and the pair counts once.
#[test]
fn pair_refresh_restores_both_parts() {
    let (ctx, sk, ev, refresher) = refresher_setup();
    let slots = ctx.params().max_slots();
    let ops = Ops::new(ev);
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(11);
    let a: Vec<f64> = (0..slots).map(|_| rng.random_range(-1.0..1.0)).collect();
    let b: Vec<f64> = (0..slots).map(|_| rng.random_range(0.0..1.0)).collect();
    let enc =
        |v: &[f64], level: usize| sk.encrypt(&ctx.encode_at_level(v, level).unwrap()).unwrap();
    assert!(refresher.pairs(slots));
    // The preset refreshes SlotsToCoeffs first: from level 2, not 0.
    let f = refresher.floor();
    assert_eq!(f, 2);
    let (ra, rb) = refresher
        .refresh_pair(&ops, &enc(&a, f + 1), &enc(&b, f + 1), 1.0)
        .unwrap();
    let out = refresher.output_level();
    assert_eq!((ra.level(), rb.level()), (out, out));
    let err =
        |ct: &he_linalg::ckks::Ciphertext<CpuBackend>, want: &[f64]| max_err(&ctx, &sk, ct, want);
    let (ea, eb) = (err(&ra, &a), err(&rb, &b));
    println!(
        "pair refresh: errors 2^-{:.1} and 2^-{:.1}",
        bits(ea),
        bits(eb)
    );
    assert!(
        bits(ea) > 16.0 && bits(eb) > 16.0,
        "2^-{:.1}, 2^-{:.1}",
        bits(ea),
        bits(eb)
    );
    assert_eq!(refresher.stats().count, 1);
    // Different levels, or the floor (no room for the scaling), are refused.
    assert!(
        refresher
            .refresh_pair(&ops, &enc(&a, f + 1), &enc(&b, f + 2), 1.0)
            .is_err()
    );
    assert!(
        refresher
            .refresh_pair(&ops, &enc(&a, f), &enc(&b, f), 1.0)
            .is_err()
    );
    // A scaled refresh hands back ct/m (here ct = 8a, m = 16), no level after the
    // bootstrap; m must be a power of two at least twice the bound.
    let a8: Vec<f64> = a.iter().map(|x| 8.0 * x).collect();
    let half: Vec<f64> = a.iter().map(|x| 0.5 * x).collect();
    let r = refresher
        .refresh_scaled(&ops, &enc(&a8, f + 1), 8.0, 16.0)
        .unwrap();
    assert_eq!(r.level(), out);
    let e = err(&r, &half);
    println!("scaled refresh: error 2^-{:.1}", bits(e));
    assert!(bits(e) > 16.0, "2^-{:.1}", bits(e));
    for m in [8.0, 24.0, 0.5] {
        assert!(
            refresher
                .refresh_scaled(&ops, &enc(&a8, f + 1), 8.0, m)
                .is_err()
        );
    }
}

/// A passenger (`Refresher::board`) rides in the imaginary half of the next refresh and
/// comes back close to what it was, even when the host carries an imaginary error (as
/// every ciphertext that went through a circuit does); its refresh error then rides
/// again as a correction (Meta-BTS), here with the second passenger's bootstrap in
/// `alight`, which leaves the first far more precise than a refresh alone; a
/// correction that finds no ride is dropped; a sparse passenger, or one at the refresh
/// floor, is refused.
#[test]
fn passengers_ride_in_a_refresh() {
    let (ctx, sk, ev, refresher) = refresher_setup();
    let slots = ctx.params().max_slots();
    let ops = Ops::new(ev.clone());
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(12);
    // A row-structured host with values up to 1.28, and small weights-like passengers.
    let host: Vec<f64> = (0..slots)
        .map(|i| {
            if i % 32 < 8 {
                rng.random_range(0.0..1.28)
            } else {
                1.0
            }
        })
        .collect();
    let small = |rng: &mut rand_chacha::ChaCha20Rng| -> Vec<f64> {
        (0..slots)
            .map(|i| {
                if i < slots / 4 {
                    rng.random_range(-0.05..0.05)
                } else {
                    0.0
                }
            })
            .collect()
    };
    let (b, c) = (small(&mut rng), small(&mut rng));
    let garbage: Vec<f64> = (0..slots).map(|_| rng.random_range(-0.01..0.01)).collect();
    let enc =
        |v: &[f64], level: usize| sk.encrypt(&ctx.encode_at_level(v, level).unwrap()).unwrap();
    let err =
        |ct: &he_linalg::ckks::Ciphertext<CpuBackend>, want: &[f64]| max_err(&ctx, &sk, ct, want);
    let f = refresher.floor();
    let alone = refresher.refresh(&ops, &enc(&b, f + 3), 1.0).unwrap();
    let e_alone = err(&alone, &b);
    // The host: `host + 0.01·i·garbage` (an imaginary part the decoder's real view hides).
    let noisy_host = ev
        .add(
            &enc(&host, f + 2),
            &ev.mul_by_i(&enc(&garbage, f + 2)).unwrap(),
        )
        .unwrap();
    refresher.board(enc(&b, f + 3), 1.0).unwrap();
    refresher.board(enc(&c, f + 3), 1.0).unwrap();
    let before = refresher.stats().count;
    let h = refresher.refresh(&ops, &noisy_host, 1.28).unwrap();
    // The first passenger rode with the host; the second is bootstrapped now, paired
    // with the first one's correction; the second one's correction finds no ride.
    let back = refresher.alight(&ops).unwrap();
    assert_eq!(refresher.stats().count - before, 2);
    assert_eq!(back.len(), 2);
    let out = refresher.output_level();
    assert_eq!(
        (h.level(), back[0].level(), back[1].level()),
        (out, out - 1, out)
    );
    let (eh, eb, ec) = (err(&h, &host), err(&back[0], &b), err(&back[1], &c));
    println!(
        "passengers: alone 2^-{:.1}; with a host, then corrected 2^-{:.1}; in alight, \
         uncorrected 2^-{:.1}; host 2^-{:.1}",
        bits(e_alone),
        bits(eb),
        bits(ec),
        bits(eh)
    );
    // The correction divides the refresh error by 2^12; what is left is the rounding
    // noise of the passenger's own level (computing `x' − x` there), 2^-30 on this
    // ring (3–4 bits below a refresh; at N = 2^16 more, see docs/results/dermamnist.md).
    // The uncorrected pair costs about one bit against a refresh alone: both are maxima
    // over the slots under fresh keys, and their difference ranged over 0.5–2.4 bits in
    // 37 runs (2.4 once in CI), hence the 3-bit bound.
    assert!(bits(eb) > bits(e_alone) + 2.0, "2^-{:.1}", bits(eb));
    assert!(
        bits(ec) > bits(e_alone) - 3.0 && bits(eh) > 16.0,
        "uncorrected 2^-{:.1}, alone 2^-{:.1}, host 2^-{:.1}",
        bits(ec),
        bits(e_alone),
        bits(eh)
    );
    assert!(refresher.alight(&ops).unwrap().is_empty());
    assert!(refresher.board(enc(&b, f), 1.0).is_err());
}

/// A correction of the caller's own refresh (`Refresher::board_correction`) rides ahead
/// of waiting passengers in the next refresh, and `collect` returns the corrected
/// ciphertext at the refresh level (no level spent): a refresh of a value bounded by 64,
/// scaled by 1/64, carries 64 times the bootstrapping error; corrected, the error is that
/// of the correction's ride. Without a ride `collect` returns the first refresh;
/// `alight` never returns a correction's ciphertext.
#[test]
fn corrections_ride_ahead_and_are_collected() {
    let (ctx, sk, ev, refresher) = refresher_setup();
    let slots = ctx.params().max_slots();
    let ops = Ops::new(ev.clone());
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(13);
    let x: Vec<f64> = (0..slots).map(|_| rng.random_range(-64.0..64.0)).collect();
    let p: Vec<f64> = (0..slots).map(|_| rng.random_range(-0.1..0.1)).collect();
    let host: Vec<f64> = (0..slots).map(|_| rng.random_range(-1.0..1.0)).collect();
    let enc =
        |v: &[f64], level: usize| sk.encrypt(&ctx.encode_at_level(v, level).unwrap()).unwrap();
    let err =
        |ct: &he_linalg::ckks::Ciphertext<CpuBackend>, want: &[f64]| max_err(&ctx, &sk, ct, want);
    let f = refresher.floor();
    let out = refresher.output_level();
    let exact = enc(&x, f + 2);
    let first = refresher.refresh(&ops, &exact, 64.0).unwrap();
    let e_first = err(&first, &x);
    let error = ops.sub(&ops.align(&first, f + 2).unwrap(), &exact).unwrap();
    // A passenger boarded earlier waits behind the correction.
    refresher.board(enc(&p, f + 3), 1.0).unwrap();
    let id = refresher
        .board_correction(first.clone(), error.clone(), 1.0 / 32.0)
        .unwrap();
    refresher.refresh(&ops, &enc(&host, f + 1), 1.0).unwrap();
    let fixed = refresher.collect(id).unwrap();
    let e_fixed = err(&fixed, &x);
    println!(
        "logit-sized refresh (bound 64): 2^-{:.1}; corrected 2^-{:.1}",
        bits(e_first),
        bits(e_fixed)
    );
    assert_eq!(fixed.level(), out);
    assert!(
        bits(e_fixed) > bits(e_first) + 4.0,
        "2^-{:.1}",
        bits(e_fixed)
    );
    assert!(refresher.collect(id).is_err(), "collected twice");
    // The passenger had no ride yet: alight bootstraps it and returns it alone.
    let back = refresher.alight(&ops).unwrap();
    assert_eq!(back.len(), 1);
    assert!(bits(err(&back[0], &p)) > 14.0);
    // No ride before collect: the first refresh comes back, and alight stays empty.
    let id = refresher
        .board_correction(first.clone(), error, 1.0 / 32.0)
        .unwrap();
    assert_eq!(err(&refresher.collect(id).unwrap(), &x), e_first);
    assert!(refresher.alight(&ops).unwrap().is_empty());
    assert!(
        refresher
            .board_correction(first, enc(&p, f), 1.0 / 32.0)
            .is_err()
    );
}

/// The weights' compact refresh (`WeightRefresh`) packs and rebuilds the weights at their
/// own scale when the compact level is above the floor (the refresh scales by `1/M`), so
/// the masks' and rotations' noise is not multiplied by `M`: a pack and rebuild without
/// a bootstrap is then several bits more precise than with the weights shrunk by `1/M`
/// in the packing mask (the path left for compacts at the floor; measured here 2^-29.1
/// against 2^-25.9, at N = 2^16 on the training preset 2^-21.1 against 2^-17.3). Both
/// refresh correctly.
#[test]
fn weights_are_packed_at_their_own_scale() {
    let (ctx, sk, ev, refresher) = refresher_setup();
    let ops = Ops::new(ev);
    let slots = ctx.params().max_slots();
    let (classes, features, bound) = (5, 41, 16.0);
    let shape = UnitShape::hetal(64, classes, slots).unwrap();
    let wr = hetal_train::encrypted::WeightRefresh::new(
        padded_classes(classes),
        shape.s0,
        shape.s1,
        bound,
    )
    .unwrap();
    let w = random_matrix(classes, features, 3.0, 21);
    let layout = BlockLayout::vertical(classes, features, shape).unwrap();
    let f = refresher.floor();
    let enc = EncryptedMatrix::encrypt(&ctx, &sk, &w, layout, f + 4).unwrap();
    let err =
        |m: &EncryptedMatrix<CpuBackend>| m.decrypt(&ctx, &sk).unwrap().max_abs_diff(&w).unwrap();
    // The compacts sit at f + 3: at the weights' scale. Packed for a floor at f + 3, the
    // same weights are shrunk.
    let (own, own_bound) = wr.pack(&ops, &enc, f).unwrap();
    let (shrunk, shrunk_bound) = wr.pack(&ops, &enc, f + 3).unwrap();
    assert_eq!((own_bound, shrunk_bound), (bound, 1.0));
    let rebuild = |c: &[he_linalg::ckks::Ciphertext<CpuBackend>], b: f64| {
        wr.unpack(&ops, layout, c, f + 1, b).unwrap()
    };
    let (e_own, e_shrunk) = (
        err(&rebuild(&own, own_bound)),
        err(&rebuild(&shrunk, shrunk_bound)),
    );
    println!(
        "pack and rebuild: at the weights' scale 2^-{:.1}, shrunk 2^-{:.1}",
        bits(e_own),
        bits(e_shrunk)
    );
    // Two maxima over the slots under fresh keys: the gain ranged over 2.1–3.7 bits in
    // 42 runs, so the bound asserts one bit.
    assert!(
        bits(e_own) > bits(e_shrunk) + 1.0,
        "own scale 2^-{:.1}, shrunk 2^-{:.1}",
        bits(e_own),
        bits(e_shrunk)
    );
    assert!(bits(e_shrunk) > 20.0);
    // A refresh of either form comes back as the same weights.
    for (c, b) in [(&own, own_bound), (&shrunk, shrunk_bound)] {
        let fresh: Vec<_> = c
            .iter()
            .map(|c| refresher.refresh(&ops, c, b).unwrap())
            .collect();
        let e = err(&wr.unpack(&ops, layout, &fresh, f + 1, b).unwrap());
        assert!(bits(e) > 14.0, "bound {b}: 2^-{:.1}", bits(e));
    }
}
