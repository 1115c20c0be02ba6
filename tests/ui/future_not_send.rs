// A method whose future is not Send cannot run on the worker loop: the
// error names the method and the value that makes it so.
use std::rc::Rc;

pub struct Client;

#[bridge::blocking]
impl Client {
    pub async fn fine(&self) -> u32 {
        1
    }

    pub async fn holds_rc(&self) -> u32 {
        let n = Rc::new(1);
        tokio::task::yield_now().await;
        *n
    }
}

pub struct Other;

#[bridge::blocking(wrapper = BlockingOther)]
impl Other {
    pub async fn returns_rc(&self) -> Rc<u32> {
        Rc::new(1)
    }
}

fn main() {}
