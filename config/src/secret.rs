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

/// Query keys that name a credential (compared without regard to case).
const CREDENTIAL_KEYS: [&str; 8] = [
    "user", "username", "password", "pass", "pwd", "token", "auth", "passwd",
];

/// `url` for logs and `/status`: any `user:password@` part of its authority removed, and every
/// query value replaced by `***` (a camera may take a secret in any parameter).
pub fn redact_url(url: &str) -> String {
    let url = match split_userinfo(url) {
        Some((scheme, _userinfo, rest)) => format!("{scheme}://{rest}"),
        None => url.to_string(),
    };
    let Some((base, query)) = url.split_once('?') else {
        return url;
    };
    let (query, fragment) = match query.split_once('#') {
        Some((q, f)) => (q, Some(f)),
        None => (query, None),
    };
    let masked: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((key, _)) => format!("{key}=***"),
            None => pair.to_string(),
        })
        .collect();
    let mut out = format!("{base}?{}", masked.join("&"));
    if fragment.is_some() {
        out.push_str("#***");
    }
    out
}

/// Whether `url` carries credentials: in its authority (`rtsp://user:pass@host/...`) or as a query
/// parameter named like one (`?user=...&password=...`, any case).
pub fn url_has_credentials(url: &str) -> bool {
    split_userinfo(url).is_some() || query_credential_key(url).is_some()
}

/// The first query parameter of `url` whose key names a credential.
fn query_credential_key(url: &str) -> Option<&str> {
    let query = url.split_once('?')?.1;
    let query = query.split_once('#').map_or(query, |(q, _)| q);
    query
        .split(['&', ';'])
        .map(|pair| pair.split_once('=').map_or(pair, |(k, _)| k).trim())
        .find(|key| CREDENTIAL_KEYS.iter().any(|c| key.eq_ignore_ascii_case(c)))
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
            ("rtsp://cam/s?x=a@b", "rtsp://cam/s?x=***"),
            ("rtsp://a:b@c@cam/s", "rtsp://cam/s"),
            ("not a url", "not a url"),
        ];
        for (input, want) in cases {
            assert_eq!(redact_url(input), want, "{input}");
        }
        assert!(url_has_credentials("rtsp://u:p@cam/s"));
        assert!(!url_has_credentials("rtsp://cam/s?x=a@b"));
    }

    #[test]
    fn query_credentials_are_found_and_every_query_value_is_masked() {
        for url in [
            "rtsp://cam/s?user=admin&password=hunter2",
            "rtsp://cam/s?channel=1&PWD=hunter2",
            "rtsp://cam/s?Token=abc",
            "rtsp://cam/s?auth",
            "rtsp://cam/s?a=1;pass=x",
        ] {
            assert!(url_has_credentials(url), "{url}");
        }
        for url in [
            "rtsp://cam/s?channel=1&subtype=0",
            "rtsp://cam/user/password",
        ] {
            assert!(!url_has_credentials(url), "{url}");
        }
        assert_eq!(
            redact_url("rtsp://u:p@cam/s?channel=1&password=hunter2#frag"),
            "rtsp://cam/s?channel=***&password=***#***"
        );
        assert_eq!(redact_url("rtsp://cam/s?flag"), "rtsp://cam/s?flag");
    }
}
