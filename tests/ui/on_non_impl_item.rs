// #[bridge::blocking] on items that are not impl blocks.

#[bridge::blocking]
pub async fn fetch() -> u32 {
    1
}

#[bridge::blocking]
pub struct Client;

#[bridge::blocking]
pub trait Fetch {
    fn fetch(&self) -> u32;
}

fn main() {}
