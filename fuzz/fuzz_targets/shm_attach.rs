//! Attaching a frame-ring reader to a hostile segment file: see `shm_bus::fuzzing::check`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    shm_bus::fuzzing::check(data);
});
