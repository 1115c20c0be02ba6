//! An async server (axum on the application's own `#[tokio::main]` runtime)
//! whose handler calls legacy sync code, which itself needs async work: the
//! nested case that makes tokio panic with "Cannot start a runtime from within
//! a runtime" when the legacy code uses `Runtime::block_on`.
//!
//! The call chain of one `GET /profile/{user}`:
//!
//! ```text
//! async handler (app runtime)
//!   -> legacy::lookup()            sync, written before the service went async
//!        -> bridge::call_blocking   async directory lookup, on bridge's worker loop
//!             -> legacy::quota_for()        sync helper called from that async code
//!                  -> bridge::block_on_safe  async quota read (nested: on the worker loop)
//!   -> bridge::run_in_executor(None, ..).await   CPU-heavy token hashing, off the loop
//! ```
//!
//! While `legacy::lookup` blocks, bridge moves the app runtime's core to
//! another thread (`block_in_place`), so other requests keep being served.
//!
//! By default (or with `--self-test N`) it fires N requests at itself from
//! concurrent client threads (plain blocking `std::net::TcpStream` HTTP/1.1),
//! checks every answer, prints p50/p99 latency and throughput, and exits
//! non-zero if any request failed. `--serve` keeps it running instead.
//!
//! Run it: `cargo run --example async_server_calls_sync -- --self-test 200`
//! Options: `--clients M` (client threads, 16).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use axum::extract::Path;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use tokio::sync::{mpsc, oneshot, RwLock};

#[path = "support/selftest.rs"]
mod selftest;
use selftest::{http_get, percentile};

// ------------------------------------------------------- the async services

/// A user record as the directory service returns it.
#[derive(Clone, Debug)]
struct User {
    name: String,
    plan: &'static str,
}

/// A directory service: an actor task on bridge's worker loop, reached over
/// a channel. Each lookup takes a little simulated I/O time.
#[derive(Clone)]
struct Directory {
    tx: mpsc::Sender<(String, oneshot::Sender<Option<User>>)>,
}

impl Directory {
    fn start(users: usize) -> Directory {
        let (tx, mut rx) = mpsc::channel::<(String, oneshot::Sender<Option<User>>)>(256);
        let table: HashMap<String, User> =
            (0..users).map(|n| (format!("user{n}"), user(n))).collect();
        drop(bridge::worker_loop().spawn(async move {
            while let Some((id, reply)) = rx.recv().await {
                let found = table.get(&id).cloned();
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(1)).await; // the "query"
                    let _ = reply.send(found);
                });
            }
        }));
        Directory { tx }
    }

    async fn get(&self, id: String) -> Option<User> {
        let (reply, answer) = oneshot::channel();
        self.tx.send((id, reply)).await.ok()?;
        answer.await.ok().flatten()
    }
}

/// The plan quotas, behind an async lock (a config store updated at run time).
fn quotas() -> &'static RwLock<HashMap<&'static str, u32>> {
    static QUOTAS: OnceLock<RwLock<HashMap<&'static str, u32>>> = OnceLock::new();
    QUOTAS.get_or_init(|| RwLock::new(HashMap::from([("free", 10), ("pro", 100), ("team", 1000)])))
}

fn user(n: usize) -> User {
    User {
        name: format!("User Number {n}"),
        plan: ["free", "pro", "team"][n % 3],
    }
}

// ------------------------------------------------------------ legacy code

/// Code from before the service went async: sync signatures, called from
/// many places, too big to rewrite now.
mod legacy {
    use super::{Directory, User};
    use std::sync::OnceLock;

    /// A profile as the old code builds it.
    pub struct Profile {
        pub id: String,
        pub user: User,
        pub quota: u32,
    }

    pub fn directory() -> &'static Directory {
        static DIRECTORY: OnceLock<Directory> = OnceLock::new();
        DIRECTORY.get_or_init(|| Directory::start(1000))
    }

    /// Looks a user up. Sync, but the directory is async now.
    pub fn lookup(id: &str) -> Result<Profile, String> {
        let id = id.to_owned();
        bridge::call_blocking(async move {
            let user = directory()
                .get(id.clone())
                .await
                .ok_or_else(|| format!("no user {id:?}"))?;
            // More old sync code, called from inside async code.
            let quota = quota_for(user.plan);
            super::note_threads("legacy async part", None);
            Ok(Profile { id, user, quota })
        })
    }

    /// Another old sync helper, which now also needs async work. It runs
    /// inside `lookup`'s future, on bridge's worker loop: a nested blocking
    /// call that plain `Runtime::block_on` would refuse with a panic.
    pub fn quota_for(plan: &'static str) -> u32 {
        bridge::block_on_safe(async move { super::quotas().read().await.get(plan).copied() })
            .expect("the quota read does not panic")
            .unwrap_or(0)
    }
}

// --------------------------------------------------------- the CPU step

/// Key stretching: many rounds of FNV-1a over the profile (a stand-in for a
/// password hash or signature: pure CPU, milliseconds per call).
fn session_token(id: &str, plan: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for round in 0..5_000u64 {
        for b in id.bytes().chain(plan.bytes()) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        h ^= round;
    }
    h
}

fn render(p: &legacy::Profile, token: u64) -> String {
    format!(
        "{}: {} (plan {}, quota {}) token {token:016x}\n",
        p.id, p.user.name, p.user.plan, p.quota
    )
}

// ------------------------------------------------------------- handler

async fn profile(Path(id): Path<String>) -> Result<String, (StatusCode, String)> {
    // Legacy sync code, called straight from the async handler.
    let p = legacy::lookup(&id).map_err(|e| (StatusCode::NOT_FOUND, e + "\n"))?;
    // CPU-heavy work goes to the default executor; awaiting it frees the loop.
    let (pid, plan) = (p.id.clone(), p.user.plan);
    let token = bridge::run_in_executor(None, move || {
        note_threads("hashing", None);
        session_token(&pid, plan)
    })
    .await
    .map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")))?;
    note_threads("handler", Some(()));
    Ok(render(&p, token))
}

/// Prints, for the first request only, which thread ran each part.
fn note_threads(part: &str, last: Option<()>) {
    static SHOWN: AtomicBool = AtomicBool::new(false);
    if SHOWN.load(Ordering::Relaxed) {
        return;
    }
    let t = std::thread::current();
    println!(
        "  first request: {part:<17} ran on thread {:?}",
        t.name().unwrap_or("?")
    );
    if last.is_some() {
        SHOWN.store(true, Ordering::Relaxed);
    }
}

// ---------------------------------------------------------------- self-test

/// What `/profile/user{n}` must answer, computed independently of the server.
fn expected(n: usize) -> String {
    let id = format!("user{n}");
    let u = user(n);
    let quota = match u.plan {
        "free" => 10,
        "pro" => 100,
        _ => 1000,
    };
    let token = session_token(&id, u.plan);
    render(&legacy::Profile { id, user: u, quota }, token)
}

/// Fires `n` requests from `clients` threads; returns (latencies, failures, wall time).
fn load(addr: SocketAddr, n: usize, clients: usize) -> (Vec<Duration>, Vec<String>, Duration) {
    let want: Vec<String> = (0..100).map(expected).collect();
    let path = |i: usize| format!("/profile/user{}", i % 100);
    let run = selftest::load(addr, n, clients, path, |i| want[i % 100].clone());
    (run.latencies, run.failed, run.wall)
}

// --------------------------------------------------------------------- main

fn parse_args() -> (Option<usize>, usize) {
    let (mut self_test, mut clients) = (Some(200), 16);
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut number = |flag: &str| -> usize {
            it.next()
                .and_then(|v| v.parse().ok())
                .filter(|&v| v > 0)
                .unwrap_or_else(|| usage(&format!("{flag} needs a positive number")))
        };
        match flag.as_str() {
            "--self-test" => self_test = Some(number("--self-test")),
            "--clients" => clients = number("--clients"),
            "--serve" => self_test = None,
            other => usage(&format!("unknown argument {other:?}")),
        }
    }
    (self_test, clients)
}

fn usage(problem: &str) -> ! {
    eprintln!("{problem}\nusage: async_server_calls_sync [--self-test N | --serve] [--clients M]");
    std::process::exit(2)
}

#[tokio::main]
async fn main() {
    let (self_test, clients) = parse_args();
    let app = Router::new().route("/profile/{id}", get(profile));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1");
    let addr = listener.local_addr().expect("server address");
    tokio::spawn(async move { axum::serve(listener, app).await });
    println!("axum on the app's own tokio runtime: http://{addr}/profile/user{{n}}");

    let Some(n) = self_test else {
        println!("serving until killed; try: curl http://{addr}/profile/user7");
        std::future::pending::<()>().await;
        return;
    };

    // The client side is blocking code: run it off the runtime.
    let clients = clients.min(n);
    let (first, missing, (lat, mut failed, wall)) = tokio::task::spawn_blocking(move || {
        let first = http_get(addr, "/profile/user7");
        let missing = http_get(addr, "/profile/nobody");
        (first, missing, load(addr, n, clients))
    })
    .await
    .expect("the load run does not panic");

    match first {
        Ok((status, body)) => print!("GET /profile/user7 -> {status} {body}"),
        Err(e) => failed.push(format!("/profile/user7: {e}")),
    }
    match missing {
        Ok((404, body)) => print!("GET /profile/nobody -> 404 {body}"),
        Ok((status, body)) => failed.push(format!(
            "/profile/nobody: wanted 404, got {status} {body:?}"
        )),
        Err(e) => failed.push(format!("/profile/nobody: {e}")),
    }
    println!(
        "self-test: {n} requests from {clients} client threads -> {} ok, {} failed",
        lat.len(),
        n - lat.len()
    );
    println!(
        "  latency p50 {:.2?}, p99 {:.2?}; throughput {:.0} requests/s",
        percentile(&lat, 50.0),
        percentile(&lat, 99.0),
        lat.len() as f64 / wall.as_secs_f64()
    );
    if !failed.is_empty() {
        for f in failed.iter().take(10) {
            eprintln!("FAILED {f}");
        }
        eprintln!("{} request(s) failed", failed.len());
        std::process::exit(1);
    }
    println!("all requests answered correctly");
}
