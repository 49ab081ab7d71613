use dagger::prelude::*;

pub struct Stream;

// A `cuda` task may find no GPU, so it returns a `Result`.
#[task(cuda)]
fn scale(stream: &Stream, x: f32) -> f32 {
    let _ = stream;
    x * 2.0
}

#[task(cuda = true)]
fn twice(stream: &Stream) -> Result<(), Error> {
    let _ = stream;
    Ok(())
}

fn main() {}
