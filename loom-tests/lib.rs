//! Loom models of `bridge`'s concurrent state machines, one file per piece in
//! `tests/` (see `README.md` for what each proves and how long it takes).
//!
//! Run them with
//! `RUSTFLAGS="--cfg bridge_loom" LOOM_MAX_PREEMPTIONS=2 CARGO_TARGET_DIR=target/loom cargo test -p loom-tests --release`.
//! Without `--cfg bridge_loom` this crate and its tests compile to nothing.
//!
//! This library holds what the models share: `model` (loom with our
//! preemption bound), the runners that put each actor on its own spawned
//! thread in every order (`Orientation`, `race3`), `Coverage` (which outcome
//! classes loom reached), a value that counts its drops, and a waker that
//! counts its wakes and its release, and `shut_down` (a pool shut down
//! with nothing left).

#[cfg(bridge_loom)]
pub use imp::*;

#[cfg(bridge_loom)]
mod imp {
    use std::future::Future;
    use std::pin::Pin;
    use std::task::{Context, Poll, Wake, Waker};

    use loom::sync::atomic::{AtomicUsize, Ordering::SeqCst};
    use loom::sync::Arc;

    /// Shuts the pool `ex` down and checks that nothing is left of it:
    /// no thread, idle or parked count, wake-up credit or queued job.
    pub fn shut_down(ex: bridge::Executor) {
        let handle = ex.clone();
        ex.shutdown();
        assert_eq!(
            bridge::loom_api::pool_counts(&handle),
            (0, 0, 0, 0, 0),
            "(threads, idle, parked, wakeups, queued)"
        );
    }

    /// Counts the drops of the [`Counted`] values it makes.
    #[derive(Clone, Debug)]
    pub struct DropCounter(Arc<AtomicUsize>);

    impl DropCounter {
        /// A counter at zero. Call inside `loom::model`.
        #[allow(clippy::new_without_default)]
        pub fn new() -> Self {
            DropCounter(Arc::new(AtomicUsize::new(0)))
        }

        /// A value that adds one to this counter when it is dropped.
        pub fn value(&self, value: u32) -> Counted {
            Counted {
                value,
                drops: self.0.clone(),
            }
        }

        /// How many values made by this counter were dropped so far.
        pub fn drops(&self) -> usize {
            self.0.load(SeqCst)
        }
    }

    /// A value that counts its own drop (see [`DropCounter`]).
    #[derive(Debug)]
    pub struct Counted {
        /// The payload, to check that the value received is the value sent.
        pub value: u32,
        drops: Arc<AtomicUsize>,
    }

    impl Drop for Counted {
        fn drop(&mut self) {
            self.drops.fetch_add(1, SeqCst);
        }
    }

    /// A plain counter shared between model threads (callback runs, init runs).
    #[derive(Clone, Debug)]
    pub struct Counter(Arc<AtomicUsize>);

    impl Counter {
        /// A counter at zero. Call inside `loom::model`.
        #[allow(clippy::new_without_default)]
        pub fn new() -> Self {
            Counter(Arc::new(AtomicUsize::new(0)))
        }

        /// Adds one.
        pub fn incr(&self) {
            self.0.fetch_add(1, SeqCst);
        }

        /// The count so far.
        pub fn get(&self) -> usize {
            self.0.load(SeqCst)
        }
    }

    /// What a [`counting_waker`] has seen.
    #[derive(Clone, Debug)]
    pub struct WakeCount {
        wakes: Counter,
        released: Counter,
    }

    impl WakeCount {
        /// How many times any clone of the waker was woken.
        pub fn wakes(&self) -> usize {
            self.wakes.get()
        }

        /// Whether every clone of the waker has been dropped (nobody keeps
        /// a registration alive: no leak).
        pub fn released(&self) -> bool {
            self.released.get() == 1
        }
    }

    struct CountingWake(WakeCount);

    impl Wake for CountingWake {
        fn wake(self: std::sync::Arc<Self>) {
            self.0.wakes.incr();
        }

        fn wake_by_ref(self: &std::sync::Arc<Self>) {
            self.0.wakes.incr();
        }
    }

    impl Drop for CountingWake {
        fn drop(&mut self) {
            self.0.released.incr();
        }
    }

    /// A waker that counts its wakes, and notes when its last clone is dropped.
    pub fn counting_waker() -> (Waker, WakeCount) {
        let count = WakeCount {
            wakes: Counter::new(),
            released: Counter::new(),
        };
        // `Waker::from` needs std's `Arc`; the counters inside are loom's.
        let waker = Waker::from(std::sync::Arc::new(CountingWake(count.clone())));
        (waker, count)
    }

    /// Which of a two-actor race's actors loom runs first.
    ///
    /// loom 0.7's DPOR remembers only the *last* access to each atomic, so a
    /// thread that loads a word and then read-modify-writes it (every state
    /// machine here does: an early-out `load`, then `fetch_or`/CAS) can
    /// overwrite the record of another thread's earlier load, and the
    /// interleaving where its RMW goes before that load is then never tried
    /// (tokio-rs/loom#166, tokio-rs/loom#392). With one actor on the model's
    /// main thread this hid whole outcome classes (a `wait` on the home thread
    /// never saw the value; a spawned completer never ran before the main
    /// thread's first load). With both actors on spawned threads each order
    /// alone reaches every class the models assert, but which interleavings
    /// are pruned still depends on which actor runs first, so every two-actor
    /// model runs in both orders, and asserts with [`Coverage`] that each
    /// outcome class it claims was reached.
    ///
    /// Both actors run on spawned threads and the main thread only joins
    /// them for a second reason: loom wakes a thread blocked in `join` when
    /// it is unparked and then fails an internal assertion, and a waker may
    /// unpark its thread late, after that thread moved on, which real
    /// `park`/`unpark` tolerates. Keeping every waiter off the joining thread
    /// keeps those stray unparks harmless.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum Orientation {
        /// `a`'s thread is spawned first, so loom's first execution runs it first.
        AFirst,
        /// `b`'s thread is spawned first.
        BFirst,
    }

    impl Orientation {
        /// Runs `a` and `b` concurrently on two model threads and returns
        /// both results once both are done.
        pub fn race<A, B, RA, RB>(self, a: A, b: B) -> (RA, RB)
        where
            A: FnOnce() -> RA + Send + 'static,
            B: FnOnce() -> RB + Send + 'static,
            RA: Send + 'static,
            RB: Send + 'static,
        {
            match self {
                Orientation::AFirst => {
                    let ta = loom::thread::spawn(a);
                    let tb = loom::thread::spawn(b);
                    (ta.join().unwrap(), tb.join().unwrap())
                }
                Orientation::BFirst => {
                    let tb = loom::thread::spawn(b);
                    let ta = loom::thread::spawn(a);
                    (ta.join().unwrap(), tb.join().unwrap())
                }
            }
        }
    }

    /// Runs three actors on three model threads, spawned (so first run by
    /// loom) in the order given by `rotation` (0, 1 or 2: `abc`, `bca`,
    /// `cab`), and returns their results in `a, b, c` order once all are
    /// done. See [`Orientation`] for why the order is varied.
    pub fn race3<A, B, C, RA, RB, RC>(rotation: usize, a: A, b: B, c: C) -> (RA, RB, RC)
    where
        A: FnOnce() -> RA + Send + 'static,
        B: FnOnce() -> RB + Send + 'static,
        C: FnOnce() -> RC + Send + 'static,
        RA: Send + 'static,
        RB: Send + 'static,
        RC: Send + 'static,
    {
        type Actor = Box<dyn FnOnce() -> Box<dyn std::any::Any + Send> + Send>;
        let mut actors: Vec<Option<Actor>> = vec![
            Some(Box::new(move || {
                Box::new(a()) as Box<dyn std::any::Any + Send>
            })),
            Some(Box::new(move || {
                Box::new(b()) as Box<dyn std::any::Any + Send>
            })),
            Some(Box::new(move || {
                Box::new(c()) as Box<dyn std::any::Any + Send>
            })),
        ];
        let mut handles: Vec<Option<loom::thread::JoinHandle<Box<dyn std::any::Any + Send>>>> =
            vec![None, None, None];
        for k in 0..3 {
            let i = (rotation + k) % 3;
            handles[i] = Some(loom::thread::spawn(actors[i].take().expect("spawned once")));
        }
        let mut results = handles
            .into_iter()
            .map(|h| h.expect("spawned").join().unwrap());
        let mut next = move || results.next().expect("three results");
        (
            *next().downcast::<RA>().expect("a's result"),
            *next().downcast::<RB>().expect("b's result"),
            *next().downcast::<RC>().expect("c's result"),
        )
    }

    /// Runs `model` under [`model`] once per rotation of [`race3`].
    pub fn model_rotations<F>(model: F)
    where
        F: Fn(usize) + Sync + Send + 'static,
    {
        let model = std::sync::Arc::new(model);
        for rotation in 0..3 {
            let m = model.clone();
            self::model(move || m(rotation));
        }
    }

    /// The preemption bound every model here runs with at least. They are
    /// small enough that 3 costs seconds, so a lower `LOOM_MAX_PREEMPTIONS`
    /// (CI's 2, for other models) does not weaken them; a higher one (a
    /// deeper run) is honoured.
    pub const MIN_PREEMPTIONS: usize = 3;

    /// Runs `model` under loom with at least [`MIN_PREEMPTIONS`], and prints
    /// (visible with `--nocapture`) how many executions loom explored.
    pub fn model<F>(model: F)
    where
        F: Fn() + Sync + Send + 'static,
    {
        let runs = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = runs.clone();
        let mut builder = loom::model::Builder::new();
        builder.preemption_bound = Some(
            builder
                .preemption_bound
                .map_or(MIN_PREEMPTIONS, |n| n.max(MIN_PREEMPTIONS)),
        );
        let bound = builder.preemption_bound;
        builder.check(move || {
            counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            model()
        });
        eprintln!(
            "{}: {} executions, preemption bound {:?}",
            std::thread::current().name().unwrap_or("model"),
            runs.load(std::sync::atomic::Ordering::Relaxed),
            bound,
        );
    }

    /// Runs `model` under [`model`] once per [`Orientation`].
    pub fn model_both_ways<F>(model: F)
    where
        F: Fn(Orientation) + Sync + Send + 'static,
    {
        let model = std::sync::Arc::new(model);
        for o in [Orientation::AFirst, Orientation::BFirst] {
            let m = model.clone();
            self::model(move || m(o));
        }
    }

    /// Which outcome classes a model reached, tallied across all of loom's
    /// executions of it, so the model can assert that every interleaving class
    /// it claims to cover was explored (a model that only ever saw the easy
    /// ordering would prove little).
    ///
    /// Plain `std` state, deliberately outside the model: loom runs every
    /// execution on the test's own OS thread, one after another, and no loom
    /// operation happens while the lock is held.
    #[derive(Clone, Debug, Default)]
    pub struct Coverage(
        std::sync::Arc<std::sync::Mutex<std::collections::BTreeMap<&'static str, usize>>>,
    );

    impl Coverage {
        /// An empty tally; make it outside `loom::model` and move a clone in.
        pub fn new() -> Self {
            Self::default()
        }

        /// Notes that this execution reached `outcome`.
        pub fn hit(&self, outcome: &'static str) {
            *self.0.lock().unwrap().entry(outcome).or_default() += 1;
        }

        /// Panics unless every outcome in `expected` was reached at least
        /// once; returns the tally for the record.
        pub fn assert_seen(&self, expected: &[&'static str]) -> Vec<(&'static str, usize)> {
            let tally = self.0.lock().unwrap().clone();
            for e in expected {
                assert!(
                    tally.contains_key(e),
                    "the model never reached `{e}`; reached: {tally:?}"
                );
            }
            tally.into_iter().collect()
        }
    }

    /// Polls `fut` once with `waker`.
    pub fn poll_once<F: Future + Unpin>(fut: &mut F, waker: &Waker) -> Poll<F::Output> {
        Pin::new(fut).poll(&mut Context::from_waker(waker))
    }
}
