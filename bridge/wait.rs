//! The "never stall a loop while blocking" rule: every synchronous wait of
//! this crate blocks inside [`blocking_region`], which on a tokio
//! multi-thread runtime (the worker loop included) first moves the runtime's
//! core to another thread (`block_in_place`), so a thread blocking *inside*
//! the worker loop never stalls it. Each such call inside worker-loop work
//! holds a thread of the worker runtime's blocking pool while it blocks: at
//! most [`MAX_NESTED_BLOCKING`] are let in at once, and one more is refused
//! with `WouldDeadlock` ([`reserve_blocking`]) rather than stop the worker
//! loop for the whole process.

use std::panic::Location;

use crate::context::{self, Scheduler};
use crate::error::Error;
use crate::report::Origin;
use crate::sync::plain::{AtomicUsize, Ordering};

/// The most blocking calls that may be in flight at once inside worker-loop
/// work through the crate's entry points and `wait` (each holds a thread of
/// the worker's runtime, see [`MAX_BLOCKING_THREADS`](crate::worker::MAX_BLOCKING_THREADS)). The other threads
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
    if context::scheduler() != (Scheduler::MultiThread { ours: true }) {
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
/// ([`context::scheduler`]), not by the ambient runtime handle (a library
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
/// [`crate::watchdog`]): a hang past the hang threshold, and a current-thread
/// loop stopped by this thread past its slow-poll threshold, are reported.
/// With debug mode off this adds no clock read and no allocation.
pub(crate) fn blocking_region_for<R>(
    caller: &'static Location<'static>,
    target: Option<&Origin>,
    f: impl FnOnce() -> R,
) -> R {
    let _watch = crate::watchdog::watch_wait(caller, target);
    match context::scheduler() {
        Scheduler::MultiThread { ours } => {
            // tokio moves the core to a thread of the *ambient* runtime's
            // blocking pool: under another runtime's `Handle::enter` that
            // would be the other runtime's, so the worker's is entered here.
            let _home = match ours {
                true => context::worker()
                    .and_then(Result::ok)
                    .map(|w| w.tokio_handle().enter()),
                false => None,
            };
            // In debug mode, the time the core is away is not charged to
            // the poll that handed it off (it did not block its loop).
            let _away = crate::report::core_away();
            tokio::task::block_in_place(f)
        }
        Scheduler::MultiThreadAway | Scheduler::CurrentThread | Scheduler::Nothing => f(),
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
