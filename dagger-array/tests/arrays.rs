//! Blocked arrays against dense references, over random shapes and block sizes (ragged
//! edge blocks included), and the errors for bad input. Every test runs under a watchdog.

#[path = "../../tests/common/watchdog.rs"]
mod watchdog;
use watchdog::watchdog;

use dagger_array::{DArray, NotPositiveDefinite, Shape};
use dagger_core::Error;
use proptest::prelude::*;

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * (1.0 + a.abs().max(b.abs()))
}

fn assert_close(got: &[f64], want: &[f64], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    for (k, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(close(*g, *w), "{what}: element {k}: {g} vs {w}");
    }
}

fn dense(rows: usize, cols: usize, seed: u64) -> Vec<f64> {
    (0..rows * cols)
        .map(|k| ((k as u64 * 2_654_435_761 + seed * 97) % 1000) as f64 / 100.0 - 5.0)
        .collect()
}

fn dense_matmul(a: &[f64], b: &[f64], m: usize, k: usize, n: usize) -> Vec<f64> {
    let mut c = vec![0.0; m * n];
    for i in 0..m {
        for p in 0..k {
            for j in 0..n {
                c[i * n + j] += a[i * k + p] * b[p * n + j];
            }
        }
    }
    c
}

/// A symmetric positive definite matrix: M Mᵀ + n I.
fn spd(n: usize, seed: u64) -> Vec<f64> {
    let m = dense(n, n, seed);
    let mut mt = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..n {
            mt[j * n + i] = m[i * n + j];
        }
    }
    let mut a = dense_matmul(&m, &mt, n, n, n);
    for i in 0..n {
        a[i * n + i] += n as f64;
    }
    a
}

fn shapes() -> impl Strategy<Value = (usize, usize, usize, usize)> {
    (1usize..40, 1usize..40, 1usize..12, 1usize..12)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn construction_collection_and_indexing((rows, cols, br, bc) in shapes(), seed in 0u64..100) {
        let data = dense(rows, cols, seed);
        let want = data.clone();
        let (a, got, some, first_block) = watchdog(60, move || {
            let a = DArray::from_vec(data, (rows, cols), (br, bc)).unwrap();
            let got = a.collect().unwrap();
            let some = a.get(rows - 1, cols / 2).unwrap();
            let first_block = a.block(0, 0).unwrap();
            (a.shape(), got, some, first_block)
        });
        prop_assert_eq!(a, Shape { rows, cols });
        prop_assert_eq!(&got, &want);
        prop_assert_eq!(some, want[(rows - 1) * cols + cols / 2]);
        prop_assert_eq!(first_block.shape(), Shape { rows: br.min(rows), cols: bc.min(cols) });
        prop_assert_eq!(*first_block.at(0, 0), want[0]);
    }

    #[test]
    fn elementwise_and_reductions((rows, cols, br, bc) in shapes(), seed in 0u64..100) {
        let (x, y) = (dense(rows, cols, seed), dense(rows, cols, seed + 1));
        let (xs, ys) = (x.clone(), y.clone());
        let got = watchdog(60, move || {
            let a = DArray::from_vec(xs, (rows, cols), (br, bc)).unwrap();
            let b = DArray::from_vec(ys, (rows, cols), (br, bc)).unwrap();
            let combined = a.plus(&b).unwrap().scale(2.0).shift(1.0).hadamard(&a).unwrap();
            let squares = a.map(|v| v * v);
            (
                combined.collect().unwrap(),
                squares.collect().unwrap(),
                a.minus(&b).unwrap().collect().unwrap(),
                [a.sum().unwrap(), a.min().unwrap(), a.max().unwrap(), a.mean().unwrap()],
                a.map(|v| 1.0 + v.abs() / 1000.0).product().unwrap(),
                a.map_reduce(|v| (v > 0.0) as usize, |p, q| p + q, 0).unwrap(),
            )
        });
        let n = (rows * cols) as f64;
        let want_combined: Vec<f64> = x.iter().zip(&y).map(|(a, b)| ((a + b) * 2.0 + 1.0) * a).collect();
        assert_close(&got.0, &want_combined, "combined");
        assert_close(&got.1, &x.iter().map(|v| v * v).collect::<Vec<_>>(), "squares");
        assert_close(&got.2, &x.iter().zip(&y).map(|(a, b)| a - b).collect::<Vec<_>>(), "minus");
        let sum: f64 = x.iter().sum();
        prop_assert!(close(got.3[0], sum));
        prop_assert_eq!(got.3[1], x.iter().cloned().fold(f64::INFINITY, f64::min));
        prop_assert_eq!(got.3[2], x.iter().cloned().fold(f64::NEG_INFINITY, f64::max));
        prop_assert!(close(got.3[3], sum / n));
        let product: f64 = x.iter().map(|v| 1.0 + v.abs() / 1000.0).product();
        prop_assert!((got.4 / product - 1.0).abs() < 1e-9);
        prop_assert_eq!(got.5, x.iter().filter(|&&v| v > 0.0).count());
    }

    #[test]
    fn transpose_and_matmul(m in 1usize..30, k in 1usize..30, n in 1usize..30,
                            bm in 1usize..9, bk in 1usize..9, bn in 1usize..9, seed in 0u64..100) {
        let (a, b) = (dense(m, k, seed), dense(k, n, seed + 7));
        let want = dense_matmul(&a, &b, m, k, n);
        let (aa, bb) = (a.clone(), b.clone());
        let (product, transposed) = watchdog(60, move || {
            let da = DArray::from_vec(aa, (m, k), (bm, bk)).unwrap();
            let db = DArray::from_vec(bb, (k, n), (bk, bn)).unwrap();
            (da.matmul(&db).unwrap().collect().unwrap(), da.transpose().collect().unwrap())
        });
        assert_close(&product, &want, "matmul");
        for i in 0..m {
            for j in 0..k {
                prop_assert_eq!(transposed[j * m + i], a[i * k + j]);
            }
        }
    }

    #[test]
    fn cholesky_and_triangular_solve(n in 1usize..40, block in 1usize..12, rhs in 1usize..6, seed in 0u64..100) {
        let a = spd(n, seed);
        let b = dense(n, rhs, seed + 3);
        let (aa, bb) = (a.clone(), b.clone());
        let (l, x, solved) = watchdog(60, move || {
            let da = DArray::from_vec(aa, (n, n), (block, block)).unwrap();
            let l = da.cholesky().unwrap();
            let db = DArray::from_vec(bb, (n, rhs), (block, 2)).unwrap();
            let x = l.solve_lower_triangular(&db).unwrap();
            let solved = l.cholesky_solve(&db).unwrap();
            (l.collect().unwrap(), x.collect().unwrap(), solved.collect().unwrap())
        });
        for i in 0..n {
            for j in i + 1..n {
                prop_assert_eq!(l[i * n + j], 0.0, "L is lower triangular");
            }
        }
        let mut lt = vec![0.0; n * n];
        for i in 0..n {
            for j in 0..n {
                lt[j * n + i] = l[i * n + j];
            }
        }
        let llt = dense_matmul(&l, &lt, n, n, n);
        for (k, (g, w)) in llt.iter().zip(&a).enumerate() {
            prop_assert!((g - w).abs() <= 1e-8 * w.abs().max(1.0) * n as f64, "L Lᵀ[{}]: {} vs {}", k, g, w);
        }
        let lx = dense_matmul(&l, &x, n, n, rhs);
        for (g, w) in lx.iter().zip(&b) {
            prop_assert!((g - w).abs() <= 1e-8 * (1.0 + w.abs()), "L X = B: {} vs {}", g, w);
        }
        let ax = dense_matmul(&a, &solved, n, n, rhs);
        for (g, w) in ax.iter().zip(&b) {
            prop_assert!((g - w).abs() <= 1e-8 * (1.0 + w.abs()) * n as f64, "A X = B: {} vs {}", g, w);
        }
    }

    #[test]
    fn jacobi_matches_a_dense_sweep((rows, cols, br, bc) in shapes(), sweeps in 0usize..4, seed in 0u64..100) {
        let data = dense(rows, cols, seed);
        let input = data.clone();
        let got = watchdog(60, move || {
            DArray::from_vec(input, (rows, cols), (br, bc)).unwrap().jacobi(sweeps).unwrap().collect().unwrap()
        });
        let mut want = data;
        for _ in 0..sweeps {
            let old = want.clone();
            for i in 1..rows.saturating_sub(1) {
                for j in 1..cols.saturating_sub(1) {
                    want[i * cols + j] = 0.25
                        * (old[(i - 1) * cols + j] + old[(i + 1) * cols + j] + old[i * cols + j - 1] + old[i * cols + j + 1]);
                }
            }
        }
        assert_close(&got, &want, "jacobi");
    }
}

#[test]
fn seeded_random_arrays_do_not_depend_on_the_blocking() {
    watchdog(60, || {
        let a = DArray::<f64>::random((50, 30), (7, 11), 42)
            .unwrap()
            .collect()
            .unwrap();
        let b = DArray::<f64>::random((50, 30), (50, 30), 42)
            .unwrap()
            .collect()
            .unwrap();
        let c = DArray::<f64>::random((50, 30), (7, 11), 43)
            .unwrap()
            .collect()
            .unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert!(a.iter().all(|v| (0.0..1.0).contains(v)));
        let ones = DArray::<f32>::ones((5, 5), (2, 2)).unwrap();
        assert_eq!(ones.sum().unwrap(), 25.0);
        assert_eq!(DArray::<f64>::zeros(9, (4, 1)).unwrap().max().unwrap(), 0.0);
        let v = DArray::from_vec_1d((0..10).collect::<Vec<u32>>(), 3).unwrap();
        assert_eq!((v.ndim(), v.grid(), v.get(7, 0).unwrap()), (1, (4, 1), 7));
        let r = DArray::from_fn((6, 6), (4, 4), |i, j| (i * 6 + j) as f64).unwrap();
        assert_eq!(
            r.reblock((5, 2)).unwrap().collect().unwrap(),
            r.collect().unwrap()
        );
    });
}

#[test]
fn bad_input_is_a_clear_error() {
    watchdog(60, || {
        let invalid = |r: Result<DArray<f64>, Error>, needle: &str| match r {
            Err(Error::InvalidUse(message)) => assert!(message.contains(needle), "{message}"),
            other => panic!("expected InvalidUse containing {needle:?}, got {other:?}"),
        };
        invalid(DArray::from_vec(vec![1.0; 5], (2, 3), (1, 1)), "6 elements");
        invalid(DArray::zeros((4, 4), (0, 2)), "at least 1");
        invalid(DArray::zeros(4, (2, 0)), "at least 1");
        let a = DArray::<f64>::ones((4, 6), (2, 3)).unwrap();
        let b = DArray::<f64>::ones((4, 6), (2, 2)).unwrap();
        invalid(a.plus(&b), "block shapes differ");
        invalid(
            a.plus(&DArray::ones((4, 5), (2, 3)).unwrap()),
            "shapes differ",
        );
        invalid(a.matmul(&a), "inner sizes 6 and 4");
        invalid(a.matmul(&DArray::ones((6, 2), (2, 2)).unwrap()), "re-block");
        invalid(a.cholesky(), "square matrix");
        invalid(
            DArray::<f64>::ones((4, 4), (2, 1)).unwrap().cholesky(),
            "square blocks",
        );
        invalid(
            DArray::<f64>::zeros((4, 4), (2, 2))
                .unwrap()
                .solve_lower_triangular(&a),
            "singular",
        );
        assert!(a.get(4, 0).is_err() && a.block(0, 2).is_err());
        assert!(DArray::<f64>::zeros((0, 3), (2, 2)).unwrap().min().is_err());
        assert!(DArray::<f64>::zeros((0, 3), (2, 2))
            .unwrap()
            .mean()
            .is_err());
        assert_eq!(
            DArray::<f64>::zeros((0, 3), (2, 2)).unwrap().sum().unwrap(),
            0.0
        );
    });
}

#[test]
fn a_matrix_that_is_not_positive_definite_is_reported_with_its_pivot() {
    watchdog(60, || {
        // Identity except for a negative entry at (5, 5): the pivot of row 5 fails.
        let a = DArray::from_fn((8, 8), (3, 3), |i, j| match (i, j) {
            (5, 5) => -1.0,
            (i, j) if i == j => 1.0,
            _ => 0.0,
        })
        .unwrap();
        let error = a.cholesky().unwrap_err();
        let source = std::error::Error::source(&error)
            .and_then(|s| s.downcast_ref::<NotPositiveDefinite>())
            .unwrap_or_else(|| panic!("the source is not NotPositiveDefinite: {error}"));
        assert_eq!(source.row, 5);
        assert!(
            error.to_string().contains("not positive definite"),
            "{error}"
        );
    });
}
