//! Chiang's training of the last layer (J. Chiang, "Privacy-Preserving CNN Training
//! with Transfer Learning: Multiclass Logistic Regression", arXiv 2304.03807, 2023, and
//! "Multinomial Logistic Regression Algorithms via Quadratic Gradient", arXiv
//! 2208.06828), in float64: `plain` (exact sigmoid) and `simulated` (the degree-3
//! polynomial his encrypted code evaluates), the comparison point for HETAL's
//! softmax + Nesterov ([`crate::train`]).
//!
//! - **Sigmoid for softmax**: each class is scored by `σ(x·w_j)` independently
//!   (one-vs-rest), so no normalisation across classes is needed under encryption. The
//!   encrypted code's approximation is `σ(x) ≈ 0.5 + 0.10679534503216294·x −
//!   0.00038503259805075·x³` (`README.md` of petitioner/HE.CNNtraining): a
//!   wide-interval fit, within 0.171 of `σ` on `[−8, 8]` (worst near `|x| = 2`; its slope
//!   at 0 is 0.107 against `σ`'s 0.25), monotone up to `|x| ≈ 9.6`, and back at 0.5 at
//!   `|x| ≈ 16.65`.
//! - **Loss**: the one-vs-rest Bernoulli log-likelihood `Σ_ij log|σ(z_ij) − 1 + y_ij|`
//!   (what that code reports as "SLE", `Tools::calculateSLE`), maximised; its gradient
//!   is `G = (Y − P)ᵀ·X`.
//! - **Quadratic gradient**: `G` is preconditioned by the diagonal bound of the
//!   Hessian `B̄_jj = ε + ¼·Σ_i |x_ij|·Σ_k |x_ik|` (Böhning's bound made diagonal, as in
//!   2208.06828 §3): `G̃ = B̄⁻¹·G` per feature, computed once from the training features
//!   (the client can encrypt it).
//! - **Update**: Nesterov's method as in the reference code: with `V` the point where
//!   the gradient is taken, `T = W + (1 + γ_t)·G̃(V)`, `W ← (1 − η_t)·T + η_t·V`,
//!   `V ← T`, `γ_t = 1/((t+1)·n)`, `η_t = (1 − α_t)/α_{t+1}`, `α_0 = 0.01`,
//!   `α_{t+1} = (1 + √(1 + 4α_t²))/2` ([`chiang_update`], [`iteration_constants`]). Every iteration uses the whole training split
//!   (full batch), as Chiang does; one iteration is one step and one epoch here.
//!
//! Early stopping is HETAL's rule ([`EarlyStopping`]) on the validation split's mean
//! negative log-likelihood (exact sigmoid), so the two algorithms are compared under the
//! same protocol. Features are the client's preprocessed ones ([`crate::Preprocessor`]:
//! scaled to `[−1, 1]`, bias column last).
//!
//! The encrypted mode is [`crate::encrypted::chiang`] (this project's block packing with
//! DiagABT/DiagATB and bootstrapping; Chiang's "Volley Revolver" packing is not
//! implemented); both paths share [`chiang_update`] and [`iteration_constants`].

use crate::error::{Result, TrainError};
use crate::train::{
    Decision, EarlyStopping, EpochRecord, FloatArith, TrainOutcome, UpdateArith, accuracy,
};
use he_linalg::Matrix;

/// Coefficients `(c_0, c_1, c_2, c_3)` of Chiang's degree-3 sigmoid approximation.
pub const SIGMOID_POLY3: [f64; 4] = [
    0.5,
    0.106_795_345_032_162_94,
    0.0,
    -0.000_385_032_598_050_75,
];

/// How the sigmoid is computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum SigmoidKind {
    /// `1/(1 + e^{−x})` with `x` clipped to `[−8, 8]` as in the reference code (`plain`).
    Exact,
    /// [`SIGMOID_POLY3`] without clipping, as evaluated under encryption (`simulated`).
    Poly3,
}

/// The sigmoid of one value.
pub fn sigmoid(x: f64, kind: SigmoidKind) -> f64 {
    match kind {
        SigmoidKind::Exact => 1.0 / (1.0 + (-x.clamp(-8.0, 8.0)).exp()),
        SigmoidKind::Poly3 => {
            let [c0, c1, _, c3] = SIGMOID_POLY3;
            c0 + x * (c1 + c3 * x * x)
        }
    }
}

/// Settings of [`train_chiang`].
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ChiangConfig {
    /// Maximum iterations (full-batch steps).
    pub iterations: usize,
    /// Early-stopping patience in iterations; `None` disables early stopping (the last
    /// iterate is kept).
    pub patience: Option<usize>,
    /// `ε` of the Hessian bound (keeps `B̄` invertible for all-zero features).
    pub epsilon: f64,
    /// Whether to precondition with the quadratic gradient (`false`: plain Nesterov
    /// with step `γ_t`, the reference code's baseline).
    pub quadratic_gradient: bool,
}

impl Default for ChiangConfig {
    /// 30 iterations, patience 3, `ε = 1e-10`, quadratic gradient on.
    fn default() -> Self {
        Self {
            iterations: 30,
            patience: Some(3),
            epsilon: 1e-10,
            quadratic_gradient: true,
        }
    }
}

/// The constants of iteration `t` (0-based) on `n` rows: `(step, η_t)` with step
/// `1 + γ_t` (quadratic gradient) or `γ_t` (plain Nesterov), `γ_t = 1/((t+1)·n)`, and
/// `η_t = (1 − α_t)/α_{t+1}` (`α_0 = 0.01`, `α_{t+1} = (1 + √(1 + 4α_t²))/2`).
pub fn iteration_constants(t: usize, n: usize, quadratic_gradient: bool) -> (f64, f64) {
    let gamma = 1.0 / ((t + 1) as f64 * n.max(1) as f64);
    let step = if quadratic_gradient {
        1.0 + gamma
    } else {
        gamma
    };
    let next = |a: f64| (1.0 + (1.0 + 4.0 * a * a).sqrt()) / 2.0;
    let mut a0 = 0.01f64;
    let mut a1 = next(a0);
    for _ in 0..t {
        a0 = a1;
        a1 = next(a0);
    }
    (step, (1.0 - a0) / a1)
}

/// Chiang's update of one entry or block, over numbers or ciphertexts (the one rule for
/// the float64 and encrypted paths), with `g` the preconditioned gradient taken at `v`:
/// `T = w + step·g`, `w' = (1 − η)·T + η·v`, `v' = T`. Returns `(w', v')`; under
/// encryption it costs two levels (`step·g`, then the mix).
///
/// # Errors
/// As the arithmetic's.
pub fn chiang_update<T: Clone, A: UpdateArith<T>>(
    arith: &A,
    w: &T,
    v: &T,
    g: &T,
    step: f64,
    eta: f64,
) -> Result<(T, T)> {
    let t = arith.add(w, &arith.scale(g, step)?)?;
    let wn = arith.add(&arith.scale(&t, 1.0 - eta)?, &arith.scale(v, eta)?)?;
    Ok((wn, t))
}

/// `B̄⁻¹` per feature: `1/(ε + ¼·Σ_i |x_ij|·Σ_k |x_ik|)` (`d + 1` values), and 0 for
/// a feature that is zero in every row: its gradient is identically zero, and `1/ε`
/// (10^10 for Chiang's ε) would multiply the encrypted gradient's noise into the
/// weights (DermaMNIST's EfficientNet features have one such column).
pub fn inverse_hessian_bound(x: &Matrix, epsilon: f64) -> Vec<f64> {
    let row_abs: Vec<f64> = (0..x.rows())
        .map(|i| x.row(i).iter().map(|v| v.abs()).sum())
        .collect();
    (0..x.cols())
        .map(|j| {
            let s: f64 = (0..x.rows()).map(|i| x.get(i, j).abs() * row_abs[i]).sum();
            if s == 0.0 {
                0.0
            } else {
                1.0 / (epsilon + 0.25 * s)
            }
        })
        .collect()
}

/// Sigmoid scores `σ(X·Wᵀ)` (`n × c`).
///
/// # Errors
/// Shape errors.
pub fn scores(x: &Matrix, w: &Matrix, kind: SigmoidKind) -> Result<Matrix> {
    let z = x.matmul_bt(w)?;
    Ok(Matrix::from_fn(z.rows(), z.cols(), |i, j| {
        sigmoid(z.get(i, j), kind)
    }))
}

/// Mean negative one-vs-rest log-likelihood `−(1/n)·Σ_ij log|p_ij − 1 + y_ij|` of
/// scores `p` (`n × c`) for labels `y`.
pub fn negative_log_likelihood(p: &Matrix, y: &[usize]) -> f64 {
    let n = y.len().max(1) as f64;
    let mut s = 0.0;
    for (i, &label) in y.iter().enumerate() {
        for j in 0..p.cols() {
            let q = if j == label {
                p.get(i, j)
            } else {
                1.0 - p.get(i, j)
            };
            s -= q.abs().max(1e-12).ln();
        }
    }
    s / n
}

/// Chiang's training (see the module docs) on preprocessed features (bias column
/// included). `max_steps` truncates the run. The returned [`TrainOutcome`] counts one
/// epoch and one step per iteration; `w` is the iterate of the lowest validation loss
/// (the last one without early stopping).
///
/// # Errors
/// [`TrainError::Config`] for an empty split, zero iterations or labels `≥ classes`;
/// shape errors.
pub fn train_chiang(
    train: (&Matrix, &[usize]),
    val: (&Matrix, &[usize]),
    classes: usize,
    cfg: &ChiangConfig,
    kind: SigmoidKind,
    max_steps: Option<usize>,
) -> Result<TrainOutcome> {
    let (x, y) = train;
    if x.rows() == 0 || cfg.iterations == 0 || x.rows() != y.len() {
        return Err(TrainError::Config(
            "Chiang's training needs a non-empty split and at least one iteration".into(),
        ));
    }
    if y.iter().chain(val.1).any(|&c| c >= classes) {
        return Err(TrainError::Config(format!("labels outside 0..{classes}")));
    }
    let d = x.cols();
    let inv_b = if cfg.quadratic_gradient {
        inverse_hessian_bound(x, cfg.epsilon)
    } else {
        vec![1.0; d]
    };
    let mut w = Matrix::zeros(classes, d);
    let mut v = Matrix::zeros(classes, d);
    let mut stop = cfg.patience.map(EarlyStopping::new);
    let mut best = w.clone();
    let mut history = Vec::new();
    let mut stopped_early = false;
    let mut steps = 0;
    let mut peak_abs_weight = 0.0f64;
    let iterations = max_steps.map_or(cfg.iterations, |m| m.min(cfg.iterations));
    for t in 0..iterations {
        let p = scores(x, &v, kind)?;
        let train_loss = negative_log_likelihood(&p, y);
        // G = (Y − P)ᵀ·X, preconditioned per feature.
        let diff = Matrix::from_fn(p.rows(), p.cols(), |i, j| {
            f64::from(u8::from(y[i] == j)) - p.get(i, j)
        });
        let g = diff.matmul_at(x)?;
        let (step, eta) = iteration_constants(t, x.rows(), cfg.quadratic_gradient);
        let mut wn = Matrix::zeros(classes, d);
        let mut vn = Matrix::zeros(classes, d);
        for i in 0..classes {
            for (j, ib) in inv_b.iter().enumerate() {
                let (a, b) = chiang_update(
                    &FloatArith,
                    &w.get(i, j),
                    &v.get(i, j),
                    &(ib * g.get(i, j)),
                    step,
                    eta,
                )?;
                wn.set(i, j, a);
                vn.set(i, j, b);
            }
        }
        w = wn;
        v = vn;
        peak_abs_weight = peak_abs_weight
            .max(crate::train::max_abs(&w))
            .max(crate::train::max_abs(&v));
        steps += 1;

        let pv = scores(val.0, &w, SigmoidKind::Exact)?;
        let val_loss = negative_log_likelihood(&pv, val.1);
        history.push(EpochRecord {
            epoch: t + 1,
            steps,
            train_loss,
            val_loss,
            val_accuracy: accuracy(&val.0.matmul_bt(&w)?, val.1),
        });
        match &mut stop {
            Some(rule) => {
                let (improved, decision) = rule.observe(t + 1, val_loss);
                if improved {
                    best = w.clone();
                }
                if decision == Decision::Stop {
                    stopped_early = true;
                    break;
                }
            }
            None => best = w.clone(),
        }
    }
    let best_epoch = stop
        .as_ref()
        .and_then(EarlyStopping::best_epoch)
        .unwrap_or(history.len());
    Ok(TrainOutcome {
        last_w: w,
        w: best,
        best_epoch,
        epochs: history.len(),
        steps,
        stopped_early,
        history,
        peak_abs_weight,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poly3_follows_the_sigmoid_on_its_interval() {
        let worst = (-800..=800)
            .map(|i| {
                let x = f64::from(i) / 100.0;
                (sigmoid(x, SigmoidKind::Poly3) - 1.0 / (1.0 + (-x).exp())).abs()
            })
            .fold(0.0f64, f64::max);
        // Chiang's wide-interval fit: within 0.171 of σ on [−8, 8] (worst near |x| = 2).
        assert!(worst < 0.171, "{worst}");
        assert!(worst > 0.17, "{worst}");
        assert_eq!(sigmoid(0.0, SigmoidKind::Poly3), 0.5);
        assert_eq!(
            sigmoid(100.0, SigmoidKind::Exact),
            sigmoid(8.0, SigmoidKind::Exact)
        );
    }

    /// Two separated clusters per class in 4 features plus the bias column.
    fn data(n: usize) -> (Matrix, Vec<usize>) {
        let y: Vec<usize> = (0..n).map(|i| i % 3).collect();
        let x = Matrix::from_fn(n, 5, |i, j| {
            if j == 4 {
                1.0
            } else {
                let centre = if j == y[i] { 0.8 } else { -0.2 };
                centre + 0.3 * (((i * 7 + j * 13) % 17) as f64 / 17.0 - 0.5)
            }
        });
        (x, y)
    }

    #[test]
    fn first_iteration_is_the_reference_formula() {
        let (x, y) = data(30);
        let cfg = ChiangConfig {
            iterations: 1,
            patience: None,
            ..ChiangConfig::default()
        };
        let out = train_chiang((&x, &y), (&x, &y), 3, &cfg, SigmoidKind::Poly3, None).unwrap();
        // From W = V = 0: P = 1/2, T = (1 + 1/n)·B̄⁻¹ ⊙ (Y − P)ᵀX, W = (1 − η_0)·T.
        let inv_b = inverse_hessian_bound(&x, cfg.epsilon);
        let a1 = (1.0 + (1.0f64 + 4.0 * 0.01 * 0.01).sqrt()) / 2.0;
        let eta = (1.0 - 0.01) / a1;
        for c in 0..3 {
            for (j, b) in inv_b.iter().enumerate() {
                let g: f64 = (0..30)
                    .map(|i| (f64::from(u8::from(y[i] == c)) - 0.5) * x.get(i, j))
                    .sum();
                let want = (1.0 - eta) * (1.0 + 1.0 / 30.0) * b * g;
                assert!((out.last_w.get(c, j) - want).abs() < 1e-12, "({c}, {j})");
            }
        }
    }

    #[test]
    fn quadratic_gradient_converges_where_plain_nesterov_crawls() {
        let (x, y) = data(90);
        let run = |qg: bool| {
            let cfg = ChiangConfig {
                iterations: 10,
                patience: None,
                quadratic_gradient: qg,
                ..ChiangConfig::default()
            };
            let out = train_chiang((&x, &y), (&x, &y), 3, &cfg, SigmoidKind::Exact, None).unwrap();
            (
                accuracy(&x.matmul_bt(&out.w).unwrap(), &y),
                negative_log_likelihood(&scores(&x, &out.w, SigmoidKind::Exact).unwrap(), &y),
            )
        };
        let ((acc, with), (_, without)) = (run(true), run(false));
        assert!(acc > 0.95, "quadratic gradient: accuracy {acc}");
        // Plain Nesterov with γ_t = 1/((t+1)·n) barely moves from log 2 per entry.
        assert!(with < 0.5 * without, "loss {with} vs {without}");
    }

    #[test]
    fn an_all_zero_feature_gets_no_step() {
        let x = Matrix::from_fn(4, 3, |i, j| if j == 1 { 0.0 } else { i as f64 + 1.0 });
        let inv = inverse_hessian_bound(&x, 1e-10);
        assert_eq!(inv[1], 0.0);
        assert!(inv[0] > 0.0 && inv[0] < 1.0);
    }

    #[test]
    fn hessian_bound_dominates_the_hessian_diagonal() {
        // The Hessian of the one-vs-rest log-likelihood per class is −Xᵀ·diag(p(1−p))·X,
        // whose diagonal is at most ¼·Σ_i x_ij²; the bound adds the off-diagonal mass.
        let x = Matrix::from_fn(5, 3, |i, j| ((i * 3 + j) as f64).sin());
        let inv = inverse_hessian_bound(&x, 0.0);
        for (j, &b) in inv.iter().enumerate() {
            let diag: f64 = (0..5).map(|i| 0.25 * x.get(i, j).powi(2)).sum();
            assert!(1.0 / b >= diag, "feature {j}");
        }
    }
}
