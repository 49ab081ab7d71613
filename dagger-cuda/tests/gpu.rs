//! GPU tests: run with `cargo test -p dagger-cuda -- --ignored` on a machine with a CUDA
//! device. They check results against the CPU, that streams really overlap (event
//! timestamps), that dependencies across streams and between CPU and GPU hold, and that
//! nothing leaks over many runs.

#[path = "../../tests/common/watchdog.rs"]
mod watchdog;
use watchdog::watchdog;

use dagger_core::{Error, Runtime};
use dagger_cuda::{spawn_download, DeviceBuffer, Gpu, Kernel, LaunchConfig, StreamCounts};

static SAXPY: Kernel = Kernel::new(
    "saxpy",
    r#"extern "C" __global__ void saxpy(float a, const float* x, float* y, unsigned n) {
        unsigned i = blockIdx.x * blockDim.x + threadIdx.x;
        if (i < n) y[i] = a * x[i] + y[i];
    }"#,
);

/// Busy-waits `cycles` GPU clock cycles, then sets `out[0..n] = value`.
static SPIN_FILL: Kernel = Kernel::new(
    "spin_fill",
    r#"extern "C" __global__ void spin_fill(long long cycles, float* out, float value, unsigned n) {
        long long start = clock64();
        while (clock64() - start < cycles) {}
        for (unsigned i = threadIdx.x; i < n; i += blockDim.x) out[i] = value;
    }"#,
);

static ADD_ONE: Kernel = Kernel::new(
    "add_one",
    r#"extern "C" __global__ void add_one(float* x, unsigned n) {
        unsigned i = blockIdx.x * blockDim.x + threadIdx.x;
        if (i < n) x[i] += 1.0f;
    }"#,
);

fn gpu() -> Gpu {
    Gpu::open(0).expect("this test needs a CUDA device")
}

fn one_block(threads: u32) -> LaunchConfig {
    LaunchConfig {
        grid_dim: (1, 1, 1),
        block_dim: (threads, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// About `ms` milliseconds of GPU clock cycles.
fn cycles(ms: u64) -> i64 {
    (ms * 2_000_000) as i64 // clocks are 1.5 to 2 GHz
}

#[test]
#[ignore = "needs a CUDA device"]
fn devices_are_listed_with_their_properties() {
    let all = dagger_cuda::devices().unwrap();
    assert!(!all.is_empty());
    for (i, d) in all.iter().enumerate() {
        assert_eq!(d.ordinal, i);
        assert!(!d.name.is_empty());
        assert!(d.compute_capability.0 >= 3);
        assert!(d.total_memory > 0);
    }
    let missing = Gpu::open(all.len()).unwrap_err();
    assert!(
        missing.to_string().contains("there is no CUDA device"),
        "{missing}"
    );
}

#[test]
#[ignore = "needs a CUDA device"]
fn a_kernel_and_the_copies_match_the_cpu() {
    watchdog(120, || {
        let gpu = gpu();
        let n = 100_003usize;
        let x: Vec<f32> = (0..n).map(|i| i as f32 * 0.5).collect();
        let y: Vec<f32> = (0..n).map(|i| (i % 7) as f32).collect();
        let dx = gpu.upload(&x).unwrap();
        let mut dy = gpu.upload(&y).unwrap();
        let stream = gpu.stream();
        // SAFETY: the arguments match `saxpy`; it stays within `n`.
        unsafe {
            stream
                .kernel(&SAXPY)
                .value(2.0f32)
                .read(&dx)
                .write(&mut dy)
                .value(n as u32)
                .launch(LaunchConfig::for_num_elems(n as u32))
                .unwrap();
        }
        let back = gpu.download(&dy).unwrap().to_vec().unwrap();
        let expected: Vec<f32> = x.iter().zip(&y).map(|(x, y)| 2.0 * x + y).collect();
        assert_eq!(back, expected);
    });
}

#[test]
#[ignore = "needs a CUDA device"]
fn matmul_matches_the_cpu() {
    watchdog(120, || {
        let gpu = gpu();
        let (m, n, k) = (67, 45, 33);
        let a: Vec<f64> = (0..m * k).map(|i| ((i * 7) % 11) as f64 - 5.0).collect();
        let b: Vec<f64> = (0..k * n).map(|i| ((i * 3) % 13) as f64 - 6.0).collect();
        let (da, db) = (gpu.upload(&a).unwrap(), gpu.upload(&b).unwrap());
        let mut dc = gpu.zeros::<f64>(m * n).unwrap();
        gpu.stream()
            .matmul((m, n, k), 1.0, &da, &db, 0.0, &mut dc)
            .unwrap();
        let c = gpu.download(&dc).unwrap().to_vec().unwrap();
        for i in 0..m {
            for j in 0..n {
                let want: f64 = (0..k).map(|p| a[i * k + p] * b[p * n + j]).sum();
                assert_eq!(c[i * n + j], want, "c[{i},{j}]");
            }
        }
        let error = gpu
            .stream()
            .matmul((m, n, k + 1), 1.0, &da, &db, 0.0, &mut dc)
            .unwrap_err();
        assert!(error.to_string().contains("needs"), "{error}");
    });
}

#[test]
#[ignore = "needs a CUDA device"]
fn independent_tasks_on_different_streams_overlap() {
    watchdog(120, || {
        let gpu = gpu();
        let (s0, s1) = (gpu.compute_stream(0), gpu.compute_stream(1));
        assert_ne!(s0.id(), s1.id());
        let mut a = gpu.zeros::<f32>(1).unwrap();
        let mut b = gpu.zeros::<f32>(1).unwrap();
        // Compiled now: a compile between the timestamps would count as kernel time.
        gpu.prepare(&[&SPIN_FILL]).unwrap();
        gpu.synchronize().unwrap();
        let spin = |stream: &dagger_cuda::Stream, out: &mut DeviceBuffer<f32>| {
            let start = stream.timestamp().unwrap();
            // SAFETY: arguments match `spin_fill`; it writes one element.
            unsafe {
                stream
                    .kernel(&SPIN_FILL)
                    .value(cycles(50))
                    .write(out)
                    .value(1.0f32)
                    .value(1u32)
                    .launch(one_block(1))
                    .unwrap();
            }
            (start, stream.timestamp().unwrap())
        };
        let (a0, a1) = spin(&s0, &mut a);
        let (b0, b1) = spin(&s1, &mut b);
        a1.wait().unwrap();
        b1.wait().unwrap();
        let a_len = a0.ms_until(&a1).unwrap();
        let b_len = b0.ms_until(&b1).unwrap();
        let b_offset = a0.ms_until(&b0).unwrap();
        let overlap = (a_len.min(b_offset + b_len) - b_offset.max(0.0)).max(0.0);
        assert!(
            overlap > 0.5 * a_len.min(b_len),
            "streams did not overlap: a {a_len} ms, b starts at {b_offset} ms for {b_len} ms"
        );
    });
}

#[test]
#[ignore = "needs a CUDA device"]
fn a_dependency_across_streams_is_a_gpu_wait() {
    watchdog(120, || {
        let gpu = gpu();
        let n = 4096u32;
        for round in 0..20 {
            let mut x = gpu.zeros::<f32>(n as usize).unwrap();
            // A slow write on one stream, then a read-modify-write on another: the second
            // must wait for the first, or it would see zeros.
            let (s0, s1) = (gpu.compute_stream(round), gpu.compute_stream(round + 1));
            // SAFETY: arguments match the kernels; both stay within `n`.
            unsafe {
                s0.kernel(&SPIN_FILL)
                    .value(cycles(5))
                    .write(&mut x)
                    .value(7.0f32)
                    .value(n)
                    .launch(one_block(256))
                    .unwrap();
                s1.kernel(&ADD_ONE)
                    .write(&mut x)
                    .value(n)
                    .launch(LaunchConfig::for_num_elems(n))
                    .unwrap();
            }
            let back = gpu.download(&x).unwrap().to_vec().unwrap();
            assert!(
                back.iter().all(|&v| v == 8.0),
                "round {round}: {:?}",
                &back[..4]
            );
        }
    });
}

#[test]
#[ignore = "needs a CUDA device"]
fn cpu_and_gpu_tasks_depend_on_each_other_without_blocking_workers() {
    watchdog(120, || {
        let rt = Runtime::builder().threads(2).build().unwrap();
        let gpu = gpu();
        let g = gpu.clone();
        // CPU -> GPU: data made by a CPU task is uploaded by the next.
        let data = rt.spawn(|| (0..10_000).map(|i| i as f32).collect::<Vec<f32>>());
        let on_gpu = rt.try_spawn_with(&data, move |d: &Vec<f32>| {
            let mut buffer = g.upload(d)?;
            let stream = g.stream();
            // SAFETY: arguments match `add_one`; it stays within the length.
            unsafe {
                stream
                    .kernel(&ADD_ONE)
                    .write(&mut buffer)
                    .value(d.len() as u32)
                    .launch(LaunchConfig::for_num_elems(d.len() as u32))?;
            }
            Ok::<_, Error>(buffer)
        });
        // GPU -> CPU: the download handle is completed by the progress thread.
        let host = spawn_download(&on_gpu);
        let sum = rt.try_spawn_with(&host, |h: &dagger_cuda::HostCopy<f32>| {
            assert!(h.is_ready()?, "a dependent ran before the copy landed");
            Ok::<_, Error>(h.wait()?.iter().map(|&v| v as f64).sum::<f64>())
        });
        let want: f64 = (0..10_000).map(|i| i as f64 + 1.0).sum();
        assert_eq!(sum.fetch().unwrap(), want);
    });
}

#[test]
#[ignore = "needs a CUDA device"]
fn many_runs_leak_neither_memory_nor_events() {
    watchdog(300, || {
        let gpu = Gpu::open_with(0, StreamCounts::default()).unwrap();
        let run = |gpu: &Gpu| {
            let x = gpu.upload(&vec![1.0f32; 1 << 20]).unwrap();
            let mut y = gpu.zeros::<f32>(1 << 20).unwrap();
            // SAFETY: arguments match `saxpy`; within the length.
            unsafe {
                gpu.stream()
                    .kernel(&SAXPY)
                    .value(1.0f32)
                    .read(&x)
                    .write(&mut y)
                    .value(1u32 << 20)
                    .launch(LaunchConfig::for_num_elems(1 << 20))
                    .unwrap();
            }
            assert_eq!(gpu.download(&y).unwrap().to_vec().unwrap()[12345], 1.0);
        };
        for _ in 0..10 {
            run(&gpu);
        }
        gpu.synchronize().unwrap();
        let (free_before, _) = gpu.memory().unwrap();
        let events_before = gpu.events_created();
        for _ in 0..300 {
            run(&gpu);
        }
        gpu.synchronize().unwrap();
        let (free_after, _) = gpu.memory().unwrap();
        assert!(
            free_after + (64 << 20) >= free_before,
            "device memory fell from {free_before} to {free_after}"
        );
        assert!(
            gpu.events_created() <= events_before + 16,
            "events are not reused: {events_before} then {}",
            gpu.events_created()
        );
    });
}

#[test]
#[ignore = "needs a CUDA device"]
fn out_of_memory_and_bad_kernels_are_errors() {
    let gpu = gpu();
    let total = gpu.info().total_memory;
    let error = gpu.zeros::<u8>(total * 2).unwrap_err();
    assert!(error.to_string().contains("out of memory"), "{error}");
    static BROKEN: Kernel = Kernel::new("broken", "extern \"C\" __global__ void broken( {");
    let mut x = gpu.zeros::<f32>(4).unwrap();
    // SAFETY: the kernel never compiles, so nothing runs.
    let error = unsafe {
        gpu.stream()
            .kernel(&BROKEN)
            .write(&mut x)
            .launch(one_block(1))
    }
    .unwrap_err();
    assert!(error.to_string().contains("did not compile"), "{error}");
    assert!(
        error.to_string().contains("error"),
        "the NVRTC log is in the message: {error}"
    );
    let prepared = gpu.prepare(&[&SAXPY, &BROKEN]).unwrap_err();
    assert_eq!(
        prepared.to_string(),
        error.to_string(),
        "prepare reports it too"
    );
    static MISNAMED: Kernel = Kernel::new("missing", "extern \"C\" __global__ void other() {}");
    // SAFETY: as above: the function is not found, nothing runs.
    let error = unsafe { gpu.stream().kernel(&MISNAMED).launch(one_block(1)) }.unwrap_err();
    assert!(error.to_string().contains("extern"), "{error}");
}

/// Spins `cycles`, then `out[0] = x[0]` (reads `x` for the whole time).
static SPIN_READ: Kernel = Kernel::new(
    "spin_read",
    r#"extern "C" __global__ void spin_read(long long cycles, const float* x, float* out) {
        long long start = clock64();
        while (clock64() - start < cycles) {}
        if (threadIdx.x == 0) out[0] = x[0];
    }"#,
);

/// `out[0] = a[0] + b[0]`.
static ADD_TWO: Kernel = Kernel::new(
    "add_two",
    r#"extern "C" __global__ void add_two(const float* a, const float* b, float* out) {
        if (threadIdx.x == 0) out[0] = a[0] + b[0];
    }"#,
);

/// Polls `ready` until it is true; fails after `seconds`.
fn poll_until(seconds: u64, mut ready: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(seconds);
    while !ready() {
        assert!(
            std::time::Instant::now() < deadline,
            "not ready in {seconds} s"
        );
        std::thread::yield_now();
    }
}

#[test]
#[ignore = "needs a CUDA device"]
fn one_buffer_twice_and_opposite_orders_do_not_deadlock() {
    watchdog(120, || {
        let gpu = Gpu::open_with(0, StreamCounts::default()).unwrap();
        gpu.prepare(&[&ADD_TWO]).unwrap();
        let n = 48;
        let a: Vec<f32> = (0..n * n).map(|i| (i % 5) as f32).collect();
        let da = gpu.upload(&a).unwrap();
        let (p, q) = (
            gpu.upload(&[1.0f32]).unwrap(),
            gpu.upload(&[2.0f32]).unwrap(),
        );
        let run = |first: &DeviceBuffer<f32>, second: &DeviceBuffer<f32>| {
            let mut out = gpu.zeros::<f32>(1).unwrap();
            let mut square = gpu.zeros::<f32>(n * n).unwrap();
            for _ in 0..300 {
                // `a * a`: one buffer named twice.
                gpu.stream()
                    .matmul((n, n, n), 1.0, &da, &da, 0.0, &mut square)
                    .unwrap();
                // SAFETY: `add_two` takes two inputs and an output, one float each.
                unsafe {
                    gpu.stream()
                        .kernel(&ADD_TWO)
                        .read(first)
                        .read(second)
                        .write(&mut out)
                        .launch(one_block(32))
                        .unwrap();
                    gpu.stream()
                        .kernel(&ADD_TWO)
                        .read(first)
                        .read(first)
                        .write(&mut out)
                        .launch(one_block(32))
                        .unwrap();
                }
            }
            (square, out)
        };
        let ((square, _), (_, out)) = std::thread::scope(|scope| {
            let one = scope.spawn(|| run(&p, &q));
            let two = scope.spawn(|| run(&q, &p));
            (one.join().unwrap(), two.join().unwrap())
        });
        assert_eq!(gpu.download(&out).unwrap().to_vec().unwrap(), vec![4.0]);
        let got = gpu.download(&square).unwrap().to_vec().unwrap();
        for (i, j) in [(0, 0), (7, 31), (n - 1, n - 1)] {
            let want: f32 = (0..n).map(|k| a[i * n + k] * a[k * n + j]).sum();
            assert_eq!(got[i * n + j], want, "a*a at ({i},{j})");
        }
    });
}

#[test]
#[ignore = "needs a CUDA device"]
fn host_buffer_accessors_wait_for_their_copies() {
    watchdog(120, || {
        let gpu = gpu();
        gpu.prepare(&[&SPIN_FILL]).unwrap();
        let n = 1 << 16;
        // A download into a host buffer, behind a slow kernel: reading waits for it.
        let mut device = gpu.zeros::<f32>(n).unwrap();
        let mut host = gpu.host_buffer::<f32>(n).unwrap();
        // SAFETY: arguments match `spin_fill`, which writes `n` elements.
        unsafe {
            gpu.stream()
                .kernel(&SPIN_FILL)
                .value(cycles(50))
                .write(&mut device)
                .value(7.0f32)
                .value(n as u32)
                .launch(one_block(256))
                .unwrap();
        }
        gpu.download_into(&device, &mut host).unwrap();
        assert!(
            host.as_slice().unwrap().iter().all(|&v| v == 7.0),
            "read before the download landed"
        );
        // An upload from a host buffer, queued behind a slow kernel that writes its
        // target: writing the host buffer waits until the upload has read it.
        let mut source = gpu.host_buffer::<f32>(n).unwrap();
        source.as_mut_slice().unwrap().fill(1.0);
        let mut target = gpu.zeros::<f32>(n).unwrap();
        // SAFETY: as above.
        unsafe {
            gpu.stream()
                .kernel(&SPIN_FILL)
                .value(cycles(50))
                .write(&mut target)
                .value(5.0f32)
                .value(n as u32)
                .launch(one_block(256))
                .unwrap();
        }
        gpu.upload_into(&source, &mut target).unwrap();
        source.as_mut_slice().unwrap().fill(2.0);
        let landed = gpu.download(&target).unwrap().to_vec().unwrap();
        assert!(
            landed.iter().all(|&v| v == 1.0),
            "the host buffer changed under its upload: {:?}",
            &landed[..4]
        );
    });
}

#[test]
#[ignore = "needs a CUDA device"]
fn freeing_a_buffer_stalls_no_copy_stream() {
    watchdog(120, || {
        let gpu = Gpu::open_with(0, StreamCounts::default()).unwrap();
        gpu.prepare(&[&SPIN_READ]).unwrap();
        for also_downloaded in [false, true] {
            let x = gpu.upload(&vec![3.0f32; 1 << 20]).unwrap();
            let mut out = gpu.zeros::<f32>(1).unwrap();
            // SAFETY: arguments match `spin_read`.
            unsafe {
                gpu.compute_stream(1)
                    .kernel(&SPIN_READ)
                    .value(cycles(300))
                    .read(&x)
                    .write(&mut out)
                    .launch(one_block(32))
                    .unwrap();
            }
            let copy = also_downloaded.then(|| gpu.download(&x).unwrap());
            drop(x); // in use by the kernel (and the download) for 300 ms
            let later = gpu.upload(&vec![1.0f32; 1 << 20]).unwrap();
            let back = gpu.download(&later).unwrap();
            poll_until(10, || back.is_ready().unwrap());
            assert!(
                !out.is_idle().unwrap(),
                "the kernel ended before a later upload and download did: they waited for it \
                 (downloaded too: {also_downloaded})"
            );
            assert!(back.to_vec().unwrap().iter().all(|&v| v == 1.0));
            if let Some(copy) = copy {
                assert!(copy.to_vec().unwrap().iter().all(|&v| v == 3.0));
            }
            gpu.synchronize().unwrap();
        }
    });
}

#[test]
#[ignore = "needs a CUDA device"]
fn transfers_reuse_pinned_blocks() {
    watchdog(120, || {
        let gpu = Gpu::open_with(0, StreamCounts::default()).unwrap();
        let data = vec![1.5f32; 1 << 18];
        let round = || {
            let x = gpu.upload(&data).unwrap();
            assert_eq!(gpu.download(&x).unwrap().to_vec().unwrap()[77], 1.5);
        };
        (0..10).for_each(|_| round());
        let made = gpu.pinned_blocks_made();
        (0..300).for_each(|_| round());
        assert!(
            gpu.pinned_blocks_made() <= made + 2,
            "pinned blocks are not reused: {made} then {}",
            gpu.pinned_blocks_made()
        );
    });
}

#[test]
#[ignore = "needs a CUDA device"]
fn a_new_buffer_is_not_zeroed_behind_queued_uploads() {
    watchdog(120, || {
        let gpu = Gpu::open_with(0, StreamCounts::default()).unwrap();
        let big = gpu.upload(&vec![0.5f32; 1 << 28]).unwrap(); // 1 GiB: tens of ms
        let small = gpu.stream().zeros::<f32>(1024).unwrap();
        poll_until(10, || small.is_idle().unwrap());
        assert!(
            !big.is_idle().unwrap(),
            "the zeroing waited for the upload: it was queued behind it"
        );
    });
}

#[test]
#[ignore = "needs a CUDA device"]
fn empty_buffers_work_everywhere() {
    watchdog(60, || {
        let gpu = gpu();
        let empty = gpu.upload::<f32>(&[]).unwrap();
        assert!(empty.is_empty() && empty.is_idle().unwrap());
        let mut zeros = gpu.zeros::<f32>(0).unwrap();
        assert_eq!(
            gpu.download(&empty).unwrap().to_vec().unwrap(),
            Vec::<f32>::new()
        );
        let mut host = gpu.host_buffer::<f32>(0).unwrap();
        assert!(host.as_slice().unwrap().is_empty());
        gpu.upload_into(&host, &mut zeros).unwrap();
        gpu.download_into(&zeros, &mut host).unwrap();
        gpu.stream()
            .matmul((0, 4, 3), 1.0f32, &empty, &empty, 0.0, &mut zeros)
            .unwrap();
        // SAFETY: `add_one` with n = 0 touches nothing.
        unsafe {
            gpu.stream()
                .kernel(&ADD_ONE)
                .write(&mut zeros)
                .value(0u32)
                .launch(one_block(32))
                .unwrap();
        }
        gpu.synchronize().unwrap();
    });
}

#[test]
#[ignore = "needs a CUDA device"]
fn when_done_runs_as_a_task_that_may_call_cuda_and_wait_for_completions() {
    watchdog(60, || {
        let gpu = gpu();
        let (sender, received) = std::sync::mpsc::channel();
        let inner = gpu.clone();
        dagger_cuda::when_done(&gpu.compute_stream(0), move |done| {
            let name = std::thread::current().name().map(str::to_owned);
            // Waits for a completion that the progress thread delivers: it would wait for
            // itself if `then` ran on that thread.
            let device = dagger_core::try_spawn_with((), move || inner.zeros::<f32>(4));
            let zeros = spawn_download(&device).fetch_ref().and_then(|c| c.to_vec());
            sender.send((done, name, zeros)).unwrap();
        });
        let (done, name, zeros) = received.recv().unwrap();
        assert!(done.is_ok());
        assert_ne!(name.as_deref(), Some("dagger-cuda-progress"));
        assert_eq!(zeros.unwrap(), vec![0.0; 4]);
    });
}
