//! A GPU pipeline: batches of SAXPY (`a x + y`) on the GPU, each batch uploaded,
//! computed and downloaded as its own stream operations, then reduced on the CPU. Batches
//! are independent, so copies of one overlap the kernels of another.
//!
//! `cargo run --release --features cuda --example gpu_pipeline`
//! Without a CUDA device it says so and checks nothing.

use dagger::cuda::{spawn_download, DeviceBuffer, HostCopy, Kernel, LaunchConfig, Stream};
use dagger::prelude::*;

static SAXPY: Kernel = Kernel::new(
    "saxpy",
    r#"extern "C" __global__ void saxpy(float a, const float* x, const float* y, float* out, unsigned n) {
        unsigned i = blockIdx.x * blockDim.x + threadIdx.x;
        if (i < n) out[i] = a * x[i] + y[i];
    }"#,
);

/// `a x + y` into a new buffer, on the stream the runtime lends this task.
#[task(cuda)]
fn saxpy(
    stream: &Stream,
    a: f32,
    x: &DeviceBuffer<f32>,
    y: &DeviceBuffer<f32>,
) -> Result<DeviceBuffer<f32>, Error> {
    let n = x.len() as u32;
    // The output is allocated and zeroed on the task's stream, placed by `x`'s history.
    let mut out = stream.place_near(x).zeros::<f32>(x.len())?;
    // SAFETY: the arguments match the kernel's parameters, and it stays within `n`.
    unsafe {
        stream
            .kernel(&SAXPY)
            .value(a)
            .read(x)
            .read(y)
            .write(&mut out)
            .value(n)
            .launch(LaunchConfig::for_num_elems(n))?;
    }
    Ok(out)
}

/// A batch's inputs, made on the CPU.
fn batch(b: usize, n: usize) -> (Vec<f32>, Vec<f32>) {
    let x = (0..n).map(|i| ((b + i) % 100) as f32 * 0.01).collect();
    let y = (0..n).map(|i| ((b * 7 + i) % 10) as f32).collect();
    (x, y)
}

fn main() -> Result<(), Error> {
    let devices = match dagger::cuda::devices() {
        Ok(devices) => devices,
        Err(error) => {
            println!("no GPU: {error}");
            println!("(this example needs an NVIDIA GPU; nothing was computed)");
            return Ok(());
        }
    };
    println!("running on {}", devices[0].name);
    let (batches, n, a) = (16, 1 << 22, 2.5f32);
    let start = std::time::Instant::now();
    let sums: Vec<Handle<f64>> = (0..batches)
        .map(|b| {
            let (x, y) = batch(b, n);
            let x = try_spawn_with((), move || dagger::cuda::upload(&x));
            let y = try_spawn_with((), move || dagger::cuda::upload(&y));
            let y = try_spawn_with(
                (&x, &y),
                move |x: &DeviceBuffer<f32>, y: &DeviceBuffer<f32>| saxpy(a, x, y),
            );
            let back = spawn_download(&y); // ready once the data has landed: no CPU waits
            try_spawn_with(&back, |back: &HostCopy<f32>| {
                Ok::<_, Error>(back.wait()?.iter().map(|&v| v as f64).sum::<f64>())
            })
        })
        .collect();
    let mut total = 0.0;
    for (b, sum) in sums.into_iter().enumerate() {
        let gpu = sum.fetch()?;
        let (x, y) = batch(b, n);
        let cpu: f64 = x.iter().zip(&y).map(|(x, y)| (a * x + y) as f64).sum();
        assert!(
            (gpu - cpu).abs() <= 1e-6 * cpu.abs(),
            "batch {b}: {gpu} vs {cpu}"
        );
        total += gpu;
    }
    println!(
        "{batches} batches of {n} elements: sum {total:.1}, matches the CPU, {:.1} ms",
        start.elapsed().as_secs_f64() * 1e3
    );
    Ok(())
}
