// A method whose stream is not Send cannot be polled on the worker loop:
// the error names the method and the value that makes it so. An item that
// is not Send is reported at the method too.
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use futures::{Stream, StreamExt};

/// A stream that holds an `Rc`.
pub struct Local(Rc<u32>);

impl Stream for Local {
    type Item = u32;

    fn poll_next(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<u32>> {
        Poll::Ready(Some(*self.0))
    }
}

pub struct Client;

#[bridge::blocking]
impl Client {
    pub fn fine(&self) -> impl Stream<Item = u32> + Send + 'static {
        futures::stream::iter([1])
    }

    pub fn holds_rc(&self) -> impl Stream<Item = u32> + 'static {
        Local(Rc::new(1))
    }
}

pub struct Other;

#[bridge::blocking(wrapper = BlockingOther)]
impl Other {
    pub fn yields_rc(&self) -> impl futures::Stream<Item = Rc<u32>> + Send + 'static {
        futures::stream::iter([1]).map(Rc::new)
    }
}

fn main() {}
