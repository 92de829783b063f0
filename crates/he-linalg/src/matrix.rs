//! A small dense row-major `f64` matrix: the plaintext side of every packing and the
//! float64 reference for the encrypted products.
//!
//! Our own type rather than `ndarray`: the crate needs only indexing, transposition and
//! reference products, and keeping the public API free of a third-party array type
//! lets downstream crates (and the encrypted-training crate's client) use any array
//! library and convert with [`Matrix::from_rows`] / [`Matrix::as_slice`].

use crate::error::{LinalgError, Result};
use serde::{Deserialize, Serialize};

/// A dense `rows × cols` real matrix, row-major (`data[i·cols + j]` is entry `(i, j)`).
/// Deserialization runs the check of [`Matrix::new`] (`data.len() == rows·cols`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "MatrixWire")]
pub struct Matrix {
    rows: usize,
    cols: usize,
    data: Vec<f64>,
}

/// The serialized fields of [`Matrix`], checked by `TryFrom`.
#[derive(Deserialize)]
struct MatrixWire {
    rows: usize,
    cols: usize,
    data: Vec<f64>,
}

impl TryFrom<MatrixWire> for Matrix {
    type Error = LinalgError;

    fn try_from(w: MatrixWire) -> Result<Self> {
        Matrix::new(w.rows, w.cols, w.data)
    }
}

impl Matrix {
    /// A matrix from row-major data.
    ///
    /// # Errors
    /// [`LinalgError::Shape`] if `data.len() != rows·cols`.
    pub fn new(rows: usize, cols: usize, data: Vec<f64>) -> Result<Self> {
        if rows.checked_mul(cols) != Some(data.len()) {
            return Err(LinalgError::Shape(format!(
                "{} values for a {rows}×{cols} matrix",
                data.len()
            )));
        }
        Ok(Self { rows, cols, data })
    }

    /// The `rows × cols` zero matrix.
    pub fn zeros(rows: usize, cols: usize) -> Self {
        Self {
            rows,
            cols,
            data: vec![0.0; rows * cols],
        }
    }

    /// `M[i][j] = f(i, j)`.
    pub fn from_fn(rows: usize, cols: usize, mut f: impl FnMut(usize, usize) -> f64) -> Self {
        let mut data = Vec::with_capacity(rows * cols);
        for i in 0..rows {
            for j in 0..cols {
                data.push(f(i, j));
            }
        }
        Self { rows, cols, data }
    }

    /// A matrix from equal-length rows.
    ///
    /// # Errors
    /// [`LinalgError::Shape`] for ragged rows.
    pub fn from_rows(rows: &[Vec<f64>]) -> Result<Self> {
        let cols = rows.first().map_or(0, Vec::len);
        if rows.iter().any(|r| r.len() != cols) {
            return Err(LinalgError::Shape("rows of different lengths".into()));
        }
        Ok(Self {
            rows: rows.len(),
            cols,
            data: rows.concat(),
        })
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Number of columns.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Entry `(i, j)`; panics out of range like slice indexing.
    pub fn get(&self, i: usize, j: usize) -> f64 {
        assert!(
            i < self.rows && j < self.cols,
            "index ({i}, {j}) out of range"
        );
        self.data[i * self.cols + j]
    }

    /// Entry `(i, j)`, or 0 outside the matrix (the zero padding of every packing).
    pub fn get_or_zero(&self, i: usize, j: usize) -> f64 {
        if i < self.rows && j < self.cols {
            self.data[i * self.cols + j]
        } else {
            0.0
        }
    }

    /// Sets entry `(i, j)`; panics out of range.
    pub fn set(&mut self, i: usize, j: usize, v: f64) {
        assert!(
            i < self.rows && j < self.cols,
            "index ({i}, {j}) out of range"
        );
        self.data[i * self.cols + j] = v;
    }

    /// Row `i`.
    pub fn row(&self, i: usize) -> &[f64] {
        &self.data[i * self.cols..(i + 1) * self.cols]
    }

    /// The row-major data.
    pub fn as_slice(&self) -> &[f64] {
        &self.data
    }

    /// The row-major data, mutable (the shape cannot change).
    pub fn as_mut_slice(&mut self) -> &mut [f64] {
        &mut self.data
    }

    /// The transpose.
    pub fn transpose(&self) -> Matrix {
        Matrix::from_fn(self.cols, self.rows, |i, j| self.get(j, i))
    }

    /// `self · other` in float64.
    ///
    /// # Errors
    /// [`LinalgError::Shape`] unless `self.cols == other.rows`.
    pub fn matmul(&self, other: &Matrix) -> Result<Matrix> {
        if self.cols != other.rows {
            return Err(LinalgError::Shape(format!(
                "{}×{} · {}×{}",
                self.rows, self.cols, other.rows, other.cols
            )));
        }
        let mut out = Matrix::zeros(self.rows, other.cols);
        for i in 0..self.rows {
            for k in 0..self.cols {
                let a = self.get(i, k);
                if a == 0.0 {
                    continue;
                }
                let orow = other.row(k);
                let dst = &mut out.data[i * other.cols..(i + 1) * other.cols];
                for (d, &b) in dst.iter_mut().zip(orow) {
                    *d += a * b;
                }
            }
        }
        Ok(out)
    }

    /// `self · otherᵀ` in float64 (the product DiagABT computes).
    ///
    /// # Errors
    /// [`LinalgError::Shape`] unless `self.cols == other.cols`.
    pub fn matmul_bt(&self, other: &Matrix) -> Result<Matrix> {
        self.matmul(&other.transpose())
    }

    /// `selfᵀ · other` in float64 (the product DiagATB computes).
    ///
    /// # Errors
    /// [`LinalgError::Shape`] unless `self.rows == other.rows`.
    pub fn matmul_at(&self, other: &Matrix) -> Result<Matrix> {
        self.transpose().matmul(other)
    }

    /// The largest absolute entry-wise difference.
    ///
    /// # Errors
    /// [`LinalgError::Shape`] for different shapes.
    pub fn max_abs_diff(&self, other: &Matrix) -> Result<f64> {
        if (self.rows, self.cols) != (other.rows, other.cols) {
            return Err(LinalgError::Shape(format!(
                "comparing {}×{} with {}×{}",
                self.rows, self.cols, other.rows, other.cols
            )));
        }
        Ok(self
            .data
            .iter()
            .zip(&other.data)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max))
    }

    /// The sub-matrix of the first `rows` rows and `cols` columns.
    ///
    /// # Errors
    /// [`LinalgError::Shape`] if larger than `self`.
    pub fn top_left(&self, rows: usize, cols: usize) -> Result<Matrix> {
        if rows > self.rows || cols > self.cols {
            return Err(LinalgError::Shape(format!(
                "{rows}×{cols} corner of a {}×{} matrix",
                self.rows, self.cols
            )));
        }
        Ok(Matrix::from_fn(rows, cols, |i, j| self.get(i, j)))
    }
}
