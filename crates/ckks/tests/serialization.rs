//! Serialization round trips and validation of malformed input.

use ckks::{
    CkksError, Complex64, Context, EvaluationKeyRequest, Evaluator, KeyGenerator, Parameters,
    PublicKey, SecretKey, presets,
};
use std::sync::Arc;

fn max_err(a: &[Complex64], b: &[Complex64]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).norm())
        .fold(0.0, f64::max)
}

#[test]
fn round_trips() {
    let ctx = Context::new_cpu(presets::insecure_n10_depth3()).unwrap();
    let p = ctx.params().clone();
    let mut kg = KeyGenerator::new(&ctx);
    let sk = kg.gen_secret_key().unwrap();
    let req = EvaluationKeyRequest {
        relinearization: true,
        rotations: vec![1, -3],
        conjugation: true,
        encapsulation: None,
        rotations_up_to: Vec::new(),
    };
    let keys = kg.gen_evaluation_keys(&sk, &req).unwrap();
    let z: Vec<Complex64> = (0..p.max_slots())
        .map(|i| Complex64::new((i as f64 * 0.37).sin(), (i as f64 * 0.11).cos()))
        .collect();
    let top = p.max_level();
    let pt = ctx
        .encode_complex(&z, top, p.scale_at(top).unwrap())
        .unwrap();

    // Parameters.
    let pb = p.to_bytes().unwrap();
    assert_eq!(&Parameters::from_bytes(&pb).unwrap(), p.as_ref());

    // Plaintext.
    let pt2 = ctx
        .deserialize_plaintext(&ctx.serialize_plaintext(&pt).unwrap())
        .unwrap();
    assert!(max_err(&ctx.decode_complex(&pt2).unwrap(), &z) < 1e-9);

    // Full and compact ciphertexts.
    let ct = sk.encrypt(&pt).unwrap();
    let full = ctx.serialize_ciphertext(&ct).unwrap();
    let compact = sk.encrypt_compact(&pt).unwrap();
    assert!(
        compact.len() * 10 < full.len() * 6,
        "compact form not smaller"
    );
    for bytes in [&full, &compact] {
        let c = ctx.deserialize_ciphertext(bytes).unwrap();
        assert_eq!(c.level(), top);
        let d = ctx.decode_complex(&sk.decrypt(&c).unwrap()).unwrap();
        assert!(max_err(&d, &z) < 1e-6);
    }

    // Evaluation keys: a server restored from bytes computes the same thing.
    let kb = ctx.serialize_evaluation_keys(&keys).unwrap();
    let keys2 = ctx.deserialize_evaluation_keys(&kb).unwrap();
    assert_eq!(keys2.galois_elements(), keys.galois_elements());
    let ev = Evaluator::new(&ctx, Arc::new(keys2));
    let r = ev
        .rotate(&ev.mul_relin_rescale(&ct, &ct).unwrap(), -3)
        .unwrap();
    let n = z.len() as i64;
    let want: Vec<Complex64> = (0..n)
        .map(|j| z[(j - 3).rem_euclid(n) as usize] * z[(j - 3).rem_euclid(n) as usize])
        .collect();
    let got = ctx.decode_complex(&sk.decrypt(&r).unwrap()).unwrap();
    assert!(max_err(&got, &want) < 1e-5);

    // Public and secret keys.
    let pk = kg.gen_public_key(&sk).unwrap();
    let pk2 = PublicKey::from_bytes(&ctx, &pk.to_bytes().unwrap()).unwrap();
    let sk2 = SecretKey::from_bytes(&ctx, &sk.to_bytes().unwrap()).unwrap();
    let c = pk2.encrypt(&pt).unwrap();
    let d = ctx.decode_complex(&sk2.decrypt(&c).unwrap()).unwrap();
    assert!(max_err(&d, &z) < 1e-5);
}

#[test]
fn malformed_input_is_refused() {
    let ctx = Context::new_cpu(presets::insecure_n10_depth3()).unwrap();
    let p = ctx.params().clone();
    let mut kg = KeyGenerator::new(&ctx);
    let sk = kg.gen_secret_key().unwrap();
    let pt = ctx.encode_at_level(&[0.5; 16], 2).unwrap();
    let ct = sk.encrypt(&pt).unwrap();
    let bytes = ctx.serialize_ciphertext(&ct).unwrap();

    // Truncated and garbage bytes.
    for bad in [
        &bytes[..bytes.len() / 2],
        &bytes[..3],
        &[0xff; 64][..],
        &[][..],
    ] {
        assert!(matches!(
            ctx.deserialize_ciphertext(bad),
            Err(CkksError::Malformed(_))
        ));
    }
    // Other parameters.
    let other = Context::new_cpu(presets::insecure_n12_depth6()).unwrap();
    assert!(matches!(
        other.deserialize_ciphertext(&bytes),
        Err(CkksError::ParameterMismatch(_))
    ));
    // A residue at or above its modulus: build a ciphertext whose first residue is q_0.
    let q0 = p.q()[0];
    let mut parts: Vec<Vec<u64>> = vec![vec![0u64; 3 * p.n()]; 2];
    parts[0][0] = q0;
    let forged = forge_ciphertext(&ctx, 2, parts);
    assert!(matches!(
        ctx.deserialize_ciphertext(&forged),
        Err(CkksError::Malformed(_))
    ));
    // Wrong limb count for the level.
    let forged = forge_ciphertext(&ctx, 2, vec![vec![0u64; 2 * p.n()]; 2]);
    assert!(matches!(
        ctx.deserialize_ciphertext(&forged),
        Err(CkksError::Malformed(_))
    ));
    // Level above L.
    let forged = forge_ciphertext(&ctx, 9, vec![vec![0u64; 10 * p.n()]; 2]);
    assert!(matches!(
        ctx.deserialize_ciphertext(&forged),
        Err(CkksError::Malformed(_))
    ));
    // One part only.
    let forged = forge_ciphertext(&ctx, 2, vec![vec![0u64; 3 * p.n()]]);
    assert!(matches!(
        ctx.deserialize_ciphertext(&forged),
        Err(CkksError::Malformed(_))
    ));
    // Malformed keys and parameters.
    assert!(ctx.deserialize_evaluation_keys(&bytes).is_err());
    assert!(SecretKey::from_bytes(&ctx, &bytes[..10]).is_err());
    assert!(matches!(
        Parameters::from_bytes(&[1, 2, 3]),
        Err(CkksError::Malformed(_))
    ));
}

/// Encodes a "Full" ciphertext by hand in the documented postcard layout, using a real
/// serialization as the template for the header (version, fingerprint).
fn forge_ciphertext(
    ctx: &Arc<Context<ckks::he_math::CpuBackend>>,
    level: u32,
    parts: Vec<Vec<u64>>,
) -> Vec<u8> {
    #[derive(serde::Serialize)]
    struct Header {
        version: u16,
        fingerprint: u64,
    }
    #[derive(serde::Serialize)]
    struct Meta {
        level: u32,
        scale: f64,
        slots: u32,
    }
    #[derive(serde::Serialize)]
    enum Wire {
        Full {
            header: Header,
            meta: Meta,
            parts: Vec<Vec<u64>>,
        },
    }
    // Take version and fingerprint from a genuine encoding: enum tag (1 byte), then the
    // varint u16 version and the varint u64 fingerprint.
    let mut kg = KeyGenerator::new(ctx);
    let sk = kg.gen_secret_key().unwrap();
    let real = ctx
        .serialize_ciphertext(
            &sk.encrypt(&ctx.encode_at_level(&[0.0; 2], 0).unwrap())
                .unwrap(),
        )
        .unwrap();
    let (version, rest): (u16, &[u8]) = postcard::take_from_bytes(&real[1..]).unwrap();
    let (fingerprint, _): (u64, &[u8]) = postcard::take_from_bytes(rest).unwrap();
    postcard::to_allocvec(&Wire::Full {
        header: Header {
            version,
            fingerprint,
        },
        meta: Meta {
            level,
            scale: 2f64.powi(40),
            slots: 16,
        },
        parts,
    })
    .unwrap()
}

#[test]
fn encapsulation_keys_round_trip() {
    let ctx = ckks::Context::new_cpu(ckks::presets::insecure_n10_depth3()).unwrap();
    let mut kg = ckks::KeyGenerator::new(&ctx).with_key_storage(ckks::KeyStorage::Expanded);
    let sk = kg.gen_secret_key().unwrap();
    let req = ckks::EvaluationKeyRequest {
        relinearization: true,
        rotations: vec![1],
        conjugation: false,
        encapsulation: Some(16),
        rotations_up_to: Vec::new(),
    };
    let keys = kg.gen_evaluation_keys(&sk, &req).unwrap();
    assert_eq!(keys.encapsulation_keys().unwrap().hamming_weight(), 16);
    assert_eq!(keys.num_keys(), 4);
    let bytes = ctx.serialize_evaluation_keys(&keys).unwrap();
    let back = ctx
        .deserialize_evaluation_keys_with(&bytes, ckks::KeyStorage::Expanded)
        .unwrap();
    assert_eq!(ctx.serialize_evaluation_keys(&back).unwrap(), bytes);
    assert_eq!(
        back.memory_bytes(ctx.params()),
        keys.memory_bytes(ctx.params())
    );
    // Corrupting a byte in the trailing encapsulation key is caught.
    let mut bad = bytes.clone();
    let last = bad.len() - 1;
    bad[last] = 0xff;
    assert!(ctx.deserialize_evaluation_keys(&bad).is_err());
    assert!(
        ctx.deserialize_evaluation_keys(&bytes[..bytes.len() - 9])
            .is_err()
    );
}

#[test]
fn streamed_keys_round_trip_and_refuse_damage() {
    let ctx = ckks::Context::new_cpu(ckks::presets::insecure_n10_depth3()).unwrap();
    let mut kg = ckks::KeyGenerator::new(&ctx);
    let sk = kg.gen_secret_key().unwrap();
    let req = ckks::EvaluationKeyRequest {
        relinearization: true,
        rotations: vec![1, -2],
        conjugation: true,
        encapsulation: Some(16),
        rotations_up_to: Vec::new(),
    };
    let keys = kg.gen_evaluation_keys(&sk, &req).unwrap();
    let mut stream = Vec::new();
    let n = ctx.write_evaluation_keys(&keys, &mut stream).unwrap();
    assert_eq!(n as usize, stream.len());
    let back = ctx.read_evaluation_keys(&mut stream.as_slice()).unwrap();
    // Same keys: the byte form of both sets is identical.
    assert_eq!(
        ctx.serialize_evaluation_keys(&back).unwrap(),
        ctx.serialize_evaluation_keys(&keys).unwrap()
    );
    // Every truncation is an error, never a panic.
    for cut in (0..stream.len()).step_by(997) {
        assert!(ctx.read_evaluation_keys(&mut &stream[..cut]).is_err());
    }
    // A trailing byte is refused.
    let mut longer = stream.clone();
    longer.push(0);
    assert!(matches!(
        ctx.read_evaluation_keys(&mut longer.as_slice()),
        Err(CkksError::Malformed(_))
    ));
    // A forged frame length far above the parameters' bound is refused before reading.
    let mut forged = stream.clone();
    let header_len = u64::from_le_bytes(forged[8..16].try_into().unwrap()) as usize;
    let first_key = 16 + header_len;
    forged[first_key..first_key + 8].copy_from_slice(&(u64::MAX / 2).to_le_bytes());
    let err = ctx
        .read_evaluation_keys(&mut forged.as_slice())
        .unwrap_err();
    assert!(format!("{err}").contains("frame of"), "{err}");
    // Keys streamed under other parameters are refused.
    let other = ckks::Context::new_cpu(ckks::presets::insecure_n12_depth6()).unwrap();
    assert!(matches!(
        other.read_evaluation_keys(&mut stream.as_slice()),
        Err(CkksError::ParameterMismatch(_))
    ));
}

/// Keys that keep only the seed of their uniform parts (`KeyStorage::Seeded`) switch
/// keys bit for bit like expanded ones, at every level, take half the memory, and
/// serialize to the same bytes; the storage converts both ways.
#[test]
fn seeded_keys_switch_like_expanded_keys() {
    use ckks::KeyStorage;
    use ckks::he_math::Csprng;
    let ctx = Context::new_cpu(presets::insecure_n12_depth6()).unwrap();
    let p = ctx.params().clone();
    let req = EvaluationKeyRequest {
        relinearization: true,
        rotations: vec![1, -3],
        conjugation: true,
        encapsulation: None,
        rotations_up_to: vec![(5, 2)],
    };
    let gen_keys = |storage| {
        let mut kg =
            KeyGenerator::with_rng(&ctx, Csprng::from_seed([9; 32])).with_key_storage(storage);
        let sk = kg.gen_secret_key().unwrap();
        (kg.gen_evaluation_keys(&sk, &req).unwrap(), sk)
    };
    let (expanded, sk) = gen_keys(KeyStorage::Expanded);
    let (seeded, _) = gen_keys(KeyStorage::Seeded);
    let bytes = ctx.serialize_evaluation_keys(&expanded).unwrap();
    assert_eq!(ctx.serialize_evaluation_keys(&seeded).unwrap(), bytes);
    assert_eq!(
        2 * seeded.memory_bytes(&p),
        expanded.memory_bytes(&p),
        "half the memory"
    );
    let loaded = ctx
        .deserialize_evaluation_keys_with(&bytes, KeyStorage::Seeded)
        .unwrap();
    // A loaded set keeps its relinearization key's `a_j` (top level: the digits of `L`
    // over `Q_L ∪ P`).
    let relin_a = p.digits_at(p.max_level()) * (p.max_level() + 1 + p.p_basis().len()) * p.n() * 8;
    assert_eq!(loaded.memory_bytes(&p), seeded.memory_bytes(&p) + relin_a);

    let z: Vec<Complex64> = (0..p.max_slots())
        .map(|i| Complex64::new((i as f64 * 0.37).sin(), (i as f64 * 0.11).cos()))
        .collect();
    let evs = [
        Evaluator::new(&ctx, Arc::new(expanded)),
        Evaluator::new(&ctx, Arc::new(seeded)),
        Evaluator::new(&ctx, Arc::new(loaded)),
    ];
    for level in [p.max_level(), 2] {
        let ct = sk
            .encrypt(
                &ctx.encode_complex(&z, level, p.scale_at(level).unwrap())
                    .unwrap(),
            )
            .unwrap();
        let outputs = |ev: &Evaluator<_>| {
            let mut v = vec![
                ev.rotate(&ct, 1).unwrap(),
                ev.rotate(&ct, -3).unwrap(),
                ev.conjugate(&ct).unwrap(),
                ev.mul_relin(&ct, &ct).unwrap(),
            ];
            if level <= 2 {
                v.push(ev.rotate(&ct, 5).unwrap());
            }
            v.iter()
                .map(|c| ctx.serialize_ciphertext(c).unwrap())
                .collect::<Vec<_>>()
        };
        let want = outputs(&evs[0]);
        assert_eq!(outputs(&evs[1]), want, "generated seeded, level {level}");
        assert_eq!(outputs(&evs[2]), want, "loaded seeded, level {level}");
        // And the rotation is right.
        let got = ctx
            .decode_complex(&sk.decrypt(&evs[1].rotate(&ct, 1).unwrap()).unwrap())
            .unwrap();
        let rotated: Vec<Complex64> = (0..z.len()).map(|i| z[(i + 1) % z.len()]).collect();
        assert!(max_err(&got, &rotated) < 1e-4, "level {level}");
    }

    // Seeded → expanded → seeded.
    let mut keys = ctx
        .deserialize_evaluation_keys_with(&bytes, KeyStorage::Seeded)
        .unwrap();
    keys.set_key_storage(&ctx, KeyStorage::Expanded).unwrap();
    assert_eq!(keys.memory_bytes(&p), 2 * evs[1].keys().memory_bytes(&p));
    assert_eq!(ctx.serialize_evaluation_keys(&keys).unwrap(), bytes);
    keys.set_key_storage(&ctx, KeyStorage::Seeded).unwrap();
    assert_eq!(keys.memory_bytes(&p), evs[2].keys().memory_bytes(&p));
}
