use dagger::task;

#[task(nmae = "load")]
fn load(n: usize) -> usize {
    n
}

fn main() {}
