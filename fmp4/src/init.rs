//! The initialisation segment: `ftyp` and a `moov` whose tracks have no samples, with `mvex` so
//! the samples follow in fragments.

use crate::boxes::{u16, u32, u8, unity_matrix, write_box, write_full_box, zeros};
use crate::{AudioTrack, VideoCodec, VideoTrack, VIDEO_TIMESCALE};

/// Track id of the video track.
pub(crate) const VIDEO_TRACK_ID: u32 = 1;
/// Track id of the audio track.
pub(crate) const AUDIO_TRACK_ID: u32 = 2;

/// The MIME type for `MediaSource.isTypeSupported` and `addSourceBuffer`, e.g.
/// `video/mp4; codecs="avc1.64001f, mp4a.40.2"`.
pub fn mime_type(video: &VideoTrack, audio: Option<&AudioTrack>) -> String {
    match audio {
        Some(audio) => format!(
            "video/mp4; codecs=\"{}, {}\"",
            video.mime_codec,
            audio.mime_codec()
        ),
        None => format!("video/mp4; codecs=\"{}\"", video.mime_codec),
    }
}

/// Writes the initialisation segment (`ftyp` + `moov`): track 1 is the video, track 2 the audio
/// if there is one. Send it before the first fragment, and again (with a new [`crate::Fragmenter`])
/// when the codec parameters change.
pub fn init_segment(video: &VideoTrack, audio: Option<&AudioTrack>) -> Vec<u8> {
    let mut out = Vec::with_capacity(1024);
    write_box(&mut out, b"ftyp", |out| {
        out.extend_from_slice(b"iso5");
        u32(out, 512); // minor_version
        out.extend_from_slice(b"iso5iso6mp41");
    });
    write_box(&mut out, b"moov", |out| {
        write_full_box(out, b"mvhd", 0, 0, |out| {
            u32(out, 0); // creation_time
            u32(out, 0); // modification_time
            u32(out, 1000); // timescale
            u32(out, 0); // duration: unknown, the samples are in fragments
            u32(out, 0x0001_0000); // rate 1.0
            u16(out, 0x0100); // volume 1.0
            zeros(out, 10); // reserved
            unity_matrix(out);
            zeros(out, 24); // pre_defined
            u32(
                out,
                if audio.is_some() {
                    AUDIO_TRACK_ID + 1
                } else {
                    VIDEO_TRACK_ID + 1
                },
            );
        });
        write_video_trak(out, video);
        if let Some(audio) = audio {
            write_audio_trak(out, audio);
        }
        write_box(out, b"mvex", |out| {
            write_trex(out, VIDEO_TRACK_ID);
            if audio.is_some() {
                write_trex(out, AUDIO_TRACK_ID);
            }
        });
    });
    out
}

fn write_trex(out: &mut Vec<u8>, track_id: u32) {
    write_full_box(out, b"trex", 0, 0, |out| {
        u32(out, track_id);
        u32(out, 1); // default_sample_description_index
        u32(out, 0); // default_sample_duration
        u32(out, 0); // default_sample_size
        u32(out, 0); // default_sample_flags
    });
}

/// `tkhd`: enabled and in the movie; `volume` is 1.0 for audio; width and height in 16.16.
fn write_tkhd(out: &mut Vec<u8>, track_id: u32, audio: bool, width: u32, height: u32) {
    write_full_box(out, b"tkhd", 0, 0x3, |out| {
        u32(out, 0); // creation_time
        u32(out, 0); // modification_time
        u32(out, track_id);
        u32(out, 0); // reserved
        u32(out, 0); // duration
        zeros(out, 8); // reserved
        u16(out, 0); // layer
        u16(out, u16::from(audio)); // alternate_group
        u16(out, if audio { 0x0100 } else { 0 }); // volume
        u16(out, 0); // reserved
        unity_matrix(out);
        u32(out, width << 16);
        u32(out, height << 16);
    });
}

/// `mdia` around the media-specific header and sample entry.
fn write_mdia(
    out: &mut Vec<u8>,
    timescale: u32,
    handler: &[u8; 4],
    name: &str,
    media_header: impl FnOnce(&mut Vec<u8>),
    sample_entry: impl FnOnce(&mut Vec<u8>),
) {
    write_box(out, b"mdia", |out| {
        write_full_box(out, b"mdhd", 0, 0, |out| {
            u32(out, 0); // creation_time
            u32(out, 0); // modification_time
            u32(out, timescale);
            u32(out, 0); // duration
            u16(out, 0x55c4); // language: "und"
            u16(out, 0); // pre_defined
        });
        write_full_box(out, b"hdlr", 0, 0, |out| {
            u32(out, 0); // pre_defined
            out.extend_from_slice(handler);
            zeros(out, 12); // reserved
            out.extend_from_slice(name.as_bytes());
            u8(out, 0);
        });
        write_box(out, b"minf", |out| {
            media_header(out);
            write_box(out, b"dinf", |out| {
                write_full_box(out, b"dref", 0, 0, |out| {
                    u32(out, 1); // entry_count
                    write_full_box(out, b"url ", 0, 1, |_| {}); // media in this file
                });
            });
            write_box(out, b"stbl", |out| {
                write_full_box(out, b"stsd", 0, 0, |out| {
                    u32(out, 1); // entry_count
                    sample_entry(out);
                });
                // No samples here: they all come in fragments.
                write_full_box(out, b"stts", 0, 0, |out| u32(out, 0));
                write_full_box(out, b"stsc", 0, 0, |out| u32(out, 0));
                write_full_box(out, b"stsz", 0, 0, |out| {
                    u32(out, 0); // sample_size
                    u32(out, 0); // sample_count
                });
                write_full_box(out, b"stco", 0, 0, |out| u32(out, 0));
            });
        });
    });
}

fn write_video_trak(out: &mut Vec<u8>, video: &VideoTrack) {
    write_box(out, b"trak", |out| {
        write_tkhd(out, VIDEO_TRACK_ID, false, video.width, video.height);
        let media_header = |out: &mut Vec<u8>| {
            write_full_box(out, b"vmhd", 0, 1, |out| zeros(out, 8)); // graphicsmode, opcolor
        };
        let sample_entry = |out: &mut Vec<u8>| {
            let fourcc = match video.codec {
                VideoCodec::H264 => b"avc1",
                VideoCodec::H265 => b"hvc1",
            };
            write_box(out, fourcc, |out| {
                zeros(out, 6); // reserved
                u16(out, 1); // data_reference_index
                zeros(out, 16); // pre_defined, reserved
                u16(out, video.width as u16); // VideoTrack::new checked both fit 16 bits
                u16(out, video.height as u16);
                u32(out, 0x0048_0000); // horizresolution: 72 dpi
                u32(out, 0x0048_0000); // vertresolution
                u32(out, 0); // reserved
                u16(out, 1); // frame_count
                zeros(out, 32); // compressorname
                u16(out, 0x0018); // depth
                u16(out, 0xffff); // pre_defined = -1
                out.extend_from_slice(&video.config_box);
            });
        };
        write_mdia(
            out,
            VIDEO_TIMESCALE,
            b"vide",
            "VideoHandler",
            media_header,
            sample_entry,
        );
    });
}

fn write_audio_trak(out: &mut Vec<u8>, audio: &AudioTrack) {
    write_box(out, b"trak", |out| {
        write_tkhd(out, AUDIO_TRACK_ID, true, 0, 0);
        let media_header = |out: &mut Vec<u8>| {
            write_full_box(out, b"smhd", 0, 0, |out| u32(out, 0)); // balance, reserved
        };
        let sample_entry = |out: &mut Vec<u8>| audio.write_sample_entry(out);
        write_mdia(
            out,
            audio.sample_rate(),
            b"soun",
            "SoundHandler",
            media_header,
            sample_entry,
        );
    });
}
