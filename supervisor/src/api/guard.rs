//! Checks on where a request comes from, made before any session or handler: the `Host` a request
//! names (DNS rebinding), the `Origin` of a state change or a WebSocket upgrade (cross-site
//! requests, cross-site WebSocket hijacking), the client's address
//! (the TCP peer, or `X-Forwarded-For` from a trusted proxy), and the headers every answer carries
//! (no framing, a strict content security policy, no caching unless the handler chose otherwise).
//!
//! Pure functions on header values, so they are tested with tables.

use axum::extract::Request;
use axum::http::{header, HeaderMap, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use nvr_config::ProxyNet;
use std::net::{IpAddr, Ipv4Addr};

/// A `Host` header or URL authority split into its host (lower case, without IPv6 brackets or a
/// trailing dot) and its port, if written.
fn authority(a: &str) -> Option<(String, Option<&str>)> {
    let a = a.trim();
    if a.is_empty() || a.contains(['/', '@', ' ', '\\']) {
        return None;
    }
    let (host, port) = if let Some(rest) = a.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        match after {
            "" => (host, None),
            _ => (host, Some(after.strip_prefix(':')?)),
        }
    } else {
        match a.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (a, None),
        }
    };
    if port.is_some_and(|p| p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit())) {
        return None;
    }
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    (!host.is_empty()).then_some((host, port))
}

/// The host part of a `Host` header or URL authority, lower case, without port or IPv6 brackets.
pub fn host_name(a: &str) -> Option<String> {
    authority(a).map(|(host, _)| host)
}

/// Whether `host` (from [`host_name`]) is a loopback name or address, or one of `allowed`.
pub fn host_allowed(host: &str, allowed: &[String]) -> bool {
    host == "localhost"
        || host.ends_with(".localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
        || allowed.iter().any(|a| a == host)
}

/// Whether a state change may go on with this `Origin` header: absent (not a browser, or a
/// same-origin request of an old one), or naming the very authority the request was sent to.
/// `null` (a sandboxed frame, a redirect, a `file:` page) is refused.
pub fn origin_allowed(origin: Option<&str>, host: Option<&str>) -> bool {
    let Some(origin) = origin else {
        return true;
    };
    let Some(authority_of_origin) = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
    else {
        return false;
    };
    let Some(host) = host else {
        return false;
    };
    // Compare host and port; the default port may be written or not.
    let default_port = if origin.starts_with("https://") {
        "443"
    } else {
        "80"
    };
    match (authority(authority_of_origin), authority(host)) {
        (Some((oh, op)), Some((hh, hp))) => {
            oh == hh && op.unwrap_or(default_port) == hp.unwrap_or(default_port)
        }
        _ => false,
    }
}

/// Whether a request asks to become a WebSocket (`Upgrade: websocket`). Browsers send such
/// requests cross-site without any preflight, with the user's cookies, so they get the `Origin`
/// check of a state change.
pub fn is_websocket_upgrade(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::UPGRADE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|p| p.trim().eq_ignore_ascii_case("websocket"))
}

/// The client of a request: the TCP `peer`, or, when the peer is a trusted proxy, the nearest
/// address in `X-Forwarded-For` that is not itself a trusted proxy (read from the right, the end
/// the proxies wrote; an entry that does not parse stops the walk at the last trusted hop, so a
/// client cannot slip a chosen address in behind a malformed one). An IPv4 peer on a dual-stack
/// socket (`::ffff:a.b.c.d`) counts as its IPv4 address. Requests made in-process have no peer:
/// they count as one client, `0.0.0.0`.
pub fn client_addr(peer: Option<IpAddr>, headers: &HeaderMap, trusted: &[ProxyNet]) -> IpAddr {
    let Some(peer) = peer.map(|p| p.to_canonical()) else {
        return IpAddr::V4(Ipv4Addr::UNSPECIFIED);
    };
    if !is_trusted(trusted, peer) {
        return peer;
    }
    let mut client = peer;
    // Every line's entries in order; the last line's last entry is the nearest hop.
    let hops: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .flat_map(|v| v.to_str().unwrap_or("?").split(','))
        .collect();
    for hop in hops.iter().rev() {
        match hop.trim().parse::<IpAddr>().map(|a| a.to_canonical()) {
            Ok(a) if is_trusted(trusted, a) => client = a,
            Ok(a) => return a,
            Err(_) => return client,
        }
    }
    client
}

/// Whether `ip` is one of the trusted proxies (an address or in a range).
pub fn is_trusted(trusted: &[ProxyNet], ip: IpAddr) -> bool {
    trusted.iter().any(|n| n.contains(ip))
}

/// Whether the client reached a trusted proxy over HTTPS (`X-Forwarded-Proto: https`), so the
/// session cookie must be `Secure`.
pub fn behind_tls(peer: Option<IpAddr>, headers: &HeaderMap, trusted: &[ProxyNet]) -> bool {
    peer.is_some_and(|p| is_trusted(trusted, p))
        && headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("https"))
}

/// What the UI needs and nothing more: its own scripts, styles, pictures and videos; no framing,
/// no plugins, no inline script.
pub const CSP: &str = "default-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// Middleware: the headers every answer carries.
pub async fn headers(req: Request, next: Next) -> Response {
    let mut response = next.run(req).await;
    let h = response.headers_mut();
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_loopback_or_allowed() {
        let allowed = vec!["nvr.home.arpa".to_string()];
        for (h, ok) in [
            ("127.0.0.1:5001", true),
            ("127.0.0.2", true),
            ("localhost:5001", true),
            ("LOCALHOST", true),
            ("app.localhost", true),
            ("[::1]:5001", true),
            ("nvr.home.arpa:5001", true),
            ("nvr.home.arpa.", true),
            ("rebind.attacker.example", false),
            ("rebind.attacker.example:5001", false),
            ("127.0.0.1.attacker.example", false),
            ("localhost.attacker.example", false),
            ("192.168.1.5:5001", false),
            ("[::ffff:7f00:1]", false),
        ] {
            let name = host_name(h);
            assert_eq!(name.is_some_and(|n| host_allowed(&n, &allowed)), ok, "{h}");
        }
        for bad in ["", "a b", "user@127.0.0.1", "127.0.0.1:x", "[::1"] {
            assert_eq!(host_name(bad), None, "{bad}");
        }
    }

    #[test]
    fn origins_must_be_the_apis_own() {
        for (origin, host, ok) in [
            (None, Some("127.0.0.1:5001"), true),
            (Some("http://127.0.0.1:5001"), Some("127.0.0.1:5001"), true),
            (Some("http://LOCALHOST:5001"), Some("localhost:5001"), true),
            (Some("https://nvr.example"), Some("nvr.example:443"), true),
            (Some("http://nvr.example"), Some("nvr.example"), true),
            (Some("http://[::1]:5001"), Some("[::1]:5001"), true),
            (Some("http://127.0.0.1:5002"), Some("127.0.0.1:5001"), false),
            (Some("http://evil.example"), Some("127.0.0.1:5001"), false),
            (Some("null"), Some("127.0.0.1:5001"), false),
            (Some("http://127.0.0.1:5001"), None, false),
            (Some("https://nvr.example"), Some("nvr.example"), true),
            (Some("https://nvr.example"), Some("nvr.example:80"), false),
        ] {
            assert_eq!(origin_allowed(origin, host), ok, "{origin:?} {host:?}");
        }
    }

    #[test]
    fn websocket_upgrades_are_recognised_in_any_case() {
        for (values, want) in [
            (&["websocket"][..], true),
            (&["WebSocket"], true),
            (&["h2c, websocket"], true),
            (&["h2c", "websocket"], true),
            (&["h2c"], false),
            (&["websockets"], false),
            (&[], false),
        ] {
            let mut h = HeaderMap::new();
            for v in values {
                h.append(header::UPGRADE, v.parse().unwrap());
            }
            assert_eq!(is_websocket_upgrade(&h), want, "{values:?}");
        }
    }

    #[test]
    fn forwarded_addresses_count_only_from_trusted_proxies() {
        let proxy: IpAddr = "10.0.0.1".parse().unwrap();
        let peer: IpAddr = "192.0.2.7".parse().unwrap();
        let mut h = HeaderMap::new();
        h.insert(
            "x-forwarded-for",
            "203.0.113.9, 198.51.100.3".parse().unwrap(),
        );
        let trusted = [ProxyNet::from(proxy)];
        assert_eq!(client_addr(Some(peer), &h, &trusted), peer);
        assert_eq!(
            client_addr(Some(proxy), &h, &trusted),
            "198.51.100.3".parse::<IpAddr>().unwrap()
        );
        assert_eq!(client_addr(Some(proxy), &HeaderMap::new(), &trusted), proxy);
        // A range: every hop inside it is a proxy, the first one outside is the client.
        let range = ["10.0.0.0/8".parse::<ProxyNet>().unwrap()];
        let mut chain = HeaderMap::new();
        chain.insert("x-forwarded-for", "203.0.113.9, 10.9.9.9".parse().unwrap());
        assert_eq!(
            client_addr(Some(proxy), &chain, &range),
            "203.0.113.9".parse::<IpAddr>().unwrap()
        );
        assert_eq!(client_addr(Some(peer), &chain, &range), peer);
        assert_eq!(
            client_addr(None, &h, &[]),
            IpAddr::V4(Ipv4Addr::UNSPECIFIED)
        );
        h.insert("x-forwarded-proto", "https".parse().unwrap());
        assert!(behind_tls(Some(proxy), &h, &trusted));
        assert!(!behind_tls(Some(peer), &h, &trusted));
        assert!(behind_tls(Some(proxy), &h, &range));
    }

    #[test]
    fn the_nearest_untrusted_hop_is_the_client_and_a_bad_entry_stops_the_walk() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let local = ip("127.0.0.1");
        // (X-Forwarded-For lines, peer, expected client); the proxy is 127.0.0.1.
        let table: [(&[&str], &str, &str); 6] = [
            (&["198.51.100.3"], "127.0.0.1", "198.51.100.3"),
            // An IPv4 proxy seen on a dual-stack socket is still the trusted proxy.
            (&["198.51.100.3"], "::ffff:127.0.0.1", "198.51.100.3"),
            // Two lines: the last entry of the last line is the nearest hop.
            (
                &["203.0.113.9", "198.51.100.3, 127.0.0.1"],
                "127.0.0.1",
                "198.51.100.3",
            ),
            // The client wrote "203.0.113.9, junk" itself; the proxy appended the real address.
            (
                &["203.0.113.9, junk, 198.51.100.3"],
                "127.0.0.1",
                "198.51.100.3",
            ),
            // A malformed nearest entry (a port the proxy added) does not let the walk go on to an
            // address the client chose: the last trusted hop is the client.
            (
                &["203.0.113.9, 198.51.100.3:4711"],
                "127.0.0.1",
                "127.0.0.1",
            ),
            (&[], "::ffff:192.0.2.7", "192.0.2.7"),
        ];
        for (lines, peer, want) in table {
            let mut h = HeaderMap::new();
            for l in lines {
                h.append("x-forwarded-for", l.parse().unwrap());
            }
            assert_eq!(
                client_addr(Some(ip(peer)), &h, &[ProxyNet::from(local)]),
                ip(want),
                "{lines:?} from {peer}"
            );
        }
    }
}
