//! API.md "The per-thread registry": `running_loop`, `get_running_loop`,
//! `loops`, `enter_foreign`, `LoopInfo`, `LoopId`.

#[macro_use]
mod common;

use std::collections::HashSet;
use std::panic::{catch_unwind, AssertUnwindSafe};

use bridge::{Error, LoopId, RunningLoop};
use common::{bounded, eventually, Ctx, Expect};

/// Checks `running_loop()` against what `ctx` must report.
fn assert_running(ctx: Ctx, what: &str) {
    let now = bridge::running_loop();
    match (ctx.expect(), &now) {
        (Expect::Nothing, None) => {}
        (Expect::Tokio { multi }, Some(RunningLoop::Tokio(h))) => assert_eq!(
            h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread,
            multi,
            "{what}: {now:?}"
        ),
        (Expect::TokioOrNothing, None) => {}
        (Expect::TokioOrNothing, Some(RunningLoop::Tokio(h))) => assert_eq!(
            h.runtime_flavor(),
            tokio::runtime::RuntimeFlavor::MultiThread,
            "{what}"
        ),
        (Expect::Foreign(want), Some(RunningLoop::Foreign(got))) => {
            assert_eq!(*got, want, "{what}")
        }
        (Expect::Bridge, Some(RunningLoop::Bridge(_))) => {}
        (want, got) => panic!("{what} in {ctx:?}: expected {want:?}, got {got:?}"),
    }
}

fn running_loop_sees_the_context(ctx: Ctx) {
    assert_running(ctx, "running_loop");
    match (ctx, bridge::get_running_loop()) {
        (Ctx::BridgeLoop, Ok(h)) => assert_eq!(h.name(), "ctx-loop"),
        (Ctx::WorkerNested, Ok(h)) => assert_eq!(h.id(), bridge::worker_loop().id()),
        (Ctx::BridgeRun, Ok(h)) => {
            assert!(bridge::loops().iter().any(|l| l.id() == h.id()));
            assert_ne!(h.id(), bridge::worker_loop().id());
        }
        (_, Err(Error::NoRunningLoop)) if ctx.expect() != Expect::Bridge => {}
        (_, other) => panic!("get_running_loop in {ctx:?}: {other:?}"),
    }
    if let Some(RunningLoop::Bridge(h)) = bridge::running_loop() {
        assert_eq!(h.id(), bridge::get_running_loop().unwrap().id());
    }
}
every_context!(running_loop_context, running_loop_sees_the_context);

fn enter_foreign_nests_and_restores(ctx: Ctx) {
    {
        let _outer = bridge::enter_foreign("outer-exec");
        assert!(matches!(
            bridge::running_loop(),
            Some(RunningLoop::Foreign("outer-exec"))
        ));
        {
            let _inner = bridge::enter_foreign("inner-exec");
            assert!(matches!(
                bridge::running_loop(),
                Some(RunningLoop::Foreign("inner-exec"))
            ));
            // A foreign executor is a loop: `run` refuses, `get_running_loop` has none.
            assert!(matches!(bridge::run(async {}), Err(Error::NestedLoop)));
            assert!(matches!(
                bridge::get_running_loop(),
                Err(Error::NoRunningLoop)
            ));
            // And block_on_safe still completes (hands off).
            assert_eq!(bridge::block_on_safe(async { 3 }).unwrap(), 3);
        }
        assert!(matches!(
            bridge::running_loop(),
            Some(RunningLoop::Foreign("outer-exec"))
        ));
    }
    assert_running(ctx, "after the foreign guards");
    // Restored on panic too, through any depth.
    let r = catch_unwind(AssertUnwindSafe(|| {
        let _a = bridge::enter_foreign("a");
        let _b = bridge::enter_foreign("b");
        let _c = bridge::enter_foreign("c");
        panic!("unwind through guards");
    }));
    assert!(r.is_err());
    assert_running(ctx, "after unwinding through foreign guards");
}
every_context!(enter_foreign_guards, enter_foreign_nests_and_restores);

fn deep_nesting_restores(ctx: Ctx) {
    // Alternate our own guards with real nesting through the entry points.
    fn go(depth: u32) {
        if depth == 0 {
            return;
        }
        let _g = bridge::enter_foreign("deep");
        bridge::call_blocking(async move {
            assert_eq!(
                bridge::get_running_loop().unwrap().id(),
                bridge::worker_loop().id()
            );
            go(depth - 1);
            assert_eq!(
                bridge::get_running_loop().unwrap().id(),
                bridge::worker_loop().id()
            );
        });
        assert!(matches!(
            bridge::running_loop(),
            Some(RunningLoop::Foreign("deep"))
        ));
    }
    go(8);
    assert_running(ctx, "after deep nesting");
}
every_context!(deep_nesting, deep_nesting_restores);

#[test]
fn guards_restore_after_a_panic_inside_a_loop() {
    bounded("panic_restore", || {
        let lp = bridge::Loop::builder().name("panicky").build().unwrap();
        let r = lp
            .handle()
            .spawn(async {
                let _g = bridge::enter_foreign("inside");
                panic!("in a task");
            })
            .wait();
        assert!(matches!(r, Err(Error::Panicked(_))));
        // The loop's thread is still marked as that loop.
        let (name, id) = lp
            .handle()
            .block_on(async {
                let h = bridge::get_running_loop().unwrap();
                (h.name().to_owned(), h.id())
            })
            .unwrap();
        assert_eq!(name, "panicky");
        assert_eq!(id, lp.handle().id());
        // run's marking is undone by a panic as well.
        assert!(bridge::run(async { panic!("in run") }).is_err());
        assert!(bridge::running_loop().is_none());
    });
}

#[test]
fn loop_id_is_copy_eq_hash_debug() {
    fn props<T: Copy + Eq + std::hash::Hash + std::fmt::Debug>() {}
    props::<LoopId>();
    bounded("loop_id", || {
        let a = bridge::Loop::new().unwrap();
        let b = bridge::Loop::new().unwrap();
        let ia = a.handle().id();
        let copy = ia;
        assert_eq!(ia, copy);
        assert_ne!(ia, b.handle().id());
        assert_ne!(ia, bridge::worker_loop().id());
        let set: HashSet<LoopId> = [ia, copy, b.handle().id()].into_iter().collect();
        assert_eq!(set.len(), 2);
        assert!(!format!("{ia:?}").is_empty());
    });
}

#[test]
fn a_bridge_loops_thread_carries_its_name() {
    bounded("thread_name", || {
        let lp = bridge::Loop::builder().name("named-db").build().unwrap();
        let name = lp
            .handle()
            .block_on(async { std::thread::current().name().map(str::to_owned) })
            .unwrap();
        assert_eq!(name.as_deref(), Some("named-db"));
        // Default names too: the loop's name is its thread's name.
        let anon = bridge::Loop::new().unwrap();
        let name = anon
            .handle()
            .block_on(async { std::thread::current().name().map(str::to_owned) })
            .unwrap();
        assert_eq!(name.as_deref(), Some(anon.handle().name()));
        let info = bridge::loops()
            .into_iter()
            .find(|l| l.id() == anon.handle().id())
            .unwrap();
        assert_eq!(info.name(), anon.handle().name());
        // The worker loop's threads too.
        let w = bridge::worker_loop();
        let name = w
            .block_on(async { std::thread::current().name().map(str::to_owned) })
            .unwrap();
        assert_eq!(name.as_deref(), Some(w.name()));
    });
}

#[test]
fn loops_lists_live_loops_and_drops_closed_ones() {
    bounded("loops", || {
        let a = bridge::Loop::builder().name("list-a").build().unwrap();
        let b = bridge::Loop::builder().name("list-b").build().unwrap();
        let (ia, ib) = (a.handle().id(), b.handle().id());
        let ids: Vec<LoopId> = bridge::loops().iter().map(|l| l.id()).collect();
        assert!(ids.contains(&ia) && ids.contains(&ib), "{ids:?}");
        let info = bridge::loops().into_iter().find(|l| l.id() == ia).unwrap();
        assert_eq!(info.name(), "list-a");
        let tid = a
            .handle()
            .block_on(async { std::thread::current().id() })
            .unwrap();
        assert_eq!(info.thread_id(), tid);
        drop(a);
        let ids: Vec<LoopId> = bridge::loops().iter().map(|l| l.id()).collect();
        assert!(!ids.contains(&ia), "closed loop still listed: {ids:?}");
        assert!(ids.contains(&ib));
        // The handle outlives the loop, but the registry does not keep it.
        let h = b.handle();
        drop(b);
        assert!(h.is_closed());
        assert!(!bridge::loops().iter().any(|l| l.id() == ib));
        // A `run` loop is listed while it runs, under its thread's name.
        let id = std::thread::Builder::new()
            .name("run-listed".into())
            .spawn(|| {
                bridge::run(async {
                    let me = bridge::get_running_loop().unwrap();
                    let info = bridge::loops().into_iter().find(|l| l.id() == me.id());
                    let info = info.expect("run's loop is listed");
                    assert_eq!(info.name(), "run-listed");
                    assert_eq!(info.thread_id(), std::thread::current().id());
                    me.id()
                })
                .unwrap()
            })
            .unwrap()
            .join()
            .unwrap();
        assert!(!bridge::loops().iter().any(|l| l.id() == id));
    });
}

#[test]
fn loop_info_tasks_counts_live_tasks() {
    bounded("tasks", || {
        let lp = bridge::Loop::new().unwrap();
        let id = lp.handle().id();
        let info = || bridge::loops().into_iter().find(|l| l.id() == id).unwrap();
        assert_eq!(info().tasks(), 0);
        let (tx, rx) = tokio::sync::watch::channel(false);
        let futs: Vec<_> = (0..3)
            .map(|_| {
                let mut rx = rx.clone();
                lp.handle().spawn(async move {
                    let _ = rx.wait_for(|go| *go).await;
                })
            })
            .collect();
        // Also a task spawned with tokio::spawn from inside the loop counts.
        lp.handle()
            .block_on({
                let mut rx = rx.clone();
                async move {
                    // Detached: it ends when the watch says go.
                    drop(tokio::spawn(async move {
                        let _ = rx.wait_for(|go| *go).await;
                    }));
                }
            })
            .unwrap();
        // All four wait forever; only the finished `block_on` task may still
        // be on its way out, so the count settles at exactly 4.
        eventually("3 spawned + 1 tokio::spawn'ed tasks, all waiting", || {
            info().tasks() == 4
        });
        tx.send(true).unwrap();
        for f in futs {
            f.wait().unwrap();
        }
        eventually("tasks() drops back to 0", || info().tasks() == 0);
    });
}

#[test]
fn worker_thread_id_is_the_thread_driving_it() {
    bounded("worker_tid", || {
        let w = bridge::worker_loop().id();
        let info = move || bridge::loops().into_iter().find(|l| l.id() == w).unwrap();
        // From inside a worker task: the thread polling it is the one driving it.
        for _ in 0..10 {
            let ok =
                bridge::call_blocking(
                    async move { info().thread_id() == std::thread::current().id() },
                );
            assert!(ok, "worker thread_id is the thread running its task");
        }
    });
}

#[test]
fn worker_thread_id_follows_the_core_when_nested() {
    bounded("worker_tid_nested", || {
        let w = bridge::worker_loop().id();
        let info = move || bridge::loops().into_iter().find(|l| l.id() == w).unwrap();
        // The outer call blocks its thread, so the core moves elsewhere.
        let (outer, inner, reported) = bridge::call_blocking(async move {
            let outer = std::thread::current().id();
            let (inner, reported) =
                bridge::call_blocking(
                    async move { (std::thread::current().id(), info().thread_id()) },
                );
            (outer, inner, reported)
        });
        assert_ne!(
            outer, inner,
            "a nested call runs on the thread that took the core"
        );
        assert_eq!(reported, inner, "thread_id() follows the core");
    });
}

#[test]
fn futures_executor_and_tokio_detection_without_our_guards() {
    bounded("detection", || {
        // Nested executors: the innermost wins, and leaving restores.
        futures::executor::block_on(async {
            assert!(matches!(
                bridge::running_loop(),
                Some(RunningLoop::Foreign("futures::executor"))
            ));
        });
        let rt = common::current_rt();
        rt.block_on(async {
            let h = match bridge::running_loop() {
                Some(RunningLoop::Tokio(h)) => h,
                other => panic!("{other:?}"),
            };
            assert_eq!(
                h.runtime_flavor(),
                tokio::runtime::RuntimeFlavor::CurrentThread
            );
            // The handle is the user's runtime: spawning on it works.
            assert_eq!(h.spawn(async { 5 }).await.unwrap(), 5);
        });
        assert!(bridge::running_loop().is_none());
    });
}

// ---- issue 11: guards in any order, `run` where no loop runs, and
// `WouldDeadlock` through every nesting the crate can see ----

#[test]
fn foreign_guards_dropped_out_of_order_leave_exactly_the_live_ones() {
    let a = bridge::enter_foreign("a");
    let b = bridge::enter_foreign("b");
    let c = bridge::enter_foreign("c");
    drop(b);
    assert!(matches!(
        bridge::running_loop(),
        Some(RunningLoop::Foreign("c"))
    ));
    drop(c);
    assert!(matches!(
        bridge::running_loop(),
        Some(RunningLoop::Foreign("a"))
    ));
    let d = bridge::enter_foreign("d");
    drop(a);
    assert!(matches!(
        bridge::running_loop(),
        Some(RunningLoop::Foreign("d"))
    ));
    drop(d);
    assert!(bridge::running_loop().is_none());
    // Nothing left marked: `run` works and `block_on_safe` runs inline.
    assert_eq!(bridge::run(async { 1 }).unwrap(), 1);
    let me = std::thread::current().id();
    let on = bridge::block_on_safe(async { std::thread::current().id() }).unwrap();
    assert_eq!(on, me);
}

#[test]
fn a_guard_that_outlives_its_run_loop_leaves_no_closed_loop_behind() {
    bounded("guard_outlives_run", || {
        // The guard is made inside `run` and returned out of it: `run`'s
        // own scope ends first, out of order.
        let guard = bridge::run(async { bridge::enter_foreign("outlives") }).unwrap();
        assert!(matches!(
            bridge::running_loop(),
            Some(RunningLoop::Foreign("outlives"))
        ));
        assert!(matches!(
            bridge::get_running_loop(),
            Err(Error::NoRunningLoop)
        ));
        drop(guard);
        assert!(bridge::running_loop().is_none());
        assert_eq!(bridge::run(async { 2 }).unwrap(), 2);
    });
}

#[test]
fn run_works_where_tokio_allows_blocking() {
    bounded("run_where_blocking_allowed", || {
        let rt = common::multi_rt();
        // A `spawn_blocking` thread of a runtime the user built.
        let v = rt
            .block_on(rt.spawn_blocking(|| bridge::run(async { 1 })))
            .unwrap();
        assert_eq!(v.unwrap(), 1);
        // Inside `block_in_place`, where tokio's own `block_on` works.
        let v = rt
            .block_on(rt.spawn(async { tokio::task::block_in_place(|| bridge::run(async { 2 })) }))
            .unwrap();
        assert_eq!(v.unwrap(), 2);
        // A `spawn_blocking` thread of the worker loop's runtime.
        let v = bridge::call_blocking(async {
            tokio::task::spawn_blocking(|| bridge::run(async { 3 }))
                .await
                .unwrap()
        });
        assert_eq!(v.unwrap(), 3);
        // Under `Runtime::enter`.
        {
            let _entered = rt.enter();
            assert_eq!(bridge::run(async { 6 }).unwrap(), 6);
        }
        // Where a loop does run, it is still refused (never a panic).
        let v = rt.block_on(async { bridge::run(async { 4 }) });
        assert!(matches!(v, Err(Error::NestedLoop)), "{v:?}");
        let local = tokio::task::LocalSet::new();
        let v = rt.block_on(local.run_until(async {
            tokio::task::spawn_local(async { bridge::run(async { 5 }) })
                .await
                .unwrap()
        }));
        assert!(matches!(v, Err(Error::NestedLoop)), "{v:?}");
    });
}

/// Asserts that each way of blocking, from `ctx_name`, on work of the loop
/// `h` that this thread (or a thread blocked on it) stops, is refused.
fn refused_everywhere(h: &bridge::LoopHandle, ctx_name: &str) {
    let direct = h.block_on(async { 1 });
    assert!(
        matches!(direct, Err(Error::WouldDeadlock)),
        "{ctx_name} block_on: {direct:?}"
    );
    let waited = h.spawn(std::future::pending::<()>()).wait();
    assert!(
        matches!(waited, Err(Error::WouldDeadlock)),
        "{ctx_name} wait: {waited:?}"
    );
    let pending = h.spawn(std::future::pending::<()>());
    assert!(
        !pending.wait_timeout(std::time::Duration::from_secs(60)),
        "{ctx_name} wait_timeout must return at once"
    );
    pending.cancel();
}

#[test]
fn would_deadlock_through_every_nesting_and_hand_off() {
    bounded("would_deadlock_nesting", || {
        let lp = bridge::Loop::builder().name("home").build().unwrap();
        let h = lp.handle();
        let inner = h.clone();
        lp.handle()
            .block_on(async move {
                let h = inner;
                refused_everywhere(&h, "the loop's own task");
                futures::executor::block_on(async { refused_everywhere(&h, "futures::executor") });
                {
                    let _g = bridge::enter_foreign("pollster");
                    refused_everywhere(&h, "enter_foreign");
                }
                // Handed to the worker loop while this thread blocks: the
                // worker must not wait on the loop this thread stops.
                bridge::call_blocking(async { refused_everywhere(&h, "call_blocking") });
                bridge::block_on_safe(async { refused_everywhere(&h, "block_on_safe") }).unwrap();
                bridge::call_blocking(async {
                    bridge::call_blocking(async { refused_everywhere(&h, "nested call_blocking") })
                });
            })
            .unwrap();
        // Elsewhere the same waits complete.
        assert_eq!(h.block_on(async { 7 }).unwrap(), 7);
        assert_eq!(
            bridge::call_blocking(async { h.block_on(async { 8 }) }).unwrap(),
            8
        );
    });
}

#[test]
fn would_deadlock_for_a_single_thread_executor_through_a_hand_off() {
    bounded("would_deadlock_executor", || {
        let ex = std::sync::Arc::new(bridge::Executor::single_thread("st-home"));
        let inner = ex.clone();
        let r = ex
            .run(move || {
                // The executor's only thread blocks in `call_blocking`; the
                // worker must not wait for another job of that executor.
                bridge::call_blocking(async move { inner.run(|| 1).wait() })
            })
            .wait()
            .unwrap();
        assert!(matches!(r, Err(Error::WouldDeadlock)), "{r:?}");
        assert_eq!(ex.run(|| 2).wait().unwrap(), 2);
    });
}

// ---- issue 11: which scheduler runs here is decided by the thread, never
// by the ambient handle, and never by a probe that panics ----

#[test]
fn worker_survives_a_library_entering_a_current_thread_runtime() {
    bounded("worker_enters_current_thread", || {
        let ct = common::current_rt();
        let ct_handle = ct.handle().clone();
        // Inside worker-loop work, a library enters another runtime's
        // context and then blocks in each way the crate offers. Each nested
        // wait needs the worker loop to run its work: the core must move.
        let handle = ct_handle.clone();
        let v = bridge::call_blocking(async move {
            let _entered = handle.enter();
            let a = bridge::call_blocking(async {
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                1
            });
            let b = bridge::block_on_safe(async { 2 }).unwrap();
            let c = bridge::worker_loop().spawn(async { 3 }).wait().unwrap();
            let d = bridge::worker_loop().block_on(async { 4 }).unwrap();
            a + b + c + d
        });
        assert_eq!(v, 10);
        // The same from a task spawned on the worker loop with tokio::spawn.
        let handle = ct_handle.clone();
        let v = bridge::call_blocking(async move {
            tokio::spawn(async move {
                let _entered = handle.enter();
                bridge::call_blocking(async { 5 })
            })
            .await
            .unwrap()
        });
        assert_eq!(v, 5);
        // The worker loop still serves everyone.
        assert_eq!(bridge::call_blocking(async { 6 }), 6);
        drop(ct);
    });
}

#[test]
fn a_current_thread_task_that_entered_a_multi_thread_runtime_blocks_without_a_panic() {
    bounded("ct_enters_mt", || {
        let mt = common::multi_rt();
        let mt_handle = mt.handle().clone();
        // `std::thread::spawn` threads are unnamed: never one of tokio's.
        let h = mt_handle.clone();
        let v = std::thread::spawn(move || {
            let ct = common::current_rt();
            let on_block_on = ct.block_on(async {
                let _entered = h.enter();
                bridge::call_blocking(async { 1 })
            });
            let in_task = ct
                .block_on(async move {
                    tokio::spawn(async move {
                        let _entered = h.enter();
                        bridge::call_blocking(async { 2 })
                    })
                    .await
                })
                .unwrap();
            on_block_on + in_task
        })
        .join()
        .unwrap();
        assert_eq!(v, 3);
        // In a bridge loop's task and a `run` loop's task, on any thread.
        let lp = bridge::Loop::new().unwrap();
        let h = mt_handle.clone();
        let v = lp
            .handle()
            .block_on(async move {
                let _entered = h.enter();
                bridge::call_blocking(async { 3 })
            })
            .unwrap();
        assert_eq!(v, 3);
        let h = mt_handle.clone();
        let v = bridge::run(async move {
            tokio::spawn(async move {
                let _entered = h.enter();
                bridge::call_blocking(async { 4 })
            })
            .await
            .unwrap()
        })
        .unwrap();
        assert_eq!(v, 4);
        // On this named thread: a current-thread task inside the worker
        // loop's context (whose workers are all known to the crate).
        let worker = bridge::worker_loop();
        let v = common::current_rt()
            .block_on(async move {
                tokio::spawn(async move {
                    let _entered = worker.tokio_handle().enter();
                    bridge::call_blocking(async { 5 })
                })
                .await
            })
            .unwrap();
        assert_eq!(v, 5);
        drop(mt);
    });
}

/// 900 blocking calls in flight at once inside worker-loop work: past
/// tokio's default of 512 blocking threads, where the worker loop used to
/// stop for the whole process. Each call completes or is refused with
/// `WouldDeadlock` (past the crate's limit of 768); none hangs, and the
/// worker loop serves later calls.
#[test]
fn nested_blocking_calls_past_tokios_thread_cap_never_stop_the_worker() {
    const ENV: &str = "BRIDGE_TEST_NESTED_CAP";
    if std::env::var_os(ENV).is_none() {
        let out = common::in_child_process(
            "nested_blocking_calls_past_tokios_thread_cap_never_stop_the_worker",
            &[(ENV, "1")],
        );
        assert!(out.contains("nested: "), "{out}");
        return;
    }
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
    use std::sync::Arc;
    const N: usize = 900;
    bounded_for_cap(move || {
        let started = Arc::new(AtomicUsize::new(0));
        let refused = Arc::new(AtomicUsize::new(0));
        let (open_tx, open_rx) = tokio::sync::watch::channel(false);
        let mut outer = Vec::new();
        for _ in 0..N {
            let (started, refused, mut open) = (started.clone(), refused.clone(), open_rx.clone());
            outer.push(bridge::worker_loop().spawn(async move {
                let r = bridge::block_on_safe(async move {
                    started.fetch_add(1, SeqCst);
                    open.wait_for(|o| *o).await.unwrap();
                    1usize
                });
                if matches!(r, Err(Error::WouldDeadlock)) {
                    refused.fetch_add(1, SeqCst);
                }
                r
            }));
        }
        eventually("every nested call started or was refused", || {
            started.load(SeqCst) + refused.load(SeqCst) == N
        });
        open_tx.send(true).unwrap();
        let mut done = 0;
        for f in outer {
            match f.wait().unwrap() {
                Ok(1) => done += 1,
                Err(Error::WouldDeadlock) => {}
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(done, started.load(SeqCst));
        assert!(done > 512, "only {done} nested calls were let through");
        assert_eq!(bridge::call_blocking(async { 7 }), 7);
        println!("nested: {done} completed, {} refused", refused.load(SeqCst));
    });
}

fn bounded_for_cap(f: impl FnOnce() + Send + 'static) {
    common::bounded_for("nested_cap", std::time::Duration::from_secs(120), f)
}

#[test]
fn would_deadlock_between_two_loops_blocking_on_each_other() {
    bounded("would_deadlock_two_loops", || {
        let a = bridge::Loop::builder().name("a").build().unwrap();
        let b = bridge::Loop::builder().name("b").build().unwrap();
        let (ha, hb) = (a.handle(), b.handle());
        // A's thread blocks on B's work, which blocks on A's work.
        let r = a
            .handle()
            .block_on(async move { hb.block_on(async move { ha.block_on(async { 1 }) }) })
            .unwrap()
            .unwrap();
        assert!(matches!(r, Err(Error::WouldDeadlock)), "{r:?}");
    });
}

/// tokio moves a core to the ambient runtime's blocking pool: a worker of a
/// runtime the user built, blocking under another runtime's context, must
/// not leave its core on that runtime's threads (its shutdown would wait
/// for them forever).
#[test]
fn a_multi_thread_task_under_another_context_keeps_its_core_home() {
    bounded("mt_under_ct_context", || {
        let mt = common::multi_rt();
        for i in 0..8u32 {
            let ct = common::current_rt();
            let ch = ct.handle().clone();
            let v = mt
                .block_on(mt.spawn(async move {
                    let _entered = ch.enter();
                    bridge::call_blocking(async move { i })
                }))
                .unwrap();
            assert_eq!(v, i);
            drop(ct); // returns: none of its threads runs `mt`'s core
        }
        drop(mt);
    });
}

/// The name of the foreign executor this thread is marked as inside, if any.
fn foreign_mark() -> Option<&'static str> {
    match bridge::running_loop() {
        None => None,
        Some(RunningLoop::Foreign(name)) => Some(name),
        Some(other) => panic!("unexpected running loop {other:?}"),
    }
}

/// Two threads nest guards three deep (the deepest unwound by a panic),
/// stepping in lock-step: each thread only ever sees its own context, and
/// each guard's drop restores the previous marking. (Formerly a loom model,
/// which had a single execution: a thread's context is thread-local.)
#[test]
fn nested_guards_restore_per_thread() {
    use std::panic::resume_unwind;
    use std::sync::{Arc, Barrier};

    fn nest(names: [&'static str; 3], step: &Barrier) {
        let check = |want: Option<&'static str>| {
            assert_eq!(foreign_mark(), want);
            step.wait();
        };
        check(None);
        let outer = bridge::enter_foreign(names[0]);
        check(Some(names[0]));
        {
            let _inner = bridge::enter_foreign(names[1]);
            check(Some(names[1]));
            let unwound = catch_unwind(AssertUnwindSafe(|| {
                let _deepest = bridge::enter_foreign(names[2]);
                check(Some(names[2]));
                // `resume_unwind` skips the panic hook: no noise.
                resume_unwind(Box::new("unwinds through the guard"));
            }));
            assert!(unwound.is_err());
            check(Some(names[1]));
        }
        check(Some(names[0]));
        drop(outer);
        check(None);
    }

    bounded("nested_guards_restore_per_thread", || {
        let step = Arc::new(Barrier::new(2));
        let other = step.clone();
        let t = std::thread::spawn(move || nest(["a-outer", "a-inner", "a-deepest"], &other));
        nest(["b-outer", "b-inner", "b-deepest"], &step);
        t.join().unwrap();
    });
}
