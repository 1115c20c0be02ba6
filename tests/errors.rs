//! API.md "Errors": `Error`, its variants and messages, and `PanicError`.

#[macro_use]
mod common;

use std::any::Any;
use std::error::Error as StdError;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};

use bridge::{Error, PanicError};
use common::{bounded, Ctx};

fn is_std_error<E: StdError + Send + Sync + 'static>() {}
fn is_panic_error<P: std::fmt::Debug + Send + Sync>() {}

#[test]
fn error_is_a_std_error_send_sync_static() {
    is_std_error::<Error>();
    is_panic_error::<PanicError>();
    // Usable as a boxed error and with `?` into one.
    fn boxed() -> Result<(), Box<dyn StdError + Send + Sync + 'static>> {
        Err(Error::Timeout)?;
        Ok(())
    }
    let e = boxed().unwrap_err();
    assert!(matches!(e.downcast_ref::<Error>(), Some(Error::Timeout)));
}

/// A `PanicError` made the way users meet one.
fn panic_error(payload: impl FnOnce() + Send + 'static) -> PanicError {
    match bridge::block_on_safe(async move { payload() }) {
        Err(Error::Panicked(p)) => p,
        other => panic!("expected Panicked, got {other:?}"),
    }
}

fn every_variant() -> Vec<Error> {
    vec![
        Error::NestedLoop,
        Error::NoRunningLoop,
        Error::Cancelled,
        Error::Panicked(panic_error(|| panic!("variant boom"))),
        Error::Timeout,
        Error::LoopClosed,
        Error::WouldDeadlock,
        Error::Io(std::io::Error::other("no threads left")),
    ]
}

#[test]
fn every_variant_has_a_distinct_helpful_message() {
    bounded("messages", || {
        let msgs: Vec<String> = every_variant().iter().map(|e| e.to_string()).collect();
        for (e, m) in every_variant().iter().zip(&msgs) {
            // Says what happened and what to do: more than a word or two.
            assert!(m.split_whitespace().count() >= 8, "{e:?}: {m:?}");
            assert!(!format!("{e:?}").is_empty());
        }
        let mut unique = msgs.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), msgs.len(), "messages are distinct: {msgs:#?}");
    });
}

#[test]
fn nested_loop_message_names_block_on_safe_and_await() {
    let m = Error::NestedLoop.to_string();
    assert!(m.contains("block_on_safe"), "{m}");
    assert!(m.contains(".await"), "{m}");
    // And the one users actually get from `run` inside a loop says the same.
    bounded("nested_msg", move || {
        let rt = common::current_rt();
        let e = rt.block_on(async { bridge::run(async {}) }).unwrap_err();
        assert!(matches!(e, Error::NestedLoop));
        assert_eq!(e.to_string(), m);
    });
}

#[test]
fn would_deadlock_and_closed_messages_point_elsewhere() {
    // What to do instead: await, or use another loop.
    let m = Error::WouldDeadlock.to_string();
    assert!(m.contains(".await") || m.contains("await"), "{m}");
    let m = Error::NoRunningLoop.to_string();
    assert!(m.contains("worker_loop") || m.contains("run"), "{m}");
}

#[test]
fn io_error_is_the_source() {
    let e = Error::Io(std::io::Error::other("out of fds"));
    let src = e.source().expect("Io carries its cause");
    assert!(src.to_string().contains("out of fds"));
    assert!(e.to_string().contains("out of fds"), "{e}");
    let from: Error = std::io::Error::other("x").into();
    assert!(matches!(from, Error::Io(_)));
    assert!(Error::Timeout.source().is_none());
}

#[test]
fn panicked_display_includes_the_panic_message() {
    bounded("panicked_display", || {
        let p = panic_error(|| panic!("the {} message", std::hint::black_box("formatted")));
        assert_eq!(p.message(), "the formatted message");
        let e = Error::Panicked(p);
        let shown = e.to_string();
        assert!(shown.contains("the formatted message"), "{shown}");
        let p = panic_error(|| panic!("static str payload"));
        assert_eq!(p.message(), "static str payload");
        assert!(format!("{p:?}").contains("static str payload"));
    });
}

#[test]
fn into_panic_resumes_the_original_payload() {
    bounded("into_panic", || {
        let p = panic_error(|| panic!("resume me"));
        let caught = catch_unwind(AssertUnwindSafe(|| resume_unwind(p.into_panic()))).unwrap_err();
        assert_eq!(caught.downcast_ref::<&str>(), Some(&"resume me"));

        let p = panic_error(|| panic!("resume {}", std::hint::black_box(2)));
        let caught = catch_unwind(AssertUnwindSafe(|| resume_unwind(p.into_panic()))).unwrap_err();
        assert_eq!(
            caught.downcast_ref::<String>().map(String::as_str),
            Some("resume 2")
        );

        // A payload that is not a string survives untouched.
        let p = panic_error(|| std::panic::panic_any(42u64));
        assert!(!p.message().is_empty());
        let payload: Box<dyn Any + Send> = p.into_panic();
        assert_eq!(payload.downcast_ref::<u64>(), Some(&42));
    });
}

fn panics_are_values_in_every_context(_ctx: Ctx) {
    // Same PanicError through every path that returns one.
    let check = |r: Result<(), Error>, want: &str| match r {
        Err(Error::Panicked(p)) => {
            assert_eq!(p.message(), want);
            // Sendable to another thread and resumable there.
            let t = std::thread::spawn(move || {
                catch_unwind(AssertUnwindSafe(|| resume_unwind(p.into_panic())))
            });
            let payload = t.join().unwrap().unwrap_err();
            assert_eq!(payload.downcast_ref::<&str>(), Some(&want));
        }
        other => panic!("expected Panicked({want}), got {other:?}"),
    };
    check(bridge::block_on_safe(async { panic!("p1") }), "p1");
    check(
        bridge::worker_loop().spawn(async { panic!("p2") }).wait(),
        "p2",
    );
    check(bridge::worker_loop().block_on(async { panic!("p3") }), "p3");
    let lp = bridge::Loop::new().unwrap();
    check(lp.handle().spawn(async { panic!("p4") }).wait(), "p4");
    check(
        bridge::run_coroutine_threadsafe(async { panic!("p5") }, &lp.handle()).wait(),
        "p5",
    );
}
every_context!(panics_as_values, panics_are_values_in_every_context);

#[test]
fn variants_are_matchable_and_non_exhaustive_matching_compiles() {
    for e in every_variant() {
        // `#[non_exhaustive]`: downstream code needs a wildcard arm.
        let kind = match e {
            Error::NestedLoop => 0,
            Error::NoRunningLoop => 1,
            Error::Cancelled => 2,
            Error::Panicked(_) => 3,
            Error::Timeout => 4,
            Error::LoopClosed => 5,
            Error::WouldDeadlock => 6,
            Error::Io(_) => 7,
            _ => 8,
        };
        assert!(kind < 8);
    }
}
