//! A private work directory for one run (0700, removed when dropped, and by the signal
//! handler): the rendered template, and the files that carry secrets (0600, created
//! fresh, never overwritten). Its name carries the process ID and start time of the run
//! that made it, so a later run removes the directories of runs that were killed.

use std::fs::OpenOptions;
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use tempfile::TempDir;

pub struct Workdir {
    dir: TempDir,
}

/// Work directories are `uworker-image-run-<pid>-<start time>-<random>`.
const PREFIX: &str = "uworker-image-run-";

impl Workdir {
    pub fn create() -> io::Result<Workdir> {
        let me = Process::current()?;
        let dir = tempfile::Builder::new()
            .prefix(&format!("{PREFIX}{}-{}-", me.pid, me.start_time))
            .tempdir()?;
        // tempfile leaves directories to the umask; made 0700 while still empty, so
        // nobody else can list or open what goes in.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700))?;
        crate::interrupt::register_workdir(dir.path());
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

impl Drop for Workdir {
    fn drop(&mut self) {
        crate::interrupt::unregister_workdir(self.dir.path());
    }
}

/// A process, told apart from a later one with the same ID by its start time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Process {
    pid: u32,
    /// Clock ticks after boot (field 22 of /proc/PID/stat).
    start_time: u64,
}

impl Process {
    fn current() -> io::Result<Process> {
        let pid = std::process::id();
        Process::read(pid).ok_or_else(|| io::Error::other("cannot read /proc/self/stat"))
    }

    fn read(pid: u32) -> Option<Process> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // The command name, field 2, is in parentheses and may hold spaces and `)`.
        let (_, after_name) = stat.rsplit_once(')')?;
        let start_time = after_name.split_whitespace().nth(19)?.parse().ok()?;
        Some(Process { pid, start_time })
    }

    fn is_running(&self) -> bool {
        Process::read(self.pid) == Some(*self)
    }

    /// The run a work directory name belongs to.
    fn of_workdir(name: &str) -> Option<Process> {
        let mut parts = name.strip_prefix(PREFIX)?.splitn(3, '-');
        Some(Process {
            pid: parts.next()?.parse().ok()?,
            start_time: parts.next()?.parse().ok()?,
        })
    }
}

/// Removes the work directories in `tmp` left by runs of this user that are gone
/// (killed with SIGKILL, or a machine that lost power): they hold secrets. Returns
/// the directories removed.
pub fn remove_stale(tmp: &Path) -> Vec<PathBuf> {
    use std::os::unix::fs::MetadataExt;
    let Ok(entries) = std::fs::read_dir(tmp) else {
        return Vec::new();
    };
    // SAFETY: geteuid(2) cannot fail.
    let me = unsafe { libc::geteuid() };
    entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let owner = Process::of_workdir(entry.file_name().to_str()?)?;
            let meta = std::fs::symlink_metadata(entry.path()).ok()?;
            (meta.is_dir() && meta.uid() == me && !owner.is_running()).then(|| entry.path())
        })
        .filter(|dir| std::fs::remove_dir_all(dir).is_ok())
        .collect()
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

    #[test]
    fn a_dead_runs_directory_is_stale_and_a_live_ones_is_not() {
        let tmp = tempfile::tempdir().unwrap();
        let me = Process::current().unwrap();
        let make = |name: String| {
            let dir = tmp.path().join(name);
            std::fs::create_dir(&dir).unwrap();
            std::fs::write(dir.join("variables.json"), "{}").unwrap();
            dir
        };
        let live = make(format!("{PREFIX}{}-{}-abc", me.pid, me.start_time));
        // The same PID with another start time: a run that died, its PID reused.
        let reused = make(format!("{PREFIX}{}-{}-abc", me.pid, me.start_time + 1));
        let gone = make(format!("{PREFIX}{}-1-xyz", u32::MAX - 1));
        let foreign = make("uworker-image-stdout.abc".into());
        let mut removed = remove_stale(tmp.path());
        removed.sort();
        let mut expected = vec![reused.clone(), gone.clone()];
        expected.sort();
        assert_eq!(removed, expected);
        assert!(live.exists() && foreign.exists());
        assert!(!reused.exists() && !gone.exists());
    }

    #[test]
    fn the_directory_is_named_after_its_run() {
        let work = Workdir::create().unwrap();
        let name = work.path().file_name().unwrap().to_str().unwrap();
        assert_eq!(Process::of_workdir(name), Some(Process::current().unwrap()));
        assert!(Process::current().unwrap().is_running());
    }
}
