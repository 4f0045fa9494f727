//! Who the server lets in and what it says about them: `--allow` on a
//! dual-stack listener, `--max-per-ip` per IPv6 prefix, the per-connection log
//! lines under churn, and the summary's words.

use progjar_testkit as common;

use std::io::Read;
use std::net::{Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use common::{
    assert_closed_by_server, assert_echo, connect, connect_from, progjar, start_server,
    start_server_with, Server, STEP,
};

/// A dual-stack server (`--bind ::`), or `None` where there is no IPv6 loopback.
fn start_dual_stack(extra: &[&str]) -> Option<Server> {
    if TcpListener::bind("[::1]:0").is_err() {
        println!("skipped: no IPv6 loopback here");
        return None;
    }
    Some(start_server_with(progjar().args(["server", "--bind", "::", "--port", "0"]).args(extra)))
}

/// `--allow ::/0` on `--bind ::` means everyone: IPv4 clients arrive as
/// `::ffff:127.0.0.1`, which is inside `::/0`, and are served.
#[test]
fn allow_all_ipv6_on_a_dual_stack_listener_serves_ipv4_clients() {
    let Some(server) = start_dual_stack(&["--allow", "::/0"]) else { return };
    let port = server.addr.port();
    assert_echo(&mut connect((Ipv4Addr::LOCALHOST, port).into()), b"IPv4, mapped");
    assert_echo(&mut connect((Ipv6Addr::LOCALHOST, port).into()), b"IPv6");
    server.wait_for_log("connection from [::ffff:127.0.0.1]:");
    let summary = server.stop();
    assert!(!summary.contains("refused"), "{summary}");
}

/// `--max-per-ip` counts an IPv6 client by its /64 (so `::1` is `::/64`) and an
/// IPv4 client by its address, however it arrived; `--per-ip-prefix6 128`
/// counts IPv6 addresses one by one again.
#[test]
fn max_per_ip_counts_ipv6_per_prefix_and_ipv4_per_address() {
    let Some(server) = start_dual_stack(&["--max-per-ip", "2"]) else { return };
    let port = server.addr.port();
    let v6: SocketAddr = (Ipv6Addr::LOCALHOST, port).into();
    let v4: SocketAddr = (Ipv4Addr::LOCALHOST, port).into();
    let mut open: Vec<TcpStream> = Vec::new();
    for addr in [v6, v6, v4, v4] {
        let mut s = connect(addr);
        assert_echo(&mut s, b"within the limit");
        open.push(s);
    }
    assert_closed_by_server(&mut connect(v6));
    let line = server.wait_for_log("(--max-per-ip)");
    assert!(line.contains("refused [::1]:"), "{line}");
    assert!(line.ends_with("2 connections open from ::/64 (--max-per-ip)"), "{line}");
    // (Its warning falls in the same second as the one above, so it is only counted.)
    assert_closed_by_server(&mut connect(v4));
    let mut other = connect_from(Ipv4Addr::new(127, 0, 0, 2), v4);
    assert_echo(&mut other, b"another IPv4 address has its own count");
    drop((open, other));
    let summary = server.stop();
    assert!(summary.contains("refused 2 at --max-per-ip"), "{summary}");

    let Some(exact) = start_dual_stack(&["--max-per-ip", "1", "--per-ip-prefix6", "128"]) else {
        return;
    };
    let v6: SocketAddr = (Ipv6Addr::LOCALHOST, exact.addr.port()).into();
    let mut first = connect(v6);
    assert_echo(&mut first, b"one");
    assert_closed_by_server(&mut connect(v6));
    exact.wait_for_log("1 connection open from ::1 (--max-per-ip)");
    exact.stop();
}

/// The option is explained in `--help`, and a prefix outside 1..=128 is refused.
#[test]
fn per_ip_prefix6_is_documented_and_checked() {
    let help = common::run(progjar().args(["server", "--help"]), None);
    let text = String::from_utf8_lossy(&help.stdout);
    assert!(text.contains("--per-ip-prefix6") && text.contains("/64"), "{text}");
    for bad in ["0", "129", "sixty-four"] {
        let out = common::run(progjar().args(["server", "--per-ip-prefix6", bad]), None);
        assert_eq!(out.status.code(), Some(2), "{bad}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(&format!("'{bad}' must be a prefix length from 1 to 128")), "{err}");
    }
}

/// "served 1 connection", not "1 connections".
#[test]
fn summary_speaks_in_singular_for_one() {
    let server = start_server(&[]);
    let mut s = connect(server.addr);
    assert_echo(&mut s, b"x");
    s.shutdown(Shutdown::Write).unwrap();
    let mut rest = Vec::new();
    s.read_to_end(&mut rest).unwrap();
    server.wait_for_log("closing connection from");
    assert!(server.stop().ends_with(":served 1 connection, echoed 1 byte"));
}

/// Per-connection lines the log holds: (printed opens, printed closes,
/// summarised opens, summarised closes, summary lines).
fn connection_lines(log: &[String]) -> (u64, u64, u64, u64, u64) {
    let (mut opens, mut closes, mut quiet_opens, mut quiet_closes, mut summaries) = (0, 0, 0, 0, 0);
    for line in log {
        if line.starts_with("INFO:server:connection from ") {
            opens += 1;
        } else if line.starts_with("INFO:server:closing connection from ") {
            closes += 1;
        } else if let Some(rest) = line.strip_prefix("INFO:server:... and ") {
            summaries += 1;
            let (rest, _open) = rest.rsplit_once(" (").unwrap_or_else(|| panic!("{line}"));
            let words: Vec<&str> = rest.split(' ').collect();
            let n =
                |w: &str| w.replace(',', "").parse::<u64>().unwrap_or_else(|_| panic!("{line}"));
            match words[..] {
                [o, "more", _, "opened", "and", c, "closed", "in", "the", "last", "second"] => {
                    quiet_opens += n(o);
                    quiet_closes += n(c);
                }
                [o, "more", _, "opened", "in", "the", "last", "second"] => quiet_opens += n(o),
                [c, "more", _, "closed", "in", "the", "last", "second"] => quiet_closes += n(c),
                _ => panic!("unexpected summary line {line:?}"),
            }
        }
    }
    (opens, closes, quiet_opens, quiet_closes, summaries)
}

/// 2000 connections opened and closed as fast as one thread can: the server
/// prints at most 100 per-connection lines a second and summarises the rest,
/// and printed plus summarised add up to exactly 2000 opened and 2000 closed,
/// without waiting for the shutdown to flush them.
#[test]
fn connection_churn_prints_a_hundred_lines_a_second_and_counts_the_rest() {
    const CONNECTIONS: u64 = 2000;
    let server = start_server(&[]);
    let start = Instant::now();
    for _ in 0..CONNECTIONS {
        drop(connect(server.addr));
    }
    let deadline = Instant::now() + STEP;
    let counts = loop {
        let (opens, closes, quiet_opens, quiet_closes, summaries) =
            connection_lines(&server.log_lines());
        if opens + quiet_opens >= CONNECTIONS && closes + quiet_closes >= CONNECTIONS {
            break (opens, closes, quiet_opens, quiet_closes, summaries);
        }
        assert!(
            Instant::now() < deadline,
            "lines missing: {:?}",
            connection_lines(&server.log_lines())
        );
        thread::sleep(Duration::from_millis(10));
    };
    let took = start.elapsed();
    let (opens, closes, quiet_opens, quiet_closes, summaries) = counts;
    assert_eq!((opens + quiet_opens, closes + quiet_closes), (CONNECTIONS, CONNECTIONS));
    assert!(summaries >= 1, "no summary line");
    // Every window of the budget is at least a second long and they do not overlap.
    let windows = took.as_secs() + 2;
    assert!(opens + closes <= 100 * windows, "{} lines in {took:?}", opens + closes);
    let mut server = server;
    server.signal(libc::SIGTERM);
    assert!(server.wait_exit().success());
    let summary = server.wait_for_log("INFO:server:served ");
    let served = format!("served {} connections", progjar::units::grouped(CONNECTIONS));
    assert!(summary.contains(&served), "{summary}");
    // The timer reported every window already: the stop adds nothing.
    assert_eq!(connection_lines(&server.log_lines()), counts);
}
