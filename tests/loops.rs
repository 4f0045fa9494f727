//! `progjar server --loops N`: N share-nothing loops on one port (SO_REUSEPORT).
//! Every byte is still echoed, each loop serves some, one signal stops all of
//! them, the totals add up, `--max-per-ip` counts over all loops, and one loop
//! is exactly the server it always was.

use progjar_testkit as common;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::process::Stdio;
use std::sync::Arc;

use common::{
    assert_closed_by_server, assert_echo, assert_no_panic, connect, echo_all, proc_status_kib,
    progjar, raise_nofile, random_bytes, read_n, start_server, wait_child, Server, STEP,
};

const MESSAGE: &[u8] = b"INI ADALAH DATA YANG DIKIRIM ABCDEFGHIJKLMNOPQ";

/// Stop the server with SIGTERM (exit 0, no panic) and return its whole log.
fn stop(server: Server) -> Vec<String> {
    let log = Arc::clone(&server.log);
    server.stop();
    let lines = log.lock().unwrap().clone();
    lines
}

/// The number after `{prefix}` in the one line that starts with it.
fn number_after(lines: &[String], prefix: &str) -> u64 {
    let line = lines
        .iter()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no line starting {prefix:?}: {lines:#?}"));
    line[prefix.len()..].split(' ').next().unwrap().replace(',', "").parse().unwrap()
}

/// What loop `k`'s own summary line says it served.
fn served_by_loop(lines: &[String], k: usize) -> u64 {
    number_after(lines, &format!("INFO:server:loop {k}: served "))
}

/// The summary of all loops together: the one summary without a loop's name.
fn total_summary(lines: &[String]) -> &str {
    let total: Vec<_> = lines.iter().filter(|l| l.starts_with("INFO:server:served ")).collect();
    assert_eq!(total.len(), 1, "one total summary: {lines:#?}");
    total[0]
}

/// Threads of the server process (`Threads:` in /proc/PID/status).
fn threads(server: &Server) -> u64 {
    proc_status_kib(server.child.id(), "Threads:")
}

#[test]
fn a_thousand_clients_over_two_loops_are_all_echoed_and_both_loops_serve() {
    raise_nofile(1200);
    let server = start_server(&["--loops", "2"]);
    let clients = common::thousand_clients_each_echoed(server.addr);
    server.wait_for_open(1000);
    drop(clients);
    server.wait_for_open(0);
    let lines = stop(server);
    assert!(total_summary(&lines).starts_with("INFO:server:served 1,000 connections"));
    let (one, two) = (served_by_loop(&lines, 1), served_by_loop(&lines, 2));
    eprintln!("split of 1000 connections: loop 1 {one}, loop 2 {two}");
    assert_eq!(one + two, 1000);
    // The kernel hashes each connection's ports: all 1000 on one loop would
    // be a 1 in 2^999 chance.
    assert!(one > 0 && two > 0, "both loops serve: {one} + {two}");
    assert!(lines.iter().any(|l| l.starts_with("INFO:server:loop 1: connection from 127.0.0.1:")));
    assert!(lines.iter().any(|l| l.starts_with("INFO:server:loop 2: connection from 127.0.0.1:")));
}

#[test]
fn sigterm_mid_transfer_stops_every_loop_gracefully_and_the_summary_adds_up() {
    const CLIENTS: usize = 20;
    const HALF: usize = 64 * 1024;
    let mut server = start_server(&["--loops", "2", "--grace", "30s"]);
    let data: Vec<Vec<u8>> = (0..CLIENTS).map(|i| random_bytes(2 * HALF, i as u64)).collect();
    let mut clients: Vec<TcpStream> = (0..CLIENTS).map(|_| connect(server.addr)).collect();
    for (c, data) in clients.iter_mut().zip(&data) {
        c.write_all(&data[..HALF]).unwrap();
        assert_eq!(read_n(c, HALF), data[..HALF], "first half");
    }
    server.signal(libc::SIGTERM);
    // Both loops have taken the signal before any client finishes.
    server.wait_for_log_count("SIGTERM: shutting down: no new connections", 2);
    for (c, data) in clients.into_iter().zip(&data) {
        assert_eq!(echo_all(c, data[HALF..].to_vec()), data[HALF..], "second half");
    }
    let status = server.wait_exit();
    assert_eq!(status.code(), Some(0), "{:?}", server.log_lines());
    server.wait_for_log("INFO:server:served ");
    let lines = server.log_lines();
    assert_no_panic(&lines);
    let echoed = progjar::units::grouped((CLIENTS * 2 * HALF) as u64);
    let want = format!("INFO:server:served {CLIENTS} connections, echoed {echoed} bytes");
    assert_eq!(total_summary(&lines), want);
    assert_eq!(served_by_loop(&lines, 1) + served_by_loop(&lines, 2), CLIENTS as u64);
    for k in [1, 2] {
        let prefix = format!("INFO:server:loop {k}: SIGTERM: shutting down");
        assert!(lines.iter().any(|l| l.starts_with(&prefix)), "{prefix}: {lines:#?}");
    }
}

#[test]
fn a_second_signal_stops_every_loop_at_once() {
    let mut server = start_server(&["--loops", "2", "--grace", "600s"]);
    // Sixteen open clients: both loops hold some (all on one: 1 in 2^15).
    let _open: Vec<TcpStream> = (0..16).map(|_| connect(server.addr)).collect();
    server.wait_for_open(16);
    server.signal(libc::SIGTERM);
    server.wait_for_log_count("SIGTERM: shutting down", 2);
    server.signal(libc::SIGTERM);
    assert_eq!(server.wait_exit().code(), Some(130));
    server.wait_for_log("stopped at once by a second signal");
    let lines = server.log_lines();
    assert!(total_summary(&lines).starts_with("INFO:server:served 16 connections"));
}

/// `--loops 1` is the server as it was: same log lines, no extra thread.
#[test]
fn one_loop_is_the_single_threaded_server_with_the_same_log() {
    let session = |extra: &[&str]| {
        let server = start_server(extra);
        // The main thread and the log writer, nothing more.
        assert_eq!(threads(&server), 2);
        let mut c = connect(server.addr);
        assert_echo(&mut c, MESSAGE);
        let port = c.local_addr().unwrap().port();
        c.shutdown(Shutdown::Write).unwrap();
        let mut rest = Vec::new();
        c.read_to_end(&mut rest).unwrap();
        server.wait_for_close(port);
        // Ports and times differ between runs; every word must not.
        let mask = |l: &String| {
            let masked: String =
                l.chars().map(|c| if c.is_ascii_digit() { '#' } else { c }).collect();
            masked.split('#').filter(|p| !p.is_empty()).collect::<Vec<_>>().join("#")
        };
        stop(server).iter().map(mask).collect::<Vec<_>>()
    };
    let before = session(&[]);
    let one = session(&["--loops", "1"]);
    assert_eq!(one, before);
    assert!(!before.iter().any(|l| l.contains("loop")), "{before:#?}");
}

#[test]
fn loops_0_runs_one_loop_per_core() {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let server = start_server(&["--loops", "0"]);
    server.wait_for_log_count("waiting for a connection", cores);
    // Each loop's thread, plus the main thread (waiting for them) and the
    // log writer; one loop runs on the main thread itself.
    let expected = if cores > 1 { cores as u64 + 2 } else { 2 };
    assert_eq!(threads(&server), expected);
    if cores > 1 {
        server.wait_for_log(&format!("INFO:server:{cores} loops, each on its own thread"));
        server.wait_for_log(&format!("INFO:server:loop {cores}: waiting for a connection"));
    }
    let lines = stop(server);
    assert_eq!(lines.iter().filter(|l| l.contains("waiting for a connection")).count(), cores);
}

/// `--max-per-ip 3` over two loops: three connections from 127.0.0.1 in all,
/// whichever loops the kernel hands them to.
#[test]
fn max_per_ip_counts_over_all_loops() {
    let server = start_server(&["--loops", "2", "--max-per-ip", "3"]);
    let mut served: Vec<TcpStream> = (0..3).map(|_| connect(server.addr)).collect();
    for c in &mut served {
        assert_echo(c, MESSAGE);
    }
    // Eight more: each lands on either loop (all on one: 1 in 128), none is served.
    for _ in 0..8 {
        assert_closed_by_server(&mut connect(server.addr));
    }
    // One leaves: its place is free on every loop.
    let gone = served.pop().unwrap();
    let port = gone.local_addr().unwrap().port();
    drop(gone);
    server.wait_for_close(port);
    let mut again = connect(server.addr);
    assert_echo(&mut again, MESSAGE);
    drop((served, again));
    server.wait_for_open(0);
    let lines = stop(server);
    let total = total_summary(&lines);
    assert!(total.starts_with("INFO:server:served 4 connections"), "{total}");
    assert!(total.ends_with("; refused 8 at --max-per-ip"), "{total}");
}

/// A second server on the same port must not join the first one's group of
/// loops (and take some of its clients): it is told the port is in use.
#[test]
fn a_port_in_use_is_refused_to_a_second_group_of_loops() {
    let server = start_server(&["--loops", "2"]);
    let port = server.port();
    let mut second = progjar()
        .args(["server", "--bind", "127.0.0.1", "--port", &port, "--loops", "2"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn a second server");
    let Some(status) = wait_child(&mut second, STEP) else {
        let _ = second.kill();
        let _ = second.wait();
        panic!("a second server on port {port} kept running: it joined the first one's group");
    };
    let mut stderr = String::new();
    second.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(&format!("port {port} is already in use")), "{stderr}");
    assert_echo(&mut connect(server.addr), MESSAGE);
    stop(server);
}
