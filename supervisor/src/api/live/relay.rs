//! One fMP4 viewer: a reader thread on the camera's packet ring, muxing each access unit into a
//! fragment, and the bounded queue to the viewer's socket.

use super::Stream;
use crate::api::ws::{Close, Outgoing, Source};

pub struct Relay;

impl Relay {
    pub fn start(_camera: &str, _stream: Stream) -> Relay {
        Relay
    }
}

impl Source for Relay {
    async fn next(&mut self) -> Outgoing {
        Outgoing::Close(Close::Unsupported)
    }
}
