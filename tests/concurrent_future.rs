//! API.md "ConcurrentFuture": waiting, cancelling, callbacks, awaiting from
//! any executor, detach on drop, and `WouldDeadlock`.

#[macro_use]
mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use bridge::{ConcurrentFuture, Error, Loop};
use common::{bounded, Ctx, DropCounter, TIMEOUT};

/// A future on the worker loop that finishes when `go` is sent.
fn gated(value: u32) -> (tokio::sync::oneshot::Sender<()>, ConcurrentFuture<u32>) {
    let (go, rx) = tokio::sync::oneshot::channel::<()>();
    let fut = bridge::worker_loop().spawn(async move {
        let _ = rx.await;
        value
    });
    (go, fut)
}

// ---- done / cancel / cancelled ----

#[test]
fn done_and_cancelled_follow_the_work() {
    bounded("done", || {
        let (go, fut) = gated(1);
        assert!(!fut.done());
        assert!(!fut.cancelled());
        go.send(()).unwrap();
        assert!(fut.wait_timeout(TIMEOUT));
        assert!(fut.done());
        assert!(!fut.cancelled());
        assert!(!fut.cancel(), "cancel after done fails");
        assert!(!fut.cancelled());
        assert_eq!(fut.wait().unwrap(), 1);
    });
}

#[test]
fn cancel_pending_work_drops_it_on_its_loop() {
    bounded("cancel", || {
        let drops = DropCounter::new();
        let tok = drops.token();
        let (dropped_tx, dropped_rx) = mpsc::channel();
        struct OnDrop(mpsc::Sender<Option<String>>);
        impl Drop for OnDrop {
            fn drop(&mut self) {
                let _ = self
                    .0
                    .send(std::thread::current().name().map(str::to_owned));
            }
        }
        let lp = Loop::builder().name("cancel-home").build().unwrap();
        let (started_tx, started_rx) = mpsc::channel();
        let fut = lp.handle().spawn(async move {
            // Dropped in reverse order: the token first, then the signal.
            let _d = OnDrop(dropped_tx);
            let _tok = tok;
            started_tx.send(()).unwrap();
            std::future::pending::<u32>().await
        });
        started_rx.recv_timeout(TIMEOUT).unwrap();
        assert!(fut.cancel());
        assert!(fut.cancelled());
        assert!(fut.done());
        assert!(
            fut.cancel() || fut.cancelled(),
            "a second cancel changes nothing"
        );
        // The work is dropped on its loop soon.
        let on = dropped_rx.recv_timeout(TIMEOUT).expect("work dropped");
        assert_eq!(on.as_deref(), Some("cancel-home"));
        assert_eq!(drops.count(), 1);
        assert!(matches!(fut.wait(), Err(Error::Cancelled)));
        // The loop is fine.
        assert_eq!(lp.handle().block_on(async { 2 }).unwrap(), 2);
    });
}

#[test]
fn cancel_wakes_every_kind_of_waiter() {
    bounded("cancel_wakes", || {
        let (_go, fut) = gated(1);
        let fut = Arc::new(fut);
        let waiter = {
            let fut = fut.clone();
            std::thread::spawn(move || fut.wait_timeout(TIMEOUT))
        };
        let (cb_tx, cb_rx) = mpsc::channel();
        fut.add_done_callback(move || cb_tx.send(()).unwrap());
        assert!(fut.cancel());
        assert!(waiter.join().unwrap(), "wait_timeout woke on cancel");
        cb_rx.recv_timeout(TIMEOUT).unwrap();
        let fut = Arc::try_unwrap(fut).unwrap();
        assert!(matches!(fut.wait(), Err(Error::Cancelled)));

        // An awaiting task is woken too: register its waker with a first
        // poll, then cancel; only the cancel's wake-up can finish the task.
        let rt = common::current_rt();
        let r = rt.block_on(async {
            let (_go, mut fut) = gated(2);
            let mut polled = false;
            std::future::poll_fn(move |cx| {
                use std::future::Future;
                let r = std::pin::Pin::new(&mut fut).poll(cx);
                if !polled {
                    polled = true;
                    assert!(r.is_pending());
                    assert!(fut.cancel());
                    return std::task::Poll::Pending;
                }
                r
            })
            .await
        });
        assert!(matches!(r, Err(Error::Cancelled)), "{r:?}");
        // Dropping the completing half resolves an awaiting task.
        let (promise, fut) = bridge::promise::<u32>();
        let awaiting = rt.spawn(fut);
        drop(promise);
        let r = rt.block_on(awaiting).unwrap();
        assert!(matches!(r, Err(Error::Cancelled)), "{r:?}");
    });
}

// ---- wait / wait_timeout / wait_for ----

fn waits_everywhere(_ctx: Ctx) {
    let (go, fut) = gated(7);
    assert!(!fut.wait_timeout(Duration::from_millis(5)));
    assert!(!fut.done(), "wait_timeout never cancels");
    go.send(()).unwrap();
    assert!(fut.wait_timeout(TIMEOUT));
    assert!(fut.wait_timeout(Duration::ZERO), "never consumes");
    assert_eq!(fut.wait().unwrap(), 7);

    let (go, fut) = gated(8);
    std::thread::spawn(move || go.send(()).unwrap());
    assert_eq!(fut.wait_for(TIMEOUT).unwrap(), 8);

    // A done future's wait never blocks, anywhere.
    let fut = bridge::worker_loop().spawn(async { 9 });
    assert!(fut.wait_timeout(TIMEOUT));
    assert_eq!(fut.wait().unwrap(), 9);
}
every_context!(waits, waits_everywhere);

#[test]
fn wait_for_timeout_cancels_the_work_and_runs_its_destructor() {
    bounded("wait_for", || {
        let (dropped_tx, dropped_rx) = mpsc::channel();
        struct OnDrop(mpsc::Sender<()>);
        impl Drop for OnDrop {
            fn drop(&mut self) {
                let _ = self.0.send(());
            }
        }
        let lp = Loop::new().unwrap();
        // Built outside the future: it must be dropped (and send) even if the
        // task is aborted before its first poll.
        let d = OnDrop(dropped_tx);
        let fut = lp.handle().spawn(async move {
            let _d = d;
            std::future::pending::<u32>().await
        });
        let r = fut.wait_for(Duration::from_millis(20));
        assert!(matches!(r, Err(Error::Timeout)), "{r:?}");
        dropped_rx
            .recv_timeout(TIMEOUT)
            .expect("the timed-out work is dropped on its loop");
        // Same on the worker loop.
        let (dropped_tx, dropped_rx) = mpsc::channel();
        let d = OnDrop(dropped_tx);
        let fut = bridge::worker_loop().spawn(async move {
            let _d = d;
            tokio::time::sleep(Duration::from_secs(3600)).await;
        });
        assert!(matches!(
            fut.wait_for(Duration::from_millis(20)),
            Err(Error::Timeout)
        ));
        dropped_rx.recv_timeout(TIMEOUT).expect("dropped");
    });
}

#[test]
fn many_threads_wait_timeout_on_one_future() {
    bounded("many_waiters", || {
        let (go, fut) = gated(3);
        let fut = Arc::new(fut);
        let barrier = Arc::new(std::sync::Barrier::new(9));
        let waiters: Vec<_> = (0..8)
            .map(|_| {
                let fut = fut.clone();
                let b = barrier.clone();
                std::thread::spawn(move || {
                    b.wait();
                    fut.wait_timeout(TIMEOUT)
                })
            })
            .collect();
        barrier.wait();
        go.send(()).unwrap();
        for w in waiters {
            assert!(w.join().unwrap());
        }
        assert_eq!(Arc::try_unwrap(fut).unwrap().wait().unwrap(), 3);
    });
}

// ---- WouldDeadlock ----

#[test]
fn waiting_on_the_loops_own_thread_would_deadlock() {
    bounded("would_deadlock", || {
        let lp = Loop::new().unwrap();
        let h = lp.handle();
        let h2 = h.clone();
        let (wait_r, timeout_r, wait_for_r, done_r) = h
            .block_on(async move {
                let (go, rx) = tokio::sync::oneshot::channel::<()>();
                let pending = h2.spawn(async move {
                    let _ = rx.await;
                    1u32
                });
                let p2 = h2.spawn(std::future::pending::<u32>());
                let t = p2.wait_timeout(Duration::from_secs(3600));
                let p3 = h2.spawn(std::future::pending::<u32>());
                let wf = p3.wait_for(Duration::from_secs(3600));
                let w = pending.wait();
                drop(go);
                // Already done: waiting is fine even here.
                let (p, done) = bridge::promise::<u32>();
                p.set_result(4);
                (w, t, wf, done.wait())
            })
            .unwrap();
        assert!(matches!(wait_r, Err(Error::WouldDeadlock)), "{wait_r:?}");
        assert!(!timeout_r, "wait_timeout returns false at once");
        assert!(
            matches!(wait_for_r, Err(Error::WouldDeadlock) | Err(Error::Timeout)),
            "{wait_for_r:?}"
        );
        assert_eq!(done_r.unwrap(), 4);
        // Work of *another* loop can be waited for from this loop's thread.
        let other = Loop::new().unwrap();
        let oh = other.handle();
        let v = h
            .block_on(async move { oh.spawn(async { 5 }).wait() })
            .unwrap();
        assert_eq!(v.unwrap(), 5);
        // And a future of this loop that is already done is fine.
        let h3 = h.clone();
        let v = h
            .block_on(async move {
                let f = h3.spawn(async { 6 });
                // Let it run: yield until done.
                while !f.done() {
                    tokio::task::yield_now().await;
                }
                f.wait()
            })
            .unwrap();
        assert_eq!(v.unwrap(), 6);
    });
}

#[test]
fn waiting_on_the_worker_thread_completes() {
    bounded("worker_wait", || {
        let v = bridge::call_blocking(async {
            let f = bridge::worker_loop().spawn(async {
                tokio::time::sleep(Duration::from_millis(1)).await;
                10
            });
            let g = bridge::worker_loop().spawn(async {
                tokio::time::sleep(Duration::from_millis(1)).await;
                20
            });
            assert!(g.wait_timeout(TIMEOUT));
            let h = bridge::worker_loop().spawn(async { 30 });
            f.wait().unwrap() + g.wait().unwrap() + h.wait_for(TIMEOUT).unwrap()
        });
        assert_eq!(v, 60);
    });
}

// ---- awaiting from any executor ----

#[test]
fn awaited_from_tokio_current_and_multi() {
    bounded("await_tokio", || {
        let rt = common::current_rt();
        let (go, fut) = gated(1);
        let v = rt.block_on(async move {
            let t = tokio::spawn(fut);
            tokio::task::yield_now().await;
            go.send(()).unwrap();
            t.await.unwrap()
        });
        assert_eq!(v.unwrap(), 1);
        let rt = common::multi_rt();
        let (go, fut) = gated(2);
        let t = rt.spawn(fut);
        go.send(()).unwrap();
        assert_eq!(rt.block_on(t).unwrap().unwrap(), 2);
    });
}

#[test]
fn awaited_from_futures_executor_and_pollster() {
    bounded("await_futures", || {
        let (go, fut) = gated(3);
        std::thread::spawn(move || go.send(()).unwrap());
        assert_eq!(futures::executor::block_on(fut).unwrap(), 3);
        let (go, fut) = gated(4);
        std::thread::spawn(move || go.send(()).unwrap());
        assert_eq!(pollster::block_on(fut).unwrap(), 4);
        // A loop's future awaited from pollster while that loop works.
        let lp = Loop::new().unwrap();
        let f = lp.handle().spawn(async {
            tokio::time::sleep(Duration::from_millis(2)).await;
            5
        });
        assert_eq!(pollster::block_on(f).unwrap(), 5);
        // futures::executor with several futures at once (re-registered wakers).
        let futs: Vec<_> = (0..10u32)
            .map(|i| {
                bridge::worker_loop().spawn(async move {
                    tokio::time::sleep(Duration::from_millis(u64::from(i % 3))).await;
                    i
                })
            })
            .collect();
        let all = futures::executor::block_on(futures::future::join_all(futs));
        let all: Vec<u32> = all.into_iter().map(Result::unwrap).collect();
        assert_eq!(all, (0..10).collect::<Vec<_>>());
    });
}

#[test]
fn awaited_from_a_bridge_loop_and_across_loops() {
    bounded("await_bridge", || {
        let a = Loop::builder().name("a").build().unwrap();
        let b = Loop::builder().name("b").build().unwrap();
        let ah = a.handle();
        let v = b
            .handle()
            .block_on(async move {
                let f = ah.spawn(async {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    std::thread::current().name().map(str::to_owned)
                });
                let r = f.await.unwrap();
                (r, std::thread::current().name().map(str::to_owned))
            })
            .unwrap();
        assert_eq!(v.0.as_deref(), Some("a"));
        assert_eq!(v.1.as_deref(), Some("b"));
        // Awaiting a future of the same loop from a task of that loop works.
        let ah = a.handle();
        let v = a
            .handle()
            .block_on(async move { ah.spawn(async { 11 }).await })
            .unwrap();
        assert_eq!(v.unwrap(), 11);
        // And inside bridge::run.
        let v = bridge::run(async { bridge::worker_loop().spawn(async { 12 }).await }).unwrap();
        assert_eq!(v.unwrap(), 12);
    });
}

#[test]
fn awaited_from_futures_block_on_inside_a_runtime() {
    bounded("await_nested", || {
        let rt = common::current_rt();
        rt.block_on(async {
            let f = bridge::worker_loop().spawn(async { 13 });
            assert_eq!(f.await.unwrap(), 13);
        });
    });
}

// ---- detach on drop ----

#[test]
fn dropping_the_future_detaches_the_work() {
    bounded("detach", || {
        let (go, rx) = tokio::sync::oneshot::channel::<()>();
        let (side_tx, side_rx) = mpsc::channel();
        let fut = bridge::worker_loop().spawn(async move {
            let _ = rx.await;
            side_tx.send("ran on").unwrap();
        });
        drop(fut);
        go.send(()).unwrap();
        assert_eq!(side_rx.recv_timeout(TIMEOUT).unwrap(), "ran on");
        // On a Loop, and with a panic nobody reads: the loop survives.
        let lp = Loop::new().unwrap();
        drop(lp.handle().spawn(async { panic!("nobody reads this") }));
        let (side_tx, side_rx) = mpsc::channel();
        drop(lp.handle().spawn(async move {
            tokio::time::sleep(Duration::from_millis(1)).await;
            side_tx.send(1).unwrap();
        }));
        assert_eq!(side_rx.recv_timeout(TIMEOUT).unwrap(), 1);
    });
}

// ---- add_done_callback ----

#[test]
fn callback_runs_exactly_once_on_completion() {
    bounded("callback", || {
        let count = Arc::new(AtomicUsize::new(0));
        let (go, fut) = gated(1);
        let (tx, rx) = mpsc::channel();
        for _ in 0..3 {
            let c = count.clone();
            let tx = tx.clone();
            fut.add_done_callback(move || {
                c.fetch_add(1, Ordering::SeqCst);
                tx.send(()).unwrap();
            });
        }
        assert_eq!(count.load(Ordering::SeqCst), 0, "not before completion");
        go.send(()).unwrap();
        for _ in 0..3 {
            rx.recv_timeout(TIMEOUT).unwrap();
        }
        assert_eq!(fut.wait().unwrap(), 1);
        assert_eq!(count.load(Ordering::SeqCst), 3, "each exactly once");
    });
}

#[test]
fn callback_added_after_completion_runs_at_once_on_this_thread() {
    bounded("callback_late", || {
        let fut = bridge::worker_loop().spawn(async { 1 });
        assert!(fut.wait_timeout(TIMEOUT));
        let me = std::thread::current().id();
        let ran = Arc::new(std::sync::Mutex::new(Vec::new()));
        let r = ran.clone();
        fut.add_done_callback(move || r.lock().unwrap().push(std::thread::current().id()));
        assert_eq!(
            *ran.lock().unwrap(),
            vec![me],
            "ran once, here, before returning"
        );
        // After cancel as well.
        let (_go, fut) = gated(2);
        assert!(fut.cancel());
        let r = ran.clone();
        fut.add_done_callback(move || r.lock().unwrap().push(std::thread::current().id()));
        assert_eq!(ran.lock().unwrap().len(), 2);
        // And on a failed (panicked) future.
        let fut = bridge::worker_loop().spawn(async { panic!("x") });
        assert!(fut.wait_timeout(TIMEOUT));
        let r = ran.clone();
        fut.add_done_callback(move || r.lock().unwrap().push(std::thread::current().id()));
        assert_eq!(ran.lock().unwrap().len(), 3);
        assert!(matches!(fut.wait(), Err(Error::Panicked(_))));
    });
}

#[test]
fn callbacks_race_completion_each_runs_exactly_once() {
    bounded("callback_race", || {
        for round in 0..200 {
            let (promise, fut) = bridge::promise::<u32>();
            let count = Arc::new(AtomicUsize::new(0));
            let fut = Arc::new(fut);
            let barrier = Arc::new(std::sync::Barrier::new(3));
            let adders: Vec<_> = (0..2)
                .map(|_| {
                    let fut = fut.clone();
                    let c = count.clone();
                    let b = barrier.clone();
                    std::thread::spawn(move || {
                        b.wait();
                        for _ in 0..10 {
                            let c = c.clone();
                            fut.add_done_callback(move || {
                                c.fetch_add(1, Ordering::SeqCst);
                            });
                        }
                    })
                })
                .collect();
            barrier.wait();
            promise.set_result(round);
            for a in adders {
                a.join().unwrap();
            }
            assert_eq!(count.load(Ordering::SeqCst), 20, "round {round}");
            assert_eq!(Arc::try_unwrap(fut).unwrap().wait().unwrap(), round);
        }
    });
}

#[test]
fn a_panicking_callback_does_not_poison() {
    bounded("callback_panic", || {
        let lp = Loop::new().unwrap();
        let (go, rx) = tokio::sync::oneshot::channel::<()>();
        let fut = lp.handle().spawn(async move {
            let _ = rx.await;
            1
        });
        let (tx, after) = mpsc::channel();
        fut.add_done_callback(|| panic!("callback boom"));
        let tx2 = tx.clone();
        fut.add_done_callback(move || tx2.send("second").unwrap());
        go.send(()).unwrap();
        assert_eq!(after.recv_timeout(TIMEOUT).unwrap(), "second");
        assert_eq!(fut.wait().unwrap(), 1);
        // The loop that ran the callbacks still works, and so do its futures.
        let f = lp.handle().spawn(async { 2 });
        f.add_done_callback(move || tx.send("third").unwrap());
        assert_eq!(f.wait().unwrap(), 2);
        assert_eq!(after.recv_timeout(TIMEOUT).unwrap(), "third");
        // Added after completion, on this thread: caught here too.
        let f = lp.handle().spawn(async { 3 });
        assert!(f.wait_timeout(TIMEOUT));
        f.add_done_callback(|| panic!("late boom"));
        assert_eq!(f.wait().unwrap(), 3);
    });
}

// ---- Promise ----

#[test]
fn promise_pair_from_threads() {
    bounded("promise", || {
        let (p, f) = bridge::promise::<String>();
        std::thread::spawn(move || p.set_result("from a thread".into()));
        assert_eq!(f.wait().unwrap(), "from a thread");
        let (p, f) = bridge::promise::<u32>();
        p.complete(Err(Error::Timeout));
        assert!(matches!(f.wait(), Err(Error::Timeout)));
        let (p, f) = bridge::promise::<u32>();
        assert!(p.set_running());
        assert!(!f.cancel(), "a started job cannot be cancelled");
        p.set_result(1);
        assert_eq!(f.wait().unwrap(), 1);
        let (p, f) = bridge::promise::<u32>();
        assert!(f.cancel());
        assert!(p.is_cancelled());
        assert!(!p.set_running());
    });
}

// ---- more edges ----

#[test]
fn callback_survives_dropping_the_future() {
    bounded("callback_detached", || {
        let (go, fut) = gated(1);
        let (tx, rx) = mpsc::channel();
        fut.add_done_callback(move || tx.send("ran").unwrap());
        drop(fut); // detached: the work and its callbacks carry on
        go.send(()).unwrap();
        assert_eq!(rx.recv_timeout(TIMEOUT).unwrap(), "ran");
    });
}

#[test]
fn callback_may_use_the_future_it_is_attached_to() {
    bounded("callback_reentrant", || {
        let (go, fut) = gated(1);
        let fut = Arc::new(fut);
        let (tx, rx) = mpsc::channel();
        let f2 = fut.clone();
        fut.add_done_callback(move || {
            // Inside a callback: the future is done, and nothing is locked.
            assert!(f2.done());
            assert!(f2.wait_timeout(Duration::ZERO));
            assert!(!f2.cancel());
            let tx2 = tx.clone();
            f2.add_done_callback(move || tx2.send("nested").unwrap());
            tx.send("outer").unwrap();
        });
        go.send(()).unwrap();
        let got: Vec<_> = (0..2).map(|_| rx.recv_timeout(TIMEOUT).unwrap()).collect();
        assert_eq!(
            got,
            ["nested", "outer"],
            "the nested one ran at once, inside"
        );
    });
}

#[test]
fn wait_for_zero() {
    bounded("wait_for_zero", || {
        let (p, f) = bridge::promise::<u32>();
        p.set_result(3);
        assert_eq!(f.wait_for(Duration::ZERO).unwrap(), 3);
        let (_go, f) = gated(1);
        assert!(matches!(f.wait_for(Duration::ZERO), Err(Error::Timeout)));
        // Huge timeouts do not overflow.
        let (p, f) = bridge::promise::<u32>();
        std::thread::spawn(move || p.set_result(4));
        assert_eq!(f.wait_for(Duration::MAX).unwrap(), 4);
        let (p, f) = bridge::promise::<u32>();
        std::thread::spawn(move || p.set_result(5));
        assert!(f.wait_timeout(Duration::MAX));
    });
}

#[test]
fn wait_for_timeout_marks_the_future_cancelled() {
    bounded("wait_for_cancelled", || {
        // The work sees the cancellation through its destructor; a second
        // observer sees it through a done-callback.
        let (go, fut) = gated(1);
        let (tx, rx) = mpsc::channel();
        fut.add_done_callback(move || tx.send(()).unwrap());
        assert!(matches!(
            fut.wait_for(Duration::from_millis(5)),
            Err(Error::Timeout)
        ));
        rx.recv_timeout(TIMEOUT)
            .expect("the callback runs when wait_for cancels");
        // The sender's receiver is gone with the dropped work.
        common::eventually("the cancelled work is dropped", || go.is_closed());
    });
}

/// A waker that counts its wake-ups.
struct CountingWaker(AtomicUsize);

impl std::task::Wake for CountingWaker {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn the_latest_waker_is_the_one_woken() {
    use std::future::Future;
    use std::task::{Context, Poll, Waker};
    bounded("waker_swap", || {
        let (p, mut f) = bridge::promise::<u32>();
        let a = Arc::new(CountingWaker(AtomicUsize::new(0)));
        let b = Arc::new(CountingWaker(AtomicUsize::new(0)));
        let wa = Waker::from(a.clone());
        let wb = Waker::from(b.clone());
        assert!(std::pin::Pin::new(&mut f)
            .poll(&mut Context::from_waker(&wa))
            .is_pending());
        // The future moved to another task: polled with a new waker.
        assert!(std::pin::Pin::new(&mut f)
            .poll(&mut Context::from_waker(&wb))
            .is_pending());
        p.set_result(8);
        assert_eq!(b.0.load(Ordering::SeqCst), 1, "the current waker is woken");
        match std::pin::Pin::new(&mut f).poll(&mut Context::from_waker(&wb)) {
            Poll::Ready(r) => assert_eq!(r.unwrap(), 8),
            Poll::Pending => panic!("ready after completion"),
        }
    });
}

fn awaiting_in_every_context(ctx: Ctx) {
    // A ConcurrentFuture awaited by a future driven wherever we are.
    let (go, fut) = gated(21);
    std::thread::spawn(move || go.send(()).unwrap());
    let v = match ctx {
        // Not inside any executor: use pollster, which nobody can see.
        Ctx::PlainThread | Ctx::SpawnBlocking | Ctx::RuntimeEnter => pollster::block_on(fut),
        // Inside something: block_on_safe hands the awaiting off.
        _ => bridge::block_on_safe(fut).unwrap(),
    };
    assert_eq!(v.unwrap(), 21);
}
every_context!(awaited_everywhere, awaiting_in_every_context);
