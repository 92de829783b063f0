//! `hetal`: encrypted fine-tuning (HETAL, Lee et al., ICML 2023) with the client and the
//! server as separate processes.
//!
//! - `hetal serve --listen ADDR --state-dir DIR [--allow-insecure]`: the server. It
//!   holds evaluation keys only, keeps every session's keys and state under `DIR` so a
//!   restarted server continues where it stopped, and bounds what it accepts.
//! - `hetal train --server URL (--dataset NAME | --data-dir DIR) --out DIR …`: the
//!   client. Generates the keys, uploads the evaluation keys (streamed), sends encrypted
//!   batches, decides early stopping, decrypts the candidates, keeps the best, writes
//!   the model to `--out`; `--resume` continues a killed client.
//! - `hetal predict --model DIR --features F.npy [--labels L.npy]`: plaintext inference
//!   with a saved model.
//!
//! The wire protocol is HTTP/2 with binary bodies, in cleartext (prior knowledge) or
//! over TLS (`--tls-cert/--tls-key` on the server, `https://` and `--ca` on the
//! client); see [`serve`] for the routes.

mod http;
mod predict;
mod serve;
mod train;

use clap::{Parser, Subcommand};

/// mimalloc, configured by [`he_math::allocator::configure`] to keep freed polynomial
/// buffers mapped for reuse (see that module for why).
#[global_allocator]
static GLOBAL: he_math::allocator::MiMalloc = he_math::allocator::MiMalloc;

/// Encrypted transfer learning after HETAL: server, client, inference.
#[derive(Parser)]
#[command(name = "hetal", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the training server (evaluation keys only; it cannot decrypt).
    Serve(serve::Args),
    /// Train a classifier on encrypted features against a server.
    Train(train::Args),
    /// Predict with a saved model (plaintext).
    Predict(predict::Args),
}

fn main() {
    he_math::allocator::configure();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    // rustls' process-wide crypto provider (ring) for the server and the client; an
    // error means one is installed already.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(a) => serve::run(&a),
        Command::Train(a) => train::run(&a),
        Command::Predict(a) => predict::run(&a),
    };
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
