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

/// Peak resident set size of this process (Linux `VmHWM`), in bytes; `None` where
/// `/proc/self/status` does not exist. Both front ends report it.
pub fn peak_rss_bytes() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}
