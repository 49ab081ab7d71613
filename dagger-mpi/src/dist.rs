//! `Dist<T>`: one value of a distributed program. It is computed on its owner rank; every
//! rank knows which ranks hold a copy (the same bookkeeping runs on every rank, in program
//! order), so a rank that needs it gets it from a holder, once, without asking.

use std::sync::{Arc, Mutex};

use dagger_core::{Error, Handle};

use crate::cluster::Cluster;
use crate::transfer::Transfer;

/// A distributed value: computed on its owner rank, copied to the ranks that read it,
/// and kept there as long as the `Dist` lives. Cloning is cheap (the same value).
pub struct Dist<T> {
    pub(crate) inner: Arc<Inner<T>>,
}

pub(crate) struct Inner<T> {
    cluster: Cluster,
    owner: usize,
    state: Mutex<State<T>>,
}

struct State<T> {
    /// Which ranks hold the value (or will, once it arrives): the same on every rank.
    holders: Vec<bool>,
    /// This rank's copy, if it holds one.
    local: Option<Handle<T>>,
}

impl<T> Clone for Dist<T> {
    fn clone(&self) -> Self {
        Dist {
            inner: self.inner.clone(),
        }
    }
}

impl<T> std::fmt::Debug for Dist<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dist")
            .field("owner", &self.inner.owner)
            .finish_non_exhaustive()
    }
}

impl<T: Transfer> Dist<T> {
    /// A value owned by `owner`, whose task on that rank is `local` (`None` elsewhere).
    pub(crate) fn new(cluster: &Cluster, owner: usize, local: Option<Handle<T>>) -> Self {
        debug_assert_eq!(local.is_some(), cluster.rank() == owner);
        let mut holders = vec![false; cluster.size()];
        holders[owner] = true;
        Dist {
            inner: Arc::new(Inner {
                cluster: cluster.clone(),
                owner,
                state: Mutex::new(State { holders, local }),
            }),
        }
    }

    /// The rank that computes it.
    pub fn owner(&self) -> usize {
        self.inner.owner
    }

    /// Its cluster.
    pub fn cluster(&self) -> &Cluster {
        &self.inner.cluster
    }

    /// This rank's copy, if this rank holds one now (the owner always does).
    pub fn local(&self) -> Option<Handle<T>> {
        self.state().local.clone()
    }

    /// Whether `rank` holds a copy (or is getting one).
    pub fn is_on(&self, rank: usize) -> bool {
        self.state().holders.get(rank).copied().unwrap_or(false)
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State<T>> {
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Makes sure `rank` holds a copy: if it does not, a holder sends one (the owner
    /// when it can). A distributed operation: every rank calls it, in the same order.
    /// Returns this rank's copy when this rank is `rank`.
    pub(crate) fn bring_to(&self, rank: usize) -> Option<Handle<T>> {
        let from = {
            let state = self.state();
            if state.holders[self.inner.owner] {
                self.inner.owner
            } else {
                state
                    .holders
                    .iter()
                    .position(|&h| h)
                    .expect("someone holds it")
            }
        };
        self.copy(from, rank)
    }

    /// Copies it from holder `from` to `to`, unless `to` holds it already. A
    /// distributed operation. Returns this rank's copy when this rank is `to`.
    fn copy(&self, from: usize, to: usize) -> Option<Handle<T>> {
        let cluster = &self.inner.cluster;
        let mut state = self.state();
        debug_assert!(state.holders[from]);
        if !state.holders[to] {
            let id = cluster.next_transfer();
            state.holders[to] = true;
            if cluster.rank() == from {
                let value = state.local.as_ref().expect("a holder has its copy");
                cluster.send_when_ready(value, id, to);
            }
            if cluster.rank() == to {
                state.local = Some(cluster.receive(id, from));
            }
        }
        if cluster.rank() == to {
            state.local.clone()
        } else {
            None
        }
    }

    /// Copies it to every rank in a binomial tree (each rank that has it sends to one
    /// that does not, doubling the holders each round). A distributed operation.
    #[track_caller]
    pub fn replicate(&self) -> Result<(), Error> {
        self.inner.cluster.operation(format_args!(
            "replicate<{}> from {}",
            std::any::type_name::<T>(),
            self.inner.owner
        ))?;
        self.replicate_in_order();
        Ok(())
    }

    pub(crate) fn replicate_in_order(&self) {
        loop {
            let (holders, missing): (Vec<usize>, Vec<usize>) = {
                let state = self.state();
                (0..state.holders.len()).partition(|&r| state.holders[r])
            };
            if missing.is_empty() {
                return;
            }
            for (&from, &to) in holders.iter().zip(&missing) {
                self.copy(from, to);
            }
        }
    }

    /// Its value on every rank (the value is copied to every rank: a distributed
    /// operation that every rank calls).
    #[track_caller]
    pub fn fetch(&self) -> Result<T, Error>
    where
        T: Clone,
    {
        self.inner.cluster.operation(format_args!(
            "fetch<{}> from {}",
            std::any::type_name::<T>(),
            self.inner.owner
        ))?;
        self.replicate_in_order();
        let local = self.local().expect("every rank holds it after replicate");
        local.fetch()
    }

    /// Its value on `rank` (`None` on the others). A distributed operation.
    #[track_caller]
    pub fn fetch_on(&self, rank: usize) -> Result<Option<T>, Error>
    where
        T: Clone,
    {
        let cluster = &self.inner.cluster;
        cluster.check_rank(rank, "fetch_on")?;
        cluster.operation(format_args!(
            "fetch_on({rank})<{}> from {}",
            std::any::type_name::<T>(),
            self.inner.owner
        ))?;
        match self.bring_to(rank) {
            Some(local) => local.fetch().map(Some),
            None => Ok(None),
        }
    }
}
