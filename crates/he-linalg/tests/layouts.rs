//! Packing laws: unpack ∘ pack is the identity for every packing; tiled layouts hold
//! the tiled copies where the module docs say.

use he_linalg::{BaselinePacking, BlockLayout, Matrix, Packing, Tiling, UnitShape};
use proptest::prelude::*;

fn matrix(rows: usize, cols: usize, seed: u64) -> Matrix {
    Matrix::from_fn(rows, cols, |i, j| {
        ((i * 31 + j * 17) as u64 ^ seed) as f64 % 97.0 - 48.0
    })
}

proptest! {
    #[test]
    fn block_layout_round_trip(log_s0 in 0u32..7, rows in 1usize..150, cols in 1usize..150, seed: u64) {
        let s0 = 1usize << log_s0;
        let shape = UnitShape::new(s0, 128 / s0).unwrap();
        let m = matrix(rows, cols, seed);
        let l = BlockLayout::new(rows, cols, shape).unwrap();
        let v = l.pack(&m).unwrap();
        prop_assert_eq!(v.len(), rows.div_ceil(shape.s0) * cols.div_ceil(shape.s1));
        prop_assert_eq!(l.unpack(&v).unwrap(), m);
    }

    #[test]
    fn tilings_round_trip_and_replicate(log_s0 in 1u32..6, rows in 1usize..8, cols in 1usize..100, seed: u64) {
        let s0 = 1usize << log_s0;
        let shape = UnitShape::new(s0, 64 / s0).unwrap();
        let m = matrix(rows, cols, seed);
        if let Ok(l) = BlockLayout::vertical(rows, cols, shape) {
            let Tiling::Vertical { period } = l.tiling() else { unreachable!() };
            let v = l.pack(&m).unwrap();
            for (bj, block) in v.iter().enumerate() {
                for r in 0..s0 {
                    for t in 0..shape.s1 {
                        let j = bj * shape.s1 + t;
                        prop_assert_eq!(block[r * shape.s1 + t], m.get_or_zero(r % period, j));
                    }
                }
            }
            prop_assert_eq!(l.unpack(&v).unwrap(), m.clone());
        }
        let mt = m.transpose();
        if let Ok(l) = BlockLayout::with_tiling(cols, rows, shape, Tiling::Horizontal { period: rows.next_power_of_two() }) {
            prop_assert_eq!(l.unpack(&l.pack(&mt).unwrap()).unwrap(), mt);
        }
    }

    #[test]
    fn baseline_packings_round_trip(log_s0 in 0u32..7, rows in 1usize..90, cols in 1usize..90, seed: u64) {
        let s0 = 1usize << log_s0;
        let shape = UnitShape::new(s0, 128 / s0).unwrap();
        let m = matrix(rows, cols, seed);
        for p in [
            BaselinePacking::ColumnMajor { rows, cols, shape },
            BaselinePacking::SegmentReplicated { rows, cols, shape },
            BaselinePacking::ColumnReplicated { rows, cols, shape },
            BaselinePacking::RowReplicated { rows, cols, shape },
            BaselinePacking::Columns { rows, cols, chunk: 32, slots: 128 },
            BaselinePacking::ReplicatedEntries { rows, cols, slots: 128 },
        ] {
            let v = p.pack(&m).unwrap();
            prop_assert_eq!(v.len(), p.num_ciphertexts());
            prop_assert_eq!(p.unpack(&v).unwrap(), m.clone());
        }
    }
}

#[test]
fn wrong_sizes_are_errors() {
    let shape = UnitShape::new(8, 16).unwrap();
    let l = BlockLayout::new(10, 20, shape).unwrap();
    assert!(l.pack(&Matrix::zeros(10, 21)).is_err());
    assert!(l.unpack(&[vec![0.0; 128]]).is_err());
    assert!(UnitShape::new(6, 16).is_err());
    assert!(BlockLayout::new(0, 3, shape).is_err());
    assert!(Matrix::new(2, 2, vec![1.0; 3]).is_err());
}

/// The wire form of `BlockLayout` (same fields, same order), written without checks.
#[derive(serde::Serialize)]
struct RawShape {
    s0: usize,
    s1: usize,
}

#[derive(serde::Serialize)]
struct RawLayout {
    rows: usize,
    cols: usize,
    shape: RawShape,
    tiling: he_linalg::Tiling,
}

fn raw(rows: usize, cols: usize, s0: usize, s1: usize, tiling: he_linalg::Tiling) -> Vec<u8> {
    postcard::to_allocvec(&RawLayout {
        rows,
        cols,
        shape: RawShape { s0, s1 },
        tiling,
    })
    .unwrap()
}

#[test]
fn deserialized_layouts_are_checked() {
    use he_linalg::{BlockLayout, Tiling, UnitShape};
    let good = BlockLayout::new(100, 7, UnitShape::new(128, 256).unwrap()).unwrap();
    let bytes = postcard::to_allocvec(&good).unwrap();
    assert_eq!(bytes, raw(100, 7, 128, 256, Tiling::None), "same wire form");
    assert_eq!(postcard::from_bytes::<BlockLayout>(&bytes).unwrap(), good);
    let bad = [
        raw(100, 7, 0, 256, Tiling::None), // s0 = 0 divides by zero
        raw(100, 7, 3, 256, Tiling::None), // not a power of two
        raw(100, 7, 1 << 40, 1 << 40, Tiling::None), // s0·s1 overflows
        raw(0, 7, 128, 256, Tiling::None), // empty
        raw(usize::MAX, usize::MAX, 1, 1, Tiling::None), // block count overflows
        raw(1 << 30, 1 << 10, 1, 1, Tiling::None), // 2^40 blocks
        raw(9, 7, 128, 256, Tiling::Vertical { period: 8 }), // rows > period
        raw(4, 7, 128, 256, Tiling::Vertical { period: 256 }), // period > s0
        raw(4, 7, 128, 256, Tiling::Horizontal { period: 3 }), // not a power of two
    ];
    for b in bad {
        assert!(postcard::from_bytes::<BlockLayout>(&b).is_err(), "{b:?}");
    }
    let shape = postcard::to_allocvec(&RawShape { s0: 0, s1: 4 }).unwrap();
    assert!(postcard::from_bytes::<UnitShape>(&shape).is_err());
}

/// The wire form of a `Matrix`, free to disagree with itself.
#[derive(serde::Serialize)]
struct RawMatrix {
    rows: usize,
    cols: usize,
    data: Vec<f64>,
}

#[test]
fn deserialized_matrices_are_checked() {
    let good = Matrix::from_fn(2, 3, |i, j| (i * 3 + j) as f64);
    let bytes = postcard::to_allocvec(&good).unwrap();
    assert_eq!(postcard::from_bytes::<Matrix>(&bytes).unwrap(), good);
    for (rows, cols, len) in [(2, 3, 5), (2, 3, 7), (0, 3, 1), (usize::MAX, 2, 2)] {
        let b = postcard::to_allocvec(&RawMatrix {
            rows,
            cols,
            data: vec![0.0; len],
        })
        .unwrap();
        assert!(
            postcard::from_bytes::<Matrix>(&b).is_err(),
            "{rows}×{cols} with {len} values"
        );
    }
}
