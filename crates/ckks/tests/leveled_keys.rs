//! Rotation keys generated for the lower levels only
//! (`EvaluationKeyRequest::rotations_up_to`): same results as top-level keys where they
//! apply, a clear error above their level, smaller in memory and on the wire, and the
//! bootstrapping request places its SlotsToCoeffs keys where SlotsToCoeffs runs.

use ckks::circuits::bootstrapping::{Bootstrapper, presets as boot_presets};
use ckks::he_math::galois;
use ckks::{CkksError, Complex64, Context, EvaluationKeyRequest, Evaluator, KeyGenerator, presets};
use rand::{Rng, SeedableRng, rngs::StdRng};
use std::sync::Arc;

fn max_err(a: &[Complex64], b: &[Complex64]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).norm())
        .fold(0.0, f64::max)
}

#[test]
fn low_level_rotation_keys_rotate_below_their_level_and_refuse_above() {
    let ctx = Context::new_cpu(presets::insecure_n12_depth6()).unwrap();
    let params = ctx.params().clone();
    let (top, low) = (params.max_level(), 2);
    assert!(params.digits_at(low) < params.digits_at(top));
    let mut kg = KeyGenerator::new(&ctx);
    let sk = kg.gen_secret_key().unwrap();
    let req = EvaluationKeyRequest {
        relinearization: true,
        rotations: vec![3],
        // 3 is also asked for at the top: one key, at the top level.
        rotations_up_to: vec![(1, low), (-2, low), (3, low), (1, low - 1)],
        ..Default::default()
    };
    let keys = kg.gen_evaluation_keys(&sk, &req).unwrap();
    let n = params.n();
    let el = |k: i64| galois::galois_element_for_rotation(k, n);
    let mut want = vec![(el(1), low), (el(-2), low), (el(3), top)];
    want.sort_unstable();
    assert_eq!(keys.galois_key_levels(), want);
    // Smaller than the same keys at the top level.
    let full = kg
        .gen_evaluation_keys(
            &sk,
            &EvaluationKeyRequest {
                relinearization: true,
                rotations: vec![1, -2, 3],
                ..Default::default()
            },
        )
        .unwrap();
    assert!(keys.memory_bytes(&params) < full.memory_bytes(&params));
    let ev = Evaluator::new(&ctx, Arc::new(keys));

    let slots = params.max_slots();
    let mut r = StdRng::seed_from_u64(7);
    let z: Vec<Complex64> = (0..slots)
        .map(|_| Complex64::new(r.random_range(-1.0..1.0), r.random_range(-1.0..1.0)))
        .collect();
    let enc = |level: usize| {
        let pt = ctx
            .encode_complex(&z, level, params.scale_at(level).unwrap())
            .unwrap();
        sk.encrypt(&pt).unwrap()
    };
    for level in [0, 1, low] {
        let ct = enc(level);
        for k in [1i64, -2] {
            let got = ctx
                .decode_complex(&sk.decrypt(&ev.rotate(&ct, k).unwrap()).unwrap())
                .unwrap();
            let want: Vec<Complex64> = (0..slots)
                .map(|j| z[(j as i64 + k).rem_euclid(slots as i64) as usize])
                .collect();
            let e = max_err(&got, &want).log2();
            assert!(e < -25.0, "rotation {k} at level {level}: error 2^{e:.1}");
        }
        let hoisted = ev.rotate_hoisted(&ct, &[1, -2, 3]).unwrap();
        assert_eq!(hoisted.len(), 3);
    }
    // Above its level the key is refused with the levels named, for every path.
    let high = enc(low + 1);
    let expect = |e: CkksError| {
        assert!(
            matches!(
                e,
                CkksError::KeyLevelTooLow {
                    key_level: 2,
                    level: 3
                }
            ),
            "{e}"
        );
    };
    expect(ev.rotate(&high, 1).unwrap_err());
    expect(ev.rotate_hoisted(&high, &[3, -2]).unwrap_err());
    // The top-level key still serves every level.
    ev.rotate(&enc(top), 3).unwrap();
    // A level above L cannot be asked for.
    let bad = EvaluationKeyRequest {
        rotations_up_to: vec![(1, top + 1)],
        ..Default::default()
    };
    assert!(matches!(
        kg.gen_evaluation_keys(&sk, &bad),
        Err(CkksError::LevelOutOfRange { .. })
    ));
}

#[test]
fn low_level_keys_round_trip_and_a_forged_level_is_refused() {
    let ctx = Context::new_cpu(presets::insecure_n10_depth3()).unwrap();
    let mut kg = KeyGenerator::new(&ctx);
    let sk = kg.gen_secret_key().unwrap();
    let req = EvaluationKeyRequest {
        rotations_up_to: vec![(1, 2)],
        ..Default::default()
    };
    let keys = kg.gen_evaluation_keys(&sk, &req).unwrap();
    let bytes = ctx.serialize_evaluation_keys(&keys).unwrap();
    let back = ctx.deserialize_evaluation_keys(&bytes).unwrap();
    assert_eq!(back.galois_key_levels(), keys.galois_key_levels());
    assert_eq!(ctx.serialize_evaluation_keys(&back).unwrap(), bytes);
    let mut stream = Vec::new();
    ctx.write_evaluation_keys(&keys, &mut stream).unwrap();
    let back = ctx.read_evaluation_keys(&mut stream.as_slice()).unwrap();
    assert_eq!(back.galois_key_levels(), keys.galois_key_levels());

    // The wire after the header: no relinearization key (0), one Galois key (1), its
    // element 5 (rotation by 1 at N = 2^10), its level 2. A level above L is refused.
    let at = bytes
        .windows(4)
        .position(|w| w == [0, 1, 5, 2])
        .expect("key level on the wire");
    let mut forged = bytes.clone();
    forged[at + 3] = 9;
    let err = ctx.deserialize_evaluation_keys(&forged).unwrap_err();
    assert!(
        matches!(&err, CkksError::Malformed(m) if m.contains("above the maximum")),
        "{err}"
    );
    // A level that disagrees with the key's digits and limbs is refused too.
    forged[at + 3] = 3;
    assert!(matches!(
        ctx.deserialize_evaluation_keys(&forged),
        Err(CkksError::Malformed(_))
    ));
}

#[test]
fn bootstrapping_requests_slots_to_coeffs_keys_at_their_levels() {
    let (lit, cfg) = boot_presets::insecure_n12_boot();
    let ctx = Context::new_cpu(lit).unwrap();
    let params = ctx.params().clone();
    let slots = params.max_slots();
    let (cts_at, s2c_at, output) = cfg.stage_levels(&params).unwrap();
    assert_eq!(cts_at[0], params.max_level());
    assert_eq!(s2c_at.len(), cfg.s2c_levels);
    assert!(s2c_at.iter().all(|&l| l < cts_at[cts_at.len() - 1]));
    let req = cfg.key_request(&params, slots).unwrap();
    // Every rotation the circuit performs has a key, none above the top.
    let mut asked: Vec<i64> = req
        .rotations
        .iter()
        .copied()
        .chain(req.rotations_up_to.iter().map(|&(r, _)| r))
        .collect();
    asked.sort_unstable();
    asked.dedup();
    assert_eq!(asked, cfg.rotations(&params, slots).unwrap());
    let levels = req.galois_levels(&params).unwrap();
    assert!(levels.values().any(|&l| l < params.max_level()));
    // A real bootstrap with those keys: the output level is the planned one.
    let mut kg = KeyGenerator::new(&ctx);
    let sk = kg.gen_secret_key().unwrap();
    let keys = kg.gen_evaluation_keys(&sk, &req).unwrap();
    let ev = Arc::new(Evaluator::new(&ctx, Arc::new(keys)));
    let bs = Bootstrapper::new(ev, cfg, slots).unwrap();
    assert_eq!(bs.output_level(), output);
    let x: Vec<f64> = (0..slots)
        .map(|i| ((i * 37 % 101) as f64 / 50.0) - 1.0)
        .collect();
    let ct = sk.encrypt(&ctx.encode_at_level(&x, 0).unwrap()).unwrap();
    let out = bs.bootstrap(&ct).unwrap();
    assert_eq!(out.level(), output);
    let y = ctx.decode(&sk.decrypt(&out).unwrap()).unwrap();
    let e = x
        .iter()
        .zip(&y)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max)
        .log2();
    assert!(e < -10.0, "bootstrap error 2^{e:.1}");
}
