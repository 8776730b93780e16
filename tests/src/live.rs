//! A WebSocket client of the supervisor's live endpoints (`/api/cameras/<id>/live`, `/api/ws`), as
//! tests and benchmarks use it: connect with chosen headers, read the `init` message, the init
//! segment and the fragments, and read each fragment's decode time (`tfdt`).

use anyhow::{bail, Context, Result};
use serde_json::Value;
use std::net::TcpStream;
use std::time::{Duration, Instant};
use tungstenite::client::IntoClientRequest;
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::{Message, WebSocket};

pub type Socket = WebSocket<TcpStream>;

/// How a connection attempt ended.
#[derive(Debug)]
pub enum Opened {
    Socket(Box<Socket>),
    /// Refused before the upgrade: the HTTP status and body.
    Refused(u16, String),
}

/// Opens `ws://127.0.0.1:<port><path>` with `headers` added (e.g. `Origin`, `Cookie`).
pub fn open(port: u16, path: &str, headers: &[(&str, &str)]) -> Result<Opened> {
    let mut request = format!("ws://127.0.0.1:{port}{path}").into_client_request()?;
    for (k, v) in headers {
        request.headers_mut().insert(
            tungstenite::http::HeaderName::from_bytes(k.as_bytes())?,
            v.parse()?,
        );
    }
    let stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(20)))?;
    match tungstenite::client(request, stream) {
        Ok((socket, _)) => Ok(Opened::Socket(Box::new(socket))),
        Err(tungstenite::HandshakeError::Failure(tungstenite::Error::Http(r))) => {
            let body = r
                .body()
                .as_ref()
                .map(|b| String::from_utf8_lossy(b).to_string())
                .unwrap_or_default();
            Ok(Opened::Refused(r.status().as_u16(), body))
        }
        Err(e) => bail!("WebSocket handshake to {path}: {e}"),
    }
}

/// [`open`], which must succeed.
pub fn connect(port: u16, path: &str) -> Result<Socket> {
    match open(port, path, &[])? {
        Opened::Socket(s) => Ok(*s),
        Opened::Refused(code, body) => bail!("{path}: refused with {code}: {body}"),
    }
}

/// What a socket said next.
#[derive(Debug)]
pub enum Event {
    Text(String),
    Binary(Vec<u8>),
    /// The server closed it: code and reason.
    Closed(u16, String),
}

/// The next text, binary or close message (pings are answered by tungstenite).
pub fn next(socket: &mut Socket) -> Result<Event> {
    loop {
        match socket.read() {
            Ok(Message::Text(t)) => return Ok(Event::Text(t.to_string())),
            Ok(Message::Binary(b)) => return Ok(Event::Binary(b.to_vec())),
            Ok(Message::Close(f)) => {
                return Ok(f.map_or(Event::Closed(1005, String::new()), |f| {
                    Event::Closed(u16::from(f.code), f.reason.to_string())
                }))
            }
            Ok(_) => continue,
            Err(tungstenite::Error::ConnectionClosed) => {
                return Ok(Event::Closed(1006, String::new()))
            }
            Err(e) => return Err(e).context("reading the socket"),
        }
    }
}

/// Reads until the server closes the socket (within `timeout`); returns its code and reason.
pub fn close_reason(socket: &mut Socket, timeout: Duration) -> Result<(u16, String)> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if let Event::Closed(code, reason) = next(socket)? {
            return Ok((code, reason));
        }
    }
    bail!("the socket was not closed within {timeout:?}")
}

/// The box `kind` (e.g. `b"tfdt"`) anywhere in `data`: its payload after the 8-byte header.
pub fn find_box<'a>(data: &'a [u8], kind: &[u8; 4]) -> Option<&'a [u8]> {
    let at = data.windows(4).position(|w| w == kind)?;
    let start = at.checked_sub(4)?;
    let size = u32::from_be_bytes(data[start..at].try_into().ok()?) as usize;
    data.get(at + 4..start + size)
}

/// The first `tfdt` decode time of a `moof`+`mdat` fragment (the video track's: it comes first).
pub fn decode_time(fragment: &[u8]) -> Option<u64> {
    let tfdt = find_box(fragment, b"tfdt")?;
    match tfdt.first()? {
        1 => Some(u64::from_be_bytes(tfdt.get(4..12)?.try_into().ok()?)),
        _ => Some(u64::from(u32::from_be_bytes(
            tfdt.get(4..8)?.try_into().ok()?,
        ))),
    }
}

/// A live viewer's reading so far.
#[derive(Debug, Default, Clone)]
pub struct Watched {
    /// Each `init` message.
    pub inits: Vec<Value>,
    /// (when received, decode time) of each fragment.
    pub fragments: Vec<(Instant, u64)>,
    pub bytes: u64,
}

/// Reads a live socket for `how_long` (or until it closes), collecting what came.
pub fn watch(socket: &mut Socket, how_long: Duration) -> Result<(Watched, Option<(u16, String)>)> {
    let mut w = Watched::default();
    let deadline = Instant::now() + how_long;
    socket
        .get_ref()
        .set_read_timeout(Some(Duration::from_millis(500)))?;
    while Instant::now() < deadline {
        let event = match next(socket) {
            Ok(e) => e,
            Err(e) if is_timeout(&e) => continue,
            Err(e) => return Err(e),
        };
        match event {
            Event::Text(t) => w.inits.push(serde_json::from_str(&t)?),
            Event::Binary(b) => {
                w.bytes += b.len() as u64;
                if b.get(4..8) == Some(b"ftyp") {
                    continue;
                }
                let t = decode_time(&b).context("a fragment without tfdt")?;
                w.fragments.push((Instant::now(), t));
            }
            Event::Closed(code, reason) => return Ok((w, Some((code, reason)))),
        }
    }
    Ok((w, None))
}

fn is_timeout(e: &anyhow::Error) -> bool {
    e.downcast_ref::<tungstenite::Error>().is_some_and(|e| {
        matches!(e, tungstenite::Error::Io(io) if matches!(io.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut))
    })
}

/// Closes a socket politely.
pub fn close(mut socket: Socket) {
    let _ = socket.close(Some(tungstenite::protocol::CloseFrame {
        code: CloseCode::Normal,
        reason: "done".into(),
    }));
    let _ = socket.flush();
}
