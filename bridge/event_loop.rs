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
use std::thread::ThreadId;
use std::time::Duration;

use crate::debug::{DebugConfig, Origin};
use crate::error::Error;
use crate::future::{self, ConcurrentFuture, DropOutcome};
use crate::inbox::{Inbox, InboxSpawner, Queued};
use crate::registry::{self, LoopId, Marked};
use crate::stats::LoopStats;
use crate::sync::plain::{Arc, AtomicBool, AtomicU64, Mutex, OnceLock, Ordering, Weak};
use crate::task::{Detached, Guarded, Task};

/// Which kind of bridge loop a handle points to.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Kind {
    /// A [`Loop`]: one thread, its own.
    Owned,
    /// A loop made by [`run`](crate::run) on the calling thread.
    Run,
    /// The shared worker loop: a one-core multi-thread runtime whose core
    /// moves away from a thread that blocks.
    Worker,
}

/// State shared by a loop's thread and every handle to it.
pub(crate) struct LoopShared {
    pub(crate) name: Arc<str>,
    pub(crate) id: LoopId,
    pub(crate) kind: Kind,
    pub(crate) tokio: tokio::runtime::Handle,
    pub(crate) debug: DebugConfig,
    /// Counters and lag for [`LoopInfo`](crate::LoopInfo).
    pub(crate) stats: Arc<LoopStats>,
    closed: AtomicBool,
    /// The thread driving the loop now, and its `registry::thread_no` (a
    /// cheap check that spares the lock when the driver has not changed).
    thread: Mutex<ThreadId>,
    driver_no: AtomicU64,
    /// Tells an owned loop's thread to stop.
    stop: tokio::sync::Notify,
    /// Work handed to an owned loop's thread while it spins before parking
    /// (see [`crate::inbox`]); unused by the other kinds.
    pub(crate) inbox: Inbox,
    /// The process generation it was made in ([`crate::fork`]): in a forked
    /// child its thread is gone, and the loop counts as closed.
    generation: u64,
}

impl LoopShared {
    pub(crate) fn new(
        name: Arc<str>,
        id: LoopId,
        kind: Kind,
        tokio: tokio::runtime::Handle,
        debug: DebugConfig,
    ) -> Arc<Self> {
        let shared = Arc::new(LoopShared {
            name,
            id,
            kind,
            tokio,
            debug,
            stats: LoopStats::new(),
            closed: AtomicBool::new(false),
            thread: Mutex::new(std::thread::current().id()),
            driver_no: AtomicU64::new(registry::thread_no()),
            stop: tokio::sync::Notify::new(),
            inbox: Inbox::new(),
            generation: crate::fork::watch(),
        });
        if debug.enabled() {
            crate::stats::start_lag_probe(&shared);
        }
        shared
    }

    pub(crate) fn thread_id(&self) -> ThreadId {
        *self.thread.lock()
    }

    /// Records the calling thread as the one driving the loop now: called
    /// where the worker loop's core may have moved (its park hooks, and each
    /// poll of a task spawned on it).
    pub(crate) fn note_driver(&self) {
        let me = registry::thread_no();
        // ORDERING: Relaxed: a hint that skips the lock; the `ThreadId` itself
        // is read and written under the lock.
        if self.driver_no.load(Ordering::Relaxed) != me {
            self.driver_no.store(me, Ordering::Relaxed);
            *self.thread.lock() = std::thread::current().id();
        }
    }

    /// Marks the loop closed (no new work) and wakes its thread to stop.
    pub(crate) fn close(&self) {
        // ORDERING: SeqCst is not needed for a flag read by `spawn`; Release
        // pairs with the Acquire in `is_closed` (a late spawn is still caught by
        // tokio refusing tasks on a shut-down runtime).
        if !self.closed.swap(true, Ordering::AcqRel) {
            registry::unregister(self.id);
            self.stop.notify_one();
        }
    }

    /// Closed, closing, or lost to a fork (see [`Self::is_stale`]).
    pub(crate) fn is_closed(&self) -> bool {
        // ORDERING: Acquire pairs with the Release in `close`.
        self.closed.load(Ordering::Acquire) || self.is_stale()
    }

    /// In a forked child, for a loop made before the fork: no thread drives
    /// it here, so it takes no work and nothing may wait for that thread.
    pub(crate) fn is_stale(&self) -> bool {
        crate::fork::is_stale(self.generation)
    }

    /// The home id for futures of this loop: the one thread that must run them.
    fn home(&self) -> u64 {
        match self.kind {
            Kind::Owned | Kind::Run => self.id.0,
            Kind::Worker => 0,
        }
    }
}

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
            slow_poll_threshold: crate::debug::DEFAULT_SLOW_POLL,
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
                let _ = crate::worker::blocking_region(Location::caller(), || thread.join());
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
        self.name = Some(name.into().replace('\0', "?"));
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
        crate::entry::run_here(self.name, debug, Location::caller(), fut)
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
        let id = LoopId(registry::next_id());
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
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
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
            let _ctx = registry::enter(Marked::Bridge(handle.clone()), id.0);
            registry::register(shared.clone());
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

/// A cheap, cloneable, `Send + Sync` reference to a bridge loop, for
/// submitting work from any thread.
///
/// # Examples
///
/// ```
/// let lp = bridge::Loop::new().unwrap();
/// let h = lp.handle();
/// let fut = h.spawn(async { 6 * 7 });
/// assert_eq!(fut.wait().unwrap(), 42);
/// h.call_soon_threadsafe(|| println!("on the loop")).unwrap();
/// ```
#[derive(Clone)]
pub struct LoopHandle {
    pub(crate) shared: Arc<LoopShared>,
}

impl LoopHandle {
    pub(crate) fn from_shared(shared: Arc<LoopShared>) -> Self {
        LoopHandle { shared }
    }

    pub(crate) fn kind(&self) -> Kind {
        self.shared.kind
    }

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
        let origin = shared.debug.enabled().then(|| Origin {
            location,
            loop_name: shared.name.clone(),
        });
        let (promise, cf) = future::pair(shared.home(), origin.clone(), DropOutcome::LoopClosed);
        let guarded = Guarded::new(fut, origin, shared.debug.slow_poll());
        // The worker loop lives for the process: its counters are borrowed,
        // and each poll records the thread driving it (its core moves).
        let worker = match shared.kind {
            Kind::Worker => crate::worker::worker_shared().ok(),
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
        let origin = shared.debug.enabled().then(|| Origin {
            location,
            loop_name: shared.name.clone(),
        });
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
        if registry::is_blocked_home(home) {
            return Err(Error::WouldDeadlock);
        }
        if shared.is_closed() {
            return Err(Error::LoopClosed);
        }
        let location = Location::caller();
        let origin = shared.debug.enabled().then(|| Origin {
            location,
            loop_name: shared.name.clone(),
        });
        let target = origin.clone();
        // Refused at the limit of blocking calls inside worker-loop work.
        let _slot = crate::worker::reserve_blocking(location)?;
        // A wait inside on a loop this thread stops is `WouldDeadlock`.
        let fut = registry::on_behalf(fut);
        let guarded = Guarded::new(fut, origin, shared.debug.slow_poll());
        let guarded = match shared.kind {
            Kind::Worker => match crate::worker::worker_shared() {
                Ok(worker) => guarded.counted_static(&worker.stats).driven_by(worker),
                Err(_) => guarded.counted(&shared.stats),
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
        crate::scoped::block_on(&shared.tokio, guarded, location, target.as_ref(), None)
    }

    /// The loop's name.
    ///
    /// # Examples
    ///
    /// ```
    /// let lp = bridge::Loop::builder().name("net").build().unwrap();
    /// assert_eq!(lp.handle().name(), "net");
    /// ```
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// The loop's id.
    ///
    /// # Examples
    ///
    /// ```
    /// let lp = bridge::Loop::new().unwrap();
    /// assert_eq!(lp.handle().id(), lp.handle().clone().id());
    /// ```
    pub fn id(&self) -> LoopId {
        self.shared.id
    }

    /// Whether the loop is closed or closing (it takes no new work). In a
    /// forked child, a loop made before the fork is closed: its thread
    /// stayed in the parent.
    ///
    /// # Examples
    ///
    /// ```
    /// let lp = bridge::Loop::new().unwrap();
    /// let h = lp.handle();
    /// assert!(!h.is_closed());
    /// drop(lp);
    /// assert!(h.is_closed());
    /// ```
    pub fn is_closed(&self) -> bool {
        self.shared.is_closed()
    }

    /// The tokio runtime handle of the loop, for tokio APIs that want one.
    ///
    /// # Examples
    ///
    /// ```
    /// let lp = bridge::Loop::new().unwrap();
    /// let join = lp.handle().tokio_handle().spawn(async { 2 });
    /// assert_eq!(lp.handle().block_on(join).unwrap().unwrap(), 2);
    /// ```
    pub fn tokio_handle(&self) -> &tokio::runtime::Handle {
        &self.shared.tokio
    }

    /// Whether debug mode is on for this loop.
    ///
    /// # Examples
    ///
    /// ```
    /// let lp = bridge::Loop::builder().debug(false).build().unwrap();
    /// assert!(!lp.handle().debug());
    /// ```
    pub fn debug(&self) -> bool {
        self.shared.debug.enabled()
    }
}

impl PartialEq for LoopHandle {
    fn eq(&self, other: &Self) -> bool {
        self.shared.id == other.shared.id
    }
}

impl Eq for LoopHandle {}

impl fmt::Debug for LoopHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoopHandle")
            .field("name", &self.name())
            .field("id", &self.id())
            .field("closed", &self.is_closed())
            .finish()
    }
}
