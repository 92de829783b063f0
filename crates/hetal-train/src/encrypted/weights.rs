//! Refreshing the weight matrix compactly (HETAL, §4.4 remarks on bootstrapping the
//! weights): `W` (`c×d`) lives vertically tiled, every column block repeating its `c'`
//! rows `s0/c'` times, so bootstrapping it block by block would refresh `s0/c'`
//! copies of the same numbers. Instead each block's first segment (`c'·s1` slots) is
//! masked out, the segments are packed side by side into `⌈blocks/(s0/c')⌉` compact
//! ciphertexts ([`WeightRefresh::pack`]: a binary tree of rotations right by `seg·2^j`),
//! those are bootstrapped (alone, or as the passenger of another refresh:
//! [`super::Refresher::board`]), and the tiling is rebuilt ([`WeightRefresh::unpack`]).
//!
//! The rebuild works on groups of `g = 2^a` consecutive segments (the unit below is one
//! segment, `s0/c'` units per ciphertext): the compact ciphertext is rotated left by
//! `g` units per group, a mask keeps units `0 … g−1`, `log2(s0/c') − a` rotate-and-add
//! doublings repeat them with period `g`, and for each of the group's segments a mask
//! keeps the units `≡ i (mod g)` and `a` doublings fill the rest. That is
//! `(1 + log2(s0/c') − a)` rotations per group and `a` per segment; `a` is chosen to
//! minimize the total (DermaMNIST: 41 blocks, `s0/c' = 128`, `a = 2`: 147 rotations
//! where one mask and `log2(s0/c')` doublings per segment took 327).
//!
//! Levels: one for the packing mask before the bootstrap, two after it (the group and
//! the segment masks), and the rebuild starts by dropping the compact ciphertext to two
//! levels above the level asked for, so its rotations run on as few limbs as the caller
//! allows.
//!
//! **Scale.** The compact ciphertexts hold the weights at their own scale and are
//! refreshed with the bound `M` (the refresh scales them into `[−1, 1]` in the level it
//! spends anyway, and multiplies by `M`, an integer, on the way out). Every mask and
//! rotation of the packing and the rebuild therefore adds its noise (about `2^-26.8`
//! per rescale or key switch at Δ = 2^40 with the dense N = 2^16 secret) to the weights
//! themselves. The first version shrank them by `1/M` in the packing mask and restored
//! `M` in the last mask, which multiplied the noise of every step in between by `M`:
//! measured at N = 2^16 with `M = 16`, a pack and rebuild without any bootstrap cost
//! `2^-19.2` rms (`2^-17.3` max), the largest error a training step left in `V`. Only
//! a compact ciphertext packed at the refresh floor (where the refresh has no level to
//! scale with) is still shrunk in its mask ([`WeightRefresh::pack`] says which).

use super::ops::{Ops, Refresher};
use crate::error::{Result, TrainError};
use he_linalg::ckks::Ciphertext;
use he_linalg::{Backend, BlockLayout, EncryptedMatrix, KeyRequirements, Tiling};

/// Compact refresh of vertically tiled weight matrices of one layout.
#[derive(Debug, Clone)]
pub struct WeightRefresh {
    /// Segment length `c'·s1` (slots holding one block's distinct rows).
    seg: usize,
    /// Segments per compact ciphertext, `s0/c'` (a power of two).
    capacity: usize,
    slots: usize,
    /// Bound `M` on the weights' absolute values (a power of two).
    bound: f64,
}

impl WeightRefresh {
    /// Levels [`Self::unpack`] consumes (the group and the segment masks).
    pub const UNPACK_DEPTH: usize = 2;

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

    fn tree_depth(count: usize) -> usize {
        count.next_power_of_two().trailing_zeros() as usize
    }

    fn capacity_log(&self) -> usize {
        self.capacity.trailing_zeros() as usize
    }

    /// `log2 g` of the rebuild's groups for a compact ciphertext of `count` segments:
    /// the `a` with the fewest rotations, `⌈count/2^a⌉·(1 + log2(s0/c') − a) + count·a`
    /// (ties to the smaller `a`, which has fewer masks).
    fn group_log(&self, count: usize) -> usize {
        let k = self.capacity_log();
        (0..=k)
            .min_by_key(|&a| count.div_ceil(1 << a) * (1 + k - a) + count * a)
            .unwrap_or(0)
    }

    /// Rotation keys for matrices of `blocks` column blocks.
    pub fn keys(&self, blocks: usize) -> KeyRequirements {
        let mut k = KeyRequirements::default();
        let seg = self.seg as i64;
        let group = blocks.min(self.capacity);
        for j in 0..Self::tree_depth(group).max(self.capacity_log()) {
            k.rotations.insert(-(seg << j));
        }
        let a = self.group_log(group);
        if group > 1 << a {
            k.rotations.insert(seg << a);
        }
        k.rotations.retain(|r| r.rem_euclid(self.slots as i64) != 0);
        k
    }

    /// The mask that keeps the slots of the units `u` with `keep(u)` (`factor` there).
    fn unit_mask(&self, factor: f64, keep: impl Fn(usize) -> bool) -> impl Fn() -> Vec<f64> {
        let seg = self.seg;
        let slots = self.slots;
        move || {
            (0..slots)
                .map(|i| if keep(i / seg) { factor } else { 0.0 })
                .collect()
        }
    }

    /// Packs a vertically tiled matrix: one compact ciphertext per group of `s0/c'`
    /// column blocks, segment `k` of a group at slots `k·seg …`; one level below `w`.
    /// Returns the compact ciphertexts and the bound their slots obey, which the refresh
    /// and [`Self::unpack`] take: `M` (the weights at their own scale, see the module
    /// docs) when the compact level stays above `floor`, else `1` (shrunk by `1/M` in the
    /// mask, so that a refresh at the floor needs no level to scale them).
    ///
    /// # Errors
    /// [`TrainError::Config`] for an untiled matrix or a level-0 input; CKKS errors.
    pub fn pack<B: Backend>(
        &self,
        ops: &Ops<B>,
        w: &EncryptedMatrix<B>,
        floor: usize,
    ) -> Result<(Vec<Ciphertext<B>>, f64)> {
        if !matches!(w.layout().tiling(), Tiling::Vertical { .. }) || w.level() == 0 {
            return Err(TrainError::Config(
                "weight refresh takes a vertically tiled matrix above level 0".into(),
            ));
        }
        let bound = if w.level() - 1 > floor {
            self.bound
        } else {
            1.0
        };
        let factor = bound / self.bound;
        let first = self.unit_mask(factor, |u| u == 0);
        let mut out = Vec::with_capacity(w.ciphertexts().len().div_ceil(self.capacity));
        for group in w.ciphertexts().chunks(self.capacity) {
            // Segment k to offset k·seg.
            let mut items = group
                .iter()
                .map(|ct| ops.mul_mask(ct, &format!("segment*{factor}"), &first))
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
            out.extend(items);
        }
        Ok((out, bound))
    }

    /// Rebuilds the tiling of `layout` (a vertically tiled matrix) from its compact
    /// ciphertexts as [`Self::pack`] left them (refreshed or not) with the `bound` it
    /// returned, at `level`: each compact ciphertext is first dropped to
    /// `level + `[`Self::UNPACK_DEPTH`]; the first mask restores the factor `M/bound`.
    ///
    /// # Errors
    /// [`TrainError::Config`] for an untiled layout or a compact count that does not
    /// match it; [`TrainError::Linalg`] for a compact ciphertext below
    /// `level + UNPACK_DEPTH`; CKKS errors.
    pub fn unpack<B: Backend>(
        &self,
        ops: &Ops<B>,
        layout: BlockLayout,
        compacts: &[Ciphertext<B>],
        level: usize,
        bound: f64,
    ) -> Result<EncryptedMatrix<B>> {
        let _span = tracing::debug_span!("weight_unpack", level).entered();
        let factor = self.bound / bound;
        let blocks = layout.col_blocks() * layout.row_blocks();
        if !matches!(layout.tiling(), Tiling::Vertical { .. })
            || compacts.len() != blocks.div_ceil(self.capacity)
        {
            return Err(TrainError::Config(format!(
                "{} compact ciphertexts for a layout of {blocks} blocks ({:?})",
                compacts.len(),
                layout.tiling()
            )));
        }
        let k = self.capacity_log();
        let seg = self.seg as i64;
        let mut out = Vec::with_capacity(blocks);
        for (n, compact) in (0..blocks)
            .step_by(self.capacity)
            .map(|start| (blocks - start).min(self.capacity))
            .zip(compacts)
        {
            let a = self.group_log(n);
            let g = 1usize << a;
            let group_mask = self.unit_mask(factor, move |u| u < g);
            let mut y = ops.align(compact, level + Self::UNPACK_DEPTH)?;
            for b in (0..n).step_by(g) {
                if b > 0 {
                    y = ops.rotate(&y, seg << a)?;
                }
                // Units 0 … g−1 of the group, repeated with period g.
                let mut z = ops.mul_mask(&y, &format!("units<{g}*{factor}"), &group_mask)?;
                for j in a..k {
                    z = ops.add(&z, &ops.rotate(&z, -(seg << j))?)?;
                }
                for i in 0..g.min(n - b) {
                    let keep = self.unit_mask(1.0, move |u| u % g == i);
                    let mut x = ops.mul_mask(&z, &format!("units%{g}={i}"), &keep)?;
                    for j in 0..a {
                        x = ops.add(&x, &ops.rotate(&x, -(seg << j))?)?;
                    }
                    out.push(x);
                }
            }
        }
        Ok(EncryptedMatrix::from_parts(layout, out)?)
    }

    /// [`Self::pack`], a bootstrap of each compact ciphertext, [`Self::unpack`] at
    /// `level`: the same matrix, refreshed.
    ///
    /// # Errors
    /// As [`Self::pack`] and [`Self::unpack`] (`level + UNPACK_DEPTH` above the
    /// bootstrap's output level); bootstrapping errors.
    pub fn refresh<B: Backend>(
        &self,
        ops: &Ops<B>,
        refresher: &Refresher<B>,
        w: &EncryptedMatrix<B>,
        level: usize,
    ) -> Result<EncryptedMatrix<B>> {
        let _span = tracing::debug_span!("weight_refresh").entered();
        let (compacts, bound) = self.pack(ops, w, refresher.floor())?;
        let compacts = compacts
            .iter()
            .map(|c| refresher.refresh(ops, c, bound))
            .collect::<Result<Vec<_>>>()?;
        self.unpack(ops, *w.layout(), &compacts, level, bound)
    }
}

#[cfg(test)]
mod tests {
    use super::WeightRefresh;

    #[test]
    fn groups_minimize_rotations() {
        // DermaMNIST: c' = 8 rows in blocks of 1024×32, 41 column blocks.
        let w = WeightRefresh::new(8, 1024, 32, 16.0).unwrap();
        assert_eq!(w.group_log(41), 2);
        // One segment: no groups to form.
        assert_eq!(w.group_log(1), 0);
        let keys = w.keys(41);
        // Right rotations by seg·2^j (pack tree and doublings), one left rotation by 4 seg.
        assert_eq!(keys.rotations.len(), 7 + 1);
        assert!(keys.rotations.contains(&(256 << 2)));
    }
}
