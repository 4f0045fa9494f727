//! `progjar server` against raw std sockets: the course's tasks 2 and 4, many
//! clients, backpressure, half-close, resets, signals and bad command lines.

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::thread;

use common::{
    connect, echo_all, random_bytes, read_n, set_linger_zero, start_server, start_server_logging,
    start_server_with,
};

const MESSAGE: &[u8] = b"INI ADALAH DATA YANG DIKIRIM ABCDEFGHIJKLMNOPQ";

#[test]
fn default_message_is_echoed_exactly() {
    let server = start_server(&[]);
    let back = echo_all(connect(server.addr), MESSAGE.to_vec());
    assert_eq!(back, MESSAGE);
    server.wait_for_log("connection from 127.0.0.1:");
    let line = server.wait_for_log("closing connection from");
    assert!(line.contains("(peer closed): 46 bytes echoed"), "{line}");
}

#[test]
fn read_size_32_reads_the_course_pieces() {
    let server = start_server_logging("debug", &["--read-size", "32"]);
    let mut s = connect(server.addr);
    s.write_all(MESSAGE).unwrap();
    assert_eq!(read_n(&mut s, MESSAGE.len()), MESSAGE);
    server.wait_for_log(": b'INI ADALAH DATA YANG DIKIRIM ABC'");
    let second = server.wait_for_log(": b'DEFGHIJKLMNOPQ'");
    assert!(second.starts_with("DEBUG:connection:received 14 bytes from 127.0.0.1:"), "{second}");
    server.wait_for_log("sending back 32 bytes");
}

/// The course's task 4: a file client and a message client at once; each is
/// served while the other is still connected (the course's server would make
/// the second wait until the first left).
#[test]
fn two_clients_are_served_at_the_same_time() {
    let server = start_server(&[]);
    let file = random_bytes(100_000, 4);
    let mut a = connect(server.addr);
    let mut b = connect(server.addr);
    a.write_all(&file[..50_000]).unwrap();
    b.write_all(MESSAGE).unwrap();
    assert_eq!(read_n(&mut b, MESSAGE.len()), MESSAGE, "b served while a is open");
    assert_eq!(read_n(&mut a, 50_000), file[..50_000], "a served while b is open");
    a.write_all(&file[50_000..]).unwrap();
    assert_eq!(read_n(&mut a, 50_000), file[50_000..]);
    b.shutdown(Shutdown::Write).unwrap();
    let mut rest = Vec::new();
    b.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty());
}

#[test]
fn a_thousand_concurrent_clients_each_get_their_own_bytes() {
    let server = start_server(&[]);
    let mut clients: Vec<TcpStream> = (0..1000).map(|_| connect(server.addr)).collect();
    for (i, c) in clients.iter_mut().enumerate() {
        c.write_all(format!("client {i:04} says {}\n", "x".repeat(i % 97)).as_bytes()).unwrap();
    }
    for (i, c) in clients.iter_mut().enumerate() {
        let want = format!("client {i:04} says {}\n", "x".repeat(i % 97));
        assert_eq!(read_n(c, want.len()), want.as_bytes(), "client {i}");
    }
    server.wait_for_log("(1000 open)");
}

/// A client that sends 64 MiB and does not read: the server stops reading it
/// at --max-pending, others keep getting echoes, and when it finally reads it
/// gets every byte back in order.
#[test]
fn a_client_that_does_not_read_does_not_stall_others() {
    let server = start_server(&["--max-pending", "1MiB"]);
    let data = random_bytes(64 << 20, 64);
    let mut slow = connect(server.addr);
    let mut w = slow.try_clone().unwrap();
    let sent = data.clone();
    let writer = thread::spawn(move || {
        w.write_all(&sent).unwrap();
        w.shutdown(Shutdown::Write).unwrap();
    });
    // Others are served while the slow client's writer is blocked.
    for round in 0..100 {
        let mut fast = connect(server.addr);
        let msg = format!("round {round}");
        fast.write_all(msg.as_bytes()).unwrap();
        assert_eq!(read_n(&mut fast, msg.len()), msg.as_bytes());
    }
    assert!(
        !writer.is_finished(),
        "64 MiB cannot all fit in buffers: backpressure must block the writer"
    );
    let mut back = Vec::new();
    slow.read_to_end(&mut back).unwrap();
    writer.join().unwrap();
    assert!(back == data, "echo of 64 MiB differs (got {} bytes)", back.len());
}

#[test]
fn half_close_gets_every_byte_then_eof() {
    let server = start_server(&[]);
    let data = random_bytes(10 << 20, 10);
    let back = echo_all(connect(server.addr), data.clone());
    assert!(back == data, "got {} of {} bytes", back.len(), data.len());
}

#[test]
fn a_peer_reset_mid_transfer_ends_only_that_connection() {
    let server = start_server(&[]);
    let mut steady = connect(server.addr);
    steady.write_all(b"before").unwrap();
    assert_eq!(read_n(&mut steady, 6), b"before");
    let mut victim = connect(server.addr);
    victim.write_all(&random_bytes(8 << 20, 8)[..]).ok();
    set_linger_zero(&victim);
    drop(victim);
    server.wait_for_log("(reset by peer)");
    steady.write_all(b"after").unwrap();
    assert_eq!(read_n(&mut steady, 5), b"after");
    let back = echo_all(connect(server.addr), MESSAGE.to_vec());
    assert_eq!(back, MESSAGE);
}

#[test]
fn sigterm_exits_cleanly_with_a_summary() {
    let mut server = start_server(&[]);
    let back = echo_all(connect(server.addr), MESSAGE.to_vec());
    assert_eq!(back, MESSAGE);
    server.wait_for_log("closing connection");
    server.signal(libc::SIGTERM);
    let status = server.wait_exit();
    assert!(status.success(), "{status:?}");
    server.wait_for_log("served 1 connections, echoed 46 bytes");
}

#[test]
fn sigterm_lets_open_connections_finish_within_grace() {
    let mut server = start_server(&["--grace", "20"]);
    let mut s = connect(server.addr);
    s.write_all(b"first half ").unwrap();
    assert_eq!(read_n(&mut s, 11), b"first half ");
    server.signal(libc::SIGTERM);
    server.wait_for_log("shutting down");
    // New clients are refused once shutdown has begun.
    assert!(TcpStream::connect(server.addr).is_err(), "listener must be closed");
    // The open one is still served until it leaves.
    s.write_all(b"second half").unwrap();
    assert_eq!(read_n(&mut s, 11), b"second half");
    s.shutdown(Shutdown::Write).unwrap();
    let mut rest = Vec::new();
    s.read_to_end(&mut rest).unwrap();
    assert!(server.wait_exit().success());
}

#[test]
fn a_second_signal_stops_at_once() {
    let mut server = start_server(&["--grace", "600"]);
    let _open = connect(server.addr);
    server.wait_for_log("(1 open)");
    server.signal(libc::SIGTERM);
    server.wait_for_log("shutting down");
    server.signal(libc::SIGINT);
    let status = server.wait_exit();
    assert_eq!(status.code(), Some(130));
}

#[test]
fn bad_arguments_exit_2_with_one_line() {
    for args in [
        &["server", "--port", "70000"][..],
        &["server", "--port", "abc"],
        &["server", "--no-such-option"],
        &["server", "--read-size", "0"],
        &["server", "--bind", "not-an-address"],
    ] {
        let out = common::run(common::progjar().args(args), None);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.starts_with("progjar: "), "{err}");
    }
}

#[test]
fn a_port_in_use_says_so_and_exits_1() {
    let server = start_server(&[]);
    let out = common::run(
        common::progjar().args(["server", "--bind", "127.0.0.1", "--port", &server.port()]),
        None,
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let last = err.lines().last().unwrap_or_default();
    assert!(last.contains("already in use") && last.contains("--port"), "{err}");
}

#[test]
fn ipv6_and_dual_stack_bind_addresses_work() {
    // `::1`: IPv6 loopback only.
    let v6 = start_server_with(common::progjar().args(["server", "--bind", "::1", "--port", "0"]));
    assert!(v6.addr.is_ipv6());
    assert_eq!(echo_all(connect(v6.addr), MESSAGE.to_vec()), MESSAGE);
    // `::` also serves IPv4 clients (seen as ::ffff:127.0.0.1).
    let any = start_server_with(common::progjar().args(["server", "--bind", "::", "--port", "0"]));
    let v4 = TcpStream::connect(("127.0.0.1", any.addr.port())).expect("IPv4 client to ::");
    assert_eq!(echo_all(v4, MESSAGE.to_vec()), MESSAGE);
    any.wait_for_log("connection from [::ffff:127.0.0.1]:");
}

/// With RUST_LOG=trace a student can watch the loop: every readiness event,
/// every read and write with its byte count, every WouldBlock.
#[test]
fn trace_logging_shows_the_loop_at_work() {
    let server = start_server_logging("trace", &[]);
    assert_eq!(echo_all(connect(server.addr), MESSAGE.to_vec()), MESSAGE);
    server.wait_for_log("closing connection");
    let log = server.log_lines().join("\n");
    for needle in [
        "TRACE:server:event conn 0 (127.0.0.1:",
        "): readable",
        ": 46 bytes",
        "0 bytes (end of stream)",
    ] {
        assert!(log.contains(needle), "no {needle:?} in\n{log}");
    }
}

#[test]
fn a_link_local_bind_address_says_what_to_do() {
    let out =
        common::run(common::progjar().args(["server", "--bind", "fe80::1", "--port", "0"]), None);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let last = err.lines().last().unwrap_or_default();
    assert!(last.contains("link-local address needs an interface"), "{err}");
}

/// Fairness: a turn ends after 16 reads, and the loop comes back to the
/// connection by itself (no new edge will announce data already queued).
/// With `--read-size 32` a 64 KiB burst needs many turns; every byte must
/// still come back in order.
#[test]
fn a_fast_sender_is_served_in_turns_without_losing_a_byte() {
    let server = start_server_logging("trace", &["--read-size", "32"]);
    let data = random_bytes(64 * 1024, 32);
    assert!(echo_all(connect(server.addr), data.clone()) == data);
    server.wait_for_log("closing connection");
    server.wait_for_log("read budget used, back after the others");
    // Data and FIN both queued before the server looks (it is stopped): the
    // one event that reports them is spent on the first turn, so the turns
    // after it must find the EOF by themselves.
    let mut s = connect(server.addr);
    server.wait_for_log_count("connection from", 2);
    server.signal(libc::SIGSTOP);
    // 4001 bytes: the last read is short, the case that needs the drain.
    s.write_all(&data[..4001]).unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    server.signal(libc::SIGCONT);
    let mut back = Vec::new();
    s.read_to_end(&mut back).expect("EOF after the echo, not a stall");
    assert!(back == data[..4001]);
}
