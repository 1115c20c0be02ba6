//! Loom models of the per-thread registry (bridge/registry.rs): enter/exit
//! guards on two threads, nested, one unwound by a panic. Each thread's
//! context is its own, and every guard restores exactly what was there
//! before it, whatever the other thread does in between.
#![cfg(bridge_loom)]

use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};

use bridge::loom_api;
use bridge::{enter_foreign, running_loop, RunningLoop};
use loom::thread;

/// The name of the foreign executor this thread is marked as inside, if any.
fn marked() -> Option<&'static str> {
    match running_loop() {
        None => None,
        Some(RunningLoop::Foreign(name)) => Some(name),
        Some(other) => panic!("unexpected running loop {other:?}"),
    }
}

/// Asserts this thread's context, then lets the other thread run.
fn check(name: Option<&'static str>, home: u64) {
    assert_eq!(marked(), name);
    assert_eq!(loom_api::current_home(), home);
    thread::yield_now();
}

/// Enter, nest, panic through a guard, exit; checking the context at every
/// step. Each thread passes its own names and home, to tell them apart.
fn nest(names: [&'static str; 3], home: u64) {
    check(None, 0);
    let outer = loom_api::enter_home(names[0], home);
    check(Some(names[0]), home);
    {
        // `enter_foreign` marks an executor but keeps the thread's home.
        let _inner = enter_foreign(names[1]);
        check(Some(names[1]), home);
        let unwound = catch_unwind(AssertUnwindSafe(|| {
            let _deepest = loom_api::enter_home(names[2], home + 1);
            check(Some(names[2]), home + 1);
            // `resume_unwind` skips the panic hook: no noise per execution.
            resume_unwind(Box::new("unwinds through the guard"));
        }));
        assert!(unwound.is_err());
        check(Some(names[1]), home);
    }
    check(Some(names[0]), home);
    drop(outer);
    check(None, 0);
}

/// Two threads nest guards three deep (the deepest unwound by a panic)
/// while interleaving at every step: each thread only ever sees its own
/// context, and each guard's drop restores the previous marking and home.
#[test]
fn nested_guards_restore_per_thread() {
    loom_tests::model(|| {
        let t = thread::spawn(|| nest(["a-outer", "a-inner", "a-deepest"], 10));
        nest(["b-outer", "b-inner", "b-deepest"], 20);
        t.join().unwrap();
    });
}
