//! rustls's errors as one sentence a student understands.
//!
//! `invalid peer certificate: UnknownIssuer` says what the code saw; a student
//! needs what it means for *this* server: `the server's certificate is
//! self-signed and not in ca.crt`. [`refused`] is called by the verifier, which
//! has the certificate, the name asked for and the file at hand; [`sentence`]
//! turns any error of a handshake (the verifier's sentence included) into the line
//! the client prints, and [`handshake_ended`] and [`handshake_timed_out`] say
//! how a server that may not speak TLS left a client's handshake. [`client_failed`]
//! is the server's side: why it closed a client's TLS connection, in the words
//! its log line gives.

use rustls::{AlertDescription, CertificateError, Error, PeerIncompatible};

use super::certificate::{date, CertInfo};
use super::verify::Refused;

/// Why the server's certificate was refused: `error` from the checks, `cert`
/// what it says (if it could be read), `server_name` the name asked for,
/// `ca_file` the `--ca` file, `now` in seconds since 1970.
pub fn refused(
    error: &Error,
    cert: Option<&CertInfo>,
    server_name: &str,
    ca_file: &str,
    now: i64,
) -> String {
    let Error::InvalidCertificate(reason) = error else {
        return format!("the server's certificate was refused: {error}");
    };
    let today = date(now);
    match (reason, cert) {
        (CertificateError::Expired | CertificateError::ExpiredContext { .. }, Some(c)) => {
            format!("the server's certificate expired on {} (today is {today})", date(c.not_after))
        }
        (CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. }, Some(c)) => {
            format!(
                "the server's certificate is not valid until {} (today is {today} here: is \
                 a clock wrong?)",
                date(c.not_before)
            )
        }
        (
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            Some(c),
        ) => wrong_name(c, server_name),
        (CertificateError::UnknownIssuer | CertificateError::BadSignature, Some(c))
            if c.self_signed =>
        {
            format!("the server's certificate is self-signed and not in {ca_file}")
        }
        (CertificateError::UnknownIssuer, Some(c)) => {
            format!(
                "the server's certificate is not signed by {ca_file} (its issuer is {})",
                c.issuer
            )
        }
        (CertificateError::BadSignature, Some(c)) => format!(
            "the server's certificate says it was issued by {}, but the signature does not \
             match that CA's key: it is forged or damaged",
            c.issuer
        ),
        (CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. }, _) => {
            "the server's certificate is not meant for a TLS server (its extended key usage \
             says otherwise)"
                .to_string()
        }
        (CertificateError::Other(other), Some(c)) => other_reason(&other.0.to_string(), c, ca_file)
            .unwrap_or_else(|| format!("the server's certificate was refused: {error}")),
        _ => format!("the server's certificate was refused: {error}"),
    }
}

/// `is for a and b, not c`, or why it is for no name at all.
fn wrong_name(cert: &CertInfo, server_name: &str) -> String {
    if cert.names.is_empty() {
        return format!(
            "the server's certificate names no host (it has no subjectAltName, and its subject \
             {} is not a name to a client), so it is not for {server_name}",
            cert.subject
        );
    }
    format!(
        "the server's certificate is for {}, not {server_name} (connect by one of those names, \
         or give one with --server-name)",
        cert.names_text()
    )
}

/// webpki's reasons that rustls passes on only as text.
fn other_reason(text: &str, cert: &CertInfo, ca_file: &str) -> Option<String> {
    match text {
        // A CA's certificate (CA:TRUE, as `openssl req -x509` makes) used as the
        // server's own: in --ca it would have been trusted as it is.
        "CaUsedAsEndEntity" if cert.self_signed => {
            Some(format!("the server's certificate is self-signed and not in {ca_file}"))
        }
        "CaUsedAsEndEntity" => Some(format!(
            "the server's certificate is a CA's certificate ({}), not a server's, and not in \
             {ca_file}",
            cert.subject
        )),
        "UnsupportedCertVersion" => Some(
            "the server's certificate is an old X.509 version 1 certificate, which rustls does \
             not accept; make a new one with `progjar cert DIR`"
                .to_string(),
        ),
        _ => None,
    }
}

/// A TLS error (of a handshake, mostly) as one sentence: the verifier's own
/// sentence if it refused the certificate, otherwise what the error means.
pub fn sentence(error: &Error) -> String {
    if let Error::InvalidCertificate(CertificateError::Other(other)) = error {
        if let Some(refused) = other.0.downcast_ref::<Refused>() {
            return refused.0.clone();
        }
    }
    match error {
        Error::InappropriateHandshakeMessage { got_type, .. }
            if format!("{got_type:?}") == "ClientHello" =>
        {
            "the server sent our own TLS hello back: it is a plaintext echo server (leave out \
             --tls, or start the server with TLS)"
                .to_string()
        }
        Error::InvalidMessage(_)
        | Error::InappropriateMessage { .. }
        | Error::InappropriateHandshakeMessage { .. } => {
            format!("the server's answer is not TLS (is it a plaintext server?): {error}")
        }
        Error::AlertReceived(alert) => alert_sentence(*alert),
        Error::PeerIncompatible(PeerIncompatible::ServerDoesNotSupportTls12Or13) => {
            "the server speaks neither TLS 1.2 nor 1.3, the versions progjar uses".to_string()
        }
        Error::PeerIncompatible(_) => {
            format!("the server and progjar have no TLS setting in common: {error}")
        }
        _ => format!("the TLS handshake failed: {error}"),
    }
}

/// The server closed (`reset` false) or reset the connection before the
/// client's handshake was done.
pub fn handshake_ended(reset: bool) -> String {
    format!(
        "the server {} the connection during the TLS handshake: does it speak TLS?",
        if reset { "reset" } else { "closed" }
    )
}

/// The server answered no hello within `after` (a duration in words).
pub fn handshake_timed_out(after: &str) -> String {
    format!(
        "timed out in the TLS handshake after {after}: the server may not speak TLS (a \
         plaintext server waits for a line that never comes)"
    )
}

/// The server refused us with an alert.
fn alert_sentence(alert: AlertDescription) -> String {
    let why = match alert {
        AlertDescription::HandshakeFailure => {
            ": it shares no cipher suite or key exchange with progjar"
        }
        AlertDescription::ProtocolVersion => ": it speaks neither TLS 1.2 nor 1.3",
        AlertDescription::UnrecognisedName => ": it has no certificate for the name we asked for",
        _ => "",
    };
    format!("the server ended the TLS handshake with the alert {alert:?}{why}")
}

/// The TLS record type a hello comes in (a handshake record): a TLS client's first byte.
const HANDSHAKE_RECORD: u8 = 22;

/// Why the server ended a client's TLS connection, in plain words for its
/// close line: `error` from rustls, `first` the client's first byte,
/// `handshaking` whether the handshake was still going on.
pub fn client_failed(error: &Error, first: Option<u8>, handshaking: bool) -> &'static str {
    let not_tls = handshaking && first.is_some_and(|b| b != HANDSHAKE_RECORD);
    match error {
        Error::InvalidMessage(_) if not_tls && first.is_some_and(|b| b.is_ascii_graphic()) => {
            "it does not speak TLS, its first bytes are plain text: a plaintext client on the TLS port?"
        }
        Error::InvalidMessage(_) if not_tls => {
            "it does not speak TLS: its first bytes are no TLS record"
        }
        Error::InvalidMessage(_) if handshaking => "its TLS hello is malformed",
        Error::InappropriateMessage { .. } | Error::InappropriateHandshakeMessage { .. }
            if handshaking =>
        {
            "it sent a TLS handshake message out of turn"
        }
        // A hello without signature_algorithms is an old one: TLS 1.2 brought
        // that extension, and rustls looks for it before it looks at versions.
        Error::PeerIncompatible(
            PeerIncompatible::Tls12NotOffered
            | PeerIncompatible::Tls12NotOfferedOrEnabled
            | PeerIncompatible::SupportedVersionsExtensionRequired
            | PeerIncompatible::SignatureAlgorithmsExtensionRequired,
        ) => "it offers only TLS versions older than 1.2 (progjar speaks TLS 1.2 and 1.3)",
        Error::PeerIncompatible(PeerIncompatible::NoCipherSuitesInCommon) => {
            "it offers no cipher suite progjar has"
        }
        Error::PeerIncompatible(PeerIncompatible::NoKxGroupsInCommon) => {
            "it offers no key exchange progjar has"
        }
        Error::PeerIncompatible(PeerIncompatible::NoSignatureSchemesInCommon) => {
            "it accepts no signature our certificate's key can make"
        }
        Error::PeerIncompatible(_) => "it has no TLS setting in common with progjar",
        Error::AlertReceived(AlertDescription::CertificateExpired) => {
            "it refused our certificate: it has expired"
        }
        Error::AlertReceived(
            AlertDescription::UnknownCA
            | AlertDescription::BadCertificate
            | AlertDescription::CertificateUnknown,
        ) => "it refused our certificate (it does not trust it: its own message says why)",
        Error::AlertReceived(AlertDescription::ProtocolVersion) => {
            "it refused: it wants a TLS version progjar does not speak"
        }
        Error::AlertReceived(AlertDescription::HandshakeFailure) => {
            "it refused: it found no TLS setting in common with progjar"
        }
        Error::AlertReceived(_) => "it ended TLS with an alert",
        Error::DecryptError => "a TLS record from it did not decrypt (changed on the way?)",
        _ if handshaking => "its TLS handshake failed",
        _ => "it broke the TLS protocol",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert(names: &[&str], self_signed: bool) -> CertInfo {
        CertInfo {
            subject: "CN=localhost".into(),
            issuer: if self_signed { "CN=localhost" } else { "CN=Other CA" }.into(),
            names: names.iter().map(|n| n.to_string()).collect(),
            not_before: 1_745_280_000, // 2025-04-22
            not_after: 1_776_816_000,  // 2026-04-22
            self_signed,
            is_ca: self_signed,
        }
    }

    fn why(e: CertificateError, c: &CertInfo, name: &str) -> String {
        refused(&Error::InvalidCertificate(e), Some(c), name, "ca.crt", 1_796_515_200)
    }

    #[test]
    fn sentences() {
        let c = cert(&["localhost", "127.0.0.1"], false);
        assert_eq!(
            why(CertificateError::Expired, &c, "localhost"),
            "the server's certificate expired on 2026-04-22 (today is 2026-12-06)"
        );
        assert!(why(CertificateError::NotValidForName, &c, "172.16.16.101").starts_with(
            "the server's certificate is for localhost and 127.0.0.1, not 172.16.16.101"
        ));
        assert_eq!(
            why(CertificateError::UnknownIssuer, &c, "localhost"),
            "the server's certificate is not signed by ca.crt (its issuer is CN=Other CA)"
        );
        let own = cert(&[], true);
        assert_eq!(
            why(CertificateError::UnknownIssuer, &own, "localhost"),
            "the server's certificate is self-signed and not in ca.crt"
        );
        assert!(why(CertificateError::NotValidForName, &own, "localhost")
            .starts_with("the server's certificate names no host"));
    }

    #[test]
    fn a_client_that_is_not_tls_is_named_for_what_it_sent() {
        let bad = Error::InvalidMessage(rustls::InvalidMessage::InvalidContentType);
        assert!(client_failed(&bad, Some(b'G'), true).contains("plaintext client"));
        assert!(client_failed(&bad, Some(0), true).ends_with("are no TLS record"));
        assert_eq!(client_failed(&bad, Some(22), true), "its TLS hello is malformed");
        let old = Error::PeerIncompatible(PeerIncompatible::Tls12NotOffered);
        assert!(client_failed(&old, Some(22), true).contains("older than 1.2"));
    }

    #[test]
    fn the_verifier_sentence_is_the_handshake_sentence() {
        let inner = rustls::OtherError(std::sync::Arc::new(Refused("said once".into())));
        let e = Error::InvalidCertificate(CertificateError::Other(inner));
        assert_eq!(sentence(&e), "said once");
        assert!(sentence(&Error::AlertReceived(AlertDescription::HandshakeFailure))
            .contains("no cipher suite"));
    }
}
