//! The pieces the loom models in `loom-tests/` drive directly; compiled only
//! under `--cfg bridge_loom`.

pub use crate::once::OnceCell;
/// Polls a future to completion with the spin-then-park waiter.
pub fn block_on<F: std::future::Future>(fut: F) -> F::Output {
    crate::park::block_on(fut)
}

/// A promise/future pair whose work belongs to the thread-home `home`
/// (as a loop's tasks do): waiting on that home is `WouldDeadlock`.
pub fn pair_with_home<T>(home: u64) -> (crate::Promise<T>, crate::ConcurrentFuture<T>) {
    crate::future::pair(home, None, crate::future::DropOutcome::Cancelled)
}

/// The outcome a task that panicked with `message` publishes.
pub fn panicked(message: &'static str) -> crate::Error {
    crate::Error::Panicked(crate::error::PanicError::new(Box::new(message)))
}

/// Unread-panic reports made so far by this loom thread.
pub fn unread_panic_reports() -> usize {
    crate::debug::UNREAD_PANIC_REPORTS.with(|n| n.get())
}

/// Marks this thread as inside the foreign executor `name` with thread-home
/// `home` (as a loop's thread is) until the guard drops.
pub fn enter_home(name: &'static str, home: u64) -> HomeGuard {
    HomeGuard(crate::registry::enter(
        crate::registry::Marked::Foreign(name),
        home,
    ))
}

/// Restores the previous context on drop; see [`enter_home`].
#[must_use]
pub struct HomeGuard(#[allow(dead_code)] crate::registry::EnterGuard);

/// This thread's home id (0: none).
pub fn current_home() -> u64 {
    crate::registry::current_home()
}

/// Starts `n` of `ex`'s threads at once (within its bound), so that a model
/// can have parked threads before any job is submitted.
pub fn prestart(ex: &crate::Executor, n: usize) {
    ex.shared().prestart(n)
}

/// The raw counts of `ex`'s pool, `(threads, idle, parked, wakeups, queued)`,
/// for the models' end-state checks (see bridge/pool.rs).
pub fn pool_counts(ex: &crate::Executor) -> (usize, usize, usize, usize, usize) {
    ex.shared().counts()
}
