//! One block: a small dense matrix, row-major, seen by faer through views.

use faer::{MatMut, MatRef};

use crate::layout::Shape;

/// A dense block of an array, row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct Block<T> {
    shape: Shape,
    data: Vec<T>,
}

impl<T> Block<T> {
    /// A block of `shape` from row-major data, or an error when `data` does not have
    /// `rows * cols` elements.
    pub fn new(shape: Shape, data: Vec<T>) -> Result<Self, dagger_core::Error> {
        if shape.rows.checked_mul(shape.cols) != Some(data.len()) {
            return Err(dagger_core::Error::InvalidUse(format!(
                "{} elements cannot make a block of {shape}",
                data.len()
            )));
        }
        Ok(Block { shape, data })
    }

    /// A block from row-major data (`data.len()` must be `rows * cols`).
    pub(crate) fn from_vec(shape: Shape, data: Vec<T>) -> Self {
        debug_assert_eq!(data.len(), shape.rows * shape.cols);
        Block { shape, data }
    }

    /// Its shape.
    pub fn shape(&self) -> Shape {
        self.shape
    }

    /// Its elements, row-major.
    pub fn as_slice(&self) -> &[T] {
        &self.data
    }

    /// Its elements, row-major, writable.
    pub fn as_mut_slice(&mut self) -> &mut [T] {
        &mut self.data
    }

    /// Element (i, j) of the block.
    pub fn at(&self, i: usize, j: usize) -> &T {
        &self.data[i * self.shape.cols + j]
    }

    /// A faer view.
    pub fn as_faer(&self) -> MatRef<'_, T> {
        MatRef::from_row_major_slice(&self.data, self.shape.rows, self.shape.cols)
    }

    /// A writable faer view.
    pub fn as_faer_mut(&mut self) -> MatMut<'_, T> {
        MatMut::from_row_major_slice_mut(&mut self.data, self.shape.rows, self.shape.cols)
    }
}

impl<T: Copy> Block<T> {
    /// A block of one value.
    pub(crate) fn filled(shape: Shape, value: T) -> Self {
        Block::from_vec(shape, vec![value; shape.rows * shape.cols])
    }

    /// The transposed block.
    pub(crate) fn transposed(&self) -> Self {
        let Shape { rows, cols } = self.shape;
        let mut data = Vec::with_capacity(rows * cols);
        for j in 0..cols {
            data.extend((0..rows).map(|i| self.data[i * cols + j]));
        }
        Block::from_vec(
            Shape {
                rows: cols,
                cols: rows,
            },
            data,
        )
    }
}
