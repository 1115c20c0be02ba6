//! The borrowing hand-off: run a future that borrows from the caller's stack
//! on a loop's thread, and block until it has finished *and been dropped*.
//!
//! `tokio::spawn` wants `'static` futures because a spawned task may outlive
//! the caller. Here the caller blocks until the task is over, so the future
//! may borrow, as `std::thread::scope` lets a thread borrow. The future stays
//! in the caller's stack frame ([`Frame`]); the tokio task ([`ScopedTask`])
//! holds only a pointer to it, with the lifetime erased. That erasure is the
//! one `unsafe` step, and it is sound because of one rule:
//!
//! > The caller's frame outlives every access the task makes to it.
//!
//! The task touches the frame only inside its `poll` and its `Drop`, and it
//! drops the borrowed future (in place, on the loop's thread) before its
//! `poll` returns `Ready` or before its `Drop` returns. The caller leaves its
//! frame only after the task's `JoinHandle` has resolved, and tokio resolves
//! a join handle only after the task's `poll` returned `Ready`, or after the
//! task itself was dropped (cancelled by `abort`, or by its runtime shutting
//! down). Every exit path of the caller waits for that:
//!
//! | exit path                                  | what the caller does before leaving        |
//! |--------------------------------------------|---------------------------------------------|
//! | the future finishes (or panics)            | waits for the join handle                   |
//! | a deadline passes (`call_blocking_timeout`)| aborts the task, waits for the join handle  |
//! | the caller's own wait unwinds              | [`Finish`]'s `Drop` aborts and waits        |
//! | the loop closes with the task queued       | its runtime drops the task: join resolves   |
//!
//! If a runtime leaked a task forever (never ran it, never dropped it), the
//! caller would block forever: a hang, never a use-after-free. The crate
//! never submits to a loop whose threads a `fork` left behind (see
//! [`crate::fork`]); the worker loop is never shut down.
//!
//! The happens-before edge for the output goes through the join handle: the
//! task writes the output into the frame before `poll` returns `Ready`, and
//! tokio publishes completion to the join handle with release/acquire.
//!
//! A hand-off costs what a `'static` one does: one task allocation (the
//! task is two words and a flag; the future itself is not copied).

use std::future::Future;
use std::mem::ManuallyDrop;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::ptr::NonNull;
use std::task::{Context, Poll};
use std::time::Instant;

use crate::error::{Error, PanicError};
use crate::sync::UnsafeCell;

/// The caller's half: the borrowed future and the slot for its outcome, in
/// the caller's stack frame.
struct Frame<F: Future> {
    /// Dropped in place by the task, exactly once ([`Run::poll_frame`] or
    /// [`Run::abandon`]); never moved after the task is spawned.
    fut: ManuallyDrop<F>,
    /// Written by the task (on the loop's thread) once, read by the caller
    /// once the task is over: a (loom-checked) cell, so the models see any
    /// read that could race the write.
    out: UnsafeCell<Option<F::Output>>,
    started: bool,
}

/// What the task does with a frame, with the future's type erased.
trait Run {
    /// Polls the future once; on `Ready` (or a panic) stores the outcome and
    /// drops the future, then returns `Ready`.
    fn poll_frame(&mut self, cx: &mut Context<'_>) -> Poll<()>;
    /// Drops the unfinished future in place and stores `Cancelled` (it had
    /// started) or `LoopClosed` (it never ran).
    fn abandon(&mut self);
}

#[allow(unsafe_code)]
impl<T, F> Run for Frame<F>
where
    F: Future<Output = Result<T, Error>>,
{
    fn poll_frame(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        self.started = true;
        // SAFETY: the frame is not moved while the task lives (it sits in
        // `block_on_with`'s stack frame, which waits for the task), and `fut` is
        // dropped only by this method or `abandon`, each of which ends the
        // task's access; so `fut` is pinned for as long as it is polled.
        let fut = unsafe { Pin::new_unchecked(&mut *self.fut) };
        let outcome = match catch_unwind(AssertUnwindSafe(|| fut.poll(cx))) {
            Ok(Poll::Pending) => return Poll::Pending,
            Ok(Poll::Ready(outcome)) => outcome,
            Err(payload) => Err(Error::Panicked(PanicError::new(payload))),
        };
        // A `Drop` that panics after `Ready` is a panic of the work: the
        // caller hears of it rather than of a vague cancellation.
        let outcome = match self.drop_future() {
            Ok(()) => outcome,
            Err(e) => Err(e),
        };
        self.store(outcome);
        Poll::Ready(())
    }

    fn abandon(&mut self) {
        let why = if self.started {
            Error::Cancelled
        } else {
            Error::LoopClosed
        };
        let outcome = match self.drop_future() {
            Ok(()) => Err(why),
            Err(e) => Err(e),
        };
        self.store(outcome);
    }
}

#[allow(unsafe_code)]
impl<F: Future> Frame<F> {
    fn store(&mut self, outcome: F::Output) {
        // SAFETY: only the task writes, once, while the caller waits and does
        // not read (it reads after the task is over: `take`).
        self.out.with_mut(|slot| unsafe { *slot = Some(outcome) });
    }

    /// The outcome, once the task is over.
    fn take(&mut self) -> Option<F::Output> {
        // SAFETY: the task is over (its join resolved, which happens-after its
        // last access), so this thread is the only one touching the frame.
        self.out.with_mut(|slot| unsafe { (*slot).take() })
    }

    /// Drops the future in place, catching a panic of its `Drop`.
    fn drop_future(&mut self) -> Result<(), Error> {
        // SAFETY: called once per frame (the task's `live` flag guards both
        // callers), so `fut` is dropped exactly once and never used after.
        catch_unwind(AssertUnwindSafe(|| unsafe {
            ManuallyDrop::drop(&mut self.fut)
        }))
        .map_err(|payload| Error::Panicked(PanicError::new(payload)))
    }
}

/// The task: a pointer to the caller's frame, its lifetime erased. Polled
/// and dropped by one thread at a time (a runtime's guarantee for a task).
pub(crate) struct ScopedTask {
    frame: NonNull<dyn Run + Send>,
    /// Whether the frame's future is still alive (not yet finished or
    /// abandoned). Lives in the task, not the frame: read after the frame
    /// may be gone.
    live: bool,
}

#[allow(unsafe_code)]
// SAFETY: the frame is `Send` (checked where the pointer is made, in
// `block_on_with`), and the task is its only user until the caller reads it back.
unsafe impl Send for ScopedTask {}

#[allow(unsafe_code)]
impl Future for ScopedTask {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if !self.live {
            return Poll::Ready(());
        }
        // SAFETY: `live` means the caller is still blocked in `block_on_with`
        // (it leaves only after this task is done), so the frame is alive
        // and nobody else touches it.
        let poll = unsafe { self.frame.as_mut() }.poll_frame(cx);
        if poll.is_ready() {
            self.live = false;
        }
        poll
    }
}

#[allow(unsafe_code)]
impl Drop for ScopedTask {
    fn drop(&mut self) {
        if self.live {
            self.live = false;
            // SAFETY: as in `poll`: the caller is still blocked, waiting for
            // this drop to resolve its join handle.
            unsafe { self.frame.as_mut() }.abandon();
        }
    }
}

/// Where a [`ScopedTask`] runs, and how its caller waits for it: a tokio
/// runtime ([`Tokio`]), or under `bridge_loom` the models' stand-in.
pub(crate) trait Spawner {
    /// Resolves once the task is over: polled to `Ready`, or dropped.
    type Join;
    /// Hands the task over. It must be polled or dropped eventually.
    fn spawn(&self, task: ScopedTask) -> Self::Join;
    /// Blocks until the task is over (`true`) or `deadline` passes (`false`).
    fn wait(&self, join: &mut Self::Join, deadline: Option<Instant>) -> bool;
    /// Asks for the task to be dropped at its next scheduling point.
    fn abort(&self, join: &Self::Join);
}

/// Waits, on every exit path, until the task is over. Its `Drop` covers the
/// paths where the caller would otherwise leave early (a deadline, an unwind).
struct Finish<'s, S: Spawner> {
    spawner: &'s S,
    join: S::Join,
    done: bool,
}

impl<S: Spawner> Finish<'_, S> {
    /// Blocks until the task is over (or `deadline`); returns whether it is.
    fn wait(&mut self, deadline: Option<Instant>) -> bool {
        self.done = self.spawner.wait(&mut self.join, deadline);
        self.done
    }

    /// Stops the task (it drops the future at its next scheduling point) and
    /// waits until it is over.
    fn abort_and_wait(&mut self) {
        self.spawner.abort(&self.join);
        self.wait(None);
    }
}

impl<S: Spawner> Drop for Finish<'_, S> {
    fn drop(&mut self) {
        if !self.done {
            self.abort_and_wait();
        }
    }
}

/// Runs `fut` with `spawner` and blocks this thread until it has finished
/// and been dropped, or until `deadline`, when it is cancelled (and dropped)
/// first: then `Err(Timeout)`, unless it finished in the meantime.
///
/// `fut` may borrow from the caller: see the module docs for why that is
/// sound.
#[allow(unsafe_code)]
pub(crate) fn block_on_with<'a, T, F, S>(
    spawner: &S,
    fut: F,
    deadline: Option<Instant>,
) -> Result<T, Error>
where
    F: Future<Output = Result<T, Error>> + Send + 'a,
    T: Send + 'a,
    S: Spawner,
{
    let mut frame = Frame {
        fut: ManuallyDrop::new(fut),
        out: UnsafeCell::new(None),
        started: false,
    };
    let erased: NonNull<dyn Run + Send + 'a> = NonNull::from(&mut frame);
    // SAFETY: only the lifetime bound of the trait object changes (same
    // layout). The task never uses the pointer after the frame's future is
    // dropped, and this function does not return or unwind before the task
    // is over (`Finish`); see the module docs.
    let erased: NonNull<dyn Run + Send + 'static> = unsafe { std::mem::transmute(erased) };
    let task = ScopedTask {
        frame: erased,
        live: true,
    };
    let mut finish = Finish {
        spawner,
        join: spawner.spawn(task),
        done: false,
    };
    let timed_out = !finish.wait(deadline);
    if timed_out {
        finish.abort_and_wait();
    }
    drop(finish);
    // The task is over: it stored an outcome before finishing or when dropped.
    match frame.take() {
        Some(Err(Error::Cancelled | Error::LoopClosed)) if timed_out => Err(Error::Timeout),
        Some(outcome) => outcome,
        // Unreachable by the rule above; say so rather than pretend.
        None => Err(Error::Cancelled),
    }
}
