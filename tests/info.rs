//! `progjar info` on this (offline) machine: the report's sections, a lookup of
//! `localhost` that works, one of a `.invalid` name (RFC 6761: never resolves)
//! that fails clearly and fast, and the course's `None` / `10.0` timeouts.

use progjar_testkit as common;

use std::process::Output;
use std::time::{Duration, Instant};

use common::{progjar, run, stdout};

fn info(args: &[&str]) -> (Output, Duration) {
    let start = Instant::now();
    let out = run(progjar().arg("info").args(args), None);
    (out, start.elapsed())
}

/// The machine's host name as the kernel reports it.
fn kernel_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").expect("hostname").trim().to_string()
}

#[test]
fn report_has_every_section_in_order() {
    let (out, _) = info(&["--remote", "localhost"]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    let text = stdout(&out);
    let headings: Vec<&str> = text.lines().filter(|l| l.starts_with("== ")).collect();
    assert_eq!(
        headings,
        [
            "== This machine ==",
            "== Network interfaces (like `ip addr`) ==",
            "== Address used to reach the outside ==",
            "== getaddrinfo(localhost, 80) ==",
            "== Socket timeouts ==",
            "== Resolver ==",
        ]
    );
}

#[test]
fn hostname_interfaces_and_timeouts() {
    let (out, _) = info(&["--remote", "localhost"]);
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines.contains(&format!("hostname: {}", kernel_hostname()).as_str()), "{text}");
    assert!(lines.contains(&"lo (up, loopback)"), "{text}");
    assert!(lines.contains(&"    inet 127.0.0.1/8"), "{text}");
    // Like the course: a new socket has no timeout, then 10 seconds.
    assert!(text.contains("== Socket timeouts ==\ntimeout : None\ntimeout : 10.0\n"), "{text}");
}

#[test]
fn localhost_lookup_lists_getaddrinfo_results() {
    let (out, _) = info(&["--remote", "localhost", "--port", "10000"]);
    assert_eq!(out.status.code(), Some(0));
    let text = stdout(&out);
    let section =
        text.split("== getaddrinfo(localhost, 10000) ==\n").nth(1).expect("lookup section");
    let section = section.split("\n\n").next().unwrap();
    assert!(
        section.contains("family     type         protocol   canonical name           address"),
        "{section}"
    );
    // The first result carries the canonical name (AI_CANONNAME).
    let tcp = section
        .lines()
        .find(|l| l.contains("SOCK_STREAM") && l.contains("127.0.0.1:10000"))
        .expect("a TCP result");
    assert!(tcp.starts_with("AF_INET "), "{tcp}");
    assert!(tcp.contains("6 (tcp)"), "{tcp}");
}

#[test]
fn failed_remote_lookup_prints_error_and_exits_4_quickly() {
    let (out, took) = info(&["--remote", "no-such-host.invalid"]);
    assert_eq!(out.status.code(), Some(4));
    let text = stdout(&out);
    let error = text.lines().find(|l| l.starts_with("ERROR: ")).expect("an ERROR line");
    assert!(error.starts_with("ERROR: cannot resolve no-such-host.invalid: "), "{error}");
    // The rest of the report still follows the failed lookup.
    assert!(text.contains("timeout : 10.0"), "{text}");
    assert!(text.contains("== Resolver =="), "{text}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("progjar: error: cannot resolve no-such-host.invalid: "), "{err}");
    // Bounded by the lookup limit (5 s) plus start-up.
    assert!(took < Duration::from_secs(10), "took {took:?}");
}

#[test]
fn resolver_section_names_port_53() {
    let (out, _) = info(&["--remote", "localhost"]);
    let text = stdout(&out);
    let section = text.split("== Resolver ==\n").nth(1).expect("resolver section");
    let has_servers = section.lines().any(|l| l.starts_with("nameserver "));
    if has_servers {
        assert!(section.contains("on UDP port 53: capture `udp port 53`"), "{section}");
    } else {
        assert!(section.contains("resolv.conf"), "{section}");
    }
}

#[test]
fn outside_address_section_never_hangs() {
    let (out, took) = info(&["--remote", "localhost"]);
    let text = stdout(&out);
    let section = text.split("== Address used to reach the outside ==\n").nth(1).unwrap();
    for family in ["IPv4: ", "IPv6: "] {
        assert!(section.lines().any(|l| l.starts_with(family)), "{section}");
    }
    assert!(took < Duration::from_secs(10), "took {took:?}");
}
