// Options with values #[bridge::blocking] cannot use.
pub struct A;
pub struct B;
pub struct C;
pub struct D;
pub struct E;

#[bridge::blocking(suffix = _sync)]
impl A {
    pub async fn get(&self) -> u32 {
        1
    }
}

#[bridge::blocking(suffix = "-sync")]
impl B {
    pub async fn get(&self) -> u32 {
        1
    }
}

#[bridge::blocking(suffix = "_sync", wrapper = BlockingC)]
impl C {
    pub async fn get(&self) -> u32 {
        1
    }
}

#[bridge::blocking(suffix = "_a", suffix = "_b")]
impl D {
    pub async fn get(&self) -> u32 {
        1
    }
}

#[bridge::blocking(wrapper = "BlockingE")]
impl E {
    pub async fn get(&self) -> u32 {
        1
    }
}

fn main() {}
