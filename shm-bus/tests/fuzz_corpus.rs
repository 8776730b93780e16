//! Replays the `shm_attach` fuzz target's checked-in corpus and regressions (`fuzz/`) on stable, through
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
fn hostile_segments_are_errors_not_crashes() {
    let inputs = inputs("shm_attach");
    let attached = inputs
        .iter()
        .filter(|(path, bytes)| {
            eprintln!("replaying {}", path.display());
            shm_bus::fuzzing::check(bytes)
        })
        .count();
    assert!(
        attached > 0 && attached < inputs.len(),
        "{attached} of {} attached: the corpus should hold both good and bad segments",
        inputs.len()
    );
}
