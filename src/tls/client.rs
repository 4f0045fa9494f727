//! A TLS client's settings, written once for every client here: `progjar
//! client --tls` (blocking, rustls's buffered connection) and `progjar-stress
//! --tls` (a [`ClientSession`] per connection on its loop).
//!
//! The options and which of them go together, the warning `--insecure` gives,
//! the rustls settings (the `--ca` file read once for a whole run), the name a
//! server's certificate must be for, and what a handshake agreed on, in words.

use std::ffi::OsStr;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use rustls::client::Resumption;
use rustls::pki_types::ServerName;
use rustls::{
    CipherSuite, ClientConfig, ClientConnection, CommonState, NamedGroup, ProtocolVersion,
};

use super::session::ClientSession;
use super::verify::{client_config, Trust};
use crate::cli::{Failure, EXIT_USAGE};

/// `--tls` and its options, from the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsOptions {
    /// `--ca FILE` or `--insecure`.
    pub trust: Trust,
    /// `--server-name`: the name the certificate must be for; default the host given.
    pub server_name: Option<String>,
}

impl TlsOptions {
    /// The options as given: `--tls` with `--ca FILE` or `--insecure`, and
    /// maybe `--server-name`. `None` without `--tls`; a sentence for a usage
    /// error (an option of `--tls` without it, both trusts, or neither).
    pub fn from_args(
        tls: bool,
        ca: Option<PathBuf>,
        insecure: bool,
        server_name: Option<String>,
    ) -> Result<Option<TlsOptions>, String> {
        if !tls {
            let given = [
                ("--ca", ca.is_some()),
                ("--insecure", insecure),
                ("--server-name", server_name.is_some()),
            ];
            return match given.iter().find(|(_, g)| *g) {
                Some((option, _)) => Err(format!("{option} is an option of --tls; add --tls")),
                None => Ok(None),
            };
        }
        let trust = match (ca, insecure) {
            (Some(_), true) => return Err("use --ca FILE or --insecure, not both".to_string()),
            (Some(path), false) => Trust::Ca(path),
            (None, true) => Trust::Insecure,
            (None, false) => {
                return Err("--tls needs --ca FILE, the certificate to trust (ca.crt from \
                            `progjar cert`, or the server's own self-signed one), or --insecure \
                            to check nothing"
                    .to_string())
            }
        };
        Ok(Some(TlsOptions { trust, server_name }))
    }
}

/// What `--insecure` allows, said once at start.
pub const INSECURE_WARNING: &str = "--insecure: the server's certificate is not checked, so \
     anyone in the middle can pretend to be the server and read and change everything sent and \
     received";

/// The TLS settings every connection of a run shares, made once (the --ca file read once).
#[derive(Debug, Clone)]
pub struct ClientTls {
    options: TlsOptions,
    config: Arc<ClientConfig>,
}

impl ClientTls {
    /// Read the --ca file and build the rustls settings.
    pub fn new(options: &TlsOptions) -> Result<ClientTls, Failure> {
        let mut config = (*client_config(&options.trust)?).clone();
        // Every handshake a full one: a stress run of handshakes must not
        // measure resumptions against a server that hands out tickets, and a
        // client connects to each server once anyway.
        config.resumption = Resumption::disabled();
        Ok(ClientTls { options: options.clone(), config: Arc::new(config) })
    }

    /// What the program must say at start: with --insecure, [`INSECURE_WARNING`]
    /// (logged by the program, so that the line names it).
    pub fn warning(&self) -> Option<&'static str> {
        (!self.checks_certificate()).then_some(INSECURE_WARNING)
    }

    /// The certificate is checked (`--ca`), not taken as it is (`--insecure`).
    pub fn checks_certificate(&self) -> bool {
        self.options.trust != Trust::Insecure
    }

    /// Connecting to `host` (as given on the command line): the certificate
    /// must be for --server-name, else for `host` (an address is checked as an
    /// address). A name that can be neither is a usage error.
    pub fn to(&self, host: &OsStr) -> Result<TlsTarget, Failure> {
        let name = match &self.options.server_name {
            Some(name) => name.clone(),
            None => host.to_string_lossy().into_owned(),
        };
        let checked = ServerName::try_from(name.clone()).map_err(|_| {
            Failure::new(
                EXIT_USAGE,
                format!(
                    "{name:?} is neither a host name nor an IP address, so no certificate can be \
                     for it; give the name to check with --server-name"
                ),
            )
        })?;
        Ok(TlsTarget { config: Arc::clone(&self.config), name: checked })
    }
}

/// One server's TLS: the shared settings and the name its certificate must be for.
#[derive(Debug, Clone)]
pub struct TlsTarget {
    config: Arc<ClientConfig>,
    name: ServerName<'static>,
}

impl TlsTarget {
    /// The name the certificate is checked for, as text.
    pub fn name(&self) -> String {
        self.name.to_str().into_owned()
    }

    /// A blocking client's connection (rustls's buffered API), before its hello.
    pub fn connection(&self) -> Result<ClientConnection, rustls::Error> {
        ClientConnection::new(Arc::clone(&self.config), self.name.clone())
    }

    /// A session for a readiness loop (`session.rs`); `flush` sends its hello.
    pub fn session(&self) -> Result<ClientSession, rustls::Error> {
        ClientSession::client(Arc::clone(&self.config), self.name.clone())
    }
}

/// What a handshake agreed on: version, cipher suite, key exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Agreed {
    version: Option<ProtocolVersion>,
    suite: Option<CipherSuite>,
    group: Option<NamedGroup>,
}

impl Agreed {
    /// What the handshake of `common` agreed on (all `?` while it is not done).
    pub fn of(common: &CommonState) -> Agreed {
        Agreed {
            version: common.protocol_version(),
            suite: common.negotiated_cipher_suite().map(|s| s.suite()),
            group: common.negotiated_key_exchange_group().map(|g| g.name()),
        }
    }

    /// `TLS 1.3`, `TLS 1.2`.
    pub fn version(&self) -> String {
        match self.version {
            Some(ProtocolVersion::TLSv1_3) => "TLS 1.3".to_string(),
            Some(ProtocolVersion::TLSv1_2) => "TLS 1.2".to_string(),
            Some(other) => format!("{other:?}"),
            None => "?".to_string(),
        }
    }

    /// rustls's name of the cipher suite, e.g. `TLS13_AES_128_GCM_SHA256`.
    pub fn cipher_suite(&self) -> String {
        self.suite.map_or_else(|| "?".to_string(), |s| format!("{s:?}"))
    }

    /// rustls's name of the key exchange group, e.g. `X25519MLKEM768`.
    pub fn key_exchange(&self) -> String {
        self.group.map_or_else(|| "?".to_string(), |g| format!("{g:?}"))
    }
}

impl fmt::Display for Agreed {
    /// `TLS 1.3, cipher suite TLS13_AES_128_GCM_SHA256, key exchange X25519MLKEM768`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}, cipher suite {}, key exchange {}",
            self.version(),
            self.cipher_suite(),
            self.key_exchange()
        )
    }
}
