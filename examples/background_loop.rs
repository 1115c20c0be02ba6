//! The GUI / worker pattern: a main thread that owns no runtime (a UI frame
//! loop, a game loop, a plugin host) hands async work to a named background
//! [`bridge::Loop`] and never blocks on it for longer than a frame.
//!
//! * work goes in with `run_coroutine_threadsafe`;
//! * every frame polls `done()` and collects what finished;
//! * `wait_timeout` bounds a wait to what a frame can spare;
//! * `cancel` drops work nobody needs any more (its destructor runs, on the
//!   loop's thread);
//! * dropping the `Loop` at the end cancels what is left and joins its thread.
//!
//! Run it: `cargo run --example background_loop`

use std::collections::BTreeMap;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use bridge::{ConcurrentFuture, Error, Loop};

/// What a finished "load" hands back to the UI.
#[derive(Debug)]
struct Loaded {
    path: String,
    lines: usize,
    bytes: usize,
}

/// The async work: read a file with tokio's async file API, then "decode" it
/// (here: count lines) after a delay that stands for a slow disk or network.
async fn load(path: String, delay: Duration) -> std::io::Result<Loaded> {
    tokio::time::sleep(delay).await;
    let text = tokio::fs::read_to_string(&path).await?;
    Ok(Loaded {
        lines: text.lines().count(),
        bytes: text.len(),
        path,
    })
}

/// Tells the main thread when a task's state is dropped and on which thread,
/// so the example can show that a cancelled task really is torn down.
struct DropReporter {
    what: &'static str,
    tx: mpsc::Sender<String>,
}

impl Drop for DropReporter {
    fn drop(&mut self) {
        let thread = std::thread::current().name().unwrap_or("?").to_owned();
        let _ = self
            .tx
            .send(format!("{} dropped on thread {thread:?}", self.what));
    }
}

fn short(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

fn main() -> Result<(), Error> {
    let started = Instant::now();
    let root = env!("CARGO_MANIFEST_DIR");
    println!(
        "main thread: running loop here = {:?} (a UI thread owns no runtime)",
        bridge::running_loop().map(|_| "some")
    );

    let lp = Loop::builder().name("background").build()?;
    let bg = lp.handle();
    println!("started loop {:?} (id {})", bg.name(), bg.id());

    // 1. Submit several loads; each returns at once with a ConcurrentFuture.
    let files = [
        "Cargo.toml",
        "README.md",
        "examples/background_loop.rs",
        "bridge/lib.rs",
    ];
    let mut pending: BTreeMap<&str, ConcurrentFuture<std::io::Result<Loaded>>> = BTreeMap::new();
    for (i, file) in files.iter().enumerate() {
        let path = format!("{root}/{file}");
        let delay = Duration::from_millis(30 + 40 * i as u64);
        pending.insert(
            file,
            bridge::run_coroutine_threadsafe(load(path, delay), &bg),
        );
    }
    println!(
        "submitted {} loads; the main thread goes on drawing frames",
        pending.len()
    );

    // 2. Work that the UI will stop caring about: a long "preview render".
    let (drop_tx, drop_rx) = mpsc::channel();
    let reporter = DropReporter {
        what: "the preview task's state",
        tx: drop_tx.clone(),
    };
    let preview = bridge::run_coroutine_threadsafe(
        async move {
            let _guard = reporter; // lives as long as the task
            tokio::time::sleep(Duration::from_secs(60)).await;
            "preview"
        },
        &bg,
    );

    // 3. The frame loop: ~60 frames a second, never blocking on the loop.
    let frame = Duration::from_millis(16);
    let mut frames = 0u32;
    let mut preview_dropped = false;
    while !pending.is_empty() || !preview.cancelled() {
        frames += 1;
        let finished: Vec<&str> = pending
            .iter()
            .filter(|(_, fut)| fut.done())
            .map(|(name, _)| *name)
            .collect();
        for name in finished {
            let fut = pending.remove(name).expect("listed above");
            // `done()` was true, so `wait` returns at once.
            match fut.wait() {
                Ok(Ok(l)) => println!(
                    "frame {frames:3}: {} loaded: {} lines, {} bytes",
                    short(&l.path),
                    l.lines,
                    l.bytes
                ),
                Ok(Err(e)) => println!("frame {frames:3}: {name} failed to load: {e}"),
                Err(e) => println!("frame {frames:3}: {name} did not run: {e}"),
            }
        }
        if frames >= 3 && !preview.cancelled() {
            // The user navigated away: the preview is no longer needed.
            let accepted = preview.cancel();
            println!(
                "frame {frames:3}: cancel(preview) = {accepted}, cancelled() = {}, done() = {}",
                preview.cancelled(),
                preview.done()
            );
        }
        if let Ok(msg) = drop_rx.try_recv() {
            println!("frame {frames:3}: {msg}");
            preview_dropped = true;
        }
        // Draw the frame (here: just wait for the next one).
        std::thread::sleep(frame);
    }
    if !preview_dropped {
        let msg = drop_rx
            .recv_timeout(Duration::from_secs(5))
            .expect("a cancelled task is dropped on its loop");
        println!("after the frames: {msg}");
    }
    match preview.wait() {
        Err(Error::Cancelled) => println!("preview.wait() = Err(Cancelled)"),
        other => panic!("a cancelled task must resolve to Cancelled, got {other:?}"),
    }

    // 4. wait_timeout: give a job at most one frame's time per frame.
    let slow = bridge::run_coroutine_threadsafe(
        async {
            tokio::time::sleep(Duration::from_millis(70)).await;
            "thumbnail ready"
        },
        &bg,
    );
    let mut waited = 0;
    while !slow.wait_timeout(frame) {
        waited += 1;
    }
    println!(
        "wait_timeout({frame:?}) returned false {waited} times, then true; result: {:?}",
        slow.wait()?
    );

    // 5. A callback instead of polling: it runs on the loop's thread when done.
    //    (The task waits for `go` so that it surely finishes after the
    //    callback is added; on a future that is already done the callback
    //    runs at once on the calling thread.)
    let (cb_tx, cb_rx) = mpsc::channel();
    let (go_tx, go_rx) = tokio::sync::oneshot::channel::<()>();
    let ping = bridge::run_coroutine_threadsafe(
        async move {
            let _ = go_rx.await;
            2 + 2
        },
        &bg,
    );
    ping.add_done_callback(move || {
        let thread = std::thread::current().name().unwrap_or("?").to_owned();
        let _ = cb_tx.send(thread);
    });
    let _ = go_tx.send(());
    let cb_thread = cb_rx
        .recv_timeout(Duration::from_secs(5))
        .expect("callback runs");
    println!(
        "add_done_callback ran on thread {cb_thread:?}; result {:?}",
        ping.wait()?
    );

    // 6. Shut down with work still in flight: dropping the Loop cancels it,
    //    runs its destructors and joins the thread; nothing hangs.
    let reporter = DropReporter {
        what: "an unfinished task at shutdown",
        tx: drop_tx,
    };
    let left = bridge::run_coroutine_threadsafe(
        async move {
            let _guard = reporter;
            std::future::pending::<()>().await
        },
        &bg,
    );
    println!("live loops before drop: {:?}", loop_names());
    drop(lp);
    println!(
        "dropped the loop: {}; unfinished task resolved to {:?}; is_closed() = {}",
        drop_rx
            .recv_timeout(Duration::from_secs(5))
            .expect("dropped at close"),
        left.wait(),
        bg.is_closed()
    );
    println!("live loops after drop: {:?}", loop_names());
    println!("done in {:?} ({frames} frames)", started.elapsed());
    Ok(())
}

fn loop_names() -> Vec<String> {
    bridge::loops()
        .iter()
        .map(|l| l.name().to_owned())
        .collect()
}
