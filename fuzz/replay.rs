//! The corpus of a fuzz target, for the stable replay tests: each crate's `tests/fuzz_corpus.rs`
//! includes this file (`#[path]`), so all four read their inputs the same way.

use std::path::PathBuf;

/// Every input of fuzz target `target`: `fuzz/corpus/<target>` (which must not be empty) and
/// `fuzz/regressions/<target>`.
pub fn inputs(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let fuzz = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    let mut files = Vec::new();
    for dir in ["corpus", "regressions"] {
        for entry in std::fs::read_dir(fuzz.join(dir).join(target))
            .into_iter()
            .flatten()
        {
            let path = entry.expect("listing the corpus").path();
            let bytes = std::fs::read(&path).expect("reading a corpus file");
            files.push((path, bytes));
        }
    }
    assert!(
        files.iter().any(|(p, _)| p
            .parent()
            .is_some_and(|d| d.ends_with(format!("corpus/{target}")))),
        "no corpus for fuzz target {target} under {}",
        fuzz.display()
    );
    files
}
