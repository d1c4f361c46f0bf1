//! Test helpers both tiers share (each tier's own common/mod.rs includes this file and
//! adds its own): definition fixtures in temp dirs, the binary run with a clean
//! environment, and snapshot settings.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use tempfile::TempDir;

pub mod packer_standin;
pub mod worker_url;

/// Secrets that break naive quoting: quotes, `$`, spaces, a backslash and a newline.
pub const NASTY_PASSWORD: &str = "p'a\"s s$HOME `id` \\n\nsecond line";
pub const NASTY_USERNAME: &str = "o'brien $USER";
pub const API_ROOT: &str = "http://127.0.0.1:9/uservice/api/root";

/// The repository's root (the crate's directory).
pub fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The repository's own default definition.
pub fn default_definition() -> PathBuf {
    repo().join("provision")
}

/// The repository's workflow files, by name.
pub fn workflow_files() -> Vec<PathBuf> {
    let dir = repo().join(".github/workflows");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yml" || e == "yaml"))
        .collect();
    files.sort();
    files
}

/// The seed's variables.json (beside its worker config file and SSH key, as the seed
/// README writes them), in a temp dir: `variables.json`, `uworker.conf`, `cloud.key`.
pub fn seed_var_file() -> TempDir {
    let seed = tempfile::tempdir().unwrap();
    let config = seed.path().join("uworker.conf");
    std::fs::write(
        &config,
        format!(
            "export UWORKER_JOB_API_ROOT=http://example.com/uservice/api/root\n\
             export UWORKER_JOB_API_USERNAME=alice\n\
             export UWORKER_JOB_API_PASSWORD='{}'\n",
            NASTY_PASSWORD.replace('\'', "'\\''")
        ),
    )
    .unwrap();
    std::fs::write(seed.path().join("cloud.key"), "not a real key\n").unwrap();
    std::fs::write(
        seed.path().join("variables.json"),
        r#"{
    "openstack_free_floating_ip": "130.238.29.214",
    "uworker_config_file": "uworker.conf",
    "test_host": "130.238.29.14",
    "test_ssh_key": "cloud.key"
}"#,
    )
    .unwrap();
    seed
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
worker_config = "{{user `upload_dir`}}/uworker.conf"

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

/// The tool with an environment of PATH and HOME only, plus its tier's `TOOL_ENV` (the
/// packer stand-in in the fast tier), plus `vars`.
pub fn tool(vars: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_uworker-image"));
    cmd.env_clear();
    for key in ["PATH", "HOME"] {
        if let Some(value) = std::env::var_os(key) {
            cmd.env(key, value);
        }
    }
    for (k, v) in super::TOOL_ENV.iter().chain(vars) {
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

/// No run printed a worker secret of `worker_env()`, whole or a line of it.
pub fn assert_no_worker_secret(runs: &[Run]) {
    for secret in [NASTY_PASSWORD, NASTY_USERNAME, API_ROOT] {
        for (i, r) in runs.iter().enumerate() {
            assert!(
                !r.all().contains(secret),
                "run {i} printed a secret:\n{}",
                r.all()
            );
            for line in secret.lines().filter(|l| l.len() > 3) {
                assert!(!r.all().contains(line), "run {i} printed part of a secret");
            }
        }
    }
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
/// Owned variables as the `(&str, &str)` pairs `run_tool` takes.
pub fn env_pairs(vars: &[(String, String)]) -> Vec<(&str, &str)> {
    vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

pub fn render_out(def: &Path, out: &Path, vars: &[(&str, &str)], extra: &[&str]) -> Run {
    let out = out.to_str().unwrap();
    let r = run_tool(def, &[extra, &["render", "--out", out]].concat(), vars);
    assert_eq!(r.code, 0, "{}", r.all());
    r
}

/// insta settings writing to the top-level snapshots/ directory.
pub fn snapshot_settings() -> insta::Settings {
    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_path(Path::new(env!("CARGO_MANIFEST_DIR")).join("snapshots"));
    settings.set_prepend_module_to_snapshot(false);
    settings
}
