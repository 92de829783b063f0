//! Every secure preset stays within the bound of its secret distribution; presets that
//! exceed it, and the `insecure_*` ones, are refused when they ask for 128-bit security.

use ckks::circuits::bootstrapping::presets as boot;
use ckks::security::{self, SecurityLevel};
use ckks::{
    CkksError, Context, KeyGenerator, Parameters, ParametersLiteral, SecretDistribution, presets,
};

fn secure_presets() -> Vec<(&'static str, ParametersLiteral)> {
    vec![
        (
            "n16_logqp1558_fgb_chain",
            presets::n16_logqp1558_fgb_chain(),
        ),
        ("n15_logqp854_depth13", presets::n15_logqp854_depth13()),
        ("n14_logqp304_depth3", presets::n14_logqp304_depth3()),
        (
            "n16_logqp1755_dense_boot",
            boot::n16_logqp1755_dense_boot().0,
        ),
        ("n16_logqp1732_dense_s2c", boot::n16_logqp1732_dense_s2c().0),
        (
            "n16_logqp1759_dense_precise",
            boot::n16_logqp1759_dense_precise().0,
        ),
    ]
}

fn insecure_presets() -> Vec<(&'static str, ParametersLiteral)> {
    vec![
        ("insecure_n10_depth3", presets::insecure_n10_depth3()),
        ("insecure_n12_depth6", presets::insecure_n12_depth6()),
        ("insecure_n13_depth12", presets::insecure_n13_depth12()),
        ("insecure_n12_boot", boot::insecure_n12_boot().0),
    ]
}

#[test]
fn secure_presets_are_within_their_bound() {
    for (name, lit) in secure_presets() {
        assert_eq!(lit.security, SecurityLevel::Classical128, "{name}");
        let p = Parameters::new(lit.clone()).unwrap_or_else(|e| panic!("{name}: {e}"));
        let bound = security::max_log_qp_128(lit.log_n, lit.secret)
            .unwrap_or_else(|| panic!("{name}: no bound for its secret"));
        assert!(p.log_qp() <= bound.max_log_q as f64, "{name}");
        eprintln!("{name}: log QP {:.2} ≤ {}", p.log_qp(), bound.max_log_q);
        assert!(p.is_secure_128(), "{name}");
    }
}

#[test]
fn insecure_presets_are_refused_by_the_check() {
    for (name, mut lit) in insecure_presets() {
        assert_eq!(lit.security, SecurityLevel::NotSet, "{name}");
        let p = Parameters::new(lit.clone()).unwrap();
        assert!(!p.is_secure_128(), "{name}");
        lit.security = SecurityLevel::Classical128;
        assert!(
            matches!(Parameters::new(lit), Err(CkksError::InsecureParameters(_))),
            "{name}"
        );
    }
}

#[test]
fn exceeding_the_bound_fails_to_build() {
    // HEaaN FGb's chain with its sparse h = 192 secret: log QP 1558 > 1555.
    let mut lit = presets::n16_logqp1558_fgb_chain();
    lit.secret = SecretDistribution::SparseTernary {
        hamming_weight: 192,
    };
    let err = Parameters::new(lit.clone()).unwrap_err();
    assert!(matches!(err, CkksError::InsecureParameters(_)), "{err}");
    // A weight without a published estimate is not claimed, whatever log QP.
    lit.secret = SecretDistribution::SparseTernary {
        hamming_weight: 1000,
    };
    assert!(matches!(
        Parameters::new(lit.clone()),
        Err(CkksError::InsecureParameters(_))
    ));
    // One more prime on the dense preset goes past 1772.
    let (mut dense, _) = boot::n16_logqp1755_dense_boot();
    dense.log_p.extend([50, 50]);
    assert!(matches!(
        Parameters::new(dense),
        Err(CkksError::InsecureParameters(_))
    ));
}

#[test]
fn encapsulation_modulus_is_checked() {
    // Secure parameters at N = 2^13 have no published h = 32 bound: key generation of
    // the encapsulation keys refuses (HE Standard bound for 2^13 is 218 bits).
    let lit = ParametersLiteral {
        log_n: 13,
        log_q: vec![50, 40, 40],
        log_q_boot: vec![],
        log_p: vec![55],
        dnum: 3,
        secret: SecretDistribution::UniformTernary,
        sigma: 3.2,
        log_scale: 40,
        security: SecurityLevel::Classical128,
    };
    let ctx = Context::new_cpu(lit).unwrap();
    let mut kg = KeyGenerator::new(&ctx);
    let sk = kg.gen_secret_key().unwrap();
    assert!(matches!(
        kg.gen_encapsulation_keys(&sk, 32),
        Err(CkksError::InsecureParameters(_))
    ));
    // The dense N = 2^16 preset keeps q_0·p_0 within the published 121 bits.
    let p = Parameters::new(boot::n16_logqp1755_dense_boot().0).unwrap();
    assert!(security::check_encapsulation_128(16, 32, p.encapsulation_log_q()).is_ok());
    assert!(p.p()[0] > p.q()[0]);
}
