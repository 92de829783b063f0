//! Refreshing the weight matrix compactly (HETAL, §4.4 remarks on bootstrapping the
//! weights): `W` (`c×d`) lives vertically tiled, every column block repeating its `c'`
//! rows `s0/c'` times, so bootstrapping it block by block would refresh `s0/c'`
//! copies of the same numbers. Instead each block's first segment (`c'·s1` slots) is
//! masked out, the segments are packed side by side into `⌈blocks/(s0/c')⌉` compact
//! ciphertexts (a binary tree of rotations right by `seg·2^j`), those are bootstrapped,
//! and the tiling is rebuilt (rotations left by `seg·2^j` to bring each segment to the
//! front, a mask, and `log2(s0/c')` rotate-and-add doublings).
//!
//! Levels: one before the bootstrap (mask), one after it (mask); the masks also carry
//! the factors `1/M` and `M` that keep the bootstrapped message within `[−1, 1]` for
//! weights bounded by `M`. Rotations: `2(blocks − groups) + blocks·log2(s0/c')`.

use super::ops::{Ops, Refresher};
use crate::error::{Result, TrainError};
use he_linalg::ckks::Ciphertext;
use he_linalg::{Backend, EncryptedMatrix, KeyRequirements, Tiling};

/// Compact refresh of vertically tiled weight matrices of one layout.
#[derive(Debug, Clone)]
pub struct WeightRefresh {
    /// Segment length `c'·s1` (slots holding one block's distinct rows).
    seg: usize,
    /// Segments per compact ciphertext, `s0/c'`.
    capacity: usize,
    slots: usize,
    /// Bound `M` on the weights' absolute values (a power of two).
    bound: f64,
}

impl WeightRefresh {
    /// For matrices with `padded` (`c'`) rows tiled in blocks of `s0×s1`, whose entries
    /// stay below `bound` in absolute value (rounded up to a power of two).
    ///
    /// # Errors
    /// [`TrainError::Config`] for a non-positive bound or `c' > s0`.
    pub fn new(padded: usize, s0: usize, s1: usize, bound: f64) -> Result<Self> {
        if !(bound > 0.0 && bound.is_finite()) || padded == 0 || padded > s0 {
            return Err(TrainError::Config(format!(
                "weight refresh with bound {bound}, {padded} rows in blocks of {s0}"
            )));
        }
        Ok(Self {
            seg: padded * s1,
            capacity: s0 / padded,
            slots: s0 * s1,
            bound: bound.log2().ceil().exp2(),
        })
    }

    fn tree_depth(&self, count: usize) -> usize {
        count.next_power_of_two().trailing_zeros() as usize
    }

    /// Rotation keys for matrices of `blocks` column blocks.
    pub fn keys(&self, blocks: usize) -> KeyRequirements {
        let mut k = KeyRequirements::default();
        let seg = self.seg as i64;
        let group = blocks.min(self.capacity);
        for j in 0..self.tree_depth(group) {
            k.rotations.insert(-(seg << j));
            k.rotations.insert(seg << j);
        }
        for j in 0..self.capacity.trailing_zeros() {
            k.rotations.insert(-(seg << j));
        }
        k.rotations.retain(|r| r.rem_euclid(self.slots as i64) != 0);
        k
    }

    fn segment_mask(&self, factor: f64) -> impl Fn() -> Vec<f64> + '_ {
        move || {
            (0..self.slots)
                .map(|i| if i < self.seg { factor } else { 0.0 })
                .collect()
        }
    }

    /// Refreshes a vertically tiled matrix: the result has the same layout, at the
    /// bootstrapping output level minus one.
    ///
    /// # Errors
    /// [`TrainError::Config`] for an untiled matrix or a level-0 input; CKKS errors.
    pub fn refresh<B: Backend>(
        &self,
        ops: &Ops<B>,
        refresher: &Refresher<B>,
        w: &EncryptedMatrix<B>,
    ) -> Result<EncryptedMatrix<B>> {
        let _span = tracing::debug_span!("weight_refresh").entered();
        if !matches!(w.layout().tiling(), Tiling::Vertical { .. }) || w.level() == 0 {
            return Err(TrainError::Config(
                "weight refresh takes a vertically tiled matrix above level 0".into(),
            ));
        }
        let inv = 1.0 / self.bound;
        let shrink = self.segment_mask(inv);
        let grow = self.segment_mask(self.bound);
        let mut out = Vec::with_capacity(w.ciphertexts().len());
        for group in w.ciphertexts().chunks(self.capacity) {
            // Pack: segment k to offset k·seg.
            let mut items = group
                .iter()
                .map(|ct| ops.mul_mask(ct, &format!("segment/{}", self.bound), &shrink))
                .collect::<Result<Vec<_>>>()?;
            let mut j = 0;
            while items.len() > 1 {
                let shift = -((self.seg as i64) << j);
                let mut next = Vec::with_capacity(items.len().div_ceil(2));
                let mut it = items.into_iter();
                while let Some(a) = it.next() {
                    match it.next() {
                        Some(b) => next.push(ops.add(&a, &ops.rotate(&b, shift)?)?),
                        None => next.push(a),
                    }
                }
                items = next;
                j += 1;
            }
            let compact = refresher.refresh(ops, &items[0], 1.0)?;
            // Unpack: shifted[k] = compact rotated left by k·seg.
            let mut shifted: Vec<Ciphertext<B>> = Vec::with_capacity(group.len());
            shifted.push(compact);
            for k in 1..group.len() {
                let high = 1usize << (usize::BITS - 1 - k.leading_zeros());
                let r = ops.rotate(&shifted[k - high], (high * self.seg) as i64)?;
                shifted.push(r);
            }
            for s in shifted {
                let mut x = ops.mul_mask(&s, &format!("segment*{}", self.bound), &grow)?;
                for j in 0..self.capacity.trailing_zeros() {
                    x = ops.add(&x, &ops.rotate(&x, -((self.seg as i64) << j))?)?;
                }
                out.push(x);
            }
        }
        Ok(EncryptedMatrix::from_parts(*w.layout(), out)?)
    }
}
