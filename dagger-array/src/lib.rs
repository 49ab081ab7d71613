//! Blocked arrays (Dagger's `DArray`): a 1-D or 2-D array split into blocks, where every
//! operation is a graph of block tasks on the dagger runtime. Operations return at once;
//! blocks are computed in parallel as their inputs become ready, and whole chains of
//! operations overlap. Results are waited for only when asked for.
//!
//! Block kernels (matrix multiply, Cholesky, triangular solve) are faer's, run
//! sequentially inside each task: the parallelism comes from the graph. With the `cuda`
//! feature, `DArray::to_device` puts the blocks on a GPU as a `DeviceArray`, whose
//! matrix multiply is cuBLAS and element-wise work NVRTC kernels, one stream per task.
//!
//! ```
//! use dagger_array::DArray;
//!
//! let a = DArray::<f64>::random((300, 200), (64, 64), 7)?;   // ragged edge blocks
//! let b = a.transpose();
//! let c = a.matmul(&b)?.shift(1.0);                         // 300 x 300, symmetric
//! assert_eq!(c.shape(), (300, 300).into());
//! let total = c.sum()?;
//! let dense = c.collect()?;
//! assert!((dense.iter().sum::<f64>() - total).abs() < 1e-6 * total);
//! # Ok::<(), dagger_core::Error>(())
//! ```

#![warn(missing_docs)]

mod block;
mod darray;
#[cfg(feature = "cuda")]
mod device;
mod element;
mod elementwise;
pub mod kernels;
mod layout;
mod linalg;
mod reduce;
mod stencil;

pub use block::Block;
pub use darray::DArray;
#[cfg(feature = "cuda")]
pub use device::{DeviceArray, DeviceReal};
pub use element::{uniform, Element, Real};
pub use layout::{Layout, Shape};
pub use linalg::NotPositiveDefinite;
