//! A `packer` of a test's own, for `--packer`: a shell script that answers `version`,
//! leaves a marker, records its environment or arguments, holds a command a while, then
//! exits or hands over to the real packer. One builder, so every stand-in in the tests is
//! written the same way:
//!
//! ```ignore
//! let packer = PackerStandIn::new().marker(&ran).exit(1).write(&dir.join("packer"));
//! ```

// Both tiers include this file; each uses its own part (the fast tier never wraps the
// real packer, the service tier never answers `version` itself).
#![allow(dead_code)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The fast tier's packer-1.6.6 fixture: it answers `version` (plain or machine-readable).
const VERSION_FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/packer-1.6.6");

/// The script's lines so far; `write` ends it with an exit (0 unless told) or the real
/// packer.
pub struct PackerStandIn {
    lines: Vec<String>,
    end: String,
}

impl Default for PackerStandIn {
    fn default() -> Self {
        PackerStandIn::new()
    }
}

impl PackerStandIn {
    pub fn new() -> PackerStandIn {
        PackerStandIn {
            lines: Vec::new(),
            end: "exit 0".into(),
        }
    }

    /// Answers `packer version` as packer 1.6.6 does (the fixture), and goes on otherwise.
    pub fn version(self) -> PackerStandIn {
        let line = format!(
            "[ \"$1\" = version ] && exec {} \"$@\"",
            quoted(Path::new(VERSION_FIXTURE))
        );
        self.line(line)
    }

    /// Touches `marker` on every run: the test can tell whether packer ran at all.
    pub fn marker(self, marker: &Path) -> PackerStandIn {
        let line = format!("touch {}", quoted(marker));
        self.line(line)
    }

    /// Writes each run's whole environment (`env`) into a new file `env.XXXXXX` in `dir`.
    pub fn record_env(self, dir: &Path) -> PackerStandIn {
        let line = format!("env > \"$(mktemp {})\"", quoted(&dir.join("env.XXXXXX")));
        self.line(line)
    }

    /// Appends each run's arguments, one a line, to `log`.
    pub fn record_argv(self, log: &Path) -> PackerStandIn {
        let line = format!("printf '%s\\n' \"$@\" >>{}", quoted(log));
        self.line(line)
    }

    /// `packer COMMAND ...` writes its PID to `pid_file`, then takes 60 s (interruptibly:
    /// the shell waits on a child) before it goes on.
    pub fn hold(self, command: &str, pid_file: &Path) -> PackerStandIn {
        let line = format!(
            "if [ \"$1\" = {command} ]; then echo $$ > {}; sleep 60 & wait; fi",
            quoted(pid_file)
        );
        self.line(line)
    }

    /// Ends by running the real packer (the one on PATH) with the same arguments.
    pub fn wrap_real(mut self) -> PackerStandIn {
        self.end = format!("exec {} \"$@\"", quoted(&real_packer()));
        self
    }

    /// Ends by exiting with `code`.
    pub fn exit(mut self, code: i32) -> PackerStandIn {
        self.end = format!("exit {code}");
        self
    }

    /// The script, written to `path` (owner-only, executable); `path` again.
    pub fn write(self, path: &Path) -> PathBuf {
        let mut script = String::from("#!/bin/sh\n");
        for line in self.lines.iter().chain([&self.end]) {
            script.push_str(line);
            script.push('\n');
        }
        std::fs::write(path, script).unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700)).unwrap();
        path.to_path_buf()
    }

    fn line(mut self, line: String) -> PackerStandIn {
        self.lines.push(line);
        self
    }
}

/// The real packer on PATH (packer is part of the service tier's setup).
fn real_packer() -> PathBuf {
    let out = Command::new("which")
        .arg("packer")
        .output()
        .expect("which runs");
    let path = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(!path.is_empty(), "packer is installed (see README)");
    PathBuf::from(path)
}

/// `path` in single quotes for sh.
fn quoted(path: &Path) -> String {
    format!("'{}'", path.display().to_string().replace('\'', r"'\''"))
}
