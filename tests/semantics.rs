//! `dag!` gives the same result as the block run as plain Rust, for every kind of edge.

#[macro_use]
mod common;

use common::{jitter, runtime, watchdog};
use dagger::prelude::*;

#[task]
fn make(n: u64) -> Vec<u64> {
    jitter(n);
    (0..n).collect()
}

#[task]
fn total(v: &[u64]) -> u64 {
    jitter(v.len() as u64);
    v.iter().sum()
}

#[task]
fn push(v: &mut Vec<u64>, x: u64) {
    jitter(x);
    v.push(x)
}

#[task]
fn scale(v: &mut [u64], k: u64) {
    jitter(k);
    v.iter_mut().for_each(|x| *x *= k);
}

#[task]
fn join(mut a: Vec<u64>, b: Vec<u64>) -> Vec<u64> {
    a.extend(b);
    a
}

#[task]
fn add(a: u64, b: u64) -> u64 {
    jitter(a ^ b);
    a + b
}

#[task]
fn pair(x: u64) -> (u64, u64) {
    (x, x * 10)
}

#[test]
fn read_after_write() {
    watchdog(60, || {
        same_as_sequential! {
            let mut v = make(10);
            push(&mut v, 100);
            let s = total(&v);
            (s, v.len())
        };
    });
}

#[test]
fn write_after_read() {
    watchdog(60, || {
        same_as_sequential! {
            let mut v = make(10);
            let before = total(&v);
            let also_before = total(&v);
            scale(&mut v, 3);
            let after = total(&v);
            (before, also_before, after)
        };
    });
}

#[test]
fn write_after_write() {
    watchdog(60, || {
        same_as_sequential! {
            let mut v = make(3);
            push(&mut v, 7);
            scale(&mut v, 2);
            push(&mut v, 9);
            v
        };
    });
}

#[test]
fn moves_and_copies() {
    watchdog(60, || {
        let out = same_as_sequential! {
            let a = make(4);
            let b = make(5);
            let x = add(3, 4);
            let y = add(x, x);          // x is Copy: used again below
            let z = add(x, y);
            let c = join(a, b);         // last use of a and b: moved
            let n = total(&c);
            (c, n, z)
        };
        assert_eq!(out.2, 21);
    });
}

#[test]
fn assignment_and_compound_assignment_are_writes() {
    watchdog(60, || {
        same_as_sequential! {
            let mut n = add(1, 2);
            let before = add(n, 0);
            n += 10;
            let middle = add(n, 0);
            n = add(n, 100);
            (before, middle, n)
        };
    });
}

#[test]
fn glue_method_calls_macros_and_closures() {
    watchdog(60, || {
        same_as_sequential! {
            let mut v = make(6);
            let len = v.len();
            let evens: Vec<u64> = v.iter().copied().filter(|x| x % 2 == 0).collect();
            v.push(len as u64);
            let text = format!("{len} {:?}", evens);
            let described = format!("{v:?}");
            scale(&mut v, 2);
            (text, described, v)
        };
    });
}

#[test]
fn tuple_patterns_and_type_annotations() {
    watchdog(60, || {
        same_as_sequential! {
            let (a, b) = pair(4);
            let c: u64 = add(a, b);
            let (mut d, _) = pair(c);
            d += 1;
            (a, b, c, d)
        };
    });
}

#[test]
fn captures_outer_values_by_reference_and_by_value() {
    watchdog(60, || {
        let data = vec![1u64, 2, 3];
        let owned = vec![10u64, 20];
        let k = 5;
        let rt = runtime(2);
        let (a, b) = dag! {
            let a = total(&data);       // borrows data
            let b = join(owned, make(k)); // moves owned
            (a, b)
        }
        .run_on(&rt)
        .unwrap();
        assert_eq!(a, 6);
        assert_eq!(b, [10, 20, 0, 1, 2, 3, 4]);
        assert_eq!(data.len(), 3, "data is still ours");
    });
}

#[test]
fn empty_block_and_block_without_tail() {
    watchdog(30, || {
        let rt = runtime(2);
        let unit: () = dag! {}.run_on(&rt).unwrap();
        let () = unit;
        let hits = std::sync::atomic::AtomicU64::new(0);
        dag! {
            let v = make(3);
            let s = total(&v);
            hits.fetch_add(s, std::sync::atomic::Ordering::SeqCst);
        }
        .run_on(&rt)
        .unwrap();
        assert_eq!(hits.into_inner(), 3);
    });
}

/// A graph of 36 nodes with interleaved shared and exclusive accesses to three bindings.
#[test]
fn thirty_six_interleaved_nodes() {
    watchdog(120, || {
        same_as_sequential! {
            let mut a = make(5);
            let mut b = make(7);
            let mut c = make(3);
            let r1 = total(&a);
            let r2 = total(&b);
            push(&mut a, r2);
            let r3 = total(&a);
            scale(&mut b, 3);
            let r4 = total(&c);
            push(&mut c, r1);
            let r5 = total(&b);
            let r6 = total(&a);
            scale(&mut a, 2);
            push(&mut b, r3);
            let r7 = total(&c);
            scale(&mut c, 5);
            let r8 = total(&a);
            let r9 = total(&b);
            push(&mut a, r9);
            push(&mut b, r8);
            let r10 = total(&c);
            let r11 = total(&a);
            scale(&mut b, 7);
            push(&mut c, r11);
            let r12 = total(&b);
            let r13 = total(&c);
            scale(&mut a, 11);
            let r14 = total(&a);
            let s1 = add(r1, r2);
            let s2 = add(r3, r4);
            let s3 = add(r5, r6);
            let s4 = add(r7, r8);
            let s5 = add(r9, r10);
            let s6 = add(r11, r12);
            let s7 = add(r13, r14);
            let abc = join(join(a, b), c);
            (abc, [s1, s2, s3, s4, s5, s6, s7])
        };
    });
}

#[task]
fn fib_graph(n: u64) -> u64 {
    if n < 2 {
        return n;
    }
    // A dag! run from inside a task: the nested graph shares the workers.
    dag! {
        let a = fib_graph(n - 1);
        let b = fib_graph(n - 2);
        add(a, b)
    }
    .run()
    .expect("nested graph")
}

#[test]
fn nested_dag_inside_a_task() {
    let value = watchdog(60, || fib_graph(12));
    assert_eq!(value, 144);
}

#[test]
fn generic_tasks_take_turbofish() {
    #[task]
    fn wrap<T: Clone + Send + Sync>(x: &T) -> Vec<T> {
        vec![x.clone(), x.clone()]
    }
    watchdog(30, || {
        let rt = runtime(2);
        let v = dag! {
            let s = { String::from("hi") };
            let w = wrap::<String>(&s);
            w
        }
        .run_on(&rt)
        .unwrap();
        assert_eq!(v, ["hi", "hi"]);
    });
}
