//! IPC envelope decoding, both directions: see `nvr_proto::fuzzing::check`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    nvr_proto::fuzzing::check(data);
});
