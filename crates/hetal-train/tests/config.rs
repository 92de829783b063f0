//! `SessionConfig::validate`: what a server accepts from a client before it builds
//! anything (the bounds are the constants on `SessionConfig`).

use hetal_train::encrypted::SessionConfig;
use hetal_train::{ASoftmaxParams, RowMax};

fn good() -> SessionConfig {
    SessionConfig {
        classes: 7,
        features: 1281,
        batch: 1024,
        learning_rate: 0.3,
        patience: 3,
        softmax: ASoftmaxParams::default(),
        weight_bound: 4.0,
    }
}

#[test]
fn session_configs_are_bounded() {
    good().validate().unwrap();
    let cases: Vec<(&str, SessionConfig)> = vec![
        (
            "one class",
            SessionConfig {
                classes: 1,
                ..good()
            },
        ),
        (
            "huge class count",
            SessionConfig {
                classes: usize::MAX,
                ..good()
            },
        ),
        (
            "no features",
            SessionConfig {
                features: 0,
                ..good()
            },
        ),
        (
            "huge batch",
            SessionConfig {
                batch: 1 << 40,
                ..good()
            },
        ),
        (
            "NaN learning rate",
            SessionConfig {
                learning_rate: f64::NAN,
                ..good()
            },
        ),
        (
            "negative learning rate",
            SessionConfig {
                learning_rate: -1.0,
                ..good()
            },
        ),
        (
            "patience + 1 overflows",
            SessionConfig {
                patience: usize::MAX,
                ..good()
            },
        ),
        (
            "infinite weight bound",
            SessionConfig {
                weight_bound: f64::INFINITY,
                ..good()
            },
        ),
        (
            "a degree that would make interpolation hang",
            SessionConfig {
                softmax: ASoftmaxParams {
                    exp_degree: usize::MAX,
                    ..ASoftmaxParams::default()
                },
                ..good()
            },
        ),
        (
            "an exp interval that does not cover the logits",
            SessionConfig {
                softmax: ASoftmaxParams {
                    ext_r: 128.0,
                    ..ASoftmaxParams::default()
                },
                ..good()
            },
        ),
        (
            "a relu polynomial of odd degree",
            SessionConfig {
                softmax: ASoftmaxParams {
                    row_max: RowMax::Relu { degree: 63 },
                    ..ASoftmaxParams::default()
                },
                ..good()
            },
        ),
    ];
    for (what, c) in cases {
        assert!(c.validate().is_err(), "{what} accepted");
    }
}
