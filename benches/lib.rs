//! Criterion benchmark suites of the workspace, one file per layer (`cargo bench -p hetal-benches`).
