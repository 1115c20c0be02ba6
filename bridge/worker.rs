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

use crate::debug::{DebugConfig, Origin, DEFAULT_SLOW_POLL};
use crate::error::Error;
use crate::event_loop::{Kind, LoopHandle, LoopShared};
use crate::once::OnceCell;
use crate::park;
use crate::registry::{self, LoopId};
use crate::sync::plain::{Arc, AtomicBool, AtomicUsize, OnceLock, Ordering};
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
        .max_blocking_threads(MAX_BLOCKING_THREADS)
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

/// The most threads the worker loop's runtime may start for blocking
/// (tokio's default is 512): every blocking call inside worker-loop work
/// holds one while it blocks, and the worker's core needs one to move to.
pub(crate) const MAX_BLOCKING_THREADS: usize = 1024;

/// The most blocking calls that may be in flight at once inside worker-loop
/// work through the crate's entry points and `wait` (each holds a thread of
/// the worker's runtime, see [`MAX_BLOCKING_THREADS`]). The other threads
/// stay for the core to move to, for waits that cannot fail (dropping a
/// `Loop`, `Executor::shutdown`) and for `spawn_blocking` and `tokio::fs`
/// work of users on the worker loop. One call past it is refused with
/// `WouldDeadlock` before it blocks: at tokio's cap the core would have no
/// thread to move to, and every hand-off in the process would stop.
pub(crate) const MAX_NESTED_BLOCKING: usize = 768;

/// Blocking calls in flight inside worker-loop work (see [`MAX_NESTED_BLOCKING`]).
static NESTED_BLOCKING: AtomicUsize = AtomicUsize::new(0);

/// One blocking call in flight inside worker-loop work, counted against
/// [`MAX_NESTED_BLOCKING`]; from [`reserve_blocking`].
#[must_use = "the slot is given back as soon as it is dropped"]
pub(crate) struct NestedSlot(());

impl Drop for NestedSlot {
    fn drop(&mut self) {
        // ORDERING: Relaxed: as in `reserve_blocking`.
        NESTED_BLOCKING.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Reserves, for a blocking call about to be made on this thread, one of
/// the [`MAX_NESTED_BLOCKING`] slots if the thread is inside worker-loop
/// work (`Ok(None)` elsewhere: nothing is counted there). Take it before
/// handing work off and hold it until the wait is over.
///
/// # Errors
///
/// `WouldDeadlock` when every slot is taken (also logged at WARN).
pub(crate) fn reserve_blocking(
    caller: &'static Location<'static>,
) -> Result<Option<NestedSlot>, Error> {
    if registry::scheduler() != (registry::Scheduler::MultiThread { ours: true }) {
        return Ok(None);
    }
    // ORDERING: Relaxed: a count that only bounds itself; it publishes nothing.
    let before = NESTED_BLOCKING.fetch_add(1, Ordering::Relaxed);
    if before >= MAX_NESTED_BLOCKING {
        drop(NestedSlot(()));
        return Err(refuse_nested(caller));
    }
    Ok(Some(NestedSlot(())))
}

/// The error for one blocking call too many inside worker-loop work; logged,
/// since the caller may turn it into a panic.
#[cold]
fn refuse_nested(caller: &'static Location<'static>) -> Error {
    tracing::warn!(
        target: "bridge::debug",
        waiting_at = %caller,
        limit = MAX_NESTED_BLOCKING,
        "bridge: a blocking call at {caller} inside worker-loop work was refused: {} blocking \
         calls are already in flight there, and one more could leave the worker loop no \
         thread to run on; .await the work instead of blocking on it inside async code",
        MAX_NESTED_BLOCKING,
    );
    Error::WouldDeadlock
}

/// Runs `f`, which blocks this thread, without stalling a loop that lives on
/// it: on a tokio multi-thread runtime's worker thread (the worker loop
/// included) the runtime's core first moves to another thread
/// (`block_in_place`).
///
/// Which scheduler runs here is decided by what the thread is
/// ([`registry::scheduler`]), not by the ambient runtime handle (a library
/// may have entered another runtime's context) and never by asking tokio a
/// question it answers with a panic: nothing here depends on unwinding, so
/// it holds under `panic = "abort"`. Where no multi-thread scheduler runs
/// (a plain thread, `spawn_blocking`, `Runtime::enter`, a multi-thread
/// runtime's `block_on`) blocking directly stalls nothing; on a
/// current-thread scheduler it stops that loop, which debug mode reports.
///
/// It always blocks: a wait that may be refused at the limit of blocking
/// calls inside worker-loop work holds a [`reserve_blocking`] slot first, or
/// uses [`try_blocking_region_for`].
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
    match registry::scheduler() {
        registry::Scheduler::MultiThread { ours } => {
            // tokio moves the core to a thread of the *ambient* runtime's
            // blocking pool: under another runtime's `Handle::enter` that
            // would be the other runtime's, so the worker's is entered here.
            let _home = match ours {
                true => worker_shared().ok().map(|w| w.tokio.enter()),
                false => None,
            };
            // In debug mode, the time the core is away is not charged to
            // the poll that handed it off (it did not block its loop).
            let _away = crate::debug::core_away();
            tokio::task::block_in_place(f)
        }
        registry::Scheduler::MultiThreadAway
        | registry::Scheduler::CurrentThread
        | registry::Scheduler::Nothing => f(),
    }
}

/// [`blocking_region_for`] holding a [`reserve_blocking`] slot: refused
/// with `WouldDeadlock`, before `f` runs, at the limit of blocking calls
/// inside worker-loop work.
pub(crate) fn try_blocking_region_for<R>(
    caller: &'static Location<'static>,
    target: Option<&Origin>,
    f: impl FnOnce() -> R,
) -> Result<R, Error> {
    let _slot = reserve_blocking(caller)?;
    Ok(blocking_region_for(caller, target, f))
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
    // Refused at the limit before anything is spawned (issue 11: 513 blocked calls).
    let _slot = reserve_blocking(caller)?;
    // A wait inside on a loop this thread stops is `WouldDeadlock` (issue 11).
    let fut = registry::on_behalf(fut);
    let guarded = Guarded::new(fut, origin, shared.debug.slow_poll())
        .counted_static(&shared.stats)
        .driven_by(shared);
    // ORDERING: Relaxed: a hint (see `ASLEEP`).
    if ASLEEP.load(Ordering::Relaxed) {
        park::expect_wake_up();
    }
    crate::scoped::block_on(&shared.tokio, guarded, caller, target.as_ref(), deadline)
}
