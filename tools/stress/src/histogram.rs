//! The latency histograms, and their text in the JSON: HdrHistogram's V2 +
//! DEFLATE format in base64 (the `HISTF…` string HdrHistogram's own logs and
//! tools use), written by [`encode`] and read back by [`decode`].
//!
//! `merge` reads files anyone may hand it, so [`decode`] checks every length
//! against the input before anything is allocated: the base64 text bounds the
//! compressed bytes, which must be exactly as long as their header says; the
//! inflated bytes are read only up to what a histogram of this tool's bounds
//! can take; and the V2 header's own payload length and bounds must match them
//! before hdrhistogram's deserializer (which allocates what the header claims)
//! sees it. A crafted 2 KB file claiming a 2 GiB payload is refused after
//! reading a few hundred KiB at most.

use std::io::Read as _;

use base64::Engine as _;
use flate2::read::ZlibDecoder;
use hdrhistogram::serialization::{Deserializer, Serializer as _, V2DeflateSerializer};
use hdrhistogram::Histogram;

/// The longest latency the histograms resolve: an hour, far beyond any timeout
/// here; longer values are recorded as an hour instead of being lost.
const MAX_US: u64 = 3_600_000_000;

/// Significant digits kept: 3 means a value is off by at most 0.1 %, in about
/// 200 KiB per histogram.
const DIGITS: u8 = 3;

/// The cookies of HdrHistogram's V2 format, plain and compressed (its
/// `serialization` module, which keeps them private).
const V2_COOKIE: u32 = 0x1c84_9313;
const V2_DEFLATE_COOKIE: u32 = 0x1c84_9314;

/// Bytes of the V2 header: cookie, payload length, normalizing offset, digits
/// (4 bytes each), lowest and highest value (8 each), and a ratio (8).
const V2_HEADER: usize = 40;

/// A varint (a count, or a run of zero counts) takes at most 9 bytes.
const MAX_VARINT: usize = 9;

/// A new, empty microsecond histogram with this tool's bounds.
pub fn new() -> Histogram<u64> {
    // Constants that hdrhistogram accepts (low >= 1, high >= 2 * low, digits
    // <= 5); a failure here is a programming error, caught by every test run.
    Histogram::new_with_bounds(1, MAX_US, DIGITS).expect("constant histogram bounds are valid")
}

/// `h` as base64 text; `None` if it cannot be serialized (its counts would
/// have to pass i64::MAX), and the JSON then carries no histogram.
pub fn encode(h: &Histogram<u64>) -> Option<String> {
    let mut bytes = Vec::new();
    V2DeflateSerializer::new().serialize(h, &mut bytes).ok()?;
    Some(base64::engine::general_purpose::STANDARD.encode(&bytes))
}

/// The longest V2 payload a histogram of this tool's bounds can have: one
/// varint per count.
fn max_payload() -> usize {
    new().distinct_values() * MAX_VARINT
}

/// The histogram back from its text, or why not, in a few hundred KiB of
/// memory whatever the text claims.
pub fn decode(text: &str) -> Result<Histogram<u64>, String> {
    let max_payload = max_payload();
    // DEFLATE adds at most 5 bytes per 16 KiB block to data it cannot
    // compress; base64 makes 4 characters of 3 bytes.
    let max_compressed = 8 + max_payload + max_payload / 1024 + 64;
    if text.len() > max_compressed.div_ceil(3) * 4 {
        return Err(format!(
            "its histogram is {} characters long, more than one of this tool's can be",
            text.len()
        ));
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|e| format!("its histogram is not base64: {e}"))?;
    let inflated = inflate(&bytes, V2_HEADER + max_payload)?;
    check_v2_header(&inflated)?;
    Deserializer::new()
        .deserialize(&mut inflated.as_slice())
        .map_err(|e| format!("its histogram cannot be read: {e:?}"))
}

/// A big-endian u32 at `at` (the caller checked the length).
fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// A big-endian u64 at `at` (the caller checked the length).
fn u64_at(b: &[u8], at: usize) -> u64 {
    (u64::from(u32_at(b, at)) << 32) | u64::from(u32_at(b, at + 4))
}

/// The V2 bytes inside a V2 + DEFLATE histogram, at most `limit` of them.
fn inflate(bytes: &[u8], limit: usize) -> Result<Vec<u8>, String> {
    if bytes.len() < 8 || u32_at(bytes, 0) != V2_DEFLATE_COOKIE {
        return Err("its histogram is not in HdrHistogram's V2 + DEFLATE format".to_string());
    }
    let compressed = &bytes[8..];
    let claimed = u32_at(bytes, 4) as usize;
    if claimed != compressed.len() {
        return Err(format!(
            "its histogram's header claims {claimed} compressed bytes, but {} follow",
            compressed.len()
        ));
    }
    let mut inflated = Vec::new();
    ZlibDecoder::new(compressed)
        .take(limit as u64 + 1)
        .read_to_end(&mut inflated)
        .map_err(|e| format!("its histogram cannot be inflated: {e}"))?;
    if inflated.len() > limit {
        return Err(format!(
            "its histogram inflates to more than {limit} bytes, more than one of this tool's can"
        ));
    }
    Ok(inflated)
}

/// The V2 header agrees with the bytes after it and with this tool's bounds.
fn check_v2_header(v2: &[u8]) -> Result<(), String> {
    if v2.len() < V2_HEADER || u32_at(v2, 0) != V2_COOKIE {
        return Err("its histogram has no HdrHistogram V2 header".to_string());
    }
    let claimed = u32_at(v2, 4) as usize;
    let payload = v2.len() - V2_HEADER;
    if claimed != payload {
        return Err(format!(
            "its histogram's header claims a payload of {claimed} bytes, but {payload} follow"
        ));
    }
    let (digits, low, high) = (u32_at(v2, 12), u64_at(v2, 16), u64_at(v2, 24));
    if (digits, low, high) != (u32::from(DIGITS), 1, MAX_US) {
        return Err(format!(
            "its histogram has bounds {low}..{high} µs with {digits} digits, not this tool's 1..{MAX_US} with {DIGITS}"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_histogram_comes_back_from_its_text_unchanged() {
        let mut h = new();
        for v in [3, 40, 41, 500, 70_000, 3_000_000] {
            h.record_n(v, v % 7 + 1).expect("record");
        }
        let text = encode(&h).expect("serializes");
        assert!(text.starts_with("HISTF"), "{text}");
        assert_eq!(decode(&text).expect("decodes"), h);
    }

    /// `h`'s V2 bytes with `edit` applied, compressed and in base64 again.
    fn tampered(edit: impl Fn(&mut Vec<u8>)) -> String {
        let mut h = new();
        h.record(500).expect("record");
        let text = encode(&h).expect("serializes");
        let bytes = base64::engine::general_purpose::STANDARD.decode(text).expect("base64");
        let mut v2 = inflate(&bytes, 1 << 20).expect("inflates");
        edit(&mut v2);
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        std::io::Write::write_all(&mut z, &v2).expect("compress");
        let compressed = z.finish().expect("compress");
        let mut out = V2_DEFLATE_COOKIE.to_be_bytes().to_vec();
        out.extend((compressed.len() as u32).to_be_bytes());
        out.extend(compressed);
        base64::engine::general_purpose::STANDARD.encode(out)
    }

    #[test]
    fn lengths_and_bounds_that_disagree_with_the_input_are_refused() {
        let claims_2_gib =
            tampered(|v2| v2[4..8].copy_from_slice(&(i32::MAX as u32).to_be_bytes()));
        assert!(decode(&claims_2_gib).unwrap_err().contains("claims a payload of 2147483647"));
        let huge_bounds = tampered(|v2| v2[24..32].copy_from_slice(&u64::MAX.to_be_bytes()));
        assert!(decode(&huge_bounds).unwrap_err().contains("not this tool's"));
        let long = tampered(|v2| v2.resize(V2_HEADER + max_payload() + 1, 0));
        assert!(decode(&long).unwrap_err().contains("inflates to more than"));
        assert!(decode(&"A".repeat(10 << 20)).unwrap_err().contains("characters long"));
        let mut short_header = tampered(|_| {});
        short_header.replace_range(8..12, "AAAA");
        assert!(decode(&short_header).is_err());
    }
}
