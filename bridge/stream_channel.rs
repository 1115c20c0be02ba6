//! The bounded channel behind both stream directions ([`iter_blocking`] and
//! [`stream_in_executor`]): one lock around one state, items handed over in
//! batches.
//!
//! The sender (the task polling a stream on the worker loop, or the executor
//! job running an iterator) appends items to `buf`. The [`Receiver`] never
//! takes items one by one: when its local queue runs dry it swaps that
//! (empty) queue with `buf` under the lock, so it takes every buffered item
//! with one lock and the two queues trade their allocations instead of
//! making new ones. A sync receiver that keeps up therefore pays one lock per
//! batch, and a wake-up only when it found the buffer empty.
//!
//! # Read-ahead
//!
//! `held` counts the items handed to the receiver and not yet released; the
//! sender's room is [`READ_AHEAD`] - `buf` - `held`, so it is never more
//! than [`READ_AHEAD`] items ahead of the consumer. (The iter_blocking
//! sender stages a batch before appending it; it stages no more than the
//! room it saw, and the room only grows meanwhile.) The receiver releases
//! its batch when it comes back for the next one, and half of it once half
//! is consumed, so the sender refills while the consumer works through the
//! rest: with a consumer faster than its producer, each round of wake-ups
//! moves a whole read-ahead's worth of items, not half.
//!
//! Under `--cfg bridge_loom` the state is loom's (lock, condvar, hint) and
//! the read-ahead is 2, with a half-batch release from batches of 2, so that
//! the models in `loom-tests/tests/stream_channel.rs` fill the buffer, wait
//! for room and release early within a few items (each item adds locks, so
//! interleavings, to explore).
//!
//! # The state
//!
//! | field           | set by                               | cleared by                           |
//! |-----------------|--------------------------------------|--------------------------------------|
//! | `buf`           | sender appends (room permitting)     | receiver swaps it out whole          |
//! | `end`           | sender, once (`Finished`, `Panicked`, `Lost`): `close` wakes the receiver, `set_end` leaves that to a later `wake_receiver` | receiver takes it once, after `buf` is empty |
//! | `held`          | receiver, to the size of the batch it takes | receiver, as it consumes (half a batch, then all) |
//! | `receiver_gone` | receiver dropped (never cleared)     |                                      |
//! | `sender_waker`  | async sender, when it has no room    | receiver, when it makes room or goes away |
//! | `sender_parked` | sync sender, before it waits on `room` | receiver, which then notifies `room` |
//! | `receiver_waker`| receiver, when `buf` is empty and not ended | sender, when it appends or closes |
//!
//! Wakers are taken out under the lock and woken (condvars notified) after it
//! is released.
//!
//! # Waiting: when to spin
//!
//! With a producer and a consumer that are both fast, the cost per item is
//! set by how often a side sleeps: a sleep and its wake-up cost tens of
//! microseconds on an idle vCPU, against well under one per item for the
//! hand-over itself. Each side therefore spins before it sleeps, in the way
//! that suits its thread:
//!
//! * the executor job, with no room, and the [`stream_in_executor`]
//!   consumer, with nothing buffered, spin by yielding their core
//!   ([`YieldSpin`]): the two often share a core, and a busy spin there
//!   holds the core the other side needs. The async consumer spreads its
//!   spin over polls (it wakes its own task and returns `Pending`), so its
//!   loop's other tasks run meanwhile. When both parked at once, a stream
//!   of 10,000 trivial items cost 1.0-1.3x the hand-written pattern (a
//!   `spawn_blocking` thread feeding an mpsc channel); with the spin,
//!   0.56-0.74x over four runs (benches/README.md, "Streams");
//! * the `iter_blocking` consumer waits for the worker loop, which is always
//!   driven and hands items over within microseconds: it spins on the
//!   [`ready`](Receiver::ready) hint, with no lock taken and no waker
//!   registered, lets a few items gather before it takes them, then parks
//!   ([`park::block_on`](crate::park)), as every sync wait of the crate
//!   does.
//!
//! [`iter_blocking`]: crate::iter_blocking
//! [`stream_in_executor`]: crate::stream_in_executor

use std::any::Any;
use std::collections::VecDeque;
use std::mem;
use std::task::{Poll, Waker};

use crossbeam_utils::CachePadded;

use crate::park::YieldSpin;
use crate::sync::{Arc, AtomicUsize, Condvar, Mutex, MutexGuard, Ordering};

/// The most items a sender is ever ahead of its consumer: the API.md bound.
///
/// As large as the bound allows: when the consumer is faster than the
/// producer it catches up and waits, and each such round costs a wake-up or
/// two, so the items moved per round set the cost per item.
#[cfg(not(bridge_loom))]
pub(crate) const READ_AHEAD: usize = 64;

/// Under loom, 2: the models (`loom-tests/tests/stream_channel.rs`) explore
/// every interleaving of every lock taken, so their state space grows with
/// the items moved; with 2 a few items already fill the buffer, make the
/// sender wait for room more than once and the receiver release half a
/// batch (one item of two). Nothing in the channel's logic depends on the
/// size beyond the asserts below.
#[cfg(bridge_loom)]
pub(crate) const READ_AHEAD: usize = 2;

/// Batches smaller than this are released only when the receiver comes
/// back for the next one (a half-batch release would cost more than it
/// gains).
#[cfg(not(bridge_loom))]
const RELEASE_EARLY_FROM: usize = 8;

/// Under loom, 2 (with a read-ahead of 2): a full batch releases its first
/// half (one item) once that is consumed, so the models reach the early
/// release.
#[cfg(bridge_loom)]
const RELEASE_EARLY_FROM: usize = 2;

const _: () = assert!(READ_AHEAD <= 64, "API.md: at most 64 items of read-ahead");
// A full batch is released early, and half of a batch is neither none of it
// nor all of it (n / 2 is in 1..n for n >= 2).
const _: () = assert!(RELEASE_EARLY_FROM >= 2 && RELEASE_EARLY_FROM <= READ_AHEAD);

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
    /// Items handed to the receiver and not yet released.
    held: usize,
    end: Option<End>,
    receiver_gone: bool,
    sender_waker: Option<Waker>,
    sender_parked: bool,
    receiver_waker: Option<Waker>,
}

impl<T> State<T> {
    /// How many more items the sender may append.
    fn room(&self) -> usize {
        READ_AHEAD - self.buf.len() - self.held
    }

    /// Takes what wakes the sender if it may go on, to wake after unlocking.
    fn take_sender_if_room(&mut self) -> (Option<Waker>, bool) {
        if self.room() > 0 {
            self.take_sender()
        } else {
            (None, false)
        }
    }

    /// Takes what wakes the sender (either kind), to wake after unlocking.
    fn take_sender(&mut self) -> (Option<Waker>, bool) {
        (self.sender_waker.take(), mem::take(&mut self.sender_parked))
    }
}

/// The shared half of one stream hand-off.
pub(crate) struct Channel<T> {
    state: Mutex<State<T>>,
    /// A hint for a spinning sync receiver, read without the lock: how many
    /// items are buffered ([`READ_AHEAD`] once the end is recorded: take it
    /// at once), set when items are appended or the end recorded, zeroed
    /// when they are taken. The receiver takes under the lock; this only
    /// tells it when to look. On a line of its own, so the receiver's spin
    /// does not read the lock's.
    ready: CachePadded<AtomicUsize>,
    /// A sync sender waits here for room.
    room: Condvar,
    /// Under loom: how many times a sync sender waited on `room`, and a
    /// receiver registered its waker, for the models to tell which paths
    /// they reached. Not modelled.
    #[cfg(bridge_loom)]
    waits: [crate::sync::plain::AtomicUsize; 2],
}

/// Under loom, [`Channel::waits`] of the sync sender.
#[cfg(bridge_loom)]
pub(crate) const SENDER: usize = 0;
/// Under loom, [`Channel::waits`] of the receiver.
#[cfg(bridge_loom)]
pub(crate) const RECEIVER: usize = 1;

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
                buf: VecDeque::with_capacity(READ_AHEAD),
                held: 0,
                end: None,
                receiver_gone: false,
                sender_waker: None,
                sender_parked: false,
                receiver_waker: None,
            }),
            room: Condvar::new(),
            ready: CachePadded::new(AtomicUsize::new(0)),
            #[cfg(bridge_loom)]
            waits: Default::default(),
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

    /// The sender's room: `Ready(Ok(n))` with `n > 0`, or `Err(Gone)` once
    /// the receiver is gone. With `waker`, no room registers it (woken when
    /// the receiver makes room or goes away) and returns `Pending`; without,
    /// no room is `Ready(Ok(0))`.
    pub(crate) fn poll_room(&self, waker: Option<&Waker>) -> Poll<Result<usize, Gone>> {
        let mut st = self.state.lock();
        if st.receiver_gone {
            return Poll::Ready(Err(Gone));
        }
        let room = st.room();
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

    /// Blocks this thread (a sync sender) until it has room, or returns
    /// `Err(Gone)` once the receiver is gone: it spins with `spin` (yielding
    /// its core), then parks (see the module docs).
    ///
    /// The caller puts this in a blocking region (the crate's rule for
    /// every blocking call).
    pub(crate) fn wait_room(&self, spin: &mut YieldSpin) -> Result<(), Gone> {
        spin.yield_until(|| {
            let st = self.state.lock();
            st.receiver_gone || st.room() > 0
        });
        let mut st = self.state.lock();
        loop {
            if st.receiver_gone {
                return Err(Gone);
            }
            if st.room() > 0 {
                return Ok(());
            }
            st.sender_parked = true;
            #[cfg(bridge_loom)]
            self.count_wait(SENDER);
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
        debug_assert!(items.len() <= st.room());
        st.buf.extend(items.drain(..));
        Ok(self.appended(st))
    }

    /// Appends one item (there must be room) and wakes a waiting receiver.
    /// Returns the room left, or the item back if the receiver went away.
    pub(crate) fn send(&self, item: T) -> Result<usize, T> {
        let mut st = self.state.lock();
        if st.receiver_gone {
            return Err(item);
        }
        debug_assert!(st.room() > 0);
        st.buf.push_back(item);
        Ok(self.appended(st))
    }

    /// After an append under `st`: sets the hint, releases the lock and
    /// wakes a waiting receiver; returns the room left.
    fn appended(&self, mut st: MutexGuard<'_, State<T>>) -> usize {
        // ORDERING: Relaxed: a hint; the items are published by the lock.
        self.ready.store(st.buf.len(), Ordering::Relaxed);
        let room = st.room();
        let waker = st.receiver_waker.take();
        drop(st);
        if let Some(w) = waker {
            w.wake();
        }
        room
    }

    /// Records how the sender ended (the first call wins) and wakes a
    /// waiting receiver.
    pub(crate) fn close(&self, end: End) {
        if self.record_end(end) {
            self.wake_receiver();
        }
    }

    /// Records how the sender ended (the first call wins) without waking
    /// the receiver: the caller wakes it later with
    /// [`wake_receiver`](Self::wake_receiver). A receiver that looks
    /// meanwhile already sees the end.
    pub(crate) fn set_end(&self, end: End) {
        self.record_end(end);
    }

    /// Records `end` unless an end is recorded already; returns whether it
    /// did.
    fn record_end(&self, end: End) -> bool {
        let mut st = self.state.lock();
        if st.end.is_some() {
            return false;
        }
        st.end = Some(end);
        // ORDERING: Relaxed: a hint; the end is published by the lock.
        self.ready.store(READ_AHEAD, Ordering::Relaxed);
        true
    }

    /// Wakes a waiting receiver (after [`set_end`](Self::set_end)).
    pub(crate) fn wake_receiver(&self) {
        let waker = self.state.lock().receiver_waker.take();
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// Whether the receiver went away.
    pub(crate) fn receiver_gone(&self) -> bool {
        self.state.lock().receiver_gone
    }

    #[cfg(bridge_loom)]
    fn count_wait(&self, side: usize) {
        // ORDERING: Relaxed: a count the models read after joining.
        self.waits[side].fetch_add(1, crate::sync::plain::Ordering::Relaxed);
    }

    /// Under loom: how many times a sync sender waited for room
    /// ([`SENDER`]), or a receiver registered its waker ([`RECEIVER`]).
    #[cfg(bridge_loom)]
    pub(crate) fn waits(&self, side: usize) -> usize {
        // ORDERING: Relaxed: read after the threads were joined.
        self.waits[side].load(crate::sync::plain::Ordering::Relaxed)
    }

    // ----- the receiving half (through `Receiver`) -----

    /// Releases everything handed out before (`local` is empty: it was all
    /// consumed) and moves every buffered item into `local`: `Ready(None)`
    /// when items were taken, `Ready(Some(end))` once the buffer is empty
    /// and the sender has ended (the end is handed out once). Otherwise,
    /// with `waker`, registers it and returns `Pending`; without, returns
    /// `Pending` at once.
    fn poll_take(&self, waker: Option<&Waker>, local: &mut VecDeque<T>) -> Poll<Option<End>> {
        debug_assert!(local.is_empty());
        let mut st = self.state.lock();
        st.held = 0;
        // ORDERING: Relaxed: a hint, reset under the lock before the take, so
        // an append after it sets it again.
        self.ready.store(0, Ordering::Relaxed);
        let mut old = None;
        let outcome = if !st.buf.is_empty() {
            mem::swap(&mut st.buf, local);
            st.held = local.len();
            if st.end.is_some() {
                // The end is next: a spin on the hint takes it at once.
                // ORDERING: Relaxed: a hint, as above.
                self.ready.store(READ_AHEAD, Ordering::Relaxed);
            }
            Poll::Ready(None)
        } else if let Some(end) = st.end.take() {
            Poll::Ready(Some(end))
        } else {
            if let Some(waker) = waker {
                old = register(&mut st.receiver_waker, waker);
                #[cfg(bridge_loom)]
                self.count_wait(RECEIVER);
            }
            Poll::Pending
        };
        let sender = st.take_sender_if_room();
        drop(st);
        self.wake_sender(sender);
        drop(old);
        outcome
    }

    /// The receiver still holds only `held` of the items handed to it.
    fn release(&self, held: usize) {
        let mut st = self.state.lock();
        st.held = st.held.min(held);
        let sender = st.take_sender_if_room();
        drop(st);
        self.wake_sender(sender);
    }

    /// The receiver goes away: the sender stops at its next hand-off, and a
    /// sender waiting for room is woken to see it. Items still buffered are
    /// dropped here, on the receiver's thread, outside the lock.
    fn drop_receiver(&self) {
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

/// The receiving half: the items taken from the channel and not yet
/// returned, and the point at which half of them are released.
pub(crate) struct Receiver<T> {
    chan: Arc<Channel<T>>,
    local: VecDeque<T>,
    /// When `local` is down to this many items, release the rest of the
    /// batch (`usize::MAX`: not before the next take).
    release_at: usize,
    /// The end (or the panic) was handed out: the channel is done with.
    done: bool,
}

impl<T> Receiver<T> {
    pub(crate) fn new(chan: Arc<Channel<T>>) -> Receiver<T> {
        Receiver {
            chan,
            local: VecDeque::with_capacity(READ_AHEAD),
            release_at: usize::MAX,
            done: false,
        }
    }

    /// The next item already taken, if any; no lock unless this is the
    /// point where half of the batch is released.
    #[inline]
    pub(crate) fn pop(&mut self) -> Option<T> {
        let item = self.local.pop_front()?;
        if self.local.len() == self.release_at {
            self.release_at = usize::MAX;
            self.chan.release(self.local.len());
        }
        Some(item)
    }

    /// Takes the next batch (call when [`pop`](Self::pop) returned `None`):
    /// as [`Channel::poll_take`]; `Ready(Some(end))` marks it done.
    pub(crate) fn poll_take(&mut self, waker: Option<&Waker>) -> Poll<Option<End>> {
        let polled = self.chan.poll_take(waker, &mut self.local);
        match &polled {
            Poll::Ready(None) => {
                let n = self.local.len();
                self.release_at = if n >= RELEASE_EARLY_FROM {
                    n / 2
                } else {
                    usize::MAX
                };
            }
            Poll::Ready(Some(_)) => self.done = true,
            Poll::Pending => {}
        }
        polled
    }

    /// How many items the sender appended since the last take
    /// ([`READ_AHEAD`] once it ended): a hint, read without the lock, for a
    /// receiver that spins.
    pub(crate) fn ready(&self) -> usize {
        // ORDERING: Relaxed: a hint; `poll_take` takes under the lock.
        self.chan.ready.load(Ordering::Relaxed)
    }

    /// Items taken and not yet returned.
    pub(crate) fn buffered(&self) -> usize {
        self.local.len()
    }

    /// Whether the end was handed out.
    pub(crate) fn is_done(&self) -> bool {
        self.done
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        if !self.done {
            self.chan.drop_receiver();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_move_whole_and_the_end_comes_after_the_items() {
        let ch = Arc::new(Channel::new());
        let mut rx = Receiver::new(ch.clone());
        let mut staged: Vec<usize> = (0..READ_AHEAD).collect();
        assert!(matches!(ch.send_batch(&mut staged), Ok(0)));
        assert!(staged.is_empty());
        assert!(matches!(ch.poll_room(None), Poll::Ready(Ok(0))));
        ch.close(End::Finished);
        assert!(rx.pop().is_none());
        assert!(matches!(rx.poll_take(None), Poll::Ready(None)));
        assert_eq!(rx.buffered(), READ_AHEAD);
        // Handed over, not yet consumed: still no room.
        assert!(matches!(ch.poll_room(None), Poll::Ready(Ok(0))));
        for i in 0..READ_AHEAD / 2 {
            assert_eq!(rx.pop(), Some(i));
        }
        // Half consumed: half released.
        assert!(matches!(ch.poll_room(None), Poll::Ready(Ok(n)) if n == READ_AHEAD / 2));
        for i in READ_AHEAD / 2..READ_AHEAD {
            assert_eq!(rx.pop(), Some(i));
        }
        assert!(rx.pop().is_none());
        assert!(matches!(
            rx.poll_take(None),
            Poll::Ready(Some(End::Finished))
        ));
        assert!(rx.is_done());
        assert!(matches!(ch.poll_room(None), Poll::Ready(Ok(READ_AHEAD))));
    }

    #[test]
    fn a_gone_receiver_refuses_items() {
        let ch = Arc::new(Channel::new());
        let rx = Receiver::new(ch.clone());
        assert!(ch.send(1).is_ok());
        drop(rx);
        assert!(ch.receiver_gone());
        assert!(matches!(ch.send(2), Err(2)));
        assert!(matches!(ch.poll_room(None), Poll::Ready(Err(Gone))));
    }
}
