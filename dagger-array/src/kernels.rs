//! The block kernels of the tiled algorithms, as functions of whole blocks (faer, run
//! sequentially inside one task), for other crates that schedule blocks their own way
//! (dagger-mpi's distributed arrays).

use faer::dyn_stack::{MemBuffer, MemStack};
use faer::linalg::cholesky::llt::factor::{
    cholesky_in_place, cholesky_in_place_scratch, LltError, LltRegularization,
};
use faer::linalg::matmul::matmul;
use faer::linalg::triangular_solve::{
    solve_lower_triangular_in_place, solve_upper_triangular_in_place,
};
use faer::{Accum, Par};

use crate::block::Block;
use crate::element::Real;
use crate::layout::{Layout, Shape};
use crate::linalg::NotPositiveDefinite;

/// `sum over k of row[k] * col[k]`, a block of `shape`.
pub fn multiply_sum<T: Real>(shape: Shape, row: &[&Block<T>], col: &[&Block<T>]) -> Block<T> {
    let mut c = Block::filled(shape, T::from_f64(0.0));
    for (x, y) in row.iter().zip(col) {
        matmul(
            c.as_faer_mut(),
            Accum::Add,
            x.as_faer(),
            y.as_faer(),
            T::from_f64(1.0),
            Par::Seq,
        );
    }
    c
}

/// Factors a diagonal block in place (`a = L Lᵀ`, `L` lower, upper triangle cleared).
/// `first_row` is the block's first row in the whole matrix, for the error. faer may use
/// the runtime's idle workers (the diagonal blocks are the critical path).
pub fn cholesky_diagonal<T: Real>(
    a: &mut Block<T>,
    first_row: usize,
) -> Result<(), NotPositiveDefinite> {
    let n = a.shape().rows;
    let par = Par::rayon(0);
    let mut memory = MemBuffer::new(cholesky_in_place_scratch::<T>(n, par, Default::default()));
    let stack = MemStack::new(&mut memory);
    match cholesky_in_place(
        a.as_faer_mut(),
        LltRegularization::default(),
        par,
        stack,
        Default::default(),
    ) {
        Ok(_) => {
            let zero = T::from_f64(0.0);
            for (p, x) in a.as_mut_slice().iter_mut().enumerate() {
                if p % n > p / n {
                    *x = zero;
                }
            }
            Ok(())
        }
        Err(LltError::NonPositivePivot { index }) => Err(NotPositiveDefinite {
            row: first_row + index,
        }),
    }
}

/// `a <- a L⁻ᵀ` (the panel below a factored diagonal block `l`).
pub fn solve_panel<T: Real>(l: &Block<T>, a: &mut Block<T>) {
    solve_lower_triangular_in_place(l.as_faer(), a.as_faer_mut().transpose_mut(), Par::Seq);
}

/// `a <- a - x yᵀ` (a trailing update).
pub fn subtract_product_transposed<T: Real>(x: &Block<T>, y: &Block<T>, a: &mut Block<T>) {
    matmul(
        a.as_faer_mut(),
        Accum::Add,
        x.as_faer(),
        y.as_faer().transpose(),
        T::from_f64(-1.0),
        Par::Seq,
    );
}

/// `x <- x - l y`, or `x <- x - lᵀ y` when `transposed`.
pub fn subtract_product<T: Real>(l: &Block<T>, transposed: bool, y: &Block<T>, x: &mut Block<T>) {
    let factor = if transposed {
        l.as_faer().transpose()
    } else {
        l.as_faer()
    };
    matmul(
        x.as_faer_mut(),
        Accum::Add,
        factor,
        y.as_faer(),
        T::from_f64(-1.0),
        Par::Seq,
    );
}

/// `x <- l⁻¹ x`, or `x <- l⁻ᵀ x` when `transposed` (`l` lower triangular).
pub fn solve_diagonal<T: Real>(l: &Block<T>, transposed: bool, x: &mut Block<T>) {
    if transposed {
        solve_upper_triangular_in_place(l.as_faer().transpose(), x.as_faer_mut(), Par::Seq);
    } else {
        solve_lower_triangular_in_place(l.as_faer(), x.as_faer_mut(), Par::Seq);
    }
}

/// The side of a block whose edge a neighbour needs: its last row (for the block below),
/// first row (above), last column (right) or first column (left).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// The first row.
    Top,
    /// The last row.
    Bottom,
    /// The first column.
    Left,
    /// The last column.
    Right,
}

/// One edge of a block, as a 1-row or 1-column block.
pub fn edge<T: Copy>(block: &Block<T>, side: Side) -> Block<T> {
    let Shape { rows, cols } = block.shape();
    let data: Vec<T> = match side {
        Side::Top => block.as_slice()[..cols].to_vec(),
        Side::Bottom => block.as_slice()[(rows - 1) * cols..].to_vec(),
        Side::Left => (0..rows).map(|i| *block.at(i, 0)).collect(),
        Side::Right => (0..rows).map(|i| *block.at(i, cols - 1)).collect(),
    };
    let shape = match side {
        Side::Top | Side::Bottom => Shape { rows: 1, cols },
        Side::Left | Side::Right => Shape { rows, cols: 1 },
    };
    Block::from_vec(shape, data)
}

/// One Jacobi sweep of block (bi, bj) of an array of `layout`: every interior element
/// becomes the mean of its four neighbours, the outer boundary stays. `halo` holds the
/// adjacent edges of the blocks above, below, left and right (the bottom row of the block
/// above, ...), where those blocks exist.
pub fn jacobi_block<T: Real>(
    layout: &Layout,
    (bi, bj): (usize, usize),
    centre: &Block<T>,
    halo: [Option<&Block<T>>; 4],
) -> Block<T> {
    let (r0, c0, shape) = layout.block_at(bi, bj);
    let (rows, cols) = (layout.shape.rows, layout.shape.cols);
    let [up, down, left, right] = halo;
    let (h, w) = (shape.rows as isize, shape.cols as isize);
    let value = |i: isize, j: isize| -> T {
        match (i, j) {
            (-1, j) => *up.expect("interior").at(0, j as usize),
            (i, j) if i == h => *down.expect("interior").at(0, j as usize),
            (i, -1) => *left.expect("interior").at(i as usize, 0),
            (i, j) if j == w => *right.expect("interior").at(i as usize, 0),
            (i, j) => *centre.at(i as usize, j as usize),
        }
    };
    let quarter = T::from_f64(0.25);
    let mut data = Vec::with_capacity(shape.rows * shape.cols);
    for i in 0..shape.rows {
        for j in 0..shape.cols {
            let (gi, gj) = (r0 + i, c0 + j);
            let boundary = gi == 0 || gj == 0 || gi + 1 == rows || gj + 1 == cols;
            data.push(if boundary {
                *centre.at(i, j)
            } else {
                let (i, j) = (i as isize, j as isize);
                quarter * (value(i - 1, j) + value(i + 1, j) + value(i, j - 1) + value(i, j + 1))
            });
        }
    }
    Block::from_vec(shape, data)
}
