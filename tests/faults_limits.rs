//! The fault matrix, limits and refusals: `progjar server` out of file
//! descriptors, at --max-connections, with idle clients, behind --allow and
//! --max-per-ip, and given bad command lines. Each test drives the real
//! binary over loopback, is bounded in time, and checks that the server
//! refuses exactly what it should, says so once (throttled), keeps serving
//! everyone else, and serves a newcomer once there is room.
//! docs/faults.md lists the rows with what the server does in each.
//!
//! Nothing here asserts speed: bounds are on correctness (exact bytes, exit
//! status, log lines) and, for "does not spin", on CPU time as a generous
//! fraction of wall time.

use progjar_testkit as common;

use std::io::Read;
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use common::{
    assert_closed_by_server, assert_echo, assert_served, connect, connect_from, fds_below,
    run_failing, start_server, start_server_with,
};
use common::{
    assert_rate_limited, closed_in, flood, logged_and_more, one_leaves_one_fits, suppressed_in,
    wait_until_accounted,
};

// ---------------------------------------------------------------------------
// 1. Out of file descriptors
// ---------------------------------------------------------------------------

/// Started with an open-file limit of 64, the server caps itself at 48
/// connections (64 - 16 reserved) and closes the rest of a 500-connection
/// flood at once, without spinning; when one leaves, a new one is served.
#[test]
fn fd_limit_at_start_caps_connections_and_sheds_the_rest() {
    const N: usize = 500;
    let server = start_server_with(Command::new("prlimit").args([
        "--nofile=64:64",
        env!("CARGO_BIN_EXE_progjar"),
        "server",
        "--bind",
        "127.0.0.1",
        "--port",
        "0",
    ]));
    server.wait_for_log("open-file limit: soft 64 (was 64), hard 64");
    server.wait_for_log("serving at most 48 connections: the open-file limit is 64");
    let f = flood(&server, N);
    println!(
        "fd limit 64: {} served, {} closed at once, server CPU {:.1}% of {:?} wall",
        f.served.len(),
        f.closed,
        f.cpu_fraction * 100.0,
        f.elapsed
    );
    assert_eq!(f.served.len(), 48, "served at the limit");
    assert_eq!(f.closed, N - 48);
    assert!(f.cpu_fraction < 0.5, "server used {:.0}% CPU: spinning?", f.cpu_fraction * 100.0);
    let warnings = assert_rate_limited(&server, "(--max-connections)", f.elapsed);
    println!("fd limit 64: {warnings} warning line(s) for {} refusals", f.closed);
    server.wait_for_log("48 connections open (--max-connections)");

    let (served, newcomer) = one_leaves_one_fits(&server, f.served);
    let refused = (f.closed + 1) as u64;
    let lines = wait_until_accounted(&server, "(--max-connections)", logged_and_more, refused);
    assert!(lines.len() > warnings, "the last refusal is logged: {lines:#?}");
    drop((served, newcomer));
    let summary = server.stop();
    assert!(summary.contains(&format!("refused {refused} at --max-connections")), "{summary}");
}

/// The real EMFILE path: a server started with plenty of descriptors has its
/// limit cut to 40 while running (`prlimit --pid`). `accept` then fails with
/// EMFILE; the server gives up its reserve descriptor to accept and close
/// each waiting client (EOF, not a hang in the backlog), logs it at most once
/// a second, does not spin, and serves a new client as soon as one leaves.
#[test]
fn out_of_descriptors_sheds_the_backlog_with_the_reserve_descriptor() {
    const N: usize = 500;
    const LIMIT: usize = 40;
    let server = start_server(&[]);
    let pid = server.child.id();
    let out = common::run(
        Command::new("prlimit").args([
            "--pid",
            &pid.to_string(),
            &format!("--nofile={LIMIT}:{LIMIT}"),
        ]),
        None,
    );
    assert!(out.status.success(), "prlimit --pid: {}", String::from_utf8_lossy(&out.stderr));
    let fds = fds_below(pid, LIMIT);
    let f = flood(&server, N);
    println!(
        "EMFILE at {LIMIT} ({fds} descriptors open before): {} served, {} closed at once, \
         server CPU {:.1}% of {:?} wall",
        f.served.len(),
        f.closed,
        f.cpu_fraction * 100.0,
        f.elapsed
    );
    assert_eq!(f.served.len(), LIMIT - fds, "every free descriptor serves a client");
    assert_eq!(f.closed, N - f.served.len());
    assert!(f.cpu_fraction < 0.5, "server used {:.0}% CPU: spinning?", f.cpu_fraction * 100.0);
    let warnings = assert_rate_limited(&server, "out of file descriptors with", f.elapsed);
    println!("EMFILE: {warnings} warning line(s) for {} refusals", f.closed);
    let line = server.wait_for_log("out of file descriptors with");
    assert!(line.contains(&format!("with {} connections open: closed", f.served.len())), "{line}");

    let (served, newcomer) = one_leaves_one_fits(&server, f.served);
    let refused = f.closed + 1;
    // Each line says "closed K new connection(s)" and "(and N more since the
    // last such line)": together they must account for every connection shed.
    let count = |l: &str| closed_in(l) + suppressed_in(l);
    let lines =
        wait_until_accounted(&server, "out of file descriptors with", count, refused as u64);
    assert!(lines.len() > warnings, "the last refusal is logged: {lines:#?}");
    drop((served, newcomer));
    let summary = server.stop();
    assert!(summary.contains(&format!("refused {refused} out of file descriptors")), "{summary}");
}

// ---------------------------------------------------------------------------
// 2. Connection limit
// ---------------------------------------------------------------------------

/// At --max-connections 5 a sixth client is closed at once and counted, the
/// warnings are throttled (their "and N more" add up to every refusal), and
/// below the limit again a new client is served.
#[test]
fn connection_limit_closes_the_excess_and_counts_it() {
    let server = start_server(&["--max-connections", "5"]);
    let mut open: Vec<TcpStream> = (0..5).map(|_| connect(server.addr)).collect();
    for (i, s) in open.iter_mut().enumerate() {
        assert_echo(s, format!("seat {i}").as_bytes());
    }
    let mut refused = 0;
    // A burst of 21: one warning line, the other 20 kept quiet.
    for _ in 0..21 {
        assert_closed_by_server(&mut connect(server.addr));
        refused += 1;
    }
    let first = server.wait_for_log("(--max-connections)");
    assert!(
        first.contains("refused 127.0.0.1:") && first.contains("5 connections open"),
        "{first}"
    );
    // After the throttle's second, one more refusal is logged with the count.
    thread::sleep(Duration::from_millis(1100));
    let logged = server.log_count("(--max-connections)");
    assert_closed_by_server(&mut connect(server.addr));
    refused += 1;
    let lines = wait_until_accounted(&server, "(--max-connections)", logged_and_more, refused);
    assert!(lines.len() > logged && lines.len() <= 3, "{lines:#?}");
    // The five are still served; one leaves; a newcomer is served.
    for (i, s) in open.iter_mut().enumerate() {
        assert_echo(s, format!("still seat {i}").as_bytes());
    }
    // Wait for this client's own close line: "(4 open)" alone also matches the
    // fourth client's earlier "connection from ... (4 open)".
    let leaving = open.pop().unwrap();
    let port = leaving.local_addr().unwrap().port();
    drop(leaving);
    let line = server.wait_for_close(port);
    assert!(line.contains("(peer closed)") && line.ends_with("(4 open)"), "{line}");
    let mut newcomer = connect(server.addr);
    assert_echo(&mut newcomer, b"my turn");
    drop((open, newcomer));
    let summary = server.stop();
    assert!(summary.contains(&format!("refused {refused} at --max-connections")), "{summary}");
}

// ---------------------------------------------------------------------------
// 3. Idle timeout
// ---------------------------------------------------------------------------

/// --idle-timeout 2 closes a client silent for two seconds (after an echo, or
/// from the start), and never one that sends every 200 ms for 4 s. (The
/// active client's ticks leave 1.8 s of slack: a test thread starved that
/// long on a busy machine would be idle in fact.)
#[test]
fn idle_timeout_closes_silent_clients_only() {
    let server = start_server(&["--idle-timeout", "2"]);
    let addr = server.addr;
    // Each clock starts before the client's last activity, so the time to its
    // close is a true lower bound on how long the server let it sit idle.
    let quiet_after_echo = thread::spawn(move || {
        let mut s = connect(addr);
        let t = Instant::now();
        assert_echo(&mut s, b"hello, then silence");
        assert_closed_by_server(&mut s);
        t.elapsed()
    });
    let mute = thread::spawn(move || {
        let t = Instant::now();
        let mut s = connect(addr);
        assert_closed_by_server(&mut s);
        t.elapsed()
    });
    let mut active = connect(addr);
    let active_port = active.local_addr().unwrap().port();
    let start = Instant::now();
    let mut k = 0;
    while start.elapsed() < Duration::from_secs(4) {
        assert_echo(&mut active, format!("tick {k}").as_bytes());
        k += 1;
        thread::sleep(Duration::from_millis(200));
    }
    let quiet = quiet_after_echo.join().unwrap();
    let mute = mute.join().unwrap();
    // Closed no earlier than the timeout (a lower bound only: no speed check).
    assert!(quiet >= Duration::from_millis(1900), "closed after {quiet:?}");
    assert!(mute >= Duration::from_millis(1900), "closed after {mute:?}");
    active.shutdown(Shutdown::Write).unwrap();
    let mut rest = Vec::new();
    active.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty());
    let line = server.wait_for_close(active_port);
    assert!(line.contains("(peer closed)"), "the active client was closed idle: {line}");
    server.wait_for_log_count("(idle timeout)", 2);
    println!(
        "idle: silent clients closed after {quiet:?} and {mute:?}; active client sent {k} ticks"
    );
    let summary = server.stop();
    assert!(summary.contains("; 2 closed idle"), "{summary}");
}

// ---------------------------------------------------------------------------
// 4. Bad command lines
// ---------------------------------------------------------------------------
/// Each bad command line gets one clear line on stderr and status 2 (usage)
/// or 1 (runtime), never a panic, and nothing on stdout.
#[test]
fn bad_command_lines_say_one_clear_line() {
    let in_use = TcpListener::bind("127.0.0.1:0").unwrap();
    let busy_port = in_use.local_addr().unwrap().port().to_string();
    let in_use_msg = format!("port {busy_port} is already in use");
    let mut cases: Vec<(Vec<&str>, i32, Vec<&str>)> = vec![
        (vec!["server", "--port", "70000"], 2, vec!["'--port'", "70000"]),
        (vec!["server", "--port", "abc"], 2, vec!["'--port'", "abc"]),
        (vec!["server", "--port", "-1"], 2, vec!["'--port'"]),
        (vec!["server", "--bogus"], 2, vec!["--bogus"]),
        (vec!["server", "--max-pending", "0"], 2, vec!["'--max-pending'"]),
        (vec!["server", "--read-size", "17MiB"], 2, vec!["'--read-size'"]),
        (vec!["server", "--read-size", "0"], 2, vec!["'--read-size'", "'0'"]),
        (vec!["server", "--bind", "not-an-address"], 2, vec!["'--bind'", "not-an-address"]),
        (vec!["server", "--idle-timeout", "soon"], 2, vec!["'--idle-timeout'"]),
        (vec!["server", "--grace", "-1"], 2, vec!["'--grace'"]),
        (vec!["server", "--allow", "10.0.0.0/33"], 2, vec!["not a network"]),
        (vec!["server", "--allow", "::1/129"], 2, vec!["not a network"]),
        (vec!["server", "--max-per-ip", "many"], 2, vec!["'--max-per-ip'"]),
        (vec!["server", "--backlog", "99999999999"], 2, vec!["'--backlog'"]),
        (
            vec!["server", "--bind", "fe80::1", "--port", "0"],
            1,
            vec!["link-local address needs an interface"],
        ),
        (
            vec!["server", "--bind", "192.0.2.1", "--port", "0"],
            1,
            vec!["192.0.2.1 is not an address of this machine"],
        ),
        (
            vec!["server", "--bind", "127.0.0.1", "--port", &busy_port],
            1,
            vec![&in_use_msg, "--port"],
        ),
    ];
    if TcpListener::bind("[::1]:0").is_ok() {
        cases.push((
            vec!["server", "--bind", "2001:db8::1", "--port", "0"],
            1,
            vec!["2001:db8::1 is not an address of this machine"],
        ));
    }
    for (args, code, wanted) in &cases {
        let (status, err) = run_failing(&[], args);
        assert_eq!(status, Some(*code), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.starts_with("progjar: "), "{args:?}: {err}");
        for w in wanted {
            assert!(err.contains(w), "{args:?}: wanted {w:?} in {err}");
        }
    }
    drop(in_use);
}

/// A port below 1024 without the privilege: one line that says why, status 1.
/// The tests run as root in CI, so the server is started as `nobody`.
#[test]
fn a_privileged_port_without_permission_says_so() {
    let start = std::fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start")
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok())
        .unwrap_or(1024);
    if start <= 7 {
        println!(
            "skipped: net.ipv4.ip_unprivileged_port_start is {start}, so anyone may bind port 7"
        );
        return;
    }
    // SAFETY: geteuid has no preconditions.
    let wrapper: &[&str] = if unsafe { libc::geteuid() } == 0 {
        &["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    } else {
        &[]
    };
    if !wrapper.is_empty() {
        let probe = Command::new(wrapper[0])
            .args(&wrapper[1..])
            .arg(env!("CARGO_BIN_EXE_progjar"))
            .arg("--help")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if !matches!(probe, Ok(s) if s.success()) {
            println!("skipped: cannot run progjar as nobody with setpriv ({probe:?})");
            return;
        }
    }
    let (status, err) = run_failing(wrapper, &["server", "--bind", "127.0.0.1", "--port", "7"]);
    assert_eq!(status, Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("127.0.0.1:7") && err.contains("ports below 1024 need root"), "{err}");
}

// ---------------------------------------------------------------------------
// 5. Access control
// ---------------------------------------------------------------------------

/// --allow (repeated) admits only the listed IPv4 networks: clients from
/// other loopback addresses are closed at accept and logged.
#[test]
fn allow_admits_only_listed_ipv4_networks() {
    let server = start_server(&[
        "--allow",
        "127.0.0.2/32",
        "--allow",
        "10.0.0.0/8",
        "--allow",
        "127.0.0.64/26",
    ]);
    let mut ok = connect_from(Ipv4Addr::new(127, 0, 0, 2), server.addr);
    assert_echo(&mut ok, b"from .2");
    let mut ok2 = connect_from(Ipv4Addr::new(127, 0, 0, 100), server.addr);
    assert_echo(&mut ok2, b"from .100");
    let mut from_1 = connect(server.addr);
    assert_closed_by_server(&mut from_1);
    let line = server.wait_for_log("not in --allow");
    assert!(line.starts_with("WARN:server:refused 127.0.0.1:"), "{line}");
    let mut from_3 = connect_from(Ipv4Addr::new(127, 0, 0, 3), server.addr);
    assert_closed_by_server(&mut from_3);
    assert_echo(&mut ok, b"still served");
    drop((ok, ok2));
    let summary = server.stop();
    assert!(summary.contains("refused 2 not in --allow"), "{summary}");
}

/// IPv6: `--bind ::1 --allow ::1/128` serves ::1; on `--bind ::` an IPv4
/// client arrives as ::ffff:127.0.0.1 and is matched as 127.0.0.1, so
/// `--allow 127.0.0.0/8` admits it and refuses ::1, and `--allow ::1/128`
/// does the opposite.
#[test]
fn allow_matches_ipv6_and_ipv4_mapped_clients() {
    if TcpListener::bind("[::1]:0").is_err() {
        println!("skipped: no IPv6 loopback here");
        return;
    }
    let start = |bind: &str, allow: &str| {
        start_server_with(
            common::progjar().args(["server", "--bind", bind, "--port", "0", "--allow", allow]),
        )
    };
    let v6 = start("::1", "::1/128");
    assert_served(v6.addr, b"over IPv6");
    v6.stop();

    let dual = start("::", "127.0.0.0/8");
    let port = dual.addr.port();
    let v4_addr: SocketAddr = (Ipv4Addr::LOCALHOST, port).into();
    let v6_addr: SocketAddr = (std::net::Ipv6Addr::LOCALHOST, port).into();
    assert_served(v4_addr, b"IPv4 through a dual-stack listener");
    dual.wait_for_log("connection from [::ffff:127.0.0.1]:");
    assert_closed_by_server(&mut connect(v6_addr));
    dual.wait_for_log("refused [::1]:");
    let summary = dual.stop();
    assert!(summary.contains("refused 1 not in --allow"), "{summary}");

    let dual = start("::", "::1/128");
    let port = dual.addr.port();
    assert_served((std::net::Ipv6Addr::LOCALHOST, port).into(), b"IPv6 allowed");
    assert_closed_by_server(&mut connect((Ipv4Addr::LOCALHOST, port).into()));
    dual.wait_for_log("refused [::ffff:127.0.0.1]:");
    dual.stop();
}

/// --max-per-ip 3: the fourth connection from one address is closed and
/// logged, another address is unaffected, and after one leaves a new one
/// from the first address is served.
#[test]
fn max_per_ip_caps_each_address_separately() {
    let server = start_server(&["--max-per-ip", "3"]);
    let mut mine: Vec<TcpStream> = (0..3).map(|_| connect(server.addr)).collect();
    for (i, s) in mine.iter_mut().enumerate() {
        assert_echo(s, format!("mine {i}").as_bytes());
    }
    assert_closed_by_server(&mut connect(server.addr));
    let line = server.wait_for_log("(--max-per-ip)");
    assert!(line.contains("3 connections open from 127.0.0.1"), "{line}");
    let mut theirs: Vec<TcpStream> =
        (0..3).map(|_| connect_from(Ipv4Addr::new(127, 0, 0, 2), server.addr)).collect();
    for (i, s) in theirs.iter_mut().enumerate() {
        assert_echo(s, format!("theirs {i}").as_bytes());
    }
    assert_closed_by_server(&mut connect_from(Ipv4Addr::new(127, 0, 0, 2), server.addr));
    let leaving = mine.pop().unwrap();
    let port = leaving.local_addr().unwrap().port();
    drop(leaving);
    server.wait_for_close(port);
    let mut again = connect(server.addr);
    assert_echo(&mut again, b"a seat from 127.0.0.1 came free");
    assert_closed_by_server(&mut connect(server.addr));
    drop((mine, theirs, again));
    let summary = server.stop();
    assert!(summary.contains("refused 3 at --max-per-ip"), "{summary}");
}
