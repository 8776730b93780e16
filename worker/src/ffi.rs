//! The worker's FFI edge: the fields of FFmpeg's codec parameters that ffmpeg-next has no accessor
//! for (decision 11): codec tag, video size, extradata, audio sample rate and channels, the profile's name. Everything else stays on ffmpeg-next's safe API.
//! Also the one allocator setting the worker makes ([`release_large_buffers_at_once`]).
#![allow(unsafe_code)]

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
pub fn video_size(params: &codec::Parameters) -> (u32, u32) {
    // SAFETY: `params` is a live AVCodecParameters (ffmpeg-next keeps its owner alive); width
    // and height are plain integer fields, only read here.
    let (w, h) = unsafe {
        let p = params.as_ptr();
        ((*p).width, (*p).height)
    };
    (w.max(0) as u32, h.max(0) as u32)
}

/// The codec parameters' extradata (H.264/H.265 parameter sets from the SDP, Annex B; AAC's
/// AudioSpecificConfig), copied; empty if there is none.
pub fn extradata(params: &codec::Parameters) -> Vec<u8> {
    // SAFETY: `params` is a live AVCodecParameters (ffmpeg-next keeps its owner alive). FFmpeg
    // guarantees `extradata` points to `extradata_size` readable bytes when non-null; we check for
    // null and a non-positive size, and copy the bytes out before the borrow ends.
    unsafe {
        let p = params.as_ptr();
        let (data, size) = ((*p).extradata, (*p).extradata_size);
        if data.is_null() || size <= 0 {
            return Vec::new();
        }
        std::slice::from_raw_parts(data, size as usize).to_vec()
    }
}

/// Sample rate and channel count of audio codec parameters.
pub fn audio_format(params: &codec::Parameters) -> (u32, u32) {
    // SAFETY: `params` is a live AVCodecParameters; `sample_rate` and `ch_layout.nb_channels` are
    // plain integer fields, only read here.
    let (rate, channels) = unsafe {
        let p = params.as_ptr();
        ((*p).sample_rate, (*p).ch_layout.nb_channels)
    };
    (rate.max(0) as u32, channels.max(0) as u32)
}

/// The codec profile's name (`High`, `Main`, ...), if the codec has profiles and FFmpeg names
/// this one.
pub fn profile_name(params: &codec::Parameters) -> Option<String> {
    // SAFETY: `params` is a live AVCodecParameters; `codec_id` and `profile` are plain fields.
    // `avcodec_profile_name` returns null or a pointer to a static NUL-terminated string, which is
    // copied out at once.
    unsafe {
        let p = params.as_ptr();
        let name = ffmpeg_next::ffi::avcodec_profile_name((*p).codec_id, (*p).profile);
        if name.is_null() {
            return None;
        }
        Some(
            std::ffi::CStr::from_ptr(name)
                .to_string_lossy()
                .into_owned(),
        )
    }
}

/// Packets and frames from this size up get their own mapping, returned to the system when freed.
const MMAP_THRESHOLD: i32 = 32 * 1024;

/// Makes glibc's allocator give every buffer of [`MMAP_THRESHOLD`] bytes or more its own mapping,
/// unmapped when it is freed, instead of carving it from a per-thread arena that keeps its
/// high-water mark. The recorder's pre-roll frees its oldest packets as new ones come, and the
/// arenas otherwise held about 3 MB per worker more than the packets alive (decision 66). Call
/// once at start-up, before the pipeline threads exist.
pub fn release_large_buffers_at_once() {
    // SAFETY: `mallopt` only changes the allocator's tuning parameters; it is called from the
    // main thread before any other thread of ours runs, and its arguments are valid glibc
    // parameter numbers with values in range. Its result (1 on success) only says whether the
    // setting took; without it the allocator works as before.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 4 * MMAP_THRESHOLD);
    }
}
