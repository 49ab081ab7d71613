//! Distributed regions: Dagger's Datadeps across ranks. A [`DistData`] is an object with
//! a home rank; tasks declare how they access objects (`read`, `write`) and run on the
//! home of the first object they write ("owner computes"), or where `spawn_on` says.
//! The runtime sends each object a task reads to the task's rank and orders the accesses
//! as the program issued them: a reader sees the last write before it, a write makes the
//! object's next version on the task's rank (which becomes its home).
//!
//! Versions are values: a write takes the previous version by value when nothing else
//! refers to it (it waits for this rank's readers of that version first, so usually
//! nothing does) and clones it otherwise, so a reader on any rank always sees the version
//! it was ordered after, and no two tasks ever share a mutable value.

use std::sync::{Arc, Mutex, MutexGuard};

use dagger_core::{Error, Handle, Promise};

use crate::cluster::Cluster;
use crate::dist::Dist;
use crate::transfer::Transfer;

/// An object of a distributed region: its current version lives on its home rank, and
/// copies go where tasks read it. Cloning is cheap (the same object).
pub struct DistData<T> {
    inner: Arc<DataInner<T>>,
}

struct DataInner<T> {
    cluster: Cluster,
    /// The number of the operation that made it: the same object on every rank.
    serial: u64,
    state: Mutex<DataState<T>>,
}

struct DataState<T> {
    current: Dist<T>,
    /// This rank's tasks that read the current version, settled when they end however
    /// they end (a write waits for them, and does not take on their failure).
    readers: Vec<Handle<()>>,
}

impl<T> Clone for DistData<T> {
    fn clone(&self) -> Self {
        DistData {
            inner: self.inner.clone(),
        }
    }
}

impl<T> std::fmt::Debug for DistData<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DistData").finish_non_exhaustive()
    }
}

impl<T: Transfer + Clone> DistData<T> {
    fn state(&self) -> MutexGuard<'_, DataState<T>> {
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The rank that holds the current version (where the last write ran).
    pub fn home(&self) -> usize {
        self.state().current.owner()
    }

    /// A read access: the task gets `&T`.
    pub fn read(&self) -> DistRead<'_, T> {
        DistRead(self)
    }

    /// A write access: the task gets `&mut T` and makes the next version.
    pub fn write(&self) -> DistWrite<'_, T> {
        DistWrite(self)
    }

    /// The current version on every rank (it is copied to every rank). A distributed
    /// operation.
    #[track_caller]
    pub fn fetch(&self) -> Result<T, Error> {
        let current = self.state().current.clone();
        current.fetch()
    }

    /// The current version on `rank` (`None` on the others). A distributed operation.
    #[track_caller]
    pub fn fetch_on(&self, rank: usize) -> Result<Option<T>, Error> {
        let current = self.state().current.clone();
        current.fetch_on(rank)
    }

    fn key(&self) -> usize {
        Arc::as_ptr(&self.inner) as *const () as usize
    }
}

/// Reads a [`DistData`]: the task receives `&T`.
pub struct DistRead<'d, T>(&'d DistData<T>);
/// Writes a [`DistData`]: the task receives `&mut T`.
pub struct DistWrite<'d, T>(&'d DistData<T>);

/// One declared access of a region task.
pub trait DistAccess: Send {
    /// What the task receives.
    type Arg<'a>;
    #[doc(hidden)]
    type Prepared: Send + 'static;
    #[doc(hidden)]
    fn describe(&self) -> Described<'_>;
    /// On every rank, in program order: makes the object's current version reach `rank`
    /// and, for a write, makes the next version there. On `rank`, returns what the task
    /// holds, with the tasks it must wait for added to `after`.
    #[doc(hidden)]
    fn prepare(&self, rank: usize, after: &mut Vec<Handle<()>>) -> Option<Self::Prepared>;
    /// On `rank`, once the task is spawned.
    #[doc(hidden)]
    fn spawned(&self, task: &Handle<()>);
    /// In the task: takes the value (a write's previous version).
    #[doc(hidden)]
    fn load(prepared: &mut Self::Prepared);
    #[doc(hidden)]
    fn arg(prepared: &mut Self::Prepared) -> Self::Arg<'_>;
    /// In the task: publishes a write's new version, or fails it with `failure`.
    #[doc(hidden)]
    fn finish(prepared: Self::Prepared, failure: Option<&str>);
}

/// What the checks and the SPMD record need to know of an access.
#[doc(hidden)]
pub struct Described<'a> {
    key: usize,
    serial: u64,
    writes: bool,
    home: usize,
    cluster: &'a Cluster,
    type_name: &'static str,
}

impl<T: Transfer + Clone> DistData<T> {
    fn described(&self, writes: bool) -> Described<'_> {
        Described {
            key: self.key(),
            serial: self.inner.serial,
            writes,
            home: self.home(),
            cluster: &self.inner.cluster,
            type_name: std::any::type_name::<T>(),
        }
    }
}

/// A marker task that finishes when `value` is ready (the main task waits for it).
fn ready_marker<T: Send + Sync + 'static>(value: &Handle<T>) -> Handle<()> {
    dagger_core::spawn_with(value, |_: &T| ())
}

impl<T: Transfer + Clone> DistAccess for DistRead<'_, T> {
    type Arg<'a> = &'a T;
    type Prepared = Handle<T>;

    fn describe(&self) -> Described<'_> {
        self.0.described(false)
    }

    fn prepare(&self, rank: usize, after: &mut Vec<Handle<()>>) -> Option<Handle<T>> {
        let current = self.0.state().current.clone();
        let local = current.bring_to(rank)?;
        after.push(ready_marker(&local));
        Some(local)
    }

    fn spawned(&self, task: &Handle<()>) {
        self.0.state().readers.push(task.clone());
    }

    fn load(_prepared: &mut Handle<T>) {}

    fn arg(prepared: &mut Handle<T>) -> &T {
        prepared
            .fetch_ref()
            .expect("the task runs after its inputs succeeded")
    }

    fn finish(_prepared: Handle<T>, _failure: Option<&str>) {}
}

/// What a write holds on its task's rank.
pub struct Written<T: Send + Sync + 'static> {
    previous: Option<Handle<T>>,
    value: Option<T>,
    next: Promise<T>,
}

impl<T: Transfer + Clone> DistAccess for DistWrite<'_, T> {
    type Arg<'a> = &'a mut T;
    type Prepared = Written<T>;

    fn describe(&self) -> Described<'_> {
        self.0.described(true)
    }

    fn prepare(&self, rank: usize, after: &mut Vec<Handle<()>>) -> Option<Written<T>> {
        let cluster = &self.0.inner.cluster;
        let mut state = self.0.state();
        let previous = state.current.bring_to(rank);
        let readers = std::mem::take(&mut state.readers);
        let (next, written) = match previous {
            Some(previous) => {
                after.push(ready_marker(&previous));
                after.extend(readers);
                let (next, promise) = dagger_core::promise::<T>();
                let written = Written {
                    previous: Some(previous),
                    value: None,
                    next: promise,
                };
                (Some(next), Some(written))
            }
            None => (None, None),
        };
        state.current = Dist::new(cluster, rank, next);
        written
    }

    fn spawned(&self, _task: &Handle<()>) {}

    fn load(prepared: &mut Written<T>) {
        // Moved out when this was the last reference to it, cloned otherwise.
        let previous = prepared.previous.take().expect("loaded once");
        prepared.value = Some(
            previous
                .fetch()
                .expect("the task runs after its inputs succeeded"),
        );
    }

    fn arg(prepared: &mut Written<T>) -> &mut T {
        prepared.value.as_mut().expect("loaded before the call")
    }

    fn finish(prepared: Written<T>, failure: Option<&str>) {
        let outcome = match (prepared.value, failure) {
            (Some(value), None) => Ok(value),
            (_, failure) => Err(Error::InvalidUse(format!(
                "the region task that writes this object failed: {}",
                failure.unwrap_or("it did not run")
            ))),
        };
        prepared.next.complete(outcome);
    }
}

/// The accesses of a region task: one access or a tuple of up to four; the task receives
/// `&T` for each read and `&mut T` for each write, in order.
pub trait DistAccesses<F>: Send {
    #[doc(hidden)]
    #[track_caller]
    fn spawn(self, region: &Cluster, rank: Option<usize>, f: F) -> Result<(), Error>;
}

macro_rules! tuple_accesses {
    ($($name:ident $value:ident $index:tt),*) => {
        impl<F, $($name: DistAccess),*> DistAccesses<F> for ($($name,)*)
        where
            F: for<'a> FnOnce($($name::Arg<'a>),*) + Send + 'static,
        {
            fn spawn(self, cluster: &Cluster, rank: Option<usize>, f: F) -> Result<(), Error> {
                let at = std::panic::Location::caller();
                let described = [$(self.$index.describe()),*];
                let rank = place(cluster, rank, &described)?;
                let mut after = Vec::new();
                $(let $value = self.$index.prepare(rank, &mut after);)*
                let ($(Some(mut $value),)*) = ($($value,)*) else { return Ok(()) };
                // Settled when the task ends, or when it will never run (its closure is
                // dropped): later writes wait for this, not for the task's success.
                let (settled, settle) = dagger_core::promise::<()>();
                let settle = Settle(Some(settle));
                let link = cluster.link();
                let link_for_finish = link.clone();
                let _ = dagger_core::spawn_with(&after, move |_: Vec<&()>| {
                    let _settle = settle;
                    $($name::load(&mut $value);)*
                    let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        f($($name::arg(&mut $value)),*)
                    }));
                    let failure = ran.as_ref().err().map(|panic| panic_text(&**panic));
                    // Noted before the written versions fail, so whoever sees those sees this.
                    if let Some(failure) = &failure {
                        link.note_failure(format!(
                            "the region task at {at} panicked on rank {rank}: {failure}"
                        ));
                    }
                    $($name::finish($value, failure.as_deref());)*
                    if let Err(panic) = ran {
                        std::panic::resume_unwind(panic);
                    }
                });
                $(self.$index.spawned(&settled);)*
                link_for_finish.track_region_task(settled);
                Ok(())
            }
        }
    };
}

tuple_accesses!(A a 0);
tuple_accesses!(A a 0, B b 1);
tuple_accesses!(A a 0, B b 1, C c 2);
tuple_accesses!(A a 0, B b 1, C c 2, D d 3);

impl<F, T: Transfer + Clone> DistAccesses<F> for DistRead<'_, T>
where
    F: for<'a> FnOnce(&'a T) + Send + 'static,
{
    fn spawn(self, cluster: &Cluster, rank: Option<usize>, f: F) -> Result<(), Error> {
        (self,).spawn(cluster, rank, f)
    }
}

impl<F, T: Transfer + Clone> DistAccesses<F> for DistWrite<'_, T>
where
    F: for<'a> FnOnce(&'a mut T) + Send + 'static,
{
    fn spawn(self, cluster: &Cluster, rank: Option<usize>, f: F) -> Result<(), Error> {
        (self,).spawn(cluster, rank, f)
    }
}

fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    crate::comm::panic_text(panic)
}

/// Completes its promise when dropped: with the task, or with its closure when the task
/// will never run.
struct Settle(Option<Promise<()>>);

impl Drop for Settle {
    fn drop(&mut self) {
        if let Some(promise) = self.0.take() {
            promise.complete(Ok(()));
        }
    }
}

/// Checks the accesses and picks the task's rank: `rank`, else the home of the first
/// object written, else of the first read. Records the operation.
#[track_caller]
fn place(
    cluster: &Cluster,
    rank: Option<usize>,
    described: &[Described<'_>],
) -> Result<usize, Error> {
    for access in described {
        cluster.check_same(access.cluster, "a region task")?;
    }
    for (i, access) in described.iter().enumerate() {
        if described[..i]
            .iter()
            .any(|other| other.key == access.key && (access.writes || other.writes))
        {
            return Err(Error::InvalidUse(format!(
                "a region task declares access {} to an object it already declared, with a \
                 write: declare each object once (a write includes reading it)",
                i + 1
            )));
        }
    }
    let rank = match rank {
        Some(rank) => rank,
        None => described
            .iter()
            .find(|access| access.writes)
            .or(described.first())
            .map_or(0, |access| access.home),
    };
    cluster.check_rank(rank, "a region task")?;
    cluster.operation(format_args!(
        "a region task on rank {rank} accessing {:?}",
        described
            .iter()
            .map(|access| {
                let how = if access.writes { "write" } else { "read" };
                (how, access.serial, access.home, access.type_name)
            })
            .collect::<Vec<_>>()
    ))?;
    Ok(rank)
}

impl Cluster {
    /// A region object whose first version `init` makes on `rank`. A distributed
    /// operation (only `rank` runs `init`).
    ///
    /// ```
    /// let cluster = dagger_mpi::init()?;
    /// let last = cluster.size() - 1;
    /// let a = cluster.data_on(0, || vec![1.0_f64; 4])?;
    /// let total = cluster.data_on(last, || 0.0_f64)?;
    /// cluster.spawn_accessing(a.write(), |a: &mut Vec<f64>| a.iter_mut().for_each(|x| *x *= 2.0))?;
    /// // On `total`'s home; `a` is sent there.
    /// cluster.spawn_accessing((a.read(), total.write()), |a: &Vec<f64>, t: &mut f64| {
    ///     *t = a.iter().sum()
    /// })?;
    /// assert_eq!(total.fetch()?, 8.0);
    /// # Ok::<(), dagger_core::Error>(())
    /// ```
    #[track_caller]
    pub fn data_on<T, F>(&self, rank: usize, init: F) -> Result<DistData<T>, Error>
    where
        T: Transfer + Clone,
        F: FnOnce() -> T + Send + 'static,
    {
        let current = self.spawn_on(rank, init)?;
        Ok(DistData {
            inner: Arc::new(DataInner {
                cluster: self.clone(),
                serial: self.operations_issued(),
                state: Mutex::new(DataState {
                    current,
                    readers: Vec::new(),
                }),
            }),
        })
    }

    /// The region tasks that failed (panicked) on this rank so far and not taken yet, taken
    /// now; [`finish`](Cluster::finish) waits for this rank's region tasks and reports
    /// those not taken. Not a distributed operation.
    pub fn region_failures(&self) -> Vec<String> {
        self.link().take_failures()
    }

    /// Spawns a region task with its declared accesses (one, or a tuple of up to four
    /// `data.read()` / `data.write()`), on the home of the first object it writes (of the
    /// first it reads when it writes none). A distributed operation: every rank calls it,
    /// only the task's rank runs `f`. The objects it reads are sent there first; the
    /// objects it writes get their next version there.
    #[track_caller]
    pub fn spawn_accessing<A, F>(&self, accesses: A, f: F) -> Result<(), Error>
    where
        A: DistAccesses<F>,
    {
        accesses.spawn(self, None, f)
    }

    /// [`spawn_accessing`](Cluster::spawn_accessing) on `rank`: the objects it writes
    /// move there (their next version lives there).
    #[track_caller]
    pub fn spawn_accessing_on<A, F>(&self, rank: usize, accesses: A, f: F) -> Result<(), Error>
    where
        A: DistAccesses<F>,
    {
        accesses.spawn(self, Some(rank), f)
    }
}
