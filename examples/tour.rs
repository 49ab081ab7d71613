//! A tour of dagger: word statistics over generated text.
//!
//! Four shards of text are generated and counted in parallel, the counts are merged in a
//! tree, and the top words and a length histogram come out. The same functions are run
//! once as plain Rust and once as a `dag!`, so you can see that the answers agree and
//! what the parallel run gained.
//!
//! Run it with: `cargo run --release --example tour`

use std::collections::HashMap;
use std::time::Instant;

use dagger::prelude::*;

type Counts = HashMap<String, u64>;

const SYLLABLES: [&str; 16] = [
    "ka", "lo", "mi", "ne", "ru", "sa", "ti", "vo", "da", "ge", "hu", "ji", "po", "qui", "ze", "xa",
];

/// Deterministic text: `words` words of one to four syllables, Zipf-like frequencies.
#[task]
fn generate_text(seed: u64, words: usize) -> String {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut text = String::with_capacity(words * 6);
    for _ in 0..words {
        let r = next();
        let syllables = 1 + (r % 4) as usize;
        for s in 0..syllables {
            // Squaring skews the choice towards the first syllables.
            let pick = ((r >> (8 * s + 8)) & 0xFF) as usize;
            text.push_str(SYLLABLES[(pick * pick) >> 12]);
        }
        text.push(' ');
    }
    text
}

#[task(name = "count-words")]
fn count_words(text: &str) -> Counts {
    let mut counts = Counts::new();
    for word in text.split_ascii_whitespace() {
        *counts.entry(word.to_owned()).or_default() += 1;
    }
    counts
}

#[task]
fn merge(mut a: Counts, b: Counts) -> Counts {
    for (word, n) in b {
        *a.entry(word).or_default() += n;
    }
    a
}

#[task(name = "top-words")]
fn top_words(counts: &Counts, k: usize) -> Vec<(String, u64)> {
    let mut all: Vec<(String, u64)> = counts.iter().map(|(w, n)| (w.clone(), *n)).collect();
    all.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    all.truncate(k);
    all
}

#[task(name = "length-histogram")]
fn length_histogram(counts: &Counts) -> [u64; 16] {
    let mut histogram = [0u64; 16];
    for (word, n) in counts {
        histogram[word.len().min(15)] += n;
    }
    histogram
}

fn main() -> Result<(), dagger::Error> {
    const WORDS: usize = 1_500_000;

    // Plain Rust: the tasks are ordinary functions.
    let start = Instant::now();
    let sequential = {
        let (t1, t2, t3, t4) = (
            generate_text(1, WORDS),
            generate_text(2, WORDS),
            generate_text(3, WORDS),
            generate_text(4, WORDS),
        );
        let all = merge(
            merge(count_words(&t1), count_words(&t2)),
            merge(count_words(&t3), count_words(&t4)),
        );
        (top_words(&all, 5), length_histogram(&all))
    };
    let sequential_time = start.elapsed();

    // The same work as a graph: shards are generated and counted in parallel.
    let g = dag! {
        let t1 = generate_text(1, WORDS);
        let t2 = generate_text(2, WORDS);
        let t3 = generate_text(3, WORDS);
        let t4 = generate_text(4, WORDS);
        let c1 = count_words(&t1);
        let c2 = count_words(&t2);
        let c3 = count_words(&t3);
        let c4 = count_words(&t4);
        let c12 = merge(c1, c2);
        let c34 = merge(c3, c4);
        let all = merge(c12, c34);
        let top = top_words(&all, 5);
        let lengths = length_histogram(&all);
        (top, lengths)
    };

    println!(
        "The graph, known at compile time ({} nodes, {} edges):\n",
        g.graph().nodes().len(),
        g.graph().edges().len()
    );
    println!("{}", g.to_dot());

    let runtime = dagger::runtime::default_runtime()?;
    let start = Instant::now();
    let (top, lengths) = g.run_on(runtime)?;
    let parallel_time = start.elapsed();

    assert_eq!(
        (top.clone(), lengths),
        sequential,
        "the graph computes what plain Rust computes"
    );
    println!("Top words of {} generated words:", 4 * WORDS);
    for (word, n) in &top {
        println!("  {word:<10} {n:>8}");
    }
    let total: u64 = lengths.iter().sum();
    let mean = lengths
        .iter()
        .enumerate()
        .map(|(len, n)| len as u64 * n)
        .sum::<u64>() as f64
        / total as f64;
    println!("Mean word length: {mean:.2} letters\n");
    println!(
        "plain Rust : {:>8.1} ms",
        sequential_time.as_secs_f64() * 1e3
    );
    println!(
        "dag! run   : {:>8.1} ms on {} threads ({:.2}x)",
        parallel_time.as_secs_f64() * 1e3,
        runtime.threads(),
        sequential_time.as_secs_f64() / parallel_time.as_secs_f64()
    );
    Ok(())
}
