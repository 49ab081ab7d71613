fn main() {
    // A region's data object cannot be used by another region (here a nested one): its
    // tasks would not be ordered with the outer region's.
    let mut x = 0_u64;
    let _ = dagger::datadeps(|outer| {
        let d = outer.data(&mut x);
        outer.spawn(d.write(), |x: &mut u64| *x += 1);
        dagger::datadeps(|inner| {
            inner.spawn(d.write(), |x: &mut u64| *x += 1);
        })
    });
}
