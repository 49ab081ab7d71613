//! Where the elements of a blocked array live: its shape, its block shape, and the ragged
//! blocks at the right and bottom edges.

use dagger_core::Error;

/// Rows and columns. A 1-D array is one column.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Shape {
    /// Rows (the length, for 1-D).
    pub rows: usize,
    /// Columns (1 for 1-D).
    pub cols: usize,
}

impl From<usize> for Shape {
    fn from(len: usize) -> Self {
        Shape { rows: len, cols: 1 }
    }
}

impl From<(usize, usize)> for Shape {
    fn from((rows, cols): (usize, usize)) -> Self {
        Shape { rows, cols }
    }
}

impl std::fmt::Display for Shape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}x{}", self.rows, self.cols)
    }
}

/// An array's shape cut into blocks of `block` (the last block of each row and column of
/// blocks may be smaller).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    /// The whole array.
    pub shape: Shape,
    /// A full block.
    pub block: Shape,
    /// 1 or 2.
    pub ndim: u8,
}

impl Layout {
    /// Checks the block shape (no zero sides).
    pub fn new(shape: Shape, block: Shape, ndim: u8) -> Result<Self, Error> {
        if block.rows == 0 || block.cols == 0 {
            return Err(Error::InvalidUse(format!(
                "a block of {block} has no elements; give every side a block size of at least 1"
            )));
        }
        Ok(Layout { shape, block, ndim })
    }

    /// Blocks down and across.
    pub fn grid(&self) -> (usize, usize) {
        (
            self.shape.rows.div_ceil(self.block.rows),
            self.shape.cols.div_ceil(self.block.cols),
        )
    }

    /// The number of blocks.
    pub fn len(&self) -> usize {
        let (r, c) = self.grid();
        r * c
    }

    /// Whether there are no blocks (an empty array).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Block (bi, bj)'s first row and column and its shape.
    pub fn block_at(&self, bi: usize, bj: usize) -> (usize, usize, Shape) {
        let (r0, c0) = (bi * self.block.rows, bj * self.block.cols);
        let shape = Shape {
            rows: self.block.rows.min(self.shape.rows - r0),
            cols: self.block.cols.min(self.shape.cols - c0),
        };
        (r0, c0, shape)
    }

    /// The position in the block list of block (bi, bj) (blocks are in row-major order).
    pub fn index(&self, bi: usize, bj: usize) -> usize {
        bi * self.grid().1 + bj
    }

    /// Which block holds element (i, j), and where in it.
    pub fn locate(&self, i: usize, j: usize) -> Result<(usize, usize, usize, usize), Error> {
        if i >= self.shape.rows || j >= self.shape.cols {
            return Err(Error::InvalidUse(format!(
                "index ({i}, {j}) is outside an array of {}",
                self.shape
            )));
        }
        Ok((
            i / self.block.rows,
            j / self.block.cols,
            i % self.block.rows,
            j % self.block.cols,
        ))
    }

    /// The layout of the matrix product `self * right`, or why the two do not multiply
    /// (inner sizes or blocks that differ).
    pub(crate) fn product(&self, right: &Layout) -> Result<Layout, Error> {
        let (a, b) = (self, right);
        if a.shape.cols != b.shape.rows {
            return Err(Error::InvalidUse(format!(
                "matmul: a {} matrix cannot multiply a {} matrix (inner sizes {} and {} differ)",
                a.shape, b.shape, a.shape.cols, b.shape.rows
            )));
        }
        if a.block.cols != b.block.rows {
            return Err(Error::InvalidUse(format!(
                "matmul: the column blocks of the left matrix ({}) must match the row blocks of \
                 the right one ({}); re-block one of them",
                a.block.cols, b.block.rows
            )));
        }
        let shape = Shape {
            rows: a.shape.rows,
            cols: b.shape.cols,
        };
        let block = Shape {
            rows: a.block.rows,
            cols: b.block.cols,
        };
        Layout::new(shape, block, 2)
    }

    /// For block (bi, bj) of a product: block row `bi` of the left operand and block
    /// column `bj` of the right one (`self` is the left operand's layout).
    pub(crate) fn product_operands<X: Clone>(
        &self,
        left: &[X],
        right: (&Layout, &[X]),
        (bi, bj): (usize, usize),
    ) -> (Vec<X>, Vec<X>) {
        let inner = self.grid().1;
        let row = (0..inner)
            .map(|k| left[self.index(bi, k)].clone())
            .collect();
        let col = (0..inner)
            .map(|k| right.1[right.0.index(k, bj)].clone())
            .collect();
        (row, col)
    }

    /// Every block: (bi, bj).
    pub fn blocks(&self) -> impl Iterator<Item = (usize, usize)> {
        let (r, c) = self.grid();
        (0..r).flat_map(move |bi| (0..c).map(move |bj| (bi, bj)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ragged_edges_and_locations() {
        let layout = Layout::new((10, 7).into(), (4, 3).into(), 2).unwrap();
        assert_eq!(layout.grid(), (3, 3));
        assert_eq!(layout.block_at(2, 2), (8, 6, Shape { rows: 2, cols: 1 }));
        assert_eq!(layout.block_at(0, 1), (0, 3, Shape { rows: 4, cols: 3 }));
        assert_eq!(layout.locate(9, 6).unwrap(), (2, 2, 1, 0));
        assert!(layout.locate(10, 0).is_err());
        assert_eq!(layout.index(2, 1), 7);
        assert_eq!(layout.blocks().count(), 9);
        let total: usize = layout
            .blocks()
            .map(|(i, j)| {
                let s = layout.block_at(i, j).2;
                s.rows * s.cols
            })
            .sum();
        assert_eq!(total, 70, "blocks cover every element once");
    }

    #[test]
    fn a_zero_block_side_is_an_error() {
        let error = Layout::new((4, 4).into(), (0, 2).into(), 2).unwrap_err();
        assert!(error.to_string().contains("at least 1"), "{error}");
        let empty = Layout::new((0, 5).into(), (2, 2).into(), 2).unwrap();
        assert!(empty.is_empty());
    }
}
