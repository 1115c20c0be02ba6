//! Debug mode: reports of slow polls and of panics nobody looked at.
//!
//! Switched on per loop with [`LoopBuilder::debug`](crate::LoopBuilder::debug)
//! or for every loop with the environment variable `BRIDGE_DEBUG=1`. When it
//! is off, tasks carry no instrumentation: no extra allocation and no clock
//! read on any path.

use std::panic::Location;
use std::time::Duration;

use crate::sync::plain::{Arc, OnceLock};

/// The default slow-poll threshold, as in Python's asyncio debug mode.
pub(crate) const DEFAULT_SLOW_POLL: Duration = Duration::from_millis(100);

/// Where a task was spawned, carried only in debug mode.
#[derive(Clone, Debug)]
pub(crate) struct Origin {
    pub(crate) location: &'static Location<'static>,
    pub(crate) loop_name: Arc<str>,
}

/// A loop's debug settings.
#[derive(Clone, Copy, Debug)]
pub(crate) struct DebugConfig {
    enabled: bool,
    slow_poll: Duration,
}

impl DebugConfig {
    /// `explicit` wins; otherwise `BRIDGE_DEBUG=1` decides.
    pub(crate) fn new(explicit: Option<bool>, slow_poll: Duration) -> Self {
        DebugConfig {
            enabled: explicit.unwrap_or_else(env_debug),
            slow_poll,
        }
    }

    pub(crate) fn enabled(&self) -> bool {
        self.enabled
    }

    pub(crate) fn slow_poll(&self) -> Duration {
        self.slow_poll
    }
}

/// Whether `BRIDGE_DEBUG` asks for debug mode (read once).
pub(crate) fn env_debug() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| {
        matches!(
            std::env::var("BRIDGE_DEBUG").as_deref(),
            Ok("1") | Ok("true") | Ok("yes") | Ok("on")
        )
    })
}

/// Reports a single poll that took `took`, longer than the threshold.
#[cold]
pub(crate) fn slow_poll(origin: &Origin, took: Duration, threshold: Duration) {
    tracing::warn!(
        target: "bridge::debug",
        loop_name = %origin.loop_name,
        spawned_at = %origin.location,
        took_ms = took.as_secs_f64() * 1e3,
        threshold_ms = threshold.as_secs_f64() * 1e3,
        "bridge: a task spawned at {} blocked loop '{}' for {:.1?} in a single poll (threshold {:?}); \
         move blocking work to bridge::run_in_executor or tokio::task::spawn_blocking, \
         or .await instead of blocking",
        origin.location,
        origin.loop_name,
        took,
        threshold,
    );
}

/// Reports a panic whose future was dropped without being read.
#[cold]
pub(crate) fn unread_panic(origin: Option<&Origin>, message: &str) {
    if let Some(origin) = origin {
        tracing::error!(
            target: "bridge::debug",
            loop_name = %origin.loop_name,
            spawned_at = %origin.location,
            panic = message,
            "bridge: a task spawned at {} on loop '{}' panicked and nobody read the result: {}; \
             keep the ConcurrentFuture and wait()/.await it to handle the panic",
            origin.location,
            origin.loop_name,
            message,
        );
    }
}

std::thread_local! {
    // Per-thread flag read by the panic hook; never shared, not a model concern.
    static QUIET: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f` under `catch_unwind` without printing a panic message: for
/// probing a tokio call that refuses by panicking. The panic hook that makes
/// this possible is installed once, on first use, and defers to the
/// previous hook for every other panic.
pub(crate) fn quiet_panics<R>(f: impl FnOnce() -> R) -> std::thread::Result<R> {
    static HOOK: OnceLock<()> = OnceLock::new();
    HOOK.get_or_init(|| {
        let prev = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !QUIET.with(|q| q.get()) {
                prev(info)
            }
        }));
    });
    let was = QUIET.with(|q| q.replace(true));
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    QUIET.with(|q| q.set(was));
    r
}

/// Runs `f` with panic messages printed again, inside [`quiet_panics`].
pub(crate) fn loud_panics<R>(f: impl FnOnce() -> R) -> R {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            QUIET.with(|q| q.set(self.0));
        }
    }
    let _restore = Restore(QUIET.with(|q| q.replace(false)));
    f()
}
