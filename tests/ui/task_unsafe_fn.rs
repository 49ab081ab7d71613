use dagger::task;

#[task]
unsafe fn read(p: *const u8) -> u8 {
    *p
}

fn main() {}
