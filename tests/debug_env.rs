//! `BRIDGE_DEBUG=1`: debug mode for every loop and for waits made from
//! executors that are not bridge loops. The variable is read once per
//! process, so these tests live in their own binary and set it before
//! anything of the crate runs.

mod debug_support;

use std::sync::Once;
use std::time::Duration;

use debug_support::Capture;

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
    let line = line!() + 1;
    let fut = lp
        .handle()
        .spawn(async { std::thread::sleep(Duration::from_millis(50)) });
    fut.wait().unwrap();
    let at = format!("tests/debug_env.rs:{line}:");
    let report = cap.wait_for(&["env-debug", "single poll", &at], LIMIT);
    assert!(report.contains("WARN"), "{report}");

    // An explicit `debug(false)` still wins over the environment.
    let quiet = bridge::Loop::builder().debug(false).build().unwrap();
    assert!(!quiet.handle().debug());
}

/// Runs `block(release_rx)` with a helper that releases the blocked work once
/// a log line containing `needles` and the location `line` of this test file
/// appears; returns that line.
fn released_by_report(
    needles: &'static [&'static str],
    block: impl FnOnce(tokio::sync::oneshot::Receiver<u32>, std::sync::mpsc::Sender<u32>) -> u32,
) -> String {
    let cap = setup();
    let (release, released) = tokio::sync::oneshot::channel::<u32>();
    let (line_tx, line_rx) = std::sync::mpsc::channel::<u32>();
    let helper = std::thread::spawn(move || {
        let line = line_rx.recv().unwrap();
        let at = format!("tests/debug_env.rs:{line}:");
        let mut all = needles.to_vec();
        all.push(&at);
        let report = cap.wait_for(&all, LIMIT);
        release.send(9).unwrap();
        report
    });
    assert_eq!(block(released, line_tx), 9);
    helper.join().unwrap()
}

#[test]
fn blocking_a_tokio_current_thread_runtime_is_reported() {
    let report = released_by_report(
        &["has stopped a tokio current-thread runtime"],
        |released, line| {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                line.send(line!() + 1).unwrap();
                bridge::block_on_safe(async move { released.await.unwrap() }).unwrap()
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
        |released, line| {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                tokio::spawn(async move {
                    line.send(line!() + 1).unwrap();
                    bridge::call_blocking(async move { released.await.unwrap() })
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
        |released, line| {
            futures::executor::block_on(async move {
                line.send(line!() + 1).unwrap();
                bridge::block_on_safe(async move { released.await.unwrap() }).unwrap()
            })
        },
    );
    assert!(report.contains("WARN"), "{report}");
}

#[test]
fn a_spawn_blocking_thread_blocks_no_loop() {
    // The hang report (300 ms) comes after the blocked-loop one would have
    // (100 ms), and the watchdog reports in deadline order.
    let report = released_by_report(&["keeps waiting"], |released, line| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            tokio::task::spawn_blocking(move || {
                line.send(line!() + 1).unwrap();
                bridge::block_on_safe(async move { released.await.unwrap() }).unwrap()
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
