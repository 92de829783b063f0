//! `hetal predict`: inference with a model written by `hetal train`
//! (`hetal_train::model::SavedModel`): raw features in, classes (and the accuracy when
//! labels are given) out. In plaintext by default; with `--server`, encrypted: the
//! client encrypts the model afresh and the features under the training session's
//! secret key (`--model/client/`), the server computes the logits on ciphertexts, the
//! client decrypts them.

use crate::http::HttpTransport;
use crate::train::{SESSION_LINK_FILE, SessionLink};
use anyhow::Context as _;
use he_linalg::Matrix;
use he_linalg::ckks::Context;
use hetal_train::data::{read_features, read_labels};
use hetal_train::encrypted::Client;
use hetal_train::encrypted::presets::TrainPreset;
use hetal_train::model::SavedModel;
use hetal_train::session::{self, Transport as _};
use hetal_train::train::predicted_classes;
use serde_json::json;
use std::path::PathBuf;
use std::time::Duration;

/// Arguments of `hetal predict`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The model directory (`weights.npy`, `model.json`).
    #[arg(long)]
    model: PathBuf,
    /// Raw features, `n × d` float32/64 `.npy`.
    #[arg(long)]
    features: PathBuf,
    /// Labels, `n` integers `.npy`: report the accuracy.
    #[arg(long)]
    labels: Option<PathBuf>,
    /// Print one JSON object (`predictions`, `accuracy`, `samples`, `encrypted`).
    #[arg(long)]
    json: bool,
    /// Infer on ciphertexts at this server (the training session's server).
    #[arg(long)]
    server: Option<String>,
    /// PEM certificate (authority) of an `https://` server.
    #[arg(long)]
    ca: Option<PathBuf>,
}

/// Logits computed by the server on encrypted features and an encrypted model.
fn encrypted_logits(
    args: &Args,
    url: &str,
    model: &SavedModel,
    x: &Matrix,
) -> anyhow::Result<Matrix> {
    let dir = args.model.join("client");
    let link: SessionLink = serde_json::from_slice(
        &std::fs::read(dir.join(SESSION_LINK_FILE))
            .with_context(|| format!("{}: not a model trained here", dir.display()))?,
    )?;
    let preset = TrainPreset::from_name(&link.preset)?;
    let (lit, boot) = preset.parameters();
    let ctx = Context::new_cpu(lit)?;
    let sk = session::load_secret_key(&ctx, &dir)?
        .with_context(|| format!("no secret key in {}", dir.display()))?;
    let client = Client::with_secret_key(ctx.clone(), sk, boot, link.config)?;
    let mut t = HttpTransport::new(url, args.ca.as_deref(), ctx, Duration::from_secs(60))?;
    t.attach(&link.session, &mut || {
        Err(hetal_train::TrainError::Transport(
            "the session is on the server".into(),
        ))
    })?;
    let w = client.encrypt_model(&model.weights, model.meta.epoch)?;
    let f = client.encrypt_features(&model.preprocessor().apply(x))?;
    Ok(client.decrypt_logits(&t.infer(&w, &f)?)?)
}

/// Runs the prediction.
///
/// # Errors
/// Unreadable or mismatched model, features or labels.
pub fn run(args: &Args) -> anyhow::Result<()> {
    let model = SavedModel::load(&args.model)
        .with_context(|| format!("loading the model in {}", args.model.display()))?;
    let x = read_features(&args.features)?;
    let pred = match &args.server {
        None => model.predict(&x)?,
        Some(url) => predicted_classes(&encrypted_logits(args, url, &model, &x)?),
    };
    let accuracy = match &args.labels {
        Some(p) => {
            let y = read_labels(p, model.meta.classes)?;
            anyhow::ensure!(
                y.len() == pred.len(),
                "{} labels for {} samples",
                y.len(),
                pred.len()
            );
            let hits = pred.iter().zip(&y).filter(|(a, b)| a == b).count();
            Some(hits as f64 / y.len().max(1) as f64)
        }
        None => None,
    };
    if args.json {
        println!(
            "{}",
            json!({ "samples": pred.len(), "accuracy": accuracy, "encrypted": args.server.is_some(),
                    "predictions": pred })
        );
    } else {
        for p in &pred {
            println!("{p}");
        }
        if let Some(a) = accuracy {
            eprintln!("accuracy {a:.4} on {} samples", pred.len());
        }
    }
    Ok(())
}
