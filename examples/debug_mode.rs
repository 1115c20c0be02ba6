//! Debug mode, report by report: a slow poll, a panic nobody read, a loop
//! blocked by a synchronous hand-off, a wait the watchdog calls a hang, and
//! the health line of every loop.
//!
//! Run with `cargo run --example debug_mode`; it takes about two seconds.
//! Every report goes through `tracing` (target `bridge::debug`), here to a
//! plain `fmt` subscriber on stderr.

use std::time::Duration;

fn main() {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_thread_names(true)
        .with_target(false)
        .init();

    let lp = bridge::Loop::builder()
        .name("app")
        .debug(true) // or BRIDGE_DEBUG=1 for every loop
        .slow_poll_threshold(Duration::from_millis(50))
        .build()
        .expect("start the loop");
    let h = lp.handle();

    // 1. A slow poll: a task that blocks its loop for 120 ms in one poll.
    //    WARN: names this file and line, and the time it took.
    println!("\n-- 1. a task that blocks its loop (slow poll)");
    h.spawn(async { std::thread::sleep(Duration::from_millis(120)) })
        .wait()
        .expect("the slow task");

    // 2. A panic nobody reads: the future is dropped, then the task panics.
    //    ERROR: the panic message and where the task was spawned.
    println!("\n-- 2. a panic in a task whose future was dropped");
    let (go, wait_go) = tokio::sync::oneshot::channel::<()>();
    drop(h.spawn(async move {
        let _ = wait_go.await;
        panic!("the config file is missing");
    }));
    let _ = go.send(());
    // Let the loop run the task (its ERROR line comes from the loop's thread).
    h.block_on(async {}).expect("the loop still runs");

    // 3. A blocked loop: a task of `app` hands work to the worker loop with
    //    `block_on_safe`, which stops `app` until the work is done.
    //    WARN (from the watchdog, while it lasts): the loop and the call site.
    println!("\n-- 3. a task that blocks its loop on a hand-off");
    h.block_on(async {
        // The timer is made inside the handed-off future, on the worker loop:
        // `block_on_safe(tokio::time::sleep(..))` would make it here, on `app`,
        // whose timer cannot fire while `app` is blocked (the hang watchdog
        // reports that one).
        bridge::block_on_safe(async { tokio::time::sleep(Duration::from_millis(150)).await })
            .expect("hand-off")
    })
    .expect("the blocking task");

    // 4. A hang: a wait that lasts longer than the hang threshold (10 s by
    //    default; 300 ms here). WARN: the waiting thread, its call site, and
    //    the loop and spawn site of the work; the wait goes on, then an INFO
    //    line says when it finished.
    println!("\n-- 4. a wait longer than the hang threshold");
    bridge::set_hang_threshold(Duration::from_millis(300));
    h.spawn(async { tokio::time::sleep(Duration::from_millis(500)).await })
        .wait()
        .expect("the long task");

    // 5. Introspection: counters and lag of every loop, as a health line.
    println!("\n-- 5. health of every loop");
    let info = bridge::loops()
        .into_iter()
        .find(|l| l.id() == h.id())
        .expect("app is live");
    // Asking for the lag starts the probe; wait for its first sample.
    while info.lag().is_none() {
        std::thread::sleep(Duration::from_millis(20));
    }
    for info in bridge::loops() {
        println!("{info}");
    }
}
