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
//! took. The probe runs on every loop in debug mode, and on any other loop
//! from the first call of [`LoopInfo::lag`](crate::LoopInfo::lag), so a loop
//! nobody asks about pays nothing. It is not counted as a task.

use std::time::{Duration, Instant};

use crate::event_loop::LoopShared;
use crossbeam_utils::CachePadded;

use crate::sync::plain::{Arc, AtomicBool, AtomicU64, AtomicUsize, Ordering};

/// How often the lag probe's timer fires.
pub(crate) const PROBE_PERIOD: Duration = Duration::from_millis(100);

/// Lag not measured yet.
const NO_SAMPLE: u64 = u64::MAX;

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
    probe_started: AtomicBool,
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
            probe_started: AtomicBool::new(false),
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
#[derive(Debug)]
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
        // ORDERING: Relaxed: a statistic (module docs).
        stats.spawned.fetch_add(1, Ordering::Relaxed);
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

/// Starts the loop's lag probe unless it runs already.
pub(crate) fn start_lag_probe(shared: &LoopShared) {
    let stats = &shared.stats;
    // ORDERING: Relaxed: only which caller starts the probe matters, and a
    // RMW on one flag decides that.
    if shared.is_closed() || stats.probe_started.swap(true, Ordering::Relaxed) {
        return;
    }
    let alive = ProbeAlive::new(stats.clone());
    // Dropped with the loop (or at once, if its runtime is already shut down).
    drop(shared.tokio.spawn(probe(alive)));
}

/// Keeps `LoopStats::probes` at the number of probe futures alive.
struct ProbeAlive(Arc<LoopStats>);

impl ProbeAlive {
    fn new(stats: Arc<LoopStats>) -> Self {
        // ORDERING: Relaxed: a statistic (module docs).
        stats.probes.fetch_add(1, Ordering::Relaxed);
        ProbeAlive(stats)
    }
}

impl Drop for ProbeAlive {
    fn drop(&mut self) {
        // ORDERING: Relaxed: a statistic (module docs).
        self.0.probes.fetch_sub(1, Ordering::Relaxed);
    }
}

async fn probe(alive: ProbeAlive) {
    loop {
        let start = Instant::now();
        tokio::time::sleep(PROBE_PERIOD).await;
        alive
            .0
            .record_lag(start.elapsed().saturating_sub(PROBE_PERIOD));
    }
}
