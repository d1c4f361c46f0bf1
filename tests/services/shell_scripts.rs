//! Every shell script of the repository (by a `.sh` name or a shell shebang): the
//! provisioning scripts, the image's start command, the action, the harnesses and the
//! project's own scripts. Each is shellcheck-clean, and each bash script runs in strict
//! mode (`set -euo pipefail`), so a failing command stops it instead of going on.

use crate::common::repo;
use std::path::{Path, PathBuf};
use std::process::Command;

fn is_shell_script(path: &Path) -> bool {
    if path.extension().is_some_and(|e| e == "sh") {
        return true;
    }
    let Ok(text) = std::fs::read(path) else {
        return false;
    };
    let first = text.split(|b| *b == b'\n').next().unwrap_or_default();
    first.starts_with(b"#!") && (first.ends_with(b"/sh") || first.ends_with(b"bash"))
}

/// Below `dir`, skipping build output, VCS data, installed packages and the dashboard's
/// RC files (tests/fixtures/openrc: Horizon's templates rendered verbatim, data that
/// `--openrc` reads and never runs, not scripts of ours).
fn shell_scripts(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap();
        if path.is_dir() {
            let third_party = path.ends_with("tests/fixtures/openrc");
            if !matches!(name, "target" | ".git" | "node_modules") && !third_party {
                shell_scripts(&path, found);
            }
        } else if is_shell_script(&path) {
            found.push(path);
        }
    }
}

#[test]
fn every_shell_script_is_strict_and_shellcheck_clean() {
    let mut scripts = Vec::new();
    shell_scripts(repo(), &mut scripts);
    scripts.sort();
    for expected in [
        ".ci/run",
        "action/install.sh",
        "provision/files/uworker-run",
        "provision/scripts/10-base.sh",
        "scripts/test.sh",
        "tests/harness/compute.sh",
        "tests/harness/systemd-host.sh",
        "tests/harness/venv.sh",
    ] {
        assert!(
            scripts.contains(&repo().join(expected)),
            "{expected} was not found among {scripts:?}"
        );
    }
    for script in &scripts {
        let text = std::fs::read_to_string(script).unwrap();
        let bash_program = text.starts_with("#!") && text.lines().next().unwrap().ends_with("bash");
        assert!(
            !bash_program || text.lines().any(|l| l == "set -euo pipefail"),
            "{} lacks `set -euo pipefail`",
            script.display()
        );
    }
    let out = Command::new("shellcheck")
        .arg("--external-sources")
        .args(&scripts)
        .current_dir(repo())
        .output()
        .expect("shellcheck is installed (scripts/setup.sh)");
    assert!(
        out.status.success(),
        "shellcheck:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// The unit 90-generalize.sh installs to make a clone's SSH host keys, next to an SSH
/// daemon started by socket (as Ubuntu 24.04 does): systemd finds no ordering cycle.
/// (`Before=ssh.socket` made one through basic.target, and systemd then dropped a job.)
#[test]
fn the_host_key_unit_makes_no_ordering_cycle_with_a_socket_activated_sshd() {
    let script =
        std::fs::read_to_string(repo().join("provision/scripts/90-generalize.sh")).unwrap();
    let unit: String = script
        .split_once("<<'UNIT'\n")
        .and_then(|(_, rest)| rest.split_once("\nUNIT\n"))
        .map(|(unit, _)| format!("{unit}\n"))
        .expect("the script writes its unit from a <<'UNIT' here-document");
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).unwrap();
    write("uworker-ssh-host-keys.service", &unit);
    write(
        "ssh.socket",
        "[Unit]\nDescription=sshd socket\n[Socket]\nListenStream=127.0.0.1:65022\n",
    );
    write(
        "ssh.service",
        "[Unit]\nDescription=sshd\n[Service]\nExecStart=/bin/true\n",
    );
    for (wants, unit) in [
        ("sockets.target.wants", "ssh.socket"),
        ("multi-user.target.wants", "uworker-ssh-host-keys.service"),
        ("ssh.service.wants", "uworker-ssh-host-keys.service"),
    ] {
        std::fs::create_dir_all(dir.path().join(wants)).unwrap();
        std::os::unix::fs::symlink(format!("../{unit}"), dir.path().join(wants).join(unit))
            .unwrap();
    }
    let out = Command::new("systemd-analyze")
        .args(["verify", "multi-user.target", "ssh.socket"])
        // The stubs first, then the system's own units (an empty entry means "and the
        // defaults").
        .env("SYSTEMD_UNIT_PATH", format!("{}:", dir.path().display()))
        .output()
        .expect("systemd-analyze runs");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(!said.contains("ordering cycle"), "{said}");
    assert!(unit.contains("Before=ssh.service"), "{unit}");
}
