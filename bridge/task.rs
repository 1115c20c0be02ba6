//! The wrappers every future spawned through the crate runs in.
//!
//! [`Guarded`] catches the future's panic (so it comes back as a value) and,
//! in debug mode only, times each poll. [`Task`] adds the [`Promise`] that
//! publishes the outcome to a [`ConcurrentFuture`](crate::ConcurrentFuture).

use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use crate::error::{Error, PanicError};
use crate::future::{DropOutcome, Promise};
use crate::inbox::Job;
use crate::report::Origin;
use crate::shared::LoopShared;
use crate::stats::{LoopStats, TaskCount};
use crate::sync::plain::Arc;

pin_project_lite::pin_project! {
    /// A future whose panic becomes `Err(Panicked)`, timed in debug mode,
    /// counted on its loop when spawned through the crate.
    pub(crate) struct Guarded<F> {
        // Declared first, so dropped first: a task counts as cancelled before
        // its future's destructors run (what a test may watch for).
        count: Option<TaskCount>,
        #[pin]
        fut: F,
        origin: Option<Origin>,
        slow_poll: Duration,
        // The worker loop, whose driving thread each poll records.
        driver: Option<&'static LoopShared>,
        // The `tracing` span current where the work was submitted, entered
        // for each poll (`Span::none()`, a no-op, when there was none).
        span: tracing::Span,
    }
}

impl<F: Future> Guarded<F> {
    /// `origin` is `Some` only in debug mode. Call on the submitting thread:
    /// the span current here is the one the future runs in, wherever it is
    /// polled (no allocation when no span is active).
    pub(crate) fn new(fut: F, origin: Option<Origin>, slow_poll: Duration) -> Self {
        Guarded {
            count: None,
            fut,
            origin,
            slow_poll,
            driver: None,
            span: tracing::Span::current(),
        }
    }

    /// Records, at each poll, the polling thread as the one driving `worker`
    /// (the worker loop's core moves when a thread blocks inside it).
    pub(crate) fn driven_by(mut self, worker: &'static LoopShared) -> Self {
        self.driver = Some(worker);
        self
    }

    /// Counts this task on the loop `stats` belongs to (spawned now; completed,
    /// panicked or cancelled when it ends). No allocation: one `Arc` clone.
    pub(crate) fn counted(mut self, stats: &Arc<LoopStats>) -> Self {
        self.count = Some(TaskCount::new(stats));
        self
    }

    /// As [`counted`](Self::counted), for a loop that lives for the process
    /// (the worker loop): no reference count to update per task.
    pub(crate) fn counted_static(mut self, stats: &'static LoopStats) -> Self {
        self.count = Some(TaskCount::new_static(stats));
        self
    }
}

impl<F: Future> Future for Guarded<F> {
    type Output = Result<F::Output, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Some(worker) = this.driver {
            worker.note_driver();
        }
        let _span = this.span.enter();
        let fut = this.fut;
        let result = match this.origin {
            None => catch_unwind(AssertUnwindSafe(|| fut.poll(cx))),
            Some(origin) => {
                // Leaves out time the core spent away (a nested blocking call).
                let timer = crate::report::PollTimer::start();
                let r = catch_unwind(AssertUnwindSafe(|| fut.poll(cx)));
                let took = timer.took();
                if took > *this.slow_poll {
                    crate::report::slow_poll(origin, took, *this.slow_poll);
                }
                r
            }
        };
        if let (Some(count), Ok(Poll::Ready(_)) | Err(_)) = (this.count, &result) {
            count.finish(result.is_err());
        }
        match result {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(v)) => Poll::Ready(Ok(v)),
            Err(payload) => Poll::Ready(Err(Error::Panicked(PanicError::new(payload)))),
        }
    }
}

pin_project_lite::pin_project! {
    /// A spawned future and the promise it completes.
    pub(crate) struct Task<F> where F: Future {
        #[pin]
        fut: Guarded<F>,
        promise: Option<Promise<F::Output>>,
    }
}

impl<F: Future> Task<F> {
    pub(crate) fn new(fut: Guarded<F>, promise: Promise<F::Output>) -> Self {
        Task {
            fut,
            promise: Some(promise),
        }
    }
}

impl<F: Future> Future for Task<F> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.project();
        let Some(promise) = this.promise.as_mut() else {
            return Poll::Ready(());
        };
        // It started: from now on, being dropped means it was cancelled.
        promise.set_drop_outcome(DropOutcome::Cancelled);
        let outcome = match this.fut.poll(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(outcome) => outcome,
        };
        if let Some(p) = this.promise.take() {
            p.complete(outcome);
        }
        Poll::Ready(())
    }
}

impl<F> Job for Task<F>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    fn poll_job(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.poll(cx)
    }

    fn is_cancelled(&self) -> bool {
        self.promise.as_ref().is_some_and(Promise::is_cancelled)
    }

    fn on_cancel_wake(&self, waker: &Waker) {
        if let Some(p) = &self.promise {
            p.set_cancel_waker(waker);
        }
    }
}

pin_project_lite::pin_project! {
    /// A spawned future nobody waits for (`call_soon_threadsafe`): its panic,
    /// caught, is reported in debug mode, as for a dropped `ConcurrentFuture`.
    pub(crate) struct Detached<F> {
        #[pin]
        fut: Guarded<F>,
        origin: Option<Origin>,
    }
}

impl<F: Future> Detached<F> {
    pub(crate) fn new(fut: Guarded<F>, origin: Option<Origin>) -> Self {
        Detached { fut, origin }
    }
}

impl<F> Job for Detached<F>
where
    F: Future + Send + 'static,
{
    fn poll_job(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.project();
        match this.fut.poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Err(Error::Panicked(p))) => {
                crate::report::unread_panic(this.origin.as_ref(), p.message());
                Poll::Ready(())
            }
            Poll::Ready(_) => Poll::Ready(()),
        }
    }

    fn is_cancelled(&self) -> bool {
        false
    }

    fn on_cancel_wake(&self, _: &Waker) {}
}
