//! A start-once cell for process-wide services (the worker loop, the default
//! executor): the first caller builds the value, concurrent callers wait for
//! it, and a failed build leaves the cell empty so a later call can retry.
//!
//! | state     | moved by                     | to                                     |
//! |-----------|------------------------------|----------------------------------------|
//! | `UNINIT`  | a caller wins the CAS        | `RUNNING`                              |
//! | `RUNNING` | the builder succeeds         | `READY` (value written first)          |
//! | `RUNNING` | the builder fails or panics  | `UNINIT`                               |
//! | `READY`   | nothing                      |                                        |
//!
//! Callers that find `RUNNING` yield until it moves. Building a service
//! takes about a millisecond and happens once per process, so yielding is
//! cheaper than any parking scheme here.

use crate::sync::{AtomicUsize, Ordering, UnsafeCell};

const UNINIT: usize = 0;
const RUNNING: usize = 1;
const READY: usize = 2;

/// A cell written at most once, by whichever caller gets there first.
#[derive(Debug)]
pub struct OnceCell<T> {
    state: AtomicUsize,
    value: UnsafeCell<Option<T>>,
}

// SAFETY: the value is written once, by the single caller that moved the state
// to `RUNNING`, before `READY` is published with Release; every shared read
// happens after an Acquire load of `READY`. So `&OnceCell<T>` hands out `&T`
// across threads (needs `T: Sync`) and the value may be built on one thread and
// dropped on another (needs `T: Send`).
unsafe impl<T: Send + Sync> Sync for OnceCell<T> {}

impl<T> OnceCell<T> {
    /// An empty cell.
    #[cfg(not(bridge_loom))]
    pub const fn new() -> Self {
        OnceCell {
            state: AtomicUsize::new(UNINIT),
            value: UnsafeCell::new(None),
        }
    }

    /// An empty cell.
    #[cfg(bridge_loom)]
    pub fn new() -> Self {
        OnceCell {
            state: AtomicUsize::new(UNINIT),
            value: UnsafeCell::new(None),
        }
    }

    /// The value, if built.
    // Read by the loom start-once model (`loom_api::OnceCell`); the crate
    // itself only needs `get_or_try_init`.
    #[cfg_attr(not(bridge_loom), allow(dead_code))]
    pub fn get(&self) -> Option<&T> {
        // ORDERING: Acquire pairs with the Release store of `READY`, making the
        // value write visible.
        if self.state.load(Ordering::Acquire) == READY {
            // SAFETY: `READY` is final and was published after the only write.
            Some(unsafe { self.value_ref() })
        } else {
            None
        }
    }

    /// The value, building it with `init` if no one has yet. If `init`
    /// fails (or panics), the cell stays empty and the error is returned.
    pub fn get_or_try_init<E>(&self, init: impl FnOnce() -> Result<T, E>) -> Result<&T, E> {
        let mut init = Some(init);
        loop {
            // ORDERING: Acquire, as in `get`.
            match self.state.load(Ordering::Acquire) {
                // SAFETY: as in `get`.
                READY => return Ok(unsafe { self.value_ref() }),
                UNINIT => {
                    // ORDERING: Acquire on success orders the build after the claim;
                    // the failure value is re-read by the loop.
                    if self
                        .state
                        .compare_exchange(UNINIT, RUNNING, Ordering::Acquire, Ordering::Relaxed)
                        .is_err()
                    {
                        continue;
                    }
                    let reset = Reset(&self.state);
                    let f = init.take().expect("init runs at most once per caller");
                    // On error or panic, `reset` puts the cell back to UNINIT.
                    let value = f()?;
                    // SAFETY: this caller moved the state to `RUNNING`, so it is the only
                    // writer, and no reader touches the value before `READY`.
                    self.value.with_mut(|p| unsafe { *p = Some(value) });
                    std::mem::forget(reset);
                    // ORDERING: Release publishes the value to Acquire loads of `READY`.
                    self.state.store(READY, Ordering::Release);
                    // SAFETY: just published, and final.
                    return Ok(unsafe { self.value_ref() });
                }
                _ => crate::sync::yield_now(),
            }
        }
    }

    /// # Safety
    ///
    /// The state must be `READY` (observed with Acquire).
    unsafe fn value_ref(&self) -> &T {
        // SAFETY: by the contract above the value is written and never written again.
        self.value
            .with(|p| unsafe { (*p).as_ref() })
            .expect("READY implies a value")
    }
}

impl<T> Default for OnceCell<T> {
    fn default() -> Self {
        Self::new()
    }
}

/// Puts a claimed cell back to `UNINIT` if the build fails or panics.
struct Reset<'a>(&'a AtomicUsize);

impl Drop for Reset<'_> {
    fn drop(&mut self) {
        // ORDERING: Release: nothing was written; waiters simply retry.
        self.0.store(UNINIT, Ordering::Release);
    }
}
