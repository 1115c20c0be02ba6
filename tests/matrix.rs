//! The matrix: every public call that blocks or completes work, called in
//! every context a caller can be in. Each must give a value or a documented
//! error: never a hang, never an abort.
//!
//! Calls (the rows, [`CALLS`]): `run`, `block_on_safe`, `call_blocking`,
//! `call_blocking_timeout`, `iter_blocking`, `stream_in_executor`,
//! `ConcurrentFuture::wait` (a `Loop`'s work), `wait_for` (the worker loop's
//! work), `LoopHandle::block_on`, `Executor::run` + `wait`, `run_in_executor`
//! on the default executor, `Executor::shutdown`, dropping a `Loop`,
//! dropping an `Executor`.
//!
//! Contexts (the columns, [`CONTEXTS`]): a plain thread; a late thread-local
//! destructor (registered before the crate's own, so it runs after they are
//! gone); a thread that is already unwinding (inside a `Drop` during a
//! panic), plain or a task of a multi-thread runtime; a forked child (the
//! `Loop`, `Executor` and pending work used there were made before the
//! fork); worker-loop work that has entered another current-thread or
//! multi-thread runtime's context.
//!
//! Every case runs in its own child process (this binary again, selected by
//! an environment variable) bounded by a timeout, so an abort or a hang fails
//! that case, not the run. The test prints the table of outcomes, then fails
//! if any case failed. `BRIDGE_MATRIX_ONLY=substring` runs only the cases
//! whose name (`call@context`) contains it.

use futures::StreamExt;
use std::cell::RefCell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use bridge::{ConcurrentFuture, Error, Executor, Loop};

#[path = "support/child.rs"]
mod child;

use child::{panic_text, Ended, Verdict};

/// How long a case process may take before it counts as hung.
const CASE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a forked child may take (inside its case process).
const FORK_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a context waits for the call's outcome from its thread.
const OUTCOME_TIMEOUT: Duration = Duration::from_secs(10);
/// Case processes run at once.
const PARALLEL: usize = 3;
/// A delay long enough to be pending whenever it matters.
const FOREVER: Duration = Duration::from_secs(3600);

/// One call under test. `pre` is `Some` in a forked child: what was made
/// before the fork, for the calls that take a `Loop`, an `Executor` or
/// pending work.
type Call = fn(pre: Option<PreFork>) -> Verdict;

/// One context: runs the call there and returns its verdict.
type Context = fn(call: Call) -> Verdict;

/// The rows of the table.
const CALLS: &[(&str, Call)] = &[
    ("run", call_run),
    ("block_on_safe", call_block_on_safe),
    ("call_blocking", call_call_blocking),
    ("call_blocking_timeout", call_call_blocking_timeout),
    ("iter_blocking", call_iter_blocking),
    ("stream_in_executor", call_stream_in_executor),
    ("wait", call_wait),
    ("wait_for", call_wait_for),
    ("LoopHandle::block_on", call_loop_block_on),
    ("Executor::run+wait", call_executor_wait),
    ("run_in_executor(None)", call_default_executor),
    ("Executor::shutdown", call_shutdown),
    ("drop Loop", call_drop_loop),
    ("drop Executor", call_drop_executor),
];

/// The columns of the table.
const CONTEXTS: &[(&str, Context)] = &[
    ("plain", ctx_plain),
    ("tls-dtor", ctx_tls_destructor),
    ("unwinding", ctx_unwinding),
    ("unwind-task", ctx_unwinding_in_task),
    #[cfg(unix)]
    ("fork", ctx_fork),
    ("worker+ct", ctx_worker_current_thread),
    ("worker+mt", ctx_worker_multi_thread),
];

#[test]
fn matrix() {
    if let Some(case) = child::selected_case() {
        child::report_and_exit(run_case(&case));
    }
    let only = std::env::var("BRIDGE_MATRIX_ONLY").ok();
    let cases: Vec<String> = CALLS
        .iter()
        .flat_map(|(call, _)| CONTEXTS.iter().map(move |(ctx, _)| format!("{call}@{ctx}")))
        .filter(|name| only.as_deref().is_none_or(|o| name.contains(o)))
        .collect();
    let results: Mutex<Vec<Option<Ended>>> = Mutex::new(vec![None; cases.len()]);
    let next = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..PARALLEL {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(case) = cases.get(i) else { break };
                let ended = child::run_case_process("matrix", case, &[], CASE_TIMEOUT);
                results.lock().unwrap()[i] = Some(ended);
            });
        }
    });
    let results: Vec<Ended> = results
        .into_inner()
        .unwrap()
        .into_iter()
        .map(|r| r.expect("every case ran"))
        .collect();
    print_table(&cases, &results);
    let failed: Vec<String> = cases
        .iter()
        .zip(&results)
        .filter(|(_, r)| !r.passed())
        .map(|(c, r)| format!("{c}: {} ({})", r.word(), r.detail()))
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {} cases failed:\n{}",
        failed.len(),
        cases.len(),
        failed.join("\n")
    );
}

fn print_table(cases: &[String], results: &[Ended]) {
    let cell = |call: &str, ctx: &str| {
        let name = format!("{call}@{ctx}");
        cases
            .iter()
            .position(|c| *c == name)
            .map_or("-", |i| results[i].word())
    };
    let width = CALLS.iter().map(|(c, _)| c.len()).max().unwrap_or(0);
    let mut out = format!("\n{:width$}", "");
    let col = CONTEXTS.iter().map(|(c, _)| c.len()).max().unwrap_or(0);
    for (ctx, _) in CONTEXTS {
        out += &format!(" | {ctx:^col$}");
    }
    out.push('\n');
    for (call, _) in CALLS {
        out += &format!("{call:width$}");
        for (ctx, _) in CONTEXTS {
            out += &format!(" | {:^col$}", cell(call, ctx));
        }
        out.push('\n');
    }
    out.push('\n');
    for (c, r) in cases.iter().zip(results) {
        out += &format!("{c}: {}: {}\n", r.word(), r.detail());
    }
    println!("{out}");
}

/// In the child process: runs one `call@context` case.
fn run_case(case: &str) -> Verdict {
    let (call, ctx) = case
        .split_once('@')
        .ok_or_else(|| format!("bad case name {case:?}"))?;
    let (_, call) = CALLS
        .iter()
        .find(|(n, _)| *n == call)
        .ok_or_else(|| format!("no call {call:?}"))?;
    let (_, ctx) = CONTEXTS
        .iter()
        .find(|(n, _)| *n == ctx)
        .ok_or_else(|| format!("no context {ctx:?}"))?;
    ctx(*call)
}

// ---- verdicts ----

/// The variant name of an error, for verdicts.
fn kind(e: &Error) -> &'static str {
    match e {
        Error::NestedLoop => "NestedLoop",
        Error::NoRunningLoop => "NoRunningLoop",
        Error::Cancelled => "Cancelled",
        Error::Panicked(_) => "Panicked",
        Error::Timeout => "Timeout",
        Error::LoopClosed => "LoopClosed",
        Error::WouldDeadlock => "WouldDeadlock",
        Error::Io(_) => "Io",
        _ => "another error",
    }
}

/// `Ok` if `got` is `want` or one of the errors in `allowed`.
fn expect<T: PartialEq + std::fmt::Debug>(
    got: Result<T, Error>,
    want: Option<T>,
    allowed: &[&str],
) -> Verdict {
    match got {
        Ok(v) if want.as_ref() == Some(&v) => Ok(format!("Ok({v:?})")),
        Ok(v) => Err(format!(
            "Ok({v:?}), expected {want:?} or one of {allowed:?}"
        )),
        Err(e) if allowed.contains(&kind(&e)) => Ok(format!("Err({})", kind(&e))),
        Err(e) => Err(format!(
            "Err({}: {e}), expected {want:?} or one of {allowed:?}",
            kind(&e)
        )),
    }
}

/// Runs `f`, turning a panic into a wrong verdict.
fn caught(f: impl FnOnce() -> Verdict) -> Verdict {
    catch_unwind(AssertUnwindSafe(f))
        .unwrap_or_else(|p| Err(format!("panicked: {}", panic_text(&*p))))
}

fn new_loop() -> Result<Loop, String> {
    Loop::builder()
        .name("matrix-loop")
        .build()
        .map_err(|e| format!("Loop::build failed: {e}"))
}

async fn soon<T>(v: T) -> T {
    tokio::time::sleep(Duration::from_millis(1)).await;
    v
}

/// Pending until cancelled (the sleep is made when first polled, on its loop).
async fn forever() {
    tokio::time::sleep(FOREVER).await
}

// ---- the calls ----

fn call_run(_: Option<PreFork>) -> Verdict {
    let got = bridge::run(async {
        tokio::task::yield_now().await;
        soon(1u32).await
    });
    // `NestedLoop` is the documented answer inside a loop.
    expect(got, Some(1), &["NestedLoop"])
}

fn call_block_on_safe(_: Option<PreFork>) -> Verdict {
    expect(bridge::block_on_safe(soon(2u32)), Some(2), &[])
}

fn call_call_blocking(_: Option<PreFork>) -> Verdict {
    let v = bridge::call_blocking(soon(3u32));
    expect::<u32>(Ok(v), Some(3), &[])
}

fn call_call_blocking_timeout(_: Option<PreFork>) -> Verdict {
    let borrowed = String::from("borrowed");
    let got = bridge::call_blocking_timeout(Duration::from_secs(20), async {
        soon(()).await;
        borrowed.len()
    });
    expect(got, Some(8), &[])
}

fn call_iter_blocking(_: Option<PreFork>) -> Verdict {
    let stream = futures::stream::iter(0..3u32).then(soon);
    let got: Vec<u32> = bridge::iter_blocking(stream).collect();
    expect::<Vec<u32>>(Ok(got), Some(vec![0, 1, 2]), &[])
}

/// In the fork column this also starts new threads in the child before the
/// pre-fork `Loop` is dropped there: glibc hands the parent's dead threads'
/// stacks to new threads, and closing that `Loop` used to wake a waiter node
/// left on its thread's stack (a SIGSEGV).
fn call_stream_in_executor(_: Option<PreFork>) -> Verdict {
    // Consumed from sync code through the worker loop (any context).
    let got = bridge::call_blocking(async {
        bridge::stream_in_executor(None, 0..3u32)
            .collect::<Vec<_>>()
            .await
    });
    expect::<Vec<u32>>(Ok(got), Some(vec![0, 1, 2]), &[])
}

fn call_wait(pre: Option<PreFork>) -> Verdict {
    match pre {
        // Work pending on a `Loop` whose thread stayed in the parent.
        Some(pre) => expect(pre.loop_pending.wait(), None, &["LoopClosed"]),
        None => {
            let lp = new_loop()?;
            expect(lp.handle().spawn(soon(4u32)).wait(), Some(4), &[])
        }
    }
}

fn call_wait_for(pre: Option<PreFork>) -> Verdict {
    let limit = Duration::from_secs(10);
    match pre {
        // Work pending on the parent's worker loop.
        Some(pre) => expect(pre.worker_pending.wait_for(limit), None, &["LoopClosed"]),
        None => expect(
            bridge::worker_loop().spawn(soon(5u32)).wait_for(limit),
            Some(5),
            &[],
        ),
    }
}

fn call_loop_block_on(pre: Option<PreFork>) -> Verdict {
    match pre {
        Some(pre) => expect(pre.lp.handle().block_on(soon(6u32)), None, &["LoopClosed"]),
        None => {
            let lp = new_loop()?;
            expect(lp.handle().block_on(soon(6u32)), Some(6), &[])
        }
    }
}

fn call_executor_wait(pre: Option<PreFork>) -> Verdict {
    match pre {
        Some(pre) => {
            // A job queued behind a running one when the pool's threads
            // stayed in the parent, then a new job on that pool.
            let queued = expect(
                pre.executor_queued.wait(),
                None,
                &["LoopClosed", "Cancelled"],
            )?;
            let new = expect(
                pre.executor.run(|| 7u32).wait(),
                Some(7),
                &["LoopClosed", "Cancelled"],
            )?;
            Ok(format!("queued: {queued}; new job: {new}"))
        }
        None => {
            let ex = Executor::new(2);
            expect(ex.run(|| 7u32).wait(), Some(7), &[])
        }
    }
}

fn call_default_executor(_: Option<PreFork>) -> Verdict {
    // In a forked child the default executor was used before the fork: it
    // must start afresh there.
    expect(bridge::run_in_executor(None, || 8u32).wait(), Some(8), &[])
}

fn call_shutdown(pre: Option<PreFork>) -> Verdict {
    match pre {
        Some(pre) => {
            // A running job and a queued one, both with threads in the parent.
            pre.executor.shutdown();
            Ok("returned".into())
        }
        None => {
            let ex = Executor::new(2);
            let job = ex.run(|| {
                std::thread::sleep(Duration::from_millis(2));
                9u32
            });
            ex.shutdown();
            // `shutdown` waited for the job: it is done.
            if !job.done() {
                return Err("shutdown returned before its queued job finished".into());
            }
            expect(job.wait(), Some(9), &[])
        }
    }
}

fn call_drop_loop(pre: Option<PreFork>) -> Verdict {
    match pre {
        Some(pre) => {
            drop(pre.lp);
            let after = expect(pre.loop_pending.wait(), None, &["LoopClosed", "Cancelled"])?;
            Ok(format!("returned; pending work: {after}"))
        }
        None => {
            let lp = new_loop()?;
            let pending = lp.handle().spawn(forever());
            drop(lp);
            let after = expect(pending.wait(), None, &["Cancelled", "LoopClosed"])?;
            Ok(format!("returned; pending work: {after}"))
        }
    }
}

fn call_drop_executor(pre: Option<PreFork>) -> Verdict {
    match pre {
        Some(pre) => {
            drop(pre.executor);
            let after = expect(
                pre.executor_queued.wait(),
                None,
                &["LoopClosed", "Cancelled"],
            )?;
            Ok(format!("returned; queued job: {after}"))
        }
        None => {
            let ex = Executor::new(1);
            let job = ex.run(|| {
                std::thread::sleep(Duration::from_millis(2));
                10u32
            });
            drop(ex);
            // Dropping detaches: the job still runs to the end.
            let after = expect(job.wait(), Some(10), &[])?;
            Ok(format!("returned; job: {after}"))
        }
    }
}

// ---- the contexts ----

/// Runs `f` on a fresh thread and waits (bounded) for what it sends back.
fn on_thread(what: &str, f: impl FnOnce(mpsc::Sender<Verdict>) + Send + 'static) -> Verdict {
    let (tx, rx) = mpsc::channel();
    let thread = std::thread::Builder::new()
        .name(format!("matrix-{what}"))
        .spawn(move || f(tx))
        .map_err(|e| format!("spawn: {e}"))?;
    let v = match rx.recv_timeout(OUTCOME_TIMEOUT) {
        Ok(v) => v,
        Err(e) => {
            return Err(format!(
                "hang: no outcome from the {what} thread within {OUTCOME_TIMEOUT:?} ({e})"
            ))
        }
    };
    // The thread has sent; it ends (or unwinds, on purpose) right after. An
    // abort on the way out fails the case (the process dies); so does a hang.
    let deadline = std::time::Instant::now() + OUTCOME_TIMEOUT;
    while !thread.is_finished() {
        if std::time::Instant::now() >= deadline {
            return Err(format!(
                "hang: the {what} thread gave {v:?}, then did not end within {OUTCOME_TIMEOUT:?}"
            ));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let _ = thread.join();
    v
}

fn ctx_plain(call: Call) -> Verdict {
    on_thread("plain", move |tx| {
        let _ = tx.send(caught(|| call(None)));
    })
}

/// Makes the call from its `Drop`, at thread exit.
struct AtThreadExit(Option<(Call, mpsc::Sender<Verdict>)>);

impl Drop for AtThreadExit {
    fn drop(&mut self) {
        if let Some((call, tx)) = self.0.take() {
            let _ = tx.send(caught(|| call(None)));
        }
    }
}

std::thread_local! {
    static AT_EXIT: RefCell<AtThreadExit> = const { RefCell::new(AtThreadExit(None)) };
}

fn ctx_tls_destructor(call: Call) -> Verdict {
    on_thread("tls-dtor", move |tx| {
        // Registered first, so destroyed last: after the crate's own
        // thread-locals, which the calls below create.
        AT_EXIT.with(|a| a.borrow_mut().0 = Some((call, tx)));
        let _ = bridge::running_loop();
        let _ = bridge::block_on_safe(async {});
        bridge::call_blocking(async {});
        let _ = bridge::worker_loop().spawn(async {}).wait();
    })
}

/// Makes the call from its `Drop`, while the thread unwinds.
struct WhileUnwinding(Option<(Call, mpsc::Sender<Verdict>)>);

impl Drop for WhileUnwinding {
    fn drop(&mut self) {
        if let Some((call, tx)) = self.0.take() {
            let v = if std::thread::panicking() {
                caught(|| call(None))
            } else {
                Err("the thread was not unwinding".into())
            };
            let _ = tx.send(v);
        }
    }
}

fn ctx_unwinding(call: Call) -> Verdict {
    on_thread("unwinding", move |tx| {
        // The crate's first call in this process is made while unwinding.
        let _guard = WhileUnwinding(Some((call, tx)));
        panic!("matrix: unwinding on purpose, the call runs in a Drop");
    })
}

fn ctx_unwinding_in_task(call: Call) -> Verdict {
    on_thread("unwind-task", move |tx| {
        // A task of a multi-thread runtime unwinds, as when a `Loop` moved
        // into a task is dropped by its panic: the call runs in a `Drop` on a
        // runtime worker thread, the crate's first call in this process.
        let rt = match tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => return drop(tx.send(Err(format!("runtime: {e}")))),
        };
        let task = rt.spawn(async move {
            let _guard = WhileUnwinding(Some((call, tx)));
            panic!("matrix: a task unwinding on purpose, the call runs in a Drop");
        });
        let _ = rt.block_on(task);
    })
}

/// What a forked child finds, made in the parent before the fork.
struct PreFork {
    /// A `Loop` and work pending on it.
    lp: Loop,
    loop_pending: ConcurrentFuture<()>,
    /// Work pending on the worker loop.
    worker_pending: ConcurrentFuture<()>,
    /// A one-thread `Executor` whose thread runs a job that never ends, and
    /// a job queued behind it.
    executor: Executor,
    executor_queued: ConcurrentFuture<()>,
}

impl PreFork {
    fn make() -> Result<PreFork, String> {
        // Every process-wide service in use before the fork.
        bridge::call_blocking(async {});
        let _ = bridge::block_on_safe(soon(()));
        bridge::run_in_executor(None, || ())
            .wait()
            .map_err(|e| format!("default executor: {e}"))?;
        let lp = new_loop()?;
        let loop_pending = lp.handle().spawn(forever());
        let worker_pending = bridge::worker_loop().spawn(forever());
        let executor = Executor::new(1);
        let (started_tx, started) = mpsc::channel();
        drop(executor.run(move || {
            let _ = started_tx.send(());
            std::thread::sleep(FOREVER);
        }));
        started
            .recv_timeout(OUTCOME_TIMEOUT)
            .map_err(|_| "the executor job did not start".to_string())?;
        let executor_queued = executor.run(|| ());
        Ok(PreFork {
            lp,
            loop_pending,
            worker_pending,
            executor,
            executor_queued,
        })
    }
}

#[cfg(unix)]
fn ctx_fork(call: Call) -> Verdict {
    let pre = PreFork::make()?;
    // The parent drops `pre` once the child is done (its loop and executor
    // work there as before).
    child::in_forked_child(FORK_TIMEOUT, move || call(Some(pre)))
}

/// Runs the call inside worker-loop work that has entered `other`'s context.
fn in_worker_entered(call: Call, other: tokio::runtime::Runtime) -> Verdict {
    let other = Arc::new(other);
    let inside = other.clone();
    let v = on_thread("worker-entered", move |tx| {
        let v = caught(|| {
            bridge::call_blocking(async move {
                let _entered = inside.handle().enter();
                caught(|| call(None))
            })
        });
        let _ = tx.send(v);
    });
    // Dropped outside any async context, as a user would once done with it
    // (a hang above leaks it). That must not hang either.
    let Ok(rt) = Arc::try_unwrap(other) else {
        return v;
    };
    let dropped = on_thread("drop-other-runtime", move |tx| {
        drop(rt);
        let _ = tx.send(Ok(String::new()));
    });
    match dropped {
        Ok(_) => v,
        Err(_) => Err(format!(
            "hang: the call gave {v:?}, then dropping the runtime it entered hung"
        )),
    }
}

fn ctx_worker_current_thread(call: Call) -> Verdict {
    let other = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("runtime: {e}"))?;
    in_worker_entered(call, other)
}

fn ctx_worker_multi_thread(call: Call) -> Verdict {
    let other = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(|e| format!("runtime: {e}"))?;
    in_worker_entered(call, other)
}
