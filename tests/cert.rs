//! Certificates: `progjar cert DIR` (its files, their names, never over an existing
//! file) and loading certificate and key files as the TLS server will (`progjar::tls`):
//! every PEM form `openssl` writes, a chain, the course's expired `domain.crt`, and
//! every bad file as one sentence with exit 2.
//!
//! The certificates checked here are made by the `openssl` command line (`make deps`
//! installs it), the way the course makes its own.

use progjar_testkit as common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{code, course_pair, openssl, progjar, run, scratch_dir, self_signed, stderr, stdout};
use progjar::cli::EXIT_USAGE;
use progjar::tls::{Identity, DEFAULT_NAMES};

fn scratch(name: &str) -> PathBuf {
    scratch_dir("cert", name)
}

#[test]
fn cert_writes_a_ca_and_a_server_certificate_for_the_labs_names() {
    let dir = scratch("default");
    let out = run(progjar().arg("cert").arg(&dir), None);
    assert_eq!(code(&out), 0, "{}", common::all_output(&out));
    let said = stdout(&out);
    for file in ["ca.crt", "server.crt", "server.key"] {
        assert!(said.contains(&format!("wrote {}", dir.join(file).display())), "{said}");
    }
    assert!(said.contains("progjar client --tls --ca"), "{said}");
    // The server's certificate is signed by the CA, for every default name.
    openssl(&dir, &["verify", "-CAfile", "ca.crt", "server.crt"]);
    let san = openssl(&dir, &["x509", "-in", "server.crt", "-noout", "-ext", "subjectAltName"]);
    for name in DEFAULT_NAMES {
        let entry = if name.parse::<std::net::IpAddr>().is_ok() { "IP Address:" } else { "DNS:" };
        assert!(san.contains(&format!("{entry}{name}")), "{name} missing: {san}");
    }
    // ECDSA P-256, valid for a year (not two), the key readable by its owner only.
    let key = openssl(&dir, &["pkey", "-in", "server.key", "-noout", "-text"]);
    assert!(key.contains("prime256v1"), "{key}");
    let year = 364 * 86_400;
    openssl(&dir, &["x509", "-in", "server.crt", "-noout", "-checkend", &year.to_string()]);
    let two = 2 * 366 * 86_400;
    let out = run(
        Command::new("openssl")
            .args(["x509", "-in", "server.crt", "-noout", "-checkend", &two.to_string()])
            .current_dir(&dir),
        None,
    );
    assert!(!out.status.success(), "valid for more than a year: {}", stdout(&out));
    let mode = fs::metadata(dir.join("server.key")).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    // The files load as a server identity, and the CA is a CA.
    let identity = Identity::load(&dir.join("server.crt"), &dir.join("server.key")).unwrap();
    assert_eq!(identity.warning(progjar::tls::now()), None);
    let ca = progjar::tls::certificates(&dir.join("ca.crt")).unwrap();
    assert!(progjar::tls::CertInfo::parse(&ca[0]).unwrap().is_ca);
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn cert_names_given_replace_the_defaults() {
    let dir = scratch("names");
    let out =
        run(progjar().arg("cert").arg(&dir).args(["--name", "alpine-1", "--name", "::1"]), None);
    assert_eq!(code(&out), 0, "{}", common::all_output(&out));
    let text = openssl(
        &dir,
        &["x509", "-in", "server.crt", "-noout", "-subject", "-ext", "subjectAltName"],
    );
    assert!(text.contains("CN = alpine-1") || text.contains("CN=alpine-1"), "{text}");
    assert!(text.contains("DNS:alpine-1") && text.contains("IP Address:0:0:0:0:0:0:0:1"), "{text}");
    assert!(!text.contains("mesin1"), "{text}");
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn cert_never_overwrites_and_writes_nothing_when_one_file_exists() {
    let dir = scratch("exists");
    fs::write(dir.join("server.key"), b"the student's own key\n").unwrap();
    let out = run(progjar().arg("cert").arg(&dir), None);
    assert_eq!(code(&out), i32::from(EXIT_USAGE), "{}", common::all_output(&out));
    let err = stderr(&out);
    assert_eq!(
        err.trim(),
        format!(
            "progjar: error: {} exists already, and progjar cert never overwrites; remove it or \
             choose another directory",
            dir.join("server.key").display()
        )
    );
    assert!(stdout(&out).is_empty());
    assert_eq!(fs::read(dir.join("server.key")).unwrap(), b"the student's own key\n");
    assert!(!dir.join("ca.crt").exists() && !dir.join("server.crt").exists());
    // A name no certificate can hold is refused before anything is made.
    let out = run(progjar().arg("cert").arg(dir.join("new")).args(["--name", "two words"]), None);
    assert_eq!(code(&out), i32::from(EXIT_USAGE), "{}", common::all_output(&out));
    assert!(stderr(&out).contains("\"two words\" is neither a host name nor an IP address"));
    assert!(!dir.join("new").exists());
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn every_key_form_openssl_writes_loads_and_a_chain_too() {
    let dir = scratch("forms");
    let (rsa_crt, rsa_pkcs8) = self_signed(&dir, "rsa", &["-newkey", "rsa:2048"]);
    let (ec_crt, ec_pkcs8) =
        self_signed(&dir, "ec", &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"]);
    // The same keys as PKCS#1 (BEGIN RSA PRIVATE KEY) and SEC1 (BEGIN EC PRIVATE KEY).
    openssl(&dir, &["rsa", "-in", "rsa.key", "-traditional", "-out", "rsa.pkcs1"]);
    openssl(&dir, &["ec", "-in", "ec.key", "-out", "ec.sec1"]);
    assert!(fs::read_to_string(dir.join("rsa.key")).unwrap().starts_with("-----BEGIN PRIVATE KEY"));
    assert!(fs::read_to_string(dir.join("rsa.pkcs1"))
        .unwrap()
        .starts_with("-----BEGIN RSA PRIVATE KEY"));
    assert!(fs::read_to_string(dir.join("ec.sec1"))
        .unwrap()
        .starts_with("-----BEGIN EC PRIVATE KEY"));
    for (crt, key) in [
        (&rsa_crt, rsa_pkcs8),
        (&rsa_crt, dir.join("rsa.pkcs1")),
        (&ec_crt, ec_pkcs8),
        (&ec_crt, dir.join("ec.sec1")),
    ] {
        let identity = Identity::load(crt, &key).unwrap_or_else(|f| panic!("{key:?}: {f}"));
        assert_eq!(identity.chain.len(), 1);
        identity.server_config().unwrap();
    }
    // A chain: the server's certificate, then the CA's, in one file.
    let ca = scratch("forms-ca");
    assert_eq!(code(&run(progjar().arg("cert").arg(&ca), None)), 0);
    let chain =
        [fs::read(ca.join("server.crt")).unwrap(), fs::read(ca.join("ca.crt")).unwrap()].concat();
    fs::write(dir.join("chain.crt"), chain).unwrap();
    let identity = Identity::load(&dir.join("chain.crt"), &ca.join("server.key")).unwrap();
    assert_eq!(identity.chain.len(), 2);
    assert_eq!(identity.leaf.subject, "CN=localhost");
    fs::remove_dir_all(&dir).unwrap();
    fs::remove_dir_all(&ca).unwrap();
}

#[test]
fn the_courses_expired_certificate_loads_with_a_warning_that_says_when() {
    let dir = scratch("course");
    let (crt, key) = course_pair(&dir);
    let identity = Identity::load(&crt, &key).unwrap();
    assert!(identity.leaf.names.is_empty() && identity.leaf.self_signed);
    let warning = identity.warning(progjar::tls::now()).expect("expired");
    assert!(
        warning.starts_with(&format!(
            "the certificate in {} expired on 2026-04-22: clients that check it will refuse it",
            crt.display()
        )),
        "{warning}"
    );
    // The day before it expired, nothing to say.
    assert_eq!(identity.warning(1_776_816_000 - 86_400), None);
    identity.server_config().unwrap();
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn every_bad_file_is_one_sentence_and_exit_2() {
    let dir = scratch("bad");
    let (crt, key) = self_signed(&dir, "a", &["-newkey", "rsa:2048"]);
    let (_, other_key) =
        self_signed(&dir, "b", &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"]);
    openssl(&dir, &["x509", "-in", "a.crt", "-outform", "der", "-out", "a.der"]);
    openssl(
        &dir,
        &["pkey", "-in", "a.key", "-aes256", "-passout", "pass:secret", "-out", "locked.key"],
    );
    let missing = dir.join("missing.crt");
    let cases: [(&Path, &Path, String); 6] = [
        (&missing, &key, format!("cannot read {}: No such file or directory (os error 2)", missing.display())),
        (&dir, &key, format!("cannot read {}: Is a directory (os error 21)", dir.display())),
        (&dir.join("a.der"), &key, format!("{} is not a PEM file (it has no -----BEGIN line)", dir.join("a.der").display())),
        (&crt, &crt, format!("{} holds no private key (no -----BEGIN PRIVATE KEY----- section); is it the certificate?", crt.display())),
        (&crt, &other_key, format!("{} is not the key of the certificate in {}", other_key.display(), crt.display())),
        (&crt, &dir.join("locked.key"), format!("{} is encrypted with a passphrase", dir.join("locked.key").display())),
    ];
    for (c, k, expected) in cases {
        let failure = Identity::load(c, k).expect_err(&expected);
        assert_eq!(failure.code, EXIT_USAGE, "{failure}");
        assert!(
            failure.message.starts_with(&expected),
            "{:?}\n  does not start with\n{expected:?}",
            failure.message
        );
        assert!(!failure.message.contains('\n'), "{failure}");
    }
    fs::remove_dir_all(&dir).unwrap();
}
