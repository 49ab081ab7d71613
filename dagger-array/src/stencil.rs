//! A 2-D Jacobi sweep: each new block is computed from its old block and the edges of its
//! four neighbours, so every sweep is a wave of block tasks that depends only on the
//! neighbouring blocks of the sweep before.

use dagger_core::{spawn_with, Error};

use crate::block::Block;
use crate::darray::DArray;
use crate::element::Real;

impl<T: Real> DArray<T> {
    /// `sweeps` Jacobi iterations of the 5-point Laplace stencil: every interior element
    /// becomes the mean of its four neighbours; the outer boundary stays fixed.
    pub fn jacobi(&self, sweeps: usize) -> Result<DArray<T>, Error> {
        if self.ndim() != 2 {
            return Err(Error::InvalidUse("jacobi needs a 2-D array".to_owned()));
        }
        let layout = self.layout;
        let (grid_rows, grid_cols) = layout.grid();
        let (rows, cols) = (layout.shape.rows, layout.shape.cols);
        let quarter = T::from_f64(0.25);
        let mut current = self.clone();
        for _ in 0..sweeps {
            let blocks = layout
                .blocks()
                .map(|(bi, bj)| {
                    let (r0, c0, _) = layout.block_at(bi, bj);
                    let at = |i: usize, j: usize| current.blocks[layout.index(i, j)].clone();
                    // Centre, then up, down, left, right where they exist.
                    let mut inputs = vec![at(bi, bj)];
                    let neighbours = [
                        (bi > 0).then(|| (bi - 1, bj)),
                        (bi + 1 < grid_rows).then(|| (bi + 1, bj)),
                        (bj > 0).then(|| (bi, bj - 1)),
                        (bj + 1 < grid_cols).then(|| (bi, bj + 1)),
                    ];
                    let present = neighbours.map(|n| n.is_some());
                    inputs.extend(neighbours.iter().flatten().map(|&(i, j)| at(i, j)));
                    spawn_with(&inputs, move |blocks: Vec<&Block<T>>| {
                        let mut next = blocks.iter().skip(1);
                        let [up, down, left, right] =
                            present.map(|p| if p { next.next().copied() } else { None });
                        let centre = blocks[0];
                        let shape = centre.shape();
                        let value = |i: isize, j: isize| -> T {
                            let (h, w) = (shape.rows as isize, shape.cols as isize);
                            match (i, j) {
                                (-1, j) => *up
                                    .expect("interior")
                                    .at(up.unwrap().shape().rows - 1, j as usize),
                                (i, j) if i == h => *down.expect("interior").at(0, j as usize),
                                (i, -1) => *left
                                    .expect("interior")
                                    .at(i as usize, left.unwrap().shape().cols - 1),
                                (i, j) if j == w => *right.expect("interior").at(i as usize, 0),
                                (i, j) => *centre.at(i as usize, j as usize),
                            }
                        };
                        let mut data = Vec::with_capacity(shape.rows * shape.cols);
                        for i in 0..shape.rows {
                            for j in 0..shape.cols {
                                let (gi, gj) = (r0 + i, c0 + j);
                                let boundary =
                                    gi == 0 || gj == 0 || gi + 1 == rows || gj + 1 == cols;
                                data.push(if boundary {
                                    *centre.at(i, j)
                                } else {
                                    let (i, j) = (i as isize, j as isize);
                                    quarter
                                        * (value(i - 1, j)
                                            + value(i + 1, j)
                                            + value(i, j - 1)
                                            + value(i, j + 1))
                                });
                            }
                        }
                        Block::from_vec(shape, data)
                    })
                })
                .collect();
            current = DArray { layout, blocks };
        }
        Ok(current)
    }
}
