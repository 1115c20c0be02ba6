//! Executors: `Executor::new`, `single_thread`, `run`, `shutdown`,
//! `run_in_executor` and `CapacityLimiter` (API.md, "Executors").

#[macro_use]
mod common;
mod debug_support;

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Barrier};
use std::time::{Duration, Instant};

use bridge::{run_in_executor, CapacityLimiter, ConcurrentFuture, Error, Executor};
use common::{bounded, eventually, DropCounter};

const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    const fn unpin<T: Unpin>() {}
    send_sync::<Executor>();
    send_sync::<bridge::ExecutorBuilder>();
    send_sync::<CapacityLimiter>();
    unpin::<Executor>();
    unpin::<CapacityLimiter>();
};

/// Tracks how many jobs run at once and the most ever seen.
#[derive(Clone, Default)]
struct Concurrency {
    now: Arc<AtomicUsize>,
    peak: Arc<AtomicUsize>,
}

impl Concurrency {
    fn enter(&self) {
        let n = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(n, Ordering::SeqCst);
    }
    fn exit(&self) {
        self.now.fetch_sub(1, Ordering::SeqCst);
    }
    fn peak(&self) -> usize {
        self.peak.load(Ordering::SeqCst)
    }
}

fn wait_all<T>(futs: Vec<ConcurrentFuture<T>>) -> Vec<T> {
    futs.into_iter().map(|f| f.wait().unwrap()).collect()
}

/// Runs `n` jobs that wait for each other at a barrier, so they can only
/// finish if `pool` runs them all at once: it must grow to `n` threads.
fn grow_to(pool: &Executor, n: usize) {
    let barrier = Arc::new(Barrier::new(n));
    let futs: Vec<_> = (0..n)
        .map(|_| {
            let b = barrier.clone();
            pool.run(move || {
                b.wait();
            })
        })
        .collect();
    wait_all(futs);
}

#[test]
fn bound_is_never_exceeded_under_a_burst_of_ten_times_the_bound() {
    bounded("burst", || {
        const BOUND: usize = 4;
        let pool = Executor::new(BOUND);
        let c = Concurrency::default();
        let seen_threads = Arc::new(AtomicUsize::new(0));
        // The first BOUND jobs meet at a barrier: the pool must grow to its
        // bound to get past it.
        let barrier = Arc::new(Barrier::new(BOUND));
        let futs: Vec<_> = (0..BOUND * 10)
            .map(|i| {
                let (c, pool2, seen) = (c.clone(), pool.clone(), seen_threads.clone());
                let barrier = barrier.clone();
                pool.run(move || {
                    c.enter();
                    seen.fetch_max(pool2.threads(), Ordering::SeqCst);
                    if i < BOUND {
                        barrier.wait();
                    }
                    // Long enough that the whole burst is queued while the
                    // first jobs still run.
                    std::thread::sleep(Duration::from_millis(2));
                    c.exit();
                    i
                })
            })
            .collect();
        assert_eq!(wait_all(futs), (0..BOUND * 10).collect::<Vec<_>>());
        assert!(
            c.peak() <= BOUND,
            "{} jobs ran at once, bound {BOUND}",
            c.peak()
        );
        assert_eq!(c.peak(), BOUND);
        assert!(seen_threads.load(Ordering::SeqCst) <= BOUND);
        assert!(pool.threads() <= BOUND);
        pool.shutdown();
    });
}

#[test]
fn burst_from_many_submitters_respects_the_bound() {
    bounded("burst-many", || {
        const BOUND: usize = 3;
        let pool = Executor::new(BOUND);
        let c = Concurrency::default();
        let submitters: Vec<_> = (0..4)
            .map(|_| {
                let (pool, c) = (pool.clone(), c.clone());
                std::thread::spawn(move || {
                    let futs: Vec<_> = (0..30)
                        .map(|_| {
                            let c = c.clone();
                            pool.run(move || {
                                c.enter();
                                std::thread::yield_now();
                                c.exit();
                            })
                        })
                        .collect();
                    wait_all(futs);
                })
            })
            .collect();
        for s in submitters {
            s.join().unwrap();
        }
        assert!(
            c.peak() <= BOUND,
            "{} jobs ran at once, bound {BOUND}",
            c.peak()
        );
        assert!(pool.threads() <= BOUND);
        pool.shutdown();
    });
}

#[test]
fn queued_jobs_beyond_the_bound_run_in_submission_order() {
    bounded("order", || {
        let pool = Executor::new(1);
        let order = Arc::new(std::sync::Mutex::new(Vec::new()));
        let futs: Vec<_> = (0..50)
            .map(|i| {
                let order = order.clone();
                pool.run(move || order.lock().unwrap().push(i))
            })
            .collect();
        wait_all(futs);
        assert_eq!(*order.lock().unwrap(), (0..50).collect::<Vec<_>>());
    });
}

#[test]
fn the_pool_starts_empty_and_grows_on_demand_up_to_its_bound() {
    bounded("growth", || {
        let pool = Executor::new(8);
        assert_eq!(pool.threads(), 0, "threads start on demand");
        for i in 0..200 {
            assert_eq!(pool.run(move || i).wait().unwrap(), i);
        }
        assert!((1..=8).contains(&pool.threads()));
        // Eight jobs that must all run at once: the pool grows to its bound.
        grow_to(&pool, 8);
        assert!(pool.threads() <= 8);
        pool.shutdown();
        assert_eq!(pool_threads_after_shutdown(), 0);
    });

    fn pool_threads_after_shutdown() -> usize {
        let pool = Executor::new(3);
        grow_to(&pool, 3);
        let handle = pool.clone();
        pool.shutdown();
        handle.threads()
    }
}

#[test]
fn parked_threads_and_simultaneous_submitters_never_lose_a_wakeup() {
    // N threads park; N submitters, released at once by a barrier, each run
    // one job, and each job waits until all N run. A lost wake-up leaves one
    // job queued while a thread sleeps: the others wait for it forever (the
    // idle timeout is far past the bound), and the bound turns that into a
    // failure.
    const N: usize = 6;
    const ROUNDS: usize = 1000;
    common::bounded_for("lost-wakeup", Duration::from_secs(60), || {
        let pool = Executor::builder()
            .max_threads(N)
            .idle_timeout(Duration::from_secs(3600))
            .build();
        grow_to(&pool, N);
        let start = Arc::new(Barrier::new(N + 1));
        let all_running = Arc::new(Barrier::new(N));
        let submitters: Vec<_> = (0..N)
            .map(|s| {
                let (pool, start, all_running) = (pool.clone(), start.clone(), all_running.clone());
                std::thread::spawn(move || {
                    for round in 0..ROUNDS {
                        start.wait();
                        let all_running = all_running.clone();
                        let v = pool.run(move || {
                            all_running.wait();
                            round * N + s
                        });
                        assert_eq!(v.wait().unwrap(), round * N + s);
                    }
                })
            })
            .collect();
        for _ in 0..ROUNDS {
            // Past the idle threads' spin, so that they park and every job
            // goes through the wake-up path (not a synchronization: the test
            // asserts only that every job finishes).
            std::thread::sleep(Duration::from_millis(1));
            start.wait();
        }
        for s in submitters {
            s.join().unwrap();
        }
        pool.shutdown();
    });
}

#[test]
fn a_done_callback_that_submits_to_its_own_pool_and_waits_does_not_hang() {
    // One free slot: the pool's only thread completes the job and runs the
    // callback; the callback's job needs a second thread, which the pool has
    // room for, since a thread running callbacks is not idle.
    bounded("callback-free-slot", || {
        let pool = Executor::new(2);
        let (release, gate) = mpsc::channel::<()>();
        let first = pool.run(move || gate.recv().unwrap());
        let (tx, rx) = mpsc::channel();
        let p2 = pool.clone();
        first.add_done_callback(move || {
            let on = std::thread::current().name().map(str::to_owned);
            tx.send((on, p2.run(|| 7).wait().ok())).unwrap();
        });
        release.send(()).unwrap();
        let (on, got) = rx.recv().unwrap();
        assert!(
            on.unwrap().starts_with("bridge-executor"),
            "ran on the pool"
        );
        assert_eq!(got, Some(7));
        first.wait().unwrap();
        pool.shutdown();
    });
}

#[test]
fn a_done_callback_that_submits_to_its_full_pool_and_waits_does_not_hang() {
    // Full pool: both threads busy and one job queued. The thread completing
    // A runs its callback, which submits C and waits; the other thread, once
    // B is done, runs the queued job and then C. The completing thread must
    // not have claimed the queued job (or C) before running the callback.
    bounded("callback-full-pool", || {
        let pool = Executor::new(2);
        let (release_a, gate_a) = mpsc::channel::<()>();
        let (release_b, gate_b) = mpsc::channel::<()>();
        let a = pool.run(move || gate_a.recv().unwrap());
        let b = pool.run(move || gate_b.recv().unwrap());
        let queued = pool.run(|| "queued");
        eventually("both threads busy, one job queued", || pool.queued() == 1);
        let (submitted_tx, submitted) = mpsc::channel();
        let (tx, rx) = mpsc::channel();
        let p2 = pool.clone();
        a.add_done_callback(move || {
            let c = p2.run(|| "from the callback");
            submitted_tx.send(()).unwrap();
            tx.send(c.wait().ok()).unwrap();
        });
        release_a.send(()).unwrap();
        submitted.recv().unwrap();
        release_b.send(()).unwrap();
        assert_eq!(rx.recv().unwrap(), Some("from the callback"));
        assert_eq!(queued.wait().unwrap(), "queued");
        a.wait().unwrap();
        b.wait().unwrap();
        pool.shutdown();
    });
}

#[test]
fn single_thread_runs_in_order_on_one_named_thread() {
    bounded("single", || {
        let ex = Executor::single_thread("sqlite-conn");
        let futs: Vec<_> = (0..100)
            .map(|i| {
                ex.run(move || {
                    let t = std::thread::current();
                    (i, t.id(), t.name().map(str::to_owned))
                })
            })
            .collect();
        let results = wait_all(futs);
        let first = results[0].1;
        for (k, (i, tid, name)) in results.into_iter().enumerate() {
            assert_eq!(i, k, "jobs ran out of order");
            assert_eq!(tid, first, "a job ran on another thread");
            assert_eq!(name.as_deref(), Some("sqlite-conn"));
        }
        assert_eq!(ex.threads(), 1);
        ex.shutdown();
    });
}

#[test]
fn single_thread_keeps_its_thread_while_idle() {
    bounded("single-idle", || {
        let ex = Executor::single_thread("affine");
        let a = ex.run(|| std::thread::current().id()).wait().unwrap();
        // Long enough to park (past every spin budget); the thread must stay.
        std::thread::sleep(Duration::from_millis(50));
        let b = ex.run(|| std::thread::current().id()).wait().unwrap();
        assert_eq!(a, b);
    });
}

#[test]
fn waiting_on_a_single_thread_executors_own_job_from_its_thread_would_deadlock() {
    bounded("would-deadlock", || {
        let ex = Executor::single_thread("home");
        let inner = ex.clone();
        let outcome = ex
            .run(move || {
                let later = inner.run(|| 1);
                let waited = later.wait();
                // The refusal left the job alone: it runs after this one.
                let not_done = matches!(waited, Err(Error::WouldDeadlock));
                let second = inner.run(|| 2);
                (not_done, second.wait_timeout(Duration::from_millis(1)))
            })
            .wait()
            .unwrap();
        assert_eq!(outcome, (true, false));
        // Done jobs can be waited on from anywhere, that thread included.
        let inner = ex.clone();
        let ready = ex.run(|| 5).wait().unwrap();
        let from_home = ex
            .run(move || {
                let (tx, rx) = mpsc::channel();
                // Another executor's job is not this thread's to finish.
                let other = Executor::new(1).run(move || tx.send(7).unwrap());
                (
                    other.wait().is_ok(),
                    rx.recv().unwrap(),
                    inner.max_threads(),
                )
            })
            .wait()
            .unwrap();
        assert_eq!(ready, 5);
        assert_eq!(from_home, (true, 7, 1));
        ex.shutdown();
    });
}

#[test]
fn pool_jobs_do_not_report_would_deadlock() {
    bounded("pool-wait", || {
        let pool = Executor::new(2);
        let p2 = pool.clone();
        let v = pool
            .run(move || p2.run(|| 3).wait().unwrap())
            .wait()
            .unwrap();
        assert_eq!(v, 3);
    });
}

#[test]
fn a_panicking_job_gives_panicked_with_its_message_and_the_pool_keeps_working() {
    bounded("panic", || {
        // The thread keeps its place: the next job runs on it.
        let one = Executor::builder()
            .max_threads(1)
            .idle_timeout(Duration::MAX)
            .build();
        let before = one.run(|| std::thread::current().id()).wait().unwrap();
        assert!(matches!(
            one.run(|| panic!("once")).wait(),
            Err(Error::Panicked(_))
        ));
        let after = one.run(|| std::thread::current().id()).wait().unwrap();
        assert_eq!(before, after, "a panic cost the thread its place");
        one.shutdown();

        let pool = Executor::new(2);
        // Make the pool grow to its bound first.
        grow_to(&pool, 2);

        for i in 0..4 {
            let err = pool.run(move || -> u32 { panic!("job {i} failed") }).wait();
            match err {
                Err(Error::Panicked(p)) => {
                    assert_eq!(p.message(), format!("job {i} failed"));
                }
                other => panic!("expected Panicked, got {other:?}"),
            }
        }
        let e = pool
            .run(|| -> () { std::panic::panic_any(17u8) })
            .wait()
            .unwrap_err();
        let Error::Panicked(p) = e else {
            panic!("expected Panicked")
        };
        assert_eq!(*p.into_panic().downcast::<u8>().unwrap(), 17);

        // Still serving, and able to run two jobs at once.
        grow_to(&pool, 2);
        assert!(pool.threads() <= 2);
        pool.shutdown();
    });
}

#[test]
fn shutdown_runs_every_queued_job_then_joins() {
    bounded("shutdown", || {
        let pool = Executor::new(2);
        let ran = Arc::new(AtomicUsize::new(0));
        let (tx, rx) = mpsc::channel::<()>();
        let rx = Arc::new(std::sync::Mutex::new(rx));
        // Two blockers hold both threads, so the rest stays queued.
        let mut futs = Vec::new();
        for _ in 0..2 {
            let (rx, ran) = (rx.clone(), ran.clone());
            futs.push(pool.run(move || {
                rx.lock().unwrap().recv().unwrap();
                ran.fetch_add(1, Ordering::SeqCst);
            }));
        }
        for _ in 0..20 {
            let ran = ran.clone();
            futs.push(pool.run(move || {
                ran.fetch_add(1, Ordering::SeqCst);
            }));
        }
        eventually("the tail is queued", || pool.queued() >= 18);
        let handle = pool.clone();
        let releaser = std::thread::spawn(move || {
            // Release the blockers only once shutdown has closed the pool.
            eventually("closed", || handle.is_closed());
            tx.send(()).unwrap();
            tx.send(()).unwrap();
            handle
        });
        pool.shutdown();
        assert_eq!(ran.load(Ordering::SeqCst), 22);
        for f in futs {
            assert!(f.done());
            f.wait().unwrap();
        }
        let handle = releaser.join().unwrap();
        assert_eq!(handle.threads(), 0);
        assert!(matches!(handle.run(|| 1).wait(), Err(Error::LoopClosed)));
    });
}

#[test]
fn run_after_shutdown_or_close_is_loop_closed() {
    bounded("closed", || {
        let pool = Executor::new(2);
        let handle = pool.clone();
        pool.shutdown();
        assert!(handle.is_closed());
        assert!(matches!(handle.run(|| 1).wait(), Err(Error::LoopClosed)));
        assert!(matches!(
            run_in_executor(Some(&handle), || 1).wait(),
            Err(Error::LoopClosed)
        ));
        // The error tells what to do.
        let msg = handle.run(|| ()).wait().unwrap_err().to_string();
        assert!(msg.contains("closed"), "{msg}");

        let ex = Executor::single_thread("closing");
        assert!(ex.close());
        assert!(!ex.close());
        assert!(matches!(ex.run(|| 1).wait(), Err(Error::LoopClosed)));
    });
}

#[test]
fn dropping_without_shutdown_never_blocks_and_queued_jobs_still_finish() {
    bounded("drop", || {
        let pool = Executor::new(1);
        let (release, gate) = mpsc::channel::<()>();
        let (done_tx, done_rx) = mpsc::channel();
        let blocker = pool.run(move || gate.recv().unwrap());
        let queued: Vec<_> = (0..5)
            .map(|i| {
                let done_tx = done_tx.clone();
                pool.run(move || done_tx.send(i).unwrap())
            })
            .collect();
        // Would hang here if drop waited for the blocked job.
        drop(pool);
        release.send(()).unwrap();
        blocker.wait().unwrap();
        assert_eq!(wait_all(queued).len(), 5);
        let got: Vec<_> = done_rx.iter().take(5).collect();
        assert_eq!(got, vec![0, 1, 2, 3, 4]);
    });
}

#[test]
fn dropping_inside_an_async_context_does_not_block_it() {
    bounded("drop-async", || {
        let rt = common::current_rt();
        let (release, gate) = mpsc::channel::<()>();
        let mut job = None;
        rt.block_on(async {
            let pool = Executor::new(1);
            job = Some(pool.run(move || gate.recv().unwrap()));
            // The job is blocked: dropping the pool must not wait for it.
            drop(pool);
        });
        release.send(()).unwrap();
        job.unwrap().wait().unwrap();
    });
}

#[test]
fn idle_threads_retire_after_the_idle_timeout() {
    bounded("retire", || {
        let pool = Executor::builder()
            .max_threads(4)
            .idle_timeout(Duration::from_millis(30))
            .thread_name("retiring")
            .build();
        grow_to(&pool, 4);
        eventually("idle threads retire", || pool.threads() == 0);
        assert_eq!(pool.idle_threads(), 0);
        // And it grows again on demand.
        assert_eq!(pool.run(|| 9).wait().unwrap(), 9);
        assert!(pool.threads() <= 1, "one job needs one thread");
        grow_to(&pool, 4);
        pool.shutdown();
    });
}

#[test]
fn threads_are_named_by_the_builder_prefix() {
    bounded("names", || {
        let pool = Executor::builder()
            .thread_name("img-resize")
            .max_threads(2)
            .build();
        let name = pool.run(|| std::thread::current().name().map(str::to_owned));
        assert_eq!(name.wait().unwrap().as_deref(), Some("img-resize-1"));
        let default = Executor::new(1);
        let name = default.run(|| std::thread::current().name().map(str::to_owned));
        assert!(name.wait().unwrap().unwrap().starts_with("bridge-executor"));
    });
}

#[test]
fn awaiting_a_job_does_not_block_a_current_thread_runtime() {
    bounded("await", || {
        let rt = common::current_rt();
        let pool = Executor::new(2);
        let ticks = Arc::new(AtomicUsize::new(0));
        let (release, gate) = mpsc::channel::<()>();
        let ticks2 = ticks.clone();
        let v = rt.block_on(async move {
            let ticker = tokio::spawn(async move {
                loop {
                    ticks2.fetch_add(1, Ordering::SeqCst);
                    tokio::task::yield_now().await;
                }
            });
            let seen = Arc::new(AtomicUsize::new(0));
            let seen2 = seen.clone();
            let ticks3 = ticks.clone();
            // The job holds on until the loop has ticked 100 more times while
            // it was pending: only possible if awaiting it does not block.
            let job = pool.run(move || {
                let start = ticks3.load(Ordering::SeqCst);
                while ticks3.load(Ordering::SeqCst) < start + 100 {
                    std::thread::yield_now();
                }
                seen2.store(1, Ordering::SeqCst);
                gate.recv().unwrap();
                42
            });
            let releaser = tokio::spawn(async move {
                while seen.load(Ordering::SeqCst) == 0 {
                    tokio::task::yield_now().await;
                }
                release.send(()).unwrap();
            });
            let v = job.await.unwrap();
            releaser.await.unwrap();
            ticker.abort();
            v
        });
        assert_eq!(v, 42);
    });
}

#[test]
fn cancel_before_start_succeeds_and_the_job_never_runs() {
    bounded("cancel", || {
        let pool = Executor::new(1);
        let (release, gate) = mpsc::channel::<()>();
        let (started_tx, started) = mpsc::channel::<()>();
        let blocker = pool.run(move || {
            started_tx.send(()).unwrap();
            gate.recv().unwrap()
        });
        started.recv().unwrap();
        // The blocker has started: too late to cancel it.
        assert!(!blocker.cancel());
        let ran = Arc::new(AtomicBool::new(false));
        let drops = DropCounter::new();
        let (ran2, token) = (ran.clone(), drops.token());
        let queued = pool.run(move || {
            let _token = token;
            ran2.store(true, Ordering::SeqCst);
        });
        assert!(queued.cancel());
        assert!(queued.cancelled());
        release.send(()).unwrap();
        blocker.wait().unwrap();
        // A later job runs after the cancelled one would have.
        pool.run(|| ()).wait().unwrap();
        assert!(!ran.load(Ordering::SeqCst), "a cancelled job ran");
        assert_eq!(drops.count(), 1, "the cancelled closure was not dropped");
        assert!(matches!(queued.wait(), Err(Error::Cancelled)));
    });
}

#[test]
fn max_threads_zero_is_taken_as_one() {
    bounded("zero", || {
        let pool = Executor::new(0);
        assert_eq!(pool.max_threads(), 1);
        let c = Concurrency::default();
        let futs: Vec<_> = (0..10)
            .map(|i| {
                let c = c.clone();
                pool.run(move || {
                    c.enter();
                    std::thread::yield_now();
                    c.exit();
                    i
                })
            })
            .collect();
        assert_eq!(wait_all(futs), (0..10).collect::<Vec<_>>());
        assert_eq!(c.peak(), 1);
        assert_eq!(Executor::builder().max_threads(0).build().max_threads(), 1);
        assert_eq!(Executor::new(usize::MAX).max_threads(), 32767);
    });
}

#[test]
fn the_default_executor_is_bounded_as_python_and_named() {
    bounded("default", || {
        let cores = std::thread::available_parallelism().unwrap().get();
        let bound = (cores + 4).min(32);
        let c = Concurrency::default();
        let futs: Vec<_> = (0..bound * 3)
            .map(|_| {
                let c = c.clone();
                run_in_executor(None, move || {
                    c.enter();
                    std::thread::sleep(Duration::from_millis(1));
                    c.exit();
                    std::thread::current().name().map(str::to_owned)
                })
            })
            .collect();
        for name in wait_all(futs) {
            assert!(name.unwrap().starts_with("bridge-default-"));
        }
        assert!(c.peak() <= bound, "{} at once, bound {bound}", c.peak());
    });
}

#[test]
fn shutdown_inside_a_multi_thread_runtime_keeps_the_runtime_running() {
    bounded("shutdown-mt", || {
        let rt = common::multi_rt();
        rt.block_on(async {
            let pool = Executor::new(2);
            let (tx, rx) = tokio::sync::oneshot::channel::<()>();
            // A task on the runtime must run while shutdown blocks: the job
            // waits for it.
            let job = pool.run(move || {
                let (done_tx, done_rx) = mpsc::channel();
                std::thread::spawn(move || done_tx.send(()).unwrap());
                done_rx.recv().unwrap();
            });
            let task = tokio::spawn(async move { tx.send(()).unwrap() });
            tokio::spawn(async move {
                pool.shutdown();
                job.wait().unwrap();
                rx.await.unwrap();
            })
            .await
            .unwrap();
            task.await.unwrap();
        });
    });
}

#[test]
fn shutdown_from_one_of_its_own_jobs_closes_without_waiting() {
    bounded("shutdown-own", || {
        let pool = Executor::new(1);
        let handle = pool.clone();
        let r = pool.run(move || {
            handle.shutdown();
            "returned"
        });
        assert_eq!(r.wait().unwrap(), "returned");
        assert!(pool.is_closed());
        pool.shutdown(); // joins the thread once its job is done
    });
}

#[test]
fn capacity_limiter_caps_one_callers_jobs_in_flight() {
    bounded("limiter", || {
        let pool = Executor::new(8);
        let limiter = CapacityLimiter::new(2);
        let c = Concurrency::default();
        let futs: Vec<_> = (0..40)
            .map(|i| {
                let c = c.clone();
                limiter.run(Some(&pool), move || {
                    c.enter();
                    std::thread::sleep(Duration::from_millis(1));
                    c.exit();
                    i
                })
            })
            .collect();
        assert!(limiter.in_flight() <= 2);
        assert_eq!(wait_all(futs), (0..40).collect::<Vec<_>>());
        assert!(c.peak() <= 2, "{} at once under a limiter of 2", c.peak());
        // A slot is free again by the time its job's result is visible.
        assert_eq!(limiter.in_flight(), 0);
        assert_eq!(limiter.waiting(), 0);

        // It does allow its full capacity at once: two jobs that wait for
        // each other both finish.
        let barrier = Arc::new(Barrier::new(2));
        let pair: Vec<_> = (0..2)
            .map(|_| {
                let b = barrier.clone();
                limiter.run(Some(&pool), move || {
                    b.wait();
                })
            })
            .collect();
        wait_all(pair);

        // Other callers still get the rest of the pool while it is saturated.
        let (release, gate) = mpsc::channel::<()>();
        let gate = Arc::new(std::sync::Mutex::new(gate));
        let held: Vec<_> = (0..2)
            .map(|_| {
                let gate = gate.clone();
                limiter.run(Some(&pool), move || gate.lock().unwrap().recv().unwrap())
            })
            .collect();
        let waiting = limiter.run(Some(&pool), || "limited");
        assert_eq!(limiter.waiting(), 1);
        assert_eq!(pool.run(|| "free").wait().unwrap(), "free");
        release.send(()).unwrap();
        release.send(()).unwrap();
        wait_all(held);
        assert_eq!(waiting.wait().unwrap(), "limited");
    });
}

#[test]
fn capacity_limiter_survives_panics_cancels_and_closed_executors() {
    bounded("limiter-edge", || {
        let pool = Executor::new(2);
        let limiter = CapacityLimiter::new(1);
        let p = limiter.run(Some(&pool), || -> () { panic!("limited panic") });
        assert!(matches!(p.wait(), Err(Error::Panicked(_))));
        assert_eq!(limiter.in_flight(), 0, "the panicking job kept its slot");

        let (release, gate) = mpsc::channel::<()>();
        let blocker = limiter.run(Some(&pool), move || gate.recv().unwrap());
        let cancelled = limiter.run(Some(&pool), || unreachable!("cancelled job ran"));
        assert!(cancelled.cancel());
        let closed_pool = Executor::new(1);
        let on_closed = limiter.run(Some(&closed_pool), || 1);
        let after = limiter.run(Some(&pool), || "after");
        assert_eq!(limiter.waiting(), 3);
        closed_pool.close();
        release.send(()).unwrap();
        blocker.wait().unwrap();
        assert!(matches!(cancelled.wait(), Err(Error::Cancelled)));
        assert!(matches!(on_closed.wait(), Err(Error::LoopClosed)));
        assert_eq!(after.wait().unwrap(), "after");
        assert_eq!(limiter.in_flight(), 0);
    });
}

every_context!(run_in_executor_everywhere, |_ctx| {
    assert_eq!(run_in_executor(None, || 40 + 2).wait().unwrap(), 42);
    let pool = Executor::new(2);
    let futs: Vec<_> = (0..8).map(|i| pool.run(move || i * 2)).collect();
    assert_eq!(wait_all(futs).iter().sum::<i32>(), 56);
    pool.shutdown();
    let single = Executor::single_thread("ctx-single");
    assert_eq!(single.run(|| 1).wait().unwrap(), 1);
    single.shutdown();
});

// ---- panics while publishing, debug reports and fork: in a child process ----

/// Set in the child process that runs one of the tests below for real.
const CHILD: &str = "BRIDGE_EXECUTOR_TEST_CHILD";

/// Runs `test` in a child process with [`CHILD`] and `env` set.
fn in_child_process(test: &str, env: &[(&str, &str)]) {
    let mut all = vec![(CHILD, "1")];
    all.extend_from_slice(env);
    common::in_child_process(test, &all);
}

fn is_child() -> bool {
    std::env::var_os(CHILD).is_some()
}

/// A job result whose `Drop` panics.
struct PanicOnDrop;

impl Drop for PanicOnDrop {
    fn drop(&mut self) {
        panic!("a result's Drop panicked");
    }
}

/// A waker whose `wake` panics.
struct PanickingWaker;

impl std::task::Wake for PanickingWaker {
    fn wake(self: Arc<Self>) {
        panic!("a waker panicked");
    }
}

/// A one-thread pool that never retires its thread, and that thread's id.
fn one_thread_pool() -> (Executor, std::thread::ThreadId) {
    let pool = Executor::builder()
        .max_threads(1)
        .idle_timeout(Duration::MAX)
        .build();
    let tid = pool.run(|| std::thread::current().id()).wait().unwrap();
    (pool, tid)
}

/// Runs a job returning `PanicOnDrop` whose future is dropped before the job
/// ends, so that the result is dropped, panicking, on the pool thread.
fn detach_panicking_result(
    submit: impl FnOnce(Box<dyn FnOnce() -> PanicOnDrop + Send>) -> ConcurrentFuture<PanicOnDrop>,
) {
    let (release, gate) = mpsc::channel::<()>();
    let fut = submit(Box::new(move || {
        gate.recv().unwrap();
        PanicOnDrop
    }));
    drop(fut);
    release.send(()).unwrap();
}

#[test]
fn panics_while_publishing_never_kill_a_pool_thread() {
    if !is_child() {
        return in_child_process("panics_while_publishing_never_kill_a_pool_thread", &[]);
    }
    bounded("publish-panics", || {
        let (pool, tid) = one_thread_pool();
        let same_thread = |pool: &Executor| {
            assert_eq!(
                pool.run(|| std::thread::current().id()).wait().unwrap(),
                tid,
                "the pool thread died"
            );
        };
        // A detached result whose Drop panics, several times over.
        for _ in 0..3 {
            detach_panicking_result(|f| pool.run(f));
            same_thread(&pool);
        }
        // A panicking done-callback and a panicking waker.
        let (release, gate) = mpsc::channel::<()>();
        let mut fut = pool.run(move || gate.recv().unwrap());
        fut.add_done_callback(|| panic!("a callback panicked"));
        let waker = std::task::Waker::from(Arc::new(PanickingWaker));
        let mut cx = std::task::Context::from_waker(&waker);
        assert!(std::pin::Pin::new(&mut fut).poll(&mut cx).is_pending());
        release.send(()).unwrap();
        fut.wait().unwrap();
        same_thread(&pool);
        // A cancelled job whose closure panics when dropped.
        let (release, gate) = mpsc::channel::<()>();
        let blocker = pool.run(move || gate.recv().unwrap());
        let bomb = PanicOnDrop;
        let cancelled = pool.run(move || drop(bomb));
        assert!(cancelled.cancel());
        release.send(()).unwrap();
        blocker.wait().unwrap();
        same_thread(&pool);
        assert_eq!(pool.threads(), 1);

        // Through a limiter: the slot comes back once, not twice, and the
        // limiter keeps admitting (a double release would underflow).
        let limiter = CapacityLimiter::new(1);
        for _ in 0..3 {
            detach_panicking_result(|f| limiter.run(Some(&pool), f));
            assert_eq!(limiter.run(Some(&pool), || 5).wait().unwrap(), 5);
            assert_eq!(limiter.in_flight(), 0);
        }
        let two = CapacityLimiter::new(2);
        detach_panicking_result(|f| two.run(Some(&pool), f));
        let futs: Vec<_> = (0..4).map(|i| two.run(Some(&pool), move || i)).collect();
        assert_eq!(wait_all(futs), vec![0, 1, 2, 3]);
        assert_eq!((two.in_flight(), two.waiting()), (0, 0));
        pool.shutdown();
    });
}

#[test]
fn a_panic_caught_on_a_pool_thread_is_reported_in_debug_mode() {
    if !is_child() {
        return in_child_process(
            "a_panic_caught_on_a_pool_thread_is_reported_in_debug_mode",
            &[("BRIDGE_DEBUG", "1")],
        );
    }
    let cap = debug_support::capture();
    bounded("publish-panic-report", || {
        let pool = Executor::builder().thread_name("reporting").build();
        detach_panicking_result(|f| pool.run(f));
        pool.shutdown();
    });
    let report = cap.wait_for(
        &["bridge::debug", "a result's Drop panicked", "reporting-1"],
        common::TIMEOUT,
    );
    assert!(report.contains("ERROR"), "{report}");
}

#[cfg(unix)]
#[test]
#[allow(unsafe_code)]
fn an_executor_from_before_fork_is_closed_in_the_child_and_the_default_starts_afresh() {
    const NAME: &str =
        "an_executor_from_before_fork_is_closed_in_the_child_and_the_default_starts_afresh";
    if !is_child() {
        return in_child_process(NAME, &[]);
    }
    // Pools with threads at the fork, one of them busy with a job queued
    // behind it, and the default executor started.
    let pool = Executor::new(2);
    assert_eq!(pool.run(|| 1).wait().unwrap(), 1);
    assert_eq!(run_in_executor(None, || 2).wait().unwrap(), 2);
    let single = Executor::single_thread("before-fork");
    let (release, gate) = mpsc::channel::<()>();
    let mut busy = Some(single.run(move || gate.recv().unwrap()));
    let queued = single.run(|| 3);

    /// Each check in the forked child; the exit code names the failed one.
    fn in_forked_child(
        pool: Executor,
        single: Executor,
        queued: ConcurrentFuture<i32>,
        busy: ConcurrentFuture<()>,
    ) -> i32 {
        if !matches!(pool.run(|| 1).wait(), Err(Error::LoopClosed)) {
            return 2;
        }
        if !pool.is_closed() || pool.threads() != 0 {
            return 3;
        }
        let fresh = run_in_executor(None, || std::thread::current().name().map(str::to_owned));
        match fresh.wait() {
            Ok(Some(name)) if name.starts_with("bridge-default-") => {}
            _ => return 4,
        }
        if !matches!(single.run(|| 1).wait(), Err(Error::LoopClosed)) {
            return 5;
        }
        // Jobs queued or running at the fork: their threads are not here.
        if !matches!(queued.wait(), Err(Error::LoopClosed)) {
            return 6;
        }
        if !matches!(busy.wait(), Err(Error::LoopClosed)) {
            return 8;
        }
        pool.clone().shutdown();
        drop(pool);
        drop(single);
        let after = Executor::new(1);
        if after.run(|| 7).wait().ok() != Some(7) {
            return 7;
        }
        after.shutdown();
        0
    }

    // SAFETY: `fork` in a test process; the child only runs the checks above
    // (which use this crate's fork handling, the subject under test) and
    // leaves with `_exit`, never returning into the test harness.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        let code = std::panic::catch_unwind(AssertUnwindSafe(|| {
            in_forked_child(pool.clone(), single.clone(), queued, busy.take().unwrap())
        }))
        .unwrap_or(101);
        // SAFETY: leaves the forked child at once, running no destructor
        // and no atexit handler of the parent's state.
        unsafe { libc::_exit(code) };
    }
    // A hang in the child turns into a failure here.
    let deadline = Instant::now() + common::TIMEOUT;
    let mut status = 0;
    loop {
        // SAFETY: waits (without blocking) for the child forked above.
        let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        assert!(r >= 0, "waitpid failed");
        if r == pid {
            break;
        }
        if Instant::now() >= deadline {
            // SAFETY: kills the child forked above, which has hung.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            panic!("the forked child hung");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(
        libc::WIFEXITED(status),
        "the forked child crashed: {status}"
    );
    assert_eq!(
        libc::WEXITSTATUS(status),
        0,
        "check failed in the forked child"
    );
    // The parent's pools are unaffected.
    release.send(()).unwrap();
    busy.take().unwrap().wait().unwrap();
    assert_eq!(pool.run(|| 8).wait().unwrap(), 8);
    pool.shutdown();
    single.shutdown();
}
