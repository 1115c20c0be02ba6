//! Loom models of the executor pool's sleep/wake handshake (`Sleep` in
//! bridge/pool.rs, "Sleeping and waking" in its module docs): an idle thread
//! registers in `sleepers` under the sleep lock, re-reads the state word and
//! parks on the condvar; a submitter, after its `admit`, reads `sleepers` and
//! hands one credit under the lock; `close` hands one to every sleeper.
//!
//! The idle threads here run the pool's loop (`Shared::wait_for_work`)
//! without its spin: the spin only reads the state word, and finding work
//! there leads to the same `leave_wait` as finding it on the re-read. The
//! state word is the pool's own `Counts`, and the wake decision its own
//! `wake_needed`. Under loom a timed wait unlocks, yields, relocks and
//! reports a timeout (bridge/sync.rs, `Condvar::wait_for`), so the timed
//! model explores the timeout landing anywhere around a wake; an untimed
//! wait that nobody notifies is a deadlock, which loom reports: that is how
//! a lost wake-up shows. Every model ends with no thread counted in
//! `sleepers` and no credit left untaken.
#![cfg(bridge_loom)]

use std::time::Duration;

use bridge::loom_api::{wake_needed, Admit, Counts, Next, Sleep, Woke};
use loom::sync::Arc;
use loom_tests::{model_both_ways, model_rotations, race3, Coverage};

struct Pool {
    counts: Counts,
    sleep: Sleep,
}

/// A pool of `n` threads (at most `n`), all idle (counted in `waiting`),
/// with nothing queued: each was spawned for a job, ran it, and found no
/// other.
fn idle_pool(n: usize) -> Arc<Pool> {
    let counts = Counts::new();
    for _ in 0..n {
        assert_eq!(counts.admit(n), Ok(Admit::Spawn));
    }
    for _ in 0..n {
        assert_eq!(counts.after_job(), Next::Run);
    }
    for _ in 0..n {
        assert_eq!(counts.after_job(), Next::Wait);
    }
    Arc::new(Pool {
        counts,
        sleep: Sleep::new(),
    })
}

/// `Shared::wait_for_work` (without the spin): returns the thread's next
/// step and how each of its parks ended.
fn wait_for_work(p: &Pool, timeout: Option<Duration>) -> (Next, Vec<Woke>) {
    let mut parks = Vec::new();
    loop {
        let woke = p.sleep.sleep(
            || {
                let s = p.counts.snapshot();
                s.queued() > 0 || s.is_closed()
            },
            timeout,
        );
        parks.push(woke);
        if woke == Woke::TimedOut && p.counts.retire() {
            return (Next::Exit, parks);
        }
        if let Some(next) = p.counts.leave_wait() {
            return (next, parks);
        }
    }
}

/// `Shared::submit` then `wake_if_needed` on a pool of at most `max`
/// threads: returns the admission and whether a credit was handed out.
fn submit(p: &Pool, max: usize) -> (Admit, bool) {
    let admit = p.counts.admit(max).expect("the pool is open");
    let credited = match admit {
        Admit::Queue(after) => p.sleep.wake_one_if(|sleepers| wake_needed(after, sleepers)),
        Admit::Spawn => false,
    };
    (admit, credited)
}

/// One idle thread parks with no timeout while a submitter queues a job and
/// wakes: no lost wake-up. Either the sleeper sees the job on its re-read
/// (and the submitter finds no sleeper, or finds it gone under the lock), or
/// the submitter sees it registered and its credit wakes it; it then takes
/// the job. A lost wake-up would leave it parked forever (a deadlock).
#[test]
fn sleeper_vs_submit_no_lost_wakeup() {
    let cov = Coverage::new();
    let c = cov.clone();
    model_both_ways(move |o| {
        let pool = idle_pool(1);
        let (p1, p2) = (pool.clone(), pool.clone());
        let ((next, parks), (admit, credited)) =
            o.race(move || wait_for_work(&p1, None), move || submit(&p2, 1));
        assert!(matches!(admit, Admit::Queue(_)), "{admit:?}");
        assert_eq!(next, Next::Run);
        assert_eq!(parks, [Woke::Work]);
        c.hit(if credited {
            "woken by the credit"
        } else {
            "saw the job on the re-read"
        });
        assert_eq!(pool.sleep.counts(), (0, 0), "(sleepers, credits)");
        let s = pool.counts.snapshot();
        assert_eq!((s.threads(), s.waiting(), s.queued()), (1, 0, 0), "{s:?}");
    });
    let tally = cov.assert_seen(&["woken by the credit", "saw the job on the re-read"]);
    eprintln!("sleeper_vs_submit_no_lost_wakeup: {tally:?}");
}

/// An idle thread's timed park runs out while a submitter queues a job and
/// wakes it: a credit handed out is taken (the thread runs the job instead
/// of retiring), never left behind; a thread that timed out with no credit
/// finds the job when it tries to retire, or has retired before the
/// admission, which then spawns a thread for it. The job is never stranded.
#[test]
fn timeout_vs_wake() {
    let cov = Coverage::new();
    let c = cov.clone();
    model_both_ways(move |o| {
        let pool = idle_pool(1);
        let (p1, p2) = (pool.clone(), pool.clone());
        let ((next, parks), (admit, credited)) = o.race(
            move || wait_for_work(&p1, Some(Duration::from_secs(1))),
            move || submit(&p2, 1),
        );
        assert_eq!(pool.sleep.counts(), (0, 0), "(sleepers, credits)");
        if credited {
            assert_eq!((next, &parks[..]), (Next::Run, &[Woke::Work][..]));
            c.hit("timed out, took the credit");
        } else {
            match (next, &parks[..], admit) {
                (Next::Run, [Woke::Work], Admit::Queue(_)) => c.hit("saw the job on the re-read"),
                (Next::Run, [Woke::TimedOut], Admit::Queue(_)) => {
                    c.hit("timed out, found the job instead of retiring")
                }
                (Next::Exit, [Woke::TimedOut], Admit::Spawn) => {
                    // The thread spawned for the job takes it.
                    assert_eq!(pool.counts.after_job(), Next::Run);
                    c.hit("retired, the submitter spawned a thread");
                }
                other => panic!("unexpected outcome {other:?}"),
            }
        }
        let s = pool.counts.snapshot();
        assert_eq!((s.threads(), s.waiting(), s.queued()), (1, 0, 0), "{s:?}");
    });
    let tally = cov.assert_seen(&[
        "timed out, took the credit",
        "saw the job on the re-read",
        "timed out, found the job instead of retiring",
        "retired, the submitter spawned a thread",
    ]);
    eprintln!("timeout_vs_wake: {tally:?}");
}

/// Two idle threads park with no timeout while the pool closes
/// (`Shared::close`: `Counts::close`, then `wake_all`): each either sees the
/// close on its re-read or gets a credit, and both exit; a sleeper left
/// without a credit would park forever (a deadlock).
#[test]
fn close_wakes_every_sleeper() {
    let cov = Coverage::new();
    let c = cov.clone();
    model_rotations(move |rotation| {
        let pool = idle_pool(2);
        let (p1, p2, p3) = (pool.clone(), pool.clone(), pool.clone());
        let ((n1, parks1), (n2, parks2), woken) = race3(
            rotation,
            move || wait_for_work(&p1, None),
            move || wait_for_work(&p2, None),
            move || {
                assert!(p3.counts.close());
                p3.sleep.wake_all()
            },
        );
        assert_eq!((n1, n2), (Next::Exit, Next::Exit));
        assert_eq!(
            (&parks1[..], &parks2[..]),
            (&[Woke::Work][..], &[Woke::Work][..])
        );
        c.hit(
            [
                "no sleeper left to wake",
                "woke one sleeper",
                "woke both sleepers",
            ][woken],
        );
        assert_eq!(pool.sleep.counts(), (0, 0), "(sleepers, credits)");
        let s = pool.counts.snapshot();
        assert!(s.is_closed());
        assert_eq!((s.threads(), s.waiting(), s.queued()), (0, 0, 0), "{s:?}");
    });
    let tally = cov.assert_seen(&[
        "no sleeper left to wake",
        "woke one sleeper",
        "woke both sleepers",
    ]);
    eprintln!("close_wakes_every_sleeper: {tally:?}");
}
