//! `cargo xtask`: project automation (benchmarks, reproduction runs).
//!
//! Commands:
//! - `bench-ntt [--json] [--log-n 16] [--reps 101]`: forward/inverse NTT and pointwise
//!   product timings for every compiled NTT engine at 42-, 50- and 60-bit primes.
//! - `bench-ckks [--json] [--preset n16] [--reps 5] [--levels L,U,U/2]`: CKKS operation
//!   timings and precision (keygen, encrypt, decrypt, add, cmult, mult, rescale, rotate,
//!   conjugate, hoisted rotations).
//! - `bench-bootstrap [--json] [--preset n16] [--slots 32768,8192] [--reps 3] [--chain 10]`:
//!   bootstrapping key generation, per-stage timings, precision, key size and peak memory.
//! - `bench-matmul [--json] [--preset n16] [--shapes AxBxC,…] [--reps 3] [--quick] [--no-doc]`:
//!   DiagABT/DiagATB against ColMajor/RowMajor and Jin et al. on HETAL's five shapes;
//!   writes docs/results/matmul.md.
//! - `reproduce --dataset dermamnist [--mode plain|simulated|encrypted] [--algorithm
//!   hetal|chiang] [--preset n16]
//!   [--batch B] [--epochs E] [--max-steps S] [--seed] [--out-dir] [--key-cache DIR]
//!   [--resume] [--json]`: HETAL's training protocol on real features.
//! - `ablate --dataset NAME [--encrypted-report FILE] [--json]`: algorithm (HETAL /
//!   Chiang) × activation × early stopping in float64, test accuracy, projected
//!   encrypted time; one table per dataset.
//! - `cryptotl-pretrain --dataset snips [--out FILE] [--json]`: the CryptoTL server's
//!   plaintext pre-training of its frozen network on its share of the training split.
//! - `cryptotl --dataset snips [--network FILE] [--preset n14] [--dp-epsilon E] [--json]`:
//!   CryptoTL's encrypted forward pass and the client's head on the decrypted outputs.
//! - `softmax-error --classes c --range R --samples n [--variant normal] [--encrypted]
//!   [--json]`: ASoftmax's error against exact softmax (float64 circuit and CKKS).

mod ablate;
mod bench_bootstrap;
mod bench_ckks;
mod bench_matmul;
mod bench_ntt;
mod cryptotl;
mod plot;
mod reproduce;
mod softmax_error;

use clap::{Parser, Subcommand};

/// mimalloc, configured by [`he_math::allocator::configure`] to keep freed polynomial
/// buffers mapped for reuse (see that module for why).
#[global_allocator]
static GLOBAL: he_math::allocator::MiMalloc = he_math::allocator::MiMalloc;

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

/// Subcommands (all benchmarks so far, hence the shared prefix).
#[derive(Subcommand)]
#[allow(clippy::enum_variant_names)]
enum Command {
    /// Time the negacyclic NTT engines (one limb, N = 2^log_n) and the pointwise product.
    BenchNtt(bench_ntt::Args),
    /// Time the CKKS operations on a parameter preset and report their precision.
    BenchCkks(bench_ckks::Args),
    /// Time the CKKS bootstrapping (per stage) and report its precision and key size.
    BenchBootstrap(bench_bootstrap::Args),
    /// Time DiagABT/DiagATB against the baseline encrypted matrix products.
    BenchMatmul(bench_matmul::Args),
    /// HETAL's training protocol on real features (plain, simulated, encrypted).
    Reproduce(reproduce::Args),
    /// ASoftmax's error against exact softmax (float64 and encrypted).
    SoftmaxError(softmax_error::Args),
    /// Algorithm × activation × early stopping in float64, one table per dataset.
    Ablate(ablate::Args),
    /// Pre-train the CryptoTL server's frozen network in plaintext and write it.
    CryptotlPretrain(cryptotl::PretrainArgs),
    /// CryptoTL: encrypted forward pass through the frozen network, head on the outputs.
    Cryptotl(cryptotl::Args),
}

/// The CPU model and kernel tier ([`hetal_train::session::machine_report`]).
pub(crate) fn machine_report() -> serde_json::Value {
    hetal_train::session::machine_report()
}

/// Peak resident set size of this process ([`hetal_train::session::peak_rss_bytes`]).
pub(crate) fn peak_rss_bytes() -> Option<u64> {
    hetal_train::session::peak_rss_bytes()
}

/// CPU time (user, system; seconds) and minor page faults of this process so far
/// (`getrusage`), to tell a benchmark's own work from the machine's noise. The system
/// time holds the kernel's zeroing of freshly faulted pages and the worker threads'
/// yielding while idle (docs/results/bootstrap.md).
pub(crate) fn cpu_usage() -> (f64, f64, u64) {
    // SAFETY: an all-zero rusage is a valid value to be overwritten by getrusage.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: RUSAGE_SELF with a valid out-pointer.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) } != 0 {
        return (0.0, 0.0, 0);
    }
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
    (secs(u.ru_utime), secs(u.ru_stime), u.ru_minflt as u64)
}

fn main() {
    he_math::allocator::configure();
    // A closed pipe (`cargo xtask … | head`) ends the process quietly, as it does other
    // command-line tools, instead of `println!` panicking on the write error: Rust
    // ignores SIGPIPE by default.
    // SAFETY: setting a signal's disposition to the default before any thread starts.
    #[cfg(unix)]
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    // Diagnostics on stderr with `RUST_LOG` (e.g. `RUST_LOG=hetal_train::refresh=debug`
    // prints every bootstrap's level and need); warnings only by default.
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::BenchNtt(args) => bench_ntt::run(&args),
        Command::BenchCkks(args) => bench_ckks::run(&args),
        Command::BenchBootstrap(args) => bench_bootstrap::run(&args),
        Command::BenchMatmul(args) => bench_matmul::run(&args),
        Command::Reproduce(args) => reproduce::run(&args),
        Command::SoftmaxError(args) => softmax_error::run(&args),
        Command::Ablate(args) => ablate::run(&args),
        Command::CryptotlPretrain(args) => cryptotl::run_pretrain(&args),
        Command::Cryptotl(args) => cryptotl::run(&args),
    };
    if let Err(e) = result {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
