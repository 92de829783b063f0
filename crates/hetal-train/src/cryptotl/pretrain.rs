//! The server's plaintext pre-training of its network: the frozen part
//! ([`FrozenNetwork`]: dense, square, dense) with a softmax head on top, trained with
//! Adam (Kingma and Ba, ICLR 2015) on the server's share of the training split; the
//! head is discarded, the rest frozen. Early stopping on a held-out tenth of the
//! server's share. Deterministic for a given seed.

use super::network::{FrozenNetwork, Provenance};
use crate::error::{Result, TrainError};
use crate::train::{accuracy, cross_entropy, epoch_batches, rows_of};
use he_linalg::Matrix;
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use rand_distr::{Distribution, Normal};

/// Pre-training settings.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PretrainConfig {
    /// Hidden width of the first layer.
    pub hidden: usize,
    /// Output width (what the client receives per example).
    pub outputs: usize,
    /// Maximum epochs.
    pub epochs: usize,
    /// Epochs without a lower held-out loss before stopping.
    pub patience: usize,
    /// Mini-batch size.
    pub batch: usize,
    /// Adam's step size.
    pub learning_rate: f64,
    /// L2 weight decay (added to the gradient).
    pub weight_decay: f64,
    /// Fraction of the training split left to the client (the server never sees it).
    pub client_fraction: f64,
    /// Seed of the split, the initialisation and the batch order.
    pub seed: u64,
}

impl Default for PretrainConfig {
    /// 128 hidden units, 32 outputs, at most 40 epochs (patience 4), batches of 128,
    /// step 1e-3, decay 1e-4, a fifth of the training split left to the client, seed 0.
    fn default() -> Self {
        Self {
            hidden: 128,
            outputs: 32,
            epochs: 40,
            patience: 4,
            batch: 128,
            learning_rate: 1e-3,
            weight_decay: 1e-4,
            client_fraction: 0.2,
            seed: 0,
        }
    }
}

/// The split of a training split of `n` examples into the server's pre-training share
/// and the client's fine-tuning share (`round(n·client_fraction)` examples): a seeded
/// permutation, both parts sorted.
///
/// # Errors
/// [`TrainError::Config`] unless `0 < client_fraction < 1` and both parts are non-empty.
pub fn transfer_split(
    n: usize,
    client_fraction: f64,
    seed: u64,
) -> Result<(Vec<usize>, Vec<usize>)> {
    if !(client_fraction > 0.0 && client_fraction < 1.0) {
        return Err(TrainError::Config(format!(
            "client fraction {client_fraction} outside (0, 1)"
        )));
    }
    let n_client = (n as f64 * client_fraction).round() as usize;
    if n_client == 0 || n_client >= n {
        return Err(TrainError::Config(format!(
            "{n} examples cannot be split with client fraction {client_fraction}"
        )));
    }
    let perm = epoch_batches(n, n, seed ^ 0x5EED_C7A1, 0).concat();
    let mut client = perm[..n_client].to_vec();
    let mut server = perm[n_client..].to_vec();
    client.sort_unstable();
    server.sort_unstable();
    Ok((server, client))
}

/// Unit-norm rows (a zero row stays zero): the input normalisation of the CryptoTL
/// client, which the network is trained with and the DP bound assumes (`‖x‖₂ ≤ 1`).
pub fn normalize_rows(x: &Matrix) -> Matrix {
    let norms: Vec<f64> = (0..x.rows())
        .map(|i| x.row(i).iter().map(|v| v * v).sum::<f64>().sqrt())
        .collect();
    Matrix::from_fn(x.rows(), x.cols(), |i, j| {
        if norms[i] > 0.0 {
            x.get(i, j) / norms[i]
        } else {
            0.0
        }
    })
}

/// What pre-training did.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PretrainReport {
    /// Epochs run.
    pub epochs: usize,
    /// Epoch of the kept weights (lowest held-out loss).
    pub best_epoch: usize,
    /// Held-out accuracy of the kept weights (network + head).
    pub val_accuracy: f64,
    /// Held-out loss per epoch.
    pub val_loss: Vec<f64>,
    /// Examples trained on.
    pub train_samples: usize,
    /// Examples held out.
    pub val_samples: usize,
}

/// Parameters being trained: the network's and the head's (`classes × outputs`).
#[derive(Clone)]
struct Params {
    w1: Matrix,
    b1: Vec<f64>,
    w2: Matrix,
    b2: Vec<f64>,
    w3: Matrix,
    b3: Vec<f64>,
}

impl Params {
    fn flat_mut(&mut self) -> [&mut [f64]; 6] {
        [
            self.w1.as_mut_slice(),
            &mut self.b1,
            self.w2.as_mut_slice(),
            &mut self.b2,
            self.w3.as_mut_slice(),
            &mut self.b3,
        ]
    }

    fn flat(&self) -> [&[f64]; 6] {
        [
            self.w1.as_slice(),
            &self.b1,
            self.w2.as_slice(),
            &self.b2,
            self.w3.as_slice(),
            &self.b3,
        ]
    }
}

fn add_bias(m: &mut Matrix, b: &[f64]) {
    for i in 0..m.rows() {
        for (j, &bj) in b.iter().enumerate() {
            m.set(i, j, m.get(i, j) + bj);
        }
    }
}

fn col_sums(m: &Matrix) -> Vec<f64> {
    let mut s = vec![0.0; m.cols()];
    for i in 0..m.rows() {
        for (acc, v) in s.iter_mut().zip(m.row(i)) {
            *acc += v;
        }
    }
    s
}

/// Forward pass: (pre-activation `h`, activation `a = h²`, output `z`, logits).
fn forward(p: &Params, x: &Matrix) -> Result<(Matrix, Matrix, Matrix, Matrix)> {
    let mut h = x.matmul_bt(&p.w1)?;
    add_bias(&mut h, &p.b1);
    let a = Matrix::from_fn(h.rows(), h.cols(), |i, j| h.get(i, j) * h.get(i, j));
    let mut z = a.matmul_bt(&p.w2)?;
    add_bias(&mut z, &p.b2);
    let mut logits = z.matmul_bt(&p.w3)?;
    add_bias(&mut logits, &p.b3);
    Ok((h, a, z, logits))
}

fn softmax(logits: &Matrix) -> Matrix {
    let mut p = logits.clone();
    for i in 0..p.rows() {
        let m = logits
            .row(i)
            .iter()
            .fold(f64::NEG_INFINITY, |a, &b| a.max(b));
        let e: Vec<f64> = logits.row(i).iter().map(|v| (v - m).exp()).collect();
        let s: f64 = e.iter().sum();
        for (j, v) in e.iter().enumerate() {
            p.set(i, j, v / s);
        }
    }
    p
}

/// Gradients of the mean cross-entropy, in [`Params`]' order, and the loss.
fn gradients(p: &Params, x: &Matrix, y: &[usize]) -> Result<(Params, f64)> {
    let (h, a, z, logits) = forward(p, x)?;
    let prob = softmax(&logits);
    let loss = cross_entropy(&prob, y);
    let n = x.rows() as f64;
    let dl = Matrix::from_fn(prob.rows(), prob.cols(), |i, j| {
        (prob.get(i, j) - f64::from(u8::from(y[i] == j))) / n
    });
    let w3 = dl.matmul_at(&z)?;
    let b3 = col_sums(&dl);
    let dz = dl.matmul(&p.w3)?;
    let w2 = dz.matmul_at(&a)?;
    let b2 = col_sums(&dz);
    let da = dz.matmul(&p.w2)?;
    let dh = Matrix::from_fn(da.rows(), da.cols(), |i, j| {
        2.0 * h.get(i, j) * da.get(i, j)
    });
    let w1 = dh.matmul_at(x)?;
    let b1 = col_sums(&dh);
    Ok((
        Params {
            w1,
            b1,
            w2,
            b2,
            w3,
            b3,
        },
        loss,
    ))
}

/// Trains the network with a head on `(x, y)` (rows normalised by the caller with
/// [`normalize_rows`]; `x` is the server's whole share, of which a tenth is held out)
/// and returns the frozen part with its provenance (`dataset`, split seed and
/// fraction) and a report.
///
/// # Errors
/// [`TrainError::Config`] for zero widths, batch or epochs, fewer than 10 examples,
/// labels `≥ classes`, or a diverged run (non-finite loss); shape errors.
pub fn pretrain(
    x: &Matrix,
    y: &[usize],
    classes: usize,
    dataset: &str,
    cfg: &PretrainConfig,
) -> Result<(FrozenNetwork, PretrainReport)> {
    if cfg.hidden == 0 || cfg.outputs == 0 || cfg.batch == 0 || cfg.epochs == 0 {
        return Err(TrainError::Config(
            "pre-training needs non-zero widths, batch and epochs".into(),
        ));
    }
    if x.rows() < 10 || x.rows() != y.len() || y.iter().any(|&c| c >= classes) {
        return Err(TrainError::Config(format!(
            "pre-training on {} examples with {} labels in 0..{classes}",
            x.rows(),
            y.len()
        )));
    }
    // Held-out tenth of the server's share.
    let (fit_idx, val_idx) = transfer_split(x.rows(), 0.1, cfg.seed ^ 0x00C0_FFEE)?;
    let (xf, xv) = (rows_of(x, &fit_idx), rows_of(x, &val_idx));
    let yf: Vec<usize> = fit_idx.iter().map(|&i| y[i]).collect();
    let yv: Vec<usize> = val_idx.iter().map(|&i| y[i]).collect();

    let mut rng = ChaCha20Rng::seed_from_u64(cfg.seed);
    let mut init = |rows: usize, cols: usize, std: f64| {
        let d = Normal::new(0.0, std).expect("positive finite standard deviation");
        Matrix::from_fn(rows, cols, |_, _| d.sample(&mut rng))
    };
    // Inputs have unit norm, so `W1·x` has standard deviation `std` per coordinate:
    // 1 puts the squares near 1 at the start.
    let mut p = Params {
        w1: init(cfg.hidden, x.cols(), 1.0),
        b1: vec![0.0; cfg.hidden],
        w2: init(cfg.outputs, cfg.hidden, 1.0 / (cfg.hidden as f64).sqrt()),
        b2: vec![0.0; cfg.outputs],
        w3: init(classes, cfg.outputs, 1.0 / (cfg.outputs as f64).sqrt()),
        b3: vec![0.0; classes],
    };
    let zeros = |p: &Params| p.flat().map(|s| vec![0.0; s.len()]);
    let (mut m1, mut m2) = (zeros(&p), zeros(&p));
    let (beta1, beta2, eps) = (0.9f64, 0.999f64, 1e-8);
    let mut t = 0i32;
    let mut best = (f64::INFINITY, 0usize, p.clone());
    let mut val_loss = Vec::new();
    let mut epochs = 0;
    for epoch in 1..=cfg.epochs {
        epochs = epoch;
        for batch in epoch_batches(xf.rows(), cfg.batch, cfg.seed, epoch) {
            let xb = rows_of(&xf, &batch);
            let yb: Vec<usize> = batch.iter().map(|&i| yf[i]).collect();
            let (mut g, loss) = gradients(&p, &xb, &yb)?;
            if !loss.is_finite() {
                return Err(TrainError::Config(format!(
                    "pre-training diverged at epoch {epoch} (loss {loss})"
                )));
            }
            t += 1;
            let (c1, c2) = (1.0 - beta1.powi(t), 1.0 - beta2.powi(t));
            for (k, (w, gk)) in p.flat_mut().into_iter().zip(g.flat_mut()).enumerate() {
                for i in 0..w.len() {
                    let gi = gk[i] + cfg.weight_decay * w[i];
                    m1[k][i] = beta1 * m1[k][i] + (1.0 - beta1) * gi;
                    m2[k][i] = beta2 * m2[k][i] + (1.0 - beta2) * gi * gi;
                    w[i] -= cfg.learning_rate * (m1[k][i] / c1) / ((m2[k][i] / c2).sqrt() + eps);
                }
            }
        }
        let (.., logits) = forward(&p, &xv)?;
        let loss = cross_entropy(&softmax(&logits), &yv);
        val_loss.push(loss);
        tracing::debug!(
            epoch,
            loss,
            accuracy = accuracy(&logits, &yv),
            "pre-training"
        );
        if loss < best.0 {
            best = (loss, epoch, p.clone());
        } else if epoch - best.1 >= cfg.patience {
            break;
        }
    }
    let (_, best_epoch, p) = best;
    let (.., logits) = forward(&p, &xv)?;
    let val_accuracy = accuracy(&logits, &yv);
    let net = FrozenNetwork {
        w1: p.w1,
        b1: p.b1,
        w2: p.w2,
        b2: p.b2,
        provenance: Provenance {
            dataset: dataset.to_string(),
            split_seed: cfg.seed,
            client_fraction: cfg.client_fraction,
            server_train_samples: xf.rows(),
            server_val_accuracy: val_accuracy,
            epochs,
        },
    };
    net.validate()?;
    Ok((
        net,
        PretrainReport {
            epochs,
            best_epoch,
            val_accuracy,
            val_loss,
            train_samples: xf.rows(),
            val_samples: xv.rows(),
        },
    ))
}
