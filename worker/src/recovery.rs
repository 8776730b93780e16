//! Salvaging a fragmented MP4 cut short: cutting a torn last fragment off, counting the video that
//! plays, and finishing the `.part` files a crashed worker left (decisions 12 and 24). A clip whose
//! write failed is salvaged the same way when it is closed.

use crate::mp4::{seal, Finished};
use ffmpeg_next as ffmpeg;
use ffmpeg_next::{format, media, Packet};
use nvr_config::layout::PART_SUFFIX;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use tracing::warn;

/// A `.part` file found at start-up: what became of it.
#[derive(Debug)]
pub enum Recovered {
    /// It held video: renamed to its final name.
    Finished(Finished),
    /// It held nothing playable: renamed to `<name>.mp4.broken` so it is not retried.
    Broken { path: PathBuf, why: String },
}

/// Finishes the `.part` files a crashed worker left under `dir` (a camera's output directory):
/// each is checked by reading it with FFmpeg; one that holds video is renamed to its final name.
pub fn recover_parts(dir: &Path) -> Vec<Recovered> {
    let mut found = Vec::new();
    let days = std::fs::read_dir(dir).into_iter().flatten().flatten();
    for day in days.filter(|d| d.path().is_dir()) {
        for entry in std::fs::read_dir(day.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            let part = entry.path();
            if part.to_string_lossy().ends_with(PART_SUFFIX) {
                found.push(recover(&part));
            }
        }
    }
    found
}

fn recover(part: &Path) -> Recovered {
    let s = part.to_string_lossy();
    let path = PathBuf::from(&s[..s.len() - PART_SUFFIX.len()]);
    match trim_torn_tail(part) {
        Ok(0) => {}
        Ok(cut) => warn!(path = %part.display(), bytes = cut, "cut off a torn last fragment"),
        Err(e) => warn!(path = %part.display(), error = %e, "could not check the last fragment"),
    }
    match probe(part) {
        Ok((frames, duration_s)) if frames > 0 => match seal(part, &path) {
            Ok(bytes) => Recovered::Finished(Finished {
                path,
                duration_s,
                bytes,
                frames,
            }),
            Err(e) => Recovered::Broken {
                path: part.to_path_buf(),
                why: e.to_string(),
            },
        },
        result => {
            let why = match result {
                Ok(_) => "no video frames".to_string(),
                Err(e) => e.to_string(),
            };
            let broken = PathBuf::from(format!("{}.broken", path.display()));
            let _ = std::fs::rename(part, &broken);
            Recovered::Broken { path: broken, why }
        }
    }
}

/// Cuts a fragmented MP4 back to its last whole fragment; returns the bytes cut off. The muxer
/// appends `moof`+`mdat` pairs, so a crash mid-write leaves a torn last box (or a `moof` without its
/// `mdat`), which players report as a corrupt packet. Walks the top-level boxes only.
pub(crate) fn trim_torn_tail(path: &Path) -> std::io::Result<u64> {
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)?;
    let len = f.metadata()?.len();
    let (mut pos, mut whole) = (0u64, 0u64);
    let mut head = [0u8; 16];
    while pos + 8 <= len {
        f.seek(SeekFrom::Start(pos))?;
        f.read_exact(&mut head[..8])?;
        let mut size = u64::from(u32::from_be_bytes([head[0], head[1], head[2], head[3]]));
        if size == 1 {
            // A 64-bit size follows the type.
            if pos + 16 > len {
                break;
            }
            f.read_exact(&mut head[8..])?;
            size = u64::from_be_bytes(head[8..].try_into().expect("8 bytes"));
        } else if size == 0 {
            size = len - pos; // "to the end of the file"
        }
        if size < 8 || pos + size > len {
            break;
        }
        pos += size;
        // A `moof` counts only together with the `mdat` after it.
        if &head[4..8] != b"moof" {
            whole = pos;
        }
    }
    if whole < len {
        f.set_len(whole)?;
        f.sync_all()?;
    }
    Ok(len - whole)
}

/// Counts the video packets of a file and the seconds they span.
pub(crate) fn probe(path: &Path) -> Result<(u64, f64), ffmpeg::Error> {
    let mut input = format::input(path)?;
    let video = input
        .streams()
        .best(media::Type::Video)
        .ok_or(ffmpeg::Error::StreamNotFound)?;
    let (index, tb) = (video.index(), video.time_base());
    let (mut frames, mut first, mut last) = (0u64, None, 0i64);
    loop {
        // A new packet each time: `av_read_frame` does not release what a reused one held.
        let mut packet = Packet::empty();
        if packet.read(&mut input).is_err() {
            break;
        }
        if packet.stream() == index {
            frames += 1;
            if let Some(t) = packet.pts() {
                first.get_or_insert(t);
                last = last.max(t);
            }
        }
    }
    let ticks = last - first.unwrap_or(0);
    Ok((
        frames,
        ticks as f64 * f64::from(tb.numerator()) / f64::from(tb.denominator().max(1)),
    ))
}

#[cfg(test)]
mod tests {
    use super::trim_torn_tail;

    fn boxed(kind: &[u8; 4], body: usize) -> Vec<u8> {
        let mut b = ((body + 8) as u32).to_be_bytes().to_vec();
        b.extend_from_slice(kind);
        b.resize(body + 8, 0xab);
        b
    }

    #[test]
    fn a_torn_last_fragment_is_cut_off_and_whole_ones_are_kept() {
        let dir = std::env::temp_dir().join(format!("nvr-trim-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("clip.mp4.part");
        let whole: Vec<u8> = [
            boxed(b"ftyp", 16),
            boxed(b"moov", 40),
            boxed(b"moof", 24),
            boxed(b"mdat", 100),
        ]
        .concat();
        let cases = [
            // (what follows the whole part, bytes that must be cut)
            (Vec::new(), 0),
            (boxed(b"moof", 24), 32), // moof without its mdat
            (
                [boxed(b"moof", 24), boxed(b"mdat", 100)[..50].to_vec()].concat(),
                82,
            ), // torn mdat
            (boxed(b"moof", 24)[..5].to_vec(), 5), // torn box header
        ];
        for (tail, cut) in cases {
            std::fs::write(&path, [whole.clone(), tail.clone()].concat()).unwrap();
            assert_eq!(
                trim_torn_tail(&path).unwrap(),
                cut as u64,
                "tail of {}",
                tail.len()
            );
            assert_eq!(std::fs::read(&path).unwrap(), whole);
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
