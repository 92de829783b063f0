//! Softmax-regression training in float64: `plain` (exact softmax) and `simulated`
//! (ASoftmax with the encrypted run's schedule), with Nesterov's accelerated gradient
//! and validation-based early stopping (HETAL, Lee et al., ICML 2023, §3 and §5).
//!
//! The weight matrix is `W ∈ R^{c×(d+1)}` (bias folded in as the last, all-ones
//! feature), initialised to zero. Each step on a batch `X_B` (`n_B` rows) with one-hot
//! labels `Y_B`: logits `Z = X_B·Vᵀ`, probabilities `P = softmax(Z)` row-wise, gradient
//! `G = (P − Y_B)ᵀ·X_B / n_B`, then Nesterov's update in the FISTA form used by
//! encrypted logistic regression (Kim et al., "Logistic regression model training based
//! on the approximate homomorphic encryption", BMC Med. Genomics 2018):
//! `W_{t+1} = V_t − η·G(V_t)`, `V_{t+1} = W_{t+1} + γ_t·(W_{t+1} − W_t)` with
//! `γ_t = (λ_t − 1)/λ_{t+1}`, `λ_0 = 1`, `λ_{t+1} = (1 + √(1 + 4λ_t²))/2`.
//! Batches are a fresh permutation of the training split every epoch (ChaCha20 seeded
//! by `seed` and the epoch).

use crate::data::HyperParams;
use crate::error::{Result, TrainError};
use crate::softmax::{ASoftmaxParams, softmax_row};
use he_linalg::Matrix;
use rand::SeedableRng;
use rand::seq::SliceRandom;

/// How the softmax is computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum SoftmaxKind {
    /// Exact float64 softmax (`plain` mode).
    Exact,
    /// ASoftmax in float64 (`simulated` mode).
    Approximate,
}

/// What the early-stopping rule says after an epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Decision {
    /// Go on training.
    Continue,
    /// Stop: `patience` epochs without a lower validation loss.
    Stop,
}

/// Validation-based early stopping: keep the epoch with the lowest validation loss;
/// stop after `patience` epochs without improvement. This is the client's side of the
/// protocol: it sees only losses and answers one bit.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct EarlyStopping {
    patience: usize,
    best_loss: f64,
    best_epoch: Option<usize>,
    bad_epochs: usize,
}

impl EarlyStopping {
    /// A rule with the given patience.
    pub fn new(patience: usize) -> Self {
        Self {
            patience,
            best_loss: f64::INFINITY,
            best_epoch: None,
            bad_epochs: 0,
        }
    }

    /// Records epoch `epoch`'s validation loss; returns whether it is the best so far
    /// and the decision. A non-finite loss never counts as an improvement.
    pub fn observe(&mut self, epoch: usize, loss: f64) -> (bool, Decision) {
        let improved = loss.is_finite() && loss < self.best_loss;
        if improved {
            self.best_loss = loss;
            self.best_epoch = Some(epoch);
            self.bad_epochs = 0;
        } else {
            self.bad_epochs += 1;
        }
        let d = if self.bad_epochs >= self.patience {
            Decision::Stop
        } else {
            Decision::Continue
        };
        (improved, d)
    }

    /// The best epoch so far.
    pub fn best_epoch(&self) -> Option<usize> {
        self.best_epoch
    }
}

/// One epoch's record.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EpochRecord {
    /// Epoch number (from 1).
    pub epoch: usize,
    /// Steps so far.
    pub steps: usize,
    /// Mean training cross-entropy over the epoch's batches (with the mode's softmax).
    pub train_loss: f64,
    /// Validation cross-entropy (exact softmax of the decrypted logits).
    pub val_loss: f64,
    /// Validation accuracy (fraction).
    pub val_accuracy: f64,
}

/// The result of a training run.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct TrainOutcome {
    /// The weights of the best epoch (`c × (d+1)`).
    pub w: Matrix,
    /// The last iterate `W` (where a truncated run stopped).
    pub last_w: Matrix,
    /// The best epoch (1-based).
    pub best_epoch: usize,
    /// Epochs run.
    pub epochs: usize,
    /// Steps run.
    pub steps: usize,
    /// Whether early stopping ended the run.
    pub stopped_early: bool,
    /// Per-epoch history.
    pub history: Vec<EpochRecord>,
    /// The largest `|W_t|` or `|V_t|` entry over every step of the run: what the
    /// encrypted run's weight bound ([`crate::encrypted::SessionConfig::weight_bound`])
    /// must cover, since the weights are bootstrapped as `W/M` and a refresh of a
    /// message outside `[−1, 1]` is wrong.
    pub peak_abs_weight: f64,
}

/// Nesterov's momentum coefficient in the FISTA form: `(γ_t, λ_{t+1})` with
/// `λ_{t+1} = (1 + √(1 + 4λ_t²))/2` and `γ_t = (λ_t − 1)/λ_{t+1}`.
pub fn nesterov_gamma(lambda: f64) -> (f64, f64) {
    let next = (1.0 + (1.0 + 4.0 * lambda * lambda).sqrt()) / 2.0;
    ((lambda - 1.0) / next, next)
}

/// The arithmetic of Nesterov's update, over plaintext numbers or ciphertexts: the one
/// update rule ([`nesterov_update`]) serves the float64 and the encrypted paths.
pub trait UpdateArith<T> {
    /// `a − b`.
    ///
    /// # Errors
    /// Whatever the arithmetic reports (levels, scales for ciphertexts).
    fn sub(&self, a: &T, b: &T) -> crate::Result<T>;
    /// `a + b`.
    ///
    /// # Errors
    /// As [`Self::sub`].
    fn add(&self, a: &T, b: &T) -> crate::Result<T>;
    /// `c·a`.
    ///
    /// # Errors
    /// As [`Self::sub`].
    fn scale(&self, a: &T, c: f64) -> crate::Result<T>;
}

/// Plain `f64` arithmetic.
#[derive(Debug, Clone, Copy, Default)]
pub struct FloatArith;

impl UpdateArith<f64> for FloatArith {
    fn sub(&self, a: &f64, b: &f64) -> crate::Result<f64> {
        Ok(a - b)
    }
    fn add(&self, a: &f64, b: &f64) -> crate::Result<f64> {
        Ok(a + b)
    }
    fn scale(&self, a: &f64, c: f64) -> crate::Result<f64> {
        Ok(c * a)
    }
}

/// One Nesterov update (FISTA form, HETAL Algorithm 1) of one entry or block, the
/// gradient `g` taken at the look-ahead `v`: `w' = v − η·g`, `v' = w' + γ·(w' − w)`.
/// Returns `(w', v')`.
///
/// # Errors
/// As the arithmetic's.
pub fn nesterov_update<T, A: UpdateArith<T>>(
    arith: &A,
    w: &T,
    v: &T,
    g: &T,
    lr: f64,
    gamma: f64,
) -> crate::Result<(T, T)> {
    nesterov_update_scaled(arith, w, v, &arith.scale(g, lr)?, gamma)
}

/// [`nesterov_update`] with the step `η·g` already computed (the encrypted server folds
/// `η` into DiagATB, `he_linalg::MatrixEvaluator::diag_atb_scaled`, so the update costs
/// no level of its own): `w' = v − step`, `v' = w' + γ·(w' − w)`. Returns `(w', v')`.
///
/// # Errors
/// As the arithmetic's.
pub fn nesterov_update_scaled<T, A: UpdateArith<T>>(
    arith: &A,
    w: &T,
    v: &T,
    step: &T,
    gamma: f64,
) -> crate::Result<(T, T)> {
    let wn = arith.sub(v, step)?;
    let momentum = arith.scale(&arith.sub(&wn, w)?, gamma)?;
    let vn = arith.add(&wn, &momentum)?;
    Ok((wn, vn))
}

/// Nesterov state (`W_t`, `V_t`, `λ_t`).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Nesterov {
    /// Current iterate `W_t`.
    pub w: Matrix,
    /// Look-ahead point `V_t` (where gradients are taken).
    pub v: Matrix,
    /// `λ_t`.
    pub lambda: f64,
}

impl Nesterov {
    /// Zero-initialised state for a `c × d` weight matrix.
    pub fn zeros(c: usize, d: usize) -> Self {
        Self {
            w: Matrix::zeros(c, d),
            v: Matrix::zeros(c, d),
            lambda: 1.0,
        }
    }

    /// The momentum coefficient `γ_t` of the next update (and `λ_{t+1}`).
    pub fn gamma(&self) -> (f64, f64) {
        nesterov_gamma(self.lambda)
    }

    /// Applies one update with gradient `g` taken at `V_t`.
    pub fn step(&mut self, g: &Matrix, lr: f64) {
        let (gamma, next) = self.gamma();
        let mut w_new = Matrix::zeros(g.rows(), g.cols());
        let mut v_new = Matrix::zeros(g.rows(), g.cols());
        for i in 0..g.rows() {
            for j in 0..g.cols() {
                let (wn, vn) = nesterov_update(
                    &FloatArith,
                    &self.w.get(i, j),
                    &self.v.get(i, j),
                    &g.get(i, j),
                    lr,
                    gamma,
                )
                .unwrap_or_default(); // `FloatArith` cannot fail
                w_new.set(i, j, wn);
                v_new.set(i, j, vn);
            }
        }
        self.w = w_new;
        self.v = v_new;
        self.lambda = next;
    }
}

/// Row-wise softmax of a logits matrix.
pub fn softmax_rows(z: &Matrix, kind: SoftmaxKind, params: &ASoftmaxParams) -> Result<Matrix> {
    let prepared = match kind {
        SoftmaxKind::Exact => None,
        SoftmaxKind::Approximate => Some(params.prepare()?),
    };
    let rows: Vec<Vec<f64>> = (0..z.rows())
        .map(|i| match &prepared {
            None => softmax_row(z.row(i)),
            Some(p) => p.eval_row(z.row(i)),
        })
        .collect();
    Ok(Matrix::from_rows(&rows)?)
}

/// Mean cross-entropy of probabilities `p` against labels (probabilities clamped at
/// `1e-12`).
pub fn cross_entropy(p: &Matrix, y: &[usize]) -> f64 {
    let n = y.len().max(1) as f64;
    y.iter()
        .enumerate()
        .map(|(i, &l)| -p.get(i, l).max(1e-12).ln())
        .sum::<f64>()
        / n
}

/// Fraction of rows whose argmax is the label.
pub fn accuracy(z: &Matrix, y: &[usize]) -> f64 {
    let hits = predicted_classes(z)
        .iter()
        .zip(y)
        .filter(|(p, l)| p == l)
        .count();
    hits as f64 / y.len().max(1) as f64
}

/// The class of each row of logits `z` (`n × c`): the first index of the row's
/// maximum.
pub fn predicted_classes(z: &Matrix) -> Vec<usize> {
    (0..z.rows())
        .map(|i| {
            let row = z.row(i);
            (0..row.len()).fold(0, |b, j| if row[j] > row[b] { j } else { b })
        })
        .collect()
}

/// The gradient `(P − Y)ᵀ·X / n` of the mean cross-entropy at `w` on a batch.
///
/// # Errors
/// Shape errors.
pub fn gradient(
    x: &Matrix,
    y: &[usize],
    w: &Matrix,
    kind: SoftmaxKind,
    params: &ASoftmaxParams,
) -> Result<(Matrix, f64)> {
    let z = x.matmul_bt(w)?;
    let p = softmax_rows(&z, kind, params)?;
    let loss = cross_entropy(&p, y);
    let n = x.rows() as f64;
    let d = Matrix::from_fn(p.rows(), p.cols(), |i, j| {
        (p.get(i, j) - f64::from(u8::from(y[i] == j))) / n
    });
    Ok((d.matmul_at(x)?, loss))
}

/// The batch schedule of an epoch: a permutation of `0..n` cut into batches.
pub fn epoch_batches(n: usize, batch: usize, seed: u64, epoch: usize) -> Vec<Vec<usize>> {
    let mut idx: Vec<usize> = (0..n).collect();
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(
        seed ^ (epoch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15),
    );
    idx.shuffle(&mut rng);
    idx.chunks(batch.max(1)).map(<[usize]>::to_vec).collect()
}

/// The rows `idx` of `x`, in that order.
pub fn rows_of(x: &Matrix, idx: &[usize]) -> Matrix {
    Matrix::from_fn(idx.len(), x.cols(), |i, j| x.get(idx[i], j))
}

/// Float64 training (`plain` or `simulated`) on preprocessed features (bias column
/// included). `max_steps` truncates the run; the partial epoch is validated as the last
/// epoch.
///
/// # Errors
/// [`TrainError::Config`] for an empty split or zero batch; shape errors.
#[allow(clippy::too_many_arguments)]
pub fn train_float(
    train: (&Matrix, &[usize]),
    val: (&Matrix, &[usize]),
    classes: usize,
    hyper: &HyperParams,
    kind: SoftmaxKind,
    params: &ASoftmaxParams,
    seed: u64,
    max_steps: Option<usize>,
) -> Result<TrainOutcome> {
    let (x, y) = train;
    if x.rows() == 0 || hyper.batch == 0 {
        return Err(TrainError::Config(
            "empty training split or zero batch".into(),
        ));
    }
    params.validate()?;
    let mut opt = Nesterov::zeros(classes, x.cols());
    let mut stop = EarlyStopping::new(hyper.patience);
    let mut best = opt.w.clone();
    let mut history = Vec::new();
    let mut steps = 0;
    let mut stopped_early = false;
    let mut peak_abs_weight = 0.0f64;
    for epoch in 1..=hyper.epochs {
        let mut losses = Vec::new();
        let mut truncated = false;
        for b in epoch_batches(x.rows(), hyper.batch, seed, epoch) {
            if max_steps.is_some_and(|m| steps >= m) {
                truncated = true;
                break;
            }
            let xb = rows_of(x, &b);
            let yb: Vec<usize> = b.iter().map(|&i| y[i]).collect();
            let (g, loss) = gradient(&xb, &yb, &opt.v, kind, params)?;
            opt.step(&g, hyper.learning_rate);
            peak_abs_weight = peak_abs_weight.max(max_abs(&opt.w)).max(max_abs(&opt.v));
            losses.push(loss);
            steps += 1;
        }
        let zv = val.0.matmul_bt(&opt.w)?;
        let pv = softmax_rows(&zv, SoftmaxKind::Exact, params)?;
        let val_loss = cross_entropy(&pv, val.1);
        history.push(EpochRecord {
            epoch,
            steps,
            train_loss: losses.iter().sum::<f64>() / losses.len().max(1) as f64,
            val_loss,
            val_accuracy: accuracy(&zv, val.1),
        });
        let (improved, decision) = stop.observe(epoch, val_loss);
        if improved {
            best = opt.w.clone();
        }
        if decision == Decision::Stop {
            stopped_early = true;
            break;
        }
        if truncated || max_steps.is_some_and(|m| steps >= m) {
            break;
        }
    }
    Ok(TrainOutcome {
        last_w: opt.w,
        w: best,
        best_epoch: stop.best_epoch().unwrap_or(0),
        epochs: history.len(),
        steps,
        stopped_early,
        history,
        peak_abs_weight,
    })
}

/// The largest absolute entry of `m` (0 for an empty matrix).
pub(crate) fn max_abs(m: &Matrix) -> f64 {
    m.as_slice().iter().fold(0.0, |a, x| a.max(x.abs()))
}
