//! Handing a borrowing future to a loop and blocking until it is done and
//! dropped ([`scoped`](crate::scoped) does the borrowing): through a tokio
//! runtime (the worker loop, a `run` loop), or through a
//! [`Loop`](crate::Loop)'s [`inbox`](crate::inbox). The caller waits inside a
//! blocking region ([`crate::wait`]), so a wait on the worker loop's own
//! thread first moves its core away.

use std::future::Future;
use std::panic::Location;
use std::time::Instant;

use crate::error::Error;
use crate::inbox::{Inbox, ScopedJoin};
use crate::park;
use crate::report::Origin;
use crate::scoped::{block_on_with, ScopedTask, Spawner};
use crate::sync::Arc;

/// A tokio runtime as a [`Spawner`]: the caller waits on the join handle
/// with the crate's waiting strategy, inside a blocking region (so a wait on
/// the worker loop's own thread first moves its core away).
pub(crate) struct Tokio<'a> {
    pub(crate) runtime: &'a tokio::runtime::Handle,
    pub(crate) caller: &'static Location<'static>,
    /// Names the work in debug reports of the wait.
    pub(crate) target: Option<&'a Origin>,
}

impl Spawner for Tokio<'_> {
    type Join = tokio::task::JoinHandle<()>;

    fn spawn(&self, task: ScopedTask) -> Self::Join {
        self.runtime.spawn(task)
    }

    fn wait(&self, join: &mut Self::Join, deadline: Option<Instant>) -> bool {
        // `unconstrained`: inside a runtime, tokio's task budget would otherwise
        // make the join handle return `Pending` forever to a thread that blocks.
        crate::wait::blocking_region_for(self.caller, self.target, || {
            park::block_on_until(tokio::task::unconstrained(join), deadline)
        })
        .is_some()
    }

    fn abort(&self, join: &Self::Join) {
        join.abort();
    }
}

/// [`block_on_with`] on a tokio runtime.
pub(crate) fn block_on<'a, T, F>(
    runtime: &tokio::runtime::Handle,
    fut: F,
    caller: &'static Location<'static>,
    target: Option<&Origin>,
    deadline: Option<Instant>,
) -> Result<T, Error>
where
    F: Future<Output = Result<T, Error>> + Send + 'a,
    T: Send + 'a,
{
    let spawner = Tokio {
        runtime,
        caller,
        target,
    };
    block_on_with(&spawner, fut, deadline)
}

/// A loop's inbox as a [`Spawner`] of borrowing hand-offs: the task goes
/// through the queue like any submission (in order, no wake-up while the
/// loop spins); its caller waits on a [`ScopedJoin`] (the one allocation).
pub(crate) struct InboxSpawner<'a> {
    pub(crate) inbox: &'a Inbox,
    pub(crate) caller: &'static Location<'static>,
    /// Names the work in debug reports of the wait.
    pub(crate) target: Option<&'a Origin>,
}

impl Spawner for InboxSpawner<'_> {
    type Join = Arc<ScopedJoin>;

    fn spawn(&self, task: ScopedTask) -> Self::Join {
        self.inbox.push_scoped(task)
    }

    fn wait(&self, join: &mut Self::Join, deadline: Option<Instant>) -> bool {
        crate::wait::blocking_region_for(self.caller, self.target, || join.wait(deadline))
    }

    fn abort(&self, join: &Self::Join) {
        join.abort();
    }
}
