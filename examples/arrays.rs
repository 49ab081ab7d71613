//! Blocked arrays: a least-squares fit done with tiled linear algebra. Build the normal
//! equations `AᵀA x = Aᵀb` from a blocked design matrix, factor `AᵀA` with the tiled
//! Cholesky, and solve with two tiled triangular solves; every step is a graph of block
//! tasks.
//!
//! `cargo run --release --features array --example arrays`

use dagger::array::DArray;
use dagger::Error;

fn main() -> Result<(), Error> {
    let (rows, features, block) = (20_000, 256, 64);
    // A known answer: b = A x_true + small noise.
    let x_true: Vec<f64> = (0..features).map(|j| (j as f64 * 0.37).sin()).collect();
    let a = DArray::<f64>::random((rows, features), (2_000, block), 1)?;
    let noise = DArray::<f64>::random((rows, 1), (2_000, 1), 2)?.scale(1e-6);
    let x_col = DArray::from_vec(x_true.clone(), (features, 1), (block, 1))?;
    let b = a.matmul(&x_col)?.plus(&noise)?;

    let start = std::time::Instant::now();
    let at = a.transpose().reblock((block, 2_000))?; // Aᵀ, with blocks that match A's rows
    let ata = at.matmul(&a)?; // features x features, symmetric positive definite
    let atb = at.matmul(&b)?;
    let l = ata.cholesky()?; // AᵀA = L Lᵀ
    let x = l.cholesky_solve(&atb)?.collect()?; // L y = Aᵀb, then Lᵀ x = y
    let elapsed = start.elapsed();

    let worst = x
        .iter()
        .zip(&x_true)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    println!(
        "least squares: {rows} x {features} in {block}-wide blocks, {:.1} ms, largest error {worst:.2e}",
        elapsed.as_secs_f64() * 1e3
    );
    println!(
        "residual mean {:.3e}, x[0..4] = {:?}",
        a.matmul(&DArray::from_vec(x.clone(), (features, 1), (block, 1))?)?
            .minus(&b)?
            .map(f64::abs)
            .mean()?,
        &x[..4]
    );
    assert!(worst < 1e-6, "the fit is off by {worst}");
    Ok(())
}
