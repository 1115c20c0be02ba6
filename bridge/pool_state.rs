//! The thread pool's one state: its queue and thread counts, and the rule
//! that decides, under the pool's lock, whether a push wakes a parked
//! thread, spawns one, or leaves the job to a thread that is awake. The
//! pool itself ([`crate::pool`]) owns the lock, the threads and the
//! waiting; this file is the state machine it keeps.

use std::collections::VecDeque;

use crate::error::Error;

/// One unit of work on the queue.
pub(crate) trait Job: Send {
    /// Runs it and publishes its outcome, catching the panics of both. It
    /// calls `finished` once, after the work and before publishing (where a
    /// [`CapacityLimiter`](crate::CapacityLimiter) frees its slot).
    fn run(self: Box<Self>, finished: &mut dyn FnMut());
    /// Resolves it without running it.
    fn fail(self: Box<Self>, err: Error);
}

/// The pool's state, guarded by the pool's one lock (see the docs of
/// [`crate::pool`]).
pub(crate) struct State {
    pub(crate) queue: VecDeque<Box<dyn Job>>,
    pub(crate) threads: usize,
    pub(crate) idle: usize,
    pub(crate) parked: usize,
    pub(crate) wakeups: usize,
    pub(crate) closed: bool,
}

/// What a submitter does, outside the lock, after its push.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Then {
    Nothing,
    Wake,
    Spawn,
}

impl State {
    /// Idle threads that will look at the queue before they park.
    pub(crate) fn awake(&self) -> usize {
        self.idle - self.parked
    }

    /// Restores "`queue <= awake`, or no thread is parked" after the queue
    /// grew by one job (or an awake thread went away): wakes a parked thread,
    /// or else spawns one if `may_spawn` and there is room.
    pub(crate) fn balance(&mut self, max_threads: usize, may_spawn: bool) -> Then {
        let then = self.wanted(max_threads, may_spawn);
        match then {
            Then::Nothing => {}
            Then::Wake => {
                self.parked -= 1;
                self.wakeups += 1;
            }
            Then::Spawn => {
                self.threads += 1;
                self.idle += 1;
            }
        }
        then
    }

    /// What [`balance`](Self::balance) would do, without doing it.
    pub(crate) fn wanted(&self, max_threads: usize, may_spawn: bool) -> Then {
        if self.queue.len() <= self.awake() {
            Then::Nothing
        } else if self.parked > 0 {
            Then::Wake
        } else if may_spawn && self.threads < max_threads {
            Then::Spawn
        } else {
            Then::Nothing // every thread is busy; the first one done takes it
        }
    }
}
