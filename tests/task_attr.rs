//! `#[task]`: the function stays callable, gains compile-time metadata, and registers.

use dagger::prelude::*;

/// Doc comments and other attributes stay on the function.
#[task]
#[inline]
pub fn tokenize(text: &str) -> Vec<String> {
    text.split_whitespace().map(str::to_owned).collect()
}

#[task(name = "word-count")]
fn count_words(words: &[String], min_len: usize) -> usize {
    words.iter().filter(|w| w.len() >= min_len).count()
}

#[task]
fn nothing() {}

#[task]
fn generic_len<T>(items: &[T]) -> usize {
    items.len()
}

mod nested {
    use dagger::task;

    #[task]
    pub fn shout(s: &str) -> String {
        s.to_uppercase()
    }
}

#[test]
fn functions_stay_callable() {
    assert_eq!(tokenize("a b  c"), ["a", "b", "c"]);
    assert_eq!(count_words(&tokenize("aa b ccc"), 2), 2);
    nothing();
    assert_eq!(generic_len(&[1, 2, 3]), 3);
    assert_eq!(nested::shout("hi"), "HI");
    let f: fn(&str) -> Vec<String> = tokenize; // still a plain fn item
    assert_eq!(f("x").len(), 1);
}

#[test]
fn metadata() {
    let meta = <count_words as Task>::META;
    assert_eq!(meta.name(), "word-count");
    assert_eq!(meta.function(), "count_words");
    assert_eq!(meta.module_path(), "task_attr");
    assert_eq!(meta.qualified_name(), "task_attr::count_words");
    let params: Vec<_> = meta.params().iter().map(|p| (p.name(), p.ty())).collect();
    assert_eq!(params, [("words", "&[String]"), ("min_len", "usize")]);
    assert_eq!(meta.output(), "usize");
    assert_eq!(meta.location().line(), 13);
    assert!(meta.location().file().ends_with("task_attr.rs"));
    assert!(!meta.is_generic());

    assert_eq!(<nothing as Task>::META.output(), "()");
    assert!(<generic_len as Task>::META.is_generic());
    assert_eq!(
        <nested::shout as Task>::META.module_path(),
        "task_attr::nested"
    );
}

#[test]
fn registry_lists_non_generic_tasks() {
    let registry = dagger::task::registry();
    let names: Vec<_> = registry.iter().map(|t| t.name()).collect();
    for expected in ["tokenize", "word-count", "nothing", "shout"] {
        assert!(
            names.contains(&expected),
            "{expected} missing from {names:?}"
        );
    }
    assert!(
        !names.contains(&"generic_len"),
        "generic tasks are not registered"
    );
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted, "sorted by name");

    let entry = dagger::task::find_task("word-count").unwrap();
    assert_eq!(entry.function(), "count_words");
    let debug = format!("{entry:?}");
    assert!(
        debug.contains("\"word-count\"") && debug.contains("usize"),
        "{debug}"
    );
    assert!(dagger::task::find_task("no-such-task").is_none());
}
