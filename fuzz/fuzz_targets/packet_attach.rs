//! Attaching a packet-ring reader to a hostile segment file: see `shm_bus::fuzzing::check_packets`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    shm_bus::fuzzing::check_packets(data);
});
