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
//! Timestamps are rebased so the clip starts at zero and are kept strictly increasing per track: a
//! camera whose clock jumps back, or forward further than the arrival clock says time passed, is
//! re-anchored on the arrival clock instead of writing a broken file. H.265 is tagged `hvc1` (what
//! Apple players want); AAC audio is passed through, other audio codecs (G.711, which MP4 cannot
//! carry) are dropped with a warning by [`Tracks::of`].
//!
//! This module and `rtsp.rs` are the worker's FFI edge: the one `unsafe` block here sets a field that
//! ffmpeg-next has no setter for.

use ffmpeg_next as ffmpeg;
use ffmpeg_next::{codec, format, media, Packet, Rational};
use nvr_config::layout::PART_SUFFIX;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;
use tracing::warn;

/// How often an open clip's data is fsynced (besides at close), bounding what a power loss costs
/// and what is left for the fsync at close.
const SYNC_EVERY: Duration = Duration::from_secs(2);
/// The longest a fragment may get before it goes to disk (fragments also start at every keyframe).
const FRAGMENT_MAX: Duration = Duration::from_secs(1);
/// A forward jump of the camera's timestamps beyond the arrival clock's by more than this is a
/// glitch, not real time passing.
const MAX_FORWARD_JUMP_S: f64 = 5.0;

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

/// Per-track timestamp state: rebase to zero, keep strictly increasing.
struct Timeline {
    out_index: usize,
    in_tb: Rational,
    out_tb: Rational,
    /// Added to rebased input timestamps (output time base); changes when the camera's clock jumps.
    offset: i64,
    last: Option<(i64, u64)>,
}

impl Timeline {
    /// Output `(pts, dts)` for a packet with input timestamps `pts`/`dts` that arrived at
    /// `arrival_ns`. The first packet of a track starts at `origin_s` (seconds of the input clock:
    /// the clip's first video frame), or at zero when `None`; `None` is returned for a packet that
    /// would fall before the clip's start.
    fn map(
        &mut self,
        pts: Option<i64>,
        dts: Option<i64>,
        arrival_ns: u64,
        origin_s: Option<f64>,
    ) -> Option<(i64, i64)> {
        let to_out = |ts: i64| ts.rescale(self.in_tb, self.out_tb);
        let ticks_per_s = f64::from(self.out_tb.denominator()) / f64::from(self.out_tb.numerator());
        let since_last = |last_arrival: u64| {
            (arrival_ns.saturating_sub(last_arrival) as f64 / 1e9 * ticks_per_s) as i64
        };
        let raw_dts = dts.or(pts).map(to_out);
        if self.last.is_none() {
            // The clip starts at zero (or, for audio, where its video starts).
            let start = match origin_s {
                Some(o) => (o * ticks_per_s).round() as i64,
                None => raw_dts.unwrap_or(0),
            };
            self.offset = -start;
        }
        let mut out_dts = match (raw_dts, self.last) {
            (Some(d), _) => d + self.offset,
            // No timestamp at all (the first RTSP packets can lack them): go by the arrival clock.
            (None, Some((last, at))) => last + since_last(at).max(1),
            (None, None) => 0,
        };
        match self.last {
            None if out_dts < 0 => return None,
            None => {}
            Some((last, at)) => {
                let elapsed = since_last(at);
                let jumped = out_dts <= last
                    || (out_dts - last) as f64 > elapsed as f64 + MAX_FORWARD_JUMP_S * ticks_per_s;
                if jumped {
                    let fixed = last + elapsed.max(1);
                    self.offset += fixed - out_dts;
                    out_dts = fixed;
                }
            }
        }
        let out_pts = pts
            .map(|p| to_out(p) + self.offset)
            .unwrap_or(out_dts)
            .max(out_dts);
        self.last = Some((out_dts, arrival_ns));
        Some((out_pts, out_dts))
    }

    /// Seconds of the input clock at which this track's output starts (valid after the first
    /// packet).
    fn origin_s(&self) -> f64 {
        -self.offset as f64 * f64::from(self.out_tb.numerator())
            / f64::from(self.out_tb.denominator())
    }
}

trait Rescale {
    fn rescale(self, from: Rational, to: Rational) -> i64;
}

impl Rescale for i64 {
    fn rescale(self, from: Rational, to: Rational) -> i64 {
        // ts · from / to, in 128 bits so no realistic timestamp overflows.
        let num = i128::from(self) * i128::from(from.numerator()) * i128::from(to.denominator());
        let den = i128::from(from.denominator()) * i128::from(to.numerator());
        (num / den.max(1)) as i64
    }
}

/// An open clip.
pub struct Clip {
    octx: format::context::Output,
    /// Final path and the `.part` being written.
    path: PathBuf,
    part: PathBuf,
    video: Timeline,
    audio: Option<(usize, Timeline)>,
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
        let timeline = |out_index: usize, t: &Track| Timeline {
            out_index,
            in_tb: t.time_base,
            out_tb: octx
                .stream(out_index)
                .map_or(t.time_base, |s| s.time_base()),
            offset: 0,
            last: None,
        };
        let video = timeline(video_out, &tracks.video);
        let audio = match (&tracks.audio, audio_out) {
            (Some(a), Some(out)) => Some((a.in_index, timeline(out, a))),
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
        let (timeline, origin_s) = if packet.stream() == self.video_in_index {
            self.frames += 1;
            self.first_arrival_ns.get_or_insert(arrival_ns);
            (&mut self.video, None)
        } else {
            match &mut self.audio {
                Some((idx, t)) if *idx == packet.stream() && self.first_arrival_ns.is_some() => {
                    (t, Some(self.video.origin_s()))
                }
                _ => return Ok(()),
            }
        };
        let Some((pts, dts)) = timeline.map(packet.pts(), packet.dts(), arrival_ns, origin_s)
        else {
            return Ok(());
        };
        let mut out = packet.clone();
        out.set_stream(timeline.out_index);
        out.set_pts(Some(pts));
        out.set_dts(Some(dts));
        out.set_duration(packet.duration().rescale(timeline.in_tb, timeline.out_tb));
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
fn seal(part: &Path, path: &Path) -> Result<u64, ClipError> {
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

/// A `.part` file found at start-up: what became of it.
#[derive(Debug)]
pub enum Recovered {
    /// It held video: renamed to its final name.
    Finished(Finished),
    /// It held nothing playable: renamed to `<name>.mp4.broken` so it is not retried.
    Broken { path: PathBuf, why: String },
}

/// Finishes the `.part` files a crashed worker left under `dir` (a camera's output directory):
/// each is checked by reading it with FFmpeg; one that holds video is renamed to its final name.
pub fn recover_parts(dir: &Path) -> Vec<Recovered> {
    let mut found = Vec::new();
    let days = std::fs::read_dir(dir).into_iter().flatten().flatten();
    for day in days.filter(|d| d.path().is_dir()) {
        for entry in std::fs::read_dir(day.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            let part = entry.path();
            if part.to_string_lossy().ends_with(PART_SUFFIX) {
                found.push(recover(&part));
            }
        }
    }
    found
}

fn recover(part: &Path) -> Recovered {
    let s = part.to_string_lossy();
    let path = PathBuf::from(&s[..s.len() - PART_SUFFIX.len()]);
    match trim_torn_tail(part) {
        Ok(0) => {}
        Ok(cut) => warn!(path = %part.display(), bytes = cut, "cut off a torn last fragment"),
        Err(e) => warn!(path = %part.display(), error = %e, "could not check the last fragment"),
    }
    match probe(part) {
        Ok((frames, duration_s)) if frames > 0 => match seal(part, &path) {
            Ok(bytes) => Recovered::Finished(Finished {
                path,
                duration_s,
                bytes,
                frames,
            }),
            Err(e) => Recovered::Broken {
                path: part.to_path_buf(),
                why: e.to_string(),
            },
        },
        result => {
            let why = match result {
                Ok(_) => "no video frames".to_string(),
                Err(e) => e.to_string(),
            };
            let broken = PathBuf::from(format!("{}.broken", path.display()));
            let _ = std::fs::rename(part, &broken);
            Recovered::Broken { path: broken, why }
        }
    }
}

/// Cuts a fragmented MP4 back to its last whole fragment; returns the bytes cut off. The muxer
/// appends `moof`+`mdat` pairs, so a crash mid-write leaves a torn last box (or a `moof` without its
/// `mdat`), which players report as a corrupt packet. Walks the top-level boxes only.
fn trim_torn_tail(path: &Path) -> std::io::Result<u64> {
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)?;
    let len = f.metadata()?.len();
    let (mut pos, mut whole) = (0u64, 0u64);
    let mut head = [0u8; 16];
    while pos + 8 <= len {
        f.seek(SeekFrom::Start(pos))?;
        f.read_exact(&mut head[..8])?;
        let mut size = u64::from(u32::from_be_bytes([head[0], head[1], head[2], head[3]]));
        if size == 1 {
            // A 64-bit size follows the type.
            if pos + 16 > len {
                break;
            }
            f.read_exact(&mut head[8..])?;
            size = u64::from_be_bytes(head[8..].try_into().expect("8 bytes"));
        } else if size == 0 {
            size = len - pos; // "to the end of the file"
        }
        if size < 8 || pos + size > len {
            break;
        }
        pos += size;
        // A `moof` counts only together with the `mdat` after it.
        if &head[4..8] != b"moof" {
            whole = pos;
        }
    }
    if whole < len {
        f.set_len(whole)?;
        f.sync_all()?;
    }
    Ok(len - whole)
}

/// Counts the video packets of a file and the seconds they span.
fn probe(path: &Path) -> Result<(u64, f64), ffmpeg::Error> {
    let mut input = format::input(path)?;
    let video = input
        .streams()
        .best(media::Type::Video)
        .ok_or(ffmpeg::Error::StreamNotFound)?;
    let (index, tb) = (video.index(), video.time_base());
    let (mut frames, mut first, mut last) = (0u64, None, 0i64);
    loop {
        // A new packet each time: `av_read_frame` does not release what a reused one held.
        let mut packet = Packet::empty();
        if packet.read(&mut input).is_err() {
            break;
        }
        if packet.stream() == index {
            frames += 1;
            if let Some(t) = packet.pts() {
                first.get_or_insert(t);
                last = last.max(t);
            }
        }
    }
    let ticks = last - first.unwrap_or(0);
    Ok((
        frames,
        ticks as f64 * f64::from(tb.numerator()) / f64::from(tb.denominator().max(1)),
    ))
}

pub(crate) use ffi::video_size;

/// The FFI edge: what ffmpeg-next does not expose.
#[allow(unsafe_code)]
mod ffi {
    use ffmpeg_next::codec;
    use ffmpeg_next::format::stream::StreamMut;

    /// Sets the output stream's codec tag (a fourcc, e.g. `hvc1`); `[0; 4]` lets the muxer choose.
    pub fn set_codec_tag(stream: &mut StreamMut<'_>, tag: [u8; 4]) {
        let mut params = stream.parameters();
        // SAFETY: `params` wraps the stream's own AVCodecParameters (a live pointer owned by the
        // output context that `stream` borrows mutably, so nothing else touches it now);
        // `codec_tag` is a plain integer field that the muxer reads in write_header.
        unsafe {
            (*params.as_mut_ptr()).codec_tag = u32::from_le_bytes(tag);
        }
    }

    /// Width and height of video codec parameters.
    pub(crate) fn video_size(params: &codec::Parameters) -> (u32, u32) {
        // SAFETY: `params` is a live AVCodecParameters (ffmpeg-next keeps its owner alive); width
        // and height are plain integer fields, only read here.
        let (w, h) = unsafe {
            let p = params.as_ptr();
            ((*p).width, (*p).height)
        };
        (w.max(0) as u32, h.max(0) as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::trim_torn_tail;

    fn boxed(kind: &[u8; 4], body: usize) -> Vec<u8> {
        let mut b = ((body + 8) as u32).to_be_bytes().to_vec();
        b.extend_from_slice(kind);
        b.resize(body + 8, 0xab);
        b
    }

    #[test]
    fn a_torn_last_fragment_is_cut_off_and_whole_ones_are_kept() {
        let dir = std::env::temp_dir().join(format!("nvr-trim-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("clip.mp4.part");
        let whole: Vec<u8> = [
            boxed(b"ftyp", 16),
            boxed(b"moov", 40),
            boxed(b"moof", 24),
            boxed(b"mdat", 100),
        ]
        .concat();
        let cases = [
            // (what follows the whole part, bytes that must be cut)
            (Vec::new(), 0),
            (boxed(b"moof", 24), 32), // moof without its mdat
            (
                [boxed(b"moof", 24), boxed(b"mdat", 100)[..50].to_vec()].concat(),
                82,
            ), // torn mdat
            (boxed(b"moof", 24)[..5].to_vec(), 5), // torn box header
        ];
        for (tail, cut) in cases {
            std::fs::write(&path, [whole.clone(), tail.clone()].concat()).unwrap();
            assert_eq!(
                trim_torn_tail(&path).unwrap(),
                cut as u64,
                "tail of {}",
                tail.len()
            );
            assert_eq!(std::fs::read(&path).unwrap(), whole);
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
