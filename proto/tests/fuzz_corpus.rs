//! Replays the `envelope` fuzz target's checked-in corpus and regressions (`fuzz/`) on stable, through
//! the same function the fuzzer calls.

#[path = "../../fuzz/replay.rs"]
mod replay;
use replay::inputs;
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
