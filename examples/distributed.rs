//! A distributed Cholesky factorization on MPI ranks: each tile task runs on the rank that
//! owns the tile it writes, and the tiles it reads are sent there. Run it on four ranks:
//!
//! ```text
//! cargo build --release --example distributed --features mpi
//! mpirun -n 4 target/release/examples/distributed
//! ```
//!
//! Without `mpirun` it is one rank. It prints, on rank 0, the residual `|L Lᵀ - A|` and
//! what each rank ran and moved; `distributed trace.json` also writes every rank's trace
//! merged into one Chrome trace (a process per rank).

use dagger::mpi::{DistArray, Placement};
use dagger::observe::Recorder;

fn main() -> Result<(), dagger::Error> {
    let cluster = dagger::mpi::init()?;
    let recorder = Recorder::new();
    let _observing = dagger::runtime::default_runtime()?.observe(recorder.clone());
    let grid = Placement::square(&cluster);
    let (n, block) = (1200, 150);
    let started = std::time::Instant::now();
    // A symmetric positive definite matrix: 1 / (1 + |i - j|), plus n on the diagonal.
    let a = DistArray::<f64>::from_fn(&grid, (n, n), (block, block), move |i, j| {
        let off = 1.0 / (1.0 + (i as f64 - j as f64).abs());
        if i == j {
            off + n as f64
        } else {
            off
        }
    })?;
    let l = a.cholesky()?;
    let rebuilt = l.matmul(&l.transpose()?)?;
    let residual = rebuilt
        .zip_map(&a, |x, y| (x - y).abs())?
        .map_reduce(|x| x, f64::max, 0.0)?;
    let elapsed = started.elapsed();
    // Every rank's trace on rank 0: what each rank ran and moved, and one Chrome trace.
    if let Some(merged) = cluster.merge_traces(&recorder, 0)? {
        println!(
            "cholesky of a {n}x{n} matrix in {block}x{block} tiles on {} ranks (grid {:?}): \
             max |L Lᵀ - A| = {residual:.2e}, {:.1} ms",
            cluster.size(),
            grid.grid(),
            elapsed.as_secs_f64() * 1e3
        );
        print!("{merged}");
        if let Some(path) = std::env::args().nth(1) {
            std::fs::write(&path, merged.to_chrome_json())
                .map_err(|e| dagger::Error::InvalidUse(format!("writing {path}: {e}")))?;
            println!("merged trace: {path} (open it in https://ui.perfetto.dev)");
        }
    }
    cluster.finish()
}
