use dagger::prelude::*;

#[task]
fn push(v: &mut Vec<u64>, x: u64) {
    v.push(x);
}

fn main() {
    // `log` is written through `&mut` by two statements; inside a macro it would be that
    // reference, not the vector.
    let mut log = Vec::new();
    let _ = dag! {
        push(&mut log, 1);
        push(&mut log, 2);
        let size = format!("{}", std::mem::size_of_val(&log));
        size
    };
}
