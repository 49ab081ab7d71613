//! Blocked arrays on a CUDA device (feature `cuda`): the blocks live in device memory,
//! each block operation is a task that queues cuBLAS or NVRTC work on a stream of the
//! device's pool, and GPU-side ordering between blocks comes from dagger-cuda's access
//! logs, so no CPU thread waits for the GPU until the result is downloaded.

use dagger_core::{try_spawn_with, Error, Handle};
use dagger_cuda::{spawn_download, DeviceBuffer, Float, Gpu, HostCopy, Kernel, LaunchConfig};

use crate::block::Block;
use crate::darray::DArray;
use crate::element::Real;
use crate::layout::{Layout, Shape};

/// Element types for device arrays.
pub trait DeviceReal: Real + Float {
    #[doc(hidden)]
    fn scale_kernel() -> &'static Kernel;
}

/// `out = a * x`, for the element type `T` (defined before it).
macro_rules! scale_source {
    () => {
        r#"
extern "C" __global__ void dagger_scale(const T* x, T* out, T a, unsigned long long n) {
    unsigned long long i = blockIdx.x * (unsigned long long)blockDim.x + threadIdx.x;
    if (i < n) out[i] = a * x[i];
}"#
    };
}

/// `DeviceReal` for a type and its CUDA C name.
macro_rules! device_real {
    ($($t:ty => $c:literal),*) => {$(
        impl DeviceReal for $t {
            fn scale_kernel() -> &'static Kernel {
                static SCALE: Kernel =
                    Kernel::new("dagger_scale", concat!("typedef ", $c, " T;", scale_source!()));
                &SCALE
            }
        }
    )*};
}

device_real!(f32 => "float", f64 => "double");

/// A blocked array whose blocks live on one CUDA device (row-major in each block).
pub struct DeviceArray<T> {
    layout: Layout,
    gpu: Gpu,
    blocks: Vec<Handle<DeviceBuffer<T>>>,
}

impl<T> Clone for DeviceArray<T> {
    fn clone(&self) -> Self {
        DeviceArray {
            layout: self.layout,
            gpu: self.gpu.clone(),
            blocks: self.blocks.clone(),
        }
    }
}

impl<T> std::fmt::Debug for DeviceArray<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceArray")
            .field("shape", &self.layout.shape)
            .field("block", &self.layout.block)
            .field("device", &self.gpu.info().ordinal)
            .finish()
    }
}

impl<T: DeviceReal> DArray<T> {
    /// Copies every block to `gpu` (each an upload on its copy stream, as soon as the
    /// block is computed).
    pub fn to_device(&self, gpu: &Gpu) -> DeviceArray<T> {
        let blocks = self
            .blocks
            .iter()
            .map(|h| {
                let gpu = gpu.clone();
                try_spawn_with(h, move |b: &Block<T>| gpu.upload(b.as_slice()))
            })
            .collect();
        DeviceArray {
            layout: self.layout,
            gpu: gpu.clone(),
            blocks,
        }
    }
}

impl<T: DeviceReal> DeviceArray<T> {
    /// Its shape.
    pub fn shape(&self) -> Shape {
        self.layout.shape
    }

    /// The device it lives on.
    pub fn gpu(&self) -> &Gpu {
        &self.gpu
    }

    /// Copies every block back (downloads are completed by the device's progress thread;
    /// no CPU thread waits for the GPU).
    pub fn to_host(&self) -> DArray<T> {
        let blocks = self
            .blocks
            .iter()
            .zip(self.layout.blocks())
            .map(|(h, (bi, bj))| {
                let shape = self.layout.block_at(bi, bj).2;
                let copy = spawn_download(h);
                try_spawn_with(&copy, move |c: &HostCopy<T>| {
                    Ok::<_, Error>(Block::from_vec(shape, c.wait()?.to_vec()))
                })
            })
            .collect();
        DArray {
            layout: self.layout,
            blocks,
        }
    }

    /// Every element times `s`: an NVRTC kernel per block, into new device blocks.
    pub fn scale(&self, s: T) -> DeviceArray<T> {
        let blocks = self
            .blocks
            .iter()
            .map(|h| {
                let gpu = self.gpu.clone();
                try_spawn_with(h, move |x: &DeviceBuffer<T>| {
                    let n = x.len() as u64;
                    // The output joins the input's stream: no cross-stream wait.
                    let stream = gpu.stream();
                    let mut out = stream.place_near(x).zeros::<T>(x.len())?;
                    // SAFETY: the kernel takes (const T*, T*, T, u64) and stays within `n`.
                    unsafe {
                        stream
                            .kernel(T::scale_kernel())
                            .read(x)
                            .write(&mut out)
                            .value(s)
                            .value(n)
                            .launch(LaunchConfig::for_num_elems(n as u32))?;
                    }
                    Ok::<_, Error>(out)
                })
            })
            .collect();
        DeviceArray {
            layout: self.layout,
            gpu: self.gpu.clone(),
            blocks,
        }
    }

    /// The matrix product on the device: one task per result block, each queueing
    /// cuBLAS multiplies on a stream of the pool (blocks of `self`'s row and `other`'s
    /// column are ordered on the GPU, not waited for).
    pub fn matmul(&self, other: &DeviceArray<T>) -> Result<DeviceArray<T>, Error> {
        let a = self.layout;
        let layout = a.product(&other.layout)?;
        let blocks = layout
            .blocks()
            .map(|(bi, bj)| {
                let (row, col) =
                    a.product_operands(&self.blocks, (&other.layout, &other.blocks), (bi, bj));
                let sizes: Vec<usize> = (0..a.grid().1).map(|k| a.block_at(bi, k).2.cols).collect();
                let shape = layout.block_at(bi, bj).2;
                let gpu = self.gpu.clone();
                try_spawn_with(
                    (&row, &col),
                    move |row: Vec<&DeviceBuffer<T>>, col: Vec<&DeviceBuffer<T>>| {
                        let stream = gpu.stream();
                        if let Some(first) = row.first() {
                            stream.place_near(first);
                        }
                        let mut c = stream.zeros::<T>(shape.rows * shape.cols)?;
                        for ((x, y), &k) in row.iter().zip(&col).zip(&sizes) {
                            let one = T::from_f64(1.0);
                            stream.matmul((shape.rows, shape.cols, k), one, x, y, one, &mut c)?;
                        }
                        Ok::<_, Error>(c)
                    },
                )
            })
            .collect();
        Ok(DeviceArray {
            layout,
            gpu: self.gpu.clone(),
            blocks,
        })
    }
}
