//! The fault matrix: `progjar server` under every kind of trouble a client, the
//! kernel or an operator can cause. Each test drives the real binary over
//! loopback, is bounded in time, and checks that the server survives, keeps
//! serving everyone else, and never loses, reorders or duplicates a byte.
//! docs/faults.md lists the rows with what the server does in each.
//!
//! Nothing here asserts speed: bounds are on correctness (exact bytes, exit
//! status, log lines), on memory (VmRSS) and, for "does not spin", on CPU time
//! as a generous fraction of wall time.

use progjar_testkit as common;

use std::io::{self, BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use common::{
    assert_closed_by_server, assert_echo, assert_no_flow_failed, assert_no_panic, assert_served,
    connect, connect_from, cpu_time, echo_all, fds_below, raise_nofile, random_bytes, read_n,
    rss_kib, server_side_queues, set_linger_zero, start_server, start_server_logging,
    start_server_with, wait_until, write_until_stalled, Driver, Flow, RssSampler, Stream, MIB,
    STEP,
};
use common::{
    assert_rate_limited, closed_in, flood, logged_and_more, one_leaves_one_fits, suppressed_in,
    wait_until_accounted,
};
use common::{hundred_flows, message_len, run_failing};
use progjar::units::grouped;

// ---------------------------------------------------------------------------
// 1. Slow reader
// ---------------------------------------------------------------------------

/// A client sends 256 MiB and does not read. The server stops reading it at
/// --max-pending (its memory stays bounded), serves others meanwhile, and
/// when the client reads at last it gets all 256 MiB back intact.
#[test]
fn slow_reader_of_256_mib_is_bounded_and_gets_every_byte() {
    let pending_mib = 4;
    const TOTAL: u64 = 256 * MIB as u64;
    let pending = pending_mib * MIB;
    let server = start_server(&["--max-pending", &format!("{pending_mib}MiB")]);
    let pid = server.child.id();
    // Warm up: one full echo touches the read buffer and the allocator.
    let mut other = connect(server.addr);
    assert_echo(&mut other, &random_bytes(256 * 1024, 1));
    let baseline = rss_kib(pid);
    let sampler = RssSampler::start(pid);

    let mut slow = connect(server.addr);
    let client_port = slow.local_addr().unwrap().port();
    let written = Arc::new(AtomicU64::new(0));
    let mut w = slow.try_clone().unwrap();
    w.set_write_timeout(Some(Duration::from_secs(120))).unwrap();
    let progress = Arc::clone(&written);
    let writer = thread::spawn(move || {
        let mut pattern = Stream::at(256, 0);
        let mut chunk = vec![0; MIB];
        while progress.load(Ordering::Relaxed) < TOTAL {
            pattern.fill(&mut chunk);
            w.write_all(&chunk).expect("slow client's write");
            progress.fetch_add(chunk.len() as u64, Ordering::Relaxed);
        }
        w.shutdown(Shutdown::Write).unwrap();
    });

    // Wait until the writer stalls: no progress for half a second.
    let mut last = (0, Instant::now());
    wait_until("the slow client's writer to stall", || {
        let now = written.load(Ordering::Relaxed);
        if now != last.0 {
            last = (now, Instant::now());
        }
        now > 0 && last.1.elapsed() > Duration::from_millis(500)
    });
    let stalled_at = written.load(Ordering::Relaxed);
    assert!(stalled_at < TOTAL && !writer.is_finished(), "256 MiB cannot fit in buffers");
    let (tx_q, rx_q) =
        server_side_queues(server.addr.port(), client_port).expect("server's socket");
    assert!(rx_q > 0, "the server must have stopped reading the slow client (rx queue {rx_q})");
    let stalled_rss = rss_kib(pid);

    // Everyone else is still served, old and new.
    assert_echo(&mut other, b"still here");
    for i in 0..20 {
        assert_served(server.addr, &random_bytes(64 * 1024, 100 + i));
    }
    assert!(!writer.is_finished());

    // Now read: every byte, in order, then EOF.
    let mut check = Stream::at(256, 0);
    let (mut buf, mut scratch) = (vec![0; MIB], Vec::new());
    let mut got = 0u64;
    loop {
        let n = slow.read(&mut buf).expect("read the echo");
        if n == 0 {
            break;
        }
        if let Err(m) = check.check(&buf[..n], &mut scratch) {
            panic!("echo to the slow reader: {m}");
        }
        got += n as u64;
    }
    writer.join().unwrap();
    assert_eq!(got, TOTAL, "bytes echoed to the slow reader");
    let peak = sampler.peak();
    drop(sampler);
    println!(
        "slow reader: stalled after {} KiB sent (server rx queue {} KiB, tx queue {} KiB); \
         server RSS baseline {baseline} KiB, stalled {stalled_rss} KiB, peak {peak} KiB (+{} KiB), \
         --max-pending {} KiB",
        stalled_at / 1024,
        rx_q / 1024,
        tx_q / 1024,
        peak - baseline,
        pending / 1024
    );
    // The pending bound plus 1 MiB for everything else (allocator slack,
    // the ring's rounding, log lines).
    let bound = (pending / 1024) as u64 + 1024;
    assert!(
        peak <= baseline + bound,
        "server RSS rose by {} KiB; --max-pending is {} KiB (bound: +{bound} KiB)",
        peak - baseline,
        pending / 1024
    );
    server.wait_for_log(&format!(":{client_port} (peer closed): {} bytes echoed", grouped(TOTAL)));
    drop(other);
    server.stop();
}

// ---------------------------------------------------------------------------
// 2. Out of file descriptors
// ---------------------------------------------------------------------------

/// Started with an open-file limit of 64, the server caps itself at 48
/// connections (64 - 16 reserved) and closes the rest of a 500-connection
/// flood at once, without spinning; when one leaves, a new one is served.
#[test]
fn fd_limit_at_start_caps_connections_and_sheds_the_rest() {
    const N: usize = 500;
    let server = start_server_with(Command::new("prlimit").args([
        "--nofile=64:64",
        env!("CARGO_BIN_EXE_progjar"),
        "server",
        "--bind",
        "127.0.0.1",
        "--port",
        "0",
    ]));
    server.wait_for_log("open-file limit: soft 64 (was 64), hard 64");
    server.wait_for_log("serving at most 48 connections: the open-file limit is 64");
    let f = flood(&server, N);
    println!(
        "fd limit 64: {} served, {} closed at once, server CPU {:.1}% of {:?} wall",
        f.served.len(),
        f.closed,
        f.cpu_fraction * 100.0,
        f.elapsed
    );
    assert_eq!(f.served.len(), 48, "served at the limit");
    assert_eq!(f.closed, N - 48);
    assert!(f.cpu_fraction < 0.5, "server used {:.0}% CPU: spinning?", f.cpu_fraction * 100.0);
    let warnings = assert_rate_limited(&server, "(--max-connections)", f.elapsed);
    println!("fd limit 64: {warnings} warning line(s) for {} refusals", f.closed);
    server.wait_for_log("48 connections open (--max-connections)");

    let (served, newcomer) = one_leaves_one_fits(&server, f.served);
    let refused = (f.closed + 1) as u64;
    let lines = wait_until_accounted(&server, "(--max-connections)", logged_and_more, refused);
    assert!(lines.len() > warnings, "the last refusal is logged: {lines:#?}");
    drop((served, newcomer));
    let summary = server.stop();
    assert!(summary.contains(&format!("refused {refused} at --max-connections")), "{summary}");
}

/// The real EMFILE path: a server started with plenty of descriptors has its
/// limit cut to 40 while running (`prlimit --pid`). `accept` then fails with
/// EMFILE; the server gives up its reserve descriptor to accept and close
/// each waiting client (EOF, not a hang in the backlog), logs it at most once
/// a second, does not spin, and serves a new client as soon as one leaves.
#[test]
fn out_of_descriptors_sheds_the_backlog_with_the_reserve_descriptor() {
    const N: usize = 500;
    const LIMIT: usize = 40;
    let server = start_server(&[]);
    let pid = server.child.id();
    let out = common::run(
        Command::new("prlimit").args([
            "--pid",
            &pid.to_string(),
            &format!("--nofile={LIMIT}:{LIMIT}"),
        ]),
        None,
    );
    assert!(out.status.success(), "prlimit --pid: {}", String::from_utf8_lossy(&out.stderr));
    let fds = fds_below(pid, LIMIT);
    let f = flood(&server, N);
    println!(
        "EMFILE at {LIMIT} ({fds} descriptors open before): {} served, {} closed at once, \
         server CPU {:.1}% of {:?} wall",
        f.served.len(),
        f.closed,
        f.cpu_fraction * 100.0,
        f.elapsed
    );
    assert_eq!(f.served.len(), LIMIT - fds, "every free descriptor serves a client");
    assert_eq!(f.closed, N - f.served.len());
    assert!(f.cpu_fraction < 0.5, "server used {:.0}% CPU: spinning?", f.cpu_fraction * 100.0);
    let warnings = assert_rate_limited(&server, "out of file descriptors with", f.elapsed);
    println!("EMFILE: {warnings} warning line(s) for {} refusals", f.closed);
    let line = server.wait_for_log("out of file descriptors with");
    assert!(line.contains(&format!("with {} connections open: closed", f.served.len())), "{line}");

    let (served, newcomer) = one_leaves_one_fits(&server, f.served);
    let refused = f.closed + 1;
    // Each line says "closed K new connection(s)" and "(and N more since the
    // last such line)": together they must account for every connection shed.
    let count = |l: &str| closed_in(l) + suppressed_in(l);
    let lines =
        wait_until_accounted(&server, "out of file descriptors with", count, refused as u64);
    assert!(lines.len() > warnings, "the last refusal is logged: {lines:#?}");
    drop((served, newcomer));
    let summary = server.stop();
    assert!(summary.contains(&format!("refused {refused} out of file descriptors")), "{summary}");
}

// ---------------------------------------------------------------------------
// 3. Connection limit
// ---------------------------------------------------------------------------

/// At --max-connections 5 a sixth client is closed at once and counted, the
/// warnings are throttled (their "and N more" add up to every refusal), and
/// below the limit again a new client is served.
#[test]
fn connection_limit_closes_the_excess_and_counts_it() {
    let server = start_server(&["--max-connections", "5"]);
    let mut open: Vec<TcpStream> = (0..5).map(|_| connect(server.addr)).collect();
    for (i, s) in open.iter_mut().enumerate() {
        assert_echo(s, format!("seat {i}").as_bytes());
    }
    let mut refused = 0;
    // A burst of 21: one warning line, the other 20 kept quiet.
    for _ in 0..21 {
        assert_closed_by_server(&mut connect(server.addr));
        refused += 1;
    }
    let first = server.wait_for_log("(--max-connections)");
    assert!(
        first.contains("refused 127.0.0.1:") && first.contains("5 connections open"),
        "{first}"
    );
    // After the throttle's second, one more refusal is logged with the count.
    thread::sleep(Duration::from_millis(1100));
    let logged = server.log_count("(--max-connections)");
    assert_closed_by_server(&mut connect(server.addr));
    refused += 1;
    let lines = wait_until_accounted(&server, "(--max-connections)", logged_and_more, refused);
    assert!(lines.len() > logged && lines.len() <= 3, "{lines:#?}");
    // The five are still served; one leaves; a newcomer is served.
    for (i, s) in open.iter_mut().enumerate() {
        assert_echo(s, format!("still seat {i}").as_bytes());
    }
    // Wait for this client's own close line: "(4 open)" alone also matches the
    // fourth client's earlier "connection from ... (4 open)".
    let leaving = open.pop().unwrap();
    let port = leaving.local_addr().unwrap().port();
    drop(leaving);
    let line = server.wait_for_close(port);
    assert!(line.contains("(peer closed)") && line.ends_with("(4 open)"), "{line}");
    let mut newcomer = connect(server.addr);
    assert_echo(&mut newcomer, b"my turn");
    drop((open, newcomer));
    let summary = server.stop();
    assert!(summary.contains(&format!("refused {refused} at --max-connections")), "{summary}");
}

// ---------------------------------------------------------------------------
// 4. Idle timeout
// ---------------------------------------------------------------------------

/// --idle-timeout 2 closes a client silent for two seconds (after an echo, or
/// from the start), and never one that sends every 200 ms for 4 s. (The
/// active client's ticks leave 1.8 s of slack: a test thread starved that
/// long on a busy machine would be idle in fact.)
#[test]
fn idle_timeout_closes_silent_clients_only() {
    let server = start_server(&["--idle-timeout", "2"]);
    let addr = server.addr;
    // Each clock starts before the client's last activity, so the time to its
    // close is a true lower bound on how long the server let it sit idle.
    let quiet_after_echo = thread::spawn(move || {
        let mut s = connect(addr);
        let t = Instant::now();
        assert_echo(&mut s, b"hello, then silence");
        assert_closed_by_server(&mut s);
        t.elapsed()
    });
    let mute = thread::spawn(move || {
        let t = Instant::now();
        let mut s = connect(addr);
        assert_closed_by_server(&mut s);
        t.elapsed()
    });
    let mut active = connect(addr);
    let active_port = active.local_addr().unwrap().port();
    let start = Instant::now();
    let mut k = 0;
    while start.elapsed() < Duration::from_secs(4) {
        assert_echo(&mut active, format!("tick {k}").as_bytes());
        k += 1;
        thread::sleep(Duration::from_millis(200));
    }
    let quiet = quiet_after_echo.join().unwrap();
    let mute = mute.join().unwrap();
    // Closed no earlier than the timeout (a lower bound only: no speed check).
    assert!(quiet >= Duration::from_millis(1900), "closed after {quiet:?}");
    assert!(mute >= Duration::from_millis(1900), "closed after {mute:?}");
    active.shutdown(Shutdown::Write).unwrap();
    let mut rest = Vec::new();
    active.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty());
    let line = server.wait_for_close(active_port);
    assert!(line.contains("(peer closed)"), "the active client was closed idle: {line}");
    server.wait_for_log_count("(idle timeout)", 2);
    println!(
        "idle: silent clients closed after {quiet:?} and {mute:?}; active client sent {k} ticks"
    );
    let summary = server.stop();
    assert!(summary.contains("; 2 closed idle"), "{summary}");
}

// ---------------------------------------------------------------------------
// 5. Resets and abrupt exits
// ---------------------------------------------------------------------------

/// A client resets (SO_LINGER 0) while the server owes it megabytes and
/// several others are mid-transfer: only its own connection ends.
#[test]
fn reset_while_the_server_owes_megabytes_ends_only_that_connection() {
    let server = start_server(&[]);
    let pid = server.child.id();
    let baseline = rss_kib(pid);
    let victim = connect(server.addr);
    let victim_port = victim.local_addr().unwrap().port();
    // A stall alone may be the server starved of CPU, not holding 4 MiB: keep
    // writing until its memory says it holds the victim's bytes.
    let (mut written, mut owed_rss) = (0, 0);
    wait_until("the server to hold megabytes for the victim", || {
        written += write_until_stalled(&victim);
        owed_rss = rss_kib(pid);
        owed_rss >= baseline + 2048
    });
    let (_, rx_q) = server_side_queues(server.addr.port(), victim_port).expect("server's socket");
    assert!(rx_q > 0, "the server should have stopped reading the victim");
    // Others are mid-transfer when the reset comes: each has had a first
    // piece of its echo back.
    let addr = server.addr;
    let (started, mid_transfer) = mpsc::channel();
    let busy: Vec<_> = (0..4)
        .map(|i| {
            let started = started.clone();
            thread::spawn(move || {
                let data = random_bytes(8 * MIB, 50 + i);
                let mut s = connect(addr);
                let mut w = s.try_clone().unwrap();
                let sent = data.clone();
                let writer = thread::spawn(move || {
                    w.write_all(&sent).unwrap();
                    w.shutdown(Shutdown::Write).unwrap();
                });
                let mut back = read_n(&mut s, 64 * 1024);
                started.send(()).unwrap();
                s.read_to_end(&mut back).expect("read to EOF");
                writer.join().unwrap();
                assert!(
                    back == data,
                    "busy client {i}: {} of {} bytes, or different",
                    back.len(),
                    data.len()
                );
            })
        })
        .collect();
    for _ in 0..busy.len() {
        mid_transfer.recv_timeout(STEP).expect("a busy client's first echo");
    }
    set_linger_zero(&victim);
    drop(victim);
    server.wait_for_log(&format!(":{victim_port} (reset by peer)"));
    for b in busy {
        b.join().unwrap();
    }
    assert_served(server.addr, b"after the reset");
    println!(
        "reset: victim had sent {} KiB; server RSS {baseline} -> {owed_rss} KiB while owing",
        written / 1024
    );
    server.stop();
}

const CHILD_ENV: &str = "PROGJAR_FAULTS_CHILD_ADDR";

/// Not a test on its own: the child process of
/// `a_killed_client_with_bytes_pending_ends_only_its_connection`. Connects,
/// sends until the server stops reading, says so, and waits to be killed.
#[test]
#[ignore = "helper run as a child process by another test"]
fn helper_child_floods_without_reading() {
    let Ok(addr) = std::env::var(CHILD_ENV) else { return };
    let s = connect(addr.parse().expect("address"));
    let written = write_until_stalled(&s);
    println!("stalled after {written} bytes from {}", s.local_addr().unwrap());
    io::stdout().flush().unwrap();
    // Keep the server's pending buffer full (it may have been short of CPU,
    // not of room, when the stall was seen) until killed, for a bounded time.
    let end = Instant::now() + STEP * 2;
    while Instant::now() < end {
        write_until_stalled(&s);
    }
}

/// A client process is SIGKILLed while the server still owes it megabytes:
/// the kernel resets its socket, the server ends that connection only (no
/// panic, no SIGPIPE) and keeps serving.
#[test]
fn a_killed_client_with_bytes_pending_ends_only_its_connection() {
    let server = start_server(&[]);
    let pid = server.child.id();
    let mut steady = connect(server.addr);
    assert_echo(&mut steady, b"before");
    let baseline = rss_kib(pid);
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "helper_child_floods_without_reading",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, server.addr.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn the child client");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            // libtest may print "test NAME ... " on the same line first.
            if let Some(at) = line.find("stalled after") {
                let _ = tx.send(line[at..].to_string());
            }
        }
    });
    let line = match rx.recv_timeout(STEP) {
        Ok(line) => line,
        Err(_) => {
            let _ = child.kill();
            panic!("the child never stalled");
        }
    };
    let child_port: u16 = line.rsplit(':').next().unwrap().parse().unwrap();
    let mut owed_rss = 0;
    wait_until("the server to owe the child megabytes", || {
        owed_rss = rss_kib(pid);
        owed_rss >= baseline + 2048
    });
    child.kill().unwrap();
    let _ = child.wait();
    server.wait_for_log(&format!(":{child_port} (reset by peer)"));
    assert_echo(&mut steady, b"after");
    assert_served(server.addr, b"newcomer");
    assert!(server.log_lines().iter().all(|l| !l.contains("panicked")));
    println!("killed child: {line}; server RSS {baseline} -> {owed_rss} KiB while owing");
    drop(steady);
    let mut server = server;
    assert!(server.child.try_wait().unwrap().is_none(), "the server died");
    server.stop();
}

// ---------------------------------------------------------------------------
// 6. Half-close
// ---------------------------------------------------------------------------

/// The client sends 10 MiB, shuts down its write side, and only then starts
/// reading: every byte comes back, then EOF. (--max-pending 16MiB lets the
/// server hold all of it, so the sender can never block for want of a reader.)
#[test]
fn half_close_before_reading_anything_gets_every_byte_then_eof() {
    let server = start_server(&["--max-pending", "16MiB"]);
    let data = random_bytes(10 * MIB, 6);
    let mut s = connect(server.addr);
    s.write_all(&data).expect("10 MiB fit in the server's pending buffer");
    s.shutdown(Shutdown::Write).unwrap();
    let mut back = Vec::new();
    s.read_to_end(&mut back).expect("read to EOF");
    assert!(back == data, "got {} of {} bytes, or different", back.len(), data.len());
    // And a client that half-closes without sending a byte gets EOF at once.
    let mut empty = connect(server.addr);
    empty.shutdown(Shutdown::Write).unwrap();
    let mut rest = Vec::new();
    empty.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty());
    server.wait_for_log(&format!("(peer closed): {} bytes echoed", grouped(data.len() as u64)));
    server.wait_for_log("(peer closed): 0 bytes echoed");
    server.stop();
}

// ---------------------------------------------------------------------------
// 7. Odd payloads
// ---------------------------------------------------------------------------

/// All 256 byte values, read by the server in odd 7-byte pieces with the
/// debug log (which prints every piece) on: echoed exactly, logged escaped.
#[test]
fn every_byte_value_is_echoed_and_logged_safely() {
    let server = start_server_logging("debug", &["--read-size", "7"]);
    let mut payload: Vec<u8> = (0..=255).collect();
    payload.extend((0..=255u8).rev());
    payload.extend((0..=255u8).map(|b| b.wrapping_mul(167)));
    let back = echo_all(connect(server.addr), payload.clone());
    assert_eq!(back, payload);
    server.wait_for_log(r"b'\x00\x01\x02\x03\x04\x05\x06'");
    server.wait_for_log(r"b'\xfc\xfd\xfe\xff\xff\xfe\xfd'");
    server.wait_for_log(&format!("(peer closed): {} bytes echoed", grouped(payload.len() as u64)));
    server.stop();
}

/// 100 000 one-byte writes, each its own segment (TCP_NODELAY): the echo is
/// the same 100 000 bytes in the same order.
#[test]
fn a_hundred_thousand_one_byte_writes_are_echoed_in_order() {
    const N: usize = 100_000;
    let server = start_server(&[]);
    let s = connect(server.addr);
    s.set_nodelay(true).unwrap();
    let data = random_bytes(N, 7);
    let mut r = s.try_clone().unwrap();
    let reader = thread::spawn(move || {
        let mut back = Vec::new();
        r.read_to_end(&mut back).expect("read to EOF");
        back
    });
    let mut w = &s;
    for b in &data {
        assert_eq!(w.write(std::slice::from_ref(b)).expect("write one byte"), 1);
    }
    s.shutdown(Shutdown::Write).unwrap();
    let back = reader.join().unwrap();
    assert!(back == data, "got {} of {N} bytes, or different", back.len());
    server.stop();
}

/// One 64 MiB write: echoed exactly.
#[test]
fn one_64_mib_write_is_echoed_exactly() {
    let server = start_server(&[]);
    let s = connect(server.addr);
    let data = random_bytes(64 * MIB, 64);
    let mut r = s.try_clone().unwrap();
    let reader = thread::spawn(move || {
        let mut back = Vec::with_capacity(64 * MIB);
        r.read_to_end(&mut back).expect("read to EOF");
        back
    });
    // A blocking send() of the whole buffer: the kernel takes it in one call
    // unless interrupted (write_all covers that case).
    (&s).write_all(&data).expect("write 64 MiB");
    s.shutdown(Shutdown::Write).unwrap();
    let back = reader.join().unwrap();
    assert!(back == data, "got {} of {} bytes, or different", back.len(), data.len());
    server.stop();
}

// ---------------------------------------------------------------------------
// 8. Graceful shutdown
// ---------------------------------------------------------------------------

const CLIENTS: usize = 100;
/// SIGTERM while 100 clients are mid-transfer (each has sent half its 1 MiB,
/// ten have read nothing back yet): the listener closes (new clients are
/// refused), the open connections are served until they finish, every client
/// gets back exactly what it sent, and the server exits 0 with its summary.
#[test]
fn sigterm_with_100_clients_mid_transfer_flushes_everything() {
    const HALF: u64 = 512 * 1024;
    let mut server = start_server(&["--grace", "60"]);
    let mut driver = Driver::new();
    let mut flows = hundred_flows(&driver, server.addr, HALF);
    for i in 0..flows.len() {
        driver.kick(i);
    }
    driver.run(&mut flows, STEP, |_, _| false, |fs| fs.iter().all(|f| f.sent == HALF));
    server.wait_for_open(CLIENTS);
    let owed: u64 = flows.iter().map(|f| f.sent - f.received).sum();
    server.signal(libc::SIGTERM);
    let line = server.wait_for_log("shutting down");
    assert!(line.contains(&format!("waiting up to 60.0s for {CLIENTS} open")), "{line}");
    let refused = TcpStream::connect(server.addr).map(|_| ()).unwrap_err();
    assert_eq!(refused.kind(), ErrorKind::ConnectionRefused, "no new accepts after SIGTERM");
    for (i, f) in flows.iter_mut().enumerate() {
        f.limit = 2 * HALF;
        f.reading = true;
        f.close_at_limit = true;
        driver.kick(i);
    }
    driver.run(&mut flows, STEP, |_, _| false, |fs| fs.iter().all(Flow::ended));
    assert_no_flow_failed(&flows, "after the signal");
    assert!(flows.iter().all(|f| f.received == 2 * HALF && f.eof));
    let status = server.wait_exit();
    assert!(status.success(), "{status:?}");
    let total = CLIENTS as u64 * 2 * HALF;
    server.wait_for_log(&format!("served {CLIENTS} connections, echoed {} bytes", grouped(total)));
    assert_no_panic(&server.log_lines());
    println!(
        "SIGTERM: {} KiB owed or in flight at the signal; all {total} bytes came back",
        owed / 1024
    );
}

/// A second signal during the grace time stops at once (status 130) even
/// with 100 clients mid-transfer: each sees its connection end (EOF or
/// reset, never a hang), and what it did receive was right.
#[test]
fn a_second_signal_mid_transfer_exits_130_and_every_client_sees_the_end() {
    const HALF: u64 = 512 * 1024;
    // More than the server could echo before the second signal: no flow finishes.
    const LIMIT: u64 = 1 << 40;
    let mut server = start_server(&["--grace", "600"]);
    let mut driver = Driver::new();
    let mut flows = hundred_flows(&driver, server.addr, HALF);
    for (i, f) in flows.iter_mut().enumerate() {
        f.reading = true;
        f.window = 64 * 1024;
        driver.kick(i);
    }
    driver.run(&mut flows, STEP, |_, _| false, |fs| fs.iter().all(|f| f.received == HALF));
    server.signal(libc::SIGTERM);
    server.wait_for_log("shutting down");
    // Every client is still being served after the first signal.
    for (i, f) in flows.iter_mut().enumerate() {
        f.limit = LIMIT;
        driver.kick(i);
    }
    driver.run(
        &mut flows,
        STEP,
        |_, _| false,
        |fs| fs.iter().all(|f| f.received >= HALF + 64 * 1024),
    );
    server.signal(libc::SIGINT);
    let status = server.wait_exit();
    assert_eq!(status.code(), Some(130), "{:?}", server.log_lines());
    driver.run(&mut flows, STEP, |_, _| false, |fs| fs.iter().all(Flow::ended));
    assert!(flows.iter().all(|f| f.error.is_some()), "every transfer is cut short");
    server.wait_for_log("SIGINT again: stopping now");
    server.wait_for_log(&format!("served {CLIENTS} connections"));
    server.wait_for_log("stopped at once by a second signal");
    assert_no_panic(&server.log_lines());
}

// ---------------------------------------------------------------------------
// 9. Bad command lines
// ---------------------------------------------------------------------------
/// Each bad command line gets one clear line on stderr and status 2 (usage)
/// or 1 (runtime), never a panic, and nothing on stdout.
#[test]
fn bad_command_lines_say_one_clear_line() {
    let in_use = TcpListener::bind("127.0.0.1:0").unwrap();
    let busy_port = in_use.local_addr().unwrap().port().to_string();
    let in_use_msg = format!("port {busy_port} is already in use");
    let mut cases: Vec<(Vec<&str>, i32, Vec<&str>)> = vec![
        (vec!["server", "--port", "70000"], 2, vec!["'--port'", "70000"]),
        (vec!["server", "--port", "abc"], 2, vec!["'--port'", "abc"]),
        (vec!["server", "--port", "-1"], 2, vec!["'--port'"]),
        (vec!["server", "--bogus"], 2, vec!["--bogus"]),
        (vec!["server", "--max-pending", "0"], 2, vec!["'--max-pending'"]),
        (vec!["server", "--read-size", "17MiB"], 2, vec!["'--read-size'"]),
        (vec!["server", "--read-size", "0"], 2, vec!["'--read-size'", "'0'"]),
        (vec!["server", "--bind", "not-an-address"], 2, vec!["'--bind'", "not-an-address"]),
        (vec!["server", "--idle-timeout", "soon"], 2, vec!["'--idle-timeout'"]),
        (vec!["server", "--grace", "-1"], 2, vec!["'--grace'"]),
        (vec!["server", "--allow", "10.0.0.0/33"], 2, vec!["not a network"]),
        (vec!["server", "--allow", "::1/129"], 2, vec!["not a network"]),
        (vec!["server", "--max-per-ip", "many"], 2, vec!["'--max-per-ip'"]),
        (vec!["server", "--backlog", "99999999999"], 2, vec!["'--backlog'"]),
        (
            vec!["server", "--bind", "fe80::1", "--port", "0"],
            1,
            vec!["link-local address needs an interface"],
        ),
        (
            vec!["server", "--bind", "192.0.2.1", "--port", "0"],
            1,
            vec!["192.0.2.1 is not an address of this machine"],
        ),
        (
            vec!["server", "--bind", "127.0.0.1", "--port", &busy_port],
            1,
            vec![&in_use_msg, "--port"],
        ),
    ];
    if TcpListener::bind("[::1]:0").is_ok() {
        cases.push((
            vec!["server", "--bind", "2001:db8::1", "--port", "0"],
            1,
            vec!["2001:db8::1 is not an address of this machine"],
        ));
    }
    for (args, code, wanted) in &cases {
        let (status, err) = run_failing(&[], args);
        assert_eq!(status, Some(*code), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.starts_with("progjar: "), "{args:?}: {err}");
        for w in wanted {
            assert!(err.contains(w), "{args:?}: wanted {w:?} in {err}");
        }
    }
    drop(in_use);
}

/// A port below 1024 without the privilege: one line that says why, status 1.
/// The tests run as root in CI, so the server is started as `nobody`.
#[test]
fn a_privileged_port_without_permission_says_so() {
    let start = std::fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start")
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok())
        .unwrap_or(1024);
    if start <= 7 {
        println!(
            "skipped: net.ipv4.ip_unprivileged_port_start is {start}, so anyone may bind port 7"
        );
        return;
    }
    // SAFETY: geteuid has no preconditions.
    let wrapper: &[&str] = if unsafe { libc::geteuid() } == 0 {
        &["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    } else {
        &[]
    };
    if !wrapper.is_empty() {
        let probe = Command::new(wrapper[0])
            .args(&wrapper[1..])
            .arg(env!("CARGO_BIN_EXE_progjar"))
            .arg("--help")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if !matches!(probe, Ok(s) if s.success()) {
            println!("skipped: cannot run progjar as nobody with setpriv ({probe:?})");
            return;
        }
    }
    let (status, err) = run_failing(wrapper, &["server", "--bind", "127.0.0.1", "--port", "7"]);
    assert_eq!(status, Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("127.0.0.1:7") && err.contains("ports below 1024 need root"), "{err}");
}

// ---------------------------------------------------------------------------
// 10. Access control
// ---------------------------------------------------------------------------

/// --allow (repeated) admits only the listed IPv4 networks: clients from
/// other loopback addresses are closed at accept and logged.
#[test]
fn allow_admits_only_listed_ipv4_networks() {
    let server = start_server(&[
        "--allow",
        "127.0.0.2/32",
        "--allow",
        "10.0.0.0/8",
        "--allow",
        "127.0.0.64/26",
    ]);
    let mut ok = connect_from(Ipv4Addr::new(127, 0, 0, 2), server.addr);
    assert_echo(&mut ok, b"from .2");
    let mut ok2 = connect_from(Ipv4Addr::new(127, 0, 0, 100), server.addr);
    assert_echo(&mut ok2, b"from .100");
    let mut from_1 = connect(server.addr);
    assert_closed_by_server(&mut from_1);
    let line = server.wait_for_log("not in --allow");
    assert!(line.starts_with("WARN:server:refused 127.0.0.1:"), "{line}");
    let mut from_3 = connect_from(Ipv4Addr::new(127, 0, 0, 3), server.addr);
    assert_closed_by_server(&mut from_3);
    assert_echo(&mut ok, b"still served");
    drop((ok, ok2));
    let summary = server.stop();
    assert!(summary.contains("refused 2 not in --allow"), "{summary}");
}

/// IPv6: `--bind ::1 --allow ::1/128` serves ::1; on `--bind ::` an IPv4
/// client arrives as ::ffff:127.0.0.1 and is matched as 127.0.0.1, so
/// `--allow 127.0.0.0/8` admits it and refuses ::1, and `--allow ::1/128`
/// does the opposite.
#[test]
fn allow_matches_ipv6_and_ipv4_mapped_clients() {
    if TcpListener::bind("[::1]:0").is_err() {
        println!("skipped: no IPv6 loopback here");
        return;
    }
    let start = |bind: &str, allow: &str| {
        start_server_with(
            common::progjar().args(["server", "--bind", bind, "--port", "0", "--allow", allow]),
        )
    };
    let v6 = start("::1", "::1/128");
    assert_served(v6.addr, b"over IPv6");
    v6.stop();

    let dual = start("::", "127.0.0.0/8");
    let port = dual.addr.port();
    let v4_addr: SocketAddr = (Ipv4Addr::LOCALHOST, port).into();
    let v6_addr: SocketAddr = (std::net::Ipv6Addr::LOCALHOST, port).into();
    assert_served(v4_addr, b"IPv4 through a dual-stack listener");
    dual.wait_for_log("connection from [::ffff:127.0.0.1]:");
    assert_closed_by_server(&mut connect(v6_addr));
    dual.wait_for_log("refused [::1]:");
    let summary = dual.stop();
    assert!(summary.contains("refused 1 not in --allow"), "{summary}");

    let dual = start("::", "::1/128");
    let port = dual.addr.port();
    assert_served((std::net::Ipv6Addr::LOCALHOST, port).into(), b"IPv6 allowed");
    assert_closed_by_server(&mut connect((Ipv4Addr::LOCALHOST, port).into()));
    dual.wait_for_log("refused [::ffff:127.0.0.1]:");
    dual.stop();
}

/// --max-per-ip 3: the fourth connection from one address is closed and
/// logged, another address is unaffected, and after one leaves a new one
/// from the first address is served.
#[test]
fn max_per_ip_caps_each_address_separately() {
    let server = start_server(&["--max-per-ip", "3"]);
    let mut mine: Vec<TcpStream> = (0..3).map(|_| connect(server.addr)).collect();
    for (i, s) in mine.iter_mut().enumerate() {
        assert_echo(s, format!("mine {i}").as_bytes());
    }
    assert_closed_by_server(&mut connect(server.addr));
    let line = server.wait_for_log("(--max-per-ip)");
    assert!(line.contains("3 connections open from 127.0.0.1"), "{line}");
    let mut theirs: Vec<TcpStream> =
        (0..3).map(|_| connect_from(Ipv4Addr::new(127, 0, 0, 2), server.addr)).collect();
    for (i, s) in theirs.iter_mut().enumerate() {
        assert_echo(s, format!("theirs {i}").as_bytes());
    }
    assert_closed_by_server(&mut connect_from(Ipv4Addr::new(127, 0, 0, 2), server.addr));
    let leaving = mine.pop().unwrap();
    let port = leaving.local_addr().unwrap().port();
    drop(leaving);
    server.wait_for_close(port);
    let mut again = connect(server.addr);
    assert_echo(&mut again, b"a seat from 127.0.0.1 came free");
    assert_closed_by_server(&mut connect(server.addr));
    drop((mine, theirs, again));
    let summary = server.stop();
    assert!(summary.contains("refused 3 at --max-per-ip"), "{summary}");
}

// ---------------------------------------------------------------------------
// 11. Soak
// ---------------------------------------------------------------------------
/// 2000 connections exchange verified messages (ping-pong, varied sizes) for
/// 30 s from one nonblocking loop: zero errors, every byte checked, the
/// summary accounts for every byte, and the server's RSS at the end is within
/// 10% of its RSS once all 2000 were connected and warmed up.
#[test]
fn soak_2000_connections_for_30_seconds() {
    const CONNS: usize = 2000;
    const STEADY: Duration = Duration::from_secs(30);
    raise_nofile(CONNS as u64 + 512);
    let mut server = start_server(&[]);
    let pid = server.child.id();
    let rss_empty = rss_kib(pid);
    let mut driver = Driver::new();
    let mut flows: Vec<Flow> =
        (0..CONNS).map(|i| Flow::new(server.addr, i as u64, &driver.poll, i)).collect();
    server.wait_for_open(CONNS);
    let next = |i: usize, f: &mut Flow| {
        if f.received == f.limit {
            f.limit += message_len(i as u64, f.rounds);
            f.rounds += 1;
            true
        } else {
            false
        }
    };
    for (i, f) in flows.iter_mut().enumerate() {
        next(i, f);
        driver.kick(i);
    }
    // Warm-up: every connection completes two round trips.
    driver.run(&mut flows, STEP, next, |fs| fs.iter().all(|f| f.rounds >= 3));
    let rss_start = rss_kib(pid);
    let (t0, cpu0) = (Instant::now(), cpu_time(pid));
    let (mut rss_min, mut rss_max, mut sampled) = (rss_start, rss_start, Instant::now());
    driver.run(&mut flows, STEADY + STEP, next, |_| {
        if sampled.elapsed() >= Duration::from_millis(500) {
            let r = rss_kib(pid);
            (rss_min, rss_max, sampled) = (rss_min.min(r), rss_max.max(r), Instant::now());
        }
        t0.elapsed() >= STEADY
    });
    // Let the last messages come back, then measure.
    driver.run(&mut flows, STEP, |_, _| false, |fs| fs.iter().all(|f| f.received == f.limit));
    let steady = t0.elapsed();
    let rss_end = rss_kib(pid);
    let cpu = cpu_time(pid) - cpu0;
    assert_no_flow_failed(&flows, "during the soak");
    // Everyone half-closes and gets EOF after the last byte.
    for (i, f) in flows.iter_mut().enumerate() {
        f.close_at_limit = true;
        driver.kick(i);
    }
    driver.run(&mut flows, STEP, |_, _| false, |fs| fs.iter().all(Flow::ended));
    assert_no_flow_failed(&flows, "at the end");
    let total: u64 = flows.iter().map(|f| f.limit).sum();
    let rounds: u64 = flows.iter().map(|f| f.rounds).sum();
    let fewest = flows.iter().map(|f| f.rounds).min().unwrap();
    let most = flows.iter().map(|f| f.rounds).max().unwrap();
    drop(flows);
    server.signal(libc::SIGTERM);
    assert!(server.wait_exit().success());
    server.wait_for_log(&format!("served 2,000 connections, echoed {} bytes", grouped(total)));
    assert_no_panic(&server.log_lines());
    println!(
        "soak: {CONNS} connections, {rounds} messages ({fewest} to {most} each), {} MiB echoed in {steady:.1?} steady; \
         server RSS empty {rss_empty} KiB, start {rss_start} KiB, min {rss_min}, max {rss_max}, \
         end {rss_end} KiB ({:+.1}%); server CPU {:.0}% of wall",
        total / MIB as u64,
        (rss_end as f64 / rss_start as f64 - 1.0) * 100.0,
        cpu.as_secs_f64() / steady.as_secs_f64() * 100.0
    );
    assert!(
        rss_end * 10 <= rss_start * 11,
        "server RSS grew from {rss_start} KiB to {rss_end} KiB over the soak"
    );
}
