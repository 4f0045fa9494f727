//! TLS, the parts every TLS program here shares: files, trust, words.
//!
//! The course's next assignment wraps its echo server and client in TLS with
//! Python's `ssl` module; progjar does it with rustls (docs/tls.md). One concept
//! per file:
//! - `provider.rs`: the one crypto provider, aws-lc-rs (why: `Cargo.toml`).
//! - `pem.rs`: certificate and key files, every problem one sentence and exit 2.
//! - `identity.rs`: a server's chain and matching key, its expiry warning, and
//!   the rustls `ServerConfig` that serves it.
//! - `certificate.rs`: what a certificate says (subject, names, dates) in words.
//! - `verify.rs`: what a client trusts (`--ca FILE` the way OpenSSL's cafile
//!   does, or `--insecure`) and the rustls `ClientConfig`.
//! - `client.rs`: a TLS client's options and settings, shared by `progjar
//!   client` and `progjar-stress`: the name to check, what a handshake agreed.
//! - `explain.rs`: a refused certificate or a failed handshake as one sentence.
//! - `generate.rs`: `progjar cert DIR`, a CA and a server certificate it signs.
//! - `session.rs`: one TLS connection on a readiness loop, either side, over
//!   rustls's unbuffered API: every byte it holds counted, none when idle;
//!   `outgoing.rs`: where its bytes to send go.

mod certificate;
mod client;
mod explain;
mod generate;
mod identity;
mod outgoing;
mod pem;
mod provider;
pub mod session;
mod verify;

pub use certificate::{date, date_time, now, CertInfo};
pub use client::{Agreed, ClientTls, TlsOptions, TlsTarget, INSECURE_WARNING};
pub use explain::{client_failed, handshake_ended, handshake_timed_out, refused, sentence};
pub use generate::{run as cert, Config as CertConfig, DEFAULT_NAMES, FILES, VALID_DAYS};
pub use identity::Identity;
pub use pem::{certificates, private_key, MAX_FILE};
pub use provider::provider;
pub use verify::{client_config, Refused, Trust};
