//! A server's identity: its certificate chain and the private key that matches it.
//!
//! Loaded once at start: a key that belongs to another certificate would make
//! every handshake fail later with nothing in the log but a client's "bad
//! signature", so it is caught here, in one sentence, with exit 2. An expired
//! certificate still loads (the course's own `domain.crt` expired on 2026-04-22,
//! and a client with `--insecure`, like the course's, accepts it) but the caller
//! logs [`Identity::warning`], which says when and what to do.

use std::path::Path;
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;
use rustls::{Error, ServerConfig};

use super::certificate::{date, CertInfo};
use super::{pem, provider};
use crate::cli::{Failure, EXIT_USAGE};

/// A certificate chain and its key, checked to belong together.
#[derive(Debug)]
pub struct Identity {
    /// The server's certificate first, then the CAs that signed it.
    pub chain: Vec<CertificateDer<'static>>,
    /// The private key of `chain[0]`.
    pub key: PrivateKeyDer<'static>,
    /// What `chain[0]` says, for the log.
    pub leaf: CertInfo,
    /// The certificate file's name, as given.
    pub cert_file: String,
}

impl Identity {
    /// Read `cert` (PEM, a chain allowed) and `key` (PEM: PKCS#8, PKCS#1 or SEC1)
    /// and check that the key is the certificate's.
    pub fn load(cert: &Path, key: &Path) -> Result<Identity, Failure> {
        let chain = pem::certificates(cert)?;
        let private = pem::private_key(key)?;
        let (cert_name, key_name) = (cert.display(), key.display());
        let Some(leaf) = CertInfo::parse(&chain[0]) else {
            let message = format!("the first certificate in {cert_name} cannot be read");
            return Err(Failure::new(EXIT_USAGE, message));
        };
        let provider = provider::provider();
        CertifiedKey::from_der(chain.clone(), private.clone_key(), &provider).map_err(|e| {
            let message = match e {
                Error::InconsistentKeys(_) => format!(
                    "{key_name} is not the key of the certificate in {cert_name} (they were \
                     made separately); give the key that was made with it"
                ),
                Error::InvalidCertificate(_) => {
                    format!("the first certificate in {cert_name} cannot be read: {e}")
                }
                _ => format!("the key in {key_name} cannot be used: {e}"),
            };
            Failure::new(EXIT_USAGE, message)
        })?;
        Ok(Identity { chain, key: private, leaf, cert_file: cert_name.to_string() })
    }

    /// A warning for the log if the certificate is expired or not valid yet at
    /// `now` (seconds since 1970): clients that check it will refuse it.
    pub fn warning(&self, now: i64) -> Option<String> {
        let file = &self.cert_file;
        if self.leaf.expired_at(now) {
            Some(format!(
                "the certificate in {file} expired on {}: clients that check it will refuse \
                 it (only --insecure ones connect); make a new one with `progjar cert DIR`",
                date(self.leaf.not_after)
            ))
        } else if self.leaf.not_yet_valid_at(now) {
            Some(format!(
                "the certificate in {file} is not valid until {}: clients that check it will \
                 refuse it until then (is this machine's clock right?)",
                date(self.leaf.not_before)
            ))
        } else {
            None
        }
    }

    /// The rustls settings a TLS server serves this identity with.
    pub fn server_config(&self) -> Result<Arc<ServerConfig>, Failure> {
        let fail =
            |e: Error| Failure::new(EXIT_USAGE, format!("cannot use {}: {e}", self.cert_file));
        let mut config = ServerConfig::builder_with_provider(server_provider())
            .with_safe_default_protocol_versions()
            .map_err(fail)?
            .with_no_client_auth()
            .with_single_cert(self.chain.clone(), self.key.clone_key())
            .map_err(fail)?;
        // An echo client never resumes a session, so a ticket (one encryption and
        // about 200 bytes per connection, TLS 1.3 sends two) would be work for nothing.
        config.send_tls13_tickets = 0;
        // The server picks the cipher suite from its own list (`server_provider`).
        config.ignore_client_order = true;
        Ok(Arc::new(config))
    }
}

/// The provider with the cipher suites a server prefers first: those with
/// SHA-256, before the same ciphers with SHA-384. A handshake hashes its
/// messages and derives its keys with the suite's hash, and SHA-384 (a
/// SHA-512) runs in software on CPUs without SHA-512 instructions (every AMD
/// and most Intel ones), SHA-256 in hardware (SHA-NI): measured here, SHA-512
/// took 13 % of the server's CPU per handshake with TLS13_AES_256_GCM_SHA384,
/// which OpenSSL and Python clients list first. AES-128-GCM is as safe (128-bit
/// security is what the key exchange gives anyway) and as fast.
fn server_provider() -> Arc<CryptoProvider> {
    let mut provider = (*provider::provider()).clone();
    provider.cipher_suites.sort_by_key(|suite| {
        let sha384 = format!("{:?}", suite.suite()).ends_with("SHA384");
        (suite.version() != &rustls::version::TLS13, sha384)
    });
    Arc::new(provider)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::CipherSuite::{
        TLS13_AES_128_GCM_SHA256, TLS13_CHACHA20_POLY1305_SHA256,
        TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    };

    #[test]
    fn a_server_prefers_the_suites_with_sha256() {
        let suites: Vec<_> = server_provider().cipher_suites.iter().map(|s| s.suite()).collect();
        assert_eq!(suites[..2], [TLS13_AES_128_GCM_SHA256, TLS13_CHACHA20_POLY1305_SHA256]);
        let first12 = suites.iter().position(|s| format!("{s:?}").starts_with("TLS_ECDHE"));
        assert_eq!(first12.map(|i| suites[i]), Some(TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256));
        assert_eq!(suites.len(), provider::provider().cipher_suites.len(), "none dropped");
    }
}
