//! Per-loop counters and the lag probe behind [`LoopInfo`](crate::LoopInfo).
//!
//! Every task spawned through this crate carries a [`TaskCount`]: it counts
//! the task as spawned when made and, when it ends, as completed, panicked or
//! cancelled (dropped before finishing: `cancel()`, an abort, or its loop
//! closing). The counters are `Relaxed` atomics on the loop's shared
//! [`LoopStats`]: statistics, read for display, that order nothing else.
//! So `spawned == completed + panicked + cancelled + (tasks still live)`,
//! up to the moment of reading.
//!
//! The *lag* is how late a timer wakes on the loop: a small probe task sleeps
//! for [`PROBE_PERIOD`] over and over and records how much longer than that it
//! took. It is not counted as a task. An idle loop pays nothing for it: the
//! probe runs only while someone is looking, that is
//!
//! * for [`PROBE_LINGER`] after each call of [`LoopInfo::lag`](crate::LoopInfo::lag)
//!   or `max_lag` (the first call starts it), and
//! * in debug mode, while the loop has tasks spawned through this crate
//!   (a spawn starts it), so `max_lag` covers every busy stretch.
//!
//! Then it stops by itself. While it runs it costs one timer wake-up per
//! [`PROBE_PERIOD`] on the loop; a loop nobody asks about, or an idle debug
//! loop, is never woken.
//!
//! # The probe's start/stop handshake
//!
//! `probe_running` is true while a probe task owns the loop's probing. A
//! reader (or a debug-mode spawn) first publishes why it wants the probe
//! (`looked_at`, or the `spawned` count), then `swap(true)`s the flag and
//! starts a probe if it was false. A probe that finds no reason to go on
//! `swap(false)`s it, reads the reasons again and, if one appeared
//! meanwhile, takes the flag back (`swap(true)`; if someone else already
//! did, they started a probe and this one ends). Both sides use AcqRel
//! swaps on the one flag, so whichever swaps second sees the other's
//! reason: the probe never stops while it is wanted, and two never run.

use std::time::{Duration, Instant};

use crate::event_loop::LoopShared;
use crossbeam_utils::CachePadded;

use crate::sync::plain::{Arc, AtomicBool, AtomicU64, AtomicUsize, OnceLock, Ordering};

/// How often the lag probe's timer fires.
pub(crate) const PROBE_PERIOD: Duration = Duration::from_millis(100);

/// How long the probe keeps running after the last look at the lag.
pub(crate) const PROBE_LINGER: Duration = Duration::from_secs(10);

/// Lag not measured yet.
const NO_SAMPLE: u64 = u64::MAX;

/// The time base of `looked_at`: nanoseconds since the first use.
fn now_nanos() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    let epoch = *EPOCH.get_or_init(Instant::now);
    // Offset by one, so 0 means "never looked".
    u64::try_from(epoch.elapsed().as_nanos())
        .unwrap_or(u64::MAX - 1)
        .saturating_add(1)
}

/// One loop's counters; shared by the loop and every task counted on it.
#[derive(Debug)]
pub(crate) struct LoopStats {
    /// Written by every submitting thread: on a cache line of its own, away
    /// from the counters the loop's thread writes and from the `Arc`'s count.
    spawned: CachePadded<AtomicU64>,
    completed: CachePadded<AtomicU64>,
    panicked: AtomicU64,
    cancelled: AtomicU64,
    /// The last lag sample in nanoseconds, or `NO_SAMPLE`.
    lag: AtomicU64,
    /// The largest lag sample in nanoseconds, or `NO_SAMPLE`.
    max_lag: AtomicU64,
    /// A probe task owns the probing (module docs: the handshake).
    probe_running: AtomicBool,
    /// When the lag was last looked at (`now_nanos`), 0 for never.
    looked_at: AtomicU64,
    /// Debug mode: probe while the loop has tasks (set once, with `runtime`).
    probe_with_tasks: AtomicBool,
    /// The loop's runtime, where a spawn in debug mode starts the probe.
    runtime: OnceLock<tokio::runtime::Handle>,
    /// Probe tasks alive on the loop (0 or 1), left out of its task count.
    probes: AtomicUsize,
}

impl LoopStats {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(LoopStats {
            spawned: CachePadded::new(AtomicU64::new(0)),
            completed: CachePadded::new(AtomicU64::new(0)),
            panicked: AtomicU64::new(0),
            cancelled: AtomicU64::new(0),
            lag: AtomicU64::new(NO_SAMPLE),
            max_lag: AtomicU64::new(NO_SAMPLE),
            probe_running: AtomicBool::new(false),
            looked_at: AtomicU64::new(0),
            probe_with_tasks: AtomicBool::new(false),
            runtime: OnceLock::new(),
            probes: AtomicUsize::new(0),
        })
    }

    // ORDERING (every load below): Relaxed: statistics, each counter on its
    // own; nothing is published through them.
    pub(crate) fn spawned(&self) -> u64 {
        self.spawned.load(Ordering::Relaxed)
    }

    pub(crate) fn completed(&self) -> u64 {
        self.completed.load(Ordering::Relaxed)
    }

    pub(crate) fn panicked(&self) -> u64 {
        self.panicked.load(Ordering::Relaxed)
    }

    pub(crate) fn cancelled(&self) -> u64 {
        self.cancelled.load(Ordering::Relaxed)
    }

    pub(crate) fn probes(&self) -> usize {
        self.probes.load(Ordering::Relaxed)
    }

    pub(crate) fn lag(&self) -> Option<Duration> {
        sample(self.lag.load(Ordering::Relaxed))
    }

    pub(crate) fn max_lag(&self) -> Option<Duration> {
        sample(self.max_lag.load(Ordering::Relaxed))
    }

    fn record_lag(&self, late: Duration) {
        let nanos = u64::try_from(late.as_nanos()).unwrap_or(NO_SAMPLE - 1);
        // ORDERING: Relaxed: see above.
        self.lag.store(nanos, Ordering::Relaxed);
        let _ = self
            .max_lag
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |max| {
                (max == NO_SAMPLE || nanos > max).then_some(nanos)
            });
    }
}

fn sample(nanos: u64) -> Option<Duration> {
    (nanos != NO_SAMPLE).then(|| Duration::from_nanos(nanos))
}

/// Counts one task on its loop: spawned when made; completed, panicked or
/// cancelled when it ends. Carried by [`Guarded`](crate::task::Guarded).
#[derive(Debug)]
pub(crate) struct TaskCount {
    stats: StatsRef,
    ended: bool,
}

/// The loop's counters, held by a task: shared, or (the worker loop, which
/// lives for the process) borrowed for `'static`, which spares two
/// contended reference-count updates per hand-off.
#[derive(Clone, Debug)]
enum StatsRef {
    Shared(Arc<LoopStats>),
    Static(&'static LoopStats),
}

impl std::ops::Deref for StatsRef {
    type Target = LoopStats;

    fn deref(&self) -> &LoopStats {
        match self {
            StatsRef::Shared(s) => s,
            StatsRef::Static(s) => s,
        }
    }
}

impl TaskCount {
    pub(crate) fn new(stats: &Arc<LoopStats>) -> Self {
        Self::counted(StatsRef::Shared(stats.clone()))
    }

    /// As [`new`](Self::new), for counters that live for the process.
    pub(crate) fn new_static(stats: &'static LoopStats) -> Self {
        Self::counted(StatsRef::Static(stats))
    }

    fn counted(stats: StatsRef) -> Self {
        // ORDERING: Relaxed: a statistic (module docs); the probe handshake
        // orders it with its own swap below.
        stats.spawned.fetch_add(1, Ordering::Relaxed);
        // ORDERING: Relaxed: set once before the loop takes work; a spawn that
        // misses it only leaves this task unmeasured.
        if stats.probe_with_tasks.load(Ordering::Relaxed) {
            ensure_probe(stats.clone());
        }
        TaskCount {
            stats,
            ended: false,
        }
    }

    /// The task finished, with a value or with a panic.
    pub(crate) fn finish(&mut self, panicked: bool) {
        if std::mem::replace(&mut self.ended, true) {
            return;
        }
        let counter = if panicked {
            &self.stats.panicked
        } else {
            &self.stats.completed
        };
        // ORDERING: Relaxed: a statistic (module docs).
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

impl Drop for TaskCount {
    fn drop(&mut self) {
        if !self.ended {
            // Dropped before it finished: cancelled, aborted, or its loop closed.
            // ORDERING: Relaxed: a statistic (module docs).
            self.stats.cancelled.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Debug mode: the loop's lag is measured while it has tasks (from now on,
/// each spawn through this crate starts the probe if it is not running).
pub(crate) fn start_lag_probe(shared: &LoopShared) {
    let stats = &shared.stats;
    let _ = stats.runtime.set(shared.tokio.clone());
    // ORDERING: Relaxed: see `TaskCount::counted`.
    stats.probe_with_tasks.store(true, Ordering::Relaxed);
    if stats.live_tasks() > 0 {
        ensure_probe(StatsRef::Shared(stats.clone()));
    }
}

/// Someone looks at the loop's lag: the probe runs (for [`PROBE_LINGER`]
/// from now), started if needed.
pub(crate) fn look_at_lag(shared: &LoopShared) {
    let stats = &shared.stats;
    if shared.is_closed() {
        return;
    }
    let _ = stats.runtime.set(shared.tokio.clone());
    // ORDERING: Relaxed: published by the AcqRel swap in `ensure_probe`.
    stats.looked_at.store(now_nanos(), Ordering::Relaxed);
    ensure_probe(StatsRef::Shared(stats.clone()));
}

/// Starts a probe unless one owns the probing (module docs: the handshake).
fn ensure_probe(stats: StatsRef) {
    // ORDERING: AcqRel: releases the caller's reason to a probe that stops
    // (its own swap acquires it) and acquires its stop.
    if stats.probe_running.swap(true, Ordering::AcqRel) {
        return;
    }
    let Some(runtime) = stats.runtime.get() else {
        // ORDERING: Relaxed: nothing was started; nothing to publish.
        stats.probe_running.store(false, Ordering::Relaxed);
        return;
    };
    let runtime = runtime.clone();
    let alive = ProbeAlive::new(stats);
    // Dropped with the loop (or at once, if its runtime is already shut down).
    drop(runtime.spawn(probe(alive)));
}

impl LoopStats {
    /// Tasks spawned through this crate and not ended yet.
    fn live_tasks(&self) -> u64 {
        let ended = self.completed() + self.panicked() + self.cancelled();
        self.spawned().saturating_sub(ended)
    }

    /// Whether the probe should go on: a recent look, or (debug mode) tasks.
    fn probe_wanted(&self) -> bool {
        // ORDERING: Relaxed: read after the probe's AcqRel swap, which
        // acquired whatever a reader published before its own swap.
        let looked = self.looked_at.load(Ordering::Relaxed);
        let linger = u64::try_from(PROBE_LINGER.as_nanos()).unwrap_or(u64::MAX);
        let recent = looked != 0 && now_nanos().saturating_sub(looked) < linger;
        // ORDERING: Relaxed: see `TaskCount::counted`.
        recent || (self.probe_with_tasks.load(Ordering::Relaxed) && self.live_tasks() > 0)
    }
}

/// Keeps `LoopStats::probes` at the number of probe futures alive, and
/// gives up the probing if the probe is dropped while it owns it (its loop
/// closed).
struct ProbeAlive {
    stats: StatsRef,
    owns_running: bool,
}

impl ProbeAlive {
    fn new(stats: StatsRef) -> Self {
        // ORDERING: Relaxed: a statistic (module docs).
        stats.probes.fetch_add(1, Ordering::Relaxed);
        ProbeAlive {
            stats,
            owns_running: true,
        }
    }

    /// Gives up the probing unless it is still wanted; whether to go on.
    fn keep_going(&mut self) -> bool {
        let stats = &self.stats;
        if stats.probe_wanted() {
            return true;
        }
        // ORDERING: AcqRel: see `ensure_probe`.
        stats.probe_running.swap(false, Ordering::AcqRel);
        // A reason that came before a caller found the flag still set.
        // ORDERING: AcqRel: see `ensure_probe`.
        if stats.probe_wanted() && !stats.probe_running.swap(true, Ordering::AcqRel) {
            return true;
        }
        self.owns_running = false;
        false
    }
}

impl Drop for ProbeAlive {
    fn drop(&mut self) {
        if self.owns_running {
            // ORDERING: Release: a later `ensure_probe` (AcqRel) may start anew.
            self.stats.probe_running.store(false, Ordering::Release);
        }
        // ORDERING: Relaxed: a statistic (module docs).
        self.stats.probes.fetch_sub(1, Ordering::Relaxed);
    }
}

async fn probe(mut alive: ProbeAlive) {
    loop {
        let start = Instant::now();
        tokio::time::sleep(PROBE_PERIOD).await;
        alive
            .stats
            .record_lag(start.elapsed().saturating_sub(PROBE_PERIOD));
        if !alive.keep_going() {
            return;
        }
    }
}
