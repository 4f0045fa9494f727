//! The bytes one leg of a relay has not taken yet: a buffer that exists only
//! while bytes wait.
//!
//! A relay copies each piece it reads from one socket straight into the other
//! socket from the loop's one shared read buffer; only when that socket's send
//! buffer is full is the rest kept here, until the socket takes it. So an idle
//! relayed client, or one whose bytes flow, holds no buffer at all: eight
//! bytes of pointer per leg, nothing behind it. The buffer grows (by doubling,
//! like a `Vec`) up to `--max-pending` plus one read, within the room the
//! loop's [`Budget`] has left, and every byte of its capacity is charged to
//! that budget; it is freed, and refunded, the moment it is empty.
//!
//! Allocation never aborts the process: the queue and its box are allocated
//! with `try_reserve`, and a "no" only pauses reading (or ends this one
//! connection), never the loop.

use std::collections::VecDeque;

use crate::event_loop::Budget;

/// A ring buffer in a box, or nothing. The box holds a one-element array so
/// that it can be allocated fallibly (a `Vec` of one, `try_reserve`d, turned
/// into a box without copying); `Box::new` would abort when memory runs out.
type Queue = Box<[VecDeque<u8>; 1]>;

/// Bytes read from one socket that the other has not taken yet, oldest first.
#[derive(Debug, Default)]
pub struct Unsent(Option<Queue>);

impl Unsent {
    /// Bytes waiting.
    pub fn len(&self) -> usize {
        self.0.as_ref().map_or(0, |q| q[0].len())
    }

    /// True when nothing waits (and so no buffer exists).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Memory held for it, as charged to the budget.
    pub fn capacity(&self) -> usize {
        self.0.as_ref().map_or(0, |q| q[0].capacity())
    }

    /// The oldest waiting bytes that lie in one piece of memory.
    pub fn front(&self) -> &[u8] {
        self.0.as_ref().map_or(&[], |q| q[0].as_slices().0)
    }

    /// Make room for `extra` more bytes, so that [`Unsent::push`] allocates
    /// nothing; false if the allocator says no.
    ///
    /// Grows by doubling, but never past what can wait (reading stops at
    /// `max_pending`, and one read adds `extra`), nor past the budget's room
    /// by more than `extra`.
    pub fn reserve(&mut self, extra: usize, max_pending: usize, budget: &mut Budget) -> bool {
        let Some(queue) = self.queue() else { return false };
        let queue = &mut queue[0];
        let (len, capacity) = (queue.len(), queue.capacity());
        let needed = len.saturating_add(extra);
        if needed <= capacity {
            return true;
        }
        let target = capacity
            .saturating_mul(2)
            .min(max_pending.saturating_add(extra))
            .min(capacity.saturating_add(budget.room()))
            .max(needed);
        if queue.try_reserve_exact(target - len).is_err() && queue.try_reserve_exact(extra).is_err()
        {
            return false;
        }
        budget.charge(queue.capacity() - capacity);
        true
    }

    /// Keep `data` (after [`Unsent::reserve`] made room for it).
    pub fn push(&mut self, data: &[u8]) {
        if let Some(queue) = &mut self.0 {
            queue[0].extend(data);
        }
    }

    /// The socket took the first `n` waiting bytes: forget them, and free the
    /// buffer (refunding the budget) once nothing waits.
    pub fn consume(&mut self, n: usize, budget: &mut Budget) {
        let Some(queue) = &mut self.0 else { return };
        queue[0].drain(..n.min(queue[0].len()));
        if queue[0].is_empty() {
            budget.refund(queue[0].capacity());
            self.0 = None;
        }
    }

    /// The queue, made (empty) if there is none; `None` when the allocator
    /// says no.
    fn queue(&mut self) -> Option<&mut Queue> {
        if self.0.is_none() {
            let mut one = Vec::new();
            one.try_reserve_exact(1).ok()?;
            one.push(VecDeque::new());
            // A boxed slice of length one is an array of one: no copy, no allocation.
            self.0 = Some(one.into_boxed_slice().try_into().ok()?);
        }
        self.0.as_mut()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exists_only_while_bytes_wait_and_charges_its_capacity() {
        let mut budget = Budget::new(1 << 20, 4);
        let mut unsent = Unsent::default();
        assert_eq!((unsent.len(), unsent.capacity(), unsent.front()), (0, 0, &[][..]));
        assert!(unsent.reserve(5, 64, &mut budget));
        unsent.push(b"hello");
        assert_eq!(unsent.front(), b"hello");
        assert_eq!(budget.used(), unsent.capacity());
        unsent.consume(2, &mut budget);
        assert_eq!(unsent.front(), b"llo");
        unsent.consume(3, &mut budget);
        assert!(unsent.is_empty());
        assert_eq!((unsent.capacity(), budget.used()), (0, 0), "freed and refunded");
    }

    #[test]
    fn grows_within_the_bound_and_the_budget() {
        let mut budget = Budget::new(100, 4);
        let mut unsent = Unsent::default();
        assert!(unsent.reserve(60, 1000, &mut budget));
        unsent.push(&[1; 60]);
        // The budget has 40 bytes of room (or a little less): the buffer
        // grows to what is needed, not to double.
        assert!(unsent.reserve(60, 1000, &mut budget));
        assert!(unsent.capacity() >= 120 && unsent.capacity() < 240, "{}", unsent.capacity());
        assert_eq!(budget.used(), unsent.capacity());
    }
}
