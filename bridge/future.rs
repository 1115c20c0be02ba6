//! [`ConcurrentFuture`], the waiting half, and [`Promise`], the completing
//! half, of one piece of work running somewhere else.
//!
//! Both halves point at one heap allocation, `Inner`: the state word, the
//! result slot, and a lock that guards the slow path (registered wakers,
//! parked threads, done-callbacks, the task's abort handle). That state
//! machine is in `completion.rs`.

use std::fmt;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe, Location};
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use crate::completion::{
    run_callback, Inner, State, ANY_GENERATION, DROPPED, HAS_WAITERS, STARTED,
};
use crate::error::Error;
use crate::report::Origin;
use crate::sync::{Arc, Ordering};

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
    let inner = Arc::new(Inner::new(home, origin, generation));
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
            crate::context::refuse_blocked_home(self.inner.home)?;
            let origin = self.inner.origin.as_ref();
            crate::wait::try_blocking_region_for(Location::caller(), origin, || {
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
        crate::wait::try_blocking_region_for(Location::caller(), origin, || {
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
        if !self.done() {
            crate::context::refuse_blocked_home(self.inner.home)?;
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
        crate::context::is_blocked_home(self.inner.home)
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
