//! The multi-rank checks as one program: `cargo test` runs it as one rank, and CI runs it
//! again under `mpirun -n 2` and `-n 4` (and across two network namespaces). Each rank
//! runs every check; a rank whose check fails prints it and exits non-zero.

mod checks;

fn main() {
    // A hang is a failure: end the rank (mpirun then ends the others).
    std::thread::spawn(|| {
        std::thread::sleep(std::time::Duration::from_secs(300));
        eprintln!("ranks: still running after 300 s");
        std::process::exit(3);
    });
    let cluster = dagger_mpi::init().expect("the cluster starts");
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    println!(
        "rank {}/{} on host {}",
        cluster.rank(),
        cluster.size(),
        host.trim()
    );
    let mut failed = 0;
    for (name, check) in checks::selected() {
        match check(&cluster) {
            Ok(()) => println!("rank {}/{}: {name} ok", cluster.rank(), cluster.size()),
            Err(why) => {
                failed += 1;
                eprintln!(
                    "rank {}/{}: {name} FAILED: {why}",
                    cluster.rank(),
                    cluster.size()
                );
            }
        }
    }
    if let Err(error) = cluster.finish() {
        failed += 1;
        eprintln!("{error}");
    }
    if failed > 0 {
        std::process::exit(1);
    }
}
