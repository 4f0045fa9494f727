//! What the proxy says about each relayed connection, in the course's words.
//!
//! The course's `insecure_proxy.py` logs every 32-byte piece it relays:
//! `received data from client b'INI ADALAH DATA YANG DIKIRIM ABC'`, `sending
//! to realserver b'...'`, the same from the realserver to the client, and
//! `no more data` at the end. That is the lesson of the relay in the middle:
//! it reads everything in plaintext. progjar's proxy says the same, at info,
//! for each piece while a direction has carried up to [`PIECES_UP_TO`]; past
//! that, a line at each doubling (`relayed 8 KiB from client to realserver so
//! far`), so that a gigabyte costs a few dozen lines, not millions.
//!
//! Every such line is one of the loop's per-connection lines: it counts
//! against the same quota as `connection from` (`event_loop/throttle.rs`),
//! and under a flood what is not printed is counted and reported.

use std::net::SocketAddr;
use std::time::Instant;

use log::{info, log_enabled, warn, Level};

use super::leg::Side;
use crate::event_loop::throttle::{Line, LineQuota};
use crate::preview::preview;
use crate::units;

/// The log target: lines read `INFO:proxy:received data from client b'...'`.
pub const LOG: &str = "progjar::proxy";

/// Each piece is logged while its direction has carried less than this many
/// bytes before it: a message or a small file in full, as the course's proxy
/// shows it (the client logs its pieces up to the same size).
pub const PIECES_UP_TO: u64 = 4 * 1024;

/// May a line about one connection be printed now?
fn allowed(lines: &mut LineQuota) -> bool {
    lines.allow(Instant::now(), Line::Detail)
}

/// A piece was read from `from`, after `before` bytes, and goes to `to`.
pub fn piece(lines: &mut LineQuota, from: Side, to: Side, data: &[u8], before: u64) {
    if before < PIECES_UP_TO {
        if log_enabled!(target: LOG, Level::Info) {
            if allowed(lines) {
                info!(target: LOG, "received data from {from} {}", preview(data));
            }
            if allowed(lines) {
                info!(target: LOG, "sending to {to} {}", preview(data));
            }
        }
    } else {
        progress(lines, from, to, before, data.len() as u64);
    }
}

/// `n` more bytes went from `from` to `to`, after `before` (by splice the
/// proxy never sees them): a line when they pass a doubling.
pub fn progress(lines: &mut LineQuota, from: Side, to: Side, before: u64, n: u64) {
    if let Some(mark) = doubling(before, n) {
        if log_enabled!(target: LOG, Level::Info) && allowed(lines) {
            info!(target: LOG, "relayed {} from {from} to {to} so far", units::bytes(mark));
        }
    }
}

/// The power of two the bytes of a direction passed with this piece, if any
/// (the first is twice [`PIECES_UP_TO`]).
fn doubling(before: u64, n: u64) -> Option<u64> {
    let after = before.saturating_add(n);
    let mark = 1u64 << (63 - after.max(1).leading_zeros());
    (mark > before && mark > PIECES_UP_TO).then_some(mark)
}

/// `from` ended its input with `how` (its `FIN`, or TLS's `close_notify`);
/// it goes on to `to` once `to` has every byte.
pub fn no_more_data(lines: &mut LineQuota, from: Side, to: Side, relayed: u64, how: &str) {
    if log_enabled!(target: LOG, Level::Info) && allowed(lines) {
        let passed = match how {
            "FIN" => "its FIN",
            _ => "its close_notify and FIN",
        };
        info!(
            target: LOG,
            "no more data from {from} (after {}): passing {passed} on to {to}",
            units::plural(relayed, "byte")
        );
    }
}

/// Intercepting: client `peer`'s TLS with `side` is up, on the terms `agreed`.
/// On the client's leg that means the client took the proxy's certificate.
pub fn secured(lines: &mut LineQuota, peer: SocketAddr, side: Side, agreed: Option<String>) {
    if log_enabled!(target: LOG, Level::Info) && allowed(lines) {
        let agreed = agreed.unwrap_or_default();
        match side {
            Side::Server => info!(target: LOG, "{peer}: TLS with the realserver: {agreed}"),
            Side::Client => info!(
                target: LOG,
                "{peer}: the client took our certificate (TLS: {agreed}): what it sends is read here"
            ),
        }
    }
}

/// Intercepting: the TLS with client `peer`'s realserver failed (`why`):
/// that leg is closed after its alert, and the client reset.
pub fn tls_failed(lines: &mut LineQuota, peer: SocketAddr, why: &str) {
    if allowed(lines) {
        warn!(target: LOG, "{peer}: TLS with the realserver failed ({why}): resetting the client");
    }
}

/// One side of client `peer`'s connection reset it (or failed): the other
/// side is reset too.
pub fn reset(lines: &mut LineQuota, peer: SocketAddr, gone: Side, why: &std::io::Error) {
    if log_enabled!(target: LOG, Level::Info) && allowed(lines) {
        let other = gone.other();
        info!(target: LOG, "{peer}: the {gone}'s side ended ({why}): resetting the {other}'s too");
    }
}

/// The connect to the real server for client `peer` failed.
pub fn cannot_connect(lines: &mut LineQuota, peer: SocketAddr, why: &std::io::Error) {
    if allowed(lines) {
        warn!(target: LOG, "{peer}: cannot connect to the realserver ({why}): resetting the client");
    }
}
