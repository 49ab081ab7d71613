//! `#[task(cuda)]` in `dag!` and `spawn` (feature `cuda`). Without a driver, a graph of
//! GPU tasks fails with a clear `Error::Device` and nothing panics; the `--ignored` tests
//! run the same graphs on a GPU and compare with the CPU.
#![cfg(feature = "cuda")]

mod common;

use common::{runtime, watchdog};
use dagger::cuda::{download, spawn_download, upload, DeviceBuffer, HostCopy, Kernel};
use dagger::cuda::{LaunchConfig, Stream};
use dagger::prelude::*;

static AXPY: Kernel = Kernel::new(
    "axpy",
    r#"extern "C" __global__ void axpy(float a, const float* x, float* y, unsigned n) {
        unsigned i = blockIdx.x * blockDim.x + threadIdx.x;
        if (i < n) y[i] = a * x[i] + y[i];
    }"#,
);

#[task(cuda)]
fn axpy(
    stream: &Stream,
    a: f32,
    x: &DeviceBuffer<f32>,
    y: &mut DeviceBuffer<f32>,
) -> Result<(), Error> {
    let n = x.len() as u32;
    // SAFETY: the arguments match the kernel; it stays within `n`.
    unsafe {
        stream
            .kernel(&AXPY)
            .value(a)
            .read(x)
            .write(y)
            .value(n)
            .launch(LaunchConfig::for_num_elems(n))
    }
}

#[task]
fn total(values: &HostCopy<f32>) -> Result<f64, Error> {
    Ok(values.wait()?.iter().map(|&v| v as f64).sum())
}

fn inputs(n: usize) -> (Vec<f32>, Vec<f32>) {
    (
        (0..n).map(|i| (i % 10) as f32).collect(),
        (0..n).map(|i| (i % 3) as f32).collect(),
    )
}

/// Two independent axpys on the same input, then a third that reads one and writes the
/// other: sequential semantics across GPU streams.
fn graph_sum(xs: &[f32], ys: &[f32]) -> Result<(f64, f64), Error> {
    dag! {
        let x = upload(xs)?;
        let mut y = upload(ys)?;
        let mut z = upload(ys)?;
        axpy(2.0, &x, &mut y)?;
        axpy(3.0, &x, &mut z)?;
        axpy(1.0, &y, &mut z)?;
        let y_back = download(&y)?;
        let z_back = download(&z)?;
        let sy = total(&y_back)?;
        let sz = total(&z_back)?;
        (sy, sz)
    }
    .run()
}

fn cpu_sum(xs: &[f32], ys: &[f32]) -> (f64, f64) {
    let y: Vec<f32> = xs.iter().zip(ys).map(|(x, y)| 2.0 * x + y).collect();
    let z: Vec<f32> = xs
        .iter()
        .zip(ys)
        .zip(&y)
        .map(|((x, y0), y)| 3.0 * x + y0 + y)
        .collect();
    let sum = |v: &[f32]| v.iter().map(|&v| v as f64).sum();
    (sum(&y), sum(&z))
}

#[test]
fn without_a_gpu_a_graph_of_gpu_tasks_fails_with_a_device_error() {
    if dagger::cuda::driver_present() {
        return without_a_gpu_is_not_this_machine();
    }
    watchdog(30, || {
        let (xs, ys) = inputs(100);
        let error = graph_sum(&xs, &ys).unwrap_err();
        let text = error.to_string();
        assert!(text.contains("upload"), "{text}");
        assert!(text.contains("no CUDA driver"), "{text}");

        // The same through spawn: the task fails and its dependents see the root cause.
        let rt = runtime(2);
        let x = rt.try_spawn_with((), move || upload(&xs));
        let back = spawn_download(&x);
        let sum = rt.try_spawn_with(&back, |b: &HostCopy<f32>| total(b));
        let error = sum.fetch().unwrap_err();
        assert!(
            matches!(error.root_cause(), Error::TaskFailed { source, .. }
                if source.to_string().contains("no CUDA driver")),
            "{error}"
        );
        // A plain call of a cuda task is an error too, not a panic.
        assert!(matches!(upload(&ys), Err(Error::Device(_))));
    });
}

/// On a GPU machine the no-driver test checks that the graph runs instead.
fn without_a_gpu_is_not_this_machine() {
    let (xs, ys) = inputs(1000);
    assert_eq!(graph_sum(&xs, &ys).unwrap(), cpu_sum(&xs, &ys));
}

#[test]
#[ignore = "needs a CUDA device"]
fn a_graph_of_gpu_tasks_matches_the_cpu() {
    watchdog(120, || {
        for n in [1, 1000, 1 << 20] {
            let (xs, ys) = inputs(n);
            for _ in 0..10 {
                assert_eq!(graph_sum(&xs, &ys).unwrap(), cpu_sum(&xs, &ys), "n = {n}");
            }
        }
    });
}

#[test]
#[ignore = "needs a CUDA device"]
fn spawned_gpu_tasks_match_the_cpu() {
    watchdog(120, || {
        let rt = runtime(2);
        let (xs, ys) = inputs(1 << 16);
        let want = cpu_sum(&xs, &ys).0;
        let sums: Vec<_> = (0..32)
            .map(|_| {
                let (xs, ys) = (xs.clone(), ys.clone());
                let x = rt.try_spawn_with((), move || upload(&xs));
                let y = rt.try_spawn_with(&x, move |x: &DeviceBuffer<f32>| {
                    let mut y = upload(&ys)?;
                    axpy(2.0, x, &mut y)?;
                    Ok::<_, Error>(y)
                });
                let back = spawn_download(&y);
                rt.try_spawn_with(&back, |b: &HostCopy<f32>| total(b))
            })
            .collect();
        for sum in sums {
            assert_eq!(sum.fetch().unwrap(), want);
        }
        let info = download(&upload(&[1.0f32]).unwrap()).unwrap();
        assert_eq!(info.to_vec().unwrap(), vec![1.0]);
    });
}
