//! Fuzz the command line's parsers with arbitrary UTF-8: `size_in`, `duration`
//! and `Cidr::from_str` must never panic, and what they accept must make sense
//! (a size in its range, a duration above zero and at most a day, a network that
//! prints as text which parses back to the same network).

#![no_main]

use std::net::IpAddr;

use libfuzzer_sys::fuzz_target;
use progjar::event_loop::admission::Cidr;
use progjar::parse::{duration, size_in, MAX_DURATION};

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };

    for range in [0..=usize::MAX, 1..=1 << 20] {
        if let Ok(bytes) = size_in(s, range.clone()) {
            assert!(range.contains(&bytes), "{s:?} gave {bytes}, outside {range:?}");
        }
    }

    if let Ok(d) = duration(s) {
        assert!(!d.is_zero() && d <= MAX_DURATION, "{s:?} gave {d:?}");
    }

    if let Ok(c) = s.parse::<Cidr>() {
        let text = c.to_string();
        assert_eq!(text.parse::<Cidr>(), Ok(c), "{s:?} printed as {text:?}");
        // A network holds the address it was written with, in either form
        // when that is an IPv4 (or IPv4-mapped) one.
        if let Some(own) = s.trim().split('/').next().and_then(|a| a.parse::<IpAddr>().ok()) {
            assert!(c.contains(own), "{s:?}: {c} lacks {own}");
            assert_eq!(c.contains(own.to_canonical()), c.contains(own), "{s:?}: {c}");
        }
    }
});
