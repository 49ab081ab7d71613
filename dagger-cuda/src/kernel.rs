//! Kernels written in CUDA C, compiled at run time with NVRTC to CUBIN for the device's
//! own architecture (a CUBIN loads on any driver that supports the device; PTX from a
//! newer NVRTC than the driver would not), once per device.

use std::ffi::{c_char, CString};
use std::sync::OnceLock;

use cudarc::driver::CudaFunction;
use cudarc::nvrtc::{result as nvrtc, sys as nvrtc_sys, Ptx};
use dagger_core::Error;

use crate::device::Gpu;
use crate::error::{driver, no_library};

/// A `__global__` function in CUDA C, by name. Declare kernels as statics; each is
/// compiled on first use on each device.
///
/// ```
/// use dagger_cuda::Kernel;
/// static SCALE: Kernel = Kernel::new(
///     "scale",
///     r#"extern "C" __global__ void scale(float* x, float a, unsigned n) {
///         unsigned i = blockIdx.x * blockDim.x + threadIdx.x;
///         if (i < n) x[i] *= a;
///     }"#,
/// );
/// assert_eq!(SCALE.name(), "scale");
/// ```
#[derive(Debug)]
pub struct Kernel {
    name: &'static str,
    source: &'static str,
}

impl Kernel {
    /// The kernel `name` (declared `extern "C"`) in `source`.
    pub const fn new(name: &'static str, source: &'static str) -> Kernel {
        Kernel { name, source }
    }

    /// Its name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Its CUDA C source.
    pub fn source(&self) -> &'static str {
        self.source
    }
}

fn nvrtc_present() -> bool {
    static PRESENT: OnceLock<bool> = OnceLock::new();
    // SAFETY: only tries to open the library.
    *PRESENT.get_or_init(|| unsafe { nvrtc_sys::is_culib_present() })
}

/// Compiles `kernel` for `gpu` and loads it.
pub(crate) fn compile(gpu: &Gpu, kernel: &Kernel) -> Result<CudaFunction, Error> {
    if !nvrtc_present() {
        return Err(no_library("NVRTC (libnvrtc)", "compiling kernels"));
    }
    let (major, minor) = gpu.info().compute_capability;
    let arch = format!("--gpu-arch=sm_{major}{minor}");
    let cubin = cubin(kernel, &arch)?;
    let module = gpu
        .inner
        .ctx
        .load_module(Ptx::from_binary(cubin))
        .map_err(|e| driver(e, gpu.what(format!("loading kernel `{}`", kernel.name))))?;
    module.load_function(kernel.name).map_err(|e| {
        driver(
            e,
            gpu.what(format!(
                "finding `{}` in its source (declare it `extern \"C\" __global__`)",
                kernel.name
            )),
        )
    })
}

/// NVRTC: source to CUBIN for `arch`.
fn cubin(kernel: &Kernel, arch: &str) -> Result<Vec<u8>, Error> {
    let failed = |doing: &str, e: nvrtc::NvrtcError| {
        Error::Device(format!("NVRTC: {doing} kernel `{}`: {e:?}", kernel.name))
    };
    let source = CString::new(kernel.source).map_err(|_| {
        Error::InvalidUse(format!(
            "kernel `{}`: its source contains a NUL byte",
            kernel.name
        ))
    })?;
    let program = nvrtc::create_program(&source, None).map_err(|e| failed("creating", e))?;
    let options = [arch.to_owned(), "--std=c++17".to_owned()];
    // SAFETY: `program` was just created and is destroyed once, below.
    let compiled = unsafe { nvrtc::compile_program(program, &options) };
    // Read the log or the CUBIN, then destroy the program whatever happened.
    let result = (|| match compiled {
        Err(_) => {
            // SAFETY: as above.
            let log = unsafe { nvrtc::get_program_log(program) }.unwrap_or_default();
            // The log is NUL-terminated, or empty when it could not be fetched: read the
            // bytes up to the first NUL, never past the buffer.
            let bytes: Vec<u8> = log
                .iter()
                .map(|&c| c as u8)
                .take_while(|&b| b != 0)
                .collect();
            let log = String::from_utf8_lossy(&bytes);
            Err(Error::Device(format!(
                "kernel `{}` did not compile for {arch}:\n{}",
                kernel.name,
                log.trim()
            )))
        }
        Ok(()) => {
            let mut size = 0usize;
            // SAFETY: `program` compiled; NVRTC writes the size.
            unsafe { nvrtc_sys::nvrtcGetCUBINSize(program, &mut size) }
                .result()
                .map_err(|e| failed("sizing the CUBIN of", e))?;
            let mut image = vec![0u8; size];
            // SAFETY: `image` holds `size` bytes, as NVRTC asked.
            unsafe { nvrtc_sys::nvrtcGetCUBIN(program, image.as_mut_ptr().cast::<c_char>()) }
                .result()
                .map_err(|e| failed("reading the CUBIN of", e))?;
            Ok(image)
        }
    })();
    // SAFETY: created above, destroyed once.
    unsafe { nvrtc::destroy_program(program) }.map_err(|e| failed("releasing", e))?;
    result
}
