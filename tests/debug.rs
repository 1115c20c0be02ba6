//! Debug mode: slow-poll and unread-panic reports, the blocked-loop report,
//! the hang watchdog, and the counters and lag of `LoopInfo`.
//!
//! Every report is captured from a global `tracing` subscriber and found by a
//! marker unique to its test (a loop name or a panic message), so the tests
//! of this binary may run in parallel.

#[allow(unused_macros)]
#[macro_use]
mod common;
mod debug_support;

use std::time::Duration;

use debug_support::{
    block_on_at, block_on_safe_at, call_soon_at, capture, field, run_coroutine_threadsafe_at,
    spawn_at, wait_at,
};

/// Long enough for any report to show up; only turns a missing one into a failure.
const LIMIT: Duration = Duration::from_secs(20);

fn debug_loop(name: &str, slow_poll: Duration) -> bridge::Loop {
    bridge::Loop::builder()
        .name(name)
        .debug(true)
        .slow_poll_threshold(slow_poll)
        .build()
        .unwrap()
}

fn info(lp: &bridge::Loop) -> bridge::LoopInfo {
    let id = lp.handle().id();
    bridge::loops().into_iter().find(|l| l.id() == id).unwrap()
}

/// Blocks the polling thread: the very thing a slow-poll report is about.
async fn block_for(d: Duration) {
    std::thread::sleep(d)
}

#[test]
fn slow_poll_names_the_spawn_site_and_the_time() {
    let cap = capture();
    let lp = debug_loop("slow-poll-spawn", Duration::from_millis(20));
    let (fut, at) = spawn_at(&lp.handle(), block_for(Duration::from_millis(60)));
    assert!(at.starts_with("tests/debug.rs:"), "{at}");
    fut.wait().unwrap();
    let report = cap.wait_for(&["slow-poll-spawn", "single poll"], LIMIT);
    assert!(report.contains("WARN"), "{report}");
    assert!(report.contains(&format!("spawned at {at}")), "{report}");
    assert!(field(&report, "took_ms") >= 60.0, "{report}");
    assert_eq!(field(&report, "threshold_ms"), 20.0, "{report}");
}

#[test]
fn every_spawn_path_reports_its_callers_location() {
    let cap = capture();
    let lp = debug_loop("slow-poll-paths", Duration::from_millis(10));
    let h = lp.handle();
    let slow = || block_for(Duration::from_millis(30));

    let (fut, at_rct) = run_coroutine_threadsafe_at(&h, slow());
    fut.wait().unwrap();
    let (done, at_block_on) = block_on_at(&h, slow());
    done.unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let at_soon = call_soon_at(&h, move || {
        std::thread::sleep(Duration::from_millis(30));
        tx.send(()).unwrap();
    });
    rx.recv().unwrap();

    for at in [at_rct, at_block_on, at_soon] {
        let at = format!("spawned at {at}");
        cap.wait_for(&["slow-poll-paths", "single poll", &at], LIMIT);
    }
}

#[test]
fn a_loop_without_debug_reports_no_slow_poll() {
    let cap = capture();
    let lp = bridge::Loop::builder()
        .name("slow-poll-quiet")
        .debug(false)
        .slow_poll_threshold(Duration::from_millis(1))
        .build()
        .unwrap();
    assert!(!lp.handle().debug());
    lp.handle()
        .spawn(block_for(Duration::from_millis(20)))
        .wait()
        .unwrap();
    // The report would be made inside the poll, before the result is published.
    assert!(cap.lines(&["slow-poll-quiet"]).is_empty());
}

#[test]
fn unread_panic_is_reported_when_it_happens_after_the_drop() {
    let cap = capture();
    let lp = debug_loop("unread-late", Duration::from_secs(10));
    let (go, wait_go) = tokio::sync::oneshot::channel::<()>();
    let (fut, at) = spawn_at(&lp.handle(), async move {
        wait_go.await.unwrap();
        panic!("late-panic-7c1e");
    });
    drop(fut);
    go.send(()).unwrap();
    let report = cap.wait_for(&["late-panic-7c1e", "nobody read"], LIMIT);
    assert!(report.contains("ERROR"), "{report}");
    assert!(report.contains("unread-late"), "{report}");
    assert!(report.contains(&format!("spawned at {at}")), "{report}");
}

#[test]
fn unread_panic_is_reported_at_drop_when_the_panic_came_first() {
    let cap = capture();
    let lp = debug_loop("unread-early", Duration::from_secs(10));
    let fut = lp.handle().spawn(async { panic!("early-panic-52ab") });
    assert!(fut.wait_timeout(LIMIT));
    assert!(cap.lines(&["early-panic-52ab", "nobody read"]).is_empty());
    drop(fut); // reported right here, on this thread
    let report = cap.lines(&["early-panic-52ab", "nobody read"]);
    assert_eq!(report.len(), 1, "{report:?}");
    assert!(report[0].contains("ERROR"), "{report:?}");
}

#[test]
fn a_panic_that_is_read_is_not_reported() {
    let cap = capture();
    let lp = debug_loop("unread-none", Duration::from_secs(10));
    let fut = lp.handle().spawn(async { panic!("read-panic-9d03") });
    match fut.wait() {
        Err(bridge::Error::Panicked(p)) => assert_eq!(p.message(), "read-panic-9d03"),
        other => panic!("expected Panicked, got {other:?}"),
    }
    assert!(cap.lines(&["read-panic-9d03", "nobody read"]).is_empty());
}

#[test]
fn watchdog_reports_a_wait_past_the_hang_threshold() {
    let cap = capture();
    bridge::set_hang_threshold(Duration::from_millis(200));
    let lp = debug_loop("hang-watch", Duration::from_secs(10));
    let (release, released) = tokio::sync::oneshot::channel::<u32>();
    let (fut, spawned_at) = spawn_at(&lp.handle(), async move { released.await.unwrap() });
    // Finish the work only once the watchdog has reported the wait.
    let helper = std::thread::spawn(move || {
        let report = capture().wait_for(&["hang-watch", "keeps waiting"], LIMIT);
        release.send(7).unwrap();
        report
    });
    let mut waiting_at = String::new();
    let got = wait_at(fut, |at| waiting_at = at);
    assert_eq!(got.unwrap(), 7, "the wait goes on after the report");
    let report = helper.join().unwrap();
    assert!(report.contains("WARN"), "{report}");
    let me = std::thread::current().name().unwrap().to_owned();
    assert!(report.contains(&format!("thread '{me}'")), "{report}");
    assert!(
        report.contains(&format!("blocked at {waiting_at}")),
        "{report}"
    );
    assert!(
        report.contains(&format!("spawned at {spawned_at}")),
        "{report}"
    );
    assert!(field(&report, "waited_ms") >= 200.0, "{report}");
    let at = format!("the wait at {waiting_at}");
    cap.wait_for(&[&at, "finished after"], LIMIT);
}

#[test]
fn blocking_a_debug_loop_with_block_on_safe_is_reported() {
    let _cap = capture();
    let lp = debug_loop("blocked-by-handoff", Duration::from_millis(50));
    let (release, released) = tokio::sync::oneshot::channel::<u32>();
    let (line_tx, line_rx) = std::sync::mpsc::channel();
    let fut = lp.handle().spawn(async move {
        let announce = |at| line_tx.send(at).unwrap();
        block_on_safe_at(async move { released.await.unwrap() }, announce).unwrap()
    });
    let at = line_rx.recv().unwrap();
    let report = capture().wait_for(&["has stopped loop 'blocked-by-handoff'"], LIMIT);
    release.send(3).unwrap();
    assert_eq!(fut.wait().unwrap(), 3);
    assert!(report.contains("WARN"), "{report}");
    assert!(
        report.contains(&format!("blocking call at {at}")),
        "{report}"
    );
    assert!(report.contains("thread 'blocked-by-handoff'"), "{report}");
    assert!(report.contains("on loop 'bridge-worker'"), "{report}");
    assert!(field(&report, "took_ms") >= 50.0, "{report}");
}

#[test]
fn counters_count_every_ending() {
    let lp = bridge::Loop::builder().name("counters").build().unwrap();
    let h = lp.handle();
    for i in 0..3 {
        assert_eq!(h.spawn(async move { i }).wait().unwrap(), i);
    }
    assert!(h.spawn(async { panic!("counted") }).wait().is_err());

    // A task dropped before it finishes counts as cancelled; its destructors
    // run after it was counted.
    struct OnDrop(std::sync::mpsc::Sender<()>);
    impl Drop for OnDrop {
        fn drop(&mut self) {
            let _ = self.0.send(());
        }
    }
    let (dropped_tx, dropped) = std::sync::mpsc::channel();
    let guard = OnDrop(dropped_tx);
    let pending = h.spawn(async move {
        let _guard = guard;
        std::future::pending::<()>().await
    });
    assert!(pending.cancel());
    dropped.recv().unwrap();

    let info = info(&lp);
    assert_eq!(info.spawned(), 5);
    assert_eq!(info.completed(), 3);
    assert_eq!(info.panicked(), 1);
    assert_eq!(info.cancelled(), 1);
    let line = info.to_string();
    assert!(
        line.starts_with("counters (loop#")
            && line.contains("5 spawned, 3 completed, 1 cancelled, 1 panicked"),
        "{line}"
    );
}

#[test]
fn tasks_left_when_a_loop_closes_count_as_cancelled() {
    let lp = bridge::Loop::builder()
        .name("counters-close")
        .build()
        .unwrap();
    let info = info(&lp);
    let futs: Vec<_> = (0..4)
        .map(|_| lp.handle().spawn(std::future::pending::<()>()))
        .collect();
    drop(lp); // joins the loop's thread: every task was dropped by then
    assert!(futs.into_iter().all(|f| f.wait().is_err()));
    assert_eq!(
        (info.spawned(), info.cancelled(), info.completed()),
        (4, 4, 0)
    );
}

#[test]
fn worker_loop_counts_hand_offs() {
    let worker = || {
        bridge::loops()
            .into_iter()
            .find(|l| l.name() == "bridge-worker")
            .unwrap()
    };
    assert_eq!(bridge::call_blocking(async { 1 }), 1);
    let before = worker().spawned();
    assert_eq!(bridge::call_blocking(async { 2 }), 2);
    assert!(worker().spawned() > before);
}

/// Polls `cond` until it holds; the limit only turns a hang into a failure.
fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + LIMIT;
    while !cond() {
        assert!(std::time::Instant::now() < deadline, "never: {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn lag_shows_a_blocked_loop_and_the_probe_is_not_a_task() {
    let lp = debug_loop("lag-debug", Duration::from_secs(10));
    let info = info(&lp);
    eventually("a first lag sample", || info.lag().is_some());
    assert_eq!(info.tasks(), 0, "the lag probe is not the user's task");
    assert_eq!(info.spawned(), 0);
    // Stop the loop for 400 ms: its timer wakes at least 300 ms late.
    lp.handle()
        .spawn(block_for(Duration::from_millis(400)))
        .wait()
        .unwrap();
    eventually("a lag over 300 ms", || {
        info.max_lag()
            .is_some_and(|l| l >= Duration::from_millis(300))
    });
    assert!(info.to_string().contains(", lag "), "{info}");
}

#[test]
fn lag_is_measured_lazily_without_debug() {
    let lp = bridge::Loop::builder().name("lag-lazy").build().unwrap();
    let info = info(&lp);
    assert!(!info.debug());
    assert_eq!(info.lag(), None, "nothing measured before anyone asked");
    eventually("a lag sample once asked", || info.lag().is_some());
    assert!(info.lag().unwrap() < Duration::from_secs(5));
}

// ---- issue 11: an idle loop is never woken by the lag probe ----

/// Tasks alive on the loop's runtime, the lag probe included (`LoopInfo::tasks`
/// leaves it out).
fn runtime_tasks(lp: &bridge::Loop) -> usize {
    lp.handle().tokio_handle().metrics().num_alive_tasks()
}

#[test]
fn the_lag_probe_stops_when_nobody_looks() {
    let lp = bridge::Loop::builder().name("lag-stops").build().unwrap();
    let info = info(&lp);
    assert_eq!(runtime_tasks(&lp), 0, "no probe before anyone asked");
    let _ = info.lag();
    assert_eq!(runtime_tasks(&lp), 1, "asking starts the probe");
    eventually("a lag sample once asked", || {
        info.to_string().contains(", lag ")
    });
    // Nobody asks again: the probe ends by itself (after 10 s), and the
    // loop is idle again. `Display` does not count as asking.
    let deadline = std::time::Instant::now() + Duration::from_secs(40);
    while runtime_tasks(&lp) != 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the probe never stopped"
        );
        assert!(info.to_string().contains(", lag "));
        std::thread::sleep(Duration::from_millis(50));
    }
    // The next look starts it again.
    let _ = info.max_lag();
    assert_eq!(runtime_tasks(&lp), 1);
}

#[test]
fn a_debug_loop_probes_only_while_it_has_tasks() {
    let lp = debug_loop("lag-debug-tasks", Duration::from_secs(10));
    let info = info(&lp);
    assert_eq!(runtime_tasks(&lp), 0, "an idle debug loop runs no probe");
    let task = lp.handle().spawn(std::future::pending::<()>());
    eventually("the probe measures while a task lives", || {
        info.to_string().contains(", lag ")
    });
    assert_eq!(runtime_tasks(&lp), 2, "the task and the probe");
    assert_eq!(info.tasks(), 1, "the probe is not the user's task");
    assert!(task.cancel());
    eventually("the probe stops once the loop is idle", || {
        runtime_tasks(&lp) == 0
    });
    // Work again: measured again.
    lp.handle().spawn(async {}).wait().unwrap();
    let task = lp.handle().spawn(std::future::pending::<()>());
    eventually("the probe restarts with a task", || runtime_tasks(&lp) == 2);
    task.cancel();
}

// ---- issue 11: no process-wide panic hook, no panic probe ----

/// The crate's first blocking call made while the thread unwinds (a `Loop`
/// dropped by a panicking task) used to install a panic hook there, which
/// aborts the process. And no call of the crate panics to ask tokio a
/// question: a hook the application sets sees no panic it did not make.
#[test]
fn no_panic_hook_and_no_probe_panics() {
    const ENV: &str = "BRIDGE_TEST_NO_HOOK";
    if std::env::var_os(ENV).is_none() {
        let out = common::in_child_process("no_panic_hook_and_no_probe_panics", &[(ENV, "1")]);
        assert!(out.contains("child: ok"), "{out}");
        return;
    }
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
    // 1. The first blocking call of the crate happens during an unwind.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let lp = bridge::Loop::builder()
        .name("dropped-in-panic")
        .build()
        .unwrap();
    let joined = rt.block_on(rt.spawn(async move {
        let _lp = lp;
        panic!("expected: a task that owns a Loop panics");
    }));
    assert!(joined.unwrap_err().is_panic());

    // 2. From now on every panic is counted; the crate must make none.
    static PANICS: AtomicUsize = AtomicUsize::new(0);
    let prev = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        PANICS.fetch_add(1, SeqCst);
        prev(info)
    }));
    let ct = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let debug = bridge::Loop::builder()
        .name("child-debug")
        .debug(true)
        .build()
        .unwrap();
    let dh = debug.handle();
    // A hand-off from a current-thread runtime (its task) in debug mode
    // (the loop's debug mode names the wait's target).
    let v = ct.block_on(async move {
        tokio::spawn(async move {
            let a = dh.spawn(async { 1 }).wait().unwrap();
            let b = bridge::block_on_safe(async { 2 }).unwrap();
            let c = dh.block_on(async { 3 }).unwrap();
            a + b + c
        })
        .await
        .unwrap()
    });
    assert_eq!(v, 6);
    // Blocking calls in tasks of a multi-thread runtime, with and without
    // another runtime's context entered.
    let cth = ct.handle().clone();
    let v = rt.block_on(rt.spawn(async move {
        let a = bridge::call_blocking(async { 1 });
        let _entered = cth.enter();
        a + bridge::call_blocking(async { 2 })
    }));
    assert_eq!(v.unwrap(), 3);
    // A LocalSet on a multi-thread runtime's block_on.
    let local = tokio::task::LocalSet::new();
    let v = rt.block_on(local.run_until(async {
        tokio::task::spawn_local(async { bridge::call_blocking(async { 4 }) })
            .await
            .unwrap()
    }));
    assert_eq!(v, 4);
    drop(debug);
    assert_eq!(PANICS.load(SeqCst), 0, "the crate panicked to probe tokio");
    println!("child: ok");
}
