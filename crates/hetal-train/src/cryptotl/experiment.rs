//! One CryptoTL run on a dataset, end to end in one process (the two roles exchange
//! only ciphertexts and the public widths): the client's fine-tuning share, validation
//! and test features go through the server's encrypted forward pass; the client
//! decrypts and trains a softmax head in float64 ([`crate::train_float`], exact
//! softmax); the same head is trained on the network's float64 outputs and on the raw
//! features for comparison.

use super::inference::{
    DpConfig, InferenceClient, InferencePreset, InferenceServer, key_requirements, unit_shape,
};
use super::network::FrozenNetwork;
use super::pretrain::{normalize_rows, transfer_split};
use crate::data::{Dataset, HyperParams, Preprocessor, majority_rate};
use crate::error::{Result, TrainError};
use crate::softmax::ASoftmaxParams;
use crate::train::{SoftmaxKind, accuracy, rows_of, train_float};
use he_linalg::{Context, Evaluator, KeyGenerator, Matrix};
use std::sync::Arc;
use std::time::Instant;

/// Settings of [`run`].
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ExperimentConfig {
    /// CKKS preset.
    pub preset: InferencePreset,
    /// DP noise on the server's answers, if any.
    pub dp: Option<DpConfig>,
    /// The client's head training (batch, step, epochs, patience).
    pub head: HyperParams,
    /// Use at most this many of the client's fine-tuning examples (the first ones).
    pub max_client_samples: Option<usize>,
    /// Use at most this many validation and test examples each (the first ones; for
    /// smoke runs — accuracies are then on the truncated splits).
    pub max_eval_samples: Option<usize>,
    /// Seed of the head's batch order.
    pub seed: u64,
    /// Repetitions of the one-ciphertext latency measurement.
    pub latency_reps: usize,
}

/// What [`run`] measured. Times in seconds.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ExperimentReport {
    /// CKKS preset name.
    pub preset: String,
    /// Ring degree `N`.
    pub ring_degree: usize,
    /// `log2(QP)` of the parameters (bits).
    pub log_qp: f64,
    /// Network widths `(inputs, hidden, outputs)`.
    pub widths: (usize, usize, usize),
    /// Examples per ciphertext (`s1`).
    pub examples_per_ciphertext: usize,
    /// Client fine-tuning / validation / test examples sent through the network.
    pub samples: (usize, usize, usize),
    /// Secret and evaluation key generation (client).
    pub keygen_s: f64,
    /// Evaluation keys sent to the server (bytes in memory).
    pub eval_key_bytes: usize,
    /// Server setup (encoding the weights).
    pub setup_s: f64,
    /// Encrypting all examples (client).
    pub encrypt_s: f64,
    /// Forward pass of one ciphertext (median of the repetitions).
    pub forward_s: f64,
    /// All forward passes divided by the number of examples.
    pub forward_per_sample_s: f64,
    /// All forward passes.
    pub forward_total_s: f64,
    /// Decrypting all answers (client).
    pub decrypt_s: f64,
    /// Largest `|decrypted − float64|` over all outputs (noise included when DP is on).
    pub max_abs_output_diff: f64,
    /// The certified output-norm bound `R` (inputs of norm 1).
    pub output_norm_bound: f64,
    /// The largest `‖f(x)‖₂` over all examples sent (float64): how far the data stays
    /// below the worst case that the DP sensitivity must cover.
    pub observed_max_output_norm: f64,
    /// The calibrated Gaussian mechanism, when DP is on (network output units).
    pub dp: Option<super::dp::GaussianMechanism>,
    /// The factor the server scaled its answers by ([`InferenceServer::output_scale`]);
    /// decrypted outputs are divided by it before they are compared or used.
    pub output_scale: f64,
    /// Test accuracy of the head trained on the decrypted outputs.
    pub test_accuracy: f64,
    /// Validation accuracy of that head.
    pub val_accuracy: f64,
    /// Test accuracy of the head trained on the network's float64 outputs.
    pub test_accuracy_plaintext_features: f64,
    /// Test accuracy of the head trained on the raw (unit-normalised) features.
    pub test_accuracy_raw_features: f64,
    /// Fraction of the most frequent test label.
    pub majority_rate: f64,
    /// The head's epochs and steps on the decrypted outputs.
    pub head_epochs: usize,
    /// The head's steps on the decrypted outputs.
    pub head_steps: usize,
}

/// Trains the head on `(train, val)` features and returns (test accuracy, validation
/// accuracy, epochs, steps).
fn head(
    train: (&Matrix, &[usize]),
    val: (&Matrix, &[usize]),
    test: (&Matrix, &[usize]),
    classes: usize,
    cfg: &ExperimentConfig,
) -> Result<(f64, f64, usize, usize)> {
    let pre = Preprocessor::fit(train.0)?;
    let (xt, xv, xs) = (pre.apply(train.0), pre.apply(val.0), pre.apply(test.0));
    let out = train_float(
        (&xt, train.1),
        (&xv, val.1),
        classes,
        &cfg.head,
        SoftmaxKind::Exact,
        &ASoftmaxParams::default(),
        cfg.seed,
        None,
    )?;
    Ok((
        accuracy(&xs.matmul_bt(&out.w)?, test.1),
        accuracy(&xv.matmul_bt(&out.w)?, val.1),
        out.epochs,
        out.steps,
    ))
}

/// Runs CryptoTL on `data` with the server's `net` (see the module docs). The client's
/// share is the part of the training split that `net` was not trained on
/// ([`transfer_split`] with the network's provenance).
///
/// # Errors
/// [`TrainError::Config`] for a network trained on another dataset or of another
/// input width; errors of the parts.
pub fn run(
    data: &Dataset,
    name: &str,
    net: &FrozenNetwork,
    cfg: &ExperimentConfig,
) -> Result<ExperimentReport> {
    net.validate()?;
    if net.provenance.dataset != name || net.inputs() != data.train.x.cols() {
        return Err(TrainError::Config(format!(
            "network pre-trained on {:?} with {} inputs, dataset {name:?} has {}",
            net.provenance.dataset,
            net.inputs(),
            data.train.x.cols()
        )));
    }
    let (_, mut client_idx) = transfer_split(
        data.train.x.rows(),
        net.provenance.client_fraction,
        net.provenance.split_seed,
    )?;
    if let Some(m) = cfg.max_client_samples {
        client_idx.truncate(m.max(1));
    }
    let xc = rows_of(&data.train.x, &client_idx);
    let yc: Vec<usize> = client_idx.iter().map(|&i| data.train.y[i]).collect();
    let first = |x: &Matrix, y: &[usize]| -> (Matrix, Vec<usize>) {
        let n = cfg
            .max_eval_samples
            .map_or(x.rows(), |m| m.clamp(1, x.rows()));
        let idx: Vec<usize> = (0..n).collect();
        (rows_of(x, &idx), y[..n].to_vec())
    };
    let (xv, yv) = first(&data.val.x, &data.val.y);
    let (xs, ys) = first(&data.test.x, &data.test.y);
    let splits = [(&xc, &yc[..]), (&xv, &yv[..]), (&xs, &ys[..])];

    let ctx = Context::new_cpu(cfg.preset.parameters())?;
    let params = ctx.params();
    let shape = unit_shape(net, params.max_slots())?;
    let t = Instant::now();
    let mut kg = KeyGenerator::new(&ctx);
    let sk = kg.gen_secret_key()?;
    let keys = kg.gen_evaluation_keys(&sk, &key_requirements(net, shape)?.to_request())?;
    let keygen_s = t.elapsed().as_secs_f64();
    let eval_key_bytes = keys.memory_bytes(params);
    let client = InferenceClient::new(&ctx, sk, shape, net.inputs(), net.outputs())?;

    let t = Instant::now();
    let server = InferenceServer::new(Arc::new(Evaluator::new(&ctx, Arc::new(keys))), net, cfg.dp)?;
    let setup_s = t.elapsed().as_secs_f64();

    // Latency of one ciphertext (the first `s1` test examples).
    let one = rows_of(
        &data.test.x,
        &(0..shape.s1.min(data.test.x.rows())).collect::<Vec<_>>(),
    );
    let ct_one = client.encrypt(&one)?;
    let mut lat = Vec::new();
    for _ in 0..cfg.latency_reps.max(1) {
        let t = Instant::now();
        server.forward(&ct_one)?;
        lat.push(t.elapsed().as_secs_f64());
    }
    lat.sort_by(f64::total_cmp);
    let forward_s = lat[lat.len() / 2];

    let (mut encrypt_s, mut forward_total_s, mut decrypt_s) = (0.0, 0.0, 0.0);
    let mut max_abs_output_diff = 0.0f64;
    let mut enc_out = Vec::new();
    let mut plain_out = Vec::new();
    let mut n_total = 0;
    for (x, _) in splits {
        let t = Instant::now();
        let ct = client.encrypt(x)?;
        encrypt_s += t.elapsed().as_secs_f64();
        let t = Instant::now();
        let ans = server.forward(&ct)?;
        forward_total_s += t.elapsed().as_secs_f64();
        drop(ct);
        let t = Instant::now();
        let mut got = client.decrypt(&ans)?;
        for v in got.as_mut_slice() {
            *v /= server.output_scale();
        }
        decrypt_s += t.elapsed().as_secs_f64();
        let want = net.forward(&normalize_rows(x))?;
        max_abs_output_diff = max_abs_output_diff.max(got.max_abs_diff(&want)?);
        n_total += x.rows();
        enc_out.push(got);
        plain_out.push(want);
    }

    let classes = data.classes;
    let labels = [splits[0].1, splits[1].1, splits[2].1];
    let fit = |f: &[Matrix]| {
        head(
            (&f[0], labels[0]),
            (&f[1], labels[1]),
            (&f[2], labels[2]),
            classes,
            cfg,
        )
    };
    let (test_accuracy, val_accuracy, head_epochs, head_steps) = fit(&enc_out)?;
    let (test_accuracy_plaintext_features, ..) = fit(&plain_out)?;
    let raw: Vec<Matrix> = splits.iter().map(|(x, _)| normalize_rows(x)).collect();
    let (test_accuracy_raw_features, ..) = fit(&raw)?;
    Ok(ExperimentReport {
        preset: cfg.preset.name().to_string(),
        ring_degree: params.n(),
        log_qp: params.log_qp(),
        widths: (net.inputs(), net.hidden(), net.outputs()),
        examples_per_ciphertext: shape.s1,
        samples: (xc.rows(), xv.rows(), xs.rows()),
        keygen_s,
        eval_key_bytes,
        setup_s,
        encrypt_s,
        forward_s,
        forward_per_sample_s: forward_total_s / n_total as f64,
        forward_total_s,
        decrypt_s,
        max_abs_output_diff,
        output_norm_bound: net.output_norm_bound(cfg.dp.map_or(1.0, |d| d.input_norm)),
        observed_max_output_norm: plain_out
            .iter()
            .flat_map(|m| (0..m.rows()).map(move |i| m.row(i).iter().map(|v| v * v).sum::<f64>()))
            .fold(0.0f64, f64::max)
            .sqrt(),
        dp: server.dp().copied(),
        output_scale: server.output_scale(),
        test_accuracy,
        val_accuracy,
        test_accuracy_plaintext_features,
        test_accuracy_raw_features,
        majority_rate: majority_rate(&ys, classes),
        head_epochs,
        head_steps,
    })
}
