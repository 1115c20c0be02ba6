//! A `Loop` takes work two ways: while its thread spins before parking,
//! through its inbox (run inline on its thread, no wake-up); otherwise
//! through tokio (a remote spawn that wakes it). Each test here submits in
//! bursts and in request/response rounds, so both ways are taken, and checks
//! what users rely on whichever way the work went: results, order,
//! cancellation that drops the work on the loop, I/O and timers, counts, and
//! closing with work queued.

#[macro_use]
mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bridge::{Error, Loop};
use common::{bounded, eventually, tcp_and_timer, DropCounter};

#[test]
fn call_soon_threadsafe_runs_callbacks_in_order_on_the_loop() {
    bounded("order", || {
        let lp = Loop::builder().name("fifo").build().unwrap();
        let h = lp.handle();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let n = 20_000;
        for i in 0..n {
            let seen = seen.clone();
            h.call_soon_threadsafe(move || {
                assert_eq!(std::thread::current().name(), Some("fifo"));
                seen.lock().unwrap().push(i);
            })
            .unwrap();
            if i % 97 == 0 {
                // A round trip now and then: the loop goes back to spinning
                // (or to sleep) between bursts.
                h.block_on(async {}).unwrap();
            }
        }
        h.block_on(async {}).unwrap();
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), n);
        assert!(
            seen.iter().enumerate().all(|(i, &v)| v == i),
            "callbacks ran out of order"
        );
    });
}

#[test]
fn cancelling_pending_work_drops_it_on_the_loop_promptly() {
    bounded("cancel", || {
        let lp = Loop::builder().name("cancel-fast").build().unwrap();
        let h = lp.handle();
        let drops = DropCounter::new();
        for i in 0..300 {
            let token = drops.token();
            let (tx, rx) = std::sync::mpsc::channel();
            let fut = h.spawn(async move {
                let _token = token;
                tx.send(std::thread::current().name().map(str::to_owned))
                    .unwrap();
                std::future::pending::<()>().await;
            });
            // It has started (first poll) and waits forever.
            assert_eq!(rx.recv().unwrap().as_deref(), Some("cancel-fast"));
            assert!(fut.cancel());
            assert!(matches!(fut.wait(), Err(Error::Cancelled)));
            eventually("the cancelled future is dropped", || drops.count() == i + 1);
        }
        // Never started: cancelled before its first poll, dropped unrun.
        let ran = Arc::new(std::sync::atomic::AtomicBool::new(false));
        for _ in 0..300 {
            let r = ran.clone();
            let fut = h.spawn(async move { r.store(true, std::sync::atomic::Ordering::SeqCst) });
            if fut.cancel() {
                assert!(matches!(fut.wait(), Err(Error::Cancelled)));
            } else {
                fut.wait().unwrap();
            }
        }
        assert_eq!(h.block_on(async { 1 }).unwrap(), 1);
    });
}

#[test]
fn work_taken_inline_can_use_io_timers_and_spawn() {
    bounded("io", || {
        let lp = Loop::new().unwrap();
        let h = lp.handle();
        for i in 0..50u32 {
            assert_eq!(h.block_on(tcp_and_timer(i)).unwrap(), i);
            let inner = h
                .spawn(async move { tokio::spawn(async move { i * 2 }).await.unwrap() })
                .wait()
                .unwrap();
            assert_eq!(inner, i * 2);
            // Pending after its first poll: finishes as a task.
            let slept = h
                .spawn(async move {
                    tokio::time::sleep(Duration::from_micros(200)).await;
                    i
                })
                .wait()
                .unwrap();
            assert_eq!(slept, i);
        }
    });
}

#[test]
fn panics_come_back_and_the_loop_keeps_serving() {
    bounded("panics", || {
        let lp = Loop::new().unwrap();
        let h = lp.handle();
        for i in 0..200u32 {
            let r = h.spawn(async move {
                if i % 2 == 0 {
                    panic!("boom {i}");
                }
                i
            });
            match r.wait() {
                Err(Error::Panicked(p)) => {
                    assert_eq!(i % 2, 0);
                    assert_eq!(p.message(), format!("boom {i}"));
                }
                Ok(v) => assert_eq!(v, i),
                Err(e) => panic!("unexpected {e}"),
            }
            // A panicking callback is caught too.
            h.call_soon_threadsafe(|| panic!("callback")).unwrap();
        }
        assert_eq!(h.block_on(async { 5 }).unwrap(), 5);
    });
}

#[test]
fn tasks_count_returns_to_zero() {
    bounded("count", || {
        let lp = Loop::builder().name("counted-fast").build().unwrap();
        let h = lp.handle();
        for i in 0..500u32 {
            assert_eq!(h.spawn(async move { i }).wait().unwrap(), i);
            h.call_soon_threadsafe(|| {}).unwrap();
        }
        h.block_on(async {}).unwrap();
        let info = || {
            bridge::loops()
                .into_iter()
                .find(|l| l.name() == "counted-fast")
                .unwrap()
        };
        eventually("no task left", || info().tasks() == 0);
    });
}

#[test]
fn work_on_a_loop_may_count_its_own_loops_tasks() {
    bounded("self-count", || {
        let lp = Loop::builder().name("self-count").build().unwrap();
        let h = lp.handle();
        let id = h.id();
        let parked = h.spawn(std::future::pending::<()>());
        for _ in 0..100 {
            // Runs on the loop's thread, while the loop takes its queue.
            let n = h
                .block_on(async move {
                    bridge::loops()
                        .into_iter()
                        .find(|l| l.id() == id)
                        .map(|l| l.tasks())
                })
                .unwrap();
            // The pending task, and this block_on's own work.
            assert!(matches!(n, Some(1..=2)), "{n:?}");
        }
        drop(parked);
    });
}

#[test]
fn many_threads_submitting_while_the_loop_closes_all_resolve() {
    for round in 0..20 {
        bounded("close", move || {
            let lp = Loop::new().unwrap();
            let h = lp.handle();
            let drops = DropCounter::new();
            let submitted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
            let threads: Vec<_> = (0..4)
                .map(|t| {
                    let (h, drops, submitted) = (h.clone(), drops.clone(), submitted.clone());
                    std::thread::spawn(move || {
                        for i in 0..2000usize {
                            let token = drops.token();
                            submitted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                            let fut = h.spawn(async move {
                                let _token = token;
                                i
                            });
                            match fut.wait() {
                                Ok(v) => assert_eq!(v, i),
                                Err(Error::LoopClosed | Error::Cancelled) => {}
                                Err(e) => panic!("thread {t}: unexpected {e}"),
                            }
                            let token = drops.token();
                            submitted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                            if h.call_soon_threadsafe(move || drop(token)).is_err() {
                                // Refused: the closure (and its token) is dropped.
                            }
                        }
                    })
                })
                .collect();
            std::thread::sleep(Duration::from_micros(300 * (round % 5)));
            drop(lp);
            for t in threads {
                t.join().unwrap();
            }
            let n = submitted.load(std::sync::atomic::Ordering::SeqCst);
            eventually("every submitted future is dropped once", || {
                drops.count() == n
            });
            assert_eq!(drops.count(), n);
        });
    }
}

/// A job moving from the inbox to a tokio task is counted once, never
/// twice and never zero times, whenever `LoopInfo::tasks` looks.
#[test]
fn tasks_counts_each_job_exactly_once_while_it_moves() {
    let lp = bridge::Loop::builder().name("count-once").build().unwrap();
    let h = lp.handle();
    let info = bridge::loops()
        .into_iter()
        .find(|l| l.id() == h.id())
        .unwrap();
    let mut kept = Vec::new();
    for i in 0..300 {
        kept.push(h.spawn(std::future::pending::<()>()));
        assert_eq!(info.tasks(), i + 1, "after spawn {}", i + 1);
    }
    drop(kept);
}
