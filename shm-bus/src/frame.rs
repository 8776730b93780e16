//! The plain value types of the bus: pixel formats, geometry, per-frame metadata and views of a
//! frame's planes.

/// How a frame's pixels are laid out in a slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PixelFormat {
    /// Planar YUV 4:2:0, 8 bits per sample: Y at full size, U and V at `(w+1)/2 × (h+1)/2`.
    Yuv420p,
}

impl PixelFormat {
    /// The value stored in the segment header.
    pub(crate) fn code(self) -> u32 {
        match self {
            PixelFormat::Yuv420p => 1,
        }
    }

    /// The format a header value names, if this build knows it.
    pub(crate) fn from_code(code: u32) -> Option<PixelFormat> {
        match code {
            1 => Some(PixelFormat::Yuv420p),
            _ => None,
        }
    }
}

/// Size and format of the frames in a ring.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Geometry {
    /// Luma width in pixels, `1..=MAX_DIMENSION`.
    pub width: u32,
    /// Luma height in pixels, `1..=MAX_DIMENSION`.
    pub height: u32,
    /// Pixel layout of every slot.
    pub format: PixelFormat,
}

/// Largest width or height a ring accepts (16K), so sizes can never overflow.
pub const MAX_DIMENSION: u32 = 16_384;

impl Geometry {
    /// Why this geometry can't be used, if it can't.
    pub(crate) fn problem(&self) -> Option<&'static str> {
        if self.width == 0 || self.height == 0 {
            Some("width and height must be at least 1")
        } else if self.width > MAX_DIMENSION || self.height > MAX_DIMENSION {
            Some("width and height must be at most 16384")
        } else {
            None
        }
    }
}

/// What the writer recorded about one frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FrameMeta {
    /// Publication number within this writer's lifetime, starting at 1 (continues across
    /// [`Writer::reconfigure`](crate::Writer::reconfigure)).
    pub seq: u64,
    /// The decoder's presentation timestamp, in stream time base units.
    pub pts: i64,
    /// When the frame's packet arrived, CLOCK_MONOTONIC nanoseconds (as the writer supplied it).
    pub arrival_ns: u64,
    /// When the frame was decoded, CLOCK_MONOTONIC nanoseconds (as the writer supplied it).
    pub decoded_ns: u64,
}

/// One plane of the slot being filled by [`Writer::publish`](crate::Writer::publish).
#[derive(Debug)]
pub struct PlaneMut<'a> {
    /// `rows * stride` bytes; row `r` starts at `r * stride`.
    pub data: &'a mut [u8],
    /// Bytes from one row to the next (a multiple of 64).
    pub stride: usize,
    /// Rows in this plane (`height`, or `(height+1)/2` for chroma).
    pub rows: usize,
    /// Meaningful bytes per row (`width`, or `(width+1)/2` for chroma).
    pub width_bytes: usize,
}

/// One plane of a frame being read.
#[derive(Debug, Clone, Copy)]
pub struct Plane<'a> {
    /// `rows * stride` bytes; row `r` starts at `r * stride`.
    pub data: &'a [u8],
    /// Bytes from one row to the next (a multiple of 64).
    pub stride: usize,
    /// Rows in this plane.
    pub rows: usize,
    /// Meaningful bytes per row.
    pub width_bytes: usize,
}

/// A frame in a slot, read in place.
///
/// In a [`Reader`](crate::Reader) the bytes may be overwritten by the writer while the closure of
/// [`Reader::read_latest`](crate::Reader::read_latest) looks at them; it then discards the
/// closure's result. Code that reads a view must therefore not trust pixel values for anything
/// but pixel arithmetic (no indexing a table without a bounds check, which safe Rust does anyway).
#[derive(Debug, Clone, Copy)]
pub struct FrameView<'a> {
    /// The frame's metadata.
    pub meta: FrameMeta,
    /// Size and format of the frame.
    pub geometry: Geometry,
    pub(crate) planes: [Plane<'a>; 3],
}

impl<'a> FrameView<'a> {
    /// Plane `i` (0 = Y, 1 = U, 2 = V) as `(rows * stride bytes, stride)`.
    ///
    /// # Panics
    /// If `i > 2`.
    pub fn plane(&self, i: usize) -> (&'a [u8], usize) {
        let p = &self.planes[i];
        (p.data, p.stride)
    }

    /// All three planes with their sizes.
    pub fn planes(&self) -> &[Plane<'a>; 3] {
        &self.planes
    }

    /// The luma plane as `(bytes, stride)`.
    pub fn y(&self) -> (&'a [u8], usize) {
        self.plane(0)
    }

    /// The U plane as `(bytes, stride)`.
    pub fn u(&self) -> (&'a [u8], usize) {
        self.plane(1)
    }

    /// The V plane as `(bytes, stride)`.
    pub fn v(&self) -> (&'a [u8], usize) {
        self.plane(2)
    }
}
