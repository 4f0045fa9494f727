//! Floods of connections and the throttled warnings they cause: what the
//! fault matrix's limit tests (`tests/faults_limits.rs`, `tests/loops.rs`) share.
//! A flood opens many connections at once and sorts them into served and
//! closed; the warnings about refusals come at most once a second, each saying
//! how many it stands for, and these helpers add them up.

use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant};

use crate::net::{assert_closed_by_server, assert_echo, connect, served_or_closed};
use crate::process::{wait_until, STEP};
use crate::procfs::{cpu_time, raise_nofile};
use crate::server::Server;

/// What a flood of connections found.
pub struct Flood {
    /// The connections the server serves, still open.
    pub served: Vec<TcpStream>,
    /// How many the server closed at once.
    pub closed: usize,
    /// The server's CPU time over wall time, from the first connect to one
    /// second after the last answer.
    pub cpu_fraction: f64,
    /// Wall time of the flood, for the log-rate check.
    pub elapsed: Duration,
}

/// Open `n` connections at once, then probe each: served, or closed at once.
/// None may hang.
pub fn flood(server: &Server, n: usize) -> Flood {
    raise_nofile(n as u64 + 256);
    let pid = server.child.id();
    let (t0, cpu0) = (Instant::now(), cpu_time(pid));
    let mut conns: Vec<TcpStream> = (0..n).map(|_| connect(server.addr)).collect();
    let mut served = Vec::new();
    let mut closed = 0;
    for (i, mut s) in conns.drain(..).enumerate() {
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        if served_or_closed(&mut s, format!("probe {i}\n").as_bytes()) {
            s.set_read_timeout(Some(STEP)).unwrap();
            served.push(s);
        } else {
            closed += 1;
        }
    }
    // Hold everything open for a second: a spinning loop would burn it all.
    thread::sleep(Duration::from_secs(1));
    let elapsed = t0.elapsed();
    let cpu = cpu_time(pid) - cpu0;
    Flood { served, closed, cpu_fraction: cpu.as_secs_f64() / elapsed.as_secs_f64(), elapsed }
}

/// The warnings about one kind of refusal: at most one per second (plus the
/// first), and each line's "and N more" adds up to `refused` when the last
/// refusal was itself logged.
pub fn assert_rate_limited(server: &Server, needle: &str, elapsed: Duration) -> usize {
    let lines: Vec<String> =
        server.log_lines().into_iter().filter(|l| l.contains(needle)).collect();
    assert!(!lines.is_empty(), "no warning with {needle:?}");
    assert!(lines.iter().all(|l| l.starts_with("WARN:server:")), "{lines:#?}");
    let allowed = elapsed.as_secs() as usize + 2;
    assert!(lines.len() <= allowed, "{} warnings in {elapsed:?}: {lines:#?}", lines.len());
    lines.len()
}

/// The "(and N more since the last such line)" of a throttled line, or 0.
pub fn suppressed_in(line: &str) -> u64 {
    line.split("(and ").nth(1).and_then(|r| r.split(' ').next()?.parse().ok()).unwrap_or(0)
}

/// One refusal logged plus the "and N more" it stands for.
pub fn logged_and_more(line: &str) -> u64 {
    1 + suppressed_in(line)
}

/// The K of "closed K new connection(s)" in an out-of-descriptors warning.
pub fn closed_in(line: &str) -> u64 {
    line.split("closed ").nth(1).and_then(|r| r.split(' ').next()?.parse().ok()).unwrap_or(0)
}

/// After a flood: those served still are; one leaves, exactly one newcomer
/// fits, and the next is closed at once. Returns the open connections.
pub fn one_leaves_one_fits(
    server: &Server,
    mut served: Vec<TcpStream>,
) -> (Vec<TcpStream>, TcpStream) {
    for (i, s) in served.iter_mut().enumerate() {
        assert_echo(s, format!("still served {i}").as_bytes());
    }
    let leaving = served.pop().unwrap();
    let port = leaving.local_addr().unwrap().port();
    drop(leaving);
    server.wait_for_close(port);
    let mut newcomer = connect(server.addr);
    assert_echo(&mut newcomer, b"a seat came free");
    // More than a second after the flood's last warning: this one is logged,
    // with the count of those kept quiet.
    let mut one_too_many = connect(server.addr);
    assert_closed_by_server(&mut one_too_many);
    (served, newcomer)
}

/// Wait until the warnings with `needle` account for `refused` refusals
/// (`count(line)`: how many one line stands for) and return them. Only the
/// sum says that the last refusal's line has arrived: a count of lines taken
/// earlier may already include a late line of the flood.
pub fn wait_until_accounted(
    server: &Server,
    needle: &str,
    count: fn(&str) -> u64,
    refused: u64,
) -> Vec<String> {
    let lines = || -> Vec<String> {
        server.log_lines().into_iter().filter(|l| l.contains(needle)).collect()
    };
    let accounted = |lines: &[String]| lines.iter().map(|l| count(l)).sum::<u64>();
    wait_until("the warnings to account for every refusal", || accounted(&lines()) >= refused);
    let lines = lines();
    assert_eq!(accounted(&lines), refused, "the warnings account for every refusal: {lines:#?}");
    lines
}
