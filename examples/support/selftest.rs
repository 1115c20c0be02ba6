//! The load client shared by the two server examples' `--self-test`: plain
//! blocking HTTP/1.1 over `std::net::TcpStream` (no client library), so what
//! is measured is the server.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// One blocking HTTP/1.1 GET with `Connection: close`: status and body.
pub fn http_get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut raw = String::new();
    stream.read_to_string(&mut raw)?;
    let status = raw
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("not an HTTP response: {raw:?}")))?;
    let body = raw.split_once("\r\n\r\n").map_or("", |(_, b)| b).to_owned();
    Ok((status, body))
}

/// What a load run measured: sorted latencies of the good answers, the
/// failures (one line each), and the wall time of the whole run.
pub struct Load {
    pub latencies: Vec<Duration>,
    pub failed: Vec<String>,
    pub wall: Duration,
}

/// Fires request `0..n` from `clients` threads: request `i` is a GET of
/// `path(i)` that must answer 200 with the body `want(i)`.
pub fn load(
    addr: SocketAddr,
    n: usize,
    clients: usize,
    path: impl Fn(usize) -> String + Sync,
    want: impl Fn(usize) -> String + Sync,
) -> Load {
    let next = AtomicUsize::new(0);
    let started = Instant::now();
    let per_thread: Vec<(Vec<Duration>, Vec<String>)> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..clients)
            .map(|_| {
                s.spawn(|| {
                    let (mut lat, mut failed) = (Vec::new(), Vec::new());
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= n {
                            break (lat, failed);
                        }
                        let path = path(i);
                        let t0 = Instant::now();
                        match http_get(addr, &path) {
                            Ok((200, body)) if body == want(i) => lat.push(t0.elapsed()),
                            Ok((status, body)) => failed.push(format!("{path}: {status} {body:?}")),
                            Err(e) => failed.push(format!("{path}: {e}")),
                        }
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().expect("client thread"))
            .collect()
    });
    let wall = started.elapsed();
    let (mut latencies, mut failed) = (Vec::new(), Vec::new());
    for (l, f) in per_thread {
        latencies.extend(l);
        failed.extend(f);
    }
    latencies.sort();
    Load {
        latencies,
        failed,
        wall,
    }
}

/// The `p`-th percentile of sorted durations (nearest rank).
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}
