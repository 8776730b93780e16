//! AAC audio: the `AudioSpecificConfig` (ISO/IEC 14496-3 1.6.2.1) and the `esds` box
//! (ISO/IEC 14496-1 7.2.6.5 ES_Descriptor) that carries it.

use h264_reader::rbsp::{BitRead, BitReader};

use crate::boxes::{u16, u32, u8, write_box, write_full_box};
use crate::Error;

/// Sampling rates by `samplingFrequencyIndex`.
const SAMPLE_RATES: [u32; 13] = [
    96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350,
];

/// An AAC audio track, from its `AudioSpecificConfig` (what an SDP's `config=` or FFmpeg's
/// `extradata` holds; build it from an ADTS header if that is all there is). Samples are raw AAC
/// frames (no ADTS header); their times are in units of [`AudioTrack::sample_rate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioTrack {
    config: Vec<u8>,
    object_type: u8,
    sample_rate: u32,
    channels: u8,
}

fn bad(detail: impl Into<String>) -> Error {
    Error::BadAudioConfig(detail.into())
}

impl AudioTrack {
    /// Parses an `AudioSpecificConfig`: audio object type, sampling rate (an index or an explicit
    /// 24-bit rate) and channel configuration. Truncated or reserved values are an error.
    pub fn new(audio_specific_config: &[u8]) -> Result<AudioTrack, Error> {
        let mut r = BitReader::new(audio_specific_config);
        let truncated = |_| bad(format!("truncated ({} bytes)", audio_specific_config.len()));
        let mut object_type: u8 = r.read::<5, u8>("audioObjectType").map_err(truncated)?;
        if object_type == 31 {
            object_type = 32 + r.read::<6, u8>("audioObjectTypeExt").map_err(truncated)?;
        }
        if object_type == 0 {
            return Err(bad("audio object type 0 (null)"));
        }
        let index: u8 = r
            .read::<4, u8>("samplingFrequencyIndex")
            .map_err(truncated)?;
        let sample_rate = match index {
            15 => r.read::<24, u32>("samplingFrequency").map_err(truncated)?,
            i => *SAMPLE_RATES
                .get(usize::from(i))
                .ok_or_else(|| bad(format!("reserved sampling frequency index {i}")))?,
        };
        if sample_rate == 0 {
            return Err(bad("sampling frequency 0"));
        }
        let channel_config: u8 = r.read::<4, u8>("channelConfiguration").map_err(truncated)?;
        let channels = match channel_config {
            0..=6 => channel_config,
            7 => 8,
            c => return Err(bad(format!("reserved channel configuration {c}"))),
        };
        Ok(AudioTrack {
            config: audio_specific_config.to_vec(),
            object_type,
            sample_rate,
            channels,
        })
    }

    /// Builds the two-byte `AudioSpecificConfig` an ADTS header describes (`profile`,
    /// `sampling_frequency_index`, `channel_configuration` from its first 4 bytes), for streams
    /// that arrive as ADTS.
    pub fn from_adts_header(header: &[u8]) -> Result<AudioTrack, Error> {
        if header.len() < 4 || header[0] != 0xff || header[1] & 0xf0 != 0xf0 {
            return Err(bad("not an ADTS header (no 0xFFF sync word)"));
        }
        let object_type = (header[2] >> 6) + 1;
        let index = (header[2] >> 2) & 0x0f;
        let channels = ((header[2] & 1) << 2) | (header[3] >> 6);
        let config = [
            (object_type << 3) | (index >> 1),
            ((index & 1) << 7) | (channels << 3),
        ];
        AudioTrack::new(&config)
    }

    /// The `AudioSpecificConfig` as given.
    pub fn audio_specific_config(&self) -> &[u8] {
        &self.config
    }

    /// The audio track's timescale: audio decode times and durations are in these units (an
    /// AAC-LC frame lasts 1024 of them).
    pub fn sample_rate(&self) -> u32 {
        self.sample_rate
    }

    /// Channels by the channel configuration; 0 when a program config element says (not parsed).
    pub fn channels(&self) -> u8 {
        self.channels
    }

    /// The audio object type: 2 is AAC-LC, 5 HE-AAC (SBR), 29 HE-AACv2.
    pub fn object_type(&self) -> u8 {
        self.object_type
    }

    /// The RFC 6381 codec string, e.g. `mp4a.40.2`.
    pub fn mime_codec(&self) -> String {
        format!("mp4a.40.{}", self.object_type)
    }

    /// The `mp4a` sample entry with its `esds`.
    pub(crate) fn write_sample_entry(&self, out: &mut Vec<u8>) {
        write_box(out, b"mp4a", |out| {
            out.extend_from_slice(&[0; 6]); // reserved
            u16(out, 1); // data_reference_index
            out.extend_from_slice(&[0; 8]); // reserved
            u16(
                out,
                if self.channels == 0 {
                    2
                } else {
                    u16::from(self.channels)
                },
            );
            u16(out, 16); // samplesize
            u32(out, 0); // pre_defined, reserved
            u32(
                out,
                if self.sample_rate <= 0xffff {
                    self.sample_rate << 16
                } else {
                    0
                },
            );
            write_full_box(out, b"esds", 0, 0, |out| {
                let specific_info = descriptor(0x05, &self.config);
                let mut decoder_config = vec![
                    0x40, // objectTypeIndication: Audio ISO/IEC 14496-3
                    0x15, // streamType 5 (audio), upStream 0, reserved 1
                    0, 0, 0, // bufferSizeDB
                ];
                decoder_config.extend_from_slice(&[0; 8]); // maxBitrate, avgBitrate: not stated
                decoder_config.extend_from_slice(&specific_info);
                let mut es = vec![0, 0, 0]; // ES_ID 0, no dependency, URL or OCR stream
                es.extend_from_slice(&descriptor(0x04, &decoder_config));
                es.extend_from_slice(&descriptor(0x06, &[0x02])); // SLConfigDescriptor: MP4
                out.extend_from_slice(&descriptor(0x03, &es));
            });
        });
    }
}

/// An MPEG-4 descriptor: tag, size in 7-bit groups (high bit = more follow), body.
fn descriptor(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = body.len();
    let mut groups = Vec::new();
    let mut rest = len;
    loop {
        groups.push((rest & 0x7f) as u8);
        rest >>= 7;
        if rest == 0 {
            break;
        }
    }
    for (i, g) in groups.iter().rev().enumerate() {
        u8(&mut out, if i + 1 < groups.len() { g | 0x80 } else { *g });
    }
    out.extend_from_slice(body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_common_configs() {
        let lc = AudioTrack::new(&[0x12, 0x10]).unwrap(); // AAC-LC, 44.1 kHz, stereo
        assert_eq!(
            (lc.object_type(), lc.sample_rate(), lc.channels()),
            (2, 44100, 2)
        );
        assert_eq!(lc.mime_codec(), "mp4a.40.2");
        let mono = AudioTrack::new(&[0x15, 0x88]).unwrap(); // AAC-LC, 8 kHz, mono
        assert_eq!((mono.sample_rate(), mono.channels()), (8000, 1));
        // Explicit 24-bit rate (index 15): 0x001f40 = 8000.
        let explicit = AudioTrack::new(&[0x17, 0x80, 0x0f, 0xa0, 0x08]).unwrap();
        assert_eq!((explicit.sample_rate(), explicit.channels()), (8000, 1));
        // Escaped object type 31 + 6 bits: 32 + 10 = 42.
        let escaped = AudioTrack::new(&[0xf9, 0x46, 0x20]).unwrap();
        assert_eq!(
            (
                escaped.object_type(),
                escaped.sample_rate(),
                escaped.channels()
            ),
            (42, 48000, 1)
        );
    }

    #[test]
    fn adts_header_gives_the_same_config() {
        // ADTS header of an AAC-LC 48 kHz stereo frame.
        let track =
            AudioTrack::from_adts_header(&[0xff, 0xf1, 0x4c, 0x80, 0x2e, 0x7f, 0xfc]).unwrap();
        assert_eq!(track.audio_specific_config(), &[0x11, 0x90]);
        assert_eq!((track.sample_rate(), track.channels()), (48000, 2));
        assert!(AudioTrack::from_adts_header(&[0x12, 0x10, 0, 0]).is_err());
        assert!(AudioTrack::from_adts_header(&[0xff, 0xf1]).is_err());
    }

    #[test]
    fn bad_configs_are_errors() {
        for bad in [
            &[][..],
            &[0x12],
            &[0x00, 0x10],
            &[0x16, 0x90],
            &[0x12, 0x40],
            &[0x17, 0x80],
            &[0x17, 0x80, 0, 0, 0],
        ] {
            let err = AudioTrack::new(bad).unwrap_err();
            assert!(matches!(err, Error::BadAudioConfig(_)), "{bad:?}: {err}");
        }
    }

    #[test]
    fn descriptor_sizes_use_seven_bit_groups() {
        assert_eq!(descriptor(5, &[1, 2]), [5, 2, 1, 2]);
        let long = descriptor(4, &[0; 200]);
        assert_eq!(&long[..3], &[4, 0x81, 0x48]);
        assert_eq!(long.len(), 203);
    }
}
