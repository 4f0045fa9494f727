//! `progjar server --record FILE` and `progjar record-page`: a recorded run of a
//! few clients and a slow reader, drawn as a page and opened in headless
//! Chromium; the size limit; bad recordings and bad paths as one clear line.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread;
use std::time::Duration;

use progjar_testkit as common;

/// A fresh directory of this test's own.
fn scratch(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("progjar-record-{}-{tag}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// `progjar record-page IN OUT`, bounded.
fn record_page(input: &Path, output: &Path) -> std::process::Output {
    common::run(common::progjar().arg("record-page").arg(input).arg(output), None)
}

/// The items of a recording's wake-up lines, with the line's index.
fn items(recording: &str) -> Vec<(usize, &str)> {
    let lines = recording.lines().enumerate().skip(1).filter(|(_, l)| !l.starts_with('#'));
    lines.flat_map(|(i, l)| l.split(' ').skip(1).map(move |item| (i, item))).collect()
}

/// A turn item `t3:read:written:owed:interest` (or `g3:...`) as its key, owed and interest.
fn turn(item: &str) -> Option<(usize, u64, &str)> {
    let rest = item.strip_prefix('t').or_else(|| item.strip_prefix('g'))?;
    let f: Vec<&str> = rest.split(':').collect();
    Some((f[0].parse().ok()?, f[3].parse().ok()?, f[4]))
}

/// Enough bytes that the kernel's buffers (the server's send buffer grows up to
/// tcp_wmem's maximum) cannot hide a slow reader: the server must stop reading.
fn slow_reader_mib() -> usize {
    let wmem = fs::read_to_string("/proc/sys/net/ipv4/tcp_wmem").unwrap_or_default();
    let max = wmem.split_whitespace().nth(2).and_then(|m| m.parse::<usize>().ok()).unwrap_or(0);
    (2 * max / common::MIB + 1).max(8)
}

#[test]
fn a_recorded_run_shows_one_loop_serving_clients_and_a_slow_reader_paused() {
    let dir = scratch("run");
    let rec = dir.join("loop.rec");
    let args = ["--max-pending", "64KiB", "--read-size", "16KiB", "--record"];
    let server = common::start_server(&[&args[..], &[rec.to_str().unwrap()]].concat());
    let port = server.port();
    let mib = slow_reader_mib();
    let tool = Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/slow-reader");
    let slow = thread::spawn(move || {
        let mut cmd = Command::new(tool);
        common::run_bounded(cmd.arg(&port).arg(mib.to_string()), None, Duration::from_secs(120))
    });
    server.wait_for_log_count("connection from", 1);
    // Three clients while the slow reader is still being served (it reads for
    // at least 5 ms per 64 KiB, so for over half a second).
    let clients: Vec<_> = (0..3u64)
        .map(|seed| {
            let addr = server.addr;
            thread::spawn(move || {
                let data = common::random_bytes(common::MIB, seed);
                assert_eq!(common::echo_all(common::connect(addr), data.clone()), data);
            })
        })
        .collect();
    for client in clients {
        client.join().expect("client");
    }
    let out = slow.join().expect("slow reader");
    let back = format!("{} bytes back", mib * common::MIB);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), back, "{out:?}");
    server.stop();

    let recording = fs::read_to_string(&rec).expect("the recording");
    assert!(recording.starts_with("progjar-record 1 read_size=16384 max_pending=65536 "));
    let items = items(&recording);
    // Backpressure: the slow reader (key 0, accepted first) owed --max-pending
    // and asked for WRITABLE only; later it asked to read again.
    let paused = items.iter().position(|(_, it)| {
        turn(it).is_some_and(|(key, owed, interest)| key == 0 && owed >= 65536 && interest == "w")
    });
    let paused = paused.unwrap_or_else(|| panic!("no backpressure in {recording}"));
    assert!(items[paused..]
        .iter()
        .any(|(_, it)| turn(it).is_some_and(|(k, _, i)| k == 0 && i.contains('r'))));
    // One thread, many clients: others were served while the slow reader was open.
    let closed = items.iter().position(|(_, it)| *it == "c0").expect("slow reader closed");
    assert!(items[..closed].iter().any(|(_, it)| turn(it).is_some_and(|(k, _, _)| k != 0)));

    let page = dir.join("loop.html");
    let out = record_page(&rec, &page);
    assert!(out.status.success(), "{out:?}");
    let Some(browser) = common::browser::chromium() else { return };
    let loaded = browser.load(&page, &dir.join("loop.png"));
    loaded.assert_sound(common::browser::WINDOW.0);
    let dom = loaded.dom;
    let slow_bytes = common::MIB as u64 * mib as u64;
    for number in
        [progjar::units::grouped(slow_bytes), "1,048,576".to_string(), "4</td>".to_string()]
    {
        assert!(dom.contains(&number), "{number} not on the page");
    }
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn past_the_record_limit_recording_stops_with_a_note_and_a_log_line() {
    let dir = scratch("limit");
    let rec = dir.join("loop.rec");
    let server =
        common::start_server(&["--record-limit", "1KiB", "--record", rec.to_str().unwrap()]);
    // Each client adds about 50 bytes; 100 are far more than 1 KiB.
    for i in 0..100 {
        common::assert_served(server.addr, b"ping");
        if server.log_count("recording stopped") > 0 {
            break;
        }
        assert!(i < 99, "recording never stopped: {:?}", server.log_lines());
    }
    // Served on after the recording stopped.
    common::assert_served(server.addr, b"still served");
    server.wait_for_log("WARN:record:recording stopped: ");
    server.stop();
    let recording = fs::read_to_string(&rec).expect("the recording");
    let note = "# stopped: the recording reached --record-limit (1024 bytes)\n";
    assert!(recording.ends_with(note), "{recording}");
    assert!(recording.len() <= 1024 + note.len(), "{} bytes", recording.len());
    let page = dir.join("loop.html");
    assert!(record_page(&rec, &page).status.success());
    let html = fs::read_to_string(&page).expect("the page");
    assert!(html.contains("the recording reached --record-limit"));
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn a_recording_is_read_back_into_lanes_with_their_bytes_and_pauses() {
    let dir = scratch("by-hand");
    let rec = dir.join("hand.rec");
    // Client 2 owes 70000 B (over --max-pending): reading stops for 100 µs.
    let text = "progjar-record 1 read_size=16384 max_pending=65536 limit=1048576\n\
                1000 eL:r o0 o1\n\
                1100 e0:r e1:r t0:100:100:0:r t1:70000:0:70000:w\n\
                1200 e1:w t1:0:70000:0:r +2\n\
                # dropped 3 lines: the disk was not keeping up\n\
                1300 e0:rR e1:r t0:0:0:0:r c0 t1:16384:16384:0:r g1:0:0:0:r\n\
                1400 eS:r\n";
    fs::write(&rec, text).unwrap();
    let page = dir.join("hand.html");
    let out = record_page(&rec, &page);
    assert!(out.status.success(), "{out:?}");
    let html = fs::read_to_string(&page).unwrap();
    let rows: Vec<&str> = html.split("<tr>").filter(|r| r.starts_with("<td>client ")).collect();
    assert_eq!(rows.len(), 2, "{html}");
    let cells = |row: &str| -> Vec<String> {
        row.split("<td>").skip(1).map(|c| c.split('<').next().unwrap().to_string()).collect()
    };
    // client, token, opened, closed, turns, read, written, most owed, paused, longest pause
    let expected = ["client 1", "0", "0.0", "0.3", "2", "100", "100", "0", "0 times", "0.0"];
    assert_eq!(cells(rows[0]), expected);
    let expected =
        ["client 2", "1", "0.0", "open", "4", "86,384", "86,384", "70,000", "1 times", "0.1"];
    assert_eq!(cells(rows[1]), expected);
    assert!(html.contains("2 items were left out"), "{html}");
    assert!(html.contains("dropped 3 lines: the disk was not keeping up"), "{html}");
    // Huge numbers add up without overflow; a page into a missing directory is one line.
    let header = text.lines().next().unwrap();
    let huge = format!("{header}\n2000 t0:{m}:{m}:0:r t0:{m}:1:0:r\n", m = u64::MAX);
    fs::write(&rec, huge).unwrap();
    assert!(record_page(&rec, &page).status.success());
    let out = record_page(&rec, &dir.join("no-such-dir/x.html"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.starts_with("progjar: error: cannot write ") && stderr.lines().count() == 1);
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn a_cut_short_or_corrupt_recording_is_one_clear_line_and_exit_2() {
    let dir = scratch("corrupt");
    let header = "progjar-record 1 read_size=16384 max_pending=65536 limit=1024\n";
    let cases: [(&str, Vec<u8>, &str); 7] = [
        ("empty", vec![], "empty file: not a progjar recording"),
        ("other", b"hello\n".to_vec(), "line 1: not a progjar recording"),
        ("cut", format!("{header}12 eL:r o0\n15 e0:r t0:4").into(), "line 3 is cut short"),
        ("item", format!("{header}12 eL:r zz\n").into(), "line 2: unknown item \"zz\""),
        ("time", format!("{header}x eL:r\n").into(), "line 2: the time \"x\" is not a number"),
        ("turn", format!("{header}12 t0:1:2\n").into(), "line 2: turn \"0:1:2\" does not have 5"),
        ("binary", vec![0xff, 0xfe, b'\n'], "not a progjar recording (not text"),
    ];
    for (name, bytes, expected) in cases {
        let input = dir.join(name);
        fs::write(&input, bytes).unwrap();
        let output = dir.join(format!("{name}.html"));
        let out = record_page(&input, &output);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{name}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{name}: {stderr}");
        assert!(stderr.starts_with("progjar: error: ") && stderr.contains(expected), "{stderr}");
        assert!(!output.exists(), "{name}: a page was written");
    }
    let missing = record_page(&dir.join("nothing-here"), &dir.join("x.html"));
    assert_eq!(missing.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(stderr.contains("cannot read ") && stderr.lines().count() == 1, "{stderr}");
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn recording_into_a_missing_directory_fails_at_start_with_one_line() {
    let rec =
        std::env::temp_dir().join(format!("progjar-no-such-dir-{}/loop.rec", std::process::id()));
    let mut cmd = common::progjar();
    cmd.args(["server", "--bind", "127.0.0.1", "--port", "0", "--record"]).arg(&rec);
    let out = common::run(&mut cmd, None);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("listening on"));
    let errors: Vec<&str> = stderr.lines().filter(|l| l.contains("error")).collect();
    let expected =
        format!("progjar: error: cannot record to {}: No such file or directory", rec.display());
    assert!(errors.len() == 1 && errors[0].starts_with(&expected), "{stderr}");
}
