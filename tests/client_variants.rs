//! `progjar client` for the course's assignment variants: the echo written to a
//! file (`--output`), several servers (`HOST:PORT` each, in turn or
//! `--parallel`), a generated message (`--size`), the read size of large
//! payloads, interactive mode under a real pseudo-terminal (tmux), and Ctrl-C.
//!
//! Every wait is bounded: commands run through `common::run` (killed after
//! `common::STEP`), and waits poll for the awaited event with a deadline.

use progjar_testkit as common;

use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{
    client, closed_port, code, one_shot_server, random_bytes, start_server, stderr, stdout,
};

/// A path under cargo's per-test temporary directory.
fn temp_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("variants-{}-{name}", std::process::id()))
}

/// An empty directory of its own under cargo's per-test temporary directory,
/// so that a test can see every file the client left in it.
fn temp_dir(name: &str) -> PathBuf {
    let dir = temp_path(name);
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).expect("create a test directory");
    dir
}

/// The names in `dir`, sorted (hidden ones too: a temporary file is one).
fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .expect("read the test directory")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// `sh -c LINE` with `$0` the progjar binary, in `dir`: for redirections.
fn shell(dir: &Path, line: &str) -> Output {
    let bin = common::progjar_path();
    common::run(
        Command::new("sh").current_dir(dir).args(["-c", line, &bin.to_string_lossy()]),
        None,
    )
}

/// The summary lines minus their time and rate, which vary.
fn without_timing(summary: &str) -> Vec<String> {
    let cut = |l: &str| l.split(", ").take(3).collect::<Vec<_>>().join(", ");
    summary.lines().map(cut).collect()
}

// ---------------------------------------------------------------------------
// --output

#[test]
fn output_file_holds_the_echo_of_a_picture() {
    let server = start_server(&[]);
    let (sent, recv) = (temp_path("sendimage.jpg"), temp_path("recvimage.jpg"));
    let picture = random_bytes(300_000, 7);
    std::fs::write(&sent, &picture).unwrap();
    let target = format!("127.0.0.1:{}", server.port());
    let (s, r) = (sent.to_str().unwrap(), recv.to_str().unwrap());
    let out = client(&[&target, "--file", s, "--output", r], None);
    let echoed = std::fs::read(&recv).unwrap_or_default();
    let _ = (std::fs::remove_file(&sent), std::fs::remove_file(&recv));
    assert_eq!(code(&out), 0, "stderr: {}", stderr(&out));
    assert!(echoed == picture, "recvimage.jpg differs from sendimage.jpg");
    let summary = stdout(&out);
    assert!(summary.starts_with("sent 300,000 bytes, received 300,000 bytes, identical, "));
    assert!(summary.ends_with(&format!("; the echo is in {r}\n")), "{summary}");
}

#[test]
fn output_dash_puts_the_echo_on_stdout_and_the_summary_on_stderr() {
    let server = start_server(&[]);
    let target = format!("127.0.0.1:{}", server.port());
    let out = client(&[&target, "--message", "halo dunia", "--output", "-"], None);
    assert_eq!(code(&out), 0, "stderr: {}", stderr(&out));
    assert_eq!(out.stdout, b"halo dunia");
    let log = stderr(&out);
    assert!(log.contains("\nsent 10 bytes, received 10 bytes, identical, "), "{log}");
}

#[test]
fn output_replaces_an_old_file_through_its_link_and_leaves_nothing_else() {
    let server = start_server(&[]);
    let dir = temp_dir("replace");
    fs::write(dir.join("old.bin"), b"the previous echo").unwrap();
    std::os::unix::fs::symlink("old.bin", dir.join("link")).unwrap();
    let target = format!("127.0.0.1:{}", server.port());
    let out = shell(&dir, &format!("exec \"$0\" client {target} --message halo --output link"));
    assert_eq!(code(&out), 0, "stderr: {}", stderr(&out));
    assert!(stdout(&out).ends_with("; the echo is in link\n"), "{}", stdout(&out));
    assert_eq!(fs::read(dir.join("old.bin")).unwrap(), b"halo", "replaced, as curl -o does");
    assert!(fs::symlink_metadata(dir.join("link")).unwrap().file_type().is_symlink());
    assert_eq!(names_in(&dir), ["link", "old.bin"]);
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn output_that_is_the_file_sent_is_refused_before_anything_is_written() {
    let dir = temp_dir("same");
    let data = random_bytes(100_000, 9);
    fs::write(dir.join("a.bin"), &data).unwrap();
    std::os::unix::fs::symlink("a.bin", dir.join("link")).unwrap();
    fs::hard_link(dir.join("a.bin"), dir.join("hard")).unwrap();
    fs::create_dir(dir.join("sub")).unwrap();
    // A closed port: had the client got as far as connecting, it would exit 3.
    let client = format!("exec \"$0\" client 127.0.0.1:{}", closed_port());
    let sent = "is the file being sent, and writing the echo there would destroy it: \
                choose another name";
    let stdin = "is the file standard input comes from, and writing the echo there would \
                 destroy it: choose another name";
    for (args, said) in [
        ("--file a.bin --output a.bin", format!("--output a.bin {sent}")),
        ("--file a.bin --output link", format!("--output link {sent}")),
        ("--file link --output hard", format!("--output hard {sent}")),
        ("--file a.bin --output sub/../a.bin", format!("--output sub/../a.bin {sent}")),
        ("--file - --output a.bin <a.bin", format!("--output a.bin {stdin}")),
        ("--file hard --output - >>a.bin", format!("standard output {sent}")),
    ] {
        let out = shell(&dir, &format!("{client} {args}"));
        assert_eq!(code(&out), 2, "{args}: {}", stderr(&out));
        assert_eq!(stderr(&out), format!("progjar: error: {said}\n"), "{args}");
        assert!(fs::read(dir.join("a.bin")).unwrap() == data, "{args}: a.bin was changed");
        assert_eq!(names_in(&dir), ["a.bin", "hard", "link", "sub"], "{args}");
    }
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_different_echo_is_kept_apart_and_the_old_file_stays() {
    let dir = temp_dir("differs");
    fs::write(dir.join("out.bin"), b"the previous echo").unwrap();
    let out = shell(&dir, &format!("exec \"$0\" client {} --output out.bin", corrupting_server()));
    assert_eq!(code(&out), 6, "stderr: {}", stderr(&out));
    assert!(
        stdout(&out).ends_with("; out.bin was not written: what came back is in out.bin.partial\n"),
        "{}",
        stdout(&out)
    );
    assert_eq!(fs::read(dir.join("out.bin")).unwrap(), b"the previous echo");
    let kept = fs::read(dir.join("out.bin.partial")).unwrap();
    assert_eq!(kept, b"INI ADALAH DATA YANG DIKIRIM aBCDEFGHIJKLMNOPQ");
    assert_eq!(names_in(&dir), ["out.bin", "out.bin.partial"]);
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn no_connection_writes_no_file() {
    let dir = temp_dir("refused");
    let out =
        shell(&dir, &format!("exec \"$0\" client 127.0.0.1:{} --output out.bin", closed_port()));
    assert_eq!(code(&out), 3, "stderr: {}", stderr(&out));
    assert_eq!(names_in(&dir), Vec::<String>::new());
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn unwritable_output_exits_7_before_connecting() {
    let out = client(
        &[&format!("127.0.0.1:{}", closed_port()), "--output", "/nonexistent-dir/recv.jpg"],
        None,
    );
    assert_eq!(code(&out), 7, "stderr: {}", stderr(&out));
    assert!(stderr(&out).starts_with(
        "progjar: error: cannot write /nonexistent-dir/recv.jpg: No such file or directory"
    ));
}

// ---------------------------------------------------------------------------
// HOST:PORT and several servers

#[test]
fn host_may_carry_its_port() {
    let server = start_server(&[]);
    let out = client(&[&format!("127.0.0.1:{}", server.port()), "--port", "1"], None);
    assert_eq!(code(&out), 0, "stderr: {}", stderr(&out));
    assert!(stdout(&out).starts_with("sent 46 bytes, received 46 bytes, identical, "));
}

#[test]
fn two_servers_in_turn_get_one_summary_line_each() {
    let (one, two) = (start_server(&[]), start_server(&[]));
    let (a, b) = (format!("127.0.0.1:{}", one.port()), format!("127.0.0.1:{}", two.port()));
    let out = client(&[&a, &b, "--size", "100KB"], None);
    assert_eq!(code(&out), 0, "stderr: {}", stderr(&out));
    let lines =
        [a, b].map(|s| format!("{s}: sent 102,400 bytes, received 102,400 bytes, identical"));
    assert_eq!(without_timing(&stdout(&out)), lines);
    one.wait_for_log("connection from");
    two.wait_for_log("connection from");
}

#[test]
fn two_servers_in_parallel_get_one_summary_line_each() {
    let (one, two) = (start_server(&[]), start_server(&[]));
    let (a, b) = (format!("127.0.0.1:{}", one.port()), format!("127.0.0.1:{}", two.port()));
    let out = client(&["--parallel", &a, &b, "--size", "1MB"], None);
    assert_eq!(code(&out), 0, "stderr: {}", stderr(&out));
    let mut got = without_timing(&stdout(&out));
    got.sort();
    let mut lines =
        [a, b].map(|s| format!("{s}: sent 1,048,576 bytes, received 1,048,576 bytes, identical"));
    lines.sort();
    assert_eq!(got, lines);
}

/// A one-connection server that reads to the client's FIN, then echoes it with
/// one byte changed (offset 29), then closes.
fn corrupting_server() -> SocketAddr {
    one_shot_server(|mut got| {
        got[29] ^= 0x20;
        got
    })
}

#[test]
fn several_servers_exit_with_the_highest_status() {
    let server = start_server(&[]);
    let good = format!("127.0.0.1:{}", server.port());
    let refused = format!("127.0.0.1:{}", closed_port());
    let corrupt = corrupting_server().to_string();
    let out = client(&[&refused, &good, &corrupt], None);
    assert_eq!(code(&out), 6, "refused is 3, wrong echo 6: the highest wins");
    assert_eq!(
        without_timing(&stdout(&out)),
        [
            format!("{refused}: nothing sent (exit 3)"),
            format!("{good}: sent 46 bytes, received 46 bytes, identical"),
            format!("{corrupt}: sent 46 bytes, received 46 bytes, different from offset 29"),
        ]
    );
    let log = stderr(&out);
    assert!(log.contains(&format!("progjar: error: {refused}: connection refused by ")), "{log}");
    assert!(log.contains(&format!("progjar: error: {corrupt}: echo differs at offset 29")));
    assert!(log.ends_with(
        "progjar: error: 2 of 3 servers failed; the exit status is the highest of theirs\n"
    ));
}

#[test]
fn standard_input_goes_to_one_server_only() {
    let out = client(&["127.0.0.1:1", "127.0.0.1:2", "--file", "-"], None);
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).starts_with(
        "progjar: standard input can be sent to one server only (it is read once, not kept); \
         save it to a file and use --file"
    ));
}

// ---------------------------------------------------------------------------
// --size, and the read size

#[test]
fn size_sends_the_course_message_repeated() {
    let server = start_server(&[]);
    let recv = temp_path("2mb.txt");
    let target = format!("127.0.0.1:{}", server.port());
    let out = client(&[&target, "--size", "2MB", "--output", recv.to_str().unwrap()], None);
    let echoed = std::fs::read(&recv).unwrap_or_default();
    let _ = std::fs::remove_file(&recv);
    assert_eq!(code(&out), 0, "stderr: {}", stderr(&out));
    assert!(stdout(&out).starts_with("sent 2,097,152 bytes, received 2,097,152 bytes, identical, "));
    let line = b"INI ADALAH DATA YANG DIKIRIM ABCDEFGHIJKLMNOPQ\n";
    let expected: Vec<u8> = line.iter().copied().cycle().take(2 << 20).collect();
    assert!(echoed == expected, "the echo is not the course's message repeated");
    assert!(stderr(&out).contains(
        "INFO:client:sending 2,097,152 bytes: \"INI ADALAH DATA YANG DIKIRIM ABCDEFGHIJKLMNOPQ\" \
         and a newline, repeated\n"
    ));
}

#[test]
fn large_payloads_are_read_in_64_kib_and_the_log_says_so() {
    let server = start_server(&[]);
    let target = format!("127.0.0.1:{}", server.port());
    let big = client(&[&target, "--size", "1MB"], None);
    assert_eq!(code(&big), 0, "stderr: {}", stderr(&big));
    assert!(stderr(&big).contains(
        "INFO:client:reading the echo 65,536 bytes at a time \
         (64 KiB for a large payload; --chunk 16 for the course's pieces)\n"
    ));
    let small = client(&[&target], None);
    assert!(stderr(&small)
        .contains("INFO:client:reading the echo 16 bytes at a time (the course's recv(16))\n"));
    let piped = client(&[&target, "--file", "-"], Some(b"x".to_vec()));
    assert!(stderr(&piped).contains(
        "INFO:client:reading the echo 65,536 bytes at a time (64 KiB, as the size is not known"
    ));
}
