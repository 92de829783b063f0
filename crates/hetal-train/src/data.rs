//! Datasets: extracted features and labels read from `.npy` files, the registry of
//! HETAL's datasets with their hyper-parameters, and the client's preprocessing
//! (feature scaling decided on the training split, bias column, one-hot labels).

use crate::error::{Result, TrainError};
use he_linalg::Matrix;
use std::path::{Path, PathBuf};

/// HETAL's per-dataset training hyper-parameters (Lee et al., ICML 2023, Table 7).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct HyperParams {
    /// Mini-batch size.
    pub batch: usize,
    /// Learning rate.
    pub learning_rate: f64,
    /// Maximum number of epochs.
    pub epochs: usize,
    /// Early-stopping patience in epochs (stop after this many epochs without a lower
    /// validation loss).
    pub patience: usize,
}

/// A registered dataset: where its features live and how HETAL trains on it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DatasetSpec {
    /// Registry name (`--dataset`).
    pub name: &'static str,
    /// Feature extractor that produced the features.
    pub extractor: &'static str,
    /// Directory relative to the data root (`../shared/data`).
    pub subdir: &'static str,
    /// Number of classes.
    pub classes: usize,
    /// Feature dimension (before the bias column).
    pub features: usize,
    /// HETAL's hyper-parameters for this dataset.
    pub hyper: HyperParams,
}

/// The datasets available here (HETAL's others — MNIST, CIFAR-10 — can be added with
/// their features and Table 7 hyper-parameters).
pub const DATASETS: &[DatasetSpec] = &[
    DatasetSpec {
        name: "dermamnist",
        extractor: "EfficientNet-Lite0 (ImageNet-1k), 1280-d pooled features",
        subdir: "dermamnist/efficientnet-lite0",
        classes: 7,
        features: 1280,
        hyper: HyperParams {
            batch: 1024,
            learning_rate: 0.3,
            epochs: 23,
            patience: 3,
        },
    },
    DatasetSpec {
        name: "facemask",
        extractor: "EfficientNet-Lite0 (ImageNet-1k), 1280-d pooled features",
        subdir: "facemask/efficientnet-lite0",
        classes: 3,
        features: 1280,
        hyper: HyperParams {
            batch: 512,
            learning_rate: 0.5,
            epochs: 20,
            patience: 3,
        },
    },
    DatasetSpec {
        name: "snips",
        extractor: "sentence-transformers all-mpnet-base-v2, 768-d",
        subdir: "snips/all-mpnet-base-v2",
        classes: 7,
        features: 768,
        hyper: HyperParams {
            batch: 1024,
            learning_rate: 0.5,
            epochs: 24,
            patience: 3,
        },
    },
];

/// Looks a dataset up by name.
///
/// # Errors
/// [`TrainError::Config`] for an unknown name.
pub fn dataset(name: &str) -> Result<&'static DatasetSpec> {
    DATASETS.iter().find(|d| d.name == name).ok_or_else(|| {
        TrainError::Config(format!(
            "unknown dataset {name:?} (known: {})",
            DATASETS
                .iter()
                .map(|d| d.name)
                .collect::<Vec<_>>()
                .join(", ")
        ))
    })
}

/// One split: features (`n × d`) and class ids.
#[derive(Debug, Clone)]
pub struct Split {
    /// Features, one row per sample.
    pub x: Matrix,
    /// Class ids in `0..classes`.
    pub y: Vec<usize>,
}

/// The three splits of a dataset.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// Training split.
    pub train: Split,
    /// Validation split (early stopping).
    pub val: Split,
    /// Test split.
    pub test: Split,
    /// Number of classes.
    pub classes: usize,
}

/// Opens a `.npy` file and checks that the element count its header claims fits in the
/// file (`elements × item size ≤ file length`), so a forged header cannot make the
/// reader allocate beyond what the file holds.
fn open(path: &Path) -> Result<npyz::NpyFile<std::io::BufReader<std::fs::File>>> {
    let io = |source| TrainError::Io {
        path: path.display().to_string(),
        source,
    };
    let f = std::fs::File::open(path).map_err(io)?;
    let file_len = f.metadata().map_err(io)?.len();
    let npy = npyz::NpyFile::new(std::io::BufReader::new(f)).map_err(io)?;
    let item = match npy.dtype() {
        npyz::DType::Plain(t) => t.size_field(),
        d => {
            return Err(TrainError::Data(format!(
                "{}: dtype {d:?} is not a plain numeric type",
                path.display()
            )));
        }
    };
    if npy
        .len()
        .checked_mul(item)
        .is_none_or(|bytes| bytes > file_len)
    {
        return Err(TrainError::Data(format!(
            "{}: the header claims {} elements of {item} bytes, the file has {file_len} bytes",
            path.display(),
            npy.len()
        )));
    }
    Ok(npy)
}

/// Reads a 2-D float32 or float64 `.npy` file, in C (row-major) or Fortran
/// (column-major, `fortran_order: True`) order; the result is row-major either way.
///
/// # Errors
/// I/O errors; [`TrainError::Data`] for another dtype or rank, a header that claims
/// more data than the file holds, or non-finite values.
pub fn read_features(path: &Path) -> Result<Matrix> {
    let npy = open(path)?;
    let fortran = npy.order() == npyz::Order::Fortran;
    let shape = npy.shape().to_vec();
    let [rows, cols] = shape[..] else {
        return Err(TrainError::Data(format!(
            "{}: shape {shape:?} is not 2-D",
            path.display()
        )));
    };
    let (rows, cols) = (rows as usize, cols as usize);
    let io = |source| TrainError::Io {
        path: path.display().to_string(),
        source,
    };
    let data: Vec<f64> = match npy.dtype() {
        npyz::DType::Plain(t) if t.type_char() == npyz::TypeChar::Float && t.size_field() == 4 => {
            npy.into_vec::<f32>()
                .map_err(io)?
                .into_iter()
                .map(f64::from)
                .collect()
        }
        npyz::DType::Plain(t) if t.type_char() == npyz::TypeChar::Float && t.size_field() == 8 => {
            npy.into_vec::<f64>().map_err(io)?
        }
        d => {
            return Err(TrainError::Data(format!(
                "{}: dtype {d:?} is not float32/64",
                path.display()
            )));
        }
    };
    if data.iter().any(|v| !v.is_finite()) {
        return Err(TrainError::Data(format!(
            "{}: non-finite feature",
            path.display()
        )));
    }
    if fortran && data.len() == rows * cols {
        // Column-major: element (i, j) is stored at j·rows + i.
        let t = (0..rows * cols)
            .map(|k| data[(k % cols) * rows + k / cols])
            .collect();
        return Ok(Matrix::new(rows, cols, t)?);
    }
    Ok(Matrix::new(rows, cols, data)?)
}

/// Reads a 1-D integer `.npy` label file and checks every label is `< classes`.
///
/// # Errors
/// I/O errors; [`TrainError::Data`] for another dtype or rank or an out-of-range label.
pub fn read_labels(path: &Path, classes: usize) -> Result<Vec<usize>> {
    let npy = open(path)?;
    if npy.shape().len() != 1 {
        return Err(TrainError::Data(format!(
            "{}: labels are not 1-D",
            path.display()
        )));
    }
    let io = |source| TrainError::Io {
        path: path.display().to_string(),
        source,
    };
    let raw: Vec<i64> = match npy.dtype() {
        npyz::DType::Plain(t) if t.type_char() == npyz::TypeChar::Int && t.size_field() == 8 => {
            npy.into_vec::<i64>().map_err(io)?
        }
        npyz::DType::Plain(t) if t.type_char() == npyz::TypeChar::Int && t.size_field() == 4 => npy
            .into_vec::<i32>()
            .map_err(io)?
            .into_iter()
            .map(i64::from)
            .collect(),
        d => {
            return Err(TrainError::Data(format!(
                "{}: dtype {d:?} is not int32/64",
                path.display()
            )));
        }
    };
    raw.iter()
        .map(|&l| {
            usize::try_from(l)
                .ok()
                .filter(|&l| l < classes)
                .ok_or_else(|| {
                    TrainError::Data(format!("{}: label {l} not in 0..{classes}", path.display()))
                })
        })
        .collect()
}

impl Split {
    /// Loads `dir/features_{name}.npy` and `dir/labels_{name}.npy`.
    ///
    /// # Errors
    /// As [`read_features`] / [`read_labels`]; [`TrainError::Data`] if the feature and
    /// label counts differ.
    pub fn load(dir: &Path, name: &str, classes: usize) -> Result<Self> {
        let x = read_features(&dir.join(format!("features_{name}.npy")))?;
        let y = read_labels(&dir.join(format!("labels_{name}.npy")), classes)?;
        if x.rows() != y.len() {
            return Err(TrainError::Data(format!(
                "{name}: {} feature rows but {} labels",
                x.rows(),
                y.len()
            )));
        }
        Ok(Self { x, y })
    }
}

impl Dataset {
    /// Loads `features_{train,val,test}.npy` and `labels_{train,val,test}.npy` from
    /// `dir`.
    ///
    /// # Errors
    /// As [`read_features`] / [`read_labels`]; [`TrainError::Data`] if a split's
    /// feature and label counts differ or the splits' feature dimensions differ.
    pub fn load(dir: &Path, classes: usize) -> Result<Self> {
        let split = |name: &str| Split::load(dir, name, classes);
        let (train, val, test) = (split("train")?, split("val")?, split("test")?);
        Self::from_splits(train, val, test, classes)
    }

    /// Loads a user's dataset from `dir`: `features_train.npy` and `labels_train.npy`
    /// are required; `features_test.npy`/`labels_test.npy` are optional (an empty test
    /// split without them); without `features_val.npy`/`labels_val.npy`, a validation
    /// split of `val_fraction` of the training rows (at least one) is carved out with a
    /// seeded shuffle. The class count is `1 + ` the largest training label (at least 2).
    ///
    /// # Errors
    /// [`TrainError::Data`] naming the expected files when the training files are
    /// missing; as [`Self::load`].
    pub fn load_dir(dir: &Path, val_fraction: f64, seed: u64) -> Result<Self> {
        let has = |name: &str| {
            dir.join(format!("features_{name}.npy")).exists()
                && dir.join(format!("labels_{name}.npy")).exists()
        };
        if !has("train") {
            return Err(TrainError::Data(format!(
                "{}: expected features_train.npy and labels_train.npy (float32/64 n×d,                  integer n), optionally features_val.npy/labels_val.npy and                  features_test.npy/labels_test.npy",
                dir.display()
            )));
        }
        let train_y = read_labels(&dir.join("labels_train.npy"), usize::MAX)?;
        let classes = train_y
            .iter()
            .max()
            .map_or(2, |&m| m.saturating_add(1).max(2));
        let most = crate::encrypted::SessionConfig::MAX_CLASSES;
        if classes > most {
            return Err(TrainError::Data(format!(
                "labels_train.npy: {classes} classes (at most {most})"
            )));
        }
        let split = |name: &str| Split::load(dir, name, classes);
        let mut train = split("train")?;
        let val = if has("val") {
            split("val")?
        } else {
            if !(0.0..1.0).contains(&val_fraction) || train.y.len() < 2 {
                return Err(TrainError::Data(format!(
                    "cannot carve a validation split of {val_fraction} from {} rows",
                    train.y.len()
                )));
            }
            let n = train.y.len();
            let n_val = ((n as f64 * val_fraction).round() as usize).clamp(1, n - 1);
            let order = crate::train::epoch_batches(n, n, seed, 0).concat();
            let (val_idx, train_idx) = order.split_at(n_val);
            let pick = |idx: &[usize]| Split {
                x: crate::train::rows_of(&train.x, idx),
                y: idx.iter().map(|&i| train.y[i]).collect(),
            };
            let (v, t) = (pick(val_idx), pick(train_idx));
            train = t;
            v
        };
        let test = if has("test") {
            split("test")?
        } else {
            Split {
                x: Matrix::zeros(0, train.x.cols()),
                y: Vec::new(),
            }
        };
        Self::from_splits(train, val, test, classes)
    }

    /// The three splits as a dataset, once their feature dimensions agree.
    fn from_splits(train: Split, val: Split, test: Split, classes: usize) -> Result<Self> {
        if val.x.cols() != train.x.cols() || test.x.cols() != train.x.cols() {
            return Err(TrainError::Data(
                "splits have different feature dimensions".into(),
            ));
        }
        Ok(Self {
            train,
            val,
            test,
            classes,
        })
    }

    /// The default data directory of a registered dataset: `root/subdir`.
    pub fn default_dir(root: &Path, spec: &DatasetSpec) -> PathBuf {
        root.join(spec.subdir)
    }
}

/// The client's preprocessing: every feature divided by the largest absolute training
/// value (so features lie in [−1, 1]), then a bias column of ones appended
/// (`d + 1` columns). Decided on the training split only and applied to all splits.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Preprocessor {
    /// The divisor (largest absolute training feature).
    pub scale: f64,
}

impl Preprocessor {
    /// Fits on the training features.
    ///
    /// # Errors
    /// [`TrainError::Data`] if every training feature is zero.
    pub fn fit(train: &Matrix) -> Result<Self> {
        let scale = train.as_slice().iter().fold(0.0f64, |m, v| m.max(v.abs()));
        if scale == 0.0 {
            return Err(TrainError::Data("all training features are zero".into()));
        }
        Ok(Self { scale })
    }

    /// Scaled features with the bias column (`n × (d+1)`).
    pub fn apply(&self, x: &Matrix) -> Matrix {
        Matrix::from_fn(x.rows(), x.cols() + 1, |i, j| {
            if j == x.cols() {
                1.0
            } else {
                x.get(i, j) / self.scale
            }
        })
    }
}

/// The fraction of the most frequent label in `y` (labels `≥ classes` are not counted):
/// the accuracy of always predicting it, quoted next to every accuracy.
pub fn majority_rate(y: &[usize], classes: usize) -> f64 {
    let mut counts = vec![0usize; classes];
    for &c in y {
        if let Some(n) = counts.get_mut(c) {
            *n += 1;
        }
    }
    counts.into_iter().max().unwrap_or(0) as f64 / y.len().max(1) as f64
}

/// One-hot encoding (`n × classes`).
pub fn one_hot(y: &[usize], classes: usize) -> Matrix {
    Matrix::from_fn(y.len(), classes, |i, j| f64::from(u8::from(y[i] == j)))
}
