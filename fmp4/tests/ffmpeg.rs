//! Real streams end to end: ffmpeg encodes testsrc (and a sine as AAC), the test takes the
//! encoder's output apart into Annex B access units and raw AAC frames as a camera's RTSP stream
//! would give them, muxes them with one video frame per fragment, and then ffmpeg and ffprobe
//! judge the file: it decodes without an error, to the same pictures as the source, with the
//! source's codec, profile and size, every frame, and increasing timestamps.

mod common;

use common::{encode, run, test_dir, Source};
use fmp4::VideoCodec;
use serde_json::Value;

/// The body of the first box of type `fourcc` anywhere in an MP4 file (found by its type).
fn find_box<'a>(file: &'a [u8], fourcc: &[u8; 4]) -> &'a [u8] {
    let at = file
        .windows(4)
        .position(|w| w == fourcc)
        .expect("box present")
        - 4;
    let size = common::be32(&file[at..]) as usize;
    &file[at + 8..at + size]
}

/// Our decoder configuration record against the one FFmpeg's MP4 muxer wrote for the source.
/// `avcC` must be identical. In `hvcC` FFmpeg fills a few fields from the VUI
/// (min_spatial_segmentation_idc, parallelismType, avgFrameRate, constantFrameRate) and may add
/// SEI arrays: everything else must be equal.
fn check_config_record(name: &str, codec: VideoCodec, src: &[u8], out: &[u8]) {
    match codec {
        VideoCodec::H264 => assert_eq!(
            find_box(out, b"avcC"),
            find_box(src, b"avcC"),
            "{name}: avcC"
        ),
        VideoCodec::H265 => {
            let (ours, theirs) = (find_box(out, b"hvcC"), find_box(src, b"hvcC"));
            assert_eq!(
                ours[..13],
                theirs[..13],
                "{name}: hvcC profile, compatibility, constraints, level"
            );
            assert_eq!(
                ours[16..19],
                theirs[16..19],
                "{name}: hvcC chroma format and bit depths"
            );
            assert_eq!(
                ours[21] & 0x3f,
                theirs[21] & 0x3f,
                "{name}: hvcC temporal layers, nesting, length size"
            );
        }
    }
}

fn probe_json(args: &[&str]) -> Value {
    let (json, _) = run("ffprobe", args);
    serde_json::from_str(&json).expect("ffprobe JSON")
}

/// Decodes the first video stream to one MD5 over all frames' pixels, in output order.
fn pixels_md5(path: &str) -> String {
    let (out, _) = run(
        "ffmpeg",
        &[
            "-hide_banner",
            "-loglevel",
            "error",
            "-i",
            path,
            "-map",
            "0:v",
            "-fps_mode",
            "passthrough",
            "-f",
            "md5",
            "-",
        ],
    );
    out.trim().to_string()
}

/// Checks one source; `profile` and `mime` are what ffprobe and the muxer must say.
fn check(name: &str, source: Source, profile: &str, mime: &str) {
    let dir = test_dir(name);
    let enc = encode(&source, &dir);
    assert_eq!(
        enc.video.len() as u32,
        source.frames,
        "ffmpeg wrote every frame"
    );
    if source.b_frames {
        assert!(
            enc.video.iter().any(|p| p.pts != p.dts),
            "{name}: the source has reordered frames"
        );
    } else {
        assert!(enc
            .video
            .iter()
            .all(|p| p.pts - p.dts == enc.video[0].pts - enc.video[0].dts));
    }
    let out_path = dir.join("out.mp4");
    let out = out_path.to_str().unwrap();
    let (track, segments, audio_frames) = common::mux(&source, &enc);
    std::fs::write(&out_path, segments.concat()).unwrap();
    assert_eq!(
        (track.width(), track.height()),
        (source.width, source.height),
        "{name}: size from the SPS"
    );
    assert_eq!(track.mime_codec(), mime, "{name}: codec string");

    let file = std::fs::read(&out_path).unwrap();
    check_config_record(
        name,
        source.codec,
        &std::fs::read(dir.join("src.mp4")).unwrap(),
        &file,
    );

    // 1. It decodes, with no error and nothing printed at -loglevel error.
    let (_, stderr) = run(
        "ffmpeg",
        &[
            "-hide_banner",
            "-loglevel",
            "error",
            "-xerror",
            "-i",
            out,
            "-f",
            "null",
            "-",
        ],
    );
    assert!(
        stderr.trim().is_empty(),
        "{name}: ffmpeg reported: {stderr}"
    );

    // 2. The source's codec, profile, size and pixel format; the AAC track as sent.
    let streams = probe_json(&["-v", "error", "-show_streams", "-of", "json", out]);
    let streams = streams["streams"].as_array().unwrap();
    assert_eq!(
        streams.len(),
        if source.aac { 2 } else { 1 },
        "{name}: streams"
    );
    let (src, got) = (&enc.probe["streams"][0], &streams[0]);
    for key in [
        "codec_name",
        "profile",
        "width",
        "height",
        "pix_fmt",
        "level",
    ] {
        assert_eq!(
            got[key], src[key],
            "{name}: {key} of the output vs the source"
        );
    }
    assert_eq!(got["profile"], profile, "{name}: profile");
    assert_eq!(got["width"], source.width);
    assert_eq!(got["height"], source.height);
    let want_codec = match source.codec {
        VideoCodec::H264 => "h264",
        VideoCodec::H265 => "hevc",
    };
    assert_eq!(got["codec_name"], want_codec);
    if source.aac {
        let a = &streams[1];
        assert_eq!(a["codec_name"], "aac");
        assert_eq!(a["sample_rate"], "48000");
        assert_eq!(a["channels"], 2);
        assert_eq!(a["profile"], "LC");
    }

    // 3. Every frame, with increasing decode times, the source's presentation times (shifted so
    //    the first decode time is 0) and its keyframes.
    let packets = probe_json(&[
        "-v",
        "error",
        "-select_streams",
        "v:0",
        "-show_entries",
        "packet=pts,dts,flags",
        "-of",
        "json",
        out,
    ]);
    let packets = packets["packets"].as_array().unwrap();
    assert_eq!(packets.len(), enc.video.len(), "{name}: video packets");
    let base = enc.video[0].dts;
    let mut last_dts = None;
    for (p, src) in packets.iter().zip(&enc.video) {
        let dts = p["dts"].as_i64().unwrap();
        assert!(
            last_dts.is_none_or(|l| dts > l),
            "{name}: dts {dts} after {last_dts:?}"
        );
        last_dts = Some(dts);
        assert_eq!(dts, src.dts - base, "{name}: dts");
        assert_eq!(p["pts"].as_i64().unwrap(), src.pts - base, "{name}: pts");
        assert_eq!(
            p["flags"].as_str().unwrap().contains('K'),
            src.keyframe,
            "{name}: keyframe flag"
        );
    }
    let counted = probe_json(&[
        "-v",
        "error",
        "-count_frames",
        "-show_entries",
        "stream=nb_read_frames,codec_type",
        "-show_entries",
        "format=duration",
        "-of",
        "json",
        out,
    ]);
    assert_eq!(
        counted["streams"][0]["nb_read_frames"],
        source.frames.to_string(),
        "{name}: decoded frames"
    );
    if source.aac {
        let audio_packets = probe_json(&[
            "-v",
            "error",
            "-select_streams",
            "a:0",
            "-show_entries",
            "packet=dts",
            "-of",
            "json",
            out,
        ]);
        let audio_packets = audio_packets["packets"].as_array().unwrap();
        assert_eq!(audio_packets.len(), audio_frames, "{name}: audio packets");
        assert!(
            audio_frames + 2 >= enc.audio_frames.len(),
            "{name}: nearly all audio frames went in"
        );
        let dts: Vec<i64> = audio_packets
            .iter()
            .map(|p| p["dts"].as_i64().unwrap())
            .collect();
        assert!(
            dts.windows(2).all(|w| w[1] == w[0] + 1024),
            "{name}: audio dts step by 1024"
        );
    }
    let duration: f64 = counted["format"]["duration"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let want = f64::from(source.frames) / f64::from(source.fps);
    assert!(
        (duration - want).abs() < 0.2,
        "{name}: duration {duration} s, want about {want} s"
    );

    // 4. The same pictures: no transcode, nothing lost or reordered.
    assert_eq!(
        pixels_md5(out),
        pixels_md5(dir.join("src.mp4").to_str().unwrap()),
        "{name}: decoded pixels"
    );
}

fn source(
    codec: VideoCodec,
    width: u32,
    height: u32,
    b_frames: bool,
    profile: &'static str,
) -> Source {
    Source {
        codec,
        width,
        height,
        fps: 30,
        frames: 45,
        b_frames,
        profile,
        pix_fmt: "yuv420p",
        aac: false,
        x265_extra: "",
        noisy_bitrate: None,
    }
}

#[test]
fn h264_baseline_320x240_without_b_frames() {
    let source = source(VideoCodec::H264, 320, 240, false, "baseline");
    check("h264_320", source, "Constrained Baseline", "avc1.42c00d");
}

#[test]
fn h264_main_704x576_with_b_frames() {
    let source = source(VideoCodec::H264, 704, 576, true, "main");
    check("h264_704", source, "Main", "avc1.4d401f");
}

#[test]
fn h264_high_1280x720_with_aac() {
    let source = Source {
        aac: true,
        ..source(VideoCodec::H264, 1280, 720, false, "high")
    };
    check("h264_720_aac", source, "High", "avc1.64001f");
}

#[test]
fn h264_high_1920x1080_cropped_with_b_frames_and_aac() {
    // 1080 is not a multiple of 16: the SPS codes 1088 lines and crops 8.
    let source = Source {
        aac: true,
        frames: 30,
        ..source(VideoCodec::H264, 1920, 1080, true, "high")
    };
    check("h264_1080_aac", source, "High", "avc1.640028");
}

#[test]
fn h264_high422_odd_cropped_size() {
    // 4:2:2 (High 4:2:2 profile) at a size cropped in both directions (coded 656x368).
    let source = Source {
        pix_fmt: "yuv422p",
        ..source(VideoCodec::H264, 642, 358, false, "high422")
    };
    check("h264_422", source, "High 4:2:2", "avc1.7a001e");
}

#[test]
fn h265_main_320x240_without_b_frames() {
    let source = source(VideoCodec::H265, 320, 240, false, "main");
    check("h265_320", source, "Main", "hvc1.1.6.L60.90");
}

#[test]
fn h265_main_704x576_with_b_frames_and_aac() {
    let source = Source {
        aac: true,
        ..source(VideoCodec::H265, 704, 576, true, "main")
    };
    check("h265_704_aac", source, "Main", "hvc1.1.6.L90.90");
}

#[test]
fn h265_main_1920x1080_cropped_with_b_frames() {
    // 1080 is not a multiple of the coding block size: the conformance window crops it.
    let source = Source {
        frames: 30,
        ..source(VideoCodec::H265, 1920, 1080, true, "main")
    };
    check("h265_1080", source, "Main", "hvc1.1.6.L120.90");
}

#[test]
fn h265_main10_1280x720_with_aac() {
    let source = Source {
        aac: true,
        pix_fmt: "yuv420p10le",
        ..source(VideoCodec::H265, 1280, 720, false, "main10")
    };
    check("h265_720_main10", source, "Main 10", "hvc1.2.4.L93.90");
}

#[test]
fn h265_main444_320x240() {
    // 4:4:4 is a range extensions profile (4): its constraint flags fill a second byte.
    let source = Source {
        pix_fmt: "yuv444p",
        ..source(VideoCodec::H265, 320, 240, false, "main444-8")
    };
    check("h265_444", source, "Rext", "hvc1.4.10.L60.9E.8");
}

#[test]
fn h265_temporal_sub_layers_at_an_odd_size() {
    // Two temporal sub-layers: the SPS's profile_tier_level carries sub-layer flags; 642x358 is
    // cropped by the conformance window in both directions.
    let source = Source {
        x265_extra: ":temporal-layers=1",
        ..source(VideoCodec::H265, 642, 358, true, "main")
    };
    check("h265_sub_layers", source, "Main", "hvc1.1.6.L63.90");
}
