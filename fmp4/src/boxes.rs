//! Writing ISO BMFF boxes into a byte vector: a box is its 32-bit size, its four-character type,
//! then its body; the size is patched in when the body is written.

/// Appends a box of type `fourcc` whose body `body` writes, and returns where it starts.
pub(crate) fn write_box(
    out: &mut Vec<u8>,
    fourcc: &[u8; 4],
    body: impl FnOnce(&mut Vec<u8>),
) -> usize {
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(fourcc);
    body(out);
    patch_size(out, start);
    start
}

/// A full box: a box whose body starts with a version byte and 24 bits of flags.
pub(crate) fn write_full_box(
    out: &mut Vec<u8>,
    fourcc: &[u8; 4],
    version: u8,
    flags: u32,
    body: impl FnOnce(&mut Vec<u8>),
) -> usize {
    write_box(out, fourcc, |out| {
        out.push(version);
        out.extend_from_slice(&flags.to_be_bytes()[1..]);
        body(out);
    })
}

fn patch_size(out: &mut [u8], start: usize) {
    // Boxes written here hold parameter sets and at most one fragment's samples; the fragmenter
    // checks the total against u32 before writing, so this conversion cannot saturate there.
    let size = u32::try_from(out.len() - start).unwrap_or(u32::MAX);
    out[start..start + 4].copy_from_slice(&size.to_be_bytes());
}

pub(crate) fn u8(out: &mut Vec<u8>, v: u8) {
    out.push(v);
}

pub(crate) fn u16(out: &mut Vec<u8>, v: u16) {
    out.extend_from_slice(&v.to_be_bytes());
}

pub(crate) fn u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_be_bytes());
}

pub(crate) fn u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_be_bytes());
}

pub(crate) fn zeros(out: &mut Vec<u8>, n: usize) {
    out.resize(out.len() + n, 0);
}

/// The identity transformation matrix of `mvhd` and `tkhd`.
pub(crate) fn unity_matrix(out: &mut Vec<u8>) {
    for v in [0x0001_0000, 0, 0, 0, 0x0001_0000, 0, 0, 0, 0x4000_0000u32] {
        u32(out, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_boxes_get_their_sizes() {
        let mut out = vec![0xAA];
        let start = write_box(&mut out, b"moov", |out| {
            write_full_box(out, b"mvhd", 1, 0x0a0b0c, |out| u16(out, 7));
            write_box(out, b"free", |_| {});
        });
        assert_eq!(start, 1);
        assert_eq!(
            &out[1..],
            &[
                0, 0, 0, 30, b'm', b'o', b'o', b'v', // moov: 8 + 14 + 8
                0, 0, 0, 14, b'm', b'v', b'h', b'd', 1, 0x0a, 0x0b, 0x0c, 0, 7, // mvhd
                0, 0, 0, 8, b'f', b'r', b'e', b'e',
            ]
        );
    }
}
