//! Bridge loops: [`Loop`] (owns a loop and its thread), [`LoopBuilder`] and
//! [`LoopHandle`] (a cheap, cloneable, `Send + Sync` reference to a loop).
//!
//! A `Loop` is a tokio current-thread runtime driven by its own named thread.
//! Closing it (dropping the `Loop`) tells the thread to stop; the thread then
//! drops the runtime, which drops every task still on it (their destructors
//! run, on the loop's thread), so every [`ConcurrentFuture`] still waiting
//! resolves to `Err(Cancelled)` (the task had started) or `Err(LoopClosed)`
//! (it never ran). The closing thread joins the loop's thread, unless it *is*
//! the loop's thread.
//!
//! In a process forked after the loop was made, the loop's thread does not
//! exist: there the loop counts as closed (`LoopClosed` for new work and for
//! waits on its pending work), and dropping the `Loop` does not join.

use std::fmt;
use std::future::Future;
use std::panic::Location;
use std::time::Duration;

use crate::context::{self, Marked};
use crate::error::Error;
use crate::future::{self, ConcurrentFuture, DropOutcome};
use crate::handoff::InboxSpawner;
use crate::inbox::Queued;
use crate::live;
use crate::report::{DebugConfig, Origin};
use crate::shared::{self, Kind, LoopHandle, LoopId, LoopShared};
use crate::sync::plain::{Arc, OnceLock, Weak};
use crate::task::{Detached, Guarded, Task};

/// Owns a bridge loop and the thread that drives it; dropping it closes the loop.
///
/// In a process forked after it was made, the loop is closed (its thread
/// stayed in the parent), and dropping it returns at once.
///
/// # Examples
///
/// ```
/// let lp = bridge::Loop::builder().name("db").build().unwrap();
/// let fut = lp.handle().spawn(async { std::thread::current().name().map(str::to_owned) });
/// assert_eq!(fut.wait().unwrap().as_deref(), Some("db"));
/// drop(lp); // cancels what is left, joins the thread
/// ```
pub struct Loop {
    handle: LoopHandle,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// Configures a [`Loop`]; from [`Loop::builder`].
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// let lp = bridge::Loop::builder()
///     .name("db")
///     .debug(true)
///     .slow_poll_threshold(Duration::from_millis(50))
///     .stack_size(4 << 20)
///     .build()
///     .unwrap();
/// assert_eq!(lp.handle().name(), "db");
/// ```
#[derive(Clone, Debug)]
#[must_use = "a builder does nothing until build() or run() is called"]
pub struct LoopBuilder {
    name: Option<String>,
    debug: Option<bool>,
    slow_poll_threshold: Duration,
    stack_size: Option<usize>,
}

impl Loop {
    /// Starts a loop with default settings on a new thread.
    ///
    /// # Errors
    ///
    /// `Io` if the thread or the runtime cannot be started.
    ///
    /// # Examples
    ///
    /// ```
    /// let lp = bridge::Loop::new().unwrap();
    /// assert!(!lp.handle().is_closed());
    /// ```
    pub fn new() -> Result<Loop, Error> {
        Loop::builder().build()
    }

    /// A builder for a named or configured loop.
    ///
    /// # Examples
    ///
    /// ```
    /// let lp = bridge::Loop::builder().name("ui").build().unwrap();
    /// assert_eq!(lp.handle().name(), "ui");
    /// ```
    pub fn builder() -> LoopBuilder {
        LoopBuilder {
            name: None,
            debug: None,
            slow_poll_threshold: crate::report::DEFAULT_SLOW_POLL,
            stack_size: None,
        }
    }

    /// A handle for submitting work to this loop from any thread.
    ///
    /// # Examples
    ///
    /// ```
    /// let lp = bridge::Loop::new().unwrap();
    /// let h = lp.handle();
    /// std::thread::spawn(move || h.block_on(async { 1 }).unwrap()).join().unwrap();
    /// ```
    pub fn handle(&self) -> LoopHandle {
        self.handle.clone()
    }

    /// Closes the loop now: same as dropping it.
    ///
    /// # Examples
    ///
    /// ```
    /// let lp = bridge::Loop::new().unwrap();
    /// let h = lp.handle();
    /// lp.close();
    /// assert!(h.is_closed());
    /// assert!(matches!(h.spawn(async {}).wait(), Err(bridge::Error::LoopClosed)));
    /// ```
    pub fn close(self) {
        drop(self)
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        self.handle.shared.close();
        if let Some(thread) = self.thread.take() {
            if self.handle.shared.is_stale() {
                // A forked child: the thread exists only in the parent. Joining
                // (or detaching) it here would act on a thread id that means
                // nothing in this process; its runtime is leaked with it.
                std::mem::forget(thread);
            } else if thread.thread().id() != std::thread::current().id() {
                // Joining blocks: off a multi-thread runtime's core first.
                let _ = crate::wait::blocking_region(Location::caller(), || thread.join());
            }
        }
    }
}

impl fmt::Debug for Loop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Loop")
            .field("handle", &self.handle)
            .finish()
    }
}

impl LoopBuilder {
    /// The loop's name, also given to its thread (default `bridge-loop-N`).
    /// NUL characters, which a thread name cannot hold, become `?`.
    ///
    /// # Examples
    ///
    /// ```
    /// let lp = bridge::Loop::builder().name("db").build().unwrap();
    /// assert_eq!(lp.handle().name(), "db");
    /// ```
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(shared::thread_name(&name.into()));
        self
    }

    /// Debug mode: slow polls and unread panics are reported through
    /// `tracing`. Also switched on for every loop by `BRIDGE_DEBUG=1`.
    ///
    /// # Examples
    ///
    /// ```
    /// let lp = bridge::Loop::builder().debug(true).build().unwrap();
    /// assert!(lp.handle().debug());
    /// ```
    pub fn debug(mut self, on: bool) -> Self {
        self.debug = Some(on);
        self
    }

    /// In debug mode, a single poll longer than this is reported at WARN
    /// (default 100 ms).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let lp = bridge::Loop::builder()
    ///     .debug(true)
    ///     .slow_poll_threshold(Duration::from_millis(20))
    ///     .build()
    ///     .unwrap();
    /// assert!(lp.handle().debug());
    /// ```
    pub fn slow_poll_threshold(mut self, threshold: Duration) -> Self {
        self.slow_poll_threshold = threshold;
        self
    }

    /// The stack size of the loop's thread (default: the standard library's).
    ///
    /// # Examples
    ///
    /// ```
    /// let lp = bridge::Loop::builder().stack_size(8 << 20).build().unwrap();
    /// assert_eq!(lp.handle().block_on(async { 1 }).unwrap(), 1);
    /// ```
    pub fn stack_size(mut self, bytes: usize) -> Self {
        self.stack_size = Some(bytes);
        self
    }

    /// Python's `asyncio.run(coro, debug=...)`: [`run`](crate::run) with this
    /// builder's settings, on this thread. Runs `fut` to completion on a fresh
    /// loop named and configured by the builder, then cancels every task
    /// still spawned on it (their destructors run) and closes it.
    ///
    /// The loop runs on the calling thread, so [`stack_size`](Self::stack_size)
    /// does not apply; `name` names the loop (in
    /// [`running_loop`](crate::running_loop), [`loops`](crate::loops) and debug
    /// reports), not the thread.
    ///
    /// # Errors
    ///
    /// As [`run`](crate::run): `NestedLoop` if a loop already runs on this
    /// thread; `Panicked` if `fut` panics; `Io` if the runtime cannot be built.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let name = bridge::Loop::builder()
    ///     .name("main")
    ///     .debug(true)
    ///     .slow_poll_threshold(Duration::from_millis(50))
    ///     .run(async {
    ///         tokio::time::sleep(Duration::from_millis(1)).await;
    ///         bridge::get_running_loop().unwrap().name().to_owned()
    ///     })
    ///     .unwrap();
    /// assert_eq!(name, "main");
    /// ```
    #[track_caller]
    pub fn run<F: Future>(self, fut: F) -> Result<F::Output, Error> {
        let debug = DebugConfig::new(self.debug, self.slow_poll_threshold);
        run_here(self.name, debug, Location::caller(), fut)
    }

    /// Starts the loop's thread and runtime.
    ///
    /// # Errors
    ///
    /// `Io` if the thread or the runtime cannot be started.
    ///
    /// # Examples
    ///
    /// ```
    /// let lp = bridge::Loop::builder().name("net").build().unwrap();
    /// assert_eq!(lp.handle().name(), "net");
    /// ```
    pub fn build(self) -> Result<Loop, Error> {
        let id = LoopId(shared::next_id());
        let name: Arc<str> = self
            .name
            .unwrap_or_else(|| format!("bridge-loop-{}", id.0))
            .into();
        let debug = DebugConfig::new(self.debug, self.slow_poll_threshold);
        let mut thread = std::thread::Builder::new().name(name.to_string());
        if let Some(size) = self.stack_size {
            thread = thread.stack_size(size);
        }
        let (ready_tx, ready_rx) = future::promise::<LoopHandle>();
        let join = thread.spawn(move || {
            // A request/response burst from another thread is served without
            // the loop's thread sleeping between calls, and without tokio's
            // wake-up per remote spawn (see `crate::inbox`).
            // The hook lives inside the runtime, so it holds the loop weakly:
            // owning the runtime's handle would be a cycle that leaks every
            // closed loop's runtime, with its epoll and event fds.
            let runtime_cell = Arc::new(OnceLock::<Weak<LoopShared>>::new());
            let on_park = runtime_cell.clone();
            let rt = match current_thread_runtime()
                .on_thread_park(move || {
                    if let Some(shared) = on_park.get().and_then(Weak::upgrade) {
                        shared.inbox.spin_before_park(&shared.tokio);
                    }
                })
                .build()
            {
                Ok(rt) => rt,
                Err(e) => return ready_tx.complete(Err(Error::Io(e))),
            };
            let shared = LoopShared::new(name, id, Kind::Owned, rt.handle().clone(), debug);
            let _ = runtime_cell.set(Arc::downgrade(&shared));
            let handle = LoopHandle::from_shared(shared.clone());
            let _ctx = context::enter(Marked::Bridge(handle.clone()), id.0);
            live::register(shared.clone());
            ready_tx.set_result(handle);
            rt.block_on(async {
                let mut stop = std::pin::pin!(shared.stop.notified());
                std::future::poll_fn(|cx| loop {
                    // Woken by a submitter that found the loop not accepting.
                    shared.inbox.poll_serve(cx);
                    if shared.is_closed() {
                        return std::task::Poll::Ready(());
                    }
                    if stop.as_mut().poll(cx).is_pending() {
                        return std::task::Poll::Pending;
                    }
                    stop.set(shared.stop.notified());
                })
                .await
            });
            shared.close();
            shared.inbox.close();
            // Dropping the runtime drops every task left, here, on this thread.
            drop(rt);
        })?;
        let handle = ready_rx.wait()?;
        Ok(Loop {
            handle,
            thread: Some(join),
        })
    }
}

/// [`run`](crate::run) with a loop's settings (from [`LoopBuilder::run`]):
/// `name` names the loop (default: this thread's name, else `bridge-run`),
/// `debug` its debug mode, `location` the call site named in debug reports.
pub(crate) fn run_here<F: Future>(
    name: Option<String>,
    debug: DebugConfig,
    location: &'static Location<'static>,
    fut: F,
) -> Result<F::Output, Error> {
    if context::in_any_loop() {
        return Err(Error::NestedLoop);
    }
    let rt = current_thread_runtime().build()?;
    let id = LoopId(shared::next_id());
    let name: std::sync::Arc<str> = match name {
        Some(name) => name.into(),
        None => std::thread::current().name().unwrap_or("bridge-run").into(),
    };
    let shared = LoopShared::new(name, id, Kind::Run, rt.handle().clone(), debug);
    let origin = Origin::when(debug.enabled(), location, &shared.name);
    live::register(shared.clone());
    let ctx = context::enter(
        Marked::Bridge(LoopHandle::from_shared(shared.clone())),
        id.0,
    );
    let out = rt.block_on(Guarded::new(fut, origin, debug.slow_poll()));
    shared.close();
    // Cancels every task left on the loop; their destructors run here.
    drop(rt);
    drop(ctx);
    out
}

// Submitting work: the rest of `LoopHandle` (the type and its accessors
// are in `shared.rs`).
impl LoopHandle {
    /// Runs `fut` on this loop; the returned future gives its outcome
    /// (same as [`run_coroutine_threadsafe`](crate::run_coroutine_threadsafe)).
    ///
    /// A panic in `fut` resolves the future to `Err(Panicked)`. On a closed
    /// loop (also one made before a `fork()`, in the child) the future is
    /// already resolved to `Err(LoopClosed)`.
    ///
    /// On a [`Loop`], work starts in the order it was submitted, and its
    /// first poll may run inline on the loop's thread, outside any tokio task
    /// (`tokio::task::try_id()` is `None` there); a future still pending
    /// after it continues as a tokio task on the loop.
    ///
    /// # Examples
    ///
    /// ```
    /// let lp = bridge::Loop::new().unwrap();
    /// let fut = lp.handle().spawn(async { panic!("oops") });
    /// assert!(matches!(fut.wait(), Err(bridge::Error::Panicked(_))));
    /// ```
    #[track_caller]
    pub fn spawn<F>(&self, fut: F) -> ConcurrentFuture<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let shared = &self.shared;
        if shared.is_closed() {
            return ConcurrentFuture::resolved(Err(Error::LoopClosed));
        }
        // Outside the closure: a closure does not inherit `#[track_caller]`.
        let location = Location::caller();
        let origin = Origin::when(shared.debug.enabled(), location, &shared.name);
        let (promise, cf) = future::pair(shared.home(), origin.clone(), DropOutcome::LoopClosed);
        let guarded = Guarded::new(fut, origin, shared.debug.slow_poll());
        // The worker loop lives for the process: its counters are borrowed,
        // and each poll records the thread driving it (its core moves).
        let worker = match shared.kind {
            Kind::Worker => worker_shared(),
            Kind::Owned | Kind::Run => None,
        };
        let guarded = match worker {
            Some(worker) => guarded.counted_static(&worker.stats).driven_by(worker),
            None => guarded.counted(&shared.stats),
        };
        let task = Task::new(guarded, promise);
        // An owned loop takes its work through its inbox: one queue, so work
        // starts in the order it was submitted, and no wake-up while the loop
        // spins before parking (see `crate::inbox`).
        if shared.kind == Kind::Owned {
            shared.inbox.push(Queued::Boxed(Box::pin(task)));
            return cf;
        }
        let join = shared.tokio.spawn(task);
        cf.set_abort(join.abort_handle());
        cf
    }

    /// Runs `f` on the loop's thread soon; its outcome is not reported back
    /// (a panic is caught, and reported in debug mode).
    ///
    /// # Errors
    ///
    /// `LoopClosed` if the loop is closed or closing, or was made before a
    /// `fork()` and this is the child.
    ///
    /// # Examples
    ///
    /// ```
    /// let lp = bridge::Loop::new().unwrap();
    /// let (tx, rx) = std::sync::mpsc::channel();
    /// lp.handle().call_soon_threadsafe(move || tx.send(std::thread::current().name().map(str::to_owned)).unwrap()).unwrap();
    /// assert!(rx.recv().unwrap().unwrap().starts_with("bridge-loop"));
    /// ```
    #[track_caller]
    pub fn call_soon_threadsafe<F: FnOnce() + Send + 'static>(&self, f: F) -> Result<(), Error> {
        let shared = &self.shared;
        if shared.is_closed() {
            return Err(Error::LoopClosed);
        }
        if shared.kind != Kind::Owned {
            drop(self.spawn(async move { f() }));
            return Ok(());
        }
        // One allocation, no `ConcurrentFuture`; in order with earlier calls.
        let location = Location::caller();
        let origin = Origin::when(shared.debug.enabled(), location, &shared.name);
        let guarded = Guarded::new(async move { f() }, origin.clone(), shared.debug.slow_poll())
            .counted(&shared.stats);
        shared
            .inbox
            .push(Queued::Boxed(Box::pin(Detached::new(guarded, origin))));
        Ok(())
    }

    /// Runs `fut` on this loop and blocks this thread until it is done and
    /// dropped there. `fut` may borrow from the caller (see
    /// [`call_blocking`](crate::call_blocking)).
    ///
    /// On the worker loop this always completes, also from the worker's own
    /// thread (the worker hands its core to another thread first).
    ///
    /// # Errors
    ///
    /// `WouldDeadlock` on this loop's own thread (for a [`Loop`] or a
    /// [`run`](crate::run) loop, which only that thread drives); `Panicked`
    /// if `fut` panics; `LoopClosed`/`Cancelled` if the loop closes first;
    /// `LoopClosed` in a forked child for a loop made before the fork.
    ///
    /// # Examples
    ///
    /// ```
    /// let lp = bridge::Loop::new().unwrap();
    /// assert_eq!(lp.handle().block_on(async { 3 }).unwrap(), 3);
    /// let h = lp.handle();
    /// let inner = lp.handle().block_on(async move { h.block_on(async { 4 }) }).unwrap();
    /// assert!(matches!(inner, Err(bridge::Error::WouldDeadlock)));
    /// ```
    #[track_caller]
    pub fn block_on<F>(&self, fut: F) -> Result<F::Output, Error>
    where
        F: Future + Send,
        F::Output: Send,
    {
        let shared = &self.shared;
        let home = shared.home();
        context::refuse_blocked_home(home)?;
        if shared.is_closed() {
            return Err(Error::LoopClosed);
        }
        let location = Location::caller();
        let origin = Origin::when(shared.debug.enabled(), location, &shared.name);
        let target = origin.clone();
        // Refused at the limit of blocking calls inside worker-loop work.
        let _slot = crate::wait::reserve_blocking(location)?;
        // A wait inside on a loop this thread stops is `WouldDeadlock`.
        let fut = context::on_behalf(fut);
        let guarded = Guarded::new(fut, origin, shared.debug.slow_poll());
        let guarded = match shared.kind {
            Kind::Worker => match worker_shared() {
                Some(worker) => guarded.counted_static(&worker.stats).driven_by(worker),
                None => guarded.counted(&shared.stats),
            },
            Kind::Owned | Kind::Run => guarded.counted(&shared.stats),
        };
        if shared.kind == Kind::Owned {
            // Through the inbox, in order with every other submission.
            let spawner = InboxSpawner {
                inbox: &shared.inbox,
                caller: location,
                target: target.as_ref(),
            };
            return crate::scoped::block_on_with(&spawner, guarded, None);
        }
        crate::handoff::block_on(&shared.tokio, guarded, location, target.as_ref(), None)
    }
}

/// The worker loop's shared state, which lives for the process (started if
/// needed; `None` if it cannot be).
fn worker_shared() -> Option<&'static LoopShared> {
    match context::worker() {
        Some(Ok(worker)) => Some(&*worker.shared),
        Some(Err(_)) | None => None,
    }
}

/// The runtime of a current-thread bridge loop (a [`Loop`] or a
/// [`run`](crate::run) loop): tokio's current-thread scheduler with every
/// driver (timers and I/O) on.
fn current_thread_runtime() -> tokio::runtime::Builder {
    let mut builder = tokio::runtime::Builder::new_current_thread();
    builder.enable_all();
    builder
}
