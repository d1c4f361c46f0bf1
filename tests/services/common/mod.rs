//! The helpers of the service tier: those both tiers share (tests/common), the
//! harnesses of the tools and services, real `packer validate`, the worker stand-in, and
//! a child's output read line by line.

#[path = "../../common/mod.rs"]
mod shared;
pub use shared::*;

pub mod compute;
pub mod git_server;
pub mod github;
pub mod job_service;
pub mod loopback;
pub mod openstack;
pub mod package_index;
pub mod procs;
pub mod proxy;
pub mod runner;
pub mod sshd;
pub mod systemd_host;
pub mod tmux;

use std::path::Path;
use std::process::Command;

use tempfile::TempDir;

/// What every run of the tool gets in this tier (`tool`): packer is the real one on PATH;
/// git, for pinning a git `worker_source`, the stand-in that answers `ls-remote` without
/// the network (the default definition's worker source is on github.com, which the lab
/// cannot reach). The pin tests run the real git (`REAL_GIT`) against a git server on
/// loopback.
pub const TOOL_ENV: &[(&str, &str)] = &[
    (
        "UWORKER_IMAGE_GIT",
        concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/git-ls-remote"),
    ),
    // A requirement without `==` is pinned against this index: nothing listens there, so
    // no test reaches PyPI (the pin tests serve their own index on loopback).
    ("UWORKER_IMAGE_INDEX_URL", "http://127.0.0.1:9/simple/"),
];

/// `UWORKER_IMAGE_GIT` for a run that pins with the real git on PATH.
pub const REAL_GIT: (&str, &str) = ("UWORKER_IMAGE_GIT", "git");

/// A copy of the default definition with the worker stand-in (tests/fixtures/worker-standin)
/// inside it, for `--var worker_source=worker-standin` (a local worker_source must be a
/// path in the definition directory).
pub fn default_definition_with_worker_standin() -> TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for (from, to) in [
        (root.join("provision/."), dir.path().to_path_buf()),
        (
            root.join("tests/fixtures/worker-standin"),
            dir.path().join("worker-standin"),
        ),
    ] {
        let ok = Command::new("cp")
            .arg("-a")
            .arg(&from)
            .arg(&to)
            .status()
            .expect("cp runs")
            .success();
        assert!(ok, "copying {} failed", from.display());
    }
    dir
}

/// Real `packer validate -syntax-only` of a template and var-file. Packer is part of the
/// test setup (README): a missing packer fails the test rather than skipping it.
pub fn packer_syntax_check(template: &Path, var_file: Option<&Path>) {
    let mut cmd = Command::new("packer");
    cmd.env("CHECKPOINT_DISABLE", "1")
        .arg("validate")
        .arg("-syntax-only");
    if let Some(vars) = var_file {
        cmd.arg(format!("-var-file={}", vars.display()));
    }
    let out = cmd
        .arg(template)
        .output()
        .expect("packer is installed (see README: the test command installs it)");
    assert!(
        out.status.success(),
        "packer validate -syntax-only failed for {}:\n{}{}",
        template.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The lines a child writes to a pipe, read on a thread of their own.
pub struct Lines(pub std::sync::mpsc::Receiver<String>);

impl Lines {
    pub fn of(source: impl std::io::Read + Send + 'static) -> Lines {
        use std::io::BufRead;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(source).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Lines(rx)
    }

    /// Reads until a line contains `text`; every line read goes into `seen`.
    pub fn wait_for(&self, text: &str, within: std::time::Duration, seen: &mut Vec<String>) {
        let until = std::time::Instant::now() + within;
        loop {
            let line = self
                .0
                .recv_timeout(until.saturating_duration_since(std::time::Instant::now()))
                .unwrap_or_else(|_| panic!("never saw {text:?}:\n{}", seen.join("\n")));
            let found = line.contains(text);
            seen.push(line);
            if found {
                return;
            }
        }
    }

    /// The lines that have arrived so far.
    pub fn drain_into(&self, seen: &mut Vec<String>) {
        seen.extend(self.0.try_iter());
    }
}
