//! Media fragments: `moof` (one `traf` per track with samples) followed by `mdat`.

use crate::annexb::append_length_prefixed;
use crate::boxes::{u32, u64, write_box, write_full_box};
use crate::init::{AUDIO_TRACK_ID, VIDEO_TRACK_ID};
use crate::{AudioTrack, Error, TrackKind, VideoCodec, VideoTrack};

/// One sample of a fragment. Times are in the track's timescale: 90 kHz for video
/// ([`crate::VIDEO_TIMESCALE`]), the sample rate for audio ([`AudioTrack::sample_rate`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample<'a> {
    /// When the sample is decoded (DTS). Within one fragment each sample must start where the
    /// previous one ends; across fragments decode times must increase.
    pub decode_time: u64,
    /// Presentation time minus decode time (PTS - DTS): positive for frames that B-frames
    /// reorder, 0 without B-frames and always 0 for audio.
    pub composition_offset: i32,
    /// How long the sample lasts (> 0). For the newest frame, whose successor has not arrived,
    /// pass about twice the previous frame's interval (see the crate docs).
    pub duration: u32,
    /// A sync sample: an IDR/IRAP picture a decoder can start from. Audio samples are all sync
    /// samples and ignore this.
    pub keyframe: bool,
    /// Video: one Annex B access unit (start codes). Audio: one raw AAC frame (no ADTS header).
    pub data: &'a [u8],
}

/// Writes media fragments for the tracks of one init segment, numbering them (`mfhd`
/// sequence_number 1, 2, ...) and checking that decode times increase. Make a new one with each
/// new init segment.
#[derive(Debug, Clone)]
pub struct Fragmenter {
    codec: VideoCodec,
    has_audio: bool,
    sequence_number: u32,
    /// Decode time of the last sample written, per track (video, audio).
    last_decode_time: [Option<u64>; 2],
}

/// sample_flags (ISO/IEC 14496-12 8.8.3.1): sample_depends_on 2 (depends on no other sample).
const SYNC_SAMPLE: u32 = 0x0200_0000;
/// sample_depends_on 1 (depends on others), sample_is_non_sync_sample 1.
const NON_SYNC_SAMPLE: u32 = 0x0101_0000;

/// One track's samples, checked and with their sizes in `mdat`.
struct Run {
    track: TrackKind,
    track_id: u32,
    base_decode_time: u64,
    /// (duration, size, flags, composition offset) per sample.
    samples: Vec<(u32, u32, u32, i32)>,
    /// Where this run's `trun` data_offset field is, to patch once the `moof` size is known.
    data_offset_at: usize,
    /// Where this run's data starts within the `mdat` payload.
    payload_start: usize,
}

impl Fragmenter {
    /// A fragmenter for the tracks of `init_segment(video, audio)`.
    pub fn new(video: &VideoTrack, audio: Option<&AudioTrack>) -> Fragmenter {
        Fragmenter {
            codec: video.codec,
            has_audio: audio.is_some(),
            sequence_number: 0,
            last_decode_time: [None; 2],
        }
    }

    /// The sequence number of the last fragment written (0 before the first).
    pub fn sequence_number(&self) -> u32 {
        self.sequence_number
    }

    /// Writes one fragment (`moof` + `mdat`) holding `video` then `audio` samples; either may be
    /// empty, not both. On error nothing is written and the fragmenter is unchanged.
    pub fn fragment(
        &mut self,
        video: &[Sample<'_>],
        audio: &[Sample<'_>],
    ) -> Result<Vec<u8>, Error> {
        if video.is_empty() && audio.is_empty() {
            return Err(Error::EmptyFragment);
        }
        if !audio.is_empty() && !self.has_audio {
            return Err(Error::NoAudioTrack);
        }
        let mut payload =
            Vec::with_capacity(video.iter().chain(audio).map(|s| s.data.len() + 16).sum());
        let mut runs = Vec::with_capacity(2);
        for (track, samples) in [(TrackKind::Video, video), (TrackKind::Audio, audio)] {
            if !samples.is_empty() {
                runs.push(self.run(track, samples, &mut payload)?);
            }
        }

        let sequence_number = self.sequence_number.wrapping_add(1);
        let mut out = Vec::with_capacity(payload.len() + 256);
        write_box(&mut out, b"moof", |out| {
            write_full_box(out, b"mfhd", 0, 0, |out| u32(out, sequence_number));
            for run in &mut runs {
                write_traf(out, run);
            }
        });
        let moof_len = out.len();
        let total = moof_len as u64 + 8 + payload.len() as u64;
        if total > u64::from(u32::MAX) {
            return Err(Error::TooLarge(total));
        }
        for run in &runs {
            // data_offset counts from the start of the moof (default-base-is-moof).
            let offset = (moof_len + 8 + run.payload_start) as u32;
            out[run.data_offset_at..run.data_offset_at + 4].copy_from_slice(&offset.to_be_bytes());
        }
        write_box(&mut out, b"mdat", |out| out.extend_from_slice(&payload));

        self.sequence_number = sequence_number;
        for run in &runs {
            let last = run
                .samples
                .iter()
                .rev()
                .skip(1)
                .fold(0u64, |t, s| t + u64::from(s.0));
            self.last_decode_time[run.track as usize] = Some(run.base_decode_time + last);
        }
        Ok(out)
    }

    /// Checks one track's samples and appends their data to `payload`.
    fn run(
        &self,
        track: TrackKind,
        samples: &[Sample<'_>],
        payload: &mut Vec<u8>,
    ) -> Result<Run, Error> {
        let first = samples[0].decode_time;
        if let Some(previous) = self.last_decode_time[track as usize] {
            if first <= previous {
                return Err(Error::DecodeTimeNotIncreasing {
                    track,
                    previous,
                    got: first,
                });
            }
        }
        let payload_start = payload.len();
        let mut expected = first;
        let mut out = Vec::with_capacity(samples.len());
        for (index, s) in samples.iter().enumerate() {
            if s.decode_time != expected {
                return Err(Error::NotContiguous {
                    track,
                    index,
                    expected,
                    got: s.decode_time,
                });
            }
            if s.duration == 0 {
                return Err(Error::ZeroDuration { track, index });
            }
            expected = s
                .decode_time
                .checked_add(u64::from(s.duration))
                .ok_or(Error::DecodeTimeOverflow { track, index })?;
            let size = match track {
                TrackKind::Video => append_length_prefixed(self.codec, s.data, index, payload)?,
                TrackKind::Audio => {
                    if s.composition_offset != 0 {
                        return Err(Error::AudioCompositionOffset {
                            index,
                            offset: s.composition_offset,
                        });
                    }
                    payload.extend_from_slice(s.data);
                    s.data.len()
                }
            };
            if size == 0 {
                return Err(Error::EmptySample { track, index });
            }
            let size = u32::try_from(size).map_err(|_| Error::TooLarge(size as u64))?;
            let flags = if track == TrackKind::Audio || s.keyframe {
                SYNC_SAMPLE
            } else {
                NON_SYNC_SAMPLE
            };
            out.push((s.duration, size, flags, s.composition_offset));
        }
        let track_id = match track {
            TrackKind::Video => VIDEO_TRACK_ID,
            TrackKind::Audio => AUDIO_TRACK_ID,
        };
        Ok(Run {
            track,
            track_id,
            base_decode_time: first,
            samples: out,
            data_offset_at: 0,
            payload_start,
        })
    }
}

/// `traf`: `tfhd` (default-base-is-moof), `tfdt` (64-bit base decode time), `trun` (version 1:
/// signed composition offsets; per-sample duration, size, flags, and for video the offset).
fn write_traf(out: &mut Vec<u8>, run: &mut Run) {
    write_box(out, b"traf", |out| {
        write_full_box(out, b"tfhd", 0, 0x02_0000, |out| u32(out, run.track_id));
        write_full_box(out, b"tfdt", 1, 0, |out| u64(out, run.base_decode_time));
        let video = run.track == TrackKind::Video;
        // data-offset, sample-duration, -size, -flags, and -composition-time-offset for video.
        let flags = 0x000701 | if video { 0x000800 } else { 0 };
        write_full_box(out, b"trun", 1, flags, |out| {
            u32(out, run.samples.len() as u32);
            run.data_offset_at = out.len();
            u32(out, 0); // data_offset, patched
            for &(duration, size, flags, offset) in &run.samples {
                u32(out, duration);
                u32(out, size);
                u32(out, flags);
                if video {
                    out.extend_from_slice(&offset.to_be_bytes());
                }
            }
        });
    });
}
