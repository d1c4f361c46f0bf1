//! Shared test helpers: definition fixtures in temp dirs, the binary run with a clean
//! environment, and real `packer validate`.
#![allow(dead_code)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use tempfile::TempDir;

pub mod compute;
pub mod github;
pub mod job_service;
pub mod openstack;
pub mod procs;
pub mod runner;
pub mod sshd;
pub mod systemd_host;
pub mod tmux;

/// Secrets that break naive quoting: quotes, `$`, spaces, a backslash and a newline.
pub const NASTY_PASSWORD: &str = "p'a\"s s$HOME `id` \\n\nsecond line";
pub const NASTY_USERNAME: &str = "o'brien $USER";
pub const API_ROOT: &str = "http://127.0.0.1:9/uservice/api/root";

/// The repository's own default definition.
pub fn default_definition() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("provision")
}

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

/// A definition directory in a temp dir.
pub struct Fixture {
    pub dir: TempDir,
}

impl Fixture {
    pub fn new(image_toml: &str) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("image.toml"), image_toml).unwrap();
        Fixture { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn file(&self, rel: &str, content: &str) -> &Fixture {
        let path = self.dir.path().join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, content).unwrap();
        self
    }

    pub fn script(&self, rel: &str, content: &str) -> &Fixture {
        self.file(rel, content);
        let path = self.dir.path().join(rel);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        self
    }
}

/// A definition with every step kind and two targets.
pub const FULL_DEFINITION: &str = r#"
name = "full"

[variables]
worker_source = "uworker==1.0"
greeting = "hello, world"

[target.north]
source_image = "6f0c1b5e-1111-4a5e-9d6e-000000000001"
flavor = "m1.large"
networks = ["net-a", "net-b"]
security_groups = ["default", "ssh"]
floating_ip = "192.0.2.10"
ssh_username = "debian"
ssh_timeout = "20m"
region = "north-1"
availability_zone = "nova"
use_blockstorage_volume = true
volume_size = 20
volume_type = "ssd"
image_visibility = "private"
image_min_disk = 20
image_tags = ["uworker", "ci"]
metadata = { os_distro = "debian" }
config_drive = true

[target.south]
source_image_name = "Ubuntu 24.04"
flavor = "c1.small"
floating_ip_network = "public"

[[provision]]
script = "scripts/base.sh"
sudo = true
environment = { GREETING = "{{user `greeting`}}", MODE = "build" }

[[provision]]
inline = ["echo inline, with a comma", "uname -a"]

[[provision]]
file = "files/dir/"
destination = "/opt/files"

[[provision]]
file = "files/one.txt"
destination = "/tmp/one.txt"
only = "build"

[[provision]]
worker_config = "/tmp/uworker.conf"

[[provision]]
inline = ["echo test host only"]
only = "test"

[worker]
required = ["UWORKER_JOB_API_ROOT", "UWORKER_JOB_API_USERNAME", "UWORKER_JOB_API_PASSWORD"]
optional = ["UWORKER_REGISTRY_URL"]

[test]
ssh_username = "packer"
ssh_timeout = "30s"
"#;

pub fn full_fixture() -> Fixture {
    let f = Fixture::new(FULL_DEFINITION);
    f.script(
        "scripts/base.sh",
        "#!/usr/bin/env bash\nset -euo pipefail\necho \"$GREETING\"\n",
    )
    .file("files/dir/a.txt", "a\n")
    .file("files/dir/sub/b.txt", "b\n")
    .file("files/one.txt", "one\n");
    f
}

/// The tool with an environment of PATH and HOME only, plus `vars`.
pub fn tool(vars: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_uworker-image"));
    cmd.env_clear();
    for key in ["PATH", "HOME"] {
        if let Some(value) = std::env::var_os(key) {
            cmd.env(key, value);
        }
    }
    for (k, v) in vars {
        cmd.env(k, v);
    }
    cmd
}

pub fn worker_env() -> Vec<(&'static str, &'static str)> {
    vec![
        ("UWORKER_JOB_API_ROOT", API_ROOT),
        ("UWORKER_JOB_API_USERNAME", NASTY_USERNAME),
        ("UWORKER_JOB_API_PASSWORD", NASTY_PASSWORD),
    ]
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn all(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

pub fn run(mut cmd: Command) -> Run {
    let Output {
        status,
        stdout,
        stderr,
    } = cmd.output().expect("the binary runs");
    Run {
        code: status.code().expect("exited, not killed"),
        stdout: String::from_utf8(stdout).unwrap(),
        stderr: String::from_utf8(stderr).unwrap(),
    }
}

/// Runs the tool in `dir` as `uworker-image --dir DEF ARGS...`.
pub fn run_tool(def: &Path, args: &[&str], vars: &[(&str, &str)]) -> Run {
    let mut cmd = tool(vars);
    cmd.arg("--dir").arg(def).args(args);
    run(cmd)
}

/// `render --out OUT`, which must succeed.
pub fn render_out(def: &Path, out: &Path, vars: &[(&str, &str)], extra: &[&str]) -> Run {
    let out = out.to_str().unwrap();
    let r = run_tool(def, &[extra, &["render", "--out", out]].concat(), vars);
    assert_eq!(r.code, 0, "{}", r.all());
    r
}

/// Permission bits of a file.
pub fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
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

/// insta settings writing to the top-level snapshots/ directory.
pub fn snapshot_settings() -> insta::Settings {
    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_path(Path::new(env!("CARGO_MANIFEST_DIR")).join("snapshots"));
    settings.set_prepend_module_to_snapshot(false);
    settings
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
