//! `DistArray<T>`: a blocked array whose blocks live on the ranks of a process grid
//! (2-D block-cyclic, as in ScaLAPACK). Each rank makes only the blocks it owns; every
//! operation runs each result block on the rank that owns it ("owner computes") and
//! copies the blocks it reads from the ranks that hold them.

use std::sync::Arc;

use bytemuck::Pod;
use dagger_array::kernels;
use dagger_array::{Block, Layout, NotPositiveDefinite, Real, Shape};
use dagger_core::{Error, Handle};

use crate::cluster::Cluster;
use crate::dist::Dist;

/// Which rank owns which block: a grid of `rows x cols` ranks laid over the blocks
/// cyclically, so block (i, j) belongs to the rank at (i mod rows, j mod cols) of the grid.
#[derive(Clone, Debug)]
pub struct Placement {
    cluster: Cluster,
    rows: usize,
    cols: usize,
}

impl Placement {
    /// A grid of `rows x cols` ranks (at most the cluster's size; the other ranks own
    /// nothing).
    pub fn block_cyclic(cluster: &Cluster, rows: usize, cols: usize) -> Result<Self, Error> {
        if rows == 0 || cols == 0 || rows.checked_mul(cols).is_none_or(|n| n > cluster.size()) {
            return Err(Error::InvalidUse(format!(
                "a {rows}x{cols} grid of ranks does not fit {} ranks",
                cluster.size()
            )));
        }
        Ok(Placement {
            cluster: cluster.clone(),
            rows,
            cols,
        })
    }

    /// The most square grid of all the ranks (`rows <= cols`).
    pub fn square(cluster: &Cluster) -> Self {
        let size = cluster.size();
        let rows = (1..=size)
            .take_while(|r| r * r <= size)
            .filter(|r| size.is_multiple_of(*r))
            .last()
            .unwrap_or(1);
        Placement {
            cluster: cluster.clone(),
            rows,
            cols: size / rows,
        }
    }

    /// The rank that owns block (bi, bj).
    pub fn owner(&self, bi: usize, bj: usize) -> usize {
        (bi % self.rows) * self.cols + bj % self.cols
    }

    /// The grid of ranks: (rows, cols).
    pub fn grid(&self) -> (usize, usize) {
        (self.rows, self.cols)
    }

    /// Its cluster.
    pub fn cluster(&self) -> &Cluster {
        &self.cluster
    }
}

/// A blocked array spread over the ranks. Every operation is a distributed operation:
/// every rank calls it, in the same order. Cloning is cheap.
pub struct DistArray<T> {
    layout: Layout,
    placement: Placement,
    /// Row-major order of blocks.
    blocks: Vec<Dist<Block<T>>>,
}

/// An array's element type, shape, blocks and placement, for the SPMD check's records.
struct Described<'a, T>(&'a DistArray<T>);

impl<T> std::fmt::Display for Described<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let DistArray {
            layout, placement, ..
        } = self.0;
        write!(
            f,
            "a {:?} array of `{}` in {:?} blocks on {placement}",
            layout.shape,
            std::any::type_name::<T>(),
            layout.block
        )
    }
}

impl<T> DistArray<T> {
    fn described(&self) -> Described<'_, T> {
        Described(self)
    }
}

impl std::fmt::Display for Placement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "a {}x{} grid of ranks", self.rows, self.cols)
    }
}

impl<T> Clone for DistArray<T> {
    fn clone(&self) -> Self {
        DistArray {
            layout: self.layout,
            placement: self.placement.clone(),
            blocks: self.blocks.clone(),
        }
    }
}

impl<T> std::fmt::Debug for DistArray<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DistArray")
            .field("shape", &self.layout.shape)
            .field("block", &self.layout.block)
            .field("grid of ranks", &self.placement.grid())
            .finish()
    }
}

impl<T: Real + Pod> DistArray<T> {
    /// A 2-D array with element (i, j) = `f(i, j)`; each rank makes its own blocks.
    #[track_caller]
    pub fn from_fn(
        placement: &Placement,
        shape: impl Into<Shape>,
        block: impl Into<Shape>,
        f: impl Fn(usize, usize) -> T + Send + Sync + 'static,
    ) -> Result<Self, Error> {
        let (shape, block) = (shape.into(), block.into());
        placement.cluster.operation(format_args!(
            "DistArray::from_fn<{}> of {:?} in {:?} blocks on {placement}",
            std::any::type_name::<T>(),
            shape,
            block
        ))?;
        let layout = Layout::new(shape, block, 2)?;
        let f = Arc::new(f);
        Ok(Self::generate(placement, layout, |bi, bj| {
            let f = f.clone();
            let (r0, c0, shape) = layout.block_at(bi, bj);
            move || {
                let mut data = Vec::with_capacity(shape.rows * shape.cols);
                for i in 0..shape.rows {
                    data.extend((0..shape.cols).map(|j| f(r0 + i, c0 + j)));
                }
                Block::new(shape, data).expect("rows x cols elements")
            }
        }))
    }

    /// Uniform numbers in [0, 1), the same as `dagger_array::DArray::random` with the same
    /// seed, whatever the blocks and the number of ranks.
    #[track_caller]
    pub fn random(
        placement: &Placement,
        shape: impl Into<Shape>,
        block: impl Into<Shape>,
        seed: u64,
    ) -> Result<Self, Error> {
        let shape = shape.into();
        let cols = shape.cols;
        let block = block.into();
        // The same elements as `DArray::random`: element (i, j) of its one-block array.
        Self::from_fn(placement, shape, block, move |i, j| {
            T::from_f64(dagger_array::uniform(seed, (i * cols + j) as u64))
        })
    }

    /// Blocks made by `make(bi, bj)()` on their owners.
    fn generate<F>(placement: &Placement, layout: Layout, make: impl Fn(usize, usize) -> F) -> Self
    where
        F: FnOnce() -> Block<T> + Send + 'static,
    {
        let cluster = &placement.cluster;
        let blocks = layout
            .blocks()
            .map(|(bi, bj)| {
                let owner = placement.owner(bi, bj);
                let local = (cluster.rank() == owner).then(|| dagger_core::spawn(make(bi, bj)));
                Dist::new(cluster, owner, local)
            })
            .collect();
        DistArray {
            layout,
            placement: placement.clone(),
            blocks,
        }
    }

    /// Its shape.
    pub fn shape(&self) -> Shape {
        self.layout.shape
    }

    /// The shape of a full block.
    pub fn block_shape(&self) -> Shape {
        self.layout.block
    }

    /// Its placement.
    pub fn placement(&self) -> &Placement {
        &self.placement
    }

    /// Waits until every block this rank owns is computed (not a distributed operation:
    /// it waits for this rank's work only); returns the first failure.
    pub fn wait_local(&self) -> Result<(), Error> {
        let me = self.cluster().rank();
        for block in self.blocks.iter().filter(|b| b.owner() == me) {
            if let Some(local) = block.local() {
                local.wait()?;
            }
        }
        Ok(())
    }

    /// Block (bi, bj) as a distributed value.
    pub fn block(&self, bi: usize, bj: usize) -> Result<&Dist<Block<T>>, Error> {
        let (r, c) = self.layout.grid();
        if bi >= r || bj >= c {
            return Err(Error::InvalidUse(format!(
                "block ({bi}, {bj}) is outside a grid of {r}x{c} blocks"
            )));
        }
        Ok(&self.blocks[self.layout.index(bi, bj)])
    }

    fn cluster(&self) -> &Cluster {
        &self.placement.cluster
    }

    /// Each result block `f(bi, bj, inputs)` on its owner in `placement`, with the input
    /// blocks that `inputs(bi, bj)` names brought there first.
    fn blockwise<U, F>(
        &self,
        placement: &Placement,
        layout: Layout,
        inputs: impl Fn(usize, usize) -> Vec<Dist<Block<U>>>,
        f: F,
    ) -> DistArray<T>
    where
        U: Real + Pod,
        F: Fn(usize, usize, Vec<&Block<U>>) -> Result<Block<T>, Error> + Send + Sync + 'static,
    {
        let cluster = placement.cluster.clone();
        let f = Arc::new(f);
        let blocks = layout
            .blocks()
            .map(|(bi, bj)| {
                let owner = placement.owner(bi, bj);
                let local = bring_all(&inputs(bi, bj), owner);
                let local = local.map(|handles| {
                    let f = f.clone();
                    dagger_core::try_spawn_with(&handles, move |blocks: Vec<&Block<U>>| {
                        f(bi, bj, blocks)
                    })
                });
                Dist::new(&cluster, owner, local)
            })
            .collect();
        DistArray {
            layout,
            placement: placement.clone(),
            blocks,
        }
    }

    /// `f` of every element (a task per block, on its owner).
    #[track_caller]
    pub fn map(&self, f: impl Fn(T) -> T + Send + Sync + 'static) -> Result<Self, Error> {
        self.cluster()
            .operation(format_args!("DistArray::map of {}", self.described()))?;
        Ok(self.blockwise(
            &self.placement,
            self.layout,
            |bi, bj| vec![self.blocks[self.layout.index(bi, bj)].clone()],
            move |_, _, b| {
                let b = b[0];
                Block::new(b.shape(), b.as_slice().iter().map(|&x| f(x)).collect())
            },
        ))
    }

    /// `f` of the elements of `self` and `other` at the same place (same shape and
    /// blocks; `other`'s blocks are brought to the owners of `self`'s).
    #[track_caller]
    pub fn zip_map(
        &self,
        other: &DistArray<T>,
        f: impl Fn(T, T) -> T + Send + Sync + 'static,
    ) -> Result<Self, Error> {
        self.cluster()
            .check_same(other.cluster(), "DistArray::zip_map")?;
        self.cluster()
            .operation(format_args!("DistArray::zip_map of {}", self.described()))?;
        if self.layout.shape != other.layout.shape || self.layout.block != other.layout.block {
            return Err(Error::InvalidUse(format!(
                "zip_map: a {} array in blocks of {} and a {} array in blocks of {} differ",
                self.layout.shape, self.layout.block, other.layout.shape, other.layout.block
            )));
        }
        Ok(self.blockwise(
            &self.placement,
            self.layout,
            |bi, bj| {
                let at = self.layout.index(bi, bj);
                vec![self.blocks[at].clone(), other.blocks[at].clone()]
            },
            move |_, _, b| {
                let data = b[0]
                    .as_slice()
                    .iter()
                    .zip(b[1].as_slice())
                    .map(|(&x, &y)| f(x, y));
                Block::new(b[0].shape(), data.collect())
            },
        ))
    }

    /// Element-wise sum.
    #[track_caller]
    pub fn plus(&self, other: &DistArray<T>) -> Result<Self, Error> {
        self.zip_map(other, |a, b| a + b)
    }

    /// Element-wise difference.
    #[track_caller]
    pub fn minus(&self, other: &DistArray<T>) -> Result<Self, Error> {
        self.zip_map(other, |a, b| a - b)
    }

    /// Element-wise product.
    #[track_caller]
    pub fn hadamard(&self, other: &DistArray<T>) -> Result<Self, Error> {
        self.zip_map(other, |a, b| a * b)
    }

    /// Every element times `s`.
    #[track_caller]
    pub fn scale(&self, s: T) -> Result<Self, Error> {
        self.map(move |x| x * s)
    }

    /// Every element plus `s`.
    #[track_caller]
    pub fn shift(&self, s: T) -> Result<Self, Error> {
        self.map(move |x| x + s)
    }

    /// An array of one value.
    #[track_caller]
    pub fn fill(
        placement: &Placement,
        shape: impl Into<Shape>,
        block: impl Into<Shape>,
        value: T,
    ) -> Result<Self, Error> {
        Self::from_fn(placement, shape, block, move |_, _| value)
    }

    /// An array of zeros.
    #[track_caller]
    pub fn zeros(
        placement: &Placement,
        shape: impl Into<Shape>,
        block: impl Into<Shape>,
    ) -> Result<Self, Error> {
        Self::fill(placement, shape, block, T::from_f64(0.0))
    }

    /// An array of ones.
    #[track_caller]
    pub fn ones(
        placement: &Placement,
        shape: impl Into<Shape>,
        block: impl Into<Shape>,
    ) -> Result<Self, Error> {
        Self::fill(placement, shape, block, T::from_f64(1.0))
    }

    /// An array from row-major data that every rank has (each rank keeps its blocks).
    #[track_caller]
    pub fn from_vec(
        placement: &Placement,
        data: Vec<T>,
        shape: impl Into<Shape>,
        block: impl Into<Shape>,
    ) -> Result<Self, Error> {
        let shape = shape.into();
        if data.len() != shape.rows * shape.cols {
            return Err(Error::InvalidUse(format!(
                "{} elements cannot make an array of {shape}",
                data.len()
            )));
        }
        let data = Arc::new(data);
        let cols = shape.cols;
        Self::from_fn(placement, shape, block, move |i, j| data[i * cols + j])
    }

    /// The transpose, with the same placement (block (i, j) of the result is made on its
    /// owner from block (j, i)).
    #[track_caller]
    pub fn transpose(&self) -> Result<Self, Error> {
        self.cluster()
            .operation(format_args!("DistArray::transpose of {}", self.described()))?;
        let Layout { shape, block, .. } = self.layout;
        let layout = Layout::new(
            (shape.cols, shape.rows).into(),
            (block.cols, block.rows).into(),
            2,
        )?;
        Ok(self.blockwise(
            &self.placement,
            layout,
            |bi, bj| vec![self.blocks[self.layout.index(bj, bi)].clone()],
            |_, _, b| {
                let b = b[0];
                let Shape { rows, cols } = b.shape();
                let data = (0..cols).flat_map(|j| (0..rows).map(move |i| *b.at(i, j)));
                Block::new((cols, rows).into(), data.collect())
            },
        ))
    }

    /// The matrix product: block (i, j) on its owner, from block row i of `self` and block
    /// column j of `other` brought there (each block once per rank).
    #[track_caller]
    pub fn matmul(&self, other: &DistArray<T>) -> Result<Self, Error> {
        self.cluster()
            .check_same(other.cluster(), "DistArray::matmul")?;
        self.cluster()
            .operation(format_args!("DistArray::matmul of {}", self.described()))?;
        let (a, b) = (&self.layout, &other.layout);
        if a.shape.cols != b.shape.rows || a.block.cols != b.block.rows {
            return Err(Error::InvalidUse(format!(
                "matmul: a {} matrix in blocks of {} cannot multiply a {} matrix in blocks of {}",
                a.shape, a.block, b.shape, b.block
            )));
        }
        let layout = Layout::new(
            (a.shape.rows, b.shape.cols).into(),
            (a.block.rows, b.block.cols).into(),
            2,
        )?;
        let inner = a.grid().1;
        Ok(self.blockwise(
            &self.placement,
            layout,
            |bi, bj| {
                let row = (0..inner).map(|k| self.blocks[a.index(bi, k)].clone());
                let col = (0..inner).map(|k| other.blocks[b.index(k, bj)].clone());
                row.chain(col).collect()
            },
            move |bi, bj, blocks| {
                let (row, col) = blocks.split_at(inner);
                Ok(kernels::multiply_sum(layout.block_at(bi, bj).2, row, col))
            },
        ))
    }

    /// Maps every element and combines with `reduce` (associative; `identity` neutral):
    /// each owner folds its blocks, then the ranks combine their parts. The result is on
    /// every rank.
    #[track_caller]
    pub fn map_reduce(
        &self,
        map: impl Fn(T) -> f64 + Send + Sync + 'static,
        reduce: impl Fn(f64, f64) -> f64 + Send + Sync + 'static,
        identity: f64,
    ) -> Result<f64, Error> {
        let cluster = self.cluster();
        cluster.operation(format_args!(
            "DistArray::map_reduce of {}",
            self.described()
        ))?;
        let (map, reduce) = (Arc::new(map), Arc::new(reduce));
        let mine: Vec<Handle<f64>> = self
            .blocks
            .iter()
            .filter(|block| block.owner() == cluster.rank())
            .filter_map(Dist::local)
            .map(|block| {
                let (map, reduce) = (map.clone(), reduce.clone());
                dagger_core::spawn_with(&block, move |b: &Block<T>| {
                    b.as_slice()
                        .iter()
                        .fold(identity, |acc, &x| reduce(acc, map(x)))
                })
            })
            .collect();
        let fold = reduce.clone();
        let part = dagger_core::spawn_with(&mine, move |parts: Vec<&f64>| {
            parts.into_iter().fold(identity, |acc, &x| fold(acc, x))
        });
        cluster
            .all_reduce_in_order(&part, move |a: &f64, b: &f64| reduce(*a, *b))
            .fetch()
    }

    /// The sum of the elements, on every rank.
    #[track_caller]
    pub fn sum(&self) -> Result<f64, Error> {
        self.map_reduce(|x| x.to_f64(), |a, b| a + b, 0.0)
    }

    /// The product of the elements, on every rank.
    #[track_caller]
    pub fn product(&self) -> Result<f64, Error> {
        self.map_reduce(|x| x.to_f64(), |a, b| a * b, 1.0)
    }

    /// The mean of the elements, on every rank; an error for an empty array.
    #[track_caller]
    pub fn mean(&self) -> Result<f64, Error> {
        let count = self.layout.shape.rows * self.layout.shape.cols;
        if count == 0 {
            return Err(Error::InvalidUse("mean of an empty array".to_owned()));
        }
        Ok(self.sum()? / count as f64)
    }

    /// The smallest element (NaNs skipped), on every rank; an error for an empty array
    /// or one of NaNs only.
    #[track_caller]
    pub fn min(&self) -> Result<f64, Error> {
        self.extreme("min", f64::min, f64::INFINITY)
    }

    /// The largest element (NaNs skipped), on every rank; an error for an empty array or
    /// one of NaNs only.
    #[track_caller]
    pub fn max(&self) -> Result<f64, Error> {
        self.extreme("max", f64::max, f64::NEG_INFINITY)
    }

    #[track_caller]
    fn extreme(&self, what: &str, pick: fn(f64, f64) -> f64, identity: f64) -> Result<f64, Error> {
        // `f64::min` / `max` skip NaN; an all-NaN (or empty) array keeps the identity.
        let (best, numbers) = {
            let best = self.map_reduce(|x| x.to_f64(), pick, identity)?;
            let numbers = self.map_reduce(
                |x| if x.to_f64().is_nan() { 0.0 } else { 1.0 },
                |a, b| a + b,
                0.0,
            )?;
            (best, numbers)
        };
        if numbers == 0.0 {
            return Err(Error::InvalidUse(format!(
                "{what} of an array with no numbers"
            )));
        }
        Ok(best)
    }

    /// Element (i, j), on every rank (its block is copied to every rank).
    #[track_caller]
    pub fn get(&self, i: usize, j: usize) -> Result<T, Error> {
        let (bi, bj, r, c) = self.layout.locate(i, j)?;
        let block = self.blocks[self.layout.index(bi, bj)].fetch()?;
        Ok(*block.at(r, c))
    }

    /// The elements, row-major, on every rank (every block copied to every rank).
    #[track_caller]
    pub fn collect(&self) -> Result<Vec<T>, Error> {
        self.cluster()
            .operation(format_args!("DistArray::collect of {}", self.described()))?;
        for block in &self.blocks {
            block.replicate_in_order();
        }
        let blocks: Vec<Handle<Block<T>>> = self
            .blocks
            .iter()
            .map(|b| b.local().expect("replicated"))
            .collect();
        assemble(&self.layout, &blocks)
    }

    /// The elements, row-major, on `rank` (`None` on the others).
    #[track_caller]
    pub fn collect_on(&self, rank: usize) -> Result<Option<Vec<T>>, Error> {
        let cluster = self.cluster();
        cluster.check_rank(rank, "collect_on")?;
        cluster.operation(format_args!(
            "DistArray::collect_on({rank}) of {}",
            self.described()
        ))?;
        let blocks = bring_all(&self.blocks, rank);
        blocks
            .map(|blocks| assemble(&self.layout, &blocks))
            .transpose()
    }
}

/// Brings every value to `rank` (every rank does all the bookkeeping: no early exit on
/// the ranks that are not `rank`); their copies on `rank`, `None` elsewhere.
fn bring_all<T: crate::Transfer>(values: &[Dist<T>], rank: usize) -> Option<Vec<Handle<T>>> {
    let copies: Vec<Option<Handle<T>>> = values.iter().map(|d| d.bring_to(rank)).collect();
    copies.into_iter().collect()
}

fn assemble<T: Copy + Send + Sync + 'static>(
    layout: &Layout,
    blocks: &[Handle<Block<T>>],
) -> Result<Vec<T>, Error> {
    let blocks: Vec<&Block<T>> = blocks
        .iter()
        .map(|h| h.fetch_ref())
        .collect::<Result<_, _>>()?;
    let Shape { rows, cols } = layout.shape;
    let mut out = Vec::with_capacity(rows * cols);
    let grid_cols = layout.grid().1;
    for i in 0..rows {
        let (bi, r) = (i / layout.block.rows, i % layout.block.rows);
        for bj in 0..grid_cols {
            let block = blocks[layout.index(bi, bj)];
            let w = block.shape().cols;
            out.extend_from_slice(&block.as_slice()[r * w..(r + 1) * w]);
        }
    }
    Ok(out)
}

impl<T: Real + Pod> DistArray<T> {
    /// The Cholesky factor `L` (lower, `self = L Lᵀ`) of a symmetric positive definite
    /// matrix, tiled: each tile task on the owner of the tile it writes, each tile it
    /// reads brought there. Only the lower triangle is read. A matrix that is not
    /// positive definite fails the factor's blocks with [`NotPositiveDefinite`].
    #[track_caller]
    pub fn cholesky(&self) -> Result<Self, Error> {
        let cluster = self.cluster().clone();
        cluster.operation(format_args!("DistArray::cholesky of {}", self.described()))?;
        let Layout { shape, block, .. } = self.layout;
        if shape.rows != shape.cols || block.rows != block.cols {
            return Err(Error::InvalidUse(format!(
                "cholesky needs a square matrix in square blocks, not {shape} in blocks of {block}"
            )));
        }
        let n = self.layout.grid().0;
        let layout = self.layout;
        let placement = &self.placement;
        let at = |i: usize, j: usize| layout.index(i, j);
        // Each tile's current version; a task that writes a tile makes its next version.
        let mut tiles: Vec<Dist<Block<T>>> = self.blocks.clone();
        for k in 0..n {
            let first_row = k * block.rows;
            tiles[at(k, k)] = update(
                &cluster,
                placement.owner(k, k),
                &tiles[at(k, k)],
                &[],
                move |a, _| kernels::cholesky_diagonal(a, first_row),
            );
            for i in k + 1..n {
                let reads = [tiles[at(k, k)].clone()];
                tiles[at(i, k)] = update::<T, _, NotPositiveDefinite>(
                    &cluster,
                    placement.owner(i, k),
                    &tiles[at(i, k)],
                    &reads,
                    |a, r| {
                        kernels::solve_panel(r[0], a);
                        Ok(())
                    },
                );
            }
            for i in k + 1..n {
                for j in k + 1..=i {
                    let reads = [tiles[at(i, k)].clone(), tiles[at(j, k)].clone()];
                    tiles[at(i, j)] = update::<T, _, NotPositiveDefinite>(
                        &cluster,
                        placement.owner(i, j),
                        &tiles[at(i, j)],
                        &reads,
                        |a, r| {
                            kernels::subtract_product_transposed(r[0], r[1], a);
                            Ok(())
                        },
                    );
                }
            }
        }
        // Above the diagonal: zeros, made on their owners.
        for i in 0..n {
            for j in i + 1..n {
                let owner = placement.owner(i, j);
                let tile_shape = layout.block_at(i, j).2;
                let local = (cluster.rank() == owner).then(|| {
                    dagger_core::spawn(move || {
                        Block::new(
                            tile_shape,
                            vec![T::from_f64(0.0); tile_shape.rows * tile_shape.cols],
                        )
                        .expect("rows x cols elements")
                    })
                });
                tiles[at(i, j)] = Dist::new(&cluster, owner, local);
            }
        }
        Ok(DistArray {
            layout,
            placement: placement.clone(),
            blocks: tiles,
        })
    }
}

impl<T: Real + Pod> DistArray<T> {
    /// Solves `L X = B` (`self` = L, lower triangular, as from `cholesky`; `b` has as many
    /// rows, in the same row blocks), tiled forward substitution: each task on the owner
    /// of the tile of X it writes.
    #[track_caller]
    pub fn solve_lower_triangular(&self, b: &DistArray<T>) -> Result<Self, Error> {
        self.cluster().operation(format_args!(
            "DistArray::solve_lower_triangular of {}",
            self.described()
        ))?;
        self.cluster()
            .check_same(b.cluster(), "DistArray::solve_lower_triangular")?;
        self.triangular_solve(b, false, "solve_lower_triangular")
    }

    /// Solves `Lᵀ X = B`, tiled backward substitution.
    #[track_caller]
    pub fn solve_lower_transposed(&self, b: &DistArray<T>) -> Result<Self, Error> {
        self.cluster().operation(format_args!(
            "DistArray::solve_lower_transposed of {}",
            self.described()
        ))?;
        self.cluster()
            .check_same(b.cluster(), "DistArray::solve_lower_transposed")?;
        self.triangular_solve(b, true, "solve_lower_transposed")
    }

    /// Solves `A X = B` given `self = L`, the Cholesky factor of `A`.
    #[track_caller]
    pub fn cholesky_solve(&self, b: &DistArray<T>) -> Result<Self, Error> {
        self.cluster()
            .check_same(b.cluster(), "DistArray::cholesky_solve")?;
        self.cluster().operation(format_args!(
            "DistArray::cholesky_solve of {}",
            self.described()
        ))?;
        let y = self.triangular_solve(b, false, "cholesky_solve")?;
        self.triangular_solve(&y, true, "cholesky_solve")
    }

    fn triangular_solve(
        &self,
        b: &DistArray<T>,
        transposed: bool,
        what: &str,
    ) -> Result<Self, Error> {
        let (l, bl) = (self.layout, b.layout);
        if l.shape.rows != l.shape.cols || l.block.rows != l.block.cols {
            return Err(Error::InvalidUse(format!(
                "{what} needs a square matrix in square blocks, not {} in blocks of {}",
                l.shape, l.block
            )));
        }
        if bl.shape.rows != l.shape.rows || bl.block.rows != l.block.rows {
            return Err(Error::InvalidUse(format!(
                "{what}: the right-hand side ({} in blocks of {}) must have {} rows in blocks \
                 of {} rows, like the matrix",
                bl.shape, bl.block, l.shape.rows, l.block.rows
            )));
        }
        let cluster = self.cluster().clone();
        let n = l.grid().0;
        let cols = bl.grid().1;
        let placement = &b.placement;
        let mut x: Vec<Dist<Block<T>>> = b.blocks.clone();
        let order: Vec<usize> = if transposed {
            (0..n).rev().collect()
        } else {
            (0..n).collect()
        };
        for (step, &i) in order.iter().enumerate() {
            for j in 0..cols {
                let owner = placement.owner(i, j);
                for &k in &order[..step] {
                    let factor = if transposed { (k, i) } else { (i, k) };
                    let reads = [
                        x[bl.index(k, j)].clone(),
                        self.blocks[l.index(factor.0, factor.1)].clone(),
                    ];
                    x[bl.index(i, j)] = update::<T, _, Error>(
                        &cluster,
                        owner,
                        &x[bl.index(i, j)],
                        &reads,
                        move |xi, r| {
                            kernels::subtract_product(r[1], transposed, r[0], xi);
                            Ok(())
                        },
                    );
                }
                let first_row = i * l.block.rows;
                let reads = [self.blocks[l.index(i, i)].clone()];
                let what = what.to_owned();
                x[bl.index(i, j)] = update::<T, _, Error>(
                    &cluster,
                    owner,
                    &x[bl.index(i, j)],
                    &reads,
                    move |xi, r| {
                        let lii = r[0];
                        let size = lii.shape().rows;
                        if let Some(p) = (0..size).find(|&p| *lii.at(p, p) == T::from_f64(0.0)) {
                            return Err(Error::InvalidUse(format!(
                                "{what}: the matrix is singular (zero at diagonal {})",
                                first_row + p
                            )));
                        }
                        kernels::solve_diagonal(lii, transposed, xi);
                        Ok(())
                    },
                );
            }
        }
        Ok(DistArray {
            layout: bl,
            placement: placement.clone(),
            blocks: x,
        })
    }

    /// `sweeps` Jacobi iterations of the 5-point Laplace stencil (the outer boundary stays
    /// fixed), as `DArray::jacobi`: each block on its owner, with only the adjacent edges
    /// of its neighbours sent to it (each cut out on the neighbour's owner).
    #[track_caller]
    pub fn jacobi(&self, sweeps: usize) -> Result<Self, Error> {
        let cluster = self.cluster().clone();
        cluster.operation(format_args!("DistArray::jacobi of {}", self.described()))?;
        let layout = self.layout;
        let (grid_rows, grid_cols) = layout.grid();
        let placement = &self.placement;
        let mut current = self.blocks.clone();
        for _ in 0..sweeps {
            let edge = |block: (usize, usize), side: kernels::Side| -> Dist<Block<T>> {
                let owner = placement.owner(block.0, block.1);
                let source = current[layout.index(block.0, block.1)].clone();
                let local = source.bring_to(owner).map(|b| {
                    dagger_core::spawn_with(&b, move |b: &Block<T>| kernels::edge(b, side))
                });
                Dist::new(&cluster, owner, local)
            };
            let next: Vec<Dist<Block<T>>> = layout
                .blocks()
                .map(|(bi, bj)| {
                    use kernels::Side::{Bottom, Left, Right, Top};
                    let halo = [
                        (bi > 0).then(|| edge((bi - 1, bj), Bottom)),
                        (bi + 1 < grid_rows).then(|| edge((bi + 1, bj), Top)),
                        (bj > 0).then(|| edge((bi, bj - 1), Right)),
                        (bj + 1 < grid_cols).then(|| edge((bi, bj + 1), Left)),
                    ];
                    let present = halo.each_ref().map(Option::is_some);
                    let owner = placement.owner(bi, bj);
                    let mut inputs = vec![current[layout.index(bi, bj)].clone()];
                    inputs.extend(halo.into_iter().flatten());
                    let local = bring_all(&inputs, owner).map(|handles| {
                        dagger_core::spawn_with(&handles, move |blocks: Vec<&Block<T>>| {
                            let mut edges = blocks[1..].iter();
                            let halo =
                                present.map(|p| if p { edges.next().copied() } else { None });
                            kernels::jacobi_block(&layout, (bi, bj), blocks[0], halo)
                        })
                    });
                    Dist::new(&cluster, owner, local)
                })
                .collect();
            current = next;
        }
        Ok(DistArray {
            layout,
            placement: placement.clone(),
            blocks: current,
        })
    }
}

/// The next version of `tile`: `f(copy of tile, reads)` on `owner`, the reads brought
/// there. The old version is read, not changed (other tasks may still read it).
fn update<T, F, E>(
    cluster: &Cluster,
    owner: usize,
    tile: &Dist<Block<T>>,
    reads: &[Dist<Block<T>>],
    f: F,
) -> Dist<Block<T>>
where
    T: Real + Pod,
    F: FnOnce(&mut Block<T>, Vec<&Block<T>>) -> Result<(), E> + Send + 'static,
    E: Into<dagger_core::BoxError> + 'static,
{
    let current = tile.bring_to(owner);
    let reads = bring_all(reads, owner);
    let local = current.zip(reads).map(|(current, reads)| {
        // `current` by value: moved when this is the last use of the old version.
        dagger_core::try_spawn_with(
            (current, &reads),
            move |mut a: Block<T>, r: Vec<&Block<T>>| f(&mut a, r).map(|()| a),
        )
    });
    Dist::new(cluster, owner, local)
}
