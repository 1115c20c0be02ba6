// Only `pub` methods get a twin or a place in the wrapper.
pub struct Client;

#[bridge::blocking]
impl Client {
    pub async fn public(&self) -> u32 {
        self.private().await
    }

    async fn private(&self) -> u32 {
        1
    }
}

pub struct Other;

#[bridge::blocking(wrapper = BlockingOther)]
impl Other {
    pub async fn public(&self) -> u32 {
        self.private()
    }

    fn private(&self) -> u32 {
        1
    }
}

fn main() {
    let _ = Client.private_blocking();
    let _ = BlockingOther::from(Other).private();
}
