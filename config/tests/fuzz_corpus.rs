//! Replays the `config` fuzz target's checked-in corpus and regressions (`fuzz/`) on stable, through
//! the same function the fuzzer calls.

#[path = "../../fuzz/replay.rs"]
mod replay;
use replay::inputs;

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
