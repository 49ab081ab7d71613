//! One concept: every `#[task]` in the binary is listed by `dagger::task::registry()` with
//! its compile-time metadata, and can be found by name.

use dagger::prelude::*;

/// Tokenizes a line.
#[task]
fn tokenize(line: &str) -> Vec<String> {
    line.split_whitespace().map(str::to_owned).collect()
}

#[task(name = "word-lengths")]
fn lengths(words: &[String]) -> Vec<usize> {
    words.iter().map(String::len).collect()
}

fn main() {
    for task in dagger::task::registry() {
        let params: Vec<String> = task
            .params()
            .iter()
            .map(|p| format!("{}: {}", p.name(), p.ty()))
            .collect();
        println!(
            "{:<14} {}({}) -> {}   [{}]",
            task.name(),
            task.qualified_name(),
            params.join(", "),
            task.output(),
            task.location()
        );
    }
    let found = dagger::task::find_task("word-lengths").expect("registered");
    println!("\nfind_task(\"word-lengths\") = {found:?}");
    // The functions are still ordinary functions.
    println!("{:?}", lengths(&tokenize("a dagger tour")));
}
