//! What a TLS client trusts: `--ca FILE` (the way OpenSSL's cafile does) or `--insecure`.
//!
//! # `--ca FILE`
//!
//! The file's certificates are trusted as CAs, and a server certificate they
//! signed is checked by webpki (the chain, the dates, the name). One case more,
//! as OpenSSL's `cafile` and so Python's `load_verify_locations` have it: a
//! certificate that is *itself* listed in the file is trusted as it is. That is
//! how the course's self-signed `domain.crt` is trusted, and webpki alone would
//! refuse it (a self-signed `openssl req -x509` certificate says CA:TRUE, and a
//! CA may not be a server's own certificate). Its dates and its name are still
//! checked; only "who signed it" is not asked, since the file answers it.
//!
//! # `--insecure`
//!
//! The course's `CERT_NONE`: nothing about the certificate is checked, only that
//! the server holds its key (the handshake's signature). Whoever sits in the
//! middle can present a certificate of its own and read and change everything.
//!
//! A refused certificate becomes one sentence here, while the certificate, the
//! name asked for and the file are all at hand ([`super::explain`]); it travels
//! back through rustls inside the error, which still sends the server the
//! `bad_certificate` alert.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, Error, OtherError, RootCertStore,
    SignatureScheme,
};

use super::certificate::CertInfo;
use super::{explain, pem, provider};
use crate::cli::{Failure, EXIT_USAGE};

/// What the client trusts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trust {
    /// `--ca FILE`: these CAs, and the certificates listed in the file themselves.
    Ca(PathBuf),
    /// `--insecure`: nothing is checked.
    Insecure,
}

/// The rustls settings of a client that trusts `trust`.
pub fn client_config(trust: &Trust) -> Result<Arc<ClientConfig>, Failure> {
    let provider = provider::provider();
    let verifier: Arc<dyn ServerCertVerifier> = match trust {
        Trust::Ca(path) => Arc::new(CaFile::load(path, Arc::clone(&provider))?),
        Trust::Insecure => Arc::new(Insecure(Arc::clone(&provider))),
    };
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Failure::new(EXIT_USAGE, format!("cannot set up TLS: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// `--ca FILE`.
struct CaFile {
    /// The file's name as given, for sentences (`ca.crt`).
    file: String,
    /// Every certificate in it: one of these presented by the server is trusted as it is.
    listed: Vec<CertificateDer<'static>>,
    /// webpki with the file's certificates as roots; `None` if none can be a root.
    webpki: Option<Arc<WebPkiServerVerifier>>,
    provider: Arc<CryptoProvider>,
}

impl fmt::Debug for CaFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CaFile({}, {} certificates)", self.file, self.listed.len())
    }
}

impl CaFile {
    fn load(path: &Path, provider: Arc<CryptoProvider>) -> Result<CaFile, Failure> {
        let listed = pem::certificates(path)?;
        let mut roots = RootCertStore::empty();
        // A certificate webpki cannot take as a root may still be listed (trusted as it is).
        let (_added, _ignored) = roots.add_parsable_certificates(listed.iter().cloned());
        let webpki = match roots.is_empty() {
            true => None,
            false => {
                WebPkiServerVerifier::builder_with_provider(roots.into(), Arc::clone(&provider))
                    .build()
                    .ok()
            }
        };
        Ok(CaFile { file: path.display().to_string(), listed, webpki, provider })
    }

    fn check(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        now: UnixTime,
    ) -> Result<(), Error> {
        if self.listed.iter().any(|c| c == end_entity) {
            return check_listed(end_entity, server_name, now);
        }
        let Some(webpki) = &self.webpki else { return Err(CertificateError::UnknownIssuer.into()) };
        let verify = |at: UnixTime| {
            webpki.verify_server_cert(end_entity, intermediates, server_name, &[], at).map(|_| ())
        };
        match verify(now) {
            // webpki checks the dates before it looks for the signer: asked again
            // at a time the certificate was valid, a certificate nobody in the file
            // signed says so, which matters more than its dates.
            Err(Error::InvalidCertificate(
                CertificateError::ExpiredContext { .. }
                | CertificateError::NotValidYetContext { .. },
            )) => match CertInfo::parse(end_entity).map(|c| verify(at(c.not_before + 1))) {
                Some(Err(untrusted)) if !is_about_time(&untrusted) => Err(untrusted),
                _ => verify(now),
            },
            result => result,
        }
    }
}

/// A time in seconds since 1970 as rustls counts it.
fn at(secs: i64) -> UnixTime {
    UnixTime::since_unix_epoch(Duration::from_secs(secs.max(0) as u64))
}

/// The error is about the certificate's dates (or its name, checked after them).
fn is_about_time(error: &Error) -> bool {
    matches!(
        error,
        Error::InvalidCertificate(
            CertificateError::Expired
                | CertificateError::ExpiredContext { .. }
                | CertificateError::NotValidYet
                | CertificateError::NotValidYetContext { .. }
                | CertificateError::NotValidForName
                | CertificateError::NotValidForNameContext { .. }
        )
    )
}

/// A certificate the --ca file lists: trusted as it is, but only for its dates and names.
fn check_listed(
    cert: &CertificateDer<'_>,
    name: &ServerName<'_>,
    now: UnixTime,
) -> Result<(), Error> {
    let info = CertInfo::parse(cert).ok_or(CertificateError::BadEncoding)?;
    let seconds = now.as_secs() as i64;
    if info.expired_at(seconds) {
        return Err(
            CertificateError::ExpiredContext { time: now, not_after: at(info.not_after) }.into()
        );
    }
    if info.not_yet_valid_at(seconds) {
        let not_before = at(info.not_before);
        return Err(CertificateError::NotValidYetContext { time: now, not_before }.into());
    }
    let parsed =
        webpki::EndEntityCert::try_from(cert).map_err(|_| CertificateError::BadEncoding)?;
    parsed
        .verify_is_valid_for_subject_name(name)
        .map_err(|_| CertificateError::NotValidForName.into())
}

/// The sentence for a refused certificate, carried inside rustls's error.
#[derive(Debug)]
pub struct Refused(pub String);

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refused {}

impl ServerCertVerifier for CaFile {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        self.check(end_entity, intermediates, server_name, now).map_err(|e| {
            let info = CertInfo::parse(end_entity);
            let name = server_name.to_str();
            let sentence =
                explain::refused(&e, info.as_ref(), &name, &self.file, now.as_secs() as i64);
            Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(Refused(
                sentence,
            )))))
        })?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

/// `--insecure`: every certificate is accepted; the handshake's signature is
/// still checked (it costs nothing and proves the server has the key of the
/// certificate it shows, though nobody vouches for that certificate).
#[derive(Debug)]
struct Insecure(Arc<CryptoProvider>);

impl ServerCertVerifier for Insecure {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
