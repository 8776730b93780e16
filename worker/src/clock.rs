//! When a stream's frames were filmed, from their timestamps and their arrival. Pure code: timestamps
//! and the arrival clock come in as numbers, so the rules are tested with tables.
//!
//! Two times come out of [`StreamClock::stamp`] for each packet or frame:
//! - **content time**: the stream's own time (its PTS or DTS steps), in nanoseconds on a line that
//!   starts at the first packet's arrival. Motion detection runs on it, so its rules hold at any
//!   frame rate, and a burst of frames handed over at once (the packets FFmpeg read while probing the
//!   stream at connect, or a stall's backlog) keeps the spacing it was filmed with. A step the
//!   timestamps cannot explain (missing, backwards, or further forward than [`MAX_STEP_S`]) is taken
//!   from the arrival clock instead, so content time only ever increases.
//! - **capture time**: the monotonic instant the packet was filmed, as best known: content time
//!   moved by the smallest `arrival - content` seen so far, where "arrival" is that of the packet's
//!   first bytes: FFmpeg's parser hands an access unit over when the next one begins, one frame
//!   duration (the timestamp step) after its own first packet came. The packets read while probing arrive
//!   bunched, after the fact; the first live packet after them shows how late they were, and
//!   [`StreamClock::capture_of`] back-dates them by their timestamp distance from it. Recording start
//!   times and motion events use capture times.
//!
//! The offset only moves down (earlier) while the stream settles ([`SETTLE_S`] of content after
//! connecting: the probe's backlog); later it may creep up by [`DRIFT`] (a camera clock slower than
//! ours) and a packet that would land earlier than that allows is taken as a timestamp jump
//! (re-anchored on its arrival), never as a reason to move every later time.

use crate::timeline::TimeBase;

/// A timestamp step longer than this (or a backward one) is a jump, not time passing.
pub const MAX_STEP_S: f64 = 5.0;
/// How long after connecting (content time) the offset may move earlier: probing reads up to a few
/// seconds of packets before the first one is handed over.
pub const SETTLE_S: f64 = 15.0;
/// How fast the offset may move later: a camera clock up to 0.1 % slower than ours.
pub const DRIFT: f64 = 1e-3;
/// An arrival this much earlier than the offset predicts, after settling, is a timestamp jump.
const JUMP_TOLERANCE_NS: i64 = 50_000_000;

/// Content and capture time of one packet or frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// The stream's own time, ns, increasing.
    pub content_ns: u64,
    /// When it was filmed (monotonic ns) as known at arrival; never after its arrival.
    pub capture_ns: u64,
}

/// One stream's clock (one connection: a reconnect starts a new one).
#[derive(Debug, Clone)]
pub struct StreamClock {
    time_base: TimeBase,
    /// The previous timestamp (ticks) and its content time.
    last: Option<(Option<i64>, u64)>,
    /// Content time of the first packet.
    first_content_ns: u64,
    /// `capture - content`, ns: the smallest `arrival - content` seen (with drift allowed).
    offset_ns: i64,
    /// The last few timestamp steps that were time passing; their median is the frame duration
    /// the parser holds each packet for (a gap in the stream is not a frame duration).
    steps: [u64; STEPS],
    n_steps: usize,
}

/// How many recent timestamp steps the frame duration is the median of.
const STEPS: usize = 5;

impl StreamClock {
    /// A clock for timestamps in `time_base`.
    pub fn new(time_base: TimeBase) -> Self {
        StreamClock {
            time_base,
            last: None,
            first_content_ns: 0,
            offset_ns: 0,
            steps: [0; STEPS],
            n_steps: 0,
        }
    }

    /// The frame duration: the median of the recent timestamp steps (0 until there is one).
    fn frame_ns(&self) -> u64 {
        let n = self.n_steps.min(STEPS);
        if n == 0 {
            return 0;
        }
        let mut recent = self.steps;
        let recent = &mut recent[..n];
        recent.sort_unstable();
        recent[(n - 1) / 2]
    }

    /// Stamps a packet (pass its DTS, or PTS when it has none) or a decoded frame (its PTS) that
    /// arrived at `arrival_ns`.
    pub fn stamp(&mut self, ts: Option<i64>, arrival_ns: u64) -> Stamp {
        let Some((last_ts, last_content)) = self.last else {
            *self = StreamClock::new(self.time_base);
            self.last = Some((ts, arrival_ns));
            self.first_content_ns = arrival_ns;
            return Stamp {
                content_ns: arrival_ns,
                capture_ns: arrival_ns,
            };
        };
        // The parser's one-frame hold: this packet's first bytes came a frame duration earlier.
        let arrival_ns = arrival_ns.saturating_sub(self.frame_ns());
        let by_arrival = || {
            let capture_now = i128::from(last_content) + i128::from(self.offset_ns);
            // The arrival clock's step since the previous packet's (estimated) capture.
            (i128::from(arrival_ns) - capture_now).max(0) as u64
        };
        let from_ts = match (last_ts, ts) {
            (Some(a), Some(b)) => {
                let ns = self.ticks_to_ns(i128::from(b) - i128::from(a));
                (0..=(MAX_STEP_S * 1e9) as i128)
                    .contains(&ns)
                    .then_some(ns as u64)
            }
            _ => None,
        };
        let step = from_ts.unwrap_or_else(by_arrival);
        let mut content = last_content.saturating_add(step);
        let settling = (content - self.first_content_ns) as f64 / 1e9 < SETTLE_S;
        let seen = arrival_ns as i64 - content as i64;
        let allowed_up = self.offset_ns + (step as f64 * DRIFT) as i64;
        if seen < self.offset_ns {
            if settling {
                // Earlier packets arrived late (the probe's backlog): they will be back-dated.
                self.offset_ns = seen;
            } else if seen < self.offset_ns - JUMP_TOLERANCE_NS {
                // The timestamps jumped forward: keep the offset, move this packet's content time.
                content = (arrival_ns as i64 - self.offset_ns).max(last_content as i64) as u64;
                self.last = Some((ts, content));
                return Stamp {
                    content_ns: content,
                    capture_ns: self.capture_of(content).min(arrival_ns),
                };
            } else {
                self.offset_ns = seen;
            }
        } else {
            self.offset_ns = allowed_up.min(seen);
        }
        self.last = Some((ts, content));
        if let Some(f) = from_ts.filter(|&f| f > 0) {
            self.steps[self.n_steps % STEPS] = f;
            self.n_steps += 1;
        }
        Stamp {
            content_ns: content,
            capture_ns: self.capture_of(content).min(arrival_ns),
        }
    }

    /// The capture time (monotonic ns) of content time `content_ns`, as best known now: packets
    /// stamped before the stream settled are back-dated once the live ones show how late they came.
    pub fn capture_of(&self, content_ns: u64) -> u64 {
        (content_ns as i64 + self.offset_ns).max(0) as u64
    }

    /// The content time of capture time `capture_ns` (the inverse of [`StreamClock::capture_of`]):
    /// where a moment seen by another stream of the camera falls on this one's line.
    pub fn content_of(&self, capture_ns: u64) -> u64 {
        (capture_ns as i64 - self.offset_ns).max(0) as u64
    }

    fn ticks_to_ns(&self, ticks: i128) -> i128 {
        ticks * i128::from(self.time_base.num) * 1_000_000_000
            / i128::from(self.time_base.den.max(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TB: TimeBase = TimeBase {
        num: 1,
        den: 90_000,
    };
    const MS: u64 = 1_000_000;

    /// Ticks of 90 kHz for `ms` milliseconds.
    fn ticks(ms: u64) -> i64 {
        (ms * 90) as i64
    }

    #[test]
    fn live_packets_were_filmed_a_frame_before_the_parser_hands_them_over() {
        // 25 fps: FFmpeg returns frame i when frame i + 1 begins to arrive.
        let mut c = StreamClock::new(TB);
        let filmed = |i: u64| 1_000 * MS + i * 40 * MS;
        let mut stamps = Vec::new();
        for i in 0..100u64 {
            let s = c.stamp(Some(ticks(i * 40)), filmed(i) + 40 * MS);
            // Known at arrival from the third frame on (the frame duration takes two).
            if i > 1 {
                assert_eq!(s.capture_ns, filmed(i), "{i}");
            }
            stamps.push(s);
        }
        for (i, s) in stamps.iter().enumerate() {
            assert_eq!(c.capture_of(s.content_ns), filmed(i as u64), "{i}");
        }
    }

    #[test]
    fn the_probe_backlog_is_back_dated_by_its_timestamp_distance() {
        // 30 frames (1 s at 30 fps) read while probing are handed over in 3 ms, then live frames
        // follow every 33 ms: frame k was filmed at t0 + k * 33 ms.
        let t0 = 5_000 * MS;
        let probe_end = t0 + 1_000 * MS;
        let mut c = StreamClock::new(TB);
        let mut stamps = Vec::new();
        for k in 0..30u64 {
            stamps.push(c.stamp(Some(ticks(k * 100 / 3)), probe_end + k * MS / 10));
        }
        for k in 30..60u64 {
            let filmed = t0 + k * 100 * MS / 3;
            // Handed over when the next frame begins (33 ms), plus 2 ms of network.
            stamps.push(c.stamp(Some(ticks(k * 100 / 3)), filmed + 35 * MS));
        }
        // Content time keeps the filmed spacing through the burst.
        for (k, s) in stamps.iter().enumerate().skip(1) {
            let step = s.content_ns - stamps[k - 1].content_ns;
            assert!((33 * MS..=34 * MS).contains(&step), "step {k}: {step}");
        }
        // Once live frames came, every frame's capture time is its filming time (to network delay).
        for (k, s) in stamps.iter().enumerate() {
            let filmed = t0 + k as u64 * 100 * MS / 3;
            let got = c.capture_of(s.content_ns);
            assert!(
                got.abs_diff(filmed) <= 3 * MS,
                "frame {k}: {got} vs filmed {filmed}"
            );
        }
        // At arrival, a backlog frame could not know yet: never later than its arrival.
        assert!(stamps[0].capture_ns <= probe_end);
    }

    #[test]
    fn jitter_does_not_move_capture_times_later() {
        // Each frame is handed over 66 ms (a frame) plus 0-200 ms of network jitter after it was
        // filmed; the least-delayed ones set the offset, the others are back-dated to it.
        let mut c = StreamClock::new(TB);
        let jitter = [0u64, 30, 5, 80, 0, 12, 200, 1, 0, 45];
        let mut stamps = Vec::new();
        for i in 0..500u64 {
            let filmed = 100 * MS + i * 66 * MS;
            let s = c.stamp(
                Some(ticks(i * 66)),
                filmed + (66 + jitter[i as usize % 10]) * MS,
            );
            assert!(
                i < 10 || s.capture_ns.abs_diff(filmed) <= MS,
                "{i}: {} vs {filmed}",
                s.capture_ns
            );
            stamps.push((filmed, s));
        }
        for (i, (filmed, s)) in stamps.into_iter().enumerate() {
            let got = c.capture_of(s.content_ns);
            assert!(got.abs_diff(filmed) <= MS, "{i}: {got} vs {filmed}");
        }
    }

    #[test]
    fn missing_and_jumping_timestamps_follow_the_arrival_clock() {
        // Frames 40 ms apart, each handed over 40 ms after it was filmed; `filmed` in ms.
        let mut c = StreamClock::new(TB);
        let mut last = 0;
        let table: [(Option<i64>, u64); 9] = [
            (Some(0), 0),
            (Some(ticks(40)), 40),
            (Some(ticks(80)), 80),
            (None, 120),                   // no timestamp: arrival step
            (Some(ticks(160)), 160),       // back on the stream's clock
            (Some(ticks(40)), 200),        // backwards: arrival step
            (Some(ticks(80)), 240),        // +40 ms of stream time again
            (Some(ticks(3_600_000)), 280), // an hour forward: arrival step
            (Some(ticks(3_600_040)), 320),
        ];
        for (i, (ts, filmed_ms)) in table.into_iter().enumerate() {
            let s = c.stamp(ts, 1_040 * MS + filmed_ms * MS);
            assert!(i == 0 || s.content_ns > last, "{i}: content went back");
            last = s.content_ns;
            // From the third packet on, the frame duration (the parser's hold) is known.
            if i > 1 {
                assert_eq!(s.capture_ns, 1_000 * MS + filmed_ms * MS, "{i}");
            }
        }
    }

    #[test]
    fn after_settling_a_forward_timestamp_jump_moves_nothing_else() {
        let mut c = StreamClock::new(TB);
        let frame = |i: u64| 1_000 * MS + i * 40 * MS;
        for i in 0..500 {
            c.stamp(Some(ticks(i * 40)), frame(i + 1));
        }
        // The stream's clock jumps 300 ms ahead (an RTCP resync) at frame 500.
        for i in 500..600u64 {
            let s = c.stamp(Some(ticks(i * 40 + 300)), frame(i + 1));
            assert_eq!(s.capture_ns, frame(i), "{i}");
        }
        let last = c.stamp(Some(ticks(600 * 40 + 300)), frame(601));
        assert_eq!(c.capture_of(last.content_ns), frame(600));
    }

    #[test]
    fn a_stall_and_a_skip_ahead_while_settling_do_not_move_the_offset() {
        // 30 fps. Two seconds in, the camera stalls for 3.7 s: the frame it was sending arrives
        // late, then it skips ahead to the live position (a timestamp step of 3.73 s, under
        // MAX_STEP_S, so taken as time passing). Neither is a frame duration, and neither makes
        // the frames before or after look filmed earlier than they were.
        let mut c = StreamClock::new(TB);
        let frame = 100 * MS / 3;
        let mut stamps = Vec::new();
        for k in 0..60u64 {
            let filmed = 1_000 * MS + k * frame;
            stamps.push((filmed, c.stamp(Some(ticks(k * 100 / 3)), filmed + frame)));
        }
        // The stalled frame 60, then frames 172.. (3.73 s later), each handed over a frame later.
        let late = 1_000 * MS + 60 * frame + 3_700 * MS;
        stamps.push((1_000 * MS + 60 * frame, c.stamp(Some(ticks(2_000)), late)));
        for k in 172..260u64 {
            let filmed = 1_000 * MS + k * frame;
            stamps.push((filmed, c.stamp(Some(ticks(k * 100 / 3)), filmed + frame)));
        }
        for (i, (filmed, s)) in stamps.iter().enumerate() {
            let got = c.capture_of(s.content_ns);
            assert!(
                got.abs_diff(*filmed) <= 2 * MS,
                "{i}: {got} vs filmed {filmed}"
            );
        }
    }

    #[test]
    fn a_slow_camera_clock_is_followed() {
        // The camera's clock runs 0.05 % slow: after an hour its timestamps are 1.8 s behind.
        let mut c = StreamClock::new(TB);
        for i in 0..90_000u64 {
            let filmed = i * 40 * MS;
            let ts = (i as f64 * 40.0 * 90.0 * (1.0 - 5e-4)) as i64;
            let s = c.stamp(Some(ts), filmed + 40 * MS);
            assert!(
                i < 2 || s.capture_ns.abs_diff(filmed) <= 5 * MS,
                "{i}: {}",
                s.capture_ns
            );
        }
    }
}
