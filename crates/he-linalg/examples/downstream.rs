//! A downstream user's view: everything comes from `he_linalg` (no other crate of this
//! workspace is named). The client encrypts two matrices, the server — holding
//! evaluation keys only — multiplies them with DiagABT and DiagATB, the client decrypts.
//!
//! Run: `cargo run --release -p he-linalg --example downstream`

use he_linalg::{
    BlockLayout, Context, EncryptedMatrix, Evaluator, KeyGenerator, Matrix, MatrixEvaluator,
    UnitShape, keys, presets,
};
use std::sync::Arc;

fn main() -> Result<(), he_linalg::LinalgError> {
    // Client: parameters (INSECURE test size), keys, data.
    let ctx = Context::new_cpu(presets::insecure_n12_depth6())?;
    let slots = ctx.params().max_slots();
    let (batch, features, classes) = (100, 60, 5);
    let shape = UnitShape::hetal(batch, classes, slots)?;
    let mut kg = KeyGenerator::new(&ctx);
    let sk = kg.gen_secret_key()?;
    let req = keys::diag_abt_keys(shape, classes).union(&keys::diag_atb_keys(shape, classes));
    let eval_keys = Arc::new(kg.gen_evaluation_keys(&sk, &req.to_request())?);

    let x = Matrix::from_fn(batch, features, |i, j| ((i * 7 + j * 3) % 11) as f64 / 11.0);
    let w = Matrix::from_fn(classes, features, |i, j| {
        ((i + 2 * j) % 5) as f64 / 10.0 - 0.2
    });
    let top = ctx.params().max_level();
    let ex = EncryptedMatrix::encrypt(
        &ctx,
        &sk,
        &x,
        BlockLayout::new(batch, features, shape)?,
        top,
    )?;
    let ew = EncryptedMatrix::encrypt(
        &ctx,
        &sk,
        &w,
        BlockLayout::vertical(classes, features, shape)?,
        top,
    )?;

    // Server: evaluation keys only.
    let server = MatrixEvaluator::new(Arc::new(Evaluator::new(&ctx, eval_keys)));
    let (logits, counts) = server.evaluator().counting(|| server.diag_abt(&ex, &ew));
    let logits = logits?;
    let grad = server.diag_atb(&logits, &ex)?;

    // Client: decrypt and compare with float64.
    let z = logits.decrypt(&ctx, &sk)?;
    let g = grad.decrypt(&ctx, &sk)?;
    let z_err = z.max_abs_diff(&x.matmul_bt(&w)?)?;
    let g_err = g.max_abs_diff(&x.matmul_bt(&w)?.matmul_at(&x)?)?;
    println!(
        "unit shape ({}, {}); X·Wᵀ: level {} → {}, {} Mult, {} Rot, max error 2^{:.1}; (X·Wᵀ)ᵀ·X: level {}, max error 2^{:.1}",
        shape.s0,
        shape.s1,
        top,
        logits.level(),
        counts.mult,
        counts.rot,
        z_err.log2(),
        grad.level(),
        g_err.log2()
    );
    assert!(z_err < 1e-5 && g_err < 1e-3);
    Ok(())
}
