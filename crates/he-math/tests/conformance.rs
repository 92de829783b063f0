//! The conformance suite run against every backend compiled into this crate.

use he_math::conformance::{run_all, test_ring};
use he_math::{CpuBackend, NttEngine, ReferenceBackend, RingContext};

#[test]
fn reference_backend_conforms() {
    for n in [16usize, 256] {
        run_all(&ReferenceBackend::new(&test_ring(n)).unwrap());
    }
}

#[test]
fn cpu_simd_backend_conforms() {
    for n in [16usize, 256, 1 << 10] {
        run_all(&CpuBackend::new(&test_ring(n)).unwrap());
    }
}

#[test]
fn cpu_simd_backend_conforms_with_every_engine() {
    let ring = test_ring(256);
    for engine in NttEngine::available() {
        let ctx: std::sync::Arc<RingContext> = ring.with_other_engine(engine).unwrap();
        // The CPU backend re-plans with its default engine; run the reference check on
        // the other engines' contexts directly through a CPU backend built from them.
        run_all(&CpuBackend::new(&ctx).unwrap());
    }
}
