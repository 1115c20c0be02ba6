//! Debug mode off vs on for the same hand-off: `LoopHandle::spawn(ready)`
//! then `wait()`, on a `Loop` built with `debug(false)` and one built with
//! `debug(true)`, in one criterion group so the two figures read as a ratio.
//!
//! After the group the binary measures the two again, outside criterion,
//! in alternating batches (so load from other processes falls on both
//! alike) and prints the median time per hand-off of each and their ratio;
//! then it counts heap allocations per hand-off in each mode (a pass-through
//! allocator): debug mode must add none on this path.
//!
//! Run: `cargo bench --bench debug`.

use std::time::{Duration, Instant};

use criterion::Criterion;

#[path = "support/counting_alloc.rs"]
mod counting_alloc;

fn loop_with(debug: bool) -> bridge::Loop {
    bridge::Loop::builder()
        .name(if debug {
            "bench-debug-on"
        } else {
            "bench-debug-off"
        })
        .debug(debug)
        .build()
        .expect("start a loop")
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("debug");
    for (name, debug) in [("off", false), ("on", true)] {
        let lp = loop_with(debug);
        let h = lp.handle();
        g.bench_function(name, |b| b.iter(|| h.spawn(async {}).wait().unwrap()));
    }
    g.finish();
}

/// Heap allocations per hand-off, after a warm-up.
fn allocs_per_op(debug: bool) -> f64 {
    let lp = loop_with(debug);
    let h = lp.handle();
    counting_alloc::allocs_per_op(10_000, || h.spawn(async {}).wait().unwrap())
}

/// Median time per hand-off of each mode, measured in alternating batches.
fn interleaved() -> (Duration, Duration) {
    const BATCH: u32 = 500;
    const ROUNDS: usize = 41;
    let (off, on) = (loop_with(false), loop_with(true));
    let handles = [off.handle(), on.handle()];
    let mut times: [Vec<Duration>; 2] = [Vec::new(), Vec::new()];
    for round in 0..ROUNDS + 2 {
        for (h, t) in handles.iter().zip(times.iter_mut()) {
            let start = Instant::now();
            for _ in 0..BATCH {
                h.spawn(async {}).wait().unwrap();
            }
            if round >= 2 {
                t.push(start.elapsed() / BATCH); // the first two rounds warm up
            }
        }
    }
    let median = |v: &mut Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    let [mut a, mut b] = times;
    (median(&mut a), median(&mut b))
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    bench(&mut c);
    c.final_summary();
    let (t_off, t_on) = interleaved();
    println!(
        "interleaved median per hand-off: debug off {t_off:.2?}, debug on {t_on:.2?}, on/off = {:.3}",
        t_on.as_secs_f64() / t_off.as_secs_f64()
    );
    let (off, on) = (allocs_per_op(false), allocs_per_op(true));
    println!("allocations per hand-off: debug off {off:.2}, debug on {on:.2}");
}
