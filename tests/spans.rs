//! Spans cross the hand-off (API.md "Spans cross the hand-off"): work
//! submitted through the crate runs inside the `tracing` span current where
//! it was submitted, so its events carry the caller's span fields.

mod common;
mod debug_support;

use std::time::Duration;

use tracing::info_span;

const LIMIT: Duration = Duration::from_secs(10);

/// Logs `event` from inside work submitted by `submit`, under a span with a
/// unique request id, and checks the event carries that id.
fn carries_span(event: &'static str, submit: impl FnOnce()) {
    let capture = debug_support::capture();
    let span = info_span!("request", req = event);
    span.in_scope(submit);
    let line = capture.wait_for(&[event, "inside"], LIMIT);
    assert!(
        line.contains(&format!("request{{req=\"{event}\"}}")),
        "the event logged by the work lacks the caller's span: {line}"
    );
}

#[test]
fn call_blocking_runs_in_the_callers_span() {
    common::bounded("call_blocking", || {
        carries_span("cb-1", || {
            bridge::call_blocking(async {
                tokio::task::yield_now().await;
                tracing::info!(tag = "cb-1", "inside");
            })
        });
    });
}

#[test]
fn call_blocking_timeout_runs_in_the_callers_span() {
    common::bounded("call_blocking_timeout", || {
        carries_span("cbt-1", || {
            bridge::call_blocking_timeout(LIMIT, async {
                tracing::info!(tag = "cbt-1", "inside");
            })
            .unwrap()
        });
    });
}

#[test]
fn block_on_safe_runs_in_the_callers_span_inline_and_handed_off() {
    common::bounded("block_on_safe", || {
        carries_span("bos-inline", || {
            bridge::block_on_safe(async {
                tracing::info!(tag = "bos-inline", "inside");
            })
            .unwrap()
        });
        carries_span("bos-handoff", || {
            common::current_rt().block_on(async {
                bridge::block_on_safe(async {
                    tracing::info!(tag = "bos-handoff", "inside");
                })
                .unwrap()
            })
        });
    });
}

#[test]
fn loop_submissions_run_in_the_callers_span() {
    common::bounded("loop", || {
        let lp = bridge::Loop::builder().name("spans").build().unwrap();
        let h = lp.handle();
        carries_span("spawn-1", || {
            h.spawn(async { tracing::info!(tag = "spawn-1", "inside") })
                .wait()
                .unwrap()
        });
        carries_span("rcts-1", || {
            bridge::run_coroutine_threadsafe(async { tracing::info!(tag = "rcts-1", "inside") }, &h)
                .wait()
                .unwrap()
        });
        carries_span("block-on-1", || {
            h.block_on(async { tracing::info!(tag = "block-on-1", "inside") })
                .unwrap()
        });
        carries_span("soon-1", || {
            h.call_soon_threadsafe(|| tracing::info!(tag = "soon-1", "inside"))
                .unwrap()
        });
    });
}

#[test]
fn no_span_means_no_span_fields() {
    common::bounded("no-span", || {
        let capture = debug_support::capture();
        bridge::call_blocking(async { tracing::info!(tag = "bare-1", "inside") });
        let line = capture.wait_for(&["bare-1", "inside"], LIMIT);
        assert!(!line.contains("request{"), "{line}");
    });
}

#[test]
fn executor_jobs_run_in_the_callers_span() {
    common::bounded("executor", || {
        carries_span("exec-1", || {
            bridge::run_in_executor(None, || tracing::info!(tag = "exec-1", "inside"))
                .wait()
                .unwrap()
        });
        let pool = bridge::Executor::single_thread("spans-exec");
        carries_span("exec-2", || {
            pool.run(|| tracing::info!(tag = "exec-2", "inside"))
                .wait()
                .unwrap()
        });
        pool.shutdown();
    });
}
