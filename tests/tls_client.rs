//! `progjar client --tls` against TLS servers that are not progjar: the course's
//! Python `ssl` server (`tools/lab/course_tls_server.py`), `openssl s_server`, a
//! rustls echo server in this test that stops reading while it writes, and the
//! course's relay in the middle. Every certificate check that fails is one
//! sentence and exit 9; `--insecure` connects and says what that allows.

use progjar_testkit as common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::Output;
use std::sync::Arc;
use std::thread;

use common::{
    client, code, course_pair, progjar, run, scratch_dir, self_signed, start_course_proxy,
    start_course_tls_server, start_s_server_rev, start_server, stderr, stdout,
};
use progjar::cli::{EXIT_TLS, EXIT_USAGE};
use progjar::client::INSECURE_WARNING;
use progjar::tls::Identity;

/// `progjar cert DIR`: a CA and a server certificate it signs, for the lab's names.
fn make_certs(dir: &Path) {
    let out = run(progjar().arg("cert").arg(dir), None);
    assert_eq!(code(&out), 0, "{}", common::all_output(&out));
}

/// `progjar client --tls ARGS...`.
fn tls_client(args: &[&str]) -> Output {
    client(&[&["--tls"], args].concat(), None)
}

fn path(p: &Path) -> &str {
    p.to_str().expect("a UTF-8 temporary path")
}

/// The client failed a TLS check: exit 9, nothing sent, and this one line.
fn assert_refused(out: &Output, line: &str) {
    assert_eq!(code(out), i32::from(EXIT_TLS), "{}", common::all_output(out));
    assert!(stdout(out).is_empty(), "{}", common::all_output(out));
    let last = stderr(out).lines().last().unwrap_or("").to_string();
    assert!(last.starts_with(&format!("progjar: error: {line}")), "{last:?}\n  is not\n{line:?}");
}

#[test]
fn ca_checks_the_courses_python_tls_server_and_the_echo_comes_back() {
    let dir = scratch_dir("tls", "ca");
    make_certs(&dir);
    let server = start_course_tls_server(&dir.join("server.crt"), &dir.join("server.key"));
    let ca = dir.join("ca.crt");
    // By address (checked as an IP name) and by name.
    for host in [format!("127.0.0.1:{}", server.port()), format!("localhost:{}", server.port())] {
        let out = tls_client(&["--ca", path(&ca), &host]);
        assert_eq!(code(&out), 0, "{}", common::all_output(&out));
        assert!(stdout(&out).starts_with("sent 46 bytes, received 46 bytes, identical"));
        let log = stderr(&out);
        for expected in [
            "INFO:client:TLS 1.3, cipher suite TLS13_",
            "INFO:client:server certificate: subject CN=localhost, names localhost, 127.0.0.1, \
             mesin1, mesin2, mesin3, mesin4, 172.16.16.101",
            ", issued by CN=progjar CA ",
            "INFO:client:sent 46 bytes; sending close_notify and shutting down our side for \
             writing (FIN)",
            "INFO:client:b'INI ADALAH DATA '",
        ] {
            assert!(log.contains(expected), "no {expected:?} in\n{log}");
        }
    }
    // The server saw the end of the data (our close_notify) and closed.
    server.wait_for_log_count("INFO:root:received b''", 2);
    // A payload larger than every buffer between us: the server's sendall blocks
    // until we read, so the reader must never wait for the writer's lock.
    let port = format!("127.0.0.1:{}", server.port());
    let out = tls_client(&["--ca", path(&ca), &port, "--size", "2MB"]);
    assert_eq!(code(&out), 0, "{}", common::all_output(&out));
    assert!(stdout(&out).starts_with("sent 2,097,152 bytes, received 2,097,152 bytes, identical"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn insecure_connects_to_the_courses_expired_certificate_and_says_what_that_allows() {
    let dir = scratch_dir("tls", "insecure");
    let (crt, key) = course_pair(&dir);
    let server = start_course_tls_server(&crt, &key);
    let out = tls_client(&["--insecure", &format!("localhost:{}", server.port())]);
    assert_eq!(code(&out), 0, "{}", common::all_output(&out));
    assert!(stdout(&out).starts_with("sent 46 bytes, received 46 bytes, identical"));
    let log = stderr(&out);
    assert!(log.starts_with(&format!("WARN:client:{INSECURE_WARNING}\n")), "{log}");
    assert!(INSECURE_WARNING.contains(
        "anyone in the middle can pretend to be the server and read and change everything"
    ));
    assert!(log.contains(
        "INFO:client:server certificate: subject CN=localhost, names none, valid from \
         2025-04-22 00:00 UTC until 2026-04-22 00:00 UTC, issued by itself (self-signed)"
    ));
    assert!(log.contains("WARN:client:the certificate above was not checked (--insecure)"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_courses_expired_certificate_is_refused_with_the_day_it_expired() {
    let dir = scratch_dir("tls", "expired");
    let (crt, key) = course_pair(&dir);
    let server = start_course_tls_server(&crt, &key);
    let host = format!("localhost:{}", server.port());
    // Trusted as the course trusts it (load_verify_locations('domain.crt')): only its date fails.
    let out = tls_client(&["--ca", path(&crt), &host]);
    assert_refused(&out, "the server's certificate expired on 2026-04-22 (today is ");
    // The server was told why (the alert), logged it and went on to the next client.
    server.wait_for_log("WARNING:root:error: ");
    // Trusting another CA, who signed it matters more than its date.
    let other = scratch_dir("tls", "expired-other");
    make_certs(&other);
    let out = tls_client(&["--ca", path(&other.join("ca.crt")), &host]);
    let ca = other.join("ca.crt");
    assert_refused(
        &out,
        &format!("the server's certificate is self-signed and not in {}", ca.display()),
    );
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::remove_dir_all(&other).unwrap();
}

#[test]
fn a_wrong_name_or_another_ca_is_one_sentence() {
    let dir = scratch_dir("tls", "names");
    make_certs(&dir);
    let server = start_course_tls_server(&dir.join("server.crt"), &dir.join("server.key"));
    let host = format!("127.0.0.1:{}", server.port());
    let ca = dir.join("ca.crt");
    let out = tls_client(&["--ca", path(&ca), &host, "--server-name", "172.16.16.105"]);
    assert_refused(
        &out,
        "the server's certificate is for localhost, 127.0.0.1, mesin1, mesin2, mesin3, mesin4, \
         172.16.16.101, 172.16.16.102, 172.16.16.103 and 172.16.16.104, not 172.16.16.105",
    );
    let out = tls_client(&["--ca", path(&ca), &host, "--server-name", "mesin9"]);
    assert_refused(&out, "the server's certificate is for localhost, ");
    // A certificate signed by another run's CA.
    let other = scratch_dir("tls", "names-other");
    make_certs(&other);
    let out = tls_client(&["--ca", path(&other.join("ca.crt")), &host]);
    let line = format!(
        "the server's certificate is not signed by {} (its issuer is CN=progjar CA ",
        other.join("ca.crt").display()
    );
    assert_refused(&out, &line);
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::remove_dir_all(&other).unwrap();
}

#[test]
fn a_self_signed_certificate_listed_in_ca_is_trusted_as_openssls_cafile_does() {
    let dir = scratch_dir("tls", "listed");
    // openssl req -x509 makes a CA (CA:TRUE), which webpki refuses as a server's own.
    let san = "subjectAltName=DNS:localhost,IP:127.0.0.1";
    let (crt, key) = self_signed(&dir, "own", &["-newkey", "rsa:2048", "-addext", san]);
    let server = start_course_tls_server(&crt, &key);
    let out = tls_client(&["--ca", path(&crt), &format!("127.0.0.1:{}", server.port())]);
    assert_eq!(code(&out), 0, "{}", common::all_output(&out));
    // Its name is still checked; the course's has no subjectAltName at all.
    let (bare, bare_key) = self_signed(&dir, "bare", &["-newkey", "rsa:2048"]);
    let server = start_course_tls_server(&bare, &bare_key);
    let out = tls_client(&["--ca", path(&bare), &format!("localhost:{}", server.port())]);
    assert_refused(
        &out,
        "the server's certificate names no host (it has no subjectAltName, and its subject \
         CN=localhost is not a name to a client), so it is not for localhost",
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn openssl_s_server_reverses_a_palindrome_back_whole() {
    let dir = scratch_dir("tls", "s_server");
    make_certs(&dir);
    let server = start_s_server_rev(&dir.join("server.crt"), &dir.join("server.key"));
    let host = format!("127.0.0.1:{}", server.port());
    let out =
        tls_client(&["--ca", path(&dir.join("ca.crt")), &host, "--message", "KASUR INI RUSAK\n"]);
    assert_eq!(code(&out), 0, "{}", common::all_output(&out));
    assert!(stdout(&out).starts_with("sent 16 bytes, received 16 bytes, identical"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn through_the_course_proxy_the_relay_sees_only_ciphertext() {
    let dir = scratch_dir("tls", "proxy");
    make_certs(&dir);
    let server = start_course_tls_server(&dir.join("server.crt"), &dir.join("server.key"));
    let proxy = start_course_proxy(server.addr);
    let host = format!("127.0.0.1:{}", proxy.port());
    let out = tls_client(&["--ca", path(&dir.join("ca.crt")), &host]);
    // The relay passes our close_notify (it is data) but never the server's FIN
    // back: the echo is complete and the client says the server never closed.
    assert_eq!(code(&out), 0, "{}", common::all_output(&out));
    let summary = stdout(&out);
    assert!(summary.starts_with("sent 46 bytes, received 46 bytes, identical"), "{summary}");
    assert!(summary.contains("the server never closed the connection"), "{summary}");
    // What the relay logged: TLS records (a handshake record starts \x16\x03), never
    // the message. Python quotes bytes with " when they hold a ' (and no "): the
    // hello's random bytes do, one time in thirteen.
    proxy.wait_for_log("WARNING:root:received data from client b");
    proxy.wait_for_log("WARNING:root:sending to client b");
    let log = proxy.log_lines().join("\n");
    let hello = ["client b'\\x16\\x03", "client b\"\\x16\\x03"];
    assert!(hello.iter().any(|h| log.contains(h)), "no TLS record from the client:\n{log}");
    for plain in ["INI ADALAH", "ADALAH DATA", "ABCDEFGHIJ"] {
        assert!(!log.contains(plain), "the relay saw {plain:?}:\n{log}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_plaintext_server_is_named_as_one() {
    let server = start_server(&[]);
    let out = tls_client(&["--insecure", &format!("127.0.0.1:{}", server.port())]);
    assert_refused(
        &out,
        "the server sent our own TLS hello back: it is a plaintext echo server (leave out --tls, \
         or start the server with TLS)",
    );
}

#[test]
fn tls_options_alone_or_a_bad_ca_file_are_usage_errors_before_connecting() {
    let port = common::closed_port().to_string();
    let host = format!("127.0.0.1:{port}");
    for (args, line) in [
        (vec!["--tls", &host], "progjar: --tls needs --ca FILE"),
        (vec!["--ca", "ca.crt", &host], "progjar: --ca is an option of --tls; add --tls"),
        (vec!["--insecure", &host], "progjar: --insecure is an option of --tls; add --tls"),
        (vec!["--tls", "--insecure", "--ca", "ca.crt", &host], "progjar: use --ca FILE or --insecure, not both"),
        (
            vec!["--tls", "--ca", "/nonexistent/ca.crt", &host],
            "progjar: error: cannot read /nonexistent/ca.crt: No such file or directory (os error 2)",
        ),
    ] {
        let out = client(&args, None);
        assert_eq!(code(&out), i32::from(EXIT_USAGE), "{args:?}: {}", common::all_output(&out));
        let err = stderr(&out);
        assert!(err.starts_with(line) && err.lines().count() == 1, "{args:?}: {err}");
    }
}

/// A rustls echo server in this process, one connection at a time, that stops
/// reading while a write blocks (the course's servers and progjar's plaintext
/// server behave alike): the client must keep reading the echo while its writer
/// is stuck, or both wait forever.
fn rustls_echo_server(dir: &Path) -> SocketAddr {
    let identity = Identity::load(&dir.join("server.crt"), &dir.join("server.key")).unwrap();
    let config = identity.server_config().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    thread::spawn(move || {
        for socket in listener.incoming() {
            let conn = rustls::ServerConnection::new(Arc::clone(&config)).unwrap();
            let mut tls = rustls::StreamOwned::new(conn, socket.unwrap());
            let mut buf = vec![0; 64 * 1024];
            while let Ok(n @ 1..) = tls.read(&mut buf) {
                if tls.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
            tls.conn.send_close_notify();
            let _ = tls.flush();
        }
    });
    addr
}

#[test]
fn sixteen_mib_through_a_server_that_stops_reading_while_it_writes() {
    let dir = scratch_dir("tls", "blocking");
    make_certs(&dir);
    let addr = rustls_echo_server(&dir);
    let out = tls_client(&["--ca", path(&dir.join("ca.crt")), &addr.to_string(), "--size", "16MB"]);
    assert_eq!(code(&out), 0, "{}", common::all_output(&out));
    assert!(stdout(&out).starts_with("sent 16,777,216 bytes, received 16,777,216 bytes, identical"));
    std::fs::remove_dir_all(&dir).unwrap();
}
