//! Structured fuzzing of every `ckks` decoder: valid encodings (at N = 2^10) mutated by
//! proptest — byte flips and overwrites, truncation, insertion, appended bytes, forged
//! lengths — must decode to a value or an error, never a panic, a hang or an
//! allocation beyond what the input and the parameters bound. 2 000 cases per
//! encoding in `cargo test`; `PROPTEST_CASES=200000 cargo test --release -p ckks --test
//! fuzz` is the longer run (docs/results/hardening.md).
//!
//! A mutation that keeps every field valid (a residue that stays below its modulus, a
//! scale that stays finite) decodes: integrity is not the encoding's job (TLS on the
//! wire, `hetal_train::store`'s SHA-256 seal on disk).

use ckks::he_math::CpuBackend;
use ckks::{Context, EvaluationKeyRequest, KeyGenerator, Parameters, SecretKey, presets};
use proptest::prelude::*;
use std::sync::{Arc, OnceLock};

struct Fixture {
    ctx: Arc<Context<CpuBackend>>,
    /// (name, valid encoding)
    encodings: Vec<(&'static str, Vec<u8>)>,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let ctx = Context::new_cpu(presets::insecure_n10_depth3()).unwrap();
        let mut kg = KeyGenerator::new(&ctx);
        let sk = kg.gen_secret_key().unwrap();
        let pk = kg.gen_public_key(&sk).unwrap();
        let keys = kg
            .gen_evaluation_keys(
                &sk,
                &EvaluationKeyRequest {
                    relinearization: true,
                    rotations: vec![1],
                    conjugation: false,
                    encapsulation: Some(16),
                    rotations_up_to: Vec::new(),
                },
            )
            .unwrap();
        let pt = ctx.encode_at_level(&[0.25; 8], 2).unwrap();
        let ct = sk.encrypt(&pt).unwrap();
        let mut streamed = Vec::new();
        ctx.write_evaluation_keys(&keys, &mut streamed).unwrap();
        let encodings = vec![
            ("ciphertext", ctx.serialize_ciphertext(&ct).unwrap()),
            ("compact ciphertext", sk.encrypt_compact(&pt).unwrap()),
            ("plaintext", ctx.serialize_plaintext(&pt).unwrap()),
            (
                "evaluation keys",
                ctx.serialize_evaluation_keys(&keys).unwrap(),
            ),
            ("streamed evaluation keys", streamed),
            ("public key", pk.to_bytes().unwrap()),
            ("secret key", sk.to_bytes().unwrap().to_vec()),
            ("parameters", ctx.params().to_bytes().unwrap()),
        ];
        Fixture { ctx, encodings }
    })
}

/// Decodes `bytes` as encoding `which`; `Ok(())` whether it decoded or was refused.
fn decode(f: &Fixture, which: usize, bytes: &[u8]) {
    let ctx = &f.ctx;
    let _ = match which {
        0 | 1 => ctx.deserialize_ciphertext(bytes).map(drop),
        2 => ctx.deserialize_plaintext(bytes).map(drop),
        3 => ctx.deserialize_evaluation_keys(bytes).map(drop),
        4 => ctx.read_evaluation_keys(&mut &bytes[..]).map(drop),
        5 => ckks::PublicKey::from_bytes(ctx, bytes).map(drop),
        6 => SecretKey::from_bytes(ctx, bytes).map(drop),
        _ => Parameters::from_bytes(bytes).map(drop),
    };
}

/// One mutation of a byte string.
#[derive(Debug, Clone)]
enum Mutation {
    Flip(usize, u8),
    Set(usize, u8),
    Truncate(usize),
    Insert(usize, Vec<u8>),
    Append(Vec<u8>),
    /// Overwrite 8 bytes with a large little-endian length-like value.
    Forge(usize, u64),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        4 => (any::<usize>(), 1u8..=255).prop_map(|(p, b)| Mutation::Flip(p, b)),
        2 => (any::<usize>(), any::<u8>()).prop_map(|(p, b)| Mutation::Set(p, b)),
        2 => any::<usize>().prop_map(Mutation::Truncate),
        1 => (any::<usize>(), prop::collection::vec(any::<u8>(), 1..16))
            .prop_map(|(p, v)| Mutation::Insert(p, v)),
        1 => prop::collection::vec(any::<u8>(), 1..16).prop_map(Mutation::Append),
        1 => (any::<usize>(), prop_oneof![Just(u64::MAX), Just(1u64 << 40), any::<u64>()])
            .prop_map(|(p, v)| Mutation::Forge(p, v)),
    ]
}

fn apply(bytes: &mut Vec<u8>, m: &Mutation) {
    let n = bytes.len().max(1);
    match m {
        Mutation::Flip(p, b) => {
            if !bytes.is_empty() {
                bytes[p % n] ^= b;
            }
        }
        Mutation::Set(p, b) => {
            if !bytes.is_empty() {
                bytes[p % n] = *b;
            }
        }
        Mutation::Truncate(p) => bytes.truncate(p % n),
        Mutation::Insert(p, v) => {
            let at = p % (bytes.len() + 1);
            bytes.splice(at..at, v.iter().copied());
        }
        Mutation::Append(v) => bytes.extend_from_slice(v),
        Mutation::Forge(p, v) => {
            if bytes.len() >= 8 {
                let at = p % (bytes.len() - 7);
                bytes[at..at + 8].copy_from_slice(&v.to_le_bytes());
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn mutated_encodings_never_panic(
        which in 0usize..8,
        mutations in prop::collection::vec(mutation(), 1..4),
    ) {
        let f = fixture();
        let mut bytes = f.encodings[which].1.clone();
        for m in &mutations {
            apply(&mut bytes, m);
        }
        decode(f, which, &bytes);
    }
}

#[test]
fn valid_encodings_decode_and_appended_bytes_are_refused() {
    let f = fixture();
    for (which, (name, bytes)) in f.encodings.iter().enumerate() {
        let ok = match which {
            0 | 1 => f.ctx.deserialize_ciphertext(bytes).is_ok(),
            2 => f.ctx.deserialize_plaintext(bytes).is_ok(),
            3 => f.ctx.deserialize_evaluation_keys(bytes).is_ok(),
            4 => f.ctx.read_evaluation_keys(&mut &bytes[..]).is_ok(),
            5 => ckks::PublicKey::from_bytes(&f.ctx, bytes).is_ok(),
            6 => SecretKey::from_bytes(&f.ctx, bytes).is_ok(),
            _ => Parameters::from_bytes(bytes).is_ok(),
        };
        assert!(ok, "{name}: the valid encoding does not decode");
        let mut longer = bytes.clone();
        longer.push(0);
        let refused = match which {
            0 | 1 => f.ctx.deserialize_ciphertext(&longer).is_err(),
            2 => f.ctx.deserialize_plaintext(&longer).is_err(),
            3 => f.ctx.deserialize_evaluation_keys(&longer).is_err(),
            4 => f.ctx.read_evaluation_keys(&mut &longer[..]).is_err(),
            5 => ckks::PublicKey::from_bytes(&f.ctx, &longer).is_err(),
            6 => SecretKey::from_bytes(&f.ctx, &longer).is_err(),
            _ => Parameters::from_bytes(&longer).is_err(),
        };
        assert!(refused, "{name}: a trailing byte is accepted");
    }
}
