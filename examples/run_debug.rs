//! Python's `asyncio.run(main(), debug=True)`, ported: an async `main` that
//! blocks its loop with `std::thread::sleep`, run in debug mode, gets a
//! slow-poll WARN naming the task, the time and where it was started. The
//! corrected `main` (the blocking call moved to an executor, or a tokio
//! sleep awaited) gets none.
//!
//! Run with `cargo run --example run_debug`; it takes well under a second,
//! and exits non-zero if the reports are not what is described above.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The blocking version: `time.sleep` inside a coroutine.
async fn blocking_main() -> &'static str {
    std::thread::sleep(Duration::from_millis(80)); // blocks the whole loop
    "done (blocking)"
}

/// The corrected version: the blocking call runs on the default executor,
/// and the wait is an awaited timer.
async fn corrected_main() -> &'static str {
    bridge::run_in_executor(None, || std::thread::sleep(Duration::from_millis(80)))
        .await
        .expect("the executor job");
    tokio::time::sleep(Duration::from_millis(10)).await;
    "done (corrected)"
}

fn main() {
    // Reports go through `tracing`: to stderr here, and kept for the check.
    let log = Arc::new(Mutex::new(Vec::<u8>::new()));
    let sink = log.clone();
    tracing_subscriber::fmt()
        .with_writer(move || Tee(sink.clone()))
        .with_ansi(false)
        .with_target(false)
        .init();

    let debug_loop = || {
        bridge::Loop::builder()
            .name("main")
            .debug(true) // asyncio.run(..., debug=True)
            .slow_poll_threshold(Duration::from_millis(30))
    };

    println!("-- blocking main, debug on: expect one slow-poll WARN");
    let out = debug_loop().run(blocking_main()).expect("run");
    println!("{out}");
    let first = report_count(&log);

    println!("\n-- corrected main, debug on: expect no report");
    let out = debug_loop().run(corrected_main()).expect("run");
    println!("{out}");
    let second = report_count(&log) - first;

    let text = String::from_utf8_lossy(&log.lock().unwrap()).into_owned();
    assert_eq!(first, 1, "the blocking main is reported once:\n{text}");
    assert!(
        text.contains("run_debug.rs"),
        "the report names this file:\n{text}"
    );
    assert!(
        text.contains("loop 'main'"),
        "the report names the loop:\n{text}"
    );
    assert_eq!(second, 0, "the corrected main is not reported:\n{text}");
    println!("\nok: 1 report for the blocking main, none for the corrected one");
}

/// Slow-poll reports logged so far.
fn report_count(log: &Mutex<Vec<u8>>) -> usize {
    String::from_utf8_lossy(&log.lock().unwrap())
        .lines()
        .filter(|l| l.contains("WARN") && l.contains("in a single poll"))
        .count()
}

/// Writes to stderr and keeps a copy.
struct Tee(Arc<Mutex<Vec<u8>>>);

impl Write for Tee {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        std::io::stderr().write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}
