//! Property tests of the command line's parsers: sizes (`--read-size 64KiB`),
//! durations (`--timeout 2.5s`) and networks (`--allow 10.0.0.0/8`).
//!
//! Each property runs [`CASES`] random cases, so the whole file takes well under
//! a second; `PROPTEST_CASES=100000 cargo test --release --test parse` hammers harder.
//! The fuzzer in `tools/fuzz/` (docs/fuzz.md) goes after the same parsers.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use progjar::event_loop::admission::Cidr;
use progjar::parse::{duration, size_in, MAX_DURATION};
use proptest::prelude::*;

/// Random cases per property: enough to find a slip, few enough for a fast `cargo test`.
const CASES: u32 = 256;

/// [`CASES`], or `PROPTEST_CASES` when it is set (`with_cases` alone would override it).
fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|n| n.parse().ok());
    ProptestConfig::with_cases(cases.unwrap_or(CASES))
}

/// Every suffix `size_in` takes, with its multiple.
const SUFFIXES: &[(&str, usize)] = &[
    ("", 1),
    ("b", 1),
    ("k", 1 << 10),
    ("kb", 1 << 10),
    ("kib", 1 << 10),
    ("m", 1 << 20),
    ("mb", 1 << 20),
    ("mib", 1 << 20),
    ("g", 1 << 30),
    ("gb", 1 << 30),
    ("gib", 1 << 30),
];

/// A suffix in a random mix of upper and lower case (`kIb`, `MB`, `g`), with its multiple.
fn suffix() -> impl Strategy<Value = (String, usize)> {
    (prop::sample::select(SUFFIXES), any::<u8>()).prop_map(|((s, unit), caps)| {
        let s = s
            .chars()
            .enumerate()
            .map(|(i, c)| if caps >> i & 1 == 1 { c.to_ascii_uppercase() } else { c })
            .collect();
        (s, unit)
    })
}

/// A count: mostly small, sometimes anything up to `usize::MAX` (which overflows with a suffix).
fn count() -> impl Strategy<Value = usize> {
    prop_oneof![3 => 0usize..=1 << 20, 1 => any::<usize>()]
}

/// Strings close to the ones the parsers take, where the edge cases are.
fn near_miss(alphabet: &'static str) -> impl Strategy<Value = String> {
    prop_oneof![any::<String>(), alphabet]
}

/// Any IPv6 address but the IPv4-mapped ones (`::ffff:a.b.c.d`), which are IPv4 clients.
fn plain_v6() -> impl Strategy<Value = Ipv6Addr> {
    any::<u128>()
        .prop_map(Ipv6Addr::from)
        .prop_filter("IPv4-mapped", |a| a.to_ipv4_mapped().is_none())
}

/// Any network, of either family, built from an address and a prefix length.
fn cidr() -> impl Strategy<Value = Cidr> {
    prop_oneof![
        (any::<u32>(), 0u8..=32).prop_map(|(a, p)| Cidr::new(Ipv4Addr::from(a).into(), p).unwrap()),
        (plain_v6(), 0u8..=128).prop_map(|(a, p)| Cidr::new(a.into(), p).unwrap()),
        // Written the way a dual-stack server logs its IPv4 clients.
        (any::<u32>(), 0u8..=128).prop_map(|(a, p)| Cidr::new(
            Ipv4Addr::from(a).to_ipv6_mapped().into(),
            p
        )
        .unwrap()),
    ]
}

/// A network as address bits, width, prefix, and the `Cidr` parsed from its text.
fn network() -> impl Strategy<Value = (u128, u32, u8, Cidr)> {
    prop_oneof![
        (any::<u32>(), 0u8..=32).prop_map(|(a, p)| (
            u128::from(a),
            32,
            p,
            Ipv4Addr::from(a).to_string()
        )),
        (plain_v6(), 0u8..=128).prop_map(|(a, p)| (u128::from(a), 128, p, a.to_string())),
    ]
    .prop_map(|(bits, width, p, addr)| (bits, width, p, format!("{addr}/{p}").parse().unwrap()))
}

/// The address of `width` bits (32: IPv4, 128: IPv6) that is `bits`.
fn ip(bits: u128, width: u32) -> IpAddr {
    if width == 32 {
        Ipv4Addr::from(bits as u32).into()
    } else {
        Ipv6Addr::from(bits).into()
    }
}

/// `width`-bit mask of the first `prefix` bits.
fn mask(width: u32, prefix: u8) -> u128 {
    let all = if width == 32 { u128::from(u32::MAX) } else { u128::MAX };
    all & !all.checked_shr(u32::from(prefix)).unwrap_or(0)
}

proptest! {
    #![proptest_config(config())]

    // ---- sizes ----

    #[test]
    fn size_round_trips_every_count_and_suffix(n in count(), (suffix, unit) in suffix()) {
        let s = format!("{n}{suffix}");
        match n.checked_mul(unit) {
            Some(bytes) => prop_assert_eq!(size_in(&s, 0..=usize::MAX), Ok(bytes)),
            None => {
                let e = size_in(&s, 0..=usize::MAX).unwrap_err();
                prop_assert!(e.contains(&format!("'{s}'")) && e.contains("too large"), "{}", e);
            }
        }
    }

    #[test]
    fn size_rejects_out_of_range_naming_the_value(
        lo in 1usize..=1 << 20,
        len in 0usize..=1 << 20,
        below in any::<bool>(),
        off in 1usize..=1 << 20,
    ) {
        let hi = lo + len;
        let n = if below { lo.saturating_sub(off) } else { hi + off };
        prop_assume!(n < lo || n > hi);
        let s = n.to_string();
        let e = size_in(&s, lo..=hi).unwrap_err();
        prop_assert!(e.contains(&format!("'{s}'")), "{}", e);
        prop_assert!(e.contains(&lo.to_string()) && e.contains(&hi.to_string()), "{}", e);
    }

    #[test]
    fn size_never_panics(s in near_miss("[ 0-9kKmMgGiIbB.+-]{0,24}"), lo in any::<usize>(), hi in any::<usize>()) {
        // Also empty ranges (lo > hi): nothing fits them, so every answer is an error.
        if let Ok(bytes) = size_in(&s, lo..=hi) {
            prop_assert!((lo..=hi).contains(&bytes));
        }
    }

    // ---- durations ----

    #[test]
    fn duration_takes_decimals_with_every_unit(
        whole in prop_oneof![0u64..=100, 0u64..=100_000_000],
        frac in "[0-9]{0,6}",
        (unit, unit_ns) in prop::sample::select(&[("", 1_000_000_000u128), ("s", 1_000_000_000), ("ms", 1_000_000), ("m", 60_000_000_000)][..]),
    ) {
        let s = if frac.is_empty() { format!("{whole}{unit}") } else { format!("{whole}.{frac}{unit}") };
        // The exact value as a fraction of nanoseconds, to judge the parser's floating point.
        let den = 10u128.pow(frac.len() as u32);
        let num = (u128::from(whole) * den + frac.parse::<u128>().unwrap_or(0)) * unit_ns;
        let max = MAX_DURATION.as_nanos() * den;
        if num == 0 {
            let e = duration(&s).unwrap_err();
            prop_assert!(e.contains(&format!("'{s}'")) && e.contains("more than zero"), "{}", e);
        } else if num > max + den {
            let e = duration(&s).unwrap_err();
            prop_assert!(e.contains(&format!("'{s}'")) && e.contains("longer than a day"), "{}", e);
        } else if num <= max {
            let d = duration(&s).unwrap();
            let exact = num / den;
            prop_assert!(d.as_nanos().abs_diff(exact) <= 1, "{} gave {:?}, not {}ns", s, d, exact);
        } // else within a nanosecond over a day: either answer is fair
    }

    #[test]
    fn duration_round_trips_whole_seconds(n in 1u64..=MAX_DURATION.as_secs()) {
        prop_assert_eq!(duration(&n.to_string()), Ok(Duration::from_secs(n)));
        prop_assert_eq!(duration(&format!("{n}s")), Ok(Duration::from_secs(n)));
    }

    #[test]
    fn duration_round_trips_millis(n in 1u64..=MAX_DURATION.as_millis() as u64) {
        prop_assert_eq!(duration(&format!("{n}ms")), Ok(Duration::from_millis(n)));
    }

    #[test]
    fn duration_round_trips_minutes(n in 1u64..=MAX_DURATION.as_secs() / 60) {
        prop_assert_eq!(duration(&format!("{n}m")), Ok(Duration::from_secs(60 * n)));
    }

    #[test]
    fn duration_rejects_over_a_day(n in MAX_DURATION.as_secs() + 1..u64::MAX, unit in prop::sample::select(&["", "s", "ms", "m"][..])) {
        let n = if unit == "ms" { n.saturating_mul(1000) } else { n };
        let s = format!("{n}{unit}");
        prop_assert!(duration(&s).is_err(), "{} was taken", s);
    }

    #[test]
    fn duration_rejects_negatives(n in 0u64..=100_000, unit in prop::sample::select(&["", "s", "ms", "m"][..])) {
        let s = format!("-{n}{unit}");
        let e = duration(&s).unwrap_err();
        prop_assert!(e.contains(&format!("'{s}'")), "{}", e);
    }

    #[test]
    fn duration_never_panics(s in near_miss("[ 0-9.eE+-naifNIms]{0,24}")) {
        if let Ok(d) = duration(&s) {
            prop_assert!(d > Duration::ZERO && d <= MAX_DURATION, "{} gave {:?}", s, d);
        }
    }

    // ---- networks ----

    #[test]
    fn cidr_display_round_trips(c in cidr()) {
        prop_assert_eq!(c.to_string().parse::<Cidr>(), Ok(c));
    }

    #[test]
    fn cidr_contains_its_prefix_and_nothing_else((bits, width, p, c) in network(), other in any::<u128>()) {
        let m = mask(width, p);
        prop_assert!(c.contains(ip(bits, width)), "{} lacks its own address", c);
        let same = ip((bits & m) | (other & !m & mask(width, width as u8)), width);
        prop_assume!(!matches!(same, IpAddr::V6(a) if a.to_ipv4_mapped().is_some()));
        prop_assert!(c.contains(same), "{} lacks {}", c, same);
        if p > 0 {
            let first = ip(bits ^ (1 << (width - 1)), width);
            prop_assert!(!c.contains(first), "{} holds {} (first bit differs)", c, first);
            let last = ip(bits ^ (1 << (width - u32::from(p))), width);
            prop_assert!(!c.contains(last), "{} holds {} (last prefix bit differs)", c, last);
        }
    }

    #[test]
    fn cidr_slash_zero_holds_its_whole_family(v4 in any::<u32>(), v6 in plain_v6(), a in any::<u32>(), b in plain_v6()) {
        let all4 = Cidr::new(Ipv4Addr::from(v4).into(), 0).unwrap();
        let all6 = Cidr::new(v6.into(), 0).unwrap();
        prop_assert!(all4.contains(Ipv4Addr::from(a).into()));
        prop_assert!(all4.contains(Ipv4Addr::from(a).to_ipv6_mapped().into()));
        prop_assert!(!all4.contains(b.into()));
        prop_assert!(all6.contains(b.into()));
        // ::/0 holds ::ffff:0:0/96, the IPv4 clients of a dual-stack listener.
        prop_assert!(all6.contains(Ipv4Addr::from(a).into()));
        prop_assert!(all6.contains(Ipv4Addr::from(a).to_ipv6_mapped().into()));
    }

    #[test]
    fn cidr_matches_ipv4_clients_in_both_forms((bits, width, p, c) in network(), client in any::<u32>()) {
        // Near the network's own bits too, where a slip in the prefix would show.
        for v4 in [Ipv4Addr::from(client), Ipv4Addr::from(bits as u32 ^ (client >> p.min(31)))] {
            let mapped = v4.to_ipv6_mapped();
            let expected = if width == 32 {
                c.contains(v4.into())
            } else {
                let m = mask(128, p);
                u128::from(mapped) & m == bits & m
            };
            prop_assert_eq!(c.contains(v4.into()), expected, "{} and {}", c, v4);
            prop_assert_eq!(c.contains(mapped.into()), expected, "{} and {}", c, mapped);
        }
    }

    #[test]
    fn cidr_matches_ipv4_mapped_clients_as_ipv4(net in any::<u32>(), p in 0u8..=32, client in any::<u32>()) {
        let c = Cidr::new(Ipv4Addr::from(net).into(), p).unwrap();
        let v4 = Ipv4Addr::from(client);
        prop_assert_eq!(c.contains(v4.to_ipv6_mapped().into()), c.contains(v4.into()));
        // Near the network too, not only at random.
        let near = Ipv4Addr::from(net ^ (client & (u32::MAX >> p.min(31))));
        prop_assert_eq!(c.contains(near.to_ipv6_mapped().into()), c.contains(near.into()));
    }

    #[test]
    fn cidr_rejects_long_prefixes(v4 in any::<u32>(), v6 in plain_v6(), p4 in 33u32..=100_000, p6 in 129u32..=100_000) {
        for s in [format!("{}/{p4}", Ipv4Addr::from(v4)), format!("{v6}/{p6}")] {
            let e = s.parse::<Cidr>().unwrap_err();
            prop_assert!(e.contains(&format!("'{s}'")), "{}", e);
        }
    }

    #[test]
    fn cidr_never_panics(s in near_miss("[ 0-9a-fA-F:./%-]{0,48}")) {
        if let Ok(c) = s.parse::<Cidr>() {
            prop_assert_eq!(c.to_string().parse::<Cidr>(), Ok(c));
        }
    }
}

// ---- examples ----

#[test]
fn size_examples() {
    let any = 0..=usize::MAX;
    assert_eq!(size_in("65536", any.clone()), Ok(65536));
    assert_eq!(size_in("64K", any.clone()), Ok(65536));
    assert_eq!(size_in("64KiB", any.clone()), Ok(65536));
    assert_eq!(size_in("64kib", any.clone()), Ok(65536));
    assert_eq!(size_in("4MiB", any.clone()), Ok(4 << 20));
    assert_eq!(size_in("1G", any.clone()), Ok(1 << 30));
    for bad in ["", "K", "-1", "+1", "1.5K", "1T", "1 KiB B", "0x10", "١٢"] {
        let e = size_in(bad, any.clone()).unwrap_err();
        assert!(e.contains(&format!("'{bad}'")), "{bad:?}: {e}");
    }
    assert_eq!(size_in("0", 1..=10), Err("'0' must be from 1 to 10 bytes".into()));
    assert_eq!(size_in("2MiB", 1..=1 << 20), Err("'2MiB' must be from 1 to 1048576 bytes".into()));
}

#[test]
fn duration_examples() {
    assert_eq!(duration("10"), Ok(Duration::from_secs(10)));
    assert_eq!(duration("2.5"), Ok(Duration::from_millis(2500)));
    assert_eq!(duration("2.5s"), Ok(Duration::from_millis(2500)));
    assert_eq!(duration("500ms"), Ok(Duration::from_millis(500)));
    assert_eq!(duration("0.5ms"), Ok(Duration::from_micros(500)));
    assert_eq!(duration("1m"), Ok(Duration::from_secs(60)));
    assert_eq!(duration("86400"), Ok(MAX_DURATION));
    assert_eq!(duration("1440m"), Ok(MAX_DURATION));
    assert_eq!(duration("86400000ms"), Ok(MAX_DURATION));
    for bad in [
        "",
        "s",
        "ms",
        ".",
        "0",
        "0s",
        "0.0",
        "0ms",
        "-1",
        "-0.5s",
        "NaN",
        "nan",
        "inf",
        "infinity",
        "-inf",
        "1e9",
        "1E3",
        "1.2.3",
        "5 s",
        "1h",
        "86401",
        "86400.001",
        "1441m",
        "86400001ms",
        // Less than a nanosecond: it would round to a zero timeout.
        "0.0000000001",
        "0.0000001ms",
    ] {
        let e = duration(bad).unwrap_err();
        assert!(e.contains(&format!("'{bad}'")), "{bad:?}: {e}");
    }
}

#[test]
fn cidr_examples() {
    let net: Cidr = "10.0.0.0/8".parse().unwrap();
    assert!(net.contains("10.1.2.3".parse().unwrap()));
    assert!(net.contains("::ffff:10.1.2.3".parse().unwrap()));
    assert!(!net.contains("11.0.0.1".parse().unwrap()));
    assert!(!net.contains("::a01:203".parse().unwrap()), "an IPv4-compatible address is IPv6");

    let one: Cidr = "::1/128".parse().unwrap();
    assert!(one.contains("::1".parse().unwrap()));
    assert!(!one.contains("::2".parse().unwrap()));
    assert!(!one.contains("127.0.0.1".parse().unwrap()));
    assert_eq!(one.to_string(), "::1/128");

    assert_eq!("127.0.0.1".parse::<Cidr>().unwrap().to_string(), "127.0.0.1/32");
    assert_eq!("::ffff:127.0.0.1".parse::<Cidr>().unwrap().to_string(), "127.0.0.1/32");
    assert_eq!("::ffff:127.0.0.1/128".parse::<Cidr>().unwrap().to_string(), "127.0.0.1/32");
    assert_eq!("::ffff:192.168.0.0/112".parse::<Cidr>().unwrap().to_string(), "192.168.0.0/16");
    assert_eq!(" 0.0.0.0/0 ".parse::<Cidr>().unwrap().to_string(), "0.0.0.0/0");

    for bad in [
        "",
        "/",
        "/8",
        "10.0.0.0/",
        "10.0.0.0/33",
        "10.0.0.0/256",
        "10.0.0.0/-1",
        "10.0.0.0/+8",
        "10.0.0.0/8/8",
        "10.0.0/8",
        "256.0.0.0/8",
        "::1/129",
        "[::1]/128",
        "localhost",
        "10.0.0.0 /8",
        "fe80::1%eth0/64",
    ] {
        let e = bad.parse::<Cidr>().unwrap_err();
        assert!(e.contains(&format!("'{bad}'")), "{bad:?}: {e}");
    }
}
