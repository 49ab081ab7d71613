use dagger::task;

#[task(name = load)]
fn load(n: usize) -> usize {
    n
}

fn main() {}
