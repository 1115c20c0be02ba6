//! The inbox of a [`Loop`](crate::Loop): how work from other threads reaches
//! a loop whose thread is awake, without a system call.
//!
//! A `Loop` is a tokio current-thread runtime. Tokio wakes such a runtime
//! for every task scheduled from another thread (`Handle::spawn`, a remote
//! wake): it pushes the task on the injection queue and writes the I/O
//! driver's eventfd, whether the loop's thread sleeps or not. So each call
//! pays a `write` on the caller and an `epoll_wait` on the loop, and, when
//! the loop reaches `epoll_wait` before the `write` lands, a sleep and a
//! wake-up (measured: one `write`, 0.9 `epoll_wait` and 0.7 context switches
//! per `spawn(ready).wait()`, 4x `call_blocking` to the worker loop, which a
//! multi-thread runtime wakes only when it is idle).
//!
//! The inbox is the way around. Every submission to a `Loop` (`spawn`,
//! `block_on`, `run_coroutine_threadsafe`, `call_soon_threadsafe`) is boxed
//! into this one queue, so work starts in the order it was submitted. While
//! the loop's thread spins before it parks (`on_thread_park`, as the worker
//! does) it *accepts*: it takes what arrives and polls it at once, inline,
//! inside the runtime's context, with no wake-up on either side. A future
//! still pending after that first poll becomes a tokio task, spawned from
//! the loop's own thread (a local spawn, no wake-up either). When the loop
//! does not accept (it runs tasks, or sleeps), the submitter wakes it
//! through the waker of its `block_on` future, which takes the queue next.
//!
//! A spin runs at most [`JOBS_PER_SPIN`] jobs before it lets tokio poll
//! its driver, as tokio polls it every 61 tasks, so a stream of submissions
//! cannot starve timers and I/O. A job's first poll runs outside any task:
//! `tokio::task::id()` is not available there (`try_id()` is `None`), and
//! tokio's cooperative budget does not limit it.

//! # The state word
//!
//! | bit         | set by                                 | cleared by                          | meaning |
//! |-------------|----------------------------------------|-------------------------------------|---------|
//! | `ACCEPTING` | the loop, entering its pre-park spin   | the loop, leaving it, only by a CAS from `ACCEPTING` alone | the loop will run everything queued before it stops accepting |
//! | `NOTIFIED`  | a submitter, after queueing            | the loop, before it takes a batch   | something was queued since the last batch |
//! | `CLOSED`    | the loop, when it stops                | never                               | nothing queued will run: a submitter drops what it queued |
//!
//! A submitter queues, then `fetch_or(NOTIFIED)`; the loop leaves the
//! accepting state only by `compare_exchange(ACCEPTING, 0)`, which fails
//! while `NOTIFIED` is set. Both are read-modify-writes of one word, so
//! either the submitter sees `ACCEPTING` (and the loop, which cannot stop
//! accepting before taking the batch, runs the job), or it sees neither bit
//! and wakes the loop itself, or it sees `NOTIFIED` without `ACCEPTING`:
//! then the submitter that set it saw neither bit and its wake-up is on the
//! way. A wake-up costs what a tokio remote schedule costs; it is paid only
//! when the loop was not accepting.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use crate::park;
use crate::scoped::ScopedTask;
use crate::sync::{self, Arc, AtomicUsize, Mutex, Ordering, Thread};

const ACCEPTING: usize = 1 << 0;
const NOTIFIED: usize = 1 << 1;
const CLOSED: usize = 1 << 2;

/// Jobs one pre-park spin runs before it lets tokio poll its I/O driver and
/// timers (tokio's own `event_interval` between driver polls is 61 tasks).
const JOBS_PER_SPIN: usize = 61;

/// Work queued for a loop: a spawned future with the half that reports its
/// outcome.
pub(crate) trait Job: Send + 'static {
    /// Polls the work once; `Ready` once it is done and its outcome published.
    fn poll_job(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()>;
    /// Whether its [`ConcurrentFuture`](crate::ConcurrentFuture) was cancelled:
    /// then the job is dropped (on the loop) instead of polled.
    fn is_cancelled(&self) -> bool;
    /// Registers the waker of the tokio task that runs the job from its
    /// second poll on: `cancel()` wakes it, so the job is dropped promptly.
    fn on_cancel_wake(&self, waker: &Waker);
}

/// What the queue holds.
pub(crate) enum Queued {
    /// A spawned future and the promise of its `ConcurrentFuture`, boxed
    /// (its type is erased).
    Boxed(Pin<Box<dyn Job>>),
    /// A borrowing hand-off (`LoopHandle::block_on`): the future stays in
    /// the blocked caller's frame (see [`crate::scoped`]); nothing is boxed.
    Scoped(ScopedJob),
}

impl Queued {
    fn poll_job(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        match self {
            Queued::Boxed(job) => job.as_mut().poll_job(cx),
            Queued::Scoped(job) => job.poll_job(cx),
        }
    }

    fn is_cancelled(&self) -> bool {
        match self {
            Queued::Boxed(job) => job.is_cancelled(),
            Queued::Scoped(job) => job.join.aborted(),
        }
    }

    fn on_cancel_wake(&self, waker: &Waker) {
        match self {
            Queued::Boxed(job) => job.on_cancel_wake(waker),
            Queued::Scoped(job) => job.join.on_abort_wake(waker),
        }
    }
}

/// The queue and state word of one loop (see the module docs).
pub(crate) struct Inbox {
    state: AtomicUsize,
    queue: Mutex<VecDeque<Queued>>,
    /// The batch being run: swapped with `queue`, so both keep their
    /// capacity and a warm inbox allocates nothing. Only the loop locks it.
    batch: Mutex<VecDeque<Queued>>,
    /// The waker of the loop's `block_on` future, which takes batches when
    /// the loop is woken: the wake-up of a submitter that found the loop
    /// not accepting.
    waker: Mutex<Option<Waker>>,
    /// 1 while the loop's thread polls a job inline (for [`pending`](Self::pending)).
    running: AtomicUsize,
    /// Odd while the loop's thread moves a job between the places
    /// [`live_tasks`](Self::live_tasks) counts (queue, batch, running, a
    /// tokio task): a count read between two equal even values saw each job
    /// exactly once.
    moving: AtomicUsize,
}

impl Inbox {
    pub(crate) fn new() -> Self {
        // Room for a few jobs up front: a loop's first jobs through the inbox
        // allocate nothing more than later ones.
        Inbox {
            state: AtomicUsize::new(0),
            queue: Mutex::new(VecDeque::with_capacity(8)),
            batch: Mutex::new(VecDeque::with_capacity(8)),
            waker: Mutex::new(None),
            running: AtomicUsize::new(0),
            moving: AtomicUsize::new(0),
        }
    }

    /// Runs `f`, which moves a job from one counted place to another, with
    /// `moving` odd meanwhile.
    fn moving<R>(&self, f: impl FnOnce() -> R) -> R {
        self.moving.fetch_add(1, Ordering::SeqCst);
        let r = f();
        self.moving.fetch_add(1, Ordering::SeqCst);
        r
    }

    /// Queues `job` for the loop and makes sure it runs: at once if the loop
    /// is accepting, else after waking it. If the loop has stopped, the job is
    /// dropped here (its future resolves to `Err(LoopClosed)`).
    pub(crate) fn push(&self, job: Queued) {
        self.queue.lock().push_back(job);
        // ORDERING: AcqRel: Release orders the queueing before the loop's
        // Acquire of `NOTIFIED`; Acquire orders the loop's last batch (and the
        // `CLOSED` bit) before our reading of the bits.
        let prev = self.state.fetch_or(NOTIFIED, Ordering::AcqRel);
        if prev & CLOSED != 0 {
            self.drop_queued();
        } else if prev & (ACCEPTING | NOTIFIED) == 0 {
            self.wake();
            // The loop may have been asleep: a wait for this job spins
            // through its wake-up (see `park::WAKE_UP_SPIN`).
            park::expect_wake_up();
        }
    }

    /// Wakes the loop's `block_on` future, which takes a batch. From another
    /// thread this is tokio's remote wake (an eventfd write); from the loop's
    /// own thread it only marks the future woken.
    fn wake(&self) {
        let waker = self.waker.lock().clone();
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// Drops every queued job, on this thread (the loop has stopped).
    fn drop_queued(&self) {
        let jobs = std::mem::take(&mut *self.queue.lock());
        drop(jobs);
    }

    /// The loop's pre-park spin: accept, run what arrives, and stop
    /// accepting when the spin budget runs out, when tokio has tasks of its
    /// own to run (remote spawns, or a job spawned as a task), or after
    /// [`JOBS_PER_SPIN`] jobs, so tokio polls its driver in between.
    pub(crate) fn spin_before_park(&self, runtime: &tokio::runtime::Handle) {
        let metrics = runtime.metrics();
        self.spin_before_park_with(|| metrics.global_queue_depth() > 0)
    }

    /// [`spin_before_park`](Self::spin_before_park), with `tokio_has_work`
    /// telling whether tokio has tasks of its own queued (the loom models
    /// pass a stand-in).
    pub(crate) fn spin_before_park_with(&self, tokio_has_work: impl Fn() -> bool) {
        // ORDERING: AcqRel: as in `push`; a closed loop accepts nothing.
        if self.state.fetch_or(ACCEPTING, Ordering::AcqRel) & CLOSED != 0 {
            return;
        }
        let mut ran = 0;
        let mut spawned = false;
        loop {
            let notified = || {
                // ORDERING: Relaxed peek; `take_batch` acquires.
                self.state.load(Ordering::Relaxed) & NOTIFIED != 0
            };
            if !park::spin_until(|| notified() || tokio_has_work()) || !notified() {
                break;
            }
            let (n, s) = self.run_batch();
            ran += n;
            spawned |= s;
            if spawned || ran >= JOBS_PER_SPIN {
                break;
            }
        }
        loop {
            // ORDERING: AcqRel: fails while a submitter's `NOTIFIED` is set, which
            // then must be taken first (see the module docs).
            match self
                .state
                .compare_exchange(ACCEPTING, 0, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => break,
                Err(s) if s & NOTIFIED != 0 => {
                    let (n, s) = self.run_batch();
                    ran += n;
                    spawned |= s;
                }
                Err(_) => break, // closed
            }
        }
        if ran >= JOBS_PER_SPIN && !spawned {
            // Busy: have tokio poll its driver (timers, I/O) without sleeping,
            // then come back through `poll_serve` and this spin.
            self.wake();
        }
    }

    /// The loop's `block_on` future: registers its waker, takes a batch.
    pub(crate) fn poll_serve(&self, cx: &mut Context<'_>) {
        {
            let mut w = self.waker.lock();
            if !w.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                *w = Some(cx.waker().clone());
            }
        }
        // Always a batch (its `fetch_and` reads the latest state): a peek
        // could read a `NOTIFIED` older than the wake-up that brought us here.
        self.run_batch();
    }

    /// Takes everything queued and runs it on this (the loop's) thread.
    /// Returns how many jobs ran and whether one became a tokio task.
    fn run_batch(&self) -> (usize, bool) {
        // ORDERING: AcqRel: Acquire pairs with the submitters' Release
        // `fetch_or(NOTIFIED)`, so their queueing is visible below.
        self.state.fetch_and(!NOTIFIED, Ordering::AcqRel);
        let mut n = 0;
        self.moving(|| {
            let mut batch = self.batch.lock();
            std::mem::swap(&mut *self.queue.lock(), &mut *batch);
        });
        let mut spawned = false;
        // One job at a time, outside the lock (a job may submit to this
        // loop, or count its tasks): the guard is dropped before the job runs.
        loop {
            let next = self.moving(|| {
                let job = self.batch.lock().pop_front();
                if job.is_some() {
                    // ORDERING: Relaxed: read only between two SeqCst reads
                    // of `moving` (see `live_tasks`).
                    self.running.store(1, Ordering::Relaxed);
                }
                job
            });
            let Some(job) = next else { break };
            n += 1;
            // A job still pending after its inline poll becomes a tokio task:
            // counted as running until then, as a task from then on.
            spawned |= run(job, |spawn| {
                self.moving(|| {
                    spawn();
                    // ORDERING: Relaxed: as above.
                    self.running.store(0, Ordering::Relaxed);
                })
            });
            // ORDERING: Relaxed: as above (a finished job stops counting).
            self.running.store(0, Ordering::Relaxed);
        }
        (n, spawned)
    }

    /// The loop's live tasks: `alive()` (tokio's count of its tasks) plus
    /// the jobs queued here or being run inline, each job counted exactly
    /// once even while the loop's thread moves it from one place to another,
    /// for [`LoopInfo::tasks`](crate::LoopInfo::tasks).
    pub(crate) fn live_tasks(&self, alive: impl Fn() -> usize) -> usize {
        loop {
            let before = self.moving.load(Ordering::SeqCst);
            if before % 2 == 0 {
                let tasks = alive();
                // One lock at a time: `run_batch` takes `batch`, then `queue`.
                let queued = self.queue.lock().len() + self.batch.lock().len();
                // ORDERING: Relaxed: between the two SeqCst reads of `moving`.
                let running = self.running.load(Ordering::Relaxed);
                if self.moving.load(Ordering::SeqCst) == before {
                    return tasks + queued + running;
                }
            }
            // A move takes a few instructions: wait it out.
            crate::sync::yield_now();
        }
    }

    /// Stops the inbox for good (the loop's thread, when the loop stops):
    /// drops what is queued here; later submissions drop theirs.
    pub(crate) fn close(&self) {
        // ORDERING: AcqRel: as in `push`.
        self.state.fetch_or(CLOSED, Ordering::AcqRel);
        self.state.fetch_and(!ACCEPTING, Ordering::AcqRel);
        self.drop_queued();
        let batch = std::mem::take(&mut *self.batch.lock());
        drop(batch);
        self.waker.lock().take();
    }
}

/// Polls `job` once, inline, on the loop's thread (inside its runtime
/// context, so it may spawn, use timers and I/O); if it is still pending,
/// hands it to tokio as a task. Returns whether it became a task.
/// `transfer` wraps the spawn, so a counter sees the job in one place.
fn run(mut job: Queued, transfer: impl FnOnce(&mut dyn FnMut())) -> bool {
    if job.is_cancelled() {
        return false;
    }
    // The waker of this one poll does nothing: a job still pending is
    // spawned below, and a new task is always polled once more, with its own
    // waker, which the job registers then (a future must wake the waker of
    // its latest poll).
    let mut cx = Context::from_waker(Waker::noop());
    if job.poll_job(&mut cx).is_ready() {
        return false;
    }
    let mut job = Some(job);
    transfer(&mut || {
        if let Some(job) = job.take() {
            drop(tokio::spawn(JobTask {
                job,
                registered: false,
            }));
        }
    });
    true
}

/// A job that did not finish on its first poll, as a tokio task.
struct JobTask {
    job: Queued,
    registered: bool,
}

impl Future for JobTask {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if !self.registered {
            self.registered = true;
            self.job.on_cancel_wake(cx.waker());
        }
        if self.job.is_cancelled() {
            return Poll::Ready(());
        }
        self.job.poll_job(cx)
    }
}

// ------------------------------------------------------------------------
// The borrowing hand-off through the inbox.

const DONE: usize = 1 << 0;
const ABORT: usize = 1 << 1;

/// Shared by a [`ScopedJob`] and its caller: whether the job is over (its
/// future finished or dropped: it no longer touches the caller's frame), and
/// whether the caller asked for it to be dropped.
pub(crate) struct ScopedJoin {
    state: AtomicUsize,
    /// The caller, blocked until `DONE`.
    waiter: Thread,
    /// The waker of the tokio task the job became, if it did: an abort wakes
    /// it, so the job is dropped promptly.
    task: Mutex<Option<Waker>>,
}

impl ScopedJoin {
    fn done(&self) -> bool {
        // ORDERING: Acquire pairs with the Release in `finish`: what the job
        // wrote into the caller's frame is visible once `DONE` is.
        self.state.load(Ordering::Acquire) & DONE != 0
    }

    fn aborted(&self) -> bool {
        // ORDERING: Relaxed: a request; the job is dropped (and `DONE` set,
        // Release) afterwards, which is what the caller waits for.
        self.state.load(Ordering::Relaxed) & ABORT != 0
    }

    /// The job is over: it will not touch the caller's frame again.
    fn finish(&self) {
        // ORDERING: Release publishes the job's last writes to the frame.
        if self.state.fetch_or(DONE, Ordering::Release) & DONE == 0 {
            self.waiter.unpark();
        }
    }

    pub(crate) fn abort(&self) {
        // ORDERING: Relaxed: see `aborted`; the lock below orders it against
        // `on_abort_wake`.
        self.state.fetch_or(ABORT, Ordering::Relaxed);
        let task = self.task.lock().take();
        if let Some(task) = task {
            task.wake();
        }
    }

    fn on_abort_wake(&self, waker: &Waker) {
        let mut task = self.task.lock();
        if self.aborted() {
            drop(task);
            waker.wake_by_ref();
        } else {
            *task = Some(waker.clone());
        }
    }

    /// Blocks the caller until the job is over or `deadline` passes.
    pub(crate) fn wait(&self, deadline: Option<Instant>) -> bool {
        park::spin_wait(|| self.done()) || park::park_until(|| self.done(), deadline)
    }
}

/// A [`ScopedTask`] in the queue, with the state its caller waits on.
pub(crate) struct ScopedJob {
    /// `None` once dropped (in `Drop`, before `DONE` is set).
    task: Option<ScopedTask>,
    join: Arc<ScopedJoin>,
}

impl ScopedJob {
    fn poll_job(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let Some(task) = self.task.as_mut() else {
            return Poll::Ready(());
        };
        let poll = Pin::new(task).poll(cx);
        if poll.is_ready() {
            // Finished and dropped in place: the frame is the caller's again.
            self.join.finish();
        }
        poll
    }
}

impl Drop for ScopedJob {
    fn drop(&mut self) {
        // Dropping the task drops an unfinished future in the caller's frame
        // (and stores `Cancelled`/`LoopClosed` there); only then may the
        // caller go.
        drop(self.task.take());
        self.join.finish();
    }
}

impl Inbox {
    /// Queues a borrowing hand-off's task (for [`InboxSpawner`](crate::handoff::InboxSpawner)):
    /// its caller waits on the returned [`ScopedJoin`] (the one allocation).
    pub(crate) fn push_scoped(&self, task: ScopedTask) -> Arc<ScopedJoin> {
        let join = Arc::new(ScopedJoin {
            state: AtomicUsize::new(0),
            waiter: sync::current_thread(),
            task: Mutex::new(None),
        });
        self.push(Queued::Scoped(ScopedJob {
            task: Some(task),
            join: join.clone(),
        }));
        join
    }
}
