//! One command on the verification's server through the system's OpenSSH client: the
//! run's own key (a 0600 file in the run's private work directory), batch mode, the host
//! key taken on first contact into a known_hosts file of the run's own (then held to for
//! every later call). The client runs in a process group of its own, ended when it is
//! done, at the deadline or when the stop flag rises.

use std::io::{Read, Write};
use std::os::unix::process::CommandExt as _;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use thiserror::Error;

/// What one call is capped at: a check's output beyond it is cut.
const OUTPUT_CAP: usize = 256 * 1024;

#[derive(Debug, Error)]
pub enum SshError {
    #[error("cannot run the OpenSSH client `ssh` (install openssh-client)")]
    Spawn {
        #[source]
        error: std::io::Error,
    },
    #[error("waiting for the OpenSSH client failed")]
    Wait {
        #[source]
        error: std::io::Error,
    },
}

impl crate::exit::Coded for SshError {
    fn code(&self) -> crate::exit::Code {
        match self {
            SshError::Spawn { .. } => crate::exit::Code::BadInput,
            SshError::Wait { .. } => crate::exit::Code::Failed,
        }
    }
}

/// Where and as whom the server is reached.
pub struct Host {
    pub address: String,
    pub port: u16,
    pub user: String,
    /// The private key (0600).
    pub key_file: PathBuf,
    /// The run's own known_hosts file.
    pub known_hosts: PathBuf,
}

/// How a call ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// The remote command's exit code (255: ssh itself failed: no connection, refused key).
    Exited(i32),
    /// The deadline passed first.
    TimedOut,
    /// The stop flag rose first.
    Stopped,
}

#[derive(Debug, Clone)]
pub struct Ran {
    pub end: End,
    /// stdout and stderr together, as they came.
    pub output: String,
}

impl Host {
    /// The client's arguments for `remote` (one shell command line on the server).
    pub fn args(&self, remote: &str, connect_timeout: Duration) -> Vec<String> {
        let option = |o: &str| ["-o".to_string(), o.to_string()];
        let mut args = vec!["-F".to_string(), "/dev/null".to_string()];
        for o in [
            "BatchMode=yes".to_string(),
            "IdentitiesOnly=yes".to_string(),
            "StrictHostKeyChecking=accept-new".to_string(),
            format!("UserKnownHostsFile={}", self.known_hosts.display()),
            "GlobalKnownHostsFile=/dev/null".to_string(),
            format!("ConnectTimeout={}", connect_timeout.as_secs().max(1)),
            "ServerAliveInterval=15".to_string(),
            "ServerAliveCountMax=4".to_string(),
            "LogLevel=ERROR".to_string(),
        ] {
            args.extend(option(&o));
        }
        args.extend([
            "-i".to_string(),
            self.key_file.display().to_string(),
            "-p".to_string(),
            self.port.to_string(),
            "-l".to_string(),
            self.user.clone(),
            "--".to_string(),
            self.address.clone(),
            remote.to_string(),
        ]);
        args
    }

    /// Runs `remote` with `stdin` as its input, until it ends, `deadline` or `stop()`.
    pub fn run(
        &self,
        remote: &str,
        stdin: &[u8],
        deadline: Instant,
        stop: &dyn Fn() -> bool,
    ) -> Result<Ran, SshError> {
        let left = deadline.saturating_duration_since(Instant::now());
        let mut child = Command::new("ssh")
            .args(self.args(remote, left.min(Duration::from_secs(20))))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own group: a terminal's Ctrl-C reaches the tool, which ends it.
            .process_group(0)
            .spawn()
            .map_err(|error| SshError::Spawn { error })?;
        let group = Group(child.id() as libc::pid_t);
        let input = stdin.to_vec();
        let mut pipe = child.stdin.take().expect("piped");
        let writer = std::thread::spawn(move || {
            let _ = pipe.write_all(&input);
        });
        let out = read_all(child.stdout.take().expect("piped"));
        let err = read_all(child.stderr.take().expect("piped"));
        let end = wait(&mut child, deadline, stop).map_err(|error| SshError::Wait { error })?;
        drop(group);
        let _ = writer.join();
        let mut output = out.join().unwrap_or_default();
        output.push_str(&err.join().unwrap_or_default());
        Ok(Ran { end, output })
    }
}

/// Ends the client's group when dropped, whatever happened.
struct Group(libc::pid_t);

impl Drop for Group {
    fn drop(&mut self) {
        // SAFETY: kill(2) with a negative pid addresses the group the client leads.
        unsafe {
            libc::kill(-self.0, libc::SIGKILL);
        }
    }
}

fn read_all(mut from: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let mut chunk = [0u8; 8192];
        while let Ok(n) = from.read(&mut chunk) {
            if n == 0 {
                break;
            }
            if bytes.len() < OUTPUT_CAP {
                bytes.extend_from_slice(&chunk[..n.min(OUTPUT_CAP - bytes.len())]);
            }
        }
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

fn wait(child: &mut Child, deadline: Instant, stop: &dyn Fn() -> bool) -> std::io::Result<End> {
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(End::Exited(status.code().unwrap_or(255)));
        }
        let end = if stop() {
            End::Stopped
        } else if Instant::now() >= deadline {
            End::TimedOut
        } else {
            std::thread::sleep(Duration::from_millis(50));
            continue;
        };
        let _ = child.kill();
        let _ = child.wait();
        return Ok(end);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_client_trusts_nothing_but_the_run_s_own_files() {
        let host = Host {
            address: "192.0.2.7".into(),
            port: 22,
            user: "ubuntu".into(),
            key_file: "/w/key".into(),
            known_hosts: "/w/known_hosts".into(),
        };
        let args = host.args("true", Duration::from_secs(7)).join(" ");
        for wanted in [
            "-F /dev/null",
            "-o BatchMode=yes",
            "-o IdentitiesOnly=yes",
            "-o StrictHostKeyChecking=accept-new",
            "-o UserKnownHostsFile=/w/known_hosts",
            "-o GlobalKnownHostsFile=/dev/null",
            "-o ConnectTimeout=7",
            "-i /w/key -p 22 -l ubuntu -- 192.0.2.7 true",
        ] {
            assert!(args.contains(wanted), "{wanted}: {args}");
        }
    }
}
