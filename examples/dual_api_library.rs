//! How a library exposes an async API *and* a blocking API from one async
//! implementation, the way `reqwest` and `reqwest::blocking` do, but without a
//! runtime thread per client, without panicking inside async code, and
//! without writing the blocking API by hand.
//!
//! The library is the module `kvclient` below: a pooled client for a small
//! line-based key-value protocol. `kvclient::Client` is the async API, written
//! once. `#[bridge::blocking]` writes the blocking API from it, in both forms:
//! a twin beside each async method (`client.get_blocking(key)`), and a wrapper
//! type whose methods keep their names (`kvclient::blocking::Client`). Every
//! blocking call runs on bridge's worker loop through `bridge::call_blocking`,
//! borrowing the client and its arguments: no clones, no `'static`. Copy that
//! module's shape.
//!
//! The example starts a real TCP key-value server on 127.0.0.1 (on the worker
//! loop) and uses the blocking client
//! 1. from plain `main`,
//! 2. from inside a `#[tokio::main]` function, where `reqwest::blocking`
//!    panics (shown, caught) and the blocking client just works,
//! 3. from many threads at once, all sharing one connection pool.
//!
//! Run it: `cargo run --example dual_api_library`

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// A client library for the line protocol `GET key` / `SET key value`.
///
/// One async implementation (`Client`); the blocking API is generated.
/// Everything that talks to the network is written once.
mod kvclient {
    use std::io;
    use std::net::SocketAddr;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};

    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    use tokio::net::TcpStream;
    use tokio::sync::Semaphore;

    /// One open connection, reused across requests.
    struct Conn {
        stream: BufReader<TcpStream>,
    }

    impl Conn {
        async fn roundtrip(&mut self, line: &str) -> io::Result<String> {
            self.stream.get_mut().write_all(line.as_bytes()).await?;
            let mut reply = String::new();
            if self.stream.read_line(&mut reply).await? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the server closed the connection",
                ));
            }
            Ok(reply.trim_end().to_owned())
        }
    }

    struct Pool {
        addr: SocketAddr,
        idle: Mutex<Vec<Conn>>,
        /// Caps the connections in use at once.
        slots: Semaphore,
        opened: AtomicUsize,
    }

    /// The async API. Cheap to clone: clones share one connection pool.
    ///
    /// Its connections belong to the tokio runtime that first uses them, as
    /// with every tokio-based client: use one `Client` from one runtime. The
    /// blocking API (the `_blocking` twins, and [`blocking::Client`]) always
    /// runs on bridge's worker loop, so a client used only through it works
    /// from every thread and every runtime.
    #[derive(Clone)]
    pub struct Client {
        pool: Arc<Pool>,
    }

    // The blocking API, in both forms: `get_blocking` and `set_blocking`
    // beside `get` and `set`, and `BlockingClient` (re-exported below as
    // `blocking::Client`) with blocking `get` and `set`.
    #[bridge::blocking(wrapper = BlockingClient)]
    #[bridge::blocking]
    impl Client {
        /// A client for the server at `addr`, with at most `max_connections`
        /// connections open at once.
        pub fn new(addr: SocketAddr, max_connections: usize) -> Client {
            Client {
                pool: Arc::new(Pool {
                    addr,
                    idle: Mutex::new(Vec::new()),
                    slots: Semaphore::new(max_connections),
                    opened: AtomicUsize::new(0),
                }),
            }
        }

        /// The value stored under `key`, if any.
        pub async fn get(&self, key: &str) -> io::Result<Option<String>> {
            check(key, "key")?;
            let reply = self.request(format!("GET {key}\n")).await?;
            match reply.split_once(' ') {
                Some(("VALUE", v)) => Ok(Some(v.to_owned())),
                _ if reply == "NOTFOUND" => Ok(None),
                _ => Err(protocol_error(&reply)),
            }
        }

        /// Stores `value` under `key`.
        pub async fn set(&self, key: &str, value: &str) -> io::Result<()> {
            check(key, "key")?;
            check(value, "value")?;
            match self.request(format!("SET {key} {value}\n")).await?.as_str() {
                "OK" => Ok(()),
                other => Err(protocol_error(other)),
            }
        }

        /// How many TCP connections this client (and its clones) ever opened.
        pub fn connections_opened(&self) -> usize {
            self.pool.opened.load(Ordering::Relaxed)
        }

        /// Private: no twin, not in the wrapper.
        async fn request(&self, line: String) -> io::Result<String> {
            let _slot = self.pool.slots.acquire().await.expect("never closed");
            let idle = self.pool.idle.lock().unwrap().pop();
            let mut conn = match idle {
                Some(conn) => conn,
                None => {
                    let stream = TcpStream::connect(self.pool.addr).await?;
                    stream.set_nodelay(true)?;
                    self.pool.opened.fetch_add(1, Ordering::Relaxed);
                    Conn {
                        stream: BufReader::new(stream),
                    }
                }
            };
            // On an error the connection is dropped, not returned to the pool.
            let reply = conn.roundtrip(&line).await?;
            self.pool.idle.lock().unwrap().push(conn);
            Ok(reply)
        }
    }

    fn check(s: &str, what: &str) -> io::Result<()> {
        if s.is_empty() || s.contains(['\n', '\r']) || (what == "key" && s.contains(' ')) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{what} {s:?} must be non-empty and on one line (keys without spaces)"),
            ));
        }
        Ok(())
    }

    fn protocol_error(reply: &str) -> io::Error {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("unexpected reply {reply:?}"),
        )
    }

    /// The blocking API as its own type, the `reqwest::blocking` way:
    /// callable from sync code anywhere (plain threads, inside a tokio
    /// runtime, inside another blocking call). Cheap to clone: clones share
    /// one pool, whose connections all live on bridge's one always-running
    /// worker loop. No runtime per client, no runtime thread per client, no
    /// "cannot drop a runtime" panic.
    pub mod blocking {
        pub use super::BlockingClient as Client;
    }
}

/// The server side: a line-based key-value store, one task per connection.
async fn serve(listener: tokio::net::TcpListener, accepted: Arc<AtomicUsize>) {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let store: Arc<Mutex<HashMap<String, String>>> = Arc::default();
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        accepted.fetch_add(1, Ordering::Relaxed);
        let store = store.clone();
        tokio::spawn(async move {
            let (read, mut write) = stream.into_split();
            let mut lines = BufReader::new(read).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let reply = match line.split_once(' ') {
                    Some(("GET", key)) => match store.lock().unwrap().get(key) {
                        Some(v) => format!("VALUE {v}\n"),
                        None => "NOTFOUND\n".to_owned(),
                    },
                    Some(("SET", kv)) => match kv.split_once(' ') {
                        Some((k, v)) => {
                            store.lock().unwrap().insert(k.to_owned(), v.to_owned());
                            "OK\n".to_owned()
                        }
                        None => "ERR SET needs a key and a value\n".to_owned(),
                    },
                    _ => "ERR unknown command\n".to_owned(),
                };
                if write.write_all(reply.as_bytes()).await.is_err() {
                    break;
                }
            }
        });
    }
}

/// Called from inside a tokio runtime, as application code often is.
/// (`#[tokio::main]` works on any function; this one builds a multi-thread
/// runtime and blocks on the body, exactly as on `main`.)
#[tokio::main]
async fn inside_tokio_main(kv: &kvclient::blocking::Client, addr: SocketAddr) {
    println!("\n2. inside #[tokio::main] (running loop: {:?})", running());

    // reqwest::blocking refuses to run here: it builds and drops a runtime of
    // its own, which tokio forbids inside an async context.
    let silent = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let outcome =
        std::panic::catch_unwind(|| reqwest::blocking::get("http://127.0.0.1:9/").map(|_| ()));
    std::panic::set_hook(silent);
    match outcome {
        Err(p) => println!(
            "   reqwest::blocking::get      -> panicked: {:?}",
            panic_text(&*p)
        ),
        Ok(r) => println!(
            "   reqwest::blocking::get      -> returned {:?} (release builds skip reqwest's \
             check and block this runtime's thread instead)",
            r.map_err(|e| e.to_string())
        ),
    }

    // The bridge-based blocking client works in the same spot, even from a
    // plain sync helper that has no idea it is inside a runtime.
    fn legacy_sync_helper(kv: &kvclient::blocking::Client) -> std::io::Result<Option<String>> {
        kv.set("visits", "1")?;
        kv.get("visits")
    }
    println!(
        "   kvclient::blocking get      -> {:?}",
        legacy_sync_helper(kv).expect("kv request")
    );

    // And async code uses the async API directly, with its own pool on this runtime.
    let async_kv = kvclient::Client::new(addr, 2);
    async_kv.set("lang", "rust").await.expect("kv request");
    println!(
        "   kvclient::Client (async)    -> {:?}",
        async_kv.get("lang").await.expect("kv request")
    );
}

fn main() {
    let started = Instant::now();

    // Start the server on the worker loop: bind there (so the listener lives on
    // that loop's reactor), then spawn the accept loop; it runs for the process.
    let listener = bridge::call_blocking(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("local addr");
    let accepted = Arc::new(AtomicUsize::new(0));
    let _server = bridge::worker_loop().spawn(serve(listener, accepted.clone()));
    println!("key-value server on {addr} (on bridge's worker loop)");

    let kv = kvclient::blocking::Client::new(addr, 8);

    // 1. Plain main: no runtime anywhere on this thread.
    println!("\n1. plain main (running loop: {:?})", running());
    kv.set("greeting", "hello").expect("kv request");
    println!(
        "   set greeting=hello; get greeting -> {:?}",
        kv.get("greeting").expect("kv request")
    );
    // The same pool through the async client's `_blocking` twins.
    let key = String::from("greeting");
    println!(
        "   kv.inner().get_blocking(&key) -> {:?} (a twin, borrowing the client and the key)",
        kv.inner().get_blocking(&key).expect("kv request")
    );
    println!(
        "   get missing -> {:?}",
        kv.get("missing").expect("kv request")
    );
    println!(
        "   bad input is an error, not a panic: {}",
        kv.set("two words", "x").unwrap_err()
    );

    // 2. Inside a runtime.
    inside_tokio_main(&kv, addr);

    // 3. Many threads, one client, one pool.
    let threads = 16;
    let ops_per_thread = 200;
    let t0 = Instant::now();
    std::thread::scope(|s| {
        for t in 0..threads {
            let kv = kv.clone();
            s.spawn(move || {
                for i in 0..ops_per_thread {
                    let key = format!("t{t}-k{}", i % 10);
                    let value = format!("{i}");
                    kv.set(&key, &value).expect("kv request");
                    assert_eq!(
                        kv.get(&key).expect("kv request").as_deref(),
                        Some(value.as_str())
                    );
                }
            });
        }
    });
    let elapsed = t0.elapsed();
    let ops = threads * ops_per_thread * 2;
    println!(
        "\n3. {threads} threads x {ops_per_thread} set+get pairs through one blocking::Client"
    );
    println!(
        "   {ops} requests in {elapsed:.2?} = {:.0} requests/s; every value read back matched",
        ops as f64 / elapsed.as_secs_f64()
    );
    let total = accepted.load(Ordering::Relaxed);
    println!(
        "   connections opened by the shared pool: {} (cap 8); the server accepted {total} \
         in all ({} from the async client of step 2)",
        kv.connections_opened(),
        total - kv.connections_opened()
    );
    assert!(kv.connections_opened() <= 8, "the pool caps connections");
    println!("\ndone in {:.2?}", started.elapsed());
}

fn running() -> &'static str {
    match bridge::running_loop() {
        None => "none",
        Some(bridge::RunningLoop::Tokio(_)) => "a tokio runtime",
        Some(bridge::RunningLoop::Bridge(_)) => "a bridge loop",
        Some(_) => "a foreign executor",
    }
}

fn panic_text(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "<non-string panic>".to_owned())
}
