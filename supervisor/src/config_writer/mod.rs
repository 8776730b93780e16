//! The one writer of the config file: validated, atomic edits of `cameras.json` for the web UI.
//!
//! The file stays the single truth: an edit is made to the file's own document ([`doc`]: key order
//! and `_comment` keys kept), checked by the start-up validator ([`edit`]), and written only if it
//! changes a byte. A write is crash-safe: the new text goes to `<file>.tmp` (fsynced), the old one
//! to `<file>.bak` (fsynced, renamed into place), then the temporary file is renamed over the file
//! and the directory fsynced, so after a crash at any point the file is the old one or the new one,
//! never a mix. A file that holds a secret is written with mode 0600.
//!
//! [`etag`] names a version of the file; the API refuses an edit made to another version (409).

pub mod doc;
pub mod edit;

use doc::Doc;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Test-only fault switch: milliseconds to wait after the new text is written and fsynced to the
/// temporary file and before it is renamed over the config (so a test can kill the process there).
pub const PAUSE_ENV: &str = "NVR_TEST_CONFIG_WRITE_PAUSE_MS";

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} is not valid JSON ({source}); fix it by hand first")]
    Parse {
        path: String,
        source: serde_json::Error,
    },
    #[error("cannot write {path}: {source}; the config is unchanged (check that the service may write its directory)")]
    Write {
        path: String,
        source: std::io::Error,
    },
}

/// The config file as read: its text, document and version.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub text: String,
    pub doc: Doc,
    pub etag: String,
}

/// A version tag of the file's bytes: a quoted hex BLAKE2b-128 digest.
pub fn etag(bytes: &[u8]) -> String {
    use blake2::digest::{Update, VariableOutput};
    let mut hasher = blake2::Blake2bVar::new(16).expect("16 bytes is a valid BLAKE2b size");
    hasher.update(bytes);
    let mut out = [0u8; 16];
    hasher
        .finalize_variable(&mut out)
        .expect("the buffer has the chosen size");
    let hex: String = out.iter().map(|b| format!("{b:02x}")).collect();
    format!("\"{hex}\"")
}

pub fn read(path: &Path) -> Result<Loaded, WriteError> {
    let text = std::fs::read_to_string(path).map_err(|source| WriteError::Read {
        path: path.display().to_string(),
        source,
    })?;
    let doc = Doc::parse(&text).map_err(|source| WriteError::Parse {
        path: path.display().to_string(),
        source,
    })?;
    Ok(Loaded {
        etag: etag(text.as_bytes()),
        text,
        doc,
    })
}

/// Whether a document holds a secret (a password, a password hash, a token) in the file itself.
pub fn holds_secret(doc: &Doc) -> bool {
    match doc {
        Doc::Object(o) => o.iter().any(|(k, v)| {
            (edit::is_secret_key(k) && matches!(v, Doc::String(s) if !s.is_empty()))
                || holds_secret(v)
        }),
        Doc::Array(a) => a.iter().any(holds_secret),
        _ => false,
    }
}

fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(suffix);
    path.with_file_name(name)
}

/// The backup of the previous version: `<file>.bak`.
pub fn backup_path(path: &Path) -> PathBuf {
    sibling(path, ".bak")
}

/// Writes `new` over the file `old` was read from, crash-safe (see the module's words); returns
/// `false` without touching anything when the text would not change.
pub fn write(path: &Path, old: &Loaded, new: &Doc) -> Result<bool, WriteError> {
    let text = new.print();
    if text == old.text {
        return Ok(false);
    }
    let fail = |source| WriteError::Write {
        path: path.display().to_string(),
        source,
    };
    let old_mode = std::fs::metadata(path)
        .map(|m| m.permissions().mode() & 0o777)
        .unwrap_or(0o600);
    let mode = if holds_secret(new) { 0o600 } else { old_mode };
    // The backup first: the previous version, with the previous mode (it may hold a secret too).
    let backup_mode = if holds_secret(&old.doc) {
        0o600
    } else {
        old_mode
    };
    let backup = backup_path(path);
    write_synced(&sibling(path, ".bak.tmp"), &old.text, backup_mode).map_err(fail)?;
    std::fs::rename(sibling(path, ".bak.tmp"), &backup).map_err(fail)?;
    let tmp = sibling(path, ".tmp");
    write_synced(&tmp, &text, mode).map_err(fail)?;
    if let Some(ms) = std::env::var(PAUSE_ENV)
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        std::thread::sleep(std::time::Duration::from_millis(ms));
    }
    std::fs::rename(&tmp, path).map_err(fail)?;
    sync_dir(path).map_err(fail)?;
    Ok(true)
}

/// Creates (or truncates) `path` with `mode`, writes `text` and fsyncs it.
fn write_synced(path: &Path, text: &str, mode: u32) -> std::io::Result<()> {
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    // A file that existed keeps its mode through `open`: set it either way.
    f.set_permissions(std::fs::Permissions::from_mode(mode))?;
    f.write_all(text.as_bytes())?;
    f.sync_all()
}

fn sync_dir(path: &Path) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(label: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("nvr-config-writer-{label}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_write_keeps_a_backup_and_sets_the_mode_a_secret_needs() {
        let dir = temp_dir("write");
        let path = dir.join("cameras.json");
        let first = "{\n  \"cameras\": []\n}\n";
        std::fs::write(&path, first).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let old = read(&path).unwrap();
        // The same text: nothing is written, not even a backup.
        assert!(!write(&path, &old, &old.doc).unwrap());
        assert!(!backup_path(&path).exists());
        let new =
            Doc::parse(r#"{"cameras": [{"id": "a", "main_url": "rtsp://h/", "password": "pw"}]}"#)
                .unwrap();
        assert!(write(&path, &old, &new).unwrap());
        let written = read(&path).unwrap();
        assert_eq!(written.doc, new);
        assert_ne!(written.etag, old.etag);
        assert_eq!(std::fs::read_to_string(backup_path(&path)).unwrap(), first);
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600, "a file with a password is private");
        assert_eq!(mode(&backup_path(&path)), 0o644);
        assert!(!sibling(&path, ".tmp").exists());
        // The backup of a file with a password is private too.
        let without = Doc::parse(r#"{"cameras": []}"#).unwrap();
        assert!(write(&path, &written, &without).unwrap());
        assert_eq!(mode(&backup_path(&path)), 0o600);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn etags_name_the_bytes() {
        assert_eq!(etag(b"a"), etag(b"a"));
        assert_ne!(etag(b"a"), etag(b"b"));
        assert_eq!(etag(b"").len(), 34);
    }
}
