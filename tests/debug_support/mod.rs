//! A process-wide `tracing` subscriber that captures every event as text, so
//! tests can wait for a report made on any thread (loops, the watchdog).

#![allow(dead_code)] // not every test binary uses every helper

use std::io;
use std::sync::{Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Everything logged in this test binary so far, one event per line.
pub struct Capture {
    text: Mutex<String>,
    grew: Condvar,
}

/// The capture, installed as the global subscriber on first use.
pub fn capture() -> &'static Capture {
    static CAPTURE: OnceLock<&'static Capture> = OnceLock::new();
    CAPTURE.get_or_init(|| {
        let capture: &'static Capture = Box::leak(Box::new(Capture {
            text: Mutex::new(String::new()),
            grew: Condvar::new(),
        }));
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || Writer(capture))
            .with_ansi(false)
            .with_max_level(tracing::Level::INFO)
            .with_thread_names(true)
            .finish();
        tracing::subscriber::set_global_default(subscriber)
            .expect("no other global subscriber in this test binary");
        capture
    })
}

impl Capture {
    /// The captured lines that contain every one of `needles`.
    pub fn lines(&self, needles: &[&str]) -> Vec<String> {
        let text = self.text.lock().unwrap();
        text.lines()
            .filter(|l| needles.iter().all(|n| l.contains(n)))
            .map(str::to_owned)
            .collect()
    }

    /// Waits until a line contains every one of `needles` and returns it;
    /// panics after `limit` (which only turns a missing report into a failure).
    pub fn wait_for(&self, needles: &[&str], limit: Duration) -> String {
        let deadline = Instant::now() + limit;
        let mut text = self.text.lock().unwrap();
        loop {
            if let Some(line) = text.lines().find(|l| needles.iter().all(|n| l.contains(n))) {
                return line.to_owned();
            }
            let left = deadline
                .checked_duration_since(Instant::now())
                .unwrap_or_else(|| {
                    panic!("no log line with {needles:?} within {limit:?}; captured:\n{text}")
                });
            text = self.grew.wait_timeout(text, left).unwrap().0;
        }
    }
}

struct Writer(&'static Capture);

impl io::Write for Writer {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0
            .text
            .lock()
            .unwrap()
            .push_str(&String::from_utf8_lossy(buf));
        self.0.grew.notify_all();
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The numeric value of `field=` in a captured line.
pub fn field(line: &str, name: &str) -> f64 {
    let start = line
        .find(&format!("{name}="))
        .unwrap_or_else(|| panic!("no field {name} in {line}"))
        + name.len()
        + 1;
    let rest = &line[start..];
    let end = rest.find(|c: char| c.is_whitespace()).unwrap_or(rest.len());
    rest[..end]
        .parse()
        .unwrap_or_else(|e| panic!("field {name} of {line}: {e}"))
}

// ---- calls that also say where they were made ----
//
// Each helper is `#[track_caller]` and calls the API directly, so the API
// records the helper's caller as the spawn or wait site; the helper returns
// that site as `file:line:`, whatever rustfmt does to the line layout.

use std::future::Future;
use std::panic::Location;

use bridge::{ConcurrentFuture, Error, LoopHandle};

/// `file:line:` of a location, as the reports print it (column follows).
pub fn tag(at: &Location<'_>) -> String {
    format!("{}:{}:", at.file(), at.line())
}

#[track_caller]
pub fn spawn_at<F>(h: &LoopHandle, fut: F) -> (ConcurrentFuture<F::Output>, String)
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    (h.spawn(fut), tag(Location::caller()))
}

#[track_caller]
pub fn run_coroutine_threadsafe_at<F>(
    h: &LoopHandle,
    fut: F,
) -> (ConcurrentFuture<F::Output>, String)
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    (
        bridge::run_coroutine_threadsafe(fut, h),
        tag(Location::caller()),
    )
}

#[track_caller]
pub fn block_on_at<F>(h: &LoopHandle, fut: F) -> (Result<F::Output, Error>, String)
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    (h.block_on(fut), tag(Location::caller()))
}

#[track_caller]
pub fn call_soon_at(h: &LoopHandle, f: impl FnOnce() + Send + 'static) -> String {
    h.call_soon_threadsafe(f).unwrap();
    tag(Location::caller())
}

/// `fut.wait()`, telling `announce` the call site before it blocks.
#[track_caller]
pub fn wait_at<T>(fut: ConcurrentFuture<T>, announce: impl FnOnce(String)) -> Result<T, Error> {
    announce(tag(Location::caller()));
    fut.wait()
}

/// `block_on_safe(fut)`, telling `announce` the call site before it blocks.
#[track_caller]
pub fn block_on_safe_at<F>(fut: F, announce: impl FnOnce(String)) -> Result<F::Output, Error>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    announce(tag(Location::caller()));
    bridge::block_on_safe(fut)
}

/// `call_blocking(fut)`, telling `announce` the call site before it blocks.
#[track_caller]
pub fn call_blocking_at<F>(fut: F, announce: impl FnOnce(String)) -> F::Output
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    announce(tag(Location::caller()));
    bridge::call_blocking(fut)
}
