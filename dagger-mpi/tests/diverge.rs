//! A program that breaks the SPMD contract on purpose: rank 0 issues a different
//! distributed operation from the others. In a debug build on several ranks it must end
//! every rank with an error that names both operations (CI runs it under `mpirun -n 2`
//! and checks the message); on one rank there is nothing to compare and it succeeds.

fn main() {
    std::thread::spawn(|| {
        std::thread::sleep(std::time::Duration::from_secs(120));
        eprintln!("diverge: still running after 120 s: the divergence was not caught");
        std::process::exit(3);
    });
    let cluster = dagger_mpi::init().expect("the cluster starts");
    let first = cluster.spawn_on(0, || 1u64).expect("spawn_on");
    if cluster.rank() == 0 || cluster.size() == 1 {
        let _ = first.fetch();
    } else {
        let mine = dagger_core::spawn(|| 2u64);
        let _ = cluster
            .all_reduce(&mine, |a: &u64, b: &u64| a + b)
            .map(|h| h.fetch());
    }
    cluster.finish().expect("finish");
    if cluster.size() > 1 {
        eprintln!("diverge: the divergence was not caught");
        std::process::exit(4);
    }
}
