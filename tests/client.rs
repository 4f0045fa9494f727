//! `progjar client` against real sockets on 127.0.0.1 / ::1: the lead's mio
//! server, the course's iterative Python server, and small misbehaving servers
//! written here (corrupting, closing early, sending too much, mute).
//!
//! Every wait is bounded: commands run through `common::run` (killed after
//! `common::STEP`), and the in-test servers serve one connection and stop.

use progjar_testkit as common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::mpsc;
use std::thread;

use common::{
    client, closed_port, code, one_shot_server, progjar, random_bytes, start_server,
    start_server_with, stderr, stdout, Server,
};

const MESSAGE: &str = "INI ADALAH DATA YANG DIKIRIM ABCDEFGHIJKLMNOPQ";

/// The logged echo pieces (`INFO:client:b'...'`), in order.
fn pieces(out: &Output) -> Vec<String> {
    stderr(out)
        .lines()
        .filter_map(|l| l.strip_prefix("INFO:client:"))
        .filter(|l| l.starts_with("b'") || l.starts_with("b\""))
        .map(String::from)
        .collect()
}

/// A fresh file under cargo's per-test temporary directory.
fn temp_file(name: &str, content: &[u8]) -> PathBuf {
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("client-{}-{name}", std::process::id()));
    std::fs::write(&path, content).expect("write temp file");
    path
}

// ---------------------------------------------------------------------------
// Against the lead's server

#[test]
fn default_message_is_echoed_in_16_byte_pieces() {
    let server = start_server(&[]);
    let out = client(&["127.0.0.1", "--port", &server.port()], None);
    assert_eq!(code(&out), 0, "stderr: {}", stderr(&out));
    let log = stderr(&out);
    assert!(
        log.contains(&format!("INFO:client:connecting to 127.0.0.1:{}\n", server.port())),
        "{log}"
    );
    assert!(log.contains(&format!("INFO:client:sending {MESSAGE}\n")), "{log}");
    assert_eq!(pieces(&out), ["b'INI ADALAH DATA '", "b'YANG DIKIRIM ABC'", "b'DEFGHIJKLMNOPQ'"]);
    assert!(log.ends_with("INFO:client:closing\n"), "{log}");
    let summary = stdout(&out);
    assert_eq!(summary.lines().count(), 1, "{summary}");
    assert!(summary.starts_with("sent 46 bytes, received 46 bytes, identical, "), "{summary}");
}

#[test]
fn localhost_is_the_default_host_and_resolves() {
    let server = start_server(&[]);
    let out = client(&["--port", &server.port(), "--message", "hi"], None);
    assert_eq!(code(&out), 0, "stderr: {}", stderr(&out));
    assert_eq!(pieces(&out), ["b'hi'"]);
}

#[test]
fn chunk_sets_the_piece_size() {
    let server = start_server(&[]);
    let out = client(&["127.0.0.1", "--port", &server.port(), "--chunk", "32"], None);
    assert_eq!(code(&out), 0, "stderr: {}", stderr(&out));
    assert_eq!(pieces(&out), ["b'INI ADALAH DATA YANG DIKIRIM ABC'", "b'DEFGHIJKLMNOPQ'"]);
}

#[test]
fn eight_mib_file_comes_back_identical_through_small_server_buffers() {
    // --max-pending 64K: the server stops reading us once 64 KiB of echo wait,
    // so a client that sent everything before reading would deadlock here.
    let server = start_server(&["--max-pending", "64K"]);
    let data = random_bytes(8 << 20, 1);
    let path = temp_file("8mib", &data);
    let out =
        client(&["127.0.0.1", "--port", &server.port(), "--file", path.to_str().unwrap()], None);
    std::fs::remove_file(&path).ok();
    assert_eq!(code(&out), 0, "stderr: {}", stderr(&out));
    let log = stderr(&out);
    assert!(log.contains("INFO:client:sending file content (8,388,608 bytes)\n"), "{log}");
    assert!(pieces(&out).is_empty(), "a large echo logs progress, not pieces");
    assert!(
        stdout(&out).starts_with("sent 8,388,608 bytes, received 8,388,608 bytes, identical, "),
        "{}",
        stdout(&out)
    );
}

#[test]
fn standard_input_is_sent_with_dash() {
    let server = start_server(&[]);
    let out =
        client(&["127.0.0.1", "--port", &server.port(), "--file", "-"], Some(b"halo\n".to_vec()));
    assert_eq!(code(&out), 0, "stderr: {}", stderr(&out));
    assert!(stderr(&out).contains("INFO:client:sending standard input\n"));
    assert_eq!(pieces(&out), ["b'halo\\n'"]);
    assert!(stdout(&out).starts_with("sent 5 bytes, received 5 bytes, identical, "));
}

#[test]
fn large_standard_input_switches_to_progress() {
    let server = start_server(&[]);
    let data = random_bytes(3 << 20, 2);
    let out = client(&["127.0.0.1", "--port", &server.port(), "--file", "-"], Some(data));
    assert_eq!(code(&out), 0, "stderr: {}", stderr(&out));
    // Of a stream of unknown size, the first 8 pieces are shown, then progress.
    assert_eq!(pieces(&out).len(), 8, "{}", stderr(&out));
    assert!(stderr(&out).contains(
        "INFO:client:8 pieces shown; from here on, progress every 1 s \
         (RUST_LOG=debug shows every piece)\n"
    ));
    assert!(stdout(&out).starts_with("sent 3,145,728 bytes, received 3,145,728 bytes, identical, "));
}

#[test]
fn ipv6_literal() {
    if TcpListener::bind("[::1]:0").is_err() {
        eprintln!("no IPv6 loopback here; skipping");
        return;
    }
    let server = start_server_with(progjar().args(["server", "--bind", "::1", "--port", "0"]));
    for host in ["::1", "[::1]"] {
        let out = client(&[host, "--port", &server.port()], None);
        assert_eq!(code(&out), 0, "stderr: {}", stderr(&out));
        assert!(
            stderr(&out).contains(&format!("INFO:client:connecting to [::1]:{}\n", server.port()))
        );
    }
}

// ---------------------------------------------------------------------------
// Against the course's iterative Python server

/// The course's own server (`tools/lab/course_server.py`, the lab's too):
/// SO_REUSEADDR, listen(1), recv(32) + sendall until recv returns b'', close,
/// accept the next. It prints its address first, like ours.
fn course_server() -> Server {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tools/lab/course_server.py");
    start_server_with(Command::new("python3").args([script, "0", "127.0.0.1"]))
}

#[test]
fn course_python_server_message_and_file() {
    let server = course_server();
    let out = client(&["127.0.0.1", "--port", &server.port()], None);
    assert_eq!(code(&out), 0, "stderr: {}", stderr(&out));
    assert_eq!(pieces(&out), ["b'INI ADALAH DATA '", "b'YANG DIKIRIM ABC'", "b'DEFGHIJKLMNOPQ'"]);
    server.wait_for_log("received b'INI ADALAH DATA YANG DIKIRIM ABC'");
    // The half-close is what lets the course's server see b'' and close.
    server.wait_for_log("received b''");

    let data = random_bytes(1 << 20, 3);
    let path = temp_file("course", &data);
    let out =
        client(&["127.0.0.1", "--port", &server.port(), "--file", path.to_str().unwrap()], None);
    std::fs::remove_file(&path).ok();
    assert_eq!(code(&out), 0, "stderr: {}", stderr(&out));
    assert!(stdout(&out).starts_with("sent 1,048,576 bytes, received 1,048,576 bytes, identical, "));
}

#[test]
fn course_server_busy_with_another_client_is_named_as_the_likely_cause() {
    let server = course_server();
    // The first client holds the course's one-at-a-time server; ours waits in its backlog.
    let first = TcpStream::connect(server.addr).expect("first client");
    server.wait_for_log("connection from");
    let out = client(&["127.0.0.1", "--port", &server.port(), "--timeout", "0.5"], None);
    drop(first);
    assert_eq!(code(&out), 5, "stderr: {}", stderr(&out));
    let last = stderr(&out).lines().last().unwrap_or_default().to_string();
    assert!(last.contains("(received 0 of 46 bytes sent)"), "{last}");
    assert!(last.contains("the server may be busy with another client"), "{last}");
    assert!(last.ends_with("(an iterative server, like the course's, serves one at a time)"));
}

// ---------------------------------------------------------------------------
// Failures and their exit codes

#[test]
fn refused_connection_exits_3_with_the_hint() {
    let port = closed_port().to_string();
    let out = client(&["127.0.0.1", "--port", &port], None);
    assert_eq!(code(&out), 3, "stderr: {}", stderr(&out));
    let err = stderr(&out);
    let last = err.lines().last().unwrap();
    assert_eq!(
        last,
        format!(
            "progjar: error: connection refused by 127.0.0.1:{port}: is the server running on that port? \
             From another machine, use the server's address (e.g. 172.16.16.101), not localhost"
        )
    );
    assert!(out.stdout.is_empty(), "no summary without a connection");
}

#[test]
fn refused_over_ipv6_suggests_binding_the_server_to_any() {
    let Ok(listener) = TcpListener::bind("[::1]:0") else {
        eprintln!("no IPv6 loopback here; skipping");
        return;
    };
    let port = listener.local_addr().unwrap().port().to_string();
    drop(listener);
    let out = client(&["::1", "--port", &port], None);
    assert_eq!(code(&out), 3, "stderr: {}", stderr(&out));
    assert_eq!(
        stderr(&out).lines().last().unwrap(),
        format!(
            "progjar: error: connection refused by [::1]:{port}: a server bound to 0.0.0.0 (the \
             default) listens on IPv4 only: start it with --bind :: (IPv6 and IPv4), or connect \
             to its IPv4 address"
        )
    );
}

#[test]
fn unresolvable_host_exits_4() {
    let out = client(&["no-such-host.invalid", "--port", "9"], None);
    assert_eq!(code(&out), 4, "stderr: {}", stderr(&out));
    assert!(
        stderr(&out).starts_with("progjar: error: cannot resolve no-such-host.invalid: "),
        "{}",
        stderr(&out)
    );
}

#[test]
fn silent_server_times_out_with_5() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let holder = thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        let mut got = Vec::new();
        conn.read_to_end(&mut got).unwrap();
        // Keep the connection open, echoing nothing, until the client has given up.
        let _ = done_rx.recv_timeout(common::STEP);
        got
    });
    let out = client(&["127.0.0.1", "--port", &port, "--timeout", "0.5"], None);
    done_tx.send(()).unwrap();
    assert_eq!(holder.join().unwrap(), MESSAGE.as_bytes());
    assert_eq!(code(&out), 5, "stderr: {}", stderr(&out));
    assert!(stderr(&out).ends_with(&format!("progjar: error: timed out: {NOTHING_CAME_BACK}\n")));
    assert!(stdout(&out).starts_with("sent 46 bytes, received 0 bytes, timed out at offset 0, "));
}

/// What the client says when it connected and nothing came back in 0.5 s.
const NOTHING_CAME_BACK: &str = "no echo for 0.5 s (received 0 of 46 bytes sent); the connection \
     opened, as the server's kernel completes the handshake even before the program accepts it, \
     but nothing came back: the server may be busy with another client (an iterative server, \
     like the course's, serves one at a time)";

#[test]
fn listen_only_server_is_not_said_to_have_accepted() {
    // A server that listens and never calls accept(): the kernel completes the
    // handshake into the backlog and takes the 46 bytes into its buffer.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let out = client(&["127.0.0.1", "--port", &port, "--timeout", "0.5"], None);
    drop(listener);
    assert_eq!(code(&out), 5, "stderr: {}", stderr(&out));
    let last = stderr(&out).lines().last().unwrap_or_default().to_string();
    assert_eq!(last, format!("progjar: error: timed out: {NOTHING_CAME_BACK}"));
    assert!(!last.contains("accepted"), "nothing was accepted: {last}");
}

#[test]
fn corrupted_byte_exits_6_naming_the_offset() {
    let addr = one_shot_server(|mut got| {
        got[29] ^= 0x20; // 'A' becomes 'a'
        got
    });
    let out = client(&["127.0.0.1", "--port", &addr.port().to_string()], None);
    assert_eq!(code(&out), 6, "stderr: {}", stderr(&out));
    assert!(
        stderr(&out)
            .ends_with("progjar: error: echo differs at offset 29: sent b'A', received b'a'\n"),
        "{}",
        stderr(&out)
    );
    assert!(
        stdout(&out).starts_with("sent 46 bytes, received 46 bytes, different from offset 29, ")
    );
}

#[test]
fn early_close_exits_6_naming_the_offset() {
    let addr = one_shot_server(|got| got[..20].to_vec());
    let out = client(&["127.0.0.1", "--port", &addr.port().to_string()], None);
    assert_eq!(code(&out), 6, "stderr: {}", stderr(&out));
    assert!(
        stderr(&out).ends_with(
            "progjar: error: echo short: the server closed the connection after 20 of 46 bytes sent; \
             the first missing byte is at offset 20\n"
        ),
        "{}",
        stderr(&out)
    );
    assert!(stdout(&out)
        .starts_with("sent 46 bytes, received 20 bytes, short: echo ends at offset 20, "));
}

#[test]
fn longer_echo_exits_6() {
    let addr = one_shot_server(|mut got| {
        got.extend_from_slice(b"EXTRA");
        got
    });
    let out = client(&["127.0.0.1", "--port", &addr.port().to_string()], None);
    assert_eq!(code(&out), 6, "stderr: {}", stderr(&out));
    assert!(stderr(&out)
        .ends_with("progjar: error: echo longer than what was sent: extra bytes from offset 46\n"));
}

/// A one-connection server that reads up to the client's FIN and echoes it all,
/// then passes the socket to `end`, and keeps what `end` returns until the client has finished.
fn full_echo_server(end: fn(TcpStream) -> Option<TcpStream>) -> (SocketAddr, mpsc::Sender<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().unwrap();
    let (done_tx, done_rx) = mpsc::channel::<()>();
    thread::spawn(move || {
        let (mut conn, _) = listener.accept().expect("accept");
        let mut got = Vec::new();
        conn.read_to_end(&mut got).expect("read");
        conn.write_all(&got).expect("echo");
        let _held = end(conn);
        let _ = done_rx.recv_timeout(common::STEP);
    });
    (addr, done_tx)
}

#[test]
fn complete_echo_then_reset_says_so() {
    // SO_LINGER 0, then close: an RST instead of a FIN.
    let (addr, done) = full_echo_server(|conn| {
        common::set_linger_zero(&conn);
        None
    });
    let out = client(&["127.0.0.1", "--port", &addr.port().to_string()], None);
    let _ = done.send(());
    assert_eq!(code(&out), 6, "stderr: {}", stderr(&out));
    let last = stderr(&out).lines().last().unwrap_or_default().to_string();
    assert!(
        last.starts_with(
            "progjar: error: the echo came back complete (46 of 46 bytes), but then the server \
             reset the connection instead of closing it ("
        ),
        "{last}"
    );
    assert!(!last.contains("missing"), "{last}");
    assert!(stdout(&out).starts_with("sent 46 bytes, received 46 bytes, complete, then reset, "));
}

#[test]
fn complete_echo_without_a_close_is_a_success_after_a_short_wait() {
    // The default --timeout (10 s): waiting for the close must not take that long.
    let (addr, done) = full_echo_server(Some);
    let out = client(&["127.0.0.1", "--port", &addr.port().to_string()], None);
    let _ = done.send(());
    assert_eq!(code(&out), 0, "stderr: {}", stderr(&out));
    let summary = stdout(&out);
    assert!(summary.starts_with("sent 46 bytes, received 46 bytes, identical, "), "{summary}");
    assert!(summary.ends_with(NEVER_CLOSED), "{summary}");
}

/// The end of the summary when the server never closed after a complete echo.
const NEVER_CLOSED: &str =
    "; the server never closed the connection (we waited 1 s after the complete echo)\n";

#[test]
fn through_the_course_proxy_which_drops_the_half_close() {
    let server = start_server(&[]);
    let proxy = common::start_course_proxy(server.addr);
    let out = client(&["127.0.0.1", "--port", &proxy.port()], None);
    assert_eq!(code(&out), 0, "stderr: {}", stderr(&out));
    assert!(stdout(&out).starts_with("sent 46 bytes, received 46 bytes, identical, "));
    assert!(stdout(&out).ends_with(NEVER_CLOSED), "{}", stdout(&out));
    // The course's words; our FIN ends the relay's client side and goes no further.
    proxy
        .wait_for_log("WARNING:root:received data from client b'INI ADALAH DATA YANG DIKIRIM ABC'");
    proxy.wait_for_log("WARNING:root:sending to realserver b'INI ADALAH DATA YANG DIKIRIM ABC'");
    proxy.wait_for_log("WARNING:root:received data from realserver b'DEFGHIJKLMNOPQ'");
    proxy.wait_for_log("WARNING:root:sending to client b'DEFGHIJKLMNOPQ'");
    proxy.wait_for_log("WARNING:root:received data from client b''");
    proxy.wait_for_log("WARNING:root:no more data");
}

#[test]
fn extra_bytes_after_the_complete_echo_are_still_a_difference() {
    let (addr, done) = full_echo_server(|mut conn| {
        conn.write_all(b"EXTRA").expect("extra bytes");
        Some(conn)
    });
    let out = client(&["127.0.0.1", "--port", &addr.port().to_string()], None);
    let _ = done.send(());
    assert_eq!(code(&out), 6, "stderr: {}", stderr(&out));
    assert!(stderr(&out)
        .ends_with("progjar: error: echo longer than what was sent: extra bytes from offset 46\n"));
}

#[test]
fn a_summary_that_cannot_be_written_is_a_failure() {
    let server = start_server(&[]);
    let port = server.port();
    let to_full = |extra: &str| {
        let line = format!("exec \"$0\" client 127.0.0.1 --port {port} {extra} >/dev/full");
        common::run(
            Command::new("sh").args(["-c", &line, &common::progjar_path().to_string_lossy()]),
            None,
        )
    };
    let out = to_full("");
    assert_eq!(code(&out), 1, "stderr: {}", stderr(&out));
    assert_eq!(
        stderr(&out).lines().last().unwrap_or_default(),
        "progjar: error: cannot write the summary to stdout: No space left on device (os error 28)"
    );
    let out = to_full("--output -");
    assert_eq!(code(&out), 7, "stderr: {}", stderr(&out));
    assert!(stderr(&out).contains(
        "progjar: error: cannot write standard output: No space left on device (os error 28)"
    ));
    for out in [to_full(""), to_full("--output -")] {
        assert!(!stderr(&out).contains("panicked"), "{}", stderr(&out));
    }
}

#[test]
fn unreadable_file_exits_7_before_connecting() {
    // No server at all: the file is checked first.
    let port = closed_port().to_string();
    let missing = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("client-no-such-file");
    let out = client(&["127.0.0.1", "--port", &port, "--file", missing.to_str().unwrap()], None);
    assert_eq!(code(&out), 7, "stderr: {}", stderr(&out));
    assert!(
        stderr(&out).starts_with(&format!("progjar: error: cannot read {}: ", missing.display()))
    );

    let out = client(&["127.0.0.1", "--port", &port, "--file", env!("CARGO_TARGET_TMPDIR")], None);
    assert_eq!(code(&out), 7, "stderr: {}", stderr(&out));
    assert!(stderr(&out).ends_with("it is a directory\n"));
}

#[test]
fn bad_arguments_exit_2() {
    for args in [
        &["--message", "a", "--file", "b"][..],
        &["--chunk", "0"],
        &["--timeout", "0"],
        &["--port", "x"],
    ] {
        let out = client(args, None);
        assert_eq!(code(&out), 2, "{args:?}: {}", stderr(&out));
        assert_eq!(stderr(&out).lines().count(), 1, "{args:?}: {}", stderr(&out));
    }
}

#[test]
fn echo_from_a_blocking_thread_server() {
    // A plain blocking echo (read, write_all, repeat): while its write_all waits
    // for us to read, it reads nothing — the harshest bounded-buffer peer.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        let mut buf = [0u8; 4096];
        loop {
            match conn.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if conn.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            }
        }
        let _ = conn.shutdown(std::net::Shutdown::Both);
        drop::<TcpStream>(conn);
    });
    let out = client(
        &["127.0.0.1", "--port", &port, "--file", "-", "--chunk", "64K"],
        Some(random_bytes(8 << 20, 4)),
    );
    assert_eq!(code(&out), 0, "stderr: {}", stderr(&out));
    assert!(stdout(&out).starts_with("sent 8,388,608 bytes, received 8,388,608 bytes, identical, "));
}
