//! `progjar server` against raw std sockets: the course's tasks 2 and 4, many
//! clients, IPv6, what the log shows, and fairness between clients. Faults
//! (backpressure, half-close, resets, signals) are in `tests/faults_transfers.rs`,
//! limits and bad command lines in `tests/faults_limits.rs`.

use progjar_testkit as common;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, Shutdown};

use common::{
    connect, echo_all, raise_nofile, random_bytes, read_n, start_server, start_server_logging,
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
    assert!(second.starts_with("DEBUG:server:received 14 bytes from 127.0.0.1:"), "{second}");
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
    // A thousand sockets here, plus what the other tests of this file hold.
    raise_nofile(1200);
    let server = start_server(&[]);
    let _clients = common::thousand_clients_each_echoed(server.addr);
    server.wait_for_open(1000);
}

#[test]
fn ipv6_and_dual_stack_bind_addresses_work() {
    // `::1`: IPv6 loopback only.
    let v6 = start_server_with(common::progjar().args(["server", "--bind", "::1", "--port", "0"]));
    assert!(v6.addr.is_ipv6());
    assert_eq!(echo_all(connect(v6.addr), MESSAGE.to_vec()), MESSAGE);
    // `::` also serves IPv4 clients (seen as ::ffff:127.0.0.1).
    let any = start_server_with(common::progjar().args(["server", "--bind", "::", "--port", "0"]));
    let v4 = connect((Ipv4Addr::LOCALHOST, any.addr.port()).into());
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
    server.wait_for_log("reads, back after the others");
    // Data and FIN both queued before the server looks (it is stopped): the
    // one event that reports them is spent on the first turn, so the turns
    // after it must find the EOF by themselves.
    let mut s = connect(server.addr);
    // Its own accept line: a count of "connection from" lines would also
    // count the first client's "closing connection from".
    server.wait_for_log(&format!("connection from {} (", s.local_addr().unwrap()));
    server.signal(libc::SIGSTOP);
    // 4001 bytes: the last read is short, the case that needs the drain.
    s.write_all(&data[..4001]).unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    server.signal(libc::SIGCONT);
    let mut back = Vec::new();
    s.read_to_end(&mut back).expect("EOF after the echo, not a stall");
    assert!(back == data[..4001]);
}

/// `--bind HOST:PORT` as the client takes it (the port split off, not the
/// whole string looked up as a name); a port written twice must agree.
#[test]
fn bind_takes_host_and_port_as_the_client_does() {
    for (bind, ip) in [("127.0.0.1:0", "127.0.0.1"), ("[::1]:0", "::1")] {
        let server = start_server_with(common::progjar().args(["server", "--bind", bind]));
        assert_eq!(server.addr.ip().to_string(), ip);
        assert_eq!(echo_all(connect(server.addr), MESSAGE.to_vec()), MESSAGE);
    }
    let same = ["server", "--bind", "127.0.0.1:0", "--port", "0"];
    let server = start_server_with(common::progjar().args(same));
    assert_eq!(echo_all(connect(server.addr), MESSAGE.to_vec()), MESSAGE);
    let refused = [
        (
            &["--bind", "127.0.0.1:10005", "--port", "10006"][..],
            "--bind names port 10005 and --port names port 10006; give the port once",
        ),
        (&["--bind", "::1:10005"][..], "an IPv6 address with a port is written in brackets"),
        (&["--bind", "127.0.0.1:port"][..], "port must be a number from 0 to 65535"),
    ];
    for (args, words) in refused {
        let out = common::run(common::progjar().arg("server").args(args), None);
        let stderr = common::stderr(&out);
        assert_eq!(common::code(&out), 2, "{args:?}: {stderr}");
        assert!(stderr.lines().count() == 1 && stderr.contains(words), "{args:?}: {stderr}");
        assert!(out.stdout.is_empty(), "{args:?} listened");
    }
}
