// #[bridge::blocking] on an impl of a trait.
pub struct Client;

pub trait Fetch {
    fn fetch(&self) -> u32;
}

#[bridge::blocking]
impl Fetch for Client {
    fn fetch(&self) -> u32 {
        1
    }
}

fn main() {}
