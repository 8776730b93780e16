//! The pre-roll buffer: the last few seconds of MAIN packets, always starting at a keyframe, so a
//! recording can begin before the motion that triggered it. Generic over the packet type and pure
//! (times are inputs), so it is tested with tables.

use std::collections::VecDeque;

#[derive(Debug)]
pub struct PreRoll<P> {
    /// `(arrival_ns, keyframe, packet)`, oldest first; the front is always a keyframe.
    packets: VecDeque<(u64, bool, P)>,
    /// How far back from the newest packet the buffer must reach.
    keep_ns: u64,
    /// Keyframes in the buffer as `(position counted from the front, arrival_ns)`, oldest first, so
    /// trimming never scans packets; `dropped` turns a position into an index.
    keys: VecDeque<(u64, u64)>,
    /// Packets trimmed from the front since the last [`PreRoll::clear`].
    dropped: u64,
}

impl<P> PreRoll<P> {
    /// A buffer that always covers at least `keep_ns` before its newest packet (once it has been
    /// filling that long), from a keyframe.
    pub fn new(keep_ns: u64) -> Self {
        PreRoll {
            packets: VecDeque::new(),
            keep_ns,
            keys: VecDeque::new(),
            dropped: 0,
        }
    }

    /// Adds a packet. Packets before the first keyframe are dropped (nothing could
    /// decode them); whole GOPs fall off the front once the next GOP alone covers `keep_ns`.
    pub fn push(&mut self, arrival_ns: u64, key: bool, packet: P) {
        if self.packets.is_empty() && !key {
            return;
        }
        if key {
            self.keys
                .push_back((self.dropped + self.packets.len() as u64, arrival_ns));
        }
        self.packets.push_back((arrival_ns, key, packet));
        let horizon = arrival_ns.saturating_sub(self.keep_ns);
        // The second keyframe from the front: if it is old enough, the first GOP is not needed.
        while let Some(&(position, at)) = self.keys.get(1) {
            if at > horizon {
                break;
            }
            self.packets.drain(..(position - self.dropped) as usize);
            self.dropped = position;
            self.keys.pop_front();
        }
    }

    /// Whether the buffer holds a keyframe (it then starts with one).
    pub fn has_keyframe(&self) -> bool {
        !self.packets.is_empty()
    }

    /// Seconds of video held, from the first packet to the newest.
    pub fn span_ns(&self) -> u64 {
        match (self.packets.front(), self.packets.back()) {
            (Some(a), Some(b)) => b.0.saturating_sub(a.0),
            _ => 0,
        }
    }

    /// The packets from the newest keyframe that arrived at or before `from_ns` (or from the first
    /// keyframe, if none is that old) to the newest, with their arrival times.
    pub fn since(&self, from_ns: u64) -> impl Iterator<Item = (u64, &P)> {
        let start = self
            .packets
            .iter()
            .rposition(|p| p.1 && p.0 <= from_ns)
            .unwrap_or(0);
        self.packets.range(start..).map(|p| (p.0, &p.2))
    }

    /// The newest packet and its arrival time.
    pub fn newest(&self) -> Option<(u64, &P)> {
        self.packets.back().map(|p| (p.0, &p.2))
    }

    /// Forgets everything (a new connection: old packets belong to another timeline).
    pub fn clear(&mut self) {
        self.packets.clear();
        self.keys.clear();
        self.dropped = 0;
    }

    pub fn len(&self) -> usize {
        self.packets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.packets.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    /// Ten packets per second, a keyframe every `gop_s` seconds, for `secs` seconds; packet = its
    /// index.
    fn filled(keep_s: u64, gop_s: u64, secs: u64) -> PreRoll<u64> {
        let mut b = PreRoll::new(keep_s * S);
        for i in 0..secs * 10 {
            b.push(i * S / 10, i % (gop_s * 10) == 0, i);
        }
        b
    }

    #[test]
    fn always_starts_at_a_keyframe_and_covers_the_pre_roll() {
        for (keep_s, gop_s, secs) in [(5, 2, 30), (5, 1, 30), (5, 5, 30), (3, 2, 2), (5, 4, 61)] {
            let b = filled(keep_s, gop_s, secs);
            let first = *b.since(0).next().unwrap().1;
            assert_eq!(
                first % (gop_s * 10),
                0,
                "{keep_s} {gop_s} {secs}: starts at a keyframe"
            );
            let newest = secs * 10 - 1;
            let covered = (newest - first) as f64 / 10.0;
            let want = (keep_s as f64).min(newest as f64 / 10.0);
            assert!(
                covered >= want,
                "{keep_s} {gop_s} {secs}: {covered} s < {want} s"
            );
            assert!(
                covered < want + gop_s as f64 + 0.1,
                "{keep_s} {gop_s} {secs}: holds {covered} s, more than a GOP extra"
            );
        }
    }

    #[test]
    fn packets_before_the_first_keyframe_are_dropped() {
        let mut b = PreRoll::new(5 * S);
        b.push(0, false, 0);
        b.push(1, false, 1);
        assert!(!b.has_keyframe());
        b.push(2, true, 2);
        assert!(b.has_keyframe());
        assert_eq!(b.since(0).map(|p| *p.1).collect::<Vec<_>>(), vec![2]);
    }

    #[test]
    fn since_picks_the_keyframe_at_or_before_the_time() {
        // 30 s, GOP 2 s, keep 10 s: the newest packet is at 29.9 s, so the buffer must reach back
        // to 19.9 s: it holds 18..30 s (keyframes at 18, 20, ... 28).
        let b = filled(10, 2, 30);
        let first = |from_s: f64| *b.since((from_s * S as f64) as u64).next().unwrap().1;
        assert_eq!(first(25.0), 240, "keyframe at 24 s");
        assert_eq!(first(24.0), 240);
        assert_eq!(first(23.9), 220);
        assert_eq!(first(3.0), 180, "older than the buffer: its first keyframe");
        assert_eq!(first(99.0), 280, "newest keyframe");
        assert_eq!(b.since(24 * S).count(), 60);
    }
}
