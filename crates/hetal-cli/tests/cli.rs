//! The `hetal` command as two processes: `hetal serve` on 127.0.0.1 (a free port) and
//! `hetal train` against it with the insecure N = 2^12 preset on DermaMNIST's features;
//! the model is read back by `hetal predict`; a server killed mid-run and restarted on
//! its state directory lets the client finish with the weights of an uninterrupted run
//! (that second run over TLS with a self-signed certificate), and encrypted inference
//! through the server (`predict --server`) agrees with plaintext inference.
//!
//! Needs `../shared/data/dermamnist`; without it the test fails, unless
//! `HETAL_ALLOW_MISSING_DATA` is set (then it says loudly that it skipped).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_hetal");

fn data_dir() -> Option<PathBuf> {
    let d = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data");
    if d.join("dermamnist").is_dir() {
        return Some(d);
    }
    assert!(
        std::env::var_os("HETAL_ALLOW_MISSING_DATA").is_some(),
        "{} is missing (set HETAL_ALLOW_MISSING_DATA to skip)",
        d.display()
    );
    eprintln!("SKIPPED: no DermaMNIST features at {}", d.display());
    None
}

/// A server on `listen` (TLS with `tls = (cert, key)`); returns the process and its
/// bound address.
fn serve(state: &Path, listen: &str, tls: Option<(&Path, &Path)>) -> (Child, String) {
    let mut cmd = Command::new(BIN);
    cmd.args([
        "serve",
        "--allow-insecure",
        "--listen",
        listen,
        "--state-dir",
    ])
    .arg(state);
    if let Some((cert, key)) = tls {
        cmd.arg("--tls-cert").arg(cert).arg("--tls-key").arg(key);
    }
    let mut child = cmd
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap()
        .to_string();
    (child, addr)
}

fn train_cmd(url: &str, data: &Path, out: &Path) -> Command {
    let mut c = Command::new(BIN);
    c.args(["train", "--server", url])
        .args(["--dataset", "dermamnist", "--data-root"])
        .arg(data)
        .args([
            "--preset",
            "insecure-n12",
            "--batch",
            "64",
            "--max-steps",
            "1",
        ])
        .args(["--json", "--out"])
        .arg(out);
    c
}

fn weights(dir: &Path) -> Vec<f64> {
    let bytes = std::fs::read(dir.join("weights.npy")).unwrap();
    let npy = npyz::NpyFile::new(&bytes[..]).unwrap();
    npy.into_vec::<f64>().unwrap()
}

#[test]
fn serve_train_predict_and_survive_a_server_restart() {
    let Some(data) = data_dir() else { return };
    let tmp = tempfile::tempdir().unwrap();

    // 1. An uninterrupted run; `predict` reproduces its reported test accuracy.
    let (mut server, addr) = serve(&tmp.path().join("state-a"), "127.0.0.1:0", None);
    let out_a = tmp.path().join("model-a");
    let run = train_cmd(&format!("http://{addr}"), &data, &out_a)
        .output()
        .unwrap();
    server.kill().unwrap();
    server.wait().unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let stdout = String::from_utf8(run.stdout).unwrap();
    let report: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(report["steps"], 1);
    assert!(report["bytes_sent"].as_u64().unwrap() > 1 << 20);
    assert!(out_a.join("weights.npy").is_file() && out_a.join("model.json").is_file());
    let test = data.join("dermamnist/efficientnet-lite0");
    let pred = Command::new(BIN)
        .args(["predict", "--json", "--model"])
        .arg(&out_a)
        .arg("--features")
        .arg(test.join("features_test.npy"))
        .arg("--labels")
        .arg(test.join("labels_test.npy"))
        .output()
        .unwrap();
    assert!(pred.status.success());
    let p: serde_json::Value =
        serde_json::from_str(String::from_utf8(pred.stdout).unwrap().trim()).unwrap();
    assert_eq!(p["accuracy"], report["test_accuracy"]);

    // 2. Over TLS: the server is killed during the run and restarted on the same state
    //    directory and port; the client retries and finishes.
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let (cert_pem, key_pem) = (tmp.path().join("cert.pem"), tmp.path().join("key.pem"));
    std::fs::write(&cert_pem, cert.cert.pem()).unwrap();
    std::fs::write(&key_pem, cert.signing_key.serialize_pem()).unwrap();
    let tls = Some((cert_pem.as_path(), key_pem.as_path()));
    let state_b = tmp.path().join("state-b");
    let (mut server, addr) = serve(&state_b, "127.0.0.1:0", tls);
    let port = addr.rsplit(':').next().unwrap().to_string();
    let url = format!("https://localhost:{port}");
    let out_b = tmp.path().join("model-b");
    let mut client = train_cmd(&url, &data, &out_b)
        .arg("--ca")
        .arg(&cert_pem)
        .stderr(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(client.stderr.take().unwrap()).lines();
    for line in lines.by_ref() {
        if line.unwrap().contains("keys generated and sent") {
            break;
        }
    }
    std::thread::sleep(std::time::Duration::from_secs(2));
    server.kill().unwrap();
    server.wait().unwrap();
    let (mut server, _) = serve(&state_b, &addr, tls);
    // Drain the client's stderr so it never blocks on a full pipe.
    let drain = std::thread::spawn(move || lines.map_while(Result::ok).collect::<Vec<_>>());
    let status = client.wait().unwrap();
    let log = drain.join().unwrap();
    assert!(status.success(), "{}", log.join("\n"));

    // 3. Encrypted inference on 200 test rows through the restarted server.
    let x = hetal_train::data::read_features(&test.join("features_test.npy")).unwrap();
    let y = hetal_train::data::read_labels(&test.join("labels_test.npy"), 7).unwrap();
    let rows = 200;
    let (fx, fy) = (tmp.path().join("x.npy"), tmp.path().join("y.npy"));
    write_npy(
        &fx,
        &x.as_slice()[..rows * x.cols()],
        &[rows as u64, x.cols() as u64],
    );
    let labels: Vec<i64> = y[..rows].iter().map(|&l| l as i64).collect();
    write_npy(&fy, &labels, &[rows as u64]);
    let predict = |server: Option<&str>| -> serde_json::Value {
        let mut c = Command::new(BIN);
        c.args(["predict", "--json", "--model"])
            .arg(&out_b)
            .arg("--features")
            .arg(&fx)
            .arg("--labels")
            .arg(&fy);
        if let Some(u) = server {
            c.args(["--server", u]).arg("--ca").arg(&cert_pem);
        }
        let o = c.output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        serde_json::from_str(String::from_utf8(o.stdout).unwrap().trim()).unwrap()
    };
    let (plain, enc) = (predict(None), predict(Some(&url)));
    server.kill().unwrap();
    server.wait().unwrap();
    assert_eq!(enc["encrypted"], true);
    let (pa, ea) = (
        plain["predictions"].as_array().unwrap(),
        enc["predictions"].as_array().unwrap(),
    );
    let same = pa.iter().zip(ea).filter(|(a, b)| a == b).count();
    assert!(same >= rows - 2, "{same} of {rows} predictions agree");
    let (wa, wb) = (weights(&out_a), weights(&out_b));
    assert_eq!(wa.len(), wb.len());
    let diff = wa
        .iter()
        .zip(&wb)
        .fold(0f64, |m, (a, b)| m.max((a - b).abs()));
    let scale = wa.iter().fold(0f64, |m, a| m.max(a.abs()));
    // Same data, seed and steps: the two runs differ only by CKKS noise.
    assert!(
        diff < 1e-4 && scale > 1e-3,
        "max |W_a − W_b| = {diff:e}, max |W_a| = {scale:e}"
    );
}

fn write_npy<T: npyz::AutoSerialize + Copy>(path: &Path, data: &[T], shape: &[u64]) {
    use npyz::WriterBuilder as _;
    let mut buf = Vec::new();
    let mut w = npyz::WriteOptions::<T>::new()
        .default_dtype()
        .shape(shape)
        .writer(&mut buf)
        .begin_nd()
        .unwrap();
    w.extend(data.iter().copied()).unwrap();
    w.finish().unwrap();
    std::fs::write(path, buf).unwrap();
}
