//! Turning CUDA failures into `dagger::Error::Device` messages that say what to do.

use std::fmt::Display;

use cudarc::driver::sys::CUresult;
use cudarc::driver::DriverError;
use dagger_core::Error;

/// A driver call failed while doing `what`.
pub(crate) fn driver(error: DriverError, what: impl Display) -> Error {
    let hint = match error.0 {
        CUresult::CUDA_ERROR_OUT_OF_MEMORY => {
            "; free device buffers or use smaller blocks (the device is out of memory)"
        }
        CUresult::CUDA_ERROR_NO_DEVICE => {
            "; no CUDA device is visible (check CUDA_VISIBLE_DEVICES)"
        }
        CUresult::CUDA_ERROR_INVALID_DEVICE => "; that device ordinal does not exist",
        CUresult::CUDA_ERROR_NO_BINARY_FOR_GPU | CUresult::CUDA_ERROR_INVALID_IMAGE => {
            "; the kernel was not compiled for this GPU"
        }
        _ => "",
    };
    Error::Device(format!("{what}: {error}{hint}"))
}

/// The CUDA driver library could not be loaded.
pub(crate) fn no_driver() -> Error {
    Error::Device(
        "no CUDA driver: libcuda could not be loaded; install the NVIDIA driver, or run \
         this work on the CPU"
            .to_owned(),
    )
}

/// A CUDA toolkit library (NVRTC, cuBLAS) could not be loaded.
pub(crate) fn no_library(library: &str, purpose: &str) -> Error {
    Error::Device(format!(
        "{library} could not be loaded (needed for {purpose}); add the CUDA toolkit's lib64 \
         folder to LD_LIBRARY_PATH"
    ))
}

/// A size or shape that does not fit.
pub(crate) fn bad_input(message: impl Display) -> Error {
    Error::InvalidUse(message.to_string())
}
