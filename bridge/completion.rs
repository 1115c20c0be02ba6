//! The completion state one [`ConcurrentFuture`](crate::ConcurrentFuture)
//! and its [`Promise`](crate::Promise) share: `Inner`, one heap allocation
//! holding the state word, the result slot, and a lock that guards the slow
//! path (registered wakers, parked threads, done-callbacks, the task's abort
//! handle). The only `unsafe` here is the result slot.
//!
//! # The state word
//!
//! | bit           | set by                         | meaning                                                   |
//! |---------------|--------------------------------|-----------------------------------------------------------|
//! | `COMPLETE`    | `Promise::complete`, `cancel`  | the result is published; never cleared                    |
//! | `CANCELLED`   | `cancel` (with `COMPLETE`)     | the outcome is `Err(Cancelled)`; the slot is never read   |
//! | `HAS_WAITERS` | a waiter, under the lock       | something sits in the slow path: the completer must lock  |
//! | `STARTED`     | `Promise::set_running`         | an executor job began: `cancel` now fails                 |
//! | `DROPPED`     | `ConcurrentFuture` drop        | nobody will read the result                               |
//! | `PANICKED`    | `Promise::complete`            | the published result is a panic (for debug reports)      |
//!
//! | from                  | event                       | to                                   | who                 |
//! |-----------------------|-----------------------------|--------------------------------------|---------------------|
//! | pending               | result written to the slot  | `COMPLETE` (+ `PANICKED`)            | the promise         |
//! | pending, not `STARTED`| `cancel()`                  | `COMPLETE \| CANCELLED`              | any thread          |
//! | pending               | a waiter registers          | `+ HAS_WAITERS`                      | waiter (locked)     |
//! | pending               | executor job starts         | `+ STARTED`                          | the executor        |
//! | any                   | future dropped unread       | `+ DROPPED`                          | the future's owner  |
//! | `COMPLETE`            | anything else               | unchanged                            |                     |
//!
//! The promise writes the slot, then sets `COMPLETE` with one `fetch_or`
//! (Release). It takes the lock only if `HAS_WAITERS` was set: when the work
//! finishes before anyone waits, completing is one atomic operation.
//! A waiter registers under the lock with a `fetch_or(HAS_WAITERS)` and
//! registers nothing if that returns `COMPLETE`; both are read-modify-writes of
//! one word, so either the completer sees the waiter or the waiter sees the
//! completion. Wakers, thread unparks and callbacks run after the lock is
//! released, never under it.

use std::mem;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::task::Waker;
use std::time::Instant;

use crate::error::Error;
use crate::park;
use crate::report::Origin;
use crate::sync::{self, AtomicUsize, Mutex, Ordering, Thread, UnsafeCell};

pub(crate) const COMPLETE: usize = 1 << 0;
pub(crate) const CANCELLED: usize = 1 << 1;
pub(crate) const HAS_WAITERS: usize = 1 << 2;
pub(crate) const STARTED: usize = 1 << 3;
pub(crate) const DROPPED: usize = 1 << 4;
pub(crate) const PANICKED: usize = 1 << 5;

/// A snapshot of the state word.
#[derive(Clone, Copy)]
pub(crate) struct State(pub(crate) usize);

impl State {
    pub(crate) fn is_complete(self) -> bool {
        self.0 & COMPLETE != 0
    }
    pub(crate) fn is_cancelled(self) -> bool {
        self.0 & CANCELLED != 0
    }
    pub(crate) fn has_waiters(self) -> bool {
        self.0 & HAS_WAITERS != 0
    }
    pub(crate) fn is_started(self) -> bool {
        self.0 & STARTED != 0
    }
    pub(crate) fn is_dropped(self) -> bool {
        self.0 & DROPPED != 0
    }
    pub(crate) fn is_panicked(self) -> bool {
        self.0 & PANICKED != 0
    }
}

pub(crate) type Callback = Box<dyn FnOnce() + Send + 'static>;

/// What waits on the slow path. Taken whole by whoever completes.
#[derive(Default)]
pub(crate) struct Waiters {
    /// The task awaiting the `ConcurrentFuture` (there is one owner).
    pub(crate) waker: Option<Waker>,
    /// The thread in `wait`/`wait_timeout`: almost always at most one, kept
    /// inline so parking allocates nothing.
    pub(crate) thread: Option<Thread>,
    /// Further waiting threads (several may share `&self`).
    pub(crate) more_threads: Vec<Thread>,
    pub(crate) callbacks: Vec<Callback>,
    /// Stops the task on its loop when the future is cancelled.
    pub(crate) abort: Option<tokio::task::AbortHandle>,
    /// Or wakes it, when it checks for cancellation itself (a job of a
    /// loop's inbox that became a task).
    pub(crate) cancel_waker: Option<Waker>,
}

pub(crate) struct Inner<T> {
    pub(crate) state: AtomicUsize,
    /// Written once by the promise before it sets `COMPLETE`; read once by
    /// the future after it observes `COMPLETE` without `CANCELLED`.
    pub(crate) slot: UnsafeCell<Option<Result<T, Error>>>,
    pub(crate) waiters: Mutex<Waiters>,
    /// The thread-home (a loop or a single-thread executor) that must run
    /// this work, 0 for none: blocking on that home is `WouldDeadlock`.
    pub(crate) home: u64,
    /// Where the work was spawned, for debug reports; `None` when debug is off.
    pub(crate) origin: Option<Origin>,
    /// The process generation ([`crate::fork`]) whose threads complete it, or
    /// [`ANY_GENERATION`] for a user's [`promise`]. In a forked child, work of
    /// an earlier generation never completes: waits on it give `LoopClosed`.
    pub(crate) generation: u64,
}

/// The `generation` of a [`promise`]: whoever holds the [`Promise`] may
/// well complete it in a forked child.
pub(crate) const ANY_GENERATION: u64 = u64::MAX;

#[allow(unsafe_code)]
// SAFETY: the slot is handed from the promise's thread to the future's thread
// through the Release/Acquire pair on `state`, so `T: Send` suffices; every
// other field is `Send + Sync`.
unsafe impl<T: Send> Send for Inner<T> {}
#[allow(unsafe_code)]
// SAFETY: shared access never yields `&T`: the slot is written by the unique
// promise and moved out by the unique future, each at most once, ordered by
// `state` (see the module docs).
unsafe impl<T: Send> Sync for Inner<T> {}

impl<T> Inner<T> {
    /// A pending outcome whose work belongs to `home` (0: none), spawned at
    /// `origin` (debug mode), completed by threads of `generation`.
    pub(crate) fn new(home: u64, origin: Option<Origin>, generation: u64) -> Self {
        Inner {
            state: AtomicUsize::new(0),
            slot: UnsafeCell::new(None),
            waiters: Mutex::new(Waiters::default()),
            home,
            origin,
            generation,
        }
    }

    pub(crate) fn state(&self) -> State {
        // ORDERING: Acquire pairs with the promise's Release `fetch_or(COMPLETE)`
        // so a reader that sees `COMPLETE` also sees the slot write.
        State(self.state.load(Ordering::Acquire))
    }

    /// Publishes `result` unless the future was already cancelled.
    #[allow(unsafe_code)] // the result slot: see the SAFETY comments
    pub(crate) fn complete(&self, result: Result<T, Error>) {
        if self.state().is_complete() {
            // Cancelled first: nobody will read it; drop it here, now.
            return;
        }
        let panicked = matches!(result, Err(Error::Panicked(_)));
        // SAFETY: only the unique promise writes the slot, once, and no reader
        // touches it before it observes the `COMPLETE` set just below (or ever,
        // if `cancel` won: then the value is dropped with `Inner`).
        self.slot.with_mut(|slot| unsafe { *slot = Some(result) });
        let bits = COMPLETE | if panicked { PANICKED } else { 0 };
        // ORDERING: Release publishes the slot write; Acquire sees the waiters
        // and the `DROPPED` bit set before it.
        let prev = State(self.state.fetch_or(bits, Ordering::AcqRel));
        if prev.is_complete() {
            return; // lost the race to `cancel`
        }
        if prev.has_waiters() {
            self.wake_all(false);
        }
        if panicked && prev.is_dropped() {
            self.report_unread_panic();
        }
    }

    /// Takes everything registered on the slow path and wakes it, outside the
    /// lock. `cancelling`: stop the task too; otherwise the task's abort
    /// handle is only released (it keeps the finished task's memory alive).
    pub(crate) fn wake_all(&self, cancelling: bool) {
        let w = mem::take(&mut *self.waiters.lock());
        if let Some(abort) = w.abort {
            if cancelling {
                abort.abort();
            }
        }
        if let Some(task) = w.cancel_waker {
            task.wake();
        }
        for t in w.thread.into_iter().chain(w.more_threads) {
            t.unpark();
        }
        if let Some(waker) = w.waker {
            // A waker is executor code; one that panics must not keep the
            // callbacks below from running or unwind into the loop.
            if let Err(payload) = catch_unwind(AssertUnwindSafe(|| waker.wake())) {
                tracing::error!(
                    panic = crate::error::payload_message(&*payload),
                    "bridge: a waker panicked when a ConcurrentFuture completed; the panic was caught"
                );
            }
        }
        for cb in w.callbacks {
            run_callback(cb);
        }
    }

    pub(crate) fn cancel(&self) -> bool {
        // ORDERING: Acquire as in `state()`; the CAS below is AcqRel for the same
        // reasons as the promise's `fetch_or`.
        let mut cur = self.state.load(Ordering::Acquire);
        loop {
            let s = State(cur);
            if s.is_complete() || s.is_started() {
                return false;
            }
            match self.state.compare_exchange_weak(
                cur,
                cur | COMPLETE | CANCELLED,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => break,
                Err(actual) => cur = actual,
            }
        }
        // Always lock: the abort handle may be registered even without waiters.
        self.wake_all(true);
        true
    }

    /// Registers the handle that stops the task if the future is cancelled.
    ///
    /// The handle counts as a waiter (`HAS_WAITERS`), so the completer takes
    /// the lock and releases it: a handle held past completion would keep the
    /// finished task's allocation, sized for its whole future, alive for as
    /// long as the user keeps the `ConcurrentFuture`.
    pub(crate) fn set_abort(&self, handle: tokio::task::AbortHandle) {
        let mut w = self.waiters.lock();
        // ORDERING: AcqRel, as in `register_thread`: either this sees
        // `COMPLETE` or the completer sees `HAS_WAITERS` and locks after us.
        let s = State(self.state.fetch_or(HAS_WAITERS, Ordering::AcqRel));
        if s.is_cancelled() {
            drop(w);
            handle.abort();
        } else if !s.is_complete() {
            w.abort = Some(handle);
        }
    }

    /// Registers the waker of the task that runs the work, woken if the
    /// future is cancelled (the task then drops the work).
    pub(crate) fn set_cancel_waker(&self, waker: &Waker) {
        let mut w = self.waiters.lock();
        let s = self.state();
        if s.is_cancelled() {
            drop(w);
            waker.wake_by_ref();
        } else if !s.is_complete() {
            w.cancel_waker = Some(waker.clone());
        }
    }

    /// Registers the current thread, unless already complete. Returns whether
    /// it is complete.
    pub(crate) fn register_thread(&self) -> bool {
        let mut w = self.waiters.lock();
        // ORDERING: AcqRel: see the module docs; either this sees `COMPLETE` or the
        // completer sees `HAS_WAITERS` and locks after us.
        let prev = State(self.state.fetch_or(HAS_WAITERS, Ordering::AcqRel));
        if prev.is_complete() {
            return true;
        }
        let me = sync::current_thread();
        match w.thread {
            None => w.thread = Some(me),
            Some(_) => w.more_threads.push(me),
        }
        false
    }

    pub(crate) fn deregister_thread(&self) {
        let me = sync::current_thread().id();
        let mut w = self.waiters.lock();
        if w.thread.as_ref().is_some_and(|t| t.id() == me) {
            w.thread = w.more_threads.pop();
        } else if let Some(i) = w.more_threads.iter().position(|t| t.id() == me) {
            w.more_threads.swap_remove(i);
        }
    }

    /// Blocks this thread until complete or `deadline`. Returns whether complete.
    pub(crate) fn block_until(&self, deadline: Option<Instant>) -> bool {
        if park::spin_wait(|| self.state().is_complete()) {
            return true;
        }
        if self.register_thread() {
            return true;
        }
        if park::park_until(|| self.state().is_complete(), deadline) {
            return true;
        }
        self.deregister_thread();
        self.state().is_complete()
    }

    /// Moves the outcome out. Call once, after observing `COMPLETE`.
    #[allow(unsafe_code)] // the result slot: see the SAFETY comments
    pub(crate) fn take(&self) -> Result<T, Error> {
        let s = self.state();
        debug_assert!(s.is_complete());
        if s.is_cancelled() {
            return Err(Error::Cancelled);
        }
        // SAFETY: `COMPLETE` without `CANCELLED` was observed with Acquire, so the
        // promise's single write happened-before; the unique future takes once.
        self.slot
            .with_mut(|slot| unsafe { (*slot).take() })
            .expect("bridge: ConcurrentFuture result taken twice (polled after it returned Ready)")
    }

    /// Work that only a thread lost to a `fork()` could complete (this is
    /// the child): waiting for it would never end.
    #[inline]
    pub(crate) fn is_stale(&self) -> bool {
        self.generation != ANY_GENERATION && crate::fork::is_stale(self.generation)
    }

    #[cold]
    #[allow(unsafe_code)] // the result slot: see the SAFETY comments
    pub(crate) fn report_unread_panic(&self) {
        // SAFETY: called only once both `COMPLETE` (without `CANCELLED`) and
        // `DROPPED` are set: the promise's write is done and the future, the only
        // reader, is gone; this thread is the one that saw the second bit set.
        let message = self.slot.with(|slot| match unsafe { &*slot } {
            Some(Err(Error::Panicked(p))) => p.message().to_owned(),
            _ => String::new(),
        });
        crate::report::unread_panic(self.origin.as_ref(), &message);
    }
}

pub(crate) fn run_callback(cb: Callback) {
    if let Err(payload) = catch_unwind(AssertUnwindSafe(cb)) {
        tracing::error!(
            panic = crate::error::payload_message(&*payload),
            "bridge: a done-callback panicked; the panic was caught, the future and its loop are unaffected"
        );
    }
}
