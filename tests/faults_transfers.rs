//! The fault matrix, bytes in flight: `progjar server` when a client stops
//! reading, resets, dies, half-closes, sends odd payloads, or when the
//! operator stops the server mid-transfer. Each test drives the real binary
//! over loopback, is bounded in time, and checks that the server survives,
//! keeps serving everyone else, and never loses, reorders or duplicates a
//! byte. docs/faults.md lists the rows with what the server does in each.
//!
//! Nothing here asserts speed: bounds are on correctness (exact bytes, exit
//! status, log lines) and on memory (VmRSS).

use progjar_testkit as common;

use progjar::units::grouped;

use std::io::{self, BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use common::{
    assert_echo, assert_no_flow_failed, assert_no_panic, assert_served, connect, echo_all,
    hundred_flows, random_bytes, read_n, rss_kib, server_side_queues, set_linger_zero,
    start_server, start_server_logging, wait_until, write_until_stalled, Driver, Flow, RssSampler,
    Stream, MIB, STEP,
};

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
// 2. Resets and abrupt exits
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
// 3. Half-close
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
// 4. Odd payloads
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
// 5. Graceful shutdown
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
