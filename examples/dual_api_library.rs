//! How a library exposes an async API *and* a blocking API from one async
//! implementation, the way `reqwest` and `reqwest::blocking` do, but without a
//! runtime thread per client, without panicking inside async code, and
//! without writing the blocking API by hand.
//!
//! The library is the module `kvclient` below: a pooled client for a small
//! line-based key-value protocol. `kvclient::Client` is the async API, written
//! once: `get`, `set`, and `list(prefix)`, a stream of keys that fetches them
//! from the server a page at a time as it is read. `#[bridge::blocking]`
//! writes the blocking API from it, in both forms: a twin beside each method
//! (`client.get_blocking(key)`, and `client.list_blocking(prefix)`, a blocking
//! iterator over the stream), and a wrapper type whose methods keep their
//! names (`kvclient::blocking::Client`, whose `list` returns the blocking
//! iterator). Every blocking call runs on bridge's worker loop through
//! `bridge::call_blocking`, borrowing the client and its arguments: no
//! clones, no `'static`; the stream is polled there too, through
//! `bridge::iter_blocking`. Copy that module's shape.
//!
//! The example starts a real TCP key-value server on 127.0.0.1 (on the worker
//! loop) and uses the blocking client
//! 1. from plain `main`,
//! 2. from inside a `#[tokio::main]` function, where `reqwest::blocking`
//!    panics (shown, caught) and the blocking client just works (beside the
//!    async API, stream included),
//! 3. from many threads at once, all sharing one connection pool; then it
//!    lists every key they wrote, across many pages, and checks that none is
//!    lost or repeated.
//!
//! Run it: `cargo run --example dual_api_library`

use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::ops::Bound;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use futures::TryStreamExt;

/// The most keys the server sends in one `SCAN` reply.
const PAGE_SIZE: usize = 32;

/// A client library for the line protocol `GET key` / `SET key value` /
/// `SCAN prefix [after]` (one page of the keys starting with `prefix`, after
/// the key `after`, sorted: `PAGE more k1 k2 ..` or `PAGE done k1 k2 ..`).
///
/// One async implementation (`Client`); the blocking API is generated.
/// Everything that talks to the network is written once.
mod kvclient {
    use std::io;
    use std::net::SocketAddr;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};

    use futures::stream::{self, Stream, StreamExt, TryStreamExt};
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

    /// One `SCAN` reply.
    struct Page {
        keys: Vec<String>,
        /// Whether more keys follow the last one.
        more: bool,
    }

    /// Where the next `SCAN` of a [`Client::list`] starts.
    enum Cursor {
        Start,
        After(String),
        End,
    }

    // The blocking API, in both forms: `get_blocking`, `set_blocking` and
    // `list_blocking` beside `get`, `set` and `list`, and `BlockingClient`
    // (re-exported below as `blocking::Client`) with blocking `get`, `set`
    // and `list`.
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

        /// Every key that starts with `prefix`, in order, fetched from the
        /// server a page (one `SCAN`) at a time, as the stream is read.
        ///
        /// The stream owns what it needs (a clone of the client, which
        /// shares its pool, and the prefix), so it is `Send + 'static`, and
        /// `#[bridge::blocking]` gives it a blocking iterator:
        /// `list_blocking`, and `blocking::Client::list`. An error ends it.
        pub fn list(
            &self,
            prefix: &str,
        ) -> impl Stream<Item = io::Result<String>> + Send + 'static {
            let (client, prefix) = (self.clone(), prefix.to_owned());
            let pages = stream::try_unfold(Cursor::Start, move |cursor| {
                let (client, prefix) = (client.clone(), prefix.clone());
                async move {
                    let after = match cursor {
                        Cursor::End => return Ok(None),
                        Cursor::Start => None,
                        Cursor::After(key) => Some(key),
                    };
                    let page = client.scan(&prefix, after.as_deref()).await?;
                    let next = match page.keys.last() {
                        Some(last) if page.more => Cursor::After(last.clone()),
                        _ => Cursor::End,
                    };
                    Ok::<_, io::Error>(Some((page.keys, next)))
                }
            });
            pages
                .map_ok(|keys| stream::iter(keys).map(Ok))
                .try_flatten()
        }

        /// How many TCP connections this client (and its clones) ever opened.
        pub fn connections_opened(&self) -> usize {
            self.pool.opened.load(Ordering::Relaxed)
        }

        /// One page of `list`. Private: no twin, not in the wrapper.
        async fn scan(&self, prefix: &str, after: Option<&str>) -> io::Result<Page> {
            check(prefix, "key")?;
            let line = match after {
                None => format!("SCAN {prefix}\n"),
                Some(after) => format!("SCAN {prefix} {after}\n"),
            };
            let reply = self.request(line).await?;
            let mut words = reply.split(' ');
            let more = match (words.next(), words.next()) {
                (Some("PAGE"), Some("more")) => true,
                (Some("PAGE"), Some("done")) => false,
                _ => return Err(protocol_error(&reply)),
            };
            let keys = words.map(str::to_owned).collect();
            Ok(Page { keys, more })
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
    /// runtime, inside another blocking call); its `list` returns a
    /// blocking iterator over the stream. Cheap to clone: clones share
    /// one pool, whose connections all live on bridge's one always-running
    /// worker loop. No runtime per client, no runtime thread per client, no
    /// "cannot drop a runtime" panic.
    pub mod blocking {
        pub use super::BlockingClient as Client;
    }
}

/// What the server counts.
#[derive(Default)]
struct ServerStats {
    accepted: AtomicUsize,
    scans: AtomicUsize,
}

/// The server side: a line-based key-value store, one task per connection.
async fn serve(listener: tokio::net::TcpListener, stats: Arc<ServerStats>) {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    // Sorted, so that a page of `SCAN` ends where the next one starts.
    let store: Arc<Mutex<BTreeMap<String, String>>> = Arc::default();
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        stats.accepted.fetch_add(1, Ordering::Relaxed);
        let (store, stats) = (store.clone(), stats.clone());
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
                    Some(("SCAN", args)) => {
                        stats.scans.fetch_add(1, Ordering::Relaxed);
                        let (prefix, start) = match args.split_once(' ') {
                            Some((prefix, after)) => (prefix, Bound::Excluded(after)),
                            None => (args, Bound::Included(args)),
                        };
                        scan_page(&store.lock().unwrap(), prefix, start)
                    }
                    _ => "ERR unknown command\n".to_owned(),
                };
                if write.write_all(reply.as_bytes()).await.is_err() {
                    break;
                }
            }
        });
    }
}

/// The reply to `SCAN`: the first `PAGE_SIZE` keys from `start` on that
/// start with `prefix`, and whether more follow.
fn scan_page(store: &BTreeMap<String, String>, prefix: &str, start: Bound<&str>) -> String {
    let mut keys = (store.range::<str, _>((start, Bound::Unbounded)))
        .map(|(key, _)| key)
        .take_while(|key| key.starts_with(prefix));
    let page: Vec<&String> = keys.by_ref().take(PAGE_SIZE).collect();
    let mut reply = match keys.next() {
        Some(_) => String::from("PAGE more"),
        None => String::from("PAGE done"),
    };
    for key in page {
        reply.push(' ');
        reply.push_str(key);
    }
    reply.push('\n');
    reply
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
    // Its blocking iterator too.
    let users: Vec<String> = kv
        .list("user:")
        .collect::<io::Result<_>>()
        .expect("kv list");
    println!("   kvclient::blocking list     -> {users:?}");

    // And async code uses the async API directly, with its own pool on this
    // runtime: the same stream, awaited.
    let async_kv = kvclient::Client::new(addr, 2);
    async_kv.set("lang", "rust").await.expect("kv request");
    println!(
        "   kvclient::Client get        -> {:?}",
        async_kv.get("lang").await.expect("kv request")
    );
    let users: Vec<String> = async_kv.list("user:").try_collect().await.expect("kv list");
    println!("   kvclient::Client list       -> {users:?} (the stream, awaited)");
}

fn main() {
    let started = Instant::now();

    // Start the server on the worker loop: bind there (so the listener lives on
    // that loop's reactor), then spawn the accept loop; it runs for the process.
    let listener = bridge::call_blocking(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("local addr");
    let stats = Arc::new(ServerStats::default());
    let _server = bridge::worker_loop().spawn(serve(listener, stats.clone()));
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
    for (id, name) in [(1, "ada"), (2, "grace"), (3, "linus")] {
        kv.set(&format!("user:{id}"), name).expect("kv request");
    }
    // The stream `list` returns, as a blocking iterator: each page is
    // fetched (on the worker loop) when the loop reaches it.
    let mut users = Vec::new();
    for key in kv.list("user:") {
        users.push(key.expect("kv list"));
    }
    println!("   list(\"user:\") -> {users:?} (a blocking iterator over the async stream)");
    println!(
        "   kv.inner().list_blocking(\"user:\").count() -> {} (the twin)",
        kv.inner().list_blocking("user:").count()
    );

    // 2. Inside a runtime.
    inside_tokio_main(&kv, addr);

    // 3. Many threads, one client, one pool.
    let threads = 16;
    let ops_per_thread = 200;
    let keys_per_thread = 25;
    let t0 = Instant::now();
    std::thread::scope(|s| {
        for t in 0..threads {
            let kv = kv.clone();
            s.spawn(move || {
                for i in 0..ops_per_thread {
                    let key = format!("t{t}-k{}", i % keys_per_thread);
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

    // Every key the threads wrote, listed through the blocking iterator:
    // many pages, none lost, none repeated.
    let scans_before = stats.scans.load(Ordering::Relaxed);
    let t1 = Instant::now();
    let listed: Vec<String> = kv.list("t").collect::<io::Result<_>>().expect("kv list");
    let listing = t1.elapsed();
    let pages = stats.scans.load(Ordering::Relaxed) - scans_before;
    assert_eq!(
        listed.len(),
        threads * keys_per_thread,
        "list returns every key written"
    );
    assert!(
        listed.windows(2).all(|w| w[0] < w[1]),
        "list returns the keys in order, each once"
    );
    println!(
        "   list(\"t\") -> {} keys in {pages} pages of at most {PAGE_SIZE} ({listing:.2?}): \
         every key the threads wrote, once each, in order",
        listed.len()
    );
    let total = stats.accepted.load(Ordering::Relaxed);
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
