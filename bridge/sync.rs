//! The one place that names `std::sync`, `parking_lot` and `loom`.
//!
//! Every other module imports its atomics, locks, cells, thread handles and
//! thread-locals from here. Under `--cfg bridge_loom` the modelled pieces
//! (atomics, [`Mutex`], [`UnsafeCell`], parking, thread-locals) become loom's,
//! so the state machines in `future`, `park`, `registry` and `once` are checked
//! by the models in `loom-tests/` without a `cfg` at their call sites.
//!
//! Process-wide statics that are never modelled (the loop list, the default
//! executor) use [`StaticMutex`], which is always `parking_lot`.

#[cfg(not(bridge_loom))]
mod imp {
    pub(crate) use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
    pub(crate) use std::sync::Arc;
    pub(crate) use std::thread::{current as current_thread, yield_now, Thread};

    /// A lock that is never poisoned (`parking_lot`).
    pub(crate) type Mutex<T> = parking_lot::Mutex<T>;

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
    pub(crate) use loom::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
    pub(crate) use loom::sync::Arc;
    pub(crate) use loom::thread::{current as current_thread, yield_now, Thread};

    /// loom's mutex with `parking_lot`'s signature (no poisoning).
    #[derive(Debug)]
    pub(crate) struct Mutex<T>(loom::sync::Mutex<T>);

    impl<T> Mutex<T> {
        pub(crate) fn new(value: T) -> Self {
            Self(loom::sync::Mutex::new(value))
        }

        pub(crate) fn lock(&self) -> loom::sync::MutexGuard<'_, T> {
            self.0.lock().unwrap_or_else(|e| e.into_inner())
        }
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
