//! [`CapacityLimiter`]: caps how many jobs one caller has in flight on an
//! executor, so that a burst from one part of a program cannot take the
//! whole pool (anyio's `CapacityLimiter`).

use std::collections::VecDeque;
use std::fmt;

use crate::error::Error;
use crate::executor::{call, default_executor, Executor};
use crate::future::ConcurrentFuture;
use crate::pool::{contain, Shared};
use crate::pool_state::Job;
use crate::sync::plain::{Arc, Mutex};

/// Caps how many jobs submitted through it are in flight (queued on the
/// executor or running) at once; further jobs wait inside the limiter, in
/// order, and go to the executor as earlier ones finish. Nothing blocks:
/// [`run`](Self::run) returns a [`ConcurrentFuture`] at once.
///
/// A job's slot is free again before its outcome is published: once a
/// `wait()` or `.await` returns, the next job can take the slot. Cloning
/// gives another handle to the same limit. One limiter may feed several
/// executors; the cap counts all of them.
///
/// # Examples
///
/// ```
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use std::sync::Arc;
///
/// // A scraper may use at most 2 of the default executor's threads.
/// let limiter = bridge::CapacityLimiter::new(2);
/// let now = Arc::new(AtomicUsize::new(0));
/// let peak = Arc::new(AtomicUsize::new(0));
/// let futs: Vec<_> = (0..10)
///     .map(|_| {
///         let (now, peak) = (now.clone(), peak.clone());
///         limiter.run(None, move || {
///             let n = now.fetch_add(1, Ordering::SeqCst) + 1;
///             peak.fetch_max(n, Ordering::SeqCst);
///             std::thread::sleep(std::time::Duration::from_millis(1));
///             now.fetch_sub(1, Ordering::SeqCst);
///         })
///     })
///     .collect();
/// for f in futs { f.wait().unwrap(); }
/// assert!(peak.load(Ordering::SeqCst) <= 2);
/// ```
#[derive(Clone)]
pub struct CapacityLimiter {
    inner: Arc<Inner>,
}

struct Inner {
    capacity: usize,
    state: Mutex<State>,
}

struct State {
    in_flight: usize,
    /// Jobs over the cap, with the pool each is for.
    waiting: VecDeque<(Arc<Shared>, Box<dyn Job>)>,
}

/// A job admitted under the cap: gives its slot back exactly once when it is
/// done (run, failed, or dropped, even by a panic). A job that runs gives it
/// back before its outcome is published, so whoever sees the result can
/// count on the slot being free.
struct Limited {
    job: Option<Box<dyn Job>>,
    limiter: Arc<Inner>,
    /// Set the moment the slot is given back (or handed on by `into_job`):
    /// it is never given back twice.
    released: bool,
}

impl Limited {
    fn new(job: Box<dyn Job>, limiter: Arc<Inner>) -> Limited {
        Limited {
            job: Some(job),
            limiter,
            released: false,
        }
    }

    fn release_once(&mut self) {
        if !self.released {
            self.released = true;
            self.limiter.release();
        }
    }

    /// The job, with the slot kept by the caller (an executor refused it).
    fn into_job(mut self) -> Box<dyn Job> {
        self.released = true;
        self.job.take().expect("a Limited job is taken once")
    }
}

impl Job for Limited {
    fn run(mut self: Box<Self>, finished: &mut dyn FnMut()) {
        if let Some(job) = self.job.take() {
            let this = &mut *self;
            job.run(&mut || {
                finished();
                this.release_once();
            });
        }
    }

    fn fail(mut self: Box<Self>, err: Error) {
        if let Some(job) = self.job.take() {
            job.fail(err);
        }
    }
}

impl Drop for Limited {
    fn drop(&mut self) {
        if let Some(job) = self.job.take() {
            contain("dropping a limited job", move || drop(job));
        }
        self.release_once();
    }
}

impl Inner {
    /// A slot came free: hand it to the next waiting job, or give it back.
    fn release(self: &Arc<Self>) {
        loop {
            let (shared, job) = {
                let mut st = self.state.lock();
                match st.waiting.pop_front() {
                    Some(next) => next,
                    None => {
                        st.in_flight -= 1;
                        return;
                    }
                }
            };
            // The slot passes to `job`.
            match shared.try_submit(Box::new(Limited::new(job, self.clone()))) {
                Ok(()) => return,
                // Its executor closed meanwhile: resolve it, pass the slot on.
                Err(refused) => {
                    let job = refused.into_job();
                    contain("resolving a job refused by a closed executor", || {
                        job.fail(Error::LoopClosed)
                    });
                }
            }
        }
    }
}

impl CapacityLimiter {
    /// A limiter allowing `capacity` jobs in flight at once (0 is taken as
    /// 1, so that jobs still run). anyio's default for its thread limiter is
    /// 40.
    ///
    /// # Examples
    ///
    /// ```
    /// let limiter = bridge::CapacityLimiter::new(40);
    /// assert_eq!(limiter.capacity(), 40);
    /// assert_eq!(bridge::CapacityLimiter::new(0).capacity(), 1);
    /// ```
    pub fn new(capacity: usize) -> CapacityLimiter {
        CapacityLimiter {
            inner: Arc::new(Inner {
                capacity: capacity.max(1),
                state: Mutex::new(State {
                    in_flight: 0,
                    waiting: VecDeque::new(),
                }),
            }),
        }
    }

    /// Runs `f` on `executor` (the default executor for `None`) once fewer
    /// than [`capacity`](Self::capacity) of this limiter's jobs are in
    /// flight; returns its future at once.
    ///
    /// The outcome is as for [`Executor::run`]: `Err(Cancelled)` if
    /// cancelled before it started (a cancelled job waiting in the limiter
    /// gives its turn on as soon as it comes up), `Err(LoopClosed)` if the
    /// executor is closed by the time the job's turn comes.
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = bridge::Executor::new(8);
    /// let limiter = bridge::CapacityLimiter::new(1);
    /// let a = limiter.run(Some(&pool), || 1);
    /// let b = limiter.run(Some(&pool), || 2);
    /// assert_eq!(a.wait().unwrap() + b.wait().unwrap(), 3);
    /// ```
    pub fn run<F, R>(&self, executor: Option<&Executor>, f: F) -> ConcurrentFuture<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        let shared = executor.unwrap_or_else(|| default_executor()).shared();
        let (job, fut) = call(shared.config.home, f);
        let job: Box<dyn Job> = job;
        {
            let mut st = self.inner.state.lock();
            if st.in_flight >= self.inner.capacity {
                st.waiting.push_back((shared.clone(), job));
                return fut;
            }
            st.in_flight += 1;
        }
        shared.submit(Box::new(Limited::new(job, self.inner.clone())));
        fut
    }

    /// How many jobs may be in flight at once.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(bridge::CapacityLimiter::new(3).capacity(), 3);
    /// ```
    pub fn capacity(&self) -> usize {
        self.inner.capacity
    }

    /// This limiter's jobs queued on an executor or running now.
    ///
    /// # Examples
    ///
    /// ```
    /// let limiter = bridge::CapacityLimiter::new(2);
    /// let (tx, rx) = std::sync::mpsc::channel::<()>();
    /// let f = limiter.run(None, move || rx.recv().unwrap());
    /// assert_eq!(limiter.in_flight(), 1);
    /// tx.send(()).unwrap();
    /// f.wait().unwrap();
    /// ```
    pub fn in_flight(&self) -> usize {
        self.inner.state.lock().in_flight
    }

    /// This limiter's jobs waiting for a slot (not yet given to an executor).
    ///
    /// # Examples
    ///
    /// ```
    /// let limiter = bridge::CapacityLimiter::new(1);
    /// let (tx, rx) = std::sync::mpsc::channel::<()>();
    /// let first = limiter.run(None, move || rx.recv().unwrap());
    /// let second = limiter.run(None, || ());
    /// assert_eq!(limiter.waiting(), 1);
    /// tx.send(()).unwrap();
    /// first.wait().unwrap();
    /// second.wait().unwrap();
    /// assert_eq!(limiter.waiting(), 0);
    /// ```
    pub fn waiting(&self) -> usize {
        self.inner.state.lock().waiting.len()
    }
}

impl fmt::Debug for CapacityLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.inner.state.lock();
        f.debug_struct("CapacityLimiter")
            .field("capacity", &self.inner.capacity)
            .field("in_flight", &st.in_flight)
            .field("waiting", &st.waiting.len())
            .finish()
    }
}
