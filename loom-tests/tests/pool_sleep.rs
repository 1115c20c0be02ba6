//! Loom models of the executor pool's park and wake-up (bridge/pool.rs, "No
//! lost wake-up"), run on the real pool: `Executor` and its threads, with the
//! state lock, the condvar and the threads swapped for loom's.
//!
//! `loom_api::prestart` starts the pool's threads before any job, so they
//! race to park while jobs arrive; under loom an idle thread does not spin
//! (it goes straight to the check under the lock). A pool with no idle
//! timeout parks with an untimed wait, so a lost wake-up leaves a job queued
//! while a thread sleeps forever: when the jobs wait for each other that is
//! a deadlock, which loom reports. Under loom a timed wait unlocks, yields,
//! relocks and reports a timeout (bridge/sync.rs, `Condvar::wait_for`), so
//! the timed model explores the timeout landing anywhere around a wake.
//! Every model ends with the pool shut down and its counts at zero: no
//! thread, no idle or parked thread, no wake-up left untaken, no job.
//!
//! Waits (`ConcurrentFuture::wait`) happen on actor threads and on pool
//! threads, never on the model's main thread, which joins (see
//! `Orientation` in lib.rs for why).
#![cfg(bridge_loom)]

use std::time::Duration;

use bridge::loom_api::prestart;
use bridge::{promise, Executor};
use loom_tests::shut_down;

/// Runs `model` under loom with the environment's preemption bound (CI: 2;
/// these models start real pool threads, too many for the suite's usual
/// minimum of 3), printing how many executions loom explored.
fn model<F: Fn() + Sync + Send + 'static>(model: F) {
    let runs = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = runs.clone();
    let builder = loom::model::Builder::new();
    let bound = builder.preemption_bound;
    builder.check(move || {
        counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        model()
    });
    eprintln!(
        "{}: {} executions, preemption bound {bound:?}",
        std::thread::current().name().unwrap_or("model"),
        runs.load(std::sync::atomic::Ordering::Relaxed),
    );
}

/// A pool of at most `max` threads, all started and idle, never retiring
/// unless `idle_timeout` says so.
fn started_pool(max: usize, idle_timeout: Option<Duration>) -> Executor {
    let ex = Executor::builder()
        .max_threads(max)
        .idle_timeout(idle_timeout.unwrap_or(Duration::MAX))
        .build();
    prestart(&ex, max);
    ex
}

/// Two submitters against two parked threads (bug 1 of issue 11): the main
/// thread and an actor each submit one job at the same moment, and each job
/// waits until the other has started, so they finish only if each gets its
/// own thread. Two jobs waking one thread leaves the other job queued while a
/// thread sleeps: a deadlock. The actor waits for its job `b`, which finishes
/// only once `a` has started (so `a` finishes too); only then does the main
/// thread shut down, whose close would otherwise wake the sleeper and hide a
/// lost wake-up.
#[test]
fn two_submitters_two_parked_threads_no_lost_wakeup() {
    model(|| {
        let ex = started_pool(2, None);
        let (started_a, a_started) = promise::<()>();
        let (started_b, b_started) = promise::<()>();
        let e = ex.clone();
        let actor = loom::thread::spawn(move || {
            let b = e.run(move || {
                started_b.set_result(());
                a_started.wait().is_ok()
            });
            b.wait()
        });
        drop(ex.run(move || {
            started_a.set_result(());
            assert!(b_started.wait().is_ok());
        }));
        assert!(actor.join().unwrap().unwrap());
        shut_down(ex);
    });
}

/// A parked thread's idle timeout runs out while a job is submitted: the job
/// runs (on that thread, which takes the wake-up or finds the job instead of
/// retiring, or on a new thread if it retired first), and the pool never
/// holds more than its one thread.
#[test]
fn timeout_vs_submit() {
    model(|| {
        let ex = started_pool(1, Some(Duration::from_secs(1)));
        let e = ex.clone();
        let got = loom::thread::spawn(move || {
            let v = e.run(|| 5).wait();
            assert!(e.threads() <= 1);
            v
        })
        .join()
        .unwrap();
        assert_eq!(got.unwrap(), 5);
        shut_down(ex);
    });
}

/// The pool closes while its two threads park: each sees the close under the
/// lock or is handed a wake-up, and both exit, so `shutdown` returns.
#[test]
fn close_wakes_every_parked_thread() {
    model(|| {
        let ex = started_pool(2, None);
        shut_down(ex);
    });
}
