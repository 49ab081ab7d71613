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
    // A loadable driver is not a working GPU: ask for the devices.
    if matches!(dagger::cuda::devices(), Ok(list) if !list.is_empty()) {
        return without_a_gpu_is_not_this_machine();
    }
    watchdog(30, || {
        let (xs, ys) = inputs(100);
        let error = graph_sum(&xs, &ys).unwrap_err();
        let text = error.to_string();
        assert!(text.contains("upload"), "{text}");
        if !dagger::cuda::driver_present() {
            assert!(text.contains("no CUDA driver"), "{text}");
        }

        // The same through spawn: the task fails and its dependents see the root cause.
        let rt = runtime(2);
        let x = rt.try_spawn_with((), move || upload(&xs));
        let back = spawn_download(&x);
        let sum = rt.try_spawn_with(&back, |b: &HostCopy<f32>| total(b));
        let error = sum.fetch().unwrap_err();
        assert!(
            matches!(error.root_cause(), Error::TaskFailed { source, .. }
                if source.to_string().contains("device error")),
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

/// `iterations` dependent multiply-adds per element.
static WORK: Kernel = Kernel::new(
    "work",
    r#"extern "C" __global__ void work(const float* in, float* out, unsigned n, unsigned iterations) {
        unsigned i = blockIdx.x * blockDim.x + threadIdx.x;
        if (i >= n) return;
        float x = in[i];
        for (unsigned k = 0; k < iterations; ++k) x = x * 0.999f + 0.001f;
        out[i] = x;
    }"#,
);

#[task(cuda)]
fn work(
    stream: &Stream,
    x: &DeviceBuffer<f32>,
    iterations: u32,
) -> Result<DeviceBuffer<f32>, Error> {
    let n = x.len() as u32;
    let mut out = stream.place_near(x).zeros::<f32>(x.len())?;
    // SAFETY: the arguments match `work`, which stays within `n`.
    unsafe {
        stream
            .kernel(&WORK)
            .read(x)
            .write(&mut out)
            .value(n)
            .value(iterations)
            .launch(LaunchConfig::for_num_elems(n))?;
    }
    Ok(out)
}

/// The K-chunk pipeline as tasks on `gpu`: wall time until every copy has landed.
fn task_pipeline(
    gpu: &dagger::cuda::Gpu,
    chunks: &[std::sync::Arc<Vec<f32>>],
    iterations: u32,
) -> std::time::Duration {
    dagger::cuda::set_default(gpu.clone());
    gpu.synchronize().unwrap();
    let start = std::time::Instant::now();
    let firsts: Vec<Handle<f32>> = chunks
        .iter()
        .map(|chunk| {
            let chunk = chunk.clone();
            let x = try_spawn_with((), move || upload(&chunk));
            let y = try_spawn_with(&x, move |x: &DeviceBuffer<f32>| work(x, iterations));
            try_spawn_with(&spawn_download(&y), |c: &HostCopy<f32>| {
                Ok::<_, Error>(c.wait()?[0])
            })
        })
        .collect();
    for first in &firsts {
        first.fetch_ref().unwrap();
    }
    start.elapsed()
}

#[test]
#[ignore = "needs a CUDA device"]
fn a_pipeline_of_tasks_overlaps_copies_with_kernels() {
    use dagger::cuda::{Gpu, StreamCounts};
    watchdog(300, || {
        let streams = Gpu::open_with(0, StreamCounts::default()).unwrap();
        let single = Gpu::open_with(
            0,
            StreamCounts {
                compute: 1,
                copy_streams: false,
            },
        )
        .unwrap();
        streams.prepare(&[&WORK]).unwrap();
        single.prepare(&[&WORK]).unwrap();
        let chunks: Vec<_> = (0..32)
            .map(|i| std::sync::Arc::new(vec![i as f32; 4 << 20]))
            .collect();
        // Kernel work of about one copy direction: calibrated from a run of each alone.
        let copies = task_pipeline(&streams, &chunks, 1);
        let heavy = task_pipeline(&streams, &chunks, 2000);
        let iterations = (2000.0 * copies.as_secs_f64() / heavy.as_secs_f64().max(1e-6)) as u32;
        let iterations = iterations.clamp(100, 200_000);
        let (mut overlapped, mut serial) = (vec![], vec![]);
        for _ in 0..5 {
            overlapped.push(task_pipeline(&streams, &chunks, iterations));
            serial.push(task_pipeline(&single, &chunks, iterations));
        }
        overlapped.sort();
        serial.sort();
        let speed_up = serial[2].as_secs_f64() / overlapped[2].as_secs_f64();
        assert!(
            speed_up >= 1.3,
            "copies did not overlap kernels: {:?} on streams, {:?} on one stream ({iterations} iterations)",
            overlapped[2],
            serial[2]
        );
        dagger::cuda::set_default(Gpu::open(0).unwrap());
    });
}
