//! CryptoTL: the encrypted forward pass against the float64 network, the DP noise's
//! calibration, what the answer contains, the network file's checks, and one
//! end-to-end run, on small synthetic data and the insecure N = 2^12 preset.

use he_linalg::{Context, Evaluator, KeyGenerator, Matrix, UnitShape};
use hetal_train::cryptotl::inference::{key_requirements, unit_shape};
use hetal_train::cryptotl::{
    DpConfig, ExperimentConfig, FrozenNetwork, InferenceClient, InferencePreset, InferenceServer,
    PretrainConfig, experiment, normalize_rows, pretrain, spectral_norm_bound, transfer_split,
};
use hetal_train::data::Split;
use hetal_train::{Dataset, HyperParams, TrainError};
use rand::{Rng, SeedableRng, rngs::StdRng};
use std::sync::Arc;

/// `n` examples of `d` features in `classes` Gaussian clusters.
fn clusters(n: usize, d: usize, classes: usize, seed: u64) -> (Matrix, Vec<usize>) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut centre_rng = StdRng::seed_from_u64(99);
    let centres: Vec<Vec<f64>> = (0..classes)
        .map(|_| (0..d).map(|_| centre_rng.random::<f64>() - 0.5).collect())
        .collect();
    let y: Vec<usize> = (0..n).map(|i| i % classes).collect();
    let x = Matrix::from_fn(n, d, |i, j| {
        centres[y[i]][j] + 0.15 * (rng.random::<f64>() - 0.5)
    });
    (x, y)
}

/// Pre-training settings for the small synthetic networks.
fn small_config() -> PretrainConfig {
    PretrainConfig {
        hidden: 12,
        outputs: 5,
        epochs: 30,
        batch: 32,
        learning_rate: 3e-3,
        ..PretrainConfig::default()
    }
}

fn small_network() -> FrozenNetwork {
    let (x, y) = clusters(300, 24, 3, 1);
    let cfg = small_config();
    let (net, report) = pretrain(&normalize_rows(&x), &y, 3, "synthetic", &cfg).unwrap();
    assert!(report.val_accuracy > 0.9, "pre-training: {report:?}");
    net
}

struct Roles {
    ctx: Arc<Context<he_linalg::CpuBackend>>,
    client: InferenceClient<he_linalg::CpuBackend>,
    ev: Arc<Evaluator<he_linalg::CpuBackend>>,
    shape: UnitShape,
}

fn roles(net: &FrozenNetwork) -> Roles {
    let ctx = Context::new_cpu(InferencePreset::InsecureN12.parameters()).unwrap();
    let shape = unit_shape(net, ctx.params().max_slots()).unwrap();
    let mut kg = KeyGenerator::new(&ctx);
    let sk = kg.gen_secret_key().unwrap();
    let keys = kg
        .gen_evaluation_keys(&sk, &key_requirements(net, shape).unwrap().to_request())
        .unwrap();
    let ev = Arc::new(Evaluator::new(&ctx, Arc::new(keys)));
    let client = InferenceClient::new(&ctx, sk, shape, net.inputs(), net.outputs()).unwrap();
    Roles {
        ctx,
        client,
        ev,
        shape,
    }
}

#[test]
fn encrypted_forward_matches_float64_and_returns_only_the_outputs() {
    let net = small_network();
    let r = roles(&net);
    let server = InferenceServer::new(Arc::clone(&r.ev), &net, None).unwrap();
    // 40 examples over several ciphertexts (s1 = 2048/32 = 64: one, partly filled)
    // and 150 over three.
    for n in [40, 150] {
        let (x, _) = clusters(n, 24, 3, 7 + n as u64);
        let ct = r.client.encrypt(&x).unwrap();
        let ans = server.forward(&ct).unwrap();
        assert_eq!(ans.level(), 0);
        let got = r.client.decrypt(&ans).unwrap();
        let want = net.forward(&normalize_rows(&x)).unwrap();
        let err = got.max_abs_diff(&want).unwrap();
        let scale = want.as_slice().iter().fold(1.0f64, |m, v| m.max(v.abs()));
        eprintln!(
            "n = {n}: max error 2^{:.1} (outputs up to {scale:.2})",
            err.log2()
        );
        assert!(err < 1e-5 * scale, "error {err:e}");
        // The answer's rows past `outputs` are zero: nothing else leaves the server.
        let UnitShape { s0: _, s1 } = r.shape;
        for c in ans.ciphertexts() {
            let slots = r
                .ctx
                .decode(&r.client.secret_key().decrypt(c).unwrap())
                .unwrap();
            let leak = slots[net.outputs() * s1..]
                .iter()
                .fold(0.0f64, |m, v| m.max(v.abs()));
            assert!(leak < 1e-6, "padding rows hold {leak:e}");
        }
    }
}

#[test]
fn dp_noise_has_the_calibrated_spread() {
    let net = small_network();
    let r = roles(&net);
    let dp = DpConfig {
        epsilon: 0.05,
        delta: 1e-5,
        input_norm: 1.0,
    };
    let server = InferenceServer::new(Arc::clone(&r.ev), &net, Some(dp)).unwrap();
    let m = *server.dp().unwrap();
    assert!((m.l2_sensitivity - 2.0 * net.output_norm_bound(1.0)).abs() < 1e-9);
    // The noise is large enough that the answers are scaled down to fit level 0.
    let scale = server.output_scale();
    assert!(scale < 1.0 && scale.log2().fract() == 0.0, "{scale}");
    let (x, _) = clusters(256, 24, 3, 3);
    let want = net.forward(&normalize_rows(&x)).unwrap();
    let got = r
        .client
        .decrypt(&server.forward(&r.client.encrypt(&x).unwrap()).unwrap())
        .unwrap();
    let diffs: Vec<f64> = got
        .as_slice()
        .iter()
        .zip(want.as_slice())
        .map(|(a, b)| a / scale - b)
        .collect();
    let n = diffs.len() as f64;
    let mean = diffs.iter().sum::<f64>() / n;
    let sd = (diffs.iter().map(|d| (d - mean) * (d - mean)).sum::<f64>() / n).sqrt();
    eprintln!("σ = {:.4e}, measured {sd:.4e} over {n} outputs", m.sigma);
    // 1280 draws: the sample standard deviation is within 15 % (7 standard errors).
    assert!(
        (sd / m.sigma - 1.0).abs() < 0.15,
        "sd {sd} vs σ {}",
        m.sigma
    );
    // Two answers to the same input differ (fresh noise per answer).
    let again = r
        .client
        .decrypt(&server.forward(&r.client.encrypt(&x).unwrap()).unwrap())
        .unwrap();
    assert!(again.max_abs_diff(&got).unwrap() > m.sigma * 0.1);
}

#[test]
fn keys_depend_on_widths_only() {
    let net = small_network();
    let mut other = net.clone();
    for v in other.w1.as_mut_slice() {
        *v = -*v * 0.5;
    }
    for v in other.w2.as_mut_slice().iter_mut().step_by(3) {
        *v = 0.0;
    }
    let shape = UnitShape::new(32, 64).unwrap();
    assert_eq!(
        key_requirements(&net, shape).unwrap(),
        key_requirements(&other, shape).unwrap()
    );
}

#[test]
fn server_refuses_bad_inputs() {
    let net = small_network();
    let r = roles(&net);
    let server = InferenceServer::new(Arc::clone(&r.ev), &net, None).unwrap();
    let (x, _) = clusters(10, 24, 3, 5);
    // Another level than the encoding's: encrypted one level lower.
    let low = he_linalg::EncryptedMatrix::encrypt(
        &r.ctx,
        r.client.secret_key(),
        &normalize_rows(&x).transpose(),
        he_linalg::BlockLayout::new(24, 10, r.shape).unwrap(),
        FrozenNetwork::DEPTH - 1,
    )
    .unwrap();
    assert!(server.forward(&low).is_err());
    // Another row count.
    let (x20, _) = clusters(10, 20, 3, 5);
    let wrong = he_linalg::EncryptedMatrix::encrypt(
        &r.ctx,
        r.client.secret_key(),
        &x20.transpose(),
        he_linalg::BlockLayout::new(20, 10, r.shape).unwrap(),
        FrozenNetwork::DEPTH,
    )
    .unwrap();
    assert!(matches!(
        server.forward(&wrong),
        Err(TrainError::Message(_))
    ));
    // The client refuses features of the wrong width.
    assert!(r.client.encrypt(&x20).is_err());
    // DP noise too large for the last level's range even after scaling the answers
    // is refused at setup.
    let huge = DpConfig {
        epsilon: 1e-3,
        delta: 1e-9,
        input_norm: 1e3,
    };
    assert!(matches!(
        InferenceServer::new(Arc::clone(&r.ev), &net, Some(huge)),
        Err(TrainError::Config(_))
    ));
}

#[test]
fn output_bound_holds_and_spectral_bound_is_tight() {
    let net = small_network();
    let bound = net.output_norm_bound(1.0);
    let mut rng = StdRng::seed_from_u64(11);
    let x = normalize_rows(&Matrix::from_fn(2000, 24, |_, _| rng.random::<f64>() - 0.5));
    let y = net.forward(&x).unwrap();
    let worst = (0..y.rows())
        .map(|i| y.row(i).iter().map(|v| v * v).sum::<f64>().sqrt())
        .fold(0.0f64, f64::max);
    assert!(worst <= bound, "{worst} > {bound}");
    // The spectral bound against power iteration: above it, by at most 10 %.
    let w = &net.w1;
    let mut v = vec![1.0; w.cols()];
    let mut est = 0.0;
    for _ in 0..500 {
        let wv = w
            .matmul(&Matrix::new(w.cols(), 1, v.clone()).unwrap())
            .unwrap();
        let wtwv = w.matmul_at(&wv).unwrap();
        let norm = wtwv.as_slice().iter().map(|a| a * a).sum::<f64>().sqrt();
        est = norm.sqrt();
        v = wtwv.as_slice().iter().map(|a| a / norm).collect();
    }
    let b = spectral_norm_bound(w);
    assert!(
        b >= est * (1.0 - 1e-9) && b <= est * 1.1,
        "bound {b}, power iteration {est}"
    );
}

#[test]
fn network_file_round_trip_and_corruption() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("net.bin");
    let net = small_network();
    net.save(&path).unwrap();
    assert_eq!(FrozenNetwork::load(&path).unwrap(), net);
    let bytes = std::fs::read(&path).unwrap();
    for i in [0, 20, 60, bytes.len() / 2, bytes.len() - 1] {
        let mut c = bytes.clone();
        c[i] ^= 0x10;
        std::fs::write(&path, &c).unwrap();
        assert!(FrozenNetwork::load(&path).is_err(), "flip at {i}");
    }
    let mut longer = bytes.clone();
    longer.push(0);
    std::fs::write(&path, &longer).unwrap();
    assert!(FrozenNetwork::load(&path).is_err());
    std::fs::write(&path, &bytes[..bytes.len() - 3]).unwrap();
    assert!(FrozenNetwork::load(&path).is_err());
    // An inconsistent network is refused before it is written.
    let mut bad = net.clone();
    bad.b1.pop();
    assert!(matches!(bad.save(&path), Err(TrainError::Config(_))));
    let mut nan = net;
    nan.w2.as_mut_slice()[0] = f64::NAN;
    assert!(matches!(nan.save(&path), Err(TrainError::Config(_))));
}

#[test]
fn transfer_split_is_disjoint_and_seeded() {
    let (s, c) = transfer_split(1000, 0.2, 3).unwrap();
    assert_eq!((s.len(), c.len()), (800, 200));
    let mut all: Vec<usize> = s.iter().chain(&c).copied().collect();
    all.sort_unstable();
    assert_eq!(all, (0..1000).collect::<Vec<_>>());
    assert_eq!(transfer_split(1000, 0.2, 3).unwrap().1, c);
    assert_ne!(transfer_split(1000, 0.2, 4).unwrap().1, c);
    for f in [0.0, 1.0, -0.5, f64::NAN] {
        assert!(transfer_split(1000, f, 3).is_err());
    }
    assert!(transfer_split(1, 0.5, 3).is_err());
}

#[test]
fn end_to_end_run_reports_accuracies() {
    let (x, y) = clusters(400, 24, 3, 21);
    let (xv, yv) = clusters(60, 24, 3, 22);
    let (xt, yt) = clusters(90, 24, 3, 23);
    let data = Dataset {
        train: Split {
            x: x.clone(),
            y: y.clone(),
        },
        val: Split { x: xv, y: yv },
        test: Split { x: xt, y: yt },
        classes: 3,
    };
    let cfg = small_config();
    let (server_idx, _) = transfer_split(400, cfg.client_fraction, cfg.seed).unwrap();
    let xs = normalize_rows(&hetal_train::train::rows_of(&x, &server_idx));
    let ys: Vec<usize> = server_idx.iter().map(|&i| y[i]).collect();
    let (net, _) = pretrain(&xs, &ys, 3, "synthetic", &cfg).unwrap();
    let run_cfg = ExperimentConfig {
        preset: InferencePreset::InsecureN12,
        dp: None,
        head: HyperParams {
            batch: 16,
            learning_rate: 0.5,
            epochs: 20,
            patience: 3,
        },
        max_client_samples: None,
        max_eval_samples: None,
        seed: 0,
        latency_reps: 1,
    };
    let r = experiment::run(&data, "synthetic", &net, &run_cfg).unwrap();
    assert_eq!(r.samples, (80, 60, 90));
    let short = ExperimentConfig {
        max_client_samples: Some(20),
        max_eval_samples: Some(30),
        ..run_cfg.clone()
    };
    assert_eq!(
        experiment::run(&data, "synthetic", &net, &short)
            .unwrap()
            .samples,
        (20, 30, 30)
    );
    assert!(r.max_abs_output_diff < 1e-4, "{}", r.max_abs_output_diff);
    assert!(r.test_accuracy > 0.9, "{r:?}");
    assert!(
        (r.test_accuracy - r.test_accuracy_plaintext_features).abs() < 0.05,
        "{r:?}"
    );
    assert!(r.forward_s > 0.0 && r.forward_per_sample_s > 0.0);
    // A network pre-trained on another dataset is refused.
    assert!(matches!(
        experiment::run(&data, "other", &net, &run_cfg),
        Err(TrainError::Config(_))
    ));
}
