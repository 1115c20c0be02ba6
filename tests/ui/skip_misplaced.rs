// `skip` marks a method inside a #[bridge::blocking] impl block, nothing else;
// and a method takes no other option.
pub struct Client;

#[bridge::blocking(skip)]
pub async fn fetch() -> u32 {
    1
}

#[bridge::blocking]
impl Client {
    pub async fn get(&self) -> u32 {
        1
    }

    #[bridge::blocking(suffix = "_sync")]
    pub async fn set(&self) -> u32 {
        2
    }
}

fn main() {}
