//! The server's frozen network: `x ↦ W2·(W1·x + b1)² + b2` (dense, square, dense; the
//! square is applied per coordinate), evaluated in float64 here and under encryption by
//! [`super::InferenceServer`]. CryptoTL (Walch et al., 2022) evaluates the frozen first
//! layers of a pre-trained network under encryption; on sentence features two dense
//! layers with the square, the cheapest HE-friendly activation, play that role here.
//!
//! On disk: a [`crate::store`] envelope of kind `CTLNET01` (SHA-256 over the postcard
//! payload, written atomically, owner-only), refused when corrupted, truncated or
//! extended, or when its shapes are inconsistent or its values not finite.

use crate::error::{Result, TrainError};
use crate::store;
use he_linalg::Matrix;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Largest layer width accepted from a file (inputs, hidden units, outputs).
pub const MAX_WIDTH: usize = 1 << 14;

const KIND: &[u8; 8] = b"CTLNET01";

fn binding() -> store::Binding {
    store::Binding::new(&[("purpose", b"hetal-train cryptotl network")])
}

/// Where the network comes from: enough to rebuild the transfer split, so the client
/// fine-tunes only on utterances the server did not train on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Provenance {
    /// Registry name of the dataset the server pre-trained on.
    pub dataset: String,
    /// Seed of the split of the training split ([`super::transfer_split`]).
    pub split_seed: u64,
    /// Fraction of the training split left to the client.
    pub client_fraction: f64,
    /// Training examples the server used (its share minus its own validation part).
    pub server_train_samples: usize,
    /// Accuracy of the network with its pre-training head on the server's held-out part.
    pub server_val_accuracy: f64,
    /// Pre-training epochs run.
    pub epochs: usize,
}

/// The frozen network (see the module docs): `w1` is `hidden × inputs`, `w2` is
/// `outputs × hidden`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FrozenNetwork {
    /// First layer's weights (`hidden × inputs`).
    pub w1: Matrix,
    /// First layer's bias (`hidden`).
    pub b1: Vec<f64>,
    /// Second layer's weights (`outputs × hidden`).
    pub w2: Matrix,
    /// Second layer's bias (`outputs`).
    pub b2: Vec<f64>,
    /// How the network was obtained.
    pub provenance: Provenance,
}

impl FrozenNetwork {
    /// Multiplicative depth of the encrypted evaluation (levels): first layer, square,
    /// second layer.
    pub const DEPTH: usize = 3;

    /// Input width.
    pub fn inputs(&self) -> usize {
        self.w1.cols()
    }

    /// Hidden width.
    pub fn hidden(&self) -> usize {
        self.w1.rows()
    }

    /// Output width.
    pub fn outputs(&self) -> usize {
        self.w2.rows()
    }

    /// Checks shapes (non-empty, at most [`MAX_WIDTH`], consistent) and finiteness.
    ///
    /// # Errors
    /// [`TrainError::Config`] naming what is wrong.
    pub fn validate(&self) -> Result<()> {
        let (h, d, o) = (self.hidden(), self.inputs(), self.outputs());
        if [h, d, o].iter().any(|&w| w == 0 || w > MAX_WIDTH) {
            return Err(TrainError::Config(format!(
                "network widths {d} → {h} → {o} outside 1..={MAX_WIDTH}"
            )));
        }
        if self.w2.cols() != h || self.b1.len() != h || self.b2.len() != o {
            return Err(TrainError::Config(format!(
                "inconsistent network: w1 {h}×{d}, b1 {}, w2 {}×{}, b2 {}",
                self.b1.len(),
                o,
                self.w2.cols(),
                self.b2.len()
            )));
        }
        let finite = |v: &[f64]| v.iter().all(|x| x.is_finite());
        if !(finite(self.w1.as_slice())
            && finite(self.w2.as_slice())
            && finite(&self.b1)
            && finite(&self.b2))
        {
            return Err(TrainError::Config("network has non-finite weights".into()));
        }
        let p = &self.provenance;
        if !(p.client_fraction > 0.0 && p.client_fraction < 1.0) {
            return Err(TrainError::Config(format!(
                "client fraction {} outside (0, 1)",
                p.client_fraction
            )));
        }
        Ok(())
    }

    /// The first layer's pre-activations `W1·x + b1` for the rows of `x` (`n × inputs`
    /// → `n × hidden`).
    ///
    /// # Errors
    /// Shape errors.
    pub fn hidden_pre(&self, x: &Matrix) -> Result<Matrix> {
        let mut h = x.matmul_bt(&self.w1)?;
        add_bias(&mut h, &self.b1);
        Ok(h)
    }

    /// The network on the rows of `x` in float64 (`n × inputs` → `n × outputs`).
    ///
    /// # Errors
    /// Shape errors.
    pub fn forward(&self, x: &Matrix) -> Result<Matrix> {
        let h = self.hidden_pre(x)?;
        let a = Matrix::from_fn(h.rows(), h.cols(), |i, j| h.get(i, j) * h.get(i, j));
        let mut z = a.matmul_bt(&self.w2)?;
        add_bias(&mut z, &self.b2);
        Ok(z)
    }

    /// A certified upper bound on `‖f(x)‖₂` over all inputs with `‖x‖₂ ≤ input_norm`:
    /// `‖W2‖₂·(‖W1‖₂·r + ‖b1‖)² + ‖b2‖`, with each spectral norm bounded by
    /// [`spectral_norm_bound`] (the square per coordinate satisfies `‖v²‖₂ ≤ ‖v‖₂²`).
    pub fn output_norm_bound(&self, input_norm: f64) -> f64 {
        let a = spectral_norm_bound(&self.w1) * input_norm + l2(&self.b1);
        spectral_norm_bound(&self.w2) * a * a + l2(&self.b2)
    }

    /// Writes the network to `path` (atomically, owner-only, sealed).
    ///
    /// # Errors
    /// [`TrainError::Config`] for an invalid network; [`TrainError::Io`].
    pub fn save(&self, path: &Path) -> Result<()> {
        self.validate()?;
        let payload = postcard::to_stdvec(self)
            .map_err(|e| TrainError::Config(format!("encoding the network: {e}")))?;
        store::write_atomic(path, &store::seal(KIND, &binding(), &payload))
    }

    /// Reads and checks a network written by [`Self::save`].
    ///
    /// # Errors
    /// [`TrainError::Io`]; [`TrainError::Store`] for a file that is not a sealed network
    /// (corrupted, truncated, extended, another kind), not a regular owner-only file,
    /// or larger than the largest network; [`TrainError::Config`] for invalid content.
    pub fn load(path: &Path) -> Result<Self> {
        let max = 8 * (2 * MAX_WIDTH * MAX_WIDTH + 4 * MAX_WIDTH) as u64 + 4096;
        let bytes = store::read_private(path, max)?;
        let payload = store::unseal(path, KIND, &binding(), &bytes)?;
        let (net, rest): (Self, &[u8]) =
            postcard::take_from_bytes(payload).map_err(|e| TrainError::Store {
                path: path.display().to_string(),
                reason: format!("malformed network: {e}"),
            })?;
        if !rest.is_empty() {
            return Err(TrainError::Store {
                path: path.display().to_string(),
                reason: format!("{} trailing bytes after the network", rest.len()),
            });
        }
        net.validate()?;
        Ok(net)
    }
}

fn add_bias(m: &mut Matrix, b: &[f64]) {
    for i in 0..m.rows() {
        for (j, &bj) in b.iter().enumerate() {
            m.set(i, j, m.get(i, j) + bj);
        }
    }
}

fn l2(v: &[f64]) -> f64 {
    v.iter().map(|x| x * x).sum::<f64>().sqrt()
}

/// An upper bound on the spectral norm `‖W‖₂`: the smaller of `‖W‖_F` and
/// `tr(G^32)^{1/64}` for the Gram matrix `G = W·Wᵀ` or `Wᵀ·W` (the smaller one; its
/// eigenvalues are `σ_i²`, so `λ_max^32 ≤ tr(G^32)`, which overestimates `‖W‖₂` by at
/// most a factor `rank^{1/64}`, under 1.1 for rank ≤ 256). `G` is normalised by its
/// Frobenius norm first so the powers neither overflow nor lose the top eigenvalue. Up
/// to floating-point rounding (relative 1e-12 here), an upper bound.
pub fn spectral_norm_bound(w: &Matrix) -> f64 {
    let frob = l2(w.as_slice());
    if frob == 0.0 {
        return 0.0;
    }
    let gram = if w.rows() <= w.cols() {
        w.matmul_bt(w)
    } else {
        w.matmul_at(w)
    };
    let Ok(mut g) = gram else {
        return frob;
    };
    let g_frob = l2(g.as_slice());
    for v in g.as_mut_slice() {
        *v /= g_frob;
    }
    for _ in 0..5 {
        match g.matmul(&g) {
            Ok(sq) => g = sq,
            Err(_) => return frob,
        }
    }
    let trace: f64 = (0..g.rows()).map(|i| g.get(i, i)).sum();
    let bound = (trace.max(0.0).powf(1.0 / 32.0) * g_frob).sqrt() * (1.0 + 1e-12);
    frob.min(bound)
}
