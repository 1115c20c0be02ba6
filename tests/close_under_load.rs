//! Closing under load: loops closed while thousands of submissions are in
//! flight from other threads. Every submission resolves (its value,
//! `Cancelled` or `LoopClosed`), none hangs, and the destructor of every
//! submitted future runs exactly once.
//!
//! Every test body runs on its own thread under a time bound, so a hang is a
//! failure, not a stuck test run.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Barrier, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use bridge::{ConcurrentFuture, Error, Loop, LoopHandle};

/// Turns a hang into a failure. Generous: under valgrind (`.ci/sanitizers`)
/// every thread shares one core and a test takes up to a minute.
const LIMIT: Duration = Duration::from_secs(300);
/// The longest any one wait may take before it counts as hung.
const WAIT: Duration = Duration::from_secs(30);

/// The panic message of the jobs that panic on purpose.
const JOB_PANICS: &str = "panics on purpose";

/// Runs `f` on a fresh thread; fails if it panics or takes longer than [`LIMIT`].
fn bounded(what: &str, f: impl FnOnce() + Send + 'static) {
    // Keep the jobs that panic on purpose off the terminal.
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let msg = info.payload().downcast_ref::<String>();
            if !msg.is_some_and(|m| m.ends_with(JOB_PANICS)) {
                default(info)
            }
        }));
    });
    common::bounded_for(what, LIMIT, f)
}

/// Per-submission counters: how often each submission's future was dropped,
/// and how often its done-callback ran.
struct Ledger {
    dropped: Vec<AtomicU8>,
    callbacks: Vec<AtomicU8>,
}

impl Ledger {
    fn new(n: usize) -> Arc<Self> {
        Arc::new(Ledger {
            dropped: (0..n).map(|_| AtomicU8::new(0)).collect(),
            callbacks: (0..n).map(|_| AtomicU8::new(0)).collect(),
        })
    }

    fn token(self: &Arc<Self>, id: usize) -> Token {
        Token(self.clone(), id)
    }

    /// Fails unless every submission was dropped once and called back once.
    fn check_exactly_once(&self, what: &str) {
        for (id, d) in self.dropped.iter().enumerate() {
            let d = d.load(Ordering::SeqCst);
            assert_eq!(d, 1, "{what}: submission {id} dropped {d} times");
        }
        for (id, c) in self.callbacks.iter().enumerate() {
            let c = c.load(Ordering::SeqCst);
            assert_eq!(c, 1, "{what}: callback of submission {id} ran {c} times");
        }
    }
}

/// Travels inside a submitted future; counts its drop.
struct Token(Arc<Ledger>, usize);

impl Drop for Token {
    fn drop(&mut self) {
        self.0.dropped[self.1].fetch_add(1, Ordering::SeqCst);
    }
}

/// What a submission does, chosen from its id.
#[derive(Clone, Copy, Debug)]
enum Work {
    /// Ready at the first poll.
    Ready,
    /// Yields to the loop a few times.
    Yields,
    /// Sleeps on a tokio timer.
    Sleeps,
    /// Never finishes: only the close can end it.
    Forever,
}

impl Work {
    fn of(id: usize) -> Work {
        match id % 7 {
            0..=2 => Work::Ready,
            3..=4 => Work::Yields,
            5 => Work::Sleeps,
            _ => Work::Forever,
        }
    }
}

fn value(id: usize) -> usize {
    id.wrapping_mul(2_654_435_761) ^ 0x5eed
}

async fn work(id: usize, token: Token) -> usize {
    let _token = token;
    match Work::of(id) {
        Work::Ready => {}
        Work::Yields => {
            for _ in 0..3 {
                tokio::task::yield_now().await;
            }
        }
        Work::Sleeps => tokio::time::sleep(Duration::from_micros(200)).await,
        Work::Forever => std::future::pending::<()>().await,
    }
    value(id)
}

/// How the submissions resolved.
#[derive(Default, Debug)]
struct Tally {
    values: AtomicUsize,
    panicked: AtomicUsize,
    cancelled: AtomicUsize,
    closed: AtomicUsize,
}

impl Tally {
    /// Checks one outcome and counts it; anything else is a failure.
    fn record(&self, id: usize, outcome: Result<usize, Error>) {
        match outcome {
            Ok(v) => {
                assert_eq!(v, value(id), "submission {id}: wrong value");
                assert!(
                    !matches!(Work::of(id), Work::Forever),
                    "submission {id} never finishes, yet gave a value"
                );
                self.values.fetch_add(1, Ordering::SeqCst);
            }
            Err(Error::Cancelled) => {
                self.cancelled.fetch_add(1, Ordering::SeqCst);
            }
            Err(Error::LoopClosed) => {
                self.closed.fetch_add(1, Ordering::SeqCst);
            }
            Err(e) => panic!("submission {id}: unexpected outcome {e:?}"),
        }
    }

    fn total(&self) -> usize {
        self.values.load(Ordering::SeqCst)
            + self.panicked.load(Ordering::SeqCst)
            + self.cancelled.load(Ordering::SeqCst)
            + self.closed.load(Ordering::SeqCst)
    }
}

/// Waits for `fut` in one of several ways, each bounded by [`WAIT`].
fn resolve(id: usize, fut: ConcurrentFuture<usize>) -> Result<usize, Error> {
    match id % 3 {
        0 => {
            assert!(fut.wait_timeout(WAIT), "submission {id}: hung in wait");
            fut.wait()
        }
        1 => match fut.wait_for(WAIT) {
            Err(Error::Timeout) => panic!("submission {id}: hung in wait_for"),
            other => other,
        },
        _ => {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .build()
                .unwrap();
            rt.block_on(async move {
                match tokio::time::timeout(WAIT, fut).await {
                    Ok(outcome) => outcome,
                    Err(_) => panic!("submission {id}: hung in .await"),
                }
            })
        }
    }
}

/// Submits `per_thread` futures from each of `threads` threads to `target`,
/// closes the loop with `close` once `close_after` submissions were made
/// (while the submitters keep going), and checks that every submission
/// resolved and was dropped and called back exactly once.
fn close_while_submitting(
    what: &str,
    threads: usize,
    per_thread: usize,
    close_after: usize,
    target: LoopHandle,
    close: impl FnOnce() + Send,
) -> Arc<Tally> {
    let n = threads * per_thread;
    let ledger = Ledger::new(n);
    let tally = Arc::new(Tally::default());
    let submitted = AtomicUsize::new(0);
    let closed = AtomicBool::new(false);
    let (progress_tx, progress_rx) = mpsc::channel::<()>();
    let start = Barrier::new(threads + 1);
    thread::scope(|s| {
        for t in 0..threads {
            let (ledger, tally, target) = (&ledger, &tally, target.clone());
            let (submitted, start, progress_tx) = (&submitted, &start, progress_tx.clone());
            s.spawn(move || {
                start.wait();
                let mut pending = Vec::new();
                for i in 0..per_thread {
                    let id = t * per_thread + i;
                    let fut = match i % 4 {
                        0 => bridge::run_coroutine_threadsafe(work(id, ledger.token(id)), &target),
                        _ => target.spawn(work(id, ledger.token(id))),
                    };
                    let l = ledger.clone();
                    fut.add_done_callback(move || {
                        l.callbacks[id].fetch_add(1, Ordering::SeqCst);
                    });
                    if submitted.fetch_add(1, Ordering::SeqCst) + 1 == close_after {
                        let _ = progress_tx.send(());
                    }
                    // Some are waited for at once: those waiters are blocked
                    // when the close comes. The rest are waited for at the end.
                    if i % 5 == 0 && !matches!(Work::of(id), Work::Forever) {
                        tally.record(id, resolve(id, fut));
                    } else {
                        pending.push((id, fut));
                    }
                }
                for (id, fut) in pending {
                    tally.record(id, resolve(id, fut));
                }
            });
        }
        drop(progress_tx);
        start.wait();
        // Close mid-stream (or at the end, if the submitters finish first).
        let _ = progress_rx.recv_timeout(WAIT);
        close();
        closed.store(true, Ordering::SeqCst);
    });
    assert!(closed.load(Ordering::SeqCst));
    assert_eq!(tally.total(), n, "{what}: every submission resolved");
    // Every future was dropped: by the closing loop, by the submitter (a
    // rejected one), or when it finished.
    let deadline = Instant::now() + WAIT;
    while ledger.dropped.iter().any(|d| d.load(Ordering::SeqCst) == 0) {
        assert!(
            Instant::now() < deadline,
            "{what}: some future never dropped"
        );
        thread::yield_now();
    }
    ledger.check_exactly_once(what);
    tally
}

fn report(what: &str, t: &Tally) {
    eprintln!(
        "{what}: {} values, {} panicked, {} cancelled, {} loop-closed",
        t.values.load(Ordering::SeqCst),
        t.panicked.load(Ordering::SeqCst),
        t.cancelled.load(Ordering::SeqCst),
        t.closed.load(Ordering::SeqCst),
    );
}

/// A `Loop` dropped by another thread while 4 threads submit 1500 futures
/// each; the close comes at several points of the stream.
#[test]
fn loop_dropped_while_submissions_are_in_flight() {
    bounded("drop", || {
        for (round, close_after) in [1, 500, 2500, 5000, 6000].into_iter().enumerate() {
            let lp = Loop::builder()
                .name(format!("close-{round}"))
                .build()
                .unwrap();
            let h = lp.handle();
            let what = format!("drop after {close_after}");
            let t =
                close_while_submitting(&what, 4, 1500, close_after, h.clone(), move || drop(lp));
            report(&what, &t);
            assert!(h.is_closed());
            assert!(!bridge::loops().iter().any(|l| l.id() == h.id()));
            // Forever futures never give a value: something was cancelled or refused.
            assert!(t.cancelled.load(Ordering::SeqCst) + t.closed.load(Ordering::SeqCst) > 0);
        }
    });
}

/// The loop is closed from inside one of its own tasks (the `Loop` is dropped
/// on its own thread, which closes it without joining itself) while others
/// submit.
#[test]
fn loop_dropped_on_its_own_thread_while_submissions_are_in_flight() {
    bounded("drop-inside", || {
        let lp = Loop::new().unwrap();
        let h = lp.handle();
        let slot = Arc::new(Mutex::new(Some(lp)));
        let inside = h.clone();
        let t = close_while_submitting("drop inside", 4, 1000, 1500, h.clone(), move || {
            let slot = slot.clone();
            // The close itself runs on the loop; its own outcome is one of the
            // outcomes under test.
            let fut = inside.spawn(async move {
                let lp = slot.lock().unwrap().take();
                drop(lp);
            });
            match fut.wait_for(WAIT) {
                Ok(()) | Err(Error::Cancelled) => {}
                Err(e) => panic!("closing task: {e:?}"),
            }
        });
        report("drop inside", &t);
        let deadline = Instant::now() + WAIT;
        while bridge::loops().iter().any(|l| l.id() == h.id()) {
            assert!(
                Instant::now() < deadline,
                "the loop never left the registry"
            );
            thread::yield_now();
        }
        assert!(h.is_closed());
    });
}

/// Many small loops, each closed right after a burst of submissions from
/// two threads, over and over: a close that races the first task, the
/// loop's start-up, or the last submission.
#[test]
fn many_loops_closed_under_short_bursts() {
    bounded("bursts", || {
        let mut totals = Tally::default();
        for round in 0..40 {
            let lp = Loop::new().unwrap();
            let h = lp.handle();
            let close_after = [1, 10, 50, 100][round % 4];
            let t = close_while_submitting("burst", 2, 50, close_after, h, move || drop(lp));
            *totals.values.get_mut() += t.values.load(Ordering::SeqCst);
            *totals.cancelled.get_mut() += t.cancelled.load(Ordering::SeqCst);
            *totals.closed.get_mut() += t.closed.load(Ordering::SeqCst);
        }
        report("40 bursts", &totals);
        assert_eq!(totals.total(), 40 * 100);
    });
}

/// Threads blocked in `wait`, `wait_timeout` and `.await` on work that never
/// finishes are all released by the close, with `Cancelled` (the task had
/// started) or `LoopClosed` (it never ran).
#[test]
fn blocked_waiters_are_released_by_the_close() {
    bounded("waiters", || {
        const N: usize = 64;
        let lp = Loop::new().unwrap();
        let h = lp.handle();
        let ledger = Ledger::new(N);
        let started = Arc::new(Barrier::new(N + 1));
        let mut waiters = Vec::new();
        for id in 0..N {
            let fut = h.spawn({
                let token = ledger.token(id);
                async move {
                    let _token = token;
                    std::future::pending::<usize>().await
                }
            });
            let l = ledger.clone();
            fut.add_done_callback(move || {
                l.callbacks[id].fetch_add(1, Ordering::SeqCst);
            });
            let started = started.clone();
            waiters.push(thread::spawn(move || {
                started.wait();
                resolve(id, fut)
            }));
        }
        started.wait();
        drop(lp);
        for (id, w) in waiters.into_iter().enumerate() {
            match w.join().unwrap() {
                Err(Error::Cancelled) | Err(Error::LoopClosed) => {}
                other => panic!("waiter {id}: {other:?}"),
            }
        }
        ledger.check_exactly_once("blocked waiters");
    });
}

// ---- executors ----

/// How a submission to an executor resolved, checked against whether its
/// job ran: a job runs exactly when its outcome is its value or `Panicked`.
fn record_job(
    tally: &Tally,
    ran: &[AtomicU8],
    id: usize,
    cancel_won: bool,
    got: Result<usize, Error>,
) {
    let r = ran[id].load(Ordering::SeqCst);
    match got {
        Ok(v) => {
            assert_eq!(v, value(id), "job {id}: wrong value");
            assert!(!cancel_won, "job {id}: cancelled, yet gave a value");
            assert_eq!(r, 1, "job {id}: gave a value, ran {r} times");
            tally.values.fetch_add(1, Ordering::SeqCst);
        }
        Err(Error::Panicked(p)) => {
            assert_eq!(p.message(), format!("job {id} {JOB_PANICS}"));
            assert_eq!(r, 1, "job {id}: panicked, ran {r} times");
            tally.panicked.fetch_add(1, Ordering::SeqCst);
        }
        Err(Error::Cancelled) => {
            assert!(cancel_won, "job {id}: Cancelled, but its cancel failed");
            assert_eq!(r, 0, "job {id}: cancelled, yet ran");
            tally.cancelled.fetch_add(1, Ordering::SeqCst);
        }
        Err(Error::LoopClosed) => {
            assert!(!cancel_won, "job {id}: LoopClosed, but its cancel had won");
            assert_eq!(r, 0, "job {id}: refused, yet ran");
            tally.closed.fetch_add(1, Ordering::SeqCst);
        }
        Err(e) => panic!("job {id}: unexpected outcome {e:?}"),
    }
}

/// Submits `per_thread` jobs from each of `threads` threads to `pool` (some
/// panic, some are cancelled at once), and closes it with `close` after
/// `close_after` submissions while the submitters keep going. Every job
/// resolves, runs exactly when its outcome says so, and is dropped once.
fn close_executor_while_submitting(
    what: &str,
    threads: usize,
    per_thread: usize,
    close_after: usize,
    pool: bridge::Executor,
    close: impl FnOnce(bridge::Executor) + Send,
) -> Tally {
    let n = threads * per_thread;
    let ledger = Ledger::new(n);
    let ran: Arc<Vec<AtomicU8>> = Arc::new((0..n).map(|_| AtomicU8::new(0)).collect());
    let tally = Tally::default();
    let submitted = AtomicUsize::new(0);
    let (progress_tx, progress_rx) = mpsc::channel::<()>();
    let start = Barrier::new(threads + 1);
    thread::scope(|s| {
        for t in 0..threads {
            let (ledger, ran, tally, pool) = (&ledger, &ran, &tally, pool.clone());
            let (submitted, start, progress_tx) = (&submitted, &start, progress_tx.clone());
            s.spawn(move || {
                start.wait();
                let mut pending = Vec::new();
                for i in 0..per_thread {
                    let id = t * per_thread + i;
                    let (token, job_ran) = (ledger.token(id), ran.clone());
                    let fut = pool.run(move || {
                        let _token = token;
                        job_ran[id].fetch_add(1, Ordering::SeqCst);
                        match id % 9 {
                            0 => panic!("job {id} {JOB_PANICS}"),
                            1 => thread::sleep(Duration::from_micros(100)),
                            2 => thread::yield_now(),
                            _ => {}
                        }
                        value(id)
                    });
                    let l = ledger.clone();
                    fut.add_done_callback(move || {
                        l.callbacks[id].fetch_add(1, Ordering::SeqCst);
                    });
                    let cancel_won = id % 11 == 0 && fut.cancel();
                    if submitted.fetch_add(1, Ordering::SeqCst) + 1 == close_after {
                        let _ = progress_tx.send(());
                    }
                    if i % 5 == 0 {
                        record_job(tally, ran, id, cancel_won, resolve(id, fut));
                    } else {
                        pending.push((id, cancel_won, fut));
                    }
                }
                drop(pool);
                for (id, cancel_won, fut) in pending {
                    record_job(tally, ran, id, cancel_won, resolve(id, fut));
                }
            });
        }
        drop(progress_tx);
        start.wait();
        let _ = progress_rx.recv_timeout(WAIT);
        close(pool);
    });
    assert_eq!(tally.total(), n, "{what}: every job resolved");
    let deadline = Instant::now() + WAIT;
    while ledger.dropped.iter().any(|d| d.load(Ordering::SeqCst) == 0) {
        assert!(Instant::now() < deadline, "{what}: some job never dropped");
        thread::yield_now();
    }
    ledger.check_exactly_once(what);
    report(what, &tally);
    tally
}

/// `shutdown` while 4 threads submit 1500 jobs each: it returns once every
/// admitted job is done and its threads are joined; jobs submitted after it
/// are refused with `LoopClosed`.
#[test]
fn executor_shutdown_while_submissions_are_in_flight() {
    bounded("exec-shutdown", || {
        for close_after in [1, 3000, 6000] {
            let pool = bridge::Executor::new(3);
            let observer = pool.clone();
            let what = format!("shutdown after {close_after}");
            close_executor_while_submitting(&what, 4, 1500, close_after, pool, |p| {
                p.shutdown();
                assert!(observer.is_closed());
                assert_eq!(observer.threads(), 0, "shutdown joined every thread");
            });
        }
    });
}

/// `close` (no wait) while submitting, on a pool and on a single-thread
/// executor: queued jobs still run, later ones are refused.
#[test]
fn executor_closed_while_submissions_are_in_flight() {
    bounded("exec-close", || {
        for (i, pool) in [
            bridge::Executor::new(2),
            bridge::Executor::single_thread("close-single"),
        ]
        .into_iter()
        .enumerate()
        {
            let observer = pool.clone();
            let what = format!("close, executor {i}");
            let t = close_executor_while_submitting(&what, 4, 1000, 1500, pool, |p| {
                assert!(p.close());
            });
            assert!(
                t.closed.load(Ordering::SeqCst) > 0,
                "{what}: later jobs refused"
            );
            let deadline = Instant::now() + WAIT;
            while observer.threads() > 0 {
                assert!(Instant::now() < deadline, "{what}: threads never exited");
                thread::yield_now();
            }
        }
    });
}

/// Dropping the last handle never blocks, even with thousands of jobs
/// queued behind a closed gate and threads blocked waiting on them; after
/// the gate opens every job runs and every waiter gets its value.
#[test]
fn executor_dropped_with_thousands_of_jobs_queued() {
    bounded("exec-drop", || {
        const N: usize = 3000;
        let pool = bridge::Executor::builder()
            .max_threads(2)
            .thread_name("dropped-pool")
            .build();
        let ledger = Ledger::new(N);
        let ran: Arc<Vec<AtomicU8>> = Arc::new((0..N).map(|_| AtomicU8::new(0)).collect());
        let gate = Arc::new((Mutex::new(false), std::sync::Condvar::new()));
        let mut futs = Vec::new();
        for id in 0..N {
            let (token, ran, gate) = (ledger.token(id), ran.clone(), gate.clone());
            let fut = pool.run(move || {
                let _token = token;
                let (open, cv) = &*gate;
                let mut open = open.lock().unwrap();
                while !*open {
                    open = cv.wait(open).unwrap();
                }
                drop(open);
                ran[id].fetch_add(1, Ordering::SeqCst);
                value(id)
            });
            let l = ledger.clone();
            fut.add_done_callback(move || {
                l.callbacks[id].fetch_add(1, Ordering::SeqCst);
            });
            futs.push(fut);
        }
        // Waiters blocked on jobs at the back and at the front of the queue.
        let mut waiting = vec![(N - 1, futs.pop().unwrap()), (N - 2, futs.pop().unwrap())];
        waiting.extend(futs.drain(..2).enumerate());
        let waiters: Vec<_> = waiting
            .into_iter()
            .map(|(id, fut)| thread::spawn(move || (id, resolve(id, fut))))
            .collect();
        drop(pool); // the gate is closed: this would hang if drop waited
        assert!(
            futs.iter().all(|f| !f.done()),
            "nothing ran before the gate opened"
        );
        {
            let (open, cv) = &*gate;
            *open.lock().unwrap() = true;
            cv.notify_all();
        }
        let mut values = 0;
        for w in waiters {
            let (id, got) = w.join().unwrap();
            assert_eq!(got.unwrap(), value(id), "job {id}");
            values += 1;
        }
        for (i, fut) in futs.into_iter().enumerate() {
            let id = i + 2; // 0 and 1 went to waiters
            assert_eq!(resolve(id, fut).unwrap(), value(id), "job {id}");
            values += 1;
        }
        assert_eq!(values, N);
        assert!(ran.iter().all(|r| r.load(Ordering::SeqCst) == 1));
        let deadline = Instant::now() + WAIT;
        while ledger.dropped.iter().any(|d| d.load(Ordering::SeqCst) == 0) {
            assert!(Instant::now() < deadline, "some job never dropped");
            thread::yield_now();
        }
        ledger.check_exactly_once("dropped pool");
    });
}
