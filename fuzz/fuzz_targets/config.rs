//! `config/cameras.json` parsing and validation: see `nvr_config::fuzzing::check`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    nvr_config::fuzzing::check(data);
});
