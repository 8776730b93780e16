//! A deterministic frame pattern for tests and benchmarks: [`fill`] writes frame `seq`'s pattern,
//! [`verify`] says whether a frame is exactly that pattern, so a torn or mixed frame that slipped
//! through the seqlock would be caught.
//!
//! Each row of each plane starts with `seq` (8 bytes, little-endian, if the row is that wide) and
//! continues with one byte value that depends on `seq`, the plane and the row.

use crate::frame::{FrameView, PlaneMut};

/// The byte value of row `row` of plane `plane_idx` of frame `seq`.
fn value(seq: u64, plane_idx: usize, row: usize) -> u8 {
    (seq.wrapping_mul(31) as usize)
        .wrapping_add(row.wrapping_mul(7))
        .wrapping_add(plane_idx * 85) as u8
}

/// Writes frame `seq`'s pattern into the planes of a slot.
pub fn fill(seq: u64, planes: &mut [PlaneMut<'_>; 3]) {
    for (plane_idx, p) in planes.iter_mut().enumerate() {
        for row in 0..p.rows {
            let bytes = &mut p.data[row * p.stride..row * p.stride + p.width_bytes];
            let head = bytes.len().min(8);
            bytes[..head].copy_from_slice(&seq.to_le_bytes()[..head]);
            bytes[head..].fill(value(seq, plane_idx, row));
        }
    }
}

/// The seq a frame's pattern claims (from the first Y row), if the row is wide enough to say.
pub fn claimed_seq(frame: &FrameView<'_>) -> Option<u64> {
    let (y, _) = frame.y();
    Some(u64::from_le_bytes(y.get(..8)?.try_into().ok()?))
}

/// Whether every meaningful byte of `frame` is frame `seq`'s pattern.
pub fn verify(seq: u64, frame: &FrameView<'_>) -> bool {
    frame.planes().iter().enumerate().all(|(plane_idx, p)| {
        (0..p.rows).all(|row| {
            let bytes = &p.data[row * p.stride..row * p.stride + p.width_bytes];
            let head = bytes.len().min(8);
            let v = value(seq, plane_idx, row);
            bytes[..head] == seq.to_le_bytes()[..head] && bytes[head..].iter().all(|&b| b == v)
        })
    })
}

/// Length of packet `seq`'s pattern for a ring that takes packets up to `max_len` bytes: varies
/// from 9 bytes to `max_len`, so packets wrap around the byte ring at every offset.
pub fn packet_len(seq: u64, max_len: usize) -> usize {
    let span = max_len.saturating_sub(9).max(1) as u64;
    9 + (seq.wrapping_mul(2_654_435_761) % span) as usize
}

/// Packet `seq`'s payload: `seq` (8 bytes, little-endian), then bytes that depend on `seq` and
/// their position.
pub fn packet(seq: u64, max_len: usize) -> Vec<u8> {
    let len = packet_len(seq, max_len);
    let mut out = Vec::with_capacity(len);
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend((8..len).map(|i| packet_byte(seq, i)));
    out
}

fn packet_byte(seq: u64, i: usize) -> u8 {
    (seq.wrapping_mul(131) as usize).wrapping_add(i.wrapping_mul(7)) as u8
}

/// Whether `data` is exactly packet `seq`'s pattern (any length).
pub fn verify_packet(seq: u64, data: &[u8]) -> bool {
    data.len() >= 8
        && data[..8] == seq.to_le_bytes()
        && data[8..]
            .iter()
            .enumerate()
            .all(|(i, &b)| b == packet_byte(seq, i + 8))
}
