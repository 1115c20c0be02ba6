//! Loom models of `park::block_on` and its `Signal` waker (bridge/park.rs),
//! the waiting half of every hand-off: a thread blocks on a future that
//! another thread makes ready and then wakes, and never misses that wake.
#![cfg(bridge_loom)]

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use bridge::loom_api;
use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::sync::{Arc, Mutex};
use loom_tests::{model, model_both_ways, Coverage};

/// The smallest hand-off: ready once `needed` completers have each added one
/// to `done` and then woken whatever waker the last poll left.
#[derive(Clone)]
struct Handoff {
    done: Arc<AtomicUsize>,
    needed: usize,
    waker: Arc<Mutex<Option<Waker>>>,
    /// Polls so far: plain `std`, outside the model, for coverage only.
    polls: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl Handoff {
    fn new() -> Self {
        Self::needing(1)
    }

    fn needing(needed: usize) -> Self {
        Handoff {
            done: Arc::new(AtomicUsize::new(0)),
            needed,
            waker: Arc::new(Mutex::new(None)),
            polls: Default::default(),
        }
    }

    /// Notes whether the last `block_on` returned from its first poll or
    /// had to wait for the wake.
    fn note(&self, cov: &Coverage) {
        let polls = self.polls.load(std::sync::atomic::Ordering::Relaxed);
        cov.hit(if polls == 1 {
            "ready at the first poll"
        } else {
            "waited for the wake"
        });
    }

    fn is_ready(&self) -> bool {
        self.done.load(Ordering::Acquire) >= self.needed
    }

    /// The other thread's side: publish, then wake.
    fn complete(&self) {
        self.done.fetch_add(1, Ordering::Release);
        let waker = self.waker.lock().unwrap().take();
        if let Some(w) = waker {
            w.wake();
        }
    }
}

impl Future for Handoff {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.polls
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        // Register first, then check: a completion after the check finds the waker.
        *self.waker.lock().unwrap() = Some(cx.waker().clone());
        if self.is_ready() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

/// One hand-off: `block_on` returns once the other thread has made the
/// future ready and woken it, in every interleaving of the wake with the
/// poll, the `woken` check and the park (loom reports a park that is never
/// unparked as a deadlock).
#[test]
fn block_on_sees_the_wake() {
    let cov = Coverage::new();
    let c = cov.clone();
    model_both_ways(move |o| {
        let h = Handoff::new();
        let (other, mine) = (h.clone(), h.clone());
        o.race(move || other.complete(), move || loom_api::block_on(mine));
        assert!(h.is_ready());
        h.note(&c);
    });
    cov.assert_seen(&["ready at the first poll", "waited for the wake"]);
}

/// Two hand-offs in a row on one thread, both completed by one other thread:
/// the cached per-thread waker is reused, and a wake left over from the
/// first round (a stale `woken` flag or unpark token) can only cause an
/// extra poll, never a missed second wake or an early return.
#[test]
fn block_on_twice_reuses_the_waker() {
    let cov = Coverage::new();
    let c = cov.clone();
    model_both_ways(move |o| {
        let (a, b) = (Handoff::new(), Handoff::new());
        let (a2, b2) = (a.clone(), b.clone());
        let (a3, b3) = (a.clone(), b.clone());
        o.race(
            move || {
                a2.complete();
                b2.complete();
            },
            move || {
                loom_api::block_on(a3.clone());
                assert!(a3.is_ready());
                loom_api::block_on(b3);
            },
        );
        assert!(b.is_ready());
        a.note(&c);
        b.note(&c);
    });
    cov.assert_seen(&["ready at the first poll", "waited for the wake"]);
}

/// The hand-off as the crate composes it: a `ConcurrentFuture` awaited
/// through `block_on` while another thread completes its promise. The
/// future's waker path and the `Signal` together lose no wake-up, and the
/// value arrives.
#[test]
fn block_on_a_concurrent_future() {
    model_both_ways(|o| {
        let (p, f) = bridge::promise::<u32>();
        let ((), v) = o.race(move || p.set_result(7), move || loom_api::block_on(f));
        assert_eq!(v.unwrap(), 7);
    });
}

/// Two threads each complete half of a future and wake it, concurrently:
/// the `Signal` takes two racing wakes (two swaps, two unparks), the waiter
/// may re-poll between them and re-register, and `block_on` still returns
/// only once both halves are in, never parking past the last wake. Run with
/// the waiter spawned first, second and last.
#[test]
fn block_on_woken_by_two_threads() {
    let cov = Coverage::new();
    let c = cov.clone();
    for waiter_at in 0..3 {
        let c = c.clone();
        model(move || {
            let h = Handoff::needing(2);
            let mut threads = Vec::new();
            for slot in 0..3 {
                let h = h.clone();
                threads.push(if slot == waiter_at {
                    loom::thread::spawn(move || loom_api::block_on(h))
                } else {
                    loom::thread::spawn(move || h.complete())
                });
            }
            for t in threads {
                t.join().unwrap();
            }
            assert!(h.is_ready());
            h.note(&c);
        });
    }
    cov.assert_seen(&["ready at the first poll", "waited for the wake"]);
}
