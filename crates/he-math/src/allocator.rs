//! The global allocator of the project's binaries (feature `mimalloc`): mimalloc, with
//! freed memory kept mapped for reuse.
//!
//! The host backend allocates and frees polynomials of 0.5 MiB per limb at `N = 2^16`
//! (12 MiB for a 24-limb ciphertext part) at a high rate: a key switch creates a dozen.
//! glibc's allocator returns such blocks to the kernel at once; mimalloc (v3) returns
//! ("purges") freed memory after 1 s by default. Each return costs a page fault and the
//! kernel's zeroing of the pages (`clear_page_erms`) when the memory is touched again:
//! 16 % of a bootstrap's profile at the default delay (docs/results/bootstrap.md).
//!
//! [`configure`] turns purging off ([`PURGE_DELAY_MS`] = −1): memory freed during a
//! computation stays mapped and is reused by the next allocation. A delay of 30 s (the
//! setting before) still left 10 000–12 000 huge-page faults per N = 2^16 bootstrap (the
//! kernel's zeroing was 19 % of the bootstrap's profile); with purging off there are about
//! 150, and the bootstrap's median fell from 13.9 to 10.8 and 13.4 s in two paired runs
//! (docs/results/bootstrap.md). The cost: the process keeps its high-water mark mapped
//! until it exits, and memory freed in one phase stays with the allocator for the next:
//! the bootstrap benchmark's peak hardly moves (10.08 → 10.10 GB), the README's bounded
//! training run's rises from 16.1–16.2 to 17.0 GB (docs/results/dermamnist.md).
//! `MIMALLOC_PURGE_DELAY=1000` (mimalloc's default) gives the memory back instead.
//!
//! Use in a binary:
//!
//! ```ignore
//! #[global_allocator]
//! static GLOBAL: he_math::allocator::MiMalloc = he_math::allocator::MiMalloc;
//!
//! fn main() {
//!     he_math::allocator::configure();
//!     // …
//! }
//! ```
//!
//! The environment variable `MIMALLOC_PURGE_DELAY` (milliseconds; mimalloc's own) takes
//! precedence over [`PURGE_DELAY_MS`] where set.

pub use mimalloc::MiMalloc;

/// How long (milliseconds) freed memory stays mapped before mimalloc returns it to the
/// kernel, as [`configure`] sets it: −1, never (see the module docs for the measurements).
pub const PURGE_DELAY_MS: i64 = -1;

/// `mi_option_purge_delay` in mimalloc v3's `mi_option_e` (`include/mimalloc.h`; the
/// `libmimalloc-sys` crate does not name it). Its default there is 1000 ms; a test checks
/// the index against that default.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Applies the project's mimalloc settings ([`PURGE_DELAY_MS`]) unless the environment
/// sets `MIMALLOC_PURGE_DELAY`. Call it first thing in `main`; it only changes settings
/// (harmless when mimalloc is not the global allocator: they then govern nothing).
pub fn configure() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
        return;
    }
    // SAFETY: mi_option_set writes one integer option; any value is valid for the purge
    // delay (−1: never, 0: at once, otherwise milliseconds).
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, PURGE_DELAY_MS as _) };
}

/// The purge delay mimalloc uses now, in milliseconds.
pub fn purge_delay_ms() -> i64 {
    // SAFETY: mi_option_get reads one integer option.
    unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) as i64 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn purge_delay_index_names_the_purge_delay() {
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
            eprintln!("SKIPPED: MIMALLOC_PURGE_DELAY is set, the default cannot be read");
            return;
        }
        // mimalloc v3's default for the purge delay; another index would read another
        // option's default (0, 1, 2, 10, 100 …).
        assert_eq!(purge_delay_ms(), 1000);
        configure();
        assert_eq!(purge_delay_ms(), PURGE_DELAY_MS);
    }
}
