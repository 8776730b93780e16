//! Secrets as a type: a camera password that never prints, and URLs shown without credentials.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A camera password.
///
/// `Debug` and `Display` print `***`, so a password cannot reach a log line, an error message or
/// `/status` by accident. `Serialize` writes the real value: it exists only so the supervisor can hand
/// the password to its worker inside the `Configure` message (never on a command line).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Password(String);

impl Password {
    pub fn new(value: impl Into<String>) -> Self {
        Password(value.into())
    }

    /// The real password, for the one place that must use it: building the URL handed to the RTSP client.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// `url` with any `user:password@` part of its authority removed, for logs and `/status`.
pub fn redact_url(url: &str) -> String {
    match split_userinfo(url) {
        Some((scheme, _userinfo, rest)) => format!("{scheme}://{rest}"),
        None => url.to_string(),
    }
}

/// Whether `url` carries credentials in its authority (`rtsp://user:pass@host/...`).
pub fn url_has_credentials(url: &str) -> bool {
    split_userinfo(url).is_some()
}

/// Splits `scheme://userinfo@rest` into its three parts; `None` when there is no userinfo.
fn split_userinfo(url: &str) -> Option<(&str, &str, &str)> {
    let (scheme, after) = url.split_once("://")?;
    let authority_end = after.find(['/', '?', '#']).unwrap_or(after.len());
    let at = after[..authority_end].rfind('@')?;
    Some((scheme, &after[..at], &after[at + 1..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_never_prints() {
        let p = Password::new("hunter2");
        assert_eq!(format!("{p}"), "***");
        assert_eq!(format!("{p:?}"), "***");
        assert_eq!(p.expose(), "hunter2");
    }

    #[test]
    fn redacts_userinfo_only() {
        let cases = [
            ("rtsp://u:p@cam:554/stream1", "rtsp://cam:554/stream1"),
            ("rtsp://u@cam/s", "rtsp://cam/s"),
            ("rtsp://cam/s?x=a@b", "rtsp://cam/s?x=a@b"),
            ("rtsp://a:b@c@cam/s", "rtsp://cam/s"),
            ("not a url", "not a url"),
        ];
        for (input, want) in cases {
            assert_eq!(redact_url(input), want, "{input}");
        }
        assert!(url_has_credentials("rtsp://u:p@cam/s"));
        assert!(!url_has_credentials("rtsp://cam/s?x=a@b"));
    }
}
