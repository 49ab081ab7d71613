//! Dynamic tasks (Dagger's `@spawn`): `spawn` returns a [`Handle`] at once; handles
//! passed to `spawn_with` become dependencies, and the task receives their values.
//! Tasks may spawn tasks; a task waiting for another runs other work meanwhile.

mod handle;
mod inputs;

use std::sync::Arc;

pub use crate::runtime::task::release_task_memory;
pub use crate::runtime::task::Header;
use crate::runtime::task::{
    complete_promise, failed, promised_runtime, skipped_because, Job, Promised, Task, TaskRef,
};
pub use handle::Handle;
pub use inputs::{AllByRef, AllByValue, ByRef, ByValue, Input, IntoInput};

use crate::error::{BoxError, Error};
use crate::runtime::lease::RuntimeRef;
use crate::runtime::{current_runtime, default_runtime, Runtime, Shared};
use crate::task::TaskInfo;

/// The runtime that `spawn` uses here: the one whose worker this thread is (inside a
/// task, a `dag!` node or `Runtime::install`), or else the default runtime.
pub(crate) fn current() -> Result<Arc<Shared>, Error> {
    match current_runtime() {
        Some(shared) => Ok(shared),
        None => Ok(default_runtime()?.shared().clone()),
    }
}

/// A task's reference to the runtime `spawn` uses here (see [`current`]).
fn current_ref() -> Result<RuntimeRef, Error> {
    match RuntimeRef::current() {
        Some(runtime) => Ok(runtime),
        None => Ok(RuntimeRef::of(default_runtime()?.shared())),
    }
}

/// Inputs of `spawn_with`: one [`IntoInput`] or a tuple of them.
pub trait IntoInputs {
    /// The inputs, owned.
    type Inputs: Send + 'static;
    /// Converts.
    fn into_inputs(self) -> Self::Inputs;
}

/// Calls `F` with the values of the inputs.
pub trait Apply<F, R>: Send + 'static {
    #[doc(hidden)]
    fn dependency_count(&self) -> usize;
    #[doc(hidden)]
    fn each_dependency(&self, each: &mut dyn FnMut(&Header));
    #[doc(hidden)]
    fn apply(self, f: F) -> R;
}

macro_rules! tuple_inputs {
    ($($name:ident)*) => {
        impl<$($name: IntoInput),*> IntoInputs for ($($name,)*) {
            type Inputs = ($($name::Input,)*);
            #[allow(non_snake_case, clippy::unused_unit)]
            fn into_inputs(self) -> Self::Inputs {
                let ($($name,)*) = self;
                ($($name.into_input(),)*)
            }
        }

        impl<F, R, $($name: Input),*> Apply<F, R> for ($($name,)*)
        where
            F: for<'a> FnOnce($($name::Value<'a>),*) -> R,
        {
            #[allow(non_snake_case, unused_variables)]
            fn dependency_count(&self) -> usize {
                let ($($name,)*) = self;
                0 $(+ $name.dependency_count())*
            }
            #[allow(non_snake_case, unused_variables)]
            fn each_dependency(&self, each: &mut dyn FnMut(&Header)) {
                let ($($name,)*) = self;
                $($name.each_dependency(each);)*
            }
            #[allow(non_snake_case)]
            fn apply(self, f: F) -> R {
                let ($(mut $name,)*) = self;
                f($($name.value()),*)
            }
        }
    };
}

tuple_inputs!();
tuple_inputs!(A);
tuple_inputs!(A B);
tuple_inputs!(A B C);
tuple_inputs!(A B C D);
tuple_inputs!(A B C D E);
tuple_inputs!(A B C D E G);
tuple_inputs!(A B C D E G H);
tuple_inputs!(A B C D E G H I);

macro_rules! single_input {
    ($($ty:ty => [$($gen:tt)*]),*) => {$(
        impl<$($gen)*> IntoInputs for $ty where $ty: IntoInput {
            type Inputs = (<$ty as IntoInput>::Input,);
            fn into_inputs(self) -> Self::Inputs {
                (self.into_input(),)
            }
        }
    )*};
}

single_input! {
    Handle<T> => [T: Clone + Send + Sync + 'static],
    &'h Handle<T> => ['h, T: Send + Sync + 'static],
    Vec<Handle<T>> => [T: Clone + Send + Sync + 'static],
    &'h [Handle<T>] => ['h, T: Send + Sync + 'static],
    &'h Vec<Handle<T>> => ['h, T: Send + Sync + 'static]
}

/// A closure with its inputs; `fallible` closures return `Result`.
struct Call<I, F> {
    inputs: I,
    f: F,
}

impl<I, F> Call<I, Infallible<F>> {
    fn infallible<Args: IntoInputs<Inputs = I>>(inputs: Args, f: F) -> Self {
        Call {
            inputs: inputs.into_inputs(),
            f: Infallible(f),
        }
    }
}

impl<I, F, E> Call<I, Fallible<F, E>> {
    fn fallible<Args: IntoInputs<Inputs = I>>(inputs: Args, f: F, info: TaskInfo) -> Self {
        Call {
            inputs: inputs.into_inputs(),
            f: Fallible::new(f, info),
        }
    }
}

struct Infallible<F>(F);
struct Fallible<F, E> {
    f: F,
    info: TaskInfo,
    error: std::marker::PhantomData<fn() -> E>,
}

impl<F, E> Fallible<F, E> {
    fn new(f: F, info: TaskInfo) -> Self {
        Fallible {
            f,
            info,
            error: std::marker::PhantomData,
        }
    }
}

impl<T, I, F> Job<T> for Call<I, Infallible<F>>
where
    I: Apply<F, T>,
    F: Send,
{
    fn run(self) -> Result<T, Error> {
        Ok(self.inputs.apply(self.f.0))
    }
    fn input_count(&self) -> usize {
        self.inputs.dependency_count()
    }
    fn inputs(&self, each: &mut dyn FnMut(&Header)) {
        self.inputs.each_dependency(each)
    }
}

impl<T, E, I, F> Job<T> for Call<I, Fallible<F, E>>
where
    I: Apply<F, Result<T, E>>,
    E: Into<BoxError>,
    F: Send,
{
    fn run(self) -> Result<T, Error> {
        let Fallible { f, info, .. } = self.f;
        self.inputs.apply(f).map_err(|e| Error::TaskFailed {
            task: info.name(),
            location: info.location(),
            source: Arc::from(e.into()),
        })
    }
    fn input_count(&self) -> usize {
        self.inputs.dependency_count()
    }
    fn inputs(&self, each: &mut dyn FnMut(&Header)) {
        self.inputs.each_dependency(each)
    }
}

/// The producing side of a [`Handle`] whose value comes from outside the runtime: a GPU
/// callback, an I/O thread, another event loop. Tasks may depend on the handle like on
/// any other; they run once the promise is completed. Dropping a promise without
/// completing it fails the handle, so no dependent waits forever; when a task that owned
/// it does not run because an input failed, the handle fails with that input's failure.
///
/// ```
/// let (handle, promise) = dagger_core::promise::<u32>();
/// let doubled = dagger_core::spawn_with(&handle, |v: &u32| v * 2);
/// std::thread::spawn(move || promise.complete(Ok(21)));
/// assert_eq!(doubled.fetch()?, 42);
/// # Ok::<(), dagger_core::Error>(())
/// ```
pub struct Promise<T: Send + Sync + 'static> {
    task: Option<TaskRef>,
    value: std::marker::PhantomData<T>,
}

impl<T: Send + Sync + 'static> Promise<T> {
    /// Stores the outcome and queues the tasks that were waiting for it. Returns `false`
    /// when the handle was cancelled first (the outcome is dropped).
    pub fn complete(mut self, outcome: Result<T, Error>) -> bool {
        // No task: the runtime could not be reached and the handle already failed.
        let Some(task) = self.task.take() else {
            return false;
        };
        complete_promise::<T>(task, outcome)
    }

    /// Like [`complete`](Promise::complete), but done by one of the runtime's workers, so
    /// that nothing (the value, finished tasks) is dropped on the calling thread. For
    /// callbacks that must not do more than queue work, such as a GPU progress thread.
    pub fn complete_on_worker(mut self, outcome: Result<T, Error>) {
        let Some(task) = self.task.take() else {
            return;
        };
        let shared = promised_runtime::<T>(&task);
        shared.pool.spawn(move || {
            complete_promise::<T>(task, outcome);
        });
    }
}

impl<T: Send + Sync + 'static> Drop for Promise<T> {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            // Dropped by a task that will not run because an input failed: same cause.
            let error = skipped_because().unwrap_or_else(|| {
                Error::InvalidUse(format!(
                    "the promise made at {} was dropped without a value",
                    task.header().info.location()
                ))
            });
            complete_promise::<T>(task, Err(error));
        }
    }
}

impl<T: Send + Sync + 'static> std::fmt::Debug for Promise<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Promise").finish_non_exhaustive()
    }
}

fn promise_on<T: Send + Sync + 'static>(
    runtime: Result<Arc<Shared>, Error>,
    location: &'static std::panic::Location<'static>,
) -> (Handle<T>, Promise<T>) {
    let info = TaskInfo {
        name: || "promise",
        spawned_at: location,
    };
    match runtime {
        Ok(shared) => {
            let (handle, promise) = Promised::<T>::create(shared, info);
            let promise = Promise {
                task: Some(promise),
                value: std::marker::PhantomData,
            };
            (Handle::of(handle), promise)
        }
        Err(error) => {
            let promise = Promise {
                task: None,
                value: std::marker::PhantomData,
            };
            (failed_handle(info, error.clone()), promise)
        }
    }
}

/// A handle and the [`Promise`] that completes it, on the current runtime.
#[track_caller]
pub fn promise<T: Send + Sync + 'static>() -> (Handle<T>, Promise<T>) {
    promise_on(current(), std::panic::Location::caller())
}

/// Waits for any task and returns its failure, if it failed.
pub(crate) fn wait_any(task: &TaskRef) -> Result<(), Error> {
    crate::runtime::wait::wait_for(task.header());
    match task.header().failure() {
        Some(error) => Err(error.clone()),
        None => Ok(()),
    }
}

/// Spawns a type-erased body that runs after `after` (for regions); an `Err` fails the
/// task and its dependents.
pub(crate) fn spawn_job<R: Send + Sync + 'static>(
    shared: &Arc<Shared>,
    info: TaskInfo,
    after: Vec<TaskRef>,
    body: Box<dyn FnOnce() -> Result<R, Error> + Send>,
) -> Handle<R> {
    struct After<R> {
        after: Vec<TaskRef>,
        body: Box<dyn FnOnce() -> Result<R, Error> + Send>,
    }
    impl<R> Job<R> for After<R> {
        fn run(self) -> Result<R, Error> {
            drop(self.after);
            (self.body)()
        }
        fn input_count(&self) -> usize {
            self.after.len()
        }
        fn inputs(&self, each: &mut dyn FnMut(&Header)) {
            self.after.iter().for_each(|t| each(t.header()))
        }
    }
    spawn_on(RuntimeRef::of(shared), info, After { after, body })
}

/// A handle that already failed (the runtime could not be reached, or bad input).
pub(crate) fn failed_handle<T: Send + Sync + 'static>(info: TaskInfo, error: Error) -> Handle<T> {
    Handle::of(failed::<T>(info, error))
}

impl Runtime {
    /// A handle and the [`Promise`] that completes it, on this runtime.
    #[track_caller]
    pub fn promise<T: Send + Sync + 'static>(&self) -> (Handle<T>, Promise<T>) {
        promise_on(Ok(self.shared().clone()), std::panic::Location::caller())
    }

    /// Spawns `f` on this runtime and returns its handle at once.
    #[track_caller]
    pub fn spawn<T, F>(&self, f: F) -> Handle<T>
    where
        T: Send + Sync + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        self.spawn_with((), f)
    }

    /// Spawns `f` on this runtime, to run once `inputs` are ready, with their values.
    #[track_caller]
    pub fn spawn_with<I, F, T>(&self, inputs: I, f: F) -> Handle<T>
    where
        I: IntoInputs,
        I::Inputs: Apply<F, T>,
        F: Send + 'static,
        T: Send + Sync + 'static,
    {
        let info = TaskInfo::of::<F>(std::panic::Location::caller());
        launch(
            Ok(RuntimeRef::of(self.shared())),
            info,
            Call::infallible(inputs, f),
        )
    }

    /// Like [`spawn_with`](Runtime::spawn_with) for a closure that returns `Result`: an
    /// `Err` fails the task (and its dependents).
    #[track_caller]
    pub fn try_spawn_with<I, F, T, E>(&self, inputs: I, f: F) -> Handle<T>
    where
        I: IntoInputs,
        I::Inputs: Apply<F, Result<T, E>>,
        F: Send + 'static,
        T: Send + Sync + 'static,
        E: Into<BoxError> + 'static,
    {
        let info = TaskInfo::of::<F>(std::panic::Location::caller());
        launch(
            Ok(RuntimeRef::of(self.shared())),
            info,
            Call::fallible(inputs, f, info),
        )
    }
}

fn spawn_on<T, J>(shared: RuntimeRef, info: TaskInfo, job: J) -> Handle<T>
where
    T: Send + Sync + 'static,
    J: Job<T> + 'static,
{
    Handle::of(Task::spawn(shared, info, job))
}

/// Spawns `job` on `runtime`, or returns a handle that failed with the reason there is none.
fn launch<T, J>(runtime: Result<RuntimeRef, Error>, info: TaskInfo, job: J) -> Handle<T>
where
    T: Send + Sync + 'static,
    J: Job<T> + 'static,
{
    match runtime {
        Ok(shared) => spawn_on(shared, info, job),
        Err(error) => failed_handle(info, error),
    }
}

/// Spawns `f` on the current runtime (the one running this task, or the default
/// runtime) and returns its handle at once.
///
/// ```
/// let h = dagger_core::spawn(|| 6 * 7);
/// assert_eq!(h.fetch()?, 42);
/// # Ok::<(), dagger_core::Error>(())
/// ```
#[track_caller]
pub fn spawn<T, F>(f: F) -> Handle<T>
where
    T: Send + Sync + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    spawn_with((), f)
}

/// Spawns `f` to run once `inputs` are ready, with their values (see [`Input`]):
/// `&handle` gives `&T`, `handle` gives `T`, a `Vec` of handles gives a `Vec` of values;
/// several inputs go in a tuple.
///
/// ```
/// let a = dagger_core::spawn(|| vec![1, 2, 3]);
/// let b = dagger_core::spawn(|| 10);
/// let sum = dagger_core::spawn_with((&a, b), |a: &Vec<i32>, b: i32| a.iter().sum::<i32>() + b);
/// assert_eq!(sum.fetch()?, 16);
/// # Ok::<(), dagger_core::Error>(())
/// ```
#[track_caller]
pub fn spawn_with<I, F, T>(inputs: I, f: F) -> Handle<T>
where
    I: IntoInputs,
    I::Inputs: Apply<F, T>,
    F: Send + 'static,
    T: Send + Sync + 'static,
{
    let info = TaskInfo::of::<F>(std::panic::Location::caller());
    launch(current_ref(), info, Call::infallible(inputs, f))
}

/// Combines `values` pairwise in a tree of tasks (`reduce` must be associative): the
/// handle of the total, or `None` when there are no values. Each task takes its two
/// inputs by value (moved when nothing else holds them).
///
/// ```
/// let parts: Vec<_> = (1..=4u64).map(|i| dagger_core::spawn(move || i)).collect();
/// let total = dagger_core::reduce_tree(parts, |a, b| a + b).expect("four values");
/// assert_eq!(total.fetch()?, 10);
/// # Ok::<(), dagger_core::Error>(())
/// ```
pub fn reduce_tree<A, R>(mut values: Vec<Handle<A>>, reduce: R) -> Option<Handle<A>>
where
    A: Clone + Send + Sync + 'static,
    R: Fn(A, A) -> A + Send + Sync + 'static,
{
    let reduce = std::sync::Arc::new(reduce);
    while values.len() > 1 {
        let mut next = Vec::with_capacity(values.len().div_ceil(2));
        let mut pairs = values.into_iter();
        while let Some(a) = pairs.next() {
            match pairs.next() {
                Some(b) => {
                    let reduce = reduce.clone();
                    next.push(spawn_with((a, b), move |a: A, b: A| reduce(a, b)));
                }
                None => next.push(a),
            }
        }
        values = next;
    }
    values.pop()
}

/// Like [`spawn_with`] for a closure that returns `Result`: an `Err` fails the task, and
/// its dependents fail with it as their root cause.
#[track_caller]
pub fn try_spawn_with<I, F, T, E>(inputs: I, f: F) -> Handle<T>
where
    I: IntoInputs,
    I::Inputs: Apply<F, Result<T, E>>,
    F: Send + 'static,
    T: Send + Sync + 'static,
    E: Into<BoxError> + 'static,
{
    let info = TaskInfo::of::<F>(std::panic::Location::caller());
    launch(current_ref(), info, Call::fallible(inputs, f, info))
}
