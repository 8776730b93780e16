use std::fmt;

use crate::VideoCodec;

/// Which track of the fragment a sample belongs to (in error messages).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrackKind {
    Video,
    Audio,
}

impl fmt::Display for TrackKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TrackKind::Video => "video",
            TrackKind::Audio => "audio",
        })
    }
}

/// Why parameter sets or samples could not be muxed. Every variant names what was wrong and,
/// for samples, which one (its index in the slice passed to [`crate::Fragmenter::fragment`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The parameter sets lack one that the codec needs (H.264: SPS and PPS; H.265: VPS, SPS, PPS).
    #[error("{codec} parameter sets have no {missing}")]
    MissingParameterSet {
        codec: VideoCodec,
        missing: &'static str,
    },
    /// A NAL unit passed as a parameter set is some other kind of NAL unit.
    #[error("{codec} parameter set {index} is a NAL unit of type {nal_type}, not a parameter set")]
    NotAParameterSet {
        codec: VideoCodec,
        index: usize,
        nal_type: u8,
    },
    /// A NAL unit whose header is invalid: empty, too short, or with the forbidden bit set.
    #[error("{codec} NAL unit header is invalid: {detail}")]
    BadNalHeader {
        codec: VideoCodec,
        detail: &'static str,
    },
    /// The sequence parameter set could not be parsed (truncated, garbage, or out of range).
    #[error("{codec} SPS is invalid: {detail}")]
    BadSps { codec: VideoCodec, detail: String },
    /// The AAC `AudioSpecificConfig` could not be parsed or describes something unsupported.
    #[error("AAC AudioSpecificConfig is invalid: {0}")]
    BadAudioConfig(String),
    /// A video sample does not start with an Annex B start code (`00 00 01` or `00 00 00 01`).
    #[error("video sample {index} is not Annex B: it does not start with a start code")]
    NotAnnexB { index: usize },
    /// A sample has no data left to mux: empty, or (video) only delimiters and parameter sets.
    #[error("{track} sample {index} is empty (video: no NAL units besides delimiters and parameter sets)")]
    EmptySample { track: TrackKind, index: usize },
    /// A sample with a duration of 0.
    #[error("{track} sample {index} has a duration of 0")]
    ZeroDuration { track: TrackKind, index: usize },
    /// An audio sample with a composition offset: AAC frames are presented when decoded.
    #[error("audio sample {index} has composition offset {offset}; audio samples must have 0")]
    AudioCompositionOffset { index: usize, offset: i32 },
    /// A call with no samples at all.
    #[error("a fragment needs at least one sample")]
    EmptyFragment,
    /// Audio samples passed to a fragmenter made without an audio track.
    #[error("audio samples given, but the fragmenter was made without an audio track")]
    NoAudioTrack,
    /// Within one fragment, a sample's decode time is not the previous sample's decode time plus
    /// its duration (MP4 derives it that way, so the stated time would be lost).
    #[error("{track} sample {index}: decode time {got} is not the previous sample's decode time + duration ({expected})")]
    NotContiguous {
        track: TrackKind,
        index: usize,
        expected: u64,
        got: u64,
    },
    /// A sample's decode time plus its duration does not fit 64 bits.
    #[error("{track} sample {index}: decode time + duration overflows")]
    DecodeTimeOverflow { track: TrackKind, index: usize },
    /// A fragment's first decode time is not after the last sample of the previous fragment of
    /// the same track (a player would drop frames until the next keyframe).
    #[error(
        "{track}: decode time {got} is not after the previous fragment's last sample ({previous})"
    )]
    DecodeTimeNotIncreasing {
        track: TrackKind,
        previous: u64,
        got: u64,
    },
    /// A sample, or the whole fragment, does not fit the 32-bit sizes of MP4 boxes.
    #[error("fragment too large: {0} bytes")]
    TooLarge(u64),
}
