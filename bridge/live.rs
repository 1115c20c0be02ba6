//! The process-wide list of live bridge loops: [`loops`] and [`LoopInfo`],
//! and closing a loop (which takes it off the list).

use std::fmt;
use std::thread::ThreadId;

use crate::shared::{Kind, LoopHandle, LoopId, LoopShared};
use crate::sync::plain::{Arc, Mutex};

static LOOPS: Mutex<Vec<Arc<LoopShared>>> = Mutex::new(Vec::new());

pub(crate) fn register(shared: Arc<LoopShared>) {
    if shared.kind == Kind::Worker {
        crate::context::set_worker_runtime(shared.tokio.id());
    }
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
        // Work in a `Loop`'s inbox is live before (or without) being a task.
        let metrics = self.shared.tokio.metrics();
        let live = self.shared.inbox.live_tasks(|| metrics.num_alive_tasks());
        live.saturating_sub(self.shared.stats.probes())
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
    /// The probe runs only while someone looks: each call of `lag` (or
    /// [`max_lag`](Self::max_lag)) keeps it running for the next 10 s (the
    /// first call starts it, so this returns `None` until its first sample,
    /// about 100 ms later), and in debug mode it also runs while the loop
    /// has tasks spawned through this crate. Then it stops by itself and the
    /// last sample stays. While it runs it costs the loop one timer wake-up
    /// every 100 ms; an idle loop nobody looks at is never woken. The probe
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
        crate::stats::look_at_lag(
            &self.shared.stats,
            &self.shared.tokio,
            self.shared.is_closed(),
        );
        self.shared.stats.lag()
    }

    /// The largest [`lag`](Self::lag) seen while the probe ran (it runs
    /// while someone looks; see there).
    ///
    /// # Examples
    ///
    /// ```
    /// let lp = bridge::Loop::new().unwrap();
    /// let info = bridge::loops().into_iter().find(|l| l.id() == lp.handle().id()).unwrap();
    /// assert!(info.max_lag().is_none()); // the probe starts now
    /// ```
    pub fn max_lag(&self) -> Option<std::time::Duration> {
        crate::stats::look_at_lag(
            &self.shared.stats,
            &self.shared.tokio,
            self.shared.is_closed(),
        );
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

impl LoopShared {
    /// Marks the loop closed (no new work), takes it off the live list and
    /// wakes its thread to stop; later calls do nothing.
    pub(crate) fn close(&self) {
        if self.mark_closed() {
            unregister(self.id);
            // In a forked child the loop's thread does not exist, and what it
            // left registered (the stop `Notify`'s waiter node) lives on its
            // stack, which the child's own new threads may reuse: waking it
            // would follow a dangling pointer. There is nobody to wake.
            if !self.is_stale() {
                self.stop.notify_one();
            }
        }
    }
}
