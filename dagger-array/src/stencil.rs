//! A 2-D Jacobi sweep: each new block is computed from its old block and the edges of its
//! four neighbours, so every sweep is a wave of block tasks that depends only on the
//! neighbouring blocks of the sweep before.

use dagger_core::{spawn_with, Error};

use crate::block::Block;
use crate::darray::DArray;
use crate::element::Real;
use crate::kernels::{edge, jacobi_block, Side};

impl<T: Real> DArray<T> {
    /// `sweeps` Jacobi iterations of the 5-point Laplace stencil: every interior element
    /// becomes the mean of its four neighbours; the outer boundary stays fixed.
    pub fn jacobi(&self, sweeps: usize) -> Result<DArray<T>, Error> {
        if self.ndim() != 2 {
            return Err(Error::InvalidUse("jacobi needs a 2-D array".to_owned()));
        }
        let layout = self.layout;
        let (grid_rows, grid_cols) = layout.grid();
        let mut current = self.clone();
        for _ in 0..sweeps {
            let blocks = layout
                .blocks()
                .map(|(bi, bj)| {
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
                        let sides = [Side::Bottom, Side::Top, Side::Right, Side::Left];
                        let halo: Vec<Option<Block<T>>> = present
                            .iter()
                            .zip(sides)
                            .map(|(&p, side)| p.then(|| edge(next.next().expect("present"), side)))
                            .collect();
                        let halo = [0, 1, 2, 3].map(|k| halo[k].as_ref());
                        jacobi_block(&layout, (bi, bj), blocks[0], halo)
                    })
                })
                .collect();
            current = DArray { layout, blocks };
        }
        Ok(current)
    }
}
