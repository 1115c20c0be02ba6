//! Bad input: odd names, huge numbers of loops, submissions after close,
//! panicking callbacks and wakers, extreme timeouts, double cancels and
//! guards dropped out of order. Each case has a documented outcome, and none
//! may panic the library, hang, or lose a result.
//!
//! Every test body runs on its own thread under a time bound, so a hang is a
//! failure, not a stuck test run.

mod common;

use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::task::{Context, Wake, Waker};
use std::thread;
use std::time::{Duration, Instant};

use bridge::{ConcurrentFuture, Error, Loop};

/// Turns a hang into a failure.
const LIMIT: Duration = Duration::from_secs(60);

/// Runs `f` on a fresh thread; fails if it panics or takes longer than [`LIMIT`].
fn bounded(what: &str, f: impl FnOnce() + Send + 'static) {
    common::bounded_for(what, LIMIT, f)
}

/// Counts drops of the [`Token`]s it hands out.
#[derive(Clone, Default)]
struct Drops(Arc<AtomicUsize>);

struct Token(Arc<AtomicUsize>);

impl Drops {
    fn token(&self) -> Token {
        Token(self.0.clone())
    }
    fn count(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

impl Drop for Token {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// Waits (yielding) until `cond` holds, for state another thread changes
/// without telling anyone (a task's destructor on its loop).
fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + LIMIT;
    while !cond() {
        assert!(Instant::now() < deadline, "never happened: {what}");
        thread::yield_now();
    }
}

/// How many of this process's threads have a name starting with `prefix`
/// (from `/proc/self/task/*/comm`, which holds the first 15 bytes of a
/// thread's name). Counting by name keeps the threads of tests running in
/// parallel out of the figure.
fn loop_threads(prefix: &str) -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .filter(|comm| comm.starts_with(prefix))
        .count()
}

/// A future that never completes and counts its own drop.
async fn forever(token: Token) {
    let _token = token;
    std::future::pending::<()>().await
}

// ---- names ----

/// Names reach the loop and its thread unchanged, except NUL, which no thread
/// name can hold and which becomes `?` (documented on `LoopBuilder::name`).
#[test]
fn loop_names_with_odd_characters() {
    bounded("names", || {
        let long = "x".repeat(10_000);
        let cases: Vec<(String, String)> = vec![
            ("a\0b".into(), "a?b".into()),
            ("\0".into(), "?".into()),
            (String::new(), String::new()),
            ("名前-ループ-🦀".into(), "名前-ループ-🦀".into()),
            ("tab\tnew\nline".into(), "tab\tnew\nline".into()),
            // Past the 15-byte OS limit, cut inside a multi-byte character.
            ("ééééééééééééééééé".into(), "ééééééééééééééééé".into()),
            (long.clone(), long),
        ];
        for (given, expected) in cases {
            let lp = Loop::builder().name(given.clone()).build().unwrap();
            let h = lp.handle();
            assert_eq!(h.name(), expected, "handle name for {given:?}");
            let on_thread = h
                .spawn(async { thread::current().name().map(str::to_owned) })
                .wait()
                .unwrap();
            assert_eq!(
                on_thread.as_deref(),
                Some(expected.as_str()),
                "thread name for {given:?}"
            );
            assert!(bridge::loops()
                .iter()
                .any(|l| l.id() == h.id() && l.name() == expected));
            drop(lp);
            assert!(h.is_closed());
        }
    });
}

// ---- huge numbers of loops ----

/// 200 loops alive at once each run work, are all listed, and are all gone
/// (listing and threads) once dropped.
#[test]
fn two_hundred_loops_alive_then_dropped() {
    bounded("200-loops", || {
        let _heavy = HEAVY.lock().unwrap_or_else(|e| e.into_inner());
        const N: usize = 200;
        let loops: Vec<Loop> = (0..N)
            .map(|i| Loop::builder().name(format!("many-{i}")).build().unwrap())
            .collect();
        // Every loop runs its own work, on its own thread.
        let futs: Vec<_> = loops
            .iter()
            .enumerate()
            .map(|(i, lp)| {
                lp.handle()
                    .spawn(async move { (i, thread::current().id()) })
            })
            .collect();
        let mut tids = std::collections::HashSet::new();
        for (i, f) in futs.into_iter().enumerate() {
            let (j, tid) = f.wait().unwrap();
            assert_eq!(i, j);
            tids.insert(tid);
        }
        assert_eq!(tids.len(), N, "one thread per loop");
        let listed = bridge::loops();
        for lp in &loops {
            assert!(listed.iter().any(|l| l.id() == lp.handle().id()));
        }
        assert_eq!(loop_threads("many-"), N);
        let handles: Vec<_> = loops.iter().map(Loop::handle).collect();
        drop(loops);
        let listed = bridge::loops();
        for h in &handles {
            assert!(h.is_closed());
            assert!(!listed.iter().any(|l| l.id() == h.id()));
            assert!(matches!(h.spawn(async {}).wait(), Err(Error::LoopClosed)));
        }
        // Dropping a loop joins its thread.
        assert_eq!(loop_threads("many-"), 0);
    });
}

/// A zero stack size is rounded up to the platform minimum: the loop still
/// works. A zero slow-poll threshold in debug mode reports every poll and
/// changes nothing else.
#[test]
fn zero_sizes_on_the_loop_builder() {
    bounded("zero-sizes", || {
        let lp = Loop::builder()
            .stack_size(0)
            .debug(true)
            .slow_poll_threshold(Duration::ZERO)
            .build()
            .unwrap();
        let v = lp
            .handle()
            .spawn(async {
                tokio::task::yield_now().await;
                7
            })
            .wait()
            .unwrap();
        assert_eq!(v, 7);
    });
}

// ---- submissions after close ----

/// After close every way of submitting says `LoopClosed`, at once, and the
/// submitted future is dropped exactly once, right away.
#[test]
fn submissions_after_close() {
    bounded("after-close", || {
        let lp = Loop::new().unwrap();
        let h = lp.handle();
        lp.close();
        assert!(h.is_closed());
        let drops = Drops::default();

        let t = drops.token();
        assert!(matches!(
            h.spawn(async move { drop(t) }).wait(),
            Err(Error::LoopClosed)
        ));
        let t = drops.token();
        let f = bridge::run_coroutine_threadsafe(async move { drop(t) }, &h);
        assert!(f.done(), "resolved at once");
        assert!(matches!(f.wait(), Err(Error::LoopClosed)));
        let t = drops.token();
        assert!(matches!(
            h.block_on(async move { drop(t) }),
            Err(Error::LoopClosed)
        ));
        let t = drops.token();
        assert!(matches!(
            h.call_soon_threadsafe(move || drop(t)),
            Err(Error::LoopClosed)
        ));
        // Awaiting works the same as waiting.
        let t = drops.token();
        let f = h.spawn(async move { drop(t) });
        assert!(matches!(
            futures::executor::block_on(f),
            Err(Error::LoopClosed)
        ));
        assert_eq!(
            drops.count(),
            5,
            "every rejected future dropped exactly once"
        );
        // A callback on a rejected future runs at once.
        let ran = Arc::new(AtomicUsize::new(0));
        let r = ran.clone();
        h.spawn(async {}).add_done_callback(move || {
            r.fetch_add(1, Ordering::SeqCst);
        });
        assert_eq!(ran.load(Ordering::SeqCst), 1);
    });
}

// ---- done-callbacks that panic ----

/// A panicking done-callback is caught on the completing thread: the future
/// still resolves to its value, later callbacks still run, and a callback
/// added after completion that panics does not unwind into the caller.
#[test]
fn panicking_done_callback_on_a_promise() {
    bounded("callback-promise", || {
        let (promise, fut) = bridge::promise::<u32>();
        let after = Arc::new(AtomicUsize::new(0));
        fut.add_done_callback(|| panic!("callback 1 panics"));
        let a = after.clone();
        fut.add_done_callback(move || {
            a.fetch_add(1, Ordering::SeqCst);
        });
        fut.add_done_callback(|| panic!("callback 3 panics"));
        let a = after.clone();
        fut.add_done_callback(move || {
            a.fetch_add(10, Ordering::SeqCst);
        });
        promise.set_result(5); // must not unwind here
        assert_eq!(after.load(Ordering::SeqCst), 11);
        // Added after completion: runs at once on this thread, caught too.
        fut.add_done_callback(|| panic!("late callback panics"));
        let a = after.clone();
        fut.add_done_callback(move || {
            a.fetch_add(100, Ordering::SeqCst);
        });
        assert_eq!(after.load(Ordering::SeqCst), 111);
        assert_eq!(fut.wait().unwrap(), 5);
    });
}

/// Same on a bridge loop and on the worker loop: the callback panics on the
/// loop's thread, and the loop keeps serving work.
#[test]
fn panicking_done_callback_does_not_poison_the_loop() {
    bounded("callback-loop", || {
        let lp = Loop::new().unwrap();
        for h in [lp.handle(), bridge::worker_loop()] {
            for round in 0..50u32 {
                let (gate_tx, gate_rx) = tokio::sync::oneshot::channel::<()>();
                let fut = h.spawn(async move {
                    gate_rx.await.unwrap();
                    round
                });
                let ran = Arc::new(AtomicUsize::new(0));
                fut.add_done_callback(move || panic!("callback panics in round {round}"));
                let r = ran.clone();
                fut.add_done_callback(move || {
                    r.fetch_add(1, Ordering::SeqCst);
                });
                gate_tx.send(()).unwrap(); // complete on the loop's thread
                assert_eq!(fut.wait().unwrap(), round);
                // Waiters are released before callbacks run (as in Python's
                // `concurrent.futures`): the callback follows on the loop.
                eventually("the later callback ran", || ran.load(Ordering::SeqCst) == 1);
                assert_eq!(h.spawn(async move { round + 1 }).wait().unwrap(), round + 1);
            }
        }
        // A callback on a cancelled future panics too: the future is still
        // `Cancelled`, the work's destructor still runs.
        let drops = Drops::default();
        let fut = lp.handle().spawn(forever(drops.token()));
        fut.add_done_callback(|| panic!("callback on cancel panics"));
        assert!(fut.cancel());
        assert!(matches!(fut.wait(), Err(Error::Cancelled)));
        eventually("the cancelled task is dropped", || drops.count() == 1);
        assert_eq!(lp.handle().block_on(async { 1 }).unwrap(), 1);
    });
}

// ---- wakers that panic ----

/// A waker whose `wake` panics.
struct PanickingWaker {
    wakes: AtomicUsize,
}

impl Wake for PanickingWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref()
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.wakes.fetch_add(1, Ordering::SeqCst);
        panic!("this waker panics on wake");
    }
}

/// A `ConcurrentFuture` polled with a waker that panics when woken: the loop
/// that completes it survives (the panic is caught and reported), a thread
/// blocked in `wait_timeout` on the same future and the done-callbacks still
/// complete, and the future still gives its value.
#[test]
fn panicking_waker_does_not_stop_other_waiters() {
    bounded("waker", || {
        let lp = Loop::new().unwrap();
        for h in [lp.handle(), bridge::worker_loop()] {
            for round in 0..20u32 {
                let (gate_tx, gate_rx) = tokio::sync::oneshot::channel::<()>();
                let mut fut = h.spawn(async move {
                    gate_rx.await.unwrap();
                    round * 3
                });
                let pw = Arc::new(PanickingWaker {
                    wakes: AtomicUsize::new(0),
                });
                let waker = Waker::from(pw.clone());
                let polled = std::pin::Pin::new(&mut fut).poll(&mut Context::from_waker(&waker));
                assert!(polled.is_pending());
                let called = Arc::new(AtomicUsize::new(0));
                let c = called.clone();
                fut.add_done_callback(move || {
                    c.fetch_add(1, Ordering::SeqCst);
                });
                let fut_ref: &ConcurrentFuture<u32> = &fut;
                thread::scope(|s| {
                    let (ready_tx, ready_rx) = mpsc::channel();
                    let waiter = s.spawn(move || {
                        ready_tx.send(()).unwrap();
                        fut_ref.wait_timeout(LIMIT)
                    });
                    ready_rx.recv().unwrap();
                    gate_tx.send(()).unwrap();
                    assert!(waiter.join().unwrap(), "the other waiter completed");
                });
                eventually("the callback ran", || called.load(Ordering::SeqCst) == 1);
                assert_eq!(
                    pw.wakes.load(Ordering::SeqCst),
                    1,
                    "the bad waker was called once"
                );
                assert_eq!(fut.wait().unwrap(), round * 3);
                // The loop survived.
                assert_eq!(h.spawn(async { 9 }).wait().unwrap(), 9);
            }
        }
    });
}

// ---- extreme timeouts ----

/// `wait_timeout(Duration::MAX)` does not overflow: it waits for the end.
/// `wait_for(Duration::ZERO)` on pending work is `Timeout` at once and cancels
/// the work (its destructor runs); on finished work it is the value.
#[test]
fn extreme_timeouts() {
    bounded("timeouts", || {
        let lp = Loop::new().unwrap();
        let h = lp.handle();

        let (tx, rx) = tokio::sync::oneshot::channel::<u8>();
        let fut = h.spawn(async move { rx.await.unwrap() });
        let sender = thread::spawn(move || tx.send(4).unwrap());
        assert!(fut.wait_timeout(Duration::MAX));
        sender.join().unwrap();
        assert_eq!(fut.wait_for(Duration::MAX).unwrap(), 4);

        let drops = Drops::default();
        let fut = h.spawn(forever(drops.token()));
        let start = Instant::now();
        assert!(!fut.wait_timeout(Duration::ZERO));
        assert!(matches!(fut.wait_for(Duration::ZERO), Err(Error::Timeout)));
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "zero waits return at once"
        );
        eventually("a timed-out task is dropped", || drops.count() == 1);

        let fut = h.spawn(async { 6 });
        assert!(fut.wait_timeout(Duration::MAX));
        assert_eq!(fut.wait_for(Duration::ZERO).unwrap(), 6);

        // On a promise, with nothing to cancel on a loop.
        let (promise, fut) = bridge::promise::<()>();
        assert!(matches!(fut.wait_for(Duration::ZERO), Err(Error::Timeout)));
        assert!(promise.is_cancelled());
    });
}

// ---- cancel twice ----

/// The first `cancel` wins, the second returns `false`; the outcome is
/// `Cancelled` and the work is dropped exactly once. Cancelling finished work
/// returns `false` and leaves its value.
#[test]
fn cancel_twice() {
    bounded("cancel-twice", || {
        let lp = Loop::new().unwrap();
        for h in [lp.handle(), bridge::worker_loop()] {
            let drops = Drops::default();
            let fut = h.spawn(forever(drops.token()));
            assert!(fut.cancel());
            assert!(!fut.cancel());
            assert!(fut.cancelled());
            assert!(fut.done());
            eventually("the cancelled task is dropped", || drops.count() == 1);
            assert!(!fut.cancel());
            assert!(matches!(fut.wait(), Err(Error::Cancelled)));
            assert_eq!(drops.count(), 1, "dropped exactly once");

            let fut = h.spawn(async { 2 });
            assert!(fut.wait_timeout(LIMIT));
            assert!(!fut.cancel());
            assert!(!fut.cancel());
            assert!(!fut.cancelled());
            assert_eq!(fut.wait().unwrap(), 2);
        }
        // Racing cancels from many threads: exactly one wins.
        for _ in 0..200 {
            let (_promise, fut) = bridge::promise::<()>();
            let wins = AtomicUsize::new(0);
            thread::scope(|s| {
                for _ in 0..4 {
                    s.spawn(|| {
                        if fut.cancel() {
                            wins.fetch_add(1, Ordering::SeqCst);
                        }
                    });
                }
            });
            assert_eq!(wins.load(Ordering::SeqCst), 1);
            assert!(matches!(fut.wait(), Err(Error::Cancelled)));
        }
    });
}

// ---- enter_foreign guards out of order ----

/// Each guard removes its own mark and no other (issue 11): dropped out of
/// order, the thread stays marked by exactly the guards still alive, and once
/// all are gone it is a plain thread again.
#[test]
fn enter_foreign_guards_dropped_out_of_order() {
    bounded("guards", || {
        let outer = bridge::enter_foreign("outer");
        let inner = bridge::enter_foreign("inner");
        assert!(matches!(
            bridge::running_loop(),
            Some(bridge::RunningLoop::Foreign("inner"))
        ));
        drop(outer); // `inner` is still alive
        assert!(matches!(
            bridge::running_loop(),
            Some(bridge::RunningLoop::Foreign("inner"))
        ));
        // Still inside an executor: the future runs on the worker.
        let on =
            bridge::block_on_safe(async { thread::current().name().map(str::to_owned) }).unwrap();
        assert_eq!(on.as_deref(), Some("bridge-worker"));
        assert!(matches!(bridge::run(async {}), Err(Error::NestedLoop)));
        drop(inner);
        assert!(bridge::running_loop().is_none());
        // A plain thread again: inline, and `run` works.
        let me = thread::current().id();
        let on = bridge::block_on_safe(async { thread::current().id() }).unwrap();
        assert_eq!(on, me);
        assert_eq!(bridge::call_blocking(async { 3 }), 3);
        assert_eq!(bridge::run(async { 4 }).unwrap(), 4);
    });
}

/// A guard moved into a panicking scope restores the context while unwinding.
#[test]
fn enter_foreign_guard_dropped_by_a_panic() {
    bounded("guard-panic", || {
        let r = catch_unwind(|| {
            let _g = bridge::enter_foreign("panicking");
            panic!("unwinds through the guard");
        });
        assert!(r.is_err());
        assert!(bridge::running_loop().is_none());
        assert_eq!(bridge::block_on_safe(async { 1 }).unwrap(), 1);
    });
}

// ---- executors ----

/// A pool of zero threads is a pool of one (documented on `Executor::new`):
/// jobs run, one at a time. A bound above 32767 is taken as 32767.
#[test]
fn zero_sized_pools() {
    bounded("zero-pools", || {
        for pool in [
            bridge::Executor::new(0),
            bridge::Executor::builder().max_threads(0).build(),
        ] {
            assert_eq!(pool.max_threads(), 1);
            let running = Arc::new(AtomicUsize::new(0));
            let most = Arc::new(AtomicUsize::new(0));
            let futs: Vec<_> = (0..50u32)
                .map(|i| {
                    let (running, most) = (running.clone(), most.clone());
                    pool.run(move || {
                        let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                        most.fetch_max(now, Ordering::SeqCst);
                        thread::yield_now();
                        running.fetch_sub(1, Ordering::SeqCst);
                        i
                    })
                })
                .collect();
            for (i, f) in futs.into_iter().enumerate() {
                assert_eq!(f.wait_for(LIMIT).unwrap(), i as u32);
            }
            assert_eq!(most.load(Ordering::SeqCst), 1, "one job at a time");
            pool.shutdown();
        }
        let huge = bridge::Executor::new(usize::MAX);
        assert_eq!(huge.max_threads(), 32767);
        assert_eq!(huge.run(|| 3).wait().unwrap(), 3);
        assert_eq!(
            huge.threads(),
            1,
            "threads start on demand, not up to the bound"
        );
    });
}

/// Executor thread names: NUL bytes become `?` (a thread name cannot hold
/// them; the same rule as `LoopBuilder::name`), everything else is kept,
/// however long or unusual.
#[test]
fn executor_names_with_odd_characters() {
    bounded("exec-names", || {
        let long = "y".repeat(10_000);
        let cases: Vec<(String, String)> = vec![
            ("a\0b".into(), "a?b".into()),
            (String::new(), String::new()),
            ("名前-🦀".into(), "名前-🦀".into()),
            (long.clone(), long),
        ];
        let name = || thread::current().name().map(str::to_owned);
        for (given, expected) in &cases {
            let single = bridge::Executor::single_thread(given);
            assert_eq!(
                single.run(name).wait().unwrap().as_deref(),
                Some(expected.as_str())
            );
            single.shutdown();
            let pool = bridge::Executor::builder()
                .thread_name(given.clone())
                .build();
            assert_eq!(
                pool.run(name).wait().unwrap(),
                Some(format!("{expected}-1"))
            );
            pool.shutdown();
        }
    });
}

/// After `close` or `shutdown`, every submission resolves to `LoopClosed`
/// at once; the closure never runs and is dropped exactly once.
#[test]
fn executor_submissions_after_close() {
    bounded("exec-after-close", || {
        let drops = Drops::default();
        let ran = Arc::new(AtomicUsize::new(0));
        let job = |t: Token, ran: Arc<AtomicUsize>| {
            move || {
                let _t = t;
                ran.fetch_add(1, Ordering::SeqCst);
            }
        };
        let closed = bridge::Executor::new(2);
        assert!(closed.close());
        assert!(
            !closed.close(),
            "the second close reports it was already closed"
        );
        let shut = bridge::Executor::single_thread("shut");
        let handle = shut.clone();
        shut.shutdown();
        for pool in [&closed, &handle] {
            assert!(pool.is_closed());
            let f = pool.run(job(drops.token(), ran.clone()));
            assert!(f.done());
            assert!(matches!(f.wait(), Err(Error::LoopClosed)));
            let f = bridge::run_in_executor(Some(pool), job(drops.token(), ran.clone()));
            assert!(matches!(
                futures::executor::block_on(f),
                Err(Error::LoopClosed)
            ));
        }
        assert_eq!(drops.count(), 4);
        assert_eq!(ran.load(Ordering::SeqCst), 0);
    });
}

/// Threads that cannot be started (a stack far larger than the address
/// space allows): a `Loop` reports `Err(Io)` from `build`, and an executor
/// job resolves to `Err(Io)` instead of waiting forever for a thread.
#[test]
fn threads_that_cannot_start() {
    bounded("no-threads", || {
        const HUGE: usize = 1 << 46; // 64 TiB
        match Loop::builder().stack_size(HUGE).build() {
            Err(Error::Io(_)) => {}
            other => panic!("a loop whose thread cannot start: {other:?}"),
        }
        let drops = Drops::default();
        let pool = bridge::Executor::builder().stack_size(HUGE).build();
        let t = drops.token();
        match pool.run(move || drop(t)).wait_for(LIMIT) {
            Err(Error::Io(_)) => {}
            other => panic!("a job whose pool cannot start a thread: {other:?}"),
        }
        assert_eq!(drops.count(), 1, "the job was dropped");
        assert_eq!(pool.threads(), 0);
    });
}

/// A waker whose `clone` panics: the panic reaches the code that polled with
/// it (it is that executor's own bug), and the future is left intact: it is
/// not registered with a broken waker, and waiting on it still gives the
/// value once the work completes.
#[test]
fn waker_whose_clone_panics() {
    use std::task::{RawWaker, RawWakerVTable};
    fn clone(_: *const ()) -> RawWaker {
        panic!("this waker panics on clone")
    }
    fn noop(_: *const ()) {}
    static VTABLE: RawWakerVTable = RawWakerVTable::new(clone, noop, noop, noop);
    bounded("waker-clone", || {
        let lp = Loop::new().unwrap();
        let (gate_tx, gate_rx) = tokio::sync::oneshot::channel::<()>();
        let mut fut = lp.handle().spawn(async move {
            gate_rx.await.unwrap();
            8
        });
        // SAFETY: every function of the vtable ignores the data pointer.
        let waker = unsafe { Waker::from_raw(RawWaker::new(std::ptr::null(), &VTABLE)) };
        let polled = catch_unwind(AssertUnwindSafe(|| {
            std::pin::Pin::new(&mut fut).poll(&mut Context::from_waker(&waker))
        }));
        assert!(polled.is_err(), "the poller sees its waker's panic");
        assert!(!fut.done());
        gate_tx.send(()).unwrap();
        assert_eq!(fut.wait_for(LIMIT).unwrap(), 8);
        assert_eq!(lp.handle().block_on(async { 1 }).unwrap(), 1);
    });
}

/// Taken by the tests that hold hundreds of loops or count process-wide
/// resources, so that neither skews the other's figures.
static HEAVY: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// How many file descriptors this process has open.
fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// A closed loop gives back everything it held: 600 loops made and dropped
/// one after another leave the open file descriptors where they were (each
/// tokio runtime holds an epoll and an event fd, so a loop whose runtime is
/// never freed costs two; 600 of them would also run into the usual limit of
/// 1024 and make `Loop::new` fail). Other tests running in parallel hold a
/// few loops at a time, hence the slack.
#[test]
fn closed_loops_release_their_file_descriptors() {
    bounded("fds", || {
        let _heavy = HEAVY.lock().unwrap_or_else(|e| e.into_inner());
        let before = open_fds();
        for i in 0..600u32 {
            let lp = Loop::new().unwrap_or_else(|e| panic!("loop {i}: {e}"));
            assert_eq!(lp.handle().spawn(async move { i }).wait().unwrap(), i);
        }
        let after = open_fds();
        assert!(
            after < before + 100,
            "open fds: {before} before 600 loops, {after} after"
        );
    });
}
