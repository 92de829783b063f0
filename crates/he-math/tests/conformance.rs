//! The conformance suite run against every backend compiled into this crate.

use he_math::conformance::{run_all, test_ring};
use he_math::{Backend, CpuBackend, NttEngine, ReferenceBackend, RingContext};

#[test]
fn reference_backend_conforms() {
    for n in [16usize, 256] {
        run_all(&ReferenceBackend::new(&test_ring(n)).unwrap());
    }
}

#[test]
fn cpu_simd_backend_conforms() {
    // 2^12: more than one block of the blocked kernels (dot_parts, the seeded inner
    // product).
    for n in [16usize, 256, 1 << 10, 1 << 12] {
        run_all(&CpuBackend::new(&test_ring(n)).unwrap());
    }
}

#[test]
fn cpu_simd_backend_conforms_with_every_engine() {
    let ring = test_ring(256);
    for engine in NttEngine::available() {
        let ctx: std::sync::Arc<RingContext> = ring.with_other_engine(engine).unwrap();
        // `new` would re-plan onto the default engine; keep this one.
        let backend = CpuBackend::keeping_engine(&ctx);
        assert_eq!(backend.context().engine(), engine);
        eprintln!("conformance of cpu-simd with the {engine:?} NTT engine");
        run_all(&backend);
    }
}
