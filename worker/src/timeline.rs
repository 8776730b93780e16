//! A clip track's timestamps: rebased so the clip starts at zero and kept strictly increasing,
//! whatever the camera's clock does. Pure code: timestamps and the arrival clock come in as
//! numbers, so the invariant is tested with tables.
//!
//! Invariant: the DTS a [`Timeline`] hands out only ever increase. A camera whose clock jumps back,
//! or forward further than the arrival clock says time passed (by more than
//! [`MAX_FORWARD_JUMP_S`]), is re-anchored on the arrival clock; a packet without timestamps is
//! placed by the arrival clock. A file's DTS therefore always increase (decision 14).

/// A forward jump of the camera's timestamps beyond the arrival clock's by more than this is a
/// glitch, not real time passing.
pub const MAX_FORWARD_JUMP_S: f64 = 5.0;

/// Seconds per tick as a fraction, `num / den` (FFmpeg's time base).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeBase {
    pub num: i32,
    pub den: i32,
}

impl TimeBase {
    fn ticks_per_s(self) -> f64 {
        f64::from(self.den) / f64::from(self.num)
    }
}

/// `ts` ticks of `from` in ticks of `to`, rounded toward zero; in 128 bits, so no realistic
/// timestamp overflows.
pub fn rescale(ts: i64, from: TimeBase, to: TimeBase) -> i64 {
    let num = i128::from(ts) * i128::from(from.num) * i128::from(to.den);
    let den = i128::from(from.den) * i128::from(to.num);
    (num / den.max(1)) as i64
}

/// One track's timestamp state while a clip is written: input time base to output time base,
/// rebased, strictly increasing.
#[derive(Debug, Clone)]
pub struct Timeline {
    in_tb: TimeBase,
    out_tb: TimeBase,
    /// Added to rebased input timestamps (output time base); changes when the camera's clock jumps.
    offset: i64,
    /// The last output DTS and the arrival (ns) of its packet.
    last: Option<(i64, u64)>,
}

impl Timeline {
    /// A track read in `in_tb` and written in `out_tb`.
    pub fn new(in_tb: TimeBase, out_tb: TimeBase) -> Self {
        Timeline {
            in_tb,
            out_tb,
            offset: 0,
            last: None,
        }
    }

    /// Output `(pts, dts)` for a packet with input timestamps `pts`/`dts` that arrived at
    /// `arrival_ns`. The first packet of a track starts at `origin_s` (seconds of the input clock:
    /// the clip's first video frame), or at zero when `None`; `None` is returned for a packet that
    /// would fall before the clip's start.
    pub fn map(
        &mut self,
        pts: Option<i64>,
        dts: Option<i64>,
        arrival_ns: u64,
        origin_s: Option<f64>,
    ) -> Option<(i64, i64)> {
        let to_out = |ts: i64| rescale(ts, self.in_tb, self.out_tb);
        let ticks_per_s = self.out_tb.ticks_per_s();
        let since_last = |last_arrival: u64| {
            (arrival_ns.saturating_sub(last_arrival) as f64 / 1e9 * ticks_per_s) as i64
        };
        let raw_dts = dts.or(pts).map(to_out);
        if self.last.is_none() {
            // The clip starts at zero (or, for audio, where its video starts).
            let start = match origin_s {
                Some(o) => (o * ticks_per_s).round() as i64,
                None => raw_dts.unwrap_or(0),
            };
            self.offset = -start;
        }
        let mut out_dts = match (raw_dts, self.last) {
            (Some(d), _) => d + self.offset,
            // No timestamp at all (the first RTSP packets can lack them): go by the arrival clock.
            (None, Some((last, at))) => last + since_last(at).max(1),
            (None, None) => 0,
        };
        match self.last {
            None if out_dts < 0 => return None,
            None => {}
            Some((last, at)) => {
                let elapsed = since_last(at);
                let jumped = out_dts <= last
                    || (out_dts - last) as f64 > elapsed as f64 + MAX_FORWARD_JUMP_S * ticks_per_s;
                if jumped {
                    let fixed = last + elapsed.max(1);
                    self.offset += fixed - out_dts;
                    out_dts = fixed;
                }
            }
        }
        let out_pts = pts
            .map(|p| to_out(p) + self.offset)
            .unwrap_or(out_dts)
            .max(out_dts);
        self.last = Some((out_dts, arrival_ns));
        Some((out_pts, out_dts))
    }

    /// A packet's duration in the output time base.
    pub fn duration(&self, duration: i64) -> i64 {
        rescale(duration, self.in_tb, self.out_tb)
    }

    /// Seconds of the input clock at which this track's output starts (valid after the first
    /// packet).
    pub fn origin_s(&self) -> f64 {
        -self.offset as f64 * f64::from(self.out_tb.num) / f64::from(self.out_tb.den)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 90 kHz, the RTP video clock.
    const VIDEO_IN: TimeBase = TimeBase {
        num: 1,
        den: 90_000,
    };
    /// Milliseconds, so the tables read easily.
    const MS: TimeBase = TimeBase { num: 1, den: 1000 };
    const AUDIO_IN: TimeBase = TimeBase { num: 1, den: 8000 };

    /// A 90 kHz timestamp `s` seconds into the camera's clock, which starts at an arbitrary 1000 s.
    fn cam(s: f64) -> Option<i64> {
        Some(((1000.0 + s) * 90_000.0).round() as i64)
    }

    fn ns(s: f64) -> u64 {
        (s * 1e9) as u64
    }

    /// Feeds `(camera dts = pts, arrival s)` rows and checks the output DTS (ms) of each.
    fn check(name: &str, rows: &[(Option<i64>, f64, i64)]) {
        let mut t = Timeline::new(VIDEO_IN, MS);
        let mut last = None;
        for (i, &(ts, arrival_s, want_ms)) in rows.iter().enumerate() {
            let (pts, dts) = t
                .map(ts, ts, ns(arrival_s), None)
                .expect("video is never dropped");
            assert_eq!(dts, want_ms, "{name}: row {i}");
            assert!(pts >= dts, "{name}: row {i}: pts {pts} < dts {dts}");
            assert!(
                last < Some(dts),
                "{name}: row {i}: dts {dts} after {last:?}"
            );
            last = Some(dts);
        }
    }

    #[test]
    fn the_camera_clock_is_rebased_to_zero_and_followed_while_it_is_sane() {
        // (camera timestamp, arrival s, output DTS ms)
        check(
            "steady",
            &[
                (cam(0.0), 50.0, 0),
                (cam(0.04), 50.04, 40),
                (cam(0.08), 50.2, 80), // late arrival: the camera's clock still rules
                (cam(1.0), 50.9, 1000),
            ],
        );
        check(
            "a forward jump within 5 s beyond the arrival clock is real time",
            &[(cam(0.0), 50.0, 0), (cam(5.9), 51.0, 5900)],
        );
    }

    #[test]
    fn a_jump_back_is_reanchored_on_the_arrival_clock() {
        check(
            "back",
            &[
                (cam(0.0), 50.0, 0),
                (cam(0.04), 50.04, 40),
                (cam(-30.0), 50.08, 80), // the camera's clock went back 30 s
                (cam(-29.96), 50.12, 120), // and runs on from there
            ],
        );
        check(
            "the same timestamp twice still increases",
            &[
                (cam(0.0), 50.0, 0),
                (cam(0.04), 50.04, 40),
                (cam(0.04), 50.04, 41), // same arrival: one tick later
            ],
        );
    }

    #[test]
    fn a_forward_jump_of_more_than_5_s_beyond_the_arrival_clock_is_reanchored() {
        check(
            "forward",
            &[
                (cam(0.0), 50.0, 0),
                (cam(0.04), 50.04, 40),
                (cam(3600.0), 50.08, 80), // an hour ahead after 40 ms: a glitch
                (cam(3600.04), 50.12, 120),
            ],
        );
        check(
            "just over the limit",
            &[(cam(0.0), 50.0, 0), (cam(6.1), 51.0, 1000)],
        );
    }

    #[test]
    fn packets_without_timestamps_are_placed_by_the_arrival_clock() {
        check(
            "missing",
            &[
                (None, 50.0, 0), // the first RTSP packets can lack them
                (None, 50.04, 40),
                (None, 50.04, 41),     // same arrival: one tick later
                (cam(0.0), 50.08, 81), // the camera's clock takes over from here on
                (cam(0.04), 50.12, 121),
            ],
        );
        // Only a PTS: it stands in for the DTS.
        let mut t = Timeline::new(VIDEO_IN, MS);
        assert_eq!(t.map(cam(0.0), None, ns(1.0), None), Some((0, 0)));
        assert_eq!(t.map(cam(0.04), None, ns(1.04), None), Some((40, 40)));
    }

    #[test]
    fn pts_follows_the_dts_offset_and_never_precedes_the_dts() {
        let mut t = Timeline::new(VIDEO_IN, MS);
        // (pts, dts, output pts, output dts): B-frames reorder, pts ahead of dts.
        let rows = [
            (cam(0.08), cam(0.0), 80, 0),
            (cam(0.04), cam(0.04), 40, 40),
            (None, cam(0.08), 80, 80),       // no PTS: the DTS
            (cam(0.0), cam(0.12), 120, 120), // a PTS before its DTS is raised to it
        ];
        for (i, (pts, dts, want_pts, want_dts)) in rows.into_iter().enumerate() {
            let got = t.map(pts, dts, ns(50.0 + 0.04 * i as f64), None);
            assert_eq!(got, Some((want_pts, want_dts)), "row {i}");
        }
    }

    #[test]
    fn audio_starts_where_the_video_starts() {
        let mut video = Timeline::new(VIDEO_IN, MS);
        assert_eq!(video.map(cam(2.0), cam(2.0), ns(50.0), None), Some((0, 0)));
        assert_eq!(video.origin_s(), 1002.0);
        // The audio clock (8 kHz) counts from the same camera origin here: 1000 s.
        let audio_ts = |s: f64| Some(((1000.0 + s) * 8000.0).round() as i64);
        let mut audio = Timeline::new(AUDIO_IN, MS);
        let origin = Some(video.origin_s());
        // (camera s, output ms; None: before the clip starts, dropped)
        let rows = [
            (1.5, None),
            (1.9, None), // still before the clip's first video frame: the next is the first
            (2.25, Some(250)),
            (2.5, Some(500)),
        ];
        for (i, (s, want)) in rows.into_iter().enumerate() {
            let got = audio.map(audio_ts(s), audio_ts(s), ns(50.0 + s), origin);
            assert_eq!(got.map(|(_, dts)| dts), want, "row {i}");
        }
    }

    #[test]
    fn rescale_rounds_toward_zero_and_does_not_overflow() {
        let table = [
            (90_000, VIDEO_IN, MS, 1000),
            (1, VIDEO_IN, MS, 0),
            (-1, MS, VIDEO_IN, -90),
            (3, MS, TimeBase { num: 1, den: 3 }, 0),
            (i64::MAX / 2, VIDEO_IN, VIDEO_IN, i64::MAX / 2),
            (
                1 << 40,
                VIDEO_IN,
                TimeBase {
                    num: 1,
                    den: 1_000_000,
                },
                (1 << 40) * 100 / 9,
            ),
        ];
        for (i, (ts, from, to, want)) in table.into_iter().enumerate() {
            assert_eq!(rescale(ts, from, to), want, "row {i}");
        }
    }
}
