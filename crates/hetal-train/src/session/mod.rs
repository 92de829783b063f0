//! A training session between a client and a server (HETAL, Lee et al., ICML 2023,
//! §3, Fig. 1), above the roles of [`crate::encrypted`]:
//!
//! - [`server`]: [`ServerSession`], a server's session with idempotent requests and its
//!   state on disk;
//! - [`transport`]: [`Transport`], how the client reaches it, and [`InProcess`];
//! - [`client`]: [`run`], the client's training loop (epochs, validation, early
//!   stopping, best-epoch choice, checkpoint and resume);
//! - [`keystore`]: the client's secret key on disk, checkpoint bindings.

pub mod client;
pub mod keystore;
pub mod server;
pub mod transport;

pub use client::{Event, LoopOptions, LoopOutcome, TrainData, run};
pub use keystore::{checkpoint_binding, load_secret_key, store_secret_key};
pub use server::{ServerSession, SessionStatus};
pub use transport::{InProcess, Transport};

/// The flooding policy of a training run's validation decryptions (both front ends'
/// `--flooding-bits` / `--flooding-queries`): `statistical_security` bits (0: off)
/// against `queries` decryptions, by default one per epoch of the budget (each epoch's
/// decision is one decryption's consequence the server sees).
///
/// # Errors
/// [`crate::TrainError::Ckks`] for bits above 128 or a query count beyond 2^40.
pub fn flooding_policy(
    statistical_security: u32,
    queries: Option<u64>,
    epochs: usize,
) -> crate::Result<Option<he_linalg::ckks::Flooding>> {
    if statistical_security == 0 {
        return Ok(None);
    }
    let queries = queries.unwrap_or(epochs.max(1) as u64);
    Ok(Some(he_linalg::ckks::Flooding::new(
        statistical_security,
        queries,
    )?))
}

/// The machine a measurement ran on, for its report: the CPU's model name (Linux
/// `/proc/cpuinfo`, `null` elsewhere), the kernel tier the CPU-SIMD backend runs
/// ([`he_linalg::ckks::he_math::simd::KernelTier`]) and the logical CPUs available.
pub fn machine_report() -> serde_json::Value {
    let model = std::fs::read_to_string("/proc/cpuinfo").ok().and_then(|s| {
        s.lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_string())
    });
    serde_json::json!({
        "cpu_model": model,
        "kernels": he_linalg::ckks::he_math::simd::KernelTier::detect().name(),
        "logical_cpus": std::thread::available_parallelism().map(usize::from).ok(),
    })
}

/// Peak resident set size of this process (Linux `VmHWM`), in bytes; `None` where
/// `/proc/self/status` does not exist. Both front ends report it.
pub fn peak_rss_bytes() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}
