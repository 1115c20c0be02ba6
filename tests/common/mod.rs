//! Shared test support: run one test body in every context a caller of this
//! crate can be in, with a hang turned into a failure.
//!
//! `every_context!(name, body)` expands to a module `name` holding one
//! `#[test]` per [`Ctx`]; each runs `body(ctx)` (a plain `fn(Ctx)`) inside
//! that context, on a fresh thread, and fails if it takes longer than
//! [`TIMEOUT`].

#![allow(dead_code)] // each test file uses a different part of this module

use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long one test body may take before it counts as hung.
pub const TIMEOUT: Duration = Duration::from_secs(30);

/// Where a test body runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ctx {
    /// A plain thread, no executor at all.
    PlainThread,
    /// Inside `Runtime::block_on` of a tokio current-thread runtime.
    TokioCurrentBlockOn,
    /// Inside a task spawned on a tokio current-thread runtime.
    TokioCurrentTask,
    /// Inside a task spawned on a tokio multi-thread runtime.
    TokioMultiTask,
    /// Inside `Runtime::block_on` of a tokio multi-thread runtime.
    TokioMultiBlockOn,
    /// Inside `futures::executor::block_on`.
    FuturesBlockOn,
    /// Inside a task of a bridge `Loop` (`handle().spawn(..).wait()`).
    BridgeLoop,
    /// Inside `bridge::run`.
    BridgeRun,
    /// Nested in the worker loop (`bridge::call_blocking`).
    WorkerNested,
    /// On a tokio `spawn_blocking` thread.
    SpawnBlocking,
    /// Under `Runtime::enter` (a multi-thread runtime's context, no task).
    RuntimeEnter,
    /// Inside a `spawn_local` task of a `LocalSet` on a current-thread runtime.
    LocalSetCurrent,
    /// Inside a `spawn_local` task of a `LocalSet` driven by `block_on` of a
    /// multi-thread runtime.
    LocalSetMulti,
}

/// What `bridge::running_loop()` must report in a context.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// `None`.
    Nothing,
    /// `Tokio`; `true` for a multi-thread runtime, `false` for current-thread.
    Tokio { multi: bool },
    /// `Tokio` (multi-thread) or `None`: a tokio context where blocking is
    /// allowed (API.md: "may report Tokio").
    TokioOrNothing,
    /// `Foreign(name)`.
    Foreign(&'static str),
    /// `Bridge`.
    Bridge,
}

impl Ctx {
    /// Every context, in the order of the generated tests.
    pub const ALL: [Ctx; 13] = [
        Ctx::PlainThread,
        Ctx::TokioCurrentBlockOn,
        Ctx::TokioCurrentTask,
        Ctx::TokioMultiTask,
        Ctx::TokioMultiBlockOn,
        Ctx::FuturesBlockOn,
        Ctx::BridgeLoop,
        Ctx::BridgeRun,
        Ctx::WorkerNested,
        Ctx::SpawnBlocking,
        Ctx::RuntimeEnter,
        Ctx::LocalSetCurrent,
        Ctx::LocalSetMulti,
    ];

    /// What `running_loop()` must say here.
    pub fn expect(self) -> Expect {
        match self {
            Ctx::PlainThread => Expect::Nothing,
            Ctx::TokioCurrentBlockOn | Ctx::TokioCurrentTask | Ctx::LocalSetCurrent => {
                Expect::Tokio { multi: false }
            }
            Ctx::TokioMultiTask | Ctx::TokioMultiBlockOn | Ctx::LocalSetMulti => {
                Expect::Tokio { multi: true }
            }
            Ctx::FuturesBlockOn => Expect::Foreign("futures::executor"),
            Ctx::BridgeLoop | Ctx::BridgeRun | Ctx::WorkerNested => Expect::Bridge,
            Ctx::SpawnBlocking | Ctx::RuntimeEnter => Expect::TokioOrNothing,
        }
    }

    /// Whether a loop (bridge or foreign) is certainly running on this thread.
    pub fn in_loop(self) -> bool {
        !matches!(self.expect(), Expect::Nothing | Expect::TokioOrNothing)
    }
}

/// Runs `f` on a fresh thread; fails if it panics (the panic resumes here) or
/// if it has not finished within [`TIMEOUT`].
pub fn bounded<F: FnOnce() + Send + 'static>(what: &str, f: F) {
    bounded_for(what, TIMEOUT, f)
}

/// [`bounded`] with an explicit limit.
pub fn bounded_for<F: FnOnce() + Send + 'static>(what: &str, limit: Duration, f: F) {
    let (tx, rx) = mpsc::channel();
    let thread = std::thread::Builder::new()
        .name(format!("test-{what}"))
        .spawn(move || {
            let r = catch_unwind(AssertUnwindSafe(f));
            let _ = tx.send(r);
        })
        .expect("spawn the test thread");
    match rx.recv_timeout(limit) {
        Ok(Ok(())) => thread.join().expect("test thread exits"),
        Ok(Err(payload)) => resume_unwind(payload),
        Err(_) => panic!("{what}: did not finish within {limit:?} (hang)"),
    }
}

/// Runs `body(ctx)` inside `ctx`, bounded by [`TIMEOUT`].
pub fn run_in(ctx: Ctx, body: fn(Ctx)) {
    bounded(&format!("{ctx:?}"), move || enter(ctx, body));
}

/// A current-thread tokio runtime with timers and I/O.
pub fn current_rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("build a current-thread runtime")
}

/// A two-worker multi-thread tokio runtime with timers and I/O.
pub fn multi_rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("build a multi-thread runtime")
}

fn join<T>(r: Result<T, tokio::task::JoinError>) -> T {
    match r {
        Ok(v) => v,
        Err(e) if e.is_panic() => resume_unwind(e.into_panic()),
        Err(e) => panic!("test task did not finish: {e}"),
    }
}

fn bridge_result<T>(r: Result<T, bridge::Error>) -> T {
    match r {
        Ok(v) => v,
        Err(bridge::Error::Panicked(p)) => resume_unwind(p.into_panic()),
        Err(e) => panic!("test body did not finish: {e}"),
    }
}

/// Runs `body(ctx)` inside `ctx` on this thread.
pub fn enter(ctx: Ctx, body: fn(Ctx)) {
    match ctx {
        Ctx::PlainThread => body(ctx),
        Ctx::TokioCurrentBlockOn => current_rt().block_on(async move { body(ctx) }),
        Ctx::TokioCurrentTask => {
            let rt = current_rt();
            join(rt.block_on(async move { tokio::spawn(async move { body(ctx) }).await }))
        }
        Ctx::TokioMultiTask => {
            let rt = multi_rt();
            join(rt.block_on(async move { tokio::spawn(async move { body(ctx) }).await }))
        }
        Ctx::TokioMultiBlockOn => multi_rt().block_on(async move { body(ctx) }),
        Ctx::FuturesBlockOn => futures::executor::block_on(async move { body(ctx) }),
        Ctx::BridgeLoop => {
            let lp = bridge::Loop::builder()
                .name("ctx-loop")
                .build()
                .expect("start a loop");
            bridge_result(lp.handle().spawn(async move { body(ctx) }).wait())
        }
        Ctx::BridgeRun => bridge_result(bridge::run(async move { body(ctx) })),
        Ctx::WorkerNested => bridge::call_blocking(async move { body(ctx) }),
        Ctx::SpawnBlocking => {
            let rt = multi_rt();
            join(rt.block_on(rt.spawn_blocking(move || body(ctx))))
        }
        Ctx::RuntimeEnter => {
            let rt = multi_rt();
            let _guard = rt.enter();
            body(ctx)
        }
        Ctx::LocalSetCurrent => {
            let rt = current_rt();
            let local = tokio::task::LocalSet::new();
            join(local.block_on(&rt, async move {
                tokio::task::spawn_local(async move { body(ctx) }).await
            }))
        }
        Ctx::LocalSetMulti => {
            let rt = multi_rt();
            let local = tokio::task::LocalSet::new();
            join(rt.block_on(local.run_until(async move {
                tokio::task::spawn_local(async move { body(ctx) }).await
            })))
        }
    }
}

/// Expands to a module `$name` with one `#[test]` per context, each running
/// `$body` (a `fn(Ctx)`) there.
#[allow(unused_macros)] // not every test file runs bodies in every context
macro_rules! every_context {
    ($name:ident, $body:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            use $crate::common::{run_in, Ctx};

            #[test]
            fn plain_thread() {
                run_in(Ctx::PlainThread, $body)
            }
            #[test]
            fn tokio_current_block_on() {
                run_in(Ctx::TokioCurrentBlockOn, $body)
            }
            #[test]
            fn tokio_current_task() {
                run_in(Ctx::TokioCurrentTask, $body)
            }
            #[test]
            fn tokio_multi_task() {
                run_in(Ctx::TokioMultiTask, $body)
            }
            #[test]
            fn tokio_multi_block_on() {
                run_in(Ctx::TokioMultiBlockOn, $body)
            }
            #[test]
            fn futures_block_on() {
                run_in(Ctx::FuturesBlockOn, $body)
            }
            #[test]
            fn bridge_loop() {
                run_in(Ctx::BridgeLoop, $body)
            }
            #[test]
            fn bridge_run() {
                run_in(Ctx::BridgeRun, $body)
            }
            #[test]
            fn worker_nested() {
                run_in(Ctx::WorkerNested, $body)
            }
            #[test]
            fn spawn_blocking() {
                run_in(Ctx::SpawnBlocking, $body)
            }
            #[test]
            fn runtime_enter() {
                run_in(Ctx::RuntimeEnter, $body)
            }
            #[test]
            fn local_set_current() {
                run_in(Ctx::LocalSetCurrent, $body)
            }
            #[test]
            fn local_set_multi() {
                run_in(Ctx::LocalSetMulti, $body)
            }
        }
    };
}

/// Counts how many values carrying it have been dropped.
#[derive(Clone, Default)]
pub struct DropCounter(Arc<AtomicUsize>);

impl DropCounter {
    pub fn new() -> Self {
        Self::default()
    }

    /// A value that bumps the count when dropped.
    pub fn token(&self) -> DropToken {
        DropToken(self.0.clone())
    }

    pub fn count(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

/// Bumps its [`DropCounter`] when dropped.
pub struct DropToken(Arc<AtomicUsize>);

impl Drop for DropToken {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// Waits (yielding, not sleeping) until `cond` holds; fails after [`TIMEOUT`].
/// For state that another thread changes without telling anyone, such as
/// tokio's task count after a task finishes.
pub fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + TIMEOUT;
    while !cond() {
        assert!(Instant::now() < deadline, "never happened: {what}");
        std::thread::yield_now();
    }
}

/// One TCP round trip on 127.0.0.1 plus a tokio timer, all inside the
/// future: a listener accepts and echoes, a client sends `n` and reads it
/// back. Needs a tokio context with I/O and timers wherever it is polled.
pub async fn tcp_and_timer(n: u32) -> u32 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    tokio::time::sleep(Duration::from_millis(1)).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("local addr");
    let server = async move {
        let (mut s, _) = listener.accept().await.expect("accept");
        let mut buf = [0u8; 4];
        s.read_exact(&mut buf).await.expect("server read");
        s.write_all(&buf).await.expect("server write");
    };
    let client = async move {
        let mut c = tokio::net::TcpStream::connect(addr).await.expect("connect");
        c.write_all(&n.to_le_bytes()).await.expect("client write");
        let mut buf = [0u8; 4];
        c.read_exact(&mut buf).await.expect("client read");
        u32::from_le_bytes(buf)
    };
    let ((), echoed) = tokio::join!(server, client);
    tokio::time::timeout(Duration::from_millis(1), std::future::pending::<()>())
        .await
        .expect_err("a pending future times out");
    echoed
}

/// Runs this test binary again with only `test` selected (ignored or not)
/// and `env` set, so that a crash or an abort in the child (a panic while
/// panicking, a double release in a debug build, a hang-turned-abort) fails
/// the calling test instead of killing the whole run. Returns the child's
/// stdout; fails if the child did not succeed.
pub fn in_child_process(test: &str, env: &[(&str, &str)]) -> String {
    let out = std::process::Command::new(std::env::current_exe().expect("this test binary"))
        .args([
            test,
            "--exact",
            "--include-ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .envs(env.iter().copied())
        .output()
        .expect("re-run this test binary");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "child {test} failed: {:?}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}
