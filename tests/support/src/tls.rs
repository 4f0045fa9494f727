//! Certificates made the course's way (the `openssl` command line) and TLS peers
//! that are not progjar: the course's Python TLS server (`tools/lab/course_tls_server.py`)
//! and `openssl s_server`.

use std::fs;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;

use crate::process::{all_output, run, stdout, STEP};
use crate::server::{start_server_with, Server};

/// A fresh directory for one test under the system's temporary directory
/// (`progjar-PREFIX-PID-NAME`); the test removes it when it passes.
pub fn scratch_dir(prefix: &str, name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("progjar-{prefix}-{}-{name}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).expect("create a scratch directory");
    dir
}

/// Run `openssl ARGS` in `dir` and return its stdout; the test fails if it fails.
pub fn openssl(dir: &Path, args: &[&str]) -> String {
    let out = run(Command::new("openssl").args(args).current_dir(dir), None);
    assert!(out.status.success(), "openssl {args:?}: {}", all_output(&out));
    stdout(&out)
}

/// A key and a self-signed certificate for CN=localhost made with `openssl req
/// -x509` (as the course makes its own, without a subjectAltName); `key_args`
/// picks the key (`-newkey rsa:2048`, `-newkey ec -pkeyopt ...`). Returns
/// (`STEM.crt`, `STEM.key`) in `dir`.
pub fn self_signed(dir: &Path, stem: &str, key_args: &[&str]) -> (PathBuf, PathBuf) {
    let (key, crt) = (format!("{stem}.key"), format!("{stem}.crt"));
    let mut args = vec!["req", "-x509", "-nodes", "-days", "30", "-subj", "/CN=localhost"];
    args.extend_from_slice(key_args);
    args.extend_from_slice(&["-keyout", &key, "-out", &crt]);
    openssl(dir, &args);
    (dir.join(crt), dir.join(key))
}

/// The course's `domain.crt`/`domain.key` in `dir`: RSA 2048, PKCS#8, self-signed,
/// CN=localhost, no subjectAltName, valid from 2025-04-22 until it expired on
/// 2026-04-22. `openssl req` cannot date a certificate in the past, so `openssl
/// ca -selfsign` makes it, with the extensions `req -x509` gives (a CA, as the
/// course's is).
pub fn course_pair(dir: &Path) -> (PathBuf, PathBuf) {
    let rsa = ["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"];
    openssl(dir, &[&rsa[..], &["-out", "domain.key"]].concat());
    openssl(
        dir,
        &["req", "-new", "-key", "domain.key", "-subj", "/CN=localhost", "-out", "domain.csr"],
    );
    let config = "[ca]\ndefault_ca = course\n[course]\ndatabase = index.txt\nnew_certs_dir = .\n\
                  serial = serial\ndefault_md = sha256\npolicy = anything\nunique_subject = no\n\
                  x509_extensions = v3\n[anything]\ncommonName = supplied\n[v3]\n\
                  subjectKeyIdentifier = hash\nauthorityKeyIdentifier = keyid:always\n\
                  basicConstraints = critical, CA:TRUE\n";
    fs::write(dir.join("ca.cnf"), config).expect("write ca.cnf");
    fs::write(dir.join("index.txt"), "").expect("write index.txt");
    fs::write(dir.join("serial"), "01\n").expect("write serial");
    let dates = ["-startdate", "20250422000000Z", "-enddate", "20260422000000Z"];
    let ca = ["ca", "-batch", "-config", "ca.cnf", "-selfsign", "-keyfile", "domain.key"];
    let files = ["-in", "domain.csr", "-out", "domain.crt", "-notext"];
    openssl(dir, &[&ca[..], &files, &dates].concat());
    (dir.join("domain.crt"), dir.join("domain.key"))
}

/// The course's TLS server (`tools/lab/course_tls_server.py`, recv(32) and sendall
/// until the client's end) on 127.0.0.1, a free port, with `cert` and `key`.
pub fn start_course_tls_server(cert: &Path, key: &Path) -> Server {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tools/lab/course_tls_server.py");
    let mut cmd = Command::new("python3");
    cmd.arg(script).arg(cert).arg(key).args(["0", "127.0.0.1"]);
    start_server_with(&mut cmd)
}

/// `openssl s_server -rev` on 127.0.0.1, a free port, serving one client: each line
/// it receives comes back reversed, so a palindrome comes back as it was sent. It
/// prints `ACCEPT ADDR:PORT` on stdout after a line or two of its own.
pub fn start_s_server_rev(cert: &Path, key: &Path) -> Server {
    let mut child = Command::new("openssl")
        .args(["s_server", "-rev", "-naccept", "1", "-accept", "127.0.0.1:0", "-cert"])
        .arg(cert)
        .arg("-key")
        .arg(key)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn openssl s_server");
    let log = Arc::new(Mutex::new(Vec::new()));
    let (tx, rx) = mpsc::channel();
    let (stdout, stderr) =
        (child.stdout.take().expect("stdout"), child.stderr.take().expect("stderr"));
    for (pipe, addr) in
        [(Box::new(stdout) as Box<dyn std::io::Read + Send>, Some(tx)), (Box::new(stderr), None)]
    {
        let sink = Arc::clone(&log);
        thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                if let (Some(tx), Some(at)) = (&addr, line.strip_prefix("ACCEPT ")) {
                    let _ = tx.send(at.parse::<SocketAddr>().expect("ACCEPT ADDR:PORT"));
                }
                sink.lock().unwrap().push(line);
            }
        });
    }
    let Ok(addr) = rx.recv_timeout(STEP) else {
        let _ = child.kill();
        panic!("openssl s_server printed no ACCEPT line: {:?}", log.lock().unwrap());
    };
    Server { child, addr, log }
}
