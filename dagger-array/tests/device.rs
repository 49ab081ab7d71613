//! Device arrays (feature `cuda`): run with `--ignored` on a machine with a CUDA device.
#![cfg(feature = "cuda")]

use dagger_array::DArray;
use dagger_cuda::Gpu;

fn gpu() -> Gpu {
    Gpu::open(0).expect("this test needs a CUDA device")
}

#[test]
fn without_a_device_there_is_no_gpu_to_put_blocks_on() {
    match (dagger_cuda::driver_present(), Gpu::open(0)) {
        (false, Err(error)) => assert!(error.to_string().contains("no CUDA driver"), "{error}"),
        (true, Ok(gpu)) => {
            let a = DArray::<f32>::ones((3, 3), (2, 2)).unwrap();
            let back = a.to_device(&gpu).to_host().collect().unwrap();
            assert_eq!(back, vec![1.0; 9]);
        }
        (present, other) => panic!("driver present: {present}, but Gpu::open gave {other:?}"),
    }
}

#[test]
#[ignore = "needs a CUDA device"]
fn blocks_round_trip_and_scale_on_the_device() {
    let gpu = gpu();
    let a = DArray::<f64>::random((37, 23), (8, 5), 3).unwrap();
    let on_gpu = a.to_device(&gpu);
    assert_eq!(on_gpu.to_host().collect().unwrap(), a.collect().unwrap());
    let scaled = on_gpu.scale(-2.5).to_host().collect().unwrap();
    let want: Vec<f64> = a.collect().unwrap().iter().map(|x| -2.5 * x).collect();
    assert_eq!(scaled, want);
}

#[test]
#[ignore = "needs a CUDA device"]
fn device_matmul_matches_the_cpu_tiles() {
    let gpu = gpu();
    for (m, k, n, bm, bk, bn) in [
        (64, 48, 80, 16, 16, 32),
        (37, 23, 29, 8, 5, 7),
        (256, 256, 256, 128, 128, 128),
    ] {
        let a = DArray::<f64>::random((m, k), (bm, bk), 1).unwrap();
        let b = DArray::<f64>::random((k, n), (bk, bn), 2).unwrap();
        let cpu = a.matmul(&b).unwrap().collect().unwrap();
        let device = a
            .to_device(&gpu)
            .matmul(&b.to_device(&gpu))
            .unwrap()
            .to_host()
            .collect()
            .unwrap();
        for (x, y) in device.iter().zip(&cpu) {
            assert!((x - y).abs() <= 1e-10 * (1.0 + y.abs()), "{x} vs {y}");
        }
    }
}
