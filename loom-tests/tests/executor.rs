//! Loom models of the executor pool's accounting (`Counts` in
//! bridge/pool.rs): the one state word that admits jobs, decides when to
//! spawn a thread, lets idle threads reserve jobs or retire, and closes.
//!
//! The threads here run the same protocol as the pool's threads
//! (`Shared::work`): `after_job` after every job, `leave_wait` (and, when
//! idle long enough, `retire`) while idle. The queue is a locked `VecDeque`
//! standing in for the lock-free one, and an idle thread blocks on a condvar
//! under that lock that every push and the close signal (loom cannot explore
//! two threads that spin waiting for a third); the pool's own spin-then-park
//! with its `sleepers` count is modelled on its own in `pool_sleep.rs`.
//! Every model checks:
//! every admitted job runs exactly once, no job runs after being refused,
//! never more than `max` jobs run at once nor more than `max` threads exist,
//! and the pool ends closed with no thread, no idle thread and no job left.
#![cfg(bridge_loom)]

use std::collections::VecDeque;

use bridge::loom_api::{Admit, Counts, Next};
use loom::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use loom::sync::{Arc, Condvar, Mutex};
use loom::thread::{self, JoinHandle};

struct Pool {
    counts: Counts,
    max: usize,
    queue: Mutex<VecDeque<u32>>,
    /// Signalled under `queue` by every push and by the close.
    pushed: Condvar,
    ran: Mutex<Vec<u32>>,
    running: AtomicUsize,
    /// Idle threads retire at their first idle check (an idle timeout of 0).
    retire_when_idle: bool,
    /// Worker threads spawned, for the main thread to join.
    workers: Mutex<Vec<JoinHandle<()>>>,
}

impl Pool {
    fn new(max: usize, retire_when_idle: bool) -> Arc<Pool> {
        Arc::new(Pool {
            counts: Counts::new(),
            max,
            queue: Mutex::new(VecDeque::new()),
            pushed: Condvar::new(),
            ran: Mutex::new(Vec::new()),
            running: AtomicUsize::new(0),
            retire_when_idle,
            workers: Mutex::new(Vec::new()),
        })
    }

    /// `Shared::submit`: returns whether the job was admitted.
    fn submit(pool: &Arc<Pool>, job: u32) -> bool {
        let this = &**pool;
        match this.counts.admit(this.max) {
            Err(_) => false,
            Ok(admit) => {
                assert!(this.counts.snapshot().threads() <= this.max);
                this.queue.lock().unwrap().push_back(job);
                this.pushed.notify_all();
                if admit == Admit::Spawn {
                    let pool = pool.clone();
                    let handle = thread::spawn(move || pool.work());
                    this.workers.lock().unwrap().push(handle);
                }
                true
            }
        }
    }

    /// `Shared::work`.
    fn work(&self) {
        let mut next = self.counts.after_job();
        loop {
            next = match next {
                Next::Run => {
                    let job = {
                        // The push may still be in flight after the admit.
                        let mut q = self.queue.lock().unwrap();
                        loop {
                            match q.pop_front() {
                                Some(job) => break job,
                                None => q = self.pushed.wait(q).unwrap(),
                            }
                        }
                    };
                    let now = self.running.fetch_add(1, SeqCst) + 1;
                    assert!(now <= self.max, "{now} jobs ran at once, max {}", self.max);
                    self.ran.lock().unwrap().push(job);
                    self.running.fetch_sub(1, SeqCst);
                    self.counts.after_job()
                }
                Next::Wait => {
                    let mut q = self.queue.lock().unwrap();
                    loop {
                        if let Some(next) = self.counts.leave_wait() {
                            break next;
                        }
                        if self.retire_when_idle && self.counts.retire() {
                            break Next::Exit;
                        }
                        q = self.pushed.wait(q).unwrap();
                    }
                }
                Next::Exit => return,
            }
        }
    }

    /// `Shared::close`: close, then wake every idle thread.
    fn close(&self) {
        self.counts.close();
        let _q = self.queue.lock().unwrap();
        self.pushed.notify_all();
    }

    /// Closes, joins every worker, and checks the end state.
    fn close_and_check(&self, admitted: &[u32]) {
        self.close();
        loop {
            let handle = self.workers.lock().unwrap().pop();
            match handle {
                Some(h) => h.join().unwrap(),
                None => break,
            }
        }
        let mut ran = self.ran.lock().unwrap().clone();
        ran.sort_unstable();
        let mut want = admitted.to_vec();
        want.sort_unstable();
        assert_eq!(ran, want, "admitted jobs and jobs run differ");
        let s = self.counts.snapshot();
        assert!(s.is_closed());
        assert_eq!((s.threads(), s.waiting(), s.queued()), (0, 0, 0), "{s:?}");
        assert!(self.queue.lock().unwrap().is_empty());
    }
}

/// Two submitters race for a pool of one thread: one thread is spawned at
/// most, both jobs run, one at a time.
#[test]
fn two_submitters_one_thread() {
    loom::model(|| {
        let pool = Pool::new(1, false);
        let p = pool.clone();
        let t = thread::spawn(move || assert!(Pool::submit(&p, 1)));
        assert!(Pool::submit(&pool, 2));
        t.join().unwrap();
        pool.close_and_check(&[1, 2]);
    });
}

/// A submission races `close`: an admitted job runs even though the pool
/// closed right after, a refused one never runs, and the pool drains.
#[test]
fn submit_vs_close() {
    loom::model(|| {
        let pool = Pool::new(2, false);
        assert!(Pool::submit(&pool, 1));
        let p = pool.clone();
        let t = thread::spawn(move || Pool::submit(&p, 2));
        pool.close();
        let second = t.join().unwrap();
        let admitted: &[u32] = if second { &[1, 2] } else { &[1] };
        pool.close_and_check(admitted);
    });
}

/// An idle thread retires at the moment a job is submitted: either the
/// thread takes the job, or the submission sees it gone and spawns another;
/// the job is never stranded and there is never more than one thread.
#[test]
fn retire_vs_submit() {
    loom::model(|| {
        let pool = Pool::new(1, true);
        assert!(Pool::submit(&pool, 1));
        let p = pool.clone();
        let t = thread::spawn(move || assert!(Pool::submit(&p, 2)));
        t.join().unwrap();
        pool.close_and_check(&[1, 2]);
    });
}

/// A busy thread finishing its job races a submission (the hand-over from
/// busy to idle): the job is taken by the existing thread or a new one,
/// within the bound of two.
#[test]
fn finish_vs_submit_grows_within_bound() {
    loom::model(|| {
        let pool = Pool::new(2, false);
        assert!(Pool::submit(&pool, 1));
        let p = pool.clone();
        let t = thread::spawn(move || {
            assert!(Pool::submit(&p, 2));
            assert!(Pool::submit(&p, 3));
        });
        t.join().unwrap();
        pool.close_and_check(&[1, 2, 3]);
    });
}
