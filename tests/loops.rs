//! API.md "Loops": `Loop`, `LoopBuilder`, `LoopHandle`, and what closing a
//! loop does.

#[macro_use]
mod common;

use std::sync::mpsc;
use std::time::Duration;

use bridge::{Error, Loop};
use common::{bounded, tcp_and_timer, Ctx, DropCounter};

/// Sends on `tx` when the thread it lives on exits (its thread-locals are
/// destroyed): proof that a loop's thread has finished.
struct ExitSignal(mpsc::Sender<()>);

impl Drop for ExitSignal {
    fn drop(&mut self) {
        let _ = self.0.send(());
    }
}

std::thread_local! {
    static EXIT: std::cell::RefCell<Option<ExitSignal>> = const { std::cell::RefCell::new(None) };
}

/// Arms an exit signal on the loop's thread; the receiver gets a message once
/// that thread has exited.
fn watch_thread_exit(h: &bridge::LoopHandle) -> mpsc::Receiver<()> {
    let (tx, rx) = mpsc::channel();
    h.block_on(async move { EXIT.with(|e| *e.borrow_mut() = Some(ExitSignal(tx))) })
        .unwrap();
    rx
}

// ---- basics ----

fn spawn_and_block_on_work_everywhere(_ctx: Ctx) {
    let lp = Loop::builder().name("basics").build().unwrap();
    let h = lp.handle();
    assert_eq!(h.name(), "basics");
    assert!(!h.is_closed());
    assert_eq!(h.spawn(tcp_and_timer(3)).wait().unwrap(), 3);
    assert_eq!(h.block_on(tcp_and_timer(4)).unwrap(), 4);
    let on = h
        .block_on(async { std::thread::current().name().map(str::to_owned) })
        .unwrap();
    assert_eq!(on.as_deref(), Some("basics"));
    // call_soon_threadsafe runs on the loop's thread.
    let (tx, rx) = mpsc::channel();
    h.call_soon_threadsafe(move || {
        tx.send(std::thread::current().name().map(str::to_owned))
            .unwrap()
    })
    .unwrap();
    assert_eq!(
        rx.recv_timeout(common::TIMEOUT).unwrap().as_deref(),
        Some("basics")
    );
    // Dropping a Loop here, whatever this context is, must not panic.
    drop(lp);
    assert!(h.is_closed());
    assert!(matches!(
        h.spawn(async { 1 }).wait(),
        Err(Error::LoopClosed)
    ));
}
every_context!(basics, spawn_and_block_on_work_everywhere);

#[test]
fn handle_is_cheap_clone_and_compares_by_loop() {
    bounded("handle", || {
        let lp = Loop::new().unwrap();
        let a = lp.handle();
        let b = a.clone();
        assert_eq!(a.id(), b.id());
        assert_eq!(a.name(), b.name());
        let other = Loop::new().unwrap();
        assert_ne!(a.id(), other.handle().id());
        // Usable from another thread.
        let v = std::thread::spawn(move || b.block_on(async { 8 }).unwrap())
            .join()
            .unwrap();
        assert_eq!(v, 8);
    });
}

#[test]
fn tokio_handle_spawns_onto_the_loop() {
    bounded("tokio_handle", || {
        let lp = Loop::builder().name("tk").build().unwrap();
        let h = lp.handle();
        let join = h
            .tokio_handle()
            .spawn(async { std::thread::current().name().map(str::to_owned) });
        let name = futures::executor::block_on(join).unwrap();
        assert_eq!(name.as_deref(), Some("tk"));
        assert_eq!(
            h.tokio_handle().runtime_flavor(),
            tokio::runtime::RuntimeFlavor::CurrentThread
        );
    });
}

#[test]
fn builder_options() {
    bounded("builder", || {
        let lp = Loop::builder()
            .name("opts")
            .debug(true)
            .slow_poll_threshold(Duration::from_millis(50))
            .build()
            .unwrap();
        assert_eq!(lp.handle().name(), "opts");
        assert_eq!(lp.handle().block_on(async { 2 }).unwrap(), 2);
        let plain = Loop::builder().debug(false).build().unwrap();
        assert!(!plain.handle().name().is_empty());
    });
}

// ---- block_on ----

#[test]
fn block_on_own_thread_would_deadlock() {
    bounded("would_deadlock", || {
        let lp = Loop::new().unwrap();
        let h = lp.handle();
        let h2 = h.clone();
        let inner = h.block_on(async move { h2.block_on(async { 1 }) }).unwrap();
        assert!(matches!(inner, Err(Error::WouldDeadlock)), "{inner:?}");
        // From a call_soon_threadsafe callback on the loop too.
        let (tx, rx) = mpsc::channel();
        let h3 = h.clone();
        h.call_soon_threadsafe(move || tx.send(h3.block_on(async { 1 })).unwrap())
            .unwrap();
        let r = rx.recv_timeout(common::TIMEOUT).unwrap();
        assert!(matches!(r, Err(Error::WouldDeadlock)), "{r:?}");
        // The loop still works afterwards.
        assert_eq!(h.block_on(async { 2 }).unwrap(), 2);
        // Another loop's thread may block on this one.
        let other = Loop::new().unwrap();
        let h4 = h.clone();
        let v = other
            .handle()
            .block_on(async move { h4.block_on(async { 3 }) })
            .unwrap();
        assert_eq!(v.unwrap(), 3);
    });
}

fn worker_block_on_completes(_ctx: Ctx) {
    let w = bridge::worker_loop();
    assert_eq!(w.block_on(tcp_and_timer(5)).unwrap(), 5);
    let nested =
        bridge::call_blocking(async { bridge::worker_loop().block_on(tcp_and_timer(6)).unwrap() });
    assert_eq!(nested, 6);
}
every_context!(worker_block_on, worker_block_on_completes);

#[test]
fn block_on_panic_is_panicked() {
    bounded("block_on_panic", || {
        let lp = Loop::new().unwrap();
        match lp.handle().block_on(async { panic!("lp-boom") }) {
            Err(Error::Panicked(p)) => assert_eq!(p.message(), "lp-boom"),
            other => panic!("{other:?}"),
        }
        // A panicking task does not take the loop down.
        assert_eq!(lp.handle().block_on(async { 1 }).unwrap(), 1);
        let (tx, rx) = mpsc::channel();
        lp.handle()
            .call_soon_threadsafe(|| panic!("cb-boom"))
            .unwrap();
        lp.handle()
            .call_soon_threadsafe(move || tx.send(()).unwrap())
            .unwrap();
        rx.recv_timeout(common::TIMEOUT).unwrap();
    });
}

// ---- closing ----

#[test]
fn drop_cancels_tasks_runs_destructors_resolves_waiters_joins_thread() {
    bounded("close", || {
        let lp = Loop::builder().name("closing").build().unwrap();
        let h = lp.handle();
        let exited = watch_thread_exit(&h);
        let drops = DropCounter::new();
        let (started_tx, started_rx) = mpsc::channel();
        // Tasks that started and wait forever.
        let started: Vec<_> = (0..8)
            .map(|_| {
                let tok = drops.token();
                let tx = started_tx.clone();
                h.spawn(async move {
                    let _tok = tok;
                    tx.send(()).unwrap();
                    std::future::pending::<u32>().await
                })
            })
            .collect();
        for _ in 0..8 {
            started_rx.recv_timeout(common::TIMEOUT).unwrap();
        }
        // A task spawned from inside with tokio::spawn.
        let tok = drops.token();
        h.block_on(async move {
            tokio::spawn(async move {
                let _tok = tok;
                std::future::pending::<()>().await
            });
        })
        .unwrap();
        // Waiters of every kind: threads in wait(), a tokio task awaiting,
        // a wait_timeout loop, a done-callback.
        let mut started = started.into_iter();
        let waiting_threads: Vec<_> = (0..3)
            .map(|_| {
                let f = started.next().unwrap();
                std::thread::spawn(move || f.wait())
            })
            .collect();
        let rt = common::multi_rt();
        let awaited = {
            let f = started.next().unwrap();
            rt.spawn(f)
        };
        let cb_fut = started.next().unwrap();
        let (cb_tx, cb_rx) = mpsc::channel();
        cb_fut.add_done_callback(move || cb_tx.send(()).unwrap());
        let rest: Vec<_> = started.collect();

        drop(lp);

        // Joined: the loop's thread had exited when drop returned.
        exited
            .try_recv()
            .expect("the loop's thread has exited by the time drop(Loop) returns");
        assert!(h.is_closed());
        assert_eq!(drops.count(), 9, "every task's destructor ran");
        let closed = |r: Result<u32, Error>| {
            assert!(
                matches!(r, Err(Error::Cancelled) | Err(Error::LoopClosed)),
                "{r:?}"
            )
        };
        for t in waiting_threads {
            closed(t.join().unwrap());
        }
        let r = rt.block_on(awaited).unwrap();
        closed(r);
        cb_rx.recv_timeout(common::TIMEOUT).unwrap();
        assert!(cb_fut.done());
        closed(cb_fut.wait());
        for f in rest {
            assert!(f.wait_timeout(common::TIMEOUT));
            closed(f.wait());
        }
    });
}

#[test]
fn futures_queued_but_never_started_resolve_too() {
    bounded("close_queued", || {
        let lp = Loop::new().unwrap();
        let h = lp.handle();
        let drops = DropCounter::new();
        // Keep the loop busy on one task so the others stay queued.
        let (gate_tx, gate_rx) = mpsc::channel::<()>();
        let (in_tx, in_rx) = mpsc::channel();
        let blocker = h.spawn(async move {
            in_tx.send(()).unwrap();
            // Blocks the loop's thread on purpose until the test says go.
            let _ = gate_rx.recv();
        });
        in_rx.recv_timeout(common::TIMEOUT).unwrap();
        let queued: Vec<_> = (0..5)
            .map(|_| {
                let tok = drops.token();
                h.spawn(async move {
                    let _tok = tok;
                    1u32
                })
            })
            .collect();
        // Close from another thread while the loop is busy, then let it go.
        let closer = std::thread::spawn(move || drop(lp));
        // Wait until the close is visible, then release the blocker.
        common::eventually("loop marked closed", || h.is_closed());
        gate_tx.send(()).unwrap();
        closer.join().unwrap();
        let _ = blocker.wait();
        assert_eq!(drops.count(), 5, "queued tasks dropped (or ran) on close");
        for f in queued {
            match f.wait() {
                Ok(1) | Err(Error::Cancelled) | Err(Error::LoopClosed) => {}
                other => panic!("{other:?}"),
            }
        }
    });
}

fn drop_loop_inside_async_context(_ctx: Ctx) {
    // A loop with live tasks, dropped right here.
    let lp = Loop::new().unwrap();
    let drops = DropCounter::new();
    let tok = drops.token();
    let fut = lp.handle().spawn(async move {
        let _tok = tok;
        std::future::pending::<()>().await
    });
    let h = lp.handle();
    let exited = watch_thread_exit(&h);
    drop(lp);
    exited.try_recv().expect("joined");
    assert_eq!(drops.count(), 1);
    assert!(matches!(
        fut.wait(),
        Err(Error::Cancelled) | Err(Error::LoopClosed)
    ));
}
every_context!(drop_in_context, drop_loop_inside_async_context);

#[test]
fn drop_inside_async_code_directly() {
    bounded("drop_async", || {
        let rt = common::current_rt();
        rt.block_on(async {
            let lp = Loop::new().unwrap();
            let f = lp.handle().spawn(std::future::pending::<()>());
            drop(lp);
            assert!(f.await.is_err());
        });
        let rt = common::multi_rt();
        rt.block_on(async {
            tokio::spawn(async {
                let lp = Loop::new().unwrap();
                let f = lp.handle().spawn(std::future::pending::<()>());
                drop(lp);
                assert!(f.await.is_err());
            })
            .await
            .unwrap();
        });
    });
}

#[test]
fn dropped_on_its_own_thread_it_does_not_join_itself() {
    bounded("self_drop", || {
        let lp = Loop::builder().name("self-drop").build().unwrap();
        let h = lp.handle();
        let exited = watch_thread_exit(&h);
        let drops = DropCounter::new();
        let tok = drops.token();
        let other = h.spawn(async move {
            let _tok = tok;
            std::future::pending::<()>().await
        });
        let (tx, rx) = mpsc::channel();
        h.call_soon_threadsafe(move || {
            drop(lp);
            tx.send(()).unwrap();
        })
        .unwrap();
        rx.recv_timeout(common::TIMEOUT)
            .expect("drop(Loop) on its own thread returns");
        assert!(h.is_closed());
        exited
            .recv_timeout(common::TIMEOUT)
            .expect("the loop's thread exits on its own");
        assert_eq!(drops.count(), 1);
        assert!(matches!(
            other.wait(),
            Err(Error::Cancelled) | Err(Error::LoopClosed)
        ));
        // And from inside a task of the loop, holding the Loop in the task.
        let lp = Loop::new().unwrap();
        let h = lp.handle();
        let exited = watch_thread_exit(&h);
        let f = h.spawn(async move {
            drop(lp);
            5
        });
        match f.wait() {
            Ok(5) | Err(Error::Cancelled) => {}
            other => panic!("{other:?}"),
        }
        exited.recv_timeout(common::TIMEOUT).expect("thread exits");
    });
}

#[test]
fn after_close_everything_says_loop_closed() {
    bounded("after_close", || {
        let lp = Loop::new().unwrap();
        let h = lp.handle();
        drop(lp);
        assert!(h.is_closed());
        let f = h.spawn(async { 1 });
        assert!(f.done());
        assert!(matches!(f.wait(), Err(Error::LoopClosed)));
        let (ran_tx, ran_rx) = mpsc::channel::<()>();
        let r = h.call_soon_threadsafe(move || ran_tx.send(()).unwrap());
        assert!(matches!(r, Err(Error::LoopClosed)), "{r:?}");
        assert!(
            ran_rx.recv().is_err(),
            "the refused callback is dropped, never run"
        );
        assert!(matches!(h.block_on(async { 1 }), Err(Error::LoopClosed)));
        assert!(matches!(
            bridge::run_coroutine_threadsafe(async { 1 }, &h).wait(),
            Err(Error::LoopClosed)
        ));
        // Awaitable as well.
        let f = h.spawn(async { 1 });
        assert!(matches!(pollster::block_on(f), Err(Error::LoopClosed)));
    });
}

#[test]
fn many_loops_open_and_close_concurrently() {
    bounded("churn", || {
        let threads: Vec<_> = (0..8)
            .map(|i| {
                std::thread::spawn(move || {
                    for j in 0..20u32 {
                        let lp = Loop::new().unwrap();
                        let h = lp.handle();
                        let pending = h.spawn(std::future::pending::<()>());
                        assert_eq!(h.block_on(async move { j * 2 }).unwrap(), j * 2);
                        drop(lp);
                        assert!(pending.wait().is_err());
                    }
                    i
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
    });
}

/// A task's destructor that needs async work (a common cleanup pattern):
/// when the loop closes, the destructor runs on the loop's thread while its
/// runtime shuts down, and the entry points still complete there.
#[test]
fn destructors_run_at_close_may_call_the_entry_points() {
    struct AsyncCleanup(mpsc::Sender<(u32, u32)>);
    impl Drop for AsyncCleanup {
        fn drop(&mut self) {
            let a = bridge::call_blocking(async {
                tokio::time::sleep(Duration::from_millis(1)).await;
                1
            });
            let b = bridge::block_on_safe(async {
                tokio::time::sleep(Duration::from_millis(1)).await;
                2
            })
            .unwrap_or(0);
            let _ = self.0.send((a, b));
        }
    }
    bounded("cleanup", || {
        let lp = Loop::new().unwrap();
        let (tx, rx) = mpsc::channel();
        let (started_tx, started_rx) = mpsc::channel();
        let fut = lp.handle().spawn(async move {
            let _c = AsyncCleanup(tx);
            started_tx.send(()).unwrap();
            std::future::pending::<()>().await
        });
        started_rx.recv_timeout(common::TIMEOUT).unwrap();
        drop(lp);
        assert_eq!(rx.recv_timeout(common::TIMEOUT).unwrap(), (1, 2));
        assert!(fut.wait().is_err());
    });
}

#[test]
fn loop_is_usable_from_tokio_spawn_inside_it() {
    bounded("inner_spawn", || {
        let lp = Loop::builder().name("inner").build().unwrap();
        let (id, name) = lp
            .handle()
            .block_on(async {
                tokio::spawn(async {
                    (
                        bridge::get_running_loop().map(|h| h.id()),
                        std::thread::current().name().map(str::to_owned),
                    )
                })
                .await
                .unwrap()
            })
            .unwrap();
        assert_eq!(id.unwrap(), lp.handle().id());
        assert_eq!(name.as_deref(), Some("inner"));
    });
}

#[test]
fn spawns_racing_close_all_resolve() {
    bounded("spawn_vs_close", || {
        for _ in 0..20 {
            let lp = Loop::new().unwrap();
            let h = lp.handle();
            let barrier = std::sync::Arc::new(std::sync::Barrier::new(5));
            let spawners: Vec<_> = (0..4)
                .map(|_| {
                    let h = h.clone();
                    let b = barrier.clone();
                    std::thread::spawn(move || {
                        b.wait();
                        let mut futs = Vec::new();
                        loop {
                            let f = h.spawn(async { tokio::task::yield_now().await });
                            let closed = h.is_closed();
                            futs.push(f);
                            if closed {
                                break;
                            }
                        }
                        futs
                    })
                })
                .collect();
            barrier.wait();
            drop(lp);
            for s in spawners {
                for f in s.join().unwrap() {
                    assert!(f.wait_timeout(common::TIMEOUT), "a future hung after close");
                    match f.wait() {
                        Ok(()) | Err(Error::Cancelled) | Err(Error::LoopClosed) => {}
                        other => panic!("{other:?}"),
                    }
                }
            }
        }
    });
}
