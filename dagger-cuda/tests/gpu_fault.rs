//! A GPU fault poisons the whole CUDA context, so this test has a process of its own:
//! handles waiting for GPU work fail with `Error::Device` instead of hanging.

#[path = "../../tests/common/watchdog.rs"]
mod watchdog;
use watchdog::watchdog;

use dagger_core::{Error, Runtime};
use dagger_cuda::{spawn_download, Gpu, Kernel, LaunchConfig};

/// Writes through a bad address, then `x[0] = 2`.
static FAULT: Kernel = Kernel::new(
    "fault",
    r#"extern "C" __global__ void fault(float* x) {
        *(volatile float*)0x10 = 1.0f;
        x[0] = 2.0f;
    }"#,
);

#[test]
#[ignore = "needs a CUDA device"]
fn a_gpu_fault_fails_waiting_handles_instead_of_hanging() {
    watchdog(120, || {
        let rt = Runtime::builder().threads(2).build().unwrap();
        let gpu = Gpu::open(0).expect("this test needs a CUDA device");
        gpu.prepare(&[&FAULT]).unwrap();
        let g = gpu.clone();
        let written = rt.try_spawn_with((), move || {
            let mut x = g.zeros::<f32>(1)?;
            // SAFETY: deliberately faults; that is what this test is about.
            unsafe {
                g.stream()
                    .kernel(&FAULT)
                    .write(&mut x)
                    .launch(LaunchConfig {
                        grid_dim: (1, 1, 1),
                        block_dim: (1, 1, 1),
                        shared_mem_bytes: 0,
                    })?;
            }
            Ok::<_, Error>(x)
        });
        let copy = spawn_download(&written);
        match copy.fetch_ref() {
            Err(Error::Device(message)) => {
                assert!(
                    message.to_lowercase().contains("illegal") || message.contains("CUDA_ERROR"),
                    "{message}"
                )
            }
            other => panic!("expected a device error, got {other:?}"),
        }
        // Later work fails too, and nothing hangs.
        assert!(gpu
            .zeros::<f32>(4)
            .and_then(|z| gpu.download(&z)?.to_vec())
            .is_err());
    });
}
