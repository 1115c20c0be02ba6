//! The thread pool behind every [`Executor`](crate::Executor): the queue,
//! the thread counts and the wake-ups are one [`State`] under one lock, and
//! idle threads park on one condvar (smol's `blocking` pool is built the same
//! way). Every decision (take a job, spawn, wake, park, retire, exit) is made
//! holding the lock, so each one sees the whole state at one moment.
//! The lock is the standard library's futex lock ([`HotMutex`]): see there
//! for why not `parking_lot`'s.
//!
//! # The state
//!
//! | field     | meaning                                                                 |
//! |-----------|-------------------------------------------------------------------------|
//! | `queue`   | jobs submitted and not yet taken by a thread, oldest first              |
//! | `threads` | threads alive, or spawned and not yet started                           |
//! | `idle`    | threads with no job: looking at the queue, spinning, or parked          |
//! | `parked`  | idle threads parked on the condvar and not yet handed a wake-up         |
//! | `wakeups` | wake-ups handed to parked threads and not yet taken                     |
//! | `closed`  | no new job is taken; threads drain the queue, then exit                 |
//!
//! An idle thread that is not parked (`idle - parked`) is *awake*: it looks
//! at the queue, under the lock, before it parks.
//!
//! | who         | when                                   | change                                                     |
//! |-------------|----------------------------------------|------------------------------------------------------------|
//! | submitter   | `try_submit`, open                     | push; then, if `queue > awake`: wake one parked thread (`parked - 1, wakeups + 1`), or else spawn one if `threads < max` (`threads + 1, idle + 1`) |
//! | thread      | finds a job                            | pop, `idle - 1`                                            |
//! | thread      | its job is done *and published*        | `idle + 1`                                                 |
//! | thread      | queue empty, open                      | spin (once per idle spell), then park: `parked + 1`        |
//! | thread      | back from the condvar, `wakeups > 0`   | `wakeups - 1` (it was already taken out of `parked`)       |
//! | thread      | back from the condvar, no wake-up      | `parked - 1`; if it timed out and nothing is queued: exit  |
//! | thread      | queue empty, closed                    | exit: `idle - 1, threads - 1`                              |
//! | submitter   | a spawn failed                         | `threads - 1, idle - 1`; with no thread left the queued jobs fail |
//! | anyone      | `close`                                | `closed`; every parked thread gets a wake-up               |
//!
//! # No lost wake-up
//!
//! The rule every change keeps: **`queue <= awake`, or no thread is parked**.
//! A push that breaks it (one job more than awake threads) restores it at
//! once by waking one parked thread; with none parked, every thread is busy
//! or awake and comes to the queue on its own. A pop lowers both sides, a
//! thread parks only on an empty queue, and a thread leaving the condvar for
//! any reason only adds to `awake`. So a queued job never waits while a
//! thread sleeps: jobs that wait for each other always get a thread each
//! (up to `max`). A wake-up is a credit under the lock: a parked thread that
//! times out at the same moment takes it instead of retiring, and a notify
//! that reaches another thread than the one credited costs a spurious
//! wake-up, never a lost one.
//!
//! # Idle only once the outcome is published
//!
//! A thread counts itself idle only after its job has *completed*: the
//! closure ran and its promise published the outcome, which runs the
//! future's done-callbacks and wakers on this thread (Python's pool counts a
//! thread idle only after its callbacks ran, too). A callback that submits to
//! this pool and waits therefore never counts on its own thread: the pool
//! grows for it, or another thread takes the job.
//!
//! The price would be growth: a caller that submits its next job the
//! instant it sees the last result finds that thread not yet idle, and one
//! job at a time grew the pool to its bound. So a thread between the end of
//! its job and its return to the pool counts itself in `finishing` (an
//! atomic hint, outside the lock), and a submitter that would wake or spawn
//! a thread while enough others are finishing to take the jobs no awake
//! thread will (in practice: one job queued, its last thread finishing)
//! first waits up to [`GRACE`] (10 us), unlocked, for them to come back,
//! then decides again under the lock. A burst never waits. Nothing waits on that hint: a callback that blocks only delays
//! another submitter by the grace, and a pool thread's own submissions (a
//! callback's) never wait for it. While the submitter waits, the rule below
//! may not hold for its job; the submitter restores it when it decides
//! again (no thread parks meanwhile: the queue is not empty).
//!
//! # Spinning
//!
//! After each job, an idle thread spins for up to [`MAX_SPIN`](crate::park::MAX_SPIN)
//! (50 us) watching a copy of the queue length, before it parks: a job
//! submitted right after the last one is then taken without a system call on
//! either side (the submitter sees an awake thread and wakes nobody). Without
//! it a one-job round trip pays a futex wake and a thread wake-up (see
//! `benches/executor.rs`). At most half the cores' worth of threads spin at
//! once. The copy is only a hint: what the thread does next it decides under
//! the lock.
//!
//! # Panics
//!
//! A thread runs each job under `catch_unwind` (the executor's job catches
//! the closure's panic, and the panics of completing: a result whose `Drop`
//! panics, on this thread when the future was dropped unread). A caught
//! panic is reported in debug mode; the thread, and the counts, carry on.
//!
//! # Fork
//!
//! A pool records the process generation it was made in ([`crate::fork`]).
//! In a forked child none of its threads exist, and its lock may be held
//! forever by one of them: a stale pool takes no lock (only a `try_lock` to
//! resolve the jobs queued at the fork), takes no job (`LoopClosed`) and never
//! waits.

use std::any::Any;
use std::cell::Cell;
use std::collections::VecDeque;
use std::io;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Duration;

use crate::context::{self, Marked};
use crate::error::Error;
use crate::pool_state::{Job, State, Then};
use crate::shared;
use crate::sync::plain::{Arc, AtomicUsize};
use crate::sync::{HotCondvar, HotMutex, JoinHandle, Mutex, Ordering};

/// How long a submitter that would wake or spawn a thread waits, instead,
/// for a thread that is publishing its last outcome to come back idle.
const GRACE: Duration = Duration::from_micros(10);

/// The most threads one pool may have.
pub(crate) const MAX_THREADS: usize = 0x7FFF;

/// A view of the counts, for the accessors and `Debug`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct Snapshot {
    pub(crate) threads: usize,
    pub(crate) idle: usize,
    pub(crate) queued: usize,
    pub(crate) closed: bool,
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

/// Everything the pool's threads and its handles share.
pub(crate) struct Shared {
    pub(crate) config: Config,
    /// Identifies this pool's threads (for `shutdown` from inside a job).
    id: u64,
    /// The process generation this pool was made in (see [`crate::fork`]).
    generation: u64,
    state: HotMutex<State>,
    /// Idle threads park here.
    wake: HotCondvar,
    /// Signalled whenever a thread leaves the pool (`close_and_join` waits).
    exited: HotCondvar,
    /// Join handles of threads spawned so far (finished ones are pruned).
    handles: Mutex<Vec<JoinHandle<()>>>,
    /// The queue's length, copied at every change, for spinning threads.
    queued_hint: AtomicUsize,
    /// Threads whose job is done and whose outcome is being published (they
    /// are not idle yet, but will be in a moment).
    finishing: AtomicUsize,
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
            shared::next_id()
        };
        Shared {
            config,
            id,
            generation: crate::fork::watch(),
            state: HotMutex::new(State {
                queue: VecDeque::new(),
                threads: 0,
                idle: 0,
                parked: 0,
                wakeups: 0,
                closed: false,
            }),
            wake: HotCondvar::new(),
            exited: HotCondvar::new(),
            handles: Mutex::new(Vec::new()),
            queued_hint: AtomicUsize::new(0),
            finishing: AtomicUsize::new(0),
            spawned: AtomicUsize::new(0),
            spinning: AtomicUsize::new(0),
            spin_cap: std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1)),
        }
    }

    /// Whether this pool was made before a `fork` and this is the child,
    /// where none of its threads exist.
    #[inline]
    fn is_stale(&self) -> bool {
        crate::fork::is_stale(self.generation)
    }

    pub(crate) fn snapshot(&self) -> Snapshot {
        if self.is_stale() {
            self.resolve_stranded();
            return Snapshot {
                threads: 0,
                idle: 0,
                queued: 0,
                closed: true,
            };
        }
        let st = self.state.lock();
        Snapshot {
            threads: st.threads,
            idle: st.idle,
            queued: st.queue.len(),
            closed: st.closed,
        }
    }

    /// Queues `job`, or hands it back if the pool is closed (or stale).
    pub(crate) fn try_submit<J: Job + 'static>(
        self: &Arc<Self>,
        job: Box<J>,
    ) -> Result<(), Box<J>> {
        if self.is_stale() {
            self.resolve_stranded();
            return Err(job);
        }
        let mut st = self.state.lock();
        if st.closed {
            return Err(job);
        }
        st.queue.push_back(job);
        self.set_hint(&st);
        let short = st.queue.len() - st.awake().min(st.queue.len());
        if st.wanted(self.config.max_threads, true) != Then::Nothing && self.finishing_covers(short)
        {
            // Threads publishing their last outcome, about to be idle, are
            // enough for the jobs no awake thread will take: give them a
            // moment rather than wake or spawn one (see "Idle only once the
            // outcome is published").
            drop(st);
            self.grace();
            st = self.state.lock();
        }
        let then = st.balance(self.config.max_threads, true);
        drop(st);
        match then {
            Then::Nothing => {}
            // After the unlock: the woken thread's first step is to lock.
            Then::Wake => {
                self.wake.notify_one();
            }
            Then::Spawn => self.spawn_thread(),
        }
        Ok(())
    }

    /// Whether at least `short` of this pool's threads are between the end
    /// of a job and counting themselves idle (publishing the outcome), the
    /// caller not being one of the pool's threads. A burst (a long queue)
    /// never waits for them.
    fn finishing_covers(&self, short: usize) -> bool {
        // ORDERING: Relaxed: a hint; the decision is made again under the
        // lock after the grace, whatever this says.
        self.finishing.load(Ordering::Relaxed) >= short && !self.is_own_thread()
    }

    /// Waits up to [`GRACE`] for the threads that are publishing an outcome
    /// to come back idle, or for the queue to empty.
    #[cfg(not(bridge_loom))]
    fn grace(&self) {
        let start = std::time::Instant::now();
        // ORDERING: Relaxed: hints (see `finishing_covers`, `set_hint`).
        while self.finishing.load(Ordering::Relaxed) > 0
            && self.queued_hint.load(Ordering::Relaxed) > 0
            && start.elapsed() < GRACE
        {
            for _ in 0..8 {
                std::hint::spin_loop();
            }
        }
    }

    /// Under loom the grace is one yield: the models see the thread come back
    /// idle, or not, before the submitter decides again.
    #[cfg(bridge_loom)]
    fn grace(&self) {
        let _ = GRACE;
        crate::sync::yield_now();
    }

    /// Queues `job`; on a closed pool it resolves to `LoopClosed`.
    pub(crate) fn submit<J: Job + 'static>(self: &Arc<Self>, job: Box<J>) {
        if let Err(job) = self.try_submit(job) {
            contain("resolving a job refused by a closed executor", || {
                job.fail(Error::LoopClosed)
            });
        }
    }

    fn set_hint(&self, st: &State) {
        // ORDERING: Relaxed: a hint for spinning threads only; every decision
        // is made again under the lock, which orders the queue itself.
        self.queued_hint.store(st.queue.len(), Ordering::Relaxed);
    }

    #[cold]
    fn spawn_thread(self: &Arc<Self>) {
        // Held across the spawn: the new thread takes it once before it can
        // leave the pool, so `close_and_join` always finds its handle.
        let mut handles = self.handles.lock();
        prune(&mut handles);
        // ORDERING: Relaxed: only a counter for names.
        let n = self.spawned.fetch_add(1, Ordering::Relaxed) + 1;
        let name = match &self.config.name {
            ThreadName::Prefix(p) => format!("{p}-{n}"),
            ThreadName::Exact(name) => name.clone(),
        };
        let shared = self.clone();
        match crate::sync::spawn(name, self.config.stack_size, move || shared.work()) {
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
        let (orphans, then) = {
            let mut st = self.state.lock();
            st.threads -= 1;
            st.idle -= 1;
            if st.threads == 0 {
                let orphans = std::mem::take(&mut st.queue);
                self.set_hint(&st);
                (orphans, Then::Nothing)
            } else {
                // The thread counted awake is not coming: wake another.
                (VecDeque::new(), st.balance(self.config.max_threads, false))
            }
        };
        if then == Then::Wake {
            self.wake.notify_one();
        }
        self.exited.notify_all();
        for job in orphans {
            let err = Error::Io(io::Error::new(e.kind(), e.to_string()));
            contain("resolving a job no thread could take", || job.fail(err));
        }
    }

    /// The body of every pool thread (counted in `threads` and `idle` by
    /// the submitter that spawned it).
    fn work(self: Arc<Self>) {
        drop(self.handles.lock()); // see `spawn_thread`
        let _home =
            (self.config.home != 0).then(|| context::enter(Marked::Nothing, self.config.home));
        CURRENT_POOL.with(|c| c.set(self.id));
        let mut st = self.state.lock();
        let mut may_spin = true;
        loop {
            if let Some(job) = st.queue.pop_front() {
                st.idle -= 1;
                self.set_hint(&st);
                drop(st);
                // Idle again only once the job has published its outcome;
                // meanwhile submitters know it is coming (`finishing`).
                let mut finishing = false;
                contain("an executor job", || {
                    job.run(&mut || {
                        if !finishing {
                            finishing = true;
                            // ORDERING: Relaxed: a hint (`finishing_covers`).
                            self.finishing.fetch_add(1, Ordering::Relaxed);
                        }
                    })
                });
                st = self.state.lock();
                st.idle += 1;
                if finishing {
                    // ORDERING: Relaxed, as above.
                    self.finishing.fetch_sub(1, Ordering::Relaxed);
                }
                may_spin = true;
                continue;
            }
            if st.closed {
                break;
            }
            if may_spin {
                may_spin = false;
                drop(st);
                self.spin_for_work();
                st = self.state.lock();
                continue;
            }
            st.parked += 1;
            let timed_out = match self.config.idle_timeout {
                Some(t) => self.wake.wait_for(&mut st, t).timed_out(),
                None => {
                    self.wake.wait(&mut st);
                    false
                }
            };
            if st.wakeups > 0 {
                // Whichever thread comes back first takes a wake-up: the
                // waker already took one thread out of `parked`.
                st.wakeups -= 1;
                continue;
            }
            st.parked -= 1;
            if timed_out && st.queue.is_empty() && !st.closed {
                break; // retire
            }
        }
        st.idle -= 1;
        st.threads -= 1;
        drop(st);
        self.exited.notify_all();
    }

    /// Spins until a job shows up or [`MAX_SPIN`](crate::park::MAX_SPIN) passes, if fewer
    /// than `spin_cap` idle threads spin already.
    #[cfg(not(bridge_loom))]
    fn spin_for_work(&self) {
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
            return;
        }
        let start = std::time::Instant::now();
        loop {
            // ORDERING: Relaxed: a hint (see `set_hint`).
            if self.queued_hint.load(Ordering::Relaxed) > 0
                || start.elapsed() >= crate::park::MAX_SPIN
            {
                break;
            }
            for _ in 0..32 {
                std::hint::spin_loop();
            }
        }
        // ORDERING: Relaxed, as above.
        self.spinning.fetch_sub(1, Ordering::Relaxed);
    }

    /// Under loom there is no spin: the thread goes on to look under the
    /// lock, which is what the models check.
    #[cfg(bridge_loom)]
    fn spin_for_work(&self) {
        let _ = (&self.spinning, self.spin_cap, crate::park::MAX_SPIN);
    }

    /// Stops taking jobs and wakes every parked thread so that they drain
    /// the queue and exit. Returns whether this call closed it.
    pub(crate) fn close(&self) -> bool {
        if self.is_stale() {
            self.resolve_stranded();
            return false;
        }
        let mut st = self.state.lock();
        if st.closed {
            return false;
        }
        st.closed = true;
        st.wakeups += st.parked;
        st.parked = 0;
        drop(st);
        self.wake.notify_all();
        true
    }

    /// Whether the calling thread is one of this pool's.
    pub(crate) fn is_own_thread(&self) -> bool {
        CURRENT_POOL
            .try_with(|c| c.get() == self.id)
            .unwrap_or(false)
    }

    /// Closes, then blocks until every thread has left and joins them. On
    /// one of the pool's own threads it only closes (it cannot join itself),
    /// and in a forked child it does not wait (the threads are not there).
    pub(crate) fn close_and_join(&self) {
        self.close();
        if self.is_own_thread() || self.is_stale() {
            return;
        }
        let mut st = self.state.lock();
        while st.threads != 0 {
            self.exited.wait(&mut st);
        }
        drop(st);
        let handles = std::mem::take(&mut *self.handles.lock());
        for handle in handles {
            // A job's panic is caught on the thread: a thread never panics.
            let _ = handle.join();
        }
    }

    /// In a forked child: resolves the jobs that were queued at the fork to
    /// `LoopClosed` (someone here may wait on their futures), if the lock is
    /// free; a thread that held it at the fork does not exist here.
    #[cold]
    fn resolve_stranded(&self) {
        let Some(mut st) = self.state.try_lock() else {
            return;
        };
        st.closed = true;
        let stranded = std::mem::take(&mut st.queue);
        drop(st);
        for job in stranded {
            contain("resolving a job stranded by fork", || {
                job.fail(Error::LoopClosed)
            });
        }
    }

    /// The raw counts, for the loom models' end-state checks.
    #[cfg(bridge_loom)]
    pub(crate) fn counts(&self) -> (usize, usize, usize, usize, usize) {
        let st = self.state.lock();
        (st.threads, st.idle, st.parked, st.wakeups, st.queue.len())
    }

    /// Starts `n` threads at once (within the bound), for the loom models
    /// that need parked threads before any job.
    #[cfg(bridge_loom)]
    pub(crate) fn prestart(self: &Arc<Self>, n: usize) {
        for _ in 0..n {
            let mut st = self.state.lock();
            if st.threads >= self.config.max_threads {
                return;
            }
            st.threads += 1;
            st.idle += 1;
            drop(st);
            self.spawn_thread();
        }
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        if self.is_stale() {
            // The handles name threads of the parent: never detach or join
            // them here, and never lock their list (a parent thread may have
            // held it at the fork).
            std::mem::forget(std::mem::replace(&mut self.handles, Mutex::new(Vec::new())));
        }
    }
}

/// Drops the handles of threads that have finished.
#[cfg(not(bridge_loom))]
fn prune(handles: &mut Vec<JoinHandle<()>>) {
    handles.retain(|h| !h.is_finished());
}

#[cfg(bridge_loom)]
fn prune(_handles: &mut [JoinHandle<()>]) {}

/// Runs `f`, which runs user code (a job, a callback, a `Drop`), under
/// `catch_unwind`: a panic that escapes it is reported in debug mode and
/// goes no further, so the thread and the counts around it carry on.
pub(crate) fn contain(what: &str, f: impl FnOnce()) {
    if let Err(payload) = catch_unwind(AssertUnwindSafe(f)) {
        report_caught(what, &*payload);
        drop_payload(payload);
    }
}

/// Drops a panic payload; one whose own `Drop` panics is leaked instead.
fn drop_payload(payload: Box<dyn Any + Send>) {
    if let Err(again) = catch_unwind(AssertUnwindSafe(move || drop(payload))) {
        std::mem::forget(again);
    }
}

#[cold]
fn report_caught(what: &str, payload: &(dyn Any + Send)) {
    if !crate::watchdog::debug_here() {
        return; // the panic hook has printed it already
    }
    let thread = std::thread::current();
    let thread = thread.name().unwrap_or("<unnamed>");
    tracing::error!(
        target: "bridge::debug",
        thread,
        panic = crate::error::payload_message(payload),
        "bridge: a panic escaped {what} on thread '{thread}'; it was caught and the thread \
         carries on. A value whose Drop panics (a job's result, dropped on the executor \
         thread when its future was dropped unread) is the usual cause: make that Drop \
         not panic, or keep the future and read the result",
    );
}
