//! Blocking loopback clients with timeouts (so no test hangs on one), and what
//! a test asserts about a connection: echoed exactly, served, or closed.

use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use progjar::sock::is_peer_gone;
use socket2::{Domain, SockRef, Socket, Type};

use crate::process::STEP;

/// A blocking client with read and write timeouts, so no test can hang on it.
pub fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect_timeout(&addr, STEP).expect("connect");
    with_timeouts(s)
}

/// Connect to `dst` from the local address `src` (std cannot bind a client
/// socket before connecting). Any 127.x.y.z is local on Linux, so this is how
/// a test plays several client hosts.
pub fn connect_from(src: impl Into<IpAddr>, dst: SocketAddr) -> TcpStream {
    let src = SocketAddr::new(src.into(), 0);
    let s = Socket::new(Domain::for_address(dst), Type::STREAM, None).expect("socket");
    s.bind(&src.into()).unwrap_or_else(|e| panic!("bind {src}: {e}"));
    s.connect_timeout(&dst.into(), STEP).unwrap_or_else(|e| panic!("connect {src} -> {dst}: {e}"));
    with_timeouts(s.into())
}

/// A one-connection server on 127.0.0.1: it reads everything the client sends
/// (up to the client's FIN), then lets `answer` decide what to send back, then closes.
pub fn one_shot_server(answer: fn(Vec<u8>) -> Vec<u8>) -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().unwrap();
    thread::spawn(move || {
        let (mut conn, _) = listener.accept().expect("accept");
        let mut got = Vec::new();
        conn.read_to_end(&mut got).expect("read");
        let _ = conn.write_all(&answer(got));
    });
    addr
}

/// A port on 127.0.0.1 where nothing listens (bound, then released).
pub fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local address").port()
}

fn with_timeouts(s: TcpStream) -> TcpStream {
    s.set_read_timeout(Some(STEP)).unwrap();
    s.set_write_timeout(Some(STEP)).unwrap();
    s
}

/// SO_LINGER 0: close() sends RST instead of FIN.
pub fn set_linger_zero(s: &TcpStream) {
    SockRef::from(s).set_linger(Some(Duration::ZERO)).expect("setsockopt(SO_LINGER)");
}

/// Read exactly `n` bytes.
pub fn read_n(s: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut v = vec![0; n];
    s.read_exact(&mut v).expect("read echo");
    v
}

/// Send `data` from another thread, then half-close; read everything back
/// until EOF on this one. Returns what came back.
pub fn echo_all(mut s: TcpStream, data: Vec<u8>) -> Vec<u8> {
    let mut w = s.try_clone().unwrap();
    let writer = thread::spawn(move || {
        w.write_all(&data).unwrap();
        w.shutdown(Shutdown::Write).unwrap();
    });
    let mut back = Vec::new();
    s.read_to_end(&mut back).expect("read to EOF");
    writer.join().unwrap();
    back
}

/// Send `msg`, expect it back exactly.
pub fn assert_echo(s: &mut TcpStream, msg: &[u8]) {
    s.write_all(msg).expect("write");
    assert_eq!(read_n(s, msg.len()), msg, "echo differs");
}

/// A fresh client that sends `msg`, gets it back, half-closes and sees EOF.
pub fn assert_served(addr: SocketAddr, msg: &[u8]) {
    let mut s = connect(addr);
    assert_echo(&mut s, msg);
    s.shutdown(Shutdown::Write).unwrap();
    let mut rest = Vec::new();
    s.read_to_end(&mut rest).expect("EOF after the echo");
    assert!(rest.is_empty(), "bytes after the echo: {rest:?}");
}

/// Was this connection served (it echoes `probe`) or closed by the server
/// (EOF or reset)? Panics if it does neither within the read timeout: a
/// client left hanging.
pub fn served_or_closed(s: &mut TcpStream, probe: &[u8]) -> bool {
    // A write to a socket the server already closed may fail (EPIPE / reset):
    // that is "closed" too.
    if let Err(e) = s.write_all(probe) {
        assert!(is_peer_gone(&e), "write: {e}");
        return false;
    }
    let mut got = vec![0; probe.len()];
    match s.read_exact(&mut got) {
        Ok(()) => {
            assert_eq!(got, probe, "echo differs");
            true
        }
        Err(e) if e.kind() == ErrorKind::UnexpectedEof || is_peer_gone(&e) => false,
        Err(e) => panic!("neither served nor closed: {e}"),
    }
}

/// Expect the server to close this connection without a byte: EOF or reset.
pub fn assert_closed_by_server(s: &mut TcpStream) {
    let mut buf = [0u8; 16];
    match s.read(&mut buf) {
        Ok(0) => {}
        Ok(n) => panic!("got {n} bytes from a connection that should be closed"),
        Err(e) if is_peer_gone(&e) => {}
        Err(e) => panic!("connection neither served nor closed: {e}"),
    }
}

/// Write without reading until the socket stays full for 300 ms; returns the
/// bytes written (0 if it was full already). Leaves `s` nonblocking. A stall
/// means the server has stopped reading us, or has not been scheduled: wait
/// for the server-side effect too (its memory, its receive queue).
pub fn write_until_stalled(s: &TcpStream) -> u64 {
    s.set_nonblocking(true).unwrap();
    let chunk = vec![0x5a; 256 * 1024];
    let (mut written, mut last) = (0u64, Instant::now());
    let deadline = Instant::now() + STEP;
    loop {
        match (&*s).write(&chunk) {
            Ok(n) => {
                written += n as u64;
                last = Instant::now();
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                if last.elapsed() > Duration::from_millis(300) {
                    return written;
                }
                assert!(Instant::now() < deadline, "never stalled");
                thread::sleep(Duration::from_millis(5));
            }
            Err(e) => panic!("write: {e}"),
        }
    }
}

/// A thousand clients connect at once, each sends its own line, and each gets
/// exactly its own line back; returns them still open.
pub fn thousand_clients_each_echoed(addr: SocketAddr) -> Vec<TcpStream> {
    let line = |i: usize| format!("client {i:04} says {}\n", "x".repeat(i % 97));
    let mut clients: Vec<TcpStream> = (0..1000).map(|_| connect(addr)).collect();
    for (i, c) in clients.iter_mut().enumerate() {
        c.write_all(line(i).as_bytes()).expect("send the client's line");
    }
    for (i, c) in clients.iter_mut().enumerate() {
        let want = line(i);
        assert_eq!(read_n(c, want.len()), want.as_bytes(), "client {i}");
    }
    clients
}
