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

/// Without cargo-fuzz at hand, a deterministic sweep over the corpus' real replies: every
/// truncation, and at every third byte each of the bytes that matter most to XML, must read
/// without a panic and keep the function's promises.
#[test]
fn every_truncation_and_flip_of_the_corpus_reads() {
    let mut n = 0usize;
    let mut outcomes = Vec::new();
    for (_, bytes) in inputs("soap") {
        for end in 0..bytes.len() {
            outcomes.push(check(&bytes[..end]));
            n += 1;
        }
        let mut m = bytes.clone();
        for i in (0..bytes.len()).step_by(3) {
            for b in [b'<', b'>', b'&', b'"', b'/', b':', b'\0', 0xff] {
                m[i] = b;
                outcomes.push(check(&m));
                n += 1;
            }
            m[i] = bytes[i];
        }
    }
    eprintln!("{n} inputs");
    for want in [Outcome::Reply, Outcome::Fault, Outcome::NotSoap] {
        assert!(outcomes.contains(&want), "no mutation gives {want:?}");
    }
}
