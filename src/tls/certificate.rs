//! What a certificate says, for people: its subject, the names it is for, its dates.
//!
//! rustls and webpki check a certificate but never show it; the course's client
//! logs `getpeercert()`, and a student reading "not valid for 172.16.16.101" wants
//! to see which names it *is* valid for. This is the one place that reads those
//! fields (with x509-parser) and writes them as words and dates.

use std::fmt;
use std::net::IpAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use rustls::pki_types::CertificateDer;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

/// The fields of a certificate a person looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    /// The subject, as OpenSSL prints it: `CN=localhost`.
    pub subject: String,
    /// The issuer, in the same form.
    pub issuer: String,
    /// The names it is for (its subjectAltName): `localhost`, `127.0.0.1`. Only
    /// these count: the subject's CN is no name to a modern client, webpki included.
    pub names: Vec<String>,
    /// Valid from, in seconds since 1970 (UTC).
    pub not_before: i64,
    /// Valid until, in seconds since 1970 (UTC).
    pub not_after: i64,
    /// Issued by itself (issuer = subject): nobody else vouches for it.
    pub self_signed: bool,
    /// It may sign other certificates (basicConstraints CA:TRUE).
    pub is_ca: bool,
}

impl CertInfo {
    /// Read a DER certificate; `None` if it is not one x509-parser can read.
    pub fn parse(der: &CertificateDer<'_>) -> Option<CertInfo> {
        let (_, cert) = X509Certificate::from_der(der.as_ref()).ok()?;
        let names = match cert.subject_alternative_name() {
            Ok(Some(san)) => san.value.general_names.iter().filter_map(name).collect(),
            _ => Vec::new(),
        };
        Some(CertInfo {
            subject: cert.subject().to_string(),
            issuer: cert.issuer().to_string(),
            names,
            not_before: cert.validity().not_before.timestamp(),
            not_after: cert.validity().not_after.timestamp(),
            self_signed: cert.subject().as_raw() == cert.issuer().as_raw(),
            is_ca: cert.is_ca(),
        })
    }

    /// Its end has passed at `now` (seconds since 1970).
    pub fn expired_at(&self, now: i64) -> bool {
        now > self.not_after
    }

    /// Its start has not come yet at `now`.
    pub fn not_yet_valid_at(&self, now: i64) -> bool {
        now < self.not_before
    }

    /// The names it is for, `a, b and c`, or why there are none.
    pub fn names_text(&self) -> String {
        match self.names.split_last() {
            None => format!(
                "no name (it has no subjectAltName; its subject {} is not a name to a client)",
                self.subject
            ),
            Some((last, [])) => last.clone(),
            Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
        }
    }
}

/// One line for the log: subject, names, dates, issuer.
impl fmt::Display for CertInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names = if self.names.is_empty() { "none".to_string() } else { self.names.join(", ") };
        let issuer =
            if self.self_signed { "itself (self-signed)".to_string() } else { self.issuer.clone() };
        write!(
            f,
            "subject {}, names {names}, valid from {} until {}, issued by {issuer}",
            self.subject,
            date_time(self.not_before),
            date_time(self.not_after),
        )
    }
}

/// A subjectAltName entry as a client compares it: a DNS name or an IP address.
fn name(general: &GeneralName<'_>) -> Option<String> {
    match general {
        GeneralName::DNSName(dns) => Some(dns.to_string()),
        GeneralName::IPAddress(&[a, b, c, d]) => Some(IpAddr::from([a, b, c, d]).to_string()),
        GeneralName::IPAddress(bytes) => {
            <[u8; 16]>::try_from(*bytes).ok().map(|v6| IpAddr::from(v6).to_string())
        }
        _ => None,
    }
}

/// Now, in seconds since 1970.
pub fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

/// `2026-04-22`, the day (UTC) of a time in seconds since 1970.
pub fn date(secs: i64) -> String {
    let (y, m, d) = day(secs);
    format!("{y:04}-{m:02}-{d:02}")
}

/// Year, month and day (UTC) of a time in seconds since 1970.
pub fn day(secs: i64) -> (i64, u32, u32) {
    civil(secs.div_euclid(86_400))
}

/// `2026-04-22 08:15 UTC`.
pub fn date_time(secs: i64) -> String {
    let in_day = secs.rem_euclid(86_400);
    format!("{} {:02}:{:02} UTC", date(secs), in_day / 3600, in_day % 3600 / 60)
}

/// Year, month, day of a day count since 1970-01-01 (the proleptic Gregorian
/// calendar; Howard Hinnant's `civil_from_days`, exact for every i64 day here).
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(date(0), "1970-01-01");
        // The course's domain.crt expired at 2026-04-22 00:00:00 UTC.
        assert_eq!(date(1_776_816_000), "2026-04-22");
        assert_eq!(date_time(1_776_816_000 + 8 * 3600 + 15 * 60 + 59), "2026-04-22 08:15 UTC");
        assert_eq!(date(951_782_400), "2000-02-29");
        assert_eq!(date(-1), "1969-12-31");
    }

    #[test]
    fn names_in_words() {
        let mut info = CertInfo {
            subject: "CN=localhost".into(),
            issuer: "CN=localhost".into(),
            names: vec![],
            not_before: 0,
            not_after: 0,
            self_signed: true,
            is_ca: true,
        };
        assert!(info.names_text().starts_with("no name (it has no subjectAltName"));
        info.names = vec!["localhost".into()];
        assert_eq!(info.names_text(), "localhost");
        info.names.push("127.0.0.1".into());
        info.names.push("mesin1".into());
        assert_eq!(info.names_text(), "localhost, 127.0.0.1 and mesin1");
    }
}
