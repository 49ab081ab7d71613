//! A distributed Cholesky factorization on MPI ranks: each tile task runs on the rank that
//! owns the tile it writes, and the tiles it reads are sent there. Run it on four ranks:
//!
//! ```text
//! cargo build --release --example distributed --features mpi
//! mpirun -n 4 target/release/examples/distributed
//! ```
//!
//! Without `mpirun` it is one rank. It prints, on rank 0, the residual `|L Lᵀ - A|` and
//! the values and bytes each rank sent.

use dagger::mpi::{DistArray, Placement};

fn main() -> Result<(), dagger::Error> {
    let cluster = dagger::mpi::init()?;
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
    let traffic = cluster.traffic();
    let me = dagger::spawn(move || vec![traffic.sent, traffic.sent_bytes]);
    let all = cluster.all_gather(&me)?.fetch()?;
    if cluster.rank() == 0 {
        println!(
            "cholesky of a {n}x{n} matrix in {block}x{block} tiles on {} ranks (grid {:?}): \
             max |L Lᵀ - A| = {residual:.2e}, {:.1} ms",
            cluster.size(),
            grid.grid(),
            elapsed.as_secs_f64() * 1e3
        );
        for (rank, sent) in all.iter().enumerate() {
            println!("rank {rank}: sent {} values, {} bytes", sent[0], sent[1]);
        }
    }
    cluster.finish()
}
