//! API.md "Entry points": `run`, `block_on_safe`, `call_blocking`,
//! `run_coroutine_threadsafe` and `worker_loop`, in every context.

#[macro_use]
mod common;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Duration;

use bridge::Error;
use common::{bounded, tcp_and_timer, Ctx, DropCounter};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

// ---- block_on_safe and call_blocking: timer + TCP round trip everywhere ----

fn block_on_safe_timer_and_tcp(_ctx: Ctx) {
    assert_eq!(bridge::block_on_safe(tcp_and_timer(11)).unwrap(), 11);
    // Again on the same thread: the inline runtime (or the hand-off) is reused.
    assert_eq!(bridge::block_on_safe(tcp_and_timer(12)).unwrap(), 12);
}
every_context!(block_on_safe_io, block_on_safe_timer_and_tcp);

fn call_blocking_timer_and_tcp(_ctx: Ctx) {
    assert_eq!(bridge::call_blocking(tcp_and_timer(21)), 21);
    assert_eq!(bridge::call_blocking(tcp_and_timer(22)), 22);
}
every_context!(call_blocking_io, call_blocking_timer_and_tcp);

fn call_blocking_runs_on_the_worker(_ctx: Ctx) {
    let name = bridge::call_blocking(async { std::thread::current().name().map(str::to_owned) });
    assert_eq!(name.as_deref(), Some("bridge-worker"));
    let id = bridge::call_blocking(async { bridge::get_running_loop().map(|h| h.id()) });
    assert_eq!(id.unwrap(), bridge::worker_loop().id());
}
every_context!(call_blocking_on_worker, call_blocking_runs_on_the_worker);

fn block_on_safe_ready_and_pending(_ctx: Ctx) {
    assert_eq!(bridge::block_on_safe(async { 5 }).unwrap(), 5);
    let v = bridge::block_on_safe(async {
        let (tx, rx) = tokio::sync::oneshot::channel();
        std::thread::spawn(move || tx.send(6).unwrap());
        rx.await.unwrap()
    });
    assert_eq!(v.unwrap(), 6);
}
every_context!(block_on_safe_basic, block_on_safe_ready_and_pending);

// ---- panics ----

fn panics_come_back(_ctx: Ctx) {
    let err = bridge::block_on_safe(async { panic!("bos-boom") }).unwrap_err();
    match err {
        Error::Panicked(p) => assert_eq!(p.message(), "bos-boom"),
        other => panic!("expected Panicked, got {other:?}"),
    }
    let payload = catch_unwind(AssertUnwindSafe(|| {
        bridge::call_blocking(async { panic!("cb-boom {}", std::hint::black_box(7)) })
    }))
    .unwrap_err();
    assert_eq!(
        payload.downcast_ref::<String>().map(String::as_str),
        Some("cb-boom 7")
    );
    // The worker survives the panic.
    assert_eq!(bridge::call_blocking(async { 1 }), 1);
    let fut =
        bridge::run_coroutine_threadsafe(async { panic!("rct-boom") }, &bridge::worker_loop());
    match fut.wait() {
        Err(Error::Panicked(p)) => assert_eq!(p.message(), "rct-boom"),
        other => panic!("expected Panicked, got {other:?}"),
    }
}
every_context!(panics, panics_come_back);

#[test]
fn run_panic_is_panicked() {
    bounded("run_panic", || {
        match bridge::run(async { panic!("run-boom") }) {
            Err(Error::Panicked(p)) => assert_eq!(p.message(), "run-boom"),
            other => panic!("expected Panicked, got {other:?}"),
        }
        // The thread is usable again: no loop left marked on it.
        assert!(bridge::running_loop().is_none());
        assert_eq!(bridge::run(async { 3 }).unwrap(), 3);
    });
}

// ---- run ----

fn run_nested_is_an_error(ctx: Ctx) {
    let r = bridge::run(async { 1 });
    match ctx.expect() {
        common::Expect::Nothing => assert_eq!(r.unwrap(), 1),
        // A tokio context where blocking is allowed: either answer is fine,
        // a panic is not (we got here).
        common::Expect::TokioOrNothing => {
            assert!(matches!(r, Ok(1) | Err(Error::NestedLoop)), "{r:?}")
        }
        _ => assert!(matches!(r, Err(Error::NestedLoop)), "{r:?}"),
    }
    // Wherever `run` cannot, a fresh thread can: the two compose.
    let v = std::thread::spawn(|| bridge::run(async { 2 }))
        .join()
        .unwrap();
    assert_eq!(v.unwrap(), 2);
}
every_context!(run_nested, run_nested_is_an_error);

#[test]
fn run_inside_run_is_nested_loop_and_message_names_alternatives() {
    bounded("run_in_run", || {
        let inner = bridge::run(async { bridge::run(async { 1 }) }).unwrap();
        let err = inner.unwrap_err();
        assert!(matches!(err, Error::NestedLoop));
        let msg = err.to_string();
        assert!(msg.contains("block_on_safe"), "{msg}");
        assert!(msg.contains(".await"), "{msg}");
    });
}

#[test]
fn run_gives_tokio_spawn_timers_and_its_own_loop() {
    bounded("run_inside", || {
        let v = bridge::run(async {
            let me = bridge::get_running_loop().expect("run is a bridge loop");
            assert!(bridge::loops().iter().any(|l| l.id() == me.id()));
            let t = tokio::spawn(async { tcp_and_timer(9).await });
            let same = tokio::spawn(async { bridge::get_running_loop().map(|h| h.id()) });
            assert_eq!(same.await.unwrap().unwrap(), me.id());
            (t.await.unwrap(), me.id())
        })
        .unwrap();
        assert_eq!(v.0, 9);
        // Closed: gone from the registry, and this thread is no longer in it.
        assert!(!bridge::loops().iter().any(|l| l.id() == v.1));
        assert!(bridge::running_loop().is_none());
    });
}

#[test]
fn run_cancels_leftover_tasks_and_runs_their_destructors() {
    bounded("run_cancels", || {
        let drops = DropCounter::new();
        let (started_tx, started_rx) = tokio::sync::oneshot::channel::<()>();
        let d = drops.clone();
        bridge::run(async move {
            // One task that started and waits forever...
            let tok = d.token();
            tokio::spawn(async move {
                let _tok = tok;
                let _ = started_tx.send(());
                std::future::pending::<()>().await;
            });
            // ...and one that never got to run at all.
            let tok = d.token();
            tokio::spawn(async move {
                let _tok = tok;
                std::future::pending::<()>().await;
            });
            started_rx.await.unwrap();
        })
        .unwrap();
        assert_eq!(
            drops.count(),
            2,
            "both leftover tasks dropped when run returns"
        );
    });
}

// ---- run_coroutine_threadsafe ----

fn run_coroutine_threadsafe_everywhere(_ctx: Ctx) {
    let lp = bridge::Loop::builder().name("rct").build().unwrap();
    let fut = bridge::run_coroutine_threadsafe(tcp_and_timer(31), &lp.handle());
    assert_eq!(fut.wait().unwrap(), 31);
    let fut = bridge::run_coroutine_threadsafe(
        async { std::thread::current().name().map(str::to_owned) },
        &lp.handle(),
    );
    assert_eq!(fut.wait().unwrap().as_deref(), Some("rct"));
    let fut = bridge::run_coroutine_threadsafe(tcp_and_timer(32), &bridge::worker_loop());
    assert_eq!(fut.wait().unwrap(), 32);
}
every_context!(
    run_coroutine_threadsafe,
    run_coroutine_threadsafe_everywhere
);

// ---- the worker loop ----

fn worker_loop_is_shared_and_open(_ctx: Ctx) {
    let a = bridge::worker_loop();
    let b = bridge::worker_loop();
    assert_eq!(a.id(), b.id());
    assert!(!a.is_closed());
    assert_eq!(a.name(), "bridge-worker");
    assert!(bridge::loops().iter().any(|l| l.id() == a.id()));
    // Blocking on the worker loop from its own thread completes.
    let v = bridge::call_blocking(async {
        bridge::worker_loop()
            .block_on(async {
                tokio::time::sleep(Duration::from_millis(1)).await;
                4
            })
            .unwrap()
    });
    assert_eq!(v, 4);
}
every_context!(worker_loop, worker_loop_is_shared_and_open);

#[test]
fn block_on_safe_on_the_worker_thread_completes() {
    bounded("bos_on_worker", || {
        let v = bridge::call_blocking(async {
            assert_eq!(std::thread::current().name(), Some("bridge-worker"));
            let a = bridge::block_on_safe(tcp_and_timer(41)).unwrap();
            // A pending worker future waited on from the worker's thread.
            let fut = bridge::worker_loop().spawn(async {
                tokio::time::sleep(Duration::from_millis(1)).await;
                1
            });
            a + fut.wait().unwrap()
        });
        assert_eq!(v, 42);
    });
}

#[test]
fn worker_resources_survive_between_calls() {
    bounded("worker_resources", || {
        // A listener and a connection made by one call keep working in the next.
        let (listener_addr, server) = bridge::call_blocking(async {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = l.local_addr().unwrap();
            let server = tokio::spawn(echo_server(l));
            (addr, server)
        });
        let conn =
            bridge::call_blocking(async move { TcpStream::connect(listener_addr).await.unwrap() });
        let conn = (0..20).fold(conn, |conn, i| {
            bridge::call_blocking(async move {
                let (conn, v) = round_trip(conn, i).await;
                assert_eq!(v, i);
                conn
            })
        });
        drop(conn);
        server.abort();
    });
}

async fn echo_server(listener: tokio::net::TcpListener) {
    loop {
        let (mut s, _) = listener.accept().await.unwrap();
        tokio::spawn(async move {
            let mut buf = [0u8; 4];
            while s.read_exact(&mut buf).await.is_ok() {
                if s.write_all(&buf).await.is_err() {
                    break;
                }
            }
        });
    }
}

async fn round_trip(mut conn: TcpStream, n: u32) -> (TcpStream, u32) {
    conn.write_all(&n.to_le_bytes()).await.unwrap();
    let mut buf = [0u8; 4];
    conn.read_exact(&mut buf).await.unwrap();
    (conn, u32::from_le_bytes(buf))
}

// ---- nesting with worker-bound resources ----

const DEPTH: u32 = 10;

/// Each level does a round trip on a connection the outermost call made on
/// the worker loop, then nests one `call_blocking` deeper (blocking the
/// worker thread it runs on), then does another round trip on the way out.
fn nest(depth: u32, conn: TcpStream) -> (TcpStream, u32) {
    bridge::call_blocking(async move {
        let (conn, v) = round_trip(conn, depth).await;
        assert_eq!(v, depth);
        tokio::time::sleep(Duration::from_millis(1)).await;
        let (conn, levels) = if depth == 0 {
            (conn, 0)
        } else {
            nest(depth - 1, conn)
        };
        let (conn, v) = round_trip(conn, depth + 100).await;
        assert_eq!(v, depth + 100);
        (conn, levels + 1)
    })
}

fn nested_call_blocking_with_worker_socket(_ctx: Ctx) {
    let (conn, server) = bridge::call_blocking(async {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let server = tokio::spawn(echo_server(l));
        (TcpStream::connect(addr).await.unwrap(), server)
    });
    let (conn, levels) = nest(DEPTH, conn);
    assert_eq!(levels, DEPTH + 1);
    // Still usable after unwinding all the way out.
    let (_conn, v) = bridge::call_blocking(round_trip(conn, 777));
    assert_eq!(v, 777);
    server.abort();
}
every_context!(nested_depth, nested_call_blocking_with_worker_socket);

#[test]
fn nested_mixed_entry_points_depth_8() {
    // call_blocking / block_on_safe / worker_loop().block_on interleaved.
    fn level(depth: u32) -> u32 {
        if depth == 0 {
            return 0;
        }
        match depth % 3 {
            0 => bridge::call_blocking(async move { level(depth - 1) + 1 }),
            1 => bridge::block_on_safe(async move { level(depth - 1) + 1 }).unwrap(),
            _ => bridge::worker_loop()
                .block_on(async move { level(depth - 1) + 1 })
                .unwrap(),
        }
    }
    bounded("nested_mixed", || assert_eq!(level(12), 12));
}

// ---- load ----

#[test]
fn sixteen_threads_times_500_calls_every_result_checked() {
    bounded("16x500", || {
        let threads: Vec<_> = (0..16u64)
            .map(|t| {
                std::thread::spawn(move || {
                    for i in 0..500u64 {
                        let want = t * 1_000_000 + i;
                        let got = if i % 10 == 0 {
                            bridge::call_blocking(async move {
                                tokio::task::yield_now().await;
                                want
                            })
                        } else {
                            bridge::call_blocking(async move { want })
                        };
                        assert_eq!(got, want, "thread {t} call {i}");
                    }
                    t
                })
            })
            .collect();
        for (t, h) in threads.into_iter().enumerate() {
            assert_eq!(h.join().unwrap(), t as u64);
        }
    });
}

#[test]
fn sixteen_threads_inside_a_runtime() {
    bounded("16x500_rt", || {
        let rt = common::multi_rt();
        rt.block_on(async {
            let tasks: Vec<_> = (0..16u64)
                .map(|t| {
                    tokio::spawn(async move {
                        for i in 0..500u64 {
                            let want = (t << 32) | i;
                            assert_eq!(bridge::call_blocking(async move { want }), want);
                        }
                    })
                })
                .collect();
            for t in tasks {
                t.await.unwrap();
            }
        });
    });
}

// ---- where block_on_safe runs the future ----

fn block_on_safe_runs_inline_only_without_a_loop(ctx: Ctx) {
    let me = std::thread::current().id();
    let (on, name) = bridge::block_on_safe(async {
        tokio::time::sleep(Duration::from_millis(1)).await;
        (
            std::thread::current().id(),
            std::thread::current().name().map(str::to_owned),
        )
    })
    .unwrap();
    match ctx.expect() {
        // No loop: right here, no thread hop.
        common::Expect::Nothing => assert_eq!(on, me, "inline on the calling thread"),
        // A loop here: handed to the worker loop (which may be this very
        // thread when nested in it: then it is still on a worker thread).
        common::Expect::Bridge if ctx == Ctx::WorkerNested => {
            assert_eq!(name.as_deref(), Some("bridge-worker"))
        }
        common::Expect::TokioOrNothing => {
            assert!(
                on == me || name.as_deref() == Some("bridge-worker"),
                "{name:?}"
            )
        }
        _ => {
            assert_ne!(on, me, "a loop runs here: the future must be handed off");
            assert_eq!(name.as_deref(), Some("bridge-worker"));
        }
    }
}
every_context!(
    block_on_safe_where,
    block_on_safe_runs_inline_only_without_a_loop
);

#[test]
fn block_on_safe_nests_in_itself() {
    bounded("bos_nested", || {
        let v = bridge::block_on_safe(async {
            let inner = bridge::block_on_safe(async {
                let innermost = bridge::block_on_safe(tcp_and_timer(3)).unwrap();
                tcp_and_timer(innermost + 1).await
            })
            .unwrap();
            // `run` inside block_on_safe is inside a loop too.
            assert!(matches!(bridge::run(async {}), Err(Error::NestedLoop)));
            inner + 1
        });
        assert_eq!(v.unwrap(), 5);
    });
}

/// On a one-worker multi-thread runtime, a task that blocks in an entry
/// point must not stop the runtime's other tasks: the one that unblocks it
/// runs on that same runtime.
#[test]
fn blocking_on_a_multi_thread_runtime_keeps_its_other_tasks_moving() {
    bounded("block_in_place", || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            type Entry = fn(tokio::sync::oneshot::Receiver<u32>) -> u32;
            let entries: [(&str, Entry); 3] = [
                ("block_on_safe", |rx| {
                    bridge::block_on_safe(async move { rx.await.unwrap() }).unwrap()
                }),
                ("call_blocking", |rx| {
                    bridge::call_blocking(async move { rx.await.unwrap() })
                }),
                ("wait", |rx| {
                    bridge::worker_loop()
                        .spawn(async move { rx.await.unwrap() })
                        .wait()
                        .unwrap()
                }),
            ];
            for (what, entry) in entries {
                let (tx, rx) = tokio::sync::oneshot::channel();
                let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<()>();
                // Spawned first: it needs the runtime's only core to run.
                let unblocker = tokio::spawn(async move {
                    ready_rx.await.unwrap();
                    tx.send(99).unwrap();
                });
                let blocker = tokio::spawn(async move {
                    ready_tx.send(()).unwrap();
                    entry(rx)
                });
                assert_eq!(blocker.await.unwrap(), 99, "{what}");
                unblocker.await.unwrap();
            }
        });
    });
}

#[test]
fn run_leftovers_cancelled_also_when_fut_panics_and_loop_closed_after() {
    bounded("run_panic_leftovers", || {
        let drops = DropCounter::new();
        let d = drops.clone();
        let r = bridge::run(async move {
            let tok = d.token();
            tokio::spawn(async move {
                let _tok = tok;
                std::future::pending::<()>().await
            });
            tokio::task::yield_now().await;
            panic!("after spawning");
        });
        assert!(matches!(r, Err(Error::Panicked(_))));
        assert_eq!(drops.count(), 1);
        // Work spawned through the run loop's handle resolves when run returns.
        let (h, fut) = bridge::run(async {
            let h = bridge::get_running_loop().unwrap();
            let fut = h.spawn(std::future::pending::<u32>());
            tokio::task::yield_now().await;
            (h, fut)
        })
        .unwrap();
        assert!(matches!(
            fut.wait(),
            Err(Error::Cancelled) | Err(Error::LoopClosed)
        ));
        assert!(h.is_closed());
        assert!(matches!(
            h.spawn(async { 1 }).wait(),
            Err(Error::LoopClosed)
        ));
    });
}

#[test]
fn run_takes_a_non_send_future_and_refuses_blocking_on_itself() {
    bounded("run_local", || {
        let v = bridge::run(async {
            let rc = std::rc::Rc::new(5);
            tokio::task::yield_now().await;
            *rc
        });
        assert_eq!(v.unwrap(), 5);
        let (blocked, waited) = bridge::run(async {
            let h = bridge::get_running_loop().unwrap();
            let blocked = h.block_on(async { 1 });
            let waited = h.spawn(async { 2 }).wait();
            (blocked, waited)
        })
        .unwrap();
        assert!(matches!(blocked, Err(Error::WouldDeadlock)), "{blocked:?}");
        assert!(matches!(waited, Err(Error::WouldDeadlock)), "{waited:?}");
    });
}

#[test]
fn call_blocking_nests_forty_deep() {
    fn deep(n: u32) -> u32 {
        if n == 0 {
            return 0;
        }
        bridge::call_blocking(async move {
            tokio::time::sleep(Duration::from_millis(1)).await;
            deep(n - 1) + 1
        })
    }
    bounded("depth40", || assert_eq!(deep(40), 40));
}

#[test]
fn concurrent_nesting_with_worker_sockets() {
    bounded("concurrent_nesting", || {
        let threads: Vec<_> = (0..4)
            .map(|_| {
                std::thread::spawn(|| {
                    let rt = common::current_rt();
                    rt.block_on(async {
                        nested_call_blocking_with_worker_socket(Ctx::TokioCurrentBlockOn)
                    })
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
    });
}

// ---- the worker loop is never stalled by a thread blocking inside it ----

#[test]
fn blocking_inside_the_worker_never_stalls_it() {
    bounded("worker_not_stalled", || {
        let v = bridge::call_blocking(async {
            // Something only the worker loop can run...
            let (tx, rx) = tokio::sync::oneshot::channel();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(2)).await;
                tx.send(7).unwrap();
            });
            // ...awaited by another loop, while this worker thread blocks on it.
            let lp = bridge::Loop::new().unwrap();
            lp.handle()
                .spawn(async move { rx.await.unwrap() })
                .wait()
                .unwrap()
        });
        assert_eq!(v, 7);
    });
}

#[test]
fn dropping_a_loop_inside_the_worker_while_its_cleanup_needs_the_worker() {
    struct NeedsWorker(std::sync::mpsc::Sender<u32>);
    impl Drop for NeedsWorker {
        fn drop(&mut self) {
            let _ = self.0.send(bridge::call_blocking(async { 5 }));
        }
    }
    bounded("drop_loop_in_worker", || {
        let (tx, rx) = std::sync::mpsc::channel();
        bridge::call_blocking(async move {
            let lp = bridge::Loop::new().unwrap();
            let (started_tx, started_rx) = tokio::sync::oneshot::channel();
            drop(lp.handle().spawn(async move {
                let _n = NeedsWorker(tx);
                started_tx.send(()).unwrap();
                std::future::pending::<()>().await
            }));
            started_rx.await.unwrap();
            // Joins the loop's thread, whose task's destructor needs this loop.
            drop(lp);
        });
        assert_eq!(rx.recv_timeout(common::TIMEOUT).unwrap(), 5);
    });
}

#[test]
fn call_blocking_resumes_any_panic_payload() {
    #[derive(Debug, PartialEq)]
    struct Custom(u32);
    bounded("custom_payload", || {
        let payload = catch_unwind(AssertUnwindSafe(|| {
            bridge::call_blocking(async { std::panic::panic_any(Custom(3)) })
        }))
        .unwrap_err();
        assert_eq!(payload.downcast_ref::<Custom>(), Some(&Custom(3)));
    });
}

#[test]
fn inline_block_on_safe_leaves_the_thread_free() {
    bounded("inline_then_run", || {
        assert_eq!(bridge::block_on_safe(tcp_and_timer(1)).unwrap(), 1);
        // The inline runtime is not "running" between calls.
        assert!(bridge::running_loop().is_none());
        assert_eq!(bridge::run(tcp_and_timer(2)).unwrap(), 2);
        // After a panic inside, the inline path still works, timers included.
        assert!(bridge::block_on_safe(async {
            tokio::time::sleep(Duration::from_millis(1)).await;
            panic!("inline boom")
        })
        .is_err());
        assert!(bridge::running_loop().is_none());
        assert_eq!(bridge::block_on_safe(tcp_and_timer(3)).unwrap(), 3);
    });
}

// ---- from a thread-local destructor (thread teardown) ----

/// Calls every entry point from its destructor and reports the results.
struct AtExit(std::sync::mpsc::Sender<(u32, u32, u32)>);

impl Drop for AtExit {
    fn drop(&mut self) {
        let a = bridge::block_on_safe(async {
            tokio::time::sleep(Duration::from_millis(1)).await;
            1
        })
        .unwrap();
        let b = bridge::call_blocking(async {
            tokio::time::sleep(Duration::from_millis(1)).await;
            2
        });
        let c = bridge::worker_loop().spawn(async { 3 }).wait().unwrap();
        let _ = self.0.send((a, b, c));
    }
}

std::thread_local! {
    static AT_EXIT: std::cell::RefCell<Option<AtExit>> = const { std::cell::RefCell::new(None) };
}

/// On a fresh thread: arms `AT_EXIT` before (`early`) or after the entry
/// points create their own thread-locals, then exits the thread. Destructors
/// run roughly in reverse order of first use, so `early` makes ours run
/// after the crate's and tokio's thread-locals are gone.
fn thread_local_destructor_case(early: bool) {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let arm = |tx| AT_EXIT.with(|a| *a.borrow_mut() = Some(AtExit(tx)));
        let tx = if early {
            arm(tx);
            None
        } else {
            Some(tx)
        };
        assert_eq!(bridge::block_on_safe(tcp_and_timer(1)).unwrap(), 1);
        assert_eq!(bridge::call_blocking(async { 1 }), 1);
        assert_eq!(bridge::worker_loop().spawn(async { 1 }).wait().unwrap(), 1);
        if let Some(tx) = tx {
            arm(tx);
        }
    })
    .join()
    .unwrap();
    println!("CHILD-OK {:?}", rx.recv_timeout(common::TIMEOUT).unwrap());
}

#[test]
fn entry_points_work_in_a_thread_local_destructor() {
    if std::env::var_os("BRIDGE_TEST_CHILD").is_some() {
        return thread_local_destructor_case(false);
    }
    let out = common::in_child_process(
        "entry_points_work_in_a_thread_local_destructor",
        &[("BRIDGE_TEST_CHILD", "1")],
    );
    assert!(out.contains("CHILD-OK (1, 2, 3)"), "{out}");
}

#[test]
fn entry_points_work_in_a_late_thread_local_destructor() {
    if std::env::var_os("BRIDGE_TEST_CHILD").is_some() {
        return thread_local_destructor_case(true);
    }
    let out = common::in_child_process(
        "entry_points_work_in_a_late_thread_local_destructor",
        &[("BRIDGE_TEST_CHILD", "1")],
    );
    assert!(out.contains("CHILD-OK (1, 2, 3)"), "{out}");
}
