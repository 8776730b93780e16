//! The HTTP API's paths, queries and headers, in-process: see `supervisor::fuzzing::Fixture`.
#![no_main]

use std::sync::OnceLock;
use supervisor::fuzzing::Fixture;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE
        .get_or_init(|| Fixture::new().expect("building the HTTP fixture"))
        .check(data);
});
