//! The one place that names `std::sync`, `parking_lot` and `loom`.
//!
//! Every other module imports its atomics, locks, cells, thread handles and
//! thread-locals from here. Under `--cfg bridge_loom` the modelled pieces
//! (atomics, [`Mutex`], [`Condvar`], [`UnsafeCell`], parking, thread-locals,
//! the executor's threads) become loom's, so the state machines in `future`,
//! `park`, `context` and the executor pool are checked
//! by the models in `loom-tests/` without a `cfg` at their call sites.
//!
//! Process-wide statics that are never modelled (the loop list, the default
//! executor) use [`StaticMutex`], which is always `parking_lot`.

#[cfg(not(bridge_loom))]
mod imp {
    pub(crate) use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    pub(crate) use std::sync::Arc;
    pub(crate) use std::thread::{current as current_thread, yield_now, Thread};

    /// A lock that is never poisoned (`parking_lot`).
    pub(crate) type Mutex<T> = parking_lot::Mutex<T>;
    /// The guard of a [`Mutex`].
    pub(crate) type MutexGuard<'a, T> = parking_lot::MutexGuard<'a, T>;
    /// A condition variable for a [`Mutex`] (`parking_lot`: `wait(&mut
    /// guard)`, `wait_for(&mut guard, dur).timed_out()`).
    #[allow(dead_code)] // the pool, its last user, waits on a `HotCondvar`; kept for symmetry
    pub(crate) type Condvar = parking_lot::Condvar;

    /// A lock for one very hot state with tiny critical sections (the
    /// executor pool's): the standard library's futex lock, which spins a
    /// little, then sleeps, and lets a running thread take it before a
    /// sleeping one. `parking_lot`'s "eventual fairness" hands a hot lock to
    /// a sleeping thread every 0.5 ms, and every thread then waits for that
    /// wake-up: on a busy machine a burst of 10,000 tiny jobs took 2 to 5
    /// times longer, now and then. Same API as [`Mutex`]; never poisoned.
    #[derive(Debug)]
    pub(crate) struct HotMutex<T>(std::sync::Mutex<T>);

    /// The guard of a [`HotMutex`], held in an `Option` so that
    /// [`HotCondvar`] can wait through `&mut` as `parking_lot`'s does.
    pub(crate) struct HotGuard<'a, T>(Option<std::sync::MutexGuard<'a, T>>);

    impl<T> HotMutex<T> {
        pub(crate) fn new(value: T) -> Self {
            Self(std::sync::Mutex::new(value))
        }

        pub(crate) fn lock(&self) -> HotGuard<'_, T> {
            HotGuard(Some(self.0.lock().unwrap_or_else(|e| e.into_inner())))
        }

        pub(crate) fn try_lock(&self) -> Option<HotGuard<'_, T>> {
            match self.0.try_lock() {
                Ok(g) => Some(HotGuard(Some(g))),
                Err(std::sync::TryLockError::Poisoned(e)) => Some(HotGuard(Some(e.into_inner()))),
                Err(std::sync::TryLockError::WouldBlock) => None,
            }
        }
    }

    impl<T> std::ops::Deref for HotGuard<'_, T> {
        type Target = T;

        fn deref(&self) -> &T {
            self.0.as_ref().expect("bridge: a condvar wait panicked")
        }
    }

    impl<T> std::ops::DerefMut for HotGuard<'_, T> {
        fn deref_mut(&mut self) -> &mut T {
            self.0.as_mut().expect("bridge: a condvar wait panicked")
        }
    }

    /// A condition variable for a [`HotMutex`], with `parking_lot`'s
    /// signatures.
    #[derive(Debug, Default)]
    pub(crate) struct HotCondvar(std::sync::Condvar);

    /// What [`HotCondvar::wait_for`] returns (as `parking_lot`'s).
    pub(crate) struct HotTimeout(bool);

    impl HotTimeout {
        pub(crate) fn timed_out(&self) -> bool {
            self.0
        }
    }

    impl HotCondvar {
        pub(crate) fn new() -> Self {
            Self(std::sync::Condvar::new())
        }

        pub(crate) fn wait<T>(&self, guard: &mut HotGuard<'_, T>) {
            let g = guard.0.take().expect("bridge: a condvar wait panicked");
            guard.0 = Some(self.0.wait(g).unwrap_or_else(|e| e.into_inner()));
        }

        pub(crate) fn wait_for<T>(
            &self,
            guard: &mut HotGuard<'_, T>,
            timeout: std::time::Duration,
        ) -> HotTimeout {
            let g = guard.0.take().expect("bridge: a condvar wait panicked");
            let (g, r) = self
                .0
                .wait_timeout(g, timeout)
                .unwrap_or_else(|e| e.into_inner());
            guard.0 = Some(g);
            HotTimeout(r.timed_out())
        }

        pub(crate) fn notify_one(&self) {
            self.0.notify_one();
        }

        pub(crate) fn notify_all(&self) {
            self.0.notify_all();
        }
    }

    pub(crate) use std::thread::JoinHandle;

    /// Spawns a thread named `name`, with `stack_size` bytes of stack if
    /// given (an executor's threads).
    pub(crate) fn spawn<F: FnOnce() + Send + 'static>(
        name: String,
        stack_size: Option<usize>,
        f: F,
    ) -> std::io::Result<JoinHandle<()>> {
        let mut builder = std::thread::Builder::new().name(name);
        if let Some(size) = stack_size {
            builder = builder.stack_size(size);
        }
        builder.spawn(f)
    }

    /// Parks the current thread until it is unparked or `dur` passes.
    pub(crate) fn park_timeout(dur: std::time::Duration) {
        std::thread::park_timeout(dur)
    }

    /// Parks the current thread until it is unparked.
    pub(crate) fn park() {
        std::thread::park()
    }

    /// `UnsafeCell` with loom's closure API, so call sites read the same
    /// under the model.
    #[derive(Debug)]
    pub(crate) struct UnsafeCell<T>(std::cell::UnsafeCell<T>);

    impl<T> UnsafeCell<T> {
        pub(crate) const fn new(value: T) -> Self {
            Self(std::cell::UnsafeCell::new(value))
        }

        #[inline]
        pub(crate) fn with<R>(&self, f: impl FnOnce(*const T) -> R) -> R {
            f(self.0.get())
        }

        #[inline]
        pub(crate) fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
            f(self.0.get())
        }
    }

    macro_rules! bridge_thread_local {
        ($($tt:tt)*) => { std::thread_local!($($tt)*); };
    }
    pub(crate) use bridge_thread_local as thread_local;
}

#[cfg(bridge_loom)]
mod imp {
    pub(crate) use loom::cell::UnsafeCell;
    pub(crate) use loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    pub(crate) use loom::sync::Arc;
    pub(crate) use loom::thread::{current as current_thread, yield_now, Thread};

    /// loom's mutex with `parking_lot`'s signature (no poisoning).
    #[derive(Debug)]
    pub(crate) struct Mutex<T>(loom::sync::Mutex<T>);

    impl<T> Mutex<T> {
        pub(crate) fn new(value: T) -> Self {
            Self(loom::sync::Mutex::new(value))
        }

        pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
            MutexGuard {
                mutex: &self.0,
                guard: Some(self.0.lock().unwrap_or_else(|e| e.into_inner())),
            }
        }

        pub(crate) fn try_lock(&self) -> Option<MutexGuard<'_, T>> {
            let guard = match self.0.try_lock() {
                Ok(g) => g,
                Err(std::sync::TryLockError::Poisoned(e)) => e.into_inner(),
                Err(std::sync::TryLockError::WouldBlock) => return None,
            };
            Some(MutexGuard {
                mutex: &self.0,
                guard: Some(guard),
            })
        }
    }

    /// The guard of a [`Mutex`]: loom's, held in an `Option` so that
    /// [`Condvar`] can wait through `&mut` as `parking_lot`'s does.
    #[derive(Debug)]
    pub(crate) struct MutexGuard<'a, T> {
        mutex: &'a loom::sync::Mutex<T>,
        /// `None` only while a condvar wait has it (or after that wait
        /// panicked, and then the guard is only dropped).
        guard: Option<loom::sync::MutexGuard<'a, T>>,
    }

    impl<T> std::ops::Deref for MutexGuard<'_, T> {
        type Target = T;

        fn deref(&self) -> &T {
            self.guard
                .as_ref()
                .expect("bridge: a condvar wait panicked")
        }
    }

    impl<T> std::ops::DerefMut for MutexGuard<'_, T> {
        fn deref_mut(&mut self) -> &mut T {
            self.guard
                .as_mut()
                .expect("bridge: a condvar wait panicked")
        }
    }

    /// What [`Condvar::wait_for`] returns (as `parking_lot`'s).
    #[derive(Debug)]
    pub(crate) struct WaitTimeoutResult(bool);

    impl WaitTimeoutResult {
        pub(crate) fn timed_out(&self) -> bool {
            self.0
        }
    }

    /// loom's condvar with `parking_lot`'s signatures.
    #[derive(Debug)]
    pub(crate) struct Condvar(loom::sync::Condvar);

    impl Condvar {
        pub(crate) fn new() -> Self {
            Self(loom::sync::Condvar::new())
        }

        /// Unlocks, waits for a notification, relocks. loom's condvar has
        /// no spurious wake-ups: a wait nobody notifies is a deadlock, which
        /// is what the models check for.
        pub(crate) fn wait<T>(&self, guard: &mut MutexGuard<'_, T>) {
            let g = guard.guard.take().expect("bridge: a condvar wait panicked");
            guard.guard = Some(self.0.wait(g).unwrap_or_else(|e| e.into_inner()));
        }

        /// loom has no time: a timed wait is modelled as one that times
        /// out at once, after unlocking and yielding (so that other threads
        /// may take the lock in between, as they may during a real wait),
        /// and relocking. That is one thing a real timed wait may do, and it
        /// keeps every model finite: a waiter never blocks here, so what a
        /// notification would have told it must come from the state under
        /// the lock. A notification sent meanwhile is not seen (no waiter).
        pub(crate) fn wait_for<T>(
            &self,
            guard: &mut MutexGuard<'_, T>,
            _timeout: std::time::Duration,
        ) -> WaitTimeoutResult {
            drop(guard.guard.take());
            loom::thread::yield_now();
            guard.guard = Some(guard.mutex.lock().unwrap_or_else(|e| e.into_inner()));
            WaitTimeoutResult(true)
        }

        pub(crate) fn notify_one(&self) {
            self.0.notify_one()
        }

        pub(crate) fn notify_all(&self) {
            self.0.notify_all()
        }
    }

    /// Under loom the hot lock is loom's, as [`Mutex`] is.
    pub(crate) type HotMutex<T> = Mutex<T>;
    /// Under loom, [`Condvar`].
    pub(crate) type HotCondvar = Condvar;

    pub(crate) use loom::thread::JoinHandle;

    /// A loom thread (loom's threads have no name or stack size).
    pub(crate) fn spawn<F: FnOnce() + Send + 'static>(
        _name: String,
        _stack_size: Option<usize>,
        f: F,
    ) -> std::io::Result<JoinHandle<()>> {
        Ok(loom::thread::spawn(f))
    }

    /// loom has no timed park: a timed park is modelled as a yield, which is
    /// one of the things a real timed park may do (return early).
    pub(crate) fn park_timeout(_dur: std::time::Duration) {
        loom::thread::yield_now()
    }

    pub(crate) fn park() {
        loom::thread::park()
    }

    // loom's `thread_local!` takes no `const { .. }` initializer: strip it
    // (the value is built lazily per loom thread either way).
    macro_rules! bridge_thread_local {
        () => {};
        ($(#[$attr:meta])* $vis:vis static $name:ident: $t:ty = const { $init:expr } $(; $($rest:tt)*)?) => {
            loom::thread_local!($(#[$attr])* $vis static $name: $t = $init);
            $($crate::sync::thread_local!($($rest)*);)?
        };
        ($(#[$attr:meta])* $vis:vis static $name:ident: $t:ty = $init:expr $(; $($rest:tt)*)?) => {
            loom::thread_local!($(#[$attr])* $vis static $name: $t = $init);
            $($crate::sync::thread_local!($($rest)*);)?
        };
    }
    pub(crate) use bridge_thread_local as thread_local;
}

pub(crate) use imp::*;

/// Unmodelled primitives for state that no loom model touches: the loop
/// list, loop and executor bookkeeping, the worker's start, panic payloads.
/// They stay `std`/`parking_lot` under `bridge_loom`, so loom tests can still
/// link the whole crate.
pub(crate) mod plain {
    pub(crate) use parking_lot::{Condvar, Mutex};
    pub(crate) use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
    pub(crate) use std::sync::{Arc, OnceLock, Weak};
}
