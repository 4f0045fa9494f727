//! `progjar proxy` and TLS, the lesson of the course's TLS assignment, with
//! real processes on loopback: through the plain relay a TLS client's message
//! never shows (the proxy relays ciphertext); intercepting (`--intercept-cert`)
//! a client that checks nothing (`--insecure`, Python's `CERT_NONE`) is read in
//! plaintext, and one that checks (`--ca`) refuses the proxy's certificate.
//! Intercepting, every promise of the relay holds: backpressure both ways in
//! bounded memory, `close_notify` and the FIN passed on both ways, resets
//! passed on, bad clients and a realserver that does not speak TLS in plain
//! words, the handshakes within the setup timeout.

use progjar_testkit as common;

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::Instant;

use common::{
    client, code, connect, progjar_cert, python_tls_client, read_to_end, rss_kib, scratch_dir,
    server_side_queues, set_linger_zero, start_intercepting_proxy, start_proxy, start_server,
    start_tls_server, stderr, stdout, tls_connect, wait_until, RssSampler, Server, TlsPeer, MIB,
    STEP,
};
use progjar::cli::EXIT_TLS;
use rustls::{ServerConnection, StreamOwned};

const MESSAGE: &str = "INI ADALAH DATA YANG DIKIRIM ABCDEFGHIJKLMNOPQ";

/// Two `progjar cert` directories: the real server's and the proxy's (another
/// CA, so that a client trusting the real one refuses the proxy's).
fn certs(name: &str) -> (PathBuf, PathBuf) {
    let (real, mitm) = (
        scratch_dir("proxy-tls", &format!("{name}-real")),
        scratch_dir("proxy-tls", &format!("{name}-mitm")),
    );
    progjar_cert(&real);
    progjar_cert(&mitm);
    (real, mitm)
}

fn path(p: &Path) -> &str {
    p.to_str().expect("a UTF-8 temporary path")
}

/// `progjar client --tls ARGS... 127.0.0.1:PORT`.
fn tls_client(port: u16, args: &[&str]) -> std::process::Output {
    let host = format!("127.0.0.1:{port}");
    client(&[&["--tls"], args, &[&host]].concat(), None)
}

/// The proxy's log has no line with any part of the course's message.
fn assert_no_message(proxy: &Server) {
    let log = proxy.log_lines().join("\n");
    for part in ["INI ADALAH", "ADALAH DATA", "ABCDEFGHIJ"] {
        assert!(!log.contains(part), "the proxy saw {part:?}:\n{log}");
    }
}

/// A one-client TLS realserver on 127.0.0.1 with `dir`'s certificate
/// (rustls, blocking), in a thread: it runs `serve` on its connection once
/// the handshake is done. (`first`: data it sends as soon as TLS 1.3 lets
/// it, right after its handshake flight, before the client's Finished.)
struct Backend<T> {
    addr: SocketAddr,
    /// The proxy's port on the connection, once accepted.
    leg: mpsc::Receiver<u16>,
    /// What `serve` returned.
    done: mpsc::Receiver<T>,
}

type TlsServerStream = StreamOwned<ServerConnection, TcpStream>;

fn tls_backend<T: Send + 'static>(
    dir: &Path,
    serve: impl FnOnce(&mut TlsServerStream) -> T + Send + 'static,
) -> Backend<T> {
    tls_backend_first(dir, b"", serve)
}

fn tls_backend_first<T: Send + 'static>(
    dir: &Path,
    first: &'static [u8],
    serve: impl FnOnce(&mut TlsServerStream) -> T + Send + 'static,
) -> Backend<T> {
    let identity = progjar::tls::Identity::load(&dir.join("server.crt"), &dir.join("server.key"))
        .expect("the real server's identity");
    let config = identity.server_config().expect("a server config");
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().unwrap();
    let ((leg_tx, leg), (tx, done)) = (mpsc::channel(), mpsc::channel());
    thread::spawn(move || {
        let (sock, peer) = listener.accept().expect("accept");
        let _ = leg_tx.send(peer.port());
        sock.set_read_timeout(Some(STEP)).unwrap();
        sock.set_write_timeout(Some(STEP)).unwrap();
        let mut conn = ServerConnection::new(Arc::clone(&config)).expect("a TLS server");
        conn.writer().write_all(first).expect("the early data");
        let mut tls = StreamOwned::new(conn, sock);
        while tls.conn.is_handshaking() {
            tls.conn.complete_io(&mut tls.sock).expect("the handshake with the proxy");
        }
        let _ = tx.send(serve(&mut tls));
    });
    Backend { addr, leg, done }
}

impl<T> Backend<T> {
    /// What `serve` returned, waiting at most [`STEP`].
    fn outcome(&self) -> T {
        self.done.recv_timeout(STEP).expect("the backend's outcome")
    }
}

// ------------------------------------------------------------ the lesson

#[test]
fn through_the_plain_relay_a_tls_client_is_relayed_as_ciphertext() {
    let (real, mitm) = certs("plain");
    let server = start_tls_server(&real, &[]);
    let proxy = start_proxy(server.addr, &[]);
    let out = tls_client(proxy.addr.port(), &["--ca", path(&real.join("ca.crt"))]);
    assert_eq!(code(&out), 0, "{}", common::all_output(&out));
    assert!(stdout(&out).starts_with("sent 46 bytes, received 46 bytes, identical"));
    // What the relay logged: TLS records (a handshake record starts \x16\x03).
    // Python's quotes: b"..." when the bytes hold a ' and no " (the hello's
    // random bytes may).
    proxy.wait_for_log("closing connection from");
    let log = proxy.log_lines().join("\n");
    let hello = ["client b'\\x16\\x03", "client b\"\\x16\\x03"];
    assert!(hello.iter().any(|h| log.contains(h)), "no TLS record from the client:\n{log}");
    assert_no_message(&proxy);
    // And without TLS the same relay reads every byte.
    let plain = start_server(&[]);
    let proxy = start_proxy(plain.addr, &[]);
    let out = client(&["127.0.0.1", "--port", &proxy.port()], None);
    assert_eq!(code(&out), 0, "{}", common::all_output(&out));
    proxy.wait_for_log(&format!("INFO:proxy:received data from client b'{MESSAGE}'"));
    for dir in [real, mitm] {
        std::fs::remove_dir_all(dir).unwrap();
    }
}

#[test]
fn a_client_that_does_not_check_is_read_in_plaintext_and_gets_its_echo_exactly() {
    let (real, mitm) = certs("insecure");
    let server = start_tls_server(&real, &[]);
    let proxy = start_intercepting_proxy(server.addr, &mitm, &[]);
    proxy.wait_for_log("WARN:proxy:--intercept-cert: each client's TLS ends here");
    let out = tls_client(proxy.addr.port(), &["--insecure"]);
    assert_eq!(code(&out), 0, "{}", common::all_output(&out));
    assert!(stdout(&out).starts_with("sent 46 bytes, received 46 bytes, identical"));
    let quoted = format!("b'{MESSAGE}'");
    for line in [
        "the client took our certificate (TLS: TLS 1.3, ".to_string(),
        format!("INFO:proxy:received data from client {quoted}"),
        format!("INFO:proxy:sending to realserver {quoted}"),
        format!("INFO:proxy:received data from realserver {quoted}"),
        format!("INFO:proxy:sending to client {quoted}"),
        "no more data from client (after 46 bytes): passing its close_notify and FIN on to \
         realserver"
            .to_string(),
        "no more data from realserver (after 46 bytes): passing its close_notify and FIN on to \
         client"
            .to_string(),
    ] {
        proxy.wait_for_log(&line);
    }
    let close = proxy.wait_for_log("closing connection from 127.0.0.1:");
    assert!(close.contains("(peer closed): 92 bytes relayed in "), "{close}");
    // The realserver saw a whole TLS conversation end the normal way.
    let served = server.wait_for_log("closing connection from");
    assert!(served.contains("(peer closed): 46 bytes echoed"), "{served}");
    // Larger, in many records, both ways: every byte, in order.
    let out = tls_client(proxy.addr.port(), &["--insecure", "--size", "3MB"]);
    assert_eq!(code(&out), 0, "{}", common::all_output(&out));
    proxy.wait_for_log("relayed 2.0 MiB from realserver to client so far");
    let summary = proxy.stop();
    assert!(summary.contains("served 2 connections"), "{summary}");
    for dir in [real, mitm] {
        std::fs::remove_dir_all(dir).unwrap();
    }
}

#[test]
fn a_client_that_checks_refuses_the_proxys_certificate_and_nothing_is_read() {
    let (real, mitm) = certs("refused");
    let server = start_tls_server(&real, &[]);
    let proxy = start_intercepting_proxy(server.addr, &mitm, &[]);
    let ca = real.join("ca.crt");
    let out = tls_client(proxy.addr.port(), &["--ca", path(&ca)]);
    assert_eq!(code(&out), i32::from(EXIT_TLS), "{}", common::all_output(&out));
    let last = stderr(&out).lines().last().unwrap_or_default().to_string();
    let want = format!(
        "progjar: error: the server's certificate is not signed by {} (its issuer is CN=progjar CA ",
        ca.display()
    );
    assert!(last.starts_with(&want), "{last}");
    let close = proxy.wait_for_log("closing connection from");
    assert!(close.contains("(it refused our certificate"), "{close}");
    // Its realserver's side is reset: the realserver sees the conversation end.
    server.wait_for_log("(reset by peer)");
    assert_no_message(&proxy);
    for dir in [real, mitm] {
        std::fs::remove_dir_all(dir).unwrap();
    }
}

/// The course's client (Python's `ssl`, `CERT_NONE`) through the intercepting
/// proxy to progjar's TLS server: it gets its echo, and the proxy reads it.
#[test]
fn the_courses_python_client_is_intercepted() {
    let (real, mitm) = certs("python");
    let server = start_tls_server(&real, &[]);
    let proxy = start_intercepting_proxy(server.addr, &mitm, &[]);
    let out = python_tls_client("127.0.0.1", proxy.addr.port(), None);
    assert_eq!(code(&out), 0, "{}", common::all_output(&out));
    assert_eq!(stdout(&out).trim(), "echo identical");
    proxy.wait_for_log(&format!("INFO:proxy:received data from client b'{MESSAGE}\\r\\n\\r\\n'"));
    proxy.wait_for_log(&format!("INFO:proxy:sending to client b'{MESSAGE}\\r\\n\\r\\n'"));
    // And checking the CA, as a careful client would: refused.
    let out = python_tls_client("127.0.0.1", proxy.addr.port(), Some(&real.join("ca.crt")));
    assert_eq!(code(&out), 1, "{}", common::all_output(&out));
    assert!(stderr(&out).contains("CERTIFICATE_VERIFY_FAILED"), "{}", stderr(&out));
    for dir in [real, mitm] {
        std::fs::remove_dir_all(dir).unwrap();
    }
}

// --------------------------------------------------------- backpressure

/// A TLS client that sends and never reads, through the intercepting proxy to
/// the TLS echo server: the echo backs up to the proxy, the proxy stops
/// reading the realserver, which stops reading, and the proxy stops reading
/// the client. Its memory stays within the bounds; every byte comes back once
/// the client reads.
#[test]
fn a_client_that_never_reads_is_paused_both_ways_in_bounded_memory() {
    let (real, mitm) = certs("never-reads");
    let server = start_tls_server(&real, &["--max-pending", "256KiB"]);
    let proxy = start_intercepting_proxy(server.addr, &mitm, &["--max-pending", "256KiB"]);
    let pid = proxy.child.id();
    let before = rss_kib(pid);
    let sampler = RssSampler::start(pid);
    // A client that trusts the proxy's CA: the handshake is with the proxy.
    let mut peer = TlsPeer::connect(proxy.addr, &mitm.join("ca.crt"));
    let client_port = peer.sock.local_addr().unwrap().port();
    let sent = peer.send_until_stalled(0x5a);
    wait_until("the proxy to stop reading the client", || {
        server_side_queues(proxy.addr.port(), client_port).is_some_and(|(_, rx)| rx > 0)
    });
    let grown = sampler.peak().saturating_sub(before);
    // Two legs' unsent bytes (256 KiB + one read's records each), the
    // shared buffer's three parts, the allocator's slack: far below what went in.
    assert!(grown < 6 * 1024, "the proxy grew {grown} KiB while {sent} bytes went in");
    println!("{sent} bytes went in before the stall; the proxy grew {grown} KiB");
    assert!(sent > 4 * MIB as u64, "only {sent} bytes went in before the stall");
    drop(sampler);
    let mut back = Vec::new();
    wait_until("every byte back", || {
        // (rustls may still hold records the socket did not take: send them too)
        peer.send_some(&[]);
        peer.receive_some(&mut back);
        back.len() as u64 >= sent
    });
    assert_eq!(back.len() as u64, sent);
    assert!(back.iter().all(|&b| b == 0x5a), "the echo differs");
    for dir in [real, mitm] {
        std::fs::remove_dir_all(dir).unwrap();
    }
}

/// A TLS realserver that sends 32 MiB to a client that does not read yet: the
/// proxy stops reading the realserver, holds at most its bound, and the
/// client gets every byte, then the realserver's close_notify, when it reads.
#[test]
fn a_realserver_that_floods_a_client_that_does_not_read_is_paused() {
    let (real, mitm) = certs("floods");
    let total = 32 * MIB;
    let backend = tls_backend(&real, move |tls| {
        let mut go = [0u8; 2];
        tls.read_exact(&mut go).expect("the client's go");
        let chunk = common::random_bytes(MIB, 9);
        for _ in 0..total / MIB {
            tls.write_all(&chunk).expect("the backend's write");
        }
        tls.conn.send_close_notify();
        tls.flush().expect("close_notify");
    });
    let proxy = start_intercepting_proxy(backend.addr, &mitm, &["--max-pending", "256KiB"]);
    let pid = proxy.child.id();
    let before = rss_kib(pid);
    let sampler = RssSampler::start(pid);
    let mut tls = tls_connect(proxy.addr, &mitm.join("ca.crt"));
    tls.write_all(b"go").unwrap();
    tls.flush().unwrap();
    let leg = backend.leg.recv_timeout(STEP).expect("the proxy's connection");
    wait_until("the realserver's bytes to back up to the proxy", || {
        server_side_queues(leg, backend.addr.port()).is_some_and(|(_, rx)| rx > 0)
    });
    let grown = sampler.peak().saturating_sub(before);
    assert!(grown < 6 * 1024, "the proxy grew {grown} KiB");
    drop(sampler);
    let chunk = common::random_bytes(MIB, 9);
    let mut got = vec![0; MIB];
    for i in 0..total / MIB {
        tls.read_exact(&mut got).unwrap_or_else(|e| panic!("MiB {i}: {e}"));
        assert!(got == chunk, "MiB {i} differs");
    }
    let (rest, clean) = read_to_end(&mut tls);
    assert!(rest.is_empty() && clean, "the realserver's close_notify, passed on");
    for dir in [real, mitm] {
        std::fs::remove_dir_all(dir).unwrap();
    }
}

/// A budget for all connections together far below one connection's bound:
/// intercepted connections owed bytes pause on it (their TLS buffers counted
/// in it), and every byte still arrives.
#[test]
fn a_tiny_total_budget_pauses_intercepted_clients_and_every_byte_still_arrives() {
    let (real, mitm) = certs("budget");
    let server = start_tls_server(&real, &[]);
    let proxy = start_intercepting_proxy(server.addr, &mitm, &["--max-pending-total", "64KiB"]);
    let port = proxy.addr.port();
    let clients: Vec<_> = (0..4)
        .map(|_| thread::spawn(move || tls_client(port, &["--insecure", "--size", "4MB"])))
        .collect();
    for (i, c) in clients.into_iter().enumerate() {
        let out = c.join().unwrap();
        assert_eq!(code(&out), 0, "client {i}: {}", common::all_output(&out));
        assert!(stdout(&out).contains(", identical, "), "client {i}: {}", stdout(&out));
    }
    let summary = proxy.stop();
    assert!(summary.contains("served 4 connections, relayed 33,554,432 bytes"), "{summary}");
    for dir in [real, mitm] {
        std::fs::remove_dir_all(dir).unwrap();
    }
}

// ------------------------------------------------------------ half-close

#[test]
fn the_clients_close_notify_reaches_the_realserver_which_answers_after_it() {
    let (real, mitm) = certs("client-end");
    // A server that answers only once the client has finished.
    let backend = tls_backend(&real, |tls| {
        let mut got = Vec::new();
        tls.read_to_end(&mut got).expect("read to the client's close_notify");
        tls.write_all(format!("got {} bytes", got.len()).as_bytes()).unwrap();
        tls.conn.send_close_notify();
        tls.flush().unwrap();
        let _ = tls.sock.shutdown(Shutdown::Write);
    });
    let proxy = start_intercepting_proxy(backend.addr, &mitm, &[]);
    let mut tls = tls_connect(proxy.addr, &mitm.join("ca.crt"));
    tls.write_all(&common::random_bytes(100_000, 3)).unwrap();
    tls.conn.send_close_notify();
    tls.flush().unwrap();
    tls.sock.shutdown(Shutdown::Write).unwrap();
    assert_eq!(read_to_end(&mut tls), (b"got 100000 bytes".to_vec(), true));
    proxy.wait_for_log("no more data from client (after 100,000 bytes): passing its close_notify");
    let close = proxy.wait_for_log("closing connection from");
    assert!(close.contains("(peer closed)"), "{close}");
    for dir in [real, mitm] {
        std::fs::remove_dir_all(dir).unwrap();
    }
}

#[test]
fn the_realservers_close_notify_reaches_the_client_which_may_still_send() {
    let (real, mitm) = certs("server-end");
    let backend = tls_backend(&real, |tls| {
        tls.write_all(b"hello, then my close_notify").unwrap();
        tls.conn.send_close_notify();
        tls.flush().unwrap();
        tls.sock.shutdown(Shutdown::Write).unwrap();
        let mut got = Vec::new();
        tls.read_to_end(&mut got).expect("read to the client's end");
        got
    });
    let proxy = start_intercepting_proxy(backend.addr, &mitm, &[]);
    let mut tls = tls_connect(proxy.addr, &mitm.join("ca.crt"));
    assert_eq!(read_to_end(&mut tls), (b"hello, then my close_notify".to_vec(), true));
    // Half-closed by the realserver: our direction still flows.
    tls.write_all(b"late words").unwrap();
    tls.conn.send_close_notify();
    tls.flush().unwrap();
    tls.sock.shutdown(Shutdown::Write).unwrap();
    assert_eq!(backend.outcome(), b"late words");
    let close = proxy.wait_for_log("closing connection from");
    assert!(close.contains("(peer closed)"), "{close}");
    for dir in [real, mitm] {
        std::fs::remove_dir_all(dir).unwrap();
    }
}

/// At SIGTERM the proxy gives open connections `--grace`, then ends their
/// output the TLS way: `close_notify`, then the FIN, on both legs.
#[test]
fn a_graceful_stop_sends_close_notify_on_both_legs() {
    let (real, mitm) = certs("stop");
    let backend = tls_backend(&real, read_to_end_of);
    let proxy = start_intercepting_proxy(backend.addr, &mitm, &["--grace", "300ms"]);
    let mut tls = tls_connect(proxy.addr, &mitm.join("ca.crt"));
    tls.write_all(b"still here").unwrap();
    tls.flush().unwrap();
    proxy.wait_for_log("sending to realserver b'still here'");
    proxy.signal(libc::SIGTERM);
    assert_eq!(read_to_end(&mut tls), (Vec::new(), true), "the client gets close_notify");
    assert_eq!(backend.outcome(), (b"still here".to_vec(), true), "so does the realserver");
    let mut proxy = proxy;
    assert!(proxy.wait_exit().success(), "{:?}", proxy.log_lines());
    for dir in [real, mitm] {
        std::fs::remove_dir_all(dir).unwrap();
    }
}

/// Read until the peer ends: what came, and whether it ended with `close_notify`.
fn read_to_end_of(tls: &mut TlsServerStream) -> (Vec<u8>, bool) {
    let mut got = Vec::new();
    let mut buf = [0; 4096];
    loop {
        match tls.read(&mut buf) {
            Ok(0) => return (got, true),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::UnexpectedEof => return (got, false),
            Err(e) => panic!("reading the proxy: {e}"),
        }
    }
}

/// A realserver that speaks first, in TLS 1.3's "0.5-RTT" data right after its
/// handshake flight: the proxy decrypts it before the client's leg has a
/// handshake to encrypt it with, keeps it (one read's worth, counted), and
/// the client gets it once its own handshake is done.
#[test]
fn a_realserver_that_speaks_first_is_heard_once_the_clients_handshake_is_done() {
    let (real, mitm) = certs("first");
    let backend = tls_backend_first(&real, b"220 mesin1 ready", read_to_end_of);
    let proxy = start_intercepting_proxy(backend.addr, &mitm, &[]);
    let mut tls = tls_connect(proxy.addr, &mitm.join("ca.crt"));
    let mut banner = [0; 16];
    tls.read_exact(&mut banner).unwrap();
    assert_eq!(&banner, b"220 mesin1 ready");
    proxy.wait_for_log("received data from realserver b'220 mesin1 ready'");
    tls.write_all(b"QUIT").unwrap();
    tls.conn.send_close_notify();
    tls.flush().unwrap();
    assert_eq!(backend.outcome(), (b"QUIT".to_vec(), true));
    for dir in [real, mitm] {
        std::fs::remove_dir_all(dir).unwrap();
    }
}

// ------------------------------------------------------ resets, bad peers

#[test]
fn a_client_reset_resets_the_realservers_side() {
    let (real, mitm) = certs("reset");
    let backend = tls_backend(&real, |tls| {
        let mut first = [0u8; 5];
        tls.read_exact(&mut first).expect("the client's first bytes");
        let mut rest = Vec::new();
        tls.read_to_end(&mut rest).map_err(|e| e.kind())
    });
    let proxy = start_intercepting_proxy(backend.addr, &mitm, &[]);
    let mut tls = tls_connect(proxy.addr, &mitm.join("ca.crt"));
    tls.write_all(b"hello").unwrap();
    tls.flush().unwrap();
    proxy.wait_for_log("sending to realserver b'hello'");
    set_linger_zero(&tls.sock);
    drop(tls);
    assert_eq!(backend.outcome(), Err(ErrorKind::ConnectionReset));
    proxy.wait_for_log("the client's side ended");
    for dir in [real, mitm] {
        std::fs::remove_dir_all(dir).unwrap();
    }
}

/// A realserver that does not speak TLS (the plaintext echo server sends our
/// hello back): the client is reset before its hello was answered, and told;
/// the proxy says why in one line.
#[test]
fn a_realserver_that_does_not_speak_tls_is_one_line_and_the_client_is_told() {
    let (real, mitm) = certs("not-tls");
    let plain = start_server(&[]);
    let proxy = start_intercepting_proxy(plain.addr, &mitm, &[]);
    let out = tls_client(proxy.addr.port(), &["--insecure"]);
    assert_eq!(code(&out), i32::from(EXIT_TLS), "{}", common::all_output(&out));
    let last = stderr(&out).lines().last().unwrap_or_default().to_string();
    assert!(last.contains("reset the connection during the TLS handshake"), "{last}");
    let line = proxy.wait_for_log("TLS with the realserver failed");
    assert!(line.starts_with("WARN:proxy:127.0.0.1:"), "{line}");
    assert!(line.contains("sent our own TLS hello back: it is a plaintext server"), "{line}");
    assert!(line.ends_with("resetting the client"), "{line}");
    assert_eq!(proxy.log_count("TLS with the realserver failed"), 1);
    let close = proxy.wait_for_log("closing connection from");
    assert!(close.contains("(its realserver's TLS failed)"), "{close}");
    // A realserver that takes the connection and never answers our hello:
    // the setup timeout bounds its handshake.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let to = listener.local_addr().unwrap();
    let proxy = start_intercepting_proxy(to, &mitm, &["--connect-timeout", "300ms"]);
    let out = tls_client(proxy.addr.port(), &["--insecure"]);
    assert_eq!(code(&out), i32::from(EXIT_TLS), "{}", common::all_output(&out));
    let line = proxy.wait_for_log("TLS with the realserver failed");
    assert!(line.contains("did not finish within --connect-timeout"), "{line}");
    drop(listener);
    for dir in [real, mitm] {
        std::fs::remove_dir_all(dir).unwrap();
    }
}

/// A plaintext client and a silent one, each one close line in plain words;
/// the setup timeout bounds the handshakes.
#[test]
fn a_client_that_is_not_tls_or_says_nothing_is_one_close_line() {
    let (real, mitm) = certs("bad-clients");
    let server = start_tls_server(&real, &[]);
    let proxy = start_intercepting_proxy(server.addr, &mitm, &["--connect-timeout", "500ms"]);
    let mut s = connect(proxy.addr);
    s.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
    let port = s.local_addr().unwrap().port();
    let close = proxy.wait_for_close(port);
    assert!(close.contains("(it does not speak TLS, its first bytes are plain text"), "{close}");
    let silent = connect(proxy.addr);
    let started = Instant::now();
    let close = proxy.wait_for_close(silent.local_addr().unwrap().port());
    assert!(close.contains("(its TLS handshake did not finish within --connect-timeout)"));
    assert!(started.elapsed() < STEP, "closed after {:?}", started.elapsed());
    // One that connects and leaves without a word (a port check): closed at once, quietly.
    let quiet = connect(proxy.addr);
    let port = quiet.local_addr().unwrap().port();
    drop(quiet);
    let close = proxy.wait_for_close(port);
    assert!(close.contains("(peer closed): 0 bytes relayed"), "{close}");
    // Someone owed nothing is served all the while.
    let out = tls_client(proxy.addr.port(), &["--insecure"]);
    assert_eq!(code(&out), 0, "{}", common::all_output(&out));
    for dir in [real, mitm] {
        std::fs::remove_dir_all(dir).unwrap();
    }
}

#[test]
fn intercept_options_come_in_pairs_and_bad_files_are_one_sentence() {
    let (real, mitm) = certs("options");
    let crt = mitm.join("server.crt");
    let (status, err) = common::run_failing(
        &[],
        &["proxy", "--to", "127.0.0.1:12000", "--intercept-cert", path(&crt)],
    );
    assert_eq!(status, Some(2), "{err}");
    assert!(err.contains("--intercept-cert needs --intercept-key, the certificate's key"), "{err}");
    // The real server's key with the proxy's certificate: refused at start.
    let key = real.join("server.key");
    let (status, err) = common::run_failing(
        &[],
        &[
            "proxy",
            "--to",
            "127.0.0.1:12000",
            "--intercept-cert",
            path(&crt),
            "--intercept-key",
            path(&key),
        ],
    );
    assert_eq!(status, Some(2), "{err}");
    assert!(err.contains("is not the key of the certificate in"), "{err}");
    for dir in [real, mitm] {
        std::fs::remove_dir_all(dir).unwrap();
    }
}

// ------------------------------------------------------------ measured

/// The proxy's resident memory grown per relayed client, over `n` clients
/// opened by `open` and left idle, in bytes.
fn memory_per_client(proxy: &Server, n: usize, mut open: impl FnMut() -> Box<dyn Send>) -> f64 {
    let pid = proxy.child.id();
    // Warm up: the first clients touch the code and the allocator's arenas.
    let warm: Vec<_> = (0..50).map(|_| open()).collect();
    let before = rss_kib(pid);
    let held: Vec<_> = (0..n).map(|_| open()).collect();
    proxy.wait_for_open(n + warm.len());
    let after = rss_kib(pid);
    drop((held, warm));
    (after.saturating_sub(before) * 1024) as f64 / n as f64
}

/// Measured, not asserted (docs/proxy.md has the figures): run with
/// `cargo test --release --test proxy_tls -- --ignored --nocapture memory`.
#[test]
#[ignore]
fn memory_per_idle_intercepted_client_after_one_echo() {
    common::raise_nofile(12_000);
    let (real, mitm) = certs("memory");
    let ca = mitm.join("ca.crt");
    for n in [1000, 5000] {
        let plain = start_server(&[]);
        let relay = start_proxy(plain.addr, &[]);
        let per_plain = memory_per_client(&relay, n, || {
            let mut s = connect(relay.addr);
            common::assert_echo(&mut s, &[b'x'; 64]);
            Box::new(s)
        });
        let server = start_tls_server(&real, &[]);
        let proxy = start_intercepting_proxy(server.addr, &mitm, &[]);
        let per_tls = memory_per_client(&proxy, n, || {
            let mut s = tls_connect(proxy.addr, &ca);
            s.write_all(&[b'x'; 64]).unwrap();
            let mut echo = [0; 64];
            s.read_exact(&mut echo).unwrap();
            Box::new(s)
        });
        println!(
            "{n} idle relayed clients after one 64-byte echo: plain relay {per_plain:.0} B each, \
             intercepting {per_tls:.0} B each"
        );
    }
    for dir in [real, mitm] {
        std::fs::remove_dir_all(dir).unwrap();
    }
}

/// Proxy CPU time per 64-byte echo over 50 established connections: the
/// plain relay (plaintext clients), and intercepting (TLS clients, TLS
/// realserver): run with
/// `cargo test --release --test proxy_tls -- --ignored --nocapture cpu`.
#[test]
#[ignore]
fn cpu_per_intercepted_echo_at_50_connections() {
    let (real, mitm) = certs("cpu");
    let echoes = |pid: u32, conns: &mut [Box<dyn ReadWrite>]| {
        let (before, rounds) = (common::cpu_time(pid), 2000);
        let mut echo = [0; 64];
        for _ in 0..rounds {
            for c in conns.iter_mut() {
                c.write_all(&[b'y'; 64]).unwrap();
            }
            for c in conns.iter_mut() {
                c.read_exact(&mut echo).unwrap();
            }
        }
        (common::cpu_time(pid) - before).as_secs_f64() * 1e6 / (rounds * conns.len()) as f64
    };
    let plain = start_server(&[]);
    let relay = start_proxy(plain.addr, &[]);
    let mut plain_conns: Vec<Box<dyn ReadWrite>> = (0..50)
        .map(|_| {
            let s = connect(relay.addr);
            s.set_nodelay(true).unwrap();
            Box::new(s) as Box<dyn ReadWrite>
        })
        .collect();
    let server = start_tls_server(&real, &[]);
    let proxy = start_intercepting_proxy(server.addr, &mitm, &[]);
    let mut tls_conns: Vec<Box<dyn ReadWrite>> = (0..50)
        .map(|_| Box::new(tls_connect(proxy.addr, &mitm.join("ca.crt"))) as Box<dyn ReadWrite>)
        .collect();
    let through_relay = echoes(relay.child.id(), &mut plain_conns);
    let (before, intercepting) =
        (common::cpu_time(server.child.id()), echoes(proxy.child.id(), &mut tls_conns));
    let server_cpu = (common::cpu_time(server.child.id()) - before).as_secs_f64() * 1e6 / 100_000.0;
    println!(
        "64-byte echoes over 50 connections: proxy CPU per echo, plain relay {through_relay:.2} µs, \
         intercepting {intercepting:.2} µs (the TLS server behind it: {server_cpu:.2} µs)"
    );
    for dir in [real, mitm] {
        std::fs::remove_dir_all(dir).unwrap();
    }
}

/// A connection of either kind, for the measurements.
trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}
