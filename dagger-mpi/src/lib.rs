//! dagger across machines, on MPI: the same tasks, arrays and values on many ranks.
//!
//! The model is SPMD, as in Dagger.jl's MPI mode and StarPU-MPI: `mpirun -n N ./prog`
//! starts N ranks running the same program, each with its own dagger runtime (without
//! `mpirun`, or without the `mpi` feature, the program is one rank). Every rank issues the
//! same distributed operations in the same order. Each distributed value ([`Dist`], a
//! block of a [`DistArray`]) has an owner rank; a task runs on the rank that owns what it
//! makes ("owner computes"); a rank that reads a value it does not hold gets a copy from a
//! rank that does, once, and keeps it while the value lives. Every rank does the same
//! bookkeeping, so each knows who sends what to whom without asking: there is no central
//! scheduler, and the only messages are the values themselves.
//!
//! One communication thread per rank owns MPI (initialized `Funneled` on it). Tasks hand
//! it finished values to send; it posts non-blocking sends, matches arriving messages
//! (`MPI_Improbe` / `MPI_Mrecv`) to the receives the program announced, completes their
//! handles, and parks when it has nothing to wait for.
//!
//! ```
//! use dagger_mpi::{DistArray, Placement};
//!
//! let cluster = dagger_mpi::init()?;
//! let grid = Placement::square(&cluster);
//! let a = DistArray::<f64>::random(&grid, (200, 200), (50, 50), 7)?;
//! let c = a.matmul(&a.transpose()?)?;          // every block on its owner rank
//! let total = c.sum()?;                        // the same on every rank
//! let dense = c.collect()?;                    // every element on every rank
//! assert!((dense.iter().sum::<f64>() - total).abs() < 1e-6 * total);
//! cluster.finish()?;                           // as MPI_Finalize, on every rank
//! # Ok::<(), dagger_core::Error>(())
//! ```
//!
//! What must be the same on every rank: the sequence of distributed operations (every
//! method of [`Cluster`], [`Dist`] and [`DistArray`]) and their arguments that decide
//! placement (ranks, shapes, blocks). Closures run only where their task is placed.
//! Distributed operations are issued from one thread.
//!
//! Three ways to place work: tasks on a rank ([`Cluster::spawn_on`], values as [`Dist`]),
//! arrays of blocks ([`DistArray`]), and regions of objects with read and write
//! declarations ([`Cluster::data_on`], [`Cluster::spawn_accessing`]). Attach a recorder on
//! every rank and [`Cluster::merge_traces`] shows them all on one time axis.

#![warn(missing_docs)]

mod array;
mod cluster;
mod collective;
mod comm;
mod dist;
mod region;
mod spawn;
mod trace;
mod transfer;
mod transport;
mod wire;

pub use array::{DistArray, Placement};
pub use cluster::{init, local_ranks, Cluster, RemoteFailure, Traffic};
pub use dist::Dist;
pub use region::{DistAccess, DistAccesses, DistData, DistRead, DistWrite};
pub use spawn::DistInputs;
pub use trace::{MergedTrace, RankSummary};
pub use transfer::{DecodeError, EncodeError, Serde, Transfer};
