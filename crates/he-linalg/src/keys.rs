//! The Galois keys each product needs, so a client can generate exactly those
//! (a missing key is a [`ckks::CkksError::MissingGaloisKey`] at evaluation time).

use crate::layout::{UnitShape, padded_classes};
use ckks::EvaluationKeyRequest;
use std::collections::BTreeSet;

/// Rotations (left by `k` slots, negative = right) and the conjugation key that an
/// operation needs; the relinearization key is always needed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyRequirements {
    /// Slot rotations.
    pub rotations: BTreeSet<i64>,
    /// Whether the conjugation key is needed.
    pub conjugation: bool,
}

impl KeyRequirements {
    /// The union of two requirements.
    pub fn union(mut self, other: &KeyRequirements) -> Self {
        self.rotations.extend(&other.rotations);
        self.conjugation |= other.conjugation;
        self
    }

    /// The key-generation request (relinearization key included, no bootstrapping
    /// keys), every key at the top level.
    pub fn to_request(&self) -> EvaluationKeyRequest {
        EvaluationKeyRequest {
            relinearization: true,
            rotations: self.rotations.iter().copied().collect(),
            conjugation: self.conjugation,
            ..EvaluationKeyRequest::default()
        }
    }

    /// Adds these keys to `req` (e.g. a bootstrapping request), with the
    /// relinearization key, at the top level; the rotations stay sorted and distinct.
    pub fn add_to(&self, req: &mut EvaluationKeyRequest) {
        req.merge(&self.to_request());
    }

    /// Adds these keys to `req` for ciphertexts at levels `≤ level` only (smaller
    /// rotation keys, [`ckks::EvaluationKeyRequest::rotations_up_to`]): for an
    /// application whose products never run above `level`, e.g. the output level of its
    /// bootstrapping. The conjugation key, if needed, stays at the top level (one key
    /// serves every level).
    pub fn add_up_to(&self, req: &mut EvaluationKeyRequest, level: usize) {
        req.merge(&EvaluationKeyRequest {
            relinearization: true,
            conjugation: self.conjugation,
            rotations_up_to: self.rotations.iter().map(|&r| (r, level)).collect(),
            ..EvaluationKeyRequest::default()
        });
    }

    fn add(&mut self, k: i64, slots: usize) {
        if k.rem_euclid(slots as i64) != 0 {
            self.rotations.insert(k);
        }
    }

    /// The rotations of [`ckks::Evaluator::rotate_and_sum`]`(_, count, step)`.
    fn add_sum(&mut self, count: usize, step: i64, slots: usize) {
        let mut c = 1;
        let mut s = step;
        while c < count {
            self.add(s, slots);
            s *= 2;
            c *= 2;
        }
    }
}

/// Keys of [`crate::MatrixEvaluator::diag_abt`] for `classes` classes.
pub fn diag_abt_keys(shape: UnitShape, classes: usize) -> KeyRequirements {
    let (n, cp) = (shape.slots(), padded_classes(classes));
    let s1 = shape.s1 as i64;
    let mut k = KeyRequirements {
        conjugation: true,
        ..Default::default()
    };
    k.add(s1, n);
    for m in 1..cp / 2 {
        k.add(2 * m as i64 * s1, n);
    }
    k.add_sum(shape.s1, 1, n);
    k.add_sum(cp, -1, n);
    k
}

/// Keys of [`crate::MatrixEvaluator::diag_atb`] for `classes` classes.
pub fn diag_atb_keys(shape: UnitShape, classes: usize) -> KeyRequirements {
    let (n, cp) = (shape.slots(), padded_classes(classes));
    let s1 = shape.s1 as i64;
    let mut k = KeyRequirements {
        conjugation: true,
        ..Default::default()
    };
    k.add_sum(cp, 1, n);
    k.add_sum(shape.s1, -1, n);
    for m in 1..cp / 2 {
        k.add(-(2 * m as i64) * s1, n);
    }
    k.add_sum(shape.s0 / cp, cp as i64 * s1, n);
    k.add(-s1, n);
    k
}

/// Keys of [`crate::MatrixEvaluator::diag_atb_prot_up`] for `classes` classes.
pub fn diag_atb_prot_up_keys(shape: UnitShape, classes: usize) -> KeyRequirements {
    let (n, cp) = (shape.slots(), padded_classes(classes));
    let s1 = shape.s1 as i64;
    let mut k = KeyRequirements {
        conjugation: true,
        ..Default::default()
    };
    k.add_sum(shape.s1 / cp, -(cp as i64), n);
    for r in 1..cp as i64 {
        k.add(r, n);
    }
    k.add(s1, n);
    k.add_sum(shape.s0, s1, n);
    k
}

/// Keys of [`crate::MatrixEvaluator::col_major_abt`].
pub fn col_major_keys(shape: UnitShape) -> KeyRequirements {
    let mut k = KeyRequirements::default();
    k.add_sum(shape.s1, shape.s0 as i64, shape.slots());
    k
}

/// Keys of [`crate::MatrixEvaluator::row_major_atb`].
pub fn row_major_keys(shape: UnitShape) -> KeyRequirements {
    let mut k = KeyRequirements::default();
    k.add_sum(shape.s0, shape.s1 as i64, shape.slots());
    k
}

/// Keys of [`crate::MatrixEvaluator::jin_atb`] (full rotate-and-sum over `slots`).
pub fn jin_atb_keys(slots: usize) -> KeyRequirements {
    let mut k = KeyRequirements::default();
    k.add_sum(slots, 1, slots);
    k
}

/// Keys of [`crate::MatrixEvaluator::plain_matmul_hybrid`] for `M` with `rows` rows
/// (any column count `≤ s0`): the BSGS rotations of the `m'` diagonals and the
/// folding rotations `m'·s1, 2m'·s1, …` (`m' = rows.next_power_of_two()`).
///
/// # Errors
/// [`crate::LinalgError::Shape`] for zero rows or more than `s0`.
pub fn plain_matmul_hybrid_keys(rows: usize, shape: UnitShape) -> crate::Result<KeyRequirements> {
    // The rotations depend only on which diagonals are non-zero: all `m'` of them for a
    // dense matrix of `rows` rows and `s0` columns.
    let dense = crate::Matrix::from_fn(rows, shape.s0, |_, _| 1.0);
    let (lt, period) = crate::plain::hybrid_matmul_transform(&dense, shape)?;
    let mut k = linear_transform_keys(&lt);
    k.add_sum(shape.s0 / period, (period * shape.s1) as i64, shape.slots());
    Ok(k)
}

/// Keys of [`crate::MatrixEvaluator::plain_matmul`] / [`crate::MatrixEvaluator::plain_matvec`]
/// for a given transform (its BSGS rotations).
pub fn linear_transform_keys(lt: &ckks::LinearTransform) -> KeyRequirements {
    let mut k = KeyRequirements::default();
    for r in lt.rotations() {
        k.add(r, lt.slots());
    }
    k
}
