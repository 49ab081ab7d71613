//! The multi-rank checks on 1 to 4 ranks as threads of this process (no MPI needed).

mod checks;

use std::time::Duration;

fn run_on(size: usize) {
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let ranks = dagger_mpi::local_ranks(size);
        let outcome: Vec<Result<(), String>> = std::thread::scope(|s| {
            let running: Vec<_> = ranks
                .into_iter()
                .map(|cluster| {
                    s.spawn(move || {
                        let mut failures = Vec::new();
                        for (name, check) in checks::selected() {
                            if let Err(why) = check(&cluster) {
                                failures.push(format!("rank {}: {name}: {why}", cluster.rank()));
                            }
                        }
                        if let Err(error) = cluster.finish() {
                            failures.push(error.to_string());
                        }
                        if failures.is_empty() {
                            Ok(())
                        } else {
                            Err(failures.join("\n"))
                        }
                    })
                })
                .collect();
            running
                .into_iter()
                .map(|r| r.join().unwrap_or_else(|_| Err("a rank panicked".into())))
                .collect()
        });
        let _ = done.send(outcome);
    });
    let outcome = finished
        .recv_timeout(Duration::from_secs(240))
        .unwrap_or_else(|_| panic!("{size} ranks: still running after 240 s"));
    let failures: Vec<String> = outcome.into_iter().filter_map(Result::err).collect();
    assert!(
        failures.is_empty(),
        "{size} ranks:\n{}",
        failures.join("\n")
    );
}

#[test]
fn one_rank() {
    run_on(1);
}

#[test]
fn two_ranks() {
    run_on(2);
}

#[test]
fn three_ranks() {
    run_on(3);
}

#[test]
fn four_ranks() {
    run_on(4);
}
