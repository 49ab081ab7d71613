//! `DArray<T>`: an array split into blocks, each block the result of a task. Operations
//! spawn block tasks and return at once; the graph runs in parallel on the current
//! runtime and results are waited for only when asked for (`collect`, `get`, reductions).

use std::sync::Arc;

use dagger_core::{spawn, spawn_with, Error, Handle};

use crate::block::Block;
use crate::element::{uniform, Element, Real};
use crate::layout::{Layout, Shape};

/// A blocked array (1-D or 2-D). Cloning is cheap: the blocks are shared.
pub struct DArray<T> {
    pub(crate) layout: Layout,
    /// Row-major order of blocks.
    pub(crate) blocks: Vec<Handle<Block<T>>>,
}

impl<T> Clone for DArray<T> {
    fn clone(&self) -> Self {
        DArray {
            layout: self.layout,
            blocks: self.blocks.clone(),
        }
    }
}

impl<T> std::fmt::Debug for DArray<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DArray")
            .field("shape", &self.layout.shape)
            .field("block", &self.layout.block)
            .finish()
    }
}

fn dims(shape: Shape, block: Shape, one_d: bool) -> Result<Layout, Error> {
    Layout::new(shape, block, if one_d { 1 } else { 2 })
}

impl<T: Element> DArray<T> {
    /// A 2-D array with element (i, j) = `f(i, j)`, made block by block in parallel.
    pub fn from_fn(
        shape: impl Into<Shape>,
        block: impl Into<Shape>,
        f: impl Fn(usize, usize) -> T + Send + Sync + 'static,
    ) -> Result<Self, Error> {
        let layout = dims(shape.into(), block.into(), false)?;
        Ok(Self::generate(layout, f))
    }

    pub(crate) fn generate(
        layout: Layout,
        f: impl Fn(usize, usize) -> T + Send + Sync + 'static,
    ) -> Self {
        let f = Arc::new(f);
        let blocks = layout
            .blocks()
            .map(|(bi, bj)| {
                let f = f.clone();
                let (r0, c0, shape) = layout.block_at(bi, bj);
                spawn(move || {
                    let mut data = Vec::with_capacity(shape.rows * shape.cols);
                    for i in 0..shape.rows {
                        data.extend((0..shape.cols).map(|j| f(r0 + i, c0 + j)));
                    }
                    Block::from_vec(shape, data)
                })
            })
            .collect();
        DArray { layout, blocks }
    }

    /// A 2-D array from row-major data.
    pub fn from_vec(
        data: Vec<T>,
        shape: impl Into<Shape>,
        block: impl Into<Shape>,
    ) -> Result<Self, Error> {
        let shape = shape.into();
        if data.len() != shape.rows * shape.cols {
            return Err(Error::InvalidUse(format!(
                "{} elements cannot make an array of {shape} ({} elements)",
                data.len(),
                shape.rows * shape.cols
            )));
        }
        let layout = dims(shape, block.into(), false)?;
        let data = Arc::new(data);
        let cols = shape.cols;
        Ok(Self::generate(layout, move |i, j| data[i * cols + j]))
    }

    /// A 2-D array from a row-major slice (copied).
    pub fn from_slice(
        data: &[T],
        shape: impl Into<Shape>,
        block: impl Into<Shape>,
    ) -> Result<Self, Error> {
        Self::from_vec(data.to_vec(), shape, block)
    }

    /// A 1-D array of `data`, in blocks of `block` elements.
    pub fn from_vec_1d(data: Vec<T>, block: usize) -> Result<Self, Error> {
        let n = data.len();
        let mut array = Self::from_vec(data, (n, 1), (block, 1))?;
        array.layout.ndim = 1;
        Ok(array)
    }

    /// A 2-D array of one value.
    pub fn fill(shape: impl Into<Shape>, block: impl Into<Shape>, value: T) -> Result<Self, Error> {
        Self::from_fn(shape, block, move |_, _| value)
    }

    /// Its shape (a 1-D array of n elements is n x 1).
    pub fn shape(&self) -> Shape {
        self.layout.shape
    }

    /// The shape of a full block.
    pub fn block_shape(&self) -> Shape {
        self.layout.block
    }

    /// 1 or 2.
    pub fn ndim(&self) -> u8 {
        self.layout.ndim
    }

    /// Blocks down and across.
    pub fn grid(&self) -> (usize, usize) {
        self.layout.grid()
    }

    /// The number of elements.
    pub fn len(&self) -> usize {
        self.layout.shape.rows * self.layout.shape.cols
    }

    /// Whether it has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The task that makes block (bi, bj), to build on with `spawn`.
    pub fn block_handle(&self, bi: usize, bj: usize) -> Result<&Handle<Block<T>>, Error> {
        let (r, c) = self.layout.grid();
        if bi >= r || bj >= c {
            return Err(Error::InvalidUse(format!(
                "block ({bi}, {bj}) is outside a grid of {r}x{c} blocks"
            )));
        }
        Ok(&self.blocks[self.layout.index(bi, bj)])
    }

    /// Block (bi, bj), once computed (a copy).
    pub fn block(&self, bi: usize, bj: usize) -> Result<Block<T>, Error> {
        Ok(self.block_handle(bi, bj)?.fetch_ref()?.clone())
    }

    /// Element (i, j) (for 1-D: (i, 0)), once its block is computed.
    pub fn get(&self, i: usize, j: usize) -> Result<T, Error> {
        let (bi, bj, r, c) = self.layout.locate(i, j)?;
        Ok(*self.block_handle(bi, bj)?.fetch_ref()?.at(r, c))
    }

    /// Waits for every block and returns the elements, row-major.
    pub fn collect(&self) -> Result<Vec<T>, Error> {
        let Shape { rows, cols } = self.layout.shape;
        let mut out = Vec::with_capacity(rows * cols);
        let blocks: Vec<&Block<T>> = self
            .blocks
            .iter()
            .map(|h| h.fetch_ref())
            .collect::<Result<_, _>>()?;
        let (_, grid_cols) = self.layout.grid();
        for i in 0..rows {
            let (bi, r) = (i / self.layout.block.rows, i % self.layout.block.rows);
            for bj in 0..grid_cols {
                let block = blocks[self.layout.index(bi, bj)];
                let w = block.shape().cols;
                out.extend_from_slice(&block.as_slice()[r * w..(r + 1) * w]);
            }
        }
        Ok(out)
    }

    /// Waits until every block is computed; returns the first failure.
    pub fn wait(&self) -> Result<(), Error> {
        self.blocks.iter().try_for_each(|h| h.wait())
    }

    /// An array of the same layout whose blocks are `f` of this array's blocks.
    pub(crate) fn map_blocks<U: Element>(
        &self,
        f: impl Fn(&Block<T>) -> Block<U> + Send + Sync + 'static,
    ) -> DArray<U> {
        let f = Arc::new(f);
        let blocks = self
            .blocks
            .iter()
            .map(|h| {
                let f = f.clone();
                spawn_with(h, move |b: &Block<T>| f(b))
            })
            .collect();
        DArray {
            layout: self.layout,
            blocks,
        }
    }

    /// Checks that `other` has the same shape and blocks.
    pub(crate) fn same_layout<U>(&self, other: &DArray<U>, what: &str) -> Result<(), Error> {
        if self.layout.shape != other.layout.shape {
            return Err(Error::InvalidUse(format!(
                "{what}: shapes differ ({} and {})",
                self.layout.shape, other.layout.shape
            )));
        }
        if self.layout.block != other.layout.block {
            return Err(Error::InvalidUse(format!(
                "{what}: block shapes differ ({} and {}); re-block one of them",
                self.layout.block, other.layout.block
            )));
        }
        Ok(())
    }

    /// The same elements in blocks of `block` (a task per new block).
    pub fn reblock(&self, block: impl Into<Shape>) -> Result<Self, Error> {
        let layout = Layout::new(self.layout.shape, block.into(), self.layout.ndim)?;
        // Waits for this array: a new block may take elements from several old ones.
        let data = Arc::new(self.collect()?);
        let cols = layout.shape.cols;
        Ok(Self::generate(layout, move |i, j| data[i * cols + j]))
    }
}

impl<T: Real> DArray<T> {
    /// A 2-D array of zeros.
    pub fn zeros(shape: impl Into<Shape>, block: impl Into<Shape>) -> Result<Self, Error> {
        Self::fill(shape, block, T::from_f64(0.0))
    }

    /// A 2-D array of ones.
    pub fn ones(shape: impl Into<Shape>, block: impl Into<Shape>) -> Result<Self, Error> {
        Self::fill(shape, block, T::from_f64(1.0))
    }

    /// A 2-D array of uniform numbers in [0, 1): the same `seed` gives the same array,
    /// whatever the block shape.
    pub fn random(
        shape: impl Into<Shape>,
        block: impl Into<Shape>,
        seed: u64,
    ) -> Result<Self, Error> {
        let shape = shape.into();
        let cols = shape.cols as u64;
        Self::from_fn(shape, block, move |i, j| {
            T::from_f64(uniform(seed, i as u64 * cols + j as u64))
        })
    }
}
