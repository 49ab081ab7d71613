//! Compile-fail cases: every static check of `#[task]` and `dag!` is an error that points
//! at the user's token and says what to do. Each `tests/ui/NAME.rs` has its expected
//! compiler output in `NAME.stderr` (regenerate with `TRYBUILD=overwrite` and review).

#[test]
fn compile_errors() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
}
