//! The client's training loop (`session::run`) over the in-process transport on the
//! insecure N = 2^12 training preset, with a checkpoint write that fails: the write
//! after step 2 cannot create its file (its directory was replaced by a plain file, a
//! failure that file permissions cannot cause for root), so the run stops with an I/O
//! error, the checkpoint of step 1 stays intact, and `resume` finishes the run — the
//! server, one step ahead of that checkpoint, answers the repeated step from its record —
//! with the weights of an uninterrupted run (up to CKKS noise: the two runs encrypt with
//! different randomness).

use he_linalg::ckks::Context;
use he_linalg::{CpuBackend, Matrix};
use hetal_train::encrypted::presets::TrainPreset;
use hetal_train::encrypted::{Client, SessionConfig};
use hetal_train::session::{self, Event, InProcess, LoopOptions, LoopOutcome, TrainData};
use hetal_train::{HyperParams, TrainError};
use rand::{Rng, SeedableRng};
use std::path::Path;

const CLASSES: usize = 3;
const FEATURES: usize = 12;
const SEED: u64 = 5;

/// Features in [-1, 1] with a bias column of ones; labels from a fixed linear rule.
fn data(rows: usize, seed: u64) -> (Matrix, Vec<usize>) {
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(seed);
    let x = Matrix::from_fn(rows, FEATURES, |_, j| {
        if j == FEATURES - 1 {
            1.0
        } else {
            rng.random_range(-1.0..1.0)
        }
    });
    let y = (0..rows)
        .map(|i| {
            (0..CLASSES)
                .max_by(|&a, &b| x.get(i, a).total_cmp(&x.get(i, b)))
                .unwrap_or(0)
        })
        .collect();
    (x, y)
}

struct Run {
    client: Client<CpuBackend>,
    transport: InProcess<CpuBackend>,
    opts: LoopOptions,
}

fn setup(dir: &Path) -> Run {
    let (lit, boot) = TrainPreset::InsecureN12.parameters();
    let ctx = Context::new_cpu(lit).unwrap();
    let hyper = HyperParams {
        batch: 64,
        learning_rate: 1.0,
        epochs: 1,
        patience: 3,
    };
    let config = SessionConfig::from_hyper(CLASSES, FEATURES, &hyper);
    let client = Client::new(ctx.clone(), boot, config).unwrap();
    let binding = session::checkpoint_binding(&client, "synthetic", SEED).unwrap();
    let server_dir = dir.join("server");
    std::fs::create_dir_all(&server_dir).unwrap();
    let transport = InProcess::new(ctx.clone(), Some(server_dir));
    let opts = LoopOptions {
        epochs: 1,
        max_steps: Some(2),
        seed: SEED,
        checkpoint: Some((dir.join("client").join("checkpoint.bin"), binding)),
        resume: false,
    };
    Run {
        client,
        transport,
        opts,
    }
}

fn run(r: &mut Run, progress: &mut dyn FnMut(&Event)) -> Result<LoopOutcome, TrainError> {
    let (xt, yt) = data(128, 1);
    let (xv, yv) = data(64, 2);
    let data = TrainData {
        train: (&xt, &yt),
        val: (&xv, &yv),
    };
    session::run(&mut r.client, &mut r.transport, data, &r.opts, progress)
}

#[test]
fn failed_checkpoint_write_resumes_to_the_uninterrupted_weights() {
    let tmp = tempfile::tempdir().unwrap();

    let mut plain = setup(&tmp.path().join("a"));
    let reference = run(&mut plain, &mut |_| {}).unwrap();
    assert_eq!((reference.steps, reference.steps_run), (2, 2));

    let dir = tmp.path().join("b");
    let mut r = setup(&dir);
    let ckpt_dir = dir.join("client");
    let aside = dir.join("client.aside");
    let mut sabotage = |e: &Event| {
        if let Event::Step { steps: 1, .. } = e {
            // After step 1's checkpoint: the directory moves aside and a plain file
            // takes its name, so the next checkpoint cannot be written.
            std::fs::rename(&ckpt_dir, &aside).unwrap();
            std::fs::write(&ckpt_dir, b"not a directory").unwrap();
        }
    };
    let err = run(&mut r, &mut sabotage).expect_err("the second checkpoint write must fail");
    assert!(
        matches!(err, TrainError::Io { .. }),
        "expected an I/O error, got {err:?}"
    );
    // The failed write left nothing behind; step 1's checkpoint is intact.
    std::fs::remove_file(&ckpt_dir).unwrap();
    std::fs::rename(&aside, &ckpt_dir).unwrap();
    let names: Vec<_> = std::fs::read_dir(&ckpt_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["checkpoint.bin"], "stray files: {names:?}");

    r.opts.resume = true;
    // A checkpoint bound to another seed is refused, and the message says so.
    let good = r.opts.checkpoint.clone();
    let path = good.clone().unwrap().0;
    let other = session::checkpoint_binding(&r.client, "synthetic", SEED + 1).unwrap();
    r.opts.checkpoint = Some((path, other));
    let e = run(&mut r, &mut |_| {}).unwrap_err().to_string();
    assert!(e.contains("seed differs"), "{e}");
    r.opts.checkpoint = good;
    let resumed = run(&mut r, &mut |_| {}).unwrap();
    // The server had applied step 2 already: the repeated request is answered from its
    // record, so the resumed run sends step 2 again but the weights move once.
    assert_eq!((resumed.steps, resumed.steps_run), (2, 1));
    assert_eq!(
        resumed.status.steps, 2,
        "the server applied the repeated step again"
    );
    let diff = resumed.last_w.max_abs_diff(&reference.last_w).unwrap();
    assert!(
        diff < 1e-3,
        "resumed weights differ from the uninterrupted run's by {diff:e}"
    );
    let moved = reference
        .last_w
        .as_slice()
        .iter()
        .fold(0.0f64, |m, v| m.max(v.abs()));
    assert!(moved > 1e-2, "the weights did not move ({moved:e})");
}
