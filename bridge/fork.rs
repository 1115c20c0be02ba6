//! Fork awareness: which process generation the process-wide services
//! (the worker loop, the default executor, the debug watchdog) and every
//! [`Loop`](crate::Loop) and [`Executor`](crate::Executor) belong to.
//!
//! After `fork()` the child has only the thread that called `fork`: none of
//! the parent's loop or pool threads exist there. Anything that hands work
//! to such a thread would wait forever. So a `pthread_atfork` child handler
//! bumps [`generation`]; each thread-owning object records the generation it
//! was made in and treats a mismatch as "its threads are gone":
//!
//! * the worker loop, the default executor and the watchdog start afresh in
//!   the child on first use (the parent's copies are leaked, never dropped:
//!   dropping them would wait for threads that do not exist);
//! * a `Loop` or `Executor` made before the fork is closed in the child:
//!   submitting to it gives `LoopClosed`, waiting on its pending work gives
//!   `LoopClosed` too, and dropping it does not wait.
//!
//! The handler is installed the first time any of those objects is made
//! ([`watch`]), which is before any fork that could strand them. Reading the
//! generation is one relaxed load, so hot paths can check it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Once;

static GENERATION: AtomicU64 = AtomicU64::new(0);
static INSTALL: Once = Once::new();

/// The current process generation: 0 in the original process, bumped in
/// each forked child (from the first [`watch`] on).
#[inline]
pub(crate) fn generation() -> u64 {
    // ORDERING: Relaxed: the child handler runs on the only thread of the
    // child before `fork` returns there, so every later read on that thread
    // (and on threads it starts, which synchronize with their spawn) sees it.
    GENERATION.load(Ordering::Relaxed)
}

/// Installs the fork handler (once per process) and returns the current
/// generation, for an object that owns threads to record.
pub(crate) fn watch() -> u64 {
    INSTALL.call_once(install);
    generation()
}

/// True when an object made in `generation` has lost its threads to a fork.
#[inline]
pub(crate) fn is_stale(generation: u64) -> bool {
    generation != self::generation()
}

#[cfg(unix)]
extern "C" fn in_child() {
    // Only async-signal-safe work is allowed here: one atomic add.
    // ORDERING: Relaxed: see `generation`.
    GENERATION.fetch_add(1, Ordering::Relaxed);
}

#[cfg(unix)]
#[allow(unsafe_code)]
fn install() {
    // SAFETY: `pthread_atfork` only records the three function pointers; the
    // one given (`in_child`) is a plain `extern "C" fn` that does a single
    // atomic add, which is async-signal-safe as the child handler requires.
    // A failure (ENOMEM) leaves fork detection off, as before this module.
    let _ = unsafe { libc::pthread_atfork(None, None, Some(in_child)) };
}

#[cfg(not(unix))]
fn install() {}
