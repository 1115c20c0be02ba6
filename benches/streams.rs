//! Benchmarks of the two stream directions, each beside the hand-written
//! pattern it replaces, in the same run, so each figure reads as a ratio.
//!
//! Groups (criterion group names; every sample moves `N` items, and
//! criterion's throughput is items per second, so time per item is
//! `time / N`):
//!
//! 1. `iter_blocking/<kind>/<N>`: sync code iterating an async stream.
//!    * `bridge`: `bridge::iter_blocking(stream).sum()`.
//!    * `tokio_mpsc`: a tokio task feeding a `tokio::sync::mpsc` channel
//!      (capacity 64, our read-ahead), read with `blocking_recv`. The task
//!      runs on the same runtime as ours, the worker loop, so only the
//!      hand-off differs.
//!
//!    `<kind>` is `ready` (a stream that always has its next item) or
//!    `yielding` (one that returns `Pending` once before every item, so the
//!    consumer usually finds nothing buffered and must be woken).
//! 2. `stream_in_executor/<N>`: async code consuming a blocking iterator,
//!    inside a current-thread runtime's `block_on`.
//!    * `bridge`: `bridge::stream_in_executor(None, iter)` summed with
//!      `next().await`.
//!    * `tokio_mpsc`: a `spawn_blocking` thread feeding a
//!      `tokio::sync::mpsc` channel (capacity 64) with `blocking_send`,
//!      read with `recv().await`.
//!    * `tokio_mpsc_on_executor`: the same channel fed by a job on the
//!      default executor (`run_in_executor(None, ..)`) instead of
//!      `spawn_blocking`: beside `bridge`, it tells the channel's cost from
//!      the thread pool's.
//!
//! Both sides of each pair include their setup (a task or a job per
//! sample): at N = 16 it dominates, at N = 10,000 the per-item cost does.
//!
//! Run: `cargo bench --bench streams`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use futures::stream::{self, StreamExt};

/// The channel capacity of the hand-written pattern: the same read-ahead
/// as ours (32 buffered + 32 taken by the consumer).
const PEER_CAPACITY: usize = 64;

const SIZES: [u64; 2] = [16, 10_000];

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(700))
        .measurement_time(Duration::from_secs(2))
        .sample_size(20)
        .configure_from_args()
}

/// A stream of `0..n` that returns `Pending` once before each item.
fn yielding(n: u64) -> impl futures::Stream<Item = u64> + Send + 'static {
    stream::iter(0..n).then(|i| async move {
        tokio::task::yield_now().await;
        i
    })
}

fn peer_iter(handle: &tokio::runtime::Handle, n: u64, yield_each: bool) -> u64 {
    let (tx, mut rx) = tokio::sync::mpsc::channel(PEER_CAPACITY);
    handle.spawn(async move {
        for i in 0..n {
            if yield_each {
                tokio::task::yield_now().await;
            }
            if tx.send(i).await.is_err() {
                break;
            }
        }
    });
    let mut sum = 0;
    while let Some(x) = rx.blocking_recv() {
        sum += x;
    }
    sum
}

fn bench_iter_blocking(c: &mut Criterion) {
    let worker = bridge::worker_loop();
    let handle = worker.tokio_handle().clone();
    for (kind, yield_each) in [("ready", false), ("yielding", true)] {
        let mut g = c.benchmark_group(format!("iter_blocking/{kind}"));
        for n in SIZES {
            g.throughput(Throughput::Elements(n));
            g.bench_with_input(BenchmarkId::new("bridge", n), &n, |b, &n| {
                b.iter(|| {
                    let sum: u64 = if yield_each {
                        bridge::iter_blocking(yielding(n)).sum()
                    } else {
                        bridge::iter_blocking(stream::iter(0..n)).sum()
                    };
                    black_box(sum)
                })
            });
            g.bench_with_input(BenchmarkId::new("tokio_mpsc", n), &n, |b, &n| {
                b.iter(|| black_box(peer_iter(&handle, n, yield_each)))
            });
        }
        g.finish();
    }
}

fn bench_stream_in_executor(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut g = c.benchmark_group("stream_in_executor");
    for n in SIZES {
        g.throughput(Throughput::Elements(n));
        g.bench_with_input(BenchmarkId::new("bridge", n), &n, |b, &n| {
            b.iter(|| {
                rt.block_on(async {
                    let mut s = bridge::stream_in_executor(None, 0..n);
                    let mut sum = 0;
                    while let Some(x) = s.next().await {
                        sum += x;
                    }
                    black_box(sum)
                })
            })
        });
        g.bench_with_input(BenchmarkId::new("tokio_mpsc", n), &n, |b, &n| {
            b.iter(|| {
                rt.block_on(async {
                    let (tx, mut rx) = tokio::sync::mpsc::channel(PEER_CAPACITY);
                    tokio::task::spawn_blocking(move || {
                        for i in 0..n {
                            if tx.blocking_send(i).is_err() {
                                break;
                            }
                        }
                    });
                    let mut sum = 0;
                    while let Some(x) = rx.recv().await {
                        sum += x;
                    }
                    black_box(sum)
                })
            })
        });
        g.bench_with_input(
            BenchmarkId::new("tokio_mpsc_on_executor", n),
            &n,
            |b, &n| {
                b.iter(|| {
                    rt.block_on(async {
                        let (tx, mut rx) = tokio::sync::mpsc::channel(PEER_CAPACITY);
                        drop(bridge::run_in_executor(None, move || {
                            for i in 0..n {
                                if tx.blocking_send(i).is_err() {
                                    break;
                                }
                            }
                        }));
                        let mut sum = 0;
                        while let Some(x) = rx.recv().await {
                            sum += x;
                        }
                        black_box(sum)
                    })
                })
            },
        );
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = config();
    targets = bench_iter_blocking, bench_stream_in_executor
}
criterion_main!(benches);
