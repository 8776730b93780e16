//! The `soap` fuzz target's body, shared with its replay test (`tests/fuzz_corpus.rs`) so the two
//! cannot drift: read one input as an ONVIF device's SOAP reply, then every typed reading of it.
//! A broken promise panics, which is what the fuzzer and the test look for.

use crate::onvif::soap::{self, SoapError};

/// What the reader made of an input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A reply element (every typed reading ran on it).
    Reply,
    /// A SOAP fault.
    Fault,
    /// Not SOAP.
    NotSoap,
}

/// Reads `bytes` with [`soap::parse_reply`] and, when it is a reply, with every typed reader.
/// Promises: no panic; an error says what is wrong in a bounded, one-line message; positions are
/// finite; preset and profile tokens are not empty.
pub fn check(bytes: &[u8]) -> Outcome {
    let one_line = |text: &str| {
        assert!(!text.contains('\n') && !text.contains('\r'), "{text:?}");
        assert!(
            text.chars().count() < 1000,
            "an error of {} characters",
            text.len()
        );
    };
    match soap::parse_reply(bytes) {
        Ok(reply) => {
            let _ = soap::system_date_and_time(&reply);
            let _ = soap::capabilities(&reply);
            let _ = soap::services(&reply);
            for p in soap::profiles(&reply) {
                assert!(!p.token.is_empty());
            }
            for p in soap::presets(&reply) {
                assert!(!p.token.is_empty() && !p.name.is_empty());
            }
            if let (Some(p), _) = soap::status(&reply) {
                assert!(p.pan.is_finite() && p.tilt.is_finite() && p.zoom.is_finite());
            }
            if let Err(e) = soap::preset_token(&reply) {
                one_line(&e.to_string());
            }
            Outcome::Reply
        }
        Err(e) => {
            one_line(&e.to_string());
            match e {
                SoapError::Fault(f) => {
                    let _ = f.is_not_authorized();
                    Outcome::Fault
                }
                SoapError::NotSoap(_) | SoapError::Missing(_) => Outcome::NotSoap,
            }
        }
    }
}
