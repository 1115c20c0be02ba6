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

/// The read-ahead of a stream channel under loom (see
/// bridge/stream_channel.rs: 2, so that a few items fill the buffer).
pub const STREAM_READ_AHEAD: usize = crate::stream_channel::READ_AHEAD;

/// How a stream channel's sender ended, as its receiver learns it (a panic's
/// payload is dropped).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelEnd {
    /// The stream or iterator returned `None`.
    Finished,
    /// It panicked.
    Panicked,
    /// The sender went away without an end of its own.
    Lost,
}

impl ModelEnd {
    fn from_end(end: crate::stream_channel::End) -> ModelEnd {
        match end {
            crate::stream_channel::End::Finished => ModelEnd::Finished,
            crate::stream_channel::End::Panicked(_) => ModelEnd::Panicked,
            crate::stream_channel::End::Lost(_) => ModelEnd::Lost,
        }
    }

    fn into_end(self) -> crate::stream_channel::End {
        match self {
            ModelEnd::Finished => crate::stream_channel::End::Finished,
            ModelEnd::Panicked => crate::stream_channel::End::Panicked(Box::new("model panic")),
            ModelEnd::Lost => crate::stream_channel::End::Lost("model: sender lost"),
        }
    }
}

/// The receiver of a stream channel went away: stop producing.
#[derive(Debug, PartialEq, Eq)]
pub struct ReceiverGone;

/// The sending half of a stream channel (bridge/stream_channel.rs): its raw
/// operations, and the two real senders over it (the `stream_in_executor`
/// job and the `iter_blocking` task).
pub struct ModelChannel<T>(crate::sync::Arc<crate::stream_channel::Channel<T>>);

impl<T> Clone for ModelChannel<T> {
    fn clone(&self) -> Self {
        ModelChannel(self.0.clone())
    }
}

/// A new stream channel: its sending half and its receiver.
pub fn stream_channel<T>() -> (ModelChannel<T>, ModelReceiver<T>) {
    let chan = crate::sync::Arc::new(crate::stream_channel::Channel::new());
    let rx = crate::stream_channel::Receiver::new(chan.clone());
    (ModelChannel(chan), ModelReceiver(rx))
}

fn gone<T>(r: Result<T, crate::stream_channel::Gone>) -> Result<T, ReceiverGone> {
    r.map_err(|crate::stream_channel::Gone| ReceiverGone)
}

impl<T> ModelChannel<T> {
    /// The async sender's look at its room: `Ready(Ok(n))`, `n > 0`, or
    /// `Err` once the receiver is gone; no room registers `waker` (if any)
    /// and is `Pending` (without a waker: `Ready(Ok(0))`).
    pub fn poll_room(
        &self,
        waker: Option<&std::task::Waker>,
    ) -> std::task::Poll<Result<usize, ReceiverGone>> {
        self.0.poll_room(waker).map(gone)
    }

    /// The sync sender's wait for room (its yield-spin is a single look
    /// under loom, then it parks on the condvar).
    pub fn wait_room(&self) -> Result<(), ReceiverGone> {
        gone(self.0.wait_room(&mut crate::park::YieldSpin::new()))
    }

    /// Appends one item (there must be room): the room left, or the item
    /// back if the receiver is gone.
    pub fn send(&self, item: T) -> Result<usize, T> {
        self.0.send(item)
    }

    /// Appends every item of `items` (no more than the room): the room
    /// left, or `Err` with `items` left to the caller.
    pub fn send_batch(&self, items: &mut Vec<T>) -> Result<usize, ReceiverGone> {
        gone(self.0.send_batch(items))
    }

    /// Records the end (the first wins) and wakes a waiting receiver.
    pub fn close(&self, end: ModelEnd) {
        self.0.close(end.into_end())
    }

    /// Records the end (the first wins) without waking the receiver.
    pub fn set_end(&self, end: ModelEnd) {
        self.0.set_end(end.into_end())
    }

    /// Wakes a waiting receiver (after [`set_end`](Self::set_end)).
    pub fn wake_receiver(&self) {
        self.0.wake_receiver()
    }

    /// Whether the receiver went away.
    pub fn receiver_gone(&self) -> bool {
        self.0.receiver_gone()
    }

    /// How many times a sync sender waited on the room condvar so far.
    pub fn sender_parks(&self) -> usize {
        self.0.waits(crate::stream_channel::SENDER)
    }

    /// How many times the receiver registered its waker (found nothing
    /// and waited) so far.
    pub fn receiver_waits(&self) -> usize {
        self.0.waits(crate::stream_channel::RECEIVER)
    }
}

impl<T: Send> ModelChannel<T> {
    /// Runs the `stream_in_executor` job over `iter` on this thread (wait
    /// for room, send each item, record the end), then does what its
    /// done-callback does (wakes the receiver).
    #[track_caller]
    pub fn run_executor_job<I>(self, iter: I)
    where
        I: IntoIterator<Item = T> + Send,
    {
        crate::executor_stream::job(self.0.clone(), iter, std::panic::Location::caller())();
        self.0.wake_receiver();
    }

    /// The `iter_blocking` task over a stream that yields `items`, each
    /// ready at once, then ends.
    pub fn producer<I>(self, items: I) -> ModelProducer
    where
        I: IntoIterator<Item = T>,
        I::IntoIter: Unpin + Send + 'static,
        T: 'static,
    {
        let task = crate::iter_blocking::producer(ReadyStream(items.into_iter()), self.0);
        ModelProducer(Box::pin(task))
    }
}

/// A stream whose every item is ready at once.
struct ReadyStream<I>(I);

impl<I: Iterator + Unpin> futures_core::Stream for ReadyStream<I> {
    type Item = I::Item;

    fn poll_next(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<I::Item>> {
        std::task::Poll::Ready(self.get_mut().0.next())
    }
}

/// The `iter_blocking` task (bridge/iter_blocking.rs), for a model to poll
/// as the worker loop would.
pub struct ModelProducer(std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>);

impl ModelProducer {
    /// Polls the task once with `waker`.
    pub fn poll(&mut self, waker: &std::task::Waker) -> std::task::Poll<()> {
        self.0
            .as_mut()
            .poll(&mut std::task::Context::from_waker(waker))
    }
}

/// The receiving half of a stream channel; dropping it tells the sender.
pub struct ModelReceiver<T>(crate::stream_channel::Receiver<T>);

impl<T> ModelReceiver<T> {
    /// The next item already taken, if any (releases half a batch once half
    /// of it is consumed).
    pub fn pop(&mut self) -> Option<T> {
        self.0.pop()
    }

    /// Takes the next batch (when [`pop`](Self::pop) returned `None`):
    /// `Ready(None)` items taken, `Ready(Some(end))` the end; nothing
    /// buffered registers `waker` (if any) and is `Pending`.
    pub fn poll_take(
        &mut self,
        waker: Option<&std::task::Waker>,
    ) -> std::task::Poll<Option<ModelEnd>> {
        self.0.poll_take(waker).map(|t| t.map(ModelEnd::from_end))
    }

    /// The lock-free hint a spinning receiver watches.
    pub fn ready(&self) -> usize {
        self.0.ready()
    }

    /// Items taken and not yet popped.
    pub fn buffered(&self) -> usize {
        self.0.buffered()
    }

    /// `BlockingIter::next`: the next item, or the end, blocking this
    /// thread (a look, the spin on the hint, then `park::block_on`) while
    /// nothing is buffered.
    #[track_caller]
    pub fn next_blocking(&mut self) -> Result<T, ModelEnd> {
        if let Some(item) = self.0.pop() {
            return Ok(item);
        }
        let caller = std::panic::Location::caller();
        match crate::iter_blocking::take_blocking(&mut self.0, caller) {
            None => Ok(self.0.pop().expect("a take that returns no end took items")),
            Some(end) => Err(ModelEnd::from_end(end)),
        }
    }

    /// The `stream_in_executor` consumer (`ExecutorStream`) over this
    /// receiver.
    pub fn into_stream(self) -> ModelStream<T> {
        ModelStream(crate::executor_stream::ExecutorStream::new(self.0))
    }
}

/// The `stream_in_executor` consumer (bridge/executor_stream.rs), for a
/// model to poll as a task would.
pub struct ModelStream<T>(crate::ExecutorStream<T>);

impl<T> ModelStream<T> {
    /// `poll_next` with `waker`.
    pub fn poll_next(&mut self, waker: &std::task::Waker) -> std::task::Poll<Option<T>> {
        futures_core::Stream::poll_next(
            std::pin::Pin::new(&mut self.0),
            &mut std::task::Context::from_waker(waker),
        )
    }
}
