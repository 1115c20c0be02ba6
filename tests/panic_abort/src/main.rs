//! Every case here used to reach a panic that the crate caught to ask tokio
//! a question (`block_in_place` refusing): under `panic = "abort"` that is
//! the end of the process, with no message. Each case must now complete.
//!
//! Exits 0 when all of them do; a hang is turned into a failure by a
//! watchdog thread (exit code 2).

use std::time::Duration;

fn current_rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn multi_rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn case(name: &str, f: impl FnOnce() -> u32, want: u32) {
    let got = f();
    assert_eq!(got, want, "{name}");
    println!("ok: {name}");
}

fn main() {
    assert!(
        cfg!(panic = "abort"),
        "this program must be built with panic = \"abort\""
    );
    // Debug mode for every loop and every wait (read once, before any use).
    std::env::set_var("BRIDGE_DEBUG", "1");
    std::thread::spawn(|| {
        std::thread::sleep(Duration::from_secs(120));
        eprintln!("panic_abort: a case hung");
        std::process::exit(2);
    });

    // 1. A hand-off from a current-thread runtime, in debug mode: from its
    //    block_on and from one of its tasks.
    case(
        "hand-off from a current-thread block_on (debug)",
        || current_rt().block_on(async { bridge::block_on_safe(async { 1 }).unwrap() }),
        1,
    );
    case(
        "hand-off from a current-thread task (debug)",
        || {
            current_rt().block_on(async {
                tokio::spawn(async { bridge::call_blocking(async { 2 }) })
                    .await
                    .unwrap()
            })
        },
        2,
    );

    // 2. Waiting on a debug Loop's work from a current-thread runtime.
    let lp = bridge::Loop::builder()
        .name("abort-debug")
        .debug(true)
        .build()
        .unwrap();
    let h = lp.handle();
    case(
        "wait on a debug Loop's work from a current-thread runtime",
        || {
            let h = h.clone();
            current_rt().block_on(async move {
                let a = h.spawn(async { 1 }).wait().unwrap();
                let b = tokio::spawn(async move { h.block_on(async { 2 }).unwrap() })
                    .await
                    .unwrap();
                a + b
            })
        },
        3,
    );
    drop(lp);

    // 3. `call_blocking` in a task that entered a multi-thread runtime's
    //    handle: a current-thread runtime's block_on and task (on this, the
    //    main thread), a bridge Loop's task and a `run` task.
    let mt = multi_rt();
    let mh = mt.handle().clone();
    case(
        "call_blocking under a multi-thread handle, current-thread block_on",
        || {
            let mh = mh.clone();
            current_rt().block_on(async move {
                let _entered = mh.enter();
                bridge::call_blocking(async { 4 })
            })
        },
        4,
    );
    case(
        "call_blocking under a multi-thread handle, current-thread task",
        || {
            let mh = mh.clone();
            current_rt().block_on(async move {
                tokio::spawn(async move {
                    let _entered = mh.enter();
                    bridge::call_blocking(async { 5 })
                })
                .await
                .unwrap()
            })
        },
        5,
    );
    case(
        "call_blocking under a multi-thread handle, on an unnamed thread",
        || {
            let mh = mh.clone();
            std::thread::spawn(move || {
                current_rt().block_on(async move {
                    tokio::spawn(async move {
                        let _entered = mh.enter();
                        bridge::call_blocking(async { 6 })
                    })
                    .await
                    .unwrap()
                })
            })
            .join()
            .unwrap()
        },
        6,
    );
    let lp = bridge::Loop::builder().name("abort-loop").build().unwrap();
    case(
        "call_blocking under a multi-thread handle, a bridge Loop's task",
        || {
            let mh = mh.clone();
            lp.handle()
                .block_on(async move {
                    let _entered = mh.enter();
                    bridge::call_blocking(async { 7 })
                })
                .unwrap()
        },
        7,
    );
    drop(lp);
    case(
        "call_blocking under a multi-thread handle, a run loop's task",
        || {
            let mh = mh.clone();
            bridge::run(async move {
                tokio::spawn(async move {
                    let _entered = mh.enter();
                    bridge::call_blocking(async { 8 })
                })
                .await
                .unwrap()
            })
            .unwrap()
        },
        8,
    );

    // 4. The other way round (issue 11, bug 4): worker-loop work that enters
    //    a current-thread runtime's context, then blocks.
    let ct = current_rt();
    let ch = ct.handle().clone();
    case(
        "nested call_blocking under a current-thread handle in worker work",
        || {
            bridge::call_blocking(async move {
                let _entered = ch.enter();
                bridge::call_blocking(async {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    9
                })
            })
        },
        9,
    );
    drop(ct);

    // 5. A multi-thread runtime's task (also under a current-thread
    //    runtime's context) and a LocalSet on its block_on.
    let ct = current_rt();
    let ch = ct.handle().clone();
    case(
        "call_blocking in a multi-thread task under a current-thread handle",
        || {
            mt.block_on(mt.spawn(async move {
                let _entered = ch.enter();
                bridge::call_blocking(async { 12 })
            }))
            .unwrap()
        },
        12,
    );
    drop(ct);
    case(
        "call_blocking in a multi-thread task",
        || {
            mt.block_on(mt.spawn(async { bridge::call_blocking(async { 10 }) }))
                .unwrap()
        },
        10,
    );
    case(
        "call_blocking in a LocalSet on a multi-thread block_on",
        || {
            let local = tokio::task::LocalSet::new();
            mt.block_on(local.run_until(async {
                tokio::task::spawn_local(async { bridge::call_blocking(async { 11 }) })
                    .await
                    .unwrap()
            }))
        },
        11,
    );
    println!("panic_abort: all cases completed");
}
