//! The worker loop: one shared bridge loop, started on first use, living for
//! the process, that [`call_blocking`](crate::call_blocking) and every
//! hand-off use.
//!
//! It is a tokio multi-thread runtime with one core. Any call of this crate
//! that blocks ([`blocking_region`]) first moves a multi-thread runtime's
//! core to another thread (`block_in_place`), so a thread blocking *inside*
//! the worker loop never stalls it: a nested call still completes, and may
//! use a socket or pool an outer call bound to the worker loop.
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

use crate::debug::{DebugConfig, Origin, DEFAULT_SLOW_POLL};
use crate::error::Error;
use crate::event_loop::{Kind, LoopHandle, LoopShared};
use crate::once::OnceCell;
use crate::park;
use crate::registry::{self, LoopId};
use crate::sync::plain::{Arc, AtomicBool, OnceLock, Ordering};
use crate::task::Guarded;

/// The worker loop's runtime (never dropped) and its handle.
struct Worker {
    _runtime: tokio::runtime::Runtime,
    handle: LoopHandle,
}

#[cfg(not(bridge_loom))]
static WORKER: OnceCell<Worker> = OnceCell::new();

#[cfg(bridge_loom)]
loom::lazy_static! {
    static ref WORKER: OnceCell<Worker> = OnceCell::new();
}

/// Spins before the worker parks, until a task is queued for it or the
/// spin budget runs out.
///
/// It watches the runtime's injection queue, where every task submitted from
/// another thread lands, rather than a counter of submissions: a submission
/// that arrived while the worker was finishing its previous task is already
/// in the queue when this runs, and must end the spin at once (tokio then
/// finds it before parking), not after the whole budget.
/// Returns whether a task came (else the worker is about to sleep).
pub(crate) fn spin_before_park(runtime: &tokio::runtime::Handle) -> bool {
    let metrics = runtime.metrics();
    park::spin_until(|| metrics.global_queue_depth() > 0)
}

/// Whether the worker's thread has stopped spinning and parks (or sleeps):
/// a hand-off then pays its wake-up, and the caller's wait spins through it
/// (see [`park::WAKE_UP_SPIN`]). A hint: it may be stale either way.
static ASLEEP: AtomicBool = AtomicBool::new(false);

fn start() -> Result<Worker, Error> {
    crate::fork::watch();
    let id = LoopId(registry::next_id());
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
        .thread_name("bridge-worker")
        .enable_all()
        .on_thread_start(registry::mark_worker_thread)
        .on_thread_park(move || {
            record(&on_park);
            if let Some(shared) = on_park.get() {
                if !spin_before_park(&shared.tokio) {
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
    registry::register(shared.clone());
    Ok(Worker {
        _runtime: runtime,
        handle: LoopHandle::from_shared(shared),
    })
}

/// The worker of a forked child, with the generation it was started in
/// (the parent's worker has no thread in the child; see [`crate::fork`]).
static CHILD_WORKER: crate::sync::plain::Mutex<Option<(u64, &'static Worker)>> =
    crate::sync::plain::Mutex::new(None);

fn worker() -> Result<&'static Worker, Error> {
    let generation = crate::fork::generation();
    if generation == 0 {
        return WORKER.get_or_try_init(start);
    }
    child_worker(generation)
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

/// Runs `f`, which blocks this thread, without stalling a loop that lives on
/// it: on a tokio multi-thread runtime's worker thread (the worker loop
/// included) the runtime's core first moves to another thread
/// (`block_in_place`).
///
/// Only a task being polled can be on a worker thread, so outside a task
/// (`Runtime::block_on` on a plain thread, `spawn_blocking`, `Runtime::enter`)
/// blocking directly is harmless and `block_in_place` is not called. Inside a
/// task of a multi-thread runtime the one case where `block_in_place` refuses
/// is a `LocalSet` driven from a thread that is not a worker; tokio offers no
/// way to ask, so that refusal (a panic before `f` runs) is caught, silenced,
/// and `f` runs directly, which is then harmless too.
pub(crate) fn blocking_region<R>(caller: &'static Location<'static>, f: impl FnOnce() -> R) -> R {
    blocking_region_for(caller, None, f)
}

/// [`blocking_region`] for a wait on the work described by `target` (its
/// loop and spawn location, `Some` when that loop is in debug mode).
///
/// In debug mode the wait is watched for as long as `f` runs (see
/// [`crate::debug`]): a hang past the hang threshold, and a current-thread
/// loop stopped by this thread past its slow-poll threshold, are reported.
/// With debug mode off this adds no clock read and no allocation.
pub(crate) fn blocking_region_for<R>(
    caller: &'static Location<'static>,
    target: Option<&Origin>,
    f: impl FnOnce() -> R,
) -> R {
    let _watch = crate::debug::watch_wait(caller, target);
    let on_multi_thread_task = tokio::task::try_id().is_some()
        && tokio::runtime::Handle::try_current()
            .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
    if !on_multi_thread_task {
        return f();
    }
    let mut f = Some(f);
    let attempt = crate::debug::quiet_panics(|| {
        tokio::task::block_in_place(|| {
            let f = f.take().expect("runs once");
            crate::debug::loud_panics(f)
        })
    });
    match attempt {
        Ok(r) => r,
        // Refused before running `f`: block right here.
        Err(_) if f.is_some() => (f.take().expect("still here"))(),
        // `f` itself panicked: let it continue.
        Err(payload) => std::panic::resume_unwind(payload),
    }
}

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
    let origin = shared.debug.enabled().then(|| Origin {
        location: caller,
        loop_name: shared.name.clone(),
    });
    // What the wait is for, named in debug reports: also when only the
    // calling thread's loop is in debug mode.
    let target = match &origin {
        Some(o) => Some(o.clone()),
        None => crate::debug::debug_here().then(|| Origin {
            location: caller,
            loop_name: shared.name.clone(),
        }),
    };
    let guarded = Guarded::new(fut, origin, shared.debug.slow_poll())
        .counted_static(&shared.stats)
        .driven_by(shared);
    // ORDERING: Relaxed: a hint (see `ASLEEP`).
    if ASLEEP.load(Ordering::Relaxed) {
        park::expect_wake_up();
    }
    crate::scoped::block_on(&shared.tokio, guarded, caller, target.as_ref(), deadline)
}
