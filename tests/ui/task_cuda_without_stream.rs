use dagger::prelude::*;

// A `cuda` task receives its stream as the first parameter.
#[task(cuda)]
fn scale(x: f32) -> Result<f32, Error> {
    Ok(x * 2.0)
}

#[task(cuda)]
fn nothing() -> Result<(), Error> {
    Ok(())
}

fn main() {}
