//! `.npy` loading: C and Fortran order give the same matrix; headers that claim more
//! data than the file holds, wrong ranks and wrong dtypes are errors, not allocations.

use hetal_train::data::{read_features, read_labels};
use std::path::Path;

/// A version-1.0 `.npy` file: magic, header dict padded to a multiple of 64 bytes, data.
fn write_npy(path: &Path, descr: &str, fortran: bool, shape: &[u64], data: &[u8]) {
    let shape = match shape {
        [n] => format!("({n},)"),
        s => format!(
            "({})",
            s.iter().map(u64::to_string).collect::<Vec<_>>().join(", ")
        ),
    };
    let order = if fortran { "True" } else { "False" };
    let mut header =
        format!("{{'descr': '{descr}', 'fortran_order': {order}, 'shape': {shape}, }}");
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
    bytes.extend_from_slice(header.as_bytes());
    bytes.extend_from_slice(data);
    std::fs::write(path, bytes).unwrap();
}

fn f64_bytes(v: &[f64]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

#[test]
fn c_and_fortran_order_agree() {
    let dir = tempfile::tempdir().unwrap();
    // The 2×3 matrix [[1, 2, 3], [4, 5, 6]].
    let c = dir.path().join("c.npy");
    write_npy(
        &c,
        "<f8",
        false,
        &[2, 3],
        &f64_bytes(&[1., 2., 3., 4., 5., 6.]),
    );
    let f = dir.path().join("f.npy");
    write_npy(
        &f,
        "<f8",
        true,
        &[2, 3],
        &f64_bytes(&[1., 4., 2., 5., 3., 6.]),
    );
    let (mc, mf) = (read_features(&c).unwrap(), read_features(&f).unwrap());
    assert_eq!(mc.as_slice(), &[1., 2., 3., 4., 5., 6.]);
    assert_eq!(mc, mf);
    assert_eq!((mf.rows(), mf.cols()), (2, 3));
    assert_eq!(mf.get(0, 1), 2.0);
    assert_eq!(mf.get(1, 0), 4.0);
}

#[test]
fn forged_and_wrong_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("x.npy");
    // A header claiming 2^40 × 2^20 doubles over 48 bytes of data.
    write_npy(&p, "<f8", false, &[1 << 40, 1 << 20], &f64_bytes(&[0.0; 6]));
    let e = read_features(&p).unwrap_err().to_string();
    assert!(e.contains("claims"), "{e}");
    // Fewer bytes than the shape needs.
    write_npy(&p, "<f8", false, &[2, 3], &f64_bytes(&[0.0; 5]));
    assert!(read_features(&p).is_err());
    // Wrong rank and dtype.
    write_npy(&p, "<f8", false, &[6], &f64_bytes(&[0.0; 6]));
    assert!(read_features(&p).is_err());
    write_npy(&p, "<i8", false, &[2, 3], &[0u8; 48]);
    assert!(read_features(&p).is_err());
    // Non-finite features.
    write_npy(&p, "<f8", false, &[1, 2], &f64_bytes(&[1.0, f64::NAN]));
    assert!(read_features(&p).is_err());
    // Labels: a forged length, an out-of-range label, a valid file.
    write_npy(&p, "<i8", false, &[1 << 50], &[0u8; 16]);
    assert!(read_labels(&p, 7).is_err());
    write_npy(
        &p,
        "<i8",
        false,
        &[2],
        &[1, 0, 0, 0, 0, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0],
    );
    assert!(read_labels(&p, 7).is_err());
    assert_eq!(read_labels(&p, 10).unwrap(), vec![1, 9]);
    // Not a .npy file at all, and a missing one.
    std::fs::write(&p, b"hello").unwrap();
    assert!(read_features(&p).is_err());
    assert!(read_features(&dir.path().join("missing.npy")).is_err());
}

/// Writes `labels` as a C-order `<i8` vector.
fn write_labels(path: &std::path::Path, labels: &[i64]) {
    let bytes: Vec<u8> = labels.iter().flat_map(|x| x.to_le_bytes()).collect();
    write_npy(path, "<i8", false, &[labels.len() as u64], &bytes);
}

/// Writes `rows × cols` features (row-major `x`) as a C-order `<f8` matrix.
fn write_features(path: &std::path::Path, rows: usize, cols: usize, x: &[f64]) {
    write_npy(
        path,
        "<f8",
        false,
        &[rows as u64, cols as u64],
        &f64_bytes(x),
    );
}

/// A user's data directory: train only (validation carved, no test), then with a test
/// split; the class count comes from the labels; a directory without the training
/// files is an error that names them.
#[test]
fn user_data_directory() {
    let dir = tempfile::tempdir().unwrap();
    let err = hetal_train::Dataset::load_dir(dir.path(), 0.1, 0).unwrap_err();
    assert!(format!("{err}").contains("features_train.npy"), "{err}");
    let (n, d) = (50usize, 3usize);
    let x: Vec<f64> = (0..n * d).map(|i| (i as f64 * 0.7).sin()).collect();
    let y: Vec<i64> = (0..n as i64).map(|i| i % 4).collect();
    write_features(&dir.path().join("features_train.npy"), n, d, &x);
    write_labels(&dir.path().join("labels_train.npy"), &y);
    let ds = hetal_train::Dataset::load_dir(dir.path(), 0.1, 7).unwrap();
    assert_eq!(ds.classes, 4);
    assert_eq!(
        (ds.train.y.len(), ds.val.y.len(), ds.test.y.len()),
        (45, 5, 0)
    );
    assert_eq!(ds.val.x.cols(), d);
    // The carved split depends on the seed only, and its rows are the originals.
    let again = hetal_train::Dataset::load_dir(dir.path(), 0.1, 7).unwrap();
    assert_eq!(again.val.y, ds.val.y);
    for i in 0..ds.val.y.len() {
        let row = ds.val.x.row(i);
        assert!((0..n).any(|r| x[r * d..(r + 1) * d] == *row && y[r] as usize == ds.val.y[i]));
    }
    write_features(&dir.path().join("features_test.npy"), 2, d, &x[..2 * d]);
    write_labels(&dir.path().join("labels_test.npy"), &[3, 9]);
    // Label 9 is beyond the training labels' classes.
    assert!(hetal_train::Dataset::load_dir(dir.path(), 0.1, 7).is_err());
    write_labels(&dir.path().join("labels_test.npy"), &[3, 0]);
    assert_eq!(
        hetal_train::Dataset::load_dir(dir.path(), 0.1, 7)
            .unwrap()
            .test
            .y,
        vec![3, 0]
    );
}
