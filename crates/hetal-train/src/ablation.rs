//! The ablation of the training choices, in float64 (`cargo xtask ablate`): training
//! algorithm (HETAL's softmax + Nesterov on mini-batches, [`crate::train`], against
//! Chiang's sigmoid + quadratic gradient on the full batch, [`crate::chiang`]) ×
//! activation (exact, or the approximation that the encrypted circuit evaluates) ×
//! validation-based early stopping on or off. One table per dataset; the encrypted
//! cost per row is projected by the caller from measured per-step costs.

use crate::chiang::{ChiangConfig, SigmoidKind, train_chiang};
use crate::data::HyperParams;
use crate::error::{Result, TrainError};
use crate::softmax::{ASoftmaxParams, ASoftmaxVariant};
use crate::train::{SoftmaxKind, TrainOutcome, accuracy, train_float};
use he_linalg::{Matrix, padded_classes};
use std::time::Instant;

/// A training algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Algorithm {
    /// HETAL (Lee et al., ICML 2023): softmax, Nesterov, mini-batches.
    Hetal,
    /// Chiang (arXiv 2304.03807): sigmoid, quadratic gradient, full batch.
    Chiang,
}

impl Algorithm {
    /// `"hetal"` or `"chiang"` (the command-line names).
    pub fn name(self) -> &'static str {
        match self {
            Self::Hetal => "hetal",
            Self::Chiang => "chiang",
        }
    }
}

/// The output activation and how it is computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Activation {
    /// Exact softmax (HETAL's `plain` mode).
    Softmax,
    /// ASoftmax in float64, as encrypted (HETAL's `simulated` mode), with its variant.
    ASoftmax(ASoftmaxVariant),
    /// Exact sigmoid, clipped to `[−8, 8]` (Chiang's `plain` mode).
    Sigmoid,
    /// Chiang's degree-3 sigmoid polynomial (his `simulated` mode).
    SigmoidPoly3,
}

impl Activation {
    /// A short name: `softmax`, `asoftmax-normal`, `asoftmax-precise`, `sigmoid`,
    /// `sigmoid-poly3`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Softmax => "softmax",
            Self::ASoftmax(ASoftmaxVariant::Normal) => "asoftmax-normal",
            Self::ASoftmax(ASoftmaxVariant::Precise) => "asoftmax-precise",
            Self::Sigmoid => "sigmoid",
            Self::SigmoidPoly3 => "sigmoid-poly3",
        }
    }

    /// Whether the encrypted protocol can evaluate it (the approximations).
    pub fn is_encryptable(self) -> bool {
        matches!(self, Self::ASoftmax(_) | Self::SigmoidPoly3)
    }
}

/// One configuration of the ablation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Configuration {
    /// Training algorithm.
    pub algorithm: Algorithm,
    /// Output activation.
    pub activation: Activation,
    /// Validation-based early stopping (off: every epoch runs and the last weights
    /// are kept).
    pub early_stopping: bool,
}

impl Configuration {
    /// `algorithm/activation/es-on|es-off`.
    pub fn label(&self) -> String {
        format!(
            "{}/{}/{}",
            self.algorithm.name(),
            self.activation.name(),
            if self.early_stopping {
                "es-on"
            } else {
                "es-off"
            }
        )
    }
}

/// The ten configurations: HETAL × {softmax, ASoftmax normal, ASoftmax precise} and
/// Chiang × {sigmoid, degree-3 polynomial}, each with early stopping on and off.
pub fn configurations() -> Vec<Configuration> {
    let pairs = [
        (Algorithm::Hetal, Activation::Softmax),
        (
            Algorithm::Hetal,
            Activation::ASoftmax(ASoftmaxVariant::Normal),
        ),
        (
            Algorithm::Hetal,
            Activation::ASoftmax(ASoftmaxVariant::Precise),
        ),
        (Algorithm::Chiang, Activation::Sigmoid),
        (Algorithm::Chiang, Activation::SigmoidPoly3),
    ];
    pairs
        .into_iter()
        .flat_map(|(algorithm, activation)| {
            [true, false].map(|early_stopping| Configuration {
                algorithm,
                activation,
                early_stopping,
            })
        })
        .collect()
}

/// What one configuration gave.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Row {
    /// The configuration.
    pub config: Configuration,
    /// Its label ([`Configuration::label`]).
    pub label: String,
    /// Test accuracy of the kept weights.
    pub test_accuracy: f64,
    /// Training steps run (HETAL: mini-batches; Chiang: full-batch iterations).
    pub steps: usize,
    /// Epochs run.
    pub epochs: usize,
    /// Epoch of the kept weights.
    pub best_epoch: usize,
    /// Whether early stopping ended the run.
    pub stopped_early: bool,
    /// Multiplicative depth of the activation's circuit (levels), where encryptable:
    /// ASoftmax's for the padded class count, 2 for the cubic.
    pub activation_depth: Option<usize>,
    /// Float64 training time (seconds).
    pub train_s: f64,
    /// The run itself (validation loss and accuracy per epoch).
    pub outcome: TrainOutcome,
}

/// Runs one configuration on preprocessed features (bias column included). HETAL uses
/// `hyper` as is; Chiang runs `hyper.epochs` full-batch iterations with the same
/// patience. Early stopping off: patience beyond the epoch count, last weights kept.
///
/// # Errors
/// [`TrainError::Config`] for an activation the algorithm does not use; training
/// errors.
#[allow(clippy::too_many_arguments)]
pub fn run_configuration(
    config: Configuration,
    train: (&Matrix, &[usize]),
    val: (&Matrix, &[usize]),
    test: (&Matrix, &[usize]),
    classes: usize,
    hyper: &HyperParams,
    seed: u64,
) -> Result<Row> {
    let patience = if config.early_stopping {
        hyper.patience
    } else {
        usize::MAX
    };
    let clock = Instant::now();
    let (outcome, activation_depth) = match (config.algorithm, config.activation) {
        (Algorithm::Hetal, act @ (Activation::Softmax | Activation::ASoftmax(_))) => {
            let (kind, params) = match act {
                Activation::ASoftmax(variant) => (
                    SoftmaxKind::Approximate,
                    ASoftmaxParams {
                        variant,
                        ..ASoftmaxParams::default()
                    },
                ),
                _ => (SoftmaxKind::Exact, ASoftmaxParams::default()),
            };
            let depth = match kind {
                SoftmaxKind::Approximate => Some(params.depth(padded_classes(classes))?),
                SoftmaxKind::Exact => None,
            };
            let h = HyperParams { patience, ..*hyper };
            (
                train_float(train, val, classes, &h, kind, &params, seed, None)?,
                depth,
            )
        }
        (Algorithm::Chiang, act @ (Activation::Sigmoid | Activation::SigmoidPoly3)) => {
            let kind = if act == Activation::Sigmoid {
                SigmoidKind::Exact
            } else {
                SigmoidKind::Poly3
            };
            let cfg = ChiangConfig {
                iterations: hyper.epochs,
                patience: config.early_stopping.then_some(hyper.patience),
                ..ChiangConfig::default()
            };
            (
                train_chiang(train, val, classes, &cfg, kind, None)?,
                (kind == SigmoidKind::Poly3).then_some(2),
            )
        }
        (a, act) => {
            return Err(TrainError::Config(format!(
                "{} does not use {}",
                a.name(),
                act.name()
            )));
        }
    };
    let train_s = clock.elapsed().as_secs_f64();
    let w = if config.early_stopping {
        &outcome.w
    } else {
        &outcome.last_w
    };
    let test_accuracy = accuracy(&test.0.matmul_bt(w)?, test.1);
    Ok(Row {
        config,
        label: config.label(),
        test_accuracy,
        steps: outcome.steps,
        epochs: outcome.epochs,
        best_epoch: if config.early_stopping {
            outcome.best_epoch
        } else {
            outcome.epochs
        },
        stopped_early: outcome.stopped_early,
        activation_depth,
        train_s,
        outcome,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ten_distinct_configurations_and_mismatches_refused() {
        let c = configurations();
        assert_eq!(c.len(), 10);
        let labels: std::collections::BTreeSet<String> = c.iter().map(|c| c.label()).collect();
        assert_eq!(labels.len(), 10);
        let x = Matrix::from_fn(20, 3, |i, j| ((i + j) % 3) as f64 / 3.0);
        let y: Vec<usize> = (0..20).map(|i| i % 2).collect();
        let hyper = HyperParams {
            batch: 8,
            learning_rate: 0.5,
            epochs: 4,
            patience: 2,
        };
        let bad = Configuration {
            algorithm: Algorithm::Chiang,
            activation: Activation::Softmax,
            early_stopping: true,
        };
        assert!(matches!(
            run_configuration(bad, (&x, &y), (&x, &y), (&x, &y), 2, &hyper, 0),
            Err(TrainError::Config(_))
        ));
        for cfg in c {
            let r = run_configuration(cfg, (&x, &y), (&x, &y), (&x, &y), 2, &hyper, 0).unwrap();
            assert!(r.epochs >= 1 && r.epochs <= 4, "{}", r.label);
            if !cfg.early_stopping {
                assert_eq!(
                    r.epochs, 4,
                    "{}: early stopping off runs every epoch",
                    r.label
                );
                assert!(!r.stopped_early);
            }
        }
    }
}
