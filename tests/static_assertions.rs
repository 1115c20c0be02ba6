//! Compile-time checks of the auto traits API.md promises for every public
//! type. A failure here is a build error, not a test failure.

use bridge::{
    BlockingIter, CapacityLimiter, ConcurrentFuture, Error, Executor, ExecutorBuilder,
    ExecutorStream, ForeignGuard, Loop, LoopBuilder, LoopHandle, LoopId, LoopInfo, PanicError,
    Promise, RunningLoop,
};

fn send<T: Send>() {}
fn sync<T: Sync>() {}
fn unpin<T: Unpin>() {}
fn clone<T: Clone>() {}
fn debug<T: std::fmt::Debug>() {}
fn static_<T: 'static>() {}
fn iterator<T: Iterator>() {}
fn stream<T: futures_core::Stream>() {}

/// `!Send` check: `AmbiguousIfSend<_>` is implemented for every `T` once, and
/// a second time (with a different marker) for `T: Send`. Calling
/// `<T as AmbiguousIfSend<_>>::some_item` infers the marker only when exactly
/// one impl applies, i.e. when `T` is **not** `Send`. For a `Send` type the
/// call is ambiguous and does not compile.
trait AmbiguousIfSend<A> {
    fn some_item() {}
}
impl<T: ?Sized> AmbiguousIfSend<()> for T {}
#[allow(dead_code)]
struct IsSend;
impl<T: ?Sized + Send> AmbiguousIfSend<IsSend> for T {}

#[test]
fn errors_are_send_sync_static() {
    send::<Error>();
    sync::<Error>();
    static_::<Error>();
    unpin::<Error>();
    debug::<Error>();
    send::<PanicError>();
    sync::<PanicError>();
    unpin::<PanicError>();
    debug::<PanicError>();
}

#[test]
fn concurrent_future_is_send_sync_unpin_when_t_is_send() {
    send::<ConcurrentFuture<u32>>();
    sync::<ConcurrentFuture<u32>>();
    unpin::<ConcurrentFuture<u32>>();
    // `T: Send` suffices, `T: Sync` is not needed.
    send::<ConcurrentFuture<std::cell::Cell<u32>>>();
    sync::<ConcurrentFuture<std::cell::Cell<u32>>>();
    unpin::<ConcurrentFuture<std::marker::PhantomPinned>>();
    send::<ConcurrentFuture<Box<dyn std::any::Any + Send>>>();
    sync::<ConcurrentFuture<Box<dyn std::any::Any + Send>>>();
    send::<Promise<u32>>();
    sync::<Promise<u32>>();
    send::<Promise<std::cell::Cell<u32>>>();
    unpin::<Promise<u32>>();
}

#[test]
fn loop_types() {
    send::<Loop>();
    sync::<Loop>();
    send::<LoopHandle>();
    sync::<LoopHandle>();
    clone::<LoopHandle>();
    unpin::<LoopHandle>();
    debug::<LoopHandle>();
    send::<LoopBuilder>();
    sync::<LoopBuilder>();
    send::<LoopInfo>();
    sync::<LoopInfo>();
    debug::<LoopInfo>();
    send::<LoopId>();
    sync::<LoopId>();
    send::<RunningLoop>();
    sync::<RunningLoop>();
    debug::<RunningLoop>();
}

#[test]
fn foreign_guard_is_not_send() {
    // Compiles only if ForeignGuard is !Send (see AmbiguousIfSend).
    <ForeignGuard as AmbiguousIfSend<_>>::some_item();
    debug::<ForeignGuard>();
}

#[test]
fn executor_types() {
    send::<Executor>();
    sync::<Executor>();
    clone::<Executor>();
    static_::<Executor>();
    send::<ExecutorBuilder>();
    sync::<ExecutorBuilder>();
    clone::<ExecutorBuilder>();
    debug::<ExecutorBuilder>();
    send::<CapacityLimiter>();
    sync::<CapacityLimiter>();
    clone::<CapacityLimiter>();
}

#[test]
fn stream_bridges() {
    // `Iterator<Item = T> + Send`, also for an item that is only `Send`.
    send::<BlockingIter<u32>>();
    iterator::<BlockingIter<u32>>();
    send::<BlockingIter<std::cell::Cell<u32>>>();
    // `Stream<Item = T> + Send + Unpin`.
    send::<ExecutorStream<u32>>();
    unpin::<ExecutorStream<u32>>();
    stream::<ExecutorStream<u32>>();
    send::<ExecutorStream<std::cell::Cell<u32>>>();
    unpin::<ExecutorStream<std::marker::PhantomPinned>>();
}
