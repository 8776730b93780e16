//! Motion detection on the luma (Y) plane. Pure code: frames and their timestamps come in, decisions
//! come out; no IO and no clock, so every stage is tested with synthetic frames and tables.
//!
//! Per frame: scale the Y plane down to a small working image ([`WORK_WIDTH`] columns, aspect kept)
//! by area averaging, blur it lightly, and compare it with a running-average background. A pixel
//! counts as changed when it differs from the background by more than `threshold` after the frame's
//! global brightness shift (the median difference) is taken out. Changed pixels are grouped into
//! connected regions: the frame is moving when one region is at least as large as an object of
//! `min_object` (a fraction of the picture's width) and, when `min_area` is set, the changed pixels
//! cover that percentage of the watched area (zones minus masks). Sensor and compression noise are
//! scattered; objects are connected, which is what lets a small, far object count while noise does
//! not.
//!
//! Every rule is in seconds of the stream's own time (the caller's timestamps, which follow the
//! frames' PTS), never in frames, so the same scene gives the same decisions at 5, 15 or 30 fps and a
//! burst of frames decoded at once (at connect) is judged by when it was filmed, not when it arrived:
//! - motion starts once a run of moving frames spans `min_motion_s` (at least two frames when it is
//!   above zero), stamped with the run's first frame; it ends `post_motion_s` after the last moving
//!   frame;
//! - the background follows the scene with a time constant of [`BACKGROUND_TAU_S`], where nothing
//!   changed (an object does not leave a ghost of itself in it);
//! - a changed pixel that has stayed within half the threshold of one value for [`ABSORB_STILL_S`]
//!   is taken into the background at once: that is how something that stops moving (a parked car)
//!   ends its event, and how the "ghost" left where an object stood in the first frame (a worker
//!   started mid-motion) goes away in seconds instead of holding the event open;
//! - a change of the whole picture at once (lights, IR switch, exposure jump: the median pixel
//!   shifted by more than half the threshold, or most of the picture changed) re-seeds the
//!   background instead of firing;
//! - after the first frame and after a re-seed, the background learns quickly for [`WARMUP_S`] and
//!   nothing counts as motion meanwhile (a starved encoder's first frames, an exposure settling).

use nvr_proto::settings::{MotionSettings, Polygon};

/// Columns of the working image (fewer when the source is narrower); rows follow the aspect ratio.
/// An object 3 % of the picture's width is about six working pixels wide.
pub const WORK_WIDTH: usize = 192;
/// Background time constant: a change that stays this long is mostly part of the background.
pub const BACKGROUND_TAU_S: f64 = 8.0;
/// A changed pixel that stayed within half the threshold of one value this long is a still scene
/// (a stopped object, or a ghost of one that left), not motion.
pub const ABSORB_STILL_S: f32 = 3.0;
/// After the first frame, and after each change of the whole picture, the background learns this
/// long (stream time) with [`WARMUP_TAU_S`] before anything counts as motion: a starved encoder
/// refines its first frames for a while, and an exposure step settles over a few frames.
pub const WARMUP_S: f64 = 1.0;
const WARMUP_TAU_S: f64 = 0.2;
/// A frame where more than this fraction of the watched area changed is a global change, not motion.
const RESEED_FRACTION: f64 = 0.6;
/// Share of an object's bounding square that its changed region must cover at least (blur and
/// the object's own shape take the rest).
const OBJECT_FILL: f64 = 0.5;

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
    /// The largest connected changed region, as a fraction of the working image's width squared
    /// (the side of a square of the same area is `sqrt(object)` picture widths).
    pub object: f64,
    /// The frame changed as a whole and re-seeded the background.
    pub reseeded: bool,
    pub bbox: Option<BoundingBox>,
    /// The zones (bit `i`: zone `i`) that this frame's objects touch.
    pub zones: u32,
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
        /// The zones (bit `i`: zone `i`) the deciding frame's objects touch.
        zones: u32,
    },
    End {
        duration_s: f64,
        peak_score: f64,
        /// Timestamp (the caller's clock, ns) of the last moving frame.
        last_moving_ns: u64,
        /// Every zone (bit `i`: zone `i`) an object touched during the event.
        zones: u32,
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
    /// Per working pixel, the zones it is watched in (bit `i`: zone `i`); empty without zones.
    zone_of: Vec<u32>,
    /// Watched pixels per zone, changed pixels per zone in the latest frame, and the latter as a
    /// percentage of the former.
    zone_px: Vec<usize>,
    zone_changed: Vec<usize>,
    zone_levels: Vec<f64>,
    /// Working pixels a changed region needs to count as an object (from `min_object`).
    min_region: usize,
    background: Option<Vec<f32>>,
    last_frame_ns: Option<u64>,
    /// Until when (stream time) the background is warming up.
    warm_until_ns: u64,
    small: Vec<u8>,
    blurred: Vec<u8>,
    /// The filters' working memory, kept between frames (no allocation per frame).
    scratch: Scratch,
    /// Per pixel: the value it has stayed near, and for how long (s).
    anchor: Vec<u8>,
    still_s: Vec<f32>,
    /// Changed pixels of this frame (1), and scratch for grouping them into regions.
    changed: Vec<u8>,
    stack: Vec<u32>,
    /// The current run of moving frames: (frames, first frame ns, first pts).
    run: (u32, u64, i64),
    /// While in motion: start ns, last moving frame ns, peak score, zones touched.
    active: Option<(u64, u64, f64, u32)>,
}

impl Detector {
    pub fn new(cfg: MotionSettings, src_w: usize, src_h: usize) -> Self {
        Self::with_work_width(cfg, src_w, src_h, WORK_WIDTH)
    }

    /// Like [`Detector::new`] with another working width (benchmarks compare sizes with it).
    pub fn with_work_width(
        cfg: MotionSettings,
        src_w: usize,
        src_h: usize,
        work_width: usize,
    ) -> Self {
        let work_w = work_width.min(src_w).max(1);
        let work_h = ((src_h * work_w) as f64 / src_w.max(1) as f64)
            .round()
            .max(1.0) as usize;
        let n = work_w * work_h;
        let mut d = Detector {
            cfg: cfg.clone(),
            work_w,
            work_h,
            src_w,
            src_h,
            watched: Vec::new(),
            n_watched: 0,
            zone_of: Vec::new(),
            zone_px: Vec::new(),
            zone_changed: Vec::new(),
            zone_levels: Vec::new(),
            min_region: 1,
            background: None,
            last_frame_ns: None,
            warm_until_ns: 0,
            small: vec![0; n],
            blurred: vec![0; n],
            scratch: Scratch::default(),
            anchor: vec![0; n],
            still_s: vec![0.0; n],
            changed: vec![0; n],
            stack: Vec::new(),
            run: (0, 0, 0),
            active: None,
        };
        d.set_settings(cfg);
        d
    }

    /// Takes new settings in place (thresholds, zones, masks): the background and an event in
    /// progress are kept, so a zone edit neither re-learns the scene nor cuts an event short.
    pub fn set_settings(&mut self, cfg: MotionSettings) {
        (self.watched, self.zone_of) =
            watched_mask(&cfg.zones, &cfg.masks, self.work_w, self.work_h);
        self.n_watched = self.watched.iter().filter(|w| **w).count();
        let n_zones = cfg.zones.len().min(32);
        self.zone_px = vec![0; n_zones];
        for bits in &self.zone_of {
            for_each_bit(*bits, |z| self.zone_px[z] += 1);
        }
        self.zone_changed = vec![0; n_zones];
        self.zone_levels = vec![0.0; n_zones];
        let side = cfg.min_object.max(0.0) * self.work_w as f64;
        self.min_region = ((side * side * OBJECT_FILL).ceil() as usize).max(1);
        self.cfg = cfg;
    }

    /// The source size this detector was built for.
    /// Ends a motion event at once, if one is open (the camera is about to move, so its whole
    /// picture will change), and forgets the background: the next frame starts afresh, with the
    /// usual warm-up. Returns the event's end.
    pub fn interrupt(&mut self) -> Option<Event> {
        self.background = None;
        self.run.0 = 0;
        self.zone_levels.fill(0.0);
        let (start, last_moving, peak, touched) = self.active.take()?;
        Some(Event::End {
            duration_s: last_moving.saturating_sub(start) as f64 / 1e9,
            peak_score: peak,
            last_moving_ns: last_moving,
            zones: touched,
        })
    }

    pub fn source_size(&self) -> (usize, usize) {
        (self.src_w, self.src_h)
    }

    /// The working image's size.
    pub fn working_size(&self) -> (usize, usize) {
        (self.work_w, self.work_h)
    }

    /// Per zone (in the settings' order), the percent of its watched pixels that changed in the
    /// latest frame.
    pub fn zone_levels(&self) -> &[f64] {
        &self.zone_levels
    }

    /// Processes one frame filmed at `t_ns` (any clock that follows the stream's time) with
    /// presentation time `pts`.
    pub fn process(&mut self, y: Luma<'_>, t_ns: u64, pts: i64) -> FrameResult {
        downscale(
            y,
            self.work_w,
            self.work_h,
            &mut self.small,
            &mut self.scratch,
        );
        blur3(
            &self.small,
            self.work_w,
            self.work_h,
            &mut self.blurred,
            &mut self.scratch.hsum,
        );
        let dt_s = self
            .last_frame_ns
            .map_or(0.0, |last| t_ns.saturating_sub(last) as f64 / 1e9);
        self.last_frame_ns = Some(t_ns.max(self.last_frame_ns.unwrap_or(0)));

        let Some(bg) = &mut self.background else {
            self.background = Some(self.blurred.iter().map(|&p| f32::from(p)).collect());
            self.reseed_stillness();
            self.warm_until_ns = t_ns.saturating_add((WARMUP_S * 1e9) as u64);
            return self.quiet_frame(0.0, t_ns, pts);
        };
        // The frame's global brightness shift: the median of (frame - background) over the
        // watched area, robust to any object smaller than half of it.
        let shift = median_shift(&self.blurred, bg, &self.watched, self.n_watched);
        if shift.abs() > f32::from(self.cfg.threshold / 2) {
            return self.reseed(0.0, t_ns, pts);
        }
        let fraction_or_reseed = self.compare_and_learn(shift, dt_s, t_ns);
        let (fraction, n_changed, warming) = match fraction_or_reseed {
            Ok(r) => r,
            Err(fraction) => return self.reseed(fraction * 100.0, t_ns, pts),
        };
        self.count_zone_levels();
        let score = fraction * 100.0;
        let regions = if n_changed >= self.min_region {
            self.regions()
        } else {
            Regions::default()
        };
        let bbox = regions.bbox.map(|(x0, y0, x1, y1)| BoundingBox {
            x0: x0 as f64 / self.work_w as f64,
            y0: y0 as f64 / self.work_h as f64,
            x1: (x1 + 1) as f64 / self.work_w as f64,
            y1: (y1 + 1) as f64 / self.work_h as f64,
        });
        let moving = !warming && regions.largest >= self.min_region && score >= self.cfg.min_area;
        let zones = if moving { regions.zones } else { 0 };
        let event = self.advance(moving, score, bbox, zones, t_ns, pts);
        FrameResult {
            score,
            object: regions.largest as f64 / (self.work_w * self.work_w) as f64,
            reseeded: false,
            bbox,
            zones,
            event,
        }
    }

    /// One pass over the working image, per pixel: how long it has stayed near one value, whether
    /// it changed (against the background less the frame's `shift`), the still ones absorbed into
    /// the background, and the background learned where nothing changed (everywhere while warming
    /// up). Returns the changed share of the watched area, the changed pixels and whether the
    /// background is warming up, or `Err(share)` when so much changed that the caller re-seeds (the
    /// re-seed overwrites the background and the stillness this pass wrote).
    ///
    /// Written without branches on pixel values (selects instead), so that it vectorises: this runs
    /// on every pixel of every frame.
    fn compare_and_learn(
        &mut self,
        shift: f32,
        dt_s: f64,
        t_ns: u64,
    ) -> Result<(f64, usize, bool), f64> {
        // `process` seeds the background from the first frame before it compares anything.
        let Some(bg) = &mut self.background else {
            return Ok((0.0, 0, true));
        };
        let threshold = f32::from(self.cfg.threshold);
        let still_delta = self.cfg.threshold / 2;
        let warming = t_ns < self.warm_until_ns;
        let tau_s = if warming {
            WARMUP_TAU_S
        } else {
            BACKGROUND_TAU_S
        };
        let alpha = (1.0 - (-dt_s / tau_s).exp()) as f32;
        let dt = dt_s as f32;
        let n = self.blurred.len();
        // Equal lengths, stated once, so that the loop below has no bounds checks.
        let (blurred, bg, still_s) = (&self.blurred[..n], &mut bg[..n], &mut self.still_s[..n]);
        let (anchors, watched, changed) = (
            &mut self.anchor[..n],
            &self.watched[..n],
            &mut self.changed[..n],
        );
        let mut n_changed = 0u32;
        for i in 0..n {
            let (cur, anchor) = (blurred[i], anchors[i]);
            let near = cur.abs_diff(anchor) <= still_delta;
            let still = if near { still_s[i] + dt } else { 0.0 };
            still_s[i] = still;
            anchors[i] = if near { anchor } else { cur };
            let value = f32::from(cur);
            let differs = watched[i] & ((value - bg[i] - shift).abs() > threshold);
            // A changed pixel that has held still is a still scene: into the background at once.
            let absorbed = differs & (still >= ABSORB_STILL_S);
            let before = if absorbed { value - shift } else { bg[i] };
            let on = differs & !absorbed;
            // Changed pixels are not learned (once warm): a large object moving slowly would
            // otherwise darken the background along its path and leave a ghost that holds the
            // event open after it has gone. What stays changed is absorbed as above instead.
            let learned = before + alpha * (value - before);
            bg[i] = if on & !warming { before } else { learned };
            changed[i] = u8::from(on);
            n_changed += u32::from(on);
        }
        let n_changed = n_changed as usize;
        let fraction = n_changed as f64 / self.n_watched.max(1) as f64;
        if fraction > RESEED_FRACTION {
            return Err(fraction);
        }
        Ok((fraction, n_changed, warming))
    }

    /// Counts this frame's changed pixels per zone (nothing to do without zones).
    fn count_zone_levels(&mut self) {
        if self.zone_of.is_empty() {
            return;
        }
        self.zone_changed.fill(0);
        for (&changed, &bits) in self.changed.iter().zip(&self.zone_of) {
            if changed != 0 {
                for_each_bit(bits, |z| self.zone_changed[z] += 1);
            }
        }
        for ((level, &n), &px) in self
            .zone_levels
            .iter_mut()
            .zip(&self.zone_changed)
            .zip(&self.zone_px)
        {
            *level = n as f64 * 100.0 / px.max(1) as f64;
        }
    }

    /// Groups this frame's changed pixels into 8-connected regions: the largest one's size, and
    /// the box around every region large enough to be an object.
    fn regions(&mut self) -> Regions {
        let (w, h) = (self.work_w, self.work_h);
        let mut out = Regions::default();
        let mut from = 0;
        // Each unvisited changed pixel (1) starts a region; the search for the next one is a
        // vectorised scan, most of the picture being unchanged.
        while let Some(offset) = self.changed[from..].iter().position(|&c| c == 1) {
            let start = from + offset;
            from = start + 1;
            // Flood fill; visited pixels are marked 2.
            self.changed[start] = 2;
            self.stack.clear();
            self.stack.push(start as u32);
            let (mut size, mut bb) = (0usize, (usize::MAX, usize::MAX, 0usize, 0usize));
            let mut zones = 0u32;
            while let Some(i) = self.stack.pop() {
                let i = i as usize;
                let (x, y) = (i % w, i / w);
                size += 1;
                zones |= self.zone_of.get(i).copied().unwrap_or(0);
                bb = (bb.0.min(x), bb.1.min(y), bb.2.max(x), bb.3.max(y));
                for ny in y.saturating_sub(1)..=(y + 1).min(h - 1) {
                    for nx in x.saturating_sub(1)..=(x + 1).min(w - 1) {
                        let j = ny * w + nx;
                        if self.changed[j] == 1 {
                            self.changed[j] = 2;
                            self.stack.push(j as u32);
                        }
                    }
                }
            }
            out.largest = out.largest.max(size);
            if size >= self.min_region {
                out.zones |= zones;
                out.bbox = Some(match out.bbox {
                    None => bb,
                    Some(o) => (o.0.min(bb.0), o.1.min(bb.1), o.2.max(bb.2), o.3.max(bb.3)),
                });
            }
        }
        out
    }

    /// The whole picture changed at once: take it as the new background.
    fn reseed(&mut self, score: f64, t_ns: u64, pts: i64) -> FrameResult {
        if let Some(bg) = &mut self.background {
            for (b, &cur) in bg.iter_mut().zip(&self.blurred) {
                *b = f32::from(cur);
            }
        }
        self.reseed_stillness();
        self.zone_levels.fill(0.0);
        self.run.0 = 0;
        self.warm_until_ns = t_ns.saturating_add((WARMUP_S * 1e9) as u64);
        self.quiet_frame(score, t_ns, pts)
    }

    fn reseed_stillness(&mut self) {
        self.anchor.copy_from_slice(&self.blurred);
        self.still_s.fill(0.0);
    }

    fn quiet_frame(&mut self, score: f64, t_ns: u64, pts: i64) -> FrameResult {
        FrameResult {
            score,
            object: 0.0,
            reseeded: true,
            bbox: None,
            zones: 0,
            event: self.advance(false, 0.0, None, 0, t_ns, pts),
        }
    }

    /// The start/end state machine, in the stream's time.
    fn advance(
        &mut self,
        moving: bool,
        score: f64,
        bbox: Option<BoundingBox>,
        zones: u32,
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
        let long_enough = moving && self.run_long_enough(t_ns);
        match &mut self.active {
            Some((_, last_moving, peak, touched)) if moving => {
                *last_moving = t_ns;
                *peak = peak.max(score);
                *touched |= zones;
                None
            }
            Some((start, last_moving, peak, touched)) => {
                let quiet_s = t_ns.saturating_sub(*last_moving) as f64 / 1e9;
                if quiet_s < self.cfg.post_motion_s {
                    return None;
                }
                let end = Event::End {
                    duration_s: t_ns.saturating_sub(*start) as f64 / 1e9,
                    peak_score: *peak,
                    last_moving_ns: *last_moving,
                    zones: *touched,
                };
                self.active = None;
                Some(end)
            }
            None if long_enough => {
                self.active = Some((self.run.1, t_ns, score, zones));
                Some(Event::Start {
                    first_frame_ns: self.run.1,
                    first_pts: self.run.2,
                    score,
                    bbox,
                    zones,
                })
            }
            None => None,
        }
    }

    /// Whether the current run of moving frames has lasted `min_motion_s` (two frames at least,
    /// unless that is zero).
    fn run_long_enough(&self, t_ns: u64) -> bool {
        let span_s = t_ns.saturating_sub(self.run.1) as f64 / 1e9;
        if self.cfg.min_motion_s <= 0.0 {
            return true;
        }
        self.run.0 >= 2 && span_s >= self.cfg.min_motion_s - 1e-6
    }
}

/// What grouping the changed pixels found.
#[derive(Debug, Default)]
struct Regions {
    /// Pixels of the largest region.
    largest: usize,
    /// `(x0, y0, x1, y1)` (inclusive) around the regions that count as objects.
    bbox: Option<(usize, usize, usize, usize)>,
    /// The zones (bit `i`: zone `i`) the regions that count as objects touch.
    zones: u32,
}

/// The median of `frame - background` over the watched pixels, to a whole level (a histogram of the
/// rounded differences, so it costs one pass).
fn median_shift(frame: &[u8], background: &[f32], watched: &[bool], n_watched: usize) -> f32 {
    if n_watched == 0 {
        return 0.0;
    }
    // Four histograms filled in turn, summed at the end: most differences fall in the same few
    // levels, and consecutive increments of one counter would wait on each other.
    let mut histograms = [[0u32; 511]; 4];
    let pixels = frame
        .chunks(4)
        .zip(background.chunks(4))
        .zip(watched.chunks(4));
    for ((cur, b), w) in pixels {
        for (lane, ((&cur, &b), &w)) in cur.iter().zip(b).zip(w).enumerate() {
            // `+ 0.5` and truncation round to the nearest level (halves up) without a call to
            // `roundf` per pixel; the sum is never negative for a difference of at least -255.
            let d = (f32::from(cur) - b + 255.5) as i32;
            histograms[lane][d.clamp(0, 510) as usize] += u32::from(w);
        }
    }
    let histogram: [u32; 511] =
        std::array::from_fn(|i| histograms.iter().map(|h| h[i]).sum::<u32>());
    let half = (n_watched as u32).div_ceil(2);
    let mut seen = 0;
    for (i, &n) in histogram.iter().enumerate() {
        seen += n;
        if seen >= half {
            return i as f32 - 255.0;
        }
    }
    0.0
}

/// The filters' working memory, kept by the detector so that a frame allocates nothing.
#[derive(Debug, Default)]
struct Scratch {
    /// Each output column's source span, for the (source width, output width) in `spans_for`.
    spans: Vec<(usize, usize)>,
    spans_for: (usize, usize),
    /// `recips[n]` turns a sum of `n` samples into their mean ([`reciprocal`]), for every block
    /// size the downscale meets at `spans_for` (grown as taller blocks are met).
    recips: Vec<u64>,
    /// Column sums of the source rows of one output row, and of up to [`ROWS_PER_U16_SUM`] of
    /// them (narrow sums vectorise twice as wide).
    acc: Vec<u32>,
    acc16: Vec<u16>,
    /// The blur's horizontal sums.
    hsum: Vec<u16>,
}

/// Area-average downscale of the luma plane into `out` (`w` × `h`): sum the source rows of each output
/// row first (contiguous, vectorisable), then each output column's span of that sum. Divisions are
/// multiplications by reciprocals computed once per block size (this runs on every frame).
fn downscale(src: Luma<'_>, w: usize, h: usize, out: &mut [u8], scratch: &mut Scratch) {
    if scratch.spans_for != (src.width, w) {
        scratch.spans = (0..w)
            .map(|ox| {
                let x0 = ox * src.width / w;
                (x0, ((ox + 1) * src.width / w).max(x0 + 1))
            })
            .collect();
        scratch.spans_for = (src.width, w);
        scratch.recips.clear();
    }
    let widest = src.width.div_ceil(w);
    let Scratch {
        spans,
        acc,
        acc16,
        recips,
        ..
    } = scratch;
    acc.resize(src.width, 0);
    acc16.resize(src.width, 0);
    for (oy, out_row) in out.chunks_exact_mut(w).take(h).enumerate() {
        let y0 = oy * src.height / h;
        let y1 = ((oy + 1) * src.height / h).max(y0 + 1);
        let rows = y1 - y0;
        if recips.len() <= rows * widest {
            *recips = (0..=rows * widest).map(|n| reciprocal(n as u32)).collect();
        }
        acc.fill(0);
        for first in (y0..y1).step_by(ROWS_PER_U16_SUM) {
            acc16.fill(0);
            for row in first..y1.min(first + ROWS_PER_U16_SUM) {
                let line = &src.data[row * src.stride..row * src.stride + src.width];
                for (a, &p) in acc16.iter_mut().zip(line) {
                    *a += u16::from(p);
                }
            }
            for (a, &p) in acc.iter_mut().zip(acc16.iter()) {
                *a += u32::from(p);
            }
        }
        for (o, &(x0, x1)) in out_row.iter_mut().zip(spans.iter()) {
            let sum: u32 = acc[x0..x1].iter().sum();
            *o = ((u64::from(sum) * recips[rows * (x1 - x0)]) >> 32) as u8;
        }
    }
}

/// Rows of 8-bit samples whose sum always fits 16 bits (257 · 255 = 65535).
const ROWS_PER_U16_SUM: usize = 257;

/// The multiplier that makes `(sum · reciprocal(n)) >> 32` equal `sum / n` rounded down, exactly,
/// for the small `n` and `sum < 2^16 · n` of these filters (no hardware division per pixel).
fn reciprocal(n: u32) -> u64 {
    (1u64 << 32).div_ceil(u64::from(n.max(1)))
}

/// 3×3 box blur with clamped edges (each pixel averages the neighbours that exist), done separably.
/// The interior (all nine neighbours present) is written as straight slice arithmetic so that it
/// vectorises; the one-pixel border takes the general path.
fn blur3(src: &[u8], w: usize, h: usize, out: &mut [u8], hsum: &mut Vec<u16>) {
    // Horizontal sums of the 1×3 windows (at most 3 · 255); every element is written below.
    hsum.resize(w * h, 0);
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

/// Which working-image pixels are watched (inside a zone, or anywhere without zones, and in no
/// mask), and per pixel the zones it is watched in (bit `i`: zone `i`; empty without zones).
fn watched_mask(zones: &[Polygon], masks: &[Polygon], w: usize, h: usize) -> (Vec<bool>, Vec<u32>) {
    let zones = &zones[..zones.len().min(32)];
    let mut zone_of = Vec::new();
    let watched = (0..w * h)
        .map(|i| {
            let (x, y) = (
                ((i % w) as f64 + 0.5) / w as f64,
                ((i / w) as f64 + 0.5) / h as f64,
            );
            let masked = masks.iter().any(|m| inside(m, x, y));
            let bits = zones
                .iter()
                .enumerate()
                .filter(|(_, z)| !masked && inside(z, x, y))
                .fold(0u32, |bits, (k, _)| bits | 1 << k);
            if !zones.is_empty() {
                zone_of.push(bits);
            }
            !masked && (zones.is_empty() || bits != 0)
        })
        .collect();
    (watched, zone_of)
}

/// Calls `f` with the index of each set bit of `bits`.
fn for_each_bit(mut bits: u32, mut f: impl FnMut(usize)) {
    while bits != 0 {
        f(bits.trailing_zeros() as usize);
        bits &= bits - 1;
    }
}

/// The names of the zones in `bits`, in the settings' order.
pub fn zone_names(cfg: &MotionSettings, bits: u32) -> Vec<String> {
    let mut names = Vec::new();
    for_each_bit(bits, |z| names.push(cfg.zone_name(z)));
    names
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
