//! A private work directory for one run (0700, removed when dropped): the rendered
//! template, and the files that carry secrets (0600, created fresh, never overwritten).

use std::fs::OpenOptions;
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use tempfile::TempDir;

pub struct Workdir {
    dir: TempDir,
}

impl Workdir {
    pub fn create() -> io::Result<Workdir> {
        let dir = tempfile::Builder::new()
            .prefix("uworker-image-")
            .tempdir()?;
        // tempfile leaves directories to the umask; made 0700 while still empty, so
        // nobody else can list or open what goes in.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700))?;
        Ok(Workdir { dir })
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// A file without secrets (the template), readable by its owner's tools.
    pub fn write_public(&self, name: &str, content: &[u8]) -> io::Result<PathBuf> {
        write_new(&self.dir.path().join(name), content, 0o644)
    }

    /// A file holding secret values: mode 0600 from the moment it exists.
    pub fn write_secret(&self, name: &str, content: &[u8]) -> io::Result<PathBuf> {
        write_new(&self.dir.path().join(name), content, 0o600)
    }
}

/// Creates `path` with `mode` (never following or reusing an existing file) and writes it.
pub fn write_new(path: &Path, content: &[u8], mode: u32) -> io::Result<PathBuf> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)?;
    file.write_all(content)?;
    file.sync_all()?;
    Ok(path.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_are_private_and_the_directory_goes_away() {
        let work = Workdir::create().unwrap();
        let root = work.path().to_path_buf();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&root), 0o700);
        let secret = work.write_secret("vars.json", b"{}").unwrap();
        assert_eq!(mode(&secret), 0o600);
        assert!(
            work.write_secret("vars.json", b"{}").is_err(),
            "never reuses a file"
        );
        drop(work);
        assert!(!root.exists());
    }
}
