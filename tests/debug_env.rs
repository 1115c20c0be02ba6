//! `BRIDGE_DEBUG=1`: debug mode for every loop and for waits made from
//! executors that are not bridge loops. The variable is read once per
//! process, so these tests live in their own binary and set it before
//! anything of the crate runs.

mod debug_support;

use std::sync::Once;
use std::time::Duration;

use debug_support::{block_on_safe_at, call_blocking_at, spawn_at, Capture};

/// Long enough for any report to show up; only turns a missing one into a failure.
const LIMIT: Duration = Duration::from_secs(20);

fn setup() -> &'static Capture {
    static ENV: Once = Once::new();
    ENV.call_once(|| {
        std::env::set_var("BRIDGE_DEBUG", "1");
        bridge::set_hang_threshold(Duration::from_millis(300));
    });
    debug_support::capture()
}

#[test]
fn env_switches_debug_on_for_a_loop_built_without_debug() {
    let cap = setup();
    let lp = bridge::Loop::builder()
        .name("env-debug")
        .slow_poll_threshold(Duration::from_millis(20))
        .build()
        .unwrap();
    assert!(lp.handle().debug());
    let slow = async { std::thread::sleep(Duration::from_millis(50)) };
    let (fut, at) = spawn_at(&lp.handle(), slow);
    assert!(at.starts_with("tests/debug_env.rs:"), "{at}");
    fut.wait().unwrap();
    let at = format!("spawned at {at}");
    let report = cap.wait_for(&["env-debug", "single poll", &at], LIMIT);
    assert!(report.contains("WARN"), "{report}");

    // An explicit `debug(false)` still wins over the environment.
    let quiet = bridge::Loop::builder().debug(false).build().unwrap();
    assert!(!quiet.handle().debug());
}

type Announce = Box<dyn FnOnce(String) + Send>;

/// Runs `block(released, announce)`, which blocks until `released` yields
/// and calls `announce` with its call site (`file:line:`) first. A helper
/// thread releases it once a log line with `needles` and that call site
/// appears, and returns that line.
fn released_by_report(
    needles: &'static [&'static str],
    block: impl FnOnce(tokio::sync::oneshot::Receiver<u32>, Announce) -> u32,
) -> String {
    let cap = setup();
    let (release, released) = tokio::sync::oneshot::channel::<u32>();
    let (at_tx, at_rx) = std::sync::mpsc::channel::<String>();
    let announce: Announce = Box::new(move |at| at_tx.send(at).unwrap());
    let helper = std::thread::spawn(move || {
        let at = at_rx.recv().unwrap();
        assert!(at.starts_with("tests/debug_env.rs:"), "{at}");
        let mut all = needles.to_vec();
        all.push(&at);
        let report = cap.wait_for(&all, LIMIT);
        release.send(9).unwrap();
        report
    });
    assert_eq!(block(released, announce), 9);
    helper.join().unwrap()
}

#[test]
fn blocking_a_tokio_current_thread_runtime_is_reported() {
    let report = released_by_report(
        &["has stopped a tokio current-thread runtime"],
        |released, announce| {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                block_on_safe_at(async move { released.await.unwrap() }, announce).unwrap()
            })
        },
    );
    assert!(report.contains("WARN"), "{report}");
    assert!(report.contains("on loop 'bridge-worker'"), "{report}");
}

#[test]
fn blocking_a_task_of_a_tokio_current_thread_runtime_is_reported() {
    let report = released_by_report(
        &["has stopped a tokio current-thread runtime"],
        |released, announce| {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                tokio::spawn(async move {
                    call_blocking_at(async move { released.await.unwrap() }, announce)
                })
                .await
                .unwrap()
            })
        },
    );
    assert!(report.contains("WARN"), "{report}");
}

#[test]
fn blocking_a_futures_executor_is_reported() {
    let report = released_by_report(
        &["has stopped executor 'futures::executor'"],
        |released, announce| {
            futures::executor::block_on(async move {
                block_on_safe_at(async move { released.await.unwrap() }, announce).unwrap()
            })
        },
    );
    assert!(report.contains("WARN"), "{report}");
}

#[test]
fn a_spawn_blocking_thread_blocks_no_loop() {
    // The hang report (300 ms) comes after the blocked-loop one would have
    // (100 ms), and the watchdog reports in deadline order.
    let report = released_by_report(&["keeps waiting"], |released, announce| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            tokio::task::spawn_blocking(move || {
                block_on_safe_at(async move { released.await.unwrap() }, announce).unwrap()
            })
            .await
            .unwrap()
        })
    });
    let at = report
        .split("blocked at ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap()
        .to_owned();
    assert!(
        setup().lines(&["has stopped", &at]).is_empty(),
        "a spawn_blocking thread drives no loop: {report}"
    );
}

#[test]
fn watchdog_reports_a_long_call_blocking_from_a_plain_thread() {
    let report = released_by_report(&["keeps waiting", "bridge-worker"], |released, announce| {
        call_blocking_at(async move { released.await.unwrap() }, announce)
    });
    assert!(report.contains("WARN"), "{report}");
    let me = std::thread::current().name().unwrap().to_owned();
    assert!(report.contains(&format!("thread '{me}'")), "{report}");
    assert!(
        !report.contains("has stopped"),
        "a plain thread drives no loop: {report}"
    );
}

#[test]
fn a_slow_hand_off_names_the_callers_location() {
    let cap = setup();
    let slow = || async { std::thread::sleep(Duration::from_millis(150)) };
    let mut sites = Vec::new();
    call_blocking_at(slow(), |at| sites.push(at));
    block_on_safe_at(slow(), |at| sites.push(at)).unwrap(); // inline: no loop here
    let rt = tokio::runtime::Runtime::new().unwrap();
    let handed_off = rt.block_on(async { block_on_safe_at(slow(), |at| sites.push(at)) });
    handed_off.unwrap();
    let [blocking, inline, handoff] = &sites[..] else {
        panic!("{sites:?}")
    };
    for at in [blocking, handoff] {
        let at = format!("spawned at {at}");
        let report = cap.wait_for(&["bridge-worker", "single poll", &at], LIMIT);
        assert!(report.contains("WARN"), "{report}");
    }
    // Run inline, the future is not a task of any loop: no slow-poll report.
    assert!(cap.lines(&[&format!("spawned at {inline}")]).is_empty());
}

/// A blocking call nested inside worker-loop work first moves the worker's
/// core to another thread, so the poll that makes it does not block the
/// worker loop: no "blocked loop 'bridge-worker'" report for it, while the
/// same time spent blocking without handing the core off is reported.
#[test]
fn endorsed_nesting_inside_worker_work_is_not_a_slow_poll() {
    let cap = setup();
    let nap = || std::thread::sleep(Duration::from_millis(200));
    let mut quiet = Vec::new();
    // A nested call_blocking.
    call_blocking_at(
        async move {
            bridge::call_blocking(async move { nap() });
        },
        |at| quiet.push(at),
    );
    // wait() on worker work.
    call_blocking_at(
        async move {
            bridge::worker_loop()
                .spawn(async move { nap() })
                .wait()
                .unwrap();
        },
        |at| quiet.push(at),
    );
    // Executor::shutdown with a job still running.
    call_blocking_at(
        async move {
            let ex = bridge::Executor::new(1);
            let job = ex.run(nap);
            ex.shutdown();
            assert!(job.done());
        },
        |at| quiet.push(at),
    );
    // Dropping a Loop whose last task takes a while to drop.
    call_blocking_at(
        async move {
            struct SlowDrop;
            impl Drop for SlowDrop {
                fn drop(&mut self) {
                    std::thread::sleep(Duration::from_millis(200));
                }
            }
            let lp = bridge::Loop::builder().debug(false).build().unwrap();
            let (started_tx, started_rx) = std::sync::mpsc::channel();
            drop(lp.handle().spawn(async move {
                let _slow = SlowDrop;
                started_tx.send(()).unwrap();
                std::future::pending::<()>().await
            }));
            started_rx.recv().unwrap();
            drop(lp);
        },
        |at| quiet.push(at),
    );
    // The control: the same nap without handing the core off.
    let mut loud = Vec::new();
    call_blocking_at(async move { nap() }, |at| loud.push(at));
    let report = cap.wait_for(
        &[
            "bridge-worker",
            "single poll",
            &format!("spawned at {}", loud[0]),
        ],
        LIMIT,
    );
    assert!(report.contains("WARN"), "{report}");
    for at in quiet {
        let reports = cap.lines(&["single poll", &format!("spawned at {at}")]);
        assert!(
            reports.is_empty(),
            "the nesting at {at} was reported: {reports:?}"
        );
    }
}
