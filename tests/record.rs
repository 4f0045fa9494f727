//! `progjar server --record FILE` and `progjar record-page`: a recorded run of a
//! few clients and a slow reader, drawn as a page and opened in headless
//! Chromium; the size limit; a full disk, a file size limit and a FIFO nobody
//! reads; a recording cut mid-line, one of 100,000 connections and one with an
//! idle tail; bad recordings and bad paths as one clear line.

use std::fs;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc;
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
    server.wait_for_log("WARN:recording:recording stopped: ");
    server.stop();
    let recording = fs::read_to_string(&rec).expect("the recording");
    let note = "# stopped: the recording reached --record-limit (1,024 bytes)\n";
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
fn a_corrupt_recording_or_one_with_no_whole_wake_up_is_one_clear_line_and_exit_2() {
    let dir = scratch("corrupt");
    let header = "progjar-record 1 read_size=16384 max_pending=65536 limit=1024\n";
    let endless = format!("{header}12 eL:r {}\n", "e0:r ".repeat(300_000));
    let cases: [(&str, Vec<u8>, &str); 10] = [
        ("empty", vec![], "empty file: not a progjar recording"),
        ("other", b"hello\n".to_vec(), "line 1: not a progjar recording"),
        ("cut-header", b"progjar-record 1 read_s".to_vec(), "line 1 is cut short"),
        ("cut-first", format!("{header}12 eL:r o").into(), "line 2 is cut short"),
        ("header-only", header.into(), "no wake-up line after the header"),
        ("item", format!("{header}12 eL:r zz\n").into(), "line 2: unknown item \"zz\""),
        ("time", format!("{header}x eL:r\n").into(), "line 2: the time \"x\" is not a number"),
        ("turn", format!("{header}12 t0:1:2\n").into(), "line 2: turn \"0:1:2\" does not have 5"),
        ("binary", vec![0xff, 0xfe, b'\n'], "line 1: not a progjar recording"),
        ("endless", endless.into(), "line 2 is longer than any recording's lines"),
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

/// The server killed, or its disk full, in the middle of a line: every whole
/// line is drawn, and the page and the log say where the file was cut.
#[test]
fn a_recording_cut_mid_line_is_drawn_up_to_the_cut_with_a_note() {
    let dir = scratch("cut");
    let rec = dir.join("cut.rec");
    let whole = "progjar-record 1 read_size=16384 max_pending=65536 limit=1048576\n\
                 1000 eL:r o0\n\
                 1100 e0:r t0:100:100:0:r\n";
    fs::write(&rec, format!("{whole}1200 e0:r t0:5")).unwrap();
    let page = dir.join("cut.html");
    let out = record_page(&rec, &page);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let cut = format!("cut short: line 4 (from byte {}) has no newline at its end", whole.len());
    let warning = format!("WARN:recording:{}: {cut}", rec.display());
    assert!(stderr.lines().count() == 1 && stderr.starts_with(&warning), "{stderr}");
    let html = fs::read_to_string(&page).unwrap();
    assert!(html.contains(&format!("The recording is {cut}")), "{html}");
    // The whole lines are all there: client 1's 100 bytes each way, still open.
    let row = "<tr><td>client 1</td><td>0</td><td>0.0</td><td>open</td><td>1</td><td>100</td>\
               <td>100</td>";
    assert!(html.contains(row), "{html}");
    let _ = fs::remove_dir_all(&dir);
}

/// A recording of 100,000 connections makes a page of the busiest: 16 lanes,
/// 100 rows and one line for the rest, whichever came last.
#[test]
fn a_recording_of_many_connections_draws_the_busiest_and_counts_the_rest() {
    let dir = scratch("many");
    let rec = dir.join("many.rec");
    let mut text = String::from("progjar-record 1 read_size=16384 max_pending=65536 limit=0\n");
    const N: u64 = 100_000;
    for i in 0..N {
        // The last connection moves the most bytes; each other moves 10 each way.
        let bytes = if i == N - 1 { 1_000_000 } else { 10 };
        let at = 1000 + i * 10;
        text += &format!("{at} eL:r o7\n{} e7:rR t7:{bytes}:{bytes}:0:r c7\n", at + 5);
    }
    fs::write(&rec, text).unwrap();
    let page = dir.join("many.html");
    let out = record_page(&rec, &page);
    assert!(out.status.success(), "{out:?}");
    let html = fs::read_to_string(&page).unwrap();
    let rows = html.split("<tr><td>client ").count() - 1;
    assert_eq!(rows, 100, "table rows");
    let lanes = html.matches(" (token 7)</text>").count();
    assert_eq!(lanes, 2 * 16, "lanes, in the two pictures");
    assert!(html.contains("client 100,000 (token 7)</text>"), "the busiest is drawn");
    let rest = "... and 99,900 more connections, not listed</td><td>999,000</td><td>999,000</td>";
    assert!(html.contains(rest), "no rest line");
    assert!(html.contains("<td>100,000</td><td>1,999,990 B</td>"), "totals of all 100,000");
    let _ = fs::remove_dir_all(&dir);
}

/// The minute the loop waited for Ctrl-C after the last client left is not
/// drawn: the time axis ends at the last event, and the page says so.
#[test]
fn the_idle_tail_after_the_last_event_is_not_drawn() {
    let dir = scratch("tail");
    let rec = dir.join("tail.rec");
    let text = "progjar-record 1 read_size=16384 max_pending=65536 limit=1048576\n\
                1000 eL:r o0\n\
                2000 e0:r t0:46:46:0:r\n\
                3000 e0:rR t0:0:0:0:r c0\n\
                60003000 eS:r\n";
    fs::write(&rec, text).unwrap();
    let page = dir.join("tail.html");
    assert!(record_page(&rec, &page).status.success());
    let html = fs::read_to_string(&page).unwrap();
    let said = "After the last event, at 2.0 ms, the loop only waited until the recording ended \
                at 60002.0 ms";
    assert!(html.contains(said), "{html}");
    // The first picture's axis: ticks from 0 to 2 ms.
    let overview = html.split("</svg>").next().unwrap();
    let ticks: Vec<f64> = overview
        .split("text-anchor=\"middle\">")
        .skip(1)
        .filter_map(|t| t.split('<').next()?.parse().ok())
        .collect();
    assert!(!ticks.is_empty() && ticks.iter().all(|&t| t <= 2.0), "{ticks:?}");
    let _ = fs::remove_dir_all(&dir);
}

/// Clients one after another until the log has `needle` (bounded by [`common::STEP`]).
fn serve_until_logged(server: &common::Server, needle: &str) {
    let deadline = std::time::Instant::now() + common::STEP;
    while server.log_count(needle) == 0 {
        assert!(std::time::Instant::now() < deadline, "no {needle:?}: {:?}", server.log_lines());
        common::assert_served(server.addr, b"ping");
    }
}

/// A full disk (here /dev/full) is not the size limit: the log says which,
/// and the server serves on without a word about --record-limit, even past it.
#[test]
fn a_full_disk_stops_the_recording_with_its_own_words() {
    let args = ["--read-size", "16", "--record-limit", "1MiB", "--record", "/dev/full"];
    let server = common::start_server(&args);
    let stopped =
        "WARN:recording:recording stopped: cannot write /dev/full: No space left on device";
    // Each client is about 60 bytes of recording, and the first batch goes to
    // the writer within about 100 ms: far below the limit.
    serve_until_logged(&server, stopped);
    // Far past the limit: 16 clients × 1 MiB in turns of 16 reads of 16 bytes
    // are 4,096 turns each, a line of the recording (about 30 bytes) each.
    for seed in 0..16 {
        let data = common::random_bytes(common::MIB, seed);
        assert!(common::echo_all(common::connect(server.addr), data.clone()) == data);
    }
    let lines = server.log_lines();
    server.stop();
    assert_eq!(lines.iter().filter(|l| l.contains("recording stopped")).count(), 1, "{lines:?}");
    assert!(!lines.iter().any(|l| l.contains("--record-limit")), "{lines:?}");
}

/// A write that fails on a regular file (here the file size limit) leaves
/// whole lines and a last note that says why: record-page draws it as it is.
#[test]
fn a_failed_write_leaves_whole_lines_and_a_note_saying_why() {
    let dir = scratch("fsize");
    let rec = dir.join("loop.rec");
    const LIMIT: u64 = 8192;
    let mut cmd = common::server_command(&["--record", rec.to_str().unwrap()]);
    // SAFETY: setrlimit and signal are async-signal-safe; nothing else runs here.
    unsafe {
        cmd.pre_exec(|| {
            let limit = libc::rlimit { rlim_cur: LIMIT, rlim_max: LIMIT };
            libc::setrlimit(libc::RLIMIT_FSIZE, &limit);
            // Ignored, SIGXFSZ makes the write fail with EFBIG instead of killing.
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            Ok(())
        });
    }
    let server = common::start_server_with(&mut cmd);
    serve_until_logged(&server, "recording stopped: cannot write ");
    common::assert_served(server.addr, b"served on");
    let lines = server.log_lines();
    server.stop();
    assert!(!lines.iter().any(|l| l.contains("--record-limit")), "{lines:?}");
    let recording = fs::read_to_string(&rec).expect("the recording");
    assert!(recording.len() as u64 <= LIMIT, "{} bytes", recording.len());
    let note = "# stopped: cannot write the recording: File too large (os error 27)\n";
    assert!(recording.ends_with(note), "{recording}");
    let page = dir.join("loop.html");
    let out = record_page(&rec, &page);
    assert!(out.status.success() && out.stderr.is_empty(), "{out:?}");
    let html = fs::read_to_string(&page).unwrap();
    assert!(html.contains("Note in the recording: stopped: cannot write the recording"));
    let _ = fs::remove_dir_all(&dir);
}

/// `--record FIFO` with nobody reading: the server starts at once with a
/// warning, serves, and the recording flows, header first, once a reader comes.
#[test]
fn a_fifo_nobody_reads_yet_neither_hangs_the_start_nor_loses_the_header() {
    let dir = scratch("fifo");
    let fifo = dir.join("loop.fifo");
    let path = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: a valid C string; mkfifo only creates a file.
    assert_eq!(unsafe { libc::mkfifo(path.as_ptr(), 0o600) }, 0, "mkfifo");
    let server = common::start_server(&["--record", fifo.to_str().unwrap()]);
    server.wait_for_log("WARN:recording:nothing reads the FIFO ");
    common::assert_served(server.addr, b"before the reader");
    let (opened, read) = (mpsc::channel(), mpsc::channel());
    let reader = fifo.clone();
    thread::spawn(move || {
        let mut file = fs::File::open(reader).expect("open the FIFO");
        let _ = opened.0.send(());
        let mut all = Vec::new();
        let _ = file.read_to_end(&mut all);
        let _ = read.0.send(all);
    });
    opened.1.recv_timeout(common::STEP).expect("the server never opened the FIFO");
    common::assert_served(server.addr, b"after the reader");
    server.stop();
    let all = read.1.recv_timeout(common::STEP).expect("the recording through the FIFO");
    let text = String::from_utf8(all).expect("text");
    assert!(text.starts_with("progjar-record 1 ") && text.ends_with('\n'), "{text}");
    assert_eq!(items(&text).iter().filter(|(_, it)| it.starts_with('o')).count(), 2, "{text}");
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
