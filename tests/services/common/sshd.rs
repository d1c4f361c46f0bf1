//! A real, private sshd on 127.0.0.1 for `test` mode: its own host key, an ed25519 client
//! key, the current user. Stopped (and its sessions with it) when dropped.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

pub struct Sshd {
    pub dir: TempDir,
    pub port: u16,
    pub user: String,
    child: Option<Child>,
}

pub fn keygen(path: &Path) {
    let ok = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(path)
        .status()
        .expect("ssh-keygen runs")
        .success();
    assert!(ok, "ssh-keygen failed");
}

/// Where the hosts keep their files: the suite's cache (as the harness scripts find it),
/// never /tmp (nor a checkout there): the steps upload a worker config into a host's
/// directory, and the tool refuses a worker_config destination where every user can write.
fn hosts_dir() -> PathBuf {
    let cache = std::env::var_os("UWORKER_IMAGE_TEST_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME is set"))
                .join(".cache/uworker-image-test")
        });
    let dir = cache.join("sshd");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Sshd {
    /// Keys and config, but no server yet (`start` runs it): lets a test start the host late.
    pub fn prepare() -> Sshd {
        let dir = tempfile::tempdir_in(hosts_dir()).unwrap();
        keygen(&dir.path().join("host_key"));
        keygen(&dir.path().join("client_key"));
        std::fs::copy(
            dir.path().join("client_key.pub"),
            dir.path().join("authorized_keys"),
        )
        .unwrap();
        let user = String::from_utf8(Command::new("id").arg("-un").output().unwrap().stdout)
            .unwrap()
            .trim()
            .to_string();
        let port = free_port();
        let d = dir.path().display();
        std::fs::write(
            dir.path().join("sshd_config"),
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host_key\n\
                 AuthorizedKeysFile {d}/authorized_keys\nPidFile {d}/sshd.pid\n\
                 StrictModes no\nUsePAM no\nPasswordAuthentication no\n\
                 KbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\n\
                 Subsystem sftp internal-sftp\nLogLevel ERROR\n"
            ),
        )
        .unwrap();
        // sshd insists on its privilege separation directory.
        let _ = std::fs::create_dir_all("/run/sshd");
        Sshd {
            dir,
            port,
            user,
            child: None,
        }
    }

    pub fn start(mut self) -> Sshd {
        let config = self.dir.path().join("sshd_config");
        let child = Command::new("/usr/sbin/sshd")
            .args(["-D", "-e", "-f"])
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("sshd runs (openssh-server is installed by scripts/setup.sh)");
        self.child = Some(child);
        let until = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < until,
                "sshd did not listen on {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        self
    }

    pub fn key(&self) -> PathBuf {
        self.dir.path().join("client_key")
    }

    /// `--var` arguments pointing `test` at this host.
    pub fn vars(&self) -> Vec<String> {
        vec![
            "--var".into(),
            format!("test_host=127.0.0.1:{}", self.port),
            "--var".into(),
            format!("test_ssh_key={}", self.key().display()),
            "--var".into(),
            format!("test_ssh_username={}", self.user),
        ]
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
