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
//! is met, a closed loop or executor, a loop closed while the call is in
//! flight, a consumer that drops a stream early) and its delays come from a
//! small PRNG seeded with `(seed, id)`, so a failing call can be replayed by
//! id. Every call must end with exactly the outcome its fault should give
//! (the value, `Panicked` with its own message, `Cancelled`, `Timeout`,
//! `LoopClosed`, the closed executor's panic).
//!
//! One call in six is a stream call: sync code iterating
//! `iter_blocking(stream)` (from a plain thread, inside a tokio runtime,
//! inside a task of a bridge loop or of the worker loop), async code
//! consuming `stream_in_executor(executor, iter)` (in a tokio runtime, in a
//! loop's task; on the default executor, on the soak's own, or on a closed
//! one), and both at once (`iter_blocking(stream_in_executor(..))`). The
//! stream or iterator yields k items (0, a few, or more than the read-ahead
//! of 64, sometimes more than the worker's 256 items per turn), each ready,
//! after yields, or (every 16th) after a sleep, and may panic at item j, or
//! its consumer, which sometimes pauses too, drops it after j items (a
//! dropped stream may be one that never ends). The consumer checks
//! that every item comes in order, none lost or duplicated, that a panic
//! comes after exactly j items, and that the iterator or stream is fused
//! after its end or its panic. At the end:
//!
//! * every call resolved exactly once, with the expected outcome;
//! * every submitted future or closure, and every stream or iterator, was
//!   dropped exactly once (a stream on the worker loop, an iterator on its
//!   executor's thread, or on the caller's if the executor was closed), and
//!   ran to its end exactly when its outcome says it did;
//! * no stream or iterator was ever more than the read-ahead bound ahead of
//!   its consumer, and every item handed over was dropped;
//! * no call hung: a watchdog fails the run if no call finishes for 30 s;
//! * threads and memory did not grow: thread count and RSS are printed at
//!   the start, the middle and the end, and the run fails if the threads do
//!   not settle back near the start or the RSS grows across the second half.
//!
//! The process exits with 0 only if all of that holds.

use std::any::Any;
use std::fmt;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use bridge::{ConcurrentFuture, Error, Executor, ExecutorStream, Loop, LoopHandle};
use futures::stream::{FusedStream, Stream, StreamExt};
use futures::FutureExt;

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
    /// `iter_blocking(stream)` iterated from a plain thread.
    IterBlocking,
    /// `iter_blocking(stream)` iterated inside a current-thread tokio
    /// runtime's `block_on`.
    IterBlockingInRuntime,
    /// `iter_blocking(stream)` iterated inside a task of a bridge `Loop` or
    /// of the worker loop (whose core moves away while `next()` waits).
    IterBlockingInLoop,
    /// `stream_in_executor(executor, iter)` consumed in a current-thread
    /// tokio runtime.
    StreamInExecutor,
    /// `stream_in_executor(executor, iter)` consumed in a task of a bridge
    /// `Loop` or of the worker loop.
    StreamInExecutorInLoop,
    /// `iter_blocking(stream_in_executor(executor, iter))` from a plain
    /// thread: an iterator on an executor, through the worker loop, back to
    /// sync code.
    IterOverExecutorStream,
}

const OPS: [Op; 19] = [
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
    Op::IterBlocking,
    Op::IterBlockingInRuntime,
    Op::IterBlockingInLoop,
    Op::StreamInExecutor,
    Op::StreamInExecutorInLoop,
    Op::IterOverExecutorStream,
];

/// The ops before the stream ops in [`OPS`].
const CALL_OPS: usize = 13;
/// One call in this many is a stream call: with its items it costs about
/// twice as much as another call.
const STREAM_SHARE: u64 = 6;

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
    /// Submitted to a loop that is already closed: `LoopClosed`. A stream's
    /// iterator given to an executor that is already closed: the stream's
    /// first poll panics saying so (`ExecutorClosed`), and the iterator,
    /// which never ran, is dropped on the calling thread.
    Closed,
    /// Submitted to a fresh loop that is closed while the work is pending:
    /// `Cancelled` (it had started) or `LoopClosed` (it never ran).
    CloseInFlight,
    /// The consumer of a stream or iterator drops it after `at` items: the
    /// value, and the stream or iterator is dropped on its own thread.
    DropEarly,
}

const FAULTS: [Fault; 8] = [
    Fault::None,
    Fault::Panic,
    Fault::Cancel,
    Fault::Timeout,
    Fault::Deadline,
    Fault::Closed,
    Fault::CloseInFlight,
    Fault::DropEarly,
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
            Op::IterBlocking | Op::IterBlockingInRuntime | Op::IterBlockingInLoop => {
                matches!(f, None | Panic | DropEarly)
            }
            Op::StreamInExecutor | Op::StreamInExecutorInLoop | Op::IterOverExecutorStream => {
                matches!(f, None | Panic | DropEarly | Closed)
            }
            _ => matches!(f, None | Panic),
        }
    }

    fn is_stream(self) -> bool {
        matches!(
            self,
            Op::IterBlocking
                | Op::IterBlockingInRuntime
                | Op::IterBlockingInLoop
                | Op::StreamInExecutor
                | Op::StreamInExecutorInLoop
                | Op::IterOverExecutorStream
        )
    }

    /// Whether the items come from a blocking iterator on an executor.
    fn is_executor_stream(self) -> bool {
        matches!(
            self,
            Op::StreamInExecutor | Op::StreamInExecutorInLoop | Op::IterOverExecutorStream
        )
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
    /// Stream calls: how many items the stream or iterator yields.
    items: u32,
    /// Stream calls: the item at which it panics (`Panic`, up to `items`:
    /// at `items` it panics instead of ending), or how many items its
    /// consumer takes before dropping it (`DropEarly`).
    at: u32,
    /// Stream calls on an executor: the soak's own (else the default one).
    own_pool: bool,
    /// `iter_blocking` with `DropEarly`: after its items the stream waits
    /// forever instead of ending, so only the drop stops it.
    endless_stream: bool,
    /// Stream calls: how the consumer passes time after every 16th item.
    consumer: Delay,
}

impl Plan {
    fn new(seed: u64, id: u64) -> Plan {
        let mut r = Rng::new(seed, id);
        let op = if r.below(STREAM_SHARE) == 0 {
            OPS[CALL_OPS + r.below((OPS.len() - CALL_OPS) as u64) as usize]
        } else {
            OPS[r.below(CALL_OPS as u64) as usize]
        };
        let roll = r.below(100);
        let wanted = match roll {
            _ if op.is_stream() => match roll {
                0..=59 => Fault::None,
                60..=74 => Fault::Panic,
                75..=93 => Fault::DropEarly,
                _ => Fault::Closed,
            },
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
        let target = r.below(3) as usize;
        let short = Duration::from_micros(r.below(3000));
        // 0, a few, up to the read-ahead, past it (about 1 in 32), past
        // the worker's 256 items per turn (about 1 in 512).
        let items = match r.below(512) {
            0..=63 => 0,
            64..=431 => 1 + r.below(8),
            432..=495 => 9 + r.below(56),
            496..=510 => 65 + r.below(128),
            _ => 257 + r.below(256),
        } as u32;
        let at = r.below(u64::from(items) + 1) as u32;
        let consumer = match r.below(8) {
            0 => Delay::Yields(1 + r.below(3) as u32),
            1 => Delay::Sleeps(Duration::from_micros(20 + r.below(300))),
            _ => Delay::Ready,
        };
        Plan {
            id,
            op,
            fault,
            delay,
            target,
            short,
            items,
            at,
            own_pool: r.below(2) == 0,
            endless_stream: fault == Fault::DropEarly
                && !op.is_executor_stream()
                && r.below(2) == 0,
            consumer,
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

    /// How many items a stream call's stream or iterator may have made
    /// beyond those its consumer has counted: the read-ahead, plus the item
    /// the consumer is taking (its channel releases the room when the item
    /// is taken, just before the consumer counts it); twice that through
    /// both directions at once.
    fn ahead_bound(&self) -> u32 {
        let one = READ_AHEAD + 1;
        match self.op {
            Op::IterOverExecutorStream => 2 * one,
            _ => one,
        }
    }

    /// `DropEarly`: whether the stream or iterator may have reached its end
    /// before its consumer dropped it, having read ahead that far (`ANY`),
    /// or cannot have (0: it never ends, or the bound keeps it short of
    /// its end).
    fn finished_if_dropped(&self) -> u8 {
        if self.endless_stream || self.items + 1 > self.at + self.ahead_bound() {
            0
        } else {
            ANY
        }
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
    /// The stream or iterator was dropped on a thread it must not be.
    off_thread: Vec<AtomicU8>,
    /// The stream or iterator ran further ahead of its consumer than the
    /// read-ahead bound allows.
    overran: Vec<AtomicU8>,
    /// What the two above saw first, for the report.
    notes: Mutex<Vec<String>>,
    /// Tokens alive right now.
    live: AtomicUsize,
    /// Stream items alive right now (made and not yet dropped).
    items_live: AtomicUsize,
}

const ANY: u8 = u8::MAX;

static LEDGER: OnceLock<Ledger> = OnceLock::new();

fn ledger() -> &'static Ledger {
    LEDGER.get().expect("ledger made in main")
}

/// Where a token must be dropped.
#[derive(Debug)]
enum DropOn {
    Anywhere,
    /// A thread of the worker loop (its runtime names them all alike).
    WorkerLoop,
    /// A thread of the executor whose threads' names start with this.
    Executor(&'static str),
    /// This thread.
    Thread(thread::ThreadId),
}

/// Travels inside the submitted future or closure, or the stream or
/// iterator; counts its drop, and checks where it happens.
struct Token(u64, DropOn);

impl Token {
    fn new(id: u64) -> Token {
        Token::on(id, DropOn::Anywhere)
    }

    fn on(id: u64, place: DropOn) -> Token {
        ledger().live.fetch_add(1, Ordering::SeqCst);
        Token(id, place)
    }
}

impl Drop for Token {
    fn drop(&mut self) {
        let l = ledger();
        let here = thread::current();
        let name = here.name().unwrap_or("");
        let right = match self.1 {
            DropOn::Anywhere => true,
            DropOn::WorkerLoop => name == WORKER_THREAD,
            DropOn::Executor(prefix) => name.starts_with(prefix),
            DropOn::Thread(id) => here.id() == id,
        };
        if !right {
            l.off_thread[self.0 as usize].fetch_add(1, Ordering::SeqCst);
            note(format!(
                "call {}: dropped on thread {name:?}, expected {:?}",
                self.0, self.1
            ));
        }
        l.dropped[self.0 as usize].fetch_add(1, Ordering::SeqCst);
        l.live.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Keeps the first few broken stream contracts for the report.
fn note(what: String) {
    let mut notes = ledger().notes.lock().unwrap_or_else(|e| e.into_inner());
    if notes.len() < 10 {
        notes.push(what);
    }
}

fn finish(id: u64) {
    ledger().finished[id as usize].fetch_add(1, Ordering::SeqCst);
}

// ---- the work ----

/// Passes `delay` in async code (on a tokio runtime's timer).
async fn pass_async(delay: Delay) {
    match delay {
        Delay::Ready => {}
        Delay::Yields(n) => {
            for _ in 0..n {
                tokio::task::yield_now().await;
            }
        }
        Delay::Sleeps(d) => tokio::time::sleep(d).await,
    }
}

/// Passes `delay` blocking this thread.
fn pass_blocking(delay: Delay) {
    match delay {
        Delay::Ready => {}
        Delay::Yields(n) => (0..n).for_each(|_| thread::yield_now()),
        Delay::Sleeps(d) => thread::sleep(d),
    }
}

/// The async work of a call: passes time, then gives the value or panics;
/// never ends if the fault needs endless work.
async fn work(p: Plan, token: Token) -> u64 {
    let _token = token;
    pass_async(p.delay).await;
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
    pass_blocking(p.delay);
    finish(p.id);
    if p.fault == Fault::Panic {
        panic!("{}", panic_message(p.id));
    }
    value(p.id)
}

// ---- the streams ----

/// The read-ahead bound of both stream directions (API.md: at most 64).
const READ_AHEAD: u32 = 64;
/// The name of the worker loop's threads.
const WORKER_THREAD: &str = "bridge-worker";
/// How the names of the soak's own executor's threads start.
const POOL_PREFIX: &str = "soak-pool";
/// How the names of the default executor's threads start.
const DEFAULT_POOL_PREFIX: &str = "bridge-default";
/// How the panic of a stream whose executor is closed starts.
const CLOSED_PANIC: &str = "bridge::stream_in_executor: the executor is closed";

/// One item of a stream call; counted while alive.
struct Item {
    call: u64,
    index: u32,
}

impl Item {
    fn new(call: u64, index: u32) -> Item {
        ledger().items_live.fetch_add(1, Ordering::SeqCst);
        Item { call, index }
    }
}

impl Drop for Item {
    fn drop(&mut self) {
        ledger().items_live.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Shared by a stream call's consumer and its stream or iterator.
#[derive(Default)]
struct Probe {
    /// The items the consumer has taken so far.
    seen: AtomicU32,
}

/// Whether item `i` waits for `delay` first: every item for yields, every
/// 16th for sleeps (a sleep per item would make long streams take long).
fn paced(delay: Delay, i: u32) -> Delay {
    match delay {
        Delay::Sleeps(_) if i % 16 != 0 => Delay::Ready,
        d => d,
    }
}

/// Item `i` of a stream call, or its end (`None`), or its injected panic;
/// records the end, and a read-ahead beyond the bound.
fn next_item(p: &Plan, i: u32, probe: &Probe) -> Option<Item> {
    if p.fault == Fault::Panic && i == p.at {
        finish(p.id);
        panic!("{}", panic_message(p.id));
    }
    if i == p.items {
        finish(p.id);
        return None;
    }
    let seen = probe.seen.load(Ordering::SeqCst);
    if i + 1 > seen + p.ahead_bound() {
        ledger().overran[p.id as usize].fetch_add(1, Ordering::SeqCst);
        note(format!(
            "call {}: item {i} made with {seen} taken, beyond the read-ahead bound",
            p.id
        ));
    }
    Some(Item::new(p.id, i))
}

/// The async stream of an `iter_blocking` call: `token` travels with it.
fn soak_stream(p: Plan, token: Token, probe: Arc<Probe>) -> impl Stream<Item = Item> + Send {
    futures::stream::unfold((0, token, probe), move |(i, token, probe)| async move {
        pass_async(paced(p.delay, i)).await;
        if p.endless_stream && i == p.items {
            std::future::pending::<()>().await;
        }
        let item = next_item(&p, i, &probe)?;
        Some((item, (i + 1, token, probe)))
    })
}

/// The blocking iterator of a `stream_in_executor` call.
struct SoakIter {
    p: Plan,
    next: u32,
    probe: Arc<Probe>,
    _token: Token,
}

impl Iterator for SoakIter {
    type Item = Item;

    fn next(&mut self) -> Option<Item> {
        pass_blocking(paced(self.p.delay, self.next));
        let item = next_item(&self.p, self.next, &self.probe)?;
        self.next += 1;
        Some(item)
    }
}

/// The executor a stream call's iterator runs on (`None`: the default one).
fn stream_pool(env: &Env, p: &Plan) -> Option<Executor> {
    match p.fault {
        Fault::Closed => Some(env.closed_pool.clone()),
        _ if p.own_pool => Some(env.pool.clone()),
        _ => None,
    }
}

/// `stream_in_executor` over the iterator of `p`, made on this thread.
fn executor_stream(p: Plan, pool: Option<&Executor>, probe: &Arc<Probe>) -> ExecutorStream<Item> {
    let place = match pool {
        // Never ran: dropped where it was handed over.
        _ if p.fault == Fault::Closed => DropOn::Thread(thread::current().id()),
        Some(_) => DropOn::Executor(POOL_PREFIX),
        None => DropOn::Executor(DEFAULT_POOL_PREFIX),
    };
    let iter = SoakIter {
        p,
        next: 0,
        probe: probe.clone(),
        _token: Token::on(p.id, place),
    };
    bridge::stream_in_executor(pool, iter)
}

/// How a stream call's consumer stopped.
enum Stop {
    /// An item out of order, or not its call's; what was wrong.
    Wrong(String),
    /// It dropped the stream or iterator after `at` items.
    Dropped,
    /// The end, after this many items.
    Ended(u32),
    /// A panic, after this many items.
    Panicked(u32, Box<dyn Any + Send>),
}

/// Checks that `item` is item `n` of call `p`.
fn check_item(p: &Plan, n: u32, item: &Item) -> Result<(), String> {
    if item.call == p.id && item.index == n {
        Ok(())
    } else {
        Err(format!(
            "item {n} expected, got item {} of call {}",
            item.index, item.call
        ))
    }
}

/// The outcome of a stream call, from how its consumer stopped and whether
/// the stream or iterator then stayed fused (`None` once more, no panic).
fn stream_outcome(p: &Plan, stop: Stop, fused: bool) -> Got {
    match stop {
        Stop::Wrong(what) => Got::Other(what),
        Stop::Dropped => Got::Value(value(p.id)),
        _ if !fused => Got::Other("not fused after its end or its panic".into()),
        Stop::Ended(n) if n == p.items => Got::Value(value(p.id)),
        Stop::Ended(n) => Got::Other(format!("ended after {n} of {} items", p.items)),
        Stop::Panicked(n, payload) => match from_unwind(Err(payload)) {
            Got::Panicked(m) if m.starts_with(CLOSED_PANIC) && n == 0 => Got::ExecutorClosed,
            Got::Panicked(m) if n != p.at => {
                Got::Other(format!("panicked after {n} items, expected {}: {m}", p.at))
            }
            got => got,
        },
    }
}

/// Iterates `it` from sync code as a stream call's consumer.
fn consume_iter(p: Plan, mut it: impl Iterator<Item = Item>, probe: &Probe) -> Got {
    let stop_at = (p.fault == Fault::DropEarly).then_some(p.at);
    let mut n = 0;
    let taken = catch_unwind(AssertUnwindSafe(|| {
        while stop_at != Some(n) {
            let Some(item) = it.next() else {
                return Stop::Ended(n);
            };
            if let Err(wrong) = check_item(&p, n, &item) {
                return Stop::Wrong(wrong);
            }
            drop(item);
            n += 1;
            probe.seen.store(n, Ordering::SeqCst);
            if n % 16 == 0 {
                pass_blocking(p.consumer);
            }
        }
        Stop::Dropped
    }));
    let stop = taken.unwrap_or_else(|payload| Stop::Panicked(n, payload));
    let fused = match stop {
        Stop::Ended(_) | Stop::Panicked(..) => {
            matches!(catch_unwind(AssertUnwindSafe(|| it.next())), Ok(None))
        }
        _ => true,
    };
    drop(it);
    stream_outcome(&p, stop, fused)
}

/// Consumes `s` in async code as a stream call's consumer.
async fn consume_stream(p: Plan, mut s: ExecutorStream<Item>, probe: Arc<Probe>) -> Got {
    let stop_at = (p.fault == Fault::DropEarly).then_some(p.at);
    let mut n = 0;
    let stop = loop {
        if stop_at == Some(n) {
            break Stop::Dropped;
        }
        match AssertUnwindSafe(s.next()).catch_unwind().await {
            Ok(Some(item)) => {
                if let Err(wrong) = check_item(&p, n, &item) {
                    break Stop::Wrong(wrong);
                }
                drop(item);
                n += 1;
                probe.seen.store(n, Ordering::SeqCst);
                if n % 16 == 0 {
                    pass_async(p.consumer).await;
                }
            }
            Ok(None) => break Stop::Ended(n),
            Err(payload) => break Stop::Panicked(n, payload),
        }
    };
    let fused = match stop {
        Stop::Ended(_) | Stop::Panicked(..) => {
            s.is_terminated() && matches!(AssertUnwindSafe(s.next()).catch_unwind().await, Ok(None))
        }
        _ => true,
    };
    drop(s);
    stream_outcome(&p, stop, fused)
}

/// An `iter_blocking` call: the stream polled on the worker loop, its items
/// iterated here.
fn iter_call(p: Plan) -> Got {
    let probe = Arc::new(Probe::default());
    let stream = soak_stream(p, Token::on(p.id, DropOn::WorkerLoop), probe.clone());
    consume_iter(p, bridge::iter_blocking(stream), &probe)
}

/// A `stream_in_executor` call: the iterator on `pool`, its items consumed
/// by the async code that made the stream.
async fn stream_call(p: Plan, pool: Option<Executor>) -> Got {
    let probe = Arc::new(Probe::default());
    let s = executor_stream(p, pool.as_ref(), &probe);
    consume_stream(p, s, probe).await
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
    /// A stream's first poll panicked: its executor was closed.
    ExecutorClosed,
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
        Got::ExecutorClosed => "executor-closed",
        Got::Other(_) => "other",
    }
}

const OUTCOMES: [&str; 7] = [
    "value",
    "panicked",
    "cancelled",
    "timeout",
    "loop-closed",
    "executor-closed",
    "other",
];

// ---- the environment every call shares ----

struct Env {
    loops: [LoopHandle; 3],
    closed: LoopHandle,
    multi: tokio::runtime::Runtime,
    /// The soak's own executor, for stream calls' iterators.
    pool: Executor,
    /// An executor that is closed.
    closed_pool: Executor,
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

/// [`wait_bounded`] for a task that works out its own outcome.
fn wait_got(fut: ConcurrentFuture<Got>) -> Got {
    match fut.wait_for(BOUND) {
        Ok(got) => got,
        Err(Error::Timeout) => Got::Other("hung in wait".into()),
        Err(e) => Got::from(Err(e)),
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
        Op::IterBlocking => (iter_call(p), None),
        Op::IterBlockingInRuntime => (
            in_current(|rt| rt.block_on(async move { iter_call(p) })),
            None,
        ),
        Op::IterBlockingInLoop => (wait_got(target.spawn(async move { iter_call(p) })), None),
        Op::StreamInExecutor => {
            let pool = stream_pool(env, &p);
            (in_current(|rt| rt.block_on(stream_call(p, pool))), None)
        }
        Op::StreamInExecutorInLoop => {
            let pool = stream_pool(env, &p);
            (wait_got(target.spawn(stream_call(p, pool))), None)
        }
        Op::IterOverExecutorStream => {
            let probe = Arc::new(Probe::default());
            let s = executor_stream(p, stream_pool(env, &p).as_ref(), &probe);
            (consume_iter(p, bridge::iter_blocking(s), &probe), None)
        }
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
        Fault::Closed if p.op.is_stream() => one(&["executor-closed"], 0),
        Fault::Closed => one(&["loop-closed"], 0),
        Fault::CloseInFlight => one(&["cancelled", "loop-closed"], 0),
        Fault::DropEarly => one(&["value"], p.finished_if_dropped()),
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
    /// Stream calls: how many, their items, how many had more items than
    /// the read-ahead and than the worker's items per turn.
    streams: [AtomicU64; 4],
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
        if !msg.starts_with("soak-injected") && !msg.starts_with(CLOSED_PANIC) {
            default_hook(info);
        }
    }));
    let n = cfg.calls as usize;
    let _ = LEDGER.set(Ledger {
        resolved: (0..n).map(|_| AtomicU8::new(0)).collect(),
        finished: (0..n).map(|_| AtomicU8::new(0)).collect(),
        dropped: (0..n).map(|_| AtomicU8::new(0)).collect(),
        expect_finished: (0..n).map(|_| AtomicU8::new(0)).collect(),
        off_thread: (0..n).map(|_| AtomicU8::new(0)).collect(),
        overran: (0..n).map(|_| AtomicU8::new(0)).collect(),
        notes: Mutex::new(Vec::new()),
        live: AtomicUsize::new(0),
        items_live: AtomicUsize::new(0),
    });
    // Touch every entry now, so that the ledger's pages count in the start
    // figures and do not pose as growth later.
    let l = ledger();
    for v in [
        &l.resolved,
        &l.finished,
        &l.dropped,
        &l.expect_finished,
        &l.off_thread,
        &l.overran,
    ] {
        v.iter().for_each(|a| a.store(0, Ordering::SeqCst));
    }
    let counts = Counts {
        ops: OPS.iter().map(|_| AtomicU64::new(0)).collect(),
        faults: FAULTS.iter().map(|_| AtomicU64::new(0)).collect(),
        outcomes: OUTCOMES.iter().map(|_| AtomicU64::new(0)).collect(),
        streams: Default::default(),
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
        pool: Executor::builder()
            .max_threads(4)
            .thread_name(POOL_PREFIX)
            .build(),
        closed_pool: {
            let pool = Executor::new(1);
            pool.close();
            pool
        },
    };
    assert_eq!(bridge::call_blocking(async { 1 }), 1);
    assert_eq!(bridge::run_in_executor(None, || 1).wait().unwrap(), 1);
    assert_eq!(
        bridge::iter_blocking(futures::stream::iter(0..3)).count(),
        3
    );
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
                            if p.op.is_stream() {
                                let n = u64::from(p.items);
                                let [calls, items, past_ahead, past_turn] = &counts.streams;
                                calls.fetch_add(1, Ordering::SeqCst);
                                items.fetch_add(n, Ordering::SeqCst);
                                past_ahead.fetch_add(u64::from(n > 64), Ordering::SeqCst);
                                past_turn.fetch_add(u64::from(n > 256), Ordering::SeqCst);
                            }
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
    while (l.live.load(Ordering::SeqCst) != 0 || l.items_live.load(Ordering::SeqCst) != 0)
        && settle_start.elapsed() < SETTLE
    {
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
    let (mut off_thread, mut overran) = (0u64, 0u64);
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
        off_thread += u64::from(l.off_thread[id].load(Ordering::SeqCst) != 0);
        overran += u64::from(l.overran[id].load(Ordering::SeqCst) != 0);
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
    let items_left = l.items_live.load(Ordering::SeqCst);
    notes.extend(l.notes.lock().unwrap().iter().cloned());

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
    let [calls, items, past_ahead, past_turn] =
        counts.streams.each_ref().map(|c| c.load(Ordering::SeqCst));
    println!(
        "stream calls: {calls}, of {items} items in all ({past_ahead} with more than the \
         read-ahead of 64, {past_turn} with more than the worker's 256 per turn): dropped on \
         the wrong thread {off_thread}, ahead of the consumer beyond the bound {overran}, \
         items never dropped {items_left}"
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
    if off_thread > 0 {
        failures.push(format!(
            "{off_thread} streams or iterators dropped on the wrong thread"
        ));
    }
    if overran > 0 {
        failures.push(format!(
            "{overran} streams or iterators ran ahead of their consumer beyond the bound"
        ));
    }
    if items_left > 0 {
        failures.push(format!("{items_left} stream items never dropped"));
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
