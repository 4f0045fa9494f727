//! The command line itself, for every subcommand: arguments that are not UTF-8,
//! a closed stdout or stderr, `--version`, bare `progjar`, and the plain words
//! for a bad number.

use progjar_testkit as common;

use std::ffi::{OsStr, OsString};
use std::io::Read;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::PathBuf;
use std::process::{Command, Stdio};

use common::{code, progjar, run, start_server, stderr, stdout, wait_child, STEP};

fn bytes(b: &[u8]) -> &OsStr {
    OsStr::from_bytes(b)
}

/// The write end of a pipe whose read end is already closed: the first write
/// to it fails with EPIPE, deterministically (no race with a reader that quits).
fn closed_pipe() -> Stdio {
    let (read, write) = std::io::pipe().expect("pipe");
    drop(read);
    Stdio::from(write)
}

/// Run `cmd` with the given stdout and stderr; return the exit code and
/// whatever it wrote to the stream that was piped here.
fn run_with(cmd: &mut Command, out: Stdio, err: Stdio) -> (i32, String) {
    let mut child = cmd.stdin(Stdio::null()).stdout(out).stderr(err).spawn().expect("spawn");
    let mut text = String::new();
    if let Some(mut pipe) = child.stdout.take() {
        pipe.read_to_string(&mut text).expect("read stdout");
    }
    if let Some(mut pipe) = child.stderr.take() {
        pipe.read_to_string(&mut text).expect("read stderr");
    }
    let status = wait_child(&mut child, STEP).expect("bounded");
    (status.code().expect("exited, not killed"), text)
}

// ---------------------------------------------------------------------------
// Arguments that are not UTF-8

#[test]
fn message_that_is_not_utf8_is_sent_as_its_bytes() {
    let server = start_server(&[]);
    let cmd = progjar()
        .args(["client", "127.0.0.1", "--port", &server.port(), "--message"])
        .arg(bytes(b"\xff\xfeabc"))
        .output()
        .expect("run");
    assert_eq!(code(&cmd), 0, "{}", stderr(&cmd));
    assert!(stderr(&cmd).contains("INFO:client:sending b'\\xff\\xfeabc'\n"), "{}", stderr(&cmd));
    assert!(stdout(&cmd).starts_with("sent 5 bytes, received 5 bytes, identical, "));
}

#[test]
fn file_path_that_is_not_utf8_is_opened_as_given() {
    let server = start_server(&[]);
    let mut name = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).into_os_string().into_vec();
    name.extend_from_slice(format!("/cli-{}-", std::process::id()).as_bytes());
    name.extend_from_slice(b"\xff.bin");
    let path = PathBuf::from(OsString::from_vec(name));
    std::fs::write(&path, b"file with an odd name\n").unwrap();
    let out = run(
        progjar().args(["client", "127.0.0.1", "--port", &server.port(), "--file"]).arg(&path),
        None,
    );
    std::fs::remove_file(&path).ok();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(stdout(&out).starts_with("sent 22 bytes, received 22 bytes, identical, "));
}

#[test]
fn host_that_is_not_utf8_is_looked_up_and_not_found() {
    let out = run(progjar().arg("client").arg(bytes(b"no-such-\xff.invalid")), None);
    assert_eq!(code(&out), 4, "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.starts_with("progjar: error: cannot resolve no-such-\u{FFFD}.invalid: "), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}

#[test]
fn bytes_where_text_is_needed_are_one_usage_line() {
    let cases: [&[&OsStr]; 4] = [
        &[bytes(b"client"), bytes(b"--port"), bytes(b"\xff")],
        &[bytes(b"client"), bytes(b"--timeout"), bytes(b"1\xff")],
        &[bytes(b"server"), bytes(b"--bind"), bytes(b"\xff")],
        &[bytes(b"\xfe")],
    ];
    for args in cases {
        let out = run(progjar().args(args), None);
        assert_eq!(code(&out), 2, "{args:?}: {}", stderr(&out));
        let err = stderr(&out);
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.starts_with("progjar: ") && err.contains('\u{FFFD}'), "{args:?}: {err}");
    }
}

// ---------------------------------------------------------------------------
// A closed stdout or stderr

#[test]
fn info_into_a_closed_stdout_stops_quietly() {
    let mut cmd = progjar();
    cmd.args(["info", "--remote", "localhost"]);
    let (code, err) = run_with(&mut cmd, closed_pipe(), Stdio::piped());
    assert_eq!(code, 141, "{err}");
    assert_eq!(err, "", "no error line and no panic");
}

#[test]
fn client_with_closed_stdout_or_stderr_keeps_its_exit_status() {
    let server = start_server(&[]);
    let mut cmd = progjar();
    cmd.args(["client", "127.0.0.1", "--port", &server.port()]);
    let (code, err) = run_with(&mut cmd, closed_pipe(), Stdio::piped());
    assert_eq!(code, 0, "the echo was fine; only the summary had no reader: {err}");

    let refused = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let mut cmd = progjar();
    cmd.args(["client", "127.0.0.1", "--port", &refused.port().to_string()]);
    let (code, out) = run_with(&mut cmd, Stdio::piped(), closed_pipe());
    assert_eq!(code, 3, "refused, said only by the exit status: {out}");
}

#[test]
fn help_into_a_closed_stdout_is_no_panic() {
    let mut cmd = progjar();
    cmd.args(["client", "--help"]);
    let (code, err) = run_with(&mut cmd, closed_pipe(), Stdio::piped());
    assert_eq!((code, err.as_str()), (0, ""));
}

// ---------------------------------------------------------------------------
// --version and bare `progjar`

#[test]
fn version_is_the_package_version() {
    let want = format!("progjar {}\n", env!("CARGO_PKG_VERSION"));
    for args in [&["--version"][..], &["-V"], &["server", "--version"], &["client", "--version"]] {
        let out = run(progjar().args(args), None);
        assert_eq!(code(&out), 0, "{args:?}: {}", stderr(&out));
        assert_eq!(stdout(&out), want, "{args:?}");
    }
}

#[test]
fn bare_progjar_lists_its_commands_one_line_each() {
    let out = run(&mut progjar(), None);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    let err = stderr(&out);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 8, "{err}");
    assert!(lines[0].ends_with(": one of these commands is needed:"), "{err}");
    let names = ["server", "proxy", "client", "info", "record-page", "cert"];
    for (line, name) in lines[1..7].iter().zip(names) {
        assert!(line.starts_with(&format!("  {name} ")), "{line}");
        assert!(line.ends_with('.') && line.len() < 100, "one short line: {line}");
    }
    assert_eq!(lines[7], "Run `progjar COMMAND --help` for its options.");
}

// ---------------------------------------------------------------------------
// Numbers in plain words

#[test]
fn every_port_option_says_the_same_plain_words() {
    for command in [&["client"][..], &["server"], &["info"]] {
        for bad in ["65536", "abc", "-1"] {
            let out = run(progjar().args(command).args(["--port", bad]), None);
            assert_eq!(code(&out), 2, "{command:?} {bad}: {}", stderr(&out));
            let err = stderr(&out);
            assert_eq!(err.lines().count(), 1, "{err}");
            assert!(err.contains(": port must be a number from 0 to 65535 "), "{err}");
        }
    }
}

#[test]
fn client_port_zero_is_a_usage_error() {
    let out = run(progjar().args(["client", "--port", "0"]), None);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(stderr(&out).contains(
        "port 0 means \"any free port\" to a server; give the port the server listens on, 1 to 65535"
    ));
}

#[test]
fn backlog_says_plain_words_too() {
    let out = run(progjar().args(["server", "--backlog", "x"]), None);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(stderr(&out).contains("'x' must be a whole number from 0 to 4294967295"));
}

#[test]
fn server_binds_a_name_by_resolving_it() {
    let server =
        common::start_server_with(progjar().args(["server", "--bind", "localhost", "--port", "0"]));
    assert!(server.addr.ip().is_loopback(), "{}", server.addr);
    let out = run(progjar().args(["client", "localhost", "--port", &server.port()]), None);
    assert_eq!(code(&out), 0, "{}", stderr(&out));

    let out = run(progjar().args(["server", "--bind", "no-such-host.invalid"]), None);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(stderr(&out).contains("is not an address and does not resolve"), "{}", stderr(&out));
    assert!(stderr(&out).contains("use an address: 0.0.0.0"), "{}", stderr(&out));
}
