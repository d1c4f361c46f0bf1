//! The packer executable: finding it, its version, and `packer validate`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use thiserror::Error;

#[derive(Debug, Error)]
pub enum PackerError {
    #[error("packer not found ({program}): install it (Debian: apt-get install packer) or pass --packer PATH (UWORKER_IMAGE_PACKER)")]
    NotFound { program: String },
    #[error("`{program} version` gave no version ({detail})")]
    Version { program: String, detail: String },
    #[error("running {program}: {source}")]
    Run {
        program: String,
        source: std::io::Error,
    },
}

#[derive(Debug, Clone)]
pub struct Packer {
    program: PathBuf,
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
            .map(|program| Packer { program })
            .ok_or_else(|| PackerError::NotFound {
                program: wanted.display().to_string(),
            })
    }

    pub fn program(&self) -> &Path {
        &self.program
    }

    /// A command for packer with the tool's fixed environment.
    fn command(&self) -> Command {
        let mut cmd = Command::new(&self.program);
        // Packer's checkpoint service phones home; CI has no business doing that.
        cmd.env("CHECKPOINT_DISABLE", "1");
        cmd.stdin(Stdio::null());
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
            .command()
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

    /// `packer validate [-syntax-only] -var-file VARS TEMPLATE`, in `cwd`.
    pub fn validate(
        &self,
        template: &Path,
        var_file: &Path,
        syntax_only: bool,
        cwd: &Path,
    ) -> Result<Validation, PackerError> {
        let mut cmd = self.command();
        cmd.arg("validate");
        if syntax_only {
            cmd.arg("-syntax-only");
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
    fn reads_both_version_forms() {
        assert_eq!(
            parse_version("1795544364,,version,1.6.6\n1795544364,,version-prelease,\n").as_deref(),
            Some("1.6.6")
        );
        assert_eq!(parse_version("Packer v1.11.2\n").as_deref(), Some("1.11.2"));
        assert_eq!(parse_version("garbage"), None);
    }

    #[test]
    fn a_missing_packer_is_reported_with_the_fix() {
        let err = Packer::find(Some(Path::new("/nonexistent/packer"))).unwrap_err();
        assert!(err.to_string().contains("apt-get install packer"), "{err}");
    }
}
