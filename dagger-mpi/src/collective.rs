//! Collectives over values that each rank has as a handle: `broadcast`, `gather`,
//! `all_gather`, `all_reduce`. They return handles at once, so tasks can depend on them;
//! the messages are the same point-to-point transfers as everything else, in binomial
//! trees, numbered in program order.

use std::sync::Arc;

use dagger_core::{Error, Handle};

use crate::cluster::Cluster;
use crate::dist::Dist;
use crate::transfer::Transfer;

impl Cluster {
    /// `value` (given on `root`, ignored elsewhere) on every rank. A root without a
    /// value fails the result on every rank.
    #[track_caller]
    pub fn broadcast<T: Transfer>(
        &self,
        root: usize,
        value: Option<&Handle<T>>,
    ) -> Result<Handle<T>, Error> {
        self.check_rank(root, "broadcast")?;
        self.operation(format_args!(
            "broadcast<{}> from {root}",
            std::any::type_name::<T>()
        ))?;
        // Without a value the root still takes part, with a failure in its place: every
        // rank then fails the same way instead of waiting for a value that never comes.
        let local = (self.rank() == root).then(|| match value {
            Some(value) => value.clone(),
            None => dagger_core::try_spawn_with((), move || {
                Err::<T, _>(Error::InvalidUse(format!(
                    "broadcast: the root (rank {root}) gave no value"
                )))
            }),
        });
        let dist = Dist::new(self, root, local);
        dist.replicate_in_order();
        Ok(dist.local().expect("every rank holds it"))
    }

    /// Every rank's `local`, in rank order, on `root` (`None` on the other ranks).
    #[track_caller]
    pub fn gather<T: Transfer + Clone>(
        &self,
        root: usize,
        local: &Handle<T>,
    ) -> Result<Option<Handle<Vec<T>>>, Error> {
        self.check_rank(root, "gather")?;
        self.operation(format_args!(
            "gather<{}> to {root}",
            std::any::type_name::<T>()
        ))?;
        let parts: Vec<Option<Handle<T>>> = (0..self.size())
            .map(|owner| self.contribution(owner, local).bring_to(root))
            .collect();
        Ok(collect_parts(parts))
    }

    /// Every rank's `local`, in rank order, on every rank.
    #[track_caller]
    pub fn all_gather<T: Transfer + Clone>(
        &self,
        local: &Handle<T>,
    ) -> Result<Handle<Vec<T>>, Error> {
        self.operation(format_args!("all_gather<{}>", std::any::type_name::<T>()))?;
        let parts: Vec<Option<Handle<T>>> = (0..self.size())
            .map(|owner| {
                let part = self.contribution(owner, local);
                part.replicate_in_order();
                part.local()
            })
            .collect();
        Ok(collect_parts(parts).expect("every rank holds every part"))
    }

    /// `op` over every rank's `local` (combined in a binomial tree towards rank 0, so
    /// `op` must be associative), on every rank.
    #[track_caller]
    pub fn all_reduce<T, F>(&self, local: &Handle<T>, op: F) -> Result<Handle<T>, Error>
    where
        T: Transfer,
        F: Fn(&T, &T) -> T + Send + Sync + 'static,
    {
        self.operation(format_args!("all_reduce<{}>", std::any::type_name::<T>()))?;
        Ok(self.all_reduce_in_order(local, op))
    }

    /// `all_reduce` inside an operation already counted.
    pub(crate) fn all_reduce_in_order<T, F>(&self, local: &Handle<T>, op: F) -> Handle<T>
    where
        T: Transfer,
        F: Fn(&T, &T) -> T + Send + Sync + 'static,
    {
        let op = Arc::new(op);
        let mut partial: Vec<Dist<T>> = (0..self.size())
            .map(|owner| self.contribution(owner, local))
            .collect();
        let mut step = 1;
        while step < self.size() {
            for low in (0..self.size()).step_by(2 * step) {
                let high = low + step;
                if high >= self.size() {
                    continue;
                }
                let op = op.clone();
                let (a, b) = (partial[low].clone(), partial[high].clone());
                partial[low] = self.spawn_in_order(low, (&a, &b), move |a: &T, b: &T| op(a, b));
            }
            step *= 2;
        }
        let total = partial.swap_remove(0);
        total.replicate_in_order();
        total.local().expect("every rank holds it")
    }
}

fn collect_parts<T: Transfer + Clone>(parts: Vec<Option<Handle<T>>>) -> Option<Handle<Vec<T>>> {
    let parts: Option<Vec<Handle<T>>> = parts.into_iter().collect();
    parts.map(|parts| {
        dagger_core::spawn_with(&parts, |values: Vec<&T>| {
            values.into_iter().cloned().collect()
        })
    })
}
