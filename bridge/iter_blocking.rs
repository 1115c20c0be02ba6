//! [`iter_blocking`]: sync code iterates an async stream, which is polled on
//! the worker loop.
//!
//! One task on the worker loop (the [`Producer`]) polls the stream and hands
//! its items over through a [`Channel`] in batches: it polls as many items as
//! the buffer has room for, or until the stream returns `Pending`, then
//! appends them all under one lock. [`BlockingIter::next`] pops from its own
//! local queue and, when that runs dry, takes the whole buffer at once; it
//! blocks (spin, then park, through the crate's blocking rules) only when
//! the buffer is empty.
//!
//! Dropping the iterator marks the channel's receiver gone and aborts the
//! task, so the stream is dropped on the worker loop at its next turn even
//! if it is waiting on something that never comes.

use std::fmt;
use std::future::{poll_fn, Future};
use std::iter::FusedIterator;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe, Location};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_core::Stream;

use crate::future::ConcurrentFuture;
use crate::park;
use crate::stream_channel::{Channel, End, Receiver, READ_AHEAD};
use crate::sync::Arc;

/// The most items the producer polls in one turn of the worker loop before
/// it yields, so that a stream that is always ready does not keep the
/// worker loop's other tasks waiting.
const ITEMS_PER_TURN: usize = 4 * READ_AHEAD;

/// What `next()` says when the producer task vanished without ending.
const LOST: &str = "bridge::iter_blocking: the task polling the stream on the worker loop was \
                    dropped before the stream ended (the worker loop was torn down, as in a \
                    forked child); make a new iterator with bridge::iter_blocking";

pin_project_lite::pin_project! {
    /// The task on the worker loop: polls the stream, inside the span that
    /// was current at `iter_blocking`, and hands its items to the channel.
    struct Producer<S, T> {
        #[pin]
        stream: Option<S>,
        chan: Arc<Channel<T>>,
        // Items polled this turn and not yet appended; never more than the
        // room the channel reported.
        staging: Vec<T>,
        // The room the channel reported after the last append: the room
        // only grows until the next append, so a turn that starts with room
        // left needs no lock to learn it.
        room: usize,
        span: tracing::Span,
    }

    impl<S, T> PinnedDrop for Producer<S, T> {
        fn drop(this: Pin<&mut Self>) {
            let mut this = this.project();
            if this.stream.is_some() {
                // Aborted (the iterator went away) or dropped by its loop: the
                // stream's destructors run here, on the worker loop, in its span.
                let _enter = this.span.enter();
                this.stream.set(None);
            }
            this.chan.close(End::Lost(LOST));
        }
    }
}

impl<S, T> Future for Producer<S, T>
where
    S: Stream<Item = T>,
{
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut this = self.project();
        let _enter = this.span.enter();
        let mut budget = ITEMS_PER_TURN;
        let mut room = *this.room;
        loop {
            if room == 0 {
                room = match this.chan.poll_room(Some(cx.waker())) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Ok(room)) => room,
                    Poll::Ready(Err(_gone)) => {
                        this.stream.set(None);
                        return Poll::Ready(());
                    }
                };
            }
            let Some(mut stream) = this.stream.as_mut().as_pin_mut() else {
                return Poll::Ready(());
            };
            // Poll up to `room` items: one catch_unwind for the whole batch,
            // and the items polled before a panic are still handed over.
            let staging = &mut *this.staging;
            let polled = catch_unwind(AssertUnwindSafe(|| {
                while staging.len() < room {
                    match stream.as_mut().poll_next(cx) {
                        Poll::Ready(Some(item)) => staging.push(item),
                        Poll::Ready(None) => return Some(End::Finished),
                        Poll::Pending => return None,
                    }
                }
                None
            }));
            let end = match polled {
                Ok(end) => end,
                Err(payload) => Some(End::Panicked(payload)),
            };
            let pushed = this.staging.len();
            let full = pushed == room;
            let sent = if pushed > 0 {
                this.chan.send_batch(this.staging)
            } else {
                Ok(room)
            };
            match sent {
                Ok(left) => {
                    room = left;
                    *this.room = left;
                }
                Err(_gone) => {
                    this.staging.clear();
                    this.stream.set(None);
                    return Poll::Ready(());
                }
            }
            if let Some(end) = end {
                // Its destructors run here, before the consumer learns the end.
                let dropped = catch_unwind(AssertUnwindSafe(|| this.stream.set(None)));
                let end = match (end, dropped) {
                    (End::Finished, Err(payload)) => End::Panicked(payload),
                    (end, _) => end,
                };
                this.chan.close(end);
                return Poll::Ready(());
            }
            if !full {
                // The stream returned `Pending` and will wake this task.
                return Poll::Pending;
            }
            budget = budget.saturating_sub(pushed);
            if budget == 0 {
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
        }
    }
}

/// The task that polls `stream` on the worker loop and hands its items to
/// `chan`, inside the span current here (what `iter_blocking` spawns; the
/// loom models poll it through `loom_api`).
pub(crate) fn producer<S>(stream: S, chan: Arc<Channel<S::Item>>) -> impl Future<Output = ()>
where
    S: Stream,
{
    Producer {
        stream: Some(stream),
        chan,
        staging: Vec::with_capacity(READ_AHEAD),
        room: READ_AHEAD,
        span: tracing::Span::current(),
    }
}

/// How many buffered items end the spin of a `next()` at once: a quarter
/// of the read-ahead (at least one: under loom the read-ahead is 2).
const TAKE_AT: usize = if READ_AHEAD >= 4 { READ_AHEAD / 4 } else { 1 };

/// How long the spin of a `next()` lets items gather after the first one
/// arrived, unless [`TAKE_AT`] are there first: about the time a stream
/// that yields to the loop before each item takes for four or five. Taking
/// each item the moment it arrives costs the producer a contended lock per
/// item; with this, `iter_blocking` over such a stream went from 1.1-1.2x
/// the hand-written pattern's time to 0.85-0.9x (`cargo bench --bench streams`,
/// `iter_blocking/yielding`), and a lone item waits at most this long more.
const GATHER: Duration = Duration::from_micros(3);

/// The spin of a `next()` that found nothing buffered: it watches the
/// channel's hint (no lock, and no waker registered, so the producer does
/// not wake this thread per item while it spins) and takes once [`TAKE_AT`]
/// items or the end are there, or the first item has waited [`GATHER`].
/// `Pending`: nothing came within the spin; register a waker and park.
fn spin_for_batch<T>(rx: &mut Receiver<T>) -> Poll<Option<End>> {
    let mut first_seen: Option<Instant> = None;
    park::spin_until(|| match rx.ready() {
        0 => false,
        n if n >= TAKE_AT => true,
        _ => first_seen.get_or_insert_with(Instant::now).elapsed() >= GATHER,
    });
    if first_seen.is_none() && rx.ready() == 0 {
        return Poll::Pending;
    }
    rx.poll_take(None)
}

/// Takes the next batch into `rx` (`None`), or the end, blocking this
/// thread while the channel is empty: a look, the spin on the hint
/// ([`spin_for_batch`]), then a park. `next()`'s slow path; the loom models
/// drive it through `loom_api`.
#[inline]
pub(crate) fn take_blocking<T>(
    rx: &mut Receiver<T>,
    caller: &'static Location<'static>,
) -> Option<End> {
    match rx.poll_take(None) {
        Poll::Ready(taken) => taken,
        Poll::Pending => crate::wait::blocking_region(caller, || match spin_for_batch(rx) {
            Poll::Ready(taken) => taken,
            Poll::Pending => park::block_on(poll_fn(|cx| rx.poll_take(Some(cx.waker())))),
        }),
    }
}

/// Iterates the async `stream` from sync code: the stream is polled on the
/// [worker loop](crate::worker_loop) and each [`next`](Iterator::next)
/// blocks this thread for the next item (a paginated API, a database cursor,
/// a response body).
///
/// Like [`call_blocking`](crate::call_blocking), it works from any thread
/// and in any nesting: a plain thread, inside a tokio runtime (current- or
/// multi-thread), inside `futures::executor::block_on`, and inside work on
/// the worker loop itself; a `next()` that must wait on a tokio multi-thread
/// runtime's thread (the worker loop's included) first moves the runtime's
/// core to another thread, so that runtime keeps running.
///
/// * Items come in order, none lost or duplicated.
/// * The worker reads ahead by at most 64 items (32 buffered, 32 handed to
///   the iterator), then waits for the consumer. A sync consumer that keeps
///   up takes the buffered items in batches: one lock per batch and no
///   wake-up at all.
/// * Dropping the iterator drops the stream promptly on the worker loop (its
///   destructors run there), even if it is waiting for something; items
///   already handed over are dropped with the iterator.
/// * A panic in the stream resumes in the caller at `next()` (after the
///   items polled before it); the iterator is fused after that.
/// * The [`tracing`] span current here is the stream's span for its whole
///   life: every poll and its drop run inside it. With no span active
///   nothing is allocated for it.
///
/// The stream is polled from the first call on, so the worker can read
/// ahead before the first `next()`.
///
/// Build the stream lazily (most adapters are: `unfold`, `then`, an
/// `async` block): a tokio timer or socket created *before* this call inside
/// a current-thread runtime belongs to that runtime, which `next()` then
/// blocks.
///
/// # Panics
///
/// If the worker loop cannot be started at all (out of threads or file
/// descriptors), like [`call_blocking`](crate::call_blocking).
///
/// # Examples
///
/// ```
/// use futures::stream::{self, StreamExt};
///
/// // A "paginated API": pages fetched with async I/O, read from sync code.
/// let pages = stream::iter(1..=3).then(|page| async move {
///     tokio::time::sleep(std::time::Duration::from_millis(1)).await;
///     format!("page {page}")
/// });
/// let all: Vec<String> = bridge::iter_blocking(pages).collect();
/// assert_eq!(all, ["page 1", "page 2", "page 3"]);
///
/// // Also inside an async context, where a nested `block_on` would panic.
/// let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
/// let n = rt.block_on(async { bridge::iter_blocking(stream::iter(0..100)).count() });
/// assert_eq!(n, 100);
/// ```
#[track_caller]
pub fn iter_blocking<S>(stream: S) -> BlockingIter<S::Item>
where
    S: Stream + Send + 'static,
    S::Item: Send + 'static,
{
    let chan = Arc::new(Channel::new());
    let producer = producer(stream, chan.clone());
    let worker = match crate::worker::try_worker_loop() {
        Ok(w) => w,
        Err(e) => panic!("bridge::iter_blocking: the worker loop could not be started: {e}"),
    };
    let task = worker.spawn(producer);
    BlockingIter {
        rx: Receiver::new(chan),
        task: Some(task),
        caller: Location::caller(),
    }
}

/// A blocking iterator over an async stream polled on the worker loop; from
/// [`iter_blocking`].
///
/// `Send` when the items are, so it can move to another thread; fused (after
/// the end, or after resuming the stream's panic, `next()` returns `None`).
///
/// # Examples
///
/// ```
/// let mut it = bridge::iter_blocking(futures::stream::iter(["a", "b"]));
/// assert_eq!(it.next(), Some("a"));
/// let rest = std::thread::spawn(move || it.collect::<Vec<_>>()).join().unwrap();
/// assert_eq!(rest, ["b"]);
/// ```
#[must_use = "the stream is polled on the worker loop until the iterator is dropped; iterate it"]
pub struct BlockingIter<T> {
    /// Items taken from the channel and not yet returned.
    rx: Receiver<T>,
    /// The producer task; `None` once the end (or the panic) was handed out.
    task: Option<ConcurrentFuture<()>>,
    /// Where `iter_blocking` was called, for debug reports of long waits.
    caller: &'static Location<'static>,
}

impl<T> BlockingIter<T> {
    /// Takes the next batch from the channel, blocking if it is empty.
    fn refill(&mut self) -> Option<T> {
        self.task.as_ref()?;
        let end = match take_blocking(&mut self.rx, self.caller) {
            None => return self.rx.pop(),
            Some(end) => end,
        };
        self.task = None;
        match end {
            End::Finished => None,
            End::Panicked(payload) => resume_unwind(payload),
            End::Lost(message) => panic!("{message}"),
        }
    }
}

impl<T> Iterator for BlockingIter<T> {
    type Item = T;

    /// The next item of the stream, blocking this thread until it comes.
    ///
    /// # Panics
    ///
    /// Resumes the stream's panic (once; `None` after it).
    fn next(&mut self) -> Option<T> {
        match self.rx.pop() {
            Some(item) => Some(item),
            None => self.refill(),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.rx.buffered();
        match self.task {
            Some(_) => (n, None),
            None => (n, Some(n)),
        }
    }
}

impl<T> FusedIterator for BlockingIter<T> {}

impl<T> Drop for BlockingIter<T> {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            // The receiver (dropped after this) marks the channel's
            // receiver gone. Cancelling stops the task at its next turn on the worker loop even if the
            // stream is waiting on something that never comes; the stream is
            // dropped there.
            task.cancel();
        }
    }
}

impl<T> fmt::Debug for BlockingIter<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BlockingIter")
            .field("buffered", &self.rx.buffered())
            .field("finished", &self.task.is_none())
            .finish()
    }
}
