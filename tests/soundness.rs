//! The forms a clever user writes to make a `dag!` misbehave: each runs as a `dag!` on 1,
//! 2 and 4 threads and must give what the same block gives as plain Rust. The escapes
//! that must not compile are trybuild cases in `tests/ui/` (`dag_escape_*`).

#![allow(clippy::all)] // the forms under test are deliberately unidiomatic

#[macro_use]
mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Mutex;

use common::{jitter, watchdog};
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
fn add(a: u64, b: u64) -> u64 {
    jitter(a ^ b);
    a + b
}

#[task]
fn width(n: u64) -> usize {
    n as usize
}

#[task]
fn maybe(n: u64) -> Option<u64> {
    (n % 2 == 0).then_some(n)
}

#[task]
fn open() -> (Sender<u64>, Receiver<u64>) {
    channel()
}

#[task]
fn send(tx: Sender<u64>, values: Vec<u64>) -> usize {
    let count = values.len();
    for v in values {
        tx.send(v).unwrap();
    }
    count
}

/// Reads what `send` sent; taking its count orders it after `send` (a blocking receive
/// inside a node must not wait for a node it does not depend on).
#[task]
fn drain(rx: Receiver<u64>, sent: usize) -> u64 {
    rx.iter().take(sent).sum()
}

#[derive(Debug, PartialEq, Clone, Copy)]
struct Point {
    x: u64,
    y: u64,
}

#[derive(Debug, PartialEq)]
struct Holder {
    v: Vec<u64>,
}

#[test]
fn a_move_closure_owns_a_value_moved_into_it() {
    watchdog(60, || {
        same_as_sequential! {
            let v = make(5);
            let f = move || v.len() as u64;
            let w = make(3);
            let n = f();
            (n, w)
        };
    });
}

#[test]
fn a_move_closure_copies_a_copy_binding_that_is_written_later() {
    watchdog(60, || {
        same_as_sequential! {
            let mut n = add(1, 2);
            let f = move || n * 10;
            n = add(n, 100);
            let early = f();
            (early, n)
        };
    });
}

#[test]
fn an_async_move_block_owns_what_it_captures() {
    watchdog(60, || {
        fn block_on<F: std::future::Future>(future: F) -> F::Output {
            let mut future = std::pin::pin!(future);
            let mut context = std::task::Context::from_waker(std::task::Waker::noop());
            loop {
                if let std::task::Poll::Ready(value) = future.as_mut().poll(&mut context) {
                    return value;
                }
            }
        }
        same_as_sequential! {
            let v = make(4);
            let k = add(1, 1);
            let fut = async move { total(&v) * k };
            let w = add(k, 1);
            (block_on(fut), w)
        };
    });
}

#[test]
fn struct_shorthand_moves_and_copies() {
    watchdog(60, || {
        same_as_sequential! {
            let v = make(4);
            let x = add(1, 2);
            let y = add(3, 4);
            let h = Holder { v };
            let p = Point { x, y };
            let z = add(x, y);
            (h, p, z)
        };
    });
}

#[test]
fn struct_shorthand_inside_a_macro() {
    watchdog(60, || {
        same_as_sequential! {
            let x = add(1, 2);
            let s = format!("{:?}", Point { x, y: 7 });
            let z = add(x, 1);
            (s, z)
        };
    });
}

#[test]
fn pattern_names_end_where_rust_scopes_end() {
    watchdog(60, || {
        // Outer variables named like the block's bindings: a use the macro misses would
        // silently read these.
        let x = 1_000_u64;
        let v = vec![9_u64; 9];
        let _ = (x, &v);
        same_as_sequential! {
            let x = add(1, 2);
            let v = make(3);
            let a = match maybe(4) { Some(x) => x, None => 0 } + x;
            let b = if let Some(x) = maybe(6) { x } else { 0 } + x;
            let c = [1_u64, 2].iter().map(|x| x * 2).sum::<u64>() + x;
            let d = { let x = 50_u64; x } + x;
            let e = { let mut t = 0; for x in 0..3_u64 { t += x } t } + x + v.len() as u64;
            let f = { let mut it = vec![1_u64].into_iter(); let mut t = 0; while let Some(x) = it.next() { t += x } t } + x;
            let g = (|v: u64| v + 1)(5) + v.len() as u64;
            (a, b, c, d, e, f, g)
        };
    });
}

#[test]
fn consuming_methods_on_a_last_use() {
    watchdog(60, || {
        same_as_sequential! {
            let v = make(4);
            let o = maybe(2);
            let n = total(&v);
            let doubled: Vec<u64> = v.into_iter().map(|x| x * 2).collect();
            let m = o.unwrap() + n;
            (doubled, m)
        };
    });
}

#[test]
fn a_move_inside_a_branch_or_block() {
    watchdog(60, || {
        same_as_sequential! {
            let a = make(3);
            let b = make(2);
            let c = add(1, 1);
            let w = if c > 1 { a } else { Vec::new() };
            let u = { let mut b = b; b.push(c); b };
            (w, u)
        };
    });
}

#[test]
fn reassigning_a_moved_binding() {
    watchdog(60, || {
        same_as_sequential! {
            let mut a = make(3);
            let first = total(&a);
            let kept = a;
            a = make(5);
            push(&mut a, 7);
            let second = total(&a);
            (first, kept, second, a)
        };
    });
}

#[test]
fn a_labeled_block_breaks_with_a_value() {
    watchdog(60, || {
        same_as_sequential! {
            let x = add(2, 3);
            let y = 'pick: {
                if x > 4 {
                    break 'pick x * 10;
                }
                x
            };
            let z = add(y, x);
            z
        };
    });
}

#[test]
fn closure_parameters_named_like_bindings_inside_macros() {
    watchdog(60, || {
        same_as_sequential! {
            let a = make(3);
            let kept = a;
            let s = format!("{:?}", [1_u64, 2].iter().map(|a| a + 1).collect::<Vec<_>>());
            (kept, s)
        };
    });
}

#[test]
fn format_arguments_name_bindings() {
    watchdog(60, || {
        same_as_sequential! {
            let w = width(7);
            let p = width(2);
            let value = add(10, 20);
            let named = format!("[{value}] [{value:>w$}] [{:>w$.p$}]", 1.5_f64);
            let positional = format!("[{0}] [{0:1$}]", value, w);
            let again = w + p;
            (named, positional, again)
        };
    });
}

#[test]
fn send_but_not_sync_values_move_between_nodes() {
    watchdog(60, || {
        same_as_sequential! {
            let (tx, rx) = open();
            let values = make(5);
            let sent = send(tx, values);
            let sum = drain(rx, sent);
            sum
        };
    });
}

#[test]
fn a_cell_read_by_one_node_at_a_time() {
    watchdog(60, || {
        same_as_sequential! {
            // `mut`: every statement that uses `c` runs alone, so `Cell` needs no `Sync`.
            #[allow(unused_mut)]
            let mut c = { std::cell::Cell::new(3_u64) };
            c.set(c.get() * 2);
            let read = c.get();
            let n = add(read, 1);
            (n, read, c.into_inner())
        };
    });
}

#[test]
fn stringify_and_assert_show_the_users_code() {
    watchdog(60, || {
        same_as_sequential! {
            let a = add(1, 2);
            let text = stringify!(a + 1 == total(&v));
            let message = format!("{a:?} {}", stringify!(a));
            let b = add(a, 1);
            (text, message, b)
        };
        let failed = dag! {
            let a = add(1, 2);
            assert!(a + 1 == 0, "a is {a}");
            a
        }
        .run()
        .unwrap_err();
        let text = failed.to_string();
        assert!(
            text.contains("a is 3"),
            "the assertion's message reaches the error: {text}"
        );
        let failed = dag! {
            let a = add(1, 2);
            assert!(a + 1 == 0);
            a
        }
        .run()
        .unwrap_err()
        .to_string();
        assert!(failed.contains("assertion failed: a + 1 == 0"), "{failed}");
    });
}

#[test]
fn outer_variables_get_edges_like_bindings() {
    watchdog(60, || {
        let expected = {
            let data = vec![1_u64, 2, 3];
            let mut log = Vec::new();
            let n = total(&data);
            push(&mut log, n);
            push(&mut log, 5);
            let moved = data;
            (n, moved, log)
        };
        for threads in [1, 2, 4] {
            let rt = common::runtime(threads);
            for _ in 0..25 {
                let data = vec![1_u64, 2, 3];
                let mut log = Vec::new();
                let got = dag! {
                    let n = total(&data);
                    push(&mut log, n);
                    push(&mut log, 5);
                    let moved = data;
                    (n, moved)
                }
                .run_on(&rt)
                .unwrap();
                assert_eq!((got.0, got.1, log), expected, "{threads} threads");
            }
        }
    });
}

#[test]
fn outer_variable_assigned_in_two_statements() {
    watchdog(60, || {
        for threads in [1, 2, 4] {
            let rt = common::runtime(threads);
            let mut count = 0_u64;
            let last = dag! {
                let a = add(1, 2);
                count += a;
                count = count * 10;
                let b = add(a, 1);
                b
            }
            .run_on(&rt)
            .unwrap();
            assert_eq!((count, last), (30, 4));
        }
    });
}

/// Side effects through shared references are not ordered: two statements that lock
/// one `Mutex` run in either order, so only an order-independent result is compared.
/// Ordering them takes `&mut` (see the crate docs).
#[test]
fn side_effects_through_shared_references_happen_once_each() {
    watchdog(60, || {
        for threads in [1, 2, 4] {
            let rt = common::runtime(threads);
            let counter = AtomicU64::new(0);
            let seen = Mutex::new(Vec::new());
            dag! {
                let a = add(1, 2);
                seen.lock().unwrap().push(a);
                counter.fetch_add(a, Ordering::SeqCst);
                let b = add(a, 1);
                seen.lock().unwrap().push(b);
                counter.fetch_add(b, Ordering::SeqCst);
            }
            .run_on(&rt)
            .unwrap();
            let mut seen = seen.into_inner().unwrap();
            seen.sort();
            assert_eq!((counter.into_inner(), seen), (7, vec![3, 4]));
        }
    });
}

#[test]
fn an_explicit_mut_orders_method_calls_on_an_outer_variable() {
    watchdog(60, || {
        for threads in [1, 2, 4] {
            let rt = common::runtime(threads);
            let mut log: Vec<u64> = Vec::new();
            let got = dag! {
                let a = add(1, 2);
                (&mut log).push(a);
                log.push(add(a, 1));
                let b = add(a, 10);
                log.push(b);
                b
            }
            .run_on(&rt)
            .unwrap();
            assert_eq!((got, log), (13, vec![3, 4, 13]), "{threads} threads");
        }
    });
}

#[test]
fn a_mutated_outer_copy_variable_is_written_back() {
    watchdog(60, || {
        for threads in [1, 2, 4] {
            let rt = common::runtime(threads);
            let mut count = 0_u64;
            let snapshot = dag! {
                count += 5;
                let snapshot = count;
                snapshot
            }
            .run_on(&rt)
            .unwrap();
            assert_eq!((snapshot, count), (5, 5), "{threads} threads");

            let mut count = 0_u64;
            let got = dag! {
                let a = add(count, 1);
                let b = add(count, 2);
                { count += a + b; count }
            }
            .run_on(&rt)
            .unwrap();
            assert_eq!((got, count), (3, 3), "{threads} threads");
        }
    });
}

#[test]
fn destructuring_assignment_swaps() {
    watchdog(60, || {
        same_as_sequential! {
            let mut a = add(1, 0);
            let mut b = add(2, 0);
            (a, b) = (b, a);
            [a, b] = [b * 10, a * 10];
            let c = add(a, b);
            (a, b, c)
        };
    });
}

#[test]
fn let_underscore_does_not_move() {
    watchdog(60, || {
        same_as_sequential! {
            let v = make(3);
            let _ = v;
            let n = total(&v);
            (n, v)
        };
    });
}

#[test]
fn constructor_calls_are_glue() {
    watchdog(60, || {
        same_as_sequential! {
            let x = add(1, 2);
            let o = Some(x);
            let r: Result<u64, String> = Ok(x);
            let y = add(o.unwrap(), r.unwrap());
            y
        };
    });
}

#[test]
fn names_inside_unparsed_macro_tokens_are_seen() {
    watchdog(60, || {
        // Outer variables of the same names: a missed use would read them instead.
        let limit = 100_u64;
        let n = 100_u64;
        let _ = (limit, n);
        same_as_sequential! {
            let limit = add(2, 2);
            let n = add(3, 3);
            let o = Some(add(2, 3));
            let a = matches!(o, Some(v) if limit != v);
            let b = matches!(o, Some(v) if (0..n).contains(&v));
            (a, b, limit, n)
        };
    });
}

#[test]
fn an_outer_vector_moved_into_a_binding_is_written_and_consumed() {
    watchdog(60, || {
        for threads in [1, 2, 4] {
            let rt = common::runtime(threads);
            let v = vec![1_u64, 2];
            let got = dag! {
                let mut w = v;
                push(&mut w, 7);
                let n = total(&w);
                (n, w)
            }
            .run_on(&rt)
            .unwrap();
            assert_eq!(got, (10, vec![1, 2, 7]), "{threads} threads");
        }
    });
}
