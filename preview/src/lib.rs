//! Turns frames from the shared-memory frame ring into JPEG pictures: snapshots, the supervisor's
//! MJPEG preview, and the `nvr-preview` client.
//!
//! The encoder (`jpeg-encoder`) takes the frame's YCbCr planes directly: no RGB round trip. Video uses
//! limited-range BT.601 YCbCr, JPEG (JFIF) full range, so each sample goes through a lookup table.

use jpeg_encoder::{Encoder, ImageBuffer, JpegColorType, SamplingFactor};
use shm_bus::FrameView;

#[derive(Debug, thiserror::Error)]
pub enum PreviewError {
    #[error("JPEG encoding of a {width}x{height} frame failed: {source}")]
    Encode {
        width: u32,
        height: u32,
        source: jpeg_encoder::EncodingError,
    },
}

/// Default JPEG quality for previews and snapshots.
pub const QUALITY: u8 = 80;

/// Encodes a YUV 4:2:0 frame as a 4:2:0 JPEG.
pub fn jpeg(frame: &FrameView<'_>, quality: u8) -> Result<Vec<u8>, PreviewError> {
    let (width, height) = (frame.geometry.width, frame.geometry.height);
    let mut out = Vec::with_capacity((width * height / 8) as usize);
    let mut encoder = Encoder::new(&mut out, quality);
    encoder.set_sampling_factor(SamplingFactor::F_2_2);
    encoder
        .encode_image(Planes::new(frame))
        .map_err(|source| PreviewError::Encode {
            width,
            height,
            source,
        })?;
    Ok(out)
}

/// A frame's planes as `jpeg-encoder` reads them, row by row, converted to full range.
struct Planes<'a> {
    frame: &'a FrameView<'a>,
    luma: [u8; 256],
    chroma: [u8; 256],
}

impl<'a> Planes<'a> {
    fn new(frame: &'a FrameView<'a>) -> Self {
        let map = |v: usize, lo: f64, scale: f64, mid: f64| {
            ((v as f64 - lo) * scale + mid).round().clamp(0.0, 255.0) as u8
        };
        Planes {
            frame,
            luma: std::array::from_fn(|v| map(v, 16.0, 255.0 / 219.0, 0.0)),
            chroma: std::array::from_fn(|v| map(v, 128.0, 255.0 / 224.0, 128.0)),
        }
    }
}

impl ImageBuffer for Planes<'_> {
    fn get_jpeg_color_type(&self) -> JpegColorType {
        JpegColorType::Ycbcr
    }

    fn width(&self) -> u16 {
        self.frame.geometry.width as u16
    }

    fn height(&self) -> u16 {
        self.frame.geometry.height as u16
    }

    fn fill_buffers(&self, row: u16, buffers: &mut [Vec<u8>; 4]) {
        let (w, row) = (self.width() as usize, row as usize);
        let (y, y_stride) = self.frame.plane(0);
        let (u, u_stride) = self.frame.plane(1);
        let (v, v_stride) = self.frame.plane(2);
        let ys = &y[row * y_stride..row * y_stride + w];
        buffers[0].extend(ys.iter().map(|&p| self.luma[p as usize]));
        // The encoder wants chroma at full width (it subsamples again): each sample twice.
        let half = w.div_ceil(2);
        for (buf, (plane, stride)) in buffers[1..3].iter_mut().zip([(u, u_stride), (v, v_stride)]) {
            let cs = &plane[(row / 2) * stride..(row / 2) * stride + half];
            let start = buf.len();
            buf.resize(start + 2 * half, 0);
            for (pair, &c) in buf[start..].chunks_exact_mut(2).zip(cs) {
                let v = self.chroma[c as usize];
                pair[0] = v;
                pair[1] = v;
            }
            buf.truncate(start + w);
        }
    }
}
