//! Debug mode's reports, and the small interface every module reports
//! through: a loop's [`DebugConfig`], where a task came from ([`Origin`]),
//! `BRIDGE_DEBUG`, and the reports of slow polls and of panics nobody looked
//! at. The watched waits (blocked loops, hangs) are in
//! [`watchdog`](crate::watchdog).
//!
//! Switched on per loop with [`LoopBuilder::debug`](crate::LoopBuilder::debug)
//! or for every loop with the environment variable `BRIDGE_DEBUG=1`. When it
//! is off, tasks carry no instrumentation and waits are not watched: no extra
//! allocation and no clock read on any path.
//!
//! A blocking call of this crate inside worker-loop work (or any
//! multi-thread runtime's task) first moves the runtime's core to another
//! thread, so the loop runs its other tasks meanwhile: that time is left out
//! of the poll's time ([`PollTimer`]).

use std::cell::Cell;
use std::panic::Location;
use std::time::{Duration, Instant};

use crate::sync::plain::{Arc, OnceLock};
/// The default slow-poll threshold, as in Python's asyncio debug mode.
pub(crate) const DEFAULT_SLOW_POLL: Duration = Duration::from_millis(100);

/// Where a task was spawned, carried only in debug mode.
#[derive(Clone, Debug)]
pub(crate) struct Origin {
    pub(crate) location: &'static Location<'static>,
    pub(crate) loop_name: Arc<str>,
}

impl Origin {
    /// Where `location` spawned (or waits on) work of the loop `loop_name`:
    /// `Some` only when `debug` is on, so that with debug mode off nothing is
    /// allocated or cloned.
    #[inline]
    pub(crate) fn when(
        debug: bool,
        location: &'static Location<'static>,
        loop_name: &Arc<str>,
    ) -> Option<Origin> {
        debug.then(|| Origin {
            location,
            loop_name: loop_name.clone(),
        })
    }
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
    #[cfg(bridge_loom)]
    UNREAD_PANIC_REPORTS.with(|n| n.set(n.get() + 1));
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

#[cfg(bridge_loom)]
crate::sync::thread_local! {
    /// Unread-panic reports made by this (loom) thread: the model of the
    /// `DROPPED`/`PANICKED` race checks that exactly one side reports.
    pub(crate) static UNREAD_PANIC_REPORTS: std::cell::Cell<usize> = std::cell::Cell::new(0);
}

// ---- poll timing that leaves out the time a poll's core was away ----

std::thread_local! {
    // Per-thread timing state, never shared: not a model concern.
    /// Polls being timed on this thread (nested polls included).
    static TIMED: Cell<usize> = const { Cell::new(0) };
    /// Time this thread spent blocked with its core moved away while a poll
    /// was being timed on it, in total.
    static AWAY: Cell<Duration> = const { Cell::new(Duration::ZERO) };
}

/// Times one poll of a debug-mode task: the time it took, less the time the
/// loop's core spent on another thread while this poll blocked in a call of
/// this crate (`block_in_place`). Such a poll did not block its loop: the
/// loop ran its other tasks meanwhile, which is the endorsed way to nest a
/// blocking call inside worker-loop work.
#[must_use = "the poll is timed until the timer is read"]
pub(crate) struct PollTimer {
    start: Instant,
    away_before: Duration,
}

impl PollTimer {
    /// Starts timing a poll on this thread.
    pub(crate) fn start() -> Self {
        let _ = TIMED.try_with(|t| t.set(t.get() + 1));
        PollTimer {
            start: Instant::now(),
            away_before: AWAY.try_with(Cell::get).unwrap_or_default(),
        }
    }

    /// How long the poll blocked its loop.
    pub(crate) fn took(&self) -> Duration {
        let away = AWAY.try_with(Cell::get).unwrap_or_default();
        self.start
            .elapsed()
            .saturating_sub(away.saturating_sub(self.away_before))
    }
}

impl Drop for PollTimer {
    fn drop(&mut self) {
        let _ = TIMED.try_with(|t| t.set(t.get().saturating_sub(1)));
    }
}

/// Measures, while it lives, time this thread's core spends on another
/// thread; see [`PollTimer`]. No clock is read unless a poll is being timed
/// on this thread (debug mode).
#[must_use = "the time away is measured until the guard is dropped"]
pub(crate) struct CoreAwayGuard(Option<Instant>);

/// Starts measuring a `block_in_place` made by this thread; see [`CoreAwayGuard`].
#[inline]
pub(crate) fn core_away() -> CoreAwayGuard {
    let timed = TIMED.try_with(Cell::get).unwrap_or(0) > 0;
    CoreAwayGuard(timed.then(Instant::now))
}

impl Drop for CoreAwayGuard {
    fn drop(&mut self) {
        if let Some(start) = self.0 {
            let _ = AWAY.try_with(|a| a.set(a.get() + start.elapsed()));
        }
    }
}
