//! Stopping loops from another thread: a sibling loop that failed, a test
//! that started a server in a thread, a program that embeds one.
//!
//! A loop sleeps in `epoll_wait`, so setting a flag is not enough: something
//! must wake it. Each loop registers a `mio::Waker` (an eventfd) with its
//! `Poll`; [`Stopper::request`] raises the shared request and wakes every loop,
//! which then escalates its own stop to match, by the same rule as a signal
//! (`signals.rs`: graceful first, now on the second request). Signals stay a
//! separate path: each loop polls its own signal pipe, so a SIGTERM reaches
//! every loop without any loop waking another.

use std::io;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use mio::{Registry, Token, Waker};

use crate::signals::Stop;

/// A handle that asks a group of loops to stop; clones share the group.
#[derive(Debug, Clone, Default)]
pub struct Stopper {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// 0: nothing asked; 1: graceful; 2: now. Only ever raised.
    requested: AtomicU8,
    /// One waker per loop watching.
    wakers: Mutex<Vec<Waker>>,
}

impl Stopper {
    /// A new group with no loop in it yet.
    pub fn new() -> Stopper {
        Stopper::default()
    }

    /// Ask every loop of the group to stop, gracefully or now. Asking for less
    /// than was already asked changes nothing.
    pub fn request(&self, stop: Stop) {
        let level = match stop {
            Stop::Graceful => 1,
            Stop::Now => 2,
        };
        self.inner.requested.fetch_max(level, Ordering::SeqCst);
        let wakers = self.inner.wakers.lock().unwrap_or_else(PoisonError::into_inner);
        for waker in wakers.iter() {
            // A loop that has already ended cannot be woken, and need not be.
            let _ = waker.wake();
        }
    }

    /// Add a loop to the group: its `Poll` gets an event for `token` on every request.
    pub(super) fn watch(&self, registry: &Registry, token: Token) -> io::Result<()> {
        let waker = Waker::new(registry, token)?;
        self.inner.wakers.lock().unwrap_or_else(PoisonError::into_inner).push(waker);
        Ok(())
    }

    /// How many stop requests a loop must have seen to match what was asked:
    /// 0, 1 (graceful) or 2 (now).
    pub(super) fn requested(&self) -> u8 {
        self.inner.requested.load(Ordering::SeqCst)
    }
}
