//! The packer executable: finding it, its version, `packer validate`, and builds
//! (`run`: one run; `attempts`: retries; `machine`: its output; `classify`: failures).

pub mod attempts;
pub mod classify;
pub mod machine;
pub mod run;

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use thiserror::Error;

#[derive(Debug, Error)]
pub enum PackerError {
    #[error("packer not found ({program}): install it (Debian: apt-get install packer) or pass --packer PATH (UWORKER_IMAGE_PACKER)")]
    NotFound { program: String },
    #[error("`{program} version` gave no version ({detail})")]
    Version { program: String, detail: String },
    #[error("packer {version} needs the openstack plugin and `packer plugins install github.com/hashicorp/openstack` failed")]
    Plugin { version: String },
    #[error("running {program}")]
    Run {
        program: String,
        source: std::io::Error,
    },
}

impl crate::exit::Coded for PackerError {
    fn code(&self) -> crate::exit::Code {
        use crate::exit::Code;
        match self {
            PackerError::NotFound { .. } | PackerError::Version { .. } => Code::BadInput,
            PackerError::Plugin { .. } => Code::External,
            PackerError::Run { .. } => Code::Failed,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Packer {
    program: PathBuf,
    /// Variables packer gets beside the inherited environment, and ones it must not see.
    env: Vec<(String, String)>,
    env_remove: Vec<&'static str>,
    /// `env` holds the cloud's settings: packer inherits none of the tool's OS_* variables.
    own_cloud: bool,
}

/// `packer version` running in the background, so its start-up overlaps other work.
pub struct VersionProbe {
    program: String,
    child: Child,
}

impl VersionProbe {
    pub fn wait(self) -> Result<String, PackerError> {
        let program = self.program;
        let output = self
            .child
            .wait_with_output()
            .map_err(|source| PackerError::Run {
                program: program.clone(),
                source,
            })?;
        parse_version(&String::from_utf8_lossy(&output.stdout)).ok_or_else(|| {
            PackerError::Version {
                program,
                detail: String::from_utf8_lossy(&output.stderr).trim().to_string(),
            }
        })
    }
}

/// A packer version known from the cache, or being asked.
pub enum CachedVersion {
    Known(String),
    Running(VersionProbe, Option<VersionCache>),
}

impl CachedVersion {
    pub fn wait(self) -> Result<String, PackerError> {
        match self {
            CachedVersion::Known(version) => Ok(version),
            CachedVersion::Running(probe, cache) => {
                let version = probe.wait()?;
                if let Some(cache) = cache {
                    // A cache that cannot be written only costs the next run a probe.
                    let _ = cache.write(&version);
                }
                Ok(version)
            }
        }
    }
}

/// One cache file per packer executable identity: `packer-version-<key>`.
pub struct VersionCache {
    file: PathBuf,
}

impl VersionCache {
    fn new(dir: &Path, program: &Path) -> Option<VersionCache> {
        use sha2::{Digest, Sha256};
        use std::os::unix::fs::MetadataExt;
        let program = program.canonicalize().ok()?;
        let meta = std::fs::metadata(&program).ok()?;
        let identity = format!(
            "{}\0{}\0{}\0{}\0{}",
            program.display(),
            meta.len(),
            meta.mtime(),
            meta.mtime_nsec(),
            meta.ino()
        );
        let key = hex::encode(&Sha256::digest(identity.as_bytes())[..12]);
        Some(VersionCache {
            file: dir.join(format!("packer-version-{key}")),
        })
    }

    fn read(&self) -> Option<String> {
        let text = std::fs::read_to_string(&self.file).ok()?;
        parse_version(&text)
    }

    fn write(&self, version: &str) -> std::io::Result<()> {
        let dir = self.file.parent().expect("cache files live in a directory");
        std::fs::create_dir_all(dir)?;
        // Written aside and renamed, so a concurrent run never reads half a file.
        let tmp = tempfile::NamedTempFile::new_in(dir)?;
        std::fs::write(tmp.path(), format!("Packer v{version}\n"))?;
        tmp.persist(&self.file).map_err(|e| e.error)?;
        Ok(())
    }
}

/// What `packer validate` said.
#[derive(Debug)]
pub struct Validation {
    pub ok: bool,
    /// stdout and stderr, not yet redacted.
    pub output: String,
}

impl Packer {
    /// `explicit` (a path or a name looked up on PATH), else `packer` on PATH.
    pub fn find(explicit: Option<&Path>) -> Result<Packer, PackerError> {
        let wanted = explicit.unwrap_or(Path::new("packer"));
        let found = if wanted.components().count() > 1 {
            wanted.is_file().then(|| wanted.to_path_buf())
        } else {
            search_path(wanted)
        };
        found
            .map(|program| Packer {
                program,
                env: Vec::new(),
                env_remove: Vec::new(),
                own_cloud: false,
            })
            .ok_or_else(|| PackerError::NotFound {
                program: wanted.display().to_string(),
            })
    }

    /// Variables to set and to remove for every packer run (OS_CLOUD's entry as plain
    /// OS_* variables).
    pub fn with_env(mut self, set: Vec<(String, String)>, remove: Vec<&'static str>) -> Packer {
        self.env = set;
        self.env_remove = remove;
        self.own_cloud = false;
        self
    }

    /// Only `set`'s OS_* variables, none of the tool's: a cloud other than the
    /// environment's (a target's clouds.yaml entry).
    pub fn with_own_cloud(mut self, set: Vec<(String, String)>) -> Packer {
        self.env = set;
        self.env_remove = Vec::new();
        self.own_cloud = true;
        self
    }

    /// The variables set for cloud runs, and whether inherited OS_* ones are dropped.
    #[cfg(test)]
    pub fn cloud_env_for_tests(&self) -> (&[(String, String)], bool) {
        (&self.env, self.own_cloud)
    }

    pub fn program(&self) -> &Path {
        &self.program
    }

    /// A command for packer: an allow-listed environment (`child_env`) with the cloud
    /// credentials only when `cloud` (the openstack builder, a full validate), and a
    /// death signal, so packer cleans up even when the tool is killed outright.
    ///
    /// Call it from a thread that lives as long as the child (the main thread):
    /// PR_SET_PDEATHSIG fires when the *thread* that spawned the child exits.
    fn command(&self, cloud: bool) -> Command {
        let mut cmd = Command::new(&self.program);
        cmd.env_clear();
        let inherited = crate::child_env::of_process(cloud);
        cmd.envs(
            inherited
                .into_iter()
                .filter(|(key, _)| !(self.own_cloud && key.starts_with("OS_"))),
        );
        // Packer's checkpoint service phones home; CI has no business doing that.
        cmd.env("CHECKPOINT_DISABLE", "1");
        for key in &self.env_remove {
            cmd.env_remove(key);
        }
        if cloud {
            cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        }
        cmd.stdin(Stdio::null());
        // SAFETY: the closure runs between fork and exec and calls only async-signal-safe
        // functions (getppid, prctl, signal), allocating nothing.
        let parent = std::process::id() as libc::pid_t;
        unsafe {
            cmd.pre_exec(move || death_signal(parent));
        }
        cmd
    }

    fn run_error(&self, source: std::io::Error) -> PackerError {
        PackerError::Run {
            program: self.program.display().to_string(),
            source,
        }
    }

    pub fn start_version(&self) -> Result<VersionProbe, PackerError> {
        let child = self
            .command(false)
            .args(["version", "-machine-readable"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| self.run_error(e))?;
        Ok(VersionProbe {
            program: self.program.display().to_string(),
            child,
        })
    }

    pub fn version(&self) -> Result<String, PackerError> {
        self.start_version()?.wait()
    }

    /// The version, from `cache_dir` when this very executable (same path, size, mtime and
    /// inode) was asked before; otherwise by running it, in the background: call `wait`
    /// on the result when the version is needed.
    pub fn version_cached(&self, cache_dir: Option<&Path>) -> Result<CachedVersion, PackerError> {
        let cache = cache_dir.and_then(|dir| VersionCache::new(dir, &self.program));
        if let Some(version) = cache.as_ref().and_then(VersionCache::read) {
            return Ok(CachedVersion::Known(version));
        }
        Ok(CachedVersion::Running(self.start_version()?, cache))
    }

    /// Packer 1.9 and later no longer bundle the openstack builder: install the plugin
    /// when it is missing. Older versions carry it.
    pub fn ensure_openstack_plugin(&self, version: &str) -> Result<(), PackerError> {
        if !needs_plugins(version) {
            return Ok(());
        }
        let installed = self
            .command(false)
            .args(["plugins", "installed"])
            .output()
            .map_err(|e| self.run_error(e))?;
        if String::from_utf8_lossy(&installed.stdout).contains("openstack") {
            return Ok(());
        }
        let status = self
            .command(false)
            .args(["plugins", "install", "github.com/hashicorp/openstack"])
            .status()
            .map_err(|e| self.run_error(e))?;
        if status.success() {
            Ok(())
        } else {
            Err(PackerError::Plugin {
                version: version.to_string(),
            })
        }
    }

    /// `packer validate [-syntax-only] [-only=B,...] -var-file VARS TEMPLATE`, in `cwd`;
    /// `only` None: every builder.
    pub fn validate(
        &self,
        template: &Path,
        var_file: &Path,
        syntax_only: bool,
        only: Option<&[String]>,
        cwd: &Path,
    ) -> Result<Validation, PackerError> {
        // A full validate logs in to the cloud; syntax-only needs no credentials.
        let mut cmd = self.command(!syntax_only);
        cmd.arg("validate");
        if syntax_only {
            cmd.arg("-syntax-only");
        }
        if let Some(only) = only {
            cmd.arg(format!("-only={}", only.join(",")));
        }
        cmd.arg(format!("-var-file={}", var_file.display()))
            .arg(template)
            .current_dir(cwd);
        let Output {
            status,
            stdout,
            stderr,
        } = cmd.output().map_err(|e| self.run_error(e))?;
        let mut output = String::from_utf8_lossy(&stdout).into_owned();
        output.push_str(&String::from_utf8_lossy(&stderr));
        Ok(Validation {
            ok: status.success(),
            output,
        })
    }
}

/// In the child, before exec: packer gets SIGTERM when the tool dies. Packer runs as a
/// pair (panicwrap): its outer process ignores SIGINT, which a terminal sends to the
/// whole group, and forwards SIGTERM to the real packer, which then cancels the build
/// and cleans up (`Cancelling build after receiving terminated`). Signals the tool may
/// have inherited as ignored (a background job of a script) are packer's own again.
fn death_signal(parent: libc::pid_t) -> std::io::Result<()> {
    // SAFETY: plain system calls on this (child) process.
    unsafe {
        libc::signal(libc::SIGINT, libc::SIG_DFL);
        libc::signal(libc::SIGTERM, libc::SIG_DFL);
        if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM as libc::c_ulong) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        // The tool died before the death signal was set: nobody would ever stop packer.
        if libc::getppid() != parent {
            return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
        }
    }
    Ok(())
}

/// Whether this packer version loads builders as separately installed plugins (1.9+).
pub fn needs_plugins(version: &str) -> bool {
    let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    (major, minor) >= (1, 9)
}

/// Finds an executable on PATH.
pub fn search_path(name: &Path) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| {
            std::fs::metadata(candidate)
                .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
                .unwrap_or(false)
        })
}

/// The version from `packer version -machine-readable` (`TS,,version,1.6.6`), or from
/// the human form `Packer v1.6.6`.
pub fn parse_version(stdout: &str) -> Option<String> {
    stdout
        .lines()
        .find_map(|line| {
            let mut fields = line.splitn(4, ',');
            let (_ts, _target, kind, data) = (
                fields.next()?,
                fields.next()?,
                fields.next()?,
                fields.next()?,
            );
            (kind == "version").then(|| data.trim().to_string())
        })
        .or_else(|| {
            stdout
                .lines()
                .find_map(|l| l.trim().strip_prefix("Packer v"))
                .map(|v| v.trim().to_string())
        })
        .filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plugins_are_separate_from_1_9_on() {
        assert!(!needs_plugins("1.6.6"));
        assert!(!needs_plugins("1.8.7"));
        assert!(needs_plugins("1.9.0"));
        assert!(needs_plugins("1.11.2"));
        assert!(needs_plugins("2.0.0"));
    }

    #[test]
    fn reads_both_version_forms() {
        assert_eq!(
            parse_version("1795544364,,version,1.6.6\n1795544364,,version-prelease,\n").as_deref(),
            Some("1.6.6")
        );
        assert_eq!(parse_version("Packer v1.11.2\n").as_deref(), Some("1.11.2"));
        assert_eq!(parse_version("garbage"), None);
    }

    #[test]
    fn the_version_cache_follows_the_executable() {
        let dir = tempfile::tempdir().unwrap();
        let program = dir.path().join("packer");
        let write = |version: &str| {
            std::fs::write(
                &program,
                format!("#!/bin/sh\necho '1,,version,{version}'\n"),
            )
            .unwrap();
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).unwrap();
        };
        write("1.6.6");
        let packer = Packer::find(Some(&program)).unwrap();
        let cache = dir.path().join("cache");
        let first = packer.version_cached(Some(&cache)).unwrap();
        assert!(matches!(first, CachedVersion::Running(..)));
        assert_eq!(first.wait().unwrap(), "1.6.6");
        let second = packer.version_cached(Some(&cache)).unwrap();
        assert!(matches!(&second, CachedVersion::Known(v) if v == "1.6.6"));
        // A new executable (another size) is asked again.
        write("1.11.22");
        let third = packer.version_cached(Some(&cache)).unwrap();
        assert!(matches!(third, CachedVersion::Running(..)));
        assert_eq!(third.wait().unwrap(), "1.11.22");
    }

    #[test]
    fn a_missing_packer_is_reported_with_the_fix() {
        let err = Packer::find(Some(Path::new("/nonexistent/packer"))).unwrap_err();
        assert!(err.to_string().contains("apt-get install packer"), "{err}");
    }
}
