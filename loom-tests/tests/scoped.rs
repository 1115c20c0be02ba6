//! Loom models of the borrowing hand-off (bridge/scoped.rs): a future that
//! borrows from its caller's stack runs on another thread, and the caller
//! leaves only after the future has finished and been dropped there, on
//! every path: finished, panicked, aborted before or during its run.
//!
//! The executor here is a stand-in for tokio (one thread per task that polls
//! it, or drops it once aborted, then publishes "over" with Release, as a
//! join handle does); the frame, the task and the erasure are the crate's.
//! The frame's output slot is a loom cell, so a read by the caller that could
//! race the task's write fails the model; the drop counter is read Relaxed
//! after the caller's wait, so a drop that did not happen-before the return
//! fails it too.
#![cfg(bridge_loom)]

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use bridge::loom_api::{self, ModelSpawner, ModelTask};
use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::sync::{Arc, Condvar, Mutex};
use loom_tests::model;

/// One task's state, shared by its caller and its executor thread.
#[derive(Default)]
struct State {
    over: bool,
    abort: bool,
}

type Join = Arc<(Mutex<State>, Condvar)>;

/// Sets a flag when woken (the executor's own thread polls and wakes).
struct Flag(std::sync::atomic::AtomicBool);

impl std::task::Wake for Flag {
    fn wake(self: std::sync::Arc<Self>) {
        self.0.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Spawns one loom thread per task: it polls the task while it makes
/// progress, sleeps while it is pending, and drops it once aborted.
struct Threads;

impl ModelSpawner for Threads {
    type Join = Join;

    fn spawn(&self, mut task: ModelTask) -> Join {
        let join: Join = Arc::new((Mutex::new(State::default()), Condvar::new()));
        let j = join.clone();
        loom::thread::spawn(move || {
            let flag = std::sync::Arc::new(Flag(Default::default()));
            let waker = Waker::from(flag.clone());
            let mut cx = Context::from_waker(&waker);
            let (lock, cv) = &*j;
            loop {
                if lock.lock().unwrap().abort {
                    drop(task); // cancelled: the runtime drops the task
                    break;
                }
                flag.0.store(false, std::sync::atomic::Ordering::Relaxed);
                if task.poll(&mut cx).is_ready() {
                    drop(task);
                    break;
                }
                if !flag.0.load(std::sync::atomic::Ordering::Relaxed) {
                    // Pending with no wake-up coming: only an abort ends it.
                    let mut st = lock.lock().unwrap();
                    while !st.abort {
                        st = cv.wait(st).unwrap();
                    }
                }
            }
            // The join handle resolves after the task's poll or drop returned.
            lock.lock().unwrap().over = true;
            cv.notify_all();
        });
        join
    }

    fn wait(&self, join: &mut Join, give_up: bool) -> bool {
        let (lock, cv) = &**join;
        let mut st = lock.lock().unwrap();
        while !st.over {
            if give_up {
                return false;
            }
            st = cv.wait(st).unwrap();
        }
        true
    }

    fn abort(&self, join: &Join) {
        let (lock, cv) = &**join;
        lock.lock().unwrap().abort = true;
        cv.notify_all();
    }
}

/// Counts its drops in a counter borrowed from the caller.
struct Probe<'a>(&'a AtomicUsize);

impl Drop for Probe<'_> {
    fn drop(&mut self) {
        // ORDERING: Relaxed on purpose: the caller must see it through the
        // hand-off's own happens-before edge.
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

/// Pending (and woken at once) `n` times, then ready: a future that is
/// polled more than once. `usize::MAX`: pending forever, never woken.
struct YieldTimes(usize);

impl Future for YieldTimes {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        match self.0 {
            0 => Poll::Ready(()),
            usize::MAX => Poll::Pending,
            _ => {
                self.0 -= 1;
                cx.waker().wake_by_ref();
                Poll::Pending
            }
        }
    }
}

/// A caller whose future borrows `input` and `dropped`, and writes `out`.
fn caller(yields: usize, timeout: bool) -> (Result<usize, bridge::Error>, usize, Option<usize>) {
    let input = String::from("borrowed");
    let dropped = AtomicUsize::new(0);
    let mut out = None;
    // Made outside the future, so a task dropped before its first poll
    // drops it too.
    let probe = Probe(&dropped);
    let (input_ref, out_ref) = (&input, &mut out);
    let r = loom_api::scoped_block_on(
        &Threads,
        async move {
            let _probe = probe;
            YieldTimes(yields).await;
            *out_ref = Some(input_ref.len());
            input_ref.len() * 2
        },
        timeout,
    );
    (r, dropped.load(Ordering::Relaxed), out)
}

#[test]
fn two_callers_finish_and_drop_before_return() {
    model(|| {
        let other = loom::thread::spawn(|| caller(1, false));
        let (r, dropped, out) = caller(0, false);
        assert_eq!(r.unwrap(), 16);
        assert_eq!(dropped, 1);
        assert_eq!(out, Some(8));
        let (r, dropped, out) = other.join().unwrap();
        assert_eq!(r.unwrap(), 16);
        assert_eq!(dropped, 1);
        assert_eq!(out, Some(8));
    });
}

#[test]
fn two_callers_that_give_up_wait_for_the_drop() {
    model(|| {
        let other = loom::thread::spawn(|| caller(1, true));
        let (r, dropped, out) = caller(usize::MAX, true);
        // Never ready: cancelled (before or after its first poll), then dropped.
        assert!(matches!(r, Err(bridge::Error::Timeout)), "{r:?}");
        assert_eq!(dropped, 1);
        assert_eq!(out, None);
        // Ready after one yield: either finished in the race (its value) or
        // cancelled first (Timeout); dropped before return either way.
        let (r, dropped, out) = other.join().unwrap();
        match r {
            Ok(v) => {
                assert_eq!(v, 16);
                assert_eq!(out, Some(8));
            }
            Err(e) => {
                assert!(matches!(e, bridge::Error::Timeout), "{e:?}");
                assert_eq!(out, None);
            }
        }
        assert_eq!(dropped, 1);
    });
}

#[test]
fn a_panicking_future_is_dropped_before_the_caller_hears_of_it() {
    model(|| {
        let dropped = AtomicUsize::new(0);
        let other = loom::thread::spawn(|| caller(0, false));
        let r: Result<(), _> = loom_api::scoped_block_on(
            &Threads,
            async {
                let _probe = Probe(&dropped);
                YieldTimes(1).await;
                panic!("in the borrowing future");
            },
            false,
        );
        assert!(matches!(r, Err(bridge::Error::Panicked(_))), "{r:?}");
        assert_eq!(dropped.load(Ordering::Relaxed), 1);
        assert_eq!(other.join().unwrap().0.unwrap(), 16);
    });
}
