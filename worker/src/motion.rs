//! Motion detection on the luma (Y) plane. Pure code: frames and their timestamps come in, decisions
//! come out; no IO and no clock, so every stage is tested with synthetic frames and tables.
//!
//! Per frame: scale the Y plane down to a small working image (about 100 rows, aspect kept) by area
//! averaging, blur it lightly, compare with a running-average background, and count the pixels that
//! changed by more than `threshold` inside the watched area (zones minus masks). That percentage is the
//! frame's score. Motion starts after `min_frames` consecutive frames scoring at least `min_area` and
//! ends after `post_motion_s` below it. A change of most of the picture at once (lights, IR switch,
//! exposure jump) re-seeds the background instead of firing. The background follows the scene with a
//! time constant in seconds (not frames, so behaviour does not depend on fps). A changed pixel that has
//! held still for [`ABSORB_STILL_S`] is taken into the background at once: that is how something that
//! stops moving (a parked car) ends its event, and how the "ghost" left where an object stood in the
//! first frame (a worker started mid-motion) goes away in seconds instead of holding the event open.

use nvr_proto::settings::{MotionSettings, Polygon};

/// Rows of the working image.
pub const WORK_HEIGHT: usize = 100;
/// Background time constant: a change that stays this long is mostly part of the background.
const BACKGROUND_TAU_S: f64 = 8.0;
/// A changed pixel that stayed within half the threshold of its previous value this long is a
/// still scene (a stopped object, or a ghost of one that left), not motion.
const ABSORB_STILL_S: f32 = 3.0;
/// A frame where more than this fraction of the watched area changed is a global change, not motion.
const RESEED_FRACTION: f64 = 0.6;

/// A luma plane as the decoder (or the frame ring) holds it.
#[derive(Debug, Clone, Copy)]
pub struct Luma<'a> {
    pub data: &'a [u8],
    pub stride: usize,
    pub width: usize,
    pub height: usize,
}

/// Where the changed pixels were, in 0..1 coordinates of the frame.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BoundingBox {
    pub x0: f64,
    pub y0: f64,
    pub x1: f64,
    pub y1: f64,
}

/// What one frame tells.
#[derive(Debug, Clone, PartialEq)]
pub struct FrameResult {
    /// Percent of the watched area that changed.
    pub score: f64,
    /// The frame changed too much at once and re-seeded the background.
    pub reseeded: bool,
    pub bbox: Option<BoundingBox>,
    pub event: Option<Event>,
}

/// A decision.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Start {
        /// Timestamp (the caller's clock, ns) and PTS of the first frame of the moving run.
        first_frame_ns: u64,
        first_pts: i64,
        score: f64,
        bbox: Option<BoundingBox>,
    },
    End {
        duration_s: f64,
        peak_score: f64,
        /// Timestamp (the caller's clock, ns) of the last moving frame.
        last_moving_ns: u64,
    },
}

pub struct Detector {
    cfg: MotionSettings,
    /// Working size, fixed at the first frame (a new resolution builds a new detector).
    work_w: usize,
    work_h: usize,
    src_w: usize,
    src_h: usize,
    /// Working-image pixels that are watched (zones minus masks).
    watched: Vec<bool>,
    n_watched: usize,
    background: Option<Vec<f32>>,
    last_frame_ns: Option<u64>,
    small: Vec<u8>,
    blurred: Vec<u8>,
    /// The previous frame's blurred image, and how long (s) each pixel has stayed near it.
    previous: Vec<u8>,
    still_s: Vec<f32>,
    /// The current run of moving frames: (count, first frame ns, first pts).
    run: (u32, u64, i64),
    /// While in motion: start ns, last moving frame ns, peak score.
    active: Option<(u64, u64, f64)>,
}

impl Detector {
    pub fn new(cfg: MotionSettings, src_w: usize, src_h: usize) -> Self {
        Self::with_work_height(cfg, src_w, src_h, WORK_HEIGHT)
    }

    /// Like [`Detector::new`] with another working height (benchmarks compare sizes with it).
    pub fn with_work_height(
        cfg: MotionSettings,
        src_w: usize,
        src_h: usize,
        work_height: usize,
    ) -> Self {
        let work_h = work_height.min(src_h).max(1);
        let work_w = ((src_w * work_h) as f64 / src_h.max(1) as f64)
            .round()
            .max(1.0) as usize;
        let watched = watched_mask(&cfg.zones, &cfg.masks, work_w, work_h);
        let n_watched = watched.iter().filter(|w| **w).count();
        Detector {
            cfg,
            work_w,
            work_h,
            src_w,
            src_h,
            watched,
            n_watched,
            background: None,
            last_frame_ns: None,
            small: vec![0; work_w * work_h],
            blurred: vec![0; work_w * work_h],
            previous: vec![0; work_w * work_h],
            still_s: vec![0.0; work_w * work_h],
            run: (0, 0, 0),
            active: None,
        }
    }

    /// Takes new settings in place (thresholds, zones, masks): the background and an event in
    /// progress are kept, so a zone edit neither re-learns the scene nor cuts an event short.
    pub fn set_settings(&mut self, cfg: MotionSettings) {
        self.watched = watched_mask(&cfg.zones, &cfg.masks, self.work_w, self.work_h);
        self.n_watched = self.watched.iter().filter(|w| **w).count();
        self.cfg = cfg;
    }

    /// The source size this detector was built for.
    pub fn source_size(&self) -> (usize, usize) {
        (self.src_w, self.src_h)
    }

    /// Processes one frame taken at `t_ns` (any monotonic clock) with presentation time `pts`.
    pub fn process(&mut self, y: Luma<'_>, t_ns: u64, pts: i64) -> FrameResult {
        downscale(y, self.work_w, self.work_h, &mut self.small);
        blur3(&self.small, self.work_w, self.work_h, &mut self.blurred);
        let dt_s = self
            .last_frame_ns
            .map_or(0.0, |last| t_ns.saturating_sub(last) as f64 / 1e9);
        self.last_frame_ns = Some(t_ns);

        let Some(bg) = &mut self.background else {
            self.background = Some(self.blurred.iter().map(|&p| f32::from(p)).collect());
            self.previous.copy_from_slice(&self.blurred);
            self.still_s.fill(0.0);
            return FrameResult {
                score: 0.0,
                reseeded: true,
                bbox: None,
                event: self.advance(false, 0.0, None, t_ns, pts),
            };
        };
        let threshold = f32::from(self.cfg.threshold);
        let still_delta = self.cfg.threshold / 2;
        for ((still, &cur), prev) in self
            .still_s
            .iter_mut()
            .zip(&self.blurred)
            .zip(&mut self.previous)
        {
            *still = if cur.abs_diff(*prev) <= still_delta {
                *still + dt_s as f32
            } else {
                0.0
            };
            *prev = cur;
        }
        let (mut changed, mut bbox) = (0usize, (usize::MAX, usize::MAX, 0usize, 0usize));
        for (i, (&cur, b)) in self.blurred.iter().zip(bg.iter_mut()).enumerate() {
            if self.watched[i] && (f32::from(cur) - *b).abs() > threshold {
                if self.still_s[i] >= ABSORB_STILL_S {
                    *b = f32::from(cur);
                    continue;
                }
                changed += 1;
                let (x, y) = (i % self.work_w, i / self.work_w);
                bbox = (bbox.0.min(x), bbox.1.min(y), bbox.2.max(x), bbox.3.max(y));
            }
        }
        let fraction = changed as f64 / self.n_watched.max(1) as f64;
        if fraction > RESEED_FRACTION {
            for (b, &cur) in bg.iter_mut().zip(&self.blurred) {
                *b = f32::from(cur);
            }
            self.still_s.fill(0.0);
            self.run.0 = 0;
            return FrameResult {
                score: fraction * 100.0,
                reseeded: true,
                bbox: None,
                event: self.advance(false, 0.0, None, t_ns, pts),
            };
        }
        let alpha = (1.0 - (-dt_s / BACKGROUND_TAU_S).exp()) as f32;
        for (b, &cur) in bg.iter_mut().zip(&self.blurred) {
            *b += alpha * (f32::from(cur) - *b);
        }
        let score = fraction * 100.0;
        let bbox = (changed > 0).then(|| BoundingBox {
            x0: bbox.0 as f64 / self.work_w as f64,
            y0: bbox.1 as f64 / self.work_h as f64,
            x1: (bbox.2 + 1) as f64 / self.work_w as f64,
            y1: (bbox.3 + 1) as f64 / self.work_h as f64,
        });
        let moving = changed > 0 && score >= self.cfg.min_area;
        let event = self.advance(moving, score, bbox, t_ns, pts);
        FrameResult {
            score,
            reseeded: false,
            bbox,
            event,
        }
    }

    /// The start/end state machine.
    fn advance(
        &mut self,
        moving: bool,
        score: f64,
        bbox: Option<BoundingBox>,
        t_ns: u64,
        pts: i64,
    ) -> Option<Event> {
        if moving {
            if self.run.0 == 0 {
                self.run = (0, t_ns, pts);
            }
            self.run.0 += 1;
        } else {
            self.run.0 = 0;
        }
        match &mut self.active {
            Some((_, last_moving, peak)) if moving => {
                *last_moving = t_ns;
                *peak = peak.max(score);
                None
            }
            Some((start, last_moving, peak)) => {
                let quiet_s = t_ns.saturating_sub(*last_moving) as f64 / 1e9;
                if quiet_s < self.cfg.post_motion_s {
                    return None;
                }
                let end = Event::End {
                    duration_s: t_ns.saturating_sub(*start) as f64 / 1e9,
                    peak_score: *peak,
                    last_moving_ns: *last_moving,
                };
                self.active = None;
                Some(end)
            }
            None if moving && self.run.0 >= self.cfg.min_frames.max(1) => {
                self.active = Some((self.run.1, t_ns, score));
                Some(Event::Start {
                    first_frame_ns: self.run.1,
                    first_pts: self.run.2,
                    score,
                    bbox,
                })
            }
            None => None,
        }
    }
}

/// Area-average downscale of the luma plane into `out` (`w` × `h`): sum the source rows of each output
/// row first (contiguous, vectorisable), then each output column's span of that sum. Divisions are
/// multiplications by precomputed reciprocals (this runs on every frame).
fn downscale(src: Luma<'_>, w: usize, h: usize, out: &mut [u8]) {
    let spans: Vec<(usize, usize)> = (0..w)
        .map(|ox| {
            let x0 = ox * src.width / w;
            (x0, ((ox + 1) * src.width / w).max(x0 + 1))
        })
        .collect();
    let mut acc = vec![0u32; src.width];
    for (oy, out_row) in out.chunks_exact_mut(w).take(h).enumerate() {
        let y0 = oy * src.height / h;
        let y1 = ((oy + 1) * src.height / h).max(y0 + 1);
        acc.fill(0);
        for row in y0..y1 {
            let line = &src.data[row * src.stride..row * src.stride + src.width];
            for (a, &p) in acc.iter_mut().zip(line) {
                *a += u32::from(p);
            }
        }
        for (o, &(x0, x1)) in out_row.iter_mut().zip(&spans) {
            let sum: u32 = acc[x0..x1].iter().sum();
            *o = divide(sum, ((y1 - y0) * (x1 - x0)) as u32);
        }
    }
}

/// `sum / n` rounded down, for the small `n` and `sum < 2^16 · n` of these filters, without a
/// hardware division: `n` takes few distinct values per frame, so the reciprocal is cheap to recompute
/// and the multiply is exact for these ranges.
#[inline]
fn divide(sum: u32, n: u32) -> u8 {
    let recip = (1u64 << 32).div_ceil(u64::from(n));
    ((u64::from(sum) * recip) >> 32) as u8
}

/// 3×3 box blur with clamped edges (each pixel averages the neighbours that exist), done separably.
/// The interior (all nine neighbours present) is written as straight slice arithmetic so that it
/// vectorises; the one-pixel border takes the general path.
fn blur3(src: &[u8], w: usize, h: usize, out: &mut [u8]) {
    // Horizontal sums of the 1×3 windows (at most 3 · 255).
    let mut hsum = vec![0u16; w * h];
    for (row, sums) in src.chunks_exact(w).zip(hsum.chunks_exact_mut(w)) {
        if w >= 3 {
            let mid = sums[1..w - 1].iter_mut();
            for (((s, &a), &b), &c) in mid.zip(&row[..w - 2]).zip(&row[1..w - 1]).zip(&row[2..]) {
                *s = u16::from(a) + u16::from(b) + u16::from(c);
            }
        }
        for x in [0, w - 1] {
            let (a, b) = (x.saturating_sub(1), (x + 1).min(w - 1));
            sums[x] = row[a..=b].iter().map(|&p| u16::from(p)).sum();
        }
    }
    let count = |i: usize, len: usize| 1 + usize::from(i > 0) + usize::from(i + 1 < len);
    // `(sum · recip[n]) >> 16` is `sum / n` rounded down, exactly, for sums of at most 9 · 255.
    let recip: [u32; 10] = std::array::from_fn(|n| (1u32 << 16).div_ceil(n.max(1) as u32));
    for (y, out_row) in out.chunks_exact_mut(w).take(h).enumerate() {
        let ny = count(y, h);
        let row = |yy: usize| &hsum[yy * w..(yy + 1) * w];
        let (above, here, below) = (row(y.saturating_sub(1)), row(y), row((y + 1).min(h - 1)));
        // A clamped row is the centre row again: weight it 0 so it counts once.
        let (wa, wc) = (u32::from(y > 0), u32::from(y + 1 < h));
        let sum = |a: u16, b: u16, c: u16| u32::from(a) * wa + u32::from(b) + u32::from(c) * wc;
        if w >= 3 {
            let r = recip[3 * ny];
            let (a, b, c) = (&above[1..w - 1], &here[1..w - 1], &below[1..w - 1]);
            for (((o, &a), &b), &c) in out_row[1..w - 1].iter_mut().zip(a).zip(b).zip(c) {
                *o = ((sum(a, b, c) * r) >> 16) as u8;
            }
        }
        for x in [0, w - 1] {
            let s = sum(above[x], here[x], below[x]);
            out_row[x] = ((s * recip[count(x, w) * ny]) >> 16) as u8;
        }
    }
}

/// Which working-image pixels are watched: inside a zone (or anywhere, without zones) and in no mask.
fn watched_mask(zones: &[Polygon], masks: &[Polygon], w: usize, h: usize) -> Vec<bool> {
    (0..w * h)
        .map(|i| {
            let (x, y) = (
                ((i % w) as f64 + 0.5) / w as f64,
                ((i / w) as f64 + 0.5) / h as f64,
            );
            let in_zone = zones.is_empty() || zones.iter().any(|z| inside(z, x, y));
            in_zone && !masks.iter().any(|m| inside(m, x, y))
        })
        .collect()
}

/// Even-odd point-in-polygon test.
fn inside(poly: &Polygon, x: f64, y: f64) -> bool {
    let mut inside = false;
    let n = poly.len();
    for i in 0..n {
        let [xi, yi] = poly[i];
        let [xj, yj] = poly[(i + n - 1) % n];
        if (yi > y) != (yj > y) && x < (xj - xi) * (y - yi) / (yj - yi) + xi {
            inside = !inside;
        }
    }
    inside
}

#[cfg(test)]
mod tests;
