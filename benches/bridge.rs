//! Benchmarks: every figure of ours beside the peers and the physical floor,
//! measured in the same run, so each result reads as a ratio.
//!
//! Groups (criterion group names):
//!
//! 1. `floor`: two threads handing a token back and forth with
//!    `park`/`unpark`, with pure spinning, and through a crossbeam
//!    `bounded(1)` channel pair (spin, then park).
//! 2. `handoff`: sync code -> a loop on another thread -> back.
//! 3. `inline`: a future run on the calling thread, no loop running.
//! 4. `submit`: `run_coroutine_threadsafe` waited on and awaited.
//! 5. `loop_paths`: every way from a plain thread into a warm bridge `Loop`,
//!    beside `call_blocking` to the worker loop, in the same run.
//! 6. `contention/<N>`: N threads hammering one loop; each sample's time is
//!    the wall time of all threads together divided by the calls they made.
//!
//! After the groups the binary measures, outside criterion, the process CPU
//! time over one second of idleness after a burst of hand-offs, the cold
//! hand-off (the first call after 1, 10 and 100 ms of idleness, beside the
//! park/unpark floor after the same idleness; a sleep per sample does not
//! fit criterion's sampling), and the heap allocations per operation of ours
//! and of every peer; all are printed and written to
//! `target/criterion/bridge-extra.json` for `benches/report.py`.
//!
//! Run: `cargo bench --bench bridge`, then `python3 benches/report.py`.

use std::future::Future;
use std::hint::black_box;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::task::{Context, Poll};
use std::thread;
use std::time::{Duration, Instant};

use criterion::{criterion_group, BenchmarkId, Criterion, Throughput};

#[path = "support/counting_alloc.rs"]
mod counting_alloc;
#[path = "support/results.rs"]
mod results;
use counting_alloc::{allocs_per_op, ALLOCS, COUNTING};

// ---------------------------------------------------------------------------
// Shared pieces.

/// A future that returns `Pending` once (waking itself) and then `Ready`.
struct YieldOnce(bool);

impl Future for YieldOnce {
    type Output = u64;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<u64> {
        if self.0 {
            Poll::Ready(1)
        } else {
            self.0 = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }
}

fn yield_once() -> YieldOnce {
    YieldOnce(false)
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(700))
        .measurement_time(Duration::from_secs(2))
        .sample_size(20)
        .configure_from_args()
}

/// A thread that answers every `ping` with a `pong`, by one of three means.
enum Partner {
    Park(ParkPair),
    Spin(SpinPair),
    Channel(ChannelPair),
}

/// A round-trip counter: the caller makes it odd, the partner even.
struct Turn {
    turn: AtomicU64,
    stop: AtomicBool,
}

struct ParkPair {
    shared: Arc<Turn>,
    partner: thread::JoinHandle<()>,
}

impl ParkPair {
    fn new() -> Self {
        let shared = Arc::new(Turn {
            turn: AtomicU64::new(0),
            stop: AtomicBool::new(false),
        });
        let caller = thread::current();
        let s = shared.clone();
        let partner = thread::spawn(move || {
            let mut seen = 0;
            loop {
                // Wait for an odd turn (a ping), parking in between.
                loop {
                    if s.stop.load(Ordering::Acquire) {
                        return;
                    }
                    let t = s.turn.load(Ordering::Acquire);
                    if t != seen && t % 2 == 1 {
                        seen = t + 1;
                        break;
                    }
                    thread::park();
                }
                s.turn.store(seen, Ordering::Release);
                caller.unpark();
            }
        });
        ParkPair { shared, partner }
    }

    fn round_trip(&self) {
        let next = self.shared.turn.load(Ordering::Relaxed) + 1;
        self.shared.turn.store(next, Ordering::Release);
        self.partner.thread().unpark();
        while self.shared.turn.load(Ordering::Acquire) != next + 1 {
            thread::park();
        }
    }
}

struct SpinPair {
    shared: Arc<Turn>,
    partner: Option<thread::JoinHandle<()>>,
}

impl SpinPair {
    fn new() -> Self {
        let shared = Arc::new(Turn {
            turn: AtomicU64::new(0),
            stop: AtomicBool::new(false),
        });
        let s = shared.clone();
        let partner = thread::spawn(move || {
            let mut seen = 0;
            while !s.stop.load(Ordering::Relaxed) {
                let t = s.turn.load(Ordering::Acquire);
                if t != seen && t % 2 == 1 {
                    seen = t + 1;
                    s.turn.store(seen, Ordering::Release);
                } else {
                    std::hint::spin_loop();
                }
            }
        });
        SpinPair {
            shared,
            partner: Some(partner),
        }
    }

    fn round_trip(&self) {
        let next = self.shared.turn.load(Ordering::Relaxed) + 1;
        self.shared.turn.store(next, Ordering::Release);
        while self.shared.turn.load(Ordering::Acquire) != next + 1 {
            std::hint::spin_loop();
        }
    }
}

struct ChannelPair {
    ping: crossbeam_channel::Sender<u64>,
    pong: crossbeam_channel::Receiver<u64>,
    partner: Option<thread::JoinHandle<()>>,
}

impl ChannelPair {
    fn new() -> Self {
        let (ping, ping_rx) = crossbeam_channel::bounded::<u64>(1);
        let (pong_tx, pong) = crossbeam_channel::bounded::<u64>(1);
        let partner = thread::spawn(move || {
            while let Ok(v) = ping_rx.recv() {
                if pong_tx.send(v + 1).is_err() {
                    return;
                }
            }
        });
        ChannelPair {
            ping,
            pong,
            partner: Some(partner),
        }
    }

    fn round_trip(&self) {
        self.ping.send(1).unwrap();
        black_box(self.pong.recv().unwrap());
    }
}

impl Partner {
    fn round_trip(&self) {
        match self {
            Partner::Park(p) => p.round_trip(),
            Partner::Spin(p) => p.round_trip(),
            Partner::Channel(p) => p.round_trip(),
        }
    }

    fn stop(self) {
        match self {
            Partner::Park(p) => {
                p.shared.stop.store(true, Ordering::Release);
                p.partner.thread().unpark();
                p.partner.join().unwrap();
            }
            Partner::Spin(mut p) => {
                p.shared.stop.store(true, Ordering::Release);
                p.partner.take().unwrap().join().unwrap();
            }
            Partner::Channel(mut p) => {
                let partner = p.partner.take().unwrap();
                drop(p);
                partner.join().unwrap();
            }
        }
    }
}

/// The `reqwest::blocking` pattern: a current-thread runtime driven by its
/// own thread; callers `Handle::spawn` onto it and wait on a oneshot.
struct RuntimeThread {
    handle: tokio::runtime::Handle,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<thread::JoinHandle<()>>,
}

impl RuntimeThread {
    fn new() -> Self {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let handle = rt.handle().clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = thread::Builder::new()
            .name("peer-runtime".into())
            .spawn(move || {
                let _ = rt.block_on(stopped);
            })
            .unwrap();
        RuntimeThread {
            handle,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// `Handle::spawn` + `oneshot`, waited on by parking this thread.
    fn call<F>(&self, fut: F) -> F::Output
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.handle.spawn(async move {
            let _ = tx.send(fut.await);
        });
        rx.blocking_recv().unwrap()
    }
}

impl Drop for RuntimeThread {
    fn drop(&mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.thread.take().unwrap().join().unwrap();
    }
}

/// A multi-thread runtime for the `spawn_blocking` peer.
fn multi_thread_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
}

/// `spawn_blocking` + `Handle::block_on`: a blocking-pool thread drives the
/// future; the caller waits on the join handle.
fn spawn_blocking_call(handle: &tokio::runtime::Handle) -> u64 {
    let h = handle.clone();
    pollster::block_on(handle.spawn_blocking(move || h.block_on(async { black_box(1u64) })))
        .unwrap()
}

/// A new thread and a new current-thread runtime per call.
fn thread_and_runtime_call() -> u64 {
    thread::spawn(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(async { black_box(1u64) })
    })
    .join()
    .unwrap()
}

// ---------------------------------------------------------------------------
// 1. floor

fn floor(c: &mut Criterion) {
    let mut g = c.benchmark_group("floor");
    type Make = fn() -> Partner;
    // The spinning pair last: two threads spinning flat out for seconds
    // can get a real-time run throttled, and the other two must not pay.
    let pairs: [(&str, Make); 3] = [
        (
            "crossbeam_bounded1",
            || Partner::Channel(ChannelPair::new()),
        ),
        ("park_unpark", || Partner::Park(ParkPair::new())),
        ("spin", || Partner::Spin(SpinPair::new())),
    ];
    for (name, make) in pairs {
        let p = make();
        g.bench_function(name, |b| b.iter(|| p.round_trip()));
        p.stop();
    }
    g.finish();
}

// ---------------------------------------------------------------------------
// 2. hand-off

/// A library's async client, for the borrowing hand-off: `get` borrows
/// `self` and the key.
struct Table {
    rows: Vec<(String, u64)>,
}

impl Table {
    fn new() -> Table {
        Table {
            rows: (0..16).map(|i| (format!("k{i}"), i)).collect(),
        }
    }

    async fn get(&self, key: &str) -> Option<u64> {
        self.rows.iter().find(|(k, _)| k == key).map(|(_, v)| *v)
    }
}

fn handoff(c: &mut Criterion) {
    let mut g = c.benchmark_group("handoff");
    // Warm the worker loop.
    bridge::call_blocking(async {});

    g.bench_function("ours/call_blocking", |b| {
        b.iter(|| bridge::call_blocking(async { black_box(1u64) }))
    });
    // The same hand-off with a future that borrows the caller's data (the
    // `call_blocking(self.inner.get(key))` shape): no clone, no `'static`.
    let table = Table::new();
    g.bench_function("ours/call_blocking_borrowing", |b| {
        b.iter(|| bridge::call_blocking(table.get(black_box("k7"))))
    });

    let current = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    g.bench_function("ours/block_on_safe_in_current_thread_rt", |b| {
        b.iter_custom(|iters| {
            current.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    black_box(bridge::block_on_safe(async { black_box(1u64) }).unwrap());
                }
                start.elapsed()
            })
        })
    });
    drop(current);

    let multi = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    g.bench_function("ours/block_on_safe_in_multi_thread_task", |b| {
        b.iter_custom(|iters| {
            multi
                .block_on(multi.spawn(async move {
                    let start = Instant::now();
                    for _ in 0..iters {
                        black_box(bridge::block_on_safe(async { black_box(1u64) }).unwrap());
                    }
                    start.elapsed()
                }))
                .unwrap()
        })
    });
    drop(multi);

    let lp = bridge::Loop::new().unwrap();
    let h = lp.handle();
    g.bench_function("ours/loop_handle_block_on", |b| {
        b.iter(|| h.block_on(async { black_box(1u64) }).unwrap())
    });
    drop(lp);

    let peer = RuntimeThread::new();
    g.bench_function("peer/tokio_spawn_oneshot", |b| {
        b.iter(|| peer.call(async { black_box(1u64) }))
    });
    drop(peer);

    let rt = multi_thread_runtime();
    g.bench_function("peer/spawn_blocking_block_on", |b| {
        b.iter(|| spawn_blocking_call(rt.handle()))
    });
    drop(rt);

    g.bench_function("peer/thread_and_runtime_per_call", |b| {
        b.iter(thread_and_runtime_call)
    });
    g.finish();
}

// ---------------------------------------------------------------------------
// 3. inline

fn inline(c: &mut Criterion) {
    let mut g = c.benchmark_group("inline");
    // The first call on a thread builds its inline runtime: warm it.
    bridge::block_on_safe(async {}).unwrap();

    g.bench_function("ours/block_on_safe_ready", |b| {
        b.iter(|| bridge::block_on_safe(async { black_box(1u64) }).unwrap())
    });
    g.bench_function("ours/block_on_safe_yield", |b| {
        b.iter(|| bridge::block_on_safe(yield_once()).unwrap())
    });
    g.bench_function("ours/run_ready", |b| {
        b.iter(|| bridge::run(async { black_box(1u64) }).unwrap())
    });
    g.bench_function("peer/pollster_ready", |b| {
        b.iter(|| pollster::block_on(async { black_box(1u64) }))
    });
    g.bench_function("peer/pollster_yield", |b| {
        b.iter(|| pollster::block_on(yield_once()))
    });
    g.bench_function("peer/futures_executor_ready", |b| {
        b.iter(|| futures::executor::block_on(async { black_box(1u64) }))
    });
    g.bench_function("peer/futures_executor_yield", |b| {
        b.iter(|| futures::executor::block_on(yield_once()))
    });
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    g.bench_function("peer/tokio_reused_rt_ready", |b| {
        b.iter(|| rt.block_on(async { black_box(1u64) }))
    });
    g.bench_function("peer/tokio_reused_rt_yield", |b| {
        b.iter(|| rt.block_on(yield_once()))
    });
    drop(rt);
    g.bench_function("peer/tokio_new_rt_per_call", |b| {
        b.iter(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(async { black_box(1u64) })
        })
    });
    g.finish();
}

// ---------------------------------------------------------------------------
// 4. submit

fn submit(c: &mut Criterion) {
    let mut g = c.benchmark_group("submit");
    let lp = bridge::Loop::new().unwrap();
    let h = lp.handle();
    g.bench_function("ours/run_coroutine_threadsafe_wait", |b| {
        b.iter(|| {
            bridge::run_coroutine_threadsafe(async { black_box(1u64) }, &h)
                .wait()
                .unwrap()
        })
    });
    let caller_rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    g.bench_function("ours/run_coroutine_threadsafe_await", |b| {
        b.iter_custom(|iters| {
            caller_rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    let v = bridge::run_coroutine_threadsafe(async { black_box(1u64) }, &h).await;
                    black_box(v.unwrap());
                }
                start.elapsed()
            })
        })
    });
    drop(lp);

    let peer = RuntimeThread::new();
    let ph = peer.handle.clone();
    g.bench_function("peer/tokio_spawn_join_wait", |b| {
        b.iter(|| pollster::block_on(ph.spawn(async { black_box(1u64) })).unwrap())
    });
    g.bench_function("peer/tokio_spawn_join_await", |b| {
        b.iter_custom(|iters| {
            caller_rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    black_box(ph.spawn(async { black_box(1u64) }).await.unwrap());
                }
                start.elapsed()
            })
        })
    });
    drop(peer);
    g.finish();
}

// ---------------------------------------------------------------------------
// 6. contention

/// The thread counts of the contention group (and of the plot).
const THREADS: [usize; 4] = [1, 2, 8, 16];

/// Runs `iters` calls of `op` spread over `n` threads that start together;
/// returns the wall time from the common start to the last finish.
fn spread<Op: Fn() + Sync>(n: usize, iters: u64, op: &Op) -> Duration {
    let start_line = Barrier::new(n + 1);
    let per = iters / n as u64;
    let extra = iters % n as u64;
    thread::scope(|s| {
        let workers: Vec<_> = (0..n as u64)
            .map(|i| {
                let start_line = &start_line;
                s.spawn(move || {
                    let mine = per + u64::from(i < extra);
                    start_line.wait();
                    for _ in 0..mine {
                        op();
                    }
                    Instant::now()
                })
            })
            .collect();
        start_line.wait();
        let start = Instant::now();
        workers
            .into_iter()
            .map(|w| w.join().unwrap())
            .max()
            .map_or(Duration::ZERO, |end| end.saturating_duration_since(start))
    })
}

fn contention(c: &mut Criterion) {
    bridge::call_blocking(async {});
    let lp = bridge::Loop::new().unwrap();
    let h = lp.handle();
    let peer = RuntimeThread::new();
    let rt = multi_thread_runtime();
    for n in THREADS {
        let mut g = c.benchmark_group(format!("contention/{n}"));
        g.throughput(Throughput::Elements(1));
        g.bench_function(BenchmarkId::new("ours", "call_blocking"), |b| {
            b.iter_custom(|iters| {
                spread(n, iters, &|| {
                    black_box(bridge::call_blocking(async { black_box(1u64) }));
                })
            })
        });
        g.bench_function(BenchmarkId::new("ours", "run_coroutine_threadsafe"), |b| {
            b.iter_custom(|iters| {
                spread(n, iters, &|| {
                    let f = bridge::run_coroutine_threadsafe(async { black_box(1u64) }, &h);
                    black_box(f.wait().unwrap());
                })
            })
        });
        g.bench_function(BenchmarkId::new("peer", "tokio_spawn_oneshot"), |b| {
            b.iter_custom(|iters| {
                spread(n, iters, &|| {
                    black_box(peer.call(async { black_box(1u64) }));
                })
            })
        });
        g.bench_function(BenchmarkId::new("peer", "spawn_blocking_block_on"), |b| {
            b.iter_custom(|iters| {
                spread(n, iters, &|| {
                    black_box(spawn_blocking_call(rt.handle()));
                })
            })
        });
        g.bench_function(
            BenchmarkId::new("peer", "thread_and_runtime_per_call"),
            |b| {
                b.iter_custom(|iters| {
                    spread(n, iters, &|| {
                        black_box(thread_and_runtime_call());
                    })
                })
            },
        );
        g.finish();
    }
}

// ---------------------------------------------------------------------------
// 5. loop paths

/// `call_soon_threadsafe` plus its completion: the callback fulfils a
/// promise that this thread waits on.
fn call_soon_and_wait(h: &bridge::LoopHandle) -> u64 {
    let (promise, done) = bridge::promise();
    h.call_soon_threadsafe(move || promise.set_result(black_box(1u64)))
        .unwrap();
    done.wait().unwrap()
}

fn loop_paths(c: &mut Criterion) {
    let mut g = c.benchmark_group("loop_paths");
    bridge::call_blocking(async {});
    let lp = bridge::Loop::new().unwrap();
    let h = lp.handle();
    h.block_on(async {}).unwrap();
    // The reference first and last: the ratios use the better of the two,
    // so a drift of the machine during the group does not flatter ours.
    g.bench_function("ours/call_blocking", |b| {
        b.iter(|| bridge::call_blocking(async { black_box(1u64) }))
    });
    g.bench_function("ours/loop_spawn_wait", |b| {
        b.iter(|| h.spawn(async { black_box(1u64) }).wait().unwrap())
    });
    g.bench_function("ours/run_coroutine_threadsafe_wait", |b| {
        b.iter(|| {
            bridge::run_coroutine_threadsafe(async { black_box(1u64) }, &h)
                .wait()
                .unwrap()
        })
    });
    g.bench_function("ours/loop_handle_block_on", |b| {
        b.iter(|| h.block_on(async { black_box(1u64) }).unwrap())
    });
    g.bench_function("ours/call_soon_threadsafe_and_wait", |b| {
        b.iter(|| call_soon_and_wait(&h))
    });
    g.bench_function("ours/call_blocking_again", |b| {
        b.iter(|| bridge::call_blocking(async { black_box(1u64) }))
    });
    drop(lp);
    g.finish();
}

// ---------------------------------------------------------------------------
// Idle CPU, the cold hand-off and allocations (outside criterion).

/// A partner thread that answers each ping with a pong, parked in between;
/// the caller spins for the reply, so a round trip is one wake-up of a
/// parked thread: the floor of a hand-off to a thread that went to sleep.
struct SleepyPartner {
    shared: Arc<Turn>,
    partner: thread::JoinHandle<()>,
}

impl SleepyPartner {
    fn new() -> Self {
        let p = ParkPair::new();
        SleepyPartner {
            shared: p.shared,
            partner: p.partner,
        }
    }

    /// Unparks the partner and spins until it answers.
    fn round_trip(&self) {
        let next = self.shared.turn.load(Ordering::Relaxed) + 1;
        self.shared.turn.store(next, Ordering::Release);
        self.partner.thread().unpark();
        while self.shared.turn.load(Ordering::Acquire) != next + 1 {
            std::hint::spin_loop();
        }
    }

    fn stop(self) {
        self.shared.stop.store(true, Ordering::Release);
        self.partner.thread().unpark();
        self.partner.join().unwrap();
    }
}

/// Median and 90th percentile of one cold measurement, in nanoseconds.
struct Cold {
    name: &'static str,
    idle_ms: u64,
    median_ns: f64,
    p90_ns: f64,
    samples: usize,
}

/// The first call after `idle` of idleness, `samples` times, for each way
/// in; the ways take turns, so a drift of the machine hits them alike.
fn cold_handoff() -> Vec<Cold> {
    let lp = bridge::Loop::new().unwrap();
    let h = lp.handle();
    let sleepy = SleepyPartner::new();
    let parked = ParkPair::new();
    bridge::call_blocking(async {});
    bridge::block_on_safe(async {}).unwrap();
    h.block_on(async {}).unwrap();
    type Op<'a> = (&'static str, Box<dyn Fn() + 'a>);
    let ops: Vec<Op> = vec![
        (
            "cold/ours/call_blocking",
            Box::new(|| {
                black_box(bridge::call_blocking(async { black_box(1u64) }));
            }),
        ),
        (
            "cold/ours/loop_handle_block_on",
            Box::new(|| {
                black_box(h.block_on(async { black_box(1u64) }).unwrap());
            }),
        ),
        (
            "cold/ours/block_on_safe_inline",
            Box::new(|| {
                black_box(bridge::block_on_safe(async { black_box(1u64) }).unwrap());
            }),
        ),
        (
            "cold/floor/unpark_parked_thread_spin_reply",
            Box::new(|| sleepy.round_trip()),
        ),
        ("cold/floor/park_unpark", Box::new(|| parked.round_trip())),
    ];
    let mut out = Vec::new();
    for (idle_ms, samples) in [(0u64, 200usize), (1, 60), (10, 60), (100, 25)] {
        let mut times: Vec<Vec<f64>> = vec![Vec::new(); ops.len()];
        for _ in 0..samples {
            for (i, (_, op)) in ops.iter().enumerate() {
                if idle_ms == 0 {
                    op(); // warm: right after another call
                } else {
                    thread::sleep(Duration::from_millis(idle_ms));
                }
                let t = Instant::now();
                op();
                times[i].push(t.elapsed().as_nanos() as f64);
            }
        }
        for (i, (name, _)) in ops.iter().enumerate() {
            let t = &mut times[i];
            t.sort_by(|a, b| a.partial_cmp(b).unwrap());
            let at = |q: f64| t[((t.len() - 1) as f64 * q).round() as usize];
            out.push(Cold {
                name,
                idle_ms,
                median_ns: at(0.5),
                p90_ns: at(0.9),
                samples,
            });
        }
    }
    drop(ops);
    sleepy.stop();
    Partner::Park(parked).stop();
    out
}

/// CPU time (user + system) of every thread of this process, from
/// `/proc/self/task/*/schedstat` (nanoseconds on CPU), summed.
fn process_cpu() -> Duration {
    let mut ns = 0u64;
    if let Ok(tasks) = std::fs::read_dir("/proc/self/task") {
        for t in tasks.flatten() {
            let Ok(s) = std::fs::read_to_string(t.path().join("schedstat")) else {
                continue;
            };
            ns += s
                .split_whitespace()
                .next()
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
        }
    }
    Duration::from_nanos(ns)
}

/// CPU time of the process over `d` of sleep of this thread.
fn cpu_over(d: Duration) -> Duration {
    let t0 = process_cpu();
    thread::sleep(d);
    process_cpu().saturating_sub(t0)
}

/// Whether any thread of this process but the calling one is running or
/// runnable (state `R` in `/proc/self/task/*/stat`).
fn others_running() -> bool {
    let me = std::fs::read_link("/proc/thread-self")
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_os_string()));
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return false;
    };
    tasks.flatten().any(|t| {
        if Some(t.file_name()) == me {
            return false;
        }
        std::fs::read_to_string(t.path().join("stat"))
            .ok()
            .and_then(|s| s.rsplit_once(") ").map(|(_, rest)| rest.starts_with('R')))
            .unwrap_or(false)
    })
}

/// Idle cost after a burst of `call_blocking` hand-offs:
///
/// * how long after the last call some other thread of the process is still
///   running (the bounded spin of the worker winding down), sampled by
///   sweeping every thread's state; the resolution is one sweep;
/// * the process CPU time over `window` of idleness, starting once that
///   spin is over (20 ms after the burst: CPU accounting of a thread that was
///   running lags by up to one scheduler tick, 4 ms here, so a window that
///   starts sooner would be charged with the burst itself);
/// * for reference, the CPU the measurement itself costs over `window` in a
///   process that was already idle (the reads of `/proc`, this thread's
///   sleep).
fn idle_cost_after_burst(window: Duration) -> IdleCost {
    bridge::call_blocking(async {});
    thread::sleep(Duration::from_millis(50));
    let baseline = cpu_over(window);
    let sweep = {
        let t = Instant::now();
        black_box(others_running());
        t.elapsed()
    };
    for _ in 0..20_000 {
        black_box(bridge::call_blocking(async { black_box(1u64) }));
    }
    let end = Instant::now();
    let mut quiet_after = None;
    while end.elapsed() < Duration::from_millis(20) {
        if !others_running() {
            quiet_after = Some(end.elapsed());
            break;
        }
    }
    thread::sleep(Duration::from_millis(20).saturating_sub(end.elapsed()));
    let idle = cpu_over(window);
    IdleCost {
        quiet_after,
        sweep,
        idle,
        baseline,
        window,
    }
}

struct IdleCost {
    /// When no other thread was running any more (`None`: not within 20 ms).
    quiet_after: Option<Duration>,
    /// How long one sweep of the thread states takes (the resolution).
    sweep: Duration,
    idle: Duration,
    baseline: Duration,
    window: Duration,
}

struct Extra {
    load_before: String,
    load_after: String,
    cpu_model: String,
    idle: IdleCost,
    cold: Vec<Cold>,
    allocs: Vec<(&'static str, f64)>,
    cores: usize,
}

fn measure_allocs() -> Vec<(&'static str, f64)> {
    let n = 2000;
    let mut out = Vec::new();
    bridge::call_blocking(async {});
    out.push((
        "handoff/ours/call_blocking",
        allocs_per_op(n, || {
            black_box(bridge::call_blocking(async { black_box(1u64) }));
        }),
    ));
    let table = Table::new();
    out.push((
        "handoff/ours/call_blocking_borrowing",
        allocs_per_op(n, || {
            black_box(bridge::call_blocking(table.get(black_box("k7"))));
        }),
    ));
    let current = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let v = current.block_on(async {
        allocs_per_op(n, || {
            black_box(bridge::block_on_safe(async { black_box(1u64) }).unwrap());
        })
    });
    out.push(("handoff/ours/block_on_safe_in_current_thread_rt", v));
    let multi = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let v = multi
        .block_on(multi.spawn(async move {
            allocs_per_op(n, || {
                black_box(bridge::block_on_safe(async { black_box(1u64) }).unwrap());
            })
        }))
        .unwrap();
    out.push(("handoff/ours/block_on_safe_in_multi_thread_task", v));
    drop(multi);
    let lp = bridge::Loop::new().unwrap();
    let h = lp.handle();
    out.push((
        "handoff/ours/loop_handle_block_on",
        allocs_per_op(n, || {
            black_box(h.block_on(async { black_box(1u64) }).unwrap());
        }),
    ));
    out.push((
        "loop_paths/ours/loop_spawn_wait",
        allocs_per_op(n, || {
            black_box(h.spawn(async { black_box(1u64) }).wait().unwrap());
        }),
    ));
    out.push((
        "loop_paths/ours/call_soon_threadsafe_and_wait",
        allocs_per_op(n, || {
            black_box(call_soon_and_wait(&h));
        }),
    ));
    out.push((
        "submit/ours/run_coroutine_threadsafe_wait",
        allocs_per_op(n, || {
            let f = bridge::run_coroutine_threadsafe(async { black_box(1u64) }, &h);
            black_box(f.wait().unwrap());
        }),
    ));
    let caller_rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // Awaiting needs a runtime around the loop: count per await inside it.
    let v = caller_rt.block_on(async {
        let mut per = 0.0;
        for round in 0..2 {
            // ORDERING: Relaxed: see `Counting::alloc`.
            ALLOCS.store(0, Ordering::Relaxed);
            COUNTING.store(round == 1, Ordering::Relaxed);
            for _ in 0..n {
                let f = bridge::run_coroutine_threadsafe(async { black_box(1u64) }, &h);
                black_box(f.await.unwrap());
            }
            COUNTING.store(false, Ordering::Relaxed);
            per = ALLOCS.load(Ordering::Relaxed) as f64 / n as f64;
        }
        per
    });
    out.push(("submit/ours/run_coroutine_threadsafe_await", v));
    drop(lp);
    let peer = RuntimeThread::new();
    out.push((
        "handoff/peer/tokio_spawn_oneshot",
        allocs_per_op(n, || {
            black_box(peer.call(async { black_box(1u64) }));
        }),
    ));
    let ph = peer.handle.clone();
    out.push((
        "submit/peer/tokio_spawn_join_wait",
        allocs_per_op(n, || {
            black_box(pollster::block_on(ph.spawn(async { black_box(1u64) })).unwrap());
        }),
    ));
    let v = caller_rt.block_on(async {
        let mut per = 0.0;
        for round in 0..2 {
            // ORDERING: Relaxed: see `Counting::alloc`.
            ALLOCS.store(0, Ordering::Relaxed);
            COUNTING.store(round == 1, Ordering::Relaxed);
            for _ in 0..n {
                black_box(ph.spawn(async { black_box(1u64) }).await.unwrap());
            }
            COUNTING.store(false, Ordering::Relaxed);
            per = ALLOCS.load(Ordering::Relaxed) as f64 / n as f64;
        }
        per
    });
    out.push(("submit/peer/tokio_spawn_join_await", v));
    drop(caller_rt);
    drop(peer);
    let rt = multi_thread_runtime();
    out.push((
        "handoff/peer/spawn_blocking_block_on",
        allocs_per_op(n, || {
            black_box(spawn_blocking_call(rt.handle()));
        }),
    ));
    drop(rt);
    out.push((
        "handoff/peer/thread_and_runtime_per_call",
        allocs_per_op(200, || {
            black_box(thread_and_runtime_call());
        }),
    ));

    bridge::block_on_safe(async {}).unwrap();
    out.push((
        "inline/ours/block_on_safe_ready",
        allocs_per_op(n, || {
            black_box(bridge::block_on_safe(async { black_box(1u64) }).unwrap());
        }),
    ));
    out.push((
        "inline/ours/block_on_safe_yield",
        allocs_per_op(n, || {
            black_box(bridge::block_on_safe(yield_once()).unwrap());
        }),
    ));
    out.push((
        "inline/ours/run_ready",
        allocs_per_op(200, || {
            black_box(bridge::run(async { black_box(1u64) }).unwrap());
        }),
    ));
    out.push((
        "inline/peer/pollster_ready",
        allocs_per_op(n, || {
            black_box(pollster::block_on(async { black_box(1u64) }));
        }),
    ));
    out.push((
        "inline/peer/pollster_yield",
        allocs_per_op(n, || {
            black_box(pollster::block_on(yield_once()));
        }),
    ));
    out.push((
        "inline/peer/futures_executor_yield",
        allocs_per_op(n, || {
            black_box(futures::executor::block_on(yield_once()));
        }),
    ));
    out.push((
        "inline/peer/futures_executor_ready",
        allocs_per_op(n, || {
            black_box(futures::executor::block_on(async { black_box(1u64) }));
        }),
    ));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    out.push((
        "inline/peer/tokio_reused_rt_ready",
        allocs_per_op(n, || {
            black_box(rt.block_on(async { black_box(1u64) }));
        }),
    ));
    out.push((
        "inline/peer/tokio_reused_rt_yield",
        allocs_per_op(n, || {
            black_box(rt.block_on(yield_once()));
        }),
    ));
    drop(rt);
    out.push((
        "inline/peer/tokio_new_rt_per_call",
        allocs_per_op(200, || {
            black_box(
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap()
                    .block_on(async { black_box(1u64) }),
            );
        }),
    ));
    out
}

/// The 1, 5 and 15 minute load averages: how busy the machine was.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().replace('"', "'"))
        })
        .unwrap_or_default()
}

fn extra_report(load_before: String) -> Extra {
    let idle = idle_cost_after_burst(Duration::from_secs(1));
    let cold = cold_handoff();
    let allocs = measure_allocs();
    Extra {
        load_before,
        load_after: load_average(),
        cpu_model: cpu_model(),
        idle,
        cold,
        allocs,
        cores: thread::available_parallelism().map_or(0, |n| n.get()),
    }
}

fn write_extra(e: &Extra) {
    println!(
        "\n{} cores ({}); load average before the run: {}, after: {}",
        e.cores, e.cpu_model, e.load_before, e.load_after
    );
    let i = &e.idle;
    let quiet = i.quiet_after.map_or("more than 20 ms".to_owned(), |d| {
        format!("{:.0} us", d.as_secs_f64() * 1e6)
    });
    println!("after a burst of 20000 call_blocking hand-offs:");
    println!(
        "  every other thread stopped running {quiet} after the last call (one sweep of the thread states: {:.0} us)",
        i.sweep.as_secs_f64() * 1e6
    );
    println!(
        "  process CPU over the next {} ms of idleness: {:.1} us (the measurement alone, in an idle process: {:.1} us)",
        i.window.as_millis(),
        i.idle.as_secs_f64() * 1e6,
        i.baseline.as_secs_f64() * 1e6
    );
    println!("the first call after a pause (median, p90):");
    for c in &e.cold {
        println!(
            "  idle {:>3} ms  {:<46} {:>9.1} us {:>9.1} us  ({} samples)",
            c.idle_ms,
            c.name,
            c.median_ns / 1e3,
            c.p90_ns / 1e3,
            c.samples
        );
    }
    println!("heap allocations per operation (all threads, warm):");
    for (name, a) in &e.allocs {
        println!("  {name:<52} {a:>6.2}");
    }
    let allocs: Vec<String> = e
        .allocs
        .iter()
        .map(|(k, v)| format!("    \"{k}\": {v}"))
        .collect();
    let cold: Vec<String> = e
        .cold
        .iter()
        .map(|c| {
            format!(
                "    {{\"name\": \"{}\", \"idle_ms\": {}, \"median_ns\": {}, \"p90_ns\": {}, \"samples\": {}}}",
                c.name, c.idle_ms, c.median_ns, c.p90_ns, c.samples
            )
        })
        .collect();
    let json = format!(
        "{{\n  \"cores\": {},\n  \"cpu_model\": \"{}\",\n  \"load_before\": \"{}\",\n  \"load_after\": \"{}\",\n  \"idle_quiet_after_ns\": {},\n  \"idle_sweep_ns\": {},\n  \"idle_window_ms\": {},\n  \"idle_cpu_ns\": {},\n  \"idle_baseline_cpu_ns\": {},\n  \"cold\": [\n{}\n  ],\n  \"allocs_per_op\": {{\n{}\n  }}\n}}\n",
        e.cores,
        e.cpu_model,
        e.load_before,
        e.load_after,
        i.quiet_after.map_or("null".to_owned(), |d| d.as_nanos().to_string()),
        i.sweep.as_nanos(),
        i.window.as_millis(),
        i.idle.as_nanos(),
        i.baseline.as_nanos(),
        cold.join(",\n"),
        allocs.join(",\n")
    );
    results::write("bridge-extra.json", &json);
}

criterion_group! {
    name = benches;
    config = config();
    targets = floor, handoff, inline, submit, loop_paths, contention
}

fn main() {
    let load_before = load_average();
    benches();
    // `cargo test --benches` runs this binary in test mode: skip the extras.
    if std::env::args().any(|a| a == "--bench") {
        write_extra(&extra_report(load_before));
    }
    Criterion::default().configure_from_args().final_summary();
}
