//! `progjar server --tls-cert --tls-key`: the course's TLS clients (Python's
//! `ssl`, checking nothing or checking the CA), `openssl s_client`, `progjar
//! client --tls` and rustls get their echo; the course's expired certificate
//! loads with a warning; the relay sees only ciphertext; clients that do not
//! speak TLS are one line each; and every promise of the plaintext server
//! holds for TLS connections: backpressure and the memory bound, the read
//! budget of a turn, idle timeouts, the handshake timeout, half-close with
//! `close_notify`, a graceful stop, `--loops`, `--record`.

use progjar_testkit as common;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use common::{
    assert_tls_echo, client, client_hello, code, connect, course_pair, progjar, progjar_cert,
    python_tls_client, random_bytes, read_to_end, run, s_client_echo, scratch_dir,
    server_side_queues, start_course_proxy, start_server_with, start_tls_server, stderr, stdout,
    tls_connect, tls_server_command, wait_until, Server, Stream, TlsPeer, MIB, STEP,
};
use progjar::cli::{EXIT_TLS, EXIT_USAGE};

const KIB: usize = 1024;

/// A scratch directory with `progjar cert`'s three files.
fn certs(name: &str) -> PathBuf {
    let dir = scratch_dir("tls-server", name);
    progjar_cert(&dir);
    dir
}

fn path(p: &Path) -> &str {
    p.to_str().expect("a UTF-8 temporary path")
}

/// SIGTERM, a clean exit, and the summary line.
fn stop(server: &mut Server) -> String {
    server.signal(libc::SIGTERM);
    assert!(server.wait_exit().success(), "{:?}", server.log_lines());
    server.wait_for_log("served ")
}

/// The seconds a `closing connection from` line says the connection lasted.
fn lasted(line: &str) -> f64 {
    let after = line.rsplit_once(" in ").expect("a duration").1;
    after.split('s').next().and_then(|s| s.parse().ok()).expect("seconds")
}

#[test]
fn pythons_ssl_clients_the_courses_way_and_checking_get_their_echo() {
    let dir = certs("python");
    let mut server = start_tls_server(&dir, &[]);
    // The course's client: CERT_NONE, no name check; getpeercert() is then empty.
    let out = python_tls_client("127.0.0.1", server.addr.port(), None);
    assert_eq!(code(&out), 0, "{}", common::all_output(&out));
    assert_eq!(stdout(&out).trim(), "echo identical");
    let log = stderr(&out);
    assert!(log.contains("INFO:root:TLSv1.3 TLS_") && log.contains("getpeercert: {}"), "{log}");
    assert!(log.contains("INFO:root:b'INI ADALAH DATA '"), "{log}");
    // Checking the certificate against ca.crt and the name 127.0.0.1.
    let out = python_tls_client("127.0.0.1", server.addr.port(), Some(&dir.join("ca.crt")));
    assert_eq!(code(&out), 0, "{}", common::all_output(&out));
    assert_eq!(stdout(&out).trim(), "echo identical");
    assert!(stderr(&out)
        .contains("'subjectAltName': (('DNS', 'localhost'), ('IP Address', '127.0.0.1')"));
    assert!(stop(&mut server).contains("served 2 connections, echoed 100 bytes"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn openssl_s_client_checks_the_certificate_and_gets_the_echo() {
    let dir = certs("s-client");
    let server = start_tls_server(&dir, &[]);
    let (out, err) = s_client_echo(server.addr, &dir.join("ca.crt"), false, "KASUR INI RUSAK");
    assert_eq!(out.lines().filter(|l| *l == "KASUR INI RUSAK").count(), 1, "{out}");
    assert!(err.contains("Verification: OK") && err.contains("Protocol version: TLSv1.3"), "{err}");
    // A key update asked for by the client is answered (a record rustls makes
    // after the handshake, sent like any other), and the echo carries on.
    let (out, err) = s_client_echo(server.addr, &dir.join("ca.crt"), true, "after the update");
    assert!(err.contains("KEYUPDATE"), "{err}");
    assert_eq!(out.lines().filter(|l| *l == "after the update").count(), 1, "{out}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn progjar_client_checks_our_certificate_and_gets_every_byte() {
    let dir = certs("progjar");
    let server = start_tls_server(&dir, &[]);
    let ca = dir.join("ca.crt");
    for host in [format!("127.0.0.1:{}", server.port()), format!("localhost:{}", server.port())] {
        let out = client(&["--tls", "--ca", path(&ca), &host], None);
        assert_eq!(code(&out), 0, "{}", common::all_output(&out));
        assert!(stdout(&out).starts_with("sent 46 bytes, received 46 bytes, identical"));
    }
    let host = format!("127.0.0.1:{}", server.port());
    let out = client(&["--tls", "--ca", path(&ca), &host, "--size", "8MB"], None);
    assert_eq!(code(&out), 0, "{}", common::all_output(&out));
    assert!(stdout(&out).starts_with("sent 8,388,608 bytes, received 8,388,608 bytes, identical"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_tls_1_2_client_is_served_too() {
    let dir = certs("tls12");
    let server = start_tls_server(&dir, &[]);
    let mut tls =
        common::tls_connect_with(server.addr, common::tls12_trusting(&dir.join("ca.crt")));
    assert_eq!(tls.conn.protocol_version(), Some(rustls::ProtocolVersion::TLSv1_2));
    let data = random_bytes(300 * KIB, 12);
    tls.write_all(&data).unwrap();
    tls.conn.send_close_notify();
    tls.flush().unwrap();
    let (echo, clean) = read_to_end(&mut tls);
    assert!(
        echo == data && clean,
        "{} bytes back of {}, close_notify {clean}",
        echo.len(),
        data.len()
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_courses_expired_certificate_loads_with_a_warning_and_checking_clients_refuse_it() {
    let dir = scratch_dir("tls-server", "course");
    let (crt, key) = course_pair(&dir);
    let server = start_server_with(&mut tls_server_command(&crt, &key, &[]));
    server.wait_for_log(&format!(
        "WARN:server:the certificate in {} expired on 2026-04-22: clients that check it will \
         refuse it (only --insecure ones connect); make a new one with `progjar cert DIR`",
        crt.display()
    ));
    let host = format!("127.0.0.1:{}", server.port());
    // progjar client trusting the certificate itself: refused for its date, exit 9.
    let out = client(&["--tls", "--ca", path(&crt), &host], None);
    assert_eq!(code(&out), i32::from(EXIT_TLS), "{}", common::all_output(&out));
    assert!(stderr(&out).contains("the server's certificate expired on 2026-04-22"));
    server.wait_for_log(
        "(it refused our certificate (it does not trust it: its own message says why))",
    );
    // Python checking it (by the name its CN gives, for want of a
    // subjectAltName): OpenSSL's own alert says why, and so does the server's line.
    let out = python_tls_client("localhost", server.addr.port(), Some(&crt));
    assert_eq!(code(&out), 1, "{}", common::all_output(&out));
    assert!(stderr(&out).contains("certificate has expired"), "{}", stderr(&out));
    server.wait_for_log("(it refused our certificate: it has expired)");
    // The course's client checks nothing, and so connects (so does --insecure).
    let out = python_tls_client("127.0.0.1", server.addr.port(), None);
    assert_eq!(stdout(&out).trim(), "echo identical", "{}", common::all_output(&out));
    let out = client(&["--tls", "--insecure", &host], None);
    assert_eq!(code(&out), 0, "{}", common::all_output(&out));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn through_the_course_relay_the_relay_sees_only_ciphertext() {
    let dir = certs("relay");
    let server = start_tls_server(&dir, &[]);
    let proxy = start_course_proxy(server.addr);
    let host = format!("127.0.0.1:{}", proxy.port());
    let out = client(&["--tls", "--ca", path(&dir.join("ca.crt")), &host], None);
    assert_eq!(code(&out), 0, "{}", common::all_output(&out));
    assert!(stdout(&out).starts_with("sent 46 bytes, received 46 bytes, identical"));
    proxy.wait_for_log("WARNING:root:received data from realserver b");
    let log = proxy.log_lines().join("\n");
    let hello = ["client b'\\x16\\x03", "client b\"\\x16\\x03"];
    assert!(hello.iter().any(|h| log.contains(h)), "no TLS record from the client:\n{log}");
    for plain in ["INI ADALAH", "ADALAH DATA", "ABCDEFGHIJ"] {
        assert!(!log.contains(plain), "the relay saw {plain:?}:\n{log}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A client that sends `bytes` (then maybe its FIN) and reads to the end;
/// returns what came back and the line closing it.
fn bad_client(server: &Server, bytes: &[u8], fin: bool) -> (Vec<u8>, String) {
    let mut s = connect(server.addr);
    s.write_all(bytes).unwrap();
    if fin {
        s.shutdown(Shutdown::Write).unwrap();
    }
    let mut back = Vec::new();
    let _ = s.read_to_end(&mut back);
    (back, server.wait_for_close(s.local_addr().unwrap().port()))
}

#[test]
fn clients_that_do_not_speak_tls_are_one_line_each_and_closed_alone() {
    let dir = certs("bad");
    let ca = dir.join("ca.crt");
    let mut server = start_tls_server(&dir, &[]);
    // A client kept open through all of it is still served at the end.
    let mut bystander = tls_connect(server.addr, &ca);
    let hello = client_hello();
    let garbage = [&[22u8, 3, 1, 0, 40][..], &[0xab; 40]].concat();
    // What each sends, whether it then sends its FIN, why the server closes it,
    // and whether rustls tells it why with an alert first.
    let cases: [(&[u8], bool, &str, bool); 4] = [
        (
            b"INI ADALAH DATA YANG DIKIRIM\n",
            false,
            "it does not speak TLS, its first bytes are plain text: a plaintext client on the \
             TLS port?",
            true,
        ),
        (
            &[0, 1, 2, 3, 4, 5, 6, 7],
            false,
            "it does not speak TLS: its first bytes are no TLS record",
            true,
        ),
        (&garbage, false, "its TLS hello is malformed", false),
        (&hello[..100], true, "it closed the connection in the middle of the TLS handshake", false),
    ];
    for (bytes, fin, why, alert) in cases {
        let (back, line) = bad_client(&server, bytes, fin);
        assert!(line.contains(&format!("({why})")), "{line}");
        if alert {
            // rustls's alert, in a plaintext record: 21 (alert), version, length 2.
            assert_eq!(back.first(), Some(&21), "{why}: {back:?}");
        }
        assert_tls_echo(server.addr, &ca, b"still served");
    }
    // An old client (TLS 1.1) is told with an alert, and the line says why.
    let old = run(
        Command::new("openssl")
            .args(["s_client", "-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0", "-connect"])
            .arg(server.addr.to_string()),
        Some(Vec::new()),
    );
    assert!(!old.status.success());
    server.wait_for_log(
        "(it offers only TLS versions older than 1.2 (progjar speaks TLS 1.2 and 1.3))",
    );
    bystander.write_all(b"and me").unwrap();
    let mut echo = [0; 6];
    bystander.read_exact(&mut echo).unwrap();
    assert_eq!(&echo, b"and me");
    drop(bystander);
    let summary = stop(&mut server);
    assert!(summary.ends_with("; 5 closed on a TLS error"), "{summary}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn close_notify_or_a_fin_ends_the_echo_and_we_answer_close_notify_then_fin() {
    let dir = certs("half-close");
    let ca = dir.join("ca.crt");
    let server = start_tls_server(&dir, &[]);
    // close_notify and FIN (assert_tls_echo checks our close_notify came).
    assert_tls_echo(server.addr, &ca, &random_bytes(300 * KIB, 1));
    // A FIN alone, as Python's ssl sockets end: the same answer.
    let mut tls = tls_connect(server.addr, &ca);
    tls.write_all(b"fin only").unwrap();
    tls.sock.shutdown(Shutdown::Write).unwrap();
    assert_eq!(read_to_end(&mut tls), (b"fin only".to_vec(), true));
    // close_notify alone, the socket left open: the same again.
    let mut tls = tls_connect(server.addr, &ca);
    tls.write_all(b"close_notify only").unwrap();
    tls.conn.send_close_notify();
    tls.flush().unwrap();
    assert_eq!(read_to_end(&mut tls), (b"close_notify only".to_vec(), true));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_graceful_stop_sends_close_notify_before_closing() {
    let dir = certs("stop");
    let mut server = start_tls_server(&dir, &["--grace", "300ms"]);
    let mut tls = tls_connect(server.addr, &dir.join("ca.crt"));
    tls.write_all(b"abc").unwrap();
    let mut echo = [0; 3];
    tls.read_exact(&mut echo).unwrap();
    server.signal(libc::SIGTERM);
    assert_eq!(read_to_end(&mut tls), (Vec::new(), true), "close_notify, then the FIN");
    assert!(server.wait_exit().success());
    assert!(server.wait_for_log("closing connection from").contains("(server shutting down)"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn handshakes_that_do_not_finish_in_time_are_closed_and_counted() {
    let dir = certs("handshake-timeout");
    let ca = dir.join("ca.crt");
    let mut server = start_tls_server(&dir, &["--handshake-timeout", "1s"]);
    let done = tls_connect(server.addr, &ca);
    let silent = connect(server.addr);
    let trickler = connect(server.addr);
    let port = |s: &TcpStream| s.local_addr().unwrap().port();
    let (silent_port, trickler_port) = (port(&silent), port(&trickler));
    let hello = client_hello();
    let trickle = thread::spawn(move || {
        let mut s = trickler;
        // A byte every 50 ms: the hello would take over a minute.
        for b in hello {
            if s.write_all(&[b]).is_err() {
                return;
            }
            thread::sleep(Duration::from_millis(50));
        }
    });
    for port in [silent_port, trickler_port] {
        let line = server.wait_for_close(port);
        let why = "(its TLS handshake did not finish within --handshake-timeout)";
        assert!(line.contains(why), "{line}");
        assert!(lasted(&line) >= 1.0, "closed before its time: {line}");
    }
    trickle.join().unwrap();
    drop(silent);
    // The finished handshake was never on the clock: it is served.
    let mut done = done;
    done.write_all(b"still here").unwrap();
    let mut echo = [0; 10];
    done.read_exact(&mut echo).unwrap();
    drop(done);
    let summary = stop(&mut server);
    assert!(summary.ends_with("; 2 TLS handshakes not finished in time"), "{summary}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn an_idle_tls_client_is_closed_by_the_idle_timeout() {
    let dir = certs("idle");
    let server = start_tls_server(&dir, &["--idle-timeout", "500ms"]);
    let tls = tls_connect(server.addr, &dir.join("ca.crt"));
    let line = server.wait_for_close(tls.sock.local_addr().unwrap().port());
    assert!(line.contains("(idle timeout)"), "{line}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_thousand_silent_and_trickling_handshakes_do_not_hold_up_a_real_client() {
    common::raise_nofile(2400);
    let dir = certs("crowd");
    let ca = dir.join("ca.crt");
    let server = start_tls_server(&dir, &["--handshake-timeout", "60s"]);
    let exchanges = |n: usize| -> Vec<Duration> {
        let mut times: Vec<Duration> =
            (0..n).map(|_| assert_tls_echo(server.addr, &ca, &[b'x'; 64])).collect();
        times.sort();
        times
    };
    // The first exchange also sets up this process's crypto (tens of ms).
    exchanges(1);
    let alone = exchanges(20);
    let silent: Vec<TcpStream> = (0..1000).map(|_| connect(server.addr)).collect();
    let mut tricklers: Vec<TcpStream> = (0..50).map(|_| connect(server.addr)).collect();
    server.wait_for_open(1050);
    let hello = client_hello();
    let stop_trickling = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop_flag = std::sync::Arc::clone(&stop_trickling);
    let trickle = thread::spawn(move || {
        // One byte to each, every 20 ms: 50 hellos that never finish in time here.
        for b in hello.iter().cycle() {
            if stop_flag.load(std::sync::atomic::Ordering::Relaxed) {
                return;
            }
            for s in &mut tricklers {
                s.write_all(&[*b]).expect("trickle a byte");
            }
            thread::sleep(Duration::from_millis(20));
        }
    });
    let crowded = exchanges(20);
    stop_trickling.store(true, std::sync::atomic::Ordering::Relaxed);
    trickle.join().unwrap();
    let ms = |d: Duration| format!("{:.2} ms", d.as_secs_f64() * 1e3);
    println!(
        "full TLS exchange (connect, handshake, 64 bytes, close): alone min {} median {} max {}; \
         beside 1,000 silent and 50 trickling handshakes min {} median {} max {}",
        ms(alone[0]),
        ms(alone[10]),
        ms(alone[19]),
        ms(crowded[0]),
        ms(crowded[10]),
        ms(crowded[19])
    );
    drop(silent);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A TLS client that sends its own stream and checks what comes back.
struct Sender {
    peer: TlsPeer,
    out: Stream,
    chunk: Vec<u8>,
    taken: usize,
    sent: u64,
    back: Stream,
    got: u64,
}

impl Sender {
    fn new(peer: TlsPeer, seed: u64) -> Sender {
        let mut out = Stream::at(seed, 0);
        let mut chunk = vec![0; 64 * KIB];
        out.fill(&mut chunk);
        Sender { peer, out, chunk, taken: 0, sent: 0, back: Stream::at(seed, 0), got: 0 }
    }

    /// Send what the server takes now; whether it took anything.
    fn send_some(&mut self) -> bool {
        let n = self.peer.send_some(&self.chunk[self.taken..]);
        (self.taken, self.sent) = (self.taken + n, self.sent + n as u64);
        if self.taken == self.chunk.len() {
            self.out.fill(&mut self.chunk);
            self.taken = 0;
        }
        n > 0
    }

    /// Read and check what came back; whether all that was sent has.
    fn receive_some(&mut self, scratch: &mut Vec<u8>) -> bool {
        let mut got = Vec::new();
        self.peer.receive_some(&mut got);
        self.back.check(&got, scratch).expect("the echo is what was sent");
        self.got += got.len() as u64;
        self.got == self.sent
    }
}

#[test]
fn a_tls_client_that_never_reads_is_paused_and_its_memory_bounded() {
    const CLIENTS: usize = 8;
    const TOTAL: usize = 256 * KIB;
    let dir = certs("backpressure");
    let ca = dir.join("ca.crt");
    let args = ["--max-pending", "64KiB", "--max-pending-total", "256KiB"];
    let mut server = start_tls_server(&dir, &args);
    let pid = server.child.id();
    let mut senders: Vec<Sender> =
        (0..CLIENTS).map(|i| Sender::new(TlsPeer::connect(server.addr, &ca), i as u64)).collect();
    let before = common::proc_status_kib(pid, "VmRSS:") as usize * KIB;
    // Send until nothing moves for a second: the server has taken what it
    // will. (The kernel's buffers take tens of MiB first, on loopback.)
    let (mut last_move, deadline) = (Instant::now(), Instant::now() + STEP);
    while last_move.elapsed() < Duration::from_secs(1) {
        assert!(Instant::now() < deadline, "the non-readers never stalled");
        let mut moved = false;
        for sender in &mut senders {
            moved |= sender.send_some();
        }
        if moved {
            last_move = Instant::now();
        } else {
            thread::sleep(Duration::from_millis(10)); // pacing
        }
    }
    let grown = (common::proc_status_kib(pid, "VmHWM:") as usize * KIB).saturating_sub(before);
    // Past the total, each connection holds at most one read's echo (its TLS
    // bytes in, about 82 KiB, and their records out) and one record carried.
    let bound = TOTAL + CLIENTS * (100 * KIB + 18 * KIB) + 4 * MIB;
    let sent: u64 = senders.iter().map(|s| s.sent).sum();
    println!(
        "{CLIENTS} TLS non-readers sent {} MiB and grew the server by {} KiB (bound {} KiB)",
        sent / MIB as u64,
        grown / KIB,
        bound / KIB
    );
    assert!(grown <= bound, "server grew by {grown} bytes, more than {bound}");
    for (i, sender) in senders.iter().enumerate() {
        let client_port = sender.peer.sock.local_addr().unwrap().port();
        let (_, unread) = server_side_queues(server.addr.port(), client_port).expect("its socket");
        assert!(unread > 0, "client {i}: the server still reads it");
    }
    // A newcomer owed nothing is served at once, all the same.
    assert_tls_echo(server.addr, &ca, b"owed nothing");
    // Now they read (and send the rest of what they had): every byte comes back, in order.
    let mut scratch = Vec::new();
    wait_until("every echo back", || {
        let mut done = true;
        for sender in &mut senders {
            sender.send_some();
            done &= sender.receive_some(&mut scratch);
        }
        done
    });
    drop(senders);
    stop(&mut server);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_turn_reads_at_most_its_budget_with_tls_too() {
    let dir = certs("budget");
    let rec = dir.join("loop.rec");
    let mut server = start_tls_server(&dir, &["--read-size", "1KiB", "--record", path(&rec)]);
    let mut peer = TlsPeer::connect(server.addr, &dir.join("ca.crt"));
    let data = random_bytes(4 * MIB, 9);
    let (mut sent, mut got) = (0, Vec::new());
    wait_until("4 MiB echoed", || {
        sent += peer.send_some(&data[sent..]);
        peer.receive_some(&mut got);
        got.len() == data.len()
    });
    assert!(got == data);
    drop(peer);
    stop(&mut server);
    let recording = std::fs::read_to_string(&rec).unwrap();
    let turns: Vec<(char, u64)> = recording
        .split([' ', '\n'])
        .filter_map(|item| {
            let kind = item.chars().next()?;
            let read = item.get(1..)?.split(':').nth(1)?.parse().ok()?;
            "tgh".contains(kind).then_some((kind, read))
        })
        .collect();
    let most = turns.iter().map(|t| t.1).max().unwrap();
    assert!(most <= 16 * 1024, "a turn read {most} bytes, more than 16 reads of 1 KiB");
    assert!(turns.iter().any(|t| t.0 == 'g'), "no turn the loop came back for by itself");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_recording_shows_the_handshake_turns_and_the_page_draws_them() {
    let dir = certs("record");
    let (rec, page) = (dir.join("loop.rec"), dir.join("loop.html"));
    let mut server = start_tls_server(&dir, &["--record", path(&rec)]);
    assert_tls_echo(server.addr, &dir.join("ca.crt"), b"INI ADALAH DATA");
    stop(&mut server);
    let recording = std::fs::read_to_string(&rec).unwrap();
    // The hello read and the server's flight written in one handshake turn;
    // the client's Finished (and here its data with it) in another.
    let items: Vec<&str> = recording.split([' ', '\n']).collect();
    let handshake: Vec<&&str> = items.iter().filter(|i| i.starts_with("h0:")).collect();
    assert!(handshake.len() >= 2, "{recording}");
    let first: Vec<u64> =
        handshake[0][3..].split(':').take(2).map(|n| n.parse().unwrap()).collect();
    assert!(first[0] > 200 && first[1] > 500, "hello read, flight written: {}", handshake[0]);
    let out = run(progjar().arg("record-page").arg(&rec).arg(&page), None);
    assert_eq!(code(&out), 0, "{}", common::all_output(&out));
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(html.contains("TLS handshake (ms)") && html.contains("#8e44ad"), "no handshake drawn");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn several_loops_serve_tls_alike() {
    let dir = certs("loops");
    let mut server = start_tls_server(&dir, &["--loops", "2"]);
    for i in 0..20 {
        assert_tls_echo(server.addr, &dir.join("ca.crt"), format!("client {i}").as_bytes());
    }
    server.signal(libc::SIGTERM);
    assert!(server.wait_exit().success());
    server.wait_for_log("2 loops, each on its own thread");
    // Each loop says what it did, then the total.
    server.wait_for_log("INFO:server:served 20 connections, echoed 170 bytes");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_tls_options_are_one_sentence_and_exit_2() {
    let dir = certs("options");
    let other = scratch_dir("tls-server", "options-other");
    progjar_cert(&other);
    let (crt, key) = (dir.join("server.crt"), dir.join("server.key"));
    let (missing, other_key) = (dir.join("missing.crt"), other.join("server.key"));
    let server = |args: &[&str]| run(&mut common::server_command(args), None);
    let cases: [(Vec<&str>, String); 4] = [
        (vec!["--tls-cert", path(&crt)], "progjar: --tls-cert needs --tls-key".into()),
        (
            vec!["--handshake-timeout", "2s"],
            "progjar: --handshake-timeout is an option of TLS".into(),
        ),
        (
            vec!["--tls-cert", path(&missing), "--tls-key", path(&key)],
            format!("progjar: error: cannot read {}: No such file", missing.display()),
        ),
        (
            vec!["--tls-cert", path(&crt), "--tls-key", path(&other_key)],
            format!("progjar: error: {} is not the key of the certificate in", other_key.display()),
        ),
    ];
    for (args, line) in cases {
        let out = server(&args);
        assert_eq!(code(&out), i32::from(EXIT_USAGE), "{args:?}: {}", common::all_output(&out));
        let last = stderr(&out).lines().last().unwrap_or("").to_string();
        assert!(last.starts_with(&line), "{args:?}: {last}");
        assert!(stdout(&out).is_empty(), "nothing listened");
    }
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::remove_dir_all(&other).unwrap();
}

/// The server's resident memory grown per connection, over `n` connections
/// opened by `open` and left idle, in bytes.
fn memory_per_connection(
    server: &Server,
    n: usize,
    mut open: impl FnMut() -> Box<dyn Send>,
) -> f64 {
    let pid = server.child.id();
    // Warm up: the first connections touch the code and the allocator's arenas.
    let warm: Vec<_> = (0..50).map(|_| open()).collect();
    let before = common::rss_kib(pid);
    let held: Vec<_> = (0..n).map(|_| open()).collect();
    server.wait_for_open(n + warm.len());
    let after = common::rss_kib(pid);
    drop((held, warm));
    (after.saturating_sub(before) * 1024) as f64 / n as f64
}

/// Measured, not asserted (docs/tls.md has the figures): run with
/// `cargo test --release --test tls_server -- --ignored --nocapture memory`.
#[test]
#[ignore]
fn memory_per_idle_tls_connection_after_the_handshake_and_one_echo() {
    common::raise_nofile(12_000);
    let dir = certs("memory");
    let ca = dir.join("ca.crt");
    for n in [1000, 5000] {
        let plain = common::start_server(&[]);
        let per_plain = memory_per_connection(&plain, n, || {
            let mut s = connect(plain.addr);
            common::assert_echo(&mut s, &[b'x'; 64]);
            Box::new(s)
        });
        let tls = start_tls_server(&dir, &[]);
        let per_tls = memory_per_connection(&tls, n, || {
            let mut s = tls_connect(tls.addr, &ca);
            s.write_all(&[b'x'; 64]).unwrap();
            let mut echo = [0; 64];
            s.read_exact(&mut echo).unwrap();
            Box::new(s)
        });
        println!(
            "{n} idle connections after one 64-byte echo: plaintext {per_plain:.0} B each, TLS \
             {per_tls:.0} B each (TLS adds {:.0} B)",
            per_tls - per_plain
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Server CPU time per full TLS exchange (connect, handshake, one 64-byte
/// echo, close) and per 64-byte echo over 50 established connections, TLS
/// and plaintext: run with
/// `cargo test --release --test tls_server -- --ignored --nocapture cpu`.
#[test]
#[ignore]
fn cpu_per_handshake_and_per_echo() {
    let dir = certs("cpu");
    let ca = dir.join("ca.crt");
    let tls = start_tls_server(&dir, &[]);
    let pid = tls.child.id();
    for _ in 0..100 {
        assert_tls_echo(tls.addr, &ca, &[b'x'; 64]);
    }
    let (before, started, n) = (common::cpu_time(pid), Instant::now(), 3000);
    for _ in 0..n {
        assert_tls_echo(tls.addr, &ca, &[b'x'; 64]);
    }
    let cpu = common::cpu_time(pid) - before;
    println!(
        "{n} full TLS exchanges in {:.2} s: server CPU {:.0} µs each ({:.0} per CPU-second)",
        started.elapsed().as_secs_f64(),
        cpu.as_secs_f64() * 1e6 / n as f64,
        n as f64 / cpu.as_secs_f64()
    );
    let plain = common::start_server(&[]);
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
    let mut tls_conns: Vec<Box<dyn ReadWrite>> =
        (0..50).map(|_| Box::new(tls_connect(tls.addr, &ca)) as Box<dyn ReadWrite>).collect();
    let mut plain_conns: Vec<Box<dyn ReadWrite>> = (0..50)
        .map(|_| {
            let s = connect(plain.addr);
            s.set_nodelay(true).unwrap();
            Box::new(s) as Box<dyn ReadWrite>
        })
        .collect();
    println!(
        "64-byte echoes over 50 connections: server CPU per echo TLS {:.2} µs, plaintext {:.2} µs",
        echoes(pid, &mut tls_conns),
        echoes(plain.child.id(), &mut plain_conns)
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A connection of either kind, for the measurements.
trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}
