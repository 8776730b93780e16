//! Writing MAIN packets into a fragmented MP4 without transcoding, crash-safe.
//!
//! A clip is written as `<name>.mp4.part` with `movflags=frag_keyframe+empty_moov+default_base_moof
//! +delay_moov`, `frag_duration` and `flush_packets`: a fragment goes to disk at every keyframe
//! and at least every second, so a file cut by a crash or power loss
//! still plays up to its last whole fragment (a torn last one is cut off when the `.part` is
//! recovered; `delay_moov` lets the muxer take the parameter sets from the
//! first keyframe when the camera's SDP has none). Closing writes the trailer (the fragment index,
//! so players can seek), fsyncs the file, renames it to `<name>.mp4` and fsyncs the directory.
//!
//! Timestamps are rebased so the clip starts at zero and are kept strictly increasing per track
//! ([`Timeline`]). H.265 is tagged `hvc1` (what Apple players want, set through `ffi.rs`); AAC audio
//! is passed through, other audio codecs (G.711, which MP4 cannot carry) are dropped with a warning
//! by [`Tracks::of`]. A clip whose write failed is salvaged by `recovery.rs` when it is closed.

use crate::ffi;
use crate::recovery::{probe, trim_torn_tail};
use ffmpeg_next as ffmpeg;
use ffmpeg_next::{codec, format, media, Packet, Rational};
use nvr_proto::RecordingErrorKind;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;
use tracing::warn;
use worker::timeline::{TimeBase, Timeline};

/// How often an open clip's data is fsynced (besides at close), bounding what a power loss costs
/// and what is left for the fsync at close.
const SYNC_EVERY: Duration = Duration::from_secs(2);
/// The longest a fragment may get before it goes to disk (fragments also start at every keyframe).
const FRAGMENT_MAX: Duration = Duration::from_secs(1);

/// One input stream that is recorded.
#[derive(Clone)]
pub struct Track {
    pub in_index: usize,
    pub parameters: codec::Parameters,
    pub time_base: Rational,
    pub codec: codec::Id,
}

/// The MAIN input's streams that go into clips: its video, and its audio if MP4 can carry it.
#[derive(Clone)]
pub struct Tracks {
    pub video: Track,
    pub audio: Option<Track>,
}

impl Tracks {
    /// Picks the tracks of an opened input; `None` if it has no video. Audio MP4 cannot carry is
    /// left out with a warning (once per connection).
    pub fn of(input: &format::context::Input) -> Option<Tracks> {
        let track = |s: format::stream::Stream<'_>| Track {
            in_index: s.index(),
            parameters: s.parameters(),
            time_base: s.time_base(),
            codec: s.parameters().id(),
        };
        let video = track(input.streams().best(media::Type::Video)?);
        let audio = input
            .streams()
            .best(media::Type::Audio)
            .map(track)
            .filter(|a| {
                let ok = a.codec == codec::Id::AAC;
                if !ok {
                    warn!(
                        stream = "main",
                        codec = ?a.codec,
                        "audio codec cannot go into MP4; recording video only"
                    );
                }
                ok
            });
        Some(Tracks { video, audio })
    }

    /// Width and height of the video.
    pub fn video_size(&self) -> (u32, u32) {
        ffi::video_size(&self.video.parameters)
    }

    /// Whether the video can go into a clip as it is: H.264 or H.265, which MP4 players (browsers
    /// among them) play. Anything else would need transcoding.
    pub fn recordable(&self) -> bool {
        matches!(self.video.codec, codec::Id::H264 | codec::Id::HEVC)
    }

    /// `h264`, `hevc`, ... for events and the index.
    pub fn video_codec_name(&self) -> String {
        format!("{:?}", self.video.codec).to_lowercase()
    }
}

/// A recorded track of an open clip: its stream in the file and how its timestamps map there.
struct OutTrack {
    index: usize,
    timeline: Timeline,
}

/// FFmpeg's time base as the timeline's.
fn time_base(r: Rational) -> TimeBase {
    TimeBase {
        num: r.numerator(),
        den: r.denominator(),
    }
}

/// An open clip.
pub struct Clip {
    octx: format::context::Output,
    /// Final path and the `.part` being written.
    path: PathBuf,
    part: PathBuf,
    video: OutTrack,
    /// The audio track, with its input stream index.
    audio: Option<(usize, OutTrack)>,
    video_in_index: usize,
    first_arrival_ns: Option<u64>,
    last_arrival_ns: u64,
    frames: u64,
    syncer: Syncer,
    /// A write failed: the file must be checked before it is kept.
    damaged: bool,
}

/// What a finished clip holds.
#[derive(Debug, Clone)]
pub struct Finished {
    pub path: PathBuf,
    pub duration_s: f64,
    pub bytes: u64,
    pub frames: u64,
}

/// Why a clip could not be written. `disk full` and `read-only` are called out, since they are
/// what a user has to act on.
#[derive(Debug, thiserror::Error)]
pub enum ClipError {
    #[error("{path}: disk full")]
    DiskFull { path: String },
    #[error("{path}: the output file system is read-only")]
    ReadOnly { path: String },
    #[error("{path}: {what}: {detail}")]
    Io {
        path: String,
        what: &'static str,
        detail: String,
    },
}

impl ClipError {
    fn new(path: &Path, what: &'static str, errno: Option<i32>, detail: String) -> Self {
        let path = path.display().to_string();
        match errno {
            Some(libc_errno::ENOSPC) | Some(libc_errno::EDQUOT) => ClipError::DiskFull { path },
            Some(libc_errno::EROFS) => ClipError::ReadOnly { path },
            _ => ClipError::Io { path, what, detail },
        }
    }

    fn ffmpeg(path: &Path, what: &'static str, e: ffmpeg::Error) -> Self {
        let errno = match e {
            ffmpeg::Error::Other { errno } => Some(errno),
            _ => None,
        };
        Self::new(path, what, errno, e.to_string())
    }

    fn io(path: &Path, what: &'static str, e: std::io::Error) -> Self {
        Self::new(path, what, e.raw_os_error(), e.to_string())
    }

    /// A short reason for `/status`: `disk full`, `read-only file system`, or the detail.
    pub fn reason(&self) -> String {
        match self {
            ClipError::DiskFull { .. } => "disk full".into(),
            ClipError::ReadOnly { .. } => "read-only file system".into(),
            other => other.to_string(),
        }
    }

    /// The kind the `RecordingError` event carries.
    pub fn kind(&self) -> RecordingErrorKind {
        match self {
            ClipError::DiskFull { .. } => RecordingErrorKind::DiskFull,
            ClipError::ReadOnly { .. } => RecordingErrorKind::ReadOnly,
            ClipError::Io { .. } => RecordingErrorKind::Other,
        }
    }
}

/// The errno values the writer distinguishes (Linux numbering, which FFmpeg reports through).
mod libc_errno {
    pub const ENOSPC: i32 = 28;
    pub const EROFS: i32 = 30;
    pub const EDQUOT: i32 = 122;
}

impl Clip {
    /// Creates `<path>.part` (and its directory) and writes the header.
    pub fn create(path: &Path, tracks: &Tracks) -> Result<Clip, ClipError> {
        let part = nvr_config::layout::part_of(path);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| ClipError::io(dir, "creating", e))?;
        }
        let mut octx =
            format::output_as(&part, "mp4").map_err(|e| ClipError::ffmpeg(&part, "creating", e))?;
        let mut add = |t: &Track| -> Result<usize, ClipError> {
            let mut s = octx
                .add_stream(ffmpeg::encoder::find(codec::Id::None))
                .map_err(|e| ClipError::ffmpeg(&part, "adding a stream", e))?;
            s.set_parameters(t.parameters.clone());
            s.set_time_base(t.time_base);
            let tag = match t.codec {
                codec::Id::HEVC => *b"hvc1",
                codec::Id::H264 => *b"avc1",
                _ => [0; 4],
            };
            ffi::set_codec_tag(&mut s, tag);
            Ok(s.index())
        };
        let video_out = add(&tracks.video)?;
        let audio_out = tracks.audio.as_ref().map(&mut add).transpose()?;
        let mut opts = ffmpeg::Dictionary::new();
        opts.set(
            "movflags",
            "frag_keyframe+empty_moov+default_base_moof+delay_moov",
        );
        // A fragment at least every second, whatever the camera's GOP (often 4-10 s): a crash
        // loses at most the fragment being built, and a new clip is playable after one second.
        opts.set("frag_duration", &FRAGMENT_MAX.as_micros().to_string());
        // Hand each fragment to the kernel as soon as it is complete. Without this its last few
        // kB wait in FFmpeg's I/O buffer until the next fragment, so a crash tears the last one.
        opts.set("flush_packets", "1");
        octx.write_header_with(opts)
            .map_err(|e| ClipError::ffmpeg(&part, "writing the header", e))?;
        // The muxer may have chosen its own time bases in write_header.
        let out_track = |index: usize, t: &Track| OutTrack {
            index,
            timeline: Timeline::new(
                time_base(t.time_base),
                time_base(octx.stream(index).map_or(t.time_base, |s| s.time_base())),
            ),
        };
        let video = out_track(video_out, &tracks.video);
        let audio = match (&tracks.audio, audio_out) {
            (Some(a), Some(out)) => Some((a.in_index, out_track(out, a))),
            _ => None,
        };
        let syncer = Syncer::start(&part).map_err(|e| ClipError::io(&part, "opening", e))?;
        Ok(Clip {
            octx,
            path: path.to_path_buf(),
            part,
            video,
            audio,
            video_in_index: tracks.video.in_index,
            first_arrival_ns: None,
            last_arrival_ns: 0,
            frames: 0,
            syncer,
            damaged: false,
        })
    }

    /// Appends a packet read from the MAIN input (a copy: timestamps are rewritten). Packets of
    /// streams that are not recorded are ignored; audio before the first video frame is dropped, so
    /// the clip starts on its first keyframe.
    pub fn write(&mut self, packet: &Packet, arrival_ns: u64) -> Result<(), ClipError> {
        let (track, origin_s) = if packet.stream() == self.video_in_index {
            self.frames += 1;
            self.first_arrival_ns.get_or_insert(arrival_ns);
            (&mut self.video, None)
        } else {
            match &mut self.audio {
                Some((idx, t)) if *idx == packet.stream() && self.first_arrival_ns.is_some() => {
                    (t, Some(self.video.timeline.origin_s()))
                }
                _ => return Ok(()),
            }
        };
        let timeline = &mut track.timeline;
        let Some((pts, dts)) = timeline.map(packet.pts(), packet.dts(), arrival_ns, origin_s)
        else {
            return Ok(());
        };
        let mut out = packet.clone();
        out.set_stream(track.index);
        out.set_pts(Some(pts));
        out.set_dts(Some(dts));
        out.set_duration(timeline.duration(packet.duration()));
        out.set_position(-1);
        self.last_arrival_ns = arrival_ns;
        let written = out
            .write_interleaved(&mut self.octx)
            .map_err(|e| ClipError::ffmpeg(&self.part, "writing", e))
            .and_then(|()| match self.syncer.take_error() {
                Some(e) => Err(ClipError::io(&self.part, "syncing", e)),
                None => Ok(()),
            });
        self.damaged |= written.is_err();
        written
    }

    /// Seconds of video written so far (by the arrival clock).
    pub fn duration_s(&self) -> f64 {
        self.first_arrival_ns
            .map_or(0.0, |f| self.last_arrival_ns.saturating_sub(f) as f64 / 1e9)
    }

    /// Writes the trailer, fsyncs, renames to the final name. If a write failed (disk full) the
    /// fragments already on disk still play: the file is checked by reading it back and kept if it
    /// holds video, deleted if not; the error is returned alongside.
    pub fn finish(mut self) -> (Option<Finished>, Option<ClipError>) {
        let trailer = self
            .octx
            .write_trailer()
            .map_err(|e| ClipError::ffmpeg(&self.part, "writing the trailer", e))
            .err();
        let (part, path) = (self.part.clone(), self.path.clone());
        let (mut duration_s, mut frames) = (self.duration_s(), self.frames);
        let damaged = self.damaged || trailer.is_some();
        drop(self); // stops the syncer, closes the file
        if damaged {
            let _ = trim_torn_tail(&part);
            (frames, duration_s) = probe(&part).unwrap_or((0, 0.0));
        }
        if frames == 0 {
            let _ = std::fs::remove_file(&part);
            return (None, trailer);
        }
        match seal(&part, &path) {
            Ok(bytes) => (
                Some(Finished {
                    path,
                    duration_s,
                    bytes,
                    frames,
                }),
                trailer,
            ),
            Err(e) => (None, trailer.or(Some(e))),
        }
    }
}

/// fsyncs an open clip's data from a thread of its own every [`SYNC_EVERY`], so the thread that
/// reads the camera never waits for the disk: a slow fsync there would stall the RTSP socket and
/// the camera would drop packets.
struct Syncer {
    stop: Arc<(Mutex<bool>, Condvar)>,
    error: Arc<Mutex<Option<std::io::Error>>>,
    thread: Option<JoinHandle<()>>,
}

impl Syncer {
    fn start(part: &Path) -> std::io::Result<Syncer> {
        let file = File::open(part)?;
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let error = Arc::new(Mutex::new(None));
        let (stop2, error2) = (Arc::clone(&stop), Arc::clone(&error));
        let thread = std::thread::Builder::new()
            .name("clip-sync".into())
            .spawn(move || {
                let (lock, cv) = &*stop2;
                let Ok(mut stopped) = lock.lock() else { return };
                loop {
                    stopped = match cv.wait_timeout(stopped, SYNC_EVERY) {
                        Ok((guard, _)) => guard,
                        Err(_) => return,
                    };
                    if *stopped {
                        return;
                    }
                    if let Err(e) = file.sync_data() {
                        if let Ok(mut slot) = error2.lock() {
                            *slot = Some(e);
                        }
                        return;
                    }
                }
            })?;
        Ok(Syncer {
            stop,
            error,
            thread: Some(thread),
        })
    }

    /// The error of the last fsync, once.
    fn take_error(&self) -> Option<std::io::Error> {
        self.error.lock().ok()?.take()
    }
}

impl Drop for Syncer {
    fn drop(&mut self) {
        let (lock, cv) = &*self.stop;
        if let Ok(mut stopped) = lock.lock() {
            *stopped = true;
            cv.notify_all();
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// fsyncs `part`, renames it to `path`, fsyncs the directory; returns the size.
pub(crate) fn seal(part: &Path, path: &Path) -> Result<u64, ClipError> {
    let f = File::open(part).map_err(|e| ClipError::io(part, "opening", e))?;
    f.sync_all()
        .map_err(|e| ClipError::io(part, "syncing", e))?;
    let bytes = f.metadata().map(|m| m.len()).unwrap_or(0);
    std::fs::rename(part, path).map_err(|e| ClipError::io(part, "renaming", e))?;
    if let Some(dir) = path.parent() {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| ClipError::io(dir, "syncing", e))?;
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_errors_are_classified_by_errno_for_status_and_the_event() {
        let path = Path::new("out/a/2026-12-01/a_20261201T000000Z.mp4.part");
        // (errno, reason in /status, kind on the wire)
        let table = [
            (28, "disk full", RecordingErrorKind::DiskFull), // ENOSPC
            (122, "disk full", RecordingErrorKind::DiskFull), // EDQUOT
            (30, "read-only file system", RecordingErrorKind::ReadOnly), // EROFS
            (5, "writing: Input/output error", RecordingErrorKind::Other), // EIO
        ];
        for (errno, reason, kind) in table {
            let io = ClipError::io(path, "writing", std::io::Error::from_raw_os_error(errno));
            assert!(io.reason().contains(reason), "{errno}: {}", io.reason());
            assert_eq!(io.kind(), kind, "{errno}");
            // FFmpeg reports the same errno as AVERROR(errno).
            let ff = ClipError::ffmpeg(path, "writing", ffmpeg::Error::Other { errno });
            assert_eq!(ff.kind(), kind, "ffmpeg {errno}");
        }
    }
}
