//! GPU figures of BENCHMARKS.md "Real work / GPU". Prints one line per workload; without
//! a CUDA device it says so and measures nothing.
//!
//! - pipeline: K chunks, each host->device copy, kernel, device->host copy, queued by hand.
//!   Against its bound max(total H2D, total kernel, total D2H), each measured alone here,
//!   the refined bound that adds the pipeline's fill and drain, (H2D + D2H) / K, and the
//!   same work on one stream.
//! - graph pipeline: the same K chunks as a graph of tasks, the way users write it: an
//!   `upload` task, a `#[task(cuda)]` kernel task and `spawn_download` per chunk (with
//!   `spawn`, and with one `dag!` per chunk), each stage also measured alone through the
//!   same tasks; kernel work calibrated to match a copy direction, then a quarter of it
//!   (copy-bound) and four times it (kernel-bound); against the same graph on one stream.
//! - chain: 10,000 tiny kernels, each after the previous, against raw cudarc launches on
//!   one stream.
//! - fork-join: 4 independent chains of kernels then one that reads all four, against the
//!   same on one stream.

use std::sync::Arc;
use std::time::{Duration, Instant};

use cudarc::driver::{LaunchConfig, PushKernelArg};
use dagger::cuda::{set_default, spawn_download, upload, Stream};
use dagger::prelude::*;
use dagger_core::Error;
use dagger_cuda::{DeviceBuffer, Gpu, HostBuffer, HostCopy, Kernel, StreamCounts};

const ROUNDS: usize = 7;

/// `iterations` dependent multiply-adds per element: enough work to match a copy.
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

static TINY: Kernel = Kernel::new(
    "tiny",
    r#"extern "C" __global__ void tiny(float* x) { if (threadIdx.x == 0) x[0] += 1.0f; }"#,
);

static SPIN: Kernel = Kernel::new(
    "spin",
    r#"extern "C" __global__ void spin(float* x, long long cycles) {
        long long start = clock64();
        while (clock64() - start < cycles) {}
        if (threadIdx.x == 0) x[0] += 1.0f;
    }"#,
);

static JOIN: Kernel = Kernel::new(
    "join",
    r#"extern "C" __global__ void join(const float* a, const float* b, const float* c, const float* d, float* out) {
        if (threadIdx.x == 0) out[0] = a[0] + b[0] + c[0] + d[0];
    }"#,
);

/// The time of a K-chunk pipeline whose stages take `h2d`, `kernel` and `d2h` in all: the
/// slowest stage, plus the other two for one chunk (filling and draining the pipe). With
/// the kernel slowest this is `max + (H2D + D2H) / K`.
fn refined_bound(h2d: Duration, kernel: Duration, d2h: Duration, k: usize) -> Duration {
    let slowest = h2d.max(kernel).max(d2h);
    slowest + (h2d + kernel + d2h - slowest) / k.max(1) as u32
}

/// Device 0 with everything on one stream: the baseline the streams are measured against.
fn one_stream() -> Result<Gpu, Error> {
    Gpu::open_with(
        0,
        StreamCounts {
            compute: 1,
            copy_streams: false,
        },
    )
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

struct Chunks {
    host_in: Vec<HostBuffer<f32>>,
    host_out: Vec<HostBuffer<f32>>,
    dev_in: Vec<DeviceBuffer<f32>>,
    dev_out: Vec<DeviceBuffer<f32>>,
}

fn chunks(gpu: &Gpu, k: usize, len: usize) -> Result<Chunks, Error> {
    let mut c = Chunks {
        host_in: Vec::new(),
        host_out: Vec::new(),
        dev_in: Vec::new(),
        dev_out: Vec::new(),
    };
    for i in 0..k {
        let mut h = gpu.host_buffer::<f32>(len)?;
        h.as_mut_slice()?
            .iter_mut()
            .enumerate()
            .for_each(|(j, x)| *x = (i + j) as f32);
        c.host_in.push(h);
        c.host_out.push(gpu.host_buffer::<f32>(len)?);
        c.dev_in.push(gpu.zeros::<f32>(len)?);
        c.dev_out.push(gpu.zeros::<f32>(len)?);
    }
    gpu.synchronize()?;
    Ok(c)
}

fn kernel(gpu: &Gpu, c: &mut Chunks, i: usize, iterations: u32) -> Result<(), Error> {
    let n = c.dev_in[i].len() as u32;
    let (input, output) = (&c.dev_in[i], &mut c.dev_out[i]);
    // SAFETY: the arguments match `work`, which stays within `n`.
    unsafe {
        gpu.stream()
            .kernel(&WORK)
            .read(input)
            .write(output)
            .value(n)
            .value(iterations)
            .launch(LaunchConfig::for_num_elems(n))
    }
}

/// Times `f` (which queues work) up to the end of all work on `gpu`.
fn timed(gpu: &Gpu, f: impl FnOnce() -> Result<(), Error>) -> Result<Duration, Error> {
    gpu.synchronize()?;
    let start = Instant::now();
    f()?;
    gpu.synchronize()?;
    Ok(start.elapsed())
}

fn pipeline(k: usize, len: usize, iterations: u32) -> Result<(), Error> {
    let gpu = Gpu::open_with(0, StreamCounts::default())?;
    let single = one_stream()?;
    let mut c = chunks(&gpu, k, len)?;
    let mut s = chunks(&single, k, len)?;
    let (mut h2d, mut kern, mut d2h, mut piped, mut one) = (vec![], vec![], vec![], vec![], vec![]);
    for _ in 0..ROUNDS {
        h2d.push(timed(&gpu, || {
            (0..k).try_for_each(|i| gpu.upload_into(&c.host_in[i], &mut c.dev_in[i]))
        })?);
        kern.push(timed(&gpu, || {
            (0..k).try_for_each(|i| kernel(&gpu, &mut c, i, iterations))
        })?);
        d2h.push(timed(&gpu, || {
            (0..k).try_for_each(|i| gpu.download_into(&c.dev_out[i], &mut c.host_out[i]))
        })?);
        piped.push(timed(&gpu, || {
            (0..k).try_for_each(|i| {
                gpu.upload_into(&c.host_in[i], &mut c.dev_in[i])?;
                kernel(&gpu, &mut c, i, iterations)?;
                gpu.download_into(&c.dev_out[i], &mut c.host_out[i])
            })
        })?);
        one.push(timed(&single, || {
            (0..k).try_for_each(|i| {
                single.upload_into(&s.host_in[i], &mut s.dev_in[i])?;
                kernel(&single, &mut s, i, iterations)?;
                single.download_into(&s.dev_out[i], &mut s.host_out[i])
            })
        })?);
    }
    // The results are right.
    let want = {
        let mut x = c.host_in[1].as_slice()?[5];
        for _ in 0..iterations {
            x = x * 0.999 + 0.001;
        }
        x
    };
    let got = c.host_out[1].as_slice()?[5];
    assert!(
        (got - want).abs() <= 1e-3 * want.abs().max(1.0),
        "{got} vs {want}"
    );
    let (h2d, kern, d2h, piped, one) = (
        median(h2d),
        median(kern),
        median(d2h),
        median(piped),
        median(one),
    );
    let bound = h2d.max(kern).max(d2h);
    let refined = refined_bound(h2d, kern, d2h, k);
    let mib = (len * 4) as f64 / (1 << 20) as f64;
    println!(
        "pipeline K={k} x {mib:.0} MiB: H2D {:.2} ms ({:.1} GB/s), kernel {:.2} ms, D2H {:.2} ms ({:.1} GB/s)",
        ms(h2d),
        (k * len * 4) as f64 / h2d.as_secs_f64() / 1e9,
        ms(kern),
        ms(d2h),
        (k * len * 4) as f64 / d2h.as_secs_f64() / 1e9,
    );
    println!(
        "pipeline K={k}: dagger {:.2} ms, bound {:.2} ms (ratio {:.3}), refined bound {:.2} ms (ratio {:.3}, target <= 1.15); one stream {:.2} ms, speed-up {:.2}x (target >= 1.8)",
        ms(piped),
        ms(bound),
        piped.as_secs_f64() / bound.as_secs_f64(),
        ms(refined),
        piped.as_secs_f64() / refined.as_secs_f64(),
        ms(one),
        one.as_secs_f64() / piped.as_secs_f64(),
    );
    Ok(())
}

/// `out = work(x)` on the stream the runtime lends: the output joins `x`'s stream.
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

/// A CPU task that reads a landed copy.
#[task]
fn first(copy: &HostCopy<f32>) -> Result<f32, Error> {
    Ok(copy.wait()?[0])
}

/// Waits for every handle, then for every device (the clock stops when all work is done).
fn settle<T: Send + Sync + 'static>(handles: Vec<Handle<T>>, gpu: &Gpu) -> Result<(), Error> {
    handles.iter().try_for_each(|h| h.wait())?;
    gpu.synchronize()
}

/// The pipeline as spawned tasks: upload, kernel, download, and a CPU task per chunk.
fn spawned(inputs: &[Arc<Vec<f32>>], iterations: u32) -> Vec<Handle<f32>> {
    inputs
        .iter()
        .map(|chunk| {
            let chunk = chunk.clone();
            let x = try_spawn_with((), move || upload(&chunk));
            let y = try_spawn_with(&x, move |x: &DeviceBuffer<f32>| work(x, iterations));
            let back = spawn_download(&y);
            try_spawn_with(&back, first)
        })
        .collect()
}

/// The pipeline as one `dag!` per chunk, the chunks spawned side by side.
fn dags(inputs: &[Arc<Vec<f32>>], iterations: u32) -> Vec<Handle<f32>> {
    inputs
        .iter()
        .map(|chunk| {
            let chunk = chunk.clone();
            try_spawn_with((), move || {
                dag! {
                    let x = upload(&chunk)?;
                    let y = work(&x, iterations)?;
                    let back = dagger::cuda::download(&y)?;
                    first(&back)?
                }
                .run()
            })
        })
        .collect()
}

/// Each stage of the graph alone, through the same tasks: (H2D, kernel, D2H).
fn stages(
    gpu: &Gpu,
    inputs: &[Arc<Vec<f32>>],
    iterations: u32,
) -> Result<(Duration, Duration, Duration), Error> {
    let start = Instant::now();
    let uploaded: Vec<Handle<DeviceBuffer<f32>>> = inputs
        .iter()
        .map(|chunk| {
            let chunk = chunk.clone();
            try_spawn_with((), move || upload(&chunk))
        })
        .collect();
    settle(uploaded.clone(), gpu)?;
    let h2d = start.elapsed();
    let start = Instant::now();
    let computed: Vec<Handle<DeviceBuffer<f32>>> = uploaded
        .iter()
        .map(|x| try_spawn_with(x, move |x: &DeviceBuffer<f32>| work(x, iterations)))
        .collect();
    settle(computed.clone(), gpu)?;
    let kernel = start.elapsed();
    let start = Instant::now();
    let copies: Vec<Handle<f32>> = computed
        .iter()
        .map(|y| try_spawn_with(&spawn_download(y), first))
        .collect();
    settle(copies, gpu)?;
    Ok((h2d, kernel, start.elapsed()))
}

fn timed_graph(
    gpu: &Gpu,
    graph: impl FnOnce() -> Vec<Handle<f32>>,
    want: f32,
) -> Result<Duration, Error> {
    gpu.synchronize()?;
    let start = Instant::now();
    let handles = graph();
    for h in &handles {
        let got = *h.fetch_ref()?;
        assert!(
            (got - want).abs() <= 1e-3 * want.abs().max(1.0),
            "{got} vs {want}"
        );
    }
    gpu.synchronize()?;
    Ok(start.elapsed())
}

fn graph_pipeline(k: usize, len: usize) -> Result<(), Error> {
    let gpu = Gpu::open_with(0, StreamCounts::default())?;
    let single = one_stream()?;
    gpu.prepare(&[&WORK])?;
    single.prepare(&[&WORK])?;
    set_default(gpu.clone());
    let inputs: Vec<Arc<Vec<f32>>> = (0..k)
        .map(|i| Arc::new((0..len).map(|j| ((i + j) % 100) as f32 * 0.01).collect()))
        .collect();
    // Calibrate: kernel work that takes as long as the slower copy direction.
    let probe = 1000;
    stages(&gpu, &inputs, probe)?; // warm-up: pinned blocks, pool memory
    set_default(single.clone());
    stages(&single, &inputs, probe)?;
    set_default(gpu.clone());
    let (h2d, kern, d2h) = stages(&gpu, &inputs, probe)?;
    let balanced = ((probe as f64 * h2d.max(d2h).as_secs_f64() / kern.as_secs_f64()) as u32).max(1);
    for (setting, iterations) in [
        ("balanced", balanced),
        ("copy-bound", (balanced / 4).max(1)),
        ("kernel-bound", balanced * 4),
    ] {
        let want = {
            let mut x = inputs[0][0];
            for _ in 0..iterations {
                x = x * 0.999 + 0.001;
            }
            x
        };
        let (mut h, mut c, mut d) = (vec![], vec![], vec![]);
        let (mut sp, mut dg, mut one) = (vec![], vec![], vec![]);
        for _ in 0..ROUNDS {
            set_default(gpu.clone());
            let (a, b, e) = stages(&gpu, &inputs, iterations)?;
            h.push(a);
            c.push(b);
            d.push(e);
            sp.push(timed_graph(&gpu, || spawned(&inputs, iterations), want)?);
            dg.push(timed_graph(&gpu, || dags(&inputs, iterations), want)?);
            set_default(single.clone());
            one.push(timed_graph(&single, || spawned(&inputs, iterations), want)?);
        }
        set_default(gpu.clone());
        let (h2d, kern, d2h) = (median(h), median(c), median(d));
        let (sp, dg, one) = (median(sp), median(dg), median(one));
        let bound = h2d.max(kern).max(d2h);
        let refined = refined_bound(h2d, kern, d2h, k);
        println!(
            "graph pipeline K={k} x {:.0} MiB, {setting} ({iterations} iterations): H2D {:.2} ms, kernel {:.2} ms, D2H {:.2} ms; bound {:.2} ms, refined bound {:.2} ms",
            (len * 4) as f64 / (1 << 20) as f64,
            ms(h2d),
            ms(kern),
            ms(d2h),
            ms(bound),
            ms(refined)
        );
        for (how, time) in [("spawn", sp), ("dag!", dg)] {
            println!(
                "graph pipeline K={k}, {setting}, {how}: {:.2} ms, {:.3}x the refined bound (target <= 1.15), {:.3}x the plain bound; one stream (spawn) {:.2} ms, speed-up {:.2}x (target >= 1.8)",
                ms(time),
                time.as_secs_f64() / refined.as_secs_f64(),
                time.as_secs_f64() / bound.as_secs_f64(),
                ms(one),
                one.as_secs_f64() / time.as_secs_f64()
            );
        }
    }
    Ok(())
}

fn tiny_chain(n: usize) -> Result<(), Error> {
    let gpu = Gpu::open_with(0, StreamCounts::default())?;
    let mut x = gpu.zeros::<f32>(1)?;
    let ctx = gpu.context().clone();
    let raw_stream = ctx.new_stream().map_err(|e| Error::Device(e.to_string()))?;
    let raw = raw_stream
        .alloc_zeros::<f32>(1)
        .map_err(|e| Error::Device(e.to_string()))?;
    let function = gpu.function(&TINY)?;
    // Passed as a plain value: with cudarc's event tracking on, a `CudaSlice` argument
    // would add an event record and a stream wait to every baseline launch.
    let raw_ptr: u64 = {
        use cudarc::driver::DevicePtr;
        let (ptr, _sync) = raw.device_ptr(&raw_stream);
        ptr
    };
    let one = LaunchConfig {
        grid_dim: (1, 1, 1),
        block_dim: (32, 1, 1),
        shared_mem_bytes: 0,
    };
    let (mut ours, mut theirs) = (vec![], vec![]);
    for _ in 0..ROUNDS {
        ours.push(timed(&gpu, || {
            (0..n).try_for_each(|_| {
                // SAFETY: `tiny` takes one float pointer.
                unsafe { gpu.stream().kernel(&TINY).write(&mut x).launch(one) }
            })
        })?);
        theirs.push(timed(&gpu, || {
            for _ in 0..n {
                // SAFETY: as above.
                unsafe {
                    raw_stream
                        .launch_builder(&function)
                        .arg(&raw_ptr)
                        .launch(one)
                }
                .map_err(|e| Error::Device(e.to_string()))?;
            }
            raw_stream
                .synchronize()
                .map_err(|e| Error::Device(e.to_string()))
        })?);
    }
    let got = gpu.download(&x)?.to_vec()?[0];
    assert_eq!(got, (ROUNDS * n) as f32, "every kernel ran, in order");
    let (ours, theirs) = (median(ours), median(theirs));
    println!(
        "chain of {n} tiny kernels: dagger {:.2} us/kernel, raw single-stream launches {:.2} us/kernel, ratio {:.2}",
        ours.as_secs_f64() * 1e6 / n as f64,
        theirs.as_secs_f64() * 1e6 / n as f64,
        ours.as_secs_f64() / theirs.as_secs_f64()
    );
    Ok(())
}

fn fork_join(length: usize, cycles: i64) -> Result<(), Error> {
    let run = |gpu: &Gpu| -> Result<Duration, Error> {
        let mut parts: Vec<DeviceBuffer<f32>> = (0..4)
            .map(|_| gpu.zeros::<f32>(1))
            .collect::<Result<_, _>>()?;
        let mut out = gpu.zeros::<f32>(1)?;
        let one = LaunchConfig {
            grid_dim: (1, 1, 1),
            block_dim: (32, 1, 1),
            shared_mem_bytes: 0,
        };
        let time = timed(gpu, || {
            for (b, part) in parts.iter_mut().enumerate() {
                let stream = gpu.compute_stream(b);
                for _ in 0..length {
                    // SAFETY: `spin` takes a float pointer and a cycle count.
                    unsafe { stream.kernel(&SPIN).write(part).value(cycles).launch(one)? };
                }
            }
            // SAFETY: `join` takes four inputs and an output, one float each.
            unsafe {
                gpu.stream()
                    .kernel(&JOIN)
                    .read(&parts[0])
                    .read(&parts[1])
                    .read(&parts[2])
                    .read(&parts[3])
                    .write(&mut out)
                    .launch(one)
            }
        })?;
        let got = gpu.download(&out)?.to_vec()?[0];
        assert_eq!(got, (4 * length) as f32, "the join saw every branch");
        Ok(time)
    };
    let four = Gpu::open_with(0, StreamCounts::default())?;
    let single = one_stream()?;
    let (mut ours, mut theirs) = (vec![], vec![]);
    for _ in 0..ROUNDS {
        ours.push(run(&four)?);
        theirs.push(run(&single)?);
    }
    let (ours, theirs) = (median(ours), median(theirs));
    println!(
        "fork-join 4 x {length} kernels: 4 streams {:.2} ms, one stream {:.2} ms, speed-up {:.2}x",
        ms(ours),
        ms(theirs),
        theirs.as_secs_f64() / ours.as_secs_f64()
    );
    Ok(())
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let devices = match dagger_cuda::devices() {
        Ok(devices) => devices,
        Err(error) => {
            println!("no CUDA device, nothing measured: {error}");
            return;
        }
    };
    let d = &devices[0];
    println!(
        "device 0: {} (sm_{}{}, {:.0} GiB)",
        d.name,
        d.compute_capability.0,
        d.compute_capability.1,
        d.total_memory as f64 / (1u64 << 30) as f64
    );
    let chunks = std::env::var("DAGGER_GPU_BENCH_CHUNKS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(32usize)
        .max(1);
    let results = [
        ("pipeline", pipeline(16, 8 << 20, iterations())),
        ("graph pipeline", graph_pipeline(chunks, 4 << 20)),
        ("chain", tiny_chain(10_000)),
        ("fork-join", fork_join(50, 200_000)),
    ];
    for (name, result) in results {
        if let Err(error) = result {
            println!("{name}: failed: {error}");
        }
    }
}

/// Multiply-adds per element in the pipeline's kernel (`DAGGER_GPU_BENCH_ITERS`): chosen
/// so that the kernel takes about as long as a chunk's copy.
fn iterations() -> u32 {
    std::env::var("DAGGER_GPU_BENCH_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4000)
}
