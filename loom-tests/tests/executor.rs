//! Loom models of the executor pool's growth, bound, close and completion
//! order (bridge/pool.rs), run on the real pool: `Executor` and its threads,
//! with the state lock, the condvar and the threads swapped for loom's.
//! Every model checks: every admitted job runs exactly once, a refused one
//! never runs, never more than `max` jobs run at once nor more than `max`
//! threads exist, and the pool ends shut down with its counts at zero.
//!
//! Waits happen on actor threads and pool threads, never on the model's main
//! thread, which joins (see `Orientation` in lib.rs for why).
#![cfg(bridge_loom)]

use std::time::Duration;

use bridge::{promise, ConcurrentFuture, Error, Executor};
use loom::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use loom::sync::Arc;
use loom::thread;
use loom_tests::shut_down;

/// Jobs running now and jobs run so far, checked against the bound.
#[derive(Clone)]
struct Running {
    now: Arc<AtomicUsize>,
    ran: Arc<AtomicUsize>,
    max: usize,
}

impl Running {
    fn new(max: usize) -> Running {
        Running {
            now: Arc::new(AtomicUsize::new(0)),
            ran: Arc::new(AtomicUsize::new(0)),
            max,
        }
    }

    /// Submits a job that records itself; returns its future.
    fn submit(&self, ex: &Executor, v: u32) -> ConcurrentFuture<u32> {
        let r = self.clone();
        ex.run(move || {
            let n = r.now.fetch_add(1, SeqCst) + 1;
            assert!(n <= r.max, "{n} jobs ran at once, max {}", r.max);
            r.ran.fetch_add(1, SeqCst);
            r.now.fetch_sub(1, SeqCst);
            v
        })
    }

    fn ran(&self) -> usize {
        self.ran.load(SeqCst)
    }
}

fn pool(max: usize, idle_timeout: Duration) -> Executor {
    Executor::builder()
        .max_threads(max)
        .idle_timeout(idle_timeout)
        .build()
}

/// Two submitters race for a pool of one thread: at most one thread, both
/// jobs run, one at a time.
#[test]
fn two_submitters_one_thread() {
    loom::model(|| {
        let ex = pool(1, Duration::MAX);
        let r = Running::new(1);
        let (e, r2) = (ex.clone(), r.clone());
        let t = thread::spawn(move || r2.submit(&e, 1).wait().unwrap());
        let e = ex.clone();
        let r3 = r.clone();
        let u = thread::spawn(move || {
            let v = r3.submit(&e, 2).wait().unwrap();
            assert!(e.threads() <= 1);
            v
        });
        assert_eq!(t.join().unwrap() + u.join().unwrap(), 3);
        assert_eq!(r.ran(), 2);
        shut_down(ex);
    });
}

/// A submission races `close`: an admitted job runs even though the pool
/// closed right after, a refused one resolves to `LoopClosed` and never
/// runs, and the pool drains.
#[test]
fn submit_vs_close() {
    loom::model(|| {
        let ex = pool(2, Duration::MAX);
        let r = Running::new(2);
        let first = r.submit(&ex, 1);
        let (e, r2) = (ex.clone(), r.clone());
        let t = thread::spawn(move || {
            let second = r2.submit(&e, 2).wait();
            (first.wait().unwrap(), second)
        });
        ex.close();
        let (one, second) = t.join().unwrap();
        assert_eq!(one, 1);
        match second {
            Ok(2) => assert_eq!(r.ran(), 2),
            Err(Error::LoopClosed) => assert_eq!(r.ran(), 1),
            other => panic!("unexpected {other:?}"),
        }
        shut_down(ex);
    });
}

/// An idle thread retires (its idle timeout runs out at once under loom)
/// while a job is submitted: the job is never stranded, and there is never
/// more than one thread.
#[test]
fn retire_vs_submit() {
    loom::model(|| {
        let ex = pool(1, Duration::from_millis(1));
        let r = Running::new(1);
        let (e, r2) = (ex.clone(), r.clone());
        let t = thread::spawn(move || {
            assert_eq!(r2.submit(&e, 1).wait().unwrap(), 1);
            assert_eq!(r2.submit(&e, 2).wait().unwrap(), 2);
            assert!(e.threads() <= 1);
        });
        t.join().unwrap();
        assert_eq!(r.ran(), 2);
        shut_down(ex);
    });
}

/// A done-callback that submits to its own pool and waits (bug 2 of issue
/// 11), with one free slot: the callback runs on the pool thread that
/// completes the job (the job waits until the callback is registered), and
/// its job must get the pool's second thread. Counting the completing thread
/// idle before its callbacks ran would leave the callback waiting for
/// itself: a deadlock.
#[test]
fn callback_submits_and_waits() {
    loom::model(|| {
        let ex = pool(2, Duration::MAX);
        let e = ex.clone();
        let t = thread::spawn(move || {
            let (release, gate) = promise::<()>();
            let first = e.run(move || gate.wait().is_ok());
            let (done, from_callback) = promise::<Result<u32, Error>>();
            let inner = e.clone();
            first.add_done_callback(move || done.set_result(inner.run(|| 2).wait()));
            release.set_result(());
            (
                first.wait().unwrap(),
                from_callback.wait().unwrap().unwrap(),
            )
        });
        assert_eq!(t.join().unwrap(), (true, 2));
        shut_down(ex);
    });
}

/// One job at a time on a pool of two: the second submission may come while
/// the first job's thread is still publishing its outcome, when the
/// submitter waits a grace (a yield under loom) for that thread rather than
/// spawn one, then decides again under the lock. Both jobs run, and the
/// decision after the grace never strands the second job.
#[test]
fn one_job_at_a_time_while_the_last_thread_finishes() {
    loom::model(|| {
        let ex = pool(2, Duration::MAX);
        let r = Running::new(2);
        let (e, r2) = (ex.clone(), r.clone());
        let t = thread::spawn(move || {
            assert_eq!(r2.submit(&e, 1).wait().unwrap(), 1);
            assert_eq!(r2.submit(&e, 2).wait().unwrap(), 2);
        });
        t.join().unwrap();
        assert_eq!(r.ran(), 2);
        shut_down(ex);
    });
}
