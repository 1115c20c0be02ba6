//! [`Error`], the one error type of the crate, and [`PanicError`].

use std::any::Any;
use std::fmt;

use crate::sync::plain::Mutex;

/// Everything that can go wrong when crossing between sync and async code.
///
/// Every message says what happened and what to do instead.
///
/// # Examples
///
/// ```
/// let err = bridge::run(async { bridge::run(async {}) }).unwrap().unwrap_err();
/// assert!(matches!(err, bridge::Error::NestedLoop));
/// assert!(err.to_string().contains("block_on_safe"));
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// [`run`](crate::run) was called while a loop is running on this thread.
    NestedLoop,
    /// [`get_running_loop`](crate::get_running_loop) was called outside any bridge loop.
    NoRunningLoop,
    /// The work was cancelled: [`cancel`](crate::ConcurrentFuture::cancel) was
    /// called, or its loop shut down before it finished.
    Cancelled,
    /// The future or closure panicked; the panic is carried as a value.
    Panicked(PanicError),
    /// [`wait_for`](crate::ConcurrentFuture::wait_for) ran out of time; the work was cancelled.
    Timeout,
    /// The work was submitted to a loop or executor that is closed or closing.
    LoopClosed,
    /// Blocking here would stop the very thread that must finish the work.
    WouldDeadlock,
    /// A thread or runtime could not be started.
    Io(std::io::Error),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NestedLoop => f.write_str(
                "bridge::run was called while a loop is already running on this thread, \
                 and a loop cannot be started inside another: from sync code use \
                 bridge::block_on_safe(fut) or bridge::call_blocking(fut), which hand the \
                 future to the worker loop; from async code .await the future instead",
            ),
            Error::NoRunningLoop => f.write_str(
                "no bridge loop is running on this thread: get_running_loop() works inside \
                 bridge::run, on a bridge::Loop's thread and on the worker loop; use \
                 bridge::worker_loop() for a loop that is always there, or \
                 bridge::running_loop() to see which executor (if any) runs here",
            ),
            Error::Cancelled => f.write_str(
                "the work was cancelled before it finished (ConcurrentFuture::cancel was \
                 called, or the loop running it was closed); submit it again if the result \
                 is still needed",
            ),
            Error::Panicked(p) => write!(
                f,
                "the work panicked: {}; the panic was caught and returned as a value \
                 (use PanicError::into_panic with std::panic::resume_unwind to propagate it)",
                p.message()
            ),
            Error::Timeout => f.write_str(
                "the work did not finish in time and was cancelled; pass a longer timeout, \
                 or use wait_timeout, which keeps the work running",
            ),
            Error::LoopClosed => f.write_str(
                "the loop or executor is closed or closing and takes no new work; submit to \
                 a live one (bridge::worker_loop() is always open)",
            ),
            Error::WouldDeadlock => f.write_str(
                "blocking here would deadlock: this thread is the one that must finish the \
                 work (its bridge loop, or its single-thread executor), or it is inside \
                 worker-loop work that already holds the maximum of nested blocking calls \
                 (768); .await the future instead of blocking on it, or run the work on \
                 another loop (bridge::worker_loop())",
            ),
            Error::Io(e) => write!(
                f,
                "a thread or runtime could not be started: {e}; the process may be out of \
                 threads, memory or file descriptors"
            ),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::Io(e)
    }
}

/// A panic caught from a future or closure, carried as a value.
///
/// # Examples
///
/// ```
/// let err = bridge::block_on_safe(async { panic!("boom") }).unwrap_err();
/// let bridge::Error::Panicked(p) = err else { unreachable!() };
/// assert_eq!(p.message(), "boom");
/// // std::panic::resume_unwind(p.into_panic()) would propagate it.
/// ```
pub struct PanicError {
    message: String,
    // The payload is `Send` but not `Sync`; the lock makes the error `Sync`
    // and is only ever taken by `into_panic`, which owns `self`.
    payload: Mutex<Box<dyn Any + Send + 'static>>,
}

impl PanicError {
    /// Wraps a payload caught by `catch_unwind`.
    pub(crate) fn new(payload: Box<dyn Any + Send + 'static>) -> Self {
        let message = payload_message(&*payload).to_owned();
        PanicError {
            message,
            payload: Mutex::new(payload),
        }
    }

    /// The panic message (`"Box<dyn Any>"` when the payload is not a string).
    ///
    /// # Examples
    ///
    /// ```
    /// let err = bridge::block_on_safe(async { panic!("disk full") }).unwrap_err();
    /// let bridge::Error::Panicked(p) = err else { unreachable!() };
    /// assert_eq!(p.message(), "disk full");
    /// ```
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The original payload, for [`std::panic::resume_unwind`].
    ///
    /// # Examples
    ///
    /// ```
    /// let err = bridge::block_on_safe(async { panic!("boom") }).unwrap_err();
    /// let bridge::Error::Panicked(p) = err else { unreachable!() };
    /// let payload = p.into_panic();
    /// assert_eq!(payload.downcast_ref::<&str>(), Some(&"boom"));
    /// // std::panic::resume_unwind(payload) would continue the panic here.
    /// ```
    pub fn into_panic(self) -> Box<dyn Any + Send + 'static> {
        self.payload.into_inner()
    }
}

/// The text of a panic payload.
pub(crate) fn payload_message(payload: &(dyn Any + Send)) -> &str {
    if let Some(s) = payload.downcast_ref::<&'static str>() {
        s
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s
    } else {
        "Box<dyn Any>"
    }
}

impl fmt::Debug for PanicError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PanicError")
            .field("message", &self.message)
            .finish_non_exhaustive()
    }
}

impl fmt::Display for PanicError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "panicked: {}", self.message)
    }
}

impl std::error::Error for PanicError {}
