//! # dagger: ordinary Rust functions as a parallel task graph
//!
//! Mark functions `#[task]`, compose them in a [`dag!`] block, and run the block: calls
//! that do not depend on each other run in parallel on a pool of worker threads, and the
//! result is exactly what the block gives when run as plain Rust. The graph is derived
//! from Rust's own syntax and checked at compile time.
//!
//! ```
//! use dagger::prelude::*;
//!
//! #[task]
//! fn load(n: usize) -> Vec<f64> {
//!     (0..n).map(|i| i as f64).collect()
//! }
//!
//! #[task(name = "sum-of-squares")]
//! fn sumsq(xs: &[f64]) -> f64 {
//!     xs.iter().map(|x| x * x).sum()
//! }
//!
//! #[task]
//! fn normalize(xs: &mut Vec<f64>, norm: f64) {
//!     xs.iter_mut().for_each(|x| *x /= norm.sqrt());
//! }
//!
//! #[task]
//! fn concat(mut a: Vec<f64>, b: Vec<f64>) -> Vec<f64> {
//!     a.extend(b);
//!     a
//! }
//!
//! #[task]
//! fn checked_div(a: f64, b: f64) -> Result<f64, String> {
//!     if b == 0.0 { Err("division by zero".into()) } else { Ok(a / b) }
//! }
//!
//! # fn main() -> Result<(), dagger::Error> {
//! let g = dag! {
//!     let mut a = load(1_000);        // node
//!     let b = load(2_000);            // node, independent of `a`: runs in parallel
//!     let s = sumsq(&a);              // reads a
//!     normalize(&mut a, s);           // writes a: after every earlier reader, before later ones
//!     let t = sumsq(&a);              // reads the normalized a
//!     let c = concat(a, b);           // moves a and b
//!     let d = checked_div(t, 2.0)?;   // a task returning Result: `?` fails the graph on Err
//!     (c.len(), d)                    // tail: the graph's output (glue code, any expression)
//! };
//! println!("{}", g.to_dot());         // the static structure, known at compile time
//! let (len, d) = g.run()?;            // blocking, on the default runtime
//! assert_eq!(len, 3_000);
//! assert!((d - 0.5).abs() < 1e-9);
//! # Ok(())
//! # }
//! ```
//!
//! ## `#[task]`
//!
//! The function stays an ordinary function: same signature, callable as before. The
//! attribute also emits a braced struct with the same name (in the type namespace) that
//! implements [`Task`](task::Task), carrying the task's compile-time metadata ([`TaskMeta`](task::TaskMeta): name,
//! module, source location, parameter and return types). `use my_mod::load;` imports
//! both. Non-generic tasks register themselves, and [`registry()`](task::registry) lists every task
//! linked into the binary:
//!
//! ```
//! use dagger::prelude::*;
//!
//! #[task(name = "parse-csv")]
//! fn parse(text: &str) -> Vec<Vec<String>> {
//!     text.lines().map(|l| l.split(',').map(str::to_owned).collect()).collect()
//! }
//!
//! assert_eq!(parse("a,b\nc,d").len(), 2);                 // still a plain function
//! assert_eq!(<parse as Task>::META.name(), "parse-csv");  // and a task
//! assert_eq!(<parse as Task>::META.params()[0].ty(), "&str");
//! assert!(dagger::task::registry().iter().any(|t| t.name() == "parse-csv"));
//! assert_eq!(dagger::task::find_task("parse-csv").unwrap().function(), "parse");
//! ```
//!
//! Options: `name = "..."`. Misuse is a compile error pointing at the offending token:
//! unknown or repeated options, `async fn`, `unsafe fn`, `extern fn`, methods (`self`),
//! and the attribute on anything but a function.
//!
//! ## `dag! { ... }`: sequential semantics, parallel execution
//!
//! Every statement of the block is a node. A statement whose expression is a call
//! `path(args)` (optionally followed by `?`) is a *task node* and `path` must be a
//! `#[task]`; any other statement (operators, method calls, literals, macros such as
//! `println!`) is a *glue node*. The final expression without `;` is the *tail*: it runs
//! after every node and is the graph's output.
//!
//! Edges come from how each statement uses the block's bindings:
//!
//! | syntax | access | waits for |
//! |---|---|---|
//! | `let x = f(..)` | defines `x` | — |
//! | `&x`, `x[i]`, and any use of a binding that is not `mut` | read (shared) | the last writer of `x` |
//! | `&mut x`, `x = ..`, `x += ..`, any use of a `mut` binding | write (exclusive) | the readers since the last writer, or that writer |
//! | `x` on its last use (as an argument, `x.into_iter()`, in a branch, in a `move` closure) | move (exclusive) | as a write |
//! | `x` by value, used again later | copy (needs `Copy`) | as a read |
//! | `x = value;` as a whole statement | gives `x` a new value, even after a move | as a write |
//! | `x` named inside a macro (`println!`, `assert!`, `format!("{x}")`) | the node holds `x` itself (exclusive) | as a write |
//! | a variable from outside the block, used by two statements, one of them by value or with `&mut` / `=` | held like a binding | as above |
//!
//! These are the read-after-write, write-after-read and write-after-write hazards;
//! nodes with no hazard between them may run at the same time. Everything else follows
//! from Rust: a binding moved into one task cannot be used afterwards (unless it is
//! `Copy`), `&mut` needs `let mut`, and a borrow of a binding cannot escape its
//! statement. The tail sees plain values:
//!
//! ```compile_fail
//! use dagger::prelude::*;
//!
//! #[task]
//! fn square(x: u64) -> u64 { x * x }
//! #[task]
//! fn push(v: &mut Vec<u64>, x: u64) { v.push(x) }
//!
//! # fn main() -> Result<(), dagger::Error> {
//! let base = 3;                        // captured from outside the block
//! let g = dag! {
//!     let mut v = Vec::with_capacity(4);   // a call of a non-task path must be glue: see below
//!     let a = square(base);
//!     let b = square(base + 1);        // runs in parallel with `a`
//!     push(&mut v, a);                 // writes v: after its definition
//!     push(&mut v, b);                 // after the first push (write-after-write on v)
//!     let total = a + b;               // glue: `a` and `b` are Copy, so still usable
//!     (v, total)
//! };
//! # let _ = g;
//! # Ok(())
//! # }
//! ```
//!
//! The block above does not compile as it stands, on purpose: `Vec::with_capacity(4)` is
//! a call, so it must be a task. Wrap glue calls in a block (`{ Vec::with_capacity(4) }`)
//! or use a macro (`vec![]`). With that change it runs:
//!
//! ```
//! # use dagger::prelude::*;
//! # #[task] fn square(x: u64) -> u64 { x * x }
//! # #[task] fn push(v: &mut Vec<u64>, x: u64) { v.push(x) }
//! # fn main() -> Result<(), dagger::Error> {
//! let base = 3;
//! let (v, total) = dag! {
//!     let mut v = { Vec::with_capacity(4) };
//!     let a = square(base);
//!     let b = square(base + 1);
//!     push(&mut v, a);
//!     push(&mut v, b);
//!     let total = a + b;
//!     (v, total)
//! }
//! .run()?;
//! assert_eq!(v, [9, 16]);
//! assert_eq!(total, 25);
//! # Ok(())
//! # }
//! ```
//!
//! Values from outside the block are captured (by reference when borrowed, by value
//! when moved), so a [`Dag`] may borrow its environment: `run` blocks until the graph is
//! done. An outer variable that two statements use, one of them by value or through
//! `&mut` / assignment, is ordered like a binding; one that only `&self` methods read is
//! shared. A method that needs `&mut self` on an outer variable used by two statements
//! does not show the macro that it writes: write `(&mut log).push(x)` or pass `&mut log`
//! (rustc otherwise reports two mutable borrows).
//!
//! **Exactly the block's result.** Running the graph gives what the block gives as plain
//! Rust, with two stated exceptions:
//! - *Side effects through shared references are not ordered.* Two statements that only
//!   read a binding (or an outer variable) may run at the same time, in either order, even
//!   when they lock a `Mutex` in it, touch an atomic, do I/O or print: a `&` says "no
//!   write", and the graph believes it. To order such statements, make the binding `mut`
//!   (every use of a `mut` binding is exclusive, in program order) or pass `&mut x`:
//!
//! ```
//! # use dagger::prelude::*;
//! # use std::sync::Mutex;
//! #[task]
//! fn record(log: &Mutex<Vec<u32>>, x: u32) { log.lock().unwrap().push(x) }
//!
//! # fn main() -> Result<(), dagger::Error> {
//! let log = dag! {
//!     let mut log = { Mutex::new(Vec::new()) }; // `mut`: each use runs alone, in order
//!     record(&mut log, 1);                      // `&mut`: exclusive
//!     record(&mut log, 2);                      // after the first
//!     log
//! }
//! .run()?;
//! assert_eq!(log.into_inner().unwrap(), [1, 2]);
//! # Ok(())
//! # }
//! ```
//!
//! - *A value is dropped after its last use, not at the end of the block*, when that use
//!   takes it (a consuming last use runs in its own node). Only a `Drop` with side effects
//!   can tell.
//!
//! **Nothing a node holds outlives it.** A statement sees a binding either as a reference
//! local to its node or as a value it owns; a reference to a binding, or anything that
//! borrows one (a closure, an iterator, an `async` block, a struct holding `&x`), cannot
//! become a binding or be stored outside the block: rustc reports "`x` does not live
//! long enough". Compute such values inside one statement, or move the value in (a
//! `move` closure on the binding's last use owns it, as in plain Rust). Values cross
//! threads, so a binding must be `Send`; one that two statements may read at the same time
//! must also be `Sync` (declare it `mut` to order them instead); each error says which.
//! A binding named inside a macro is owned by its node, so macros see exactly what you
//! wrote: `stringify!`, `assert!` texts and format strings show your code.
//!
//! ### The graph without running it
//!
//! The shape is a compile-time constant: [`Dag::graph`] returns a `&'static` [`Graph`](graph::Graph)
//! with its [`Node`](graph::Node)s (task, accesses, source location and text) and [`Edge`](graph::Edge)s (binding
//! and [`Hazard`](graph::Hazard)); [`Dag::to_dot`] renders it for Graphviz.
//!
//! ```
//! use dagger::prelude::*;
//! use dagger::graph::{AccessMode, Hazard};
//!
//! #[task]
//! fn make() -> Vec<i32> { vec![3, 1, 2] }
//! #[task]
//! fn sort(v: &mut Vec<i32>) { v.sort() }
//! #[task]
//! fn first(v: &[i32]) -> i32 { v[0] }
//!
//! let g = dag! {
//!     let mut v = make();
//!     let x = first(&v);
//!     sort(&mut v);
//!     let y = first(&v);
//!     (x, y)
//! };
//! let graph = g.graph();
//! assert_eq!(graph.nodes().len(), 4);
//! assert_eq!(graph.nodes()[2].name(), "sort");
//! assert_eq!(graph.nodes()[2].accesses()[0].mode(), AccessMode::Write);
//! // sort waits for the first reader (write-after-read)...
//! assert!(graph.edges().iter().any(|e| (e.from(), e.to(), e.hazard()) == (1, 2, Hazard::WriteAfterRead)));
//! // ...and the second reader waits for sort (read-after-write).
//! assert!(graph.depends_on(3, 2));
//! assert!(g.to_dot().starts_with("digraph"));
//! assert_eq!(g.run().unwrap(), (3, 1));
//! ```
//!
//! ## Failure
//!
//! `?` after a task that returns `Result<T, E>` (with `E` convertible into [`BoxError`](task::BoxError):
//! any error type, `String` or `&str`) fails the graph on `Err`; a panicking node fails
//! it too. [`Dag::run`] then returns an [`Error`] naming the task and its source
//! location; nodes that depend on the failed node do not run, nodes already running
//! finish, and the runtime stays ready for the next graph.
//!
//! ```
//! use dagger::prelude::*;
//!
//! #[task]
//! fn parse(s: &str) -> Result<i64, std::num::ParseIntError> { s.parse() }
//! #[task]
//! fn double(x: i64) -> i64 { 2 * x }
//!
//! let err = dag! {
//!     let x = parse("forty-two")?;
//!     double(x)
//! }
//! .run()
//! .unwrap_err();
//! assert_eq!(err.task(), Some("parse"));
//! assert!(err.to_string().contains("invalid digit"));
//! ```
//!
//! ## Runtime
//!
//! [`Dag::run`] uses the default runtime, built on first use with `DAGGER_THREADS`
//! worker threads (default: one per CPU). Build your own with [`Runtime::builder`] and
//! run on it with [`Dag::run_on`]. A `dag!` may run inside a task (nested graphs share
//! the workers). Running a graph from a thread outside the runtime hands it to a worker
//! and back (microseconds); to run many small graphs, run them from inside the runtime
//! with [`Runtime::install`]. Tasks spawned on a worker stay on that worker's runtime.
//!
//! ```
//! use dagger::prelude::*;
//!
//! #[task]
//! fn inc(x: u32) -> u32 { x + 1 }
//!
//! let rt = Runtime::builder().threads(2).build()?;
//! let y = dag! { let a = inc(1); let b = inc(a); b }.run_on(&rt)?;
//! assert_eq!(y, 3);
//! # Ok::<(), dagger::Error>(())
//! ```
//!
//! ## Dynamic tasks (Dagger's `@spawn`)
//!
//! [`spawn`](fn@spawn) returns a [`Handle`] at once. Handles passed to [`spawn_with`] become
//! dependencies: the task runs when they are ready and receives `&T` for `&handle`, `T`
//! for `handle` (moved when it is the last handle), `Vec<&T>` / `Vec<T>` for a `Vec` of
//! handles; several inputs go in a tuple. Tasks may spawn tasks and wait for them:
//! a waiting worker runs the awaited task itself (or its inputs, or what the thread
//! running it waits for), never unrelated work, and when it must block a spare thread
//! takes its place, so no program without a dependency cycle deadlocks, on any number of
//! threads. Recursion is fine, 10,000 levels deep on the default 256 MiB worker stacks
//! ([`RuntimeBuilder::stack_size`](runtime::RuntimeBuilder::stack_size)); deeper recursion continues on spare threads:
//!
//! ```
//! use dagger::prelude::*;
//!
//! fn fib(n: u64) -> u64 {
//!     if n < 2 {
//!         return n;
//!     }
//!     let a = spawn(move || fib(n - 1));
//!     let b = fib(n - 2);
//!     a.fetch().unwrap() + b
//! }
//!
//! #[task]
//! fn scale(xs: &Vec<f64>, k: f64) -> Vec<f64> { xs.iter().map(|x| x * k).collect() }
//!
//! let xs = spawn(|| vec![1.0, 2.0]);
//! let k = spawn(|| 3.0);
//! let ys = spawn_with((&xs, k), |xs, k| scale(xs, k));   // types inferred from the inputs
//! assert_eq!(ys.fetch()?, [3.0, 6.0]);
//! assert_eq!(fib(15), 610);
//! # Ok::<(), dagger::Error>(())
//! ```
//!
//! [`Handle::fetch`], [`Handle::fetch_ref`], [`Handle::wait`], [`Handle::is_ready`] and
//! [`Handle::cancel`] (a task that has not started never runs; its dependents fail with
//! [`Error::Cancelled`] as their root cause). A panic, or an `Err` from
//! [`try_spawn_with`], fails the task, and every task that depends on it fails with
//! [`Error::DependencyFailed`], whose [`Error::root_cause`] names the task that failed
//! first and where it was spawned.
//!
//! A finished task is freed as soon as no handle and no waiting task refers to it. Its
//! memory is kept for the next tasks (per-thread free lists, and a shared depot of at most
//! 256 MiB); [`release_task_memory`](spawn::release_task_memory) hands the depot back to the system allocator after a
//! very large graph.
//!
//! ## Data-dependency regions (Dagger's Datadeps)
//!
//! In a [`datadeps`](fn@datadeps) region, tasks declare how they access shared data objects
//! ([`Data::read`](datadeps::Data::read), [`Data::write`](datadeps::Data::write)); the region orders them as the program order
//! requires and runs the rest in parallel, then waits for all of them:
//!
//! ```
//! let mut tiles = vec![vec![1u64; 4]; 3];
//! let mut sum = 0;
//! let [t0, t1, t2] = &mut tiles[..] else { unreachable!() };
//! dagger::datadeps(|r| {
//!     let (t0, t1, t2, sum) = (r.data(t0), r.data(t1), r.data(t2), r.data(&mut sum));
//!     for t in [t0, t1, t2] {
//!         r.spawn(t.write(), |t: &mut Vec<u64>| t.iter_mut().for_each(|x| *x *= 2)); // in parallel
//!     }
//!     r.spawn((t0.read(), t1.read(), t2.read(), sum.write()), |a: &Vec<u64>, b: &Vec<u64>, c: &Vec<u64>, s: &mut u64| {
//!         *s = a.iter().chain(b).chain(c).sum();                                   // after all three
//!     });
//! })?;
//! assert_eq!(sum, 24);
//! # Ok::<(), dagger::Error>(())
//! ```
//!
//! A region task that returns `Result` goes through `Region::try_spawn`: an `Err` fails it,
//! the tasks ordered after it do not run, and the region returns the error. Values made
//! outside the runtime (a GPU callback, an I/O thread) enter the graph through
//! [`promise`]: a [`Handle`] that tasks can depend on, and a [`Promise`](spawn::Promise) that completes it.
//!
//! ## GPU tasks, blocked arrays and tables (features `cuda`, `array` and `table`)
//!
//! With feature `cuda`, a function marked `#[task(cuda)]` takes a stream as its first
//! parameter, which callers leave out; the runtime lends each call a stream of the
//! device's pool (the one that last wrote its buffers, else the next in turn), and buffers
//! order their uses across streams on the GPU. `dagger::cuda`
//! has the device model (devices, buffers, copies, NVRTC kernels, cuBLAS) and the `upload`
//! and `download` tasks; its module documentation is the GPU manual. CUDA is loaded at run
//! time: without it every GPU call returns an [`Error::Device`].
//!
//! With feature `array`, `dagger::array::DArray` is a blocked array whose operations
//! (element-wise, reductions, transpose, tiled matmul, Cholesky, triangular solves,
//! Jacobi) are graphs of block tasks, with faer's kernels inside the blocks.
//!
//! With feature `table`, `dagger::table::DTable` is a table of Arrow record batches read
//! from Parquet or CSV files; filters, projections, group-bys, joins and sorts are graphs
//! of partition tasks, with arrow-rs's kernels inside the partitions.
//!
//! ## Seeing what ran
//!
//! Observers sit beside execution: a [`observe::Observer`] attached to a runtime is told
//! when each run and each task starts and ends, on which worker, and how it failed. With
//! none attached a run checks one number and nothing more. [`observe::Recorder`] keeps the
//! events as a [`observe::Trace`], which exports Chrome trace-event JSON (Perfetto,
//! chrome://tracing), Graphviz DOT of the graph as executed (durations, critical path in
//! red), an SVG Gantt chart and a text summary (per task name count / total / mean / max,
//! critical path, achieved parallelism, idle time per worker).
//!
//! ```
//! use dagger::prelude::*;
//! use dagger::observe::Recorder;
//!
//! #[task]
//! fn square(x: u64) -> u64 { x * x }
//!
//! let rt = Runtime::builder().threads(2).build()?;
//! let recorder = Recorder::new();
//! let guard = rt.observe(recorder.clone());
//! let y = dag! { let a = square(3); let b = square(a); b }.run_on(&rt)?;
//! drop(guard);                                   // stop observing
//!
//! let trace = recorder.trace();
//! assert_eq!(y, 81);
//! assert_eq!(trace.tasks().len(), 2);
//! assert!(trace.to_chrome_json().contains("\"square\""));
//! assert!(trace.to_svg_gantt()?.starts_with("<svg"));
//! assert!(trace.to_dot().contains("critical path"));
//! println!("{}", trace.summary());
//! # Ok::<(), dagger::Error>(())
//! ```
//!
//! Without code changes, `DAGGER_TRACE=trace.json` (or `.svg`, `.dot`, `.txt`; or a
//! directory ending in `/` for all four) records every run of the program and writes the
//! file when it exits. A path that cannot be written is reported once on stderr and the
//! program runs on untraced. Cargo features: `tracing` emits one `tracing` span per task
//! (`dagger_task`, with the task name, node and location); `progress` adds
//! `observe::Progress`, a progress bar (done / total, rate, ETA) that stays silent when
//! stderr is not a terminal.
//!
//! ## Checked at compile time
//!
//! Each of these is a compile error pointing at your token (see `tests/ui/`): use of a
//! moved binding; `&mut` of, or assignment to, a binding not declared `mut`; a duplicate
//! binding; a call to a function that is not a `#[task]`; `?` on a task that does not
//! return `Result`; `return`, `break`, loops, `.await`, items, `let` without a value;
//! argument type mismatches (rustc's own error, at the argument).
//!
//! Known limits: a call of a non-task path as a statement must be wrapped to be glue;
//! generated code contains `unsafe` blocks, so crates with `#![forbid(unsafe_code)]`
//! cannot use `dag!`; a macro whose tokens are not expressions is scanned for names, so
//! a closure parameter inside it named like a binding counts as a use (at worst an
//! extra dependency, or "use of moved binding" if that binding was moved before).

#![warn(missing_docs)]

// `#[task]` inside this crate (the `cuda` tasks) expands to `::dagger::...` paths.
extern crate self as dagger;

#[cfg(feature = "cuda")]
pub mod cuda;

/// Blocked arrays (feature `array`): Dagger's `DArray`, where every operation is a graph
/// of block tasks. See [`DArray`](array::DArray).
#[cfg(feature = "array")]
pub mod array {
    pub use dagger_array::*;
}

/// Partitioned tables (feature `table`): DTables.jl's `DTable` over Arrow record batches,
/// where every operation is a graph of partition tasks. See [`DTable`](table::DTable).
#[cfg(feature = "table")]
pub mod table {
    pub use dagger_table::*;
}

/// Distributed ranks on MPI (feature `mpi`): the same program on every rank, values
/// owned by ranks and copied where they are read, blocked arrays over a grid of ranks.
/// See [`Cluster`](mpi::Cluster) and [`DistArray`](mpi::DistArray).
#[cfg(feature = "mpi")]
pub mod mpi {
    pub use dagger_mpi::*;
}

/// The body of a `#[task(cuda)]` function (generated code; not a public API).
#[cfg(feature = "cuda")]
#[doc(hidden)]
#[macro_export]
macro_rules! __cuda_task_body {
    ($($body:tt)*) => {
        $crate::__private::cuda::with_stream($($body)*)
    };
}

/// Without the `cuda` feature, a `#[task(cuda)]` function is a compile error.
#[cfg(not(feature = "cuda"))]
#[doc(hidden)]
#[macro_export]
macro_rules! __cuda_task_body {
    ($($body:tt)*) => {
        ::core::compile_error!(
            "`#[task(cuda)]` needs dagger's `cuda` feature: \
             dagger = { version = \"0.1\", features = [\"cuda\"] }"
        )
    };
}

pub use dagger_core::{datadeps, promise, spawn, spawn_with, try_spawn_with};
pub use dagger_core::{Dag, Error, Handle, Runtime};

/// The static description of a `dag!`, known at compile time: [`Graph`](graph::Graph),
/// its nodes, edges (with their hazards) and schedule.
pub mod graph {
    pub use dagger_core::{
        Access, AccessMode, BoxedBody, Edge, Graph, Hazard, Node, NodeKind, Schedule,
    };
}

/// Task metadata: the [`Task`](task::Task) trait that `#[task]` implements, the registry
/// of tasks, source locations and the boxed error of a failed task.
pub mod task {
    pub use dagger_core::{find_task, registry, BoxError, Location, Param, Task, TaskMeta};
}

/// Dynamic tasks: what `spawn_with` takes as inputs, promises, and the task memory.
pub mod spawn {
    pub use dagger_core::{
        reduce_tree, release_task_memory, AllByRef, AllByValue, Apply, ByRef, ByValue, Input,
        IntoInput, IntoInputs, Promise,
    };
}

/// Data-dependency regions: the types of [`datadeps`](crate::datadeps()).
pub mod datadeps {
    pub use dagger_core::{Accesses, Data, DataAccess, Read, Region, Write};
}

/// The runtime's builder, the default runtime and its environment variable.
pub mod runtime {
    pub use dagger_core::{default_runtime, RuntimeBuilder, THREADS_ENV};
}

pub use dagger_core::observe;

/// Makes a function a task: it stays callable as before, and becomes a graph node type
/// that implements [`Task`](task::Task). See [the crate documentation](crate#task).
pub use dagger_macros::task;

/// Builds a [`Dag`] from a block with sequential semantics, checked at compile time.
/// See [the crate documentation](crate#dag---sequential-semantics-parallel-execution).
pub use dagger_macros::dag;

/// Everything a typical program needs: `use dagger::prelude::*;`.
pub mod prelude {
    pub use crate::task::Task;
    pub use crate::{dag, spawn, spawn_with, task, try_spawn_with, Dag, Error, Handle, Runtime};
}

/// The only path generated code uses. Not a public API: it may change in any release.
#[doc(hidden)]
pub mod __private {
    pub use dagger_core::__macro_support::*;
    pub use dagger_core::{
        Access, AccessMode, BoxError, Dag, Edge, Error, Graph, Hazard, Location, Node, NodeKind,
        Param, Runtime, Schedule, Task, TaskMeta,
    };
    #[cfg(feature = "cuda")]
    pub mod cuda {
        pub use dagger_cuda::with_stream;
    }
}

/// The README's examples are tested too.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
