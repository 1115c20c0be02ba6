//! End to end: "bridge, or a runtime per thread?"
//!
//! The `sync_web_handler` setup: a `tiny_http` server with [`HANDLERS`] sync
//! handler threads; each request makes the handler call an async upstream
//! (an axum service on its own runtime, the same for every way) over a
//! keep-alive `reqwest` client. The handler reaches the async client in one
//! of these ways, measured in one run:
//!
//! * `bridge_call_blocking`: `bridge::call_blocking`, one client (one pool)
//!   made on the worker loop and shared by every handler thread;
//! * `bridge_block_on_safe`: `bridge::block_on_safe`, the same shared client
//!   (no loop runs on a handler thread, so the future runs inline there; the
//!   client's connection tasks run on the worker loop);
//! * `runtime_per_thread`: each handler thread owns a tokio current-thread
//!   runtime and its own client (pools cannot be shared across runtimes: a
//!   connection bound to one runtime's reactor stalls when another drives it)
//!   and calls `Runtime::block_on`;
//! * `runtime_thread_channel`: one runtime thread serving requests from a
//!   channel, one shared client (the `reqwest::blocking` pattern);
//! * `axum_native`: the same handler written async, on axum on a tokio
//!   multi-thread runtime (the ceiling: no sync code at all).
//!
//! The load comes from `clients` threads (1, 8 and 32), each on its own
//! keep-alive connection, one request after another, for a fixed time after
//! a warm-up. Each answer is checked. Per way and client count: requests per
//! second, p50 and p99 latency; each figure is the median over the rounds,
//! and the ways take turns within a round so a drift of the machine hits all
//! of them alike.
//!
//! Run: `cargo bench --bench e2e` (about 2 minutes), options after `--`:
//! `--secs S` (measured seconds per cell, 1.5), `--rounds R` (3),
//! `--clients 1,8,32`, `--ways bridge_call_blocking,axum_native,...`. It writes `target/criterion/e2e.json`;
//! `python3 benches/report.py --readme benches/README.md` turns it into the
//! table and `benches/e2e.svg`. Without `--bench` (as `cargo test --benches`
//! runs it) it only checks every way answers correctly.

#[path = "support/results.rs"]
mod results;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::routing::get;
use axum::Router;

/// Handler threads of the `tiny_http` front end (the example's default).
const HANDLERS: usize = 8;

fn expected_price(sku: u64) -> u64 {
    sku * 7 + 3
}

fn answer(sku: u64, price: &str) -> String {
    format!("/quote/{sku}: price {price}\n")
}

fn sku_of(path: &str) -> Option<u64> {
    path.strip_prefix("/quote/")?.parse().ok()
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy() // loopback only
        .build()
        .expect("build the HTTP client")
}

/// The upstream call every way makes: GET the price, as text.
async fn fetch(client: &reqwest::Client, upstream: SocketAddr, sku: u64) -> String {
    let url = format!("http://{upstream}/price/{sku}");
    let result = async {
        client
            .get(url)
            .send()
            .await?
            .error_for_status()?
            .text()
            .await
    };
    match result.await {
        Ok(price) => price,
        Err(e) => format!("upstream failed: {e}"),
    }
}

// ---------------------------------------------------------------- upstream

/// The async upstream: axum on its own one-worker runtime, shared by every way.
struct Upstream {
    addr: SocketAddr,
    _rt: tokio::runtime::Runtime,
}

fn start_upstream() -> Upstream {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("upstream")
        .enable_all()
        .build()
        .expect("upstream runtime");
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind the upstream");
    let addr = listener.local_addr().expect("upstream address");
    let app = Router::new().route(
        "/price/{sku}",
        get(|Path(sku): Path<u64>| async move { expected_price(sku).to_string() }),
    );
    rt.spawn(async move { axum::serve(listener, app).await });
    Upstream { addr, _rt: rt }
}

// --------------------------------------------------------------- the ways

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Way {
    BridgeCallBlocking,
    BridgeBlockOnSafe,
    RuntimePerThread,
    RuntimeThreadChannel,
    AxumNative,
}

const WAYS: [Way; 5] = [
    Way::BridgeCallBlocking,
    Way::BridgeBlockOnSafe,
    Way::RuntimePerThread,
    Way::RuntimeThreadChannel,
    Way::AxumNative,
];

impl Way {
    fn name(self) -> &'static str {
        match self {
            Way::BridgeCallBlocking => "bridge_call_blocking",
            Way::BridgeBlockOnSafe => "bridge_block_on_safe",
            Way::RuntimePerThread => "runtime_per_thread",
            Way::RuntimeThreadChannel => "runtime_thread_channel",
            Way::AxumNative => "axum_native",
        }
    }
}

/// A sync handler: the upstream's price for a SKU.
type Handler = Box<dyn FnMut(u64) -> String>;
/// Makes each handler thread's handler, on that thread.
type MakeHandler = Arc<dyn Fn() -> Handler + Send + Sync>;

/// A running front end: its address, and how to stop it.
struct FrontEnd {
    addr: SocketAddr,
    stop: Box<dyn FnOnce()>,
}

/// The `tiny_http` front end with [`HANDLERS`] threads calling `make()`'s handler.
fn tiny_http_front(make: MakeHandler) -> FrontEnd {
    let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").expect("bind the front end"));
    let addr = server.server_addr().to_ip().expect("an IP listener");
    let threads: Vec<_> = (0..HANDLERS)
        .map(|i| {
            let (server, make) = (server.clone(), make.clone());
            thread::Builder::new()
                .name(format!("handler-{i}"))
                .spawn(move || {
                    let mut handle = make();
                    while let Ok(request) = server.recv() {
                        let (status, body) = match sku_of(request.url()) {
                            Some(sku) => (200, answer(sku, &handle(sku))),
                            None => (404, "try /quote/{number}\n".to_owned()),
                        };
                        let response =
                            tiny_http::Response::from_string(body).with_status_code(status);
                        let _ = request.respond(response);
                    }
                })
                .expect("spawn a handler thread")
        })
        .collect();
    FrontEnd {
        addr,
        stop: Box::new(move || {
            for _ in &threads {
                server.unblock();
            }
            for t in threads {
                t.join().expect("handler thread");
            }
        }),
    }
}

/// The `reqwest::blocking` pattern: one runtime thread, requests over a channel.
struct RuntimeThread {
    tx: tokio::sync::mpsc::UnboundedSender<(u64, tokio::sync::oneshot::Sender<String>)>,
    thread: thread::JoinHandle<()>,
}

fn start_runtime_thread(upstream: SocketAddr) -> RuntimeThread {
    let (tx, mut rx) =
        tokio::sync::mpsc::unbounded_channel::<(u64, tokio::sync::oneshot::Sender<String>)>();
    let thread = thread::Builder::new()
        .name("runtime-thread".into())
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let client = client();
                while let Some((sku, reply)) = rx.recv().await {
                    let client = client.clone();
                    tokio::spawn(async move {
                        let _ = reply.send(fetch(&client, upstream, sku).await);
                    });
                }
            });
        })
        .expect("spawn the runtime thread");
    RuntimeThread { tx, thread }
}

fn start(way: Way, upstream: SocketAddr) -> FrontEnd {
    match way {
        Way::BridgeCallBlocking | Way::BridgeBlockOnSafe => {
            // One client, one pool, made on the worker loop.
            let shared = bridge::call_blocking(async { client() });
            let make: MakeHandler = Arc::new(move || {
                let client = shared.clone();
                if way == Way::BridgeCallBlocking {
                    Box::new(move |sku| bridge::call_blocking(fetch(&client, upstream, sku)))
                } else {
                    Box::new(move |sku| {
                        bridge::block_on_safe(fetch(&client, upstream, sku))
                            .unwrap_or_else(|e| format!("block_on_safe failed: {e}"))
                    })
                }
            });
            tiny_http_front(make)
        }
        Way::RuntimePerThread => {
            let make: MakeHandler = Arc::new(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime");
                let client = client();
                Box::new(move |sku| rt.block_on(fetch(&client, upstream, sku)))
            });
            tiny_http_front(make)
        }
        Way::RuntimeThreadChannel => {
            let rt = start_runtime_thread(upstream);
            let tx = rt.tx.clone();
            let make: MakeHandler = Arc::new(move || {
                let tx = tx.clone();
                Box::new(move |sku| {
                    let (reply, answer) = tokio::sync::oneshot::channel();
                    if tx.send((sku, reply)).is_err() {
                        return "runtime thread gone".to_owned();
                    }
                    answer
                        .blocking_recv()
                        .unwrap_or_else(|_| "no answer".to_owned())
                })
            });
            let front = tiny_http_front(make);
            FrontEnd {
                addr: front.addr,
                stop: Box::new(move || {
                    (front.stop)();
                    drop(rt.tx);
                    rt.thread.join().expect("runtime thread");
                }),
            }
        }
        Way::AxumNative => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .thread_name("axum-front")
                .enable_all()
                .build()
                .expect("front-end runtime");
            let listener = rt
                .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
                .expect("bind the front end");
            let addr = listener.local_addr().expect("address");
            let app = Router::new()
                .route(
                    "/quote/{sku}",
                    get(
                        move |State(client): State<reqwest::Client>, Path(sku): Path<u64>| async move {
                            answer(sku, &fetch(&client, upstream, sku).await)
                        },
                    ),
                )
                .with_state(client());
            let server = rt.spawn(async move { axum::serve(listener, app).await });
            FrontEnd {
                addr,
                stop: Box::new(move || {
                    server.abort();
                    rt.shutdown_timeout(Duration::from_secs(5));
                }),
            }
        }
    }
}

// ------------------------------------------------------------------- load

/// One keep-alive connection: GET `path`, read one response; returns the body.
fn get_keep_alive(conn: &mut BufReader<TcpStream>, path: &str) -> std::io::Result<String> {
    write!(conn.get_mut(), "GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n")?;
    let mut line = String::new();
    let mut length = None;
    let mut status_ok = false;
    let mut first = true;
    loop {
        line.clear();
        if conn.read_line(&mut line)? == 0 {
            return Err(std::io::Error::other("connection closed"));
        }
        let l = line.trim_end();
        if first {
            status_ok = l.split(' ').nth(1) == Some("200");
            first = false;
        } else if l.is_empty() {
            break;
        } else if let Some((k, v)) = l.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                length = v.trim().parse::<usize>().ok();
            }
        }
    }
    let length = length.ok_or_else(|| std::io::Error::other("no content-length"))?;
    let mut body = vec![0; length];
    conn.read_exact(&mut body)?;
    let body = String::from_utf8_lossy(&body).into_owned();
    if !status_ok {
        return Err(std::io::Error::other(format!("not 200: {body}")));
    }
    Ok(body)
}

/// What one cell measured.
struct Cell {
    latencies: Vec<Duration>,
    failed: usize,
    secs: f64,
    /// CPU time of the whole process (clients, front end, upstream) over the
    /// measured window: per request, a figure a busy machine disturbs less
    /// than throughput.
    cpu: Duration,
}

/// CPU time (user + system) used by this process so far.
fn process_cpu() -> Duration {
    // SAFETY: `getrusage` fills the struct it is given; a zeroed `rusage` is
    // a valid value of that plain C struct.
    let usage = unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut u);
        u
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

impl Cell {
    fn throughput(&self) -> f64 {
        self.latencies.len() as f64 / self.secs
    }

    fn percentile(&self, p: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        let rank = ((p / 100.0) * self.latencies.len() as f64).ceil() as usize;
        self.latencies[rank.clamp(1, self.latencies.len()) - 1]
    }
}

/// `clients` threads, each on its own keep-alive connection, one request
/// after another for `warm + secs`; the answers after `warm` are recorded.
/// With `requests` set, each client makes that many instead (a check).
fn load(
    addr: SocketAddr,
    clients: usize,
    warm: Duration,
    secs: Duration,
    requests: Option<usize>,
) -> Cell {
    let stop = AtomicBool::new(false);
    let start = Instant::now();
    let (from, to) = (start + warm, start + warm + secs);
    let mut cpu = Duration::ZERO;
    let per_thread: Vec<(Vec<Duration>, usize)> = thread::scope(|s| {
        let workers: Vec<_> = (0..clients)
            .map(|c| {
                let stop = &stop;
                s.spawn(move || {
                    let (mut lat, mut failed) = (Vec::new(), 0);
                    let stream = TcpStream::connect(addr).expect("connect to the front end");
                    stream.set_nodelay(true).ok();
                    stream.set_read_timeout(Some(Duration::from_secs(10))).ok();
                    let mut conn = BufReader::new(stream);
                    let mut i = c;
                    loop {
                        let now = Instant::now();
                        let done = match requests {
                            Some(n) => i >= c + n * clients,
                            None => now >= to,
                        };
                        if done || stop.load(Ordering::Relaxed) {
                            break;
                        }
                        let sku = (i % 50) as u64;
                        let path = format!("/quote/{sku}");
                        match get_keep_alive(&mut conn, &path) {
                            Ok(body) if body == answer(sku, &expected_price(sku).to_string()) => {
                                if requests.is_some() || now >= from {
                                    lat.push(now.elapsed());
                                }
                            }
                            Ok(body) => {
                                failed += 1;
                                eprintln!("wrong answer for {path}: {body:?}");
                            }
                            Err(e) => {
                                failed += 1;
                                eprintln!("{path}: {e}");
                                stop.store(true, Ordering::Relaxed);
                            }
                        }
                        i += clients;
                    }
                    (lat, failed)
                })
            })
            .collect();
        if requests.is_none() {
            thread::sleep(from.saturating_duration_since(Instant::now()));
            let c0 = process_cpu();
            thread::sleep(to.saturating_duration_since(Instant::now()));
            cpu = process_cpu().saturating_sub(c0);
        }
        workers
            .into_iter()
            .map(|w| w.join().expect("client thread"))
            .collect()
    });
    let mut latencies = Vec::new();
    let mut failed = 0;
    for (l, f) in per_thread {
        latencies.extend(l);
        failed += f;
    }
    latencies.sort();
    let secs = match requests {
        Some(_) => start.elapsed().as_secs_f64(),
        None => secs.as_secs_f64(),
    };
    Cell {
        latencies,
        failed,
        secs,
        cpu,
    }
}

// ------------------------------------------------------------------- main

struct Args {
    secs: f64,
    rounds: usize,
    clients: Vec<usize>,
    ways: Vec<Way>,
    bench: bool,
}

fn parse_args() -> Args {
    let mut args = Args {
        secs: 1.5,
        rounds: 3,
        clients: vec![1, 8, 32],
        ways: WAYS.to_vec(),
        bench: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--bench" => args.bench = true,
            "--secs" => args.secs = it.next().and_then(|v| v.parse().ok()).expect("--secs S"),
            "--rounds" => args.rounds = it.next().and_then(|v| v.parse().ok()).expect("--rounds R"),
            "--clients" => {
                args.clients = it
                    .next()
                    .map(|v| v.split(',').filter_map(|n| n.parse().ok()).collect())
                    .expect("--clients 1,8,32")
            }
            "--ways" => {
                let names = it.next().expect("--ways name,name");
                args.ways = WAYS
                    .into_iter()
                    .filter(|w| names.split(',').any(|n| n == w.name()))
                    .collect();
            }
            _ => {} // cargo's own flags
        }
    }
    args
}

/// One cell of one round: throughput, p50 (us), p99 (us), failed requests,
/// CPU per request (us).
type Round = (f64, f64, f64, usize, f64);

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    if v.is_empty() {
        return 0.0;
    }
    v[v.len() / 2]
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn main() {
    let args = parse_args();
    let upstream = start_upstream();
    bridge::call_blocking(async {});

    if !args.bench {
        // `cargo test --benches`: check every way answers, quickly.
        for way in WAYS {
            let front = start(way, upstream.addr);
            let cell = load(front.addr, 2, Duration::ZERO, Duration::ZERO, Some(20));
            (front.stop)();
            assert_eq!(cell.failed, 0, "{}: failed requests", way.name());
            assert_eq!(cell.latencies.len(), 40, "{}", way.name());
            println!("e2e {}: ok", way.name());
        }
        return;
    }

    let load_before = load_average();
    let warm = Duration::from_millis(300);
    let secs = Duration::from_secs_f64(args.secs);
    let mut results: Vec<(Way, usize, Vec<Round>)> = Vec::new();
    for &clients in &args.clients {
        for &way in &args.ways {
            results.push((way, clients, Vec::new()));
        }
    }
    for round in 0..args.rounds {
        for &clients in &args.clients {
            // The ways take turns, starting from a different one each round.
            for k in 0..args.ways.len() {
                let way = args.ways[(k + round) % args.ways.len()];
                let front = start(way, upstream.addr);
                let cell = load(front.addr, clients, warm, secs, None);
                (front.stop)();
                let (tput, p50, p99) = (
                    cell.throughput(),
                    cell.percentile(50.0).as_secs_f64() * 1e6,
                    cell.percentile(99.0).as_secs_f64() * 1e6,
                );
                let cpu = cell.cpu.as_secs_f64() * 1e6 / cell.latencies.len().max(1) as f64;
                println!(
                    "round {round} clients {clients:>2} {:<24} {:>8.0} req/s  p50 {:>8.1} us  p99 {:>8.1} us  cpu/req {:>6.1} us  failed {}",
                    way.name(),
                    tput,
                    p50,
                    p99,
                    cpu,
                    cell.failed
                );
                let slot = results
                    .iter_mut()
                    .find(|(w, c, _)| *w == way && *c == clients)
                    .expect("a slot");
                slot.2.push((tput, p50, p99, cell.failed, cpu));
            }
        }
    }
    let load_after = load_average();

    println!(
        "\nmedians over {} rounds (load average before {load_before}, after {load_after}):",
        args.rounds
    );
    let mut rows = Vec::new();
    for (way, clients, runs) in &results {
        let tput = median(runs.iter().map(|r| r.0).collect());
        let p50 = median(runs.iter().map(|r| r.1).collect());
        let p99 = median(runs.iter().map(|r| r.2).collect());
        let failed: usize = runs.iter().map(|r| r.3).sum();
        let cpu = median(runs.iter().map(|r| r.4).collect());
        println!(
            "clients {clients:>2} {:<24} {:>8.0} req/s  p50 {:>8.1} us  p99 {:>8.1} us  cpu/req {cpu:>6.1} us  failed {failed}",
            way.name(),
            tput,
            p50,
            p99
        );
        let all: Vec<String> = runs
            .iter()
            .map(|r| format!("[{:.1}, {:.1}, {:.1}, {:.1}]", r.0, r.1, r.2, r.4))
            .collect();
        rows.push(format!(
            "    {{\"way\": \"{}\", \"clients\": {clients}, \"throughput\": {tput:.1}, \"p50_us\": {p50:.1}, \"p99_us\": {p99:.1}, \"cpu_us_per_request\": {cpu:.1}, \"failed\": {failed}, \"rounds\": [{}]}}",
            way.name(),
            all.join(", ")
        ));
    }
    let cores = thread::available_parallelism().map_or(0, |n| n.get());
    let json = format!(
        "{{\n  \"cores\": {cores},\n  \"handlers\": {HANDLERS},\n  \"secs\": {},\n  \"rounds\": {},\n  \"load_before\": \"{load_before}\",\n  \"load_after\": \"{load_after}\",\n  \"results\": [\n{}\n  ]\n}}\n",
        args.secs,
        args.rounds,
        rows.join(",\n")
    );
    results::write("e2e.json", &json);
}
