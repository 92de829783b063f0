//! Encrypted products against float64 references, on small insecure parameters, for
//! many shapes (non-multiples of the unit shape, several row/column blocks, class
//! counts that are not powers of two), with level bookkeeping and operation counts
//! read from the evaluator.

use he_linalg::keys::{self, KeyRequirements};
use he_linalg::{
    AbtWeights, AtbLhs, BaselineMatrix, BaselinePacking, BlockLayout, Context, CpuBackend,
    DiagAtbVariant, EncryptedMatrix, Evaluator, KeyGenerator, LinalgError, Matrix, MatrixEvaluator,
    SecretKey, UnitShape, padded_classes, presets,
};
use rand::{Rng, SeedableRng, rngs::StdRng};
use std::sync::Arc;

struct Setup {
    ctx: Arc<Context<CpuBackend>>,
    sk: SecretKey<CpuBackend>,
    me: MatrixEvaluator<CpuBackend>,
}

fn setup(literal: he_linalg::ParametersLiteral, req: &KeyRequirements) -> Setup {
    let ctx = Context::new_cpu(literal).unwrap();
    let mut kg = KeyGenerator::new(&ctx);
    let sk = kg.gen_secret_key().unwrap();
    let keys = kg.gen_evaluation_keys(&sk, &req.to_request()).unwrap();
    let me = MatrixEvaluator::new(Arc::new(Evaluator::new(&ctx, Arc::new(keys))));
    Setup { ctx, sk, me }
}

fn random(rows: usize, cols: usize, rng: &mut StdRng) -> Matrix {
    Matrix::from_fn(rows, cols, |_, _| rng.random::<f64>())
}

/// Asserts `got ≈ want` and returns the error in bits (log2 of the max abs error).
fn check(got: &Matrix, want: &Matrix, what: &str) -> f64 {
    let err = got.max_abs_diff(want).unwrap();
    let scale = want.as_slice().iter().fold(1.0f64, |m, x| m.max(x.abs()));
    let bits = err.log2();
    eprintln!("{what}: max abs error 2^{bits:.1} (entries up to {scale:.1})");
    assert!(err < 1e-6 * scale, "{what}: error {err:e} too large");
    bits
}

fn log2(x: usize) -> u64 {
    u64::from(x.trailing_zeros())
}

#[test]
fn diag_abt_many_shapes() {
    let mut rng = StdRng::seed_from_u64(1);
    // (s0, s1), a, b, c
    let cases = [
        ((16, 32), 40, 70, 3),
        ((16, 32), 16, 32, 4),
        ((16, 32), 5, 10, 2),
        ((16, 32), 33, 100, 5),
        ((8, 64), 20, 130, 7),
        ((64, 8), 100, 20, 8),
        ((16, 32), 7, 9, 1),
    ];
    let req = cases
        .iter()
        .fold(KeyRequirements::default(), |r, &((s0, s1), _, _, c)| {
            r.union(&keys::diag_abt_keys(UnitShape::new(s0, s1).unwrap(), c))
        });
    let s = setup(presets::insecure_n10_depth3(), &req);
    let top = s.ctx.params().max_level();
    for ((s0, s1), a, b, c) in cases {
        let shape = UnitShape::new(s0, s1).unwrap();
        let (ma, mb) = (random(a, b, &mut rng), random(c, b, &mut rng));
        let ea = EncryptedMatrix::encrypt(
            &s.ctx,
            &s.sk,
            &ma,
            BlockLayout::new(a, b, shape).unwrap(),
            top,
        )
        .unwrap();
        let eb = EncryptedMatrix::encrypt(
            &s.ctx,
            &s.sk,
            &mb,
            BlockLayout::vertical(c, b, shape).unwrap(),
            top,
        )
        .unwrap();
        let (out, counts) = s.me.evaluator().counting(|| s.me.diag_abt(&ea, &eb));
        let out = out.unwrap();
        assert_eq!(out.level(), top - 3, "DiagABT depth is 3");
        // The streamed product is the prepared one, bit for bit.
        let prepared =
            s.me.diag_abt_prepared(&ea, &s.me.prepare_abt_weights(&eb).unwrap())
                .unwrap();
        assert_eq!(
            out.decrypt(&s.ctx, &s.sk)
                .unwrap()
                .max_abs_diff(&prepared.decrypt(&s.ctx, &s.sk).unwrap())
                .unwrap(),
            0.0
        );
        assert_eq!(out.layout(), &BlockLayout::new(a, c, shape).unwrap());
        check(
            &out.decrypt(&s.ctx, &s.sk).unwrap(),
            &ma.matmul_bt(&mb).unwrap(),
            &format!("DiagABT {a}x{b}x{c} in ({s0},{s1})"),
        );
        let (rb, cb, cp) = (
            a.div_ceil(s0) as u64,
            b.div_ceil(s1) as u64,
            padded_classes(c) as u64,
        );
        assert_eq!(counts.mult, cp / 2 * rb * cb, "Mult = (c'/2)·⌈a/s0⌉·⌈b/s1⌉");
        assert_eq!(counts.cmult, cp * rb);
        assert_eq!(counts.conj, rb);
        assert_eq!(
            counts.rot,
            cb * (cp / 2) + rb * (cp / 2) * (log2(s1) + log2(cp as usize))
        );
        assert_eq!(
            counts.key_switch,
            counts.rot + counts.conj + rb * cp / 2,
            "one relinearization per (row block, pair)"
        );
    }
}

#[test]
fn diag_atb_variants_many_shapes() {
    let mut rng = StdRng::seed_from_u64(2);
    // (s0, s1), a, c, b
    let cases = [
        ((16, 32), 40, 3, 70),
        ((16, 32), 16, 4, 32),
        ((16, 32), 5, 2, 10),
        ((16, 32), 33, 5, 100),
        ((8, 64), 20, 7, 130),
        ((64, 8), 100, 8, 20),
    ];
    let req = cases
        .iter()
        .fold(KeyRequirements::default(), |r, &((s0, s1), _, c, _)| {
            let shape = UnitShape::new(s0, s1).unwrap();
            r.union(&keys::diag_atb_keys(shape, c))
                .union(&keys::diag_atb_prot_up_keys(shape, c))
        });
    let s = setup(presets::insecure_n10_depth3(), &req);
    let top = s.ctx.params().max_level();
    for ((s0, s1), a, c, b) in cases {
        let shape = UnitShape::new(s0, s1).unwrap();
        let (ma, mb) = (random(a, c, &mut rng), random(a, b, &mut rng));
        let want = ma.matmul_at(&mb).unwrap();
        let ea = EncryptedMatrix::encrypt(
            &s.ctx,
            &s.sk,
            &ma,
            BlockLayout::new(a, c, shape).unwrap(),
            top,
        )
        .unwrap();
        let eb = EncryptedMatrix::encrypt(
            &s.ctx,
            &s.sk,
            &mb,
            BlockLayout::new(a, b, shape).unwrap(),
            top,
        )
        .unwrap();
        let (rb, cb, cp) = (
            a.div_ceil(s0) as u64,
            b.div_ceil(s1) as u64,
            padded_classes(c) as u64,
        );

        let (out, counts) = s.me.evaluator().counting(|| s.me.diag_atb(&ea, &eb));
        let out = out.unwrap();
        assert_eq!(out.level(), top - 3, "DiagATB: depth 3 from A");
        assert_eq!(
            out.layout(),
            &BlockLayout::vertical(c, b, shape).unwrap(),
            "the layout DiagABT takes for W"
        );
        check(
            &out.decrypt(&s.ctx, &s.sk).unwrap(),
            &want,
            &format!("DiagATB {a}x{c}x{b} in ({s0},{s1})"),
        );
        assert_eq!(counts.mult, cp / 2 * rb * cb);
        assert_eq!(counts.cmult, cp * rb);
        let sum_rows = log2(s0) - log2(cp as usize);
        // The 2m-row alignment rotates the products above two row blocks, the operands
        // (B's rotations hoisted) up to two.
        let align = if rb <= 2 {
            rb * (cp / 2 - 1) * (1 + cb)
        } else {
            cb * (cp / 2 - 1)
        };
        assert_eq!(
            counts.rot,
            rb * (cp / 2) * (log2(cp as usize) + log2(s1)) + align + cb * (sum_rows + 1)
        );
        assert_eq!(counts.conj, cb);

        let (out, counts) =
            s.me.evaluator()
                .counting(|| s.me.diag_atb_prot_up(&ea, &eb));
        let out = out.unwrap();
        assert_eq!(
            out.level(),
            top - 3,
            "PRotUp: depth 2 from A, 3 from B (both at the top here)"
        );
        check(
            &out.decrypt(&s.ctx, &s.sk).unwrap(),
            &want,
            &format!("DiagATB-PRotUp {a}x{c}x{b} in ({s0},{s1})"),
        );
        assert_eq!(counts.mult, cp * rb * cb);
        assert_eq!(counts.cmult, (cp - 1) * rb * cb + cp / 2 * cb);

        // A gradient step's η·Aᵀ·B: the constant rides in a mask, so the level and
        // every operation count are those of the unscaled product.
        let eta = -0.0123;
        let want_scaled = Matrix::from_fn(want.rows(), want.cols(), |i, j| eta * want.get(i, j));
        for variant in [DiagAtbVariant::RotLeft, DiagAtbVariant::PRotUp] {
            let (plain, plain_counts) =
                s.me.evaluator()
                    .counting(|| s.me.diag_atb_with(&ea, &eb, variant));
            let (scaled, scaled_counts) =
                s.me.evaluator()
                    .counting(|| s.me.diag_atb_scaled(&ea, &eb, variant, eta));
            let scaled = scaled.unwrap();
            assert_eq!(scaled.level(), plain.unwrap().level());
            assert_eq!(
                (scaled_counts.mult, scaled_counts.cmult, scaled_counts.rot),
                (plain_counts.mult, plain_counts.cmult, plain_counts.rot)
            );
            check(
                &scaled.decrypt(&s.ctx, &s.sk).unwrap(),
                &want_scaled,
                &format!("{eta}·DiagATB ({variant:?}) {a}x{c}x{b} in ({s0},{s1})"),
            );
        }
        assert!(
            s.me.diag_atb_scaled(&ea, &eb, DiagAtbVariant::RotLeft, f64::NAN)
                .is_err()
        );
    }
}

#[test]
fn chained_abt_then_atb_keeps_layouts() {
    // Logits X·Wᵀ, then the gradient (Z)ᵀ·X from them, then Z·... again with the
    // gradient as the new W: the layouts chain without repacking.
    let mut rng = StdRng::seed_from_u64(3);
    let shape = UnitShape::new(64, 64).unwrap(); // 4096 slots
    let (a, b, c) = (100, 50, 5);
    let req = keys::diag_abt_keys(shape, c)
        .union(&keys::diag_atb_keys(shape, c))
        .union(&keys::diag_atb_prot_up_keys(shape, c));
    let s = setup(presets::insecure_n13_depth12(), &req);
    let top = s.ctx.params().max_level();
    let (x, w) = (random(a, b, &mut rng), random(c, b, &mut rng));
    let ex = EncryptedMatrix::encrypt(
        &s.ctx,
        &s.sk,
        &x,
        BlockLayout::new(a, b, shape).unwrap(),
        top,
    )
    .unwrap();
    let ew = EncryptedMatrix::encrypt(
        &s.ctx,
        &s.sk,
        &w,
        BlockLayout::vertical(c, b, shape).unwrap(),
        top,
    )
    .unwrap();
    let z = s.me.diag_abt(&ex, &ew).unwrap();
    assert_eq!(z.level(), top - 3);
    let zw = x.matmul_bt(&w).unwrap();
    check(&z.decrypt(&s.ctx, &s.sk).unwrap(), &zw, "chain: X·Wᵀ");
    let want = zw.matmul_at(&x).unwrap();
    // level(A) < level(B): Auto picks PRotUp, which keeps one more level.
    let g_auto = s.me.diag_atb_with(&z, &ex, DiagAtbVariant::Auto).unwrap();
    let g = s.me.diag_atb(&z, &ex).unwrap();
    assert_eq!(g.level(), top - 3 - 3);
    assert_eq!(g_auto.level(), top - 3 - 2);
    check(
        &g.decrypt(&s.ctx, &s.sk).unwrap(),
        &want,
        "chain: (X·Wᵀ)ᵀ·X",
    );
    check(
        &g_auto.decrypt(&s.ctx, &s.sk).unwrap(),
        &want,
        "chain: (X·Wᵀ)ᵀ·X (PRotUp)",
    );
    // The gradient is in W's layout: DiagABT accepts it directly.
    assert_eq!(g_auto.layout(), ew.layout());
    let ex_low = EncryptedMatrix::encrypt(
        &s.ctx,
        &s.sk,
        &x,
        BlockLayout::new(a, b, shape).unwrap(),
        top,
    )
    .unwrap();
    let z2 = s.me.diag_abt(&ex_low, &g_auto).unwrap();
    assert_eq!(z2.level(), g_auto.level() - 3);
    let z2_want = x.matmul_bt(&want).unwrap();
    check(&z2.decrypt(&s.ctx, &s.sk).unwrap(), &z2_want, "chain: X·Gᵀ");
}

#[test]
fn baselines_match_float64() {
    let mut rng = StdRng::seed_from_u64(4);
    let shape = UnitShape::new(16, 32).unwrap();
    let n = shape.slots();
    let req = keys::col_major_keys(shape)
        .union(&keys::row_major_keys(shape))
        .union(&keys::jin_atb_keys(n));
    let s = setup(presets::insecure_n10_depth3(), &req);
    let top = s.ctx.params().max_level();
    let (a, b, c) = (40, 70, 3);
    let enc =
        |m: &Matrix, p: BaselinePacking| BaselineMatrix::encrypt(&s.ctx, &s.sk, m, p, top).unwrap();

    // A·Bᵀ
    let (ma, mb) = (random(a, b, &mut rng), random(c, b, &mut rng));
    let want = ma.matmul_bt(&mb).unwrap();
    let ea = enc(
        &ma,
        BaselinePacking::ColumnMajor {
            rows: a,
            cols: b,
            shape,
        },
    );
    let eb = enc(
        &mb,
        BaselinePacking::SegmentReplicated {
            rows: c,
            cols: b,
            shape,
        },
    );
    let (out, k) = s.me.evaluator().counting(|| s.me.col_major_abt(&ea, &eb));
    let out = out.unwrap();
    assert_eq!(out.level(), top - 1);
    check(&out.decrypt(&s.ctx, &s.sk).unwrap(), &want, "ColMajor");
    let (rb, cb) = (a.div_ceil(16) as u64, b.div_ceil(32) as u64);
    assert_eq!(k.mult, c as u64 * rb * cb);
    assert_eq!(k.rot, c as u64 * rb * 5);
    let ea = enc(
        &ma,
        BaselinePacking::Columns {
            rows: a,
            cols: b,
            chunk: n,
            slots: n,
        },
    );
    let eb = enc(
        &mb,
        BaselinePacking::ReplicatedEntries {
            rows: c,
            cols: b,
            slots: n,
        },
    );
    let (out, k) = s.me.evaluator().counting(|| s.me.jin_abt(&ea, &eb));
    check(
        &out.unwrap().decrypt(&s.ctx, &s.sk).unwrap(),
        &want,
        "Jin A·Bᵀ",
    );
    assert_eq!((k.mult, k.rot), ((c * b) as u64, 0));

    // Aᵀ·B
    let (ma, mb) = (random(a, c, &mut rng), random(a, b, &mut rng));
    let want = ma.matmul_at(&mb).unwrap();
    let ea = enc(
        &ma,
        BaselinePacking::ColumnReplicated {
            rows: a,
            cols: c,
            shape,
        },
    );
    let eb = EncryptedMatrix::encrypt(
        &s.ctx,
        &s.sk,
        &mb,
        BlockLayout::new(a, b, shape).unwrap(),
        top,
    )
    .unwrap();
    let (out, k) = s.me.evaluator().counting(|| s.me.row_major_atb(&ea, &eb));
    check(
        &out.unwrap().decrypt(&s.ctx, &s.sk).unwrap(),
        &want,
        "RowMajor",
    );
    assert_eq!(k.mult, c as u64 * rb * cb);
    assert_eq!(k.rot, c as u64 * cb * 4);
    let ea = enc(
        &ma,
        BaselinePacking::Columns {
            rows: a,
            cols: c,
            chunk: n,
            slots: n,
        },
    );
    let eb = enc(
        &mb,
        BaselinePacking::Columns {
            rows: a,
            cols: b,
            chunk: n,
            slots: n,
        },
    );
    let (out, k) = s.me.evaluator().counting(|| s.me.jin_atb(&ea, &eb));
    check(
        &out.unwrap().decrypt(&s.ctx, &s.sk).unwrap(),
        &want,
        "Jin Aᵀ·B",
    );
    assert_eq!((k.mult, k.rot), ((c * b) as u64, (c * b) as u64 * 9));
}

#[test]
fn plaintext_matrix_times_ciphertext() {
    let mut rng = StdRng::seed_from_u64(5);
    let shape = UnitShape::new(16, 32).unwrap();
    let n = shape.slots();
    let m = Matrix::from_fn(12, 14, |_, _| rng.random::<f64>() - 0.5);
    let x = random(14, 50, &mut rng);
    let lt = he_linalg::plain::matmul_transform(&m, shape).unwrap();
    let mv = Matrix::from_fn(20, 30, |_, _| rng.random::<f64>() - 0.5);
    let lt_v = he_linalg::plain::matvec_transform(&mv, 32, n).unwrap();
    let req = keys::linear_transform_keys(&lt).union(&keys::linear_transform_keys(&lt_v));
    let s = setup(presets::insecure_n10_depth3(), &req);
    let top = s.ctx.params().max_level();
    let ex = EncryptedMatrix::encrypt(
        &s.ctx,
        &s.sk,
        &x,
        BlockLayout::new(14, 50, shape).unwrap(),
        top,
    )
    .unwrap();
    let (out, k) = s.me.evaluator().counting(|| s.me.plain_matmul(&m, &ex));
    let out = out.unwrap();
    assert_eq!(out.level(), top - 1);
    check(
        &out.decrypt(&s.ctx, &s.sk).unwrap(),
        &m.matmul(&x).unwrap(),
        "plaintext M · encrypted X (BSGS)",
    );
    assert_eq!(k.mult, 0);
    assert!(
        k.rot < 2 * 27,
        "BSGS: O(√diagonals) rotations per block, got {}",
        k.rot
    );

    let v: Vec<f64> = (0..30).map(|_| rng.random::<f64>()).collect();
    let packed = he_linalg::plain::pack_vector_replicated(&v, 32, n).unwrap();
    let ct =
        s.sk.encrypt(&s.ctx.encode_at_level(&packed, top).unwrap())
            .unwrap();
    let y = s.me.plain_matvec(&mv, &ct, 32).unwrap();
    let got = s.ctx.decode(&s.sk.decrypt(&y).unwrap()).unwrap();
    let vm = Matrix::new(30, 1, v).unwrap();
    let want = mv.matmul(&vm).unwrap();
    for rep in 0..n / 32 {
        let seg = Matrix::new(20, 1, got[rep * 32..rep * 32 + 20].to_vec()).unwrap();
        check(
            &seg,
            &want,
            if rep == 0 {
                "plaintext M · encrypted vector"
            } else {
                "replica"
            },
        );
    }
}

#[test]
fn hybrid_plaintext_matmul_folds_and_replicates() {
    let mut rng = StdRng::seed_from_u64(6);
    let shape = UnitShape::new(32, 16).unwrap();
    // m = 3 → period m' = 4: 4 diagonals, log2(32/4) = 3 folding rotations.
    let m = Matrix::from_fn(3, 29, |_, _| rng.random::<f64>() - 0.5);
    let x = random(29, 40, &mut rng);
    let req = keys::plain_matmul_hybrid_keys(3, shape).unwrap();
    let s = setup(presets::insecure_n10_depth3(), &req);
    let top = s.ctx.params().max_level();
    let ex = EncryptedMatrix::encrypt(
        &s.ctx,
        &s.sk,
        &x,
        BlockLayout::new(29, 40, shape).unwrap(),
        top,
    )
    .unwrap();
    let enc =
        s.me.encode_plain_matmul(&m, shape, true, top, ex.scale())
            .unwrap();
    assert_eq!(enc.replication_period(), Some(4));
    let (out, k) =
        s.me.evaluator()
            .counting(|| s.me.apply_plain_matmul(&enc, &ex));
    let out = out.unwrap();
    assert_eq!(out.level(), top - 1);
    let want = m.matmul(&x).unwrap();
    check(
        &out.decrypt(&s.ctx, &s.sk).unwrap(),
        &want,
        "plaintext M · encrypted X (hybrid)",
    );
    // Per block: BSGS over 4 diagonals (at most 3 rotations) plus 3 folds.
    let blocks = ex.ciphertexts().len() as u64;
    assert!(
        k.rot <= 6 * blocks,
        "{} rotations for {blocks} blocks",
        k.rot
    );
    // Every row k of a block holds row k mod 4 of the product (row 3 of each period is
    // zero): the documented replication, read from the raw slots of the first block.
    let slots = s
        .ctx
        .decode(&s.sk.decrypt(&out.ciphertexts()[0]).unwrap())
        .unwrap();
    for k in 0..32 {
        for j in 0..16 {
            let want_kj = if k % 4 < 3 { want.get(k % 4, j) } else { 0.0 };
            assert!(
                (slots[k * 16 + j] - want_kj).abs() < 1e-6,
                "row {k} column {j}: {} vs {want_kj}",
                slots[k * 16 + j]
            );
        }
    }
    // The same encoding applied again, and the one-call API, agree.
    let again = s.me.plain_matmul_hybrid(&m, &ex).unwrap();
    check(
        &again.decrypt(&s.ctx, &s.sk).unwrap(),
        &want,
        "plain_matmul_hybrid",
    );
    // Input at another level or scale than the encoding's is refused.
    let low = EncryptedMatrix::encrypt(
        &s.ctx,
        &s.sk,
        &x,
        BlockLayout::new(29, 40, shape).unwrap(),
        top - 1,
    )
    .unwrap();
    assert!(s.me.apply_plain_matmul(&enc, &low).is_err());
    // Too many rows for the block is a shape error, not a panic.
    assert!(matches!(
        s.me.encode_plain_matmul(&Matrix::zeros(33, 4), shape, true, top, ex.scale()),
        Err(LinalgError::Shape(_))
    ));
}

#[test]
fn errors_are_reported_not_panics() {
    let shape = UnitShape::new(16, 32).unwrap();
    let s = setup(
        presets::insecure_n10_depth3(),
        &keys::diag_abt_keys(shape, 3),
    );
    let top = s.ctx.params().max_level();
    let a = Matrix::zeros(16, 40);
    let w = Matrix::zeros(3, 40);
    let ea = EncryptedMatrix::encrypt(
        &s.ctx,
        &s.sk,
        &a,
        BlockLayout::new(16, 40, shape).unwrap(),
        top,
    )
    .unwrap();
    let ew = EncryptedMatrix::encrypt(
        &s.ctx,
        &s.sk,
        &w,
        BlockLayout::vertical(3, 40, shape).unwrap(),
        top,
    )
    .unwrap();
    // W not tiled.
    let ew_plain = EncryptedMatrix::encrypt(
        &s.ctx,
        &s.sk,
        &w,
        BlockLayout::new(3, 40, shape).unwrap(),
        top,
    )
    .unwrap();
    assert!(matches!(
        s.me.diag_abt(&ea, &ew_plain),
        Err(LinalgError::Layout(_))
    ));
    // Mismatched inner dimension.
    let w2 = Matrix::zeros(3, 41);
    let ew2 = EncryptedMatrix::encrypt(
        &s.ctx,
        &s.sk,
        &w2,
        BlockLayout::vertical(3, 41, shape).unwrap(),
        top,
    )
    .unwrap();
    assert!(matches!(
        s.me.diag_abt(&ea, &ew2),
        Err(LinalgError::Shape(_))
    ));
    // Too few levels.
    let low = EncryptedMatrix::encrypt(
        &s.ctx,
        &s.sk,
        &a,
        BlockLayout::new(16, 40, shape).unwrap(),
        2,
    )
    .unwrap();
    assert!(matches!(
        s.me.diag_abt(&low, &ew),
        Err(LinalgError::LevelTooLow {
            needed: 3,
            level: 2
        })
    ));
    // Missing keys (DiagATB's were not generated).
    let p = Matrix::zeros(16, 3);
    let ep = EncryptedMatrix::encrypt(
        &s.ctx,
        &s.sk,
        &p,
        BlockLayout::new(16, 3, shape).unwrap(),
        top,
    )
    .unwrap();
    assert!(matches!(
        s.me.diag_atb(&ep, &ea),
        Err(LinalgError::Ckks(
            he_linalg::CkksError::MissingGaloisKey { .. }
        ))
    ));
    // Too many classes for the unit shape; wrong matrix size for a layout.
    assert!(BlockLayout::vertical(20, 40, shape).is_err());
    assert!(matches!(
        EncryptedMatrix::encrypt(
            &s.ctx,
            &s.sk,
            &a,
            BlockLayout::new(16, 41, shape).unwrap(),
            top
        ),
        Err(LinalgError::Shape(_))
    ));
    // Unit shape not matching the slot count.
    let big = UnitShape::new(32, 32).unwrap();
    assert!(matches!(
        EncryptedMatrix::encrypt(
            &s.ctx,
            &s.sk,
            &a,
            BlockLayout::new(16, 40, big).unwrap(),
            top
        ),
        Err(LinalgError::Layout(_))
    ));
}

#[test]
fn hetal_unit_shape_rule() {
    // s0 = min(max(batch, c'), slots/c'), s1 = slots/s0 (HETAL §4.1).
    let s = UnitShape::hetal(1024, 7, 32768).unwrap();
    assert_eq!((s.s0, s.s1), (1024, 32));
    let s = UnitShape::hetal(4, 10, 32768).unwrap();
    assert_eq!((s.s0, s.s1), (16, 2048));
    let s = UnitShape::hetal(100_000, 16, 32768).unwrap();
    assert_eq!((s.s0, s.s1), (2048, 16));
    assert!(UnitShape::hetal(8, 300, 32768).is_err());
}

#[test]
fn client_prepared_operands_match_server_prepared() {
    let mut rng = StdRng::seed_from_u64(6);
    let shape = UnitShape::new(16, 32).unwrap();
    let (a, b, c): (usize, usize, usize) = (40, 70, 5);
    let req = keys::diag_abt_keys(shape, c).union(&keys::diag_atb_keys(shape, c));
    let s = setup(presets::insecure_n10_depth3(), &req);
    let top = s.ctx.params().max_level();
    let (rb, cb, cp) = (
        a.div_ceil(16) as u64,
        b.div_ceil(32) as u64,
        padded_classes(c) as u64,
    );

    let (x, w) = (random(a, b, &mut rng), random(c, b, &mut rng));
    let ex = EncryptedMatrix::encrypt(
        &s.ctx,
        &s.sk,
        &x,
        BlockLayout::new(a, b, shape).unwrap(),
        top,
    )
    .unwrap();
    let aligned = AbtWeights::encrypt(&s.ctx, &s.sk, &w, shape, top).unwrap();
    assert_eq!(aligned.num_ciphertexts() as u64, cb * cp / 2);
    let (out, k) =
        s.me.evaluator()
            .counting(|| s.me.diag_abt_prepared(&ex, &aligned));
    let out = out.unwrap();
    assert_eq!(out.level(), top - 3);
    check(
        &out.decrypt(&s.ctx, &s.sk).unwrap(),
        &x.matmul_bt(&w).unwrap(),
        "DiagABT, client-aligned W",
    );
    assert_eq!(
        k.rot,
        rb * (cp / 2) * (5 + log2(cp as usize)),
        "no B-side rotations"
    );
    assert_eq!(k.mult, rb * cb * cp / 2);

    let p = random(a, c, &mut rng);
    let lhs = AtbLhs::encrypt(&s.ctx, &s.sk, &p, shape, top).unwrap();
    let (out, k) =
        s.me.evaluator()
            .counting(|| s.me.diag_atb_prepared(&lhs, &ex));
    let out = out.unwrap();
    assert_eq!(out.level(), top - 1, "prepared DiagATB has depth 1");
    check(
        &out.decrypt(&s.ctx, &s.sk).unwrap(),
        &p.matmul_at(&x).unwrap(),
        "DiagATB, client-prepared A",
    );
    assert_eq!(k.rot, cb * ((cp / 2 - 1) + (4 - log2(cp as usize)) + 1));
    assert_eq!((k.cmult, k.mult), (0, rb * cb * cp / 2));
}

#[test]
fn scaled_atb_applies_its_constant_late() {
    // η·Aᵀ·B with a small η (a gradient step, 2^-9): folded into B's alignment to the
    // product's level (B one level above it), the noise before the product shrinks
    // with η and the rescale comes after the row sums; folded into A's column mask
    // (B at the product's level: no alignment to carry it), the noise of the
    // rotations after the mask does not shrink. Errors against the float64 product
    // (a final scaling, η applied after decryption, is better still by the one
    // rescale's noise of the alignment: measured 2^-36.3 against 2^-31.2 here, the mask
    // fold 2^-27.1).
    let mut rng = StdRng::seed_from_u64(7);
    let shape = UnitShape::new(64, 32).unwrap();
    let (a, c, b) = (128, 7, 32);
    let req = keys::diag_atb_keys(shape, c);
    let s = setup(presets::insecure_n12_depth6(), &req);
    let top = s.ctx.params().max_level();
    let ma = Matrix::from_fn(a, c, |_, _| rng.random::<f64>() - 0.5);
    let mb = random(a, b, &mut rng);
    let eta = 1.0 / 512.0;
    let want = ma.matmul_at(&mb).unwrap();
    let want = Matrix::from_fn(c, b, |i, j| eta * want.get(i, j));
    let enc = |m: &Matrix, level: usize| {
        let layout = BlockLayout::new(m.rows(), m.cols(), shape).unwrap();
        EncryptedMatrix::encrypt(&s.ctx, &s.sk, m, layout, level).unwrap()
    };
    let ea = enc(&ma, top);
    let err = |eb: &EncryptedMatrix<CpuBackend>, scale: f64| {
        let g = (s.me)
            .diag_atb_scaled(&ea, eb, DiagAtbVariant::RotLeft, scale)
            .unwrap();
        assert_eq!(g.level(), (top - 3).min(eb.level() - 1));
        let got = g.decrypt(&s.ctx, &s.sk).unwrap();
        let got = Matrix::from_fn(c, b, |i, j| eta / scale * got.get(i, j));
        got.max_abs_diff(&want).unwrap().log2()
    };
    let in_alignment = err(&enc(&mb, top - 1), eta);
    let in_mask = err(&enc(&mb, top - 2), eta);
    let after_decryption = err(&enc(&mb, top - 1), 1.0);
    eprintln!(
        "η·DiagATB max error: in B's alignment 2^{in_alignment:.1}, in A's mask \
         2^{in_mask:.1}, η applied after decryption 2^{after_decryption:.1}"
    );
    assert!(in_alignment < in_mask - 3.0);
    // B below the prepared diagonals: the constant rides in their alignment instead.
    let in_a_alignment = err(&enc(&mb, top - 3), eta);
    eprintln!("η·DiagATB max error, folded in A's alignment: 2^{in_a_alignment:.1}");
    assert!(in_a_alignment < -20.0, "2^{in_a_alignment:.1}");
    // A scale too small to ride in an alignment's integer is refused, not rounded to 0.
    assert!(
        (s.me)
            .diag_atb_scaled(&ea, &enc(&mb, top - 1), DiagAtbVariant::RotLeft, 1e-30)
            .is_err()
    );
}
