//! Reading a file the user names (image.toml, a var-file, a worker config, clouds.yaml,
//! a record): a regular file only, since a FIFO would block for ever and a device such as
//! /dev/zero would never end; at most a size cap; UTF-8, with a leading BOM skipped.
//! The errors are `io::Error`s, so each caller names the file in its own error type.

use std::fs::{File, FileType, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

/// Cap of the hand-written config files: a thousand times what a real one holds.
pub const CONFIG_CAP: u64 = 1 << 20;
/// Cap of records and manifests, which list every file of a definition (20,000 files
/// make a few megabytes).
pub const RECORD_CAP: u64 = 64 << 20;

/// The text of `path`, when it is a regular file of at most `cap` bytes.
pub fn read_text(path: &Path, cap: u64) -> io::Result<String> {
    let bytes = read_bytes(path, cap)?;
    let text = String::from_utf8(bytes).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "not UTF-8 text (invalid byte at offset {}): save it as UTF-8",
                e.utf8_error().valid_up_to()
            ),
        )
    })?;
    Ok(match text.strip_prefix('\u{feff}') {
        Some(rest) => rest.to_string(),
        None => text,
    })
}

/// The bytes of `path`, when it is a regular file of at most `cap` bytes.
pub fn read_bytes(path: &Path, cap: u64) -> io::Result<Vec<u8>> {
    let file = open_regular(path)?;
    let len = file.metadata()?.len();
    if len > cap {
        return Err(too_big(cap));
    }
    let mut bytes = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
    // The file may grow after the stat: read one byte past the cap to notice.
    file.take(cap + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > cap {
        return Err(too_big(cap));
    }
    Ok(bytes)
}

/// Checks that `path` is a regular file of at most `cap` bytes, for files another
/// program reads (the test host's SSH key).
pub fn check_regular(path: &Path, cap: u64) -> io::Result<()> {
    let len = open_regular(path)?.metadata()?.len();
    if len > cap {
        return Err(too_big(cap));
    }
    Ok(())
}

/// Opens without blocking (a FIFO's open waits for a writer otherwise) and refuses
/// anything but a regular file, judged on the opened file itself.
fn open_regular(path: &Path) -> io::Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)?;
    let kind = file.metadata()?.file_type();
    if !kind.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("is {}, not a regular file", describe(kind)),
        ));
    }
    Ok(file)
}

fn describe(kind: FileType) -> &'static str {
    if kind.is_dir() {
        "a directory"
    } else if kind.is_fifo() {
        "a FIFO (named pipe)"
    } else if kind.is_char_device() {
        "a character device"
    } else if kind.is_block_device() {
        "a block device"
    } else if kind.is_socket() {
        "a socket"
    } else {
        "a special file"
    }
}

fn too_big(cap: u64) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("larger than {} KiB: not an input file", cap / 1024),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regular_files_only_capped_and_without_a_bom() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.json");
        std::fs::write(&file, "\u{feff}{}").unwrap();
        assert_eq!(read_text(&file, 10).unwrap(), "{}");
        let err = read_text(&file, 4).unwrap_err().to_string();
        assert!(err.contains("larger than"), "{err}");
        let err = read_text(dir.path(), 10).unwrap_err().to_string();
        assert!(err.contains("is a directory"), "{err}");
        let err = read_text(Path::new("/dev/zero"), 10)
            .unwrap_err()
            .to_string();
        assert!(err.contains("character device"), "{err}");
        std::fs::write(&file, b"ok \xff").unwrap();
        let err = read_text(&file, 10).unwrap_err().to_string();
        assert!(
            err.contains("not UTF-8 text (invalid byte at offset 3)"),
            "{err}"
        );
    }

    #[test]
    fn a_fifo_is_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let err = read_text(&fifo, 10).unwrap_err().to_string();
        assert!(err.contains("FIFO"), "{err}");
    }
}
