//! Float64 parts of the training crate: ASoftmax against exact softmax, early stopping
//! on a crafted loss sequence, the Nesterov schedule, and loading DermaMNIST's features
//! from `../shared/data` (a failure when absent, unless `HETAL_ALLOW_MISSING_DATA` is set).

use hetal_train::softmax::{ASoftmaxParams, ASoftmaxVariant, RowMax};
use hetal_train::{Decision, EarlyStopping, Nesterov, Preprocessor, dataset, softmax_row};
use rand::{Rng, SeedableRng, rngs::StdRng};
use std::path::Path;

#[test]
fn asoftmax_matches_softmax_on_its_range() {
    let p = ASoftmaxParams::default();
    p.validate().unwrap();
    let prepared = p.prepare().unwrap();
    let mut rng = StdRng::seed_from_u64(7);
    for (c, range) in [
        (7usize, 8.0f64),
        (7, 64.0),
        (4, 128.0),
        (16, 32.0),
        (3, 1.0),
    ] {
        let mut worst = 0.0f64;
        for _ in 0..2000 {
            let z: Vec<f64> = (0..c).map(|_| rng.random_range(-range..range)).collect();
            let got = prepared.eval_row(&z);
            let want = softmax_row(&z);
            for (a, b) in got.iter().zip(&want) {
                worst = worst.max((a - b).abs());
            }
        }
        eprintln!("c = {c}, logits in ±{range}: max |ASoftmax − softmax| = {worst:.2e}");
        // The goal for 7 classes on [−128, 128] is 2·10^-3.
        assert!(worst < 2e-3, "c = {c}, range {range}: error {worst}");
    }
}

/// The encrypted circuit scales the exponential's refreshes by
/// `ASoftmaxParams::max_shortfall`: the shared maximum must never fall further below the
/// true one (nor exceed it), on random rows and on rows built to sit at one round's worst
/// difference, for both ways of computing a round.
#[test]
fn row_maximum_stays_within_its_shortfall_bound() {
    for (p, range) in [
        (ASoftmaxParams::default(), 2.0..2.2),
        (ASoftmaxParams::hetal(ASoftmaxVariant::Normal), 4.0..4.5),
    ] {
        let bound = p.max_shortfall(8).unwrap();
        assert!(range.contains(&bound), "{:?}: bound {bound}", p.row_max);
        let prepared = p.prepare().unwrap();
        let scale = 1.0 / (2.0 * p.r_max);
        let shortfall = |logits: &[f64]| {
            let mut z: Vec<f64> = logits.iter().map(|v| v * scale).collect();
            z.resize(8, -0.5);
            let max = logits.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            max - prepared.approx_row_max(&z) / scale
        };
        let mut rng = StdRng::seed_from_u64(11);
        let (mut worst, mut best) = (0.0f64, f64::INFINITY);
        let mut probe = |logits: &[f64]| {
            let s = shortfall(logits);
            worst = worst.max(s);
            best = best.min(s);
        };
        for _ in 0..20_000 {
            let z: Vec<f64> = (0..7).map(|_| rng.random_range(-128.0..128.0)).collect();
            probe(&z);
        }
        // Rows whose one large difference sits anywhere in a round's reach (the sign's
        // worst is near 234 logits: a pair (−128, 106)).
        for i in 0..=256 {
            let d = f64::from(i);
            probe(&[-128.0, -128.0 + d, -128.0, -128.0, -128.0, -128.0, -128.0]);
            probe(&[-128.0 + d, -128.0, -128.0, 128.0 - d, -128.0, 0.0, -128.0]);
        }
        eprintln!(
            "{:?}: shortfall in [{best:.3e}, {worst:.3}] logits, bound {bound:.3}",
            p.row_max
        );
        assert!(worst <= bound, "shortfall {worst} above the bound {bound}");
        // Never above the true maximum (beyond float rounding): the row sum stays ≥ 1.
        assert!(best > -1e-6, "the maximum overshoots by {}", -best);
        // Fewer classes, fewer rounds.
        assert!(p.max_shortfall(2).unwrap() < bound / 2.0);
    }
}

#[test]
fn sign_and_domain_extension_behave() {
    let p = ASoftmaxParams::default();
    assert!((p.sign(0.5) - 1.0).abs() < 1e-3);
    assert!((p.sign(-0.2) + 1.0).abs() < 1e-2);
    assert_eq!(p.sign(0.0), 0.0);
    // No extension by default: the identity, and the exp polynomial's input map sends
    // [−r, exp_top] onto [−1, 1].
    assert_eq!((p.ext_n, p.extend(-200.0)), (0, -200.0));
    let (alpha, beta) = p.exp_input();
    assert!((alpha * -p.ext_r + beta + 1.0).abs() < 1e-12);
    assert!((alpha * p.exp_top + beta - 1.0).abs() < 1e-12);
    let short = ASoftmaxParams {
        ext_r: 128.0,
        ..ASoftmaxParams::default()
    };
    assert!(short.validate().is_err(), "[−128, 8] does not cover −256");
    // HETAL's domain extension: identity near 0, everything of ±256 lands in ±r.
    let h = ASoftmaxParams::hetal(ASoftmaxVariant::Normal);
    assert!((h.extend(0.1) - 0.1).abs() < 1e-2);
    for u in [-256.0, -100.0, -17.0, 0.0, 3.0] {
        assert!(h.extend(u).abs() <= h.ext_r + 1e-9, "{u} → {}", h.extend(u));
    }
    let bad = ASoftmaxParams { ext_n: 4, ..h };
    assert!(bad.validate().is_err(), "8·2^4 = 128 does not cover ±256");
    let no_f = ASoftmaxParams {
        sign_f_iters: 0,
        ..ASoftmaxParams::hetal(ASoftmaxVariant::Normal)
    };
    assert!(no_f.validate().is_err(), "the step function needs an f");
    let odd = ASoftmaxParams {
        row_max: RowMax::Relu { degree: 61 },
        ..ASoftmaxParams::default()
    };
    assert!(
        odd.validate().is_err(),
        "the relu polynomial has an even degree"
    );
}

#[test]
fn early_stopping_picks_the_best_epoch() {
    // Losses: improve until epoch 4, then three worse epochs → stop at epoch 7.
    let losses = [1.0, 0.8, 0.7, 0.65, 0.66, 0.70, 0.68, 0.5];
    let mut es = EarlyStopping::new(3);
    let mut stopped = None;
    for (i, &l) in losses.iter().enumerate() {
        let (_, d) = es.observe(i + 1, l);
        if d == Decision::Stop {
            stopped = Some(i + 1);
            break;
        }
    }
    assert_eq!(stopped, Some(7));
    assert_eq!(es.best_epoch(), Some(4));
    // NaN never improves.
    let mut es = EarlyStopping::new(1);
    assert_eq!(es.observe(1, f64::NAN), (false, Decision::Stop));
}

#[test]
fn nesterov_schedule() {
    let mut n = Nesterov::zeros(1, 1);
    assert_eq!(n.gamma().0, 0.0, "first step has no momentum");
    let g = he_linalg::Matrix::new(1, 1, vec![1.0]).unwrap();
    n.step(&g, 0.5);
    assert_eq!(n.w.get(0, 0), -0.5);
    let (gamma, _) = n.gamma();
    assert!(gamma > 0.0 && gamma < 1.0);
}

#[test]
fn dermamnist_features_load() {
    let spec = dataset("dermamnist").unwrap();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/data")
        .join(spec.subdir);
    if !dir.exists() {
        // CI runs with ../shared beside the clone, so missing data is a failure unless
        // the caller says otherwise.
        assert!(
            std::env::var_os("HETAL_ALLOW_MISSING_DATA").is_some(),
            "{} not present (set HETAL_ALLOW_MISSING_DATA=1 to skip this test)",
            dir.display()
        );
        eprintln!(
            "SKIPPED (HETAL_ALLOW_MISSING_DATA): {} not present",
            dir.display()
        );
        return;
    }
    let ds = hetal_train::Dataset::load(&dir, spec.classes).unwrap();
    assert_eq!(
        (ds.train.x.rows(), ds.val.x.rows(), ds.test.x.rows()),
        (7007, 1003, 2005)
    );
    assert_eq!(ds.train.x.cols(), spec.features);
    let mut counts = [0usize; 7];
    for &l in &ds.train.y {
        counts[l] += 1;
    }
    assert_eq!(
        counts,
        [228, 359, 769, 80, 779, 4693, 99],
        "the data README's class counts"
    );
    let pre = Preprocessor::fit(&ds.train.x).unwrap();
    let x = pre.apply(&ds.train.x);
    assert_eq!(x.cols(), 1281);
    assert!(x.as_slice().iter().all(|v| v.abs() <= 1.0));
    assert!(dataset("mnist-nope").is_err());
}
