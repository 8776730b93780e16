//! Replays the `envelope` fuzz target's checked-in corpus and regressions (`fuzz/`) on stable, through
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
fn envelope_corpus_replays_and_round_trips() {
    let mut decoded = [0; 2];
    for (path, bytes) in inputs("envelope") {
        eprintln!("replaying {}", path.display());
        let [to_supervisor, to_worker] = nvr_proto::fuzzing::check(&bytes);
        decoded[0] += usize::from(to_supervisor);
        decoded[1] += usize::from(to_worker);
    }
    assert!(
        decoded[0] > 0 && decoded[1] > 0,
        "decoded (to supervisor, to worker): {decoded:?}"
    );
}
