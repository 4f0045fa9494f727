//! `progjar-stress --report FILE.html`: a short run against the real progjar
//! server on loopback writes the page, headless Chromium opens it
//! (`progjar_testkit::browser`), and the test checks what a person would see:
//! no console error, charts with lines in them, and the run's own numbers (from
//! its `--json` summary) on the page. Skips, saying why, without Chromium.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::thread;

use progjar::units::grouped;
use progjar_testkit::{
    all_output, browser, cert_in_process, serve_in_thread, serve_tls_in_thread, stress,
    STRESS_LIMIT,
};
use serde_json::Value;

/// A fresh directory for one test's files.
fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("report_page").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch directory");
    dir
}

/// Text as Chromium serializes it in the DOM: `&`, `<`, `>` as entities.
fn as_dom_text(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// How many points the `polyline`s of an SVG have, each.
fn polyline_points(svg: &str) -> Vec<usize> {
    svg.split("<polyline")
        .skip(1)
        .map(|p| p.split("points=\"").nth(1).map_or(0, count_points))
        .collect()
}

fn count_points(rest: &str) -> usize {
    rest.split('"').next().unwrap_or("").split_whitespace().count()
}

#[test]
fn a_short_run_writes_a_page_with_its_own_numbers_that_the_browser_shows() {
    let dir = scratch("short_run");
    let page = dir.join("run.html");
    let addr = serve_in_thread().to_string();
    let page_arg = page.to_str().expect("a UTF-8 path");
    let (o, _) = stress(&[&addr, "-c", "20", "-d", "3", "--json", "--report", page_arg]);
    let out = all_output(&o);
    assert!(o.status.success(), "{out}");
    let v: Value = serde_json::from_slice(&o.stdout).expect("one JSON object");

    // The timeline: a point per second, every message in one of them, phases in order.
    let t = &v["timeline"];
    let seconds = t["seconds"].as_array().expect("timeline.seconds");
    assert!(seconds.len() >= 3, "{out}");
    let counted: u64 = seconds.iter().map(|s| s["messages"].as_u64().expect("messages")).sum();
    assert_eq!(counted, v["messages"].as_u64().expect("messages"), "{out}");
    let (steady, drain, end) =
        (t["steady_at"].as_f64(), t["drain_at"].as_f64(), t["end_at"].as_f64());
    assert!(steady < drain && drain <= end, "phases {steady:?} {drain:?} {end:?}: {out}");
    // The drain begins at the deadline (-d 3), or a little later on a busy machine.
    assert!(drain.is_some_and(|d| (3.0..20.0).contains(&d)), "drain at the deadline: {out}");

    let Some(chromium) = browser::chromium() else { return };
    let loaded = chromium.load(&page, &dir.join("run.png"));
    loaded.assert_sound(browser::WINDOW.0);
    let dom = &loaded.dom;
    // The run's own numbers: the JSON's percentiles in the table, its summary word for word.
    let lat = &v["latency_us"];
    for (name, key) in
        [("p50", "p50"), ("p90", "p90"), ("p99", "p99"), ("p99.9", "p999"), ("max", "max")]
    {
        let us = grouped(lat[key].as_u64().expect("µs"));
        let row = format!("<th>{name}</th><td class=\"us\">{us} µs</td>");
        assert!(dom.contains(&row), "{row} missing from the page");
    }
    let verified = format!("{} verified", grouped(v["messages"].as_u64().expect("messages")));
    assert!(dom.contains(&verified), "the summary's {verified:?} is missing");
    assert!(dom.contains("errors:      none"), "the summary's errors line is missing");
    // Three charts over time and the spectrum, each with a line through its points.
    let svgs = loaded.svgs();
    assert_eq!(svgs.len(), 4, "charts");
    for svg in &svgs[..3] {
        let lines = polyline_points(svg);
        assert!(!lines.is_empty() && lines.iter().all(|n| *n >= 3), "{lines:?}: {svg}");
    }
    assert!(polyline_points(svgs[3]).iter().sum::<usize>() >= 10, "spectrum: {}", svgs[3]);
    for label in ["time since the start (s)", "messages/s", "Gbit/s", "99.999%", "steady"] {
        assert!(dom.contains(label), "{label:?} missing");
    }
    // Self-contained: nothing fetched from anywhere (the SVG namespace is a name, not a load).
    assert!(!dom.replace("xmlns=\"http://www.w3.org/2000/svg\"", "").contains("http"));
}

/// `--tls --per-connection 1`: the page shows the run's TLS lines (what was
/// agreed, the handshakes per second) in its summary, and its title says TLS.
#[test]
fn a_tls_run_writes_its_page_with_the_tls_lines() {
    let dir = scratch("tls_run");
    cert_in_process(&dir);
    let page = dir.join("tls.html");
    let addr = serve_tls_in_thread(&dir).to_string();
    let ca = dir.join("ca.crt");
    let (ca_arg, page_arg) = (ca.to_str().expect("UTF-8"), page.to_str().expect("UTF-8"));
    let args = ["--tls", "--ca", ca_arg, "-c", "4", "--per-connection", "1", "-d", "2"];
    let (o, _) = stress(&[&[addr.as_str()][..], &args, &["--report", page_arg]].concat());
    let out = all_output(&o);
    assert!(o.status.success(), "{out}");
    let text = String::from_utf8_lossy(&o.stdout);
    let tls_lines: Vec<&str> =
        text.lines().filter(|l| l.starts_with("tls:") || l.starts_with("handshakes:")).collect();
    assert_eq!(tls_lines.len(), 2, "{out}");

    let Some(chromium) = browser::chromium() else { return };
    let loaded = chromium.load(&page, &dir.join("tls.png"));
    loaded.assert_sound(browser::WINDOW.0);
    for line in tls_lines {
        assert!(loaded.dom.contains(&as_dom_text(line)), "{line:?} missing from the page");
    }
    assert!(loaded.dom.contains(" over TLS, "), "the title says TLS");
    assert!(loaded.dom.contains("OK"), "the result");
}

/// Echo the first 1000 bytes, then close: each connection fails the same way.
fn close_after_1000(mut s: TcpStream) {
    let _ = s.set_read_timeout(Some(STRESS_LIMIT));
    let mut buf = [0u8; 1000];
    let mut echoed = 0;
    while echoed < buf.len() {
        match s.read(&mut buf[..1000 - echoed]) {
            Ok(0) | Err(_) => return,
            Ok(n) if s.write_all(&buf[..n]).is_ok() => echoed += n,
            Ok(_) => return,
        }
    }
}

#[test]
fn a_failed_run_lists_every_error_on_its_page() {
    let dir = scratch("failed_run");
    let page = dir.join("failed.html");
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    thread::spawn(move || {
        for stream in listener.incoming().take(3).flatten() {
            thread::spawn(move || close_after_1000(stream));
        }
    });
    let page_arg = page.to_str().expect("a UTF-8 path");
    let (o, _) =
        stress(&[&addr, "-c", "3", "-n", "4", "-s", "512", "--json", "--report", page_arg]);
    let out = all_output(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    let v: Value = serde_json::from_slice(&o.stdout).expect("one JSON object");
    // All three fail the same way: one kind of error, counted three times.
    let errors = v["errors"].as_array().expect("errors");
    assert_eq!(errors.len(), 1, "{out}");
    assert_eq!(errors[0]["count"], 3, "{out}");

    let Some(chromium) = browser::chromium() else { return };
    let loaded = chromium.load(&page, &dir.join("failed.png"));
    loaded.assert_sound(browser::WINDOW.0);
    assert!(loaded.dom.contains("FAILED"), "the result");
    assert!(loaded.dom.contains("<h2>Errors: 3</h2>"), "the error count");
    let message = as_dom_text(errors[0]["message"].as_str().expect("a message"));
    let line = format!("<li>3 × {message} (connections ");
    assert!(loaded.dom.contains(&line), "{line} missing");
}

#[test]
fn a_report_into_a_missing_directory_exits_2_before_the_run() {
    let addr = serve_in_thread().to_string();
    let missing = scratch("missing").join("no/such/dir/run.html");
    // -d 30: had the run started, the summary would be on stdout and it would take 30 s.
    let (o, _) = stress(&[&addr, "-d", "30", "--report", missing.to_str().expect("UTF-8")]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{}", all_output(&o));
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    assert!(err.contains("does not exist") && err.contains("no/such/dir"), "{err}");
    assert!(o.stdout.is_empty(), "no run: {}", all_output(&o));
    assert!(!err.contains("panicked"), "{err}");
}

/// Runs merged from several machines produce the same page: two runs at once
/// (as from two load machines), merged with `--report`.
#[test]
fn merged_runs_make_the_same_page_with_the_seconds_added_up() {
    let dir = scratch("merged");
    let addr = serve_in_thread().to_string();
    let runs: Vec<_> = (0..2)
        .map(|i| {
            let addr = addr.clone();
            let file = dir.join(format!("run{i}.json"));
            thread::spawn(move || {
                let (o, _) = stress(&[&addr, "-c", "5", "-d", "2", "--json"]);
                assert!(o.status.success(), "{}", all_output(&o));
                std::fs::write(&file, &o.stdout).expect("write the run's JSON");
                file
            })
        })
        .collect();
    let files: Vec<PathBuf> = runs.into_iter().map(|r| r.join().expect("run")).collect();
    let page = dir.join("merged.html");
    let arg = |p: &Path| p.to_str().expect("a UTF-8 path").to_string();
    let (o, _) =
        stress(&["merge", &arg(&files[0]), &arg(&files[1]), "--json", "--report", &arg(&page)]);
    let out = all_output(&o);
    assert!(o.status.success(), "{out}");
    let v: Value = serde_json::from_slice(&o.stdout).expect("merged JSON");
    assert_eq!(v["runs"], 2, "{out}");
    // Every message of both runs is in some second of the merged timeline.
    let seconds = v["timeline"]["seconds"].as_array().expect("timeline.seconds");
    let counted: u64 = seconds.iter().map(|s| s["messages"].as_u64().expect("messages")).sum();
    assert_eq!(counted, v["messages"].as_u64().expect("messages"), "{out}");
    // Side by side, the two runs share their seconds: not twice as many.
    assert!(seconds.len() <= 5, "{} seconds for two 2 s runs: {out}", seconds.len());

    let Some(chromium) = browser::chromium() else { return };
    let loaded = chromium.load(&page, &dir.join("merged.png"));
    loaded.assert_sound(browser::WINDOW.0);
    let p99 = grouped(v["latency_us"]["p99"].as_u64().expect("p99"));
    let row = format!("<th>p99</th><td class=\"us\">{p99} µs</td>");
    assert!(loaded.dom.contains(&row), "{row} missing from the merged page");
    assert!(loaded.dom.contains("2 runs, 10 connections"), "the title names the runs");
    assert_eq!(loaded.svgs().len(), 4, "charts");
}
