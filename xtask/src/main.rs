//! `cargo xtask`: project automation (benchmarks, reproduction runs).
//!
//! Commands:
//! - `bench-ntt [--json] [--log-n 16] [--reps 101]`: forward/inverse NTT and pointwise
//!   product timings for every compiled NTT engine at 42-, 50- and 60-bit primes.

mod bench_ntt;

use clap::{Parser, Subcommand};

/// Project automation for the hetal-rs workspace.
#[derive(Parser)]
#[command(
    name = "xtask",
    about = "Benchmarks and reproduction runs for hetal-rs"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Time the negacyclic NTT engines (one limb, N = 2^log_n) and the pointwise product.
    BenchNtt(bench_ntt::Args),
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::BenchNtt(args) => bench_ntt::run(&args),
    };
    if let Err(e) = result {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
