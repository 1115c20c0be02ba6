//! Spin, then park: the waiting strategy of every synchronous wait.
//!
//! A hand-off to another thread that finishes in a few microseconds should
//! not pay for a sleep and a wake-up (tens of microseconds on an idle vCPU:
//! see benches/README.md, "floor"),
//! and a wait that lasts milliseconds should not burn a core. So a waiter first
//! spins for a short, bounded budget, checking its condition, and only then
//! registers itself and parks.
//!
//! The budget adapts per thread: a wait that ended inside the spin doubles it
//! (up to [`MAX_SPIN`]); a wait that had to park halves it (down to
//! [`MIN_SPIN`]). A thread whose waits are long quickly stops spinning; a
//! thread in a tight request/response loop keeps the fast path. Spinning
//! always stops within [`MAX_SPIN`] of the last activity, so an idle process
//! uses no CPU.
//!
//! Under `bridge_loom` there is no spin: the condition is checked once and the
//! caller falls through to its park path, which is what the models check.

use crate::sync::plain::Arc as StdArc; // `Waker::from` needs std's Arc; not a model concern
use std::future::Future;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use crate::sync::{AtomicBool, Ordering, Thread};

/// The longest a waiter spins before parking.
pub(crate) const MAX_SPIN: Duration = Duration::from_micros(50);
/// The shortest spin budget a thread falls back to. Kept low: a higher floor
/// steadies a single caller's latency, but with more spinning callers than
/// cores it takes the CPU from the worker (benches/README.md, "contention").
#[cfg_attr(bridge_loom, allow(dead_code))] // under loom there is no spin
pub(crate) const MIN_SPIN: Duration = Duration::from_micros(2);

/// How long a waiter spins once it has woken a loop that was asleep: about
/// the 90th percentile of a thread's wake-up on an idle vCPU here (median
/// 57-74 us, p90 95-135 us). The loop's answer then usually finds the waiter
/// still spinning, so a cold call pays one wake-up (the loop's) instead of
/// two (the loop's, then the waiter's). This is CPU spent during a call,
/// never while idle.
#[cfg_attr(bridge_loom, allow(dead_code))] // under loom there is no spin
pub(crate) const WAKE_UP_SPIN: Duration = Duration::from_micros(150);

#[cfg(not(bridge_loom))]
std::thread_local! {
    // Not a model concern: a per-thread tuning value, never shared.
    static BUDGET: std::cell::Cell<Duration> = const { std::cell::Cell::new(Duration::from_micros(20)) };
    // Until when this thread's next wait spins: set when it woke a loop.
    static WOKE_UNTIL: std::cell::Cell<Option<Instant>> = const { std::cell::Cell::new(None) };
}

/// Tells this thread's next wait ([`spin_wait`]) that it has just woken a
/// sleeping loop: it spins up to [`WAKE_UP_SPIN`] before it parks.
#[cfg(not(bridge_loom))]
pub(crate) fn expect_wake_up() {
    let until = Instant::now() + WAKE_UP_SPIN;
    let _ = WOKE_UNTIL.try_with(|w| w.set(Some(until)));
}

/// Under loom: no spin, nothing to expect.
#[cfg(bridge_loom)]
pub(crate) fn expect_wake_up() {}

/// The spin of a waiter: [`spin_until`], or, right after this thread woke a
/// sleeping loop ([`expect_wake_up`]), a spin until the loop has had time to
/// wake up and answer. The longer spin is only for a thread whose waits
/// usually end while it spins (its adaptive budget is above the floor): a
/// thread whose waits are long anyway (a handler waiting for a slow
/// upstream) would burn [`WAKE_UP_SPIN`] per call for nothing. A long spin
/// that fails halves the budget, as any failed spin does.
#[cfg(not(bridge_loom))]
pub(crate) fn spin_wait(mut done: impl FnMut() -> bool) -> bool {
    let until = WOKE_UNTIL.try_with(|w| w.take()).ok().flatten();
    let budget = BUDGET.with(|b| b.get());
    match until {
        Some(until) if budget > MIN_SPIN => {
            let mut step = 0u32;
            loop {
                if done() {
                    return true;
                }
                std::hint::spin_loop();
                step = step.wrapping_add(1);
                if step % 32 == 0 && Instant::now() >= until {
                    BUDGET.with(|b| b.set((budget / 2).max(MIN_SPIN)));
                    return done();
                }
            }
        }
        _ => spin_until(done),
    }
}

/// Under loom: check once, never spin.
#[cfg(bridge_loom)]
pub(crate) fn spin_wait(mut done: impl FnMut() -> bool) -> bool {
    done()
}

/// Spins until `done()` returns true or this thread's budget runs out.
/// Returns whether `done()` became true.
#[cfg(not(bridge_loom))]
pub(crate) fn spin_until(mut done: impl FnMut() -> bool) -> bool {
    if done() {
        return true;
    }
    let budget = BUDGET.with(|b| b.get());
    let start = Instant::now();
    let mut step = 0u32;
    loop {
        // One pause between checks: a backoff to 64 pauses (over a
        // microsecond on common x86 parts) notices a hand-off that finished
        // in under a microsecond late. The conditions polled are single loads
        // of lines the other side writes once, so checking often costs it
        // nothing.
        std::hint::spin_loop();
        if done() {
            BUDGET.with(|b| b.set((budget * 2).min(MAX_SPIN)));
            return true;
        }
        step = step.wrapping_add(1);
        // The clock is read every 32 checks, not every check (a read costs
        // about as much as a check).
        if step % 32 == 0 && start.elapsed() >= budget {
            BUDGET.with(|b| b.set((budget / 2).max(MIN_SPIN)));
            return false;
        }
    }
}

/// Under loom: check once, never spin.
#[cfg(bridge_loom)]
pub(crate) fn spin_until(mut done: impl FnMut() -> bool) -> bool {
    done()
}

/// The spin of a waiter that waits on one peer over and over (a stream's
/// producer waiting for room, its consumer waiting for items), when the
/// two may share a core: between checks it gives its core away
/// ([`yield_now`](std::thread::yield_now)) instead of pausing on it.
///
/// * With a free core, a check costs a system call, and the wait ends within
///   a microsecond of the peer's hand-over, without a sleep and a wake-up on
///   either side (tens of microseconds each on an idle vCPU).
/// * With the peer on the same core, the yield lets it run at once, where a
///   busy spin would hold the core it waits for until preempted.
/// * With a third thread on the same core (a CPU-bound neighbour), the
///   scheduler (EEVDF since Linux 6.6) runs that thread for a whole time
///   slice before coming back: one yield then costs milliseconds. A yield
///   that took longer than [`MAX_SPIN`] shows this thread lost its core, and
///   its waits do not spin for [`COOLDOWN`] after that: they park at once,
///   as without a spin. (Without this, beside two CPU-bound processes on a
///   2-core machine, a stream of 10,000 items took 0.3-0.6 s now and then
///   instead of 1-25 ms.)
///
/// The budget adapts as [`spin_until`]'s, but per waiter, not per thread: a
/// wait that ended in the spin doubles it (up to [`MAX_SPIN`]), one that ran
/// out halves it (down to [`MIN_SPIN`]), so a peer that is slow anyway (an
/// iterator whose `next()` reads a file) soon costs only [`MIN_SPIN`] per
/// wait.
#[derive(Debug)]
pub(crate) struct YieldSpin {
    budget: Duration,
    /// When the wait being spread over several polls began
    /// ([`keep_yielding`](Self::keep_yielding)).
    since: Option<Instant>,
}

/// How long a thread whose yield lost its core does not spin in a
/// [`YieldSpin`]: long enough that retrying costs at most a few percent of
/// a contended core, short enough to spin again soon after the contention.
#[cfg_attr(bridge_loom, allow(dead_code))] // under loom there is no spin
const COOLDOWN: Duration = Duration::from_millis(100);

#[cfg(not(bridge_loom))]
std::thread_local! {
    // Not a model concern: a per-thread tuning value, never shared.
    static NO_SPIN_UNTIL: std::cell::Cell<Option<Instant>> = const { std::cell::Cell::new(None) };
}

impl YieldSpin {
    pub(crate) fn new() -> YieldSpin {
        YieldSpin {
            budget: Duration::from_micros(20),
            since: None,
        }
    }

    #[cfg_attr(bridge_loom, allow(dead_code))] // under loom there is no spin
    fn ended_in_spin(&mut self) {
        self.budget = (self.budget * 2).min(MAX_SPIN);
    }

    #[cfg_attr(bridge_loom, allow(dead_code))] // under loom there is no spin
    fn ran_out(&mut self) {
        self.budget = (self.budget / 2).max(MIN_SPIN);
    }

    /// Whether this thread may spin: it has not lost its core to a yield
    /// in the last [`COOLDOWN`]. (During thread teardown: no.)
    #[cfg(not(bridge_loom))]
    fn may_spin() -> bool {
        NO_SPIN_UNTIL
            .try_with(|c| c.get().is_none_or(|until| Instant::now() >= until))
            .unwrap_or(false)
    }

    /// Gives this thread's core away once; a yield that took longer than
    /// [`MAX_SPIN`] starts the [`COOLDOWN`].
    #[cfg(not(bridge_loom))]
    fn pause() {
        let start = Instant::now();
        std::thread::yield_now();
        let now = Instant::now();
        if now.duration_since(start) > MAX_SPIN {
            let _ = NO_SPIN_UNTIL.try_with(|c| c.set(Some(now + COOLDOWN)));
        }
    }

    /// Yields this thread between checks until `done()` returns true or the
    /// budget runs out; returns whether `done()` became true. For a sync
    /// waiter, which then parks.
    #[cfg(not(bridge_loom))]
    pub(crate) fn yield_until(&mut self, mut done: impl FnMut() -> bool) -> bool {
        let start = Instant::now();
        loop {
            if done() {
                self.ended_in_spin();
                return true;
            }
            if !Self::may_spin() {
                return false;
            }
            Self::pause();
            if start.elapsed() >= self.budget {
                self.ran_out();
                return done();
            }
        }
    }

    /// Under loom: check once, never spin.
    #[cfg(bridge_loom)]
    pub(crate) fn yield_until(&mut self, mut done: impl FnMut() -> bool) -> bool {
        done()
    }

    /// For an async waiter that found nothing, a spin spread over its
    /// polls: whether to yield this thread and poll again (the caller wakes
    /// its own task and returns `Pending`) rather than register its waker.
    /// The first call starts the wait; [`waited`](Self::waited) ends it.
    #[cfg(not(bridge_loom))]
    pub(crate) fn keep_yielding(&mut self) -> bool {
        if !Self::may_spin() {
            self.since = None;
            return false;
        }
        let now = Instant::now();
        let since = *self.since.get_or_insert(now);
        if now.duration_since(since) < self.budget {
            Self::pause();
            true
        } else {
            self.since = None;
            self.ran_out();
            false
        }
    }

    /// Under loom: never spin; the model checks the waker path.
    #[cfg(bridge_loom)]
    pub(crate) fn keep_yielding(&mut self) -> bool {
        false
    }

    /// The async waiter found what it waited for: a wait that ended while
    /// it was yielding counts as ended in the spin.
    pub(crate) fn waited(&mut self) {
        if self.since.take().is_some() {
            self.ended_in_spin();
        }
    }
}

/// Parks this thread until `done()` returns true (`true`) or `deadline`
/// passes (`false`, unless `done()` became true by then): the wait after the
/// spin, for every sync wait of the crate. Whoever makes `done()` true
/// unparks this thread afterwards (a wake-up that comes first is kept by
/// the thread's park token).
pub(crate) fn park_until(mut done: impl FnMut() -> bool, deadline: Option<Instant>) -> bool {
    loop {
        if done() {
            return true;
        }
        match deadline {
            None => crate::sync::park(),
            Some(d) => match remaining(d) {
                Some(left) => crate::sync::park_timeout(left),
                None => return done(),
            },
        }
    }
}

/// Time left until `deadline`, or `None` once it has passed.
pub(crate) fn remaining(deadline: Instant) -> Option<Duration> {
    deadline
        .checked_duration_since(Instant::now())
        .filter(|d| !d.is_zero())
}

/// Wakes the thread that is blocked in [`block_on`].
struct Signal {
    woken: AtomicBool,
    /// Whether a `block_on` on this thread is using this (the cached) signal.
    in_use: AtomicBool,
    thread: Thread,
}

impl std::task::Wake for Signal {
    fn wake(self: StdArc<Self>) {
        self.wake_by_ref()
    }

    fn wake_by_ref(self: &StdArc<Self>) {
        // ORDERING: Release pairs with the waiter's Acquire swap, so what the
        // waking side did before waking is visible to the re-poll.
        // A swap, not a store: the same in the C++ memory model, but loom
        // 0.7 lets a later RMW read past a plain store that races an earlier
        // RMW (tokio-rs/loom#254), which made the park model report a false
        // lost wake-up. On the wake path (an unpark follows) the cost is nil.
        self.woken.swap(true, Ordering::Release);
        // A thread that is spinning has no park token to consume: unpark only
        // sets it, so this costs no system call then.
        self.thread.unpark();
    }
}

fn new_signal() -> (StdArc<Signal>, Waker) {
    let signal = StdArc::new(Signal {
        woken: AtomicBool::new(false),
        in_use: AtomicBool::new(false),
        thread: crate::sync::current_thread(),
    });
    let waker = Waker::from(signal.clone());
    (signal, waker)
}

crate::sync::thread_local! {
    static SIGNAL: (StdArc<Signal>, Waker) = new_signal();
}

/// Polls `fut` to completion on this thread, spinning briefly and then
/// parking between polls. The waker is cached per thread (no allocation
/// after the first call; during thread teardown, when the cache is gone, a
/// fresh one is made). The waker is live from the first poll, so a future
/// that keeps its first waker is woken like any other.
///
/// Re-entrant: if `fut` itself blocks on this thread with this function (an
/// inline `block_on_safe` nested in another), the inner call uses a fresh
/// signal of its own, so it cannot consume a wake-up meant for the outer one.
pub(crate) fn block_on<F: Future>(fut: F) -> F::Output {
    match block_on_until(fut, None) {
        Some(v) => v,
        None => unreachable!("no deadline"),
    }
}

/// [`block_on`] that gives up at `deadline`: `None` if `fut` was not ready by
/// then (it is dropped unfinished).
pub(crate) fn block_on_until<F: Future>(fut: F, deadline: Option<Instant>) -> Option<F::Output> {
    let mut fut = Some(fut);
    let mut run = |(signal, waker): &(StdArc<Signal>, Waker)| {
        let mut fut = std::pin::pin!(fut.take().expect("polled by one path"));
        let mut cx = Context::from_waker(waker);
        loop {
            if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
                return Some(v);
            }
            // ORDERING: Relaxed peek, then an Acquire swap that pairs with the
            // waker's Release store.
            let woken = || {
                signal.woken.load(Ordering::Relaxed) && signal.woken.swap(false, Ordering::Acquire)
            };
            if !spin_wait(woken) && !park_until(woken, deadline) {
                return None;
            }
        }
    };
    let cached = SIGNAL.try_with(|s| {
        // ORDERING: Relaxed: only this thread reads or writes `in_use`.
        if s.0.in_use.swap(true, Ordering::Relaxed) {
            return None; // nested: the outer call owns the cached signal
        }
        struct Release<'a>(&'a AtomicBool);
        impl Drop for Release<'_> {
            fn drop(&mut self) {
                // ORDERING: Relaxed: as above.
                self.0.store(false, Ordering::Relaxed);
            }
        }
        let _release = Release(&s.0.in_use);
        Some(run(s))
    });
    match cached {
        Ok(Some(v)) => v,
        // Nested, or during thread teardown when the cache is gone.
        Ok(None) | Err(_) => run(&new_signal()),
    }
}

/// Spins before the worker parks, until a task is queued for it or the
/// spin budget runs out.
///
/// It watches the runtime's injection queue, where every task submitted from
/// another thread lands, rather than a counter of submissions: a submission
/// that arrived while the worker was finishing its previous task is already
/// in the queue when this runs, and must end the spin at once (tokio then
/// finds it before parking), not after the whole budget.
/// Returns whether a task came (else the thread is about to sleep).
pub(crate) fn spin_before_park(runtime: &tokio::runtime::Handle) -> bool {
    let metrics = runtime.metrics();
    spin_until(|| metrics.global_queue_depth() > 0)
}
