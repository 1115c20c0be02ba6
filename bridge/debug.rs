//! Debug mode: reports of slow polls, of panics nobody looked at, of loops
//! blocked by a synchronous wait, and of waits that seem to hang.
//!
//! Switched on per loop with [`LoopBuilder::debug`](crate::LoopBuilder::debug)
//! or for every loop with the environment variable `BRIDGE_DEBUG=1`. When it
//! is off, tasks carry no instrumentation and waits are not watched: no extra
//! allocation and no clock read on any path.
//!
//! # The watchdog
//!
//! A synchronous wait of this crate ([`blocking_region`](crate::worker::blocking_region))
//! made in debug mode registers itself, for as long as it blocks, with one
//! lazily started thread named `bridge-watchdog`. That thread sleeps until the
//! earliest deadline of the registered waits and reports:
//!
//! * a *blocked loop*: the waiting thread drives a current-thread loop (a
//!   bridge [`Loop`](crate::Loop) or [`run`](crate::run) loop, a
//!   current-thread tokio runtime, `futures::executor::block_on`, or an
//!   executor marked with [`enter_foreign`](crate::enter_foreign)) that runs
//!   nothing while the wait lasts; reported once it lasts longer than the
//!   loop's slow-poll threshold;
//! * a *hang*: the wait lasts longer than [`hang_threshold`] (10 s unless set
//!   with [`set_hang_threshold`]).
//!
//! Each is reported once per wait, at WARN, with target `bridge::debug`; the
//! wait itself is never interrupted.
//!
//! In a forked child the watchdog starts afresh on first use and forgets the
//! parent's waits.
//!
//! # What is not reported
//!
//! A blocking call of this crate inside worker-loop work (or any
//! multi-thread runtime's task) first moves the runtime's core to another
//! thread, so the loop runs its other tasks meanwhile: that time is left out
//! of the poll's time ([`PollTimer`]), and such a wait stops no loop.
//!
//! Debug mode installs no panic hook and never asks tokio a question by
//! catching a panic: which scheduler runs on a thread is read from what the
//! thread is ([`registry::scheduler`]), so it works the same under
//! `panic = "abort"` and leaves the application's panic hook alone.

use std::cell::Cell;
use std::fmt;
use std::panic::Location;
use std::time::{Duration, Instant};

use crate::event_loop::Kind;
use crate::registry::{self, Marked, Scheduler};
use crate::sync::plain::{Arc, AtomicU64, Condvar, Mutex, OnceLock, Ordering};

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

/// Whether debug mode is on for this thread's context: `BRIDGE_DEBUG=1`, or
/// the bridge loop this thread drives is in debug mode. No clock, no allocation.
#[inline]
pub(crate) fn debug_here() -> bool {
    env_debug() || registry::current_loop_debug()
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

// ---- the hang watchdog and the blocked-loop report ----

/// The default hang threshold.
const DEFAULT_HANG: Duration = Duration::from_secs(10);

/// The hang threshold in nanoseconds (process-wide).
static HANG_NANOS: AtomicU64 = AtomicU64::new(DEFAULT_HANG.as_nanos() as u64);

/// Sets how long a synchronous wait may last in debug mode before the
/// watchdog reports it (process-wide; default 10 s).
///
/// The wait is only reported, never interrupted. A new threshold applies to
/// waits already in flight too. Only waits made in debug mode are watched
/// (a loop built with [`debug(true)`](crate::LoopBuilder::debug), or
/// `BRIDGE_DEBUG=1`).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// bridge::set_hang_threshold(Duration::from_secs(30));
/// assert_eq!(bridge::hang_threshold(), Duration::from_secs(30));
/// ```
pub fn set_hang_threshold(limit: Duration) {
    let nanos = u64::try_from(limit.as_nanos()).unwrap_or(u64::MAX);
    // ORDERING: Relaxed: a lone setting; the watchdog re-reads it after the
    // notification below, which its lock orders.
    HANG_NANOS.store(nanos, Ordering::Relaxed);
    let _state = WATCHDOG.state.lock();
    WATCHDOG.wake.notify_one();
}

/// How long a synchronous wait may last in debug mode before the watchdog
/// reports it; see [`set_hang_threshold`].
///
/// # Examples
///
/// ```
/// assert!(bridge::hang_threshold() > std::time::Duration::ZERO);
/// ```
pub fn hang_threshold() -> Duration {
    // ORDERING: Relaxed: see `set_hang_threshold`.
    Duration::from_nanos(HANG_NANOS.load(Ordering::Relaxed))
}

/// The current-thread loop a wait stops while it blocks.
#[derive(Clone, Debug)]
enum Blocked {
    Bridge(Arc<str>),
    Tokio,
    Foreign(&'static str),
}

impl fmt::Display for Blocked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Blocked::Bridge(name) => write!(f, "loop '{name}'"),
            Blocked::Tokio => f.write_str("a tokio current-thread runtime"),
            Blocked::Foreign(name) => write!(f, "executor '{name}'"),
        }
    }
}

/// Which current-thread loop this thread drives and stops by blocking, and
/// the threshold after which that is reported. Asks tokio nothing that
/// panics (see [`registry::scheduler`]).
fn blocked_here() -> Option<(Blocked, Duration)> {
    match registry::marked() {
        Marked::Bridge(h) if h.kind() == Kind::Worker => None,
        Marked::Bridge(h) => Some((
            Blocked::Bridge(h.shared.name.clone()),
            h.shared.debug.slow_poll(),
        )),
        Marked::Foreign(name) => Some((Blocked::Foreign(name), DEFAULT_SLOW_POLL)),
        Marked::Nothing => match registry::scheduler() {
            // A multi-thread runtime's core moves away first (`blocking_region`).
            Scheduler::MultiThread { .. } | Scheduler::MultiThreadAway => None,
            Scheduler::CurrentThread => Some((Blocked::Tokio, DEFAULT_SLOW_POLL)),
            // No tokio scheduler here (a `spawn_blocking` thread, under
            // `Runtime::enter`): only `futures::executor::block_on` may be.
            Scheduler::Nothing => futures_executor::enter()
                .is_err()
                .then_some((Blocked::Foreign("futures::executor"), DEFAULT_SLOW_POLL)),
        },
    }
}

/// One synchronous wait in flight, as the watchdog sees it.
struct Wait {
    id: u64,
    thread: std::thread::Thread,
    caller: &'static Location<'static>,
    target: Option<Origin>,
    started: Instant,
    /// The loop this wait stops, its threshold, and whether that was reported.
    blocked: Option<(Blocked, Duration, bool)>,
    hang_reported: bool,
}

struct State {
    waits: Vec<Wait>,
    next_id: u64,
    /// When the watchdog wakes next on its own (`None`: only when told).
    sleeping_until: Option<Instant>,
}

struct Watchdog {
    state: Mutex<State>,
    wake: Condvar,
}

static WATCHDOG: Watchdog = Watchdog {
    state: Mutex::new(State {
        waits: Vec::new(),
        next_id: 0,
        sleeping_until: None,
    }),
    wake: Condvar::new(),
};

/// The watchdog, its thread started on first use, and again on first use in
/// a forked child (the parent's thread is not there); `None` if the thread
/// could not be started (then nothing is watched).
fn watchdog() -> Option<&'static Watchdog> {
    // The process generation (see `crate::fork`) whose thread was started,
    // and whether that worked.
    static STARTED: Mutex<Option<(u64, bool)>> = Mutex::new(None);
    let generation = crate::fork::watch();
    let mut started = STARTED.lock();
    let ok = match *started {
        Some((g, ok)) if g == generation => ok,
        before => {
            if before.is_some() {
                // A forked child: the waits listed are the parent's threads',
                // and the parent's watchdog may still be queued on the condvar
                // (a notify must not go to it).
                let mut state = WATCHDOG.state.lock();
                state.waits.clear();
                state.sleeping_until = None;
                drop(state);
                WATCHDOG.wake.notify_all();
            }
            let ok = std::thread::Builder::new()
                .name("bridge-watchdog".into())
                .spawn(watch_loop)
                .is_ok();
            *started = Some((generation, ok));
            ok
        }
    };
    ok.then_some(&WATCHDOG)
}

/// Deregisters a watched wait when it ends.
#[must_use = "the wait is unwatched as soon as the guard is dropped"]
pub(crate) struct WaitGuard {
    dog: &'static Watchdog,
    id: u64,
}

/// Starts watching the synchronous wait this thread is about to make at
/// `caller`, for the work described by `target`, if debug mode is on for it:
/// `target` is `Some` (the work's loop is in debug mode), `BRIDGE_DEBUG=1`,
/// or this thread drives a bridge loop in debug mode. Otherwise returns
/// `None` having read no clock and allocated nothing.
#[inline]
pub(crate) fn watch_wait(
    caller: &'static Location<'static>,
    target: Option<&Origin>,
) -> Option<WaitGuard> {
    if target.is_none() && !debug_here() {
        return None;
    }
    watch_wait_slow(caller, target)
}

#[cold]
fn watch_wait_slow(
    caller: &'static Location<'static>,
    target: Option<&Origin>,
) -> Option<WaitGuard> {
    let blocked = blocked_here().map(|(b, threshold)| (b, threshold, false));
    let dog = watchdog()?;
    let started = Instant::now();
    let first_due = match &blocked {
        Some((_, threshold, _)) => (*threshold).min(hang_threshold()),
        None => hang_threshold(),
    };
    let due = started.checked_add(first_due);
    let mut state = dog.state.lock();
    let id = state.next_id;
    state.next_id += 1;
    state.waits.push(Wait {
        id,
        thread: std::thread::current(),
        caller,
        target: target.cloned(),
        started,
        blocked,
        hang_reported: false,
    });
    // Wake the watchdog only if it would otherwise sleep past this deadline.
    let sooner = match (due, state.sleeping_until) {
        (Some(due), Some(until)) => due < until,
        (Some(_), None) => true,
        (None, _) => false,
    };
    if sooner {
        dog.wake.notify_one();
    }
    Some(WaitGuard { dog, id })
}

impl Drop for WaitGuard {
    fn drop(&mut self) {
        let mut state = self.dog.state.lock();
        let Some(i) = state.waits.iter().position(|w| w.id == self.id) else {
            return;
        };
        let wait = state.waits.swap_remove(i);
        drop(state);
        if wait.hang_reported {
            tracing::info!(
                target: "bridge::debug",
                thread = thread_name(&wait.thread),
                waiting_at = %wait.caller,
                "bridge: the wait at {} reported as hanging finished after {:.1?}",
                wait.caller,
                wait.started.elapsed(),
            );
        }
    }
}

fn thread_name(t: &std::thread::Thread) -> String {
    match t.name() {
        Some(name) => name.to_owned(),
        None => format!("{:?}", t.id()),
    }
}

/// A report the watchdog emits outside its lock.
enum Report {
    Blocked {
        blocked: Blocked,
        thread: String,
        caller: &'static Location<'static>,
        target: Option<Origin>,
        took: Duration,
        threshold: Duration,
    },
    Hang {
        thread: String,
        caller: &'static Location<'static>,
        target: Option<Origin>,
        took: Duration,
    },
}

/// The watchdog thread: sleeps until the earliest deadline, reports what is due.
fn watch_loop() {
    let dog = &WATCHDOG;
    let mut reports = Vec::new();
    let mut state = dog.state.lock();
    loop {
        let now = Instant::now();
        let hang = hang_threshold();
        let mut next: Option<Instant> = None;
        let mut sooner = |due: Option<Instant>| {
            if let Some(due) = due {
                next = Some(next.map_or(due, |n| n.min(due)));
            }
        };
        for w in state.waits.iter_mut() {
            if let Some((blocked, threshold, reported @ false)) = &mut w.blocked {
                let due = w.started.checked_add(*threshold);
                if due.is_some_and(|d| d <= now) {
                    *reported = true;
                    reports.push(Report::Blocked {
                        blocked: blocked.clone(),
                        thread: thread_name(&w.thread),
                        caller: w.caller,
                        target: w.target.clone(),
                        took: now - w.started,
                        threshold: *threshold,
                    });
                } else {
                    sooner(due);
                }
            }
            if !w.hang_reported {
                let due = w.started.checked_add(hang);
                if due.is_some_and(|d| d <= now) {
                    w.hang_reported = true;
                    reports.push(Report::Hang {
                        thread: thread_name(&w.thread),
                        caller: w.caller,
                        target: w.target.clone(),
                        took: now - w.started,
                    });
                } else {
                    sooner(due);
                }
            }
        }
        if !reports.is_empty() {
            // Report outside the lock: a subscriber may be slow, or wait itself.
            state.sleeping_until = Some(now);
            drop(state);
            reports.drain(..).for_each(emit);
            state = dog.state.lock();
            continue;
        }
        state.sleeping_until = next;
        match next {
            Some(deadline) => {
                dog.wake.wait_until(&mut state, deadline);
            }
            None => dog.wake.wait(&mut state),
        }
    }
}

/// What a wait waits for, for a report: " for a task spawned at X on loop 'L'".
struct ForTarget<'a>(&'a Option<Origin>);

impl fmt::Display for ForTarget<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(o) => write!(
                f,
                " for a task spawned at {} on loop '{}'",
                o.location, o.loop_name
            ),
            None => Ok(()),
        }
    }
}

#[cold]
fn emit(report: Report) {
    match report {
        Report::Blocked {
            blocked,
            thread,
            caller,
            target,
            took,
            threshold,
        } => {
            tracing::warn!(
                target: "bridge::debug",
                blocked_loop = %blocked,
                thread = %thread,
                waiting_at = %caller,
                loop_name = target.as_ref().map(|o| &*o.loop_name),
                spawned_at = target.as_ref().map(|o| tracing::field::display(o.location)),
                took_ms = took.as_secs_f64() * 1e3,
                threshold_ms = threshold.as_secs_f64() * 1e3,
                "bridge: a blocking call at {caller} on thread '{thread}' has stopped {blocked} for {took:.1?} \
                 (threshold {threshold:?}) waiting{}; that loop runs nothing until the call returns. \
                 In async code .await the work instead of blocking on it",
                ForTarget(&target),
            );
        }
        Report::Hang {
            thread,
            caller,
            target,
            took,
        } => {
            tracing::warn!(
                target: "bridge::debug",
                thread = %thread,
                waiting_at = %caller,
                loop_name = target.as_ref().map(|o| &*o.loop_name),
                spawned_at = target.as_ref().map(|o| tracing::field::display(o.location)),
                waited_ms = took.as_secs_f64() * 1e3,
                "bridge: thread '{thread}' has been blocked at {caller} for {took:.1?}{} and keeps waiting; \
                 if it never finishes, the work may need a loop this thread stops, or wait for \
                 something that never happens (use wait_for/wait_timeout to bound the wait)",
                ForTarget(&target),
            );
        }
    }
}
