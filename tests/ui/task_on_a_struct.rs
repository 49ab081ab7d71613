use dagger::task;

#[task]
struct NotAFunction {
    x: u32,
}

fn main() {}
