//! A tour of bridge: every capability in order, one short line each, with
//! the measured cost of a hand-off at the end. Finishes in a few seconds.
//!
//! Run it: `cargo run --example tour` (add `--release` for real timings)

use std::any::Any;
use std::io::IsTerminal;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use bridge::{Error, Loop, RunningLoop};

fn main() -> Result<(), Error> {
    let started = Instant::now();
    install_panic_hook();
    println!("bridge tour: sync and async calling each other on any thread, in any nesting\n");

    step_run()?;
    step_nested_runtime()?;
    step_call_blocking();
    step_run_coroutine_threadsafe()?;
    step_run_in_executor()?;
    step_cancel()?;
    expecting_panics(step_panic_as_value)?;
    step_would_deadlock()?;
    step_registry()?;
    step_debug_mode()?;
    step_round_trip();

    println!("\ntour done in {:.2?}", started.elapsed());
    Ok(())
}

/// 1. `run`: Python's `asyncio.run`.
fn step_run() -> Result<(), Error> {
    let v = bridge::run(async {
        let t = tokio::spawn(async { 40 });
        tokio::time::sleep(Duration::from_millis(1)).await;
        let nested = bridge::run(async {}); // a loop inside a loop: an error, not a panic
        (t.await.expect("task") + 2, nested)
    })?;
    println!(
        " 1. run                 bridge::run(tokio::spawn + sleep) = {}",
        v.0
    );
    println!(
        "                        bridge::run inside it = Err({:?})",
        v.1.unwrap_err()
    );
    Ok(())
}

/// 2. The panic tokio gives for nesting, and `block_on_safe` in the same spot.
fn step_nested_runtime() -> Result<(), Error> {
    let app = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    app.block_on(async {
        // Sync code deep in a call stack that "just blocks on a future":
        let inner = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("build a runtime");
        let tokio_way = quietly(|| inner.block_on(async { 1 }));
        // (Dropping a runtime in async code panics too; this way does not.)
        inner.shutdown_background();
        println!(
            " 2. nested runtime      tokio Runtime::block_on inside a runtime: panicked: {:?}",
            tokio_way.unwrap_err()
        );
        let bridge_way = bridge::block_on_safe(async {
            tokio::time::sleep(Duration::from_millis(1)).await;
            1
        });
        println!("                        bridge::block_on_safe in the same spot = {bridge_way:?}");
    });
    Ok(())
}

/// 3. `call_blocking`: the entry point for sync code, nested to any depth.
fn step_call_blocking() {
    fn fetch() -> u32 {
        bridge::call_blocking(async {
            tokio::time::sleep(Duration::from_millis(1)).await;
            7
        })
    }
    let plain = fetch();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("build a runtime");
    let in_runtime = rt.block_on(async { fetch() });
    let nested = bridge::call_blocking(async {
        // Sync code inside async code inside sync code...: 4 hand-offs deep.
        bridge::call_blocking(async { bridge::call_blocking(async { fetch() }) })
    });
    println!(
        " 3. call_blocking       from main = {plain}; inside a tokio runtime = {in_runtime}; \
         fetch() inside 3 nested call_blocking = {nested}"
    );
}

/// 4. `run_coroutine_threadsafe`: work on a named loop, waited or awaited.
fn step_run_coroutine_threadsafe() -> Result<(), Error> {
    let lp = Loop::builder().name("tour-loop").build()?;
    let h = lp.handle();
    let fut = bridge::run_coroutine_threadsafe(async { thread_name() }, &h);
    println!(" 4. run_coroutine_threadsafe  wait() = {:?}", fut.wait()?);
    // Awaited from another executor (here: bridge::run's own loop).
    let awaited = bridge::run(async move {
        bridge::run_coroutine_threadsafe(
            async {
                tokio::time::sleep(Duration::from_millis(1)).await;
                6 * 7
            },
            &h,
        )
        .await
    })??;
    println!("                        .await from another loop = {awaited}");
    // The smaller tools: block_on from another thread, call_soon_threadsafe,
    // a done-callback, and a hand-made promise / future pair.
    let blocked = lp.handle().block_on(async { "block_on" })?;
    let (tx, rx) = mpsc::channel();
    let tx2 = tx.clone();
    lp.handle().call_soon_threadsafe(move || {
        let _ = tx.send(format!("call_soon_threadsafe ran on {:?}", thread_name()));
    })?;
    let soon = rx
        .recv_timeout(Duration::from_secs(5))
        .expect("callback ran");
    let cb_fut = lp.handle().spawn(async { 1 });
    cb_fut.add_done_callback(move || {
        let _ = tx2.send("add_done_callback ran".to_owned());
    });
    let cb = rx
        .recv_timeout(Duration::from_secs(5))
        .expect("callback ran");
    let (promise, fut) = bridge::promise();
    std::thread::spawn(move || promise.set_result("a promise set on a plain thread"));
    println!(
        "                        LoopHandle::block_on = {blocked:?}; {soon}; {cb}; {:?}",
        fut.wait()?
    );
    Ok(())
}

/// 5. `run_in_executor`: blocking closures on a thread pool.
fn step_run_in_executor() -> Result<(), Error> {
    let waited = bridge::run_in_executor(None, thread_name).wait()?;
    let awaited = bridge::run(async {
        // The loop keeps running while the closure blocks on its pool thread.
        let tick = tokio::spawn(async { "loop still ran" });
        let job = bridge::run_in_executor(None, || {
            std::thread::sleep(Duration::from_millis(5));
            "job done"
        });
        (job.await, tick.await.expect("task"))
    })?;
    let pool = bridge::Executor::single_thread("tour-io");
    let own = pool.run(thread_name).wait()?;
    pool.shutdown();
    println!(
        " 5. run_in_executor     wait() ran on {waited:?}; awaited: {:?} while the {}; \
         own single_thread pool ran on {own:?}",
        awaited.0?, awaited.1
    );
    // A bounded pool of 4, and a limiter letting one caller use at most 2 of it.
    let pool = bridge::Executor::new(4);
    let limiter = bridge::CapacityLimiter::new(2);
    let running = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let jobs: Vec<_> = (0..8)
        .map(|_| {
            let (running, peak) = (running.clone(), peak.clone());
            limiter.run(Some(&pool), move || {
                peak.fetch_max(running.fetch_add(1, Ordering::SeqCst) + 1, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(2));
                running.fetch_sub(1, Ordering::SeqCst);
            })
        })
        .collect();
    for job in jobs {
        job.wait()?;
    }
    pool.shutdown();
    println!(
        "                        8 jobs through CapacityLimiter::new(2) on Executor::new(4): \
         at most {} ran at once",
        peak.load(Ordering::SeqCst)
    );
    Ok(())
}

/// 6. `cancel`, and `wait_for` giving up.
fn step_cancel() -> Result<(), Error> {
    let lp = Loop::builder().name("tour-cancel").build()?;
    let (dropped_tx, dropped_rx) = mpsc::channel();
    let guard = OnDrop(Some(move || {
        let _ = dropped_tx.send(thread_name());
    }));
    let long = lp.handle().spawn(async move {
        let _guard = guard;
        tokio::time::sleep(Duration::from_secs(60)).await;
    });
    let accepted = long.cancel();
    let dropped_on = dropped_rx
        .recv_timeout(Duration::from_secs(5))
        .expect("destructor ran");
    println!(
        " 6. cancel              cancel() = {accepted}, cancelled() = {}, wait() = Err({:?}); \
         its destructor ran on {dropped_on:?}",
        long.cancelled(),
        long.wait().unwrap_err()
    );
    let slow = lp
        .handle()
        .spawn(async { tokio::time::sleep(Duration::from_secs(60)).await });
    println!(
        "                        wait_for(10ms) on a 60 s task = Err({:?}) (and the task is cancelled)",
        slow.wait_for(Duration::from_millis(10)).unwrap_err()
    );
    Ok(())
}

/// 7. A panic comes back as a value, with its message.
fn step_panic_as_value() -> Result<(), Error> {
    let lp = Loop::new()?;
    match lp.handle().spawn(async { panic!("boom in a task") }).wait() {
        Err(Error::Panicked(p)) => println!(
            " 7. panic as a value    spawn(panic!).wait() = Err(Panicked) with message {:?}",
            p.message()
        ),
        other => panic!("expected Err(Panicked), got {other:?}"),
    }
    match bridge::run_in_executor(None, || -> u32 { panic!("boom in a job") }).wait() {
        Err(Error::Panicked(p)) => println!(
            "                        run_in_executor(panic!).wait() = Err(Panicked) with message {:?}",
            p.message()
        ),
        other => panic!("expected Err(Panicked), got {other:?}"),
    }
    let resumed = quietly(|| bridge::call_blocking(async { panic!("boom in call_blocking") }));
    println!(
        "                        call_blocking resumes the panic in its caller: {:?}",
        resumed.unwrap_err()
    );
    // The loop survives its tasks' panics.
    println!(
        "                        the loop still works after: {:?}",
        lp.handle().spawn(async { "ok" }).wait()?
    );
    Ok(())
}

/// 8. The one hang bridge can see coming: a loop waiting for itself.
fn step_would_deadlock() -> Result<(), Error> {
    let lp = Loop::builder().name("tour-self").build()?;
    let h = lp.handle();
    let inner = h.clone();
    let outcome = h
        .spawn(async move {
            // Sync code on the loop's own thread, blocking on that same loop.
            inner.block_on(async { 1 })
        })
        .wait()?;
    println!(
        " 8. WouldDeadlock       a Loop blocking on itself = Err({:?}) instead of a hang",
        outcome.unwrap_err()
    );
    Ok(())
}

/// 9. The per-thread registry: what runs where.
fn step_registry() -> Result<(), Error> {
    let lp = Loop::builder().name("tour-registry").build()?;
    let on_loop = lp
        .handle()
        .spawn(async { describe(bridge::running_loop()) })
        .wait()?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("build a runtime");
    let in_tokio = rt.block_on(async { describe(bridge::running_loop()) });
    let in_futures = futures::executor::block_on(async { describe(bridge::running_loop()) });
    let foreign = {
        let _guard = bridge::enter_foreign("my-executor");
        (
            describe(bridge::running_loop()),
            bridge::run(async {}).is_err(),
        )
    };
    println!(
        " 9. registry            running_loop(): main = {}; on a Loop = {on_loop}; \
         in tokio = {in_tokio}; in futures::executor = {in_futures}",
        describe(bridge::running_loop())
    );
    println!(
        "                        enter_foreign = {}, where run() = Err(NestedLoop): {}; \
         get_running_loop() in main = Err({:?})",
        foreign.0,
        foreign.1,
        bridge::get_running_loop().unwrap_err()
    );
    let live: Vec<String> = bridge::loops()
        .iter()
        .map(|l| format!("{} ({} tasks)", l.name(), l.tasks()))
        .collect();
    println!("                        loops() = {live:?}");
    Ok(())
}

/// 10. Debug mode: a task that blocks its loop is reported with its spawn site.
fn step_debug_mode() -> Result<(), Error> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stdout)
        .with_target(false)
        .with_ansi(std::io::stdout().is_terminal())
        .without_time()
        .init();
    let lp = Loop::builder()
        .name("tour-debug")
        .debug(true)
        .slow_poll_threshold(Duration::from_millis(20))
        .build()?;
    println!("10. debug mode          a task calls std::thread::sleep(50ms) on a loop with a 20 ms threshold:");
    lp.handle()
        .spawn(async { std::thread::sleep(Duration::from_millis(50)) })
        .wait()?;
    println!(
        "                        and a panic nobody reads is reported when its future is dropped:"
    );
    expecting_panics(|| {
        let unread = lp.handle().spawn(async { panic!("nobody reads this") });
        while !unread.wait_timeout(Duration::from_secs(5)) {}
        drop(unread);
    });
    // The hang watchdog: a sync wait on a debug loop's work that lasts too long.
    let before = bridge::hang_threshold();
    bridge::set_hang_threshold(Duration::from_millis(30));
    println!("                        and a sync wait longer than set_hang_threshold(30ms):");
    lp.handle()
        .spawn(async { tokio::time::sleep(Duration::from_millis(100)).await })
        .wait()?;
    bridge::set_hang_threshold(before);
    Ok(())
}

/// 11. The cost of a hand-off: sync code to the worker loop and back.
fn step_round_trip() {
    const N: usize = 10_000;
    let mut samples = Vec::with_capacity(N);
    for _ in 0..N {
        let t0 = Instant::now();
        bridge::call_blocking(async {});
        samples.push(t0.elapsed());
    }
    samples.sort();
    let (median, p99) = (samples[N / 2], samples[N * 99 / 100]);
    let mut inline = Vec::with_capacity(N);
    for _ in 0..N {
        let t0 = Instant::now();
        bridge::block_on_safe(async {}).expect("no panic");
        inline.push(t0.elapsed());
    }
    inline.sort();
    println!(
        "11. round trip          call_blocking(async {{}}) to the worker loop and back: median {:.1} us, \
         p99 {:.1} us ({N} calls){}",
        micros(median),
        micros(p99),
        if cfg!(debug_assertions) { "; debug build, try --release" } else { "" }
    );
    println!(
        "                        block_on_safe(async {{}}) inline (no loop on this thread): median {:.2} us",
        micros(inline[N / 2])
    );
}

// ------------------------------------------------------------------ helpers

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn thread_name() -> String {
    std::thread::current()
        .name()
        .unwrap_or("<unnamed>")
        .to_owned()
}

fn describe(r: Option<RunningLoop>) -> String {
    match r {
        None => "None".to_owned(),
        Some(RunningLoop::Bridge(h)) => format!("Bridge({:?})", h.name()),
        Some(RunningLoop::Tokio(h)) => format!("Tokio({:?})", h.runtime_flavor()),
        Some(RunningLoop::Foreign(name)) => format!("Foreign({name:?})"),
        Some(_) => "other".to_owned(),
    }
}

/// While set, the panic hook stays silent: the tour panics on purpose, and
/// the default hook's report on stderr would only be noise.
static EXPECTING_PANICS: AtomicBool = AtomicBool::new(false);

fn install_panic_hook() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !EXPECTING_PANICS.load(Ordering::SeqCst) {
            default(info);
        }
    }));
}

/// Runs `f` with the panic hook silent (for steps that panic on purpose).
fn expecting_panics<R>(f: impl FnOnce() -> R) -> R {
    EXPECTING_PANICS.store(true, Ordering::SeqCst);
    let out = catch_unwind(AssertUnwindSafe(f));
    EXPECTING_PANICS.store(false, Ordering::SeqCst);
    out.unwrap_or_else(|p| std::panic::resume_unwind(p))
}

/// Runs `f`, turning a panic into its message.
fn quietly<R>(f: impl FnOnce() -> R) -> Result<R, String> {
    expecting_panics(|| catch_unwind(AssertUnwindSafe(f)).map_err(|p| panic_message(&*p)))
}

fn panic_message(p: &(dyn Any + Send)) -> String {
    p.downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_else(|| "<non-string panic>".to_owned())
}

/// Runs a closure when dropped: shows that a cancelled task's state is freed.
struct OnDrop<F: FnOnce()>(Option<F>);

impl<F: FnOnce()> Drop for OnDrop<F> {
    fn drop(&mut self) {
        if let Some(f) = self.0.take() {
            f();
        }
    }
}
