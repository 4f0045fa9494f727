//! Certificates made the course's way (the `openssl` command line) and by
//! `progjar cert`; TLS peers that are not progjar: the course's Python TLS
//! server (`tools/lab/course_tls_server.py`) and client, `openssl s_server`,
//! a rustls echo server that tells how each client ended; `progjar server
//! --tls-cert` started (or in a thread, for the stress tool's tests, whose
//! build has no `progjar` binary), and rustls clients of it (blocking, or
//! driven by hand on a nonblocking socket), and a ClientHello's bytes.

use std::fs;
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use progjar::tls::Trust;
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, ServerConnection, StreamOwned};

use crate::net::connect;
use crate::process::{all_output, progjar, run, stdout, STEP};
use crate::server::{proxy_command, server_command, start_server_with, Server};

/// A fresh directory for one test under the system's temporary directory
/// (`progjar-PREFIX-PID-NAME`); the test removes it when it passes.
pub fn scratch_dir(prefix: &str, name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("progjar-{prefix}-{}-{name}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).expect("create a scratch directory");
    dir
}

/// Run `openssl ARGS` in `dir` and return its stdout; the test fails if it fails.
pub fn openssl(dir: &Path, args: &[&str]) -> String {
    let out = run(Command::new("openssl").args(args).current_dir(dir), None);
    assert!(out.status.success(), "openssl {args:?}: {}", all_output(&out));
    stdout(&out)
}

/// A key and a self-signed certificate for CN=localhost made with `openssl req
/// -x509` (as the course makes its own, without a subjectAltName); `key_args`
/// picks the key (`-newkey rsa:2048`, `-newkey ec -pkeyopt ...`). Returns
/// (`STEM.crt`, `STEM.key`) in `dir`.
pub fn self_signed(dir: &Path, stem: &str, key_args: &[&str]) -> (PathBuf, PathBuf) {
    let (key, crt) = (format!("{stem}.key"), format!("{stem}.crt"));
    let mut args = vec!["req", "-x509", "-nodes", "-days", "30", "-subj", "/CN=localhost"];
    args.extend_from_slice(key_args);
    args.extend_from_slice(&["-keyout", &key, "-out", &crt]);
    openssl(dir, &args);
    (dir.join(crt), dir.join(key))
}

/// The course's `domain.crt`/`domain.key` in `dir`: RSA 2048, PKCS#8, self-signed,
/// CN=localhost, no subjectAltName, valid from 2025-04-22 until it expired on
/// 2026-04-22. `openssl req` cannot date a certificate in the past, so `openssl
/// ca -selfsign` makes it, with the extensions `req -x509` gives (a CA, as the
/// course's is).
pub fn course_pair(dir: &Path) -> (PathBuf, PathBuf) {
    let rsa = ["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"];
    openssl(dir, &[&rsa[..], &["-out", "domain.key"]].concat());
    openssl(
        dir,
        &["req", "-new", "-key", "domain.key", "-subj", "/CN=localhost", "-out", "domain.csr"],
    );
    let config = "[ca]\ndefault_ca = course\n[course]\ndatabase = index.txt\nnew_certs_dir = .\n\
                  serial = serial\ndefault_md = sha256\npolicy = anything\nunique_subject = no\n\
                  x509_extensions = v3\n[anything]\ncommonName = supplied\n[v3]\n\
                  subjectKeyIdentifier = hash\nauthorityKeyIdentifier = keyid:always\n\
                  basicConstraints = critical, CA:TRUE\n";
    fs::write(dir.join("ca.cnf"), config).expect("write ca.cnf");
    fs::write(dir.join("index.txt"), "").expect("write index.txt");
    fs::write(dir.join("serial"), "01\n").expect("write serial");
    let dates = ["-startdate", "20250422000000Z", "-enddate", "20260422000000Z"];
    let ca = ["ca", "-batch", "-config", "ca.cnf", "-selfsign", "-keyfile", "domain.key"];
    let files = ["-in", "domain.csr", "-out", "domain.crt", "-notext"];
    openssl(dir, &[&ca[..], &files, &dates].concat());
    (dir.join("domain.crt"), dir.join("domain.key"))
}

/// The course's TLS server (`tools/lab/course_tls_server.py`, recv(32) and sendall
/// until the client's end) on 127.0.0.1, a free port, with `cert` and `key`.
pub fn start_course_tls_server(cert: &Path, key: &Path) -> Server {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tools/lab/course_tls_server.py");
    let mut cmd = Command::new("python3");
    cmd.arg(script).arg(cert).arg(key).args(["0", "127.0.0.1"]);
    start_server_with(&mut cmd)
}

/// `openssl s_server -rev` on 127.0.0.1, a free port, serving one client: each line
/// it receives comes back reversed, so a palindrome comes back as it was sent. It
/// prints `ACCEPT ADDR:PORT` on stdout after a line or two of its own.
pub fn start_s_server_rev(cert: &Path, key: &Path) -> Server {
    let mut child = Command::new("openssl")
        .args(["s_server", "-rev", "-naccept", "1", "-accept", "127.0.0.1:0", "-cert"])
        .arg(cert)
        .arg("-key")
        .arg(key)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn openssl s_server");
    let log = Arc::new(Mutex::new(Vec::new()));
    let (tx, rx) = mpsc::channel();
    let (stdout, stderr) =
        (child.stdout.take().expect("stdout"), child.stderr.take().expect("stderr"));
    for (pipe, addr) in
        [(Box::new(stdout) as Box<dyn std::io::Read + Send>, Some(tx)), (Box::new(stderr), None)]
    {
        let sink = Arc::clone(&log);
        thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                if let (Some(tx), Some(at)) = (&addr, line.strip_prefix("ACCEPT ")) {
                    let _ = tx.send(at.parse::<SocketAddr>().expect("ACCEPT ADDR:PORT"));
                }
                sink.lock().unwrap().push(line);
            }
        });
    }
    let Ok(addr) = rx.recv_timeout(STEP) else {
        let _ = child.kill();
        panic!("openssl s_server printed no ACCEPT line: {:?}", log.lock().unwrap());
    };
    Server { child, addr, log }
}

/// `progjar cert DIR`: `DIR/ca.crt`, `DIR/server.crt` and `DIR/server.key`.
pub fn progjar_cert(dir: &Path) {
    let out = run(progjar().arg("cert").arg(dir), None);
    assert!(out.status.success(), "progjar cert: {}", all_output(&out));
}

/// [`progjar_cert`] in this process (`progjar::tls::cert`), for a test whose
/// build has no `progjar` binary (the stress tool's).
pub fn cert_in_process(dir: &Path) {
    let config = progjar::tls::CertConfig { dir: dir.to_path_buf(), names: Vec::new() };
    progjar::tls::cert(config).expect("progjar cert");
}

/// The real progjar TLS echo server, in a thread of this process, on a free
/// loopback port, with the certificate and key of [`cert_in_process`]`(dir)`;
/// it serves until the test process exits (as `server::serve_in_thread`).
pub fn serve_tls_in_thread(dir: &Path) -> SocketAddr {
    let config = progjar::server::Config {
        bind: Ipv4Addr::LOCALHOST.into(),
        port: 0,
        ..progjar::server::Config::default()
    };
    let tls = progjar::server::TlsOptions {
        cert: dir.join("server.crt"),
        key: dir.join("server.key"),
        handshake_timeout: progjar::server::DEFAULT_HANDSHAKE_TIMEOUT,
    };
    let running = progjar::server::spawn_tls(config, &tls).expect("start the TLS server");
    let addr = running.addr;
    std::mem::forget(running);
    addr
}

/// A TLS echo server that is not progjar: rustls's blocking server with the
/// certificate and key of [`cert_in_process`]`(dir)`, a thread per client, for
/// at most `clients` clients. Once a client has ended its side, the receiver
/// gets whether it ended with `close_notify` (true) or with a bare FIN (false,
/// rustls's `UnexpectedEof`); the server then sends its own `close_notify` and closes.
pub fn tls_echo_telling_ends(dir: &Path, clients: usize) -> (SocketAddr, mpsc::Receiver<bool>) {
    let identity = progjar::tls::Identity::load(&dir.join("server.crt"), &dir.join("server.key"))
        .expect("the server's certificate and key");
    let config = identity.server_config().expect("a TLS server config");
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
    let addr = listener.local_addr().expect("its address");
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for _ in 0..clients {
            let Ok((sock, _)) = listener.accept() else { return };
            let (config, tx) = (Arc::clone(&config), tx.clone());
            thread::spawn(move || {
                let _ = sock.set_read_timeout(Some(STEP));
                let conn = ServerConnection::new(config).expect("a TLS server");
                let mut tls = StreamOwned::new(conn, sock);
                let mut buf = [0; 16 * 1024];
                let clean = loop {
                    match tls.read(&mut buf) {
                        Ok(0) => break true,
                        Ok(n) => {
                            if tls.write_all(&buf[..n]).is_err() {
                                return;
                            }
                        }
                        Err(e) if e.kind() == ErrorKind::UnexpectedEof => break false,
                        Err(_) => return,
                    }
                };
                tls.conn.send_close_notify();
                let _ = tls.flush();
                let _ = tx.send(clean);
            });
        }
    });
    (addr, rx)
}

/// `progjar server --bind 127.0.0.1 --port 0 --tls-cert CERT --tls-key KEY EXTRA...`, not started.
pub fn tls_server_command(cert: &Path, key: &Path, extra: &[&str]) -> Command {
    let mut cmd = server_command(&[]);
    cmd.arg("--tls-cert").arg(cert).arg("--tls-key").arg(key).args(extra);
    cmd
}

/// Start a TLS server with the certificate and key of [`progjar_cert`]`(dir)`.
pub fn start_tls_server(dir: &Path, extra: &[&str]) -> Server {
    start_server_with(&mut tls_server_command(
        &dir.join("server.crt"),
        &dir.join("server.key"),
        extra,
    ))
}

/// Start `progjar proxy` relaying to `to` and intercepting TLS with the
/// certificate and key of [`progjar_cert`]`(dir)` (a CA of its own: clients that
/// trust another refuse it).
pub fn start_intercepting_proxy(to: SocketAddr, dir: &Path, extra: &[&str]) -> Server {
    let mut cmd = proxy_command(to, &[]);
    cmd.arg("--intercept-cert").arg(dir.join("server.crt"));
    cmd.arg("--intercept-key").arg(dir.join("server.key")).args(extra);
    start_server_with(&mut cmd)
}

/// A blocking TLS client (rustls) with the handshake done.
pub type TlsStream = StreamOwned<ClientConnection, TcpStream>;

/// The settings of a rustls client that trusts `ca` (as `progjar client --ca` does).
pub fn trusting(ca: &Path) -> Arc<ClientConfig> {
    progjar::tls::client_config(&Trust::Ca(ca.to_path_buf())).expect("a client config")
}

/// A rustls client that speaks TLS 1.2 only and trusts the CAs in `ca`.
pub fn tls12_trusting(ca: &Path) -> Arc<ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in progjar::tls::certificates(ca).expect("the CA file") {
        roots.add(cert).expect("a CA certificate");
    }
    let config = ClientConfig::builder_with_provider(progjar::tls::provider())
        .with_protocol_versions(&[&rustls::version::TLS12])
        .expect("TLS 1.2")
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(config)
}

/// Connect to `addr` and finish a TLS handshake with a client that trusts `ca`.
pub fn tls_connect(addr: SocketAddr, ca: &Path) -> TlsStream {
    tls_connect_with(addr, trusting(ca))
}

/// Connect to `addr` and finish a TLS handshake with a client of `config`.
pub fn tls_connect_with(addr: SocketAddr, config: Arc<ClientConfig>) -> TlsStream {
    let name = ServerName::from(addr.ip());
    let conn = ClientConnection::new(config, name).expect("a TLS client");
    let sock = connect(addr);
    // As `progjar client --tls` does: the handshake's last flight and the
    // first data are small writes in a row, which Nagle's algorithm would
    // hold until an ACK that a delayed ACK holds up to 200 ms.
    sock.set_nodelay(true).expect("TCP_NODELAY");
    let mut tls = StreamOwned::new(conn, sock);
    while tls.conn.is_handshaking() {
        tls.conn.complete_io(&mut tls.sock).expect("TLS handshake with the server");
    }
    tls
}

/// Read until the server ends its side; returns what came and whether it
/// ended with `close_notify` (rustls says `UnexpectedEof` for a FIN without it).
pub fn read_to_end(tls: &mut TlsStream) -> (Vec<u8>, bool) {
    let mut got = Vec::new();
    let mut buf = [0; 64 * 1024];
    loop {
        match tls.read(&mut buf) {
            Ok(0) => return (got, true),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::UnexpectedEof => return (got, false),
            Err(e) => panic!("reading the TLS echo: {e}"),
        }
    }
}

/// One whole TLS exchange: connect, handshake, send `msg`, `close_notify` and
/// FIN, read to the end; assert the echo is exact and ended with the server's
/// `close_notify`. Returns how long it took.
pub fn assert_tls_echo(addr: SocketAddr, ca: &Path, msg: &[u8]) -> Duration {
    let started = Instant::now();
    let mut tls = tls_connect(addr, ca);
    tls.write_all(msg).expect("send over TLS");
    tls.conn.send_close_notify();
    tls.flush().expect("send close_notify");
    tls.sock.shutdown(Shutdown::Write).expect("shutdown(SHUT_WR)");
    let (got, clean) = read_to_end(&mut tls);
    assert!(got == msg, "the echo differs: {} bytes back of {}", got.len(), msg.len());
    assert!(clean, "the server ended without close_notify");
    started.elapsed()
}

/// The first bytes a TLS client sends: a rustls ClientHello (about 1.5 KiB
/// with the post-quantum key share), whole.
pub fn client_hello() -> Vec<u8> {
    let name = ServerName::try_from("localhost").expect("a name");
    let config = progjar::tls::client_config(&Trust::Insecure).expect("a client config");
    let mut conn = ClientConnection::new(config, name).expect("a TLS client");
    let mut hello = Vec::new();
    conn.write_tls(&mut hello).expect("the hello");
    hello
}

/// A TLS client on a nonblocking socket, driven by hand: it sends as much as
/// the server takes and reads only when told, so a test can play a client that
/// never reads.
pub struct TlsPeer {
    /// rustls's client.
    pub conn: ClientConnection,
    /// Its socket (nonblocking once the handshake is done).
    pub sock: TcpStream,
}

impl TlsPeer {
    /// Connect and finish the handshake (blocking), then go nonblocking.
    pub fn connect(addr: SocketAddr, ca: &Path) -> TlsPeer {
        let tls = tls_connect(addr, ca);
        let (conn, sock) = tls.into_parts();
        sock.set_nonblocking(true).expect("nonblocking");
        TlsPeer { conn, sock }
    }

    /// Encrypt what rustls takes of `data` and write what the socket takes;
    /// returns how many bytes of `data` were taken.
    pub fn send_some(&mut self, data: &[u8]) -> usize {
        let taken = self.conn.writer().write(data).expect("encrypt");
        while self.conn.wants_write() {
            match self.conn.write_tls(&mut self.sock) {
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) => panic!("write to the server: {e}"),
            }
        }
        taken
    }

    /// Send `byte` over and over until the server takes nothing more for
    /// 300 ms (it stopped reading us, and the kernel's buffers are full);
    /// returns how many bytes it took.
    pub fn send_until_stalled(&mut self, byte: u8) -> u64 {
        let chunk = vec![byte; 64 * 1024];
        let (mut sent, mut last) = (0u64, Instant::now());
        let deadline = Instant::now() + STEP;
        while last.elapsed() < Duration::from_millis(300) {
            assert!(Instant::now() < deadline, "never stalled");
            match self.send_some(&chunk) {
                0 => thread::sleep(Duration::from_millis(5)),
                n => (sent, last) = (sent + n as u64, Instant::now()),
            }
        }
        sent
    }

    /// Read all the server sent so far and decrypt it into `into`; false
    /// once the server has ended its side.
    pub fn receive_some(&mut self, into: &mut Vec<u8>) -> bool {
        let mut buf = [0; 64 * 1024];
        loop {
            match self.conn.read_tls(&mut self.sock) {
                Ok(0) => return false,
                Ok(_) => {
                    self.conn.process_new_packets().expect("TLS records from the server");
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return true,
                Err(e) => panic!("read from the server: {e}"),
            }
            loop {
                match self.conn.reader().read(&mut buf) {
                    Ok(0) => return false,
                    Ok(n) => into.extend_from_slice(&buf[..n]),
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) => panic!("decrypt: {e}"),
                }
            }
        }
    }
}

/// The course's TLS client in Python (`ssl.create_default_context()`), to
/// `host` (a name or an address) and `port`: with no `ca` as the course has it
/// (`check_hostname = False`, `CERT_NONE`: it checks nothing), with a `ca`
/// checking the certificate and the name. It sends the course's message
/// ending in `\r\n\r\n`, logs the version, `getpeercert()` and each
/// `recv(16)`, and prints `echo identical` when the echo is; exit 1 on an
/// `ssl.SSLError`.
pub fn python_tls_client(host: &str, port: u16, ca: Option<&Path>) -> Output {
    const CLIENT: &str = r#"
import logging, socket, ssl, sys
logging.basicConfig(level=logging.INFO)
host, port, ca = sys.argv[1], int(sys.argv[2]), sys.argv[3]
context = ssl.create_default_context()
if ca == "-":
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
else:
    context.load_verify_locations(ca)
message = b"INI ADALAH DATA YANG DIKIRIM ABCDEFGHIJKLMNOPQ\r\n\r\n"
try:
    with socket.create_connection((host, port), timeout=10) as plain:
        with context.wrap_socket(plain, server_hostname=host) as sock:
            logging.info("%s %s", sock.version(), sock.cipher()[0])
            logging.info("getpeercert: %s", sock.getpeercert())
            sock.sendall(message)
            echo = b""
            while not echo.endswith(b"\r\n\r\n"):
                data = sock.recv(16)
                if not data:
                    break
                logging.info("%s", data)
                echo += data
except ssl.SSLError as e:
    logging.error("%s", e)
    sys.exit(1)
print("echo identical" if echo == message else "echo differs: %r" % echo)
"#;
    let ca = ca.map_or("-".into(), |p| p.display().to_string());
    run(Command::new("python3").args(["-c", CLIENT, host, &port.to_string(), &ca]), None)
}

/// `openssl s_client` checking the server's certificate against `ca`: it sends
/// `line` (and a newline), first asking for a TLS 1.3 key update if
/// `key_update` (its interactive command `K`: the server must answer with its
/// own), and once the echo of `line` is on its stdout, its stdin ends, so it
/// sends `close_notify` and exits. Returns its stdout and stderr
/// (`Verification: OK`, the version, `KEYUPDATE`, `DONE`).
pub fn s_client_echo(
    addr: SocketAddr,
    ca: &Path,
    key_update: bool,
    line: &str,
) -> (String, String) {
    let mut child = Command::new("openssl")
        .args(["s_client", "-brief", "-connect", &addr.to_string(), "-CAfile"])
        .arg(ca)
        // Other lines are sent as they are, even one that begins with a command letter.
        .args(if key_update { None } else { Some("-nocommands") })
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn openssl s_client");
    let (tx, rx) = mpsc::channel();
    let (stdout, stderr) =
        (child.stdout.take().expect("stdout"), child.stderr.take().expect("stderr"));
    for (pipe, is_out) in
        [(Box::new(stdout) as Box<dyn Read + Send>, true), (Box::new(stderr), false)]
    {
        let tx = tx.clone();
        thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                let _ = tx.send((is_out, line));
            }
        });
    }
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let deadline = Instant::now() + STEP;
    let mut wait_for = |want: (bool, &str), child: &mut std::process::Child| {
        while !(if want.0 { &out } else { &err }).iter().any(|l: &String| l == want.1) {
            match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok((true, l)) => out.push(l),
                Ok((false, l)) => err.push(l),
                Err(_) => {
                    let _ = child.kill();
                    panic!("no {:?} from s_client: {out:?}\n{err:?}", want.1);
                }
            }
        }
    };
    let mut stdin = child.stdin.take().expect("stdin");
    if key_update {
        // s_client takes a whole read of its stdin as the command: the line
        // goes only once the update is done.
        stdin.write_all(b"K\n").expect("write to s_client");
        wait_for((false, "KEYUPDATE"), &mut child);
    }
    stdin.write_all(format!("{line}\n").as_bytes()).expect("write to s_client");
    wait_for((true, line), &mut child);
    drop(stdin);
    let status = crate::process::wait_child(&mut child, STEP).expect("s_client exits");
    for (is_out, l) in rx.try_iter() {
        if is_out {
            out.push(l)
        } else {
            err.push(l)
        }
    }
    assert!(status.success(), "s_client: {status}\n{err:?}");
    (out.join("\n"), err.join("\n"))
}
