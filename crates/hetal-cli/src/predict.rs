//! `hetal predict`: plaintext inference with a model written by `hetal train`
//! (`hetal_train::model::SavedModel`): raw features in, classes (and the accuracy when
//! labels are given) out.

use anyhow::Context as _;
use hetal_train::data::{read_features, read_labels};
use hetal_train::model::SavedModel;
use serde_json::json;
use std::path::PathBuf;

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
    /// Print one JSON object (`predictions`, `accuracy`, `samples`).
    #[arg(long)]
    json: bool,
}

/// Runs the prediction.
///
/// # Errors
/// Unreadable or mismatched model, features or labels.
pub fn run(args: &Args) -> anyhow::Result<()> {
    let model = SavedModel::load(&args.model)
        .with_context(|| format!("loading the model in {}", args.model.display()))?;
    let x = read_features(&args.features)?;
    let pred = model.predict(&x)?;
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
            json!({ "samples": pred.len(), "accuracy": accuracy, "predictions": pred })
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
