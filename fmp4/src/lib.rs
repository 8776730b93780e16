//! Fragmented-MP4 muxer for live view: encoded H.264/H.265 access units and AAC frames in, an
//! initialisation segment (`ftyp` + `moov` with `mvex`) and media fragments (`moof` + `mdat`) out,
//! ready to append to a browser's `SourceBuffer` (Media Source Extensions).
//!
//! # Shape
//! - [`VideoTrack::new`] parses the in-band parameter sets (H.264 SPS+PPS, H.265 VPS+SPS+PPS, NAL
//!   units without start codes): width and height after cropping, profile, level, chroma format,
//!   and the codec string for `MediaSource.isTypeSupported` ([`VideoTrack::mime_codec`]).
//!   [`AudioTrack::new`] does the same for an AAC `AudioSpecificConfig`.
//! - [`init_segment`] writes `ftyp` + `moov`: track 1 is the video (timescale 90 kHz, `avc1`/`avcC`
//!   or `hvc1`/`hvcC`), track 2 the optional audio (timescale = the AAC sample rate, `mp4a`/`esds`).
//! - [`Fragmenter::fragment`] writes one `moof` + `mdat` per call, from any number of video and
//!   audio [`Sample`]s; live view passes one video frame per call. Video samples are Annex B access
//!   units as FFmpeg's RTSP demuxer hands them over: they are rewritten to 4-byte length-prefixed NAL
//!   units, and access unit delimiters and parameter sets are dropped (they live in the init segment).
//!
//! # Timing
//! Every sample carries its decode time and duration in its track's timescale. The fragment's
//! `tfdt` is its first sample's decode time, and MP4 derives every later sample's decode time from
//! the durations before it, so within one call each sample must start where the previous one ends
//! ([`Error::NotContiguous`]); between calls decode times must increase
//! ([`Error::DecodeTimeNotIncreasing`]), and a gap is allowed (a viewer that skipped frames; in a
//! browser it stays a hole in the buffered ranges unless the caller rebases later decode times).
//! When a fragment holds the newest frame, its duration is not known yet: pass an estimate of
//! about twice the previous frame's interval. A browser treats a jump of more than twice the last
//! duration as a discontinuity and drops frames until the next keyframe, while a longer estimate
//! only overlaps the next frame, which it cuts to fit (both checked in Chromium,
//! `tests/chromium.rs`); docs/decisions.md (decision 46) says more.
//!
//! # Errors
//! Parameter sets and samples come from cameras: garbage, truncated SPSs and empty access units are
//! an [`Error`], never a panic. The crate is pure (no IO, no FFmpeg, no `unsafe`); its SPS parsing
//! uses the `h264-reader` crate (its H.264 SPS parser, and its RBSP bit reader for the H.265 SPS).
//!
//! # Example
//! ```
//! # fn main() -> Result<(), fmp4::Error> {
//! // A 320x240 H.264 High profile SPS and PPS, as an encoder sends them in band.
//! let sps = [0x67, 0x64, 0x00, 0x0d, 0xac, 0xd9, 0x41, 0x41, 0xfb, 0x01, 0x10, 0x00, 0x00,
//!            0x03, 0x00, 0x10, 0x00, 0x00, 0x03, 0x03, 0xc0, 0xf1, 0x42, 0x99, 0x60];
//! let pps = [0x68, 0xeb, 0xe3, 0xcb, 0x22, 0xc0];
//! let video = fmp4::VideoTrack::new(fmp4::VideoCodec::H264, &[&sps, &pps])?;
//! assert_eq!((video.width(), video.height()), (320, 240));
//! assert_eq!(video.mime_codec(), "avc1.64000d");
//! let init = fmp4::init_segment(&video, None);
//! let mut fragmenter = fmp4::Fragmenter::new(&video, None);
//! let frame = [0, 0, 0, 1, 0x65, 0x88, 0x84, 0x00, 0x33];  // an IDR slice, Annex B
//! let sample = fmp4::Sample { decode_time: 0, composition_offset: 0, duration: 3000,
//!                             keyframe: true, data: &frame };
//! let fragment = fragmenter.fragment(&[sample], &[])?;
//! assert_eq!(&init[4..8], b"ftyp");
//! assert_eq!(&fragment[4..8], b"moof");
//! # Ok(())
//! # }
//! ```

mod aac;
mod annexb;
mod boxes;
mod error;
mod fragment;
mod h264;
mod h265;
mod init;
mod video;

pub use aac::AudioTrack;
pub use annexb::{parameter_sets, split_annex_b};
pub use error::{Error, TrackKind};
pub use fragment::{Fragmenter, Sample};
pub use init::{init_segment, mime_type};
pub use video::{VideoCodec, VideoTrack, VIDEO_TIMESCALE};
