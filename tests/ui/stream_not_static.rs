// The blocking iterator polls the stream after the call has returned, so a
// stream that borrows cannot have one: the error says so, at the lifetime,
// in both forms. A stream of a method taking a reference must say it is
// `'static` (under edition 2024 it would capture the reference otherwise):
// the error says so, at the return type. A stream that keeps a type
// parameter is reported at the method, with the bound to add.
use futures::stream::{self, Stream, StreamExt};

pub struct Client {
    items: Vec<u32>,
}

#[bridge::blocking]
impl Client {
    pub fn borrows_self(&self) -> impl Stream<Item = u32> + Send + '_ {
        stream::iter(self.items.iter().copied())
    }

    pub fn not_declared_static(&self) -> impl Stream<Item = u32> + Send {
        stream::iter([1])
    }

    pub fn keeps_value<T: Send>(value: T) -> impl Stream<Item = u32> + Send {
        stream::iter([1]).map(move |n| {
            let _ = &value;
            n
        })
    }
}

pub struct Other {
    items: Vec<u32>,
}

#[bridge::blocking(wrapper = BlockingOther)]
impl Other {
    pub fn fine(&self) -> impl Stream<Item = u32> + Send + 'static {
        stream::iter(self.items.clone())
    }

    pub fn captures<'a>(&'a self) -> impl Stream<Item = u32> + Send + use<'a> {
        stream::iter(self.items.iter().copied())
    }
}

fn main() {}
