//! A synchronous web server whose handlers call async code.
//!
//! The front end is `tiny_http`, a plain blocking HTTP server: a few handler
//! threads, each taking one request at a time. Each handler needs data from an
//! async upstream service, fetched with `reqwest` (async) under a
//! `tokio::time::timeout`. `bridge::call_blocking` is the whole glue:
//!
//! * one `reqwest::Client` (one connection pool) is made once, on bridge's
//!   worker loop, and shared by every handler thread;
//! * every upstream call runs on that worker loop, whose reactor is always
//!   driven, so pooled connections stay usable from one request to the next;
//! * the upstream service itself (axum) also runs on the worker loop.
//!
//! By default (or with `--self-test N`) the example fires N requests at itself
//! from concurrent client threads (plain blocking `std::net::TcpStream`
//! HTTP/1.1), checks every answer, prints p50/p99 latency and throughput, and
//! exits non-zero if any request failed. `--serve` keeps it running instead.
//!
//! Run it: `cargo run --example sync_web_handler -- --self-test 200`
//! Options: `--threads T` (handler threads, 8), `--clients M` (client threads, 16).

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Path, State};
use axum::routing::get;
use axum::Router;

#[path = "support/selftest.rs"]
mod selftest;
use selftest::{http_get, percentile};

/// The upstream call's budget: past it the handler answers 504.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(1);

// ---------------------------------------------------------------- upstream

/// Which client ports the upstream saw: one per pooled connection.
type Peers = Arc<Mutex<HashSet<SocketAddr>>>;

/// `GET /price/{sku}`: the async "pricing service", with a little I/O wait.
async fn price(
    State(peers): State<Peers>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(sku): Path<u64>,
) -> String {
    peers.lock().unwrap().insert(peer);
    tokio::time::sleep(Duration::from_millis(1)).await;
    expected_price(sku).to_string()
}

/// `GET /slow`: an upstream that hangs, to show the timeout.
async fn slow() -> &'static str {
    tokio::time::sleep(UPSTREAM_TIMEOUT * 3).await;
    "too late"
}

fn expected_price(sku: u64) -> u64 {
    sku * 7 + 3
}

/// Starts the upstream service on bridge's worker loop and returns its address.
fn start_upstream(peers: Peers) -> SocketAddr {
    // Bind on the worker loop so the listener is registered with its reactor.
    let listener = bridge::call_blocking(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind the upstream on 127.0.0.1");
    let addr = listener.local_addr().expect("upstream address");
    let app = Router::new()
        .route("/price/{sku}", get(price))
        .route("/slow", get(slow))
        .with_state(peers)
        .into_make_service_with_connect_info::<SocketAddr>();
    // Runs for the life of the process; dropping the future detaches it.
    drop(bridge::worker_loop().spawn(async move { axum::serve(listener, app).await }));
    addr
}

// ----------------------------------------------------------------- handlers

/// The sync handler: plain blocking code, as in any pre-async code base.
fn handle(client: &reqwest::Client, upstream: SocketAddr, path: &str) -> (u16, String) {
    let upstream_path = match path.strip_prefix("/quote/") {
        Some("slow") => "/slow".to_owned(),
        Some(sku) if sku.parse::<u64>().is_ok() => format!("/price/{sku}"),
        _ => return (404, "try /quote/{number}\n".to_owned()),
    };
    let url = format!("http://{upstream}{upstream_path}");
    let client = client.clone(); // a clone shares the one pool
                                 // The only line that touches async: run it on the worker loop and wait.
    let result = bridge::call_blocking(async move {
        tokio::time::timeout(UPSTREAM_TIMEOUT, async {
            client
                .get(url)
                .send()
                .await?
                .error_for_status()?
                .text()
                .await
        })
        .await
    });
    match result {
        Ok(Ok(price)) => (200, format!("{path}: price {price}\n")),
        Ok(Err(e)) => (502, format!("upstream failed: {e}\n")),
        Err(_elapsed) => (
            504,
            format!("upstream took longer than {UPSTREAM_TIMEOUT:?}\n"),
        ),
    }
}

fn serve_forever(server: Arc<tiny_http::Server>, client: reqwest::Client, upstream: SocketAddr) {
    // `recv` fails once the server is unblocked at shutdown.
    while let Ok(request) = server.recv() {
        let (status, body) = handle(&client, upstream, request.url());
        let response = tiny_http::Response::from_string(body).with_status_code(status);
        let _ = request.respond(response);
    }
}

// ---------------------------------------------------------------- self-test

/// Fires `n` requests from `clients` threads; returns (latencies, failures, wall time).
fn load(addr: SocketAddr, n: usize, clients: usize) -> (Vec<Duration>, Vec<String>, Duration) {
    let path = |i: usize| format!("/quote/{}", i % 50);
    let want = |i: usize| {
        let sku = (i % 50) as u64;
        format!("/quote/{sku}: price {}\n", expected_price(sku))
    };
    let run = selftest::load(addr, n, clients, path, want);
    (run.latencies, run.failed, run.wall)
}

// --------------------------------------------------------------------- main

struct Args {
    self_test: Option<usize>,
    threads: usize,
    clients: usize,
}

fn parse_args() -> Args {
    let mut args = Args {
        self_test: Some(200),
        threads: 8,
        clients: 16,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut number = |flag: &str| -> usize {
            it.next()
                .and_then(|v| v.parse().ok())
                .filter(|&v| v > 0)
                .unwrap_or_else(|| usage(&format!("{flag} needs a positive number")))
        };
        match flag.as_str() {
            "--self-test" => args.self_test = Some(number("--self-test")),
            "--threads" => args.threads = number("--threads"),
            "--clients" => args.clients = number("--clients"),
            "--serve" => args.self_test = None,
            other => usage(&format!("unknown argument {other:?}")),
        }
    }
    args
}

fn usage(problem: &str) -> ! {
    eprintln!(
        "{problem}\nusage: sync_web_handler [--self-test N | --serve] [--threads T] [--clients M]"
    );
    std::process::exit(2)
}

fn main() {
    let args = parse_args();

    let peers: Peers = Arc::default();
    let upstream = start_upstream(peers.clone());
    // One client, one pool, made on the worker loop where all its I/O will run.
    let client = bridge::call_blocking(async {
        reqwest::Client::builder()
            .no_proxy() // loopback only
            .build()
            .expect("build the HTTP client")
    });

    let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").expect("bind 127.0.0.1"));
    let addr = server.server_addr().to_ip().expect("an IP listener");
    println!("upstream (axum, on bridge's worker loop, ~1 ms per answer): http://{upstream}");
    println!(
        "front end (tiny_http, {} sync handler threads): http://{addr}/quote/{{n}}",
        args.threads
    );
    let handlers: Vec<_> = (0..args.threads)
        .map(|i| {
            let (server, client) = (server.clone(), client.clone());
            std::thread::Builder::new()
                .name(format!("handler-{i}"))
                .spawn(move || serve_forever(server, client, upstream))
                .expect("spawn a handler thread")
        })
        .collect();

    let Some(n) = args.self_test else {
        println!("serving until killed; try: curl http://{addr}/quote/7");
        for h in handlers {
            let _ = h.join();
        }
        return;
    };

    // A first request, shown in full.
    match http_get(addr, "/quote/7") {
        Ok((status, body)) => print!("GET /quote/7 -> {status} {body}"),
        Err(e) => println!("GET /quote/7 -> {e}"),
    }

    let clients = args.clients.min(n);
    let (lat, mut failed, wall) = load(addr, n, clients);
    println!(
        "self-test: {n} requests from {clients} client threads -> {} ok, {} failed",
        lat.len(),
        failed.len()
    );
    println!(
        "  latency p50 {:.2?}, p99 {:.2?}; throughput {:.0} requests/s",
        percentile(&lat, 50.0),
        percentile(&lat, 99.0),
        lat.len() as f64 / wall.as_secs_f64()
    );
    println!(
        "  upstream connections used by the shared pool: {} (for {} upstream requests)",
        peers.lock().unwrap().len(),
        n + 1
    );

    // The timeout path: the upstream hangs, the handler answers 504 in time.
    let t0 = Instant::now();
    match http_get(addr, "/quote/slow") {
        Ok((504, _)) => println!(
            "GET /quote/slow -> 504 after {:.2?} (tokio::time::timeout {UPSTREAM_TIMEOUT:?})",
            t0.elapsed()
        ),
        Ok((status, body)) => {
            failed.push(format!("/quote/slow: wanted 504, got {status} {body:?}"))
        }
        Err(e) => failed.push(format!("/quote/slow: {e}")),
    }

    for _ in &handlers {
        server.unblock();
    }
    for h in handlers {
        h.join().expect("handler thread");
    }
    if !failed.is_empty() {
        for f in failed.iter().take(10) {
            eprintln!("FAILED {f}");
        }
        eprintln!("{} request(s) failed", failed.len());
        std::process::exit(1);
    }
    println!("all requests answered correctly");
}
