//! `LoopBuilder::run`: Python's `asyncio.run(coro, debug=True)`, that is
//! `run` on this thread with a loop's settings.

#[macro_use]
mod common;
mod debug_support;

use std::panic::Location;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::Ctx;

#[test]
fn the_builders_name_is_the_running_loops_name() {
    common::bounded("name", || {
        let seen = bridge::Loop::builder()
            .name("main-loop")
            .run(async {
                let running = match bridge::running_loop() {
                    Some(bridge::RunningLoop::Bridge(h)) => h.name().to_owned(),
                    other => panic!("expected a bridge loop, got {other:?}"),
                };
                let listed = bridge::loops().iter().any(|l| l.name() == "main-loop");
                (
                    running,
                    listed,
                    bridge::get_running_loop().unwrap().name().to_owned(),
                )
            })
            .unwrap();
        assert_eq!(seen, ("main-loop".to_owned(), true, "main-loop".to_owned()));
        assert!(!bridge::loops().iter().any(|l| l.name() == "main-loop"));
    });
}

#[test]
fn debug_reports_use_the_builders_flag_threshold_and_name() {
    let capture = debug_support::capture();
    common::bounded("debug", move || {
        let r = bridge::Loop::builder()
            .name("debug-run")
            .debug(true)
            .slow_poll_threshold(Duration::from_millis(20))
            .run(async {
                std::thread::sleep(Duration::from_millis(60));
                5
            });
        // The report names the call site of `run` (this file).
        let site = debug_support::tag(Location::caller());
        assert_eq!(r.unwrap(), 5);
        let file = site.split(':').next().unwrap().to_owned();
        let line = capture.wait_for(&["debug-run", "threshold", &file], Duration::from_secs(10));
        assert!(line.contains("WARN"), "{line}");
        assert!(line.contains("threshold_ms=20"), "{line}");
        // Debug off: the same slow poll is not reported.
        bridge::Loop::builder()
            .name("quiet-run")
            .debug(false)
            .slow_poll_threshold(Duration::from_millis(20))
            .run(async { std::thread::sleep(Duration::from_millis(60)) })
            .unwrap();
        assert!(capture.lines(&["quiet-run"]).is_empty());
    });
}

fn nested_is_refused(ctx: Ctx) {
    let r = bridge::Loop::builder().name("nested").run(async { 1 });
    if ctx.in_loop() {
        assert!(
            matches!(r, Err(bridge::Error::NestedLoop)),
            "{ctx:?}: {r:?}"
        );
    } else {
        assert_eq!(r.unwrap(), 1, "{ctx:?}");
    }
}

every_context!(nested, nested_is_refused);

#[test]
fn leftover_tasks_are_cancelled_and_their_destructors_run() {
    common::bounded("leftover", || {
        let drops = common::DropCounter::new();
        let token = drops.token();
        let started = Arc::new(AtomicUsize::new(0));
        let s = started.clone();
        bridge::Loop::builder()
            .name("leftover")
            .run(async move {
                tokio::spawn(async move {
                    let _token = token;
                    s.fetch_add(1, Ordering::SeqCst);
                    std::future::pending::<()>().await
                });
                tokio::task::yield_now().await;
            })
            .unwrap();
        assert_eq!(started.load(Ordering::SeqCst), 1);
        assert_eq!(drops.count(), 1, "the leftover task was dropped by run");
    });
}

#[test]
fn a_panic_is_a_value() {
    common::bounded("panic", || {
        let r = bridge::Loop::builder()
            .debug(true)
            .run(async { panic!("inside the debug run") });
        match r {
            Err(bridge::Error::Panicked(p)) => assert_eq!(p.message(), "inside the debug run"),
            other => panic!("expected Panicked, got {other:?}"),
        }
    });
}
