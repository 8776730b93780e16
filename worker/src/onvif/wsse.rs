//! WS-Security UsernameToken with PasswordDigest (OASIS UsernameToken Profile 1.0), the
//! authentication ONVIF devices expect in the SOAP header:
//! `Base64(SHA1(nonce + created + password))`.
//!
//! `Created` must be the **camera's** time: devices refuse tokens outside a window (often ±5
//! minutes) of their own clock, and camera clocks drift. The caller passes our clock plus the
//! offset learned from `GetSystemDateAndTime`, so everything here is pure and tested with fixed
//! times.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use quick_xml::escape::escape;
use sha1::{Digest, Sha1};

/// `Base64(SHA1(nonce + created + password))`.
pub fn password_digest(nonce: &[u8], created: &str, password: &str) -> String {
    let mut h = Sha1::new();
    h.update(nonce);
    h.update(created.as_bytes());
    h.update(password.as_bytes());
    BASE64.encode(h.finalize())
}

/// A `Created` value: UTC with milliseconds, `2026-12-03T13:55:36.120Z`.
pub fn created(unix_ms: i64) -> String {
    match jiff::Timestamp::from_millisecond(unix_ms) {
        Ok(t) => t.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
        // Out of jiff's range (year -9999..=9999): only a wildly wrong camera clock gets here.
        Err(_) => "1970-01-01T00:00:00.000Z".into(),
    }
}

/// A fresh random nonce.
pub fn nonce() -> [u8; 16] {
    let mut n = [0u8; 16];
    if getrandom::fill(&mut n).is_err() {
        // No OS randomness: still unique per call, which is all a nonce must be.
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        n = t.to_le_bytes();
    }
    n
}

/// The `wsse:Security` header element for `username`, signed at `unix_ms` (camera time) with
/// `nonce`.
pub fn security_header(username: &str, password: &str, unix_ms: i64, nonce: &[u8]) -> String {
    let created = created(unix_ms);
    format!(
        concat!(
            r#"<wsse:Security s:mustUnderstand="1""#,
            r#" xmlns:wsse="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd""#,
            r#" xmlns:wsu="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd">"#,
            r#"<wsse:UsernameToken><wsse:Username>{}</wsse:Username>"#,
            r#"<wsse:Password Type="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#PasswordDigest">{}</wsse:Password>"#,
            r#"<wsse:Nonce EncodingType="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-soap-message-security-1.0#Base64Binary">{}</wsse:Nonce>"#,
            r#"<wsu:Created>{}</wsu:Created></wsse:UsernameToken></wsse:Security>"#
        ),
        escape(username),
        password_digest(nonce, &created, password),
        BASE64.encode(nonce),
        created
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The vector computed independently with Python's hashlib:
    /// `base64.b64encode(hashlib.sha1(b"0123456789abcdef" + b"2026-12-03T13:00:00.000Z" + b"s3cret").digest())`.
    #[test]
    fn the_digest_matches_an_independent_computation() {
        assert_eq!(
            password_digest(b"0123456789abcdef", "2026-12-03T13:00:00.000Z", "s3cret"),
            PYTHON_VECTOR
        );
    }
    const PYTHON_VECTOR: &str = include_str!("testdata/wsse_vector.txt").trim_ascii();

    #[test]
    fn created_is_utc_with_milliseconds() {
        assert_eq!(created(1_796_302_800_000), "2026-12-03T13:00:00.000Z");
        assert_eq!(created(1_796_302_800_120), "2026-12-03T13:00:00.120Z");
        assert_eq!(created(0), "1970-01-01T00:00:00.000Z");
    }

    #[test]
    fn the_header_carries_the_digest_nonce_and_created_but_not_the_password() {
        let h = security_header("ad<min", "s3cret", 1_796_302_800_000, b"0123456789abcdef");
        assert!(
            h.contains("<wsse:Username>ad&lt;min</wsse:Username>"),
            "{h}"
        );
        assert!(
            h.contains(&format!(">{PYTHON_VECTOR}</wsse:Password>")),
            "{h}"
        );
        assert!(h.contains(">MDEyMzQ1Njc4OWFiY2RlZg==</wsse:Nonce>"), "{h}");
        assert!(h.contains("<wsu:Created>2026-12-03T13:00:00.000Z</wsu:Created>"));
        assert!(!h.contains("s3cret"));
    }

    #[test]
    fn nonces_differ() {
        assert_ne!(nonce(), nonce());
    }
}
