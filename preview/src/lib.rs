//! Turns frames from the shared-memory frame ring into JPEG pictures: snapshots, the supervisor's
//! MJPEG preview, and the `nvr-preview` client.

use image::codecs::jpeg::JpegEncoder;
use image::ExtendedColorType;
use shm_bus::FrameView;

#[derive(Debug, thiserror::Error)]
pub enum PreviewError {
    #[error("JPEG encoding of a {width}x{height} frame failed: {source}")]
    Encode {
        width: u32,
        height: u32,
        source: image::ImageError,
    },
}

/// Default JPEG quality for previews and snapshots.
pub const QUALITY: u8 = 80;

/// Encodes a YUV 4:2:0 frame as JPEG.
pub fn jpeg(frame: &FrameView<'_>, quality: u8) -> Result<Vec<u8>, PreviewError> {
    let (width, height) = (frame.geometry.width, frame.geometry.height);
    let rgb = rgb_from_yuv420(frame);
    let mut out = Vec::with_capacity(rgb.len() / 8);
    JpegEncoder::new_with_quality(&mut out, quality)
        .encode(&rgb, width, height, ExtendedColorType::Rgb8)
        .map_err(|source| PreviewError::Encode {
            width,
            height,
            source,
        })?;
    Ok(out)
}

/// BT.601 limited-range YUV 4:2:0 → packed RGB, in integer arithmetic.
pub fn rgb_from_yuv420(frame: &FrameView<'_>) -> Vec<u8> {
    let (w, h) = (
        frame.geometry.width as usize,
        frame.geometry.height as usize,
    );
    let (y_plane, y_stride) = frame.plane(0);
    let (u_plane, u_stride) = frame.plane(1);
    let (v_plane, v_stride) = frame.plane(2);
    let mut rgb = vec![0u8; w * h * 3];
    for (row, out_row) in rgb.chunks_exact_mut(w * 3).enumerate() {
        let ys = &y_plane[row * y_stride..row * y_stride + w];
        let us = &u_plane[(row / 2) * u_stride..];
        let vs = &v_plane[(row / 2) * v_stride..];
        for (col, px) in out_row.chunks_exact_mut(3).enumerate() {
            let c = 298 * (i32::from(ys[col]) - 16);
            let d = i32::from(us[col / 2]) - 128;
            let e = i32::from(vs[col / 2]) - 128;
            px[0] = clamp((c + 409 * e + 128) >> 8);
            px[1] = clamp((c - 100 * d - 208 * e + 128) >> 8);
            px[2] = clamp((c + 516 * d + 128) >> 8);
        }
    }
    rgb
}

fn clamp(v: i32) -> u8 {
    v.clamp(0, 255) as u8
}
