//! TLS for the tests of the HTTPS endpoints: a fresh self-signed certificate, and a client that
//! trusts it alone.

use std::path::Path;

use super::WAIT;

/// Writes a fresh self-signed certificate for 127.0.0.1 and localhost, and its key, to
/// `cert.pem` and `key.pem` in `dir`.
pub fn self_signed(dir: &Path) {
    let made = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-nodes", "-days", "2", "-subj", "/CN=localhost"])
        .args(["-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"])
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .arg("-keyout")
        .arg(dir.join("key.pem"))
        .arg("-out")
        .arg(dir.join("cert.pem"))
        .output()
        .expect("openssl is needed to make the TLS test's certificate");
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
}

/// A client that trusts only the certificate in `cert.pem` under `dir`.
/// A client that trusts only the certificate [`self_signed`] wrote to `dir`.
pub fn trusting(dir: &Path) -> reqwest::Client {
    let cert =
        reqwest::Certificate::from_pem(&std::fs::read(dir.join("cert.pem")).unwrap()).unwrap();
    reqwest::Client::builder()
        .tls_certs_only([cert])
        .timeout(WAIT)
        .build()
        .unwrap()
}
