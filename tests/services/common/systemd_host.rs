//! A booted systemd test host (Debian 12 or 13, systemd as PID 1 under systemd-nspawn)
//! from tests/harness/systemd-host.sh, reachable over SSH as user `ubuntu` (NOPASSWD sudo)
//! on a loopback address of its own. Stopped when dropped: no process is left behind.
//!
//! Environment: UWORKER_IMAGE_TEST_HOST_NET (default 127.0.2): the /24 of loopback addresses the
//! booted-host tests use (so two checkouts can run them side by side).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use tempfile::TempDir;

/// The harness script (its header documents the interface).
pub fn harness() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/harness/systemd-host.sh")
}

/// Debian 12 (Python 3.11), the default release.
pub const DEBIAN_12: &str = "bookworm";
/// Debian 13 (Python 3.13).
pub const DEBIAN_13: &str = "trixie";

/// Address `last` of the booted-host tests' loopback /24 (UWORKER_IMAGE_TEST_HOST_NET).
pub fn address(last: u8) -> String {
    let net = std::env::var("UWORKER_IMAGE_TEST_HOST_NET").unwrap_or_else(|_| "127.0.2".into());
    format!("{net}.{last}")
}

/// The pristine Debian 12 rootfs directory (built and cached on first use, one to three
/// minutes). Never boot it persistently: copy it first.
pub fn rootfs() -> PathBuf {
    rootfs_path(DEBIAN_12, &[])
}

/// The cached rootfs tarball (zstd) of `release`, to unpack a root of one's own.
pub fn rootfs_tarball(release: &str) -> PathBuf {
    rootfs_path(release, &["--tarball"])
}

/// A root of one's own for a persistent Debian 12 host: the tarball unpacked into `dir`.
pub fn unpack_rootfs(dir: &Path) {
    unpack_rootfs_of(DEBIAN_12, dir)
}

/// A root of one's own for a persistent host of `release`.
pub fn unpack_rootfs_of(release: &str, dir: &Path) {
    let ok = Command::new("tar")
        .args(["--zstd", "-xpf"])
        .arg(rootfs_tarball(release))
        .arg("-C")
        .arg(dir)
        .status()
        .expect("tar runs")
        .success();
    assert!(ok, "unpacking the rootfs into {} failed", dir.display());
}

fn rootfs_path(release: &str, args: &[&str]) -> PathBuf {
    let out = Command::new(harness())
        .args(["rootfs", "--release", release])
        .args(args)
        .stderr(Stdio::inherit())
        .output()
        .expect("systemd-host.sh runs");
    assert!(out.status.success(), "systemd-host.sh rootfs failed");
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

/// How to boot a host.
#[derive(Debug, Clone)]
pub struct BootOptions {
    /// A loopback address of its own, e.g. 127.0.2.1: sshd listens there only.
    pub address: String,
    pub port: u16,
    /// The release booted when `root` is None (DEBIAN_12 or DEBIAN_13).
    pub release: &'static str,
    /// The root directory; None: the pristine rootfs of `release` (volatile only).
    pub root: Option<PathBuf>,
    /// Writes land in `root` (kept after stop) instead of a tmpfs overlay.
    pub persistent: bool,
}

impl BootOptions {
    /// A volatile Debian 12 host.
    pub fn volatile(address: &str) -> BootOptions {
        BootOptions::volatile_release(DEBIAN_12, address)
    }

    pub fn volatile_release(release: &'static str, address: &str) -> BootOptions {
        BootOptions {
            address: address.to_string(),
            port: 22,
            release,
            root: None,
            persistent: false,
        }
    }
}

/// An SSH login to a booted host: a user with NOPASSWD sudo and the private key it takes.
#[derive(Debug, Clone)]
pub struct Ssh {
    pub address: String,
    pub port: u16,
    pub user: String,
    pub key: PathBuf,
}

impl Ssh {
    /// ssh to the host with this key only (no agent, no other identity), `args` as the
    /// remote command, `input` on its stdin.
    pub fn run(&self, args: &[&str], input: &str) -> Output {
        self.run_with(&[], args, input)
    }

    /// `run` with more ssh client options (`-o Name=value`...).
    pub fn run_with(&self, client_options: &[&str], args: &[&str], input: &str) -> Output {
        let mut child = Command::new("ssh")
            .args([
                "-o",
                "StrictHostKeyChecking=no",
                "-o",
                "UserKnownHostsFile=/dev/null",
            ])
            .args(["-o", "LogLevel=ERROR", "-o", "BatchMode=yes"])
            .args(["-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none"])
            .args(client_options)
            .arg("-i")
            .arg(&self.key)
            .args(["-p", &self.port.to_string()])
            .arg(format!("{}@{}", self.user, self.address))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("ssh runs");
        // ssh may have exited already (a refused login): its answer says so, not this.
        let _ = child.stdin.take().unwrap().write_all(input.as_bytes());
        child.wait_with_output().unwrap()
    }

    /// Runs a bash script as root on the host (through ssh and sudo; the script goes on
    /// stdin, so it needs no quoting).
    pub fn root(&self, script: &str) -> Output {
        self.run(&["sudo", "-n", "bash", "-s"], script)
    }

    /// Like `root`, but the script must succeed; returns its stdout.
    pub fn root_ok(&self, script: &str) -> String {
        let out = self.root(script);
        assert!(
            out.status.success(),
            "on {}, `{script}` failed:\n{}{}",
            self.address,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }
}

pub struct SystemdHost {
    /// Client key, authorized keys, nspawn.pid and boot.log (the console).
    pub state: TempDir,
    pub address: String,
    pub port: u16,
    pub user: String,
    running: bool,
}

impl SystemdHost {
    /// Boots a host and returns once its sshd answers; its client key is authorized for
    /// every user (`--authorized-keys`).
    pub fn boot(options: &BootOptions) -> SystemdHost {
        SystemdHost::boot_with(options, None)
    }

    /// Boots a host whose key reaches it only through cloud-init: a NoCloud seed
    /// (`--seed`) with `instance_id`, `hostname`, the client key and `user_data`.
    pub fn boot_seeded(
        options: &BootOptions,
        instance_id: &str,
        hostname: &str,
        user_data: &str,
    ) -> SystemdHost {
        SystemdHost::boot_with(options, Some((instance_id, hostname, user_data)))
    }

    fn boot_with(options: &BootOptions, seed: Option<(&str, &str, &str)>) -> SystemdHost {
        let state = tempfile::tempdir().unwrap();
        let key = state.path().join("client_key");
        super::sshd::keygen(&key);
        let public_key = key.with_extension("pub");
        let mut cmd = Command::new(harness());
        cmd.arg("boot")
            .arg("--state")
            .arg(state.path())
            .args(["--address", &options.address])
            .args(["--port", &options.port.to_string()])
            .arg(if options.persistent {
                "--persistent"
            } else {
                "--volatile"
            });
        match seed {
            None => cmd.arg("--authorized-keys").arg(&public_key),
            Some((instance_id, hostname, user_data)) => {
                let dir = state.path().join("nocloud");
                std::fs::create_dir(&dir).unwrap();
                let meta = serde_json::json!({
                    "instance-id": instance_id,
                    "local-hostname": hostname,
                    "public-keys": [std::fs::read_to_string(&public_key).unwrap().trim()],
                });
                std::fs::write(dir.join("meta-data"), meta.to_string()).unwrap();
                std::fs::write(dir.join("user-data"), user_data).unwrap();
                cmd.arg("--seed").arg(dir)
            }
        };
        match &options.root {
            Some(root) => cmd.arg("--root").arg(root),
            None => cmd.args(["--release", options.release]),
        };
        let host = SystemdHost {
            state,
            address: options.address.clone(),
            port: options.port,
            user: "ubuntu".into(),
            running: true,
        };
        let ok = cmd.status().expect("systemd-host.sh runs").success();
        assert!(ok, "systemd-host.sh boot failed (see above)");
        host
    }

    pub fn key(&self) -> PathBuf {
        self.state.path().join("client_key")
    }

    /// `--var` arguments pointing `test` at this host.
    pub fn vars(&self) -> Vec<String> {
        vec![
            "--var".into(),
            format!("test_host={}:{}", self.address, self.port),
            "--var".into(),
            format!("test_ssh_key={}", self.key().display()),
            "--var".into(),
            format!("test_ssh_username={}", self.user),
        ]
    }

    /// The SSH login to this host (its client key, as `ubuntu`).
    pub fn ssh(&self) -> Ssh {
        Ssh {
            address: self.address.clone(),
            port: self.port,
            user: self.user.clone(),
            key: self.key(),
        }
    }

    /// Runs a bash script as root on the host (see `Ssh::root`).
    pub fn root(&self, script: &str) -> Output {
        self.ssh().root(script)
    }

    /// Like `root`, but the script must succeed; returns its stdout.
    pub fn root_ok(&self, script: &str) -> String {
        self.ssh().root_ok(script)
    }

    /// Powers the host off (a clean shutdown, then force after `grace_s`).
    pub fn stop_with_grace(&mut self, grace_s: u32) {
        if !self.running {
            return;
        }
        self.running = false;
        let ok = Command::new(harness())
            .arg("stop")
            .arg("--state")
            .arg(self.state.path())
            .args(["--grace", &grace_s.to_string()])
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(
            ok || std::thread::panicking(),
            "systemd-host.sh stop failed"
        );
    }

    pub fn stop(&mut self) {
        self.stop_with_grace(15);
    }
}

impl Drop for SystemdHost {
    fn drop(&mut self) {
        self.stop();
    }
}
