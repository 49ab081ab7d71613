//! Element-wise operations: one task per block.

use std::sync::Arc;

use dagger_core::{spawn_with, Error};

use crate::block::Block;
use crate::darray::DArray;
use crate::element::{Element, Real};

impl<T: Element> DArray<T> {
    /// `f` of every element.
    pub fn map<U: Element>(&self, f: impl Fn(T) -> U + Send + Sync + 'static) -> DArray<U> {
        self.map_blocks(move |b| {
            Block::from_vec(b.shape(), b.as_slice().iter().map(|&x| f(x)).collect())
        })
    }

    /// `f` of the elements of `self` and `other` at the same place; the arrays must have
    /// the same shape and blocks.
    pub fn zip_map<U: Element, V: Element>(
        &self,
        other: &DArray<U>,
        f: impl Fn(T, U) -> V + Send + Sync + 'static,
    ) -> Result<DArray<V>, Error> {
        self.same_layout(other, "zip_map")?;
        let f = Arc::new(f);
        let blocks = self
            .blocks
            .iter()
            .zip(&other.blocks)
            .map(|(a, b)| {
                let f = f.clone();
                spawn_with((a, b), move |a: &Block<T>, b: &Block<U>| {
                    let data = a
                        .as_slice()
                        .iter()
                        .zip(b.as_slice())
                        .map(|(&x, &y)| f(x, y))
                        .collect();
                    Block::from_vec(a.shape(), data)
                })
            })
            .collect();
        Ok(DArray {
            layout: self.layout,
            blocks,
        })
    }
}

impl<T: Real> DArray<T> {
    /// Element-wise sum.
    pub fn plus(&self, other: &DArray<T>) -> Result<DArray<T>, Error> {
        self.zip_map(other, |a, b| a + b)
    }

    /// Element-wise difference.
    pub fn minus(&self, other: &DArray<T>) -> Result<DArray<T>, Error> {
        self.zip_map(other, |a, b| a - b)
    }

    /// Element-wise product.
    pub fn hadamard(&self, other: &DArray<T>) -> Result<DArray<T>, Error> {
        self.zip_map(other, |a, b| a * b)
    }

    /// Every element times `s`.
    pub fn scale(&self, s: T) -> DArray<T> {
        self.map(move |x| x * s)
    }

    /// Every element plus `s`.
    pub fn shift(&self, s: T) -> DArray<T> {
        self.map(move |x| x + s)
    }
}
