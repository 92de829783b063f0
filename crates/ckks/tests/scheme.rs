//! CKKS scheme tests against a float64 reference, run on every backend.
//!
//! Errors are reported as `log2(max |error|)` ("bits of precision" = its negation).

use ckks::he_math::{Backend, CpuBackend, ReferenceBackend};
use ckks::{
    CkksError, Complex64, Context, EvaluationKeyRequest, Evaluator, KeyGenerator, SecretKey,
    presets,
};
use rand::{Rng, SeedableRng, rngs::StdRng};
use std::sync::Arc;

fn log2_err(got: &[Complex64], want: &[Complex64]) -> f64 {
    assert_eq!(got.len(), want.len());
    got.iter()
        .zip(want)
        .map(|(a, b)| (a - b).norm())
        .fold(0.0f64, f64::max)
        .log2()
}

fn random_complex(n: usize, seed: u64) -> Vec<Complex64> {
    let mut r = StdRng::seed_from_u64(seed);
    (0..n)
        .map(|_| Complex64::new(r.random_range(-1.0..1.0), r.random_range(-1.0..1.0)))
        .collect()
}

struct Setup<B: Backend> {
    ctx: Arc<Context<B>>,
    sk: SecretKey<B>,
    eval: Evaluator<B>,
    kg: KeyGenerator<B>,
}

fn setup<B: Backend>(ctx: Arc<Context<B>>, rotations: &[i64]) -> Setup<B> {
    let mut kg = KeyGenerator::new(&ctx);
    let sk = kg.gen_secret_key().unwrap();
    let req = EvaluationKeyRequest {
        relinearization: true,
        rotations: rotations.to_vec(),
        conjugation: true,
        encapsulation: None,
        rotations_up_to: Vec::new(),
    };
    let keys = kg.gen_evaluation_keys(&sk, &req).unwrap();
    let eval = Evaluator::new(&ctx, Arc::new(keys));
    Setup { ctx, sk, eval, kg }
}

fn encrypt<B: Backend>(s: &Setup<B>, z: &[Complex64], level: usize) -> ckks::Ciphertext<B> {
    let scale = s.ctx.params().scale_at(level).unwrap();
    s.sk.encrypt(&s.ctx.encode_complex(z, level, scale).unwrap())
        .unwrap()
}

fn decrypt<B: Backend>(s: &Setup<B>, ct: &ckks::Ciphertext<B>) -> Vec<Complex64> {
    s.ctx.decode_complex(&s.sk.decrypt(ct).unwrap()).unwrap()
}

fn encode_decode<B: Backend>(ctx: Arc<Context<B>>) {
    let slots = ctx.params().max_slots();
    for (level, sl) in [(0, slots), (ctx.params().max_level(), slots), (3, 16)] {
        let z = random_complex(sl, 1);
        let pt = ctx
            .encode_complex(&z, level, ctx.params().scale_at(level).unwrap())
            .unwrap();
        let e = log2_err(&ctx.decode_complex(&pt).unwrap(), &z);
        assert!(e < -35.0, "encode/decode error 2^{e:.1} at level {level}");
    }
}

fn encrypt_decrypt<B: Backend>(ctx: Arc<Context<B>>) {
    let s = setup(ctx, &[]);
    let slots = s.ctx.params().max_slots();
    let z = random_complex(slots, 2);
    let top = s.ctx.params().max_level();
    let e_sk = log2_err(&decrypt(&s, &encrypt(&s, &z, top)), &z);
    assert!(e_sk < -25.0, "sk encryption error 2^{e_sk:.1}");
    let mut kg = s.kg;
    let pk = kg.gen_public_key(&s.sk).unwrap();
    let pt = s
        .ctx
        .encode_complex(&z, 2, s.ctx.params().scale_at(2).unwrap())
        .unwrap();
    let ct = pk.encrypt(&pt).unwrap();
    let e_pk = log2_err(
        &s.ctx.decode_complex(&s.sk.decrypt(&ct).unwrap()).unwrap(),
        &z,
    );
    assert!(e_pk < -25.0, "pk encryption error 2^{e_pk:.1}");
}

fn arithmetic<B: Backend>(ctx: Arc<Context<B>>) {
    let s = setup(ctx, &[1, -1, 5, 3]);
    let p = s.ctx.params().clone();
    let slots = p.max_slots();
    let top = p.max_level();
    let x = random_complex(slots, 3);
    let y = random_complex(slots, 4);
    let cx = encrypt(&s, &x, top);
    let cy = encrypt(&s, &y, top);
    let ev = &s.eval;
    let check = |name: &str, ct: &ckks::Ciphertext<B>, want: &[Complex64], bound: f64| {
        let e = log2_err(&decrypt(&s, ct), want);
        assert!(e < bound, "{name}: error 2^{e:.1} ≥ 2^{bound}");
    };
    let sum: Vec<_> = x.iter().zip(&y).map(|(a, b)| a + b).collect();
    check("add", &ev.add(&cx, &cy).unwrap(), &sum, -25.0);
    let diff: Vec<_> = x.iter().zip(&y).map(|(a, b)| a - b).collect();
    check("sub", &ev.sub(&cx, &cy).unwrap(), &diff, -25.0);
    let neg: Vec<_> = x.iter().map(|a| -a).collect();
    check("neg", &ev.neg(&cx).unwrap(), &neg, -25.0);
    let prod: Vec<_> = x.iter().zip(&y).map(|(a, b)| a * b).collect();
    let m = ev.mul_relin_rescale(&cx, &cy).unwrap();
    assert_eq!(m.level(), top - 1);
    assert_eq!(m.scale(), p.scale_at(top - 1).unwrap());
    check("mult+relin+rescale", &m, &prod, -20.0);
    // Relinearization is linear: relin(mul) decrypts like the degree-2 ciphertext.
    check("mul (degree 2)", &ev.mul(&cx, &cy).unwrap(), &prod, -20.0);
    let ptx = s
        .ctx
        .encode_complex(&y, top, p.scale_at(top).unwrap())
        .unwrap();
    check(
        "mul_plain+rescale",
        &ev.rescale(&ev.mul_plain(&cx, &ptx).unwrap()).unwrap(),
        &prod,
        -20.0,
    );
    check("add_plain", &ev.add_plain(&cx, &ptx).unwrap(), &sum, -25.0);
    // Σ_t a_t · pt_t in one pass, against float64 and against its accumulation.
    let pty = s
        .ctx
        .encode_complex(&x, top, p.scale_at(top).unwrap())
        .unwrap();
    let dot: Vec<_> = x.iter().zip(&y).map(|(a, b)| a * b + b * a).collect();
    let summed = ev.mul_plain_sum(&[(&cx, &ptx), (&cy, &pty)]).unwrap();
    check(
        "mul_plain_sum+rescale",
        &ev.rescale(&summed).unwrap(),
        &dot,
        -20.0,
    );
    let mut acc = None;
    ev.mul_plain_accumulate(&mut acc, &cx, &ptx).unwrap();
    ev.mul_plain_accumulate(&mut acc, &cy, &pty).unwrap();
    let acc = acc.unwrap();
    assert_eq!(summed.scale(), acc.scale());
    assert_eq!(
        decrypt(&s, &summed),
        decrypt(&s, &acc),
        "mul_plain_sum equals mul_plain_accumulate exactly"
    );
    let c = Complex64::new(0.75, -0.5);
    let cm: Vec<_> = x.iter().map(|a| a * c).collect();
    let mc = ev.rescale(&ev.mul_const_complex(&cx, c).unwrap()).unwrap();
    assert_eq!(mc.scale(), p.scale_at(top - 1).unwrap());
    check("mul_const_complex", &mc, &cm, -20.0);
    let ca: Vec<_> = x.iter().map(|a| a + c).collect();
    check(
        "add_const_complex",
        &ev.add_const_complex(&cx, c).unwrap(),
        &ca,
        -25.0,
    );
    let xi: Vec<_> = x.iter().map(|a| a * Complex64::i()).collect();
    check("mul_by_i", &ev.mul_by_i(&cx).unwrap(), &xi, -25.0);
    let x3: Vec<_> = x.iter().map(|a| a * 3.0).collect();
    check("mul_integer", &ev.mul_integer(&cx, 3).unwrap(), &x3, -24.0);
    for k in [1i64, -1, 5, 3] {
        let want: Vec<_> = (0..slots)
            .map(|j| x[(j as i64 + k).rem_euclid(slots as i64) as usize])
            .collect();
        check(
            &format!("rotate {k}"),
            &ev.rotate(&cx, k).unwrap(),
            &want,
            -25.0,
        );
    }
    let conj: Vec<_> = x.iter().map(|a| a.conj()).collect();
    check("conjugate", &ev.conjugate(&cx).unwrap(), &conj, -25.0);
    // Rotation of a ciphertext at a lower level (fewer digits).
    let low = ev.drop_level(&cx, 1).unwrap();
    let want: Vec<_> = (0..slots).map(|j| x[(j + 1) % slots]).collect();
    check(
        "rotate at level 1",
        &ev.rotate(&low, 1).unwrap(),
        &want,
        -25.0,
    );
}

fn hoisted<B: Backend>(ctx: Arc<Context<B>>) {
    let rots = [1i64, 2, 3, -4, 7, 0];
    let s = setup(ctx, &rots);
    let slots = s.ctx.params().max_slots();
    let x = random_complex(slots, 5);
    for level in [s.ctx.params().max_level(), 2] {
        let cx = encrypt(&s, &x, level);
        let h = s.eval.rotate_hoisted(&cx, &rots).unwrap();
        for (ct, &k) in h.iter().zip(&rots) {
            let plain = s.eval.rotate(&cx, k).unwrap();
            let (a, b) = (decrypt(&s, ct), decrypt(&s, &plain));
            let want: Vec<_> = (0..slots)
                .map(|j| x[(j as i64 + k).rem_euclid(slots as i64) as usize])
                .collect();
            let agree = log2_err(&a, &b);
            assert!(agree < -25.0, "hoisted vs plain rotate {k}: 2^{agree:.1}");
            let e = log2_err(&a, &want);
            assert!(e < -25.0, "hoisted rotate {k}: 2^{e:.1}");
        }
    }
}

fn sparse_slots<B: Backend>(ctx: Arc<Context<B>>) {
    let s = setup(ctx, &[1, 2, 4]);
    let slots = 64;
    let x = random_complex(slots, 6);
    let top = s.ctx.params().max_level();
    let cx = encrypt(&s, &x, top);
    let r = s.eval.rotate(&cx, 1).unwrap();
    let want: Vec<_> = (0..slots).map(|j| x[(j + 1) % slots]).collect();
    assert!(log2_err(&decrypt(&s, &r), &want) < -25.0);
    let sum = s.eval.rotate_and_sum(&cx, 8, 1).unwrap();
    let want: Vec<_> = (0..slots)
        .map(|j| (0..8).map(|i| x[(j + i) % slots]).sum())
        .collect();
    let e = log2_err(&decrypt(&s, &sum), &want);
    assert!(e < -22.0, "rotate_and_sum: 2^{e:.1}");
    let m = s.eval.mul_relin_rescale(&cx, &cx).unwrap();
    let want: Vec<_> = x.iter().map(|a| a * a).collect();
    assert!(log2_err(&decrypt(&s, &m), &want) < -20.0);
}

/// A depth-10 chain: `x · y_1 · y_2 ⋯ y_10`, each `y_i` a fresh ciphertext at the
/// level the running product has reached (canonical scales make the levels line up),
/// alternating with constant multiplications to exercise both paths.
fn depth_chain<B: Backend>(ctx: Arc<Context<B>>) {
    let s = setup(ctx, &[]);
    let p = s.ctx.params().clone();
    assert!(p.max_level() >= 10);
    let slots = p.max_slots();
    let mut r = StdRng::seed_from_u64(7);
    let mut want = random_complex(slots, 8);
    let mut ct = encrypt(&s, &want, p.max_level());
    for step in 0..10 {
        if step % 3 == 2 {
            let c = r.random_range(0.5..1.5);
            ct = s.eval.rescale(&s.eval.mul_const(&ct, c).unwrap()).unwrap();
            want.iter_mut().for_each(|w| *w *= c);
        } else {
            let y = random_complex(slots, 100 + step);
            let cy = encrypt(&s, &y, ct.level());
            ct = s.eval.mul_relin_rescale(&ct, &cy).unwrap();
            want.iter_mut().zip(&y).for_each(|(w, v)| *w *= v);
        }
        assert_eq!(ct.scale(), p.scale_at(ct.level()).unwrap());
    }
    assert_eq!(ct.level(), p.max_level() - 10);
    let e = log2_err(&decrypt(&s, &ct), &want);
    assert!(e < -15.0, "depth-10 chain error 2^{e:.1}");
}

fn adjust_levels<B: Backend>(ctx: Arc<Context<B>>) {
    let s = setup(ctx, &[]);
    let p = s.ctx.params().clone();
    let slots = p.max_slots();
    let x = random_complex(slots, 9);
    let y = random_complex(slots, 10);
    let top = p.max_level();
    let cx = encrypt(&s, &x, top);
    let cy = encrypt(&s, &y, 2);
    // Different levels are refused; `adjust` brings x down with the canonical scale.
    assert!(matches!(
        s.eval.add(&cx, &cy),
        Err(CkksError::LevelMismatch(..))
    ));
    let dropped = s.eval.drop_level(&cx, 2).unwrap();
    assert!(matches!(
        s.eval.add(&dropped, &cy),
        Err(CkksError::ScaleMismatch(..))
    ));
    let adj = s.eval.adjust(&cx, 2, p.scale_at(2).unwrap()).unwrap();
    let sum: Vec<_> = x.iter().zip(&y).map(|(a, b)| a + b).collect();
    let e = log2_err(&decrypt(&s, &s.eval.add(&adj, &cy).unwrap()), &sum);
    assert!(e < -25.0, "adjust+add error 2^{e:.1}");
    // The same adjustment carrying a small constant: k·x at the canonical scale, the
    // encryption noise scaled with it (one rescale's error after the scaling).
    let k = -1.0 / 512.0;
    let scaled = s
        .eval
        .adjust_scaled(&cx, 2, p.scale_at(2).unwrap(), k)
        .unwrap();
    assert_eq!(
        (scaled.level(), scaled.scale()),
        (2, p.scale_at(2).unwrap())
    );
    let kx: Vec<_> = x.iter().map(|a| a * k).collect();
    let e = log2_err(&decrypt(&s, &scaled), &kx);
    assert!(e < -30.0, "adjust_scaled error 2^{e:.1}");
    for bad in [0.0, f64::NAN, f64::INFINITY, 1e-30] {
        assert!(matches!(
            s.eval.adjust_scaled(&cx, 2, p.scale_at(2).unwrap(), bad),
            Err(CkksError::InvalidValue(..))
        ));
    }
    assert!(matches!(
        s.eval.adjust_scaled(&cy, 2, p.scale_at(2).unwrap(), k),
        Err(CkksError::LevelTooLow { .. })
    ));
    // acc += c·x, x read in place from the higher level, at acc's scale Δ_top·q_2 (as a
    // polynomial leaf accumulates), then one rescale.
    let product_scale = cx.scale() * p.q()[2] as f64;
    let one = Complex64::new(1.0, 0.0);
    let base = (s.eval)
        .mul_const_complex_with_scale(&cy, one, product_scale / cy.scale())
        .unwrap();
    let mut acc = base.clone();
    s.eval.mul_const_add_assign(&mut acc, &cx, -0.75).unwrap();
    assert_eq!((acc.level(), acc.scale()), (2, product_scale));
    let want: Vec<_> = x.iter().zip(&y).map(|(a, b)| b - a * 0.75).collect();
    let e = log2_err(&decrypt(&s, &s.eval.rescale_owned(acc).unwrap()), &want);
    assert!(e < -25.0, "mul_const_add_assign error 2^{e:.1}");
    let mut small = cy.clone();
    assert!(matches!(
        s.eval.mul_const_add_assign(&mut small, &cx, 1.0),
        Err(CkksError::ScaleMismatch(..))
    ));
    let mut nan = base.clone();
    assert!(matches!(
        s.eval.mul_const_add_assign(&mut nan, &cx, f64::NAN),
        Err(CkksError::InvalidValue(..))
    ));
    let mut high = cx.clone();
    assert!(matches!(
        s.eval.mul_const_add_assign(&mut high, &cy, 1.0),
        Err(CkksError::LevelMismatch(..))
    ));
    // An unrelinearized product (degree 2) takes a degree-1 term before its rescale, as
    // the polynomial evaluator's `2(T_a·T_b − ½T_{a−b})`; the converse is refused.
    let cz = encrypt(&s, &x, 2);
    let mut prod = s.eval.mul(&cy, &cz).unwrap();
    s.eval.mul_const_add_assign(&mut prod, &cx, -0.5).unwrap();
    let want: Vec<_> = x.iter().zip(&y).map(|(a, b)| b * a - a * 0.5).collect();
    let got = s.eval.relinearize_rescale_owned(prod.clone()).unwrap();
    let e = log2_err(&decrypt(&s, &got), &want);
    assert!(e < -25.0, "degree-2 mul_const_add_assign error 2^{e:.1}");
    let mut low = (s.eval)
        .mul_const_complex_with_scale(&cy, one, 2.0 * prod.scale() / cy.scale())
        .unwrap();
    assert!(matches!(
        s.eval.mul_const_add_assign(&mut low, &prod, 1.0),
        Err(CkksError::DegreeTooHigh(2))
    ));
}

fn errors<B: Backend>(ctx: Arc<Context<B>>) {
    let s = setup(ctx, &[1]);
    let p = s.ctx.params().clone();
    let slots = p.max_slots();
    let x = random_complex(slots, 11);
    let top = p.max_level();
    let cx = encrypt(&s, &x, top);
    let ev = &s.eval;
    // Missing Galois key.
    assert!(matches!(
        ev.rotate(&cx, 2),
        Err(CkksError::MissingGaloisKey {
            rotation: Some(2),
            ..
        })
    ));
    assert!(matches!(
        ev.rotate_hoisted(&cx, &[1, 2]),
        Err(CkksError::MissingGaloisKey { .. })
    ));
    // Sums of plaintext products: no terms, mixed levels, mixed scales.
    assert!(matches!(
        ev.mul_plain_sum(&[]),
        Err(CkksError::InvalidValue(_))
    ));
    let pt = s
        .ctx
        .encode_complex(&x, top, p.scale_at(top).unwrap())
        .unwrap();
    let low = ev.drop_level(&cx, top - 1).unwrap();
    assert!(matches!(
        ev.mul_plain_sum(&[(&cx, &pt), (&low, &pt)]),
        Err(CkksError::LevelMismatch(..))
    ));
    let pt2 = s
        .ctx
        .encode_complex(&x, top, 2.0 * p.scale_at(top).unwrap())
        .unwrap();
    assert!(matches!(
        ev.mul_plain_sum(&[(&cx, &pt), (&cx, &pt2)]),
        Err(CkksError::ScaleMismatch(..))
    ));
    let pt_low = s
        .ctx
        .encode_complex(&x, top - 1, p.scale_at(top).unwrap())
        .unwrap();
    assert!(matches!(
        ev.mul_plain_sum(&[(&cx, &pt_low)]),
        Err(CkksError::LevelTooLow { .. })
    ));
    // Missing relinearization key.
    let bare = Evaluator::new(&s.ctx, Arc::new(Default::default()));
    assert!(matches!(
        bare.mul_relin(&cx, &cx),
        Err(CkksError::MissingRelinearizationKey)
    ));
    // Degree 2 where degree 1 is needed.
    let d2 = ev.mul(&cx, &cx).unwrap();
    assert!(matches!(
        ev.rotate(&d2, 1),
        Err(CkksError::DegreeTooHigh(2))
    ));
    assert!(matches!(ev.mul(&d2, &cx), Err(CkksError::DegreeTooHigh(2))));
    // Mismatched scales at the same level.
    let m = ev.mul_relin(&cx, &cx).unwrap();
    assert!(matches!(ev.add(&m, &cx), Err(CkksError::ScaleMismatch(..))));
    // Rescale at level 0.
    let l0 = ev.drop_level(&cx, 0).unwrap();
    assert!(matches!(
        ev.rescale(&l0),
        Err(CkksError::LevelTooLow { .. })
    ));
    assert!(matches!(
        ev.drop_level(&l0, 1),
        Err(CkksError::LevelTooLow { .. })
    ));
    // Slot-count mismatch.
    let small = encrypt(&s, &x[..16], top);
    assert!(matches!(
        ev.add(&cx, &small),
        Err(CkksError::SlotsMismatch(..))
    ));
    // Encoder: bad slot counts, non-finite values, values too large for the modulus.
    let sc = p.scale_at(0).unwrap();
    assert!(matches!(
        s.ctx.encode(&[0.0; 3], 0, sc),
        Err(CkksError::InvalidSlots { .. })
    ));
    assert!(matches!(
        s.ctx.encode(&vec![0.0; 2 * slots], 0, sc),
        Err(CkksError::InvalidSlots { .. })
    ));
    assert!(matches!(
        s.ctx.encode(&[f64::NAN, 0.0], 0, sc),
        Err(CkksError::InvalidValue(_))
    ));
    assert!(matches!(
        s.ctx.encode(&[1e10, 0.0], 0, sc),
        Err(CkksError::InvalidValue(_))
    ));
    assert!(matches!(
        s.ctx.encode(&[1.0, 0.0], top + 1, sc),
        Err(CkksError::LevelOutOfRange { .. })
    ));
    // Plaintext below the ciphertext's level.
    let pt0 = s.ctx.encode(&vec![1.0; slots], 0, cx.scale()).unwrap();
    assert!(matches!(
        ev.add_plain(&cx, &pt0),
        Err(CkksError::LevelTooLow { .. })
    ));
}

fn large_values_exact<B: Backend>(ctx: Arc<Context<B>>) {
    // Scaled coefficients beyond 2^53 (and beyond 2^64): scale 2^80 on a level with
    // ~226 bits of Q; encode/decode must keep ~50 bits relative precision.
    let slots = 8;
    let level = 4;
    let z: Vec<Complex64> = (0..slots)
        .map(|i| Complex64::new(1000.0 + i as f64 * 0.123456789, -(i as f64) * 3.5))
        .collect();
    let scale = 2f64.powi(80);
    let pt = ctx.encode_complex(&z, level, scale).unwrap();
    let e = log2_err(&ctx.decode_complex(&pt).unwrap(), &z);
    assert!(e < -35.0, "large-scale encode/decode error 2^{e:.1}");
}

macro_rules! backend_suite {
    ($name:ident, $ctx:expr) => {
        mod $name {
            use super::*;
            #[test]
            fn encode_decode_precision() {
                encode_decode($ctx(presets::insecure_n12_depth6()));
            }
            #[test]
            fn encrypt_decrypt_precision() {
                encrypt_decrypt($ctx(presets::insecure_n12_depth6()));
            }
            #[test]
            fn arithmetic_against_reference() {
                arithmetic($ctx(presets::insecure_n12_depth6()));
            }
            #[test]
            fn hoisted_rotations_agree() {
                hoisted($ctx(presets::insecure_n12_depth6()));
            }
            #[test]
            fn sparse_slots_and_rotate_sum() {
                sparse_slots($ctx(presets::insecure_n10_depth3()));
            }
            #[test]
            fn level_adjustment() {
                adjust_levels($ctx(presets::insecure_n12_depth6()));
            }
            #[test]
            fn error_cases() {
                errors($ctx(presets::insecure_n10_depth3()));
            }
            #[test]
            fn large_values() {
                large_values_exact($ctx(presets::insecure_n12_depth6()));
            }
        }
    };
}

fn cpu(l: ckks::ParametersLiteral) -> Arc<Context<CpuBackend>> {
    Context::new_cpu(l).unwrap()
}
fn reference(l: ckks::ParametersLiteral) -> Arc<Context<ReferenceBackend>> {
    Context::new_reference(l).unwrap()
}

backend_suite!(cpu_backend, cpu);
backend_suite!(reference_backend, reference);

#[test]
fn depth_10_chain_cpu() {
    depth_chain(cpu(presets::insecure_n13_depth12()));
}

#[test]
fn operation_counters_count_what_runs() {
    let s = setup(cpu(presets::insecure_n10_depth3()), &[1, 2, 3]);
    let slots = s.ctx.params().max_slots();
    let top = s.ctx.params().max_level();
    let x = encrypt(&s, &random_complex(slots, 9), top);
    let pt = s.ctx.encode_at_level(&vec![0.5; slots], top).unwrap();
    let (_, k) = s.eval.counting(|| {
        let m = s.eval.mul_relin_rescale(&x, &x).unwrap(); // Mult, KS, rescale
        let _ = s.eval.mul_plain(&x, &pt).unwrap(); // CMult
        let _ = s.eval.mul_const(&x, 0.25).unwrap(); // const mult
        let _ = s.eval.rotate(&m, 1).unwrap(); // Rot, KS
        let _ = s.eval.rotate(&m, 0).unwrap(); // trivial: nothing
        let _ = s.eval.rotate_hoisted(&m, &[0, 2, 3]).unwrap(); // 2 Rot, 2 KS
        let _ = s.eval.conjugate(&m).unwrap(); // conj, KS
    });
    assert_eq!(
        (
            k.mult,
            k.cmult,
            k.const_mult,
            k.rot,
            k.conj,
            k.rescale,
            k.key_switch,
            k.bootstrap
        ),
        (1, 1, 1, 3, 1, 1, 5, 0)
    );
    // Snapshots are monotone and differences compose.
    let before = s.eval.op_counts();
    let _ = s.eval.rotate(&x, 2).unwrap();
    assert_eq!((s.eval.op_counts() - before).rot, 1);
}

#[test]
fn with_slots_reads_a_periodic_message_sparsely() {
    let s = setup(
        Context::new_cpu(presets::insecure_n10_depth3()).unwrap(),
        &[],
    );
    let full = s.ctx.params().max_slots();
    let n = full / 4;
    let z = random_complex(n, 9);
    let periodic: Vec<Complex64> = (0..full).map(|i| z[i % n]).collect();
    let ct = encrypt(&s, &periodic, 2);
    // Full → sparse: the period.
    let sparse = s.eval.with_slots(&ct, n).unwrap();
    assert_eq!(sparse.slots(), n);
    assert!(log2_err(&decrypt(&s, &sparse), &z) < -25.0);
    // Sparse → full: the periodic extension.
    let scale = s.ctx.params().scale_at(2).unwrap();
    let ct_n =
        s.sk.encrypt(&s.ctx.encode_complex(&z, 2, scale).unwrap())
            .unwrap();
    let back = s.eval.with_slots(&ct_n, full).unwrap();
    assert!(log2_err(&decrypt(&s, &back), &periodic) < -25.0);
    // A message that does not repeat reads as the average of the aliased slots.
    let w = random_complex(full, 10);
    let avg: Vec<Complex64> = (0..n)
        .map(|j| (0..full / n).map(|k| w[j + k * n]).sum::<Complex64>() / (full / n) as f64)
        .collect();
    let aliased = s.eval.with_slots(&encrypt(&s, &w, 2), n).unwrap();
    assert!(log2_err(&decrypt(&s, &aliased), &avg) < -25.0);
    assert!(matches!(
        s.eval.with_slots(&ct, 3),
        Err(CkksError::InvalidSlots { .. })
    ));
    assert!(matches!(
        s.eval.with_slots(&ct, 2 * full),
        Err(CkksError::InvalidSlots { .. })
    ));
}
