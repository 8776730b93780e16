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
/// parameter's value replaced by `***`, in the query and in `key=value` path segments alike (a
/// camera may take a secret in any parameter: `rtsp://cam/user=admin&password=x&channel=1`).
pub fn redact_url(url: &str) -> String {
    let url = match split_userinfo(url) {
        Some((scheme, _userinfo, rest)) => format!("{scheme}://{rest}"),
        None => url.to_string(),
    };
    let (url, fragment) = match url.split_once('#') {
        Some((u, _)) => (u.to_string(), "#***"),
        None => (url, ""),
    };
    let mask = |part: &str| -> String {
        part.split('&')
            .map(|pair| {
                pair.split(';')
                    .map(|p| match p.split_once('=') {
                        Some((key, _)) => format!("{key}=***"),
                        None => p.to_string(),
                    })
                    .collect::<Vec<_>>()
                    .join(";")
            })
            .collect::<Vec<_>>()
            .join("&")
    };
    let (head, query) = match url.split_once('?') {
        Some((h, q)) => (h, Some(q)),
        None => (url.as_str(), None),
    };
    // The path's segments after the authority: mask those that hold parameters.
    let (prefix, path) = match head.split_once("://") {
        Some((scheme, rest)) => match rest.split_once('/') {
            Some((authority, path)) => (format!("{scheme}://{authority}/"), path),
            None => (head.to_string(), ""),
        },
        None => (String::new(), head),
    };
    let path: Vec<String> = path
        .split('/')
        .map(|seg| {
            if seg.contains('=') {
                mask(seg)
            } else {
                seg.to_string()
            }
        })
        .collect();
    let mut out = format!("{prefix}{}", path.join("/"));
    if let Some(q) = query {
        out.push('?');
        out.push_str(&mask(q));
    }
    out.push_str(fragment);
    out
}

/// Whether `url` carries credentials: in its authority (`rtsp://user:pass@host/...`), or as a
/// parameter named like one, in the query (`?user=...&password=...`) or in a path segment
/// (`/user=admin&password=...`), any case, percent-encoded or not.
pub fn url_has_credentials(url: &str) -> bool {
    split_userinfo(url).is_some() || parameter_credential_key(url).is_some()
}

/// The first parameter of `url` (query, or `key=value` path segment) whose key names a credential.
fn parameter_credential_key(url: &str) -> Option<String> {
    let url = url.split_once('#').map_or(url, |(u, _)| u);
    let (head, query) = url.split_once('?').unwrap_or((url, ""));
    let path = head.split_once("://").map_or(head, |(_, rest)| rest);
    // In the path only `key=value` segments are parameters (`/auth/stream` is a path).
    let in_path = path
        .split(['/', '&', ';'])
        .filter_map(|pair| pair.split_once('=').map(|(k, _)| k));
    // In the query a bare key counts too (`?auth`).
    let in_query = query
        .split(['&', ';'])
        .map(|pair| pair.split_once('=').map_or(pair, |(k, _)| k));
    in_path
        .chain(in_query)
        .map(|key| percent_decode(key.trim()))
        .find(|key| CREDENTIAL_KEYS.iter().any(|c| key.eq_ignore_ascii_case(c)))
}

/// `s` with `%XX` escapes decoded (an invalid escape is kept as it is).
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
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
            "rtsp://cam/auth/stream?channel=1",
        ] {
            assert!(!url_has_credentials(url), "{url}");
        }
        // Percent-encoded keys, and credentials in the path (a real camera URL format).
        for url in [
            "rtsp://cam/s?pass%77ord=x",
            "rtsp://cam/s?%50WD=x",
            "rtsp://cam:554/user=admin&password=x&channel=1&stream=0.sdp",
            "rtsp://cam/live;user=admin;pwd=x",
        ] {
            assert!(url_has_credentials(url), "{url}");
        }
        assert_eq!(
            redact_url("rtsp://cam:554/user=admin&password=x&channel=1&stream=0.sdp?real=1"),
            "rtsp://cam:554/user=***&password=***&channel=***&stream=***?real=***"
        );
        assert_eq!(
            redact_url("rtsp://u:p@cam/s?channel=1&password=hunter2#frag"),
            "rtsp://cam/s?channel=***&password=***#***"
        );
        assert_eq!(redact_url("rtsp://cam/s?flag"), "rtsp://cam/s?flag");
    }
}
