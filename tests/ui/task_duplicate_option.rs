use dagger::task;

#[task(name = "first", name = "second")]
fn load(n: usize) -> usize {
    n
}

fn main() {}
