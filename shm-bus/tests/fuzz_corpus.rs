//! Replays the `shm_attach` fuzz target's checked-in corpus and regressions (`fuzz/`) on stable, through
//! the same function the fuzzer calls.

#[path = "../../fuzz/replay.rs"]
mod replay;
use replay::inputs;
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

#[test]
fn hostile_packet_segments_are_errors_not_crashes() {
    let inputs = inputs("packet_attach");
    let attached = inputs
        .iter()
        .filter(|(path, bytes)| {
            eprintln!("replaying {}", path.display());
            shm_bus::fuzzing::check_packets(bytes)
        })
        .count();
    assert!(
        attached > 0 && attached < inputs.len(),
        "{attached} of {} attached: the corpus should hold both good and bad segments",
        inputs.len()
    );
}
