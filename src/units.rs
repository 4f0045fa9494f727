//! Numbers in words, written once for every progjar output: counts, plurals,
//! sizes, rates and durations.
//!
//! **The convention.** Counts are grouped in thousands (`14,719,062,230`).
//! Sizes are binary, as on the command line (`--size 2MB` is 2 MiB):
//! `B`, `KiB`, `MiB`, `GiB`, where 1 KiB = 1,024 bytes. Byte rates are the
//! same units per second (`MiB/s`). The one decimal unit is a line rate in
//! bits, `Gbit/s` (10⁹ bits a second), because that is how links and iperf3
//! are quoted. docs/README says the same in one sentence.

use std::time::Duration;

/// Bytes in a KiB, MiB and GiB.
const KIB: f64 = 1024.0;
const MIB: f64 = 1024.0 * KIB;
const GIB: f64 = 1024.0 * MIB;

/// `7640` as `7,640`, for counts a reader compares at a glance.
pub fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `1 connection`, `2,000 connections`: a count with its noun, in the right number.
pub fn plural(n: u64, noun: &str) -> String {
    let s = if n == 1 { "" } else { "s" };
    format!("{} {noun}{s}", grouped(n))
}

/// A size in binary units: `46 B`, `1.5 KiB`, `16.0 MiB`, `1.00 GiB`.
pub fn bytes(n: u64) -> String {
    let b = n as f64;
    if b < KIB {
        format!("{n} B")
    } else if b < MIB {
        format!("{:.1} KiB", b / KIB)
    } else if b < GIB {
        format!("{:.1} MiB", b / MIB)
    } else {
        format!("{:.2} GiB", b / GIB)
    }
}

/// Bytes per second in binary units: `0.5 KiB/s`, `3.0 MiB/s`, `1.10 GiB/s`;
/// `-` when no time passed (a rate over nothing means nothing).
pub fn byte_rate(bytes: u64, secs: f64) -> String {
    if secs <= 0.0 || !secs.is_finite() {
        return "- B/s".to_string();
    }
    let per_sec = bytes as f64 / secs;
    if per_sec < MIB {
        format!("{:.1} KiB/s", per_sec / KIB)
    } else if per_sec < GIB {
        format!("{:.1} MiB/s", per_sec / MIB)
    } else {
        format!("{:.2} GiB/s", per_sec / GIB)
    }
}

/// A line rate: bytes over `secs` as decimal gigabits a second, `0.191 Gbit/s`.
pub fn gbit_rate(bytes: u64, secs: f64) -> f64 {
    if secs <= 0.0 || !secs.is_finite() {
        return 0.0;
    }
    bytes as f64 * 8.0 / 1e9 / secs
}

/// A latency in microseconds as people read it: `812 µs`, `3.41 ms`, `1.20 s`.
pub fn micros(us: u64) -> String {
    if us < 1_000 {
        format!("{us} µs")
    } else if us < 1_000_000 {
        format!("{:.2} ms", us as f64 / 1e3)
    } else {
        format!("{:.2} s", us as f64 / 1e6)
    }
}

/// A duration in seconds, the way the command line takes it: `10 s`, `2.5 s`.
pub fn secs(d: Duration) -> String {
    format!("{} s", d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_grouped_and_nouns_agree() {
        assert_eq!(grouped(0), "0");
        assert_eq!(grouped(999), "999");
        assert_eq!(grouped(7640), "7,640");
        assert_eq!(grouped(14_719_062_230), "14,719,062,230");
        assert_eq!(plural(1, "connection"), "1 connection");
        assert_eq!(plural(2000, "connection"), "2,000 connections");
        assert_eq!(plural(0, "byte"), "0 bytes");
    }

    #[test]
    fn sizes_and_rates_are_binary() {
        assert_eq!(bytes(46), "46 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(16 << 20), "16.0 MiB");
        assert_eq!(bytes(1 << 30), "1.00 GiB");
        assert_eq!(byte_rate(3 << 20, 1.0), "3.0 MiB/s");
        assert_eq!(byte_rate(512, 1.0), "0.5 KiB/s");
        assert_eq!(byte_rate(5, 0.0), "- B/s");
        assert!((gbit_rate(125_000_000, 1.0) - 1.0).abs() < 1e-9);
    }

    #[test]
    fn durations() {
        assert_eq!(micros(812), "812 µs");
        assert_eq!(micros(3_410), "3.41 ms");
        assert_eq!(micros(1_200_000), "1.20 s");
        assert_eq!(secs(Duration::from_millis(2500)), "2.5 s");
        assert_eq!(secs(Duration::from_secs(10)), "10 s");
    }
}
