//! The trained model on disk, in a form a Python user reads without this crate:
//! `weights.npy` (float64, C order, `c × (d+1)`: one row per class, the last column is
//! the bias) and `model.json` ([`ModelMeta`]: shapes, the client's feature scaling and
//! bias convention, dataset, preset, accuracies, and the SHA-256 of `weights.npy`).
//!
//! In numpy: `logits = np.hstack([x / meta["feature_scale"], np.ones((n, 1))]) @ w.T`,
//! `pred = logits.argmax(1)`. Both files are written atomically ([`crate::store`]) and
//! checked when read (shape, finiteness, digest).

use crate::data::Preprocessor;
use crate::error::{Result, TrainError};
use crate::store;
use he_linalg::Matrix;
use npyz::WriterBuilder as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::Path;

/// Format tag of [`ModelMeta::format`].
pub const MODEL_FORMAT: &str = "hetal-model/1";
/// Largest `weights.npy` read back.
const MAX_WEIGHTS_BYTES: u64 = 1 << 30;

/// `model.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelMeta {
    /// [`MODEL_FORMAT`].
    pub format: String,
    /// Classes `c` (rows of the weights).
    pub classes: usize,
    /// Raw features `d` per sample (the weights have `d + 1` columns).
    pub features: usize,
    /// How the bias is applied (always the last column times a constant 1).
    pub bias: String,
    /// The client's preprocessing: features are divided by this before the bias column
    /// is appended ([`Preprocessor`]).
    pub feature_scale: f64,
    /// Dataset name, if from the registry or a directory.
    pub dataset: String,
    /// How it was trained: `encrypted` (and the CKKS preset) or a float mode.
    pub mode: String,
    /// The CKKS preset of an encrypted run.
    pub preset: Option<String>,
    /// The epoch whose weights these are (0: the initial model).
    pub epoch: usize,
    /// Training steps run.
    pub steps: usize,
    /// Accuracies by split name (`validation`, `test`), fractions.
    pub accuracies: BTreeMap<String, f64>,
    /// Lower-case hex SHA-256 of `weights.npy`.
    pub weights_sha256: String,
}

/// A trained softmax-regression model: weights and their metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct SavedModel {
    /// `c × (d+1)` weights, bias last.
    pub weights: Matrix,
    /// The metadata (its digest is filled in by [`Self::save`]).
    pub meta: ModelMeta,
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> TrainError + '_ {
    move |source| TrainError::Io {
        path: path.display().to_string(),
        source,
    }
}

fn hex(d: &[u8]) -> String {
    d.iter().map(|b| format!("{b:02x}")).collect()
}

impl SavedModel {
    /// A model from weights and the preprocessing they expect.
    ///
    /// # Errors
    /// [`TrainError::Config`] for fewer than 2 rows or 2 columns, or non-finite weights.
    pub fn new(
        weights: Matrix,
        pre: Preprocessor,
        dataset: &str,
        mode: &str,
        preset: Option<&str>,
        epoch: usize,
        steps: usize,
    ) -> Result<Self> {
        if weights.rows() < 2 || weights.cols() < 2 {
            return Err(TrainError::Config(format!(
                "model of {}×{}",
                weights.rows(),
                weights.cols()
            )));
        }
        if weights.as_slice().iter().any(|v| !v.is_finite()) {
            return Err(TrainError::Config("non-finite weight".into()));
        }
        Ok(Self {
            meta: ModelMeta {
                format: MODEL_FORMAT.into(),
                classes: weights.rows(),
                features: weights.cols() - 1,
                bias: "last column of weights.npy, times a constant 1".into(),
                feature_scale: pre.scale,
                dataset: dataset.into(),
                mode: mode.into(),
                preset: preset.map(Into::into),
                epoch,
                steps,
                accuracies: BTreeMap::new(),
                weights_sha256: String::new(),
            },
            weights,
        })
    }

    /// Writes `dir/weights.npy` then `dir/model.json` (each atomically; `dir` is
    /// created).
    ///
    /// # Errors
    /// I/O errors.
    pub fn save(&mut self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let path = dir.join("weights.npy");
        let mut npy = Vec::new();
        {
            let mut w = npyz::WriteOptions::<f64>::new()
                .default_dtype()
                .shape(&[self.weights.rows() as u64, self.weights.cols() as u64])
                .writer(&mut npy)
                .begin_nd()
                .map_err(io(&path))?;
            w.extend(self.weights.as_slice().iter().copied())
                .map_err(io(&path))?;
            w.finish().map_err(io(&path))?;
        }
        self.meta.weights_sha256 = hex(&Sha256::digest(&npy));
        store::write_atomic(&path, &npy)?;
        let json = serde_json::to_vec_pretty(&self.meta)
            .map_err(|e| TrainError::Config(format!("model.json: {e}")))?;
        store::write_atomic(&dir.join("model.json"), &json)
    }

    /// Reads and checks a model written by [`Self::save`] (format tag, digest, shape
    /// against the metadata, finite weights).
    ///
    /// # Errors
    /// I/O errors; [`TrainError::Data`] for a file that does not match its metadata.
    pub fn load(dir: &Path) -> Result<Self> {
        let meta_path = dir.join("model.json");
        let json = std::fs::read(&meta_path).map_err(io(&meta_path))?;
        let meta: ModelMeta = serde_json::from_slice(&json)
            .map_err(|e| TrainError::Data(format!("{}: {e}", meta_path.display())))?;
        if meta.format != MODEL_FORMAT {
            return Err(TrainError::Data(format!(
                "{}: format {:?} (expected {MODEL_FORMAT:?})",
                meta_path.display(),
                meta.format
            )));
        }
        let path = dir.join("weights.npy");
        let len = std::fs::metadata(&path).map_err(io(&path))?.len();
        if len > MAX_WEIGHTS_BYTES {
            return Err(TrainError::Data(format!("{}: {len} bytes", path.display())));
        }
        let bytes = std::fs::read(&path).map_err(io(&path))?;
        if hex(&Sha256::digest(&bytes)) != meta.weights_sha256 {
            return Err(TrainError::Data(format!(
                "{}: SHA-256 differs from model.json's",
                path.display()
            )));
        }
        let weights = crate::data::read_features(&path)?;
        if weights.rows() != meta.classes || weights.cols() != meta.features + 1 {
            return Err(TrainError::Data(format!(
                "{}: {}×{} weights, model.json says {}×{}",
                path.display(),
                weights.rows(),
                weights.cols(),
                meta.classes,
                meta.features + 1
            )));
        }
        if !(meta.feature_scale.is_finite() && meta.feature_scale > 0.0) {
            return Err(TrainError::Data(format!(
                "{}: feature scale {}",
                meta_path.display(),
                meta.feature_scale
            )));
        }
        Ok(Self { weights, meta })
    }

    /// The preprocessing the model expects.
    pub fn preprocessor(&self) -> Preprocessor {
        Preprocessor {
            scale: self.meta.feature_scale,
        }
    }

    /// Logits (`n × c`) of raw features (`n × d`, as extracted: the model scales them
    /// and appends the bias column).
    ///
    /// # Errors
    /// [`TrainError::Data`] for the wrong number of features.
    pub fn logits(&self, raw: &Matrix) -> Result<Matrix> {
        if raw.cols() != self.meta.features {
            return Err(TrainError::Data(format!(
                "{} features per sample, the model takes {}",
                raw.cols(),
                self.meta.features
            )));
        }
        Ok(self.preprocessor().apply(raw).matmul_bt(&self.weights)?)
    }

    /// Predicted classes of raw features.
    ///
    /// # Errors
    /// As [`Self::logits`].
    pub fn predict(&self, raw: &Matrix) -> Result<Vec<usize>> {
        Ok(crate::train::predicted_classes(&self.logits(raw)?))
    }
}
