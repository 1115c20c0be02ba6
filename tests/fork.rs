//! After `fork()`: the child has only the thread that forked. The worker
//! loop and the debug watchdog start afresh there; a `Loop` made before the
//! fork is closed (`LoopClosed`, never a hang); `loops()` lists only the
//! child's loops.
//!
//! Each test runs in its own child process (so no other test's threads are
//! caught mid-operation by the fork), and forks from there; the forked
//! child's checks are bounded by a timeout.
#![cfg(unix)]

use std::time::Duration;

use bridge::{Error, Loop};

#[path = "support/child.rs"]
mod child;

use child::Verdict;

const CASE_TIMEOUT: Duration = Duration::from_secs(60);
const FORK_TIMEOUT: Duration = Duration::from_secs(20);

/// Runs `body` in a child process of its own (this test, selected by name);
/// `body` forks and returns the forked child's verdict.
fn isolated(test: &str, envs: &[(&str, &str)], body: fn() -> Verdict) {
    if child::selected_case().is_some() {
        child::report_and_exit(body());
    }
    let ended = child::run_case_process(test, test, envs, CASE_TIMEOUT);
    assert!(
        ended.passed(),
        "{test}: {}: {}",
        ended.word(),
        ended.detail()
    );
}

/// `Err(what)` unless `cond`.
fn check(cond: bool, what: &str) -> Result<(), String> {
    if cond {
        Ok(())
    } else {
        Err(what.to_owned())
    }
}

fn is_loop_closed<T>(r: &Result<T, Error>) -> bool {
    matches!(r, Err(Error::LoopClosed))
}

#[test]
fn a_loop_made_before_the_fork_is_closed_in_the_child() {
    isolated(
        "a_loop_made_before_the_fork_is_closed_in_the_child",
        &[],
        || {
            let lp = Loop::builder().name("parent-loop").build().unwrap();
            let h = lp.handle();
            let pending = h.spawn(async { tokio::time::sleep(Duration::from_secs(3600)).await });
            let awaited = h.spawn(async { tokio::time::sleep(Duration::from_secs(3600)).await });
            let polled = h.spawn(async { tokio::time::sleep(Duration::from_secs(3600)).await });
            let done = h.spawn(async { 7 });
            while !done.done() {
                std::thread::yield_now();
            }
            let h2 = h.clone();
            // The child takes the loop out to drop it; the parent's stays.
            let slot = std::cell::Cell::new(Some(lp));
            let slot = &slot;
            let in_child = child::in_forked_child(FORK_TIMEOUT, move || {
                check(h2.is_closed(), "is_closed() is false")?;
                check(is_loop_closed(&h2.spawn(async { 1 }).wait()), "spawn")?;
                check(
                    matches!(h2.call_soon_threadsafe(|| ()), Err(Error::LoopClosed)),
                    "call_soon_threadsafe",
                )?;
                check(is_loop_closed(&h2.block_on(async { 1 })), "block_on")?;
                // Work pending at the fork: every way of waiting gives up at once.
                check(
                    !polled.wait_timeout(Duration::from_secs(3600)),
                    "wait_timeout",
                )?;
                check(is_loop_closed(&pending.wait()), "wait on pending work")?;
                check(
                    is_loop_closed(&futures::executor::block_on(awaited)),
                    "awaiting pending work",
                )?;
                check(
                    is_loop_closed(&polled.wait_for(Duration::from_secs(3600))),
                    "wait_for",
                )?;
                // Work done before the fork keeps its value.
                check(matches!(done.wait(), Ok(7)), "finished work lost its value")?;
                // Dropping the loop returns (it does not join a thread that is
                // not in this process).
                drop(slot.take());
                Ok("closed".into())
            });
            // The parent's loop is untouched by the fork.
            let in_parent = h.block_on(async { 2 });
            check(matches!(in_parent, Ok(2)), "the parent's loop broke")?;
            in_child
        },
    );
}

#[test]
fn the_child_lists_only_its_own_loops_and_gets_a_fresh_worker() {
    isolated(
        "the_child_lists_only_its_own_loops_and_gets_a_fresh_worker",
        &[],
        || {
            let _parent_loop = Loop::builder().name("parent-loop").build().unwrap();
            let parent_worker = bridge::worker_loop().id();
            let listed = |name: &str| bridge::loops().iter().any(|l| l.name() == name);
            check(listed("parent-loop"), "the parent does not list its loop")?;
            child::in_forked_child(FORK_TIMEOUT, move || {
                check(!listed("parent-loop"), "the child lists the parent's loop")?;
                check(
                    !bridge::loops().iter().any(|l| l.id() == parent_worker),
                    "the child lists the parent's worker loop",
                )?;
                // The worker loop starts afresh, and runs work.
                let v = bridge::call_blocking(async {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    3
                });
                check(v == 3, "call_blocking in the child")?;
                let worker = bridge::worker_loop();
                check(
                    worker.id() != parent_worker,
                    "the child reuses the parent's worker",
                )?;
                check(!worker.is_closed(), "the child's worker is closed")?;
                check(
                    bridge::loops().iter().any(|l| l.id() == worker.id()),
                    "the child does not list its worker",
                )?;
                let lp = Loop::builder().name("child-loop").build().unwrap();
                check(listed("child-loop"), "the child does not list its own loop")?;
                check(
                    matches!(lp.handle().block_on(async { 4 }), Ok(4)),
                    "a child loop",
                )?;
                drop(lp);
                check(!listed("child-loop"), "a dropped loop is still listed")?;
                Ok("own loops only".into())
            })
        },
    );
}

/// Whether this process has a thread named `name` (Linux: /proc).
#[cfg(target_os = "linux")]
fn has_thread(name: &str) -> bool {
    std::fs::read_dir("/proc/self/task")
        .map(|tasks| {
            tasks.flatten().any(|t| {
                std::fs::read_to_string(t.path().join("comm")).is_ok_and(|c| c.trim() == name)
            })
        })
        .unwrap_or(false)
}

#[cfg(target_os = "linux")]
#[test]
fn the_debug_watchdog_restarts_in_the_child() {
    isolated(
        "the_debug_watchdog_restarts_in_the_child",
        &[("BRIDGE_DEBUG", "1")],
        || {
            // A watched wait starts the watchdog in the parent.
            let lp = Loop::builder().name("watched").build().unwrap();
            // Not ready at once, so the wait really waits (and is watched).
            let _ = lp
                .handle()
                .spawn(async {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    1
                })
                .wait();
            check(has_thread("bridge-watchdog"), "no watchdog in the parent")?;
            child::in_forked_child(FORK_TIMEOUT, || {
                check(
                    !has_thread("bridge-watchdog"),
                    "a watchdog thread survived the fork",
                )?;
                // The first watched wait in the child starts a watchdog there.
                let lp = Loop::builder().name("child-watched").build().unwrap();
                let v = lp
                    .handle()
                    .spawn(async {
                        tokio::time::sleep(Duration::from_millis(5)).await;
                        2
                    })
                    .wait();
                check(matches!(v, Ok(2)), "a watched wait in the child")?;
                check(has_thread("bridge-watchdog"), "no watchdog in the child")?;
                Ok("restarted".into())
            })
        },
    );
}
