//! [`stream_in_executor`]: async code consumes a blocking iterator, which
//! runs as one job on an [`Executor`].
//!
//! The job calls `next()` and appends each item to a [`Channel`] as soon as
//! it has it (an iterator's `next()` may block for a long time, so items are
//! not held back to make batches); it waits, blocking its executor thread,
//! only while the buffer is full. [`ExecutorStream::poll_next`] pops from
//! its own local queue and, when that runs dry, takes every buffered item
//! with one lock; it registers its waker only when the buffer is empty, so a
//! consumer that keeps up is not woken per item.
//!
//! The job owns a [`Sender`] guard: if the executor drops the job without
//! running it (it was closed), the guard ends the channel with a message
//! saying so, and the consumer's next poll panics with it instead of
//! waiting forever or seeing an empty stream.

use std::fmt;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe, Location};
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::stream::{FusedStream, Stream};

use crate::executor::{run_in_executor, Executor};
use crate::park::YieldSpin;
use crate::stream_channel::{Channel, End, Gone, Receiver};
use crate::sync::Arc;

/// What `poll_next` panics with when the executor never ran the job.
const CLOSED: &str = "bridge::stream_in_executor: the executor is closed (Executor::close or \
                      Executor::shutdown was called), so the iterator never ran and the stream \
                      has no items; pass an executor that is open, or None for the default \
                      executor, which never closes";

/// What `poll_next` panics with when the job vanished mid-iteration.
const LOST: &str = "bridge::stream_in_executor: the executor dropped the job running the \
                    iterator before it finished; this is a bug in the executor, please report it";

/// The job's end of the channel. Dropped without an end recorded (the job
/// was dropped unrun, or vanished), it records one that says why.
struct Sender<T> {
    chan: Arc<Channel<T>>,
    started: bool,
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        // A no-op when the job recorded its end.
        self.chan
            .close(End::Lost(if self.started { LOST } else { CLOSED }));
    }
}

/// Drops `value` (an iterator) here; returns its destructor's panic, if any.
fn drop_caught<V>(value: V) -> Option<Box<dyn std::any::Any + Send>> {
    catch_unwind(AssertUnwindSafe(move || drop(value))).err()
}

/// Blocks this executor thread until the buffer has room.
fn wait_for_room<T>(
    chan: &Channel<T>,
    spin: &mut YieldSpin,
    caller: &'static Location<'static>,
) -> Result<(), Gone> {
    crate::wait::blocking_region(caller, || chan.wait_room(spin))
}

/// The job: runs the iterator inside `span`, handing each item over.
fn produce<I>(
    mut sender: Sender<I::Item>,
    iter: I,
    span: tracing::Span,
    caller: &'static Location<'static>,
) where
    I: IntoIterator,
{
    sender.started = true;
    let _enter = span.enter();
    let chan = &*sender.chan;
    if chan.receiver_gone() {
        drop_caught(iter);
        return;
    }
    let mut iter = match catch_unwind(AssertUnwindSafe(move || iter.into_iter())) {
        Ok(iter) => iter,
        Err(payload) => return chan.set_end(End::Panicked(payload)),
    };
    // Whether the buffer had room after the last item (a fresh one has).
    let mut room = true;
    let mut spin = YieldSpin::new();
    loop {
        if !room && wait_for_room(chan, &mut spin, caller).is_err() {
            break;
        }
        match catch_unwind(AssertUnwindSafe(|| iter.next())) {
            Ok(Some(item)) => match chan.send(item) {
                Ok(left) => room = left > 0,
                Err(item) => {
                    drop_caught(item);
                    break;
                }
            },
            Ok(None) => {
                // Its destructors run here, before the consumer learns the end.
                let end = match drop_caught(iter) {
                    None => End::Finished,
                    Some(payload) => End::Panicked(payload),
                };
                return chan.set_end(end);
            }
            Err(payload) => {
                drop_caught(iter);
                return chan.set_end(End::Panicked(payload));
            }
        }
    }
    // The consumer went away: stop here, on the executor thread.
    drop_caught(iter);
}

/// Consumes the blocking iterator `iter` from async code without blocking
/// the loop: the iterator runs on `executor` (`None`: the default executor,
/// as for [`run_in_executor`]) and its items come as a
/// [`Stream`](futures_core::Stream) (a file read line by line, a sync
/// database cursor).
///
/// `into_iter()`, every `next()` and the iterator's drop run on one executor
/// thread, inside the [`tracing`] span current here (with no span active,
/// nothing is allocated for it). The stream can be polled from any executor
/// (tokio, `futures`, a bridge loop) and from sync code through
/// [`iter_blocking`](crate::iter_blocking).
///
/// * Items come in order, none lost or duplicated.
/// * The iterator runs at most 64 items ahead of the consumer (32 buffered,
///   32 taken by the stream), then its thread waits. The stream takes all
///   buffered items with one lock, and is woken only when it found none.
/// * Dropping the stream stops the iteration at the next item: the job
///   calls `next()` at most once more, then drops the iterator on the
///   executor thread.
/// * A panic in the iterator (or in `into_iter`) resumes in the consumer at
///   `poll_next`, after the items produced before it; the stream is fused
///   after that.
///
/// The job holds one of the executor's threads for as long as the iterator
/// runs (or waits for room): size a dedicated [`Executor`] for many
/// long-lived streams. [`Executor::shutdown`] waits for the job, so it
/// waits until the stream is consumed or dropped. For the same reason, do
/// not block on the stream (with [`iter_blocking`](crate::iter_blocking) or
/// `futures::executor::block_on`) inside a job of a
/// [`single_thread`](Executor::single_thread) executor that also runs its
/// iterator: the iterator's job waits behind the one that blocks.
///
/// # Panics
///
/// On a closed executor ([`Executor::close`] or [`Executor::shutdown`]
/// called before this), the iterator never runs; the stream's first
/// `poll_next` panics with a message saying so (never a hang, never a
/// silently empty stream), and the stream is fused after that. The
/// iterator is dropped on this thread, as there is no executor thread to
/// drop it on.
///
/// # Examples
///
/// ```
/// use futures::StreamExt;
///
/// let lines = bridge::run(async {
///     // A blocking iterator, e.g. `BufReader::new(file).lines()`.
///     let cursor = (1..=3).map(|i| format!("row {i}"));
///     bridge::stream_in_executor(None, cursor).collect::<Vec<_>>().await
/// });
/// assert_eq!(lines.unwrap(), ["row 1", "row 2", "row 3"]);
/// ```
///
/// On a closed executor the stream panics when polled:
///
/// ```
/// use futures::StreamExt;
///
/// let pool = bridge::Executor::new(1);
/// pool.close();
/// let mut s = bridge::stream_in_executor(Some(&pool), 0..3);
/// let r = bridge::run(async move { s.next().await });
/// let Err(bridge::Error::Panicked(p)) = r else { unreachable!() };
/// assert!(p.message().contains("executor is closed"));
/// ```
#[track_caller]
pub fn stream_in_executor<I>(executor: Option<&Executor>, iter: I) -> ExecutorStream<I::Item>
where
    I: IntoIterator + Send + 'static,
    I::IntoIter: Send + 'static,
    I::Item: Send + 'static,
{
    let chan = Arc::new(Channel::new());
    let job = run_in_executor(executor, job(chan.clone(), iter, Location::caller()));
    // The job records the end without waking the consumer; this wakes it
    // once the job's outcome is published and its thread is about to count
    // as idle again, so a consumer that starts the next stream at once
    // reuses that thread (the pool waits briefly for a finishing thread)
    // instead of making the pool grow one.
    let end = chan.clone();
    job.add_done_callback(move || end.wake_receiver());
    // Detached: the channel carries the outcome, and a job that is dropped
    // unrun says so through the sender's drop.
    drop(job);
    ExecutorStream::new(Receiver::new(chan))
}

/// The job that runs `iter` and hands its items to `chan`, inside the span
/// current here (what `stream_in_executor` submits; the loom models run it
/// through `loom_api`). Dropped unrun, it ends the channel saying so.
pub(crate) fn job<I>(
    chan: Arc<Channel<I::Item>>,
    iter: I,
    caller: &'static Location<'static>,
) -> impl FnOnce() + Send
where
    I: IntoIterator + Send,
    I::Item: Send,
{
    let sender = Sender {
        chan,
        started: false,
    };
    let span = tracing::Span::current();
    move || produce(sender, iter, span, caller)
}

/// The items of a blocking iterator running on an executor, as a
/// [`Stream`](futures_core::Stream); from [`stream_in_executor`].
///
/// `Send` (when the items are) and `Unpin`; a
/// [`FusedStream`](futures_core::stream::FusedStream).
///
/// # Panics
///
/// `poll_next` resumes the iterator's panic, and panics with a message
/// naming the closed executor if the iterator never ran (see
/// [`stream_in_executor`]); after either, the stream yields `None`.
///
/// # Cancel safety
///
/// `poll_next` is cancel safe: an item is handed out only by the poll that
/// returns it, so dropping a `next()` future (in `select!`, or on a timeout)
/// loses nothing.
///
/// # Examples
///
/// ```
/// use futures::StreamExt;
///
/// let pool = bridge::Executor::new(2);
/// let mut s = bridge::stream_in_executor(Some(&pool), vec![1, 2, 3]);
/// let sum = futures::executor::block_on(async {
///     let mut sum = 0;
///     while let Some(x) = s.next().await {
///         sum += x;
///     }
///     sum
/// });
/// assert_eq!(sum, 6);
/// ```
#[must_use = "streams do nothing unless polled; dropping it stops the iterator"]
pub struct ExecutorStream<T> {
    /// Items taken from the channel and not yet returned; dropping it tells
    /// the job the consumer is gone.
    rx: Receiver<T>,
    /// How long to poll again, yielding, before sleeping when nothing is
    /// buffered.
    spin: YieldSpin,
}

impl<T> ExecutorStream<T> {
    /// The stream of the items `rx` receives.
    pub(crate) fn new(rx: Receiver<T>) -> ExecutorStream<T> {
        ExecutorStream {
            rx,
            spin: YieldSpin::new(),
        }
    }
}

// The items are never pinned: they sit in a queue and are moved out.
impl<T> Unpin for ExecutorStream<T> {}

impl<T> Stream for ExecutorStream<T> {
    type Item = T;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let this = self.get_mut();
        if let Some(item) = this.rx.pop() {
            return Poll::Ready(Some(item));
        }
        if this.rx.is_done() {
            return Poll::Ready(None);
        }
        // Nothing buffered: the job is in `next()` or about to hand an item
        // over. While the spin lasts, yield this thread and poll again (a
        // sleep and a wake-up on each side per batch cost more than the
        // batch); then register the waker and wait.
        let taken = match this.rx.poll_take(None) {
            Poll::Pending if this.spin.keep_yielding() => {
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            Poll::Pending => match this.rx.poll_take(Some(cx.waker())) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(taken) => taken,
            },
            Poll::Ready(taken) => taken,
        };
        this.spin.waited();
        let Some(end) = taken else {
            return Poll::Ready(this.rx.pop());
        };
        match end {
            End::Finished => Poll::Ready(None),
            End::Panicked(payload) => resume_unwind(payload),
            End::Lost(message) => panic!("{message}"),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.rx.buffered();
        (n, self.rx.is_done().then_some(n))
    }
}

impl<T> FusedStream for ExecutorStream<T> {
    fn is_terminated(&self) -> bool {
        self.rx.is_done() && self.rx.buffered() == 0
    }
}

impl<T> fmt::Debug for ExecutorStream<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExecutorStream")
            .field("buffered", &self.rx.buffered())
            .field("finished", &self.rx.is_done())
            .finish()
    }
}
