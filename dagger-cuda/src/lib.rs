//! CUDA support for dagger: devices, a pool of streams, pooled events, device buffers,
//! transfers and kernels (cudarc, loaded dynamically so that nothing CUDA is needed to
//! build or test).
//!
//! This crate is a placeholder for now: it builds, so that the workspace layout is final,
//! and the GPU backend lands in its own change. [`available`] says so explicitly rather
//! than pretending to find a device.

/// Whether this build of dagger can run tasks on a CUDA device. Always `false` until the
/// GPU backend lands.
pub fn available() -> bool {
    false
}

#[cfg(test)]
mod tests {
    #[test]
    fn reports_no_gpu_backend_yet() {
        assert!(!super::available());
    }
}
