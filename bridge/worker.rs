//! The worker loop: one shared bridge loop, started on first use, living for
//! the process, that [`call_blocking`](crate::call_blocking) and every
//! hand-off use.
//!
//! It is a tokio multi-thread runtime with one core. Any call of this crate
//! that blocks ([`blocking_region`]) first moves a multi-thread runtime's
//! core to another thread (`block_in_place`), so a thread blocking *inside*
//! the worker loop never stalls it: a nested call still completes, and may
//! use a socket or pool an outer call bound to the worker loop. Each such
//! call holds a thread of the worker runtime's blocking pool while it
//! blocks: at most [`MAX_NESTED_BLOCKING`] are let in at once (the pool's
//! cap is [`MAX_BLOCKING_THREADS`]), and one more is refused with
//! `WouldDeadlock` rather than stop the worker loop for the whole process.
//!
//! # The hand-off
//!
//! A submission is one tokio task (the one allocation of a call); the caller
//! waits on its join handle with [`park::block_on`]: a short adaptive spin,
//! then park. The worker, before it parks, spins as well until a task is
//! queued for it (`on_thread_park`), so a burst of calls is served
//! without either side sleeping; both spins stop within
//! [`park::MAX_SPIN`] of the last activity, so an idle worker costs no CPU.

use std::future::Future;
use std::panic::Location;

use crate::context;
use crate::error::Error;
use crate::live;
use crate::park;
use crate::report::{DebugConfig, Origin, DEFAULT_SLOW_POLL};
use crate::shared::{self, LoopId};
use crate::shared::{Kind, LoopHandle, LoopShared};
use crate::sync::plain::{Arc, AtomicBool, Mutex, OnceLock, Ordering};
use crate::task::Guarded;

/// The worker loop's runtime (never dropped) and its handle.
struct Worker {
    _runtime: tokio::runtime::Runtime,
    handle: LoopHandle,
}

/// The worker, once started (in the process it was started in; a forked
/// child uses [`CHILD_WORKER`]).
static WORKER: OnceLock<Worker> = OnceLock::new();

/// Held while the worker starts: one start at a time, and a start that
/// fails (or panics: the lock is not poisoned) leaves `WORKER` empty for
/// the next caller to retry.
static STARTING: Mutex<()> = Mutex::new(());

/// Whether the worker's thread has stopped spinning and parks (or sleeps):
/// a hand-off then pays its wake-up, and the caller's wait spins through it
/// (see [`park::WAKE_UP_SPIN`]). A hint: it may be stale either way.
static ASLEEP: AtomicBool = AtomicBool::new(false);

fn start() -> Result<Worker, Error> {
    crate::fork::watch();
    // The layers below reach the worker loop through the context.
    context::set_worker(worker_handle);
    let id = LoopId(shared::next_id());
    let cell: Arc<OnceLock<Arc<LoopShared>>> = Arc::new(OnceLock::new());
    let on_park = cell.clone();
    let on_unpark = cell.clone();
    let record = |cell: &OnceLock<Arc<LoopShared>>| {
        if let Some(shared) = cell.get() {
            shared.note_driver();
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .max_blocking_threads(MAX_BLOCKING_THREADS)
        .thread_name("bridge-worker")
        .enable_all()
        .on_thread_start(context::mark_worker_thread)
        .on_thread_park(move || {
            record(&on_park);
            if let Some(shared) = on_park.get() {
                if !park::spin_before_park(&shared.tokio) {
                    // ORDERING: Relaxed: a hint for callers (see `ASLEEP`).
                    ASLEEP.store(true, Ordering::Relaxed);
                }
            }
        })
        .on_thread_unpark(move || {
            // ORDERING: Relaxed: a hint (see `ASLEEP`).
            ASLEEP.store(false, Ordering::Relaxed);
            record(&on_unpark)
        })
        .build()?;
    let shared = LoopShared::new(
        "bridge-worker".into(),
        id,
        Kind::Worker,
        runtime.handle().clone(),
        DebugConfig::new(None, DEFAULT_SLOW_POLL),
    );
    let _ = cell.set(shared.clone());
    // Learn which thread drives it before anyone asks.
    let probe_shared = shared.clone();
    let probe = runtime.spawn(async move { probe_shared.note_driver() });
    let _ = std::panic::catch_unwind(|| park::block_on(probe));
    live::register(shared.clone());
    Ok(Worker {
        _runtime: runtime,
        handle: LoopHandle::from_shared(shared),
    })
}

/// The worker of a forked child, with the generation it was started in
/// (the parent's worker has no thread in the child; see [`crate::fork`]).
static CHILD_WORKER: Mutex<Option<(u64, &'static Worker)>> = Mutex::new(None);

fn worker() -> Result<&'static Worker, Error> {
    let generation = crate::fork::generation();
    if generation == 0 {
        return match WORKER.get() {
            Some(w) => Ok(w),
            None => first_worker(),
        };
    }
    child_worker(generation)
}

/// Starts the worker unless a racing caller did while this one waited.
#[cold]
fn first_worker() -> Result<&'static Worker, Error> {
    let _starting = STARTING.lock();
    if let Some(w) = WORKER.get() {
        return Ok(w);
    }
    let w = start()?;
    Ok(WORKER.get_or_init(|| w))
}

/// In a forked child: a fresh worker for this generation, started once. The
/// parent's worker is leaked (its runtime waits for threads the child lacks).
#[cold]
fn child_worker(generation: u64) -> Result<&'static Worker, Error> {
    let mut slot = CHILD_WORKER.lock();
    if let Some((g, w)) = *slot {
        if g == generation {
            return Ok(w);
        }
    }
    let w: &'static Worker = Box::leak(Box::new(start()?));
    *slot = Some((generation, w));
    Ok(w)
}

/// The worker loop's handle, started if needed.
fn worker_handle() -> Result<&'static LoopHandle, Error> {
    worker().map(|w| &w.handle)
}

/// The worker loop's shared state, started if needed.
pub(crate) fn worker_shared() -> Result<&'static LoopShared, Error> {
    worker().map(|w| &*w.handle.shared)
}

/// The shared worker loop, started on first use; it lives for the process.
///
/// # Panics
///
/// If the worker's thread cannot be started at all (the process is out of
/// threads or file descriptors); [`try_worker_loop`] returns that as an error.
///
/// # Examples
///
/// ```
/// let w = bridge::worker_loop();
/// assert_eq!(w.name(), "bridge-worker");
/// assert_eq!(w.spawn(async { 1 }).wait().unwrap(), 1);
/// ```
pub fn worker_loop() -> LoopHandle {
    match try_worker_loop() {
        Ok(h) => h,
        Err(e) => panic!("bridge: the worker loop could not be started: {e}"),
    }
}

/// The shared worker loop, started on first use.
///
/// # Errors
///
/// `Io` if its thread or runtime cannot be started (a later call retries).
///
/// # Examples
///
/// ```
/// let w = bridge::try_worker_loop().unwrap();
/// assert!(!w.is_closed());
/// ```
pub fn try_worker_loop() -> Result<LoopHandle, Error> {
    worker().map(|w| w.handle.clone())
}

/// The most threads the worker loop's runtime may start for blocking
/// (tokio's default is 512): every blocking call inside worker-loop work
/// holds one while it blocks, and the worker's core needs one to move to.
pub(crate) const MAX_BLOCKING_THREADS: usize = 1024;

/// Runs `fut` on the worker loop and blocks this thread until it is done
/// and dropped (or `deadline` passes: then it is cancelled, dropped, and the
/// result is `Err(Timeout)`). `fut` may borrow: see [`crate::scoped`].
pub(crate) fn handoff<'a, F>(
    fut: F,
    caller: &'static Location<'static>,
    deadline: Option<std::time::Instant>,
) -> Result<F::Output, Error>
where
    F: Future + Send + 'a,
    F::Output: Send + 'a,
{
    let shared = worker_shared()?;
    let origin = Origin::when(shared.debug.enabled(), caller, &shared.name);
    // What the wait is for, named in debug reports: also when only the
    // calling thread's loop is in debug mode.
    let target = match &origin {
        Some(o) => Some(o.clone()),
        None => Origin::when(crate::watchdog::debug_here(), caller, &shared.name),
    };
    // Refused at the limit before anything is spawned (issue 11: 513 blocked calls).
    let _slot = crate::wait::reserve_blocking(caller)?;
    // A wait inside on a loop this thread stops is `WouldDeadlock` (issue 11).
    let fut = context::on_behalf(fut);
    let guarded = Guarded::new(fut, origin, shared.debug.slow_poll())
        .counted_static(&shared.stats)
        .driven_by(shared);
    // ORDERING: Relaxed: a hint (see `ASLEEP`).
    if ASLEEP.load(Ordering::Relaxed) {
        park::expect_wake_up();
    }
    crate::handoff::block_on(&shared.tokio, guarded, caller, target.as_ref(), deadline)
}
