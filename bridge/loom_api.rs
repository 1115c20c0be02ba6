//! The pieces the loom models in `loom-tests/` drive directly; compiled only
//! under `--cfg bridge_loom`.

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
    crate::report::UNREAD_PANIC_REPORTS.with(|n| n.get())
}

/// Marks this thread as inside the foreign executor `name` with thread-home
/// `home` (as a loop's thread is) until the guard drops.
pub fn enter_home(name: &'static str, home: u64) -> HomeGuard {
    HomeGuard(crate::context::enter(
        crate::context::Marked::Foreign(name),
        home,
    ))
}

/// Restores the previous context on drop; see [`enter_home`].
#[must_use]
pub struct HomeGuard(#[allow(dead_code)] crate::context::EnterGuard);

/// This thread's home id (0: none).
pub fn current_home() -> u64 {
    crate::context::current_home()
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

/// The borrowing hand-off's task (bridge/scoped.rs), for a model's stand-in
/// executor to poll or drop.
pub struct ModelTask(crate::scoped::ScopedTask);

impl ModelTask {
    /// Polls the task once.
    pub fn poll(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        std::future::Future::poll(std::pin::Pin::new(&mut self.0), cx)
    }
}

/// A model's executor: runs [`ModelTask`]s and lets their callers wait.
pub trait ModelSpawner {
    /// Resolves once the task is over.
    type Join;
    /// Hands the task over; it must be polled to `Ready` or dropped.
    fn spawn(&self, task: ModelTask) -> Self::Join;
    /// Blocks until the task is over (`true`), or gives up at once (`false`)
    /// when `give_up` is set (the model's deadline).
    fn wait(&self, join: &mut Self::Join, give_up: bool) -> bool;
    /// Asks for the task to be dropped.
    fn abort(&self, join: &Self::Join);
}

struct Adapter<'a, S>(&'a S);

impl<S: ModelSpawner> crate::scoped::Spawner for Adapter<'_, S> {
    type Join = S::Join;
    fn spawn(&self, task: crate::scoped::ScopedTask) -> S::Join {
        self.0.spawn(ModelTask(task))
    }
    fn wait(&self, join: &mut S::Join, deadline: Option<std::time::Instant>) -> bool {
        self.0.wait(join, deadline.is_some())
    }
    fn abort(&self, join: &S::Join) {
        self.0.abort(join)
    }
}

/// The borrowing hand-off on a model's executor: `timeout` gives up waiting
/// at once (then the task is aborted and waited for, as
/// `call_blocking_timeout` does).
pub fn scoped_block_on<'a, T, F, S>(spawner: &S, fut: F, timeout: bool) -> Result<T, crate::Error>
where
    F: std::future::Future<Output = T> + Send + 'a,
    T: Send + 'a,
    S: ModelSpawner,
{
    let deadline = timeout.then(std::time::Instant::now);
    crate::scoped::block_on_with(&Adapter(spawner), async move { Ok(fut.await) }, deadline)
}

/// A loop's inbox (bridge/inbox.rs), for the models of its hand-shake
/// between submitters and the loop's thread.
pub struct ModelInbox(crate::inbox::Inbox);

/// A job that runs a closure when the loop takes it, and reports its drop
/// (run or not) to `dropped`.
struct Call {
    f: Option<Box<dyn FnOnce() + Send>>,
    dropped: std::sync::Arc<dyn Fn() + Send + Sync>,
}

impl crate::inbox::Job for Call {
    fn poll_job(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<()> {
        if let Some(f) = self.f.take() {
            f();
        }
        std::task::Poll::Ready(())
    }
    fn is_cancelled(&self) -> bool {
        false
    }
    fn on_cancel_wake(&self, _: &std::task::Waker) {}
}

impl Drop for Call {
    fn drop(&mut self) {
        (self.dropped)();
    }
}

impl Default for ModelInbox {
    fn default() -> Self {
        ModelInbox(crate::inbox::Inbox::new())
    }
}

impl ModelInbox {
    /// Submits a job that runs `run` on the loop; `dropped` is called when
    /// the job is dropped, whether it ran or not.
    pub fn push(
        &self,
        run: impl FnOnce() + Send + 'static,
        dropped: std::sync::Arc<dyn Fn() + Send + Sync>,
    ) {
        self.0.push(crate::inbox::Queued::Boxed(Box::pin(Call {
            f: Some(Box::new(run)),
            dropped,
        })))
    }

    /// The loop's pre-park spin (under loom: one look, then stop accepting).
    pub fn spin(&self) {
        self.0.spin_before_park_with(|| false)
    }

    /// The loop's `block_on` future polled with `waker`: registers it (the
    /// submitters' wake-up) and runs what is queued.
    pub fn serve(&self, waker: &std::task::Waker) {
        self.0
            .poll_serve(&mut std::task::Context::from_waker(waker))
    }

    /// The loop stops: what is queued is dropped, later submissions too.
    pub fn close(&self) {
        self.0.close()
    }
}
