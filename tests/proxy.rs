//! `progjar proxy`: the course's man in the middle on the event loop, with
//! real processes on loopback. The course's message through it (and its log
//! in the course's words), backpressure both ways, half-close both ways, a
//! realserver that refuses or never answers, resets both ways, the course's
//! relay and Python servers on either side, a thousand relayed clients, and
//! the recording of a loop with two sockets per connection.

use progjar_testkit as common;

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use common::{
    client, code, connect, echo_all, raise_nofile, random_bytes, read_n, rss_kib,
    server_side_queues, set_linger_zero, start_proxy, start_server, start_server_with, stderr,
    stdout, write_until_stalled, RssSampler, Server, MIB, STEP,
};

const MESSAGE: &[u8] = b"INI ADALAH DATA YANG DIKIRIM ABCDEFGHIJKLMNOPQ";

/// A one-connection backend on 127.0.0.1 that runs `serve` on the connection
/// it accepts (in a thread) and hands back what `serve` returns.
fn backend<T: Send + 'static>(
    serve: impl FnOnce(TcpStream) -> T + Send + 'static,
) -> (SocketAddr, mpsc::Receiver<T>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let (conn, _) = listener.accept().expect("accept");
        conn.set_read_timeout(Some(STEP)).unwrap();
        conn.set_write_timeout(Some(STEP)).unwrap();
        let _ = tx.send(serve(conn));
    });
    (addr, rx)
}

/// What the backend thread handed back, waiting at most [`STEP`].
fn outcome<T>(rx: &mpsc::Receiver<T>) -> T {
    rx.recv_timeout(STEP).expect("the backend's outcome")
}

/// Read until EOF or an error: the bytes, and the error's kind if one ended it.
fn read_until_end(s: &mut TcpStream) -> (Vec<u8>, Option<ErrorKind>) {
    let mut got = Vec::new();
    let mut buf = [0u8; 64 * 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return (got, None),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return (got, Some(e.kind())),
        }
    }
}

// ------------------------------------------------------------- the course

#[test]
fn the_course_message_goes_through_exactly_and_the_log_shows_it_in_the_courses_words() {
    let server = start_server(&[]);
    let proxy = start_proxy(server.addr, &[]);
    let back = echo_all(connect(proxy.addr), MESSAGE.to_vec());
    assert_eq!(back, MESSAGE);
    let quoted = "b'INI ADALAH DATA YANG DIKIRIM ABCDEFGHIJKLMNOPQ'";
    for line in [
        format!("INFO:proxy:received data from client {quoted}"),
        format!("INFO:proxy:sending to realserver {quoted}"),
        format!("INFO:proxy:received data from realserver {quoted}"),
        format!("INFO:proxy:sending to client {quoted}"),
        "INFO:proxy:no more data from client (after 46 bytes): passing its FIN on to realserver"
            .to_string(),
        "INFO:proxy:no more data from realserver (after 46 bytes): passing its FIN on to client"
            .to_string(),
    ] {
        proxy.wait_for_log(&line);
    }
    let close = proxy.wait_for_log("closing connection from 127.0.0.1:");
    assert!(close.contains("(peer closed): 92 bytes relayed in "), "{close}");
    // The server saw the whole conversation end the normal way: our FIN.
    let served = server.wait_for_log("closing connection from");
    assert!(served.contains("(peer closed): 46 bytes echoed"), "{served}");
    let summary = proxy.stop();
    assert!(summary.contains("served 1 connection, relayed 92 bytes"), "{summary}");
}

/// `--read-size 32` reads the course proxy's recv(32) pieces, and logs each one.
#[test]
fn read_size_32_relays_and_logs_the_course_proxys_pieces() {
    let server = start_server(&[]);
    let proxy = start_proxy(server.addr, &["--read-size", "32"]);
    assert_eq!(echo_all(connect(proxy.addr), MESSAGE.to_vec()), MESSAGE);
    proxy.wait_for_log("INFO:proxy:received data from client b'INI ADALAH DATA YANG DIKIRIM ABC'");
    proxy.wait_for_log("INFO:proxy:sending to realserver b'DEFGHIJKLMNOPQ'");
    // A file far larger than a pipe's worth, in 32-byte reads: whole.
    let data = random_bytes(MIB, 21);
    assert!(echo_all(connect(proxy.addr), data.clone()) == data, "the echo differs");
}

#[test]
fn the_progjar_client_gets_its_echo_through_the_proxy_and_through_the_courses_relay() {
    let server = start_server(&[]);
    let ours = start_proxy(server.addr, &[]);
    let out = client(&["127.0.0.1", "--port", &ours.port()], None);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(stdout(&out).starts_with("sent 46 bytes, received 46 bytes, identical, "));
    // The course's relay never passes the FIN on: the client still has its
    // whole echo, and says the server never closed.
    let course = common::start_course_proxy(server.addr);
    let out = client(&["127.0.0.1", "--port", &course.port()], None);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(stdout(&out).starts_with("sent 46 bytes, received 46 bytes, identical, "));
    assert!(stdout(&out).contains("never closed"), "{}", stdout(&out));
    // A file, larger than the pieces that are logged, whole.
    let file = common_file(3 * MIB, 17);
    let out = client(&["127.0.0.1", "--port", &ours.port(), "--file", &file.1], None);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    ours.wait_for_log("relayed 2.0 MiB from client to realserver so far");
    ours.wait_for_log("relayed 2.0 MiB from realserver to client so far");
}

/// A file of `len` random bytes in the temp directory: its path (removed when
/// the guard goes) and its name.
fn common_file(len: usize, seed: u64) -> (TempFile, String) {
    let path = std::env::temp_dir().join(format!("progjar-proxy-{}-{seed}", std::process::id()));
    std::fs::write(&path, random_bytes(len, seed)).expect("write the file");
    let name = path.to_string_lossy().into_owned();
    (TempFile(path), name)
}

/// Removes its file when dropped.
struct TempFile(std::path::PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A Python server that prints `listening on ADDR:PORT` first.
fn python_server(script: &str, args: &[&str]) -> Server {
    start_server_with(Command::new("python3").arg(script).args(args))
}

#[test]
fn in_front_of_a_python_echo_server_and_of_the_courses_one_client_at_a_time_server() {
    // Python's own threaded echo server: one thread per client.
    let threaded = "import socketserver\n\
        class Echo(socketserver.BaseRequestHandler):\n    \
            def handle(self):\n        \
                while True:\n            \
                    data = self.request.recv(65536)\n            \
                    if not data: break\n            \
                    self.request.sendall(data)\n\
        s = socketserver.ThreadingTCPServer(('127.0.0.1', 0), Echo)\n\
        print('listening on %s:%d' % s.server_address, flush=True)\n\
        s.serve_forever()\n";
    let echo = start_server_with(Command::new("python3").args(["-c", threaded]));
    let proxy = start_proxy(echo.addr, &[]);
    let out = client(&["127.0.0.1", "--port", &proxy.port(), "--size", "1MB"], None);
    assert_eq!(code(&out), 0, "{}", stderr(&out));

    // The course's server: recv(32), one client at a time. Two relayed
    // clients at once: the second is served once the first has left.
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tools/lab/course_server.py");
    let course = python_server(script, &["0", "127.0.0.1"]);
    let proxy = start_proxy(course.addr, &[]);
    let mut first = connect(proxy.addr);
    first.write_all(b"first client").unwrap();
    assert_eq!(read_n(&mut first, 12), b"first client");
    let second = thread::spawn({
        let addr = proxy.addr;
        move || echo_all(connect(addr), b"second client".to_vec())
    });
    first.shutdown(Shutdown::Write).unwrap();
    assert_eq!(read_until_end(&mut first), (Vec::new(), None));
    assert_eq!(second.join().unwrap(), b"second client");
    course.wait_for_log("INFO:root:received b'second client'");
}

// --------------------------------------------------------- backpressure

/// A client that sends and never reads, through the proxy to the echo server:
/// the echo backs up to the proxy, the proxy stops reading the realserver,
/// the server stops reading, the proxy's bytes for it back up, and the proxy
/// stops reading the client. Its memory stays within the bounds; every byte
/// comes back once the client reads. Both ways of moving bytes: splice
/// (bytes wait in pipes, in the kernel) and read/write (in the proxy's buffers).
#[test]
fn a_client_that_never_reads_is_paused_both_ways_in_bounded_memory_and_loses_nothing() {
    for extra in [&[][..], &["--no-splice"]] {
        let server = start_server(&["--max-pending", "256KiB"]);
        let mut args = vec!["--max-pending", "256KiB"];
        args.extend_from_slice(extra);
        let proxy = start_proxy(server.addr, &args);
        paused_both_ways(&proxy);
    }
}

fn paused_both_ways(proxy: &Server) {
    let pid = proxy.child.id();
    let before = rss_kib(pid);
    let sampler = RssSampler::start(pid);
    let mut s = connect(proxy.addr);
    let client_port = s.local_addr().unwrap().port();
    let written = write_until_stalled(&s);
    // The proxy stopped reading the client: its bytes wait in the proxy's
    // receive queue (the kernel's), not in the proxy's memory.
    common::wait_until("the proxy to stop reading the client", || {
        server_side_queues(proxy.addr.port(), client_port).is_some_and(|(_, rx)| rx > 0)
    });
    let grown = sampler.peak().saturating_sub(before);
    // Two legs' buffers (256 KiB + one 64 KiB read each), the read buffer, the
    // allocator's slack: far below what went in.
    assert!(grown < 4 * 1024, "the proxy grew {grown} KiB while {written} bytes went in");
    assert!(written > 8 * MIB as u64, "only {written} bytes went in before the stall");
    drop(sampler);
    // Now read: every byte written comes back, in order.
    s.set_nonblocking(false).unwrap();
    let back = read_n(&mut s, written as usize);
    assert!(back.iter().all(|&b| b == 0x5a), "the echo differs");
    s.shutdown(Shutdown::Write).unwrap();
    assert_eq!(read_until_end(&mut s), (Vec::new(), None));
}

/// Pipes the process holds (`/proc/PID/fd`), leaving out stdin, stdout and
/// stderr (the test reads those through pipes); its signal pipe is one too.
fn pipes(pid: u32) -> usize {
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).expect("read /proc/PID/fd");
    fds.filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()).is_some_and(|fd| fd > 2)
        })
        .filter(|e| {
            std::fs::read_link(e.path()).is_ok_and(|t| t.to_string_lossy().starts_with("pipe:"))
        })
        .count()
}

/// The same with a budget for all connections together far below one
/// connection's bound: connections owed bytes pause on the budget (and wait
/// in its queue), and still every byte arrives.
#[test]
fn a_tiny_total_budget_pauses_both_directions_and_every_byte_still_arrives() {
    let server = start_server(&[]);
    let proxy = start_proxy(server.addr, &["--max-pending-total", "64KiB"]);
    let pid = proxy.child.id();
    let before = rss_kib(pid);
    let sampler = RssSampler::start(pid);
    let data = random_bytes(24 * MIB, 5);
    let clients: Vec<_> = (0..4)
        .map(|i| {
            let data = data[i * 6 * MIB..(i + 1) * 6 * MIB].to_vec();
            let s = connect(proxy.addr);
            thread::spawn(move || echo_all(s, data.clone()) == data)
        })
        .collect();
    for (i, c) in clients.into_iter().enumerate() {
        assert!(c.join().unwrap(), "client {i}: the echo differs");
    }
    let grown = sampler.peak().saturating_sub(before);
    assert!(grown < 4 * 1024, "the proxy grew {grown} KiB relaying 48 MiB");
}

/// A realserver that sends MiBs to a client that does not read yet: the
/// proxy stops reading the realserver, holds at most its bound, and the
/// client gets every byte when it reads. By splice, the busy direction's
/// bytes wait in a pipe (one, two descriptors); with --no-splice, none.
#[test]
fn a_realserver_that_floods_a_client_that_does_not_read_is_paused_and_loses_nothing() {
    for (extra, want_pipes) in [(&[][..], 2), (&["--no-splice"], 0)] {
        let total = 64 * MIB;
        let (addr, done) = backend(move |mut conn| {
            // (Read first: a socket closed with bytes unread sends a reset.)
            let mut go = [0u8; 2];
            conn.read_exact(&mut go).expect("the client's go");
            let chunk = random_bytes(MIB, 9);
            for _ in 0..total / MIB {
                conn.write_all(&chunk).expect("the backend's write");
            }
            conn.shutdown(Shutdown::Write).expect("the backend's FIN");
        });
        let mut args = vec!["--max-pending", "256KiB"];
        args.extend_from_slice(extra);
        let proxy = start_proxy(addr, &args);
        let pid = proxy.child.id();
        let (before, pipes_before) = (rss_kib(pid), pipes(pid));
        let sampler = RssSampler::start(pid);
        let mut s = connect(proxy.addr);
        // Not reading: the proxy pauses the realserver once the client's leg
        // owes its bound (or its pipe is full).
        s.write_all(b"go").unwrap();
        common::wait_until("the realserver's bytes to back up to the proxy", || {
            let out = Command::new("ss").args(["-Htn", "state", "established"]).output();
            out.is_ok_and(|o| backed_up(&String::from_utf8_lossy(&o.stdout), addr.port()))
        });
        assert_eq!(pipes(pid) - pipes_before, want_pipes, "{extra:?}");
        let grown = sampler.peak().saturating_sub(before);
        assert!(grown < 4 * 1024, "the proxy grew {grown} KiB ({extra:?})");
        let chunk = random_bytes(MIB, 9);
        for i in 0..total / MIB {
            assert_eq!(read_n(&mut s, MIB), chunk, "MiB {i} differs ({extra:?})");
        }
        assert_eq!(read_until_end(&mut s), (Vec::new(), None), "the realserver's FIN");
        outcome(&done);
        // The direction ended: its pipe is gone.
        common::wait_until("the pipe to close", || pipes(pid) == pipes_before);
    }
}

/// Whether `ss -Htn` shows bytes waiting in the receive queue of the
/// proxy's socket to the realserver on `port` (the proxy stopped reading it).
fn backed_up(ss: &str, port: u16) -> bool {
    ss.lines().any(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        // Recv-Q, Send-Q, local, peer
        f.len() >= 4 && f[3].ends_with(&format!(":{port}")) && f[0].parse::<u64>().unwrap_or(0) > 0
    })
}

// ------------------------------------------------------------ half-close

#[test]
fn the_clients_fin_reaches_the_realserver_which_answers_after_it() {
    // A server that answers only once the client has finished: the course's
    // relay would leave it waiting forever.
    let (addr, _done) = backend(|mut conn| {
        let mut got = Vec::new();
        conn.read_to_end(&mut got).expect("read to the client's FIN");
        conn.write_all(format!("got {} bytes", got.len()).as_bytes()).unwrap();
    });
    let proxy = start_proxy(addr, &[]);
    let mut s = connect(proxy.addr);
    s.write_all(&random_bytes(100_000, 3)).unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    assert_eq!(read_until_end(&mut s), (b"got 100000 bytes".to_vec(), None));
    proxy.wait_for_log("no more data from client (after 100,000 bytes): passing its FIN on");
}

#[test]
fn the_realservers_fin_reaches_the_client_and_the_client_may_still_send() {
    let (addr, done) = backend(|mut conn| {
        conn.write_all(b"hello, then my FIN").unwrap();
        conn.shutdown(Shutdown::Write).unwrap();
        let mut got = Vec::new();
        conn.read_to_end(&mut got).expect("read to the client's FIN");
        got
    });
    let proxy = start_proxy(addr, &[]);
    let mut s = connect(proxy.addr);
    assert_eq!(read_until_end(&mut s), (b"hello, then my FIN".to_vec(), None));
    // Half-closed by the realserver: our direction still flows.
    s.write_all(b"late words").unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    assert_eq!(outcome(&done), b"late words");
    let close = proxy.wait_for_log("closing connection from");
    assert!(close.contains("(peer closed)"), "{close}");
}

#[test]
fn a_half_closed_client_still_gets_its_whole_echo() {
    let server = start_server(&[]);
    let proxy = start_proxy(server.addr, &[]);
    let data = random_bytes(16 * MIB, 11);
    // Writes everything and half-closes from one thread while this one reads.
    assert!(echo_all(connect(proxy.addr), data.clone()) == data, "the echo differs");
}

// ------------------------------------------------------ the target down

#[test]
fn a_realserver_that_refuses_resets_the_client_at_once_with_one_line() {
    let port = common::closed_port();
    let proxy = start_proxy(format!("127.0.0.1:{port}").parse().unwrap(), &[]);
    // The reset comes at once: often before our connect has even returned.
    match TcpStream::connect_timeout(&proxy.addr, STEP) {
        Ok(mut s) => {
            let (got, error) = read_until_end(&mut s);
            assert_eq!((got, error), (Vec::new(), Some(ErrorKind::ConnectionReset)));
        }
        Err(e) => assert_eq!(e.kind(), ErrorKind::ConnectionReset, "{e}"),
    }
    let line = proxy.wait_for_log("cannot connect to the realserver");
    assert!(line.starts_with("WARN:proxy:127.0.0.1:"), "{line}");
    assert!(
        line.contains("Connection refused") && line.ends_with("resetting the client"),
        "{line}"
    );
    let out = client(&["127.0.0.1", "--port", &proxy.port()], None);
    assert_ne!(code(&out), 0, "{}", stdout(&out));
}

#[test]
fn a_realserver_that_never_answers_resets_the_client_after_the_connect_timeout() {
    // A listener whose accept queue is full and that never accepts: Linux
    // drops further SYNs, so a connect to it waits (loopback only).
    let listener =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    listener.bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into()).unwrap();
    listener.listen(0).unwrap();
    let addr = listener.local_addr().unwrap().as_socket().unwrap();
    let mut queued = Vec::new();
    while let Ok(s) = TcpStream::connect_timeout(&addr, Duration::from_millis(300)) {
        queued.push(s);
        assert!(queued.len() < 16, "the accept queue never filled");
    }
    let proxy = start_proxy(addr, &["--connect-timeout", "300ms"]);
    let mut s = connect(proxy.addr);
    s.write_all(MESSAGE).unwrap();
    let (got, error) = read_until_end(&mut s);
    assert_eq!((got, error), (Vec::new(), Some(ErrorKind::ConnectionReset)));
    let line = proxy.wait_for_log("cannot connect to the realserver");
    assert!(line.contains("no answer within --connect-timeout"), "{line}");
    drop(listener);
}

// ---------------------------------------------------------------- resets

#[test]
fn a_client_reset_resets_the_realservers_side() {
    let (addr, done) = backend(|mut conn| {
        let mut first = [0u8; 5];
        conn.read_exact(&mut first).expect("the client's first bytes");
        read_until_end(&mut conn)
    });
    let proxy = start_proxy(addr, &[]);
    let mut s = connect(proxy.addr);
    s.write_all(b"hello").unwrap();
    // Once the bytes went through, the client resets.
    proxy.wait_for_log("sending to realserver b'hello'");
    set_linger_zero(&s);
    drop(s);
    assert_eq!(outcome(&done), (Vec::new(), Some(ErrorKind::ConnectionReset)));
    proxy.wait_for_log("the client's side ended");
}

#[test]
fn a_realserver_reset_resets_the_client() {
    let (addr, done) = backend(|mut conn| {
        conn.write_all(b"bye").unwrap();
        let mut ack = [0u8; 2];
        conn.read_exact(&mut ack).expect("the client's ok");
        set_linger_zero(&conn);
    });
    let proxy = start_proxy(addr, &[]);
    let mut s = connect(proxy.addr);
    assert_eq!(read_n(&mut s, 3), b"bye");
    s.write_all(b"ok").unwrap();
    outcome(&done);
    assert_eq!(read_until_end(&mut s), (Vec::new(), Some(ErrorKind::ConnectionReset)));
    proxy.wait_for_log("the realserver's side ended");
}

// ------------------------------------------------------------ many at once

#[test]
fn a_thousand_relayed_clients_each_get_their_own_bytes() {
    // 1000 sockets here, 2000 in the proxy, 1000 in the server (each its own process).
    raise_nofile(2300);
    let server = start_server(&[]);
    let proxy = start_proxy(server.addr, &[]);
    let clients = common::thousand_clients_each_echoed(proxy.addr);
    server.wait_for_open(1000);
    drop(clients);
    server.wait_for_open(0);
    // And with the stress tool, every byte checked.
    if common::progjar_stress_path().exists() {
        let target = proxy.addr.to_string();
        let (out, _) = common::stress(&[&target, "-c", "200", "-n", "20", "-s", "3000"]);
        assert!(out.status.success(), "{}", common::all_output(&out));
    }
}

/// The loop's own bounds work on a relay as on the echo: a relayed client
/// silent on both legs for `--idle-timeout` is closed; at SIGTERM the proxy
/// stops accepting, gives the open ones `--grace`, then ends their output
/// (a FIN to each side) and exits 0.
#[test]
fn idle_timeout_and_grace_end_relayed_clients_like_echo_clients() {
    let server = start_server(&[]);
    let proxy = start_proxy(server.addr, &["--idle-timeout", "300ms"]);
    let mut idle = connect(proxy.addr);
    common::assert_echo(&mut idle, MESSAGE);
    let port = idle.local_addr().unwrap().port();
    assert!(proxy.wait_for_close(port).contains("(idle timeout)"));
    assert_eq!(read_until_end(&mut idle), (Vec::new(), None), "the client gets our FIN");

    let proxy = start_proxy(server.addr, &["--grace", "300ms"]);
    let mut open = connect(proxy.addr);
    common::assert_echo(&mut open, MESSAGE);
    proxy.signal(libc::SIGTERM);
    assert_eq!(read_until_end(&mut open), (Vec::new(), None), "the client gets our FIN");
    let mut proxy = proxy;
    assert!(proxy.wait_exit().success(), "{:?}", proxy.log_lines());
    proxy.wait_for_log("(server shutting down)");
}

/// Each relayed client is two descriptors, and the pipes' 512 are kept back:
/// under an open-file limit of 2048 the proxy serves at most (2048 - 16 -
/// 512) / 2 = 760 clients, and says so.
#[test]
fn the_open_file_limit_counts_two_descriptors_per_relayed_client() {
    let server = start_server(&[]);
    let to = server.addr.to_string();
    let proxy = start_server_with(Command::new("prlimit").args([
        "--nofile=2048:2048",
        env!("CARGO_BIN_EXE_progjar"),
        "proxy",
        "--bind",
        "127.0.0.1",
        "--port",
        "0",
        "--to",
        &to,
    ]));
    proxy.wait_for_log("WARN:proxy:serving at most 760 connections: the open-file limit is 2,048");
    assert_eq!(echo_all(connect(proxy.addr), MESSAGE.to_vec()), MESSAGE);
}

// ------------------------------------------------------------ the recording

#[test]
fn the_recording_names_each_connections_key_and_socket() {
    let dir = std::env::temp_dir().join(format!("progjar-proxy-rec-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let rec = dir.join("relay.rec");
    let server = start_server(&[]);
    let proxy = start_proxy(server.addr, &["--record", rec.to_str().unwrap()]);
    // One exchange first, so that the second comes once the realserver's leg
    // is connected: its bytes are then an event of the client's socket.
    let mut s = connect(proxy.addr);
    common::assert_echo(&mut s, MESSAGE);
    assert_eq!(echo_all(s, MESSAGE.to_vec()), MESSAGE);
    proxy.wait_for_log("closing connection from");
    proxy.stop();
    let text = std::fs::read_to_string(&rec).expect("the recording");
    let header = text.lines().next().unwrap_or_default();
    assert!(header.ends_with(" sources=2"), "{header}");
    assert!(text.contains(" e0.0:") && text.contains(" e0.1:"), "{text}");
    // Connection 0's turns add up to the 2 × 46 bytes each way, and it closed.
    let (mut read, mut written) = (0, 0);
    for item in text.split_whitespace().filter(|i| i.starts_with("t0:") || i.starts_with("g0:")) {
        let fields: Vec<u64> = item[3..].split(':').take(2).map(|f| f.parse().unwrap()).collect();
        (read, written) = (read + fields[0], written + fields[1]);
    }
    assert_eq!((read, written), (184, 184), "{text}");
    assert!(text.contains(" c0"), "{text}");
    let page = dir.join("relay.html");
    let out = common::run(
        common::progjar().args(["record-page", rec.to_str().unwrap(), page.to_str().unwrap()]),
        None,
    );
    assert_eq!(code(&out), 0, "{}", common::all_output(&out));
    let _ = std::fs::remove_dir_all(&dir);
}

// ------------------------------------------------------------ the command line

#[test]
fn to_is_required_and_must_name_a_port() {
    let (status, err) = common::run_failing(&[], &["proxy", "--to", "127.0.0.1"]);
    assert_eq!(status, Some(2), "{err}");
    let want = "--to needs the server's port too: HOST:PORT, e.g. 127.0.0.1:10000";
    assert!(err.contains(want), "{err}");
    let (status, err) = common::run_failing(&[], &["proxy"]);
    assert_eq!(status, Some(2), "{err}");
    assert!(
        err.contains("--to is needed: the real server to relay to, e.g. --to 127.0.0.1:10000"),
        "{err}"
    );
}
