// The twin's name is already taken in the block, and a wrapper method
// would shadow the wrapper's own `inner`.
pub struct Client;

#[bridge::blocking]
impl Client {
    pub async fn get(&self) -> u32 {
        1
    }

    pub fn get_blocking(&self) -> u32 {
        2
    }
}

pub struct Other;

#[bridge::blocking(wrapper = BlockingOther)]
impl Other {
    pub async fn inner(&self) -> u32 {
        1
    }
}

fn main() {}
