//! Independent nodes really run at the same time: two nodes that meet at a 2-party
//! barrier can only finish if both are running at once. The watchdog turns a
//! serialised schedule (which would wait forever) into a test failure.

mod common;

use std::sync::Barrier;

use common::{runtime, watchdog};
use dagger::prelude::*;

#[task]
fn meet(barrier: &Barrier, id: u32) -> u32 {
    barrier.wait();
    id
}

#[task]
fn add(a: u32, b: u32) -> u32 {
    a + b
}

#[test]
fn independent_nodes_run_in_parallel() {
    let sum = watchdog(20, || {
        let rt = runtime(2);
        let barrier = Barrier::new(2);
        dag! {
            let a = meet(&barrier, 1);
            let b = meet(&barrier, 2);
            add(a, b)
        }
        .run_on(&rt)
        .unwrap()
    });
    assert_eq!(sum, 3);
}

#[test]
fn readers_of_one_binding_run_in_parallel() {
    #[task]
    fn read_and_meet(v: &[u32], barrier: &Barrier) -> u32 {
        barrier.wait();
        v.iter().sum()
    }
    #[task]
    fn make() -> Vec<u32> {
        vec![1, 2, 3]
    }
    let out = watchdog(20, || {
        let rt = runtime(2);
        let barrier = Barrier::new(2);
        dag! {
            let v = make();
            let x = read_and_meet(&v, &barrier);   // both only read v
            let y = read_and_meet(&v, &barrier);
            (x, y)
        }
        .run_on(&rt)
        .unwrap()
    });
    assert_eq!(out, (6, 6));
}

#[test]
fn a_wide_graph_completes_on_one_thread() {
    #[task]
    fn one(i: u32) -> u32 {
        i
    }
    let total = watchdog(20, || {
        let rt = runtime(1);
        dag! {
            let a = one(1); let b = one(2); let c = one(3); let d = one(4);
            let e = one(5); let f = one(6); let g = one(7); let h = one(8);
            let ab = add(a, b); let cd = add(c, d); let ef = add(e, f); let gh = add(g, h);
            let abcd = add(ab, cd); let efgh = add(ef, gh);
            add(abcd, efgh)
        }
        .run_on(&rt)
        .unwrap()
    });
    assert_eq!(total, 36);
}

#[test]
fn graphs_run_concurrently_on_one_runtime() {
    watchdog(30, || {
        let rt = runtime(2);
        std::thread::scope(|scope| {
            for t in 0..4u32 {
                let rt = &rt;
                scope.spawn(move || {
                    for i in 0..200u32 {
                        let r = dag! { let a = add(t, i); let b = add(a, 1); b }
                            .run_on(rt)
                            .unwrap();
                        assert_eq!(r, t + i + 1);
                    }
                });
            }
        });
    });
}
