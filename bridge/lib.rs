//! # bridge
//!
//! Sync code and async code calling each other safely, on any thread, in any
//! nesting: Rust's answer to Python's "asyncio.run() cannot be called from a
//! running event loop" and to tokio's "Cannot start a runtime from within a
//! runtime".
//!
//! ```
//! // A sync function that needs async work, called from sync code...
//! fn fetch() -> u32 {
//!     bridge::call_blocking(async {
//!         tokio::time::sleep(std::time::Duration::from_millis(1)).await;
//!         7
//!     })
//! }
//! assert_eq!(fetch(), 7);
//!
//! // ...and from inside a runtime, where `Runtime::block_on` would panic.
//! let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
//! assert_eq!(rt.block_on(async { fetch() }), 7);
//!
//! // Nested in itself, to any depth.
//! assert_eq!(bridge::call_blocking(async { fetch() + 1 }), 8);
//! ```
//!
//! ## Which entry point do I call?
//!
//! | who calls | call | where the work runs | a panic in it becomes |
//! |---|---|---|---|
//! | sync code that needs one result: `main`, a script, a test, code that may or may not be inside a loop | [`block_on_safe(fut)`](block_on_safe) | right here when no loop runs on this thread (no thread hop); else on the worker loop | `Err(Panicked)` |
//! | sync code calling an async API: a web handler, the blocking twin of a library | [`call_blocking(fut)`](call_blocking) | always on the [worker loop](worker_loop), whose timers, sockets and pools outlive the call | a panic resumed in the caller |
//! | any thread submitting to a particular loop (a GUI loop, a per-resource loop) | [`LoopHandle::spawn(fut)`](LoopHandle::spawn) (= [`run_coroutine_threadsafe`]) | that loop's thread; you get a [`ConcurrentFuture`] to `wait` or `.await` | `Err(Panicked)` from `wait` / `.await` |
//! | async code calling blocking code (a sync driver, file I/O, CPU work) | [`run_in_executor(exec, f)`](run_in_executor) | a thread of an [`Executor`] (the default one for `None`) | `Err(Panicked)` from `wait` / `.await` |
//!
//! ## Guarantees
//!
//! * **No nesting panics.** [`run`] returns [`Error::NestedLoop`] inside a
//!   loop; [`block_on_safe`] hands off to the worker loop there;
//!   [`call_blocking`] always runs on the worker loop.
//! * **Happens-before.** Everything the work did before finishing
//!   happens-before [`ConcurrentFuture::wait`] returns, the `.await` resumes,
//!   or a done-callback runs.
//! * **Nothing is lost.** Every submission resolves exactly once: its value,
//!   `Panicked`, `Cancelled` or `LoopClosed`. Dropping a loop cancels its
//!   tasks (their destructors run) and resolves every waiting future.
//! * **Blocking never stalls the worker loop.** A call that blocks on a
//!   tokio multi-thread runtime (the worker loop included) first moves the
//!   runtime's core to another thread.
//! * **The one hang that remains**: blocking a thread that drives a
//!   current-thread loop (a [`Loop`], a current-thread tokio runtime,
//!   `futures::executor::block_on`) on work that needs that same loop. Where
//!   the crate can see it (waiting on a `Loop`'s own thread for its own work)
//!   it returns [`Error::WouldDeadlock`] instead; debug mode reports the rest.
//!
//! ## Debug mode
//!
//! [`LoopBuilder::debug`] (one loop) or `BRIDGE_DEBUG=1` (every loop, and
//! waits made from executors that are not bridge loops) turns silent hangs
//! and lost panics into `tracing` reports (target `bridge::debug`):
//!
//! * WARN: a single poll of a task longer than the slow-poll threshold
//!   (100 ms), with where the task was spawned and how long it took;
//! * ERROR: a panic in a task whose [`ConcurrentFuture`] was dropped unread;
//! * WARN: a synchronous wait that stops a current-thread loop (a [`Loop`], a
//!   current-thread tokio runtime, `futures::executor::block_on`) for longer
//!   than the slow-poll threshold, naming the loop and the call site;
//! * WARN: a synchronous wait longer than [`hang_threshold`] (10 s), with the
//!   waiting thread, the call site, and the loop and spawn site of the work.
//!
//! [`loops`] gives each loop's counters (tasks spawned, completed, cancelled,
//! panicked) and lag, and `Display`s as a health line. With debug mode off
//! nothing is timed and nothing extra is allocated.
//!
//! ## After `fork()`
//!
//! The child of a `fork()` has only the thread that called it. There:
//!
//! * **Starts afresh**: the worker loop (so [`call_blocking`], hand-offs and
//!   [`worker_loop`]), the default executor and the debug watchdog, on first
//!   use. [`run`], and loops and executors made in the child, work as usual.
//! * **Closed**: a [`Loop`] or [`Executor`] made before the fork, and a
//!   [`LoopHandle`] to one (also one from `worker_loop()` taken before the
//!   fork: call it again). Submitting gives [`Error::LoopClosed`]; dropping
//!   returns at once; [`loops`] does not list it. Waiting on or awaiting
//!   work that was pending at the fork gives `LoopClosed` (its done-callbacks
//!   never run); work finished before the fork keeps its value.
//! * **Not safe**: forking while another thread is inside a call of this
//!   crate (a lock that thread holds stays held in the child), as with most
//!   multi-threaded libraries. Fork from a quiet point, or start processes
//!   with spawn (Python: `multiprocessing.set_start_method("spawn")`).
//!   Tokio runtimes of your own made before the fork are not usable in the
//!   child either.
//!
//! ## How the crate is built
//!
//! Each module has one job, named by its file, and imports only modules on
//! the rows below its own (or on its own row, without a cycle):
//!
//! ```text
//! entry points   entry  limiter  iter_blocking  executor_stream  loom_api
//! loops, pools   event_loop  worker  executor
//! tasks          task  pool
//! futures        future  stream_channel  handoff
//! blocking       wait
//! process-wide   watchdog  live
//! per-thread     context
//! a loop         shared  inbox
//! cores          completion  scoped
//! primitives     sync  fork  error  park  report  stats  pool_state
//! ```
//!
//! From the bottom: `sync` names every atomic and lock (loom's under
//! `--cfg bridge_loom`); `park` is the waiting strategy (spin, then park);
//! `report` is the small interface through which everything reports in
//! debug mode; `stats` are a loop's counters. The two cores with `unsafe`:
//! `completion`, the state machine behind [`ConcurrentFuture`], and
//! `scoped`, the lifetime erasure of a borrowing hand-off. `shared` is the
//! state a loop's handles share, with its `inbox` (the queue into a
//! [`Loop`]); `context` what runs on this thread; `live` the list of live
//! loops; `watchdog` the hang reports. `wait` holds the "never stall a loop
//! while blocking" rule that every synchronous wait goes through, and
//! `handoff` blocks on a loop running a borrowing future. `task` is the
//! wrapper every spawned task runs in. The worker loop registers itself
//! with `context` when it starts, so nothing below `worker` imports it.
//! `.ci/module-graph` prints the import graph and checks it against this
//! diagram.

#![warn(missing_docs)]
#![warn(unreachable_pub)]
#![deny(unsafe_code)]

mod completion;
mod context;
mod entry;
mod error;
mod event_loop;
mod executor;
mod executor_stream;
mod fork;
mod future;
mod handoff;
mod inbox;
mod iter_blocking;
mod limiter;
mod live;
mod park;
mod pool;
mod pool_state;
mod report;
mod scoped;
mod shared;
mod stats;
mod stream_channel;
mod sync;
mod task;
mod wait;
mod watchdog;
mod worker;

pub use context::{enter_foreign, get_running_loop, running_loop, ForeignGuard, RunningLoop};
pub use entry::{
    block_on_safe, call_blocking, call_blocking_timeout, run, run_coroutine_threadsafe,
};
pub use error::{Error, PanicError};
pub use event_loop::{Loop, LoopBuilder};
pub use executor::{run_in_executor, Executor, ExecutorBuilder, DEFAULT_IDLE_TIMEOUT};
pub use executor_stream::{stream_in_executor, ExecutorStream};
pub use future::{promise, ConcurrentFuture, Promise};
pub use iter_blocking::{iter_blocking, BlockingIter};
pub use limiter::CapacityLimiter;
pub use live::{loops, LoopInfo};
pub use shared::{LoopHandle, LoopId};
pub use watchdog::{hang_threshold, set_hang_threshold};
pub use worker::{try_worker_loop, worker_loop};

#[cfg(feature = "macros")]
#[doc(inline)]
#[doc = include_str!("blocking.md")]
pub use bridge_macros::blocking;

#[cfg(bridge_loom)]
#[doc(hidden)]
pub mod loom_api;

/// The README's examples, compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
