//! Tasks placed on a rank: `spawn_on` and `spawn_on_with`. Inputs owned by other ranks
//! are copied to the task's rank first (once per rank: a copy is kept while its `Dist`
//! lives).

use dagger_core::{Error, Handle};

use crate::cluster::Cluster;
use crate::dist::Dist;
use crate::transfer::Transfer;

/// The inputs of [`Cluster::spawn_on_with`]: a tuple of up to four `&Dist`s; the task
/// receives a reference to each value.
pub trait DistInputs<F, T> {
    /// Brings every input to `rank` and, on that rank, spawns `f` on them.
    #[doc(hidden)]
    fn spawn_at(self, cluster: &Cluster, rank: usize, f: F) -> Option<Handle<T>>;
    /// An error when an input belongs to another cluster.
    #[doc(hidden)]
    fn check_cluster(&self, cluster: &Cluster) -> Result<(), Error>;
}

macro_rules! inputs {
    ($($name:ident $value:ident $index:tt),*) => {
        impl<'d, $($name: Transfer,)* F, T> DistInputs<F, T> for ($(&'d Dist<$name>,)*)
        where
            F: FnOnce($(&$name),*) -> T + Send + 'static,
            T: Send + Sync + 'static,
        {
            fn check_cluster(&self, cluster: &Cluster) -> Result<(), Error> {
                $(cluster.check_same(self.$index.cluster(), "spawn_on_with")?;)*
                Ok(())
            }

            fn spawn_at(self, _cluster: &Cluster, rank: usize, f: F) -> Option<Handle<T>> {
                // Every rank brings every input, in order, whether or not it runs the task.
                $(let $value = self.$index.bring_to(rank);)*
                let ($(Some($value),)*) = ($($value,)*) else { return None };
                Some(dagger_core::spawn_with(($(&$value,)*), move |$($value: &$name),*| f($($value),*)))
            }
        }
    };
}

inputs!(A a 0);
inputs!(A a 0, B b 1);
inputs!(A a 0, B b 1, C c 2);
inputs!(A a 0, B b 1, C c 2, D d 3);

impl Cluster {
    /// Runs `f` on `rank` and returns its value as a [`Dist`] that any rank can use.
    /// A distributed operation: every rank calls it, in the same order (only `rank`
    /// runs `f`).
    ///
    /// ```
    /// let cluster = dagger_mpi::init()?;
    /// let answer = cluster.spawn_on(cluster.size() - 1, || 6u64 * 7)?;
    /// let doubled = cluster.spawn_on_with(0, (&answer,), |a: &u64| a * 2)?;
    /// assert_eq!(doubled.fetch()?, 84);
    /// # Ok::<(), dagger_core::Error>(())
    /// ```
    #[track_caller]
    pub fn spawn_on<T, F>(&self, rank: usize, f: F) -> Result<Dist<T>, Error>
    where
        T: Transfer,
        F: FnOnce() -> T + Send + 'static,
    {
        self.check_rank(rank, "spawn_on")?;
        self.operation(format_args!(
            "spawn_on({rank})<{}>",
            std::any::type_name::<T>()
        ))?;
        let local = (self.rank() == rank).then(|| dagger_core::spawn(f));
        Ok(Dist::new(self, rank, local))
    }

    /// Runs `f` on `rank` with the values of `inputs` (a tuple of `&Dist`s), which are
    /// copied there first from the ranks that hold them. A distributed operation.
    #[track_caller]
    pub fn spawn_on_with<I, F, T>(&self, rank: usize, inputs: I, f: F) -> Result<Dist<T>, Error>
    where
        I: DistInputs<F, T>,
        T: Transfer,
    {
        self.check_rank(rank, "spawn_on_with")?;
        inputs.check_cluster(self)?;
        self.operation(format_args!(
            "spawn_on_with({rank})<{}>",
            std::any::type_name::<T>()
        ))?;
        Ok(self.spawn_in_order(rank, inputs, f))
    }

    /// `spawn_on_with` inside an operation already counted.
    pub(crate) fn spawn_in_order<I, F, T>(&self, rank: usize, inputs: I, f: F) -> Dist<T>
    where
        I: DistInputs<F, T>,
        T: Transfer,
    {
        let local = inputs.spawn_at(self, rank, f);
        Dist::new(self, rank, local)
    }

    /// A value this rank already has (or computes) as a [`Dist`] owned by this rank,
    /// seen by the others as owned by `rank`: every rank calls it with its own
    /// `local`, and gets one `Dist` per call. A distributed operation.
    pub(crate) fn contribution<T: Transfer>(&self, owner: usize, local: &Handle<T>) -> Dist<T> {
        Dist::new(self, owner, (self.rank() == owner).then(|| local.clone()))
    }
}
