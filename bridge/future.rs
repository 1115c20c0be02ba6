//! [`ConcurrentFuture`], the waiting half, and [`Promise`], the completing
//! half, of one piece of work running somewhere else.
//!
//! Both halves point at one heap allocation, `Inner`: the state word, the
//! result slot, and a lock that guards the slow path (registered wakers,
//! parked threads, done-callbacks, the task's abort handle).
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

use std::fmt;
use std::future::Future;
use std::mem;
use std::panic::{catch_unwind, AssertUnwindSafe, Location};
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use crate::debug::Origin;
use crate::error::Error;
use crate::park;
use crate::sync::{self, Arc, AtomicUsize, Mutex, Ordering, Thread, UnsafeCell};

const COMPLETE: usize = 1 << 0;
const CANCELLED: usize = 1 << 1;
const HAS_WAITERS: usize = 1 << 2;
const STARTED: usize = 1 << 3;
const DROPPED: usize = 1 << 4;
const PANICKED: usize = 1 << 5;

/// A snapshot of the state word.
#[derive(Clone, Copy)]
struct State(usize);

impl State {
    fn is_complete(self) -> bool {
        self.0 & COMPLETE != 0
    }
    fn is_cancelled(self) -> bool {
        self.0 & CANCELLED != 0
    }
    fn has_waiters(self) -> bool {
        self.0 & HAS_WAITERS != 0
    }
    fn is_started(self) -> bool {
        self.0 & STARTED != 0
    }
    fn is_dropped(self) -> bool {
        self.0 & DROPPED != 0
    }
    fn is_panicked(self) -> bool {
        self.0 & PANICKED != 0
    }
}

type Callback = Box<dyn FnOnce() + Send + 'static>;

/// What waits on the slow path. Taken whole by whoever completes.
#[derive(Default)]
struct Waiters {
    /// The task awaiting the `ConcurrentFuture` (there is one owner).
    waker: Option<Waker>,
    /// The thread in `wait`/`wait_timeout`: almost always at most one, kept
    /// inline so parking allocates nothing.
    thread: Option<Thread>,
    /// Further waiting threads (several may share `&self`).
    more_threads: Vec<Thread>,
    callbacks: Vec<Callback>,
    /// Stops the task on its loop when the future is cancelled.
    abort: Option<tokio::task::AbortHandle>,
    /// Or wakes it, when it checks for cancellation itself (a job of a
    /// loop's inbox that became a task).
    cancel_waker: Option<Waker>,
}

struct Inner<T> {
    state: AtomicUsize,
    /// Written once by the promise before it sets `COMPLETE`; read once by
    /// the future after it observes `COMPLETE` without `CANCELLED`.
    slot: UnsafeCell<Option<Result<T, Error>>>,
    waiters: Mutex<Waiters>,
    /// The thread-home (a loop or a single-thread executor) that must run
    /// this work, 0 for none: blocking on that home is `WouldDeadlock`.
    home: u64,
    /// Where the work was spawned, for debug reports; `None` when debug is off.
    origin: Option<Origin>,
    /// The process generation ([`crate::fork`]) whose threads complete it, or
    /// [`ANY_GENERATION`] for a user's [`promise`]. In a forked child, work of
    /// an earlier generation never completes: waits on it give `LoopClosed`.
    generation: u64,
}

/// The `generation` of a [`promise`]: whoever holds the [`Promise`] may
/// well complete it in a forked child.
const ANY_GENERATION: u64 = u64::MAX;

// SAFETY: the slot is handed from the promise's thread to the future's thread
// through the Release/Acquire pair on `state`, so `T: Send` suffices; every
// other field is `Send + Sync`.
unsafe impl<T: Send> Send for Inner<T> {}
// SAFETY: shared access never yields `&T`: the slot is written by the unique
// promise and moved out by the unique future, each at most once, ordered by
// `state` (see the module docs).
unsafe impl<T: Send> Sync for Inner<T> {}

/// The completing half of a [`ConcurrentFuture`]: whoever runs the work
/// holds it and publishes the outcome once.
///
/// Dropping a promise without completing it resolves the future to
/// `Err(Cancelled)`, so a waiter never hangs on work that was dropped.
///
/// # Examples
///
/// ```
/// let (promise, fut) = bridge::promise::<u32>();
/// std::thread::spawn(move || promise.set_result(7));
/// assert_eq!(fut.wait().unwrap(), 7);
/// ```
pub struct Promise<T> {
    inner: Option<Arc<Inner<T>>>,
    /// The outcome to publish if the promise is dropped without completing.
    on_drop: DropOutcome,
}

#[derive(Clone, Copy)]
pub(crate) enum DropOutcome {
    Cancelled,
    LoopClosed,
}

/// The result of work running on another thread or loop.
///
/// Wait for it from sync code ([`wait`](Self::wait),
/// [`wait_timeout`](Self::wait_timeout), [`wait_for`](Self::wait_for)) or
/// `.await` it from any executor. Dropping it detaches: the work runs on and
/// its result is dropped.
///
/// In a forked child, work of this crate's threads that was pending at the
/// fork never finishes (those threads stayed in the parent): waiting for it
/// or awaiting it gives `Err(LoopClosed)`, and its done-callbacks never run.
///
/// # Examples
///
/// ```
/// let fut = bridge::worker_loop().spawn(async { 40 + 2 });
/// assert_eq!(fut.wait().unwrap(), 42);
///
/// let fut = bridge::worker_loop().spawn(async { "awaited" });
/// assert_eq!(futures::executor::block_on(fut).unwrap(), "awaited");
/// ```
#[must_use = "dropping a ConcurrentFuture detaches the work; call wait() or .await it to get the result"]
pub struct ConcurrentFuture<T> {
    inner: Arc<Inner<T>>,
    /// The result has been moved out (a second poll is a bug).
    taken: bool,
}

/// Makes a linked [`Promise`] and [`ConcurrentFuture`], for handing the result
/// of callback-style or thread-based work to sync or async waiters.
///
/// # Examples
///
/// ```
/// let (promise, fut) = bridge::promise();
/// fut.add_done_callback(|| println!("done"));
/// promise.set_result("hello");
/// assert_eq!(fut.wait().unwrap(), "hello");
/// ```
pub fn promise<T>() -> (Promise<T>, ConcurrentFuture<T>) {
    make(0, None, DropOutcome::Cancelled, ANY_GENERATION)
}

/// A pair for work that one of this crate's threads (a loop, the worker, a
/// pool thread) completes: in a forked child, a wait on it from before the
/// fork gives `LoopClosed` instead of waiting for a thread that is not there.
pub(crate) fn pair<T>(
    home: u64,
    origin: Option<Origin>,
    on_drop: DropOutcome,
) -> (Promise<T>, ConcurrentFuture<T>) {
    make(home, origin, on_drop, crate::fork::watch())
}

fn make<T>(
    home: u64,
    origin: Option<Origin>,
    on_drop: DropOutcome,
    generation: u64,
) -> (Promise<T>, ConcurrentFuture<T>) {
    let inner = Arc::new(Inner {
        state: AtomicUsize::new(0),
        slot: UnsafeCell::new(None),
        waiters: Mutex::new(Waiters::default()),
        home,
        origin,
        generation,
    });
    (
        Promise {
            inner: Some(inner.clone()),
            on_drop,
        },
        ConcurrentFuture {
            inner,
            taken: false,
        },
    )
}

impl<T> Inner<T> {
    fn state(&self) -> State {
        // ORDERING: Acquire pairs with the promise's Release `fetch_or(COMPLETE)`
        // so a reader that sees `COMPLETE` also sees the slot write.
        State(self.state.load(Ordering::Acquire))
    }

    /// Publishes `result` unless the future was already cancelled.
    fn complete(&self, result: Result<T, Error>) {
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
    fn wake_all(&self, cancelling: bool) {
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

    fn cancel(&self) -> bool {
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
    fn set_abort(&self, handle: tokio::task::AbortHandle) {
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
    fn set_cancel_waker(&self, waker: &Waker) {
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
    fn register_thread(&self) -> bool {
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

    fn deregister_thread(&self) {
        let me = sync::current_thread().id();
        let mut w = self.waiters.lock();
        if w.thread.as_ref().is_some_and(|t| t.id() == me) {
            w.thread = w.more_threads.pop();
        } else if let Some(i) = w.more_threads.iter().position(|t| t.id() == me) {
            w.more_threads.swap_remove(i);
        }
    }

    /// Blocks this thread until complete or `deadline`. Returns whether complete.
    fn block_until(&self, deadline: Option<Instant>) -> bool {
        if park::spin_wait(|| self.state().is_complete()) {
            return true;
        }
        if self.register_thread() {
            return true;
        }
        loop {
            if self.state().is_complete() {
                return true;
            }
            match deadline {
                None => sync::park(),
                Some(d) => match park::remaining(d) {
                    Some(left) => sync::park_timeout(left),
                    None => {
                        self.deregister_thread();
                        return self.state().is_complete();
                    }
                },
            }
        }
    }

    /// Moves the outcome out. Call once, after observing `COMPLETE`.
    fn take(&self) -> Result<T, Error> {
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
    fn is_stale(&self) -> bool {
        self.generation != ANY_GENERATION && crate::fork::is_stale(self.generation)
    }

    #[cold]
    fn report_unread_panic(&self) {
        // SAFETY: called only once both `COMPLETE` (without `CANCELLED`) and
        // `DROPPED` are set: the promise's write is done and the future, the only
        // reader, is gone; this thread is the one that saw the second bit set.
        let message = self.slot.with(|slot| match unsafe { &*slot } {
            Some(Err(Error::Panicked(p))) => p.message().to_owned(),
            _ => String::new(),
        });
        crate::debug::unread_panic(self.origin.as_ref(), &message);
    }
}

fn run_callback(cb: Callback) {
    if let Err(payload) = catch_unwind(AssertUnwindSafe(cb)) {
        tracing::error!(
            panic = crate::error::payload_message(&*payload),
            "bridge: a done-callback panicked; the panic was caught, the future and its loop are unaffected"
        );
    }
}

impl<T> Promise<T> {
    pub(crate) fn set_drop_outcome(&mut self, outcome: DropOutcome) {
        self.on_drop = outcome;
    }

    fn inner(&self) -> &Inner<T> {
        self.inner.as_ref().expect("promise used after completion")
    }

    /// Wakes `waker` when the future is cancelled (now, if it already is).
    pub(crate) fn set_cancel_waker(&self, waker: &Waker) {
        self.inner().set_cancel_waker(waker)
    }

    /// Publishes the outcome: wakes every waiter and runs every done-callback
    /// (on this thread). Does nothing if the future was already cancelled.
    ///
    /// # Examples
    ///
    /// ```
    /// let (promise, fut) = bridge::promise::<()>();
    /// promise.complete(Err(bridge::Error::Timeout));
    /// assert!(matches!(fut.wait(), Err(bridge::Error::Timeout)));
    /// ```
    pub fn complete(mut self, result: Result<T, crate::Error>) {
        if let Some(inner) = self.inner.take() {
            finish(inner, result);
        }
    }

    /// Publishes a successful result; shorthand for `complete(Ok(value))`.
    ///
    /// # Examples
    ///
    /// ```
    /// let (promise, fut) = bridge::promise();
    /// promise.set_result(1);
    /// assert!(fut.done());
    /// ```
    pub fn set_result(self, value: T) {
        self.complete(Ok(value))
    }

    /// Whether the future was cancelled (or already completed): long-running
    /// work can poll this to stop early.
    ///
    /// # Examples
    ///
    /// ```
    /// let (promise, fut) = bridge::promise::<()>();
    /// assert!(fut.cancel());
    /// assert!(promise.is_cancelled());
    /// ```
    pub fn is_cancelled(&self) -> bool {
        self.inner().state().is_cancelled()
    }

    /// Marks the work as started, after which [`ConcurrentFuture::cancel`]
    /// fails (Python's `set_running_or_notify_cancel`). Returns `false` if the
    /// future was cancelled first: then do not run the work.
    ///
    /// # Examples
    ///
    /// ```
    /// let (promise, fut) = bridge::promise::<()>();
    /// assert!(promise.set_running());
    /// assert!(!fut.cancel());
    /// ```
    pub fn set_running(&self) -> bool {
        let inner = self.inner();
        // ORDERING: AcqRel: ordered against `cancel`'s CAS on the same word.
        let prev = State(inner.state.fetch_or(STARTED, Ordering::AcqRel));
        !prev.is_complete()
    }
}

impl<T> Drop for Promise<T> {
    fn drop(&mut self) {
        if let Some(inner) = self.inner.take() {
            let outcome = match self.on_drop {
                DropOutcome::Cancelled => Error::Cancelled,
                DropOutcome::LoopClosed => Error::LoopClosed,
            };
            finish(inner, Err(outcome));
        }
    }
}

/// Publishes `result` and lets go of the promise's reference. If the future
/// was detached (or cancelled), the result is dropped here, on the completing
/// thread: a `Drop` of the user's value that panics is caught and reported,
/// so the thread completing work (a loop, the worker, a pool thread) and its
/// counts are unaffected.
fn finish<T>(inner: Arc<Inner<T>>, result: Result<T, Error>) {
    let outcome = catch_unwind(AssertUnwindSafe(move || {
        inner.complete(result);
        drop(inner);
    }));
    if let Err(payload) = outcome {
        tracing::error!(
            target: "bridge::debug",
            panic = crate::error::payload_message(&*payload),
            "bridge: dropping a result nobody read panicked (its type's Drop); \
             the panic was caught and the thread that completed the work carries on"
        );
    }
}

impl<T> fmt::Debug for Promise<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Promise").finish_non_exhaustive()
    }
}

impl<T> ConcurrentFuture<T> {
    /// A future that is already resolved to `result`.
    pub(crate) fn resolved(result: Result<T, Error>) -> Self {
        let (p, f) = promise();
        p.complete(result);
        f
    }

    /// Whether the work has finished, failed or been cancelled.
    ///
    /// # Examples
    ///
    /// ```
    /// let fut = bridge::worker_loop().spawn(async {});
    /// while !fut.done() { std::thread::yield_now(); }
    /// ```
    pub fn done(&self) -> bool {
        self.inner.state().is_complete()
    }

    /// Cancels the work. Returns `false` if it is already done (or is an
    /// executor job that has started); `true` means the future now resolves
    /// to `Err(Cancelled)` and the work is dropped on its loop soon.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let fut = bridge::worker_loop().spawn(async { tokio::time::sleep(Duration::from_secs(60)).await });
    /// assert!(fut.cancel());
    /// assert!(fut.cancelled());
    /// assert!(matches!(fut.wait(), Err(bridge::Error::Cancelled)));
    /// ```
    pub fn cancel(&self) -> bool {
        self.inner.cancel()
    }

    /// Whether [`cancel`](Self::cancel) succeeded.
    ///
    /// # Examples
    ///
    /// ```
    /// let (_promise, fut) = bridge::promise::<()>();
    /// assert!(!fut.cancelled());
    /// fut.cancel();
    /// assert!(fut.cancelled());
    /// ```
    pub fn cancelled(&self) -> bool {
        self.inner.state().is_cancelled()
    }

    /// Blocks this thread until the work is done and returns its outcome.
    ///
    /// On a tokio multi-thread runtime (and on the worker loop) it first
    /// moves the runtime's core to another thread (`block_in_place`), so the
    /// loop keeps running while this thread waits.
    ///
    /// # Errors
    ///
    /// The work's own outcome (`Panicked`, `Cancelled`, ...), or
    /// `WouldDeadlock` when called, before the work is done, on the very thread
    /// that must run it (its bridge `Loop`, or its single-thread executor), or
    /// `LoopClosed` in a forked child for work that was pending at the fork
    /// (the thread that would finish it stayed in the parent).
    ///
    /// # Examples
    ///
    /// ```
    /// let lp = bridge::Loop::new().unwrap();
    /// let fut = lp.handle().spawn(async { 5 });
    /// assert_eq!(fut.wait().unwrap(), 5);
    /// ```
    #[track_caller]
    pub fn wait(mut self) -> Result<T, Error> {
        if !self.done() {
            if self.inner.is_stale() {
                return Err(Error::LoopClosed);
            }
            if self.is_home_thread() {
                return Err(Error::WouldDeadlock);
            }
            let origin = self.inner.origin.as_ref();
            crate::worker::try_blocking_region_for(Location::caller(), origin, || {
                self.inner.block_until(None)
            })?;
        }
        self.take()
    }

    /// Blocks for at most `timeout`; returns whether the work is done. Never
    /// consumes the result and never cancels the work. Returns `false` at
    /// once where [`wait`](Self::wait) would return `WouldDeadlock` or
    /// `LoopClosed` (pending work of a process that has forked since).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let fut = bridge::worker_loop().spawn(async { tokio::time::sleep(Duration::from_secs(60)).await });
    /// assert!(!fut.wait_timeout(Duration::from_millis(10)));
    /// fut.cancel();
    /// assert!(fut.wait_timeout(Duration::from_millis(10)));
    /// ```
    #[track_caller]
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        if self.done() {
            return true;
        }
        if self.is_home_thread() || self.inner.is_stale() {
            return false;
        }
        let deadline = Instant::now().checked_add(timeout);
        let origin = self.inner.origin.as_ref();
        crate::worker::try_blocking_region_for(Location::caller(), origin, || {
            self.inner.block_until(deadline)
        })
        .unwrap_or(false)
    }

    /// Waits at most `timeout` for the outcome; if the work is not done by
    /// then, cancels it and returns `Err(Timeout)`.
    ///
    /// # Errors
    ///
    /// `Timeout` if not done in time (an executor job that has already started
    /// cannot be stopped: it runs to the end and its result is dropped), else
    /// the same as [`wait`](Self::wait) (`LoopClosed` at once in a forked
    /// child for work pending at the fork).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let fut = bridge::worker_loop().spawn(async { tokio::time::sleep(Duration::from_secs(60)).await });
    /// assert!(matches!(fut.wait_for(Duration::from_millis(10)), Err(bridge::Error::Timeout)));
    /// ```
    #[track_caller]
    pub fn wait_for(mut self, timeout: Duration) -> Result<T, Error> {
        if !self.done() && self.inner.is_stale() {
            return Err(Error::LoopClosed);
        }
        if !self.done() && self.is_home_thread() {
            return Err(Error::WouldDeadlock);
        }
        if !self.wait_timeout(timeout) && (self.cancel() || !self.done()) {
            return Err(Error::Timeout);
        }
        self.take()
    }

    /// Runs `cb` exactly once when the work completes, fails or is cancelled:
    /// on the thread that completes it, or at once on this thread if it is
    /// already done. A panicking callback is caught and reported; it does not
    /// affect the future or the loop. Keep callbacks short: they run on the
    /// loop's thread.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::atomic::{AtomicBool, Ordering};
    /// use std::sync::Arc;
    /// let seen = Arc::new(AtomicBool::new(false));
    /// let (promise, fut) = bridge::promise();
    /// let s = seen.clone();
    /// fut.add_done_callback(move || s.store(true, Ordering::SeqCst));
    /// promise.set_result(());
    /// assert!(seen.load(Ordering::SeqCst));
    /// ```
    pub fn add_done_callback<C: FnOnce() + Send + 'static>(&self, cb: C) {
        let inner = &self.inner;
        if !inner.state().is_complete() {
            let mut w = inner.waiters.lock();
            // ORDERING: AcqRel, as in `register_thread`.
            let prev = State(inner.state.fetch_or(HAS_WAITERS, Ordering::AcqRel));
            if !prev.is_complete() {
                w.callbacks.push(Box::new(cb));
                return;
            }
        }
        run_callback(Box::new(cb));
    }

    pub(crate) fn set_abort(&self, handle: tokio::task::AbortHandle) {
        self.inner.set_abort(handle)
    }

    fn is_home_thread(&self) -> bool {
        crate::registry::is_blocked_home(self.inner.home)
    }

    fn take(&mut self) -> Result<T, Error> {
        self.taken = true;
        self.inner.take()
    }
}

impl<T> Future for ConcurrentFuture<T> {
    type Output = Result<T, Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let inner = &*self.inner;
        if !inner.state().is_complete() {
            if inner.is_stale() {
                return Poll::Ready(Err(Error::LoopClosed));
            }
            let mut w = inner.waiters.lock();
            // ORDERING: AcqRel, as in `register_thread`.
            let prev = State(inner.state.fetch_or(HAS_WAITERS, Ordering::AcqRel));
            if !prev.is_complete() {
                let old = match &w.waker {
                    Some(old) if old.will_wake(cx.waker()) => None,
                    _ => w.waker.replace(cx.waker().clone()),
                };
                drop(w);
                drop(old);
                return Poll::Pending;
            }
        }
        Poll::Ready(self.take())
    }
}

impl<T> Drop for ConcurrentFuture<T> {
    fn drop(&mut self) {
        if self.taken {
            return;
        }
        // ORDERING: AcqRel: pairs with the promise's `fetch_or(COMPLETE)`, so exactly
        // one side sees both bits and reports an unread panic.
        let prev = State(self.inner.state.fetch_or(DROPPED, Ordering::AcqRel));
        if prev.is_complete() && prev.is_panicked() && !prev.is_cancelled() {
            self.inner.report_unread_panic();
        }
    }
}

impl<T> fmt::Debug for ConcurrentFuture<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.inner.state();
        f.debug_struct("ConcurrentFuture")
            .field("done", &s.is_complete())
            .field("cancelled", &s.is_cancelled())
            .finish()
    }
}
