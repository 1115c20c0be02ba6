// An impl block with no `pub async fn`: nothing to twin.
pub struct Client;

#[bridge::blocking]
impl Client {
    pub fn get(&self) -> u32 {
        1
    }

    async fn private(&self) -> u32 {
        2
    }
}

fn main() {}
