//! Structured fuzzing of `hetal-train`'s decoders: the protocol messages, the streamed
//! setup's header, and the sealed files of `store` — valid encodings mutated by
//! proptest (flips, overwrites, truncation, insertion, appended bytes) must give a value
//! or an error, never a panic. 1 000 cases per encoding in `cargo test`; more with
//! `PROPTEST_CASES` (docs/results/hardening.md).

use he_linalg::Matrix;
use he_linalg::ckks::{Context, he_math::CpuBackend};
use hetal_train::encrypted::{
    Client, EncryptedBatch, EncryptedModel, SessionConfig, SetupHeader, presets,
};
use hetal_train::softmax::ASoftmaxParams;
use hetal_train::store;
use proptest::prelude::*;
use std::sync::{Arc, OnceLock};

struct Fixture {
    ctx: Arc<Context<CpuBackend>>,
    encodings: Vec<(&'static str, Vec<u8>)>,
}

fn binding() -> store::Binding {
    store::Binding::new(&[("purpose", b"fuzz"), ("seed", &[7; 8])])
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let (lit, boot) = presets::insecure_n12_train();
        let ctx = Context::new_cpu(lit.clone()).unwrap();
        let config = SessionConfig {
            classes: 3,
            features: 9,
            batch: 16,
            learning_rate: 0.5,
            patience: 1,
            softmax: ASoftmaxParams::default(),
            weight_bound: 4.0,
        };
        let client = Client::new(ctx.clone(), boot.clone(), config.clone()).unwrap();
        let x = Matrix::from_fn(4, 9, |i, j| ((i * 9 + j) as f64 * 0.1).sin());
        let batch = client.encrypt_batch(&x, &[0, 1, 2, 1]).unwrap();
        let model = client.initial_model().unwrap();
        let header = postcard::to_allocvec(&SetupHeader {
            parameters: lit,
            bootstrapping: boot,
            config,
        })
        .unwrap();
        let mut stream = b"HETALSS1".to_vec();
        stream.extend((header.len() as u64).to_le_bytes());
        stream.extend(header);
        let sealed = store::seal(b"HETALTS1", &binding(), b"some payload of a checkpoint");
        let encodings = vec![
            ("batch", batch.to_bytes(&ctx).unwrap()),
            ("model", model.to_bytes(&ctx).unwrap()),
            ("setup header", stream),
            ("sealed file", sealed),
        ];
        Fixture { ctx, encodings }
    })
}

fn decode(f: &Fixture, which: usize, bytes: &[u8]) -> bool {
    match which {
        0 => EncryptedBatch::from_bytes(&f.ctx, bytes).is_ok(),
        1 => EncryptedModel::from_bytes(&f.ctx, bytes).is_ok(),
        2 => SetupHeader::read_from(&mut &bytes[..]).is_ok(),
        _ => store::unseal(std::path::Path::new("fuzz"), b"HETALTS1", &binding(), bytes).is_ok(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn mutated_messages_never_panic(
        which in 0usize..4,
        ops in prop::collection::vec((0u8..4, any::<usize>(), 1u8..=255, prop::collection::vec(any::<u8>(), 1..12)), 1..4),
    ) {
        let f = fixture();
        let mut bytes = f.encodings[which].1.clone();
        for (kind, pos, b, extra) in &ops {
            let n = bytes.len().max(1);
            match kind {
                0 => if !bytes.is_empty() { bytes[pos % n] ^= b },
                1 => bytes.truncate(pos % n),
                2 => { let at = pos % (bytes.len() + 1); bytes.splice(at..at, extra.iter().copied()); }
                _ => bytes.extend_from_slice(extra),
            }
        }
        let ok = decode(f, which, &bytes);
        // A sealed file detects every change.
        if which == 3 && bytes != f.encodings[3].1 {
            prop_assert!(!ok);
        }
    }
}

#[test]
fn valid_messages_decode_and_trailing_bytes_are_refused() {
    let f = fixture();
    for (which, (name, bytes)) in f.encodings.iter().enumerate() {
        assert!(decode(f, which, bytes), "{name}");
        let mut longer = bytes.clone();
        longer.push(1);
        if which != 2 {
            // (The setup header is followed by the keys in its stream.)
            assert!(!decode(f, which, &longer), "{name}: trailing byte accepted");
        }
    }
}
