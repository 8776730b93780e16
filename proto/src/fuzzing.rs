//! The `envelope` fuzz target's body, shared with its replay test (`tests/fuzz_corpus.rs`) so the
//! two cannot drift: decode one input as each direction's message and check the round trip.
//! A broken promise panics, which is what the fuzzer and the test look for.

use crate::{decode, encode, Envelope, ToSupervisor, ToWorker};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// Decodes `bytes` as a [`ToSupervisor`] and as a [`ToWorker`] envelope. Anything either decode
/// accepts must re-encode and decode again to the same message (compared as MessagePack, so a NaN
/// equals itself). Returns whether each decode accepted the input.
pub fn check(bytes: &[u8]) -> [bool; 2] {
    [
        round_trip::<ToSupervisor>(bytes),
        round_trip::<ToWorker>(bytes),
    ]
}

fn round_trip<B: Serialize + DeserializeOwned>(bytes: &[u8]) -> bool {
    let Ok(first) = decode::<B>(bytes) else {
        return false;
    };
    let again: Envelope<B> = decode(&encode(first.seq, &first.body))
        .unwrap_or_else(|e| panic!("a decoded message does not decode after re-encoding: {e}"));
    let body = |b: &B| rmp_serde::to_vec_named(b).expect("encoding a decoded message");
    assert_eq!(again.seq, first.seq);
    assert_eq!(
        body(&again.body),
        body(&first.body),
        "the round trip changed the message"
    );
    true
}
