//! The entry points: [`run`], [`block_on_safe`], [`call_blocking`] and
//! [`run_coroutine_threadsafe`].

use std::future::Future;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe, Location};
use std::time::{Duration, Instant};

use crate::debug::{DebugConfig, DEFAULT_SLOW_POLL};
use crate::error::{Error, PanicError};
use crate::event_loop::{Kind, LoopHandle, LoopShared};
use crate::future::ConcurrentFuture;
use crate::park;
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
    let debug = DebugConfig::new(None, DEFAULT_SLOW_POLL);
    run_here(None, debug, Location::caller(), fut)
}

/// [`run`] with a loop's settings (from [`LoopBuilder::run`](crate::LoopBuilder::run)):
/// `name` names the loop (default: this thread's name, else `bridge-run`),
/// `debug` its debug mode, `location` the call site named in debug reports.
pub(crate) fn run_here<F: Future>(
    name: Option<String>,
    debug: DebugConfig,
    location: &'static Location<'static>,
    fut: F,
) -> Result<F::Output, Error> {
    if registry::in_any_loop() {
        return Err(Error::NestedLoop);
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let id = LoopId(registry::next_id());
    let name: std::sync::Arc<str> = match name {
        Some(name) => name.into(),
        None => std::thread::current().name().unwrap_or("bridge-run").into(),
    };
    let shared = LoopShared::new(name, id, Kind::Run, rt.handle().clone(), debug);
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

/// Runs `fut` to completion from sync code, anywhere, without panicking or
/// deadlocking for nesting. `fut` may borrow from the caller.
///
/// * No loop runs on this thread: `fut` runs right here (no thread hop),
///   under the [worker loop](crate::worker_loop)'s tokio context. The worker
///   loop's own thread drives the timers and I/O that `fut` uses, and runs
///   what `fut` spawns: tasks started with `tokio::spawn` (including those a
///   library spawns from `Drop`, such as a pool taking back a connection)
///   land on the worker loop and outlive the call, and resources made here
///   keep working from any later call or thread. A future that is ready at
///   once never enters a scheduler, and nothing is allocated after the
///   thread's first call.
/// * A loop runs on this thread (bridge, tokio or foreign): `fut` is handed to
///   the worker loop and this thread blocks until it is done and dropped; on
///   a tokio multi-thread runtime through `block_in_place`, so the runtime's
///   other tasks keep moving. On the worker loop's own thread it still
///   completes.
///
/// # Errors
///
/// `Panicked` if `fut` panics; `Io` if the worker loop cannot be started.
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
/// // From sync code: runs inline, and may borrow.
/// let name = String::from("db");
/// assert_eq!(bridge::block_on_safe(async { name.len() }).unwrap(), 2);
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
    F: Future + Send,
    F::Output: Send,
{
    let caller = Location::caller();
    if registry::in_any_loop() {
        return worker::handoff(fut, caller, None);
    }
    block_inline(fut, caller)
}

/// The inline path of [`block_on_safe`]: polls `fut` on this thread, with a
/// live waker from the first poll, inside the worker loop's tokio context.
fn block_inline<F: Future>(fut: F, caller: &'static Location<'static>) -> Result<F::Output, Error> {
    let worker = worker::worker_shared()?;
    let _context = worker.tokio.enter();
    // Debug mode watches inline waits for hangs too.
    let _watch = crate::debug::watch_wait(caller, None);
    catch(|| park::block_on(fut))
}

fn catch<R>(f: impl FnOnce() -> R) -> Result<R, Error> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|p| Error::Panicked(PanicError::new(p)))
}

/// Runs `fut` on the worker loop and blocks this thread for its output: the
/// entry point for sync code such as a web handler or the blocking half of a
/// library. `fut` may borrow from the caller: this call returns (or unwinds)
/// only after `fut` has finished and been dropped on the worker loop.
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
/// struct Client { base: String }
/// impl Client {
///     async fn get(&self, path: &str) -> String {
///         tokio::time::sleep(std::time::Duration::from_millis(1)).await;
///         format!("{}{path}", self.base)
///     }
///     // The blocking twin: one line, borrowing `self` and `path`.
///     fn get_blocking(&self, path: &str) -> String {
///         bridge::call_blocking(self.get(path))
///     }
/// }
/// let c = Client { base: "http://db".into() };
/// assert_eq!(c.get_blocking("/k"), "http://db/k");
/// // Also inside an async context, where `reqwest::blocking` would panic:
/// let rt = tokio::runtime::Runtime::new().unwrap();
/// assert_eq!(rt.block_on(async { c.get_blocking("/x") }), "http://db/x");
/// ```
#[track_caller]
pub fn call_blocking<F>(fut: F) -> F::Output
where
    F: Future + Send,
    F::Output: Send,
{
    match worker::handoff(fut, Location::caller(), None) {
        Ok(v) => v,
        Err(Error::Panicked(p)) => resume_unwind(p.into_panic()),
        Err(e) => panic!("bridge::call_blocking: {e}"),
    }
}

/// [`call_blocking`] with a bound on the wait: runs `fut` on the worker loop
/// and blocks this thread for at most about `timeout`.
///
/// When the time is up, `fut` is cancelled and dropped on the worker loop
/// before this returns `Err(Timeout)`, so `fut` may borrow from the caller.
/// A future that is in the middle of a poll when the time runs out is
/// dropped once that poll returns: a poll that blocks its thread delays the
/// return by as long. A result that arrives while the cancellation is under
/// way is returned rather than lost.
///
/// # Errors
///
/// `Timeout` if `fut` did not finish in time; `Panicked` if it panicked;
/// `Io` if the worker loop cannot be started.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// let slow = bridge::call_blocking_timeout(Duration::from_millis(10), async {
///     tokio::time::sleep(Duration::from_secs(60)).await;
/// });
/// assert!(matches!(slow, Err(bridge::Error::Timeout)));
///
/// let key = String::from("k");
/// let fast = bridge::call_blocking_timeout(Duration::from_secs(5), async { key.len() });
/// assert_eq!(fast.unwrap(), 1);
/// ```
#[track_caller]
pub fn call_blocking_timeout<F>(timeout: Duration, fut: F) -> Result<F::Output, Error>
where
    F: Future + Send,
    F::Output: Send,
{
    // A timeout too large to represent is no timeout.
    let deadline = Instant::now().checked_add(timeout);
    worker::handoff(fut, Location::caller(), deadline)
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
