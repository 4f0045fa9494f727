//! The reference peer for `make bench`: a tokio echo server as a Rust user would
//! write it. One current-thread runtime (the same single core progjar has), an
//! accept loop, one task per connection that reads into a buffer and writes the
//! bytes back with `write_all`.
//!
//! Usage: progjar-bench-peer [ADDR:PORT] [--buffer BYTES]
//! (default 127.0.0.1:0 and 65536, the same as progjar's default --read-size).
//! The first line on stdout is `listening on ADDR:PORT`, as progjar prints it.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    let mut addr = String::from("127.0.0.1:0");
    let mut buffer: usize = 64 * 1024;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--buffer" {
            match args.next().and_then(|v| v.parse().ok()) {
                Some(n) if n > 0 => buffer = n,
                _ => {
                    eprintln!("--buffer needs a positive number of bytes");
                    std::process::exit(2);
                }
            }
        } else {
            addr = arg;
        }
    }

    let listener = TcpListener::bind(&addr).await?;
    println!("listening on {}", listener.local_addr()?);

    loop {
        let (mut socket, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // EMFILE and friends: say so and keep serving the others.
                eprintln!("accept: {e}");
                tokio::task::yield_now().await;
                continue;
            }
        };
        tokio::spawn(async move {
            let mut buf = vec![0u8; buffer];
            loop {
                let n = match socket.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                if socket.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
        });
    }
}
