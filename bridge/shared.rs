//! The state every reference to a bridge loop shares: [`LoopShared`], its
//! [`Kind`] and [`LoopId`], and the [`LoopHandle`] type with its cheap
//! accessors. Submitting work through a handle is in
//! [`event_loop`](crate::event_loop); closing a loop, which also takes it off
//! the live-loop list, is in [`live`](crate::live).

use std::cell::Cell;
use std::fmt;
use std::thread::ThreadId;

use crate::inbox::Inbox;
use crate::report::DebugConfig;
use crate::stats::LoopStats;
use crate::sync::plain::{Arc, AtomicBool, AtomicU64, Mutex, Ordering};

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

/// A thread name the OS accepts: NUL bytes (which would make a thread's
/// spawn panic) become `?`. For loops' and executors' threads.
pub(crate) fn thread_name(name: &str) -> String {
    name.replace('\0', "?")
}

/// Which kind of bridge loop a handle points to.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Kind {
    /// A [`Loop`](crate::Loop): one thread, its own.
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
    /// The thread driving the loop now, and its `shared::thread_no` (a
    /// cheap check that spares the lock when the driver has not changed).
    thread: Mutex<ThreadId>,
    driver_no: AtomicU64,
    /// Tells an owned loop's thread to stop.
    pub(crate) stop: tokio::sync::Notify,
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
            driver_no: AtomicU64::new(thread_no()),
            stop: tokio::sync::Notify::new(),
            inbox: Inbox::new(),
            generation: crate::fork::watch(),
        });
        if debug.enabled() {
            crate::stats::start_lag_probe(&shared.stats, &shared.tokio);
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
        let me = thread_no();
        // ORDERING: Relaxed: a hint that skips the lock; the `ThreadId` itself
        // is read and written under the lock.
        if self.driver_no.load(Ordering::Relaxed) != me {
            self.driver_no.store(me, Ordering::Relaxed);
            *self.thread.lock() = std::thread::current().id();
        }
    }

    /// Marks the loop closed (no new work); true for the one call that
    /// closed it. [`close`](Self::close) (in [`live`](crate::live)) also takes
    /// the loop off the live list and wakes its thread to stop.
    pub(crate) fn mark_closed(&self) -> bool {
        // ORDERING: SeqCst is not needed for a flag read by `spawn`; Release
        // pairs with the Acquire in `is_closed` (a late spawn is still caught by
        // tokio refusing tasks on a shut-down runtime).
        !self.closed.swap(true, Ordering::AcqRel)
    }

    /// Closed, closing, or lost to a fork (see [`Self::is_stale`]).
    pub(crate) fn is_closed(&self) -> bool {
        // ORDERING: Acquire pairs with the Release in `mark_closed`.
        self.closed.load(Ordering::Acquire) || self.is_stale()
    }

    /// In a forked child, for a loop made before the fork: no thread drives
    /// it here, so it takes no work and nothing may wait for that thread.
    pub(crate) fn is_stale(&self) -> bool {
        crate::fork::is_stale(self.generation)
    }

    /// The home id for futures of this loop: the one thread that must run them.
    pub(crate) fn home(&self) -> u64 {
        match self.kind {
            Kind::Owned | Kind::Run => self.id.0,
            Kind::Worker => 0,
        }
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
}

impl LoopHandle {
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
