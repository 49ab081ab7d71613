//! Data-dependency regions (Dagger's Datadeps): tasks declare how they access shared data
//! objects (read or write), and the region orders them so that the result is that of
//! running the tasks one after another in program order: a reader waits for the last
//! writer, a writer waits for the readers since the last writer (or for that writer).
//! Tasks with no conflict run in parallel. The region waits for every task before it
//! returns, which is what lets tasks borrow the data objects.
//!
//! # Why a region is sound (the lifetime erasure in `launch`)
//!
//! A task's closure and its data pointers live for `'scope`; `launch` erases that to
//! `'static` to hand the task to the runtime. That is sound because nothing of the task
//! outlives `'scope`:
//! 1. `'scope` ends when `datadeps` returns, and `datadeps` returns (or unwinds) only
//!    after every task spawned into the region has finished: it waits for the task list
//!    until it stays empty, so tasks spawned by region tasks (which hold `&'scope Region`)
//!    are waited for too; a task can only spawn while it runs, that is, before it is
//!    done. Plain `spawn` needs `'static` closures, so nothing else can hold the region.
//! 2. A [`Data`] is branded with its region's `'scope`, which is invariant and
//!    universally quantified in `datadeps`' closure: another region (nested or not) has a
//!    different `'scope`, so its `spawn` does not accept the data (a compile error), and
//!    the id of a `Data` always indexes its own region's table.
//! 3. Within a region, every access runs after the earlier conflicting ones (the task's
//!    inputs) and before the later ones (they wait for it), so a write is exclusive and
//!    reads are shared; a task declaring one object twice with a write is refused (the
//!    region then fails with [`Error::InvalidUse`]) and never runs.
//!
//! ```compile_fail
//! // A region's data cannot be used in another region.
//! let mut x = 0_u64;
//! dagger_core::datadeps(|outer| {
//!     let d = outer.data(&mut x);
//!     dagger_core::datadeps(|inner| {
//!         inner.spawn(d.write(), |x: &mut u64| *x += 1);
//!     })
//! });
//! ```
//!
//! ```
//! let mut a = vec![1.0_f64; 4];
//! let mut b = vec![0.0_f64; 4];
//! let mut total = 0.0;
//! dagger_core::datadeps(|r| {
//!     let (a, b, total) = (r.data(&mut a), r.data(&mut b), r.data(&mut total));
//!     r.spawn(a.write(), |a: &mut Vec<f64>| a.iter_mut().for_each(|x| *x *= 2.0));
//!     r.spawn((a.read(), b.write()), |a: &Vec<f64>, b: &mut Vec<f64>| b.copy_from_slice(a));
//!     r.spawn((b.read(), total.write()), |b: &Vec<f64>, t: &mut f64| *t = b.iter().sum());
//! })?;
//! assert_eq!(total, 8.0);
//! # Ok::<(), dagger_core::Error>(())
//! ```

use std::marker::PhantomData;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex};

use crate::error::BoxError;
use crate::error::Error;
use crate::runtime::task::TaskRef;
use crate::runtime::Shared;
use crate::spawn::{failed_handle, spawn_job, wait_any, Handle};
use crate::task::TaskInfo;

/// `'scope`, invariant: the brand that ties a [`Data`] to its region.
type Brand<'scope> = PhantomData<fn(&'scope ()) -> &'scope ()>;

/// A region in which tasks access data objects with declared modes.
pub struct Region<'scope, 'env: 'scope> {
    shared: Arc<Shared>,
    state: Mutex<State>,
    _scope: Brand<'scope>,
    _env: PhantomData<&'scope mut &'env ()>,
}

#[derive(Default)]
struct State {
    objects: Vec<ObjectState>,
    tasks: Vec<TaskRef>,
    /// The first declaration the region refused: the region returns it.
    refused: Option<Error>,
}

#[derive(Default)]
struct ObjectState {
    writer: Option<TaskRef>,
    readers: Vec<TaskRef>,
}

/// A data object of a region: borrowed for the whole region, accessed by tasks through
/// [`read`](Data::read) and [`write`](Data::write).
pub struct Data<'scope, T> {
    id: usize,
    ptr: *mut T,
    _scope: Brand<'scope>,
    _value: PhantomData<&'scope mut T>,
}

impl<T> Clone for Data<'_, T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for Data<'_, T> {}

// SAFETY: a `Data` is a pointer to a `T: Send + Sync` that is only dereferenced by region
// tasks, in the order the region enforces.
unsafe impl<T: Send + Sync + 'static> Send for Data<'_, T> {}
// SAFETY: as above.
unsafe impl<T: Send + Sync + 'static> Sync for Data<'_, T> {}

impl<'scope, T: Send + Sync + 'static> Data<'scope, T> {
    /// Shared access: the task receives `&T`.
    pub fn read(self) -> Read<'scope, T> {
        Read(self)
    }
    /// Exclusive access: the task receives `&mut T`.
    pub fn write(self) -> Write<'scope, T> {
        Write(self)
    }
}

/// A declared read of a data object.
pub struct Read<'scope, T>(Data<'scope, T>);
/// A declared write of a data object.
pub struct Write<'scope, T>(Data<'scope, T>);

/// One declared access of a data object of the region `'scope`, as a task uses it.
pub trait DataAccess<'scope>: Send {
    /// What the task receives.
    type Arg<'a>;
    #[doc(hidden)]
    fn object(&self) -> (usize, bool);
    #[doc(hidden)]
    fn erase(self) -> ErasedAccess;
    /// # Safety
    /// The region's ordering must give this task the declared access right now.
    #[doc(hidden)]
    unsafe fn arg<'a>(ptr: *mut ()) -> Self::Arg<'a>;
}

#[doc(hidden)]
pub struct ErasedAccess(*mut ());

// SAFETY: it points to a `T: Send + Sync` data object, only dereferenced by the task it
// was made for, when the region's ordering gives that task its declared access.
unsafe impl Send for ErasedAccess {}

impl<'scope, T: Send + Sync + 'static> DataAccess<'scope> for Read<'scope, T> {
    type Arg<'a> = &'a T;
    fn object(&self) -> (usize, bool) {
        (self.0.id, false)
    }
    fn erase(self) -> ErasedAccess {
        ErasedAccess(self.0.ptr.cast())
    }
    unsafe fn arg<'a>(ptr: *mut ()) -> &'a T {
        // SAFETY: the caller guarantees shared access; the pointer came from `&mut T`.
        unsafe { &*ptr.cast::<T>() }
    }
}

impl<'scope, T: Send + Sync + 'static> DataAccess<'scope> for Write<'scope, T> {
    type Arg<'a> = &'a mut T;
    fn object(&self) -> (usize, bool) {
        (self.0.id, true)
    }
    fn erase(self) -> ErasedAccess {
        ErasedAccess(self.0.ptr.cast())
    }
    unsafe fn arg<'a>(ptr: *mut ()) -> &'a mut T {
        // SAFETY: the caller guarantees exclusive access; the pointer came from `&mut T`.
        unsafe { &mut *ptr.cast::<T>() }
    }
}

/// The accesses of one task in the region `'scope`: one [`DataAccess`] or a tuple of
/// them, and how to call the task.
pub trait Accesses<'scope, F, R>: Send {
    #[doc(hidden)]
    fn objects(&self) -> Vec<(usize, bool)>;
    #[doc(hidden)]
    fn erase(self) -> Vec<ErasedAccess>;
    /// # Safety
    /// The region's ordering must give the task every declared access right now.
    #[doc(hidden)]
    unsafe fn call(pointers: Vec<ErasedAccess>, f: F) -> R;
}

macro_rules! tuple_accesses {
    ($($name:ident $index:tt)*) => {
        impl<'scope, F, R, $($name: DataAccess<'scope>),*> Accesses<'scope, F, R> for ($($name,)*)
        where
            F: for<'a> FnOnce($($name::Arg<'a>),*) -> R,
        {
            fn objects(&self) -> Vec<(usize, bool)> {
                vec![$(self.$index.object()),*]
            }
            fn erase(self) -> Vec<ErasedAccess> {
                vec![$(self.$index.erase()),*]
            }
            #[allow(unused_mut, unused_variables)]
            unsafe fn call(pointers: Vec<ErasedAccess>, f: F) -> R {
                let mut pointers = pointers.into_iter();
                // SAFETY: the caller's obligation; one pointer per access, in order.
                unsafe { f($($name::arg(pointers.next().expect("one pointer per access").0)),*) }
            }
        }
    };
}

tuple_accesses!(A 0);
tuple_accesses!(A 0 B 1);
tuple_accesses!(A 0 B 1 C 2);
tuple_accesses!(A 0 B 1 C 2 D 3);
tuple_accesses!(A 0 B 1 C 2 D 3 E 4);
tuple_accesses!(A 0 B 1 C 2 D 3 E 4 G 5);

macro_rules! single_access {
    ($($ty:ident),*) => {$(
        impl<'s, T: Send + Sync + 'static, F, R> Accesses<'s, F, R> for $ty<'s, T>
        where
            F: for<'a> FnOnce(<$ty<'s, T> as DataAccess<'s>>::Arg<'a>) -> R,
        {
            fn objects(&self) -> Vec<(usize, bool)> {
                vec![self.object()]
            }
            fn erase(self) -> Vec<ErasedAccess> {
                vec![DataAccess::<'s>::erase(self)]
            }
            unsafe fn call(pointers: Vec<ErasedAccess>, f: F) -> R {
                // SAFETY: the caller's obligation; one pointer for the one access.
                unsafe { f(<$ty<'s, T> as DataAccess<'s>>::arg(pointers[0].0)) }
            }
        }
    )*};
}

single_access!(Read, Write);

impl<'scope, 'env> Region<'scope, 'env> {
    /// Registers a data object for the rest of the region.
    pub fn data<T: Send + Sync + 'static>(&'scope self, value: &'env mut T) -> Data<'scope, T> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.objects.push(ObjectState::default());
        Data {
            id: state.objects.len() - 1,
            ptr: value,
            _scope: PhantomData,
            _value: PhantomData,
        }
    }

    /// Spawns a task with declared accesses; it runs once every earlier task it conflicts
    /// with has finished. Returns its handle (the region also waits for it).
    #[track_caller]
    pub fn spawn<A, F, R>(&'scope self, accesses: A, f: F) -> Handle<R>
    where
        A: Accesses<'scope, F, R>,
        F: Send + 'scope,
        R: Send + Sync + 'static,
    {
        let info = TaskInfo::of::<F>(std::panic::Location::caller());
        self.launch(info, accesses, move |pointers| {
            // SAFETY: passed on from `launch`.
            Ok(unsafe { A::call(pointers, f) })
        })
    }

    /// Like [`spawn`](Region::spawn) for a task that returns `Result`: an `Err` fails the
    /// task, the tasks that depend on it do not run, and the region returns the error.
    #[track_caller]
    pub fn try_spawn<A, F, R, E>(&'scope self, accesses: A, f: F) -> Handle<R>
    where
        A: Accesses<'scope, F, Result<R, E>>,
        F: Send + 'scope,
        R: Send + Sync + 'static,
        E: Into<BoxError> + 'static,
    {
        let info = TaskInfo::of::<F>(std::panic::Location::caller());
        self.launch(info, accesses, move |pointers| {
            // SAFETY: passed on from `launch`.
            unsafe { A::call(pointers, f) }.map_err(|e| Error::TaskFailed {
                task: info.name(),
                location: info.location(),
                source: Arc::from(e.into()),
            })
        })
    }

    /// Orders a task after the earlier tasks its accesses conflict with and spawns it.
    /// `call` must use the pointers only as the accesses declare (`A::call` does).
    fn launch<A, F, R, Out>(
        &'scope self,
        info: TaskInfo,
        accesses: A,
        call: impl FnOnce(Vec<ErasedAccess>) -> Result<R, Error> + Send + 'scope,
    ) -> Handle<R>
    where
        A: Accesses<'scope, F, Out>,
        R: Send + Sync + 'static,
    {
        let objects = accesses.objects();
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        for (i, (id, writes)) in objects.iter().enumerate() {
            if objects[..i]
                .iter()
                .any(|(other, w)| other == id && (*w || *writes))
            {
                let error = Error::InvalidUse(format!(
                    "region task `{}` at {} declares data object #{id} twice, once as a write; \
                     declare one access per object and task (a write gives read access too)",
                    info.name(),
                    info.location(),
                ));
                state.refused.get_or_insert_with(|| error.clone());
                return failed_handle(info, error);
            }
        }
        let mut after: Vec<TaskRef> = Vec::new();
        for &(id, writes) in &objects {
            let object = &state.objects[id];
            if writes {
                if object.readers.is_empty() {
                    after.extend(object.writer.iter().cloned());
                } else {
                    after.extend(object.readers.iter().cloned());
                }
            } else {
                after.extend(object.writer.iter().cloned());
            }
        }
        let pointers = accesses.erase();
        // This task runs after every earlier conflicting task (its inputs), and later
        // conflicting tasks wait for it, so its declared accesses are exclusive where they
        // write and shared where they read.
        let body = move || call(pointers);
        let body: Box<dyn FnOnce() -> Result<R, Error> + Send + 'scope> = Box::new(body);
        // SAFETY: point 1 of the module proof: the region waits for every task spawned
        // into it (by its closure or by its tasks) before `datadeps` returns or unwinds,
        // so nothing the task borrows for 'scope is used after 'scope ends.
        let body: Box<dyn FnOnce() -> Result<R, Error> + Send + 'static> =
            unsafe { std::mem::transmute(body) };
        let handle = spawn_job(&self.shared, info, after, body);
        let done = handle.task.clone();
        for &(id, writes) in &objects {
            let object = &mut state.objects[id];
            if writes {
                object.readers.clear();
                object.writer = Some(done.clone());
            } else {
                object.readers.push(done.clone());
            }
        }
        state.tasks.push(done);
        handle
    }
}

/// Runs `f` with a data-dependency region on the current runtime (the one of this worker,
/// or the default), waits for every task spawned in it, and returns `f`'s result, or the
/// first task failure.
pub fn datadeps<'env, F, R>(f: F) -> Result<R, Error>
where
    F: for<'scope> FnOnce(&'scope Region<'scope, 'env>) -> R,
{
    let shared = crate::spawn::current()?;
    let region = Region {
        shared,
        state: Mutex::new(State::default()),
        _scope: PhantomData,
        _env: PhantomData,
    };
    let outcome = catch_unwind(AssertUnwindSafe(|| f(&region)));
    // Wait for every task, whatever happened, before the borrows end: also for tasks that
    // region tasks spawn meanwhile (the list is taken until it stays empty).
    let mut first_failure = None;
    loop {
        let tasks =
            std::mem::take(&mut region.state.lock().unwrap_or_else(|e| e.into_inner()).tasks);
        if tasks.is_empty() {
            break;
        }
        for task in &tasks {
            if let Err(error) = wait_any(task) {
                first_failure.get_or_insert(error);
            }
        }
    }
    let refused = region
        .state
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .refused
        .take();
    match outcome {
        Err(payload) => resume_unwind(payload),
        Ok(value) => match refused.or(first_failure) {
            Some(error) => Err(error),
            None => Ok(value),
        },
    }
}
