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
//! [`configure`] sets the purge delay to ten minutes ([`PURGE_DELAY_MS`]): memory freed
//! during a computation stays mapped and is reused by the next allocation, and mimalloc
//! returns what is free at most once per ten minutes. A delay of 30 s (an earlier setting)
//! still left 10 000–12 000 huge-page faults per N = 2^16 bootstrap (the kernel's zeroing
//! was 19 % of the bootstrap's profile); with purging off there were about 150, and the
//! bootstrap's median fell from 13.9 to 10.8 and 13.4 s in two paired runs
//! (docs/results/bootstrap.md). The cost of keeping freed memory: the process holds its
//! high-water mark, and memory freed in one phase (key generation, serialization of the
//! keys, the circuit's setup) stays with the allocator for the next. [`release_freed`]
//! returns it at a phase boundary: the binaries call it once a training session is set
//! up (docs/results/dermamnist.md). `MIMALLOC_PURGE_DELAY=1000` (mimalloc's default)
//! returns freed memory after a second instead.
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
/// kernel, as [`configure`] sets it: ten minutes, so that a computation reuses what it
/// frees and [`release_freed`] can return it at a phase boundary (a negative delay, never
/// purging, would leave nothing for [`release_freed`] to return: mimalloc then does not
/// record freed ranges for purging). See the module docs for the measurements.
pub const PURGE_DELAY_MS: i64 = 600_000;

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

/// Returns the memory that mimalloc holds free to the kernel now: `mi_collect(true)` on
/// every thread of rayon's global pool (each thread's heap keeps the pages it freed) and
/// on the calling thread, which forces the purges [`PURGE_DELAY_MS`] would delay. Call it
/// between phases, after a large working set was freed (a training session's setup); it
/// costs the page faults of the memory touched again afterwards. Memory held by threads
/// outside rayon's pool stays with them. Harmless when mimalloc is not the global
/// allocator; does nothing while purging is off (`MIMALLOC_PURGE_DELAY` negative).
pub fn release_freed() {
    // SAFETY: mi_collect takes no pointer; it may be called from any thread at any time.
    rayon::broadcast(|_| unsafe { libmimalloc_sys::mi_collect(true) });
    // SAFETY: as above.
    unsafe { libmimalloc_sys::mi_collect(true) };
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
