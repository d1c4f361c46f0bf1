//! A local worker source read once: its files walked with the path rules and copied, as
//! the walk found them, into a private directory. The fingerprint hashes the copy and
//! packer uploads the copy, so what was checked is what is hashed and uploaded, whatever
//! happens to the source meanwhile (a file rewritten, or swapped for a link out).

use std::fs::{DirBuilder, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use thiserror::Error;

use super::WorkerSource;
use crate::definition::tree::{self, Found, TreeError};
use crate::workdir::Workdir;

/// Why a local worker source could not be copied; each names the path.
#[derive(Debug, Error)]
pub enum SnapshotError {
    #[error(transparent)]
    Walk(#[from] TreeError),
    #[error("cannot read {}", .path.display())]
    Unreadable {
        path: PathBuf,
        #[source]
        error: std::io::Error,
    },
    #[error("{} changed while it was read (it is no longer the file that was checked); run again", .path.display())]
    Changed { path: PathBuf },
    #[error("{} leads to {}, outside {}, now that it is opened; run again, and look for what changes the source", .path.display(), .target.display(), .inside.display())]
    Outside {
        path: PathBuf,
        target: PathBuf,
        inside: PathBuf,
    },
    #[error("cannot copy it to {}", .path.display())]
    Unwritable {
        path: PathBuf,
        #[source]
        error: std::io::Error,
    },
    #[error("cannot make a private directory for its copy")]
    Workdir(#[source] std::io::Error),
}

/// The copy's directory inside its work directory.
const COPY: &str = "worker-source";

/// The private copy of a local worker source (0700, removed when dropped and by the
/// signal handler, as a run's work directory is).
pub struct Snapshot {
    workdir: Workdir,
    /// Where the copy was read from: the source directory, or the one holding the file.
    source_dir: PathBuf,
    /// The copies, named by their path inside the source (a package file by its name).
    files: Vec<Found>,
}

impl Snapshot {
    /// Walks `source` (relative paths against the definition directory `dir`) once,
    /// checking the path rules, and copies every file it found; None for a pip
    /// requirement. A file that is no longer the one the walk checked when it is opened
    /// is refused. Errors name the path.
    pub fn take(dir: &Path, source: &WorkerSource) -> Result<Option<Snapshot>, SnapshotError> {
        let Some((root, path)) = source.location(dir) else {
            return Ok(None);
        };
        let found = tree::collect(&root, &[path.as_str()])?;
        let source_dir =
            root.join(&path)
                .canonicalize()
                .map_err(|error| SnapshotError::Unreadable {
                    path: root.join(&path),
                    error,
                })?;
        let source_dir = match source.package_name() {
            Some(_) => source_dir
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_default(),
            None => source_dir,
        };
        let inside = root
            .canonicalize()
            .map_err(|error| SnapshotError::Unreadable {
                path: root.clone(),
                error,
            })?;
        let workdir = Workdir::create().map_err(SnapshotError::Workdir)?;
        let copy_root = workdir.path().join(COPY);
        make_dir(&copy_root)?;
        let mut files = Vec::with_capacity(found.len());
        for file in &found {
            // Named by its path inside the source; a package file by its own name.
            let rel = match source.package_name() {
                Some(name) => name,
                None => file
                    .rel
                    .strip_prefix(&path)
                    .unwrap_or(&file.rel)
                    .trim_start_matches('/')
                    .to_string(),
            };
            files.push(copy_checked(file, &inside, &copy_root, rel)?);
        }
        Ok(Some(Snapshot {
            workdir,
            source_dir,
            files,
        }))
    }

    /// Where packer uploads the source from: the copy's directory.
    pub fn dir(&self) -> PathBuf {
        self.workdir.path().join(COPY)
    }

    /// Where the copy was read from (what `render --out`'s var-file names, for a packer
    /// run of its own later).
    pub fn source_dir(&self) -> &Path {
        &self.source_dir
    }

    /// The copied files, named by their path inside the source, in byte order.
    pub fn files(&self) -> &[Found] {
        &self.files
    }
}

/// Copies `file` to `rel` under `root`, with its permission bits, from the very file the
/// walk checked (device and inode), and only from inside `inside` (canonical): a name
/// swapped since for a link or another file is refused, not followed, even when the
/// swap raced the walk's own check. Opened without blocking, so a FIFO put in its place
/// cannot hang the run.
fn copy_checked(
    file: &Found,
    inside: &Path,
    root: &Path,
    rel: String,
) -> Result<Found, SnapshotError> {
    let unreadable = |error| SnapshotError::Unreadable {
        path: file.full.clone(),
        error,
    };
    let mut from = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&file.full)
        .map_err(unreadable)?;
    let meta = from.metadata().map_err(unreadable)?;
    if !meta.is_file() || (meta.dev(), meta.ino()) != file.identity {
        return Err(SnapshotError::Changed {
            path: file.full.clone(),
        });
    }
    // Where the open file really is: the walk's check and this open are two steps.
    let target =
        std::fs::read_link(format!("/proc/self/fd/{}", from.as_raw_fd())).map_err(unreadable)?;
    if !target.starts_with(inside) {
        return Err(SnapshotError::Outside {
            path: file.full.clone(),
            target,
            inside: inside.to_path_buf(),
        });
    }
    let to = root.join(&rel);
    if let Some(parent) = to.parent() {
        make_dir(parent)?;
    }
    let unwritable = |error| SnapshotError::Unwritable {
        path: to.clone(),
        error,
    };
    let mode = meta.permissions().mode() & 0o777 | 0o600;
    let mut copy = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&to)
        .map_err(unwritable)?;
    let len = std::io::copy(&mut from, &mut copy).map_err(unwritable)?;
    // The umask may have taken bits the source had.
    copy.set_permissions(std::fs::Permissions::from_mode(mode))
        .map_err(unwritable)?;
    Ok(Found {
        rel,
        full: to,
        len,
        executable: mode & 0o111 != 0,
        identity: (meta.dev(), meta.ino()),
    })
}

fn make_dir(path: &Path) -> Result<(), SnapshotError> {
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .map_err(|error| SnapshotError::Unwritable {
            path: path.to_path_buf(),
            error,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("worker/pkg")).unwrap();
        std::fs::write(dir.path().join("worker/setup.py"), "setup()\n").unwrap();
        std::fs::write(dir.path().join("worker/pkg/__init__.py"), "V = 1\n").unwrap();
        std::fs::write(dir.path().join("w-1.0-py3-none-any.whl"), "zip").unwrap();
        dir
    }

    fn names(snapshot: &Snapshot) -> Vec<&str> {
        snapshot.files().iter().map(|f| f.rel.as_str()).collect()
    }

    #[test]
    fn a_directory_or_a_package_file_is_copied_named_inside_the_source() {
        let dir = source();
        let d = dir.path();
        for source in [
            WorkerSource::Directory("worker".into()),
            WorkerSource::OutsideDirectory(d.join("worker")),
        ] {
            let snapshot = Snapshot::take(d, &source).unwrap().unwrap();
            assert_eq!(names(&snapshot), ["pkg/__init__.py", "setup.py"]);
            assert_eq!(
                std::fs::read_to_string(snapshot.dir().join("pkg/__init__.py")).unwrap(),
                "V = 1\n"
            );
            assert_eq!(
                snapshot.source_dir(),
                d.canonicalize().unwrap().join("worker")
            );
        }
        for source in [
            WorkerSource::File("w-1.0-py3-none-any.whl".into()),
            WorkerSource::OutsideFile(d.join("w-1.0-py3-none-any.whl")),
        ] {
            let snapshot = Snapshot::take(d, &source).unwrap().unwrap();
            assert_eq!(names(&snapshot), ["w-1.0-py3-none-any.whl"]);
            assert_eq!(snapshot.source_dir(), d.canonicalize().unwrap());
        }
        let requirement = WorkerSource::Requirement("uworker==1".into());
        assert!(Snapshot::take(d, &requirement).unwrap().is_none());
    }

    /// What the fingerprint hashes and packer uploads is the copy: a source rewritten, or
    /// a file of it swapped for a link to a secret, after the check changes neither.
    #[test]
    fn the_copy_is_what_was_checked_whatever_the_source_does_after() {
        let dir = source();
        let d = dir.path();
        let secret = tempfile::tempdir().unwrap();
        std::fs::write(secret.path().join("key"), "PRIVATE KEY").unwrap();
        let snapshot = Snapshot::take(d, &WorkerSource::Directory("worker".into()))
            .unwrap()
            .unwrap();
        std::fs::write(d.join("worker/setup.py"), "import os; os.system('x')\n").unwrap();
        std::fs::remove_file(d.join("worker/pkg/__init__.py")).unwrap();
        std::os::unix::fs::symlink(secret.path().join("key"), d.join("worker/pkg/__init__.py"))
            .unwrap();
        let copy = snapshot.dir();
        assert_eq!(
            std::fs::read_to_string(copy.join("setup.py")).unwrap(),
            "setup()\n"
        );
        assert_eq!(
            std::fs::read_to_string(copy.join("pkg/__init__.py")).unwrap(),
            "V = 1\n"
        );
        for file in snapshot.files() {
            assert!(file.full.starts_with(&copy), "{file:?}");
        }
        let dropped = snapshot.dir();
        drop(snapshot);
        assert!(!dropped.exists(), "the copy goes with the snapshot");
    }

    #[test]
    fn a_file_swapped_between_the_walk_and_the_copy_is_refused() {
        let dir = source();
        let d = dir.path();
        let walked = tree::collect(d, &["worker"]).unwrap();
        let setup = walked.iter().find(|f| f.rel == "worker/setup.py").unwrap();
        // Another file under the checked name (made while the old one still exists, so it
        // cannot get the old inode back).
        std::fs::write(d.join("worker/swapped"), "swapped\n").unwrap();
        std::fs::rename(d.join("worker/swapped"), d.join("worker/setup.py")).unwrap();
        let to = tempfile::tempdir().unwrap();
        let inside = d.canonicalize().unwrap();
        let error = copy_checked(setup, &inside, to.path(), "setup.py".into())
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("worker/setup.py changed while it was read"),
            "{error}"
        );
        assert!(!to.path().join("setup.py").exists());
    }

    /// The walk checked a link's target and then stat'ed it in two steps: a link
    /// re-pointed between them gives the outside file's identity. The open file's own
    /// path is what decides.
    #[test]
    fn a_link_repointed_out_during_the_walk_is_refused_when_opened() {
        let dir = source();
        let d = dir.path();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("key"), "PRIVATE KEY").unwrap();
        std::os::unix::fs::symlink(outside.path().join("key"), d.join("worker/raced")).unwrap();
        let meta = std::fs::metadata(d.join("worker/raced")).unwrap();
        let raced = Found {
            rel: "worker/raced".into(),
            full: d.join("worker/raced"),
            len: meta.len(),
            executable: false,
            identity: (meta.dev(), meta.ino()),
        };
        let to = tempfile::tempdir().unwrap();
        let inside = d.canonicalize().unwrap();
        let error = copy_checked(&raced, &inside, to.path(), "raced".into())
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("worker/raced leads to") && error.contains("outside"),
            "{error}"
        );
        assert!(!to.path().join("raced").exists());
    }

    /// A FIFO in a checked file's place is refused at once, not waited on.
    #[test]
    fn a_fifo_swapped_in_is_refused_without_blocking() {
        let dir = source();
        let d = dir.path();
        let walked = tree::collect(d, &["worker"]).unwrap();
        let setup = walked.iter().find(|f| f.rel == "worker/setup.py").unwrap();
        std::fs::remove_file(d.join("worker/setup.py")).unwrap();
        let made = std::process::Command::new("mkfifo")
            .arg(d.join("worker/setup.py"))
            .status()
            .unwrap();
        assert!(made.success());
        let to = tempfile::tempdir().unwrap();
        let inside = d.canonicalize().unwrap();
        let error = copy_checked(setup, &inside, to.path(), "setup.py".into()).unwrap_err();
        assert!(matches!(error, SnapshotError::Changed { .. }), "{error}");
    }

    /// The copy has the source's permission bits (set after creation, so the umask cannot
    /// take any), never less than owner read-write. (The umask itself is not changed
    /// here: it is the whole test process's.)
    #[test]
    fn the_copy_keeps_the_sources_mode() {
        let dir = source();
        let d = dir.path();
        let script = d.join("worker/run.sh");
        std::fs::write(&script, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(
            d.join("worker/setup.py"),
            std::fs::Permissions::from_mode(0o400),
        )
        .unwrap();
        let walked = tree::collect(d, &["worker"]).unwrap();
        let inside = d.canonicalize().unwrap();
        let to = tempfile::tempdir().unwrap();
        let copies: Vec<Found> = ["worker/run.sh", "worker/setup.py"]
            .iter()
            .map(|rel| {
                let file = walked.iter().find(|f| f.rel == *rel).unwrap();
                copy_checked(file, &inside, to.path(), rel.replace("worker/", ""))
            })
            .collect::<Result<_, _>>()
            .unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&copies[0].full), 0o755);
        assert!(copies[0].executable);
        assert_eq!(mode(&copies[1].full), 0o600, "0400 | 0600");
        assert!(!copies[1].executable);
    }

    #[test]
    fn a_link_out_of_the_source_is_refused_naming_it() {
        let dir = source();
        let d = dir.path();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), "s").unwrap();
        std::os::unix::fs::symlink(outside.path().join("secret"), d.join("worker/pkg/leak"))
            .unwrap();
        let error = Snapshot::take(d, &WorkerSource::Directory("worker".into()))
            .err()
            .unwrap()
            .to_string();
        assert!(
            error.contains("leak links to") && error.contains("secret"),
            "{error}"
        );
        // Given from outside, its links may not leave it either.
        let error = Snapshot::take(
            outside.path(),
            &WorkerSource::OutsideDirectory(d.join("worker")),
        )
        .err()
        .unwrap()
        .to_string();
        assert!(error.contains("leak links to"), "{error}");
    }
}
