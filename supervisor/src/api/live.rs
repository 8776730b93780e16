//! Live video over WebSockets: `GET /api/cameras/{id}/live?stream=sub|main[&format=fmp4|jpeg][&fps=N]`.
//!
//! - `format=fmp4` (the default): the camera's own encoded stream, relayed without decoding. A
//!   text message `{"type":"init","mime":...,"codec":...,"width":...,"height":...}` says what
//!   follows (so the page can ask `MediaSource.isTypeSupported` first), then a binary message with
//!   the fragmented-MP4 initialisation segment, then one binary `moof`+`mdat` fragment per frame
//!   from the newest keyframe on. A worker restart or a codec/size change sends a new `init` pair.
//! - `format=jpeg` (SUB only): the fallback for codecs the browser cannot play: each JPEG of the
//!   shared preview encoder (`preview.rs`) as one binary message, at `fps` (default 5, up to 30).
//!
//! Each fMP4 viewer has its own reader thread on the camera's packet ring (shared memory, lock-free,
//! never slowing the worker) and its own muxer; fragments go to the socket through a queue bounded
//! in bytes ([`Backlog`]): a viewer whose socket does not drain stops getting fragments, and
//! resumes at the next keyframe once its queue has room, so it holds bounded memory and never
//! slows the worker or other viewers. Close reasons: [`Close`].

use crate::api::server::Stopping;
use crate::api::ws::{self, Close, Outgoing, Source};
use crate::api::AppState;
use crate::preview::Subscription;
use axum::extract::ws::{Message, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use nvr_config::RecordingMode;
use serde_json::json;
use std::time::{Duration, Instant};

/// A camera that sends nothing for this long is closed with `camera_down` (the page reopens the
/// socket when `/api/ws` says the camera is up again).
pub const DOWN_AFTER: Duration = Duration::from_secs(10);

/// Which of the camera's streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    #[default]
    Sub,
    Main,
}

/// How the frames travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// The camera's packets in fragmented MP4, for Media Source Extensions.
    #[default]
    Fmp4,
    /// JPEGs of the decoded SUB stream, for codecs the browser cannot play.
    Jpeg,
}

#[derive(Debug, serde::Deserialize)]
pub struct LiveQuery {
    #[serde(default)]
    stream: Stream,
    #[serde(default)]
    format: Format,
    fps: Option<f64>,
}

fn bad_request(msg: &str) -> Response {
    (StatusCode::BAD_REQUEST, Json(json!({ "error": msg }))).into_response()
}

/// What the live endpoint decides before any frame: who may watch what.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    Refuse(Close),
    Fmp4(Stream),
    Jpeg,
}

/// The decision, pure: `recording_mode` is the camera's (`None`: no such camera).
pub fn plan(recording_mode: Option<RecordingMode>, stream: Stream, format: Format) -> Plan {
    match (recording_mode, stream, format) {
        (None, _, _) => Plan::Refuse(Close::UnknownCamera),
        (Some(RecordingMode::Off), Stream::Main, _) => Plan::Refuse(Close::MainNotConnected),
        (Some(_), _, Format::Jpeg) => Plan::Jpeg,
        (Some(_), s, Format::Fmp4) => Plan::Fmp4(s),
    }
}

/// `GET /api/cameras/{id}/live`.
pub async fn live(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<LiveQuery>,
    stopping: Option<Extension<Stopping>>,
    ws: WebSocketUpgrade,
) -> Response {
    if q.format == Format::Jpeg && q.stream == Stream::Main {
        return bad_request("the JPEG fallback shows the SUB stream only (stream=sub)");
    }
    let mode = state.status.read().ok().and_then(|s| {
        s.cameras
            .iter()
            .find(|c| c.id == id)
            .map(|c| c.recording_mode)
    });
    let plan = plan(mode, q.stream, q.format);
    let idle = state.sockets.idle;
    let stop = stopping.map(|Extension(s)| s);
    ws::limit(ws).on_upgrade(move |socket| async move {
        let why = match plan {
            Plan::Refuse(why) => ws::drive(socket, Closing(why), idle, stop).await,
            Plan::Jpeg => {
                let sub = state
                    .preview
                    .subscribe(&id, q.fps.unwrap_or(crate::preview::DEFAULT_FPS));
                ws::drive(socket, JpegFeed::new(sub), idle, stop).await
            }
            Plan::Fmp4(stream) => {
                ws::drive(socket, relay::Relay::start(&id, stream), idle, stop).await
            }
        };
        tracing::debug!(camera_id = %id, reason = why.reason(), "live socket closed");
    })
}

/// A source that closes at once.
struct Closing(Close);

impl Source for Closing {
    async fn next(&mut self) -> Outgoing {
        Outgoing::Close(self.0)
    }
}

/// JPEGs of the shared preview encoder, at the subscription's rate.
struct JpegFeed {
    sub: Subscription,
    period: Duration,
    last_seq: Option<u64>,
    next_at: tokio::time::Instant,
    last_frame: Instant,
}

impl JpegFeed {
    fn new(sub: Subscription) -> Self {
        let period = Duration::from_secs_f64(1.0 / sub.fps);
        JpegFeed {
            sub,
            period,
            last_seq: None,
            next_at: tokio::time::Instant::now(),
            last_frame: Instant::now(),
        }
    }
}

impl Source for JpegFeed {
    async fn next(&mut self) -> Outgoing {
        // Every await below may be cancelled: all state lives in `self`.
        tokio::time::sleep_until(self.next_at).await;
        loop {
            let left = DOWN_AFTER.saturating_sub(self.last_frame.elapsed());
            match tokio::time::timeout(left, self.sub.rx.changed()).await {
                Err(_) => return Outgoing::Close(Close::CameraDown),
                Ok(Err(_)) => return Outgoing::Close(Close::GoingAway),
                Ok(Ok(())) => {}
            }
            let picture = self.sub.rx.borrow_and_update().clone();
            if let Some(p) = picture.filter(|p| Some(p.seq) != self.last_seq) {
                self.last_seq = Some(p.seq);
                self.last_frame = Instant::now();
                self.next_at = tokio::time::Instant::now() + self.period;
                let jpeg = axum::body::Bytes::from(p.jpeg.as_ref().clone());
                return Outgoing::Send(Message::Binary(jpeg));
            }
        }
    }
}

/// The slow-viewer policy of one viewer's queue, pure: fragments are admitted while the bytes
/// queued (sent to the socket's task but not yet written) stay within `budget`; the first one
/// that does not fit is dropped and so is everything after it until a keyframe that fits. An
/// empty queue always takes the next keyframe, however big, so a viewer is never starved.
#[derive(Debug, Clone)]
pub struct Backlog {
    budget: usize,
    skipping: bool,
}

/// What to do with one fragment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    Send,
    /// Dropped: the viewer is behind; it resumes at the next keyframe.
    Drop,
}

impl Backlog {
    pub fn new(budget: usize) -> Self {
        Backlog {
            budget,
            skipping: false,
        }
    }

    /// Whether to queue a fragment of `len` bytes (`keyframe`: it starts with one) when `queued`
    /// bytes wait already.
    pub fn admit(&mut self, queued: usize, len: usize, keyframe: bool) -> Admit {
        let fits = queued == 0 || queued.saturating_add(len) <= self.budget;
        if self.skipping && !(keyframe && fits) {
            return Admit::Drop;
        }
        if fits {
            self.skipping = false;
            Admit::Send
        } else {
            self.skipping = true;
            Admit::Drop
        }
    }

    /// Starts over (a new init segment follows): the next fragment must be a keyframe.
    pub fn restart(&mut self) {
        self.skipping = true;
    }

    pub fn skipping(&self) -> bool {
        self.skipping
    }
}

mod relay;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn who_may_watch_what() {
        use RecordingMode::*;
        for (mode, stream, format, want) in [
            (
                None,
                Stream::Sub,
                Format::Fmp4,
                Plan::Refuse(Close::UnknownCamera),
            ),
            (
                None,
                Stream::Main,
                Format::Jpeg,
                Plan::Refuse(Close::UnknownCamera),
            ),
            (
                Some(Off),
                Stream::Main,
                Format::Fmp4,
                Plan::Refuse(Close::MainNotConnected),
            ),
            (
                Some(Off),
                Stream::Sub,
                Format::Fmp4,
                Plan::Fmp4(Stream::Sub),
            ),
            (Some(Off), Stream::Sub, Format::Jpeg, Plan::Jpeg),
            (
                Some(Motion),
                Stream::Main,
                Format::Fmp4,
                Plan::Fmp4(Stream::Main),
            ),
            (
                Some(Continuous),
                Stream::Main,
                Format::Fmp4,
                Plan::Fmp4(Stream::Main),
            ),
            (
                Some(Continuous),
                Stream::Sub,
                Format::Fmp4,
                Plan::Fmp4(Stream::Sub),
            ),
        ] {
            assert_eq!(
                plan(mode, stream, format),
                want,
                "{mode:?} {stream:?} {format:?}"
            );
        }
    }

    #[test]
    fn a_slow_viewer_skips_to_the_next_keyframe_that_fits() {
        // (queued bytes, fragment length, keyframe) → admitted?; budget 100.
        let mut b = Backlog::new(100);
        let steps = [
            (0, 500, true, Admit::Send), // an empty queue takes any keyframe
            (0, 10, false, Admit::Send),
            (50, 50, false, Admit::Send), // exactly at the budget
            (90, 20, false, Admit::Drop), // over: skip...
            (0, 10, false, Admit::Drop),  // ...even once drained, until a keyframe
            (95, 20, true, Admit::Drop),  // a keyframe that does not fit is skipped too
            (10, 20, true, Admit::Send),  // the next keyframe that fits resumes
            (30, 10, false, Admit::Send),
        ];
        for (i, (queued, len, key, want)) in steps.into_iter().enumerate() {
            assert_eq!(b.admit(queued, len, key), want, "step {i}");
        }
        b.restart();
        assert!(b.skipping());
        assert_eq!(b.admit(0, 10, false), Admit::Drop);
        assert_eq!(b.admit(0, 10, true), Admit::Send);
    }
}
