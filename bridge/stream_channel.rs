//! The bounded channel behind both stream directions ([`iter_blocking`] and
//! [`stream_in_executor`]): one lock around one state, items handed over in
//! batches.
//!
//! The sender (the task polling a stream on the worker loop, or the executor
//! job running an iterator) appends items to `buf`, at most [`CAPACITY`] at
//! a time. The receiver never takes items one by one: when its own local
//! queue runs dry it swaps that (empty) queue with `buf` under the lock, so
//! it takes every buffered item with one lock and the two queues trade their
//! allocations instead of making new ones. A sync receiver that keeps up
//! therefore pays one lock per batch, and a wake-up only when it found the
//! buffer empty.
//!
//! # Read-ahead
//!
//! `buf` never holds more than [`CAPACITY`] items and the receiver's local
//! queue holds at most one swapped-out `buf`, so the sender is never more
//! than [`READ_AHEAD`] = 2 x [`CAPACITY`] items ahead of the consumer. (The
//! iter_blocking sender stages a batch before appending it; it stages no
//! more than the room it saw, and the room only grows meanwhile.)
//!
//! # The state
//!
//! | field           | set by                               | cleared by                           |
//! |-----------------|--------------------------------------|--------------------------------------|
//! | `buf`           | sender appends (room permitting)     | receiver swaps it out whole          |
//! | `end`           | sender closes once (`Finished`, `Panicked`, `Lost`) | receiver takes it once, after `buf` is empty |
//! | `receiver_gone` | receiver dropped (never cleared)     |                                      |
//! | `sender_waker`  | async sender, when `buf` is full     | receiver, when it takes a batch or goes away |
//! | `sender_parked` | sync sender, before it waits on `room` | receiver, which then notifies `room` |
//! | `receiver_waker`| receiver, when `buf` is empty and not ended | sender, when it appends or closes |
//!
//! Wakers are taken out under the lock and woken (condvars notified) after it
//! is released.
//!
//! # Waiting: when to spin
//!
//! An async side waits with its waker. The two sync sides wait differently:
//!
//! * the executor job, when the buffer is full, waits for an async consumer
//!   to be scheduled, drain its batch and come back: it parks on a condvar at
//!   once. A spin there only takes the CPU from the consumer it waits for
//!   when the two share a core: with the machine loaded (load average 12 on
//!   2 cores), spinning made `stream_in_executor` over a trivial iterator
//!   4-7 us per item, parking 0.13-0.25 us (the hand-written pattern: 0.25-0.46);
//! * the `iter_blocking` consumer waits for the worker loop, which is always
//!   driven and hands a batch over within microseconds: it spins briefly,
//!   then parks ([`park::block_on`](crate::park)), as every sync wait of the
//!   crate does. Parking at once after a full batch was faster under a loaded CFS scheduler
//!   but 6x slower than the hand-written pattern under a real-time one
//!   (the worker's own spin before it parks then holds the core).
//!
//! [`iter_blocking`]: crate::iter_blocking
//! [`stream_in_executor`]: crate::stream_in_executor

use std::any::Any;
use std::collections::VecDeque;
use std::mem;
use std::task::{Poll, Waker};

use crate::sync::plain::{Condvar, Mutex};

/// The most items the shared buffer holds.
///
/// Half the read-ahead API.md allows. Each batch costs a wake-up or two
/// when the consumer is faster than the producer (it catches up and
/// waits), so the batch is as large as the bound allows: 32 halved the
/// wake-ups per item of 16.
pub(crate) const CAPACITY: usize = 32;

/// The most items a sender is ever ahead of its consumer (API.md: at most 64).
pub(crate) const READ_AHEAD: usize = 2 * CAPACITY;

const _: () = assert!(READ_AHEAD <= 64, "API.md: at most 64 items of read-ahead");

/// How a stream or iterator ended, as the receiver learns it.
pub(crate) enum End {
    /// It returned `None`.
    Finished,
    /// It panicked; the payload resumes in the consumer.
    Panicked(Box<dyn Any + Send>),
    /// Its sender went away without finishing: the message says why and what
    /// to do (a closed executor, a task dropped by its loop).
    Lost(&'static str),
}

struct State<T> {
    buf: VecDeque<T>,
    end: Option<End>,
    receiver_gone: bool,
    sender_waker: Option<Waker>,
    sender_parked: bool,
    receiver_waker: Option<Waker>,
}

impl<T> State<T> {
    /// Takes what wakes the sender (either kind), to wake after unlocking.
    fn take_sender(&mut self) -> (Option<Waker>, bool) {
        (self.sender_waker.take(), mem::take(&mut self.sender_parked))
    }
}

/// The shared half of one stream hand-off.
pub(crate) struct Channel<T> {
    state: Mutex<State<T>>,
    /// A sync sender waits here for room.
    room: Condvar,
}

/// The receiver went away: stop producing.
pub(crate) struct Gone;

/// Registers `waker` in `slot` unless the one there already wakes the same
/// task; returns the replaced waker, to be dropped outside the lock.
fn register(slot: &mut Option<Waker>, waker: &Waker) -> Option<Waker> {
    match slot {
        Some(old) if old.will_wake(waker) => None,
        _ => slot.replace(waker.clone()),
    }
}

impl<T> Channel<T> {
    pub(crate) fn new() -> Channel<T> {
        Channel {
            state: Mutex::new(State {
                buf: VecDeque::with_capacity(CAPACITY),
                end: None,
                receiver_gone: false,
                sender_waker: None,
                sender_parked: false,
                receiver_waker: None,
            }),
            room: Condvar::new(),
        }
    }

    /// Wakes the sender taken by [`State::take_sender`]; call unlocked.
    fn wake_sender(&self, (waker, parked): (Option<Waker>, bool)) {
        if let Some(w) = waker {
            w.wake();
        }
        if parked {
            self.room.notify_one();
        }
    }

    // ----- the sending half -----

    /// The room left in the buffer: `Ready(Ok(n))` with `n > 0`, or
    /// `Err(Gone)` once the receiver is gone. With `waker`, a full buffer
    /// registers it (woken when the receiver takes a batch or goes away) and
    /// returns `Pending`; without, a full buffer is `Ready(Ok(0))`.
    pub(crate) fn poll_room(&self, waker: Option<&Waker>) -> Poll<Result<usize, Gone>> {
        let mut st = self.state.lock();
        if st.receiver_gone {
            return Poll::Ready(Err(Gone));
        }
        let room = CAPACITY - st.buf.len();
        match waker {
            Some(waker) if room == 0 => {
                let old = register(&mut st.sender_waker, waker);
                drop(st);
                drop(old);
                Poll::Pending
            }
            _ => Poll::Ready(Ok(room)),
        }
    }

    /// Blocks this thread (a sync sender) until the buffer has room, or
    /// returns `Err(Gone)` once the receiver is gone. It parks at once, with
    /// no spin: the receiver takes whole batches, and only when it has used
    /// up the last one, so a wait here is as long as the consumer's turn,
    /// and a spin would take the CPU from the consumer it waits for when
    /// the two share a core.
    ///
    /// The caller puts this in a blocking region (the crate's rule for
    /// every blocking call).
    pub(crate) fn wait_room(&self) -> Result<(), Gone> {
        let mut st = self.state.lock();
        loop {
            if st.receiver_gone {
                return Err(Gone);
            }
            if st.buf.len() < CAPACITY {
                return Ok(());
            }
            st.sender_parked = true;
            self.room.wait(&mut st);
        }
    }

    /// Appends every item of `items` (the caller stages no more than the
    /// room it was given) and wakes a waiting receiver. Returns the room
    /// left, or `Err(Gone)`, leaving `items` for the caller to drop outside
    /// the lock, if the receiver went away.
    pub(crate) fn send_batch(&self, items: &mut Vec<T>) -> Result<usize, Gone> {
        let mut st = self.state.lock();
        if st.receiver_gone {
            return Err(Gone);
        }
        debug_assert!(st.buf.len() + items.len() <= CAPACITY);
        st.buf.extend(items.drain(..));
        let room = CAPACITY - st.buf.len();
        let waker = st.receiver_waker.take();
        drop(st);
        if let Some(w) = waker {
            w.wake();
        }
        Ok(room)
    }

    /// Appends one item (there must be room) and wakes a waiting receiver.
    /// Returns the room left, or the item back if the receiver went away.
    pub(crate) fn send(&self, item: T) -> Result<usize, T> {
        let mut st = self.state.lock();
        if st.receiver_gone {
            return Err(item);
        }
        debug_assert!(st.buf.len() < CAPACITY);
        st.buf.push_back(item);
        let room = CAPACITY - st.buf.len();
        let waker = st.receiver_waker.take();
        drop(st);
        if let Some(w) = waker {
            w.wake();
        }
        Ok(room)
    }

    /// Records how the sender ended (the first call wins) and wakes a
    /// waiting receiver.
    pub(crate) fn close(&self, end: End) {
        let mut st = self.state.lock();
        if st.end.is_some() {
            return;
        }
        st.end = Some(end);
        let waker = st.receiver_waker.take();
        drop(st);
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// Whether the receiver went away.
    pub(crate) fn receiver_gone(&self) -> bool {
        self.state.lock().receiver_gone
    }

    // ----- the receiving half -----

    /// Moves every buffered item into `local`, which must be empty:
    /// `Ready(None)` when items were taken, `Ready(Some(end))` once the
    /// buffer is empty and the sender has ended (the end is handed out
    /// once). Otherwise, with `waker`, registers it and returns `Pending`;
    /// without, returns `Pending` at once.
    pub(crate) fn poll_take(
        &self,
        waker: Option<&Waker>,
        local: &mut VecDeque<T>,
    ) -> Poll<Option<End>> {
        debug_assert!(local.is_empty());
        let mut st = self.state.lock();
        if !st.buf.is_empty() {
            mem::swap(&mut st.buf, local);
            let sender = st.take_sender();
            drop(st);
            self.wake_sender(sender);
            return Poll::Ready(None);
        }
        if let Some(end) = st.end.take() {
            return Poll::Ready(Some(end));
        }
        if let Some(waker) = waker {
            let old = register(&mut st.receiver_waker, waker);
            drop(st);
            drop(old);
        }
        Poll::Pending
    }

    /// The receiver goes away: the sender stops at its next hand-off, and a
    /// sender waiting for room is woken to see it. Items still buffered are
    /// dropped here, on the receiver's thread, outside the lock.
    pub(crate) fn drop_receiver(&self) {
        let mut st = self.state.lock();
        st.receiver_gone = true;
        let sender = st.take_sender();
        let receiver = st.receiver_waker.take();
        let items = mem::take(&mut st.buf);
        let end = st.end.take();
        drop(st);
        self.wake_sender(sender);
        drop((receiver, items, end));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_move_whole_and_the_end_comes_after_the_items() {
        let ch = Channel::new();
        let mut staged: Vec<u32> = (0..CAPACITY as u32).collect();
        assert!(matches!(ch.send_batch(&mut staged), Ok(0)));
        assert!(staged.is_empty());
        assert!(matches!(ch.poll_room(None), Poll::Ready(Ok(0))));
        ch.close(End::Finished);
        let mut local = VecDeque::new();
        assert!(matches!(ch.poll_take(None, &mut local), Poll::Ready(None)));
        assert_eq!(local.len(), CAPACITY);
        assert!(local.iter().copied().eq(0..CAPACITY as u32));
        local.clear();
        assert!(matches!(
            ch.poll_take(None, &mut local),
            Poll::Ready(Some(End::Finished))
        ));
        assert!(matches!(ch.poll_take(None, &mut local), Poll::Pending));
    }

    #[test]
    fn a_gone_receiver_refuses_items() {
        let ch = Channel::new();
        assert!(ch.send(1).is_ok());
        ch.drop_receiver();
        assert!(ch.receiver_gone());
        assert!(matches!(ch.send(2), Err(2)));
        assert!(matches!(ch.poll_room(None), Poll::Ready(Err(Gone))));
    }
}
