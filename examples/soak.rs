//! Soak: many threads making every kind of call at once, with injected
//! faults, and every call accounted for at the end.
//!
//! ```text
//! cargo run --example soak                 # default size, 30-60 s on 2 cores
//! cargo run --release --example soak       # the same, optimized
//! cargo run --release --example soak -- --long   # ten times the default
//! cargo run --release --example soak -- --calls 50000 --threads 8 --seed 7
//! ```
//!
//! Each call gets an id; its kind (which entry point, from which context),
//! its fault (none, a panic, a cancel, a `wait_for` timeout, a deadline that
//! is met, a closed loop, a loop closed while the call is in flight) and its
//! delays come from a small PRNG seeded with `(seed, id)`, so a failing call
//! can be replayed by id. Every call must end with exactly the outcome its
//! fault should give (the value, `Panicked` with its own message,
//! `Cancelled`, `Timeout`, `LoopClosed`). At the end:
//!
//! * every call resolved exactly once, with the expected outcome;
//! * every submitted future or closure was dropped exactly once, and ran to
//!   its end exactly when its outcome says it did;
//! * no call hung: a watchdog fails the run if no call finishes for 30 s;
//! * threads and memory did not grow: thread count and RSS are printed at
//!   the start, the middle and the end, and the run fails if the threads do
//!   not settle back near the start or the RSS grows across the second half.
//!
//! The process exits with 0 only if all of that holds.

use std::fmt;
use std::panic::{catch_unwind, resume_unwind};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{mpsc, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use bridge::{ConcurrentFuture, Error, Loop, LoopHandle};

/// Calls in a default run: about a minute on a 2-core machine.
const DEFAULT_CALLS: u64 = 400_000;
/// The longest any single wait may last before it counts as a hang.
const BOUND: Duration = Duration::from_secs(30);
/// The watchdog fails the run after this long without a finished call.
const STALL: Duration = Duration::from_secs(30);
/// How far above the start the thread count may stay once settled: the
/// default executor's idle threads (min(32, cores + 4)) and a little slack.
const THREAD_SLACK: usize = 12;
/// How long the threads get to settle (tokio's blocking threads, which a
/// `block_in_place` starts, retire after 10 s idle).
const SETTLE: Duration = Duration::from_secs(40);
/// How much the RSS may grow from the middle to the end of the run.
const RSS_SLACK_KB: u64 = 32 * 1024;

// ---- a small seeded PRNG (xorshift64*) ----

struct Rng(u64);

impl Rng {
    fn new(seed: u64, id: u64) -> Rng {
        // splitmix64 of (seed, id), never zero.
        let mut z = seed ^ id.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        Rng((z ^ (z >> 31)) | 1)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

// ---- what a call does ----

/// The entry point and the context it is called from.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Op {
    /// `call_blocking` from a plain thread.
    CallBlocking,
    /// `call_blocking` inside a current-thread tokio runtime's `block_on`.
    CallBlockingInRuntime,
    /// `block_on_safe` from a plain thread (the inline path).
    BlockOnSafePlain,
    /// `block_on_safe` inside a current-thread tokio runtime's `block_on`.
    BlockOnSafeCurrent,
    /// `block_on_safe` inside a task of a multi-thread tokio runtime.
    BlockOnSafeMulti,
    /// `block_on_safe` inside a task of a bridge `Loop`.
    BlockOnSafeLoop,
    /// `run_coroutine_threadsafe`, then `wait`/`wait_for`/`cancel`.
    SpawnWait,
    /// `run_coroutine_threadsafe`, then `.await` in a tokio runtime.
    SpawnAwaitTokio,
    /// `run_coroutine_threadsafe`, then `.await` in `futures::executor::block_on`.
    SpawnAwaitFutures,
    /// `run_in_executor(None, f)`, then `wait`/`wait_for`/`cancel`.
    ExecutorWait,
    /// `run_in_executor(None, f)`, then `.await` in a tokio runtime.
    ExecutorAwait,
    /// `call_blocking(block_on_safe(call_blocking(work)))`.
    Nested,
    /// A `Loop` task calling `call_blocking(block_on_safe(work))`.
    NestedInLoop,
}

const OPS: [Op; 13] = [
    Op::CallBlocking,
    Op::CallBlockingInRuntime,
    Op::BlockOnSafePlain,
    Op::BlockOnSafeCurrent,
    Op::BlockOnSafeMulti,
    Op::BlockOnSafeLoop,
    Op::SpawnWait,
    Op::SpawnAwaitTokio,
    Op::SpawnAwaitFutures,
    Op::ExecutorWait,
    Op::ExecutorAwait,
    Op::Nested,
    Op::NestedInLoop,
];

/// The fault injected into a call.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Fault {
    None,
    /// The work panics: `Panicked` with the call's own message.
    Panic,
    /// The work never ends and is cancelled: `Cancelled`. On an executor job
    /// that may already have started, `cancel` may fail: then the value.
    Cancel,
    /// `wait_for` with a deadline of a few ms on work that cannot finish in
    /// time: `Timeout`, and the work is dropped.
    Timeout,
    /// `wait_for` with a deadline the work meets: the value.
    Deadline,
    /// Submitted to a loop that is already closed: `LoopClosed`.
    Closed,
    /// Submitted to a fresh loop that is closed while the work is pending:
    /// `Cancelled` (it had started) or `LoopClosed` (it never ran).
    CloseInFlight,
}

const FAULTS: [Fault; 7] = [
    Fault::None,
    Fault::Panic,
    Fault::Cancel,
    Fault::Timeout,
    Fault::Deadline,
    Fault::Closed,
    Fault::CloseInFlight,
];

impl Op {
    fn supports(self, f: Fault) -> bool {
        use Fault::*;
        match self {
            Op::SpawnWait => true,
            Op::SpawnAwaitTokio | Op::SpawnAwaitFutures => {
                matches!(f, None | Panic | Cancel | Closed | CloseInFlight)
            }
            Op::ExecutorWait => matches!(f, None | Panic | Cancel | Timeout | Deadline),
            Op::ExecutorAwait => matches!(f, None | Panic | Cancel),
            _ => matches!(f, None | Panic),
        }
    }
}

/// How the work passes time before it finishes.
#[derive(Clone, Copy, Debug)]
enum Delay {
    Ready,
    Yields(u32),
    Sleeps(Duration),
}

/// Everything about one call, derived from `(seed, id)`.
#[derive(Clone, Copy, Debug)]
struct Plan {
    id: u64,
    op: Op,
    fault: Fault,
    delay: Delay,
    /// 0, 1: the shared `Loop`s; 2: the worker loop.
    target: usize,
    /// A short wait before cancelling, or the `wait_for` deadline of a timeout.
    short: Duration,
}

impl Plan {
    fn new(seed: u64, id: u64) -> Plan {
        let mut r = Rng::new(seed, id);
        let op = OPS[r.below(OPS.len() as u64) as usize];
        let roll = r.below(100);
        let wanted = match roll {
            0..=61 => Fault::None,
            62..=71 => Fault::Panic,
            72..=79 => Fault::Cancel,
            80..=87 => Fault::Timeout,
            88..=93 => Fault::Deadline,
            94..=97 => Fault::Closed,
            _ => Fault::CloseInFlight,
        };
        let fault = if op.supports(wanted) {
            wanted
        } else if r.below(8) == 0 {
            Fault::Panic
        } else {
            Fault::None
        };
        let delay = match r.below(4) {
            // A deadline is met by work that takes time, not by ready work.
            _ if fault == Fault::Deadline => {
                Delay::Sleeps(Duration::from_micros(50 + r.below(500)))
            }
            0 | 1 => Delay::Ready,
            2 => Delay::Yields(1 + r.below(3) as u32),
            _ => Delay::Sleeps(Duration::from_micros(20 + r.below(500))),
        };
        Plan {
            id,
            op,
            fault,
            delay,
            target: r.below(3) as usize,
            short: Duration::from_micros(r.below(3000)),
        }
    }

    /// Whether the work itself never ends (only a cancel or close stops it).
    fn endless(&self) -> bool {
        matches!(
            self.fault,
            Fault::Cancel | Fault::Timeout | Fault::CloseInFlight
        ) && !self.is_executor()
    }

    fn is_executor(&self) -> bool {
        matches!(self.op, Op::ExecutorWait | Op::ExecutorAwait)
    }
}

fn value(id: u64) -> u64 {
    Rng::new(0x5eed, id).next()
}

fn panic_message(id: u64) -> String {
    format!("soak-injected panic in call {id}")
}

// ---- the ledger: per call, how often each thing happened ----

struct Ledger {
    /// The caller recorded an outcome.
    resolved: Vec<AtomicU8>,
    /// The work reached its end (its value or its panic).
    finished: Vec<AtomicU8>,
    /// The submitted future or closure was dropped.
    dropped: Vec<AtomicU8>,
    /// What `finished` must be at the end: 0, 1, or `ANY`.
    expect_finished: Vec<AtomicU8>,
    /// Tokens alive right now.
    live: AtomicUsize,
}

const ANY: u8 = u8::MAX;

static LEDGER: OnceLock<Ledger> = OnceLock::new();

fn ledger() -> &'static Ledger {
    LEDGER.get().expect("ledger made in main")
}

/// Travels inside the submitted future or closure; counts its drop.
struct Token(u64);

impl Token {
    fn new(id: u64) -> Token {
        ledger().live.fetch_add(1, Ordering::SeqCst);
        Token(id)
    }
}

impl Drop for Token {
    fn drop(&mut self) {
        let l = ledger();
        l.dropped[self.0 as usize].fetch_add(1, Ordering::SeqCst);
        l.live.fetch_sub(1, Ordering::SeqCst);
    }
}

fn finish(id: u64) {
    ledger().finished[id as usize].fetch_add(1, Ordering::SeqCst);
}

// ---- the work ----

/// The async work of a call: passes time, then gives the value or panics;
/// never ends if the fault needs endless work.
async fn work(p: Plan, token: Token) -> u64 {
    let _token = token;
    match p.delay {
        Delay::Ready => {}
        Delay::Yields(n) => {
            for _ in 0..n {
                tokio::task::yield_now().await;
            }
        }
        Delay::Sleeps(d) => tokio::time::sleep(d).await,
    }
    if p.endless() {
        std::future::pending::<()>().await;
    }
    finish(p.id);
    if p.fault == Fault::Panic {
        panic!("{}", panic_message(p.id));
    }
    value(p.id)
}

/// The blocking work of an executor call. `gate`, if any, is awaited first
/// (a `Timeout` call opens it once its `wait_for` gave up).
fn job(p: Plan, token: Token, gate: Option<mpsc::Receiver<()>>) -> u64 {
    let _token = token;
    if let Some(gate) = gate {
        let _ = gate.recv_timeout(BOUND);
    }
    match p.delay {
        Delay::Ready => {}
        Delay::Yields(n) => (0..n).for_each(|_| thread::yield_now()),
        Delay::Sleeps(d) => thread::sleep(d),
    }
    finish(p.id);
    if p.fault == Fault::Panic {
        panic!("{}", panic_message(p.id));
    }
    value(p.id)
}

// ---- outcomes ----

/// What a call gave back.
#[derive(Debug, PartialEq, Eq)]
enum Got {
    Value(u64),
    Panicked(String),
    Cancelled,
    Timeout,
    LoopClosed,
    Other(String),
}

impl From<Result<u64, Error>> for Got {
    fn from(r: Result<u64, Error>) -> Got {
        match r {
            Ok(v) => Got::Value(v),
            Err(Error::Panicked(p)) => Got::Panicked(p.message().to_owned()),
            Err(Error::Cancelled) => Got::Cancelled,
            Err(Error::Timeout) => Got::Timeout,
            Err(Error::LoopClosed) => Got::LoopClosed,
            Err(e) => Got::Other(format!("{e:?}")),
        }
    }
}

fn from_unwind(r: std::thread::Result<u64>) -> Got {
    match r {
        Ok(v) => Got::Value(v),
        Err(payload) => Got::Panicked(
            payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default(),
        ),
    }
}

/// Unwraps a nested `block_on_safe`, letting its panic continue as a panic.
fn unwrap_nested(r: Result<u64, Error>) -> u64 {
    match r {
        Ok(v) => v,
        Err(Error::Panicked(p)) => resume_unwind(p.into_panic()),
        Err(e) => panic!("nested call failed: {e}"),
    }
}

/// The outcome a call must give, and whether its work must have finished.
struct Expect {
    outcomes: &'static [&'static str],
    finished: u8,
}

fn kind(g: &Got) -> &'static str {
    match g {
        Got::Value(_) => "value",
        Got::Panicked(_) => "panicked",
        Got::Cancelled => "cancelled",
        Got::Timeout => "timeout",
        Got::LoopClosed => "loop-closed",
        Got::Other(_) => "other",
    }
}

const OUTCOMES: [&str; 6] = [
    "value",
    "panicked",
    "cancelled",
    "timeout",
    "loop-closed",
    "other",
];

// ---- the environment every call shares ----

struct Env {
    loops: [LoopHandle; 3],
    closed: LoopHandle,
    multi: tokio::runtime::Runtime,
}

thread_local! {
    static CURRENT: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread runtime");
}

fn in_current<R>(f: impl FnOnce(&tokio::runtime::Runtime) -> R) -> R {
    CURRENT.with(f)
}

/// Awaits `fut` in this thread's current-thread runtime, bounded by [`BOUND`].
fn await_tokio(fut: ConcurrentFuture<u64>) -> Got {
    in_current(|rt| {
        rt.block_on(async move {
            match tokio::time::timeout(BOUND, fut).await {
                Ok(r) => Got::from(r),
                Err(_) => Got::Other("hung in .await".into()),
            }
        })
    })
}

/// `wait_for` bounded by [`BOUND`]: a `Timeout` here means a hang.
fn wait_bounded(fut: ConcurrentFuture<u64>) -> Got {
    match fut.wait_for(BOUND) {
        Err(Error::Timeout) => Got::Other("hung in wait".into()),
        r => Got::from(r),
    }
}

/// Makes one call and returns what it gave, plus whether a `cancel` won
/// (for executor jobs, where that decides the expected outcome).
fn call(env: &Env, p: Plan) -> (Got, Option<bool>) {
    let id = p.id;
    let target = &env.loops[p.target];
    match p.op {
        Op::CallBlocking => (
            from_unwind(catch_unwind(|| {
                bridge::call_blocking(work(p, Token::new(id)))
            })),
            None,
        ),
        Op::CallBlockingInRuntime => (
            from_unwind(catch_unwind(|| {
                in_current(|rt| {
                    rt.block_on(async move { bridge::call_blocking(work(p, Token::new(id))) })
                })
            })),
            None,
        ),
        Op::BlockOnSafePlain => (bridge::block_on_safe(work(p, Token::new(id))).into(), None),
        Op::BlockOnSafeCurrent => (
            in_current(|rt| {
                rt.block_on(async move { bridge::block_on_safe(work(p, Token::new(id))) })
            })
            .into(),
            None,
        ),
        Op::BlockOnSafeMulti => {
            let task = env
                .multi
                .spawn(async move { bridge::block_on_safe(work(p, Token::new(id))) });
            match env.multi.block_on(task) {
                Ok(r) => (r.into(), None),
                Err(e) => (Got::Other(format!("tokio task failed: {e}")), None),
            }
        }
        Op::BlockOnSafeLoop => {
            let fut = target.spawn(async move {
                unwrap_nested(bridge::block_on_safe(work(p, Token::new(id))))
            });
            (wait_bounded(fut), None)
        }
        Op::Nested => (
            from_unwind(catch_unwind(|| {
                bridge::call_blocking(async move {
                    unwrap_nested(bridge::block_on_safe(async move {
                        bridge::call_blocking(work(p, Token::new(id)))
                    }))
                })
            })),
            None,
        ),
        Op::NestedInLoop => {
            let fut = target.spawn(async move {
                bridge::call_blocking(async move {
                    unwrap_nested(bridge::block_on_safe(work(p, Token::new(id))))
                })
            });
            (wait_bounded(fut), None)
        }
        Op::SpawnWait | Op::SpawnAwaitTokio | Op::SpawnAwaitFutures => spawn_call(env, p),
        Op::ExecutorWait | Op::ExecutorAwait => executor_call(p),
    }
}

fn spawn_call(env: &Env, p: Plan) -> (Got, Option<bool>) {
    let id = p.id;
    let mut fresh = None;
    let target = match p.fault {
        Fault::Closed => env.closed.clone(),
        Fault::CloseInFlight => {
            let lp = Loop::builder().name("soak-fresh").build().expect("a loop");
            let h = lp.handle();
            fresh = Some(lp);
            h
        }
        _ => env.loops[p.target].clone(),
    };
    let fut = bridge::run_coroutine_threadsafe(work(p, Token::new(id)), &target);
    match p.fault {
        Fault::Cancel => {
            // Let the work start (or not), with this thread registered as a
            // waiter for a moment, then cancel: endless work cannot be done,
            // so the cancel must win.
            if fut.wait_timeout(p.short) {
                return (Got::Other("endless work finished".into()), None);
            }
            if !fut.cancel() {
                return (Got::Other("cancel of endless work failed".into()), None);
            }
        }
        Fault::CloseInFlight => drop(fresh.take()),
        Fault::Timeout => return (fut.wait_for(p.short).into(), None),
        _ => {}
    }
    let got = match p.op {
        Op::SpawnAwaitTokio => await_tokio(fut),
        Op::SpawnAwaitFutures => Got::from(futures::executor::block_on(fut)),
        _ => wait_bounded(fut),
    };
    (got, None)
}

fn executor_call(p: Plan) -> (Got, Option<bool>) {
    let id = p.id;
    let (gate_tx, gate_rx) = match p.fault {
        Fault::Timeout => {
            let (tx, rx) = mpsc::channel();
            (Some(tx), Some(rx))
        }
        _ => (None, None),
    };
    let token = Token::new(id);
    let fut = bridge::run_in_executor(None, move || job(p, token, gate_rx));
    match p.fault {
        Fault::Cancel => {
            let won = fut.cancel();
            let got = match p.op {
                Op::ExecutorAwait => await_tokio(fut),
                _ => wait_bounded(fut),
            };
            (got, Some(won))
        }
        Fault::Timeout => {
            // The job waits for the gate, so it cannot be done in time.
            let got = fut.wait_for(p.short).into();
            if let Some(tx) = gate_tx {
                let _ = tx.send(());
            }
            (got, None)
        }
        Fault::Deadline => (wait_bounded(fut), None),
        _ => match p.op {
            Op::ExecutorAwait => (await_tokio(fut), None),
            _ => (wait_bounded(fut), None),
        },
    }
}

/// What the call must have given.
fn expected(p: &Plan, cancel_won: Option<bool>) -> Expect {
    let one = |o: &'static [&'static str], finished| Expect {
        outcomes: o,
        finished,
    };
    match p.fault {
        Fault::None | Fault::Deadline => one(&["value"], 1),
        Fault::Panic => one(&["panicked"], 1),
        Fault::Cancel => match cancel_won {
            Some(false) => one(&["value"], 1),
            _ => one(&["cancelled"], 0),
        },
        // A gated executor job whose cancel lost runs once the gate opens.
        Fault::Timeout if p.is_executor() => one(&["timeout"], ANY),
        Fault::Timeout => one(&["timeout"], 0),
        Fault::Closed => one(&["loop-closed"], 0),
        Fault::CloseInFlight => one(&["cancelled", "loop-closed"], 0),
    }
}

// ---- process figures ----

#[derive(Clone, Copy)]
struct Figures {
    threads: usize,
    rss_kb: u64,
}

impl fmt::Display for Figures {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} threads, RSS {:.1} MB",
            self.threads,
            self.rss_kb as f64 / 1024.0
        )
    }
}

fn figures() -> Figures {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    Figures {
        threads: field("Threads:") as usize,
        rss_kb: field("VmRSS:"),
    }
}

// ---- the run ----

struct Config {
    threads: usize,
    calls: u64,
    seed: u64,
}

fn parse_args() -> Config {
    let mut c = Config {
        threads: 16,
        calls: DEFAULT_CALLS,
        seed: 0x00b1_d9e5,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut num = |what: &str| -> u64 {
            let v = args.next().unwrap_or_default();
            v.parse()
                .unwrap_or_else(|_| panic!("{what} needs a number, got {v:?}"))
        };
        match a.as_str() {
            "--calls" => c.calls = num("--calls"),
            "--threads" => c.threads = num("--threads") as usize,
            "--seed" => c.seed = num("--seed"),
            "--long" => c.calls = DEFAULT_CALLS * 10,
            "--help" | "-h" => {
                println!("usage: soak [--calls N] [--long] [--threads N] [--seed S]");
                std::process::exit(0);
            }
            other => panic!("unknown argument {other:?}; try --help"),
        }
    }
    assert!(
        c.threads > 0 && c.calls > 0,
        "--threads and --calls must be positive"
    );
    c
}

/// Counts per op, per fault and per outcome.
struct Counts {
    ops: Vec<AtomicU64>,
    faults: Vec<AtomicU64>,
    outcomes: Vec<AtomicU64>,
    mismatches: AtomicU64,
    first_mismatches: Mutex<Vec<String>>,
}

fn main() {
    let cfg = parse_args();
    // Injected panics are expected: keep them off the terminal.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let msg = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if !msg.starts_with("soak-injected") {
            default_hook(info);
        }
    }));
    let n = cfg.calls as usize;
    let _ = LEDGER.set(Ledger {
        resolved: (0..n).map(|_| AtomicU8::new(0)).collect(),
        finished: (0..n).map(|_| AtomicU8::new(0)).collect(),
        dropped: (0..n).map(|_| AtomicU8::new(0)).collect(),
        expect_finished: (0..n).map(|_| AtomicU8::new(0)).collect(),
        live: AtomicUsize::new(0),
    });
    // Touch every entry now, so that the ledger's pages count in the start
    // figures and do not pose as growth later.
    let l = ledger();
    for v in [&l.resolved, &l.finished, &l.dropped, &l.expect_finished] {
        v.iter().for_each(|a| a.store(0, Ordering::SeqCst));
    }
    let counts = Counts {
        ops: OPS.iter().map(|_| AtomicU64::new(0)).collect(),
        faults: FAULTS.iter().map(|_| AtomicU64::new(0)).collect(),
        outcomes: OUTCOMES.iter().map(|_| AtomicU64::new(0)).collect(),
        mismatches: AtomicU64::new(0),
        first_mismatches: Mutex::new(Vec::new()),
    };

    // The environment, warmed up, before the start figures.
    let loop_a = Loop::builder().name("soak-a").build().expect("loop a");
    let loop_b = Loop::builder().name("soak-b").build().expect("loop b");
    let closed = {
        let lp = Loop::builder().name("soak-closed").build().expect("a loop");
        let h = lp.handle();
        lp.close();
        h
    };
    let env = Env {
        loops: [loop_a.handle(), loop_b.handle(), bridge::worker_loop()],
        closed,
        multi: tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("soak-multi")
            .enable_all()
            .build()
            .expect("a multi-thread runtime"),
    };
    assert_eq!(bridge::call_blocking(async { 1 }), 1);
    assert_eq!(bridge::run_in_executor(None, || 1).wait().unwrap(), 1);
    let start = figures();
    println!(
        "soak: {} threads, {} calls, seed {}; start: {start}",
        cfg.threads, cfg.calls, cfg.seed
    );

    let progress = AtomicU64::new(0);
    let in_flight: Vec<AtomicU64> = (0..cfg.threads).map(|_| AtomicU64::new(u64::MAX)).collect();
    let finished_run = AtomicBool::new(false);
    let longest_gap = Mutex::new(Duration::ZERO);
    let mid: Mutex<Option<Figures>> = Mutex::new(None);
    let began = Instant::now();

    thread::scope(|s| {
        // The watchdog: no finished call for `STALL` is a hang.
        s.spawn(|| {
            let mut last = progress.load(Ordering::SeqCst);
            let mut since = Instant::now();
            while !finished_run.load(Ordering::SeqCst) {
                thread::sleep(Duration::from_millis(100));
                let now = progress.load(Ordering::SeqCst);
                if now != last {
                    last = now;
                    since = Instant::now();
                    continue;
                }
                let gap = since.elapsed();
                let mut longest = longest_gap.lock().unwrap();
                *longest = (*longest).max(gap);
                if gap >= STALL {
                    eprintln!("soak: HANG: no call finished for {gap:?}; calls in flight:");
                    for (t, c) in in_flight.iter().enumerate() {
                        let id = c.load(Ordering::SeqCst);
                        if id != u64::MAX {
                            eprintln!("  thread {t}: {:?}", Plan::new(cfg.seed, id));
                        }
                    }
                    eprintln!("soak: FAILED (hang)");
                    std::process::exit(2);
                }
            }
        });
        let workers: Vec<_> = (0..cfg.threads)
            .map(|t| {
                let (env, counts, progress, in_flight, mid) =
                    (&env, &counts, &progress, &in_flight, &mid);
                let cfg = &cfg;
                thread::Builder::new()
                    .name(format!("soak-{t}"))
                    .spawn_scoped(s, move || {
                        let mut id = t as u64;
                        while id < cfg.calls {
                            in_flight[t].store(id, Ordering::SeqCst);
                            let p = Plan::new(cfg.seed, id);
                            let (got, cancel_won) = call(env, p);
                            let exp = expected(&p, cancel_won);
                            let l = ledger();
                            l.resolved[id as usize].fetch_add(1, Ordering::SeqCst);
                            l.expect_finished[id as usize].store(exp.finished, Ordering::SeqCst);
                            let k = kind(&got);
                            let right = exp.outcomes.contains(&k)
                                && match &got {
                                    Got::Value(v) => *v == value(id),
                                    Got::Panicked(m) => *m == panic_message(id),
                                    _ => true,
                                };
                            counts.ops[OPS.iter().position(|o| *o == p.op).unwrap()]
                                .fetch_add(1, Ordering::SeqCst);
                            counts.faults[FAULTS.iter().position(|f| *f == p.fault).unwrap()]
                                .fetch_add(1, Ordering::SeqCst);
                            counts.outcomes[OUTCOMES.iter().position(|o| *o == k).unwrap()]
                                .fetch_add(1, Ordering::SeqCst);
                            if !right {
                                counts.mismatches.fetch_add(1, Ordering::SeqCst);
                                let mut first = counts.first_mismatches.lock().unwrap();
                                if first.len() < 20 {
                                    first.push(format!(
                                        "call {id} {:?}/{:?}: got {got:?}, expected {:?}",
                                        p.op, p.fault, exp.outcomes
                                    ));
                                }
                            }
                            in_flight[t].store(u64::MAX, Ordering::SeqCst);
                            if progress.fetch_add(1, Ordering::SeqCst) + 1 == cfg.calls / 2 {
                                *mid.lock().unwrap() = Some(figures());
                            }
                            id += cfg.threads as u64;
                        }
                    })
                    .expect("spawn a soak thread")
            })
            .collect();
        for w in workers {
            if let Err(p) = w.join() {
                finished_run.store(true, Ordering::SeqCst);
                resume_unwind(p);
            }
        }
        finished_run.store(true, Ordering::SeqCst);
    });
    let elapsed = began.elapsed();
    let at_end = figures();

    // Settle: detached work (cancelled tasks, gated jobs) is dropped soon;
    // idle threads retire.
    let settle_start = Instant::now();
    while l.live.load(Ordering::SeqCst) != 0 && settle_start.elapsed() < SETTLE {
        thread::sleep(Duration::from_millis(20));
    }
    while figures().threads > start.threads + THREAD_SLACK && settle_start.elapsed() < SETTLE {
        thread::sleep(Duration::from_millis(100));
    }
    let settled_in = settle_start.elapsed();
    let end = figures();

    // Account for every call.
    let (mut lost, mut duplicated, mut undropped, mut double_dropped, mut wrong_finish) =
        (0u64, 0u64, 0u64, 0u64, 0u64);
    let mut notes = Vec::new();
    for id in 0..n {
        let r = l.resolved[id].load(Ordering::SeqCst);
        let d = l.dropped[id].load(Ordering::SeqCst);
        let f = l.finished[id].load(Ordering::SeqCst);
        let ef = l.expect_finished[id].load(Ordering::SeqCst);
        match r {
            0 => lost += 1,
            1 => {}
            _ => duplicated += 1,
        }
        match d {
            0 => undropped += 1,
            1 => {}
            _ => double_dropped += 1,
        }
        if ef != ANY && f != ef {
            wrong_finish += 1;
            if notes.len() < 10 {
                notes.push(format!(
                    "call {id} {:?}: work finished {f} times, expected {ef}",
                    Plan::new(cfg.seed, id as u64)
                ));
            }
        }
    }
    let mismatches = counts.mismatches.load(Ordering::SeqCst);
    let accounted = n as u64 - lost - duplicated;
    let list = |names: Vec<String>, vals: &[AtomicU64]| -> String {
        names
            .iter()
            .zip(vals)
            .map(|(n, v)| format!("{n}={}", v.load(Ordering::SeqCst)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let injected: u64 = counts.faults[1..]
        .iter()
        .map(|c| c.load(Ordering::SeqCst))
        .sum();
    let mid = mid.lock().unwrap().unwrap_or(at_end);
    let loops_left = bridge::loops().len();

    println!(
        "calls made: {} in {:.1?} ({:.0} calls/s)",
        cfg.calls,
        elapsed,
        cfg.calls as f64 / elapsed.as_secs_f64()
    );
    println!(
        "  by kind: {}",
        list(OPS.iter().map(|o| format!("{o:?}")).collect(), &counts.ops)
    );
    println!(
        "faults injected: {injected} ({})",
        list(
            FAULTS.iter().map(|f| format!("{f:?}")).collect(),
            &counts.faults
        )
    );
    println!(
        "outcomes: {}",
        list(
            OUTCOMES.iter().map(|o| o.to_string()).collect(),
            &counts.outcomes
        )
    );
    println!(
        "results accounted for: {accounted}/{n}: wrong outcome {mismatches}, lost {lost}, \
         duplicated {duplicated}, futures/closures never dropped {undropped}, dropped twice \
         {double_dropped}, work finished a wrong number of times {wrong_finish}"
    );
    println!(
        "hangs: 0 (longest stretch without a finished call: {:.1?}, sampled every 100 ms; \
         limit {STALL:?})",
        *longest_gap.lock().unwrap()
    );
    println!("figures: start {start}; middle {mid}; end of calls {at_end}; settled {end} (after {settled_in:.1?})");
    println!("bridge loops alive at the end: {loops_left} (soak-a, soak-b, the worker)");

    let mut failures = Vec::new();
    if mismatches > 0 {
        failures.push(format!("{mismatches} calls gave the wrong outcome"));
    }
    if lost + duplicated > 0 {
        failures.push(format!("{lost} lost, {duplicated} duplicated"));
    }
    if undropped + double_dropped > 0 {
        failures.push(format!(
            "{undropped} never dropped, {double_dropped} dropped twice"
        ));
    }
    if wrong_finish > 0 {
        failures.push(format!("{wrong_finish} ran the wrong number of times"));
    }
    if end.threads > start.threads + THREAD_SLACK {
        failures.push(format!(
            "threads grew: {} at the start, {} after settling {SETTLE:?}",
            start.threads, end.threads
        ));
    }
    if end.rss_kb > mid.rss_kb + RSS_SLACK_KB {
        failures.push(format!(
            "RSS grew across the second half: {} KB at the middle, {} KB at the end",
            mid.rss_kb, end.rss_kb
        ));
    }
    if loops_left != 3 {
        failures.push(format!("{loops_left} bridge loops alive, expected 3"));
    }
    drop(loop_a);
    drop(loop_b);
    if failures.is_empty() {
        println!("soak: OK");
    } else {
        for m in counts.first_mismatches.lock().unwrap().iter().chain(&notes) {
            eprintln!("  {m}");
        }
        for f in &failures {
            eprintln!("soak: FAILED: {f}");
        }
        std::process::exit(1);
    }
}
