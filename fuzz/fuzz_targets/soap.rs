//! An ONVIF device's SOAP reply, read by the PTZ client: see `worker::fuzzing::check`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    worker::fuzzing::check(data);
});
