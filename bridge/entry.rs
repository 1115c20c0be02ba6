//! The entry points: [`run`], [`block_on_safe`], [`call_blocking`] and
//! [`run_coroutine_threadsafe`].

use std::cell::OnceCell;
use std::future::Future;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe, Location};
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use crate::debug::{DebugConfig, DEFAULT_SLOW_POLL};
use crate::error::{Error, PanicError};
use crate::event_loop::{Kind, LoopHandle, LoopShared};
use crate::future::ConcurrentFuture;
use crate::registry::{self, LoopId, Marked};
use crate::task::Guarded;
use crate::worker;

/// Python's `asyncio.run`: runs `fut` to completion on a fresh loop on this
/// thread, then cancels every task still spawned on it and closes it.
///
/// Inside, `tokio::spawn`, tokio timers and I/O work, and
/// [`get_running_loop`](crate::get_running_loop) is this loop.
///
/// # Errors
///
/// `NestedLoop` if a loop (bridge, tokio or foreign) already runs on this
/// thread: it never panics for nesting (use [`block_on_safe`] there);
/// `Panicked` if `fut` panics; `Io` if the runtime cannot be built.
///
/// # Examples
///
/// ```
/// let v = bridge::run(async {
///     let t = tokio::spawn(async { 20 });
///     tokio::time::sleep(std::time::Duration::from_millis(1)).await;
///     t.await.unwrap() + 22
/// });
/// assert_eq!(v.unwrap(), 42);
/// ```
#[track_caller]
pub fn run<F: Future>(fut: F) -> Result<F::Output, Error> {
    if registry::in_any_loop() {
        return Err(Error::NestedLoop);
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let id = LoopId(registry::next_id());
    let name = std::thread::current().name().unwrap_or("bridge-run").into();
    let debug = DebugConfig::new(None, DEFAULT_SLOW_POLL);
    let shared = LoopShared::new(name, id, Kind::Run, rt.handle().clone(), debug);
    // Outside the closure: a closure does not inherit `#[track_caller]`.
    let location = Location::caller();
    let origin = debug.enabled().then(|| crate::debug::Origin {
        location,
        loop_name: shared.name.clone(),
    });
    registry::register(shared.clone());
    let ctx = registry::enter(
        Marked::Bridge(LoopHandle::from_shared(shared.clone())),
        id.0,
    );
    let out = rt.block_on(Guarded::new(fut, origin, debug.slow_poll()));
    shared.close();
    // Cancels every task left on the loop; their destructors run here.
    drop(rt);
    drop(ctx);
    out
}

crate::sync::thread_local! {
    /// The runtime that gives inline `block_on_safe` calls their tokio context
    /// (timers, I/O), built on a thread's first call and reused after.
    static INLINE: OnceCell<tokio::runtime::Runtime> = const { OnceCell::new() };
}

/// Runs `fut` to completion from sync code, anywhere, without panicking or
/// deadlocking for nesting.
///
/// * No loop runs on this thread: `fut` runs right here (no thread hop) with
///   a tokio context, so tokio timers and I/O work. A future that is ready at
///   once never enters a scheduler, and nothing is allocated after a thread's
///   first call.
/// * A loop runs on this thread (bridge, tokio or foreign): `fut` is handed to
///   the [worker loop](crate::worker_loop) and this thread blocks until it is
///   done; on a tokio multi-thread runtime through `block_in_place`, so the
///   runtime's other tasks keep moving. On the worker loop's own thread it
///   still completes.
///
/// Tasks `fut` starts with `tokio::spawn` are not promised to outlive it;
/// use [`call_blocking`] or `worker_loop().spawn` for background work.
///
/// # Errors
///
/// `Panicked` if `fut` panics; `Io` if a runtime cannot be started.
///
/// # Deadlock
///
/// On a thread that drives a current-thread loop (a bridge [`Loop`](crate::Loop),
/// a current-thread tokio runtime, `futures::executor::block_on`), that loop
/// is stopped while this call blocks. If `fut` needs that very loop (it awaits
/// a task or a channel only that loop drives) it can never finish. Debug mode
/// reports such a wait; `.await` the future instead in async code.
///
/// # Examples
///
/// ```
/// // From sync code: runs inline.
/// assert_eq!(bridge::block_on_safe(async { 1 }).unwrap(), 1);
///
/// // Inside a runtime, where `Runtime::block_on` panics: hands off.
/// let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
/// let v = rt.block_on(async {
///     bridge::block_on_safe(async {
///         tokio::time::sleep(std::time::Duration::from_millis(1)).await;
///         2
///     })
/// });
/// assert_eq!(v.unwrap(), 2);
/// ```
#[track_caller]
pub fn block_on_safe<F>(fut: F) -> Result<F::Output, Error>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    if registry::in_any_loop() {
        return worker::handoff(fut, Location::caller());
    }
    block_inline(fut)
}

fn block_inline<F: Future>(fut: F) -> Result<F::Output, Error> {
    let mut fut = Some(fut);
    let inline = INLINE.try_with(|cell| {
        let rt = match cell.get() {
            Some(rt) => rt,
            None => {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?;
                cell.get_or_init(|| rt)
            }
        };
        let mut fut = pin!(fut.take().expect("taken once"));
        {
            // Fast path: a future that is ready at once needs no scheduler.
            let _enter = rt.enter();
            match catch(|| fut.as_mut().poll(&mut Context::from_waker(Waker::noop()))) {
                Ok(Poll::Ready(v)) => return Ok(Ok(v)),
                Ok(Poll::Pending) => {}
                Err(e) => return Ok(Err(e)),
            }
        }
        Ok::<_, std::io::Error>(catch(|| rt.block_on(fut)))
    });
    match inline {
        Ok(Ok(out)) => out,
        Ok(Err(e)) => Err(Error::Io(e)),
        // Thread teardown: the thread-local is gone; a one-off runtime will do.
        Err(_) => {
            let fut = fut.take().expect("not taken when the thread-local is gone");
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            catch(|| rt.block_on(fut))
        }
    }
}

fn catch<R>(f: impl FnOnce() -> R) -> Result<R, Error> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|p| Error::Panicked(PanicError::new(p)))
}

/// Runs `fut` on the worker loop and blocks this thread for its output: the
/// entry point for sync code such as a web handler or the blocking half of a
/// library.
///
/// The worker loop's reactor is always driven, so connection pools, clients
/// and timers created by one call keep working in the next. Works from a
/// plain thread, from inside any loop, and nested inside itself to any depth
/// (a nested call may use resources bound to the worker loop).
///
/// # Panics
///
/// A panic in `fut` resumes in the caller. It also panics if the worker loop
/// cannot be started at all (out of threads or file descriptors).
///
/// # Examples
///
/// ```
/// fn handler() -> u32 {
///     bridge::call_blocking(async {
///         tokio::time::sleep(std::time::Duration::from_millis(1)).await;
///         200
///     })
/// }
/// assert_eq!(handler(), 200);
/// // Also inside an async context, where `reqwest::blocking` would panic:
/// let rt = tokio::runtime::Runtime::new().unwrap();
/// assert_eq!(rt.block_on(async { handler() }), 200);
/// ```
#[track_caller]
pub fn call_blocking<F>(fut: F) -> F::Output
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    match worker::handoff(fut, Location::caller()) {
        Ok(v) => v,
        Err(Error::Panicked(p)) => resume_unwind(p.into_panic()),
        Err(e) => panic!("bridge::call_blocking: {e}"),
    }
}

/// Python's `asyncio.run_coroutine_threadsafe`: runs `fut` on the loop `lp`
/// and returns a [`ConcurrentFuture`] for its outcome, to wait on from sync
/// code or `.await` from any executor. Same as [`LoopHandle::spawn`].
///
/// # Examples
///
/// ```
/// let lp = bridge::Loop::new().unwrap();
/// let fut = bridge::run_coroutine_threadsafe(async { "hi" }, &lp.handle());
/// assert_eq!(fut.wait().unwrap(), "hi");
/// ```
#[track_caller]
pub fn run_coroutine_threadsafe<F>(fut: F, lp: &LoopHandle) -> ConcurrentFuture<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    lp.spawn(fut)
}
