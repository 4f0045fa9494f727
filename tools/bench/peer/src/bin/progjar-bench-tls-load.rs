//! The TLS load generator of `tools/bench/run tls`, until `progjar-stress --tls` exists:
//! tokio-rustls clients on one current-thread runtime, with aws-lc-rs (progjar's provider),
//! TLS 1.3 only, no session resumption (every handshake is a full one), the server's
//! certificate checked against `--ca`, every echoed byte compared with what was sent.
//! (`openssl s_time` cannot echo, and Python's `ssl` would cost more CPU than the servers
//! it measures; this one stays off the server's core and its figures are exact counts.)
//!
//! Usage: progjar-bench-tls-load MODE ADDR:PORT --ca FILE [-c N] [-s BYTES] [-d SECS]
//!        [--groups default|x25519]
//!
//! MODE is one of
//! - `echo`: N connections, each handshaken first; then each sends BYTES, waits for the
//!   whole echo and sends again (request/response), for SECS;
//! - `crr`: N workers, each connecting, handshaking, echoing one BYTES message and closing
//!   (close_notify, FIN, then the server's close), over and over, for SECS;
//! - `idle`: N connections, each handshaken and one BYTES message echoed, then held silent.
//!
//! The bench steers it through stdin and stdout, so that the server's CPU and memory are
//! read at the right moments: it prints `ready` once set up (every connection of `echo`
//! and `idle` handshaken), waits for a line on stdin, runs the load, prints `stopped JSON`
//! (what was counted), waits for a line again, then closes every connection and exits.
//! End of stdin counts as a line, so it never waits on a bench that is gone.

use std::io::BufRead;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

type Conn = TlsStream<TcpStream>;

/// Connections opened at once while setting up `echo` and `idle`: a listen backlog
/// overflowing would measure SYN retries, not the server.
const SETUP_AT_ONCE: usize = 64;

struct Args {
    mode: String,
    addr: String,
    ca: String,
    conns: usize,
    size: usize,
    secs: f64,
    x25519_only: bool,
}

fn usage(why: &str) -> ! {
    eprintln!(
        "{why}; usage: progjar-bench-tls-load echo|crr|idle ADDR:PORT --ca FILE [-c N] [-s BYTES] [-d SECS] \
         [--groups default|x25519]"
    );
    std::process::exit(2);
}

fn parse_args() -> Args {
    let mut a = Args {
        mode: String::new(),
        addr: String::new(),
        ca: String::new(),
        conns: 1,
        size: 64,
        secs: 5.0,
        x25519_only: false,
    };
    let mut positional = Vec::new();
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| usage(&format!("{arg} needs a value")));
        match arg.as_str() {
            "--ca" => a.ca = value(),
            "-c" => a.conns = value().parse().unwrap_or_else(|_| usage("-c needs a count")),
            "-s" => a.size = value().parse().unwrap_or_else(|_| usage("-s needs a size")),
            "-d" => a.secs = value().parse().unwrap_or_else(|_| usage("-d needs seconds")),
            "--groups" => match value().as_str() {
                "default" => a.x25519_only = false,
                "x25519" => a.x25519_only = true,
                _ => usage("--groups is default or x25519"),
            },
            _ => positional.push(arg),
        }
    }
    let [mode, addr] = &positional[..] else { usage("give MODE and ADDR:PORT") };
    if !["echo", "crr", "idle"].contains(&mode.as_str())
        || a.ca.is_empty()
        || a.conns == 0
        || a.size == 0
    {
        usage("MODE is echo, crr or idle, --ca is needed, -c and -s are positive");
    }
    (a.mode, a.addr) = (mode.clone(), addr.clone());
    a
}

fn connector(a: &Args) -> TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    let certs =
        CertificateDer::pem_file_iter(&a.ca).unwrap_or_else(|e| usage(&format!("{}: {e}", a.ca)));
    for cert in certs {
        let cert = cert.unwrap_or_else(|e| usage(&format!("{}: {e}", a.ca)));
        roots.add(cert).unwrap_or_else(|e| usage(&format!("{}: {e}", a.ca)));
    }
    let mut provider = rustls::crypto::aws_lc_rs::default_provider();
    if a.x25519_only {
        provider.kx_groups = vec![rustls::crypto::aws_lc_rs::kx_group::X25519];
    }
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap_or_else(|e| usage(&e.to_string()))
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.resumption = rustls::client::Resumption::disabled();
    TlsConnector::from(Arc::new(config))
}

/// What one task counted.
#[derive(Default)]
struct Tally {
    echoes: u64,
    latencies_us: Vec<u32>,
    error_count: u64,
    /// The first few errors' words.
    errors: Vec<String>,
    /// The key exchange group, cipher suite and version of the first handshake.
    negotiated: Option<String>,
}

impl Tally {
    fn error(&mut self, e: String) {
        self.error_count += 1;
        if self.errors.len() < 3 {
            self.errors.push(e);
        }
    }

    fn add(&mut self, other: Tally) {
        self.echoes += other.echoes;
        self.latencies_us.extend(other.latencies_us);
        self.error_count += other.error_count;
        let room = 3usize.saturating_sub(self.errors.len());
        self.errors.extend(other.errors.into_iter().take(room));
        self.negotiated = self.negotiated.take().or(other.negotiated);
    }
}

fn negotiated(conn: &Conn) -> String {
    let (_, c) = conn.get_ref();
    let group = c.negotiated_key_exchange_group().map(|g| format!("{:?}", g.name()));
    let suite = c.negotiated_cipher_suite().map(|s| format!("{:?}", s.suite()));
    let version = c.protocol_version().map(|v| format!("{v:?}"));
    let word = |x: Option<String>| x.unwrap_or_else(|| "?".into());
    format!("{}, {}, {}", word(version), word(suite), word(group))
}

async fn handshake(tls: &TlsConnector, addr: &str) -> std::io::Result<Conn> {
    let tcp = TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    tls.connect(ServerName::try_from("localhost").expect("a valid name"), tcp).await
}

/// One message of `size` bytes, different for every connection and turn, sent and its
/// echo read back whole and compared.
async fn echo(
    conn: &mut Conn,
    size: usize,
    id: usize,
    turn: u64,
    buf: &mut Vec<u8>,
) -> std::io::Result<()> {
    let msg: Vec<u8> =
        (0..size).map(|j| (id.wrapping_mul(31) as u64 + turn * 7 + j as u64) as u8).collect();
    conn.write_all(&msg).await?;
    conn.flush().await?;
    buf.resize(size, 0);
    conn.read_exact(buf).await?;
    if *buf != msg {
        return Err(std::io::Error::other(format!(
            "connection {id}: the echo differs from what was sent"
        )));
    }
    Ok(())
}

/// `echo` and `idle`: N connections handshaken, SETUP_AT_ONCE at a time; `idle` echoes
/// one message on each too.
async fn open_all(a: &Arc<Args>, tls: &TlsConnector, echo_one: bool) -> (Vec<Conn>, Tally) {
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..SETUP_AT_ONCE.min(a.conns) {
        let (a, tls, next) = (Arc::clone(a), tls.clone(), Arc::clone(&next));
        tasks.push(tokio::spawn(async move {
            let (mut conns, mut tally, mut buf) = (Vec::new(), Tally::default(), Vec::new());
            loop {
                let id = next.fetch_add(1, Ordering::Relaxed);
                if id >= a.conns {
                    return (conns, tally);
                }
                let opened = handshake(&tls, &a.addr).await;
                let opened = match opened {
                    Ok(mut c) if echo_one => echo(&mut c, a.size, id, 0, &mut buf).await.map(|_| c),
                    other => other,
                };
                match opened {
                    Ok(c) => {
                        tally.negotiated.get_or_insert_with(|| negotiated(&c));
                        tally.echoes += u64::from(echo_one);
                        conns.push(c);
                    }
                    Err(e) => tally.error(format!("connection {id}: {e}")),
                }
            }
        }));
    }
    let (mut conns, mut tally) = (Vec::new(), Tally::default());
    for t in tasks {
        let (c, t) = t.await.expect("a setup task");
        conns.extend(c);
        tally.add(t);
    }
    (conns, tally)
}

/// `echo`: request/response on every connection until `stop`.
async fn run_echo(a: &Args, conns: Vec<Conn>, stop: Arc<AtomicBool>) -> (Vec<Conn>, Tally) {
    let mut tasks = Vec::new();
    for (id, mut conn) in conns.into_iter().enumerate() {
        let (stop, size) = (Arc::clone(&stop), a.size);
        tasks.push(tokio::spawn(async move {
            let (mut tally, mut buf) = (Tally::default(), Vec::new());
            let mut turn = 1;
            while !stop.load(Ordering::Relaxed) {
                let t0 = Instant::now();
                if let Err(e) = echo(&mut conn, size, id, turn, &mut buf).await {
                    tally.error(e.to_string());
                    break;
                }
                tally.latencies_us.push(t0.elapsed().as_micros().min(u32::MAX as u128) as u32);
                tally.echoes += 1;
                turn += 1;
            }
            (conn, tally)
        }));
    }
    let (mut conns, mut tally) = (Vec::new(), Tally::default());
    for t in tasks {
        let (c, t) = t.await.expect("an echo task");
        conns.push(c);
        tally.add(t);
    }
    (conns, tally)
}

/// `crr`: N workers, each a whole transaction after another until `stop`.
async fn run_crr(a: &Arc<Args>, tls: &TlsConnector, stop: Arc<AtomicBool>) -> Tally {
    let mut tasks = Vec::new();
    for id in 0..a.conns {
        let (a, tls, stop) = (Arc::clone(a), tls.clone(), Arc::clone(&stop));
        tasks.push(tokio::spawn(async move {
            let (mut tally, mut buf) = (Tally::default(), Vec::new());
            let mut turn = 0;
            while !stop.load(Ordering::Relaxed) {
                let t0 = Instant::now();
                match transaction(&tls, &a, id, turn, &mut buf).await {
                    Ok(kx) => {
                        tally.negotiated.get_or_insert(kx);
                        tally
                            .latencies_us
                            .push(t0.elapsed().as_micros().min(u32::MAX as u128) as u32);
                        tally.echoes += 1;
                    }
                    Err(e) => tally.error(format!("connection {id}: {e}")),
                }
                turn += 1;
            }
            tally
        }));
    }
    let mut tally = Tally::default();
    for t in tasks {
        tally.add(t.await.expect("a crr task"));
    }
    tally
}

/// Connect, handshake, one echo, close_notify and FIN, then wait for the server's close:
/// the server's whole work for the connection falls inside the transaction.
async fn transaction(
    tls: &TlsConnector,
    a: &Args,
    id: usize,
    turn: u64,
    buf: &mut Vec<u8>,
) -> std::io::Result<String> {
    let mut conn = handshake(tls, &a.addr).await?;
    echo(&mut conn, a.size, id, turn, buf).await?;
    let kx = negotiated(&conn);
    conn.shutdown().await?;
    let mut rest = [0u8; 256];
    // the server's close_notify, if it sends one, then its FIN (an error is its end too)
    while let Ok(n) = conn.read(&mut rest).await {
        if n == 0 {
            break;
        }
    }
    Ok(kx)
}

fn wait_for_line() {
    let mut line = String::new();
    let _ = std::io::stdin().lock().read_line(&mut line);
}

fn report(a: &Args, tally: &mut Tally, held: usize, secs: f64) -> String {
    tally.latencies_us.sort_unstable();
    let pct = |p: f64| -> u32 {
        let v = &tally.latencies_us;
        if v.is_empty() {
            0
        } else {
            v[((v.len() - 1) as f64 * p).round() as usize]
        }
    };
    let errors = tally.error_count;
    let shown: Vec<String> = tally.errors.iter().map(|e| format!("{e:?}")).collect();
    format!(
        "{{\"mode\": \"{}\", \"connections\": {}, \"held\": {held}, \"size\": {}, \"secs\": {secs:.3}, \
         \"messages\": {}, \"messages_per_sec\": {:.1}, \"latency_us\": {{\"p50\": {}, \"p99\": {}, \"max\": {}}}, \
         \"negotiated\": \"{}\", \"error_count\": {errors}, \"errors\": [{}], \"ok\": {}}}",
        a.mode,
        a.conns,
        a.size,
        tally.echoes,
        if secs > 0.0 { tally.echoes as f64 / secs } else { 0.0 },
        pct(0.5),
        pct(0.99),
        pct(1.0),
        tally.negotiated.as_deref().unwrap_or("?"),
        shown.join(", "),
        errors == 0,
    )
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let a = Arc::new(parse_args());
    let tls = connector(&a);
    let (conns, mut tally) = match a.mode.as_str() {
        "crr" => (Vec::new(), Tally::default()),
        mode => open_all(&a, &tls, mode == "idle").await,
    };
    println!("ready");
    // Blocking this thread is harmless here: every task is idle until the next phase.
    wait_for_line();
    let stop = Arc::new(AtomicBool::new(a.mode == "idle"));
    let timer = Arc::clone(&stop);
    let secs = a.secs;
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs_f64(secs));
        timer.store(true, Ordering::Relaxed);
    });
    let t0 = Instant::now();
    let (conns, run) = match a.mode.as_str() {
        "echo" => run_echo(&a, conns, stop).await,
        "crr" => (Vec::new(), run_crr(&a, &tls, stop).await),
        _ => (conns, Tally::default()),
    };
    let elapsed = if a.mode == "idle" { 0.0 } else { t0.elapsed().as_secs_f64() };
    // setup counted errors and the negotiation (and idle's one echo each), the run its echoes
    tally.add(run);
    println!("stopped {}", report(&a, &mut tally, conns.len(), elapsed));
    wait_for_line();
    for mut conn in conns {
        let _ = conn.shutdown().await;
    }
}
