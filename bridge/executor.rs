//! [`Executor`], a bounded pool of threads for blocking closures, the
//! single-thread executor, and [`run_in_executor`] with the process-wide
//! default executor.
//!
//! A job's result is a [`ConcurrentFuture`]: `.await` it from any loop (the
//! loop keeps running while the job runs), `wait()` for it from sync code,
//! or `cancel()` it while it is still queued.
//!
//! # Growth, idling and retirement
//!
//! A pool starts with no thread. Submitting a job wakes a parked thread or
//! spawns a new one only when more jobs are queued than there are awake idle
//! threads to take them (and a new one only while fewer than `max_threads`
//! exist); otherwise the job waits in the queue, in submission order, for the
//! next thread to come free. A thread counts as free again only once its last
//! job's outcome is published (its done-callbacks and wakers have run). A
//! thread that finds no work spins for up to 50 us (so a job submitted right
//! after the last one is picked up without a system call; at most half the
//! cores' worth of idle threads spin at once), then parks, using no CPU;
//! after the idle timeout (10 s by default, see
//! [`ExecutorBuilder::idle_timeout`]) with no work it exits. A job runs under
//! `catch_unwind`: a panic becomes `Err(Panicked)` and the thread stays in
//! the pool. A panic while publishing (a result whose `Drop` panics, on the
//! pool thread when its future was dropped unread) is caught too, and
//! reported in debug mode.
//!
//! The queue, the counts and the wake decision are one state under one lock
//! (see `pool.rs`); a submitter takes it once per job.
//!
//! # Fork
//!
//! After `fork()` the child has none of the parent's pool threads. An
//! `Executor` made before the fork is closed in the child: [`Executor::run`]
//! resolves to `Err(LoopClosed)`, waiting in the child for a job submitted
//! before the fork (queued or running) gives `Err(LoopClosed)`, and
//! [`Executor::shutdown`] and dropping it return at once. The default
//! executor ([`run_in_executor`] with `None`) starts afresh in the child on
//! first use.
//!
//! One caller's burst can be kept from taking the whole pool with a
//! [`CapacityLimiter`](crate::CapacityLimiter).

use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe, Location};
use std::time::Duration;

use crate::error::{Error, PanicError};
use crate::future::{pair, ConcurrentFuture, DropOutcome, Promise};
use crate::pool::{contain, Config, Shared, ThreadName, MAX_THREADS};
use crate::pool_state::Job;
use crate::shared;
use crate::sync::plain::{Arc, Mutex, OnceLock};

/// How long an idle pool thread waits for work before it exits, unless the
/// builder says otherwise ([`ExecutorBuilder::idle_timeout`]).
///
/// # Examples
///
/// ```
/// assert_eq!(bridge::DEFAULT_IDLE_TIMEOUT, std::time::Duration::from_secs(10));
/// ```
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(10);

/// The thread-name prefix of pools made by [`Executor::new`].
const DEFAULT_NAME: &str = "bridge-executor";

/// A closure, the promise that publishes its outcome, and the `tracing`
/// span current where it was submitted (entered while it runs; a no-op
/// `Span::none()` when there was none: nothing allocated).
pub(crate) struct Call<F, R> {
    f: F,
    promise: Promise<R>,
    span: tracing::Span,
}

impl<F, R> Job for Call<F, R>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    fn run(self: Box<Self>, finished: &mut dyn FnMut()) {
        let Call { f, promise, span } = *self;
        if !promise.set_running() {
            finished();
            // Cancelled while queued: never run it, only drop it.
            contain("dropping a cancelled job's closure", move || drop(f));
            return;
        }
        let outcome = span
            .in_scope(|| catch_unwind(AssertUnwindSafe(f)))
            .map_err(|payload| Error::Panicked(PanicError::new(payload)));
        finished();
        // Publishing runs user code on this thread: the done-callbacks and
        // wakers (each caught by the future), and the result's own `Drop` if
        // its future was dropped unread.
        contain("publishing a job's result", move || {
            promise.complete(outcome)
        });
    }

    fn fail(self: Box<Self>, err: Error) {
        let Call { f, promise, .. } = *self;
        contain("dropping a job's closure", move || drop(f));
        contain("publishing a job's error", move || {
            promise.complete(Err(err))
        });
    }
}

/// Wraps `f` as a job for a pool whose jobs carry `home`.
pub(crate) fn call<F, R>(home: u64, f: F) -> (Box<Call<F, R>>, ConcurrentFuture<R>)
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    let (promise, fut) = pair(home, None, DropOutcome::Cancelled);
    let span = tracing::Span::current();
    (Box::new(Call { f, promise, span }), fut)
}

/// A bounded pool of threads for blocking closures (file I/O, a C library,
/// CPU work that would stall a loop). Python's `ThreadPoolExecutor`.
///
/// * **Bounded**: never more than `max_threads` jobs run at once; the rest
///   wait in the queue in submission order.
/// * **Grows on demand**: a job gets a new thread only when no idle thread is
///   awake to take it; a thread counts as idle only once its last job's
///   outcome is published (its done-callbacks and wakers have run), so a
///   callback may submit to the same pool and wait. Jobs that wait for each
///   other each get a thread, up to the bound.
/// * **Retires idle threads** after the idle timeout (10 s by default).
///   Threads are named `bridge-executor-1`, ... or a prefix of your choice.
/// * A **panicking job** yields `Err(Panicked)` and its thread stays in the
///   pool; so does a panic while publishing (a result whose `Drop` panics,
///   a panicking callback or waker), caught and reported in debug mode.
/// * [`single_thread`](Self::single_thread) runs every job on one thread,
///   in submission order.
/// * [`ConcurrentFuture::cancel`] succeeds only before the job starts.
/// * [`shutdown`](Self::shutdown) waits for every queued and running job and
///   joins the threads. Dropping the last handle without it never blocks: the
///   pool stops taking jobs, the jobs already queued or running still run to
///   the end (their futures resolve as usual), and then its threads exit on
///   their own.
/// * **Fork**: in a child made by `fork()`, an executor made before the fork
///   is closed: [`run`](Self::run) resolves to `Err(LoopClosed)`, waiting
///   there for a job submitted before the fork gives `Err(LoopClosed)`, and
///   `shutdown` and drop return at once. The default executor starts afresh
///   in the child.
///
/// Cloning an `Executor` gives another handle to the same pool.
///
/// # Examples
///
/// ```
/// let pool = bridge::Executor::new(4);
/// let futs: Vec<_> = (0..8u64).map(|i| pool.run(move || i * i)).collect();
/// let sum: u64 = futs.into_iter().map(|f| f.wait().unwrap()).sum();
/// assert_eq!(sum, 140);
/// pool.shutdown();
/// ```
///
/// Awaited from async code, the loop keeps running while the job blocks:
///
/// ```
/// let pool = bridge::Executor::new(2);
/// let v = bridge::run(async move {
///     pool.run(|| std::fs::metadata(".").is_ok()).await
/// });
/// assert!(v.unwrap().unwrap());
/// ```
#[derive(Clone)]
pub struct Executor {
    owner: Arc<Owner>,
}

/// Closes the pool when the last `Executor` handle goes.
struct Owner {
    shared: Arc<Shared>,
}

impl Drop for Owner {
    fn drop(&mut self) {
        self.shared.close();
    }
}

impl Executor {
    /// A pool of at most `max_threads` threads, named `bridge-executor-N`,
    /// retiring after [`DEFAULT_IDLE_TIMEOUT`] idle.
    ///
    /// `max_threads` of 0 is taken as 1 (a pool needs one thread to make
    /// progress; 0 would queue jobs that never run), and a bound above 32767
    /// is taken as 32767.
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = bridge::Executor::new(2);
    /// assert_eq!(pool.max_threads(), 2);
    /// assert_eq!(pool.threads(), 0); // threads start on demand
    ///
    /// let zero = bridge::Executor::new(0);
    /// assert_eq!(zero.max_threads(), 1);
    /// assert_eq!(zero.run(|| "still runs").wait().unwrap(), "still runs");
    /// ```
    pub fn new(max_threads: usize) -> Executor {
        Executor::builder().max_threads(max_threads).build()
    }

    /// An executor that runs every job on one thread, named `name`, in
    /// submission order: the home for thread-affine resources (an SQLite
    /// connection, a GUI toolkit handle, a C library that must stay on one
    /// thread). Its thread starts with the first job and never retires.
    ///
    /// Waiting on its own thread for one of its own pending jobs returns
    /// [`Error::WouldDeadlock`] instead of hanging.
    ///
    /// # Examples
    ///
    /// ```
    /// let db = bridge::Executor::single_thread("db");
    /// let a = db.run(|| std::thread::current().id());
    /// let b = db.run(|| std::thread::current().name().map(str::to_owned));
    /// let tid = a.wait().unwrap();
    /// assert_eq!(b.wait().unwrap().as_deref(), Some("db"));
    /// assert_eq!(db.run(|| std::thread::current().id()).wait().unwrap(), tid);
    ///
    /// // A job that waits for a later job of its own executor would hang:
    /// let db2 = db.clone();
    /// let r = db.run(move || db2.run(|| 1).wait()).wait().unwrap();
    /// assert!(matches!(r, Err(bridge::Error::WouldDeadlock)));
    /// ```
    pub fn single_thread(name: &str) -> Executor {
        Executor::from_config(Config {
            max_threads: 1,
            name: ThreadName::Exact(shared::thread_name(name)),
            idle_timeout: None,
            stack_size: None,
            home: shared::next_id(),
        })
    }

    /// A builder for a pool with a chosen bound, thread-name prefix, idle
    /// timeout and stack size.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let pool = bridge::Executor::builder()
    ///     .max_threads(8)
    ///     .thread_name("io")
    ///     .idle_timeout(Duration::from_secs(1))
    ///     .stack_size(256 * 1024)
    ///     .build();
    /// let name = pool.run(|| std::thread::current().name().unwrap().to_owned());
    /// assert_eq!(name.wait().unwrap(), "io-1");
    /// ```
    pub fn builder() -> ExecutorBuilder {
        ExecutorBuilder {
            max_threads: default_max_threads(),
            name: DEFAULT_NAME.to_owned(),
            idle_timeout: Some(DEFAULT_IDLE_TIMEOUT),
            stack_size: None,
        }
    }

    fn from_config(config: Config) -> Executor {
        Executor {
            owner: Arc::new(Owner {
                shared: Arc::new(Shared::new(config)),
            }),
        }
    }

    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.owner.shared
    }

    /// Runs `f` on one of the pool's threads and returns its future at once.
    ///
    /// The future resolves to `f`'s value, to `Err(Panicked)` if `f`
    /// panicked (the thread stays in the pool), to `Err(Cancelled)` if it was
    /// cancelled before it started, or to `Err(LoopClosed)` if the executor
    /// was already closed or shut down. [`ConcurrentFuture::cancel`] succeeds
    /// only while the job is still queued; a cancelled job never runs.
    ///
    /// # Panics
    ///
    /// Only if 2^32 - 1 jobs are already queued on this executor (cap a
    /// caller with a [`CapacityLimiter`](crate::CapacityLimiter) instead).
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = bridge::Executor::new(1);
    /// let fut = pool.run(|| panic!("disk on fire"));
    /// let Err(bridge::Error::Panicked(p)) = fut.wait() else { unreachable!() };
    /// assert_eq!(p.message(), "disk on fire");
    /// assert_eq!(pool.run(|| 1).wait().unwrap(), 1); // still serving
    /// ```
    pub fn run<F, R>(&self, f: F) -> ConcurrentFuture<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        let shared = self.shared();
        let (job, fut) = call(shared.config.home, f);
        shared.submit(job);
        fut
    }

    /// Stops taking jobs, waits for every queued and running job to finish,
    /// then joins all of the pool's threads. Every handle (clone) of the
    /// pool sees it closed: a later [`run`](Self::run) resolves to
    /// `Err(LoopClosed)`.
    ///
    /// Safe to call inside a loop: on a tokio multi-thread runtime (and the
    /// worker loop) the runtime's core moves to another thread first, as for
    /// every blocking call of this crate. Called from one of the pool's own
    /// jobs, it closes the pool and returns without waiting (a thread cannot
    /// join itself); the other jobs still run.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    /// use std::sync::Arc;
    /// let ran = Arc::new(AtomicUsize::new(0));
    /// let pool = bridge::Executor::new(2);
    /// let handle = pool.clone();
    /// for _ in 0..10 {
    ///     let ran = ran.clone();
    ///     drop(pool.run(move || ran.fetch_add(1, Ordering::SeqCst)));
    /// }
    /// pool.shutdown();
    /// assert_eq!(ran.load(Ordering::SeqCst), 10);
    /// assert_eq!(handle.threads(), 0);
    /// assert!(matches!(handle.run(|| ()).wait(), Err(bridge::Error::LoopClosed)));
    /// ```
    #[track_caller]
    pub fn shutdown(self) {
        let shared = self.shared().clone();
        crate::wait::blocking_region(Location::caller(), || shared.close_and_join());
    }

    /// Stops taking jobs without waiting: queued and running jobs still run,
    /// then the threads exit. Later submissions resolve to `Err(LoopClosed)`.
    /// Returns whether this call closed it (false if it was already closed).
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = bridge::Executor::new(1);
    /// let queued = pool.run(|| 5);
    /// assert!(pool.close());
    /// assert!(pool.is_closed());
    /// assert_eq!(queued.wait().unwrap(), 5);
    /// assert!(matches!(pool.run(|| 6).wait(), Err(bridge::Error::LoopClosed)));
    /// ```
    pub fn close(&self) -> bool {
        self.shared().close()
    }

    /// Whether the executor is closed (by [`close`](Self::close) or
    /// [`shutdown`](Self::shutdown)).
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = bridge::Executor::new(1);
    /// assert!(!pool.is_closed());
    /// ```
    pub fn is_closed(&self) -> bool {
        self.shared().snapshot().closed
    }

    /// The bound on threads (and so on jobs running at once).
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(bridge::Executor::new(3).max_threads(), 3);
    /// assert_eq!(bridge::Executor::single_thread("ui").max_threads(), 1);
    /// ```
    pub fn max_threads(&self) -> usize {
        self.shared().config.max_threads
    }

    /// The pool's threads right now (busy or idle; a thread being spawned
    /// counts). It never exceeds [`max_threads`](Self::max_threads).
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = bridge::Executor::new(4);
    /// pool.run(|| ()).wait().unwrap();
    /// assert!((1..=4).contains(&pool.threads()));
    /// ```
    pub fn threads(&self) -> usize {
        self.shared().snapshot().threads
    }

    /// Threads that have no job right now and are looking for one (spinning
    /// or parked). An idle thread exits after the idle timeout.
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = bridge::Executor::new(4);
    /// assert_eq!(pool.idle_threads(), 0);
    /// ```
    pub fn idle_threads(&self) -> usize {
        self.shared().snapshot().idle
    }

    /// Jobs submitted that no thread has taken yet.
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = bridge::Executor::new(1);
    /// let (tx, rx) = std::sync::mpsc::channel::<()>();
    /// let blocker = pool.run(move || rx.recv().unwrap());
    /// let queued = pool.run(|| ());
    /// while pool.queued() != 1 { std::thread::yield_now(); }
    /// tx.send(()).unwrap();
    /// blocker.wait().unwrap();
    /// queued.wait().unwrap();
    /// assert_eq!(pool.queued(), 0);
    /// ```
    pub fn queued(&self) -> usize {
        self.shared().snapshot().queued
    }
}

impl fmt::Debug for Executor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.shared().snapshot();
        f.debug_struct("Executor")
            .field("max_threads", &self.max_threads())
            .field("threads", &s.threads)
            .field("idle_threads", &s.idle)
            .field("queued", &s.queued)
            .field("closed", &s.closed)
            .finish()
    }
}

/// Builds an [`Executor`] with a chosen bound, thread names, idle timeout
/// and stack size; from [`Executor::builder`].
///
/// # Examples
///
/// ```
/// let pool = bridge::Executor::builder().max_threads(2).thread_name("blocking").build();
/// assert_eq!(pool.max_threads(), 2);
/// ```
#[derive(Clone, Debug)]
#[must_use = "a builder does nothing until build() is called"]
pub struct ExecutorBuilder {
    max_threads: usize,
    name: String,
    idle_timeout: Option<Duration>,
    stack_size: Option<usize>,
}

impl ExecutorBuilder {
    /// The most threads (and so jobs running at once). Default: the default
    /// executor's bound, min(32, cores + 4). 0 is taken as 1, a bound above
    /// 32767 as 32767.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(bridge::Executor::builder().max_threads(0).build().max_threads(), 1);
    /// ```
    pub fn max_threads(mut self, max_threads: usize) -> Self {
        self.max_threads = max_threads;
        self
    }

    /// Threads are named `"{prefix}-{n}"`, n counting from 1. Default:
    /// `bridge-executor`.
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = bridge::Executor::builder().thread_name("resize").build();
    /// let name = pool.run(|| std::thread::current().name().unwrap().to_owned());
    /// assert!(name.wait().unwrap().starts_with("resize-"));
    /// ```
    pub fn thread_name(mut self, prefix: impl Into<String>) -> Self {
        self.name = prefix.into();
        self
    }

    /// How long a thread with no work stays before it exits (default
    /// [`DEFAULT_IDLE_TIMEOUT`], 10 s). `Duration::MAX` keeps threads
    /// forever.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// let pool = bridge::Executor::builder().idle_timeout(Duration::from_millis(20)).build();
    /// pool.run(|| ()).wait().unwrap();
    /// let deadline = Instant::now() + Duration::from_secs(10);
    /// while pool.threads() > 0 && Instant::now() < deadline {
    ///     std::thread::sleep(Duration::from_millis(5));
    /// }
    /// assert_eq!(pool.threads(), 0);
    /// ```
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.idle_timeout = (timeout != Duration::MAX).then_some(timeout);
        self
    }

    /// The stack size of each thread, in bytes (default: the standard
    /// library's, 2 MiB unless `RUST_MIN_STACK` says otherwise).
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = bridge::Executor::builder().stack_size(8 << 20).build();
    /// assert_eq!(pool.run(|| 1 + 1).wait().unwrap(), 2);
    /// ```
    pub fn stack_size(mut self, bytes: usize) -> Self {
        self.stack_size = Some(bytes);
        self
    }

    /// The executor. No thread starts until the first job.
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = bridge::Executor::builder().build();
    /// assert_eq!(pool.threads(), 0);
    /// ```
    pub fn build(self) -> Executor {
        Executor::from_config(Config {
            max_threads: self.max_threads.clamp(1, MAX_THREADS),
            name: ThreadName::Prefix(shared::thread_name(&self.name)),
            idle_timeout: self.idle_timeout,
            stack_size: self.stack_size,
            home: 0,
        })
    }
}

/// The default executor's bound, as Python's: min(32, cores + 4).
fn default_max_threads() -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    (cores + 4).min(32)
}

/// The process-wide default executor, started on first use (no thread runs
/// until its first job); it lives for the process. In a forked child a fresh
/// one starts on first use (see the module docs).
pub(crate) fn default_executor() -> &'static Executor {
    static DEFAULT: OnceLock<Executor> = OnceLock::new();
    let generation = crate::fork::generation();
    if generation == 0 {
        return DEFAULT.get_or_init(new_default);
    }
    child_default(generation)
}

fn new_default() -> Executor {
    Executor::builder().thread_name("bridge-default").build()
}

/// In a forked child: the default executor of this generation, started once.
/// The parent's is leaked: its threads are not here.
#[cold]
fn child_default(generation: u64) -> &'static Executor {
    static CHILD: Mutex<Option<(u64, &'static Executor)>> = Mutex::new(None);
    let mut slot = CHILD.lock();
    match *slot {
        Some((g, ex)) if g == generation => ex,
        _ => {
            let ex: &'static Executor = Box::leak(Box::new(new_default()));
            *slot = Some((generation, ex));
            ex
        }
    }
}

/// Python's `loop.run_in_executor`: runs the blocking closure `f` on
/// `executor`, or on the process-wide default executor for `None`, and
/// returns its future at once.
///
/// The default executor is bounded at min(32, cores + 4) threads (as
/// Python's), its threads are named `bridge-default-N`, and it starts on
/// first use. The outcome is as for [`Executor::run`].
///
/// # Examples
///
/// ```
/// // From sync code...
/// let n = bridge::run_in_executor(None, || 6 * 7).wait().unwrap();
/// assert_eq!(n, 42);
///
/// // ...and from async code, without blocking the loop.
/// let pool = bridge::Executor::new(2);
/// let v = bridge::run(async {
///     bridge::run_in_executor(Some(&pool), || "done").await
/// });
/// assert_eq!(v.unwrap().unwrap(), "done");
/// ```
pub fn run_in_executor<F, R>(executor: Option<&Executor>, f: F) -> ConcurrentFuture<R>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    executor.unwrap_or_else(|| default_executor()).run(f)
}
