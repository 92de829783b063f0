//! `he_math::allocator::release_freed` returns freed memory to the kernel: the process's
//! resident set (Linux `/proc/self/status`) falls after it. Its own test binary, so that no
//! other test allocates beside it.

#[cfg(not(all(feature = "mimalloc", target_os = "linux")))]
#[test]
fn release_freed_needs_mimalloc_on_linux() {
    eprintln!(
        "SKIPPED: he-math's allocator tests need the `mimalloc` feature on Linux \
         (`cargo test --workspace` enables it through xtask)"
    );
}

#[cfg(all(feature = "mimalloc", target_os = "linux"))]
mod with_mimalloc {
    use he_math::allocator::{self, MiMalloc};
    use std::alloc::{GlobalAlloc, Layout};

    fn resident_kib() -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
        let line = status
            .lines()
            .find(|l| l.starts_with("VmRSS:"))
            .expect("VmRSS line");
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }

    /// One block the size of a few N = 2^16 polynomials.
    const BLOCK: usize = 24 << 20;

    fn layout() -> Layout {
        Layout::from_size_align(BLOCK, 64).unwrap()
    }

    /// `count` blocks from mimalloc, written so that they are resident.
    fn fill(count: usize) -> Vec<*mut u8> {
        (0..count)
            .map(|_| {
                // SAFETY: a non-zero size; the pointer is checked and written within bounds.
                unsafe {
                    let p = MiMalloc.alloc(layout());
                    assert!(!p.is_null());
                    std::ptr::write_bytes(p, 1, BLOCK);
                    p
                }
            })
            .collect()
    }

    /// Frees blocks from [`fill`] (on the calling thread).
    fn free(blocks: Vec<*mut u8>) {
        for p in blocks {
            // SAFETY: allocated by `fill` with this layout, freed once.
            unsafe { MiMalloc.dealloc(p, layout()) };
        }
    }

    #[test]
    fn release_freed_returns_freed_blocks() {
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
            eprintln!("SKIPPED: MIMALLOC_PURGE_DELAY is set and overrides the project's delay");
            return;
        }
        allocator::configure();
        // Blocks the size of a few N = 2^16 polynomials, written so that they are resident.
        let blocks = fill(16);
        let filled = resident_kib();
        free(blocks);
        let freed = resident_kib();
        allocator::release_freed();
        let released = resident_kib();
        eprintln!("resident: filled {filled} KiB, freed {freed} KiB, released {released} KiB");
        // 384 MiB were written; at least 300 MiB must leave the resident set (the delay keeps
        // them mapped until the release).
        assert!(
            freed.saturating_sub(released) >= 300 * 1024,
            "filled {filled}, freed {freed}, released {released} KiB"
        );
        release_freed_reaches_blocks_freed_by_rayon_workers();
    }

    /// Blocks freed by rayon's workers (each worker's heap keeps its own pages); called
    /// after the calling thread's test, never beside it, since both read the resident set.
    fn release_freed_reaches_blocks_freed_by_rayon_workers() {
        // Each worker allocates, writes and frees 8 blocks it holds at once (192 MiB).
        rayon::broadcast(|_| free(fill(8)));
        let before = resident_kib();
        allocator::release_freed();
        let after = resident_kib();
        eprintln!("rayon workers: before {before} KiB, after {after} KiB");
        assert!(
            before.saturating_sub(after) >= 150 * 1024,
            "before {before}, after {after} KiB"
        );
    }
}
