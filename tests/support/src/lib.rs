//! What every progjar test shares, in one crate that every test target uses by
//! name (`use progjar_testkit as common;`): start the real binaries and wait for
//! what they print (never sleep), talk to them over loopback sockets, read
//! `/proc`, generate and check byte streams, and drive many nonblocking clients.
//!
//! One concept per module:
//! * `process`: the binaries, running a command with a time bound, its output;
//! * `server`: a running `progjar server` (or `progjar proxy`), its log, and
//!   waiting for a line (or the server in a thread of the test, for tests of a
//!   client); the course's relay (`tools/lab/course_proxy.py`) in front of it;
//! * `net`: blocking clients and what a test asserts about them;
//! * `procfs`: `/proc` readers (RSS, CPU time, descriptors, socket queues);
//! * `stream`: deterministic bytes, the stress tool's pattern;
//! * `flow`: many nonblocking clients in one mio loop;
//! * `flood`: floods of connections and adding up the throttled warnings;
//! * `browser`: headless Chromium loading the pages the tools write;
//! * `lab`: a lab in network namespaces (`tools/lab`), taken down whatever happens;
//! * `tls`: certificates made with the `openssl` command line (the course's
//!   expired one too) and with `progjar cert`, TLS peers that are not progjar
//!   (the course's Python TLS server and client, `openssl s_server`, a rustls
//!   echo server that tells how each client ended), and `progjar server
//!   --tls-cert` (as a process or in a thread) with rustls clients of it.
//!
//! Every wait here has a deadline ([`STEP`] unless the caller gives one), so a
//! test fails with a message instead of hanging.

pub mod browser;
mod flood;
mod flow;
pub mod lab;
mod net;
mod process;
mod procfs;
mod server;
mod stream;
mod tls;

pub use flood::{
    assert_rate_limited, closed_in, flood, logged_and_more, one_leaves_one_fits, suppressed_in,
    wait_until_accounted, Flood,
};
pub use flow::{assert_no_flow_failed, hundred_flows, message_len, Driver, Flow};
pub use net::{
    assert_closed_by_server, assert_echo, assert_served, closed_port, connect, connect_from,
    echo_all, one_shot_server, read_n, served_or_closed, set_linger_zero,
    thousand_clients_each_echoed, write_until_stalled,
};
pub use process::{
    all_output, client, code, progjar, progjar_path, progjar_stress, progjar_stress_path, run,
    run_bounded, run_failing, send_signal, stderr, stdout, stress, stress_with, wait_child,
    wait_until, STEP, STRESS_LIMIT,
};
pub use procfs::{
    cpu_time, fds_below, open_connections, proc_status_kib, raise_nofile, rss_kib,
    server_side_queues, RssSampler,
};
pub use server::{
    assert_no_panic, listening_addr, proxy_command, serve_in_thread, server_command,
    start_course_proxy, start_proxy, start_server, start_server_logging, start_server_with, Server,
};
pub use stream::{random_bytes, Stream};
pub use tls::{
    assert_tls_echo, cert_in_process, client_hello, course_pair, openssl, progjar_cert,
    python_tls_client, read_to_end, s_client_echo, scratch_dir, self_signed, serve_tls_in_thread,
    start_course_tls_server, start_intercepting_proxy, start_s_server_rev, start_tls_server,
    tls12_trusting, tls_connect, tls_connect_with, tls_echo_telling_ends, tls_server_command,
    trusting, TlsPeer, TlsStream,
};

/// A mebibyte, the unit most transfer sizes here are written in.
pub const MIB: usize = 1024 * 1024;
