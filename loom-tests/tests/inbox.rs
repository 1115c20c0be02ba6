//! Loom models of a `Loop`'s inbox (bridge/inbox.rs): submitters queue
//! jobs while the loop's thread spins before parking (accepting) or not;
//! the loop stops accepting only by a CAS that fails while a submission is
//! unseen. Whatever the interleaving, every job runs exactly once, on the
//! loop, either in the spin or after the wake-up a submitter sent; after
//! the loop closes, every job is dropped exactly once, run or not.
//!
//! Checked against seeded bugs: the loop leaving the accepting state with a
//! plain clear instead of the CAS loses a job queued while it accepted.
#![cfg(bridge_loom)]

use std::sync::Arc as StdArc;
use std::task::{Wake, Waker};

use bridge::loom_api::ModelInbox;
use loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use loom::sync::Arc;
use loom_tests::model;

/// The loop's `block_on` waker: remembers it was woken.
struct Flag(AtomicBool);

impl Wake for Flag {
    fn wake(self: StdArc<Self>) {
        // A swap, not a store: loom 0.7 lets a later read go past a plain
        // store that races an earlier read-modify-write (tokio-rs/loom#254;
        // see `Signal::wake_by_ref` in bridge/park.rs).
        self.0.swap(true, Ordering::SeqCst);
    }
}

struct Setup {
    inbox: Arc<ModelInbox>,
    ran: Arc<AtomicUsize>,
    dropped: Arc<AtomicUsize>,
    woken: StdArc<Flag>,
    waker: Waker,
}

fn setup() -> Setup {
    let woken = StdArc::new(Flag(AtomicBool::new(false)));
    let waker = Waker::from(woken.clone());
    let inbox = Arc::new(ModelInbox::default());
    // The loop's first poll of its `block_on` future registers the waker.
    inbox.serve(&waker);
    Setup {
        inbox,
        ran: Arc::new(AtomicUsize::new(0)),
        dropped: Arc::new(AtomicUsize::new(0)),
        woken,
        waker,
    }
}

fn submitter(s: &Setup) -> loom::thread::JoinHandle<()> {
    let (inbox, ran, dropped) = (s.inbox.clone(), s.ran.clone(), s.dropped.clone());
    loom::thread::spawn(move || {
        let on_drop: StdArc<dyn Fn() + Send + Sync> = StdArc::new(move || {
            dropped.fetch_add(1, Ordering::SeqCst);
        });
        inbox.push(
            move || {
                ran.fetch_add(1, Ordering::SeqCst);
            },
            on_drop,
        );
    })
}

/// The loop takes the queue after each wake-up, as tokio polls its
/// `block_on` future when woken.
fn serve_if_woken(s: &Setup) {
    while s.woken.0.swap(false, Ordering::SeqCst) {
        s.inbox.serve(&s.waker);
    }
}

#[test]
fn every_job_runs_once_whether_the_loop_accepts_or_sleeps() {
    model(|| {
        let s = setup();
        let a = submitter(&s);
        let b = submitter(&s);
        // The loop: one pre-park spin, then (it would sleep) wake-ups.
        s.inbox.spin();
        serve_if_woken(&s);
        a.join().unwrap();
        b.join().unwrap();
        serve_if_woken(&s);
        assert_eq!(s.ran.load(Ordering::SeqCst), 2, "a job was lost");
        assert_eq!(s.dropped.load(Ordering::SeqCst), 2);
    });
}

#[test]
fn after_close_every_job_is_dropped_once() {
    model(|| {
        let s = setup();
        let a = submitter(&s);
        let b = submitter(&s);
        s.inbox.spin();
        s.inbox.close();
        a.join().unwrap();
        b.join().unwrap();
        serve_if_woken(&s);
        let ran = s.ran.load(Ordering::SeqCst);
        assert!(ran <= 2);
        assert_eq!(
            s.dropped.load(Ordering::SeqCst),
            2,
            "a job leaked or was dropped twice"
        );
    });
}
