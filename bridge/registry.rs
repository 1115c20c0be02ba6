//! The per-thread loop registry: which loop runs on this thread, and every
//! live bridge loop in the process.
//!
//! Each thread carries one context: the loop our guards say it is inside (a
//! bridge loop, or a foreign executor named with [`enter_foreign`]) and its
//! *home* (the id of the bridge loop or single-thread executor that this
//! thread alone drives, used to refuse a wait that would deadlock). Guards
//! save the previous context and restore it on drop, so nesting of any depth
//! unwinds correctly, panics included.
//!
//! What our guards do not mark is detected when asked: a tokio runtime
//! context (`Handle::try_current`) and `futures::executor::block_on`
//! (`futures_executor::enter` fails inside it).

use std::cell::{Cell, RefCell};
use std::fmt;
use std::marker::PhantomData;
use std::thread::ThreadId;

use crate::event_loop::{LoopHandle, LoopShared};
use crate::sync::plain::{Arc, AtomicU64, Mutex, Ordering};

/// What is running on the current thread.
///
/// # Examples
///
/// ```
/// assert!(bridge::running_loop().is_none());
/// bridge::run(async {
///     assert!(matches!(bridge::running_loop(), Some(bridge::RunningLoop::Bridge(_))));
/// }).unwrap();
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum RunningLoop {
    /// A loop of this crate.
    Bridge(LoopHandle),
    /// A tokio runtime built elsewhere (its flavor is on the handle).
    Tokio(tokio::runtime::Handle),
    /// `"futures::executor"` inside `futures::executor::block_on`, or the name
    /// given to [`enter_foreign`].
    Foreign(&'static str),
}

/// The identity of a bridge loop.
///
/// # Examples
///
/// ```
/// let a = bridge::Loop::new().unwrap();
/// let b = bridge::Loop::new().unwrap();
/// assert_ne!(a.handle().id(), b.handle().id());
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub struct LoopId(pub(crate) u64);

impl fmt::Display for LoopId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "loop#{}", self.0)
    }
}

/// Ids for loops and single-thread executors, from one space (0 is "none").
pub(crate) fn next_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    // ORDERING: Relaxed: only uniqueness matters, and a RMW gives that.
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// A small number naming this thread, assigned on first use (never 0).
pub(crate) fn thread_no() -> u64 {
    std::thread_local! {
        // Per-thread and never shared: not a model concern.
        static NO: Cell<u64> = const { Cell::new(0) };
    }
    NO.try_with(|n| {
        if n.get() == 0 {
            static NEXT: AtomicU64 = AtomicU64::new(1);
            // ORDERING: Relaxed: only uniqueness matters.
            n.set(NEXT.fetch_add(1, Ordering::Relaxed));
        }
        n.get()
    })
    .unwrap_or(u64::MAX)
}

/// What our guards have marked on this thread.
#[derive(Clone, Default)]
pub(crate) enum Marked {
    #[default]
    Nothing,
    Bridge(LoopHandle),
    Foreign(&'static str),
}

struct Context {
    marked: RefCell<Marked>,
    home: Cell<u64>,
    /// A thread of the worker loop's runtime.
    worker_thread: Cell<bool>,
}

crate::sync::thread_local! {
    static CONTEXT: Context = Context {
        marked: RefCell::new(Marked::Nothing),
        home: Cell::new(0),
        worker_thread: Cell::new(false),
    };
}

/// Restores the previous context of this thread on drop.
#[must_use = "the context is restored as soon as the guard is dropped"]
pub(crate) struct EnterGuard {
    prev: Marked,
    prev_home: u64,
    /// Guards restore thread-local state: they must stay on their thread.
    _not_send: PhantomData<*const ()>,
}

/// Marks this thread as inside `marked` (and `home`, if non-zero) until the
/// guard drops.
pub(crate) fn enter(marked: Marked, home: u64) -> EnterGuard {
    CONTEXT.with(|c| {
        let prev = c.marked.replace(marked);
        let prev_home = c.home.get();
        if home != 0 {
            c.home.set(home);
        }
        EnterGuard {
            prev,
            prev_home,
            _not_send: PhantomData,
        }
    })
}

impl Drop for EnterGuard {
    fn drop(&mut self) {
        let prev = std::mem::take(&mut self.prev);
        // `try_with`: a guard may drop during thread teardown.
        let _ = CONTEXT.try_with(|c| {
            c.home.set(self.prev_home);
            c.marked.replace(prev)
        });
    }
}

/// The home id of this thread (0: none).
pub(crate) fn current_home() -> u64 {
    CONTEXT.try_with(|c| c.home.get()).unwrap_or(0)
}

/// Marks this thread as one of the worker loop runtime's threads.
pub(crate) fn mark_worker_thread() {
    CONTEXT.with(|c| c.worker_thread.set(true));
}

pub(crate) fn is_worker_thread() -> bool {
    CONTEXT.try_with(|c| c.worker_thread.get()).unwrap_or(false)
}

pub(crate) fn marked() -> Marked {
    CONTEXT
        .try_with(|c| c.marked.borrow().clone())
        .unwrap_or_default()
}

/// Whether the bridge loop this thread drives (if any) is in debug mode.
pub(crate) fn current_loop_debug() -> bool {
    CONTEXT
        .try_with(|c| matches!(&*c.marked.borrow(), Marked::Bridge(h) if h.shared.debug.enabled()))
        .unwrap_or(false)
}

/// Whether any loop or executor (bridge, tokio or foreign) runs on this thread.
pub(crate) fn in_any_loop() -> bool {
    let ours = CONTEXT
        .try_with(|c| c.worker_thread.get() || !matches!(*c.marked.borrow(), Marked::Nothing))
        .unwrap_or(false);
    // A tokio context whose thread-local is already destroyed (a late
    // thread-local destructor) counts as a loop: no runtime can be driven on
    // this thread any more, so work must be handed to the worker loop.
    let tokio = match tokio::runtime::Handle::try_current() {
        Ok(_) => true,
        Err(e) => e.is_thread_local_destroyed(),
    };
    ours || tokio || in_futures_executor()
}

fn in_futures_executor() -> bool {
    futures_executor::enter().is_err()
}

/// What runs on this thread, if anything: a bridge loop, a tokio runtime, or
/// a foreign executor.
///
/// Sees bridge loops, tokio runtimes the user built (also a `spawn_blocking`
/// thread or a `Runtime::enter` scope, where blocking is allowed: a hand-off
/// from there is merely slower), `futures::executor::block_on`, and whatever
/// was marked with [`enter_foreign`].
///
/// When executors are nested, the innermost is reported where it can be
/// told: our guards and [`enter_foreign`] mark nesting exactly, and
/// `futures::executor::block_on` is reported over a tokio context around it.
///
/// # Examples
///
/// ```
/// let rt = tokio::runtime::Runtime::new().unwrap();
/// rt.block_on(async {
///     assert!(matches!(bridge::running_loop(), Some(bridge::RunningLoop::Tokio(_))));
/// });
/// futures::executor::block_on(async {
///     assert!(matches!(bridge::running_loop(), Some(bridge::RunningLoop::Foreign("futures::executor"))));
/// });
/// ```
pub fn running_loop() -> Option<RunningLoop> {
    match marked() {
        Marked::Bridge(h) => return Some(RunningLoop::Bridge(h)),
        Marked::Foreign(name) => return Some(RunningLoop::Foreign(name)),
        Marked::Nothing => {}
    }
    if is_worker_thread() {
        return Some(RunningLoop::Bridge(crate::worker::worker_loop()));
    }
    // `futures::executor::block_on` called inside a tokio task (the classic
    // way to hang a runtime) is the innermost of the two, so it is asked first.
    if in_futures_executor() {
        return Some(RunningLoop::Foreign("futures::executor"));
    }
    if let Ok(h) = tokio::runtime::Handle::try_current() {
        return Some(RunningLoop::Tokio(h));
    }
    None
}

/// This thread's bridge loop.
///
/// # Errors
///
/// [`Error::NoRunningLoop`](crate::Error::NoRunningLoop) outside a bridge loop
/// (also inside a foreign executor or a tokio runtime not made by this crate).
///
/// # Examples
///
/// ```
/// assert!(bridge::get_running_loop().is_err());
/// let lp = bridge::Loop::new().unwrap();
/// let same = lp.handle().block_on(async { bridge::get_running_loop().unwrap().id() }).unwrap();
/// assert_eq!(same, lp.handle().id());
/// ```
pub fn get_running_loop() -> Result<LoopHandle, crate::Error> {
    match running_loop() {
        Some(RunningLoop::Bridge(h)) => Ok(h),
        _ => Err(crate::Error::NoRunningLoop),
    }
}

/// Marks this thread as inside another executor (pollster, smol, a custom
/// one) until the guard drops, so [`block_on_safe`](crate::block_on_safe)
/// hands off instead of blocking an executor it cannot see.
///
/// # Examples
///
/// ```
/// let guard = bridge::enter_foreign("pollster");
/// assert!(matches!(bridge::running_loop(), Some(bridge::RunningLoop::Foreign("pollster"))));
/// drop(guard);
/// assert!(bridge::running_loop().is_none());
/// ```
pub fn enter_foreign(name: &'static str) -> ForeignGuard {
    ForeignGuard {
        _inner: enter(Marked::Foreign(name), 0),
    }
}

/// Keeps this thread marked as inside a foreign executor; see [`enter_foreign`].
///
/// Dropping it restores whatever was marked before. It cannot leave its
/// thread. Guards are meant to be dropped in reverse order of creation (as
/// scopes do); dropped out of order, each still restores what it saved, so the
/// thread can stay marked as inside an executor it has left. Nothing breaks
/// then: [`block_on_safe`](crate::block_on_safe) hands off to the worker loop
/// where it could have run inline, which is only slower.
///
/// # Examples
///
/// ```
/// let _outer = bridge::enter_foreign("outer");
/// {
///     let _inner = bridge::enter_foreign("inner");
///     assert!(matches!(bridge::running_loop(), Some(bridge::RunningLoop::Foreign("inner"))));
/// }
/// assert!(matches!(bridge::running_loop(), Some(bridge::RunningLoop::Foreign("outer"))));
/// ```
#[must_use = "the thread is unmarked as soon as the guard is dropped"]
pub struct ForeignGuard {
    _inner: EnterGuard,
}

impl fmt::Debug for ForeignGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ForeignGuard").finish_non_exhaustive()
    }
}

// ---- the process-wide list of live bridge loops ----

static LOOPS: Mutex<Vec<Arc<LoopShared>>> = Mutex::new(Vec::new());

pub(crate) fn register(shared: Arc<LoopShared>) {
    LOOPS.lock().push(shared);
}

pub(crate) fn unregister(id: LoopId) {
    let removed = {
        let mut list = LOOPS.lock();
        list.iter()
            .position(|l| l.id == id)
            .map(|i| list.swap_remove(i))
    };
    drop(removed); // outside the lock
}

/// Every live bridge loop in the process (the worker loop once started,
/// every open [`Loop`](crate::Loop), every running [`run`](crate::run)).
/// In a forked child, only those made in the child: the parent's have no
/// thread there.
///
/// # Examples
///
/// ```
/// let lp = bridge::Loop::builder().name("db").build().unwrap();
/// assert!(bridge::loops().iter().any(|l| l.name() == "db"));
/// drop(lp);
/// assert!(!bridge::loops().iter().any(|l| l.name() == "db"));
/// ```
pub fn loops() -> Vec<LoopInfo> {
    let mut v: Vec<LoopInfo> = LOOPS
        .lock()
        .iter()
        // In a forked child, the parent's loops have no thread here.
        .filter(|s| !s.is_stale())
        .map(|s| LoopInfo { shared: s.clone() })
        .collect();
    v.sort_by_key(|l| l.id());
    v
}

/// A live view of one bridge loop, from [`loops`].
///
/// # Examples
///
/// ```
/// let lp = bridge::Loop::builder().name("info").build().unwrap();
/// let info = bridge::loops().into_iter().find(|l| l.id() == lp.handle().id()).unwrap();
/// assert_eq!(info.name(), "info");
/// assert_eq!(info.tasks(), 0);
/// ```
#[derive(Clone)]
pub struct LoopInfo {
    shared: Arc<LoopShared>,
}

impl LoopInfo {
    /// The loop's name (also its thread's name).
    ///
    /// # Examples
    ///
    /// ```
    /// let lp = bridge::Loop::builder().name("cache").build().unwrap();
    /// assert!(bridge::loops().iter().any(|l| l.name() == "cache"));
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
    /// assert!(bridge::loops().iter().any(|l| l.id() == lp.handle().id()));
    /// ```
    pub fn id(&self) -> LoopId {
        self.shared.id
    }

    /// The thread driving the loop now (for the worker loop it changes when
    /// a blocking call hands its core to another thread).
    ///
    /// # Examples
    ///
    /// ```
    /// let lp = bridge::Loop::new().unwrap();
    /// let id = lp.handle().id();
    /// let tid = lp.handle().block_on(async { std::thread::current().id() }).unwrap();
    /// let info = bridge::loops().into_iter().find(|l| l.id() == id).unwrap();
    /// assert_eq!(info.thread_id(), tid);
    /// ```
    pub fn thread_id(&self) -> ThreadId {
        self.shared.thread_id()
    }

    /// Its live tasks (spawned and not yet finished, any way they were spawned).
    ///
    /// # Examples
    ///
    /// ```
    /// let lp = bridge::Loop::new().unwrap();
    /// let id = lp.handle().id();
    /// let fut = lp.handle().spawn(std::future::pending::<()>());
    /// let info = bridge::loops().into_iter().find(|l| l.id() == id).unwrap();
    /// assert_eq!(info.tasks(), 1);
    /// drop(fut); // detached: the task stays until the loop closes
    /// ```
    pub fn tasks(&self) -> usize {
        // The lag probe is the crate's own, not the user's.
        let alive = self.shared.tokio.metrics().num_alive_tasks();
        // Work in a `Loop`'s inbox is live before (or without) being a task.
        let queued = self.shared.inbox.pending();
        (alive + queued).saturating_sub(self.shared.stats.probes())
    }

    /// Tasks spawned on this loop through this crate so far
    /// ([`LoopHandle::spawn`], [`call_soon_threadsafe`](LoopHandle::call_soon_threadsafe),
    /// [`run_coroutine_threadsafe`](crate::run_coroutine_threadsafe), and for the
    /// worker loop every [`call_blocking`](crate::call_blocking) and hand-off).
    /// Each one ends up counted once as completed, panicked or cancelled.
    ///
    /// # Examples
    ///
    /// ```
    /// let lp = bridge::Loop::new().unwrap();
    /// lp.handle().spawn(async {}).wait().unwrap();
    /// let info = bridge::loops().into_iter().find(|l| l.id() == lp.handle().id()).unwrap();
    /// assert_eq!((info.spawned(), info.completed()), (1, 1));
    /// ```
    pub fn spawned(&self) -> u64 {
        self.shared.stats.spawned()
    }

    /// Tasks spawned through this crate that finished with a value.
    ///
    /// # Examples
    ///
    /// ```
    /// let lp = bridge::Loop::new().unwrap();
    /// lp.handle().block_on(async {}).unwrap();
    /// let info = bridge::loops().into_iter().find(|l| l.id() == lp.handle().id()).unwrap();
    /// assert_eq!(info.completed(), 1);
    /// ```
    pub fn completed(&self) -> u64 {
        self.shared.stats.completed()
    }

    /// Tasks spawned through this crate that were dropped before they
    /// finished: cancelled, aborted, or still there when the loop closed.
    ///
    /// # Examples
    ///
    /// ```
    /// let lp = bridge::Loop::new().unwrap();
    /// let info = bridge::loops().into_iter().find(|l| l.id() == lp.handle().id()).unwrap();
    /// let (tx, rx) = std::sync::mpsc::channel::<()>();
    /// struct Dropped(std::sync::mpsc::Sender<()>);
    /// impl Drop for Dropped {
    ///     fn drop(&mut self) { let _ = self.0.send(()); }
    /// }
    /// let guard = Dropped(tx);
    /// let fut = lp.handle().spawn(async move {
    ///     let _guard = guard;
    ///     std::future::pending::<()>().await
    /// });
    /// assert!(fut.cancel());
    /// rx.recv().unwrap(); // the task's destructors ran: it is counted
    /// assert_eq!(info.cancelled(), 1);
    /// ```
    pub fn cancelled(&self) -> u64 {
        self.shared.stats.cancelled()
    }

    /// Tasks spawned through this crate that panicked.
    ///
    /// # Examples
    ///
    /// ```
    /// let lp = bridge::Loop::new().unwrap();
    /// let fut = lp.handle().spawn(async { panic!("boom") });
    /// assert!(fut.wait().is_err());
    /// let info = bridge::loops().into_iter().find(|l| l.id() == lp.handle().id()).unwrap();
    /// assert_eq!(info.panicked(), 1);
    /// ```
    pub fn panicked(&self) -> u64 {
        self.shared.stats.panicked()
    }

    /// How late the loop's timer woke last time: a probe sleeps for 100 ms
    /// over and over and this is how much longer than that it took. A loop
    /// that polls for long without yielding shows a large lag.
    ///
    /// The probe runs on every loop in debug mode and, on any other loop,
    /// from the first call of `lag` (or [`max_lag`](Self::max_lag)), so this
    /// returns `None` until its first sample (about 100 ms later). The probe
    /// is not counted in [`tasks`](Self::tasks).
    ///
    /// # Examples
    ///
    /// ```
    /// let lp = bridge::Loop::builder().debug(true).build().unwrap();
    /// let info = bridge::loops().into_iter().find(|l| l.id() == lp.handle().id()).unwrap();
    /// if let Some(lag) = info.lag() {
    ///     println!("timers wake {lag:?} late");
    /// }
    /// ```
    pub fn lag(&self) -> Option<std::time::Duration> {
        crate::stats::start_lag_probe(&self.shared);
        self.shared.stats.lag()
    }

    /// The largest [`lag`](Self::lag) seen since the probe started.
    ///
    /// # Examples
    ///
    /// ```
    /// let lp = bridge::Loop::new().unwrap();
    /// let info = bridge::loops().into_iter().find(|l| l.id() == lp.handle().id()).unwrap();
    /// assert!(info.max_lag().is_none()); // the probe starts now
    /// ```
    pub fn max_lag(&self) -> Option<std::time::Duration> {
        crate::stats::start_lag_probe(&self.shared);
        self.shared.stats.max_lag()
    }

    /// Whether debug mode is on for the loop.
    ///
    /// # Examples
    ///
    /// ```
    /// let lp = bridge::Loop::builder().debug(true).build().unwrap();
    /// let info = bridge::loops().into_iter().find(|l| l.id() == lp.handle().id()).unwrap();
    /// assert!(info.debug());
    /// ```
    pub fn debug(&self) -> bool {
        self.shared.debug.enabled()
    }

    /// A handle to the loop.
    ///
    /// # Examples
    ///
    /// ```
    /// let lp = bridge::Loop::new().unwrap();
    /// let info = bridge::loops().into_iter().find(|l| l.id() == lp.handle().id()).unwrap();
    /// assert_eq!(info.handle().block_on(async { 3 }).unwrap(), 3);
    /// ```
    pub fn handle(&self) -> LoopHandle {
        LoopHandle::from_shared(self.shared.clone())
    }
}

impl fmt::Debug for LoopInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoopInfo")
            .field("name", &self.name())
            .field("id", &self.id())
            .field("thread_id", &self.thread_id())
            .field("tasks", &self.tasks())
            .field("spawned", &self.spawned())
            .field("completed", &self.completed())
            .field("cancelled", &self.cancelled())
            .field("panicked", &self.panicked())
            .field("lag", &self.shared.stats.lag())
            .finish()
    }
}

/// A one-line health report: name, id, live tasks, the counters, and the lag
/// when it is measured (`Display` does not start the lag probe).
///
/// # Examples
///
/// ```
/// let lp = bridge::Loop::builder().name("health").build().unwrap();
/// lp.handle().block_on(async {}).unwrap();
/// let info = bridge::loops().into_iter().find(|l| l.name() == "health").unwrap();
/// let line = info.to_string();
/// assert!(line.starts_with("health (loop#"), "{line}");
/// assert!(line.contains("1 spawned, 1 completed, 0 cancelled, 0 panicked"), "{line}");
/// ```
impl fmt::Display for LoopInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({}): {} live, {} spawned, {} completed, {} cancelled, {} panicked",
            self.name(),
            self.id(),
            self.tasks(),
            self.spawned(),
            self.completed(),
            self.cancelled(),
            self.panicked(),
        )?;
        match (self.shared.stats.lag(), self.shared.stats.max_lag()) {
            (Some(lag), Some(max)) => write!(f, ", lag {lag:.1?} (max {max:.1?})"),
            _ => Ok(()),
        }
    }
}
