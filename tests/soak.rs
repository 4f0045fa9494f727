//! The soak: 2000 connections exchanging verified messages for 30 s from one
//! nonblocking loop (the last row of docs/faults.md). Bounds are on
//! correctness (zero errors, every byte checked, the summary's count) and on
//! memory (VmRSS flat); nothing asserts speed.

use progjar_testkit as common;

use progjar::units::grouped;

use std::time::{Duration, Instant};

use common::{
    assert_no_flow_failed, assert_no_panic, cpu_time, message_len, raise_nofile, rss_kib,
    start_server, Driver, Flow, MIB, STEP,
};

// ---------------------------------------------------------------------------
// 1. Soak
// ---------------------------------------------------------------------------
/// 2000 connections exchange verified messages (ping-pong, varied sizes) for
/// 30 s from one nonblocking loop: zero errors, every byte checked, the
/// summary accounts for every byte, and the server's RSS at the end is within
/// 10% of its RSS once all 2000 were connected and warmed up.
#[test]
fn soak_2000_connections_for_30_seconds() {
    const CONNS: usize = 2000;
    const STEADY: Duration = Duration::from_secs(30);
    raise_nofile(CONNS as u64 + 512);
    let mut server = start_server(&[]);
    let pid = server.child.id();
    let rss_empty = rss_kib(pid);
    let mut driver = Driver::new();
    let mut flows: Vec<Flow> =
        (0..CONNS).map(|i| Flow::new(server.addr, i as u64, &driver.poll, i)).collect();
    server.wait_for_open(CONNS);
    let next = |i: usize, f: &mut Flow| {
        if f.received == f.limit {
            f.limit += message_len(i as u64, f.rounds);
            f.rounds += 1;
            true
        } else {
            false
        }
    };
    for (i, f) in flows.iter_mut().enumerate() {
        next(i, f);
        driver.kick(i);
    }
    // Warm-up: every connection completes two round trips.
    driver.run(&mut flows, STEP, next, |fs| fs.iter().all(|f| f.rounds >= 3));
    let rss_start = rss_kib(pid);
    let (t0, cpu0) = (Instant::now(), cpu_time(pid));
    let (mut rss_min, mut rss_max, mut sampled) = (rss_start, rss_start, Instant::now());
    driver.run(&mut flows, STEADY + STEP, next, |_| {
        if sampled.elapsed() >= Duration::from_millis(500) {
            let r = rss_kib(pid);
            (rss_min, rss_max, sampled) = (rss_min.min(r), rss_max.max(r), Instant::now());
        }
        t0.elapsed() >= STEADY
    });
    // Let the last messages come back, then measure.
    driver.run(&mut flows, STEP, |_, _| false, |fs| fs.iter().all(|f| f.received == f.limit));
    let steady = t0.elapsed();
    let rss_end = rss_kib(pid);
    let cpu = cpu_time(pid) - cpu0;
    assert_no_flow_failed(&flows, "during the soak");
    // Everyone half-closes and gets EOF after the last byte.
    for (i, f) in flows.iter_mut().enumerate() {
        f.close_at_limit = true;
        driver.kick(i);
    }
    driver.run(&mut flows, STEP, |_, _| false, |fs| fs.iter().all(Flow::ended));
    assert_no_flow_failed(&flows, "at the end");
    let total: u64 = flows.iter().map(|f| f.limit).sum();
    let rounds: u64 = flows.iter().map(|f| f.rounds).sum();
    let fewest = flows.iter().map(|f| f.rounds).min().unwrap();
    let most = flows.iter().map(|f| f.rounds).max().unwrap();
    drop(flows);
    server.signal(libc::SIGTERM);
    assert!(server.wait_exit().success());
    let (conns, echoed) = (grouped(CONNS as u64), grouped(total));
    server.wait_for_log(&format!("served {conns} connections, echoed {echoed} bytes"));
    assert_no_panic(&server.log_lines());
    println!(
        "soak: {CONNS} connections, {rounds} messages ({fewest} to {most} each), {} MiB echoed in {steady:.1?} steady; \
         server RSS empty {rss_empty} KiB, start {rss_start} KiB, min {rss_min}, max {rss_max}, \
         end {rss_end} KiB ({:+.1}%); server CPU {:.0}% of wall",
        total / MIB as u64,
        (rss_end as f64 / rss_start as f64 - 1.0) * 100.0,
        cpu.as_secs_f64() / steady.as_secs_f64() * 100.0
    );
    assert!(
        rss_end * 10 <= rss_start * 11,
        "server RSS grew from {rss_start} KiB to {rss_end} KiB over the soak"
    );
}
