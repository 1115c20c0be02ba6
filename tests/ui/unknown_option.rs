// An option #[bridge::blocking] does not have.
pub struct Client;

#[bridge::blocking(prefix = "blocking_")]
impl Client {
    pub async fn get(&self) -> u32 {
        1
    }
}

fn main() {}
