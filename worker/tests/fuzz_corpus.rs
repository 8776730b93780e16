//! Replays the `soap` fuzz target's checked-in corpus and regressions (`fuzz/`) on stable, through
//! the same function the fuzzer calls.

#[path = "../../fuzz/replay.rs"]
mod replay;
use replay::inputs;
use worker::fuzzing::{check, Outcome};

#[test]
fn soap_corpus_replays_with_every_outcome() {
    let mut seen = Vec::new();
    for (path, bytes) in inputs("soap") {
        eprintln!("replaying {}", path.display());
        seen.push(check(&bytes));
    }
    for want in [Outcome::Reply, Outcome::Fault, Outcome::NotSoap] {
        assert!(
            seen.contains(&want),
            "no input of the corpus gives {want:?}"
        );
    }
}
