//! `progjar cert DIR`: a CA and a server certificate it signs, ready for the lab.
//!
//! The course makes one self-signed certificate by hand (`openssl req -x509 ...
//! -config san.conf`) and its client then checks nothing. Here a CA signs the
//! server's certificate, so a client trusts `ca.crt` once and every server
//! certificate it signed: the real-world shape, and one a client can check. The
//! CA's own key is never written: nobody, not even whoever ran this, can sign
//! another certificate that `ca.crt` trusts; for other names, run it again.
//!
//! Both keys are ECDSA P-256: the fastest handshake there is (docs/tls.md), and
//! the key type every TLS client knows.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use rcgen::{
    date_time_ymd, BasicConstraints, CertificateParams, CertifiedIssuer, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose, PKCS_ECDSA_P256_SHA256,
};
use rustls::pki_types::{CertificateDer, ServerName};

use super::certificate::{date, day, now, CertInfo};
use crate::cli::{self, Failure, EXIT_FAILURE, EXIT_USAGE};

/// The names a certificate is for when none is given: this machine, and the
/// course's four machines by name and by address, so the lab and the course's
/// containers work with one certificate.
pub const DEFAULT_NAMES: [&str; 10] = [
    "localhost",
    "127.0.0.1",
    "mesin1",
    "mesin2",
    "mesin3",
    "mesin4",
    "172.16.16.101",
    "172.16.16.102",
    "172.16.16.103",
    "172.16.16.104",
];

/// The three files `progjar cert` writes, in this order.
pub const FILES: [&str; 3] = ["ca.crt", "server.crt", "server.key"];

/// How long both certificates are valid: a year, counted from today's midnight (UTC).
pub const VALID_DAYS: i64 = 365;

/// `progjar cert`'s settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where the three files go (made if missing).
    pub dir: PathBuf,
    /// The names the server's certificate is for; empty means [`DEFAULT_NAMES`].
    pub names: Vec<String>,
}

/// Write `ca.crt`, `server.crt` and `server.key` into the directory, and say what was written.
pub fn run(config: Config) -> Result<(), Failure> {
    let names: Vec<String> = match config.names.is_empty() {
        true => DEFAULT_NAMES.iter().map(|n| n.to_string()).collect(),
        false => config.names,
    };
    for name in &names {
        if ServerName::try_from(name.as_str()).is_err() {
            let message = format!("--name {name:?} is neither a host name nor an IP address");
            return Err(Failure::new(EXIT_USAGE, message));
        }
    }
    let paths: Vec<PathBuf> = FILES.iter().map(|f| config.dir.join(f)).collect();
    // All three are checked before any is written: never half a set, never over one.
    if let Some(existing) = paths.iter().find(|p| p.symlink_metadata().is_ok()) {
        return Err(Failure::new(
            EXIT_USAGE,
            format!(
                "{} exists already, and progjar cert never overwrites; remove it or choose \
                 another directory",
                existing.display()
            ),
        ));
    }
    let made = make(&names)
        .map_err(|e| Failure::new(EXIT_FAILURE, format!("cannot make the certificates: {e}")))?;
    fs::create_dir_all(&config.dir).map_err(|e| {
        Failure::new(EXIT_FAILURE, format!("cannot create {}: {e}", config.dir.display()))
    })?;
    write_all(&paths, &[&made.ca_pem, &made.server_pem, &made.key_pem])?;
    cli::write_stdout(&report(&paths, &made))
}

/// The three files' contents.
struct Made {
    ca_pem: String,
    server_pem: String,
    key_pem: String,
    ca: CertificateDer<'static>,
    server: CertificateDer<'static>,
}

/// A CA (its key dropped at the end) and a server certificate for `names` that it signs.
fn make(names: &[String]) -> Result<Made, rcgen::Error> {
    let today = now();
    let (y, m, d) = day(today);
    let (y2, m2, d2) = day(today + VALID_DAYS * 86_400);
    let (from, until) =
        (date_time_ymd(y as i32, m as u8, d as u8), date_time_ymd(y2 as i32, m2 as u8, d2 as u8));

    let ca_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
    // Two CAs made the same day must not look alike in "not signed by" messages:
    // a few bytes of the CA's public key tell them apart.
    let tag: String =
        ca_key.public_key_raw().iter().skip(1).take(4).map(|b| format!("{b:02x}")).collect();
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.distinguished_name.push(DnType::CommonName, format!("progjar CA {} {tag}", date(today)));
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    (ca.not_before, ca.not_after) = (from, until);
    let ca = CertifiedIssuer::self_signed(ca, ca_key)?;

    // rcgen makes a name that parses as an address an IP entry, the rest DNS names.
    let mut server = CertificateParams::new(names.to_vec())?;
    server.distinguished_name.push(DnType::CommonName, names[0].as_str());
    server.is_ca = IsCa::ExplicitNoCa;
    server.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    (server.not_before, server.not_after) = (from, until);
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
    let signed = server.signed_by(&key, &ca)?;
    Ok(Made {
        ca_pem: ca.pem(),
        server_pem: signed.pem(),
        key_pem: key.serialize_pem(),
        ca: ca.der().clone(),
        server: signed.der().clone(),
    })
}

/// Write each file new (never over one that appeared meanwhile); the key readable
/// by its owner only. On a failure, the files written so far are removed again.
fn write_all(paths: &[PathBuf], contents: &[&String]) -> Result<(), Failure> {
    for (i, (path, text)) in paths.iter().zip(contents).enumerate() {
        let mode = if path.ends_with("server.key") { 0o600 } else { 0o644 };
        let written = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(path)
            .and_then(|mut f| f.write_all(text.as_bytes()).and_then(|()| f.sync_all()));
        if let Err(e) = written {
            for done in &paths[..i] {
                let _ = fs::remove_file(done);
            }
            return Err(Failure::new(
                EXIT_FAILURE,
                format!("cannot write {}: {e}", path.display()),
            ));
        }
    }
    Ok(())
}

/// What was written, one line a file, and how to use it.
fn report(paths: &[PathBuf], made: &Made) -> String {
    let describe = |der: &CertificateDer<'_>| {
        CertInfo::parse(der).map_or_else(|| "?".to_string(), |info| info.to_string())
    };
    let shown = |p: &Path| p.display().to_string();
    format!(
        "wrote {}: the CA, {}\nwrote {}: the server's certificate, {}\nwrote {}: the server's \
         private key (ECDSA P-256, PKCS#8), readable by you only\nthe CA's own key was not \
         kept: for other names, run progjar cert again\nclients trust it with: progjar client \
         --tls --ca {}\n",
        shown(&paths[0]),
        describe(&made.ca),
        shown(&paths[1]),
        describe(&made.server),
        shown(&paths[2]),
        shown(&paths[0]),
    )
}
