//! Tiled matrix multiply and Cholesky against one call of faer on all cores, in the same
//! run with interleaved rounds, then a tile-size sweep showing where the runtime's
//! overhead stops mattering. `ROUNDS` (default 3) and `MAX_N` (default 4096) adjust it.

use std::time::{Duration, Instant};

use dagger_array::DArray;
use dagger_core::Runtime;
use faer::dyn_stack::{MemBuffer, MemStack};
use faer::linalg::cholesky::llt::factor::{cholesky_in_place, cholesky_in_place_scratch};
use faer::linalg::matmul::matmul;
use faer::{Accum, Mat, Par};

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn spd(n: usize) -> Vec<f64> {
    // Diagonally dominant and symmetric: positive definite.
    let mut a = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..=i {
            let v = (((i * 31 + j * 17) % 101) as f64) / 101.0;
            a[i * n + j] = v;
            a[j * n + i] = v;
        }
        a[i * n + i] += n as f64;
    }
    a
}

struct Line {
    what: String,
    ours: Vec<Duration>,
    theirs: Vec<Duration>,
}

impl Line {
    fn print(&self, threads: usize) {
        let (ours, theirs) = (median(self.ours.clone()), median(self.theirs.clone()));
        let best = |v: &[Duration]| v.iter().min().copied().unwrap_or_default();
        println!(
            "{:<34} threads {threads}: dagger median {:>9.2} ms (best {:>9.2}), faer median {:>9.2} ms (best {:>9.2}), ratio {:.3}",
            self.what,
            ours.as_secs_f64() * 1e3,
            best(&self.ours).as_secs_f64() * 1e3,
            theirs.as_secs_f64() * 1e3,
            best(&self.theirs).as_secs_f64() * 1e3,
            ours.as_secs_f64() / theirs.as_secs_f64(),
        );
    }
}

fn matmul_line(rt: &Runtime, n: usize, tile: usize, threads: usize, rounds: usize) -> Line {
    let a_data: Vec<f64> = (0..n * n).map(|k| (k % 97) as f64 / 97.0).collect();
    let b_data: Vec<f64> = (0..n * n).map(|k| (k % 89) as f64 / 89.0).collect();
    let (a, b) = rt.install(|| {
        let a = DArray::from_slice(&a_data, (n, n), (tile, tile)).unwrap();
        let b = DArray::from_slice(&b_data, (n, n), (tile, tile)).unwrap();
        a.wait().unwrap();
        b.wait().unwrap();
        (a, b)
    });
    let fa = Mat::from_fn(n, n, |i, j| a_data[i * n + j]);
    let fb = Mat::from_fn(n, n, |i, j| b_data[i * n + j]);
    let mut fc = Mat::<f64>::zeros(n, n);
    let mut line = Line {
        what: format!("matmul N={n} tile={tile}"),
        ours: vec![],
        theirs: vec![],
    };
    for _ in 0..rounds {
        let start = Instant::now();
        let c = rt.install(|| a.matmul(&b).unwrap());
        c.wait().unwrap();
        line.ours.push(start.elapsed());
        let check = c.get(n - 1, n / 2).unwrap();
        drop(c);
        let start = Instant::now();
        matmul(
            fc.as_mut(),
            Accum::Replace,
            fa.as_ref(),
            fb.as_ref(),
            1.0,
            Par::rayon(threads),
        );
        line.theirs.push(start.elapsed());
        assert!((check - fc[(n - 1, n / 2)]).abs() < 1e-8 * check.abs().max(1.0));
    }
    line
}

fn cholesky_line(rt: &Runtime, n: usize, tile: usize, threads: usize, rounds: usize) -> Line {
    let data = spd(n);
    let a = rt.install(|| {
        let a = DArray::from_slice(&data, (n, n), (tile, tile)).unwrap();
        a.wait().unwrap();
        a
    });
    let dense = Mat::from_fn(n, n, |i, j| data[i * n + j]);
    let mut line = Line {
        what: format!("cholesky N={n} tile={tile}"),
        ours: vec![],
        theirs: vec![],
    };
    for _ in 0..rounds {
        let start = Instant::now();
        let l = rt.install(|| a.cholesky().unwrap());
        line.ours.push(start.elapsed());
        let check = l.get(n - 1, n - 1).unwrap();
        drop(l);
        let mut work = dense.clone();
        let par = Par::rayon(threads);
        let mut memory =
            MemBuffer::new(cholesky_in_place_scratch::<f64>(n, par, Default::default()));
        let start = Instant::now();
        cholesky_in_place(
            work.as_mut(),
            Default::default(),
            par,
            MemStack::new(&mut memory),
            Default::default(),
        )
        .unwrap();
        line.theirs.push(start.elapsed());
        assert!((check - work[(n - 1, n - 1)]).abs() < 1e-8 * check.abs());
    }
    line
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let rounds = env("ROUNDS", 3);
    let max_n = env("MAX_N", 4096);
    let rt = Runtime::builder().threads(threads).build().unwrap();
    println!("# tiled f64 linear algebra, {threads} threads, {rounds} interleaved rounds, ratio = dagger / faer");
    for (n, tiles) in [(1024, &[128, 256][..]), (2048, &[256, 512]), (4096, &[512])] {
        if n > max_n {
            continue;
        }
        for &tile in tiles {
            matmul_line(&rt, n, tile, threads, rounds).print(threads);
            cholesky_line(&rt, n, tile, threads, rounds).print(threads);
        }
    }
    println!("# tile-size sweep at N=1024: where the runtime's overhead stops mattering");
    for tile in [32, 64, 128, 256, 512] {
        matmul_line(&rt, 1024, tile, threads, rounds).print(threads);
        cholesky_line(&rt, 1024, tile, threads, rounds).print(threads);
    }
}
