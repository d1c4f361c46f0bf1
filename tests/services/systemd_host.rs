//! The booted-host harness itself (tests/harness/systemd-host.sh): a volatile host leaves
//! the pristine rootfs untouched, a persistent one writes into its own root (unpacked from
//! the cached tarball), stop leaves no process, misuse is refused, and Debian 13 boots
//! beside Debian 12.

use crate::common;

use std::path::Path;
use std::process::Command;

use common::systemd_host::{self, BootOptions, SystemdHost};

fn alive(pid: &str) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

fn nspawn_pid(host: &SystemdHost) -> String {
    std::fs::read_to_string(host.state.path().join("nspawn.pid"))
        .unwrap()
        .trim()
        .to_string()
}

#[test]
fn volatile_and_persistent_hosts_boot_write_where_they_should_and_stop_cleanly() {
    let pristine = systemd_host::rootfs();
    let marker = "etc/uwtest-harness-marker";

    // Volatile: systemd runs as PID 1, writes vanish with the host.
    let mut host = SystemdHost::boot(&BootOptions::volatile(&systemd_host::address(20)));
    let pid = nspawn_pid(&host);
    assert_eq!(host.root_ok("ps -o comm= -p 1").trim(), "systemd");
    assert_eq!(host.root_ok("id -un").trim(), "root");
    host.root_ok(&format!("echo volatile > /{marker}"));
    // A second host on the same address is refused while the first runs.
    let busy = Command::new(systemd_host::harness())
        .args(["boot", "--address", &systemd_host::address(20), "--state"])
        .arg(host.state.path().join("second"))
        .output()
        .unwrap();
    assert!(!busy.status.success());
    assert!(String::from_utf8_lossy(&busy.stderr).contains("already answers SSH"));
    host.stop();
    assert!(!alive(&pid), "nspawn is gone");
    assert!(
        !pristine.join(marker).exists(),
        "the pristine rootfs is untouched"
    );
    host.stop(); // stopping twice is fine

    // Persistent, on a root of its own unpacked from the cached tarball.
    let root = tempfile::tempdir().unwrap();
    systemd_host::unpack_rootfs(root.path());
    let mut host = SystemdHost::boot(&BootOptions {
        address: systemd_host::address(21),
        port: 22,
        release: systemd_host::DEBIAN_12,
        root: Some(root.path().to_path_buf()),
        persistent: true,
    });
    let pid = nspawn_pid(&host);
    host.root_ok(&format!("echo persistent > /{marker}"));
    host.stop();
    assert!(!alive(&pid));
    assert_eq!(
        std::fs::read_to_string(root.path().join(marker)).unwrap(),
        "persistent\n"
    );
}

/// The second release beside Debian 12: Debian 13, with its Python 3.13 (the install path
/// of Python 3.12+ systems), cached in a tarball of its own.
#[test]
fn a_debian_13_host_boots_from_its_own_cached_rootfs() {
    let tarball = systemd_host::rootfs_tarball(systemd_host::DEBIAN_13);
    assert!(
        tarball.ends_with("rootfs-trixie-v1.tar.zst") && tarball.is_file(),
        "{}",
        tarball.display()
    );
    let host = SystemdHost::boot(&BootOptions::volatile_release(
        systemd_host::DEBIAN_13,
        &systemd_host::address(23),
    ));
    assert_eq!(host.root_ok("ps -o comm= -p 1").trim(), "systemd");
    assert_eq!(
        host.root_ok(". /etc/os-release; echo \"$ID $VERSION_ID\""),
        "debian 13\n"
    );
    assert!(host.root_ok("python3 -V").starts_with("Python 3.13."));
}

#[test]
fn a_persistent_boot_of_the_pristine_rootfs_is_refused() {
    let state = tempfile::tempdir().unwrap();
    let out = Command::new(systemd_host::harness())
        .args([
            "boot",
            "--persistent",
            "--address",
            &systemd_host::address(22),
        ])
        .arg("--state")
        .arg(state.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--persistent needs --root"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Command::new(systemd_host::harness())
        .args([
            "boot",
            "--persistent",
            "--address",
            &systemd_host::address(22),
        ])
        .arg("--root")
        .arg(systemd_host::rootfs())
        .arg("--state")
        .arg(state.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("refusing to boot the pristine rootfs"));
}
