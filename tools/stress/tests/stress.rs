//! Run the real `progjar-stress` binary against echo servers on loopback: the
//! real progjar server, and small faulty ones written here that corrupt a byte,
//! close early or never answer. Every child process and every server thread is
//! bounded in time; all traffic goes to 127.0.0.1.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

// Under the names this file's tests use.
use progjar_testkit::{
    all_output, serve_in_thread as progjar_server, stress, stress_with, STRESS_LIMIT as RUN_LIMIT,
};

/// How long a faulty server's connection thread may live: longer than any test
/// run, so it never cuts a run short, yet bounded.
const SERVER_IO_TIMEOUT: Duration = Duration::from_secs(60);

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A faulty echo server: `handle(stream, index)` serves the `index`-th accepted
/// connection in its own thread. It accepts at most `max` connections.
fn faulty_server(max: usize, handle: fn(TcpStream, usize)) -> SocketAddr {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
    let addr = listener.local_addr().expect("addr");
    thread::spawn(move || {
        for index in 0..max {
            let Ok((stream, _)) = listener.accept() else { return };
            let _ = stream.set_read_timeout(Some(SERVER_IO_TIMEOUT));
            let _ = stream.set_write_timeout(Some(SERVER_IO_TIMEOUT));
            thread::spawn(move || handle(stream, index));
        }
    });
    addr
}

/// Echo everything, but flip one bit of the byte at stream offset 700.
fn corrupt_byte_700(mut s: TcpStream, _: usize) {
    let mut buf = [0u8; 4096];
    let mut offset = 0usize;
    while let Ok(n) = s.read(&mut buf) {
        if n == 0 {
            return;
        }
        if (offset..offset + n).contains(&700) {
            buf[700 - offset] ^= 0x01;
        }
        offset += n;
        if s.write_all(&buf[..n]).is_err() {
            return;
        }
    }
}

/// Echo the first 1000 bytes, then close.
fn close_after_1000(mut s: TcpStream, _: usize) {
    let mut buf = [0u8; 4096];
    let mut echoed = 0usize;
    while let Ok(n) = s.read(&mut buf) {
        let n = n.min(1000 - echoed);
        if n == 0 || s.write_all(&buf[..n]).is_err() {
            return;
        }
        echoed += n;
        if echoed == 1000 {
            return; // dropping the stream closes the connection
        }
    }
}

/// Echo correctly, but in pieces of 7 bytes: the client must put messages
/// together from many reads, across message boundaries.
fn echo_in_7_byte_pieces(mut s: TcpStream, _: usize) {
    let mut buf = [0u8; 7];
    while let Ok(n) = s.read(&mut buf) {
        if n == 0 || s.write_all(&buf[..n]).is_err() {
            return;
        }
    }
}

/// Read everything, echo nothing.
fn never_echo(mut s: TcpStream, _: usize) {
    let mut buf = [0u8; 4096];
    while let Ok(n) = s.read(&mut buf) {
        if n == 0 {
            return;
        }
    }
}

#[test]
fn verifies_200_connections_of_100_messages_against_the_progjar_server() {
    let addr = progjar_server().to_string();
    let (o, _) = stress(&[&addr, "-c", "200", "-n", "100"]);
    let out = all_output(&o);
    assert!(o.status.success(), "{out}");
    assert!(text(&o.stdout).contains("connections: 200 ok, 0 failed"), "{out}");
    assert!(text(&o.stdout).contains("messages:    20,000 verified"), "{out}");
    assert!(text(&o.stdout).contains("result:      OK"), "{out}");
}

#[test]
fn puts_pipelined_messages_together_from_small_pieces() {
    let addr = faulty_server(4, echo_in_7_byte_pieces).to_string();
    // 1000-byte messages, 8 in flight: every read ends mid-message.
    let (o, _) = stress(&[&addr, "-c", "4", "-n", "50", "-s", "1000", "--pipeline", "8", "--json"]);
    let out = all_output(&o);
    assert!(o.status.success(), "{out}");
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("one JSON object");
    assert_eq!(v["messages"], 200, "{out}");
    assert_eq!(v["bytes_received"], 200_000, "{out}");
}

#[test]
fn a_wrong_byte_fails_the_run_and_names_connection_and_offset() {
    let addr = faulty_server(1, corrupt_byte_700).to_string();
    let (o, _) = stress(&[&addr, "-c", "1", "-n", "5", "-s", "512"]);
    let out = all_output(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(
        out.contains(
            "connection 0: wrong byte in the echo at offset 700 (message 1, byte 188 of it)"
        ),
        "{out}"
    );
    assert!(text(&o.stdout).contains("result:      FAILED"), "{out}");
}

#[test]
fn an_early_close_fails_the_run_and_names_connection_and_offset() {
    let addr = faulty_server(1, close_after_1000).to_string();
    let (o, _) = stress(&[&addr, "-c", "1", "-n", "5", "-s", "512"]);
    let out = all_output(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(out.contains("connection 0: short echo"), "{out}");
    assert!(out.contains("offset 1,000 (message 1, byte 488 of it)"), "{out}");
}

#[test]
fn a_lost_echo_fails_even_when_the_deadline_comes_first() {
    // The echo never comes; at the deadline the message is "in flight", but after
    // twice --echo-timeout without a byte it counts as lost.
    let addr = faulty_server(2, never_echo).to_string();
    let (o, elapsed) = stress(&[&addr, "-c", "2", "-d", "0.5", "--echo-timeout", "1"]);
    let out = all_output(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    // The same loss on both connections: one line with its count.
    assert!(
        out.contains(
            "2 × no echo byte for 2 s (twice --echo-timeout 1 s): 512 bytes lost from offset 0"
        ),
        "{out}"
    );
    assert!(!out.contains("late echo"), "{out}");
    assert!(elapsed < Duration::from_secs(15), "took {elapsed:?}");
}

/// Hold the first 512-byte message for 2.5 s before echoing it, then echo
/// everything at once: a slow server, not a lossy one.
fn echo_first_message_after_2500ms(mut s: TcpStream, _: usize) {
    let mut first = [0u8; 512];
    if s.read_exact(&mut first).is_err() {
        return;
    }
    // The delay is the behaviour under test (a stalled server), not a wait for an event.
    thread::sleep(Duration::from_millis(2500));
    if s.write_all(&first).is_err() {
        return;
    }
    echo_in_7_byte_pieces(s, 0);
}

#[test]
fn an_echo_later_than_the_echo_timeout_is_reported_late_not_lost() {
    // --echo-timeout 2: the echo at 2.5 s is late; it would count as lost only
    // after 4 s without a byte, so it is seen.
    let addr = faulty_server(1, echo_first_message_after_2500ms).to_string();
    let (o, _) = stress(&[&addr, "-c", "1", "-n", "3", "--echo-timeout", "2"]);
    let out = all_output(&o);
    assert_eq!(o.status.code(), Some(1), "a late echo fails the run: {out}");
    assert!(out.contains("connection 0: late echo: message 0 came back after 2."), "{out}");
    assert!(out.contains("over --echo-timeout 2 s"), "{out}");
    assert!(text(&o.stdout).contains("messages:    3 verified"), "{out}");
    assert!(text(&o.stdout).contains(", 1 late)"), "{out}");
    assert!(text(&o.stdout).contains("connections: 1 ok, 0 failed"), "{out}");
    assert!(!out.contains("lost"), "{out}");
}

#[test]
fn json_summary_is_one_object_with_the_documented_keys() {
    let addr = progjar_server().to_string();
    let (o, _) = stress(&[&addr, "-c", "10", "-n", "20", "-s", "100", "--idle", "5", "--json"]);
    let out = all_output(&o);
    assert!(o.status.success(), "{out}");
    let stdout = text(&o.stdout);
    assert_eq!(stdout.trim().lines().count(), 1, "one line: {out}");
    let v: serde_json::Value = serde_json::from_str(&stdout).expect("valid JSON");
    for key in [
        "target",
        "connections",
        "idle",
        "message_size",
        "pipeline",
        "seconds",
        "connections_ok",
        "connections_failed",
        "messages",
        "bytes_sent",
        "bytes_received",
        "messages_per_sec",
        "gbit_per_sec_sent",
        "gbit_per_sec_received",
        "latency_us",
        "connect_latency_us",
        "errors",
        "ok",
        "result",
        "incomplete",
        "connects_over_1s",
    ] {
        assert!(v.get(key).is_some(), "missing {key}: {out}");
    }
    for key in ["count", "p50", "p90", "p99", "p999", "max"] {
        assert!(v["latency_us"][key].is_u64(), "latency_us.{key}: {out}");
    }
    assert_eq!(v["latency_us"]["count"], 200, "{out}");
    assert_eq!(histogram_of(&v["latency_us"]).len(), 200, "the whole histogram: {out}");
    assert_eq!(histogram_of(&v["connect_latency_us"]).len(), 15, "idle ones too: {out}");
    assert_eq!(v["runs"], 1, "{out}");
    assert!(v["ended_unix"].as_f64() > Some(1.7e9), "{out}");
    for key in ["p50", "p99", "max"] {
        assert!(v["connect_latency_us"][key].is_u64(), "connect_latency_us.{key}: {out}");
    }
    assert_eq!(v["target"], addr.as_str());
    assert_eq!(v["connections"], 10);
    assert_eq!(v["idle"], 5);
    assert_eq!(v["message_size"], 100);
    assert_eq!(v["connections_ok"], 15, "idle connections count too: {out}");
    assert_eq!(v["connections_failed"], 0);
    assert_eq!(v["messages"], 200);
    assert_eq!(v["bytes_sent"], 20_000);
    assert_eq!(v["bytes_received"], 20_000);
    assert_eq!(v["errors"], serde_json::json!([]));
    assert_eq!(v["ok"], true);
    assert_eq!(v["result"], "OK");
    assert_eq!(v["incomplete"], serde_json::Value::Null);
    assert!(v["latency_us"]["p50"].as_u64() <= v["latency_us"]["max"].as_u64());
}

#[test]
fn a_timed_run_stops_by_itself_without_errors() {
    let addr = progjar_server().to_string();
    let (o, elapsed) = stress(&[
        &addr,
        "-c",
        "20",
        "-d",
        "1",
        "--pipeline",
        "4",
        "--idle",
        "10",
        "--connect-rate",
        "1000",
        "--json",
    ]);
    let out = all_output(&o);
    assert!(o.status.success(), "{out}");
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("valid JSON");
    assert_eq!(v["connections_ok"], 30, "{out}");
    assert!(v["messages"].as_u64() > Some(0), "{out}");
    assert_eq!(v["ok"], true, "{out}");
    assert!(elapsed < Duration::from_secs(10), "took {elapsed:?}");
    // The live line came at least once (a 1 s run prints it at the deadline).
    assert!(text(&o.stderr).contains("msg/s"), "{out}");
}

#[test]
fn a_refused_connect_fails_the_run() {
    // Take a free port and close it again: nothing listens there.
    let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let target = format!("127.0.0.1:{port}");
    let (o, _) = stress(&[&target, "-c", "3", "-n", "1"]);
    let out = all_output(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(out.contains("3 × connect failed: ECONNREFUSED"), "{out}");
    assert!(text(&o.stdout).contains("connections: 0 ok, 3 failed"), "{out}");
}

#[test]
fn the_open_file_limit_is_named_when_it_stops_the_run() {
    let addr = progjar_server().to_string();
    // `ulimit -n` in the shell lowers the hard limit too, so the tool cannot raise it.
    let (o, _) = stress_with(
        Command::new("sh")
            .arg("-c")
            .arg("ulimit -n 64 && exec \"$0\" \"$@\"")
            .arg(env!("CARGO_BIN_EXE_progjar-stress"))
            .args([&addr, "-c", "100", "-n", "2"]),
    );
    let out = all_output(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(out.contains("out of file descriptors (EMFILE): the open-file limit is 64"), "{out}");
    assert!(out.contains("connections were not opened"), "{out}");
    // Those that did open were served and checked.
    assert!(!out.contains("connections: 0 ok"), "{out}");
}

#[test]
fn help_shows_every_default_and_exits_0() {
    for flag in ["-h", "--help"] {
        let (o, _) = stress(&[flag]);
        let help = text(&o.stdout);
        assert_eq!(o.status.code(), Some(0), "{flag}: {}", all_output(&o));
        for default in [
            "(default 127.0.0.1:10000)",
            "(default 50)",
            "(default unlimited",
            "(default 512)",
            "(default 10 s",
            "(default: none",
            "(default 1)",
            "(default 0)",
            "(default off)",
            "(default 5s)",
        ] {
            assert!(help.contains(default), "{flag} lacks {default:?}:\n{help}");
        }
    }
}

#[test]
fn bad_arguments_exit_2_with_one_line() {
    for args in [
        &["-c", "many"][..],
        &["-c", "0"],
        &["-s", "0"],
        &["-s", "12 parsecs"],
        &["-d", "soon"],
        &["-d", "1", "-n", "5"],
        &["--pipeline", "0"],
        &["127.0.0.1:99999"],
        &["[::1"],
        &["--frobnicate"],
    ] {
        let (o, _) = stress(args);
        let err = text(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", all_output(&o));
        assert_eq!(err.trim().lines().count(), 1, "{args:?}: {err}");
        assert!(o.stdout.is_empty(), "{args:?}");
    }
}

#[test]
fn ctrl_c_stops_early_and_still_prints_the_summary() {
    let addr = progjar_server().to_string();
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_progjar-stress"))
        .args([addr.as_str(), "-c", "5", "-d", "50"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn progjar-stress");
    // The first live line (after a second) says the loop is running.
    let mut err = child.stderr.take().expect("stderr");
    let mut seen = Vec::new();
    let mut byte = [0u8; 1];
    while !seen.ends_with(b"\n") && err.read(&mut byte).unwrap_or(0) == 1 {
        seen.push(byte[0]);
    }
    assert!(text(&seen).contains("msg/s"), "no live line: {}", text(&seen));
    progjar_testkit::send_signal(child.id(), libc::SIGINT);
    let mut out = String::new();
    child.stdout.take().expect("stdout").read_to_string(&mut out).expect("read stdout");
    let status = child.wait().expect("wait");
    assert!(started.elapsed() < RUN_LIMIT, "took {:?}", started.elapsed());
    assert!(status.success(), "{status:?}\n{out}");
    assert!(out.contains("interrupted: stopped early by a signal"), "{out}");
    assert!(out.contains("result:      OK"), "{out}");
}

/// Start `progjar-stress ARGS` with piped output and wait for its first live
/// line on stderr (the loop is running); returns the child and that line.
fn spawn_until_live_line(args: &[&str]) -> (std::process::Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_progjar-stress"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn progjar-stress");
    let mut err = child.stderr.take().expect("stderr");
    let mut seen = Vec::new();
    let mut byte = [0u8; 1];
    while !seen.ends_with(b"\n") && err.read(&mut byte).unwrap_or(0) == 1 {
        seen.push(byte[0]);
    }
    // Keep reading stderr in the background so the child never blocks on it.
    thread::spawn(move || std::io::copy(&mut err, &mut std::io::sink()));
    (child, text(&seen))
}

#[test]
fn a_second_signal_ends_the_run_at_once_with_130_and_the_summary() {
    // The echo never comes, so after the first signal the run would wait for it
    // (the echo timeout); the second must end it at once.
    let addr = faulty_server(1, never_echo).to_string();
    let (mut child, line) = spawn_until_live_line(&[&addr, "-c", "1", "-d", "50"]);
    assert!(line.contains("msg/s"), "no live line: {line}");
    let signalled = Instant::now();
    for signal in [libc::SIGINT, libc::SIGTERM] {
        progjar_testkit::send_signal(child.id(), signal);
    }
    let status = progjar_testkit::wait_child(&mut child, RUN_LIMIT).expect("progjar-stress ends");
    let waited = signalled.elapsed();
    // The summary is a few hundred bytes: it sits in the pipe until read here.
    let mut out = String::new();
    child.stdout.take().expect("stdout").read_to_string(&mut out).expect("read stdout");
    assert_eq!(status.code(), Some(130), "{out}");
    assert!(out.contains("interrupted: stopped early by a signal"), "{out}");
    assert!(out.contains("result:"), "{out}");
    // Well before the 5 s echo timeout the first signal alone would wait for.
    assert!(waited < Duration::from_secs(4), "took {waited:?}");
}

#[test]
fn a_closed_output_pipe_ends_the_run_quietly() {
    use std::io::{BufRead, BufReader};
    // `progjar-stress ... 2>&1 | head -2`: both streams into one pipe whose
    // reader leaves after two lines (the live lines of seconds 1 and 2).
    let addr = progjar_server().to_string();
    let mut child = Command::new("sh")
        .arg("-c")
        .arg("exec \"$0\" \"$@\" 2>&1")
        .arg(env!("CARGO_BIN_EXE_progjar-stress"))
        .args([&addr, "-c", "2", "-d", "30"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn progjar-stress");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout"));
    for _ in 0..2 {
        let mut line = String::new();
        assert!(lines.read_line(&mut line).expect("read a line") > 0, "output ended early");
        assert!(line.contains("msg/s"), "{line}");
    }
    drop(lines);
    // The next live line meets the closed pipe: the tool ends quietly with
    // 141 (128 + SIGPIPE, what a shell reports for `cat` or `yes`), long before
    // -d 30 (a panic would exit 101 or 134).
    let status = progjar_testkit::wait_child(&mut child, Duration::from_secs(20)).expect("it ends");
    assert_eq!(status.code(), Some(progjar::cli::EXIT_CLOSED_OUTPUT.into()), "{status:?}");
}

#[test]
fn per_connection_closes_after_n_messages_and_opens_a_new_one() {
    let addr = progjar_server().to_string();
    let (o, _) = stress(&[&addr, "-c", "4", "--per-connection", "5", "-d", "1", "--json"]);
    let out = all_output(&o);
    assert!(o.status.success(), "{out}");
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("valid JSON");
    let ok = v["connections_ok"].as_u64().expect("connections_ok");
    let messages = v["messages"].as_u64().expect("messages");
    // Far more connections than the 4 running at a time: each was replaced.
    assert!(ok > 8, "{out}");
    // Each carried 5 messages, except the 4 the deadline cut short.
    assert!(messages <= 5 * ok && messages >= 5 * (ok - 4), "{out}");
    assert_eq!(v["messages_per_connection"], 5, "{out}");
    assert!(v["connections_per_sec"].as_f64() > Some(0.0), "{out}");
    assert_eq!(v["ok"], true, "{out}");
}

#[test]
fn source_spreads_connections_over_local_addresses() {
    // An echo server that reports each client's address.
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let (peers, seen) = std::sync::mpsc::channel();
    thread::spawn(move || {
        for _ in 0..6 {
            let Ok((stream, peer)) = listener.accept() else { return };
            let _ = peers.send(peer.ip());
            let _ = stream.set_read_timeout(Some(SERVER_IO_TIMEOUT));
            thread::spawn(move || echo_in_7_byte_pieces(stream, 0));
        }
    });
    let sources = ["--source", "127.0.0.2", "--source", "127.0.0.3"];
    let (o, _) = stress(&[&[addr.as_str(), "-c", "6", "-n", "3"][..], &sources].concat());
    let out = all_output(&o);
    assert!(o.status.success(), "{out}");
    let mut from: Vec<String> = seen.try_iter().map(|ip| ip.to_string()).collect();
    from.sort();
    assert_eq!(
        from,
        ["127.0.0.2", "127.0.0.2", "127.0.0.2", "127.0.0.3", "127.0.0.3", "127.0.0.3"]
    );
}

#[test]
fn a_source_that_is_not_local_or_the_wrong_family_exits_2_with_one_line() {
    // Nothing is sent: the check binds a UDP socket, and the run never starts.
    for (source, words) in [
        ("192.0.2.1", "--source 192.0.2.1 is not an address of this machine"),
        ("::1", "--source ::1 cannot reach 127.0.0.1:9: one is IPv4, the other IPv6"),
    ] {
        let (o, _) = stress(&["127.0.0.1:9", "-c", "1", "-n", "1", "--source", source]);
        let err = text(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{source}: {}", all_output(&o));
        assert_eq!(err.trim().lines().count(), 1, "{source}: {err}");
        assert!(err.contains(words), "{source}: {err}");
        assert!(o.stdout.is_empty(), "{source}");
    }
}

/// A file under Cargo's scratch directory for this test target, named for the test.
fn scratch_file(name: &str, contents: &[u8]) -> String {
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    std::fs::write(&path, contents).expect("write a scratch file");
    path.to_string_lossy().into_owned()
}

/// The histogram a `--json` latency object carries, decoded here independently
/// of the tool (HdrHistogram V2 + DEFLATE in base64).
fn histogram_of(latency: &serde_json::Value) -> hdrhistogram::Histogram<u64> {
    use base64::Engine as _;
    let text = latency["histogram"].as_str().expect("a histogram string");
    let bytes = base64::engine::general_purpose::STANDARD.decode(text).expect("base64");
    hdrhistogram::serialization::Deserializer::new()
        .deserialize(&mut bytes.as_slice())
        .expect("an HdrHistogram")
}

#[test]
fn merge_gives_the_percentiles_of_all_messages_together_and_adds_the_counts() {
    let addr = progjar_server().to_string();
    // Two runs with different latencies (small and 64 KiB messages), so an
    // average of percentiles would differ from the percentiles of the union.
    let runs = [
        ("merge_small.json", &[&addr, "-c", "5", "-n", "200", "--json"][..]),
        ("merge_large.json", &[&addr, "-c", "3", "-n", "50", "-s", "64KiB", "--json"]),
    ];
    let mut files = Vec::new();
    let mut parsed = Vec::new();
    for (name, args) in runs {
        let (o, _) = stress(args);
        assert!(o.status.success(), "{}", all_output(&o));
        parsed.push(serde_json::from_slice::<serde_json::Value>(&o.stdout).expect("JSON"));
        files.push(scratch_file(name, &o.stdout));
    }
    let (o, _) = stress(&["merge", &files[0], &files[1], "--json"]);
    let out = all_output(&o);
    assert!(o.status.success(), "{out}");
    let m: serde_json::Value = serde_json::from_slice(&o.stdout).expect("merged JSON");
    for key in ["latency_us", "connect_latency_us"] {
        let mut all = histogram_of(&parsed[0][key]);
        all.add(histogram_of(&parsed[1][key])).expect("same bounds");
        assert_eq!(histogram_of(&m[key]), all, "{key}: {out}");
        assert_eq!(m[key]["count"], all.len(), "{key}: {out}");
        assert_eq!(m[key]["p50"], all.value_at_quantile(0.5), "{key}: {out}");
        assert_eq!(m[key]["p99"], all.value_at_quantile(0.99), "{key}: {out}");
        assert_eq!(m[key]["max"], all.max(), "{key}: {out}");
    }
    assert_eq!(m["latency_us"]["count"], 5 * 200 + 3 * 50, "{out}");
    assert_eq!(m["latency_us"]["p90"], histogram_of(&m["latency_us"]).value_at_quantile(0.9));
    assert_eq!(m["runs"], 2);
    assert_eq!(m["connections"], 8);
    assert_eq!(m["connections_ok"], 8);
    assert_eq!(m["messages"], 1150);
    assert_eq!(m["bytes_sent"], 5 * 200 * 512 + 3 * 50 * 65536);
    assert_eq!(m["bytes_received"], m["bytes_sent"]);
    assert_eq!(m["ok"], true);
    // The run time is the union of two intervals one after the other: their sum.
    let seconds = |v: &serde_json::Value| v["seconds"].as_f64().expect("seconds");
    let sum = seconds(&parsed[0]) + seconds(&parsed[1]);
    assert!((seconds(&m) - sum).abs() < 1e-6, "{} vs {sum}: {out}", seconds(&m));
    // The text report says what it added up.
    let (o, _) = stress(&["merge", &files[0], &files[1]]);
    let report = text(&o.stdout);
    assert!(o.status.success(), "{}", all_output(&o));
    assert!(report.contains("merged:      2 runs"), "{report}");
    assert!(report.contains("connections: 8 ok, 0 failed"), "{report}");
    assert!(report.contains("the runs differ in message size"), "{report}");
}

#[test]
fn merge_of_a_failed_run_fails_with_exit_1() {
    let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let (o, _) = stress(&[&format!("127.0.0.1:{port}"), "-c", "2", "-n", "1", "--json"]);
    assert_eq!(o.status.code(), Some(1), "{}", all_output(&o));
    let failed = scratch_file("merge_failed.json", &o.stdout);
    let (o, _) = stress(&["merge", &failed, &failed]);
    let out = all_output(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(text(&o.stdout).contains("connections: 0 ok, 4 failed"), "{out}");
    assert!(out.contains("merge_failed.json: 2 × connect failed: ECONNREFUSED"), "{out}");
}

#[test]
fn merge_of_bad_input_is_one_line_and_exit_2() {
    let addr = progjar_server().to_string();
    let (o, _) = stress(&[&addr, "-c", "1", "-n", "1", "--json"]);
    assert!(o.status.success(), "{}", all_output(&o));
    let mut v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON");
    let good = scratch_file("merge_good.json", &o.stdout);
    v["latency_us"].as_object_mut().expect("object").remove("histogram");
    let no_histogram = scratch_file("merge_no_histogram.json", v.to_string().as_bytes());
    let not_json = scratch_file("merge_not_json.json", b"connections: 1 ok\n");
    let not_summary = scratch_file("merge_not_summary.json", b"{\"ok\": true}");
    let missing = format!("{}/merge_missing.json", env!("CARGO_TARGET_TMPDIR"));
    for (file, words) in [
        (&missing, "merge_missing.json: cannot read it: No such file"),
        (&not_json, "merge_not_json.json: not a progjar-stress --json summary"),
        (&not_summary, "merge_not_summary.json: not a progjar-stress --json summary"),
        (&no_histogram, "merge_no_histogram.json: latency_us: it has no histogram"),
    ] {
        let (o, _) = stress(&["merge", &good, file]);
        let err = text(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{file}: {}", all_output(&o));
        assert_eq!(err.trim().lines().count(), 1, "{file}: {err}");
        assert!(err.contains(words), "{file}: {err}");
        assert!(o.stdout.is_empty(), "{file}");
    }
    let (o, _) = stress(&["merge"]);
    assert_eq!(o.status.code(), Some(2), "{}", all_output(&o));
}

/// `progjar-stress ARGS` with its address space limited to 64 MiB, as a
/// container would limit it: an allocation past that fails and aborts the
/// program instead of taking the shared machine's memory, so a test shows
/// that an input cannot make the tool allocate what the input claims.
fn stress_in_64_mib(args: &[&str]) -> (std::process::Output, Duration) {
    stress_with(
        Command::new("sh")
            .arg("-c")
            .arg("ulimit -v 65536 && exec \"$0\" \"$@\"")
            .arg(env!("CARGO_BIN_EXE_progjar-stress"))
            .args(args),
    )
}

/// The `--json` summary of a short timed run (two timeline points).
fn one_run() -> serde_json::Value {
    let addr = progjar_server().to_string();
    let (o, _) = stress(&[&addr, "-c", "2", "-d", "1.2", "--json"]);
    assert!(o.status.success(), "{}", all_output(&o));
    serde_json::from_slice(&o.stdout).expect("JSON")
}

/// `merge` of `a` and `b` (written to scratch files named after `test`) in
/// 64 MiB; its output.
fn merge_in_64_mib(
    test: &str,
    a: &serde_json::Value,
    b: &serde_json::Value,
) -> std::process::Output {
    let a = scratch_file(&format!("{test}_a.json"), a.to_string().as_bytes());
    let b = scratch_file(&format!("{test}_b.json"), b.to_string().as_bytes());
    stress_in_64_mib(&["merge", "--json", &a, &b]).0
}

/// Issue 15, point 7: the merged timeline of two runs a year apart kept a
/// point per second of the year between them (11.7 GB).
#[test]
fn merge_of_runs_a_year_apart_keeps_only_their_own_seconds() {
    let a = one_run();
    let mut b = a.clone();
    b["ended_unix"] = (a["ended_unix"].as_f64().expect("ended_unix") + 365.0 * 86_400.0).into();
    let o = merge_in_64_mib("year_apart", &a, &b);
    let out = all_output(&o);
    assert!(o.status.success(), "{out}");
    let m: serde_json::Value = serde_json::from_slice(&o.stdout).expect("merged JSON");
    let points =
        |v: &serde_json::Value| v["timeline"]["seconds"].as_array().expect("seconds").len();
    assert!(points(&m) <= 2 * points(&a), "{out}");
    let end = a["timeline"]["end_at"].as_f64().expect("end_at");
    let merged_end = m["timeline"]["end_at"].as_f64().expect("end_at");
    assert!((merged_end - 2.0 * end).abs() < 1e-6, "{merged_end} vs 2 × {end}: {out}");
    assert!(m["notes"].to_string().contains("cut out of the timeline"), "{out}");
}

/// Issue 15, point 7: a time no run can have is refused with one line and
/// exit 2 (a timeline point at 1e9 s made merge ask for 104 GB and abort).
#[test]
fn merge_refuses_absurd_times_with_exit_2() {
    let good = one_run();
    for (words, field, value) in [
        ("timeline has a second at 1000000000 s", "/timeline/seconds/0/at", 1e9),
        ("timeline.end_at is 1000000000 s", "/timeline/end_at", 1e9),
        ("ended_unix is -5 s", "/ended_unix", -5.0),
    ] {
        let mut bad = good.clone();
        *bad.pointer_mut(field).expect(field) = value.into();
        let o = merge_in_64_mib("absurd_time", &good, &bad);
        let err = text(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{words}: {}", all_output(&o));
        assert_eq!(err.trim().lines().count(), 1, "{words}: {err}");
        assert!(err.contains("absurd_time_b.json: ") && err.contains(words), "{words}: {err}");
    }
}

/// `v`'s message histogram with its V2 header's payload length set to `len`:
/// a small file that claims a huge histogram.
fn claim_payload(v: &mut serde_json::Value, len: u32) {
    use base64::Engine as _;
    use std::io::Write as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let text = v["latency_us"]["histogram"].as_str().expect("a histogram");
    let bytes = b64.decode(text).expect("base64");
    let mut v2 = Vec::new();
    flate2::read::ZlibDecoder::new(&bytes[8..]).read_to_end(&mut v2).expect("inflate");
    v2[4..8].copy_from_slice(&len.to_be_bytes());
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    z.write_all(&v2).expect("deflate");
    let compressed = z.finish().expect("deflate");
    let mut out = bytes[..4].to_vec();
    out.extend((compressed.len() as u32).to_be_bytes());
    out.extend(compressed);
    v["latency_us"]["histogram"] = b64.encode(out).into();
}

/// Issue 15, point 8: a 1.8 KB summary whose histogram claims a 2 GiB payload
/// made merge allocate it before refusing; now it is refused in 64 MiB.
#[test]
fn merge_refuses_a_histogram_that_claims_more_than_it_holds() {
    let good = one_run();
    let mut bad = good.clone();
    claim_payload(&mut bad, i32::MAX as u32);
    let o = merge_in_64_mib("huge_claim", &good, &bad);
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{}", all_output(&o));
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains("huge_claim_b.json: latency_us: its histogram's header claims a payload of 2147483647 bytes"),
        "{err}"
    );
}

/// Issue 15, point 8: counts whose sum passes 64 bits are refused, not wrapped
/// (nor a panic).
#[test]
fn merge_refuses_counts_that_overflow() {
    let mut max = one_run();
    for key in ["error_count", "bytes_received"] {
        let mut v = max.clone();
        v[key] = u64::MAX.into();
        let o = merge_in_64_mib("overflow", &v, &v);
        let err = text(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{key}: {}", all_output(&o));
        assert!(
            err.contains(&format!("overflow_b.json: its {key}, added to the runs before it, pass what 64 bits can count")),
            "{key}: {err}"
        );
    }
    max["timeline"]["seconds"][0]["messages"] = u64::MAX.into();
    let o = merge_in_64_mib("overflow_second", &max, &max);
    assert_eq!(o.status.code(), Some(2), "{}", all_output(&o));
    assert!(text(&o.stderr).contains("its timeline's messages at 1 s"), "{}", all_output(&o));
}
