//! What the loop does by the clock and when asked to stop: idle timeouts,
//! connections not set up in time (a TLS handshake), connections waiting for
//! memory whose TCP stopped (`stall.rs`), the accept retry, the shutdown a
//! stop request begins and its grace time, and the summary at the end.
//!
//! With `--loops N` every loop has its own signal pipe (each signal is one
//! byte in each), so one SIGTERM begins the shutdown of every loop at once and
//! no loop waits for another.

use std::time::Instant;

use log::{info, warn};

use super::idle::IdleList;
use super::{Closed, EventLoop, Handler, Readiness, Service, Summary, SIGNALS};
use crate::signals::{self, SignalPipe, Stop};
use crate::units::grouped;

impl<S: Service> EventLoop<S> {
    /// Take every stop request that came, by signal (`SIGNALS`) or from
    /// another thread (the waker). Returns true when the loop must stop at once.
    pub(super) fn on_stop_request(&mut self, token: mio::Token) -> bool {
        if token == SIGNALS {
            // Each signal delivered is one byte, so two delivered before we look
            // are two here (two sent so fast that the kernel merged them are one).
            while let Some(signal) = self.signals.as_mut().and_then(SignalPipe::take) {
                if self.escalate(signals::name(signal)) == Stop::Now {
                    return true;
                }
            }
            return false;
        }
        while self.escalation.requests() < self.stopper.requested() {
            if self.escalate("a stop request") == Stop::Now {
                return true;
            }
        }
        false
    }

    /// One more request to stop, by the one rule (`signals.rs`): the first
    /// begins a graceful shutdown, the next stops at once.
    fn escalate(&mut self, why: &str) -> Stop {
        let stop = self.escalation.request();
        if stop == Stop::Now {
            warn!(target: S::LOG, "{why} again: stopping now");
            return stop;
        }
        // Stop accepting: dropping the listener closes it, so new clients are
        // refused by the kernel instead of waiting in a backlog nobody reads.
        if let Some(mut listener) = self.listener.take() {
            let _ = self.poll.registry().deregister(&mut listener);
        }
        self.shutdown_at = Some(Instant::now() + self.config.grace);
        info!(
            target: S::LOG,
            "{why}: shutting down: no new connections; waiting up to {:.1}s for {} open",
            self.config.grace.as_secs_f64(),
            grouped(self.connections.len() as u64)
        );
        stop
    }

    /// Whether any timer is running, i.e. whether a wakeup must read the clock.
    pub(super) fn needs_clock(&self) -> bool {
        self.idle.is_some()
            || self.setup.as_ref().is_some_and(|s| s.next_deadline().is_some())
            || self.retry_accept_at.is_some()
            || self.shutdown_at.is_some()
            || self.warnings.lines.due().is_some()
            || self.budget.waiting() > 0
            || self.stalls.next_look().is_some()
    }

    /// The earliest timer, which bounds how long `poll` may sleep.
    pub(super) fn next_deadline(&self) -> Option<Instant> {
        let idle = self.idle.as_ref().and_then(IdleList::next_deadline);
        let setup = self.setup.as_ref().and_then(IdleList::next_deadline);
        let quiet = self.warnings.lines.due();
        let look = self.stalls.next_look();
        [idle, setup, self.retry_accept_at, self.shutdown_at, quiet, look]
            .into_iter()
            .flatten()
            .min()
    }

    /// Run the timers that are due; idle and setup timeouts only if `expire_idle`.
    pub(super) fn timers(&mut self, now: Instant, expire_idle: bool) {
        self.log_quiet_lines(now);
        while let Some(key) = self.idle.as_ref().and_then(|idle| idle.expired(now)) {
            if !expire_idle {
                break;
            }
            // Ask the kernel whether bytes are on their way before calling the
            // client idle (idle.rs); a socket that cannot say is closed.
            let seen = self.connections.get(key).map(|entry| entry.handler.in_flight());
            if let (Some(idle), Some(Ok(seen))) = (&mut self.idle, &seen) {
                if !idle.expire(key, now, *seen) {
                    continue;
                }
            }
            if seen.is_none() {
                // Not a connection (cannot happen: close unlinks it); never spin on it.
                if let Some(idle) = &mut self.idle {
                    idle.remove(key);
                }
                continue;
            }
            self.summary.idle_closed += 1;
            self.close(key, Closed::IdleTimeout);
        }
        // Connections not set up in time get one last turn to say why (a
        // handshake that just finished says nothing and carries on).
        while let Some(key) = self.setup.as_ref().and_then(|setup| setup.expired(now)) {
            if !expire_idle {
                break;
            }
            if let Some(setup) = &mut self.setup {
                setup.remove(key);
            }
            self.turn(key, Readiness::EXPIRED, Some(now));
        }
        self.look_for_stalls(now);
        if self.retry_accept_at.is_some_and(|at| at <= now) {
            self.retry_accept_at = None;
            self.accept();
        }
        if self.shutdown_at.is_some_and(|at| at <= now) {
            let keys: Vec<usize> = self.connections.iter().map(|(key, _)| key).collect();
            for key in keys {
                if let Some(entry) = self.connections.get_mut(key) {
                    entry.handler.stop();
                }
                self.close(key, Closed::Shutdown);
            }
        }
    }

    /// Log the one-line summary and hand it back.
    pub(super) fn finish(mut self) -> Summary {
        // Connections still open (a forced stop) count what they echoed too.
        self.summary.moved += self.connections.iter().map(|(_, e)| e.handler.moved()).sum::<u64>();
        if let Some(quiet) = self.warnings.lines.finish() {
            info!(target: S::LOG, "{quiet} ({} open)", grouped(self.connections.len() as u64));
        }
        info!(target: S::LOG, "{}", self.summary.line());
        self.summary
    }
}
