//! Certificate and key files: PEM, read once at start, every problem one sentence.
//!
//! What students hand in is whatever `openssl` wrote: a key as PKCS#8 (`BEGIN
//! PRIVATE KEY`, the course's `domain.key`), PKCS#1 (`BEGIN RSA PRIVATE KEY`) or
//! SEC1 (`BEGIN EC PRIVATE KEY`), and certificates one after the other (a chain).
//! rustls's own `pki_types::pem` reads them all; this file turns what can go wrong
//! (a missing file, a DER file, a key with a passphrase, a certificate where the
//! key should be) into one line and exit 2, before anything listens or connects.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

use rustls::pki_types::pem::{self, SectionKind};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::cli::{Failure, EXIT_USAGE};

/// The largest certificate or key file read: a chain of ten 4096-bit RSA
/// certificates is about 20 KiB, so 1 MiB is generous, and a wrong path to a
/// huge file (or to /dev/zero) costs no more than that.
pub const MAX_FILE: u64 = 1024 * 1024;

/// The PEM sections of one file, read whole.
struct PemFile {
    sections: Vec<(SectionKind, Vec<u8>)>,
    /// The file holds a key encrypted with a passphrase, which rustls cannot use.
    encrypted_key: bool,
}

fn failure(message: String) -> Failure {
    Failure::new(EXIT_USAGE, message)
}

/// Read `path` and every PEM section in it.
fn read(path: &Path) -> Result<PemFile, Failure> {
    let name = path.display();
    let file = File::open(path).map_err(|e| failure(format!("cannot read {name}: {e}")))?;
    let mut bytes = Vec::new();
    file.take(MAX_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| failure(format!("cannot read {name}: {e}")))?;
    if bytes.len() as u64 > MAX_FILE {
        return Err(failure(format!(
            "{name} is larger than 1 MiB, so it is no certificate or key file"
        )));
    }
    let text = String::from_utf8_lossy(&bytes);
    let encrypted_key = text.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----")
        || text.contains("Proc-Type: 4,ENCRYPTED");
    let mut reader = BufReader::new(bytes.as_slice());
    let mut sections = Vec::new();
    // Bounded: each pass consumes a section of the (bounded) file, or ends.
    loop {
        match pem::from_buf(&mut reader) {
            Ok(Some(section)) => sections.push(section),
            Ok(None) => break,
            Err(e) => return Err(failure(format!("{name} is not a valid PEM file: {e}"))),
        }
    }
    if sections.is_empty() && !encrypted_key {
        return Err(failure(format!(
            "{name} is not a PEM file (it has no -----BEGIN line); a binary DER file converts \
             with: openssl x509 -inform der -in {name} -out {name}.pem"
        )));
    }
    Ok(PemFile { sections, encrypted_key })
}

/// Every certificate in `path`, in order: the server's own first, then the CAs
/// that signed it (a chain), as `openssl` and every server expect.
pub fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, Failure> {
    let file = read(path)?;
    let certs: Vec<CertificateDer<'static>> = (file.sections.into_iter())
        .filter(|(kind, _)| *kind == SectionKind::Certificate)
        .map(|(_, der)| CertificateDer::from(der))
        .collect();
    if certs.is_empty() {
        return Err(failure(format!(
            "{} holds no certificate (no -----BEGIN CERTIFICATE----- section)",
            path.display()
        )));
    }
    Ok(certs)
}

/// The private key in `path`: PKCS#8, PKCS#1 (RSA) or SEC1 (EC).
pub fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, Failure> {
    let name = path.display();
    let file = read(path)?;
    let mut keys = file.sections.into_iter().filter_map(|(kind, der)| match kind {
        SectionKind::PrivateKey => Some(PrivateKeyDer::Pkcs8(der.into())),
        SectionKind::RsaPrivateKey => Some(PrivateKeyDer::Pkcs1(der.into())),
        SectionKind::EcPrivateKey => Some(PrivateKeyDer::Sec1(der.into())),
        _ => None,
    });
    match (keys.next(), keys.next()) {
        (Some(key), None) => Ok(key),
        (Some(_), Some(_)) => {
            Err(failure(format!("{name} holds more than one private key; keep only the server's")))
        }
        (None, _) if file.encrypted_key => Err(failure(format!(
            "{name} is encrypted with a passphrase, which a server cannot type at start; \
             write it unencrypted with: openssl pkey -in {name} -out plain.key"
        ))),
        (None, _) => Err(failure(format!(
            "{name} holds no private key (no -----BEGIN PRIVATE KEY----- section); is it the \
             certificate?"
        ))),
    }
}
