//! Streams and iterators across the boundary (API.md, "Streams and
//! iterators across the boundary"): `iter_blocking` / `BlockingIter` and
//! `stream_in_executor` / `ExecutorStream`.

#[macro_use]
mod common;
mod debug_support;

use std::hint::black_box;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::ThreadId;
use std::time::Duration;

use futures::stream::{self, StreamExt};

use common::{bounded, eventually, DropCounter};

/// The read-ahead bound API.md promises for both directions.
const API_READ_AHEAD: u64 = 64;

// ---------------------------------------------------------------------------
// Helpers.

/// The threads tokens were dropped on: id and name.
type Drops = Arc<Mutex<Vec<(ThreadId, Option<String>)>>>;

/// Records the thread each of its tokens was dropped on.
#[derive(Clone, Default)]
struct Probe(Drops);

impl Probe {
    fn token(&self) -> ProbeToken {
        ProbeToken(self.0.clone())
    }

    /// The threads tokens were dropped on so far.
    fn drops(&self) -> Vec<(ThreadId, Option<String>)> {
        self.0.lock().unwrap().clone()
    }

    /// Waits until one token was dropped and returns where.
    fn wait_dropped(&self) -> (ThreadId, Option<String>) {
        eventually("the token is dropped", || !self.drops().is_empty());
        let drops = self.drops();
        assert_eq!(drops.len(), 1, "the token is dropped once");
        drops[0].clone()
    }
}

struct ProbeToken(Drops);

impl Drop for ProbeToken {
    fn drop(&mut self) {
        let me = std::thread::current();
        self.0
            .lock()
            .unwrap()
            .push((me.id(), me.name().map(str::to_owned)));
    }
}

/// Counts items produced and consumed, and the most the producer was ever
/// ahead, checked at each production (the only moment it can grow).
#[derive(Clone, Default)]
struct Ahead {
    produced: Arc<AtomicU64>,
    consumed: Arc<AtomicU64>,
    max: Arc<AtomicU64>,
}

impl Ahead {
    /// Called by the producer as it makes an item.
    fn produce(&self) {
        let produced = self.produced.fetch_add(1, Ordering::SeqCst) + 1;
        let ahead = produced - self.consumed.load(Ordering::SeqCst);
        self.max.fetch_max(ahead, Ordering::SeqCst);
    }

    /// Called by the consumer as it takes an item.
    fn consume(&self) {
        self.consumed.fetch_add(1, Ordering::SeqCst);
    }

    fn ahead(&self) -> u64 {
        self.produced.load(Ordering::SeqCst) - self.consumed.load(Ordering::SeqCst)
    }

    fn max(&self) -> u64 {
        self.max.load(Ordering::SeqCst)
    }
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        String::from("<not a string>")
    }
}

/// 0..n, with a tokio timer every 100 items (it needs the worker's reactor)
/// and a yield every 7 (so the stream returns `Pending` now and then).
fn timed_stream(n: u32) -> impl futures::Stream<Item = u32> + Send + 'static {
    stream::iter(0..n).then(|i| async move {
        if i % 100 == 0 {
            tokio::time::sleep(Duration::from_micros(50)).await;
        } else if i % 7 == 0 {
            tokio::task::yield_now().await;
        }
        i
    })
}

// ---------------------------------------------------------------------------
// Compile-time properties.

#[test]
fn public_types_are_send_and_the_stream_is_unpin() {
    fn send<T: Send>() {}
    fn unpin<T: Unpin>() {}
    fn iterator<I: Iterator<Item = u8> + std::iter::FusedIterator>() {}
    fn stream<S: futures::Stream<Item = u8> + futures::stream::FusedStream>() {}
    send::<bridge::BlockingIter<u8>>();
    send::<bridge::ExecutorStream<u8>>();
    // Unpin whatever the item type.
    unpin::<bridge::ExecutorStream<std::marker::PhantomPinned>>();
    iterator::<bridge::BlockingIter<u8>>();
    stream::<bridge::ExecutorStream<u8>>();
}

// ---------------------------------------------------------------------------
// Order and completeness.

#[test]
fn iter_blocking_yields_10k_items_in_order() {
    bounded("iter_blocking 10k", || {
        let mut expected = 0u32;
        for item in bridge::iter_blocking(timed_stream(10_000)) {
            assert_eq!(item, expected, "in order, none lost or duplicated");
            expected += 1;
        }
        assert_eq!(expected, 10_000);
    });
}

#[test]
fn iter_blocking_of_an_always_ready_stream_yields_10k_items_in_order() {
    bounded("iter_blocking ready 10k", || {
        let v: Vec<u32> = bridge::iter_blocking(stream::iter(0..10_000)).collect();
        assert!(v.into_iter().eq(0..10_000));
    });
}

#[test]
fn stream_in_executor_yields_10k_items_in_order() {
    bounded("stream_in_executor 10k", || {
        // An iterator that blocks now and then, as a file or a cursor does.
        let iter = (0..10_000u32).inspect(|i| {
            if i % 1000 == 0 {
                std::thread::sleep(Duration::from_micros(100));
            }
        });
        let v =
            futures::executor::block_on(bridge::stream_in_executor(None, iter).collect::<Vec<_>>());
        assert!(v.into_iter().eq(0..10_000));
    });
}

#[test]
fn empty_stream_and_empty_iterator_end_at_once() {
    bounded("empty", || {
        let mut it = bridge::iter_blocking(stream::empty::<u8>());
        assert_eq!(it.next(), None);
        assert_eq!(it.next(), None);
        let mut s = bridge::stream_in_executor(None, Vec::<u8>::new());
        futures::executor::block_on(async {
            assert_eq!(s.next().await, None);
            assert_eq!(s.next().await, None);
        });
        assert!(futures::stream::FusedStream::is_terminated(&s));
    });
}

// ---------------------------------------------------------------------------
// Bounded read-ahead.

#[test]
fn iter_blocking_reads_ahead_a_bounded_number_of_items() {
    bounded("iter_blocking read-ahead", || {
        let ahead = Ahead::default();
        let a = ahead.clone();
        let mut it = bridge::iter_blocking(stream::iter(0u64..).map(move |i| {
            a.produce();
            i
        }));
        for round in 0..20u64 {
            // A slow consumer: give the worker time to run ahead as far as it will.
            eventually("the worker reads ahead", || ahead.ahead() >= 1);
            std::thread::sleep(Duration::from_millis(2));
            assert!(
                ahead.ahead() <= API_READ_AHEAD,
                "round {round}: {} items ahead",
                ahead.ahead()
            );
            for _ in 0..(round * 3) % 40 + 1 {
                ahead.consume();
                it.next().expect("an infinite stream");
            }
        }
        assert!(ahead.max() <= API_READ_AHEAD, "max ahead {}", ahead.max());
    });
}

#[test]
fn stream_in_executor_runs_ahead_a_bounded_number_of_items() {
    bounded("stream_in_executor read-ahead", || {
        let ahead = Ahead::default();
        let a = ahead.clone();
        let mut s = bridge::stream_in_executor(
            None,
            (0u64..).inspect(move |_| {
                a.produce();
            }),
        );
        futures::executor::block_on(async {
            for round in 0..20u64 {
                eventually("the iterator runs ahead", || ahead.ahead() >= 1);
                std::thread::sleep(Duration::from_millis(2));
                assert!(
                    ahead.ahead() <= API_READ_AHEAD,
                    "round {round}: {} items ahead",
                    ahead.ahead()
                );
                for _ in 0..(round * 3) % 40 + 1 {
                    ahead.consume();
                    s.next().await.expect("an infinite iterator");
                }
            }
        });
        assert!(ahead.max() <= API_READ_AHEAD, "max ahead {}", ahead.max());
    });
}

// ---------------------------------------------------------------------------
// Dropping either end.

#[test]
fn dropping_the_iterator_drops_a_waiting_stream_on_the_worker_loop() {
    bounded("drop iter, stream pending", || {
        let probe = Probe::default();
        let token = probe.token();
        // Three items, then a stream that waits forever.
        let s = stream::iter(0..3).chain(stream::pending()).map(move |i| {
            let _ = &token;
            i
        });
        let mut it = bridge::iter_blocking(s);
        assert_eq!(it.by_ref().take(3).collect::<Vec<_>>(), [0, 1, 2]);
        assert!(probe.drops().is_empty(), "not before the iterator goes");
        drop(it);
        let (thread, name) = probe.wait_dropped();
        assert_ne!(thread, std::thread::current().id());
        assert_eq!(
            name.as_deref(),
            Some("bridge-worker"),
            "dropped on the worker loop"
        );
    });
}

#[test]
fn dropping_the_iterator_drops_a_stream_blocked_on_a_full_buffer() {
    bounded("drop iter, buffer full", || {
        let probe = Probe::default();
        let token = probe.token();
        let produced = Arc::new(AtomicU64::new(0));
        let p = produced.clone();
        let mut it = bridge::iter_blocking(stream::iter(0u64..).map(move |i| {
            let _ = &token;
            p.fetch_add(1, Ordering::SeqCst);
            i
        }));
        assert_eq!(it.next(), Some(0));
        eventually("the buffer fills", || produced.load(Ordering::SeqCst) > 1);
        drop(it);
        let (_, name) = probe.wait_dropped();
        assert_eq!(name.as_deref(), Some("bridge-worker"));
        let at_drop = produced.load(Ordering::SeqCst);
        assert!(at_drop <= 1 + API_READ_AHEAD);
    });
}

#[test]
fn dropping_the_iterator_from_an_async_context_does_not_block_or_panic() {
    bounded("drop iter in runtime", || {
        let probe = Probe::default();
        let token = probe.token();
        let it = bridge::iter_blocking(stream::pending::<u8>().map(move |i| {
            let _ = &token;
            i
        }));
        common::current_rt().block_on(async move { drop(it) });
        probe.wait_dropped();
    });
}

#[test]
fn dropping_the_stream_drops_the_iterator_on_the_executor_thread() {
    bounded("drop stream", || {
        let probe = Probe::default();
        let token = probe.token();
        let produced = Arc::new(AtomicU64::new(0));
        let p = produced.clone();
        let pool = bridge::Executor::builder()
            .max_threads(2)
            .thread_name("streams-drop")
            .build();
        let mut s = bridge::stream_in_executor(
            Some(&pool),
            (0u64..).inspect(move |_| {
                let _ = &token;
                p.fetch_add(1, Ordering::SeqCst);
            }),
        );
        let first = futures::executor::block_on(s.next());
        assert_eq!(first, Some(0));
        drop(s);
        let (thread, name) = probe.wait_dropped();
        assert_ne!(thread, std::thread::current().id());
        assert_eq!(
            name.as_deref(),
            Some("streams-drop-1"),
            "dropped on the executor thread"
        );
        // Stopped at the next item: at most the read-ahead and one more.
        assert!(produced.load(Ordering::SeqCst) <= 1 + API_READ_AHEAD + 1);
    });
}

#[test]
fn dropping_the_stream_stops_an_iterator_blocked_in_next_at_its_next_item() {
    bounded("drop stream, iterator blocked", || {
        let probe = Probe::default();
        let token = probe.token();
        let calls = Arc::new(AtomicUsize::new(0));
        let c = calls.clone();
        let (tx, rx) = std::sync::mpsc::channel::<u32>();
        // Each `next()` blocks until the test sends an item.
        let iter = std::iter::from_fn(move || {
            let _ = &token;
            c.fetch_add(1, Ordering::SeqCst);
            rx.recv().ok()
        });
        let mut s = bridge::stream_in_executor(None, iter);
        tx.send(1).unwrap();
        assert_eq!(futures::executor::block_on(s.next()), Some(1));
        eventually("the iterator waits in its second next()", || {
            calls.load(Ordering::SeqCst) == 2
        });
        drop(s);
        std::thread::sleep(Duration::from_millis(5));
        assert!(probe.drops().is_empty(), "still blocked in next()");
        // The item `next()` was waiting for arrives: the job hands it over,
        // finds the consumer gone and stops there.
        tx.send(2).unwrap();
        let (_, name) = probe.wait_dropped();
        assert!(name.unwrap().starts_with("bridge-default-"));
        assert_eq!(
            calls.load(Ordering::SeqCst),
            2,
            "no next() after the drop was seen"
        );
        drop(tx);
    });
}

#[test]
fn a_finished_stream_is_dropped_on_the_worker_before_the_end_is_seen() {
    bounded("finished stream dropped", || {
        let probe = Probe::default();
        let token = probe.token();
        let mut it = bridge::iter_blocking(stream::iter(0..2).map(move |i| {
            let _ = &token;
            i
        }));
        assert_eq!(it.by_ref().count(), 2);
        let drops = probe.drops();
        assert_eq!(drops.len(), 1, "dropped before next() returned None");
        assert_eq!(drops[0].1.as_deref(), Some("bridge-worker"));

        let probe = Probe::default();
        let token = probe.token();
        let s = bridge::stream_in_executor(
            None,
            (0..2).inspect(move |_| {
                let _ = &token;
            }),
        );
        assert_eq!(futures::executor::block_on(s.count()), 2);
        let drops = probe.drops();
        assert_eq!(drops.len(), 1, "dropped before the stream returned None");
        assert!(drops[0]
            .1
            .as_deref()
            .unwrap()
            .starts_with("bridge-default-"));
    });
}

// ---------------------------------------------------------------------------
// Panics.

#[test]
fn a_stream_panic_resumes_at_next_after_its_items_then_the_iterator_is_fused() {
    bounded("stream panic", || {
        let s = stream::iter(0..5).map(|i| {
            if i == 3 {
                panic!("stream boom at {i}");
            }
            i
        });
        let mut it = bridge::iter_blocking(s);
        assert_eq!(it.by_ref().take(3).collect::<Vec<_>>(), [0, 1, 2]);
        let payload = catch_unwind(AssertUnwindSafe(|| it.next())).expect_err("resumes the panic");
        assert_eq!(panic_message(&*payload), "stream boom at 3");
        assert_eq!(it.next(), None, "fused");
        assert_eq!(it.next(), None, "fused");
    });
}

#[test]
fn an_iterator_panic_resumes_at_poll_next_after_its_items_then_the_stream_is_fused() {
    bounded("iterator panic", || {
        let iter = (0..5).inspect(|&i| {
            if i == 3 {
                panic!("iterator boom at {i}");
            }
        });
        let mut s = bridge::stream_in_executor(None, iter);
        futures::executor::block_on(async {
            for expected in 0..3 {
                assert_eq!(s.next().await, Some(expected));
            }
            let payload = futures::FutureExt::catch_unwind(AssertUnwindSafe(s.next()))
                .await
                .expect_err("resumes the panic");
            assert_eq!(panic_message(&*payload), "iterator boom at 3");
            assert_eq!(s.next().await, None, "fused");
            assert_eq!(s.next().await, None, "fused");
        });
        assert!(futures::stream::FusedStream::is_terminated(&s));
    });
}

#[test]
fn a_panic_in_into_iter_resumes_at_poll_next() {
    struct Bad;
    impl IntoIterator for Bad {
        type Item = u8;
        type IntoIter = std::iter::Empty<u8>;
        fn into_iter(self) -> Self::IntoIter {
            panic!("into_iter boom")
        }
    }
    bounded("into_iter panic", || {
        let mut s = bridge::stream_in_executor(None, Bad);
        let r = bridge::run(async move { s.next().await });
        let Err(bridge::Error::Panicked(p)) = r else {
            panic!("the consumer panics")
        };
        assert_eq!(p.message(), "into_iter boom");
    });
}

#[test]
fn a_panicking_stream_consumed_inside_a_runtime_panics_the_consumer_only() {
    bounded("stream panic in runtime", || {
        let rt = common::multi_rt();
        let r = rt.block_on(async {
            tokio::spawn(async {
                bridge::iter_blocking(stream::iter([1]).map(|_: i32| -> i32 { panic!("in task") }))
                    .count()
            })
            .await
        });
        let err = r.expect_err("the task panicked");
        assert!(err.is_panic());
        assert_eq!(panic_message(&*err.into_panic()), "in task");
        // The worker loop is unaffected.
        assert_eq!(bridge::call_blocking(async { 5 }), 5);
    });
}

// ---------------------------------------------------------------------------
// Every context.

fn iter_blocking_in(_ctx: common::Ctx) {
    let mut expected = 0u32;
    for item in bridge::iter_blocking(timed_stream(1_000)) {
        assert_eq!(item, expected);
        expected += 1;
    }
    assert_eq!(expected, 1_000);
}

every_context!(iter_blocking_everywhere, iter_blocking_in);

fn stream_in_executor_in(_ctx: common::Ctx) {
    let v = bridge::block_on_safe(async {
        bridge::stream_in_executor(None, 0..1_000u32)
            .collect::<Vec<_>>()
            .await
    })
    .expect("no panic");
    assert!(v.into_iter().eq(0..1_000));
}

every_context!(stream_in_executor_everywhere, stream_in_executor_in);

async fn sum_of_stream(n: u64) -> u64 {
    let mut s = bridge::stream_in_executor(None, 0..n);
    let mut sum = 0;
    let mut expected = 0;
    while let Some(x) = s.next().await {
        assert_eq!(x, expected);
        expected += 1;
        sum += x;
    }
    sum
}

const SUM_2000: u64 = 2000 * 1999 / 2;

#[test]
fn stream_in_executor_awaited_in_a_current_thread_runtime_task() {
    bounded("current-thread", || {
        let rt = common::current_rt();
        let sum = rt
            .block_on(async { tokio::spawn(sum_of_stream(2000)).await })
            .unwrap();
        assert_eq!(sum, SUM_2000);
    });
}

#[test]
fn stream_in_executor_awaited_in_a_multi_thread_runtime_task() {
    bounded("multi-thread", || {
        let rt = common::multi_rt();
        let sum = rt
            .block_on(async { tokio::spawn(sum_of_stream(2000)).await })
            .unwrap();
        assert_eq!(sum, SUM_2000);
    });
}

#[test]
fn stream_in_executor_awaited_in_a_local_set() {
    bounded("local set", || {
        let rt = common::current_rt();
        let local = tokio::task::LocalSet::new();
        let sum = local
            .block_on(&rt, async {
                tokio::task::spawn_local(sum_of_stream(2000)).await
            })
            .unwrap();
        assert_eq!(sum, SUM_2000);
    });
}

#[test]
fn stream_in_executor_awaited_in_futures_and_pollster() {
    bounded("futures, pollster", || {
        assert_eq!(futures::executor::block_on(sum_of_stream(2000)), SUM_2000);
        assert_eq!(pollster::block_on(sum_of_stream(2000)), SUM_2000);
    });
}

#[test]
fn stream_in_executor_awaited_in_bridge_loops() {
    bounded("bridge loops", || {
        assert_eq!(bridge::run(sum_of_stream(2000)).unwrap(), SUM_2000);
        let lp = bridge::Loop::new().unwrap();
        assert_eq!(
            lp.handle().spawn(sum_of_stream(2000)).wait().unwrap(),
            SUM_2000
        );
        assert_eq!(bridge::call_blocking(sum_of_stream(2000)), SUM_2000);
        assert_eq!(
            bridge::worker_loop()
                .spawn(sum_of_stream(2000))
                .wait()
                .unwrap(),
            SUM_2000
        );
    });
}

#[test]
fn stream_in_executor_on_a_single_thread_executor() {
    bounded("single thread", || {
        let db = bridge::Executor::single_thread("streams-db");
        let names = bridge::stream_in_executor(
            Some(&db),
            (0..100).map(|_| std::thread::current().name().unwrap().to_owned()),
        );
        let names = futures::executor::block_on(names.collect::<Vec<_>>());
        assert_eq!(names.len(), 100);
        assert!(names.iter().all(|n| n == "streams-db"));
    });
}

// ---------------------------------------------------------------------------
// Nesting.

#[test]
fn iter_blocking_nested_inside_the_stream_it_iterates() {
    bounded("nested iter_blocking", || {
        // Each item is computed by a blocking iteration on the worker
        // loop's own thread (the outer stream is polled there).
        let outer = stream::iter(0..20u64).map(|i| {
            bridge::iter_blocking(timed_stream(i as u32))
                .map(u64::from)
                .sum::<u64>()
        });
        let sums: Vec<u64> = bridge::iter_blocking(outer).collect();
        let expected: Vec<u64> = (0..20u64).map(|i| (0..i).sum()).collect();
        assert_eq!(sums, expected);
    });
}

#[test]
fn iter_blocking_inside_call_blocking_inside_iter_blocking() {
    bounded("deep nesting", || {
        let v = bridge::call_blocking(async {
            let inner: Vec<u32> = bridge::iter_blocking(stream::iter(0..3).then(|i| async move {
                bridge::call_blocking(async move {
                    bridge::iter_blocking(timed_stream(i + 1)).sum::<u32>()
                })
            }))
            .collect();
            inner
        });
        assert_eq!(v, [0, 1, 3]);
    });
}

#[test]
fn round_trips_sync_async_sync_and_async_sync_async() {
    bounded("round trips", || {
        // An iterator made a stream, made an iterator again.
        let back: Vec<u32> =
            bridge::iter_blocking(bridge::stream_in_executor(None, 0..5_000u32)).collect();
        assert!(back.into_iter().eq(0..5_000));
        // A stream made an iterator, made a stream again.
        let again = bridge::stream_in_executor(None, bridge::iter_blocking(timed_stream(5_000)));
        let again = bridge::run(again.collect::<Vec<_>>()).unwrap();
        assert!(again.into_iter().eq(0..5_000));
    });
}

#[test]
fn an_iterator_that_calls_async_code_per_item() {
    bounded("iterator calls call_blocking", || {
        let iter = (0..200u32).map(|i| bridge::call_blocking(async move { i * 2 }));
        let v = bridge::run(bridge::stream_in_executor(None, iter).collect::<Vec<_>>()).unwrap();
        assert!(v.into_iter().eq((0..200).map(|i| i * 2)));
    });
}

#[test]
fn many_iterators_at_once_from_many_threads() {
    bounded("many at once", || {
        let threads: Vec<_> = (0..8u32)
            .map(|t| {
                std::thread::spawn(move || {
                    let a: u64 = bridge::iter_blocking(timed_stream(500 + t))
                        .map(u64::from)
                        .sum();
                    let b: u64 = futures::executor::block_on(
                        bridge::stream_in_executor(None, 0..(500 + u64::from(t)))
                            .fold(0, |a, x| async move { a + x }),
                    );
                    assert_eq!(a, b);
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
    });
}

// ---------------------------------------------------------------------------
// Spans.

#[test]
fn the_span_at_the_call_is_the_streams_span_for_its_whole_life() {
    bounded("iter_blocking span", || {
        let capture = debug_support::capture();
        struct LogsOnDrop;
        impl Drop for LogsOnDrop {
            fn drop(&mut self) {
                tracing::info!("stream-span-test: stream dropped");
            }
        }
        let guard = LogsOnDrop;
        let s = stream::iter(0..3).map(move |i| {
            let _ = &guard;
            tracing::info!("stream-span-test: polled item {i}");
            i
        });
        let span = tracing::info_span!("request", id = 7001);
        let it = span.in_scope(|| bridge::iter_blocking(s));
        drop(span);
        // Consumed outside the span, on another thread.
        let v: Vec<i32> = std::thread::spawn(move || it.collect()).join().unwrap();
        assert_eq!(v, [0, 1, 2]);
        for i in 0..3 {
            let line = capture.wait_for(
                &[&format!("stream-span-test: polled item {i}")],
                common::TIMEOUT,
            );
            assert!(line.contains("request{id=7001}"), "{line}");
            assert!(line.contains("bridge-worker"), "{line}");
        }
        let line = capture.wait_for(&["stream-span-test: stream dropped"], common::TIMEOUT);
        assert!(line.contains("request{id=7001}"), "{line}");
    });
}

#[test]
fn the_span_at_the_call_is_the_iterators_span_for_its_whole_life() {
    bounded("stream_in_executor span", || {
        let capture = debug_support::capture();
        struct LogsOnDrop;
        impl Drop for LogsOnDrop {
            fn drop(&mut self) {
                tracing::info!("iter-span-test: iterator dropped");
            }
        }
        let guard = LogsOnDrop;
        let iter = (0..3).inspect(move |&i| {
            let _ = &guard;
            tracing::info!("iter-span-test: next item {i}");
        });
        let span = tracing::info_span!("request", id = 7002);
        let s = span.in_scope(|| bridge::stream_in_executor(None, iter));
        drop(span);
        let v = common::current_rt().block_on(s.collect::<Vec<_>>());
        assert_eq!(v, [0, 1, 2]);
        for i in 0..3 {
            let line = capture.wait_for(
                &[&format!("iter-span-test: next item {i}")],
                common::TIMEOUT,
            );
            assert!(line.contains("request{id=7002}"), "{line}");
            assert!(line.contains("bridge-default-"), "{line}");
        }
        let line = capture.wait_for(&["iter-span-test: iterator dropped"], common::TIMEOUT);
        assert!(line.contains("request{id=7002}"), "{line}");
    });
}

// ---------------------------------------------------------------------------
// A closed executor.

#[test]
fn a_closed_executor_makes_the_stream_panic_with_a_clear_message() {
    bounded("closed executor", || {
        let dropped = DropCounter::new();
        let token = dropped.token();
        let pool = bridge::Executor::new(1);
        assert!(pool.close());
        let mut s = bridge::stream_in_executor(
            Some(&pool),
            (0..3).inspect(move |_| {
                let _ = &token;
            }),
        );
        assert_eq!(dropped.count(), 1, "the iterator never runs and is dropped");
        futures::executor::block_on(async {
            let payload = futures::FutureExt::catch_unwind(AssertUnwindSafe(s.next()))
                .await
                .expect_err("a closed executor is not a silently empty stream");
            let message = panic_message(&*payload);
            assert!(message.contains("executor is closed"), "{message}");
            assert!(
                message.contains("None for the default executor"),
                "{message}"
            );
            assert_eq!(s.next().await, None, "fused after the panic");
        });
    });
}

#[test]
fn a_shut_down_executor_makes_the_stream_panic_too() {
    bounded("shut down executor", || {
        let pool = bridge::Executor::new(1);
        let handle = pool.clone();
        pool.shutdown();
        let s = bridge::stream_in_executor(Some(&handle), 0..3);
        let r = bridge::run(s.collect::<Vec<_>>());
        let Err(bridge::Error::Panicked(p)) = r else {
            panic!("the consumer panics, it does not hang or see nothing")
        };
        assert!(
            p.message().contains("executor is closed"),
            "{}",
            p.message()
        );
    });
}

#[test]
fn an_executor_closed_while_the_stream_runs_lets_it_finish() {
    bounded("closed mid-stream", || {
        let pool = bridge::Executor::new(1);
        let mut s = bridge::stream_in_executor(Some(&pool), 0..1_000u32);
        futures::executor::block_on(async {
            assert_eq!(s.next().await, Some(0));
            pool.close();
            let rest: Vec<u32> = (&mut s).collect().await;
            assert!(rest.into_iter().eq(1..1_000));
        });
    });
}

// ---------------------------------------------------------------------------
// Allocations per item: none in the steady state, with no span active.
//
// Counted over every thread of a child process that runs only this test (so
// no other test of this binary allocates meanwhile).

struct Counting;

static COUNTING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
static ALLOCS: AtomicU64 = AtomicU64::new(0);

// SAFETY: every method forwards to `System` with the caller's arguments; the
// counters touch no allocator state.
unsafe impl std::alloc::GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: forwarded unchanged; the caller upholds `alloc`'s contract.
        unsafe { std::alloc::System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        // SAFETY: forwarded unchanged; `ptr` came from `System`.
        unsafe { std::alloc::System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const CHILD: &str = "BRIDGE_STREAMS_ALLOC_CHILD";

/// Heap allocations (on every thread) while `f` runs.
fn allocations(f: impl FnOnce()) -> u64 {
    ALLOCS.store(0, Ordering::SeqCst);
    COUNTING.store(true, Ordering::SeqCst);
    f();
    COUNTING.store(false, Ordering::SeqCst);
    ALLOCS.load(Ordering::SeqCst)
}

/// Items moved while counting, per direction.
const COUNTED_ITEMS: u64 = 100_000;

/// Allocations allowed over [`COUNTED_ITEMS`]: not per item, but one-time
/// process state the measurement may happen to be first to need
/// (`parking_lot` builds its global table of parked threads, and grows it
/// as threads appear, at the first contended lock).
const ONE_TIME: u64 = 16;

#[test]
fn items_allocate_nothing_in_the_steady_state() {
    if std::env::var_os(CHILD).is_none() {
        common::in_child_process(
            "items_allocate_nothing_in_the_steady_state",
            &[(CHILD, "1")],
        );
        return;
    }
    // sync <- async
    let mut it = bridge::iter_blocking(stream::iter(0u64..));
    assert_eq!(it.by_ref().take(1000).count(), 1000);
    let n = allocations(|| {
        for _ in 0..COUNTED_ITEMS {
            black_box(it.next());
        }
    });
    println!("iter_blocking: {n} allocations over {COUNTED_ITEMS} items");
    assert!(n <= ONE_TIME, "iter_blocking allocates per item: {n}");
    drop(it);

    // async <- sync
    let rt = common::current_rt();
    let n = rt.block_on(async {
        let mut s = bridge::stream_in_executor(None, 0u64..);
        for _ in 0..1000 {
            s.next().await.unwrap();
        }
        ALLOCS.store(0, Ordering::SeqCst);
        COUNTING.store(true, Ordering::SeqCst);
        for _ in 0..COUNTED_ITEMS {
            black_box(s.next().await);
        }
        COUNTING.store(false, Ordering::SeqCst);
        ALLOCS.load(Ordering::SeqCst)
    });
    println!("stream_in_executor: {n} allocations over {COUNTED_ITEMS} items");
    assert!(n <= ONE_TIME, "stream_in_executor allocates per item: {n}");
}

#[test]
fn a_next_future_dropped_mid_wait_loses_no_item() {
    bounded("cancel safety", || {
        // An iterator that blocks now and then, and a consumer that gives up
        // on most waits (a timeout drops its `next()` future).
        let iter = (0..300u32).inspect(|i| {
            if i % 10 == 0 {
                std::thread::sleep(Duration::from_millis(1));
            }
        });
        let mut s = bridge::stream_in_executor(None, iter);
        let got = common::current_rt().block_on(async {
            let mut got = Vec::new();
            loop {
                match tokio::time::timeout(Duration::from_micros(200), s.next()).await {
                    Ok(Some(x)) => got.push(x),
                    Ok(None) => break,
                    Err(_elapsed) => continue,
                }
            }
            got
        });
        assert!(got.into_iter().eq(0..300));
    });
}

// ---------------------------------------------------------------------------
// Waiting costs no CPU: both sides spin briefly before they sleep (see
// bridge/stream_channel.rs, "Waiting: when to spin"); a wait that lasts
// costs a few microseconds of spin, then nothing.

/// This thread's time on a CPU so far (Linux: /proc/thread-self/schedstat).
#[cfg(target_os = "linux")]
fn thread_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").expect("schedstat");
    let ns: u64 = stat
        .split_whitespace()
        .next()
        .and_then(|f| f.parse().ok())
        .expect("the first field is the time on a CPU in ns");
    Duration::from_nanos(ns)
}

/// How long each wait below lasts; a side that spun through it would be on
/// a CPU for most of it, one that sleeps for a few microseconds.
#[cfg(target_os = "linux")]
const LONG_WAIT: Duration = Duration::from_millis(150);

/// Asserts that `cpu`, spent over `waits` waits of [`LONG_WAIT`], is far
/// below the wall time.
#[cfg(target_os = "linux")]
fn assert_slept(who: &str, cpu: Duration, waits: u32) {
    let wall = LONG_WAIT * waits;
    assert!(
        cpu < wall / 4,
        "{who} was on a CPU for {cpu:?} of {wall:?} spent waiting: it spins instead of sleeping"
    );
}

#[cfg(target_os = "linux")]
#[test]
fn a_stream_consumer_waiting_on_a_slow_iterator_sleeps() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    bounded("consume a slow iterator", move || {
        rt.block_on(async {
            let slow = (0..4u32).inspect(|_| std::thread::sleep(LONG_WAIT));
            let before = thread_cpu();
            let items: Vec<u32> = bridge::stream_in_executor(None, slow).collect().await;
            assert_eq!(items, [0, 1, 2, 3]);
            assert_slept("the stream's consumer", thread_cpu() - before, 4);
        })
    });
}

#[cfg(target_os = "linux")]
#[test]
fn an_iterator_job_waiting_for_a_slow_consumer_sleeps() {
    // The job records its thread's CPU time at each `next()`: between the
    // call that fills the read-ahead and the next one, it waited for room.
    let cpu_at = Arc::new(Mutex::new(Vec::new()));
    let record = cpu_at.clone();
    let iter = (0..API_READ_AHEAD * 3).inspect(move |_| record.lock().unwrap().push(thread_cpu()));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    bounded("consume slowly", move || {
        rt.block_on(async {
            let mut s = bridge::stream_in_executor(None, iter);
            let mut n = 0;
            while let Some(_item) = s.next().await {
                n += 1;
                // Three long pauses, each with the read-ahead full.
                if n % API_READ_AHEAD == 1 {
                    tokio::time::sleep(LONG_WAIT).await;
                }
            }
            assert_eq!(n, API_READ_AHEAD * 3);
        })
    });
    let cpu_at = cpu_at.lock().unwrap();
    let spent = *cpu_at.last().unwrap() - cpu_at[0];
    assert_slept("the iterator's job", spent, 3);
}

#[cfg(target_os = "linux")]
#[test]
fn a_blocking_iterator_waiting_on_a_slow_stream_sleeps() {
    bounded("iterate a slow stream", || {
        let slow = stream::iter(0..4u32).then(|i| async move {
            tokio::time::sleep(LONG_WAIT).await;
            i
        });
        let before = thread_cpu();
        let items: Vec<u32> = bridge::iter_blocking(slow).collect();
        assert_eq!(items, [0, 1, 2, 3]);
        assert_slept("the blocking iterator", thread_cpu() - before, 4);
    });
}
