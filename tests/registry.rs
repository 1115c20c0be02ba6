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
