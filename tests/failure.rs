//! A failing node (`?` on `Err`, or a panic) fails the graph with an error that names
//! the task and its source location; its dependents do not run; nothing hangs; the
//! runtime runs the next graph.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};

use common::{runtime, watchdog};
use dagger::prelude::*;

#[derive(Debug)]
struct Invalid(i64);

impl std::fmt::Display for Invalid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} is negative", self.0)
    }
}

impl std::error::Error for Invalid {}

#[task]
fn check(x: i64) -> Result<i64, Invalid> {
    if x < 0 {
        Err(Invalid(x))
    } else {
        Ok(x)
    }
}

#[task]
fn count(counter: &AtomicUsize, x: i64) -> i64 {
    counter.fetch_add(1, Ordering::SeqCst);
    x
}

#[task]
fn explode(x: i64) -> i64 {
    if x == 13 {
        panic!("unlucky {x}");
    }
    x
}

#[task]
fn message_error(x: i64) -> Result<i64, String> {
    if x == 0 {
        Err("zero is not allowed".to_string())
    } else {
        Ok(x)
    }
}

#[test]
fn question_mark_fails_the_graph_and_skips_dependents() {
    watchdog(30, || {
        let rt = runtime(2);
        let dependents = AtomicUsize::new(0);
        let line = line!() + 3;
        let err = dag! {
            let a = check(5)?;
            let b = check(-2)?;
            let c = count(&dependents, b);
            let d = count(&dependents, c);
            (a, d)
        }
        .run_on(&rt)
        .unwrap_err();
        assert_eq!(err.task(), Some("check"));
        let location = err.location().unwrap();
        assert_eq!(location.line(), line);
        assert!(location.file().ends_with("failure.rs"), "{location}");
        assert!(err.to_string().contains("-2 is negative"), "{err}");
        let source = std::error::Error::source(&err).expect("the task's error is the source");
        assert!(source.downcast_ref::<Invalid>().is_some());
        assert_eq!(
            dependents.load(Ordering::SeqCst),
            0,
            "dependents of the failed node ran"
        );

        // The same runtime runs the next graph.
        let ok = dag! { let a = check(1)?; let b = count(&dependents, a); b }
            .run_on(&rt)
            .unwrap();
        assert_eq!(ok, 1);
        assert_eq!(dependents.load(Ordering::SeqCst), 1);
    });
}

#[test]
fn string_errors_convert() {
    let err = dag! { let x = message_error(0)?; x }
        .run_on(&runtime(1))
        .unwrap_err();
    assert!(
        matches!(
            err,
            dagger::Error::TaskFailed {
                task: "message_error",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("zero is not allowed"));
}

#[test]
fn a_panic_fails_the_graph_and_the_runtime_survives() {
    watchdog(30, || {
        let rt = runtime(2);
        let dependents = AtomicUsize::new(0);
        for _ in 0..20 {
            let err = dag! {
                let a = explode(13);
                let b = count(&dependents, a);
                b
            }
            .run_on(&rt)
            .unwrap_err();
            match &err {
                dagger::Error::TaskPanicked { task, message, .. } => {
                    assert_eq!(*task, "explode");
                    assert_eq!(message, "unlucky 13");
                }
                other => panic!("expected a panic error, got {other:?}"),
            }
        }
        assert_eq!(dependents.load(Ordering::SeqCst), 0);
        let fine = dag! { let a = explode(1); let b = explode(a); b }
            .run_on(&rt)
            .unwrap();
        assert_eq!(fine, 1);
    });
}

#[test]
fn a_panic_in_glue_names_glue() {
    let err = dag! {
        let v: Vec<i64> = { Vec::new() };
        let first = v[0];
        first
    }
    .run_on(&runtime(1))
    .unwrap_err();
    assert_eq!(err.task(), Some("glue"));
    assert!(err.to_string().contains("index out of bounds"), "{err}");
}

#[test]
fn values_of_a_failed_graph_are_dropped() {
    struct Tracked<'a>(&'a AtomicUsize);
    impl Drop for Tracked<'_> {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    #[task]
    fn make_tracked(drops: &AtomicUsize) -> Tracked<'_> {
        Tracked(drops)
    }
    let drops = AtomicUsize::new(0);
    let err = dag! {
        let a = make_tracked(&drops);
        let b = make_tracked(&drops);
        let x = check(-1)?;
        (a, b, x)
    }
    .run_on(&runtime(2));
    assert!(err.is_err());
    assert_eq!(
        drops.load(Ordering::SeqCst),
        2,
        "both values dropped, none leaked"
    );
}
