//! Loom models of the stream channel (bridge/stream_channel.rs), the
//! single-producer single-consumer hand-off behind `iter_blocking` and
//! `stream_in_executor`: one lock around one state, a condvar on which a
//! sync sender waits for room, wakers for an async sender and for the
//! receiver, and a lock-free `ready` hint. Under loom the read-ahead is 2,
//! so a few items fill the buffer.
//!
//! The end-to-end models run the real actors, through `loom_api`: the
//! `stream_in_executor` job (`wait_room`, `send`, `set_end`, then its
//! done-callback's `wake_receiver`) against the real `ExecutorStream`
//! consumer, and the real `iter_blocking` task (`poll_room` with its waker,
//! `send_batch`, `close`) against the real `BlockingIter` take path (a look,
//! the hint, then `park::block_on`): every item arrives once and in order,
//! then the end. Every model checks that every item is dropped exactly once
//! (taken, buffered or never produced) and that no side waits for a wake-up
//! that never comes (loom reports a thread parked forever as a deadlock). The channel has one sender and one receiver by
//! design, so each model has two waits on each side where it can (the
//! sender waits for room more than once, the receiver for items more than
//! once), asserted reached with `Coverage`.
//!
//! Checked against seeded bugs, each on its own (every one made the models
//! named fail: a deadlock is loom reporting the lost wake-up):
//!
//! | seeded bug in bridge/stream_channel.rs | caught by |
//! |-----------------------------------------|-----------|
//! | `send` does not take the receiver's waker | `sync_sender_async_receiver` (deadlock) |
//! | `send_batch` does not take the receiver's waker | `async_sender_sync_receiver` (deadlock) |
//! | `wake_receiver` wakes nobody | `sync_sender_async_receiver` (deadlock) |
//! | `poll_take` returns `Pending` without registering its waker | both end-to-end models (deadlock) |
//! | `poll_take` does not wake a sender after making room | both end-to-end models (deadlock) |
//! | `wait_room` waits without setting `sender_parked` | `sync_sender_async_receiver`, `receiver_dropped_while_a_sync_sender_waits`, `half_batch_release_wakes_a_sync_sender` (deadlock) |
//! | `poll_room` returns `Pending` without registering its waker | `async_sender_sync_receiver`, `receiver_dropped_while_an_async_sender_waits`, `half_batch_release_wakes_an_async_sender` (deadlock) |
//! | `release` does not wake a sender | both `half_batch_release_wakes_*` (deadlock) |
//! | `drop_receiver` does not wake a sender | both `receiver_dropped_while_*` (deadlock) |
//! | `drop_receiver` leaves the buffered items in the channel | both `receiver_dropped_while_*`, `half_batch_release_wakes_an_async_sender` (items not dropped) |
//!
//! Two edits pass every model, rightly: never setting the `ready` hint on
//! `send_batch`, and never resetting it on a take. It is only a hint: a
//! receiver that trusts a stale one finds nothing under the lock and
//! registers its waker; one that misses it parks and is woken (under std
//! these cost time, not correctness).
#![cfg(bridge_loom)]

use std::sync::Arc as StdArc;
use std::task::{Poll, Wake, Waker};

use bridge::loom_api::{stream_channel, ModelEnd, ReceiverGone, STREAM_READ_AHEAD};
use loom::sync::atomic::{AtomicBool, Ordering};
use loom_tests::{model_both_ways, Counted, Coverage, DropCounter};

/// Items each end-to-end model moves: more than twice the read-ahead, so
/// the sender can wait for room twice.
const ITEMS: u32 = 2 * STREAM_READ_AHEAD as u32 + 1;

/// A task's waker: sets a flag and unparks the task's thread, which polls
/// again only once the flag is set.
struct Flag {
    woken: AtomicBool,
    thread: loom::thread::Thread,
}

impl Wake for Flag {
    fn wake(self: StdArc<Self>) {
        self.wake_by_ref()
    }

    fn wake_by_ref(self: &StdArc<Self>) {
        // A swap, not a store: loom 0.7 lets a later read go past a plain
        // store that races an earlier read-modify-write (tokio-rs/loom#254).
        self.woken.swap(true, Ordering::SeqCst);
        self.thread.unpark();
    }
}

/// A waker for the current thread, and its flag.
fn flag_waker() -> (Waker, StdArc<Flag>) {
    let flag = StdArc::new(Flag {
        woken: AtomicBool::new(false),
        thread: loom::thread::current(),
    });
    (Waker::from(flag.clone()), flag)
}

impl Flag {
    /// Parks until woken (a wake that never comes is a loom deadlock).
    fn wait(&self) {
        while !self.woken.swap(false, Ordering::SeqCst) {
            loom::thread::park();
        }
    }
}

fn values(drops: &DropCounter, n: u32) -> Vec<Counted> {
    (0..n).map(|i| drops.value(i)).collect()
}

/// Checks that `got` is every item, in order.
fn assert_in_order(got: &[u32], n: u32) {
    assert_eq!(
        got,
        (0..n).collect::<Vec<_>>(),
        "items lost, repeated or reordered"
    );
}

/// A sync sender (the real `stream_in_executor` job: `wait_room`, `send`,
/// then `set_end`, and its done-callback's `wake_receiver`) and an async
/// receiver (the real `ExecutorStream`, polled with a flag waker and
/// re-polled only when woken): every item arrives once, in order, then the
/// end; neither side misses a wake-up.
#[test]
fn sync_sender_async_receiver() {
    let cov = Coverage::new();
    let c = cov.clone();
    model_both_ways(move |o| {
        let drops = DropCounter::new();
        let (tx, rx) = stream_channel::<Counted>();
        let sender = tx.clone();
        let items = values(&drops, ITEMS);
        let ((), (got, waits)) = o.race(
            move || sender.run_executor_job(items),
            move || {
                let (waker, flag) = flag_waker();
                let mut stream = rx.into_stream();
                let (mut got, mut waits) = (Vec::new(), 0);
                loop {
                    match stream.poll_next(&waker) {
                        Poll::Ready(Some(item)) => got.push(item.value),
                        Poll::Ready(None) => break,
                        Poll::Pending => {
                            waits += 1;
                            flag.wait();
                        }
                    }
                }
                // The stream is fused after the end.
                assert!(matches!(stream.poll_next(&waker), Poll::Ready(None)));
                (got, waits)
            },
        );
        assert_in_order(&got, ITEMS);
        assert_eq!(
            drops.drops(),
            ITEMS as usize,
            "an item dropped twice or leaked"
        );
        c.hit(match tx.sender_parks() {
            0 => "sender never waited",
            1 => "sender waited once",
            _ => "sender waited twice or more",
        });
        c.hit(match waits {
            0 => "receiver never waited",
            1 => "receiver waited once",
            _ => "receiver waited twice or more",
        });
    });
    println!(
        "{:?}",
        cov.assert_seen(&[
            "sender waited once",
            "sender waited twice or more",
            "receiver waited once",
            "receiver waited twice or more",
        ])
    );
}

/// An async sender (the real `iter_blocking` task: `poll_room` with its
/// waker, `send_batch`, `close`, polled with a flag waker and re-polled only
/// when woken) and a sync receiver (the real `BlockingIter` take path: a
/// look, the `ready` hint, then `park::block_on` on `poll_take`): every item
/// arrives once, in order, then the end; neither side misses a wake-up.
#[test]
fn async_sender_sync_receiver() {
    let cov = Coverage::new();
    let c = cov.clone();
    model_both_ways(move |o| {
        let drops = DropCounter::new();
        let (tx, mut rx) = stream_channel::<Counted>();
        let chan = tx.clone();
        let items = values(&drops, ITEMS);
        let (sender_waits, got) = o.race(
            move || {
                let (waker, flag) = flag_waker();
                let mut task = tx.producer(items);
                let mut waits = 0;
                while task.poll(&waker).is_pending() {
                    waits += 1;
                    flag.wait();
                }
                waits
            },
            move || {
                let mut got = Vec::new();
                let end = loop {
                    match rx.next_blocking() {
                        Ok(item) => got.push(item.value),
                        Err(end) => break end,
                    }
                };
                assert_eq!(end, ModelEnd::Finished);
                got
            },
        );
        assert_in_order(&got, ITEMS);
        assert_eq!(
            drops.drops(),
            ITEMS as usize,
            "an item dropped twice or leaked"
        );
        c.hit(match sender_waits {
            0 => "sender never waited",
            1 => "sender waited once",
            _ => "sender waited twice or more",
        });
        c.hit(match chan.receiver_waits() {
            0 => "receiver never waited",
            1 => "receiver waited once",
            _ => "receiver waited twice or more",
        });
    });
    println!(
        "{:?}",
        cov.assert_seen(&[
            "sender waited once",
            "sender waited twice or more",
            "receiver waited once",
            "receiver waited twice or more",
        ])
    );
}

/// The receiver takes what is there (perhaps nothing), consumes at most one
/// item, and goes away.
fn take_one_then_drop(rx: bridge::loom_api::ModelReceiver<Counted>) {
    let mut rx = rx;
    if rx.poll_take(None).is_ready() {
        drop(rx.pop());
    }
}

/// The receiver goes away while the sync sender (the real
/// `stream_in_executor` job) has, or will have, no room: the sender is
/// woken if it waits, sees the receiver gone and stops; every item (sent,
/// taken, or still in the iterator) is dropped exactly once.
#[test]
fn receiver_dropped_while_a_sync_sender_waits() {
    let cov = Coverage::new();
    let c = cov.clone();
    model_both_ways(move |o| {
        let drops = DropCounter::new();
        let (tx, rx) = stream_channel::<Counted>();
        let sender = tx.clone();
        let items = values(&drops, STREAM_READ_AHEAD as u32 + 1);
        o.race(
            move || sender.run_executor_job(items),
            move || take_one_then_drop(rx),
        );
        assert!(tx.receiver_gone());
        assert_eq!(
            drops.drops(),
            STREAM_READ_AHEAD + 1,
            "an item dropped twice or leaked"
        );
        c.hit(match tx.sender_parks() {
            0 => "sender saw the receiver gone without waiting",
            _ => "sender woken by the receiver's drop",
        });
    });
    println!(
        "{:?}",
        cov.assert_seen(&[
            "sender saw the receiver gone without waiting",
            "sender woken by the receiver's drop",
        ])
    );
}

/// The same with the async sender (the real `iter_blocking` task): its
/// registered waker is woken by the receiver's drop, and its next poll
/// stops; every item is dropped exactly once (the task drops its stream).
#[test]
fn receiver_dropped_while_an_async_sender_waits() {
    let cov = Coverage::new();
    let c = cov.clone();
    model_both_ways(move |o| {
        let drops = DropCounter::new();
        let (tx, rx) = stream_channel::<Counted>();
        let sender = tx.clone();
        let items = values(&drops, STREAM_READ_AHEAD as u32 + 1);
        let (waits, ()) = o.race(
            move || {
                let (waker, flag) = flag_waker();
                let mut task = sender.producer(items);
                let mut waits = 0;
                while task.poll(&waker).is_pending() {
                    waits += 1;
                    flag.wait();
                }
                waits
            },
            move || take_one_then_drop(rx),
        );
        assert!(tx.receiver_gone());
        assert_eq!(
            drops.drops(),
            STREAM_READ_AHEAD + 1,
            "an item dropped twice or leaked"
        );
        c.hit(match waits {
            0 => "sender saw the receiver gone without waiting",
            _ => "sender woken by the receiver's drop",
        });
    });
    println!(
        "{:?}",
        cov.assert_seen(&[
            "sender saw the receiver gone without waiting",
            "sender woken by the receiver's drop",
        ])
    );
}

/// A full buffer (`STREAM_READ_AHEAD` items sent before the race), taken
/// whole by the receiver, which then consumes half of it and holds the
/// rest (it does not come back for the next batch, which would release
/// everything): that half-batch release alone must give the sender room and
/// wake it. Returns the receiver, so that it stays alive (its drop would
/// wake the sender too) until the sender is done.
fn take_full_batch_pop_half(
    mut rx: bridge::loom_api::ModelReceiver<Counted>,
) -> bridge::loom_api::ModelReceiver<Counted> {
    assert!(matches!(rx.poll_take(None), Poll::Ready(None)));
    assert_eq!(rx.buffered(), STREAM_READ_AHEAD);
    for i in 0..STREAM_READ_AHEAD / 2 {
        assert_eq!(rx.pop().map(|item| item.value), Some(i as u32));
    }
    rx
}

/// The half-batch release wakes a sync sender waiting for room (`wait_room`
/// on the condvar), which then sends into the room released.
#[test]
fn half_batch_release_wakes_a_sync_sender() {
    let cov = Coverage::new();
    let c = cov.clone();
    model_both_ways(move |o| {
        let drops = DropCounter::new();
        let (tx, rx) = stream_channel::<Counted>();
        for item in values(&drops, STREAM_READ_AHEAD as u32) {
            assert!(tx.send(item).is_ok());
        }
        let sender = tx.clone();
        let last = drops.value(STREAM_READ_AHEAD as u32);
        let ((), mut rx) = o.race(
            move || {
                assert_eq!(sender.wait_room(), Ok(()));
                assert!(sender.send(last).is_ok());
            },
            move || take_full_batch_pop_half(rx),
        );
        c.hit(match tx.sender_parks() {
            0 => "room released before the sender looked",
            _ => "sender woken by the half release",
        });
        // The rest comes in order, then the end.
        tx.close(ModelEnd::Finished);
        let mut got: Vec<u32> = (0..STREAM_READ_AHEAD as u32 / 2).collect();
        loop {
            if let Some(item) = rx.pop() {
                got.push(item.value);
            } else if let Poll::Ready(Some(end)) = rx.poll_take(None) {
                assert_eq!(end, ModelEnd::Finished);
                break;
            }
        }
        assert_in_order(&got, STREAM_READ_AHEAD as u32 + 1);
        assert_eq!(drops.drops(), STREAM_READ_AHEAD + 1);
    });
    println!(
        "{:?}",
        cov.assert_seen(&[
            "room released before the sender looked",
            "sender woken by the half release",
        ])
    );
}

/// The half-batch release wakes an async sender whose `poll_room` found no
/// room and registered its waker.
#[test]
fn half_batch_release_wakes_an_async_sender() {
    let cov = Coverage::new();
    let c = cov.clone();
    model_both_ways(move |o| {
        let drops = DropCounter::new();
        let (tx, rx) = stream_channel::<Counted>();
        let mut full = values(&drops, STREAM_READ_AHEAD as u32);
        assert_eq!(tx.send_batch(&mut full), Ok(0));
        let sender = tx.clone();
        let last = drops.value(STREAM_READ_AHEAD as u32);
        let (waits, rx) = o.race(
            move || {
                let (waker, flag) = flag_waker();
                let mut waits = 0;
                let room = loop {
                    match sender.poll_room(Some(&waker)) {
                        Poll::Ready(room) => break room,
                        Poll::Pending => {
                            waits += 1;
                            flag.wait();
                        }
                    }
                };
                assert_eq!(room, Ok(STREAM_READ_AHEAD / 2));
                assert_eq!(sender.send_batch(&mut vec![last]), Ok(0));
                waits
            },
            move || take_full_batch_pop_half(rx),
        );
        c.hit(match waits {
            0 => "room released before the sender looked",
            _ => "sender woken by the half release",
        });
        drop(rx);
        assert_eq!(tx.poll_room(None), Poll::Ready(Err(ReceiverGone)));
        assert_eq!(drops.drops(), STREAM_READ_AHEAD + 1);
    });
    println!(
        "{:?}",
        cov.assert_seen(&[
            "room released before the sender looked",
            "sender woken by the half release",
        ])
    );
}
