//! The borrowing hand-off (API.md "For library authors: Borrowing hand-off"):
//! `call_blocking`, `call_blocking_timeout`, `block_on_safe` and
//! `LoopHandle::block_on` take futures that borrow from the caller, and return
//! (or unwind) only after the future has finished and been dropped on the loop
//! that ran it.

#[macro_use]
mod common;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use common::Ctx;

/// A library's async client and its one-line blocking twin.
struct Client {
    store: Mutex<Vec<(String, String)>>,
}

impl Client {
    async fn get(&self, key: &str) -> Option<String> {
        tokio::task::yield_now().await;
        let store = self.store.lock().unwrap();
        store.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone())
    }

    async fn put(&self, key: &str, value: &str) {
        tokio::time::sleep(Duration::from_millis(1)).await;
        self.store
            .lock()
            .unwrap()
            .push((key.to_owned(), value.to_owned()));
    }

    fn get_blocking(&self, key: &str) -> Option<String> {
        bridge::call_blocking(self.get(key))
    }

    fn put_blocking(&self, key: &str, value: &str) {
        bridge::call_blocking(self.put(key, value))
    }
}

fn client_round_trip(_: Ctx) {
    let client = Client {
        store: Mutex::new(Vec::new()),
    };
    let key = String::from("k");
    client.put_blocking(&key, "v");
    assert_eq!(client.get_blocking(&key).as_deref(), Some("v"));
    assert_eq!(client.get_blocking("missing"), None);
    // block_on_safe and the worker's block_on borrow the same way.
    let got = bridge::block_on_safe(client.get(&key)).unwrap();
    assert_eq!(got.as_deref(), Some("v"));
    let got = bridge::worker_loop().block_on(client.get(&key)).unwrap();
    assert_eq!(got.as_deref(), Some("v"));
    let got = bridge::call_blocking_timeout(Duration::from_secs(20), client.get(&key)).unwrap();
    assert_eq!(got.as_deref(), Some("v"));
}

every_context!(borrowed_client, client_round_trip);

/// Records where and when the future holding it was dropped.
struct DropProbe<'a> {
    dropped: &'a AtomicUsize,
    thread: &'a Mutex<Option<String>>,
}

impl Drop for DropProbe<'_> {
    fn drop(&mut self) {
        *self.thread.lock().unwrap() = std::thread::current().name().map(str::to_owned);
        self.dropped.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn borrowed_data_is_written_and_dropped_on_the_worker_before_return() {
    common::bounded("write-and-drop", || {
        let mut counter = 0u64;
        let dropped = AtomicUsize::new(0);
        let thread = Mutex::new(None);
        let out = bridge::call_blocking(async {
            let _probe = DropProbe {
                dropped: &dropped,
                thread: &thread,
            };
            for _ in 0..10 {
                tokio::task::yield_now().await;
                counter += 1;
            }
            counter * 2
        });
        assert_eq!(out, 20);
        assert_eq!(counter, 10);
        assert_eq!(dropped.load(Ordering::SeqCst), 1, "dropped before return");
        assert_eq!(thread.lock().unwrap().as_deref(), Some("bridge-worker"));
    });
}

#[test]
fn a_panic_resumes_only_after_the_future_was_dropped() {
    common::bounded("panic-after-drop", || {
        let dropped = AtomicUsize::new(0);
        let thread = Mutex::new(None);
        let r = catch_unwind(AssertUnwindSafe(|| {
            bridge::call_blocking(async {
                let _probe = DropProbe {
                    dropped: &dropped,
                    thread: &thread,
                };
                tokio::task::yield_now().await;
                panic!("boom in the borrowing future");
            })
        }));
        let payload = r.expect_err("the panic resumes in the caller");
        assert_eq!(
            payload.downcast_ref::<&str>(),
            Some(&"boom in the borrowing future")
        );
        assert_eq!(dropped.load(Ordering::SeqCst), 1);
        assert_eq!(thread.lock().unwrap().as_deref(), Some("bridge-worker"));
    });
}

#[test]
fn timeout_cancels_and_drops_the_borrowing_future_first() {
    common::bounded("timeout-drop", || {
        let dropped = AtomicUsize::new(0);
        let thread = Mutex::new(None);
        let r = bridge::call_blocking_timeout(Duration::from_millis(20), async {
            let _probe = DropProbe {
                dropped: &dropped,
                thread: &thread,
            };
            std::future::pending::<()>().await
        });
        assert!(matches!(r, Err(bridge::Error::Timeout)), "{r:?}");
        assert_eq!(dropped.load(Ordering::SeqCst), 1, "dropped before Timeout");
        assert_eq!(thread.lock().unwrap().as_deref(), Some("bridge-worker"));
    });
}

#[test]
fn timeout_reports_a_panic_as_panicked() {
    common::bounded("timeout-panic", || {
        let r = bridge::call_blocking_timeout(Duration::from_secs(20), async {
            panic!("inside a bounded call")
        });
        match r {
            Err(bridge::Error::Panicked(p)) => assert_eq!(p.message(), "inside a bounded call"),
            other => panic!("expected Panicked, got {other:?}"),
        }
    });
}

#[test]
fn timeout_works_nested_and_inside_runtimes() {
    common::bounded("timeout-nested", || {
        let slow = || {
            bridge::call_blocking_timeout(Duration::from_millis(10), async {
                tokio::time::sleep(Duration::from_secs(60)).await
            })
        };
        assert!(matches!(
            bridge::call_blocking(async { slow() }),
            Err(bridge::Error::Timeout)
        ));
        assert!(matches!(
            common::current_rt().block_on(async { slow() }),
            Err(bridge::Error::Timeout)
        ));
        assert!(matches!(
            common::multi_rt()
                .block_on(async { tokio::spawn(async move { slow() }).await.unwrap() }),
            Err(bridge::Error::Timeout)
        ));
    });
}

/// A future that is ready at once and whose `Drop` panics.
struct ReadyThenPanicsOnDrop;

impl std::future::Future for ReadyThenPanicsOnDrop {
    type Output = u32;
    fn poll(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<u32> {
        std::task::Poll::Ready(7)
    }
}

impl Drop for ReadyThenPanicsOnDrop {
    fn drop(&mut self) {
        panic!("drop of the finished future");
    }
}

#[test]
fn a_drop_that_panics_after_ready_is_panicked_not_cancelled() {
    common::bounded("drop-panic", || {
        // Hand-off path (inside a runtime): the future is dropped before the
        // caller resumes, so its drop's panic is the outcome.
        let r =
            common::current_rt().block_on(async { bridge::block_on_safe(ReadyThenPanicsOnDrop) });
        match r {
            Err(bridge::Error::Panicked(p)) => {
                assert_eq!(p.message(), "drop of the finished future")
            }
            other => panic!("expected Panicked, got {other:?}"),
        }
        // A spawned task: the value is published before the future is
        // dropped; nothing is lost.
        let fut = bridge::worker_loop().spawn(ReadyThenPanicsOnDrop);
        assert_eq!(fut.wait().unwrap(), 7);
        // The worker survives.
        assert_eq!(bridge::call_blocking(async { 1 }), 1);
    });
}

#[test]
fn loop_block_on_borrows_and_refuses_its_own_thread() {
    common::bounded("loop-borrow", || {
        let lp = bridge::Loop::builder().name("borrow-loop").build().unwrap();
        let mut items = vec![1, 2, 3];
        let sum = lp
            .handle()
            .block_on(async {
                items.push(4);
                items.iter().sum::<i32>()
            })
            .unwrap();
        assert_eq!(sum, 10);
        assert_eq!(items.len(), 4);
        let h = lp.handle();
        let inner = lp
            .handle()
            .block_on(async { h.block_on(async { 1 }) })
            .unwrap();
        assert!(matches!(inner, Err(bridge::Error::WouldDeadlock)));
    });
}

#[test]
fn a_loop_closing_under_a_borrowing_block_on_resolves_it() {
    common::bounded("loop-close", || {
        let lp = bridge::Loop::builder().name("closing").build().unwrap();
        let h = lp.handle();
        let dropped = AtomicUsize::new(0);
        let thread = Mutex::new(None);
        std::thread::scope(|s| {
            // Made outside the future: a task dropped before its first poll
            // still drops it.
            let probe = DropProbe {
                dropped: &dropped,
                thread: &thread,
            };
            let waiter = s.spawn(|| {
                h.block_on(async move {
                    let _probe = probe;
                    std::future::pending::<()>().await
                })
            });
            common::eventually("the task runs", || {
                bridge::loops()
                    .iter()
                    .any(|l| l.id() == h.id() && l.tasks() > 0)
            });
            drop(lp);
            let r = waiter.join().unwrap();
            assert!(
                matches!(r, Err(bridge::Error::Cancelled | bridge::Error::LoopClosed)),
                "{r:?}"
            );
        });
        assert_eq!(dropped.load(Ordering::SeqCst), 1);
        assert_eq!(thread.lock().unwrap().as_deref(), Some("closing"));
        assert!(matches!(
            h.block_on(async { 1 }),
            Err(bridge::Error::LoopClosed)
        ));
    });
}

#[test]
fn a_caller_that_is_unwinding_can_still_borrow() {
    /// Flushes its buffer through the async client when dropped, also while
    /// its thread unwinds from a panic.
    struct Flusher<'a> {
        buf: Vec<u8>,
        flushed: &'a AtomicUsize,
    }
    impl Drop for Flusher<'_> {
        fn drop(&mut self) {
            let buf = &mut self.buf;
            let n = bridge::call_blocking(async {
                tokio::task::yield_now().await;
                buf.push(b'!');
                buf.len()
            });
            self.flushed.store(n, Ordering::SeqCst);
        }
    }
    common::bounded("unwinding-caller", || {
        let flushed = AtomicUsize::new(0);
        let r = catch_unwind(AssertUnwindSafe(|| {
            let _f = Flusher {
                buf: b"abc".to_vec(),
                flushed: &flushed,
            };
            panic!("the caller's own code panics");
        }));
        assert!(r.is_err());
        assert_eq!(flushed.load(Ordering::SeqCst), 4);
    });
}
