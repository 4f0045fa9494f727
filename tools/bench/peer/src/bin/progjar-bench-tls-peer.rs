//! The TLS reference peer for `make bench`: the plaintext peer (`src/main.rs`) with
//! tokio-rustls on each connection, as a tokio user would add TLS to it. The same
//! current-thread runtime, accept loop and task per connection; each task runs the
//! handshake (`TlsAcceptor::accept`), then reads into a buffer and writes the bytes
//! back with `write_all` and `flush` (tokio-rustls may keep records it could not send
//! yet until the next write or flush). rustls's defaults (two TLS 1.3 session tickets
//! after each handshake; progjar sends none), with aws-lc-rs, the provider progjar uses.
//!
//! Usage: progjar-bench-tls-peer ADDR:PORT CERT KEY [--buffer BYTES]
//! (CERT and KEY are PEM files, such as `progjar cert`'s server.crt and server.key).
//! The first line on stdout is `listening on ADDR:PORT`, as progjar prints it.

use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

fn usage(why: &str) -> ! {
    eprintln!("{why}; usage: progjar-bench-tls-peer ADDR:PORT CERT KEY [--buffer BYTES]");
    std::process::exit(2);
}

fn config(cert: &str, key: &str) -> rustls::ServerConfig {
    let chain: Vec<CertificateDer> = match CertificateDer::pem_file_iter(cert) {
        Ok(certs) => {
            certs.collect::<Result<_, _>>().unwrap_or_else(|e| usage(&format!("{cert}: {e}")))
        }
        Err(e) => usage(&format!("{cert}: {e}")),
    };
    let key = PrivateKeyDer::from_pem_file(key).unwrap_or_else(|e| usage(&format!("{key}: {e}")));
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|b| b.with_no_client_auth().with_single_cert(chain, key))
        .unwrap_or_else(|e| usage(&format!("{cert}: {e}")))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    let mut positional = Vec::new();
    let mut buffer: usize = 64 * 1024;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--buffer" {
            match args.next().and_then(|v| v.parse().ok()) {
                Some(n) if n > 0 => buffer = n,
                _ => usage("--buffer needs a positive number of bytes"),
            }
        } else {
            positional.push(arg);
        }
    }
    let [addr, cert, key] = &positional[..] else { usage("give ADDR:PORT, CERT and KEY") };
    let acceptor = TlsAcceptor::from(Arc::new(config(cert, key)));

    let listener = TcpListener::bind(addr).await?;
    println!("listening on {}", listener.local_addr()?);

    loop {
        let (socket, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // EMFILE and friends: say so and keep serving the others.
                eprintln!("accept: {e}");
                tokio::task::yield_now().await;
                continue;
            }
        };
        // Unlike the plaintext peer: after the handshake rustls's session tickets are the
        // last bytes sent, and Nagle's algorithm would hold the first echo until the client's
        // delayed ACK of them (40 ms). progjar sets it too.
        let _ = socket.set_nodelay(true);
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let Ok(mut tls) = acceptor.accept(socket).await else { return };
            let mut buf = vec![0u8; buffer];
            loop {
                let n = match tls.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                if tls.write_all(&buf[..n]).await.is_err() || tls.flush().await.is_err() {
                    return;
                }
            }
        });
    }
}
