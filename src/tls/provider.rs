//! The one crypto provider: aws-lc-rs (why, with the figures: `Cargo.toml` and docs/tls.md).
//!
//! Every rustls setting here is built with [`provider`], never with rustls's
//! process-wide default, so that which code does the cryptography is written in
//! one place and a second provider can never be linked in by accident.

use std::sync::Arc;

use rustls::crypto::CryptoProvider;

/// aws-lc-rs with its defaults: TLS 1.3 and 1.2 cipher suites (AES-GCM first,
/// then ChaCha20-Poly1305), and X25519MLKEM768 (post-quantum hybrid) offered first.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}
