//! The lab in a box (`tools/lab/lab`): the course's three machines in network
//! namespaces, with tasks 4 and 5 replayed under tcpdump, and the page it draws.
//!
//! The lab's tests need root, `ip netns` and tcpdump (CI runs as root and `make test`
//! installs tcpdump), and the page's also Chromium. Anywhere else they print why and
//! pass without doing anything. The test of `report.py` on bad captures needs python3 only.
//! Each test builds its own lab (`LAB_TAG`: namespaces `pj<tag>-mesinN`, bridge
//! `pjlab-<tag>`), so two runs cannot collide, and a guard takes it down whatever
//! happens. No test sends a packet from the host's own namespace: every lab packet
//! comes from a process the script starts with `ip netns exec`.

use progjar_testkit as common;

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::lab::{self, Lab};
use common::skip_unless_lab;

/// The longest a whole `lab task4` may take (it usually takes a few seconds).
const RUN_LIMIT: Duration = Duration::from_secs(240);

/// Why the lab cannot be built here, if it cannot.
fn cannot_run() -> Option<String> {
    lab::cannot_run(&[
        ("ip", "-V"),
        ("tcpdump", "--version"),
        ("unshare", "--version"),
        ("ss", "-V"),
    ])
}

/// This test's lab `suffix`, run by `tools/lab/lab`.
fn new_lab(suffix: char) -> Lab {
    Lab::new("lab", "", suffix)
}

/// One TCP segment of `tcpdump -r FILE -nn -tt -S`.
#[derive(Debug, Clone)]
struct Segment {
    time: f64,
    src: String,
    dst: String,
    flags: String,
    seq: Option<(u64, u64)>,
}

impl Segment {
    fn parse(line: &str) -> Option<Segment> {
        let mut words = line.split_whitespace();
        let time = words.next()?.parse().ok()?;
        if !matches!(words.next()?, "IP" | "IP6") {
            return None;
        }
        let src = words.next()?.to_string();
        if words.next()? != ">" {
            return None;
        }
        let dst = words.next()?.trim_end_matches(':').to_string();
        let rest: Vec<&str> = words.collect();
        if rest.first() != Some(&"Flags") {
            return None;
        }
        let flags = rest.get(1)?.trim_matches(|c| c == '[' || c == ']' || c == ',').to_string();
        let seq = rest.iter().position(|w| *w == "seq").and_then(|i| {
            let range = rest.get(i + 1)?.trim_end_matches(',');
            let (a, b) = range.split_once(':').unwrap_or((range, range));
            Some((a.parse().ok()?, b.parse().ok()?))
        });
        Some(Segment { time, src, dst, flags, seq })
    }

    fn syn(&self) -> bool {
        self.flags.contains('S')
    }

    fn ack(&self) -> bool {
        self.flags.contains('.')
    }

    fn closes(&self) -> bool {
        self.flags.contains('F') || self.flags.contains('R')
    }
}

fn read_capture(path: &Path) -> Vec<Segment> {
    let mut cmd = Command::new("tcpdump");
    cmd.arg("-r").arg(path).args(["-nn", "-tt", "-S"]);
    let out = common::run(&mut cmd, None);
    assert!(
        out.status.success(),
        "tcpdump -r {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).lines().filter_map(Segment::parse).collect()
}

/// One client's connection to the server, as the capture saw it.
#[derive(Debug, Default)]
struct Connection {
    segments: Vec<Segment>,
}

impl Connection {
    /// When the client's ACK of the server's SYN-ACK went by: the handshake is complete.
    fn established(&self, client: &str) -> Option<f64> {
        let synack = self.segments.iter().position(|s| s.src != client && s.syn() && s.ack())?;
        self.segments[synack..]
            .iter()
            .find(|s| s.src == client && s.ack() && !s.syn())
            .map(|s| s.time)
    }

    fn first_close(&self) -> Option<f64> {
        self.segments.iter().find(|s| s.closes()).map(|s| s.time)
    }

    /// Payload bytes one side sent: the span of its sequence numbers after its SYN.
    fn bytes_from(&self, side: &str) -> u64 {
        let mine = || self.segments.iter().filter(|s| s.src == side);
        let Some(isn) = mine().find(|s| s.syn()).and_then(|s| s.seq).map(|(a, _)| a) else {
            return 0;
        };
        // The SYN takes sequence number isn; data runs from isn + 1 to the highest
        // end of a `seq A:B` range (a FIN shows `seq B`, where the data ended).
        let high = mine().filter_map(|s| s.seq).map(|(_, b)| b).max().unwrap_or(isn);
        high.saturating_sub(isn + 1)
    }

    fn resets(&self) -> usize {
        self.segments.iter().filter(|s| s.flags.contains('R')).count()
    }
}

const SERVER: &str = "172.16.16.101.32444";

#[test]
fn task4_two_clients_overlap_in_the_capture_and_the_lab_is_gone_after() {
    skip_unless_lab!();
    let lab = new_lab('a');
    let (code, out) = lab.run(&["task4"], &[], RUN_LIMIT);
    assert_eq!(code, Some(0), "lab task4 failed:\n{out}");
    assert!(out.contains("ok: mesin2 client: echo verified"), "mesin2's echo not verified:\n{out}");
    assert!(out.contains("ok: mesin3 client: echo verified"), "mesin3's echo not verified:\n{out}");
    assert!(out.contains("=> overlap:") || !has_python(), "the ladder shows no overlap:\n{out}");

    // The script took its lab down by itself, before the guard's `down`.
    let left = lab.leftovers();
    assert!(left.is_empty(), "left behind after lab task4: {left:?}\n{out}");

    // From the capture of the bridge: each client's connection to mesin1:32444.
    let capture = lab.dir.join("task4.pcap");
    let segments = read_capture(&capture);
    let mut conns: BTreeMap<String, Connection> = BTreeMap::new();
    for s in segments {
        if s.dst == SERVER {
            conns.entry(s.src.clone()).or_default().segments.push(s);
        } else if s.src == SERVER {
            conns.entry(s.dst.clone()).or_default().segments.push(s);
        }
    }
    let clients: Vec<&String> = conns.keys().collect();
    assert_eq!(clients.len(), 2, "expected two connections to {SERVER}, saw {clients:?}\n{out}");
    assert!(
        clients.iter().any(|c| c.starts_with("172.16.16.102.")),
        "no connection from mesin2: {clients:?}"
    );
    assert!(
        clients.iter().any(|c| c.starts_with("172.16.16.103.")),
        "no connection from mesin3: {clients:?}"
    );

    let mut established = Vec::new();
    let mut closes = Vec::new();
    for (client, conn) in &conns {
        let est = conn.established(client);
        let est = est
            .unwrap_or_else(|| panic!("{client}: no complete handshake in the capture: {conn:?}"));
        let close =
            conn.first_close().unwrap_or_else(|| panic!("{client}: never closed in the capture"));
        assert_eq!(conn.resets(), 0, "{client}: a reset in the capture");
        let sent = conn.bytes_from(client);
        let echoed = conn.bytes_from(SERVER);
        assert!(sent > 0, "{client}: sent no data");
        assert_eq!(sent, echoed, "{client}: the capture shows {sent} B sent but {echoed} B echoed");
        established.push(est);
        closes.push(close);
    }
    let last_handshake = established.iter().copied().fold(f64::MIN, f64::max);
    let first_close = closes.iter().copied().fold(f64::MAX, f64::min);
    assert!(
        last_handshake < first_close,
        "the connections did not overlap: last handshake at {last_handshake}, first close at {first_close}\n{out}"
    );
}

/// Task 5, the man in the middle: `progjar proxy` on mesin3 between mesin2's client and the
/// server on mesin1, four runs. Plaintext: the message in the proxy's log and on both legs of
/// the capture. TLS through the plain relay: the echo verified, none of the message in the
/// log or the capture. Intercepted (`--insecure`): the message in the proxy's log, none on
/// the wire. Refused (`--ca`): exit 9 with the certificate's sentence, the client's leg a
/// handshake it ended with an alert. Each leg's FINs, and the one reset (the refused run's
/// leg to mesin1), read back from the capture.
#[test]
fn task5_the_proxy_reads_plaintext_relays_tls_intercepts_and_is_refused() {
    skip_unless_lab!();
    let lab = new_lab('e');
    let (code, out) = lab.run(&["task5"], &[], RUN_LIMIT);
    assert_eq!(code, Some(0), "lab task5 failed:\n{out}");
    for ok in [
        "ok: echo verified through the proxy",
        "ok: TLS echo verified through the proxy",
        "ok: TLS echo verified through the intercepting proxy",
        "ok: the client refused the proxy's certificate (exit 9): the server's certificate is not \
         signed by",
        "ok: the proxy's log says the client refused its certificate",
    ] {
        assert!(out.contains(ok), "no {ok:?}:\n{out}");
    }
    assert_eq!(out.matches("ok: the proxy's log shows the message both ways").count(), 2, "{out}");
    assert_eq!(out.matches("ok: the proxy's log shows none of the message").count(), 2, "{out}");
    if has_python() {
        for verdict in [
            "task 5, plaintext: both legs carried 'INI ADALAH",
            "task 5, TLS: both legs carried only TLS records",
            "task 5, intercepted: both legs carried only TLS records",
            "task 5, refused: the client ended the TLS handshake with an alert",
        ] {
            assert!(out.contains(verdict), "the ladder does not say {verdict:?}:\n{out}");
        }
    }
    assert!(lab.leftovers().is_empty(), "left behind after lab task5:\n{out}");
    let log = |name: &str| {
        let path = lab.dir.join("logs").join(name);
        fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    };
    let message = "INI ADALAH DATA YANG DIKIRIM ABCDEFGHIJKLMNOPQ";
    for (proxy, reads) in [("task5", true), ("task5t", false), ("task5i", true), ("task5r", false)]
    {
        let text = log(&format!("{proxy}-proxy.log"));
        let line = format!("INFO:proxy:received data from client b'{message}'");
        assert_eq!(text.contains(&line), reads, "{proxy}'s proxy log:\n{text}");
        assert_eq!(text.contains("INI ADALAH"), reads, "{proxy}'s proxy log:\n{text}");
    }
    // A TLS record (Python's quotes: b"..." when the hello's random bytes hold a ').
    let relayed = log("task5t-proxy.log");
    let hello = ["client b'\\x16\\x03", "client b\"\\x16\\x03"];
    assert!(hello.iter().any(|h| relayed.contains(h)), "{relayed}");
    assert!(log("task5i-proxy.log").contains("the client took our certificate"));
    assert!(log("task5r-proxy.log").contains("(it refused our certificate"));
    assert!(log("task5r-client.log").contains("progjar: error: the server's certificate is not"));

    // From the capture: 8 connections, each run's two legs in turn.
    let conns = connections(&read_capture(&lab.dir.join("task5.pcap")));
    assert_eq!(conns.len(), 8, "{conns:#?}\n{out}");
    for (i, (client, server, segments)) in conns.iter().enumerate() {
        let run = ["plaintext", "TLS", "intercepted", "refused"][i / 2];
        let want =
            [("172.16.16.102.", "172.16.16.103.15000"), ("172.16.16.103.", "172.16.16.101.12000")];
        let (from, to) = want[i % 2];
        assert!(client.starts_with(from) && server == to, "{run}: {client} -> {server}");
        let (ip, port) = client.rsplit_once('.').expect("ADDR.PORT");
        let mut cmd = Command::new("tcpdump");
        cmd.arg("-r").arg(lab.dir.join("task5.pcap"));
        cmd.args(["-nn", "-A", &format!("host {ip} and port {port}")]);
        let text = common::stdout(&common::run(&mut cmd, None));
        let seen = text.matches(message).count();
        assert_eq!(seen, if run == "plaintext" { 2 } else { 0 }, "{run}, {client}:\n{text}");
        let fins = segments.iter().filter(|s| s.flags.contains('F')).count();
        let resets = segments.iter().filter(|s| s.flags.contains('R')).count();
        // The refused run's leg to mesin1 is reset by the proxy; every other leg ends with a FIN each way.
        let ends = if run == "refused" && i % 2 == 1 { (0, 1) } else { (2, 0) };
        assert_eq!((fins, resets), ends, "{run}, {client} -> {server}: FINs and resets");
    }
}

/// The TCP connections of a capture in the order they began: (client, server, segments).
fn connections(segments: &[Segment]) -> Vec<(String, String, Vec<Segment>)> {
    let mut conns: Vec<(String, String, Vec<Segment>)> = Vec::new();
    for s in segments {
        let known = conns
            .iter_mut()
            .find(|(c, v, _)| (*c == s.src && *v == s.dst) || (*c == s.dst && *v == s.src));
        match known {
            Some((_, _, list)) => list.push(s.clone()),
            None if s.syn() && !s.ack() => {
                conns.push((s.src.clone(), s.dst.clone(), vec![s.clone()]))
            }
            None => {}
        }
    }
    conns
}

#[test]
fn up_twice_then_down_twice_leaves_nothing() {
    skip_unless_lab!();
    let lab = new_lab('b');
    for round in 1..=2 {
        let (code, out) = lab.run(&["up"], &[], Duration::from_secs(60));
        assert_eq!(code, Some(0), "lab up (round {round}):\n{out}");
    }
    for n in 1..=3 {
        let ns = lab.ns(n);
        let ip = |args: &[&str]| {
            let out = Command::new("ip").arg("-n").arg(&ns).args(args).output().expect("ip");
            String::from_utf8_lossy(&out.stdout).trim().to_string()
        };
        let routes = ip(&["-4", "route", "show"]);
        assert_eq!(
            routes,
            format!("172.16.16.0/24 dev eth1 proto kernel scope link src 172.16.16.10{n}")
        );
        assert_eq!(ip(&["-6", "route", "show", "default"]), "", "{ns}: an IPv6 default route");
        let addrs = ip(&["-o", "addr", "show", "dev", "eth1"]);
        assert!(addrs.contains(&format!("fd16:16:16::10{n}/64")), "{ns}: {addrs}");
        let hosts =
            fs::read_to_string(Path::new("/etc/netns").join(&ns).join("hosts")).expect("hosts");
        assert!(hosts.contains("172.16.16.101\tmesin1"), "{ns}'s hosts: {hosts}");
    }
    // The host's own namespace has no address on the lab's networks, and the bridge none at all.
    let host = Command::new("ip").args(["-o", "addr", "show"]).output().expect("ip addr");
    let host = String::from_utf8_lossy(&host.stdout);
    assert!(
        !host.contains("172.16.16.") && !host.contains("fd16:16:16:"),
        "host addresses: {host}"
    );
    assert!(!host.contains(&lab.bridge()), "the bridge has an address: {host}");

    for round in 1..=2 {
        let (code, out) = lab.run(&["down"], &[], Duration::from_secs(60));
        assert_eq!(code, Some(0), "lab down (round {round}):\n{out}");
    }
    let left = lab.leftovers();
    assert!(left.is_empty(), "left behind after lab down: {left:?}");
}

#[test]
fn up_that_fails_half_way_takes_down_what_it_made() {
    skip_unless_lab!();
    let lab = new_lab('c');
    let (code, out) = lab.run(&["up"], &[("LAB_TEST_FAIL_AT", "mesin2")], Duration::from_secs(60));
    assert_ne!(code, Some(0), "lab up should have failed:\n{out}");
    assert!(out.contains("on purpose"), "{out}");
    let left = lab.leftovers();
    assert!(left.is_empty(), "left behind after a failed up: {left:?}\n{out}");
}

fn has_python() -> bool {
    lab::works("python3", "--version")
}

// ------------------------------------------------------------------ the page

/// The lab's page, `report.html`, written by `lab replay`, as a browser shows it: every
/// connection's ladder, task 1's DNS query, and task 4 against both servers.
#[test]
fn replay_writes_a_page_that_chromium_shows_with_every_connection() {
    skip_unless_lab!();
    let Some(browser) = common::browser::chromium() else { return };
    let lab = new_lab('d');
    let (code, out) = lab.run(&["replay"], &[], RUN_LIMIT);
    assert_eq!(code, Some(0), "lab replay failed:\n{out}");
    let page = lab.dir.join("report.html");
    assert!(page.is_file(), "no {}:\n{out}", page.display());

    let loaded = browser.load(&page, &lab.dir.join("report.png"));
    loaded.assert_sound(common::browser::WINDOW.0);
    let dom = loaded.dom;
    for want in [
        "PSH-ACK 46 B",                  // task 2's message, in one segment
        "DNS query A? www.espnfc.com",   // task 1's lookup on mesin1's lo
        "RST-ACK",                       // task 2's refused localhost attempt
        "served at once",                // task 4 with progjar server
        "served one after the other",    // task 4 with the course's server
        "time since the first SYN (ms)", // the timelines' axis
        "mesin2 to the relay on mesin3", // task 5's two legs, side by side
        "mesin3 to the real server",
        "46 B, as text: 'INI ADALAH DATA YANG DIKIRIM ABCDEFGHIJKLMNOPQ'", // what they carried
        "Task 5, TLS", // the three TLS runs, each its own section
        "Task 5, intercepted",
        "Task 5, refused",
        "encrypted (TLS: ClientHello, ChangeCipherSpec, ", // what the TLS legs carried
        "an encrypted record of 19 B (an alert's size)",   // the refusal
        "only mesin2's check of the certificate could tell",
    ] {
        assert!(dom.contains(want), "the page lacks {want:?}");
    }
    // Every client port that talked to mesin1 on the bridge (tasks 2, 3, 4 and 4i) is on
    // the page: task 4's two clients once against each server.
    let mut ports = Vec::new();
    for s in read_capture(&lab.dir.join("capture.pcap")) {
        if s.dst.starts_with("172.16.16.101.") && s.syn() && !s.ack() {
            ports.push(s.src.rsplit('.').next().unwrap_or_default().to_string());
        }
    }
    assert!(ports.len() >= 6, "expected at least 6 connections to mesin1, saw {ports:?}");
    for port in &ports {
        assert!(dom.contains(&format!(":{port}")), "the page lacks client port {port}");
    }
}

/// A pcap file (Ethernet, IPv4) of task 2's exchange between mesin2:43812 and
/// mesin1:10000: handshake, 46 bytes, their echo, a FIN each way.
fn task2_pcap() -> Vec<u8> {
    // (from the client, TCP flags, seq, ack, payload bytes)
    let segments: [(bool, u8, u32, u32, usize); 10] = [
        (true, 0x02, 1000, 0, 0),
        (false, 0x12, 5000, 1001, 0),
        (true, 0x10, 1001, 5001, 0),
        (true, 0x18, 1001, 5001, 46),
        (false, 0x10, 5001, 1047, 0),
        (false, 0x18, 5001, 1047, 46),
        (true, 0x10, 1047, 5047, 0),
        (true, 0x11, 1047, 5047, 0),
        (false, 0x11, 5047, 1048, 0),
        (true, 0x10, 1048, 5048, 0),
    ];
    let (client, server) = (([172, 16, 16, 102], 43812u16), ([172, 16, 16, 101], 10000u16));
    // Global header: magic (microseconds), version 2.4, zone, sigfigs, snaplen, Ethernet.
    let mut pcap = Vec::new();
    for word in [0xa1b2_c3d4u32, 0x0004_0002, 0, 0, 262_144, 1] {
        pcap.extend_from_slice(&word.to_le_bytes());
    }
    for (i, &(from_client, flags, seq, ack, len)) in segments.iter().enumerate() {
        let ((src, sport), (dst, dport)) =
            if from_client { (client, server) } else { (server, client) };
        let mut frame = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x08, 0x00];
        frame.extend_from_slice(&[0x45, 0]);
        frame.extend_from_slice(&(40 + len as u16).to_be_bytes());
        frame.extend_from_slice(&[0, 1, 0x40, 0, 64, 6, 0, 0]);
        frame.extend_from_slice(&src);
        frame.extend_from_slice(&dst);
        frame.extend_from_slice(&sport.to_be_bytes());
        frame.extend_from_slice(&dport.to_be_bytes());
        frame.extend_from_slice(&seq.to_be_bytes());
        frame.extend_from_slice(&ack.to_be_bytes());
        frame.extend_from_slice(&[0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
        frame.extend(std::iter::repeat_n(b'A', len));
        for word in [1_700_000_000u32, 100 * i as u32, frame.len() as u32, frame.len() as u32] {
            pcap.extend_from_slice(&word.to_le_bytes());
        }
        pcap.extend_from_slice(&frame);
    }
    pcap
}

/// `python3 tools/lab/report.py --out OUT CAPTURE`: (exit code, stderr).
fn render(out: &Path, capture: &Path) -> (Option<i32>, String) {
    let mut cmd = Command::new("python3");
    cmd.arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/lab/report.py"))
        .arg("--out")
        .arg(out)
        .arg(capture);
    let done = common::run_bounded(&mut cmd, None, Duration::from_secs(60));
    (done.status.code(), String::from_utf8_lossy(&done.stderr).into_owned())
}

/// A capture cut short or corrupt, or a page into a directory that does not exist:
/// one line on stderr and exit 2, never a traceback. Needs python3 only (no root).
#[test]
fn report_on_a_cut_short_or_corrupt_capture_is_one_line_and_exit_2() {
    if !has_python() {
        eprintln!("skipping: no python3");
        return;
    }
    let dir = std::env::temp_dir().join(format!("progjar-report-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).expect("temp dir");
    let good = task2_pcap();
    let out = dir.join("report.html");
    let cases: [(&str, Vec<u8>, &str); 4] = [
        ("cut.pcap", good[..good.len() - 10].to_vec(), "is cut short"),
        ("header.pcap", good[..12].to_vec(), "is cut short"),
        ("garbage.pcap", b"this is no capture at all\n".repeat(8), "is not a pcap capture"),
        ("empty.pcap", Vec::new(), "is empty"),
    ];
    for (name, bytes, why) in cases {
        let capture = dir.join(name);
        fs::write(&capture, bytes).expect("write capture");
        let (code, stderr) = render(&out, &capture);
        assert_eq!(code, Some(2), "{name}: exit code; stderr: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{name}: not one line: {stderr}");
        assert!(stderr.contains(name) && stderr.contains(why), "{name}: {stderr}");
        assert!(!out.exists(), "{name}: a page was written anyway");
    }
    let capture = dir.join("good.pcap");
    fs::write(&capture, &good).expect("write capture");
    let (code, stderr) = render(&dir.join("no-such-dir/report.html"), &capture);
    assert_eq!(code, Some(2), "missing directory: stderr: {stderr}");
    assert_eq!(stderr.lines().count(), 1, "not one line: {stderr}");
    assert!(stderr.contains("does not exist"), "{stderr}");

    // The whole capture renders (when tcpdump is here to read it): the ladder's facts.
    if Command::new("tcpdump").arg("--version").output().is_ok_and(|o| o.status.success()) {
        let (code, stderr) = render(&out, &capture);
        assert_eq!(code, Some(0), "the good capture: {stderr}");
        let html = fs::read_to_string(&out).expect("the page");
        for want in
            ["<svg", "PSH-ACK 46 B", "mesin2  :43812", "mesin1  :10000", "FIN-ACK", "seq 1:47"]
        {
            assert!(html.contains(want), "the page lacks {want:?}");
        }
        assert!(!html.contains("<script"), "the page has a script");
    }
    let _ = fs::remove_dir_all(&dir);
}

/// The browser check itself fails where it should: on a console message and on an
/// `<svg>` with nothing drawn (needs Chromium, not root).
#[test]
fn the_browser_check_fails_on_a_console_message_and_on_an_empty_svg() {
    let Some(browser) = common::browser::chromium() else { return };
    let dir = std::env::temp_dir().join(format!("progjar-page-check-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).expect("temp dir");
    let good = "<svg width=\"90\" height=\"30\"><rect width=\"9\" height=\"9\"/><text y=\"20\">46 B</text></svg>";
    let pages = [
        ("good", format!("<!DOCTYPE html><html><body>{good}</body></html>"), true),
        ("console", format!("<body>{good}<script>console.error('boom')</script></body>"), false),
        ("empty-svg", format!("<body>{good}<svg width=\"90\" height=\"30\"></svg></body>"), false),
    ];
    for (name, html, passes) in pages {
        let page = dir.join(format!("{name}.html"));
        fs::write(&page, html).expect("write page");
        let png = dir.join(format!("{name}.png"));
        let checked = std::panic::catch_unwind(|| {
            let loaded = browser.load(&page, &png);
            loaded.assert_sound(common::browser::WINDOW.0);
            loaded.dom
        });
        assert_eq!(
            checked.is_ok(),
            passes,
            "{name}: the check should {}",
            if passes { "pass" } else { "fail" }
        );
        if let Ok(dom) = checked {
            assert!(dom.contains("46 B"), "{name}: the DOM lacks the page's text");
        }
    }
    let _ = fs::remove_dir_all(&dir);
}
