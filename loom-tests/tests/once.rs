//! Loom models of `OnceCell` (bridge/once.rs), the start-once cell behind
//! the worker loop (`worker.rs`: `static WORKER: OnceCell<Worker>`) and the
//! default executor: racing initializers build the value once, everyone sees
//! that one value, and a failed or panicking build leaves the cell retryable.
#![cfg(bridge_loom)]

use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};

use bridge::loom_api::OnceCell;
use loom::sync::Arc;
use loom::thread;
use loom_tests::{model, model_both_ways, Counted, Counter, Coverage, DropCounter};

/// Two callers race `get_or_try_init` while a third thread reads with
/// `get`: the initializer runs exactly once, both callers get the same value
/// (the same address), the reader sees nothing or that value (never a
/// half-written one), and the value is dropped once, with the cell.
///
/// Three *initializers* cannot be modelled: a caller that finds the cell
/// being built yields until it is done, and two such yield loops can hand
/// the turn to each other forever, a schedule loom explores and rejects as
/// exceeding its branch limit. The start-once race itself needs only two.
#[test]
fn init_runs_once() {
    let cov = Coverage::new();
    let c = cov.clone();
    model(move || {
        let cell: Arc<OnceCell<Counted>> = Arc::new(OnceCell::new());
        let inits = Counter::new();
        let drops = DropCounter::new();
        let call = {
            let (cell, inits, drops) = (cell.clone(), inits.clone(), drops.clone());
            move |id: u32| {
                let v = cell
                    .get_or_try_init(|| {
                        inits.incr();
                        Ok::<_, ()>(drops.value(id))
                    })
                    .unwrap();
                (v.value, v as *const Counted as usize)
            }
        };
        let other = {
            let call = call.clone();
            thread::spawn(move || call(1))
        };
        let reader = {
            let cell = cell.clone();
            thread::spawn(move || cell.get().map(|v| (v.value, v as *const Counted as usize)))
        };
        let mine = call(0);
        assert_eq!(
            other.join().unwrap(),
            mine,
            "two callers saw different values"
        );
        match reader.join().unwrap() {
            Some(seen) => {
                assert_eq!(seen, mine, "the reader saw another value");
                c.hit("reader saw the value");
            }
            None => c.hit("reader saw an empty cell"),
        }
        c.hit(if mine.0 == 0 {
            "main built it"
        } else {
            "the other thread built it"
        });
        assert_eq!(inits.get(), 1, "the initializer ran more than once");
        assert_eq!(cell.get().map(|v| v.value), Some(mine.0));
        drop(call);
        assert_eq!(drops.drops(), 0);
        drop(Arc::try_unwrap(cell).unwrap());
        assert_eq!(drops.drops(), 1);
    });
    cov.assert_seen(&[
        "reader saw the value",
        "reader saw an empty cell",
        "main built it",
        "the other thread built it",
    ]);
}

/// A failing initializer racing a succeeding one: the failure leaves the cell
/// empty, so the other caller (waiting, or coming later) builds it; the
/// failing caller gets its own error only if its initializer ran, and the
/// value otherwise.
#[test]
fn failed_init_is_retryable() {
    let cov = Coverage::new();
    let c = cov.clone();
    model_both_ways(move |o| {
        let cell: Arc<OnceCell<u32>> = Arc::new(OnceCell::new());
        let failed_runs = Counter::new();
        let (c1, c2, f) = (cell.clone(), cell.clone(), failed_runs.clone());
        let (failing, succeeding) = o.race(
            move || {
                c1.get_or_try_init(|| {
                    f.incr();
                    Err("refused")
                })
                .copied()
            },
            move || c2.get_or_try_init(|| Ok::<_, &str>(7)).copied(),
        );
        assert_eq!(succeeding, Ok(7));
        match failing {
            Ok(v) => {
                assert_eq!(v, 7);
                assert_eq!(failed_runs.get(), 0);
                c.hit("built before the failing init could run");
            }
            Err(e) => {
                assert_eq!(e, "refused");
                assert_eq!(failed_runs.get(), 1);
                c.hit("failed, then built");
            }
        }
        assert_eq!(cell.get(), Some(&7));
    });
    cov.assert_seen(&[
        "built before the failing init could run",
        "failed, then built",
    ]);
}

/// A panicking initializer racing a succeeding one: the panic unwinds to its
/// caller and leaves the cell empty (never stuck in "running"), so the other
/// caller still builds it.
#[test]
fn panicked_init_is_retryable() {
    let cov = Coverage::new();
    let c = cov.clone();
    model_both_ways(move |o| {
        let cell: Arc<OnceCell<u32>> = Arc::new(OnceCell::new());
        let (c1, c2) = (cell.clone(), cell.clone());
        let (panicking, succeeding) = o.race(
            move || {
                catch_unwind(AssertUnwindSafe(|| {
                    // `resume_unwind` skips the panic hook: no noise per execution.
                    c1.get_or_try_init(|| -> Result<u32, ()> {
                        resume_unwind(Box::new("init panicked"))
                    })
                    .copied()
                }))
                .map_err(|payload| payload.downcast_ref::<&str>().copied())
            },
            move || c2.get_or_try_init(|| Ok::<_, ()>(7)).copied(),
        );
        assert_eq!(succeeding, Ok(7));
        match panicking {
            Ok(v) => {
                assert_eq!(v, Ok(7));
                c.hit("built before the panicking init could run");
            }
            Err(payload) => {
                assert_eq!(payload, Some("init panicked"));
                c.hit("panicked, then built");
            }
        }
        assert_eq!(cell.get(), Some(&7));
    });
    cov.assert_seen(&[
        "built before the panicking init could run",
        "panicked, then built",
    ]);
}
