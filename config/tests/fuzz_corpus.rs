//! Replays the `config` fuzz target's checked-in corpus and regressions (`fuzz/`) on stable, through
//! the same function the fuzzer calls.

use std::path::PathBuf;

/// Every input of fuzz target `target`: `fuzz/corpus/<target>` (which must not be empty) and
/// `fuzz/regressions/<target>`.
fn inputs(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
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

#[test]
fn config_corpus_replays_without_a_broken_promise() {
    let mut valid = 0;
    let inputs = inputs("config");
    for (path, bytes) in &inputs {
        eprintln!("replaying {}", path.display());
        valid += usize::from(nvr_config::fuzzing::check(bytes));
    }
    assert!(
        valid > 0 && valid < inputs.len(),
        "{valid} of {} valid: the corpus should hold both",
        inputs.len()
    );
}

#[test]
fn the_shipped_config_passes_the_fuzz_check() {
    let shipped = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/cameras.json")).unwrap();
    assert!(nvr_config::fuzzing::check(&shipped));
}
