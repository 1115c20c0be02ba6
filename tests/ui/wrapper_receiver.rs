// Receivers the wrapper type cannot forward.
use std::pin::Pin;
use std::sync::Arc;

pub struct Client;

#[bridge::blocking(wrapper = BlockingClient)]
impl Client {
    pub async fn boxed(self: Box<Self>) -> u32 {
        1
    }

    pub async fn shared(self: Arc<Self>) -> u32 {
        2
    }

    pub fn pinned(self: Pin<&mut Self>) -> u32 {
        3
    }
}

fn main() {}
