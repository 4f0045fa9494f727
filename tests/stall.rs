//! Under a one-byte `--max-pending-total`, 300 clients that echo 16 MiB each
//! and read slowly all finish (issue 15, point 11; `src/event_loop/stall.rs`
//! says why some froze for good before).
//!
//! This test puts the kernel's TCP memory under pressure on purpose (that is
//! what drops the segments behind a stall), so it is alone in its file: cargo
//! runs test files one after another, and no other test shares the pressure.
//! Before the fix it failed in 3 of 3 runs here (1 or 2 clients frozen each
//! time); the stall needs the kernel to drop segments, so a machine with more
//! TCP memory may not show it.

use progjar_testkit as common;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use common::{raise_nofile, random_bytes, start_server, MIB};

const CLIENTS: usize = 300;
const EACH: u64 = 16 * MIB as u64;
/// Each client reads at most this much, then pauses: a slow reader.
const READ: usize = 64 * 1024;
const PAUSE: Duration = Duration::from_millis(10);
/// A client whose read waits this long is frozen. A stalled client moves
/// again at its TCP's next retransmission, and Linux backs that timer off to
/// at most 120 s (`TCP_RTO_MAX`); the whole run takes 6-15 s here.
const FROZEN: Duration = Duration::from_secs(150);

/// The pattern each client repeats: a prime length, so that no read or write
/// boundary lines up with it and a piece echoed twice, lost or out of place
/// shows. Cheap to check (one `memcmp` a read), so that the clients, not the
/// test's checking, set the pace: the stall needs traffic heavy enough to
/// press on the kernel's TCP memory.
const PATTERN: usize = 65_521;

/// One client: a thread sends `EACH` bytes of its pattern and half-closes,
/// this one reads the echo slowly and checks every byte. Returns the bytes
/// checked and the longest it waited for a read, or why it stopped.
fn slow_echo(addr: std::net::SocketAddr, seed: u64) -> Result<(u64, Duration), String> {
    let pattern = random_bytes(PATTERN, seed);
    let mut socket = TcpStream::connect(addr).map_err(|e| format!("connect: {e}"))?;
    socket.set_read_timeout(Some(FROZEN)).map_err(|e| e.to_string())?;
    let mut writer = socket.try_clone().map_err(|e| e.to_string())?;
    let sent = pattern.clone();
    thread::spawn(move || {
        let mut left = EACH;
        while left > 0 {
            let piece = &sent[..sent.len().min(left as usize)];
            if writer.write_all(piece).is_err() {
                return;
            }
            left -= piece.len() as u64;
        }
        let _ = writer.shutdown(Shutdown::Write);
    });
    let (mut buf, mut total, mut longest) = (vec![0; READ], 0u64, Duration::ZERO);
    loop {
        let asked = Instant::now();
        let got = socket.read(&mut buf);
        longest = longest.max(asked.elapsed());
        let n = match got {
            Ok(0) => return Ok((total, longest)),
            Ok(n) => n,
            Err(e) => return Err(format!("after {total} bytes: {e}")),
        };
        let mut checked = 0;
        while checked < n {
            let at = ((total + checked as u64) % PATTERN as u64) as usize;
            let len = (n - checked).min(PATTERN - at);
            if buf[checked..checked + len] != pattern[at..at + len] {
                return Err(format!(
                    "a wrong byte within {len} at offset {}",
                    total + checked as u64
                ));
            }
            checked += len;
        }
        total += n as u64;
        thread::sleep(PAUSE);
    }
}

#[test]
fn every_slow_reader_finishes_under_a_one_byte_total() {
    raise_nofile(CLIENTS as u64 * 2 + 256);
    let server = start_server(&["--max-pending-total", "1"]);
    let start = Instant::now();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|i| {
            let addr = server.addr;
            thread::spawn(move || slow_echo(addr, i as u64))
        })
        .collect();
    let (mut failed, mut longest) = (Vec::new(), Duration::ZERO);
    for (i, client) in clients.into_iter().enumerate() {
        match client.join().expect("client thread") {
            Ok((EACH, waited)) => longest = longest.max(waited),
            Ok((n, _)) => failed.push(format!("client {i}: {n} of {EACH} bytes, then EOF")),
            Err(why) => failed.push(format!("client {i}: {why}")),
        }
    }
    assert!(
        failed.is_empty(),
        "{} of {CLIENTS} clients did not get their echo in {:?}: {failed:?}\nlog: {:?}",
        failed.len(),
        start.elapsed(),
        server.log_lines()
    );
    let (elapsed, summary) = (start.elapsed(), server.stop());
    // For the docs (`--nocapture`): what a tiny total cost.
    eprintln!("all done in {elapsed:?}, the longest wait for a read {longest:?}: {summary}");
    let bytes = progjar::units::grouped(EACH * CLIENTS as u64);
    assert!(
        summary.contains(&format!("served {CLIENTS} connections, echoed {bytes} bytes")),
        "{summary}"
    );
}
