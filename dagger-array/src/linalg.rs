//! Tiled linear algebra: transpose, matrix multiply, Cholesky and a triangular solve.
//! Block kernels come from faer, run sequentially inside each task (the parallelism is
//! the graph's). Cholesky and the solve are written with a data-dependency region.

use dagger_core::{datadeps, spawn, spawn_with, Error, Handle};

use crate::block::Block;
use crate::darray::DArray;
use crate::element::{Element, Real};
use crate::kernels::{
    cholesky_diagonal, multiply_sum, solve_diagonal, solve_panel, subtract_product,
    subtract_product_transposed,
};
use crate::layout::{Layout, Shape};

/// Cholesky found a pivot that is not positive: the matrix is not positive definite.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NotPositiveDefinite {
    /// The row (and column) of the pivot, in the whole matrix.
    pub row: usize,
}

impl std::fmt::Display for NotPositiveDefinite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the matrix is not positive definite: the pivot of row {} is not positive",
            self.row
        )
    }
}

impl std::error::Error for NotPositiveDefinite {}

/// A handle whose value is already known.
fn ready<T: Element>(block: Block<T>) -> Handle<Block<T>> {
    spawn(move || block)
}

impl<T: Element> DArray<T> {
    /// The transpose (a task per block).
    pub fn transpose(&self) -> DArray<T> {
        let Layout { shape, block, .. } = self.layout;
        let layout = Layout {
            shape: Shape {
                rows: shape.cols,
                cols: shape.rows,
            },
            block: Shape {
                rows: block.cols,
                cols: block.rows,
            },
            ndim: 2,
        };
        let blocks = layout
            .blocks()
            .map(|(bi, bj)| {
                let source = &self.blocks[self.layout.index(bj, bi)];
                spawn_with(source, |b: &Block<T>| b.transposed())
            })
            .collect();
        DArray { layout, blocks }
    }
}

impl<T: Real> DArray<T> {
    /// The matrix product `self * other`: one task per result block, each summing the
    /// products of a block row of `self` and a block column of `other` with faer.
    /// `self`'s column blocks must match `other`'s row blocks.
    pub fn matmul(&self, other: &DArray<T>) -> Result<DArray<T>, Error> {
        let layout = self.layout.product(&other.layout)?;
        let blocks = layout
            .blocks()
            .map(|(bi, bj)| {
                let (row, col) = self.layout.product_operands(
                    &self.blocks,
                    (&other.layout, &other.blocks),
                    (bi, bj),
                );
                let shape = layout.block_at(bi, bj).2;
                spawn_with(
                    (&row, &col),
                    move |row: Vec<&Block<T>>, col: Vec<&Block<T>>| multiply_sum(shape, &row, &col),
                )
            })
            .collect();
        Ok(DArray { layout, blocks })
    }

    fn square_blocks(&self, what: &str) -> Result<usize, Error> {
        let Layout { shape, block, .. } = self.layout;
        if shape.rows != shape.cols {
            return Err(Error::InvalidUse(format!(
                "{what} needs a square matrix, not {shape}"
            )));
        }
        if block.rows != block.cols {
            return Err(Error::InvalidUse(format!(
                "{what} needs square blocks, not {block}; re-block the matrix"
            )));
        }
        Ok(self.layout.grid().0)
    }

    /// Waits for the blocks and copies them out (row-major block order).
    fn tiles(&self) -> Result<Vec<Block<T>>, Error> {
        self.blocks.iter().map(|h| h.fetch_ref().cloned()).collect()
    }

    /// The Cholesky factor `L` (lower triangular, `self = L Lᵀ`) of a symmetric positive
    /// definite matrix, tiled: for each diagonal block a factorization, triangular solves
    /// below it, and updates of the trailing blocks, ordered by a data-dependency region.
    /// Only the lower triangle of `self` is read. A matrix that is not positive definite
    /// is an error whose source is [`NotPositiveDefinite`].
    pub fn cholesky(&self) -> Result<DArray<T>, Error> {
        let n = self.square_blocks("cholesky")?;
        let layout = self.layout;
        // Copy the lower blocks in parallel (tasks), then own them.
        let copies: Vec<Option<Handle<Block<T>>>> = layout
            .blocks()
            .map(|(i, j)| {
                (j <= i).then(|| spawn_with(&self.blocks[layout.index(i, j)], Block::clone))
            })
            .collect();
        let mut tiles: Vec<Option<Block<T>>> = copies
            .into_iter()
            .map(|copy| copy.map(Handle::fetch).transpose())
            .collect::<Result<_, _>>()?;
        datadeps(|r| {
            let tile: Vec<_> = tiles
                .iter_mut()
                .map(|t| t.as_mut().map(|t| r.data(t)))
                .collect();
            let at = |i: usize, j: usize| tile[layout.index(i, j)].expect("a lower block");
            for k in 0..n {
                let first_row = k * layout.block.rows;
                r.try_spawn(at(k, k).write(), move |akk: &mut Block<T>| {
                    cholesky_diagonal(akk, first_row)
                });
                for i in k + 1..n {
                    r.spawn((at(k, k).read(), at(i, k).write()), solve_panel::<T>);
                }
                for i in k + 1..n {
                    for j in k + 1..=i {
                        let update = subtract_product_transposed::<T>;
                        if i == j {
                            r.spawn(
                                (at(i, k).read(), at(i, i).write()),
                                move |x: &Block<T>, a: &mut Block<T>| update(x, x, a),
                            );
                        } else {
                            r.spawn((at(i, k).read(), at(j, k).read(), at(i, j).write()), update);
                        }
                    }
                }
            }
        })?;
        // L is the lower triangle; the blocks above it are zeros.
        let zero = T::from_f64(0.0);
        let blocks = layout
            .blocks()
            .zip(tiles)
            .map(|((i, j), tile)| match tile {
                Some(tile) => ready(tile),
                None => {
                    let shape = layout.block_at(i, j).2;
                    spawn(move || Block::filled(shape, zero))
                }
            })
            .collect();
        Ok(DArray { layout, blocks })
    }

    /// Solves `L X = B` for `X`, where `self` is lower triangular (`L`, as from
    /// [`cholesky`](DArray::cholesky)) and `b` has as many rows, in the same row blocks.
    /// Tiled forward substitution in a data-dependency region.
    pub fn solve_lower_triangular(&self, b: &DArray<T>) -> Result<DArray<T>, Error> {
        self.triangular_solve(b, false)
    }

    /// Solves `Lᵀ X = B` for `X`, where `self` is lower triangular: tiled backward
    /// substitution. With [`solve_lower_triangular`](DArray::solve_lower_triangular), this
    /// solves `A X = B` from the Cholesky factor of `A` ([`cholesky_solve`](DArray::cholesky_solve)).
    pub fn solve_lower_transposed(&self, b: &DArray<T>) -> Result<DArray<T>, Error> {
        self.triangular_solve(b, true)
    }

    /// Solves `A X = B` given `self = L`, the Cholesky factor of `A`: `L Y = B`, then
    /// `Lᵀ X = Y`, both tiled.
    pub fn cholesky_solve(&self, b: &DArray<T>) -> Result<DArray<T>, Error> {
        let y = self.solve_lower_triangular(b)?;
        self.solve_lower_transposed(&y)
    }

    fn triangular_solve(&self, b: &DArray<T>, transposed: bool) -> Result<DArray<T>, Error> {
        let what = if transposed {
            "solve_lower_transposed"
        } else {
            "solve_lower_triangular"
        };
        let n = self.square_blocks(what)?;
        let (l, bl) = (self.layout, b.layout);
        if bl.shape.rows != l.shape.rows || bl.block.rows != l.block.rows {
            return Err(Error::InvalidUse(format!(
                "{what}: the right-hand side ({} in blocks of {}) must have {} rows in blocks \
                 of {} rows, like the matrix",
                bl.shape, bl.block, l.shape.rows, l.block.rows
            )));
        }
        let l_tiles = self.tiles()?;
        for d in 0..n {
            let t = &l_tiles[l.index(d, d)];
            let size = t.shape().rows;
            if let Some(p) = (0..size).find(|&p| *t.at(p, p) == T::from_f64(0.0)) {
                return Err(Error::InvalidUse(format!(
                    "{what}: the matrix is singular (zero at diagonal {})",
                    d * l.block.rows + p
                )));
            }
        }
        let mut x_tiles = b.tiles()?;
        let cols = bl.grid().1;
        let l_tiles = &l_tiles;
        datadeps(|r| {
            let x: Vec<_> = x_tiles.iter_mut().map(|t| r.data(t)).collect();
            // Forward: rows 0..n, each after the ones above. Backward (Lᵀ): the reverse,
            // with Lᵀ's block (i, k) being L's block (k, i) transposed.
            let order: Vec<usize> = if transposed {
                (0..n).rev().collect()
            } else {
                (0..n).collect()
            };
            for (step, &i) in order.iter().enumerate() {
                for j in 0..cols {
                    for &k in &order[..step] {
                        let lik = if transposed {
                            &l_tiles[l.index(k, i)]
                        } else {
                            &l_tiles[l.index(i, k)]
                        };
                        r.spawn(
                            (x[bl.index(k, j)].read(), x[bl.index(i, j)].write()),
                            move |xk: &Block<T>, xi: &mut Block<T>| {
                                subtract_product(lik, transposed, xk, xi)
                            },
                        );
                    }
                    let lii = &l_tiles[l.index(i, i)];
                    r.spawn(x[bl.index(i, j)].write(), move |xi: &mut Block<T>| {
                        solve_diagonal(lii, transposed, xi)
                    });
                }
            }
        })?;
        Ok(DArray {
            layout: bl,
            blocks: x_tiles.into_iter().map(ready).collect(),
        })
    }
}
