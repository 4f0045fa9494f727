//! `progjar-stress --tls` against TLS echo servers on loopback: progjar's own
//! (in a thread of this test: `cargo test -p progjar-stress` builds no
//! `progjar` binary), a rustls server that tells how each client ended, and
//! the plaintext progjar server. Certificates come from `progjar cert`'s
//! code; every run is bounded in time and goes to 127.0.0.1 only.

use std::path::{Path, PathBuf};

use progjar::tls::{certificates, CertInfo, INSECURE_WARNING};
use progjar_testkit::{
    all_output, cert_in_process, code, scratch_dir, serve_in_thread, serve_tls_in_thread, stderr,
    stdout, stress, tls_echo_telling_ends, STEP,
};
use serde_json::Value;

/// A fresh directory with `progjar cert`'s three files in it.
fn certs(name: &str) -> PathBuf {
    let dir = scratch_dir("stress-tls", name);
    cert_in_process(&dir);
    dir
}

fn path(p: &Path) -> &str {
    p.to_str().expect("a UTF-8 path")
}

/// The one JSON object a `--json` run prints.
fn json(o: &std::process::Output) -> Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", all_output(o)))
}

#[test]
fn a_tls_run_verifies_every_byte_and_says_what_was_agreed() {
    let dir = certs("ca");
    let addr = serve_tls_in_thread(&dir).to_string();
    let ca = dir.join("ca.crt");
    let args = [&addr, "--tls", "--ca", path(&ca), "-c", "8", "-n", "50", "--idle", "2", "--json"];
    let (o, _) = stress(&args);
    let out = all_output(&o);
    assert_eq!(code(&o), 0, "{out}");
    let v = json(&o);
    assert_eq!(v["result"], "OK", "{out}");
    assert_eq!((v["connections_ok"].as_u64(), v["messages"].as_u64()), (Some(10), Some(400)));
    assert_eq!(v["bytes_sent"], 8 * 50 * 512, "{out}");
    assert_eq!(v["bytes_received"], 8 * 50 * 512, "every byte back and checked: {out}");
    // The connect time covers the handshake: one per connection, idle ones too.
    assert_eq!(v["connect_latency_us"]["count"], 10, "{out}");
    let tls = &v["tls"];
    assert_eq!(tls["version"], "TLS 1.3", "{out}");
    assert_eq!(tls["cipher_suite"], "TLS13_AES_128_GCM_SHA256", "the server's first: {out}");
    assert_eq!(tls["key_exchange"], "X25519MLKEM768", "{out}");
    assert_eq!((tls["handshakes"].as_u64(), tls["other_agreements"].as_u64()), (Some(10), Some(0)));
    assert_eq!(tls["certificate_checked"], true, "{out}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn insecure_checks_nothing_says_so_and_still_checks_every_byte() {
    let dir = certs("insecure");
    let addr = serve_tls_in_thread(&dir).to_string();
    let (o, _) = stress(&[&addr, "--tls", "--insecure", "-c", "4", "-n", "10"]);
    let (out, text) = (all_output(&o), stdout(&o));
    assert_eq!(code(&o), 0, "{out}");
    assert_eq!(stderr(&o).matches(INSECURE_WARNING).count(), 1, "warned once: {out}");
    for line in [
        "tls:         TLS 1.3, TLS13_AES_128_GCM_SHA256, key exchange X25519MLKEM768; the \
         certificate NOT checked (--insecure)\n",
        "handshakes:  4 (each inside its connection's connect time)\n",
        "messages:    40 verified",
        "received:    20.0 KiB = ",
        " (TCP connect + TLS handshake)\n",
        "result:      OK",
    ] {
        assert!(text.contains(line), "{line:?} missing: {out}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_wrong_ca_fails_the_run_with_the_certificate_sentence_once_and_its_count() {
    let (dir, other) = (certs("server"), certs("other"));
    let addr = serve_tls_in_thread(&dir).to_string();
    let wrong = other.join("ca.crt");
    let (o, _) = stress(&[&addr, "--tls", "--ca", path(&wrong), "-c", "6", "-n", "5", "--json"]);
    let out = all_output(&o);
    assert_eq!(code(&o), 1, "FAILED: {out}");
    let v = json(&o);
    assert_eq!(v["result"], "FAILED", "{out}");
    assert_eq!((v["connections_failed"].as_u64(), v["error_count"].as_u64()), (Some(6), Some(6)));
    // The sentence `progjar client --tls` says (src/tls/explain.rs), once, with its count.
    let server_cert = certificates(&dir.join("server.crt")).expect("the server's certificate");
    let issuer = CertInfo::parse(&server_cert[0]).expect("readable").issuer;
    let sentence = format!(
        "the server's certificate is not signed by {} (its issuer is {issuer})",
        wrong.display()
    );
    let errors = v["errors"].as_array().expect("errors");
    assert_eq!(errors.len(), 1, "one kind of error: {out}");
    assert_eq!(errors[0]["message"], sentence.as_str(), "{out}");
    assert_eq!(errors[0]["count"], 6, "{out}");
    assert_eq!((v["tls"]["handshakes"].as_u64(), &v["tls"]["version"]), (Some(0), &Value::Null));
    assert!(stderr(&o).contains("the run failed: 6 errors, 6 connections failed"), "{out}");
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::remove_dir_all(&other).unwrap();
}

#[test]
fn a_plaintext_server_fails_the_run_in_plain_words() {
    let addr = serve_in_thread().to_string();
    let (o, _) = stress(&[&addr, "--tls", "--insecure", "-c", "3", "-n", "1"]);
    let (out, text) = (all_output(&o), stdout(&o));
    assert_eq!(code(&o), 1, "{out}");
    let line = "  3 × the server sent our own TLS hello back: it is a plaintext echo server \
                (leave out --tls, or start the server with TLS) (connections 0, 1, 2)\n";
    assert!(text.contains(line), "{out}");
    assert!(text.contains("tls:         no handshake finished"), "{out}");
    assert!(text.ends_with("result:      FAILED\n"), "{out}");
}

#[test]
fn per_connection_1_measures_full_handshakes_per_second() {
    let dir = certs("crr");
    let addr = serve_tls_in_thread(&dir).to_string();
    let ca = dir.join("ca.crt");
    let (o, _) =
        stress(&[&addr, "--tls", "--ca", path(&ca), "-c", "4", "--per-connection", "1", "-d", "2"]);
    let (out, text) = (all_output(&o), stdout(&o));
    assert_eq!(code(&o), 0, "{out}");
    let after = |label: &str| {
        let line = text.lines().find(|l| l.starts_with(label)).unwrap_or_else(|| panic!("{out}"));
        let first = line[label.len()..].split_whitespace().next().expect("a count");
        first.replace(',', "").parse::<u64>().unwrap_or_else(|e| panic!("{e}: {line}"))
    };
    let (ok, handshakes) = (after("connections:"), after("handshakes:"));
    assert!(ok > 4, "connections were renewed: {out}");
    assert_eq!(handshakes, ok, "a full handshake for each: {out}");
    assert!(text.contains("(connect, TLS handshake, messages, close, as netperf's TCP_CRR)"));
    let rate = text.lines().find(|l| l.starts_with("handshakes:")).expect("the line");
    assert!(rate.contains("/s (each inside its connection's connect time)"), "{out}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn each_connection_ends_with_close_notify_then_its_fin() {
    let dir = certs("close_notify");
    let (addr, ends) = tls_echo_telling_ends(&dir, 3);
    let ca = dir.join("ca.crt");
    let (o, _) = stress(&[&addr.to_string(), "--tls", "--ca", path(&ca), "-c", "3", "-n", "20"]);
    assert_eq!(code(&o), 0, "{}", all_output(&o));
    for i in 0..3 {
        let clean = ends.recv_timeout(STEP).unwrap_or_else(|_| panic!("client {i} never ended"));
        assert!(clean, "client {i} ended with a bare FIN, not close_notify first");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn tls_options_go_together_as_the_clients_do() {
    let dir = certs("usage");
    let ca = dir.join("ca.crt");
    let missing = dir.join("missing.crt");
    for (args, says) in [
        (vec!["--ca", path(&ca)], "--ca is an option of --tls; add --tls"),
        (vec!["--insecure"], "--insecure is an option of --tls; add --tls"),
        (vec!["--tls"], "--tls needs --ca FILE"),
        (vec!["--tls", "--insecure", "--ca", path(&ca)], "use --ca FILE or --insecure, not both"),
        (vec!["--tls", "--ca", path(&missing)], "missing.crt"),
    ] {
        let mut all = vec!["127.0.0.1:9", "-d", "1"];
        all.extend(args.iter().copied());
        let (o, _) = stress(&all);
        assert_eq!(code(&o), 2, "{all:?}: {}", all_output(&o));
        assert!(stderr(&o).contains(says), "{all:?}: {}", all_output(&o));
        assert!(stdout(&o).is_empty(), "no run, no summary: {}", all_output(&o));
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
