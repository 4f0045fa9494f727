//! Parsers for the command line's sizes and durations.
//!
//! They are plain functions of `&str` so that argh can call them
//! (`from_str_fn`) and the property tests in `tests/parse.rs` can hammer them.
//! Every error is one short line that names the bad value.
//!
//! Kept hand-written rather than taken from a crate, because the crates accept
//! a different language: `humantime` wants a unit on every integer span, so it
//! refuses the course-style `--timeout 10` and `2.5s`; `parse-size` reads `KB`
//! as 1000 and takes `1.5K`, `1e3` and `1_000`, where these take binary
//! multiples of whole numbers only.

use std::ops::RangeInclusive;
use std::time::Duration;

/// Parse a byte count: `65536`, `64K`, `64KiB`, `4M`, `4MiB`, `1G`, `1GiB`
/// (binary multiples, case-insensitive), within `range`.
pub fn size_in(s: &str, range: RangeInclusive<usize>) -> Result<usize, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, suffix) = t.split_at(split);
    let unit: usize = match suffix.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => return Err(format!("'{s}' is not a size (use e.g. 65536, 64KiB or 4MiB)")),
    };
    let n: usize = digits
        .parse()
        .map_err(|_| format!("'{s}' is not a size (use e.g. 65536, 64KiB or 4MiB)"))?;
    let bytes = n.checked_mul(unit).ok_or_else(|| format!("'{s}' is too large"))?;
    if range.contains(&bytes) {
        Ok(bytes)
    } else {
        Err(format!("'{s}' must be from {} to {} bytes", range.start(), range.end()))
    }
}

/// The longest duration accepted: a day is more than any timeout here needs,
/// and it keeps `Instant + Duration` far from overflow.
pub const MAX_DURATION: Duration = Duration::from_secs(24 * 60 * 60);

/// Parse a duration: `10` or `2.5` (seconds), `2.5s`, `500ms`, `1m`; positive,
/// at most a day.
pub fn duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let bad = || format!("'{s}' is not a duration (use e.g. 10, 2.5s or 500ms)");
    let (number, scale) = if let Some(n) = t.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = t.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = t.strip_suffix('m') {
        (n, 60.0)
    } else {
        (t, 1.0)
    };
    // Only plain decimal numbers: f64's parser would also take "inf" and "1e9".
    if number.is_empty() || !number.chars().all(|c| c.is_ascii_digit() || c == '.') {
        return Err(bad());
    }
    let secs = number.parse::<f64>().map_err(|_| bad())? * scale;
    if secs <= 0.0 || secs.is_nan() {
        return Err(format!("'{s}' must be more than zero"));
    }
    if secs > MAX_DURATION.as_secs_f64() {
        return Err(format!("'{s}' is longer than a day"));
    }
    // Under half a nanosecond rounds to a zero timeout, which std's sockets refuse.
    let d = Duration::from_secs_f64(secs);
    if d.is_zero() {
        return Err(format!("'{s}' is less than a nanosecond"));
    }
    Ok(d)
}

/// A network prefix length from 1 to `max` bits (`64` of an IPv6 address).
pub fn prefix_len(s: &str, max: u8) -> Result<u8, String> {
    match s.trim().parse::<u8>() {
        Ok(n) if (1..=max).contains(&n) => Ok(n),
        _ => Err(format!("'{s}' must be a prefix length from 1 to {max}")),
    }
}

/// A whole number of at least 1 (connections, clients, messages): `500`.
pub fn count(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!("'{s}' must be a whole number of at least 1")),
    }
}

/// A TCP port, `0` to `65535` (0 asks the kernel for any free port).
pub fn port(s: &str) -> Result<u16, String> {
    let n = number_in(s, 0..=u16::MAX.into());
    n.ok()
        .and_then(|n| u16::try_from(n).ok())
        .ok_or_else(|| "port must be a number from 0 to 65535".to_string())
}

/// Split `HOST`, `HOST:PORT`, `[V6]` or `[V6]:PORT` (any bytes) into the host,
/// without brackets, and the port written after it, if any: the one rule for
/// the client's servers and the server's `--bind`. A bare IPv6 literal (`::1`)
/// has colons of its own, so a port after it needs brackets, as in URLs.
pub fn host_and_port(arg: &[u8]) -> Result<(&[u8], Option<u16>), String> {
    let shown = || String::from_utf8_lossy(arg);
    let (host, port) = if let Some(rest) = arg.strip_prefix(b"[") {
        let close = rest.iter().position(|&b| b == b']');
        let close = close.ok_or_else(|| format!("'{}' has no closing ]", shown()))?;
        let after = &rest[close + 1..];
        let port = match after.strip_prefix(b":") {
            Some(p) => Some(p),
            None if after.is_empty() => None,
            None => return Err(format!("'{}': after ] comes :PORT", shown())),
        };
        (&rest[..close], port)
    } else {
        match arg.iter().filter(|&&b| b == b':').count() {
            1 => {
                let colon = arg.iter().position(|&b| b == b':').unwrap_or(arg.len());
                (&arg[..colon], Some(&arg[colon + 1..]))
            }
            // No colon: a name or IPv4 address; several: an IPv6 literal without a port.
            _ => (arg, None),
        }
    };
    if host.is_empty() {
        return Err(format!("'{}' names no host", shown()));
    }
    let port = port.map(|p| self::port(&String::from_utf8_lossy(p))).transpose()?;
    Ok((host, port))
}

/// A whole number within `range`, with the same plain words for every number
/// option (instead of Rust's "invalid digit found in string").
pub fn number_in(s: &str, range: RangeInclusive<u64>) -> Result<u64, String> {
    match s.trim().parse::<u64>() {
        Ok(n) if range.contains(&n) => Ok(n),
        _ => Err(format!("'{s}' must be a whole number from {} to {}", range.start(), range.end())),
    }
}
