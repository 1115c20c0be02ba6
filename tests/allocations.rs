//! Heap allocation budgets of the hot paths, checked with a counting global
//! allocator:
//!
//! * `call_blocking(ready)` from a plain thread to the warm worker loop: at
//!   most 1 allocation per call, counted on the calling thread and on the
//!   worker loop's thread together;
//! * `block_on_safe(ready)` (and a future that yields once) with no loop
//!   running: no allocation after the first call on a thread;
//! * from a plain thread to a warm bridge `Loop`: `LoopHandle::spawn(ready)`
//!   then `wait`, and `run_coroutine_threadsafe` then `wait`, at most 2
//!   allocations per call (the `ConcurrentFuture`'s shared state and the
//!   boxed job of the loop's inbox); `LoopHandle::block_on(ready)` at most 1
//!   (the future stays in the caller's frame; the state the caller waits
//!   on); `call_soon_threadsafe` at most 1 (the boxed callback); counted on
//!   the caller and on the loop's thread.
//!
//! Only threads that opted in are counted, so libtest's own threads and the
//! other tests of this binary cannot disturb a measurement.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::future::Future;
use std::hint::black_box;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;
use std::task::{Context, Poll};

struct Counting;

thread_local! {
    /// Whether allocations on this thread are counted.
    static COUNTED: Cell<bool> = const { Cell::new(false) };
}

/// Switched on only while a measurement runs.
static ACTIVE: AtomicBool = AtomicBool::new(false);
static ALLOCS: AtomicU64 = AtomicU64::new(0);
/// Bytes allocated and not yet freed, on every thread.
static LIVE: AtomicI64 = AtomicI64::new(0);
/// One measurement at a time (the counters are process-wide).
static SERIAL: Mutex<()> = Mutex::new(());

fn note() {
    // ORDERING: Relaxed: the measuring thread reads the tally only after the
    // counted work has synchronized with it (the call returned its result).
    if ACTIVE.load(Ordering::Relaxed) && COUNTED.try_with(Cell::get).unwrap_or(false) {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
    }
}

// SAFETY: every method forwards to `System` with the caller's arguments, so
// `System`'s guarantees are ours; the counters touch no allocator state, and
// the thread-local is const-initialized without a destructor (no allocation).
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note();
        // ORDERING: Relaxed: see `dealloc`.
        LIVE.fetch_add(layout.size() as i64, Ordering::Relaxed);
        // SAFETY: forwarded unchanged; the caller upholds `alloc`'s contract.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note();
        // ORDERING: Relaxed: see `dealloc`.
        LIVE.fetch_add(layout.size() as i64, Ordering::Relaxed);
        // SAFETY: forwarded unchanged; the caller upholds the contract.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // ORDERING: Relaxed: a tally, read after the work it measures has
        // synchronized with the reader.
        LIVE.fetch_sub(layout.size() as i64, Ordering::Relaxed);
        // SAFETY: forwarded unchanged; `ptr` came from `System`.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note();
        // ORDERING: Relaxed: see `dealloc`.
        LIVE.fetch_add(new_size as i64 - layout.size() as i64, Ordering::Relaxed);
        // SAFETY: forwarded unchanged; the caller upholds `realloc`'s contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations made by `n` calls of `op` on the counted threads.
fn count(n: u64, mut op: impl FnMut()) -> u64 {
    COUNTED.with(|c| c.set(true));
    ALLOCS.store(0, Ordering::SeqCst);
    ACTIVE.store(true, Ordering::SeqCst);
    for _ in 0..n {
        op();
    }
    ACTIVE.store(false, Ordering::SeqCst);
    COUNTED.with(|c| c.set(false));
    ALLOCS.load(Ordering::SeqCst)
}

/// A future that returns `Pending` once (waking itself) and then `Ready`.
struct YieldOnce(bool);

impl Future for YieldOnce {
    type Output = u32;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<u32> {
        if self.0 {
            Poll::Ready(7)
        } else {
            self.0 = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }
}

#[test]
fn call_blocking_ready_allocates_at_most_once_per_call() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    // Warm the worker loop, and count its thread too: the task's one
    // allocation is made by the caller, but any the worker made would count.
    bridge::call_blocking(async { COUNTED.with(|c| c.set(true)) });
    for i in 0..100u32 {
        assert_eq!(bridge::call_blocking(async move { i }), i);
    }
    let n = 1000;
    let mut sum = 0u64;
    let allocs = count(n, || {
        sum += u64::from(bridge::call_blocking(async { black_box(3u32) }));
    });
    bridge::call_blocking(async { COUNTED.with(|c| c.set(false)) });
    assert_eq!(sum, 3 * n);
    assert!(
        allocs <= n,
        "call_blocking(ready) made {allocs} allocations in {n} calls (budget: 1 per call)"
    );
}

#[test]
fn block_on_safe_ready_allocates_nothing_when_warm() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    // The first call on this thread builds its inline runtime.
    assert_eq!(bridge::block_on_safe(async { 1 }).unwrap(), 1);
    let n = 1000;
    let mut sum = 0u64;
    let allocs = count(n, || {
        sum += u64::from(bridge::block_on_safe(async { black_box(2u32) }).unwrap());
    });
    assert_eq!(sum, 2 * n);
    assert_eq!(allocs, 0, "block_on_safe(ready) allocated when warm");
}

#[test]
fn block_on_safe_yielding_allocates_nothing_when_warm() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    assert_eq!(bridge::block_on_safe(YieldOnce(false)).unwrap(), 7);
    let n = 1000;
    let mut sum = 0u64;
    let allocs = count(n, || {
        sum += u64::from(bridge::block_on_safe(YieldOnce(false)).unwrap());
    });
    assert_eq!(sum, 7 * n);
    assert_eq!(
        allocs, 0,
        "block_on_safe(yielding future) allocated when warm"
    );
}

/// A warm `Loop` whose thread is counted too.
fn counted_loop() -> bridge::Loop {
    let lp = bridge::Loop::new().unwrap();
    lp.handle()
        .block_on(async { COUNTED.with(|c| c.set(true)) })
        .unwrap();
    for i in 0..100u32 {
        assert_eq!(lp.handle().spawn(async move { i }).wait().unwrap(), i);
    }
    lp
}

/// Asserts at most `budget` allocations per call of `op` (which returns
/// its result, checked) to a warm `Loop`, counted on both threads.
fn assert_loop_budget(what: &str, budget: u64, op: impl Fn(&bridge::LoopHandle, u32) -> u32) {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let lp = counted_loop();
    let h = lp.handle();
    for i in 0..100 {
        assert_eq!(op(&h, i), i);
    }
    let n = 1000;
    let mut sum = 0u64;
    let allocs = count(n, || {
        sum += u64::from(op(&h, 3));
    });
    assert_eq!(sum, 3 * n);
    assert!(
        allocs <= budget * n,
        "{what} made {allocs} allocations in {n} calls (budget: {budget} per call)"
    );
}

#[test]
fn loop_spawn_ready_then_wait_allocates_at_most_twice_per_call() {
    assert_loop_budget("LoopHandle::spawn(ready).wait()", 2, |h, i| {
        h.spawn(async move { black_box(i) }).wait().unwrap()
    });
}

#[test]
fn run_coroutine_threadsafe_ready_then_wait_allocates_at_most_twice_per_call() {
    assert_loop_budget("run_coroutine_threadsafe(ready, h).wait()", 2, |h, i| {
        bridge::run_coroutine_threadsafe(async move { black_box(i) }, h)
            .wait()
            .unwrap()
    });
}

#[test]
fn loop_handle_block_on_ready_allocates_at_most_once_per_call() {
    // The future stays in the caller's frame; the one allocation is the
    // state the caller waits on.
    assert_loop_budget("LoopHandle::block_on(ready)", 1, |h, i| {
        h.block_on(async move { black_box(i) }).unwrap()
    });
}

#[test]
fn call_soon_threadsafe_allocates_at_most_once_per_call() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let lp = counted_loop();
    let h = lp.handle();
    let ran = std::sync::Arc::new(AtomicU64::new(0));
    let n = 1000;
    // Warm the queue's capacity with the same burst, then count one. Its
    // two buffers (one filled while the other is run) keep their capacity,
    // and each grows by doubling until it holds the largest burst: a few
    // allocations in all, which the budget allows for.
    let mut allocs = 0;
    let rounds = 3;
    for round in 0..rounds {
        let r = ran.clone();
        let burst = count(n, || {
            let r = r.clone();
            h.call_soon_threadsafe(move || {
                r.fetch_add(1, Ordering::Relaxed);
            })
            .unwrap();
        });
        // The clone of `r` above is an `Arc` clone: no allocation. Wait for
        // the burst to have run (uncounted).
        h.block_on(async {}).unwrap();
        if round == rounds - 1 {
            allocs = burst;
        }
    }
    assert_eq!(ran.load(Ordering::Relaxed), rounds * n);
    assert!(
        allocs <= n + 16,
        "call_soon_threadsafe made {allocs} allocations in {n} calls (budget: 1 per call)"
    );
}

#[test]
fn the_counter_sees_allocations() {
    // Guards the tests above against a counter that never counts.
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let allocs = count(10, || {
        black_box(Box::new(black_box(5u64)));
    });
    assert_eq!(allocs, 10);
}

#[test]
fn run_with_debug_off_costs_what_plain_run_costs() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    // Both build a fresh runtime per call; debug off must add nothing to it.
    assert_eq!(bridge::run(async { 1 }).unwrap(), 1);
    let n = 20;
    let plain = count(n, || {
        black_box(bridge::run(async { black_box(1u32) }).unwrap());
    });
    let builder = count(n, || {
        black_box(
            bridge::Loop::builder()
                .debug(false)
                .run(async { black_box(1u32) })
                .unwrap(),
        );
    });
    assert!(plain > 0, "the counter saw the runtime being built");
    // The builder's name is the one difference allowed: none is set here.
    assert_eq!(
        builder, plain,
        "Loop::builder().debug(false).run made {builder} allocations against run's {plain}"
    );
}

#[test]
fn a_finished_tasks_memory_is_released_while_its_future_is_kept() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    // Tasks whose futures hold 1 KiB across an await (under tokio's threshold
    // for boxing a future apart from its task): tokio allocates each task
    // sized for its future. Keep every ConcurrentFuture, unread.
    const TASKS: usize = 500;
    const SIZE: usize = 1024;
    let w = bridge::worker_loop();
    assert_eq!(w.block_on(async { 1 }).unwrap(), 1);
    let before = LIVE.load(Ordering::SeqCst);
    let futs: Vec<_> = (0..TASKS)
        .map(|i| {
            let buf = [i as u8; SIZE];
            w.spawn(async move {
                tokio::task::yield_now().await;
                black_box(&buf)[0]
            })
        })
        .collect();
    for f in &futs {
        assert!(f.wait_timeout(std::time::Duration::from_secs(30)));
    }
    // Finished tasks are freed a moment after completion: poll for it.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let held = LIVE.load(Ordering::SeqCst) - before;
        // The futures' own allocations stay (one small block each); the
        // tasks, each over SIZE bytes, must not.
        if held < (TASKS * SIZE / 2) as i64 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{held} bytes still held by {TASKS} finished tasks whose futures are kept"
        );
        std::thread::yield_now();
    }
    for (i, f) in futs.into_iter().enumerate() {
        assert_eq!(f.wait().unwrap(), i as u8);
    }
}
