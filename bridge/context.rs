//! The per-thread context: which loop runs on this thread (the list of every
//! live loop in the process is [`live`](crate::live)).
//!
//! Each thread carries a stack of scopes, innermost last: the loops our
//! guards say it is inside (a bridge loop, or a foreign executor named with
//! [`enter_foreign`]) and their *homes* (the id of the bridge loop or
//! single-thread executor that this thread alone drives, used to refuse a
//! wait that would deadlock). A guard removes exactly its own scope when it
//! drops, so the thread's state is right whatever order guards are dropped
//! in, and after a panic.
//!
//! What our guards do not mark is detected when asked: which tokio scheduler
//! runs here ([`scheduler`], from `tokio::runtime::worker_index`, never by
//! a probe that panics) and `futures::executor::block_on`
//! (`futures_executor::enter` fails inside it).

use std::cell::{Cell, RefCell};
use std::fmt;
use std::marker::PhantomData;

use crossbeam_utils::atomic::AtomicCell;

use crate::error::Error;
use crate::shared::{Kind, LoopHandle};
use crate::sync::plain::{Arc, OnceLock};

/// What is running on the current thread.
///
/// # Examples
///
/// ```
/// assert!(bridge::running_loop().is_none());
/// bridge::run(async {
///     assert!(matches!(bridge::running_loop(), Some(bridge::RunningLoop::Bridge(_))));
/// }).unwrap();
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum RunningLoop {
    /// A loop of this crate.
    Bridge(LoopHandle),
    /// A tokio runtime built elsewhere (its flavor is on the handle).
    Tokio(tokio::runtime::Handle),
    /// `"futures::executor"` inside `futures::executor::block_on`, or the name
    /// given to [`enter_foreign`].
    Foreign(&'static str),
}

/// What our guards have marked on this thread.
#[derive(Clone, Default)]
pub(crate) enum Marked {
    #[default]
    Nothing,
    Bridge(LoopHandle),
    Foreign(&'static str),
}

/// One scope entered on this thread, innermost last.
struct Entry {
    /// Names the scope for its guard (unique per thread).
    id: u64,
    /// What the scope marks; `None`: it leaves the mark as it is (work run
    /// on behalf of blocked threads, see [`on_behalf`]).
    marked: Option<Marked>,
    /// The bridge loop or single-thread executor this scope drives (0: none).
    home: u64,
    /// The homes of the threads blocked waiting for the work running in
    /// this scope (see [`on_behalf`]).
    blocked: Option<Homes>,
}

/// The homes (loops and single-thread executors) that stop while a thread
/// blocks: its own scopes' and, transitively, those of the threads waiting
/// for the work it runs.
pub(crate) type Homes = Arc<[u64]>;

struct Context {
    /// The scopes entered on this thread, innermost last. Guards remove their
    /// own entry wherever it is, so dropping them in any order leaves exactly
    /// the scopes still alive.
    scopes: RefCell<Vec<Entry>>,
    next_scope: Cell<u64>,
    /// A thread of the worker loop's runtime.
    worker_thread: Cell<bool>,
    /// Whether the thread's name allows it to be one of tokio's (see
    /// `could_be_tokios_thread`), once known.
    tokio_named: Cell<Option<bool>>,
}

crate::sync::thread_local! {
    static CONTEXT: Context = Context {
        scopes: RefCell::new(Vec::new()),
        next_scope: Cell::new(0),
        worker_thread: Cell::new(false),
        tokio_named: Cell::new(None),
    };
}

/// Removes its scope from this thread on drop (see [`Context::scopes`]).
#[must_use = "the context is restored as soon as the guard is dropped"]
pub(crate) struct EnterGuard {
    id: u64,
    /// Guards restore thread-local state: they must stay on their thread.
    _not_send: PhantomData<*const ()>,
}

fn push(marked: Option<Marked>, home: u64, blocked: Option<Homes>) -> EnterGuard {
    let id = CONTEXT
        .try_with(|c| {
            let id = c.next_scope.get().wrapping_add(1);
            c.next_scope.set(id);
            c.scopes.borrow_mut().push(Entry {
                id,
                marked,
                home,
                blocked,
            });
            id
        })
        // Thread teardown: nothing can be marked any more; the guard is inert.
        .unwrap_or(0);
    EnterGuard {
        id,
        _not_send: PhantomData,
    }
}

/// Marks this thread as inside `marked` (and `home`, if non-zero) until the
/// guard drops.
pub(crate) fn enter(marked: Marked, home: u64) -> EnterGuard {
    push(Some(marked), home, None)
}

impl Drop for EnterGuard {
    fn drop(&mut self) {
        if self.id == 0 {
            return;
        }
        // `try_with`: a guard may drop during thread teardown.
        let removed = CONTEXT.try_with(|c| {
            let mut scopes = c.scopes.borrow_mut();
            let i = scopes.iter().rposition(|e| e.id == self.id)?;
            Some(scopes.remove(i))
        });
        // Dropped outside the borrow: a loop handle's last reference may go here.
        drop(removed);
    }
}

/// The home id of this thread (0: none): the innermost scope's that has one.
#[cfg(bridge_loom)]
pub(crate) fn current_home() -> u64 {
    CONTEXT
        .try_with(|c| {
            let scopes = c.scopes.borrow();
            scopes.iter().rev().map(|e| e.home).find(|&h| h != 0)
        })
        .ok()
        .flatten()
        .unwrap_or(0)
}

/// Whether blocking this thread would stop the loop or single-thread
/// executor `home` (non-zero): this thread drives it in one of its scopes,
/// or runs work on behalf of a thread that does and is blocked waiting for
/// it (any depth of hand-offs). Waiting there for that loop's work is
/// `WouldDeadlock`.
pub(crate) fn is_blocked_home(home: u64) -> bool {
    home != 0
        && CONTEXT
            .try_with(|c| {
                c.scopes.borrow().iter().any(|e| {
                    e.home == home || e.blocked.as_deref().is_some_and(|b| b.contains(&home))
                })
            })
            .unwrap_or(false)
}

/// The "would deadlock" rule: `Err(WouldDeadlock)` where blocking this
/// thread for work of `home` would stop that very loop ([`is_blocked_home`]).
pub(crate) fn refuse_blocked_home(home: u64) -> Result<(), Error> {
    match is_blocked_home(home) {
        true => Err(Error::WouldDeadlock),
        false => Ok(()),
    }
}

/// The homes that stop while this thread blocks (see [`is_blocked_home`]),
/// or `None` (the common case, which allocates nothing).
pub(crate) fn blocked_homes() -> Option<Homes> {
    CONTEXT
        .try_with(|c| {
            let scopes = c.scopes.borrow();
            let mut homes: Vec<u64> = Vec::new();
            for e in scopes.iter() {
                if e.home != 0 {
                    homes.push(e.home);
                }
                homes.extend(e.blocked.iter().flat_map(|b| b.iter().copied()));
            }
            homes.sort_unstable();
            homes.dedup();
            (!homes.is_empty()).then(|| Homes::from(homes))
        })
        .ok()
        .flatten()
}

pin_project_lite::pin_project! {
    /// A future handed to another thread by a thread that blocks until it is
    /// done: each poll runs as if on behalf of that thread, so a wait inside
    /// it on a loop the blocked thread drives is `WouldDeadlock` instead of
    /// a hang. From [`on_behalf`].
    pub(crate) struct OnBehalf<F> {
        #[pin]
        fut: F,
        blocked: Option<Homes>,
    }
}

/// Wraps `fut`, about to be handed off by this thread, which then blocks
/// until it is done, so that the homes this thread stops travel with it (see
/// [`is_blocked_home`]). Nothing is allocated when this thread drives no
/// loop or executor, which is the common case.
pub(crate) fn on_behalf<F: std::future::Future>(fut: F) -> OnBehalf<F> {
    OnBehalf {
        fut,
        blocked: blocked_homes(),
    }
}

impl<F: std::future::Future> std::future::Future for OnBehalf<F> {
    type Output = F::Output;

    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<F::Output> {
        let this = self.project();
        let _scope = this
            .blocked
            .as_ref()
            .map(|b| push(None, 0, Some(b.clone())));
        this.fut.poll(cx)
    }
}

/// Marks this thread as one of the worker loop runtime's threads.
pub(crate) fn mark_worker_thread() {
    CONTEXT.with(|c| c.worker_thread.set(true));
}

pub(crate) fn is_worker_thread() -> bool {
    CONTEXT.try_with(|c| c.worker_thread.get()).unwrap_or(false)
}

/// What the innermost marking scope of this thread marks.
pub(crate) fn marked() -> Marked {
    CONTEXT
        .try_with(|c| {
            let scopes = c.scopes.borrow();
            scopes
                .iter()
                .rev()
                .find_map(|e| e.marked.clone())
                .unwrap_or_default()
        })
        .unwrap_or_default()
}

/// Whether the bridge loop this thread drives (if any) is in debug mode.
pub(crate) fn current_loop_debug() -> bool {
    CONTEXT
        .try_with(|c| {
            let scopes = c.scopes.borrow();
            matches!(
                scopes.iter().rev().find_map(|e| e.marked.as_ref()),
                Some(Marked::Bridge(h)) if h.shared.debug.enabled()
            )
        })
        .unwrap_or(false)
}

/// Whether this thread drives a current-thread bridge loop (a [`Loop`](crate::Loop)
/// or a [`run`](crate::run) loop) in one of its scopes.
fn in_current_thread_bridge_loop() -> bool {
    CONTEXT
        .try_with(|c| {
            c.scopes
                .borrow()
                .iter()
                .any(|e| matches!(&e.marked, Some(Marked::Bridge(h)) if h.kind() != Kind::Worker))
        })
        .unwrap_or(false)
}

/// Which tokio scheduler, if any, is running on this thread: what decides
/// whether a blocking call must first move a runtime's core away
/// (`block_in_place`), may simply block, or would stop a loop.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Scheduler {
    /// No tokio scheduler runs on this thread: a plain thread, a
    /// `spawn_blocking` closure, a `Runtime::enter` scope, inside
    /// `block_in_place`, or a multi-thread runtime's `block_on` (its thread
    /// is not one of its workers). Blocking here stops no tokio scheduler.
    Nothing,
    /// A multi-thread runtime's worker is polling a task here; `ours` when
    /// it is the worker loop's. `block_in_place` moves its core away first.
    MultiThread { ours: bool },
    /// A worker of a multi-thread runtime the user built, polling a task
    /// that entered another runtime's context: its core cannot be moved
    /// safely (see [`scheduler`]), so blocking stalls this one worker while
    /// the runtime's others go on.
    MultiThreadAway,
    /// A current-thread scheduler: a current-thread runtime's `block_on` or
    /// one of its tasks (a `LocalSet` on it included). Blocking here stops
    /// it, and `block_in_place` would panic.
    CurrentThread,
}

/// Which tokio scheduler runs on this thread, decided without asking tokio
/// a question it answers by panicking.
///
/// * `tokio::runtime::worker_index()` is `None` outside any scheduler.
/// * A scheduler polling something that is not a task is a current-thread
///   runtime's `block_on` (a multi-thread runtime's workers poll only tasks).
/// * The worker loop's threads are marked when they start, and a
///   [`Loop`](crate::Loop) or [`run`](crate::run) loop by our guards.
/// * Index 1 and up: a multi-thread runtime's worker.
/// * Index 0 is either a current-thread scheduler or a multi-thread
///   runtime's first worker. The main thread and unnamed threads are never
///   tokio's (tokio names every thread it starts); otherwise the ambient
///   handle's flavour decides. `Handle::enter` can mislead that in one case
///   only: a task of a current-thread runtime the user built, on a named
///   thread, inside `Handle::enter` of a multi-thread runtime (tokio's public
///   API cannot tell that from a worker of that runtime). Likewise a task of
///   a current-thread runtime started inside `spawn_blocking` on the worker
///   loop's runtime (its thread is marked) is taken for the worker loop:
///   reading the mark, not the ambient handle, is what keeps a library that
///   enters another runtime's context inside worker-loop work from stalling
///   the worker loop, which matters more.
///
/// tokio moves a core to a thread of the *ambient* runtime's blocking pool.
/// Under another runtime's context a worker's core would end up on that
/// runtime's threads (and keep its shutdown waiting), so a worker of a
/// runtime the user built that runs under a context not its own blocks in
/// place ([`Scheduler::MultiThreadAway`]); the worker loop's core is moved
/// within its own runtime (see `wait::blocking_region_for`).
pub(crate) fn scheduler() -> Scheduler {
    let Some(index) = tokio::runtime::worker_index() else {
        return Scheduler::Nothing;
    };
    if tokio::task::try_id().is_none() || in_current_thread_bridge_loop() {
        return Scheduler::CurrentThread;
    }
    if is_worker_thread() {
        // Not the ambient handle: a library may have entered another
        // runtime's context inside worker-loop work.
        return Scheduler::MultiThread { ours: true };
    }
    // Every worker of the worker loop's runtime is marked (above): its
    // handle entered elsewhere is a context, not this thread's scheduler.
    let own_context = tokio::runtime::Handle::try_current().is_ok_and(|h| {
        h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread && !is_worker_runtime(&h)
    });
    match (index, own_context) {
        (0, _) if !could_be_tokios_thread() => Scheduler::CurrentThread,
        (_, true) => Scheduler::MultiThread { ours: false },
        (0, false) => Scheduler::CurrentThread,
        (_, false) => Scheduler::MultiThreadAway,
    }
}

/// Whether tokio may have started this thread: tokio names every thread it
/// starts, so the main thread and unnamed threads are never its workers.
/// Read once per thread.
fn could_be_tokios_thread() -> bool {
    let ask = || {
        let thread = std::thread::current();
        !matches!(thread.name(), None | Some("main"))
    };
    CONTEXT
        .try_with(|c| match c.tokio_named.get() {
            Some(known) => known,
            None => {
                let known = ask();
                c.tokio_named.set(Some(known));
                known
            }
        })
        .unwrap_or_else(|_| ask())
}

/// Whether any loop or executor (bridge, tokio or foreign) runs on this thread.
///
/// A tokio runtime runs here when one of its schedulers does, or when
/// something polls under tokio's cooperative budget in a runtime context (a
/// multi-thread runtime's `block_on`, a `LocalSet` inside it). A
/// `spawn_blocking` closure, the inside of `block_in_place` and a
/// `Runtime::enter` scope run without a budget: no loop runs there, and
/// tokio's own `block_on` works there too.
pub(crate) fn in_any_loop() -> bool {
    let ours = CONTEXT
        .try_with(|c| {
            c.scopes
                .borrow()
                .iter()
                .any(|e| matches!(&e.marked, Some(m) if !matches!(m, Marked::Nothing)))
        })
        .unwrap_or(false);
    ours || in_tokio_loop() || in_futures_executor()
}

fn in_tokio_loop() -> bool {
    if tokio::runtime::worker_index().is_some() {
        return true;
    }
    match tokio::runtime::Handle::try_current() {
        // Without tokio's budget nothing is being polled for a runtime:
        // a blocking task (`spawn_blocking`), the inside of `block_in_place`,
        // a `Runtime::enter` scope. The worker loop's context outside any
        // task is the inline path of `block_on_safe`, which runs a future
        // here: that counts as a loop.
        Ok(h) => under_budget() || (tokio::task::try_id().is_none() && is_worker_runtime(&h)),
        // A tokio context whose thread-local is already destroyed (a late
        // thread-local destructor) counts as a loop: no runtime can be driven
        // on this thread any more, so work must be handed to the worker loop.
        Err(e) => e.is_thread_local_destroyed(),
    }
}

/// Whether tokio's cooperative budget is in force on this thread: tokio sets
/// it around every poll it makes for a scheduler or a `block_on`, and lifts
/// it in blocking tasks (`spawn_blocking`) and inside `block_in_place`.
///
/// Asked without a panic: units are taken from the budget (at most 128
/// while it is in force) until it refuses or clearly has no limit, then the
/// budget is put back as it was. Only called where a runtime context exists
/// and no scheduler index answers, which is off every hot path.
pub(crate) fn under_budget() -> bool {
    use std::task::{Context, Poll, Waker};
    let mut cx = Context::from_waker(Waker::noop());
    // The first guard remembers the budget as it was; dropped last, it puts
    // it back. The others are marked as progress, so they restore nothing.
    let first = match tokio::task::coop::poll_proceed(&mut cx) {
        Poll::Ready(guard) => guard,
        Poll::Pending => return true,
    };
    let mut limited = false;
    for _ in 0..=u8::MAX {
        match tokio::task::coop::poll_proceed(&mut cx) {
            Poll::Ready(guard) => guard.made_progress(),
            Poll::Pending => {
                limited = true;
                break;
            }
        }
    }
    drop(first);
    limited
}

fn in_futures_executor() -> bool {
    futures_executor::enter().is_err()
}

/// What runs on this thread, if anything: a bridge loop, a tokio runtime, or
/// a foreign executor.
///
/// Sees bridge loops, tokio runtimes the user built (also a `spawn_blocking`
/// thread or a `Runtime::enter` scope, where blocking is allowed: a hand-off
/// from there is merely slower), `futures::executor::block_on`, and whatever
/// was marked with [`enter_foreign`].
///
/// When executors are nested, the innermost is reported where it can be
/// told: our guards and [`enter_foreign`] mark nesting exactly, and
/// `futures::executor::block_on` is reported over a tokio context around it.
///
/// # Examples
///
/// ```
/// let rt = tokio::runtime::Runtime::new().unwrap();
/// rt.block_on(async {
///     assert!(matches!(bridge::running_loop(), Some(bridge::RunningLoop::Tokio(_))));
/// });
/// futures::executor::block_on(async {
///     assert!(matches!(bridge::running_loop(), Some(bridge::RunningLoop::Foreign("futures::executor"))));
/// });
/// ```
pub fn running_loop() -> Option<RunningLoop> {
    match marked() {
        Marked::Bridge(h) => return Some(RunningLoop::Bridge(h)),
        Marked::Foreign(name) => return Some(RunningLoop::Foreign(name)),
        Marked::Nothing => {}
    }
    if let Scheduler::MultiThread { ours: true } = scheduler() {
        // On a thread of the worker's runtime the worker is started.
        if let Some(Ok(worker)) = worker() {
            return Some(RunningLoop::Bridge(worker.clone()));
        }
    }
    // `futures::executor::block_on` called inside a tokio task (the classic
    // way to hang a runtime) is the innermost of the two, so it is asked first.
    if in_futures_executor() {
        return Some(RunningLoop::Foreign("futures::executor"));
    }
    if let Ok(h) = tokio::runtime::Handle::try_current() {
        return Some(RunningLoop::Tokio(h));
    }
    None
}

/// This thread's bridge loop.
///
/// # Errors
///
/// [`Error::NoRunningLoop`](crate::Error::NoRunningLoop) outside a bridge loop
/// (also inside a foreign executor or a tokio runtime not made by this crate).
///
/// # Examples
///
/// ```
/// assert!(bridge::get_running_loop().is_err());
/// let lp = bridge::Loop::new().unwrap();
/// let same = lp.handle().block_on(async { bridge::get_running_loop().unwrap().id() }).unwrap();
/// assert_eq!(same, lp.handle().id());
/// ```
pub fn get_running_loop() -> Result<LoopHandle, crate::Error> {
    match running_loop() {
        Some(RunningLoop::Bridge(h)) => Ok(h),
        _ => Err(crate::Error::NoRunningLoop),
    }
}

/// Marks this thread as inside another executor (pollster, smol, a custom
/// one) until the guard drops, so [`block_on_safe`](crate::block_on_safe)
/// hands off instead of blocking an executor it cannot see.
///
/// # Examples
///
/// ```
/// let guard = bridge::enter_foreign("pollster");
/// assert!(matches!(bridge::running_loop(), Some(bridge::RunningLoop::Foreign("pollster"))));
/// drop(guard);
/// assert!(bridge::running_loop().is_none());
/// ```
pub fn enter_foreign(name: &'static str) -> ForeignGuard {
    ForeignGuard {
        _inner: enter(Marked::Foreign(name), 0),
    }
}

/// Keeps this thread marked as inside a foreign executor; see [`enter_foreign`].
///
/// Dropping it removes this mark and no other: guards may be dropped in any
/// order, and the thread is then marked by exactly the guards still alive
/// (the innermost of them reported). It cannot leave its thread.
///
/// # Examples
///
/// ```
/// let outer = bridge::enter_foreign("outer");
/// let inner = bridge::enter_foreign("inner");
/// drop(outer); // out of order: "inner" is still entered
/// assert!(matches!(bridge::running_loop(), Some(bridge::RunningLoop::Foreign("inner"))));
/// drop(inner);
/// assert!(bridge::running_loop().is_none());
/// ```
#[must_use = "the thread is unmarked as soon as the guard is dropped"]
pub struct ForeignGuard {
    _inner: EnterGuard,
}

impl fmt::Debug for ForeignGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ForeignGuard").finish_non_exhaustive()
    }
}

/// The tokio runtime of the worker loop, once started (in a forked child,
/// the child's own). A lone word, read lock-free.
static WORKER_RUNTIME: AtomicCell<Option<tokio::runtime::Id>> = AtomicCell::new(None);

/// Records `id` as the worker loop's runtime (see [`scheduler`]).
pub(crate) fn set_worker_runtime(id: tokio::runtime::Id) {
    WORKER_RUNTIME.store(Some(id));
}

/// Whether `h` is the worker loop's runtime (never starts it).
fn is_worker_runtime(h: &tokio::runtime::Handle) -> bool {
    WORKER_RUNTIME.load() == Some(h.id())
}

/// The worker loop (started if needed), for the layers below the
/// [`worker`](crate::worker) module: it registers itself here when it first
/// starts, so nothing below it imports it.
type WorkerFn = fn() -> Result<&'static LoopHandle, Error>;

static WORKER: OnceLock<WorkerFn> = OnceLock::new();

/// Called by the worker module before it starts its runtime.
pub(crate) fn set_worker(f: WorkerFn) {
    let _ = WORKER.set(f);
}

/// The worker loop, if it was ever started (in a forked child, the child's,
/// started if needed); `None` before the first start.
pub(crate) fn worker() -> Option<Result<&'static LoopHandle, Error>> {
    WORKER.get().map(|f| f())
}
