//! A minimal blocking HTTP/1.1 client for SOAP POSTs over `std::net`: one request per connection
//! (`Connection: close`), every step bounded by one deadline, the body capped. The response head is
//! parsed by `httparse`; bodies may be `Content-Length`, chunked, or read to the close.
//!
//! Also the client side of HTTP Digest (RFC 7616: MD5 and SHA-256, `qop=auth`), which some
//! firmware wants instead of, or besides, WS-Security.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Instant;

/// The largest response we read; ONVIF replies are a few kB (a `GetProfiles` of a multi-sensor
/// camera some tens).
pub const MAX_RESPONSE: usize = 1 << 20;
const MAX_HEADERS: usize = 64;

/// Why an exchange failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum HttpError {
    /// Connecting, sending or reading did not finish by the deadline.
    #[error("{0}")]
    Timeout(String),
    /// The address did not resolve, or the connection was refused or reset.
    #[error("{0}")]
    Unreachable(String),
    /// The answer is not HTTP as we read it, or too large.
    #[error("{0}")]
    Protocol(String),
}

/// A response: status, headers (names lowercased), body.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// Every value of a header (name lowercase).
    pub fn header_values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// POSTs `body` to `http://host:port{path}` and reads the answer, all before `deadline`.
pub fn post(
    host: &str,
    port: u16,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    deadline: Instant,
) -> Result<Response, HttpError> {
    let remaining = |what: &str| {
        deadline
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
            .ok_or_else(|| HttpError::Timeout(format!("no answer in time ({what})")))
    };
    let addrs: Vec<_> = (host, port)
        .to_socket_addrs()
        .map_err(|e| HttpError::Unreachable(format!("{host}:{port} does not resolve: {e}")))?
        .collect();
    let mut stream = None;
    let mut last_error = None;
    for addr in &addrs {
        match TcpStream::connect_timeout(addr, remaining("connecting")?) {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) => last_error = Some(e),
        }
    }
    let mut stream = match (stream, last_error) {
        (Some(s), _) => s,
        (None, Some(e)) if is_timeout(&e) => {
            return Err(HttpError::Timeout(format!(
                "connecting to {host}:{port} timed out"
            )))
        }
        (None, Some(e)) => {
            return Err(HttpError::Unreachable(format!(
                "cannot connect to {host}:{port}: {e}"
            )))
        }
        (None, None) => {
            return Err(HttpError::Unreachable(format!(
                "{host}:{port} resolves to no address"
            )))
        }
    };
    let host_header = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let mut request = format!(
        "POST {path} HTTP/1.1\r\nHost: {host_header}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (k, v) in headers {
        request += &format!("{k}: {v}\r\n");
    }
    request += "\r\n";
    let io = |e: std::io::Error, what: &str| {
        if is_timeout(&e) {
            HttpError::Timeout(format!("no answer in time ({what})"))
        } else {
            HttpError::Unreachable(format!("the connection failed while {what}: {e}"))
        }
    };
    stream
        .set_write_timeout(Some(remaining("sending")?))
        .map_err(|e| io(e, "sending"))?;
    stream
        .write_all(request.as_bytes())
        .and_then(|()| stream.write_all(body))
        .map_err(|e| io(e, "sending"))?;

    let mut buf = Vec::with_capacity(8192);
    let mut chunk = [0u8; 8192];
    let mut eof = false;
    let mut read_more = |stream: &mut TcpStream, buf: &mut Vec<u8>| -> Result<bool, HttpError> {
        stream
            .set_read_timeout(Some(remaining("reading")?))
            .map_err(|e| io(e, "reading"))?;
        let n = stream.read(&mut chunk).map_err(|e| io(e, "reading"))?;
        if buf.len() + n > MAX_RESPONSE {
            return Err(HttpError::Protocol(format!(
                "the answer is larger than {} kB",
                MAX_RESPONSE / 1024
            )));
        }
        buf.extend_from_slice(&chunk[..n]);
        Ok(n > 0)
    };
    // The head.
    let (status, headers, head_len) = loop {
        let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut parsed = httparse::Response::new(&mut slots);
        match parsed.parse(&buf) {
            Ok(httparse::Status::Complete(len)) => {
                let status = parsed.code.unwrap_or(0);
                let headers: Vec<(String, String)> = parsed
                    .headers
                    .iter()
                    .map(|h| {
                        (
                            h.name.to_ascii_lowercase(),
                            String::from_utf8_lossy(h.value).trim().to_string(),
                        )
                    })
                    .collect();
                break (status, headers, len);
            }
            Ok(httparse::Status::Partial) => {}
            Err(e) => return Err(HttpError::Protocol(format!("the answer is not HTTP: {e}"))),
        }
        if !read_more(&mut stream, &mut buf)? {
            return Err(HttpError::Protocol(if buf.is_empty() {
                "the connection closed without an answer".into()
            } else {
                "the connection closed inside the HTTP header".into()
            }));
        }
    };
    let header = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let chunked =
        header("transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    let length =
        match header("content-length") {
            Some(v) if !chunked => Some(v.parse::<usize>().map_err(|_| {
                HttpError::Protocol(format!("a broken Content-Length: {}", quote(v)))
            })?),
            _ => None,
        };
    if length.is_some_and(|l| l > MAX_RESPONSE) {
        return Err(HttpError::Protocol(format!(
            "the answer is larger than {} kB",
            MAX_RESPONSE / 1024
        )));
    }
    // The body: to its length, to the chunked stream's end, or to the close.
    loop {
        let have = &buf[head_len..];
        let done = match (length, chunked) {
            (Some(l), _) => have.len() >= l,
            (None, true) => dechunk(have)?.is_some(),
            (None, false) => eof,
        };
        if done {
            break;
        }
        if !read_more(&mut stream, &mut buf)? {
            if length.is_some() || chunked {
                return Err(HttpError::Protocol(
                    "the connection closed before the answer's end".into(),
                ));
            }
            eof = true;
        }
    }
    let have = &buf[head_len..];
    let body = match (length, chunked) {
        (Some(l), _) => have[..l].to_vec(),
        (None, true) => dechunk(have)?.unwrap_or_default(),
        (None, false) => have.to_vec(),
    };
    Ok(Response {
        status,
        headers,
        body,
    })
}

fn is_timeout(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
    )
}

fn quote(s: &str) -> String {
    super::soap::quote(s)
}

/// Decodes a complete chunked body; `None` while more bytes are needed.
fn dechunk(mut data: &[u8]) -> Result<Option<Vec<u8>>, HttpError> {
    let mut out = Vec::new();
    loop {
        let Some(line_end) = data.windows(2).position(|w| w == b"\r\n") else {
            return Ok(None);
        };
        let line = String::from_utf8_lossy(&data[..line_end]);
        let size_text = line.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_text, 16)
            .ok()
            .filter(|s| *s <= MAX_RESPONSE)
            .ok_or_else(|| {
                HttpError::Protocol(format!("a broken chunk size: {}", quote(size_text)))
            })?;
        data = &data[line_end + 2..];
        if size == 0 {
            // Trailers are not read; the last chunk is enough.
            return Ok(Some(out));
        }
        if data.len() < size + 2 {
            return Ok(None);
        }
        out.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}

// ---------------------------------------------------------------------------------------------
// HTTP Digest (RFC 7616)

/// The hash of a digest challenge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DigestAlgorithm {
    Md5,
    Sha256,
}

/// A `WWW-Authenticate: Digest ...` challenge.
#[derive(Debug, Clone, PartialEq)]
pub struct Challenge {
    pub realm: String,
    pub nonce: String,
    pub opaque: Option<String>,
    pub algorithm: DigestAlgorithm,
    /// Whether the server offers `qop=auth` (otherwise the RFC 2069 form is used).
    pub qop_auth: bool,
}

/// The best Digest challenge among `WWW-Authenticate` values (SHA-256 over MD5); `None` if none
/// is a Digest challenge we can answer (`-sess` algorithms and `auth-int` alone are not).
pub fn digest_challenge<'a>(values: impl Iterator<Item = &'a str>) -> Option<Challenge> {
    let mut best: Option<Challenge> = None;
    for v in values {
        let v = v.trim();
        let Some(rest) = v
            .get(..7)
            .filter(|s| s.eq_ignore_ascii_case("digest "))
            .map(|_| &v[7..])
        else {
            continue;
        };
        let params = auth_params(rest);
        let get = |k: &str| {
            params
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(k))
                .map(|(_, v)| v.clone())
        };
        let algorithm = match get("algorithm").as_deref().map(str::to_ascii_uppercase) {
            None => DigestAlgorithm::Md5,
            Some(a) if a == "MD5" => DigestAlgorithm::Md5,
            Some(a) if a == "SHA-256" => DigestAlgorithm::Sha256,
            Some(_) => continue,
        };
        let qop = get("qop");
        let qop_auth = qop
            .as_deref()
            .is_some_and(|q| q.split(',').any(|o| o.trim().eq_ignore_ascii_case("auth")));
        if qop.is_some() && !qop_auth {
            continue;
        }
        let (Some(realm), Some(nonce)) = (get("realm"), get("nonce")) else {
            continue;
        };
        let c = Challenge {
            realm,
            nonce,
            opaque: get("opaque"),
            algorithm,
            qop_auth,
        };
        if best.as_ref().is_none_or(|b| {
            b.algorithm == DigestAlgorithm::Md5 && algorithm == DigestAlgorithm::Sha256
        }) {
            best = Some(c);
        }
    }
    best
}

/// `name=value` and `name="quoted, value"` pairs of an auth header.
fn auth_params(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let name: String = std::iter::from_fn(|| chars.next_if(|c| *c != '=' && *c != ','))
            .collect::<String>()
            .trim()
            .to_string();
        if name.is_empty() {
            break;
        }
        if chars.next_if_eq(&'=').is_none() {
            continue;
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        if chars.next_if_eq(&'"').is_some() {
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            value = std::iter::from_fn(|| chars.next_if(|c| *c != ','))
                .collect::<String>()
                .trim()
                .to_string();
        }
        out.push((name, value));
    }
    out
}

fn hex_hash(algorithm: DigestAlgorithm, data: &str) -> String {
    use sha2::Digest;
    let bytes: Vec<u8> = match algorithm {
        DigestAlgorithm::Md5 => md5::Md5::digest(data.as_bytes()).to_vec(),
        DigestAlgorithm::Sha256 => sha2::Sha256::digest(data.as_bytes()).to_vec(),
    };
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The `Authorization` header answering `challenge` for one request (`nc` counts the uses of the
/// server's nonce, `cnonce` is ours).
pub fn digest_authorization(
    challenge: &Challenge,
    username: &str,
    password: &str,
    method: &str,
    uri: &str,
    nc: u32,
    cnonce: &str,
) -> String {
    let alg = challenge.algorithm;
    let ha1 = hex_hash(alg, &format!("{username}:{}:{password}", challenge.realm));
    let ha2 = hex_hash(alg, &format!("{method}:{uri}"));
    let nc = format!("{nc:08x}");
    let response = if challenge.qop_auth {
        hex_hash(
            alg,
            &format!("{ha1}:{}:{nc}:{cnonce}:auth:{ha2}", challenge.nonce),
        )
    } else {
        hex_hash(alg, &format!("{ha1}:{}:{ha2}", challenge.nonce))
    };
    let q = |s: &str| s.replace('\\', "\\\\").replace('"', "\\\"");
    let mut h = format!(
        r#"Digest username="{}", realm="{}", uri="{}", algorithm={}, nonce="{}""#,
        q(username),
        q(&challenge.realm),
        q(uri),
        match alg {
            DigestAlgorithm::Md5 => "MD5",
            DigestAlgorithm::Sha256 => "SHA-256",
        },
        q(&challenge.nonce),
    );
    if challenge.qop_auth {
        h += &format!(r#", nc={nc}, cnonce="{}", qop=auth"#, q(cnonce));
    }
    h += &format!(r#", response="{response}""#);
    if let Some(o) = &challenge.opaque {
        h += &format!(r#", opaque="{}""#, q(o));
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;
    use std::time::Duration;

    /// RFC 7616 section 3.9.1: the same request answered with SHA-256 and with MD5.
    #[test]
    fn digest_matches_rfc_7616_example() {
        let header = r#"Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm=SHA-256, nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS""#;
        let md5 = r#"Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm=MD5, nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS""#;
        let cnonce = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ";
        let c = digest_challenge([md5, header].into_iter()).unwrap();
        assert_eq!(c.algorithm, DigestAlgorithm::Sha256, "SHA-256 is preferred");
        let a = digest_authorization(
            &c,
            "Mufasa",
            "Circle of Life",
            "GET",
            "/dir/index.html",
            1,
            cnonce,
        );
        assert!(
            a.contains(
                r#"response="753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1""#
            ),
            "{a}"
        );
        assert!(a.contains("nc=00000001") && a.contains("qop=auth,") || a.contains("qop=auth"));
        assert!(a.contains(r#"opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS""#));
        let c = digest_challenge([md5].into_iter()).unwrap();
        let a = digest_authorization(
            &c,
            "Mufasa",
            "Circle of Life",
            "GET",
            "/dir/index.html",
            1,
            cnonce,
        );
        assert!(
            a.contains(r#"response="8ca523f5e9506fed4657c9700eebdbec""#),
            "{a}"
        );
        assert!(!a.contains("Circle of Life"));
    }

    #[test]
    fn challenges_we_cannot_answer_are_skipped() {
        for h in [
            r#"Basic realm="x""#,
            r#"Digest realm="x", nonce="n", algorithm=MD5-sess, qop="auth""#,
            r#"Digest realm="x", nonce="n", qop="auth-int""#,
            r#"Digest nonce="n""#,
            "Digest",
            "",
        ] {
            assert_eq!(digest_challenge([h].into_iter()), None, "{h}");
        }
        // RFC 2069 (no qop) is answered without nc/cnonce.
        let c = digest_challenge([r#"digest realm="r", nonce="n""#].into_iter()).unwrap();
        assert!(!c.qop_auth);
        let a = digest_authorization(&c, "u", "p", "POST", "/onvif/ptz_service", 1, "c");
        assert!(!a.contains("nc=") && !a.contains("qop"), "{a}");
    }

    /// A one-shot server on a free loopback port answering `reply` to the first request.
    fn serve(reply: &'static [u8]) -> u16 {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let _ = s.write_all(reply);
        });
        port
    }

    fn post_to(port: u16) -> Result<Response, HttpError> {
        post(
            "127.0.0.1",
            port,
            "/onvif/device_service",
            &[("Content-Type", "application/soap+xml")],
            b"<x/>",
            Instant::now() + Duration::from_secs(5),
        )
    }

    #[test]
    fn bodies_by_length_chunked_and_to_the_close() {
        let r = post_to(serve(
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello and more",
        ))
        .unwrap();
        assert_eq!((r.status, r.body.as_slice()), (200, &b"hello"[..]));
        let r = post_to(serve(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6;x=y\r\n world\r\n0\r\n\r\n",
        ))
        .unwrap();
        assert_eq!(r.body, b"hello world");
        let r = post_to(serve(b"HTTP/1.0 401 Unauthorized\r\nWWW-Authenticate: Digest realm=\"r\", nonce=\"n\"\r\n\r\nbye")).unwrap();
        assert_eq!((r.status, r.body.as_slice()), (401, &b"bye"[..]));
        assert_eq!(r.header_values("www-authenticate").count(), 1);
    }

    #[test]
    fn broken_answers_are_errors() {
        for reply in [
            &b"not http at all\r\n\r\n"[..],
            b"",
            b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\nshort",
            b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999\r\n\r\n",
        ] {
            let e = post_to(serve(reply)).unwrap_err();
            assert!(matches!(e, HttpError::Protocol(_)), "{e:?}");
        }
    }

    #[test]
    fn refused_and_silent_servers() {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        assert!(matches!(post_to(port), Err(HttpError::Unreachable(_))));
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let t0 = Instant::now();
        let e = post(
            "127.0.0.1",
            port,
            "/",
            &[],
            b"",
            Instant::now() + Duration::from_millis(300),
        )
        .unwrap_err();
        assert!(matches!(e, HttpError::Timeout(_)), "{e:?}");
        assert!(t0.elapsed() < Duration::from_secs(3));
        drop(l);
    }
}
