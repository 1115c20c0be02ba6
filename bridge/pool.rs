//! The thread pool behind every [`Executor`](crate::Executor): a lock-free
//! FIFO of jobs, one atomic state word for the accounting, and a sleep lock
//! that only threads about to park, and submitters that must wake one, touch.
//!
//! # The state word ([`Counts`])
//!
//! | bits   | field     | meaning                                                         |
//! |--------|-----------|-----------------------------------------------------------------|
//! | 0..32  | `queued`  | jobs admitted and not yet *reserved* by a thread                |
//! | 32..48 | `waiting` | threads idle, looking for work (spinning or parked), no job     |
//! | 48..63 | `threads` | threads alive, or about to be spawned                           |
//! | 63     | `CLOSED`  | no new job is admitted; threads drain `queued`, then exit       |
//!
//! | who         | when                         | change (one CAS)                                          |
//! |-------------|------------------------------|-----------------------------------------------------------|
//! | submitter   | `admit`, open                | `queued + 1`; also `threads + 1` (spawn) if `queued > waiting` and `threads < max` |
//! | submitter   | `admit`, closed              | none: the job resolves to `LoopClosed`                    |
//! | busy thread | `after_job`                  | `queued - 1` (run the next) / else `threads - 1` if closed (exit) / else `waiting + 1` |
//! | idle thread | `leave_wait`                 | `queued - 1, waiting - 1` (run) / `waiting - 1, threads - 1` if closed and nothing queued (exit) |
//! | idle thread | `retire`, idle timeout       | `waiting - 1, threads - 1` if nothing is queued and open  |
//! | submitter   | `spawn_failed`               | `threads - 1`                                             |
//! | anyone      | `close`                      | `+ CLOSED`                                                |
//!
//! A job is counted (`queued + 1`) *before* it is pushed on the queue, so a
//! thread that reserves it may find the push still in flight and snoozes
//! for it; in exchange a job is never pushed once `CLOSED` is set, and a
//! thread exits only when `queued` is zero, so no admitted job is stranded.
//! Every thread runs one job at a time and `threads <= max`, so no more than
//! `max` jobs ever run at once.
//!
//! A thread takes its next step (`after_job`) right after the closure returns
//! and *before* the job's outcome is published: a submitter that waits for
//! one result and then submits again finds the thread already counted idle,
//! so a caller doing one job at a time never makes the pool grow.
//!
//! # Sleeping and waking
//!
//! An idle thread spins for [`park::MAX_SPIN`] (50 us), watching the state
//! word, so that a job submitted right after the last one is picked up
//! without a system call on either side; at most half the cores' worth of
//! idle threads spin at once, the others park at once. Then it registers in
//! `sleepers` under the sleep lock, re-reads the state word, and parks on a
//! condvar (with the idle timeout). A submitter, after its `admit`, reads
//! `sleepers` and wakes one only if more jobs are queued than there are idle
//! threads not parked. Both sides use `SeqCst` for the registration and the
//! re-read (a Dekker pair), so either the sleeper sees the job or the
//! submitter sees the sleeper. A wake-up is a credit under the lock, so a
//! thread that times out at the same moment takes it instead of retiring,
//! and `close` hands one to every sleeper. [`Sleep`] is that handshake, on
//! the loom-swapped primitives, so that the models in
//! `loom-tests/tests/pool_sleep.rs` check it.

use std::cell::Cell;
use std::io;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_queue::SegQueue;

use crate::error::Error;
use crate::park;
use crate::registry::{self, Marked};
use crate::sync::plain::{Arc, AtomicUsize, Mutex};
use crate::sync::{self, AtomicU64, Condvar, MutexGuard, Ordering};

/// One unit of work on the queue.
pub(crate) trait Job: Send {
    /// Runs it (a job catches its own panics). It calls `finished` once,
    /// after the work and before publishing the outcome, so that the thread
    /// counts itself idle before its submitter can see the result and submit
    /// again (which then finds an idle thread instead of spawning one).
    fn run(self: Box<Self>, finished: &mut dyn FnMut());
    /// Resolves it without running it.
    fn fail(self: Box<Self>, err: Error);
}

const QUEUED_ONE: u64 = 1;
const QUEUED_MASK: u64 = (1 << 32) - 1;
const WAITING_SHIFT: u32 = 32;
const WAITING_ONE: u64 = 1 << WAITING_SHIFT;
const WAITING_MASK: u64 = 0xFFFF << WAITING_SHIFT;
const THREADS_SHIFT: u32 = 48;
const THREADS_ONE: u64 = 1 << THREADS_SHIFT;
const THREADS_MASK: u64 = 0x7FFF << THREADS_SHIFT;
const CLOSED: u64 = 1 << 63;

/// The most threads one pool may have (the width of the `threads` field).
pub const MAX_THREADS: usize = 0x7FFF;

/// A snapshot of the state word.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Snapshot(u64);

impl Snapshot {
    /// Jobs admitted and not yet reserved by a thread.
    pub fn queued(self) -> usize {
        (self.0 & QUEUED_MASK) as usize
    }
    /// Idle threads looking for work.
    pub fn waiting(self) -> usize {
        ((self.0 & WAITING_MASK) >> WAITING_SHIFT) as usize
    }
    /// Threads alive or being spawned.
    pub fn threads(self) -> usize {
        ((self.0 & THREADS_MASK) >> THREADS_SHIFT) as usize
    }
    /// Whether the pool takes no new jobs.
    pub fn is_closed(self) -> bool {
        self.0 & CLOSED != 0
    }
}

/// What a submitter must do after its job was admitted.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Admit {
    /// Push the job, then spawn one thread (already counted in `threads`).
    Spawn,
    /// Push the job; an idle or busy thread will take it. The snapshot is
    /// the state right after admission (for the wake decision).
    Queue(Snapshot),
}

/// The pool is closed: the job was not admitted.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Closed;

/// What a thread does next.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Next {
    /// It reserved a job: pop one and run it.
    Run,
    /// Nothing to do: wait for work (it is counted in `waiting`).
    Wait,
    /// It is no longer counted in `threads`: return from the thread.
    Exit,
}

/// The pool's accounting: one atomic word, changed only by CAS loops (see
/// the module docs for the table). Exposed to the loom models.
#[derive(Debug)]
pub struct Counts {
    state: AtomicU64,
}

impl Default for Counts {
    fn default() -> Self {
        Self::new()
    }
}

impl Counts {
    /// An open pool with no thread and no job.
    pub fn new() -> Self {
        Counts {
            state: AtomicU64::new(0),
        }
    }

    /// The current state.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot(self.state.load(Ordering::SeqCst))
    }

    /// Applies `f` to the state until the CAS succeeds; `f` returns the new
    /// word (or `None` to leave it) and a result.
    fn update<R>(&self, mut f: impl FnMut(Snapshot) -> (Option<u64>, R)) -> (Snapshot, R) {
        let mut cur = self.state.load(Ordering::SeqCst);
        loop {
            let (new, r) = f(Snapshot(cur));
            let Some(new) = new else {
                return (Snapshot(cur), r);
            };
            match self
                .state
                .compare_exchange_weak(cur, new, Ordering::SeqCst, Ordering::SeqCst)
            {
                Ok(_) => return (Snapshot(new), r),
                Err(actual) => cur = actual,
            }
        }
    }

    /// Admits one job (a submitter, before pushing it).
    ///
    /// # Panics
    ///
    /// If 2^32 - 1 jobs are already queued.
    pub fn admit(&self, max_threads: usize) -> Result<Admit, Closed> {
        let (after, admit) = self.update(|s| {
            if s.is_closed() {
                return (None, Err(Closed));
            }
            assert!(
                s.queued() < QUEUED_MASK as usize,
                "bridge: an executor has 2^32 - 1 jobs queued; submit fewer at a time \
                 (a CapacityLimiter caps how many one caller has in flight)"
            );
            let queued = s.0 + QUEUED_ONE;
            if s.queued() + 1 > s.waiting() && s.threads() < max_threads {
                (Some(queued + THREADS_ONE), Ok(Admit::Spawn))
            } else {
                (Some(queued), Ok(Admit::Queue(Snapshot(0))))
            }
        });
        match admit {
            Ok(Admit::Queue(_)) => Ok(Admit::Queue(after)),
            other => other,
        }
    }

    /// A busy thread (or a new one) looks for its next step.
    pub fn after_job(&self) -> Next {
        self.update(|s| {
            if s.queued() > 0 {
                (Some(s.0 - QUEUED_ONE), Next::Run)
            } else if s.is_closed() {
                (Some(s.0 - THREADS_ONE), Next::Exit)
            } else {
                (Some(s.0 + WAITING_ONE), Next::Wait)
            }
        })
        .1
    }

    /// An idle thread tries to stop waiting: `Some(Run)` if it reserved a
    /// job, `Some(Exit)` if the pool is closed and drained, `None` to keep
    /// waiting.
    pub fn leave_wait(&self) -> Option<Next> {
        self.update(|s| {
            if s.queued() > 0 {
                (Some(s.0 - QUEUED_ONE - WAITING_ONE), Some(Next::Run))
            } else if s.is_closed() {
                (Some(s.0 - WAITING_ONE - THREADS_ONE), Some(Next::Exit))
            } else {
                (None, None)
            }
        })
        .1
    }

    /// An idle thread whose idle timeout ran out leaves the pool, if no job
    /// is queued. Returns whether it left.
    pub fn retire(&self) -> bool {
        self.update(|s| {
            if s.queued() == 0 && !s.is_closed() {
                (Some(s.0 - WAITING_ONE - THREADS_ONE), true)
            } else {
                (None, false)
            }
        })
        .1
    }

    /// A thread counted by `admit` could not be spawned.
    pub fn spawn_failed(&self) -> Snapshot {
        self.update(|s| (Some(s.0 - THREADS_ONE), ())).0
    }

    /// With no thread left, reserves a queued job so that the caller can
    /// fail it. Returns whether it reserved one.
    pub fn reserve_orphan(&self) -> bool {
        self.update(|s| {
            if s.threads() == 0 && s.queued() > 0 {
                (Some(s.0 - QUEUED_ONE), true)
            } else {
                (None, false)
            }
        })
        .1
    }

    /// Closes the pool. Returns whether this call closed it.
    pub fn close(&self) -> bool {
        self.state.fetch_or(CLOSED, Ordering::SeqCst) & CLOSED == 0
    }
}

/// How a pool names its threads.
#[derive(Clone, Debug)]
pub(crate) enum ThreadName {
    /// `"{prefix}-{n}"`, n counting from 1.
    Prefix(String),
    /// Exactly this (a single-thread executor).
    Exact(String),
}

/// The settings of one pool.
#[derive(Clone, Debug)]
pub(crate) struct Config {
    pub(crate) max_threads: usize,
    pub(crate) name: ThreadName,
    /// `None`: threads never retire.
    pub(crate) idle_timeout: Option<Duration>,
    pub(crate) stack_size: Option<usize>,
    /// Jobs carry this home (0: none), and the threads enter it.
    pub(crate) home: u64,
}

crate::sync::thread_local! {
    /// The id of the pool whose thread this is (0: none).
    static CURRENT_POOL: Cell<u64> = const { Cell::new(0) };
}

/// Spins until `done()` or [`park::MAX_SPIN`] passes; returns whether
/// `done()` held.
///
/// Unlike a waiter's adaptive budget ([`park::spin_until`]), an idle pool
/// thread always spins its full budget: when its submitter has fallen back to
/// parking (on a busy machine), a thread that stopped spinning too would make
/// every round trip pay two wake-ups, and neither side could win its spin
/// back.
fn spin(mut done: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    loop {
        if done() {
            return true;
        }
        let spent = start.elapsed();
        if spent >= park::MAX_SPIN {
            return false;
        }
        for _ in 0..32 {
            std::hint::spin_loop();
        }
    }
}

/// How an idle thread's park ended.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Woke {
    /// A submitter woke it, or work was already there.
    Work,
    /// The idle timeout ran out.
    TimedOut,
    /// Neither (a spurious wake-up): look again.
    Spurious,
}

/// Whether a submitter whose job left the state at `after` must wake one of
/// `sleepers` parked threads: only if more jobs are queued than there are
/// idle threads still spinning.
pub fn wake_needed(after: Snapshot, sleepers: usize) -> bool {
    let spinning = after.waiting().saturating_sub(sleepers);
    after.queued() > spinning // else idle threads still spinning will take it
}

/// The sleep/wake handshake of idle threads (see "Sleeping and waking" in
/// the module docs): a count of parked threads, the sleep lock with the
/// wake-up credits, and the condvar they park on. Exposed to the loom models.
#[derive(Debug)]
pub struct Sleep {
    /// Parked idle threads not yet woken. Changed only under `credits`; read
    /// without it by wakers (SeqCst, see the module docs).
    sleepers: sync::AtomicUsize,
    /// The sleep lock, and the wake-up credits handed to parked threads.
    credits: sync::Mutex<usize>,
    wake: Condvar,
}

impl Default for Sleep {
    fn default() -> Self {
        Self::new()
    }
}

impl Sleep {
    /// No sleeper, no credit.
    pub fn new() -> Self {
        Sleep {
            sleepers: sync::AtomicUsize::new(0),
            credits: sync::Mutex::new(0),
            wake: Condvar::new(),
        }
    }

    /// The sleep lock (also what the pool's `exited` condvar waits with).
    pub(crate) fn lock(&self) -> MutexGuard<'_, usize> {
        self.credits.lock()
    }

    /// Parks this idle thread until woken or `timeout` (`None`: no timeout).
    /// It registers first, then calls `has_work`, which must read with
    /// `SeqCst` whether work (or the close) is there: if so it returns
    /// `Work` without parking.
    pub fn sleep(&self, has_work: impl FnOnce() -> bool, timeout: Option<Duration>) -> Woke {
        let mut credits = self.credits.lock();
        self.sleepers.fetch_add(1, Ordering::SeqCst);
        sync::dekker_fence();
        if has_work() {
            self.sleepers.fetch_sub(1, Ordering::SeqCst);
            return Woke::Work;
        }
        let timed_out = match timeout {
            Some(t) => self.wake.wait_for(&mut credits, t).timed_out(),
            None => {
                self.wake.wait(&mut credits);
                false
            }
        };
        if *credits > 0 {
            // A waker already took one sleeper out of `sleepers`: this one.
            *credits -= 1;
            return Woke::Work;
        }
        self.sleepers.fetch_sub(1, Ordering::SeqCst);
        if timed_out {
            Woke::TimedOut
        } else {
            Woke::Spurious
        }
    }

    /// A submitter that made work available (with a `SeqCst` write) wakes
    /// one parked thread, if there is one and `needed(sleepers)` says so.
    /// Returns whether it handed out a wake-up credit.
    pub fn wake_one_if(&self, needed: impl FnOnce(usize) -> bool) -> bool {
        sync::dekker_fence();
        let sleepers = self.sleepers.load(Ordering::SeqCst);
        if sleepers == 0 || !needed(sleepers) {
            return false;
        }
        let mut credits = self.credits.lock();
        if self.sleepers.load(Ordering::SeqCst) == 0 {
            return false;
        }
        self.sleepers.fetch_sub(1, Ordering::SeqCst);
        *credits += 1;
        drop(credits);
        self.wake.notify_one();
        true
    }

    /// Hands a credit to every parked thread (the close). Returns how many.
    pub fn wake_all(&self) -> usize {
        let mut credits = self.credits.lock();
        let woken = self.sleepers.swap(0, Ordering::SeqCst);
        *credits += woken;
        drop(credits);
        self.wake.notify_all();
        woken
    }

    /// Parked threads not yet woken, and credits not yet taken (for the
    /// models' end-state checks).
    #[cfg(bridge_loom)]
    pub fn counts(&self) -> (usize, usize) {
        let credits = self.credits.lock();
        (self.sleepers.load(Ordering::SeqCst), *credits)
    }
}

/// Everything the pool's threads and its handles share.
pub(crate) struct Shared {
    pub(crate) config: Config,
    /// Identifies this pool's threads (for `shutdown` from inside a job).
    id: u64,
    counts: Counts,
    queue: SegQueue<Box<dyn Job>>,
    /// Parked idle threads and their wake-ups.
    sleep: Sleep,
    /// Signalled (under `sleep.lock()`) whenever a thread leaves the pool.
    exited: Condvar,
    /// Join handles of threads spawned so far (finished ones are pruned).
    handles: Mutex<Vec<JoinHandle<()>>>,
    /// For thread names.
    spawned: AtomicUsize,
    /// Idle threads spinning now, and how many may: spinning idle threads
    /// beyond half the cores would only take CPU from the threads with work.
    spinning: AtomicUsize,
    spin_cap: usize,
}

impl Shared {
    pub(crate) fn new(config: Config) -> Shared {
        let id = if config.home != 0 {
            config.home
        } else {
            registry::next_id()
        };
        Shared {
            config,
            id,
            counts: Counts::new(),
            queue: SegQueue::new(),
            sleep: Sleep::new(),
            exited: Condvar::new(),
            handles: Mutex::new(Vec::new()),
            spawned: AtomicUsize::new(0),
            spinning: AtomicUsize::new(0),
            spin_cap: std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1)),
        }
    }

    pub(crate) fn snapshot(&self) -> Snapshot {
        self.counts.snapshot()
    }

    /// Admits a job, or hands it back if the pool is closed.
    pub(crate) fn admit(&self) -> Result<Admit, Closed> {
        self.counts.admit(self.config.max_threads)
    }

    /// Submits `job`; on a closed pool it resolves to `LoopClosed`.
    pub(crate) fn submit(self: &Arc<Self>, job: Box<dyn Job>) {
        match self.admit() {
            Ok(admit) => self.enqueue(job, admit),
            Err(Closed) => job.fail(Error::LoopClosed),
        }
    }

    /// Pushes a job that [`admit`](Self::admit) let in, then spawns or wakes
    /// a thread as the admission said.
    pub(crate) fn enqueue(self: &Arc<Self>, job: Box<dyn Job>, admit: Admit) {
        self.queue.push(job);
        match admit {
            Admit::Spawn => self.spawn_thread(),
            Admit::Queue(after) => self.wake_if_needed(after),
        }
    }

    fn wake_if_needed(&self, after: Snapshot) {
        self.sleep
            .wake_one_if(|sleepers| wake_needed(after, sleepers));
    }

    #[cold]
    fn spawn_thread(self: &Arc<Self>) {
        // Held across the spawn: the new thread takes it once before it can
        // leave the pool, so `shutdown` always finds its handle.
        let mut handles = self.handles.lock();
        handles.retain(|h| !h.is_finished());
        // ORDERING: Relaxed: only a counter for names.
        let n = self.spawned.fetch_add(1, Ordering::Relaxed) + 1;
        let name = match &self.config.name {
            ThreadName::Prefix(p) => format!("{p}-{n}"),
            ThreadName::Exact(name) => name.clone(),
        };
        let mut builder = std::thread::Builder::new().name(name);
        if let Some(size) = self.config.stack_size {
            builder = builder.stack_size(size);
        }
        let shared = self.clone();
        match builder.spawn(move || shared.work()) {
            Ok(handle) => handles.push(handle),
            Err(e) => {
                drop(handles);
                self.spawn_failed(e);
            }
        }
    }

    #[cold]
    fn spawn_failed(&self, e: io::Error) {
        tracing::error!(
            error = %e,
            "bridge: an executor could not start a thread; its queued jobs wait for a \
             running thread, or resolve to Err(Io) if it has none"
        );
        if self.counts.spawn_failed().threads() == 0 {
            while self.counts.reserve_orphan() {
                let job = self.pop_reserved();
                job.fail(Error::Io(io::Error::new(e.kind(), e.to_string())));
            }
        }
        self.notify_exited();
    }

    /// Pops a job this thread has reserved; its push may still be in flight.
    fn pop_reserved(&self) -> Box<dyn Job> {
        let backoff = crossbeam_utils::Backoff::new();
        loop {
            if let Some(job) = self.queue.pop() {
                return job;
            }
            backoff.snooze();
        }
    }

    /// The body of every pool thread.
    fn work(self: Arc<Self>) {
        drop(self.handles.lock()); // see `spawn_thread`
        let _home =
            (self.config.home != 0).then(|| registry::enter(Marked::Nothing, self.config.home));
        CURRENT_POOL.with(|c| c.set(self.id));
        let mut next = self.counts.after_job();
        loop {
            next = match next {
                Next::Run => {
                    let mut after = None;
                    self.pop_reserved().run(&mut || {
                        if after.is_none() {
                            after = Some(self.counts.after_job());
                        }
                    });
                    after.unwrap_or_else(|| self.counts.after_job())
                }
                Next::Wait => self.wait_for_work(),
                Next::Exit => break,
            };
        }
        self.notify_exited();
    }

    /// An idle thread (counted in `waiting`) until it has work or leaves.
    fn wait_for_work(&self) -> Next {
        loop {
            let found = self.spin_for_work();
            let woke = if found {
                Woke::Work
            } else {
                self.sleep.sleep(
                    || {
                        let s = self.counts.snapshot();
                        s.queued() > 0 || s.is_closed()
                    },
                    self.config.idle_timeout,
                )
            };
            if let Woke::TimedOut = woke {
                if self.counts.retire() {
                    return Next::Exit;
                }
            }
            if let Some(next) = self.counts.leave_wait() {
                return next;
            }
        }
    }

    /// Spins for work, if fewer than `spin_cap` idle threads spin already.
    /// Returns whether work (or the close) showed up.
    fn spin_for_work(&self) -> bool {
        // ORDERING: Relaxed: a soft cap on CPU use; nothing is published
        // through this count and a stale value only spins one thread more or
        // less.
        let claimed = self
            .spinning
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                (n < self.spin_cap).then_some(n + 1)
            })
            .is_ok();
        if !claimed {
            let s = self.counts.snapshot();
            return s.queued() > 0 || s.is_closed();
        }
        let found = spin(|| {
            let s = self.counts.snapshot();
            s.queued() > 0 || s.is_closed()
        });
        // ORDERING: Relaxed, as above.
        self.spinning.fetch_sub(1, Ordering::Relaxed);
        found
    }

    fn notify_exited(&self) {
        let _lock = self.sleep.lock();
        self.exited.notify_all();
    }

    /// Stops admitting jobs and wakes every parked thread so that they drain
    /// the queue and exit. Returns whether this call closed it.
    pub(crate) fn close(&self) -> bool {
        if !self.counts.close() {
            return false;
        }
        self.sleep.wake_all();
        true
    }

    /// Whether the calling thread is one of this pool's.
    pub(crate) fn is_own_thread(&self) -> bool {
        CURRENT_POOL
            .try_with(|c| c.get() == self.id)
            .unwrap_or(false)
    }

    /// Closes, then blocks until every thread has left and joins them. On
    /// one of the pool's own threads it only closes (it cannot join itself).
    pub(crate) fn close_and_join(&self) {
        self.close();
        if self.is_own_thread() {
            return;
        }
        let mut lock = self.sleep.lock();
        while self.counts.snapshot().threads() != 0 {
            self.exited.wait(&mut lock);
        }
        drop(lock);
        let handles = std::mem::take(&mut *self.handles.lock());
        for handle in handles {
            // A job's panic is caught inside the job: a thread never panics.
            let _ = handle.join();
        }
    }
}
