//! Reductions: each block is folded by a task, then partial results are combined in a
//! tree of tasks.

use std::sync::Arc;

use dagger_core::{spawn_with, Error, Handle};

use crate::block::Block;
use crate::darray::DArray;
use crate::element::{Element, Real};

impl<T: Element> DArray<T> {
    /// Maps every element, then combines the results with `reduce` (which must be
    /// associative; blocks are combined in a tree). `identity` is the result for an empty
    /// array and must be neutral for `reduce`.
    pub fn map_reduce<A: Element>(
        &self,
        map: impl Fn(T) -> A + Send + Sync + 'static,
        reduce: impl Fn(A, A) -> A + Send + Sync + 'static,
        identity: A,
    ) -> Result<A, Error> {
        let (map, reduce) = (Arc::new(map), Arc::new(reduce));
        let level: Vec<Handle<A>> = self
            .blocks
            .iter()
            .map(|h| {
                let (map, reduce) = (map.clone(), reduce.clone());
                spawn_with(h, move |b: &Block<T>| {
                    b.as_slice()
                        .iter()
                        .fold(identity, |acc, &x| reduce(acc, map(x)))
                })
            })
            .collect();
        match dagger_core::reduce_tree(level, move |a, b| reduce(a, b)) {
            Some(total) => total.fetch(),
            None => Ok(identity),
        }
    }
}

impl<T: Real> DArray<T> {
    /// The sum of the elements.
    pub fn sum(&self) -> Result<T, Error> {
        self.map_reduce(|x| x, |a, b| a + b, T::from_f64(0.0))
    }

    /// The product of the elements.
    pub fn product(&self) -> Result<T, Error> {
        self.map_reduce(|x| x, |a, b| a * b, T::from_f64(1.0))
    }

    /// The smallest element (NaNs are skipped); an error for an empty array.
    pub fn min(&self) -> Result<T, Error> {
        self.extreme("min", |a, b| if b < a { b } else { a })
    }

    /// The largest element (NaNs are skipped); an error for an empty array.
    pub fn max(&self) -> Result<T, Error> {
        self.extreme("max", |a, b| if b > a { b } else { a })
    }

    fn extreme(&self, what: &str, pick: fn(T, T) -> T) -> Result<T, Error> {
        if self.is_empty() {
            return Err(Error::InvalidUse(format!("{what} of an empty array")));
        }
        let best = self.map_reduce(
            Some,
            move |a: Option<T>, b: Option<T>| match (a, b) {
                (Some(a), Some(b)) if is_number(&a) && is_number(&b) => Some(pick(a, b)),
                (Some(a), Some(_)) if is_number(&a) => Some(a),
                (_, b) => b.or(a),
            },
            None,
        )?;
        Ok(best.expect("not empty"))
    }

    /// The mean of the elements; an error for an empty array.
    pub fn mean(&self) -> Result<T, Error> {
        if self.is_empty() {
            return Err(Error::InvalidUse("mean of an empty array".to_owned()));
        }
        let total = self.map_reduce(|x: T| x.to_f64(), |a, b| a + b, 0.0)?;
        Ok(T::from_f64(total / self.len() as f64))
    }
}

/// Not NaN.
fn is_number<T: PartialOrd>(x: &T) -> bool {
    x.partial_cmp(x).is_some()
}
