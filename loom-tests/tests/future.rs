//! Loom models of `ConcurrentFuture` and `Promise` (bridge/future.rs): every
//! race between the completing half, the waiting half (sync and async),
//! cancellation, done-callbacks and the drop of either half.
//!
//! Every model ends with both halves gone, so loom's leak check also proves
//! that the shared `Inner` (a loom `Arc`) is freed in every interleaving.
//! Each two-actor model runs in both orientations and asserts the outcome
//! classes it reached (see `loom_tests::Orientation` for why).
#![cfg(bridge_loom)]

use std::task::Poll;
use std::time::Duration;

use bridge::loom_api;
use bridge::{promise, ConcurrentFuture, Error};
use loom::sync::Arc;
use loom::thread;
use loom_tests::{
    counting_waker, model_both_ways, model_rotations, poll_once, race3, Counter, Coverage,
    DropCounter,
};

/// Takes the future back once every other clone of the `Arc` is gone.
fn unshare<T>(f: Arc<ConcurrentFuture<T>>) -> ConcurrentFuture<T> {
    Arc::try_unwrap(f).unwrap_or_else(|_| panic!("the future is still shared"))
}

/// Complete vs cancel: exactly one outcome wins and every observer agrees on
/// it (`cancel()`'s return, `cancelled()`, the waited result), and the value
/// is dropped exactly once whoever wins (by the reader, or by the promise or
/// the shared state when the cancel came first).
#[test]
fn complete_vs_cancel() {
    let cov = Coverage::new();
    let c = cov.clone();
    model_both_ways(move |o| {
        let drops = DropCounter::new();
        let (p, f) = promise();
        let f = Arc::new(f);
        let (d, f2) = (drops.clone(), f.clone());
        let ((), cancelled) = o.race(
            move || p.set_result(d.value(7)),
            move || {
                let cancelled = f2.cancel();
                assert_eq!(f2.cancelled(), cancelled);
                cancelled
            },
        );
        let f = unshare(f);
        assert!(f.done());
        assert_eq!(f.cancelled(), cancelled);
        match f.wait() {
            Ok(v) => {
                assert!(
                    !cancelled,
                    "cancel() returned true but the value was delivered"
                );
                assert_eq!(v.value, 7);
                assert_eq!(drops.drops(), 0);
                c.hit("completed");
            }
            Err(Error::Cancelled) => {
                assert!(cancelled, "Cancelled without a successful cancel()");
                c.hit("cancelled");
            }
            Err(e) => panic!("unexpected outcome {e:?}"),
        }
        assert_eq!(drops.drops(), 1, "the value must be dropped exactly once");
    });
    cov.assert_seen(&["completed", "cancelled"]);
}

/// Complete vs a sync waiter: a thread in `wait()` (which registers itself
/// and parks via `crate::sync::park`) always receives the value; the
/// completer's unpark is never lost, whether it comes before the waiter
/// registers, between its registration and its park, or after (loom reports
/// a thread parked forever as a deadlock).
#[test]
fn complete_vs_sync_waiter() {
    model_both_ways(|o| {
        let drops = DropCounter::new();
        let (p, f) = promise();
        let d = drops.clone();
        let ((), v) = o.race(
            move || p.set_result(d.value(7)),
            move || f.wait().expect("completed with a value"),
        );
        assert_eq!(v.value, 7);
        assert_eq!(drops.drops(), 0);
        drop(v);
        assert_eq!(drops.drops(), 1);
    });
}

/// Two threads waiting on one future through `&self`
/// (`wait_timeout(Duration::MAX)` is an untimed wait) vs complete: both are
/// woken (the slow path keeps every parked thread, not just the last). Run
/// with the completer spawned first and last.
#[test]
fn complete_vs_two_sync_waiters() {
    for completer_first in [true, false] {
        loom_tests::model(move || {
            let (p, f) = promise::<u32>();
            let f = Arc::new(f);
            let waiter =
                |f: Arc<ConcurrentFuture<u32>>| move || assert!(f.wait_timeout(Duration::MAX));
            let completer = move || p.set_result(7);
            let mut threads = Vec::new();
            let mut completer = Some(completer);
            if completer_first {
                threads.push(thread::spawn(completer.take().unwrap()));
            }
            threads.push(thread::spawn(waiter(f.clone())));
            threads.push(thread::spawn(waiter(f.clone())));
            if let Some(c) = completer {
                threads.push(thread::spawn(c));
            }
            for t in threads {
                t.join().unwrap();
            }
            assert_eq!(unshare(f).wait().unwrap(), 7);
        });
    }
}

/// Cancel vs a sync waiter: a cancel from another thread wakes a parked
/// waiter, which then sees `Cancelled`; the promise dropped afterwards
/// changes nothing.
#[test]
fn cancel_vs_sync_waiter() {
    model_both_ways(|o| {
        let (p, f) = promise::<u32>();
        let f = Arc::new(f);
        let (f1, f2) = (f.clone(), f.clone());
        let (cancelled, done) = o.race(move || f1.cancel(), move || f2.wait_timeout(Duration::MAX));
        assert!(cancelled && done);
        drop(p);
        assert!(matches!(unshare(f).wait(), Err(Error::Cancelled)));
    });
}

/// How the async waiter of [`async_waiter`] polls before it waits.
#[derive(Clone, Copy, PartialEq)]
enum Polls {
    /// One poll, then wait for the wake.
    One,
    /// A second poll with a clone of the same waker (`will_wake` keeps the
    /// registration).
    TwiceSameWaker,
    /// A second poll with a different waker, which replaces the first.
    TwiceNewWaker,
}

/// The body of the async-waiter models: poll (once or twice, see [`Polls`])
/// while another thread completes. No lost wake-up: when the last poll
/// returned `Pending`, the waker it registered is woken exactly once (never
/// one it replaced) and the next poll is `Ready`; no waker is woken twice,
/// and every clone the future kept is released.
fn async_waiter(polls: Polls) {
    let cov = Coverage::new();
    let c = cov.clone();
    model_both_ways(move |o| {
        let (p, mut f) = promise::<u32>();
        let c = c.clone();
        let ((), (got, mut f, (first, first_count), (last, last_count))) = o.race(
            move || p.set_result(7),
            move || {
                let (first, first_count) = counting_waker();
                let (last, last_count) = match polls {
                    Polls::TwiceNewWaker => counting_waker(),
                    _ => (first.clone(), first_count.clone()),
                };
                let mut got = None;
                if let Poll::Ready(r) = poll_once(&mut f, &first) {
                    c.hit("ready at the first poll");
                    got = Some(r);
                } else if polls == Polls::One {
                    c.hit("woken after a Pending poll");
                } else if let Poll::Ready(r) = poll_once(&mut f, &last) {
                    c.hit("ready at the second poll");
                    got = Some(r);
                } else {
                    c.hit("woken after a Pending poll");
                }
                (got, f, (first, first_count), (last, last_count))
            },
        );
        match got {
            Some(r) => assert_eq!(r.unwrap(), 7),
            None => {
                // The last poll was Pending: the completion came after that
                // registration and must have woken its waker.
                assert_eq!(last_count.wakes(), 1, "lost wake-up");
                if polls == Polls::TwiceNewWaker {
                    assert_eq!(first_count.wakes(), 0, "woke a waker that was replaced");
                }
                match poll_once(&mut f, &last) {
                    Poll::Ready(r) => assert_eq!(r.unwrap(), 7),
                    Poll::Pending => panic!("woken, yet Pending after completion"),
                }
            }
        }
        if polls == Polls::TwiceNewWaker {
            assert!(first_count.wakes() + last_count.wakes() <= 1);
        } else {
            assert!(first_count.wakes() <= 1);
        }
        drop((f, first, last));
        assert!(
            first_count.released() && last_count.released(),
            "a waker clone leaked"
        );
    });
    let mut expected = vec!["ready at the first poll", "woken after a Pending poll"];
    if polls != Polls::One {
        expected.push("ready at the second poll");
    }
    cov.assert_seen(&expected);
}

/// Complete vs an async waiter that polls once and then waits: see
/// [`async_waiter`].
#[test]
fn complete_vs_async_waiter() {
    async_waiter(Polls::One);
}

/// Complete vs an async waiter that re-registers a *different* waker on its
/// second poll: see [`async_waiter`].
#[test]
fn complete_vs_async_waiter_new_waker() {
    async_waiter(Polls::TwiceNewWaker);
}

/// Complete vs an async waiter that polls twice with the *same* waker: see
/// [`async_waiter`].
#[test]
fn complete_vs_async_waiter_same_waker() {
    async_waiter(Polls::TwiceSameWaker);
}

/// Callbacks added (from another thread) while the promise completes: each
/// runs exactly once, on whichever thread gets there, and the future dropped
/// right after adding them (detached) loses none.
#[test]
fn callbacks_added_while_completing() {
    let cov = Coverage::new();
    let c = cov.clone();
    model_both_ways(move |o| {
        let (p, f) = promise::<u32>();
        let (c1, c2) = (Counter::new(), Counter::new());
        let (k1, k2) = (c1.clone(), c2.clone());
        let c = c.clone();
        o.race(
            move || p.set_result(1),
            move || {
                let adder = thread::current().id();
                f.add_done_callback(move || {
                    k1.incr();
                    c.hit(if thread::current().id() == adder {
                        "run at once by the adder"
                    } else {
                        "run by the completer"
                    });
                });
                f.add_done_callback(move || k2.incr());
            },
        );
        assert_eq!((c1.get(), c2.get()), (1, 1));
    });
    cov.assert_seen(&["run by the completer", "run at once by the adder"]);
}

/// A callback added while the future is cancelled from another thread (and
/// the promise then completes anyway): it runs exactly once.
#[test]
fn callback_added_while_cancelling() {
    let cov = Coverage::new();
    let c = cov.clone();
    model_both_ways(move |o| {
        let (p, f) = promise::<u32>();
        let f = Arc::new(f);
        let runs = Counter::new();
        let (f1, f2, r) = (f.clone(), f.clone(), runs.clone());
        let c = c.clone();
        o.race(
            move || {
                assert!(f1.cancel());
                p.set_result(1);
            },
            move || {
                let adder = thread::current().id();
                f2.add_done_callback(move || {
                    r.incr();
                    c.hit(if thread::current().id() == adder {
                        "run at once by the adder"
                    } else {
                        "run by the canceller"
                    });
                })
            },
        );
        assert_eq!(runs.get(), 1);
    });
    cov.assert_seen(&["run by the canceller", "run at once by the adder"]);
}

/// The future dropped (after a poll that may have registered a waker) while
/// the promise completes: the value is dropped exactly once, the registered
/// waker is woken at most once and released, and the shared state is freed.
#[test]
fn future_dropped_while_completing() {
    let cov = Coverage::new();
    let c = cov.clone();
    model_both_ways(move |o| {
        let drops = DropCounter::new();
        let (p, mut f) = promise();
        let d = drops.clone();
        let c = c.clone();
        let ((), (waker, count)) = o.race(
            move || p.set_result(d.value(7)),
            move || {
                let (waker, count) = counting_waker();
                match poll_once(&mut f, &waker) {
                    Poll::Ready(v) => {
                        assert_eq!(v.unwrap().value, 7);
                        c.hit("read before the drop");
                    }
                    Poll::Pending => c.hit("dropped while registered"),
                }
                drop(f);
                (waker, count)
            },
        );
        assert_eq!(drops.drops(), 1);
        assert!(count.wakes() <= 1);
        drop(waker);
        assert!(count.released(), "the registered waker leaked");
    });
    cov.assert_seen(&["read before the drop", "dropped while registered"]);
}

/// The promise dropped without completing while a thread waits: the waiter
/// is woken with `Cancelled` (never hangs).
#[test]
fn promise_dropped_while_sync_waiting() {
    model_both_ways(|o| {
        let (p, f) = promise::<u32>();
        let ((), r) = o.race(move || drop(p), move || f.wait());
        assert!(matches!(r, Err(Error::Cancelled)));
    });
}

/// The promise dropped without completing while a task awaits: the task's
/// waker is woken (or the poll is already `Ready(Cancelled)`).
#[test]
fn promise_dropped_while_async_waiting() {
    let cov = Coverage::new();
    let c = cov.clone();
    model_both_ways(move |o| {
        let (p, mut f) = promise::<u32>();
        let ((), (first, mut f, waker, count)) = o.race(
            move || drop(p),
            move || {
                let (waker, count) = counting_waker();
                let first = poll_once(&mut f, &waker);
                (first, f, waker, count)
            },
        );
        let r = match first {
            Poll::Ready(r) => {
                c.hit("ready at once");
                r
            }
            Poll::Pending => {
                c.hit("woken");
                assert_eq!(count.wakes(), 1, "lost wake-up");
                match poll_once(&mut f, &waker) {
                    Poll::Ready(r) => r,
                    Poll::Pending => panic!("Pending after the promise was dropped"),
                }
            }
        };
        assert!(matches!(r, Err(Error::Cancelled)));
        drop((f, waker));
        assert!(count.released());
    });
    cov.assert_seen(&["ready at once", "woken"]);
}

/// Both halves dropped at once on two threads, a callback registered first:
/// the callback runs once (the promise's drop resolves the future to
/// `Cancelled`), and the shared state is freed exactly once.
#[test]
fn both_halves_dropped_concurrently() {
    model_both_ways(|o| {
        let (p, f) = promise::<u32>();
        let runs = Counter::new();
        let r = runs.clone();
        f.add_done_callback(move || r.incr());
        o.race(move || drop(p), move || drop(f));
        assert_eq!(runs.get(), 1);
    });
}

/// `set_running` vs `cancel`: exactly one succeeds. If the job started, its
/// value is delivered; if it was cancelled first, the executor sees that
/// (`set_running` false, `is_cancelled` true) and never runs the work.
#[test]
fn set_running_vs_cancel() {
    let cov = Coverage::new();
    let c = cov.clone();
    model_both_ways(move |o| {
        let drops = DropCounter::new();
        let (p, f) = promise();
        let f = Arc::new(f);
        let (d, f2) = (drops.clone(), f.clone());
        let (started, cancelled) = o.race(
            move || {
                let started = p.set_running();
                assert_eq!(p.is_cancelled(), !started);
                if started {
                    p.set_result(d.value(7));
                }
                started
            },
            move || f2.cancel(),
        );
        assert_ne!(
            started, cancelled,
            "exactly one of set_running and cancel must win"
        );
        c.hit(if started { "started" } else { "cancelled" });
        match unshare(f).wait() {
            Ok(v) => {
                assert!(started);
                assert_eq!(v.value, 7);
            }
            Err(Error::Cancelled) => assert!(cancelled),
            Err(e) => panic!("unexpected outcome {e:?}"),
        }
        assert_eq!(drops.drops(), usize::from(started));
    });
    cov.assert_seen(&["started", "cancelled"]);
}

/// `wait_timeout(ZERO)` vs complete: it returns `done()` truthfully, it
/// never consumes or loses the result, and the thread registration it made
/// is cleaned up so a later `wait` still gets the value. (Only a zero
/// timeout: under loom a timed park is a yield while the deadline is real
/// time, so a non-zero timeout would make the number of steps depend on the
/// clock, which a model must not.)
#[test]
fn wait_timeout_zero_vs_complete() {
    let cov = Coverage::new();
    let c = cov.clone();
    model_both_ways(move |o| {
        let drops = DropCounter::new();
        let (p, f) = promise();
        let d = drops.clone();
        let c = c.clone();
        let ((), f) = o.race(
            move || p.set_result(d.value(3)),
            move || {
                if f.wait_timeout(Duration::ZERO) {
                    assert!(f.done());
                    c.hit("done in time");
                } else {
                    c.hit("timed out");
                }
                f
            },
        );
        assert!(f.done());
        assert_eq!(f.wait().unwrap().value, 3);
        assert_eq!(drops.drops(), 1);
    });
    cov.assert_seen(&["done in time", "timed out"]);
}

/// `wait_for(ZERO)` vs complete: the outcome is the value or `Timeout`
/// (then the work was cancelled, or had finished too late to be read), and
/// the value is dropped exactly once either way.
#[test]
fn wait_for_zero_vs_complete() {
    let cov = Coverage::new();
    let c = cov.clone();
    model_both_ways(move |o| {
        let drops = DropCounter::new();
        let (p, f) = promise();
        let d = drops.clone();
        let ((), r) = o.race(
            move || p.set_result(d.value(3)),
            move || f.wait_for(Duration::ZERO),
        );
        match r {
            Ok(v) => {
                assert_eq!(v.value, 3);
                c.hit("value");
            }
            Err(Error::Timeout) => c.hit("timeout"),
            Err(e) => panic!("unexpected outcome {e:?}"),
        }
        assert_eq!(drops.drops(), 1);
    });
    cov.assert_seen(&["value", "timeout"]);
}

/// Waiting on the thread that must run the work (its home) never blocks:
/// `wait` returns the value if it is already there, `WouldDeadlock`
/// otherwise, whatever the other thread does meanwhile.
#[test]
fn wait_on_home_thread_vs_complete() {
    let cov = Coverage::new();
    let c = cov.clone();
    model_both_ways(move |o| {
        let (p, f) = loom_api::pair_with_home::<u32>(5);
        let ((), r) = o.race(
            move || p.set_result(7),
            move || {
                let _home = loom_api::enter_home("home", 5);
                f.wait()
            },
        );
        match r {
            Ok(v) => {
                assert_eq!(v, 7);
                c.hit("value");
            }
            Err(Error::WouldDeadlock) => c.hit("would deadlock"),
            Err(e) => panic!("unexpected outcome {e:?}"),
        }
    });
    cov.assert_seen(&["value", "would deadlock"]);
}

/// The unread-panic report race: a promise completing with a panic vs the
/// future dropped unread. Both sides set their bit with one read-modify-write
/// of the state word, so exactly one side (the one that sees the other's bit)
/// reports; both sides do report in some interleaving.
#[test]
fn unread_panic_reported_exactly_once() {
    let cov = Coverage::new();
    let c = cov.clone();
    model_both_ways(move |o| {
        let (p, f) = promise::<u32>();
        let (by_promise, by_future) = o.race(
            move || {
                p.complete(Err(loom_api::panicked("boom")));
                loom_api::unread_panic_reports()
            },
            move || {
                drop(f);
                loom_api::unread_panic_reports()
            },
        );
        assert_eq!(
            by_promise + by_future,
            1,
            "an unread panic must be reported exactly once"
        );
        c.hit(if by_promise == 1 {
            "reported by the promise"
        } else {
            "reported by the future's drop"
        });
    });
    cov.assert_seen(&["reported by the promise", "reported by the future's drop"]);
}

/// A panic that is read is never reported, and a panic that arrives after a
/// successful cancel is never reported either (nobody could have read it).
#[test]
fn panic_read_or_cancelled_is_not_reported() {
    let cov = Coverage::new();
    let c = cov.clone();
    model_both_ways(move |o| {
        let (p, f) = promise::<u32>();
        let c = c.clone();
        let (by_promise, by_future) = o.race(
            move || {
                p.complete(Err(loom_api::panicked("boom")));
                loom_api::unread_panic_reports()
            },
            move || {
                if f.cancel() {
                    c.hit("cancelled");
                    drop(f);
                } else {
                    match f.wait() {
                        Err(Error::Panicked(e)) => assert_eq!(e.message(), "boom"),
                        other => panic!("unexpected outcome {other:?}"),
                    }
                    c.hit("read");
                }
                loom_api::unread_panic_reports()
            },
        );
        assert_eq!(by_promise + by_future, 0);
    });
    cov.assert_seen(&["cancelled", "read"]);
}

/// Three actors: the promise completes, another thread cancels, a third
/// waits (parked, through `&self`). Exactly one outcome wins, the waiter is
/// always woken, `cancel()` returns true exactly when the outcome is
/// `Cancelled`, and the value is dropped exactly once.
#[test]
fn complete_vs_cancel_vs_sync_waiter() {
    let cov = Coverage::new();
    let c = cov.clone();
    model_rotations(move |rotation| {
        let drops = DropCounter::new();
        let (p, f) = promise();
        let f = Arc::new(f);
        let (d, f1, f2) = (drops.clone(), f.clone(), f.clone());
        let ((), cancelled, woken) = race3(
            rotation,
            move || p.set_result(d.value(7)),
            move || f1.cancel(),
            move || f2.wait_timeout(Duration::MAX),
        );
        assert!(woken);
        match unshare(f).wait() {
            Ok(v) => {
                assert!(!cancelled);
                assert_eq!(v.value, 7);
                c.hit("completed");
            }
            Err(Error::Cancelled) => {
                assert!(cancelled);
                c.hit("cancelled");
            }
            Err(e) => panic!("unexpected outcome {e:?}"),
        }
        assert_eq!(drops.drops(), 1);
    });
    cov.assert_seen(&["completed", "cancelled"]);
}

/// Three actors: the promise completes, another thread cancels, a third
/// adds a done-callback. The callback runs exactly once, whoever wins and
/// whenever it was added.
#[test]
fn complete_vs_cancel_vs_callback() {
    let cov = Coverage::new();
    let c = cov.clone();
    model_rotations(move |rotation| {
        let (p, f) = promise::<u32>();
        let f = Arc::new(f);
        let runs = Counter::new();
        let (f1, f2, r) = (f.clone(), f.clone(), runs.clone());
        let ((), cancelled, ()) = race3(
            rotation,
            move || p.set_result(7),
            move || f1.cancel(),
            move || f2.add_done_callback(move || r.incr()),
        );
        assert_eq!(runs.get(), 1, "the callback must run exactly once");
        c.hit(if cancelled { "cancelled" } else { "completed" });
        assert_eq!(unshare(f).cancelled(), cancelled);
    });
    cov.assert_seen(&["completed", "cancelled"]);
}
