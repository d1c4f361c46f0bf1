//! The booted-host harness itself (tests/harness/systemd-host.sh): a volatile host leaves
//! the pristine rootfs untouched, a persistent one writes into its own root (unpacked from
//! the cached tarball), stop leaves no process, and misuse is refused.

mod common;

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
    let mut host = SystemdHost::boot(&BootOptions::volatile("127.0.2.20"));
    let pid = nspawn_pid(&host);
    assert_eq!(host.root_ok("ps -o comm= -p 1").trim(), "systemd");
    assert_eq!(host.root_ok("id -un").trim(), "root");
    host.root_ok(&format!("echo volatile > /{marker}"));
    // A second host on the same address is refused while the first runs.
    let busy = Command::new(systemd_host::harness())
        .args(["boot", "--address", "127.0.2.20", "--state"])
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
        address: "127.0.2.21".into(),
        port: 22,
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

#[test]
fn a_persistent_boot_of_the_pristine_rootfs_is_refused() {
    let state = tempfile::tempdir().unwrap();
    let out = Command::new(systemd_host::harness())
        .args(["boot", "--persistent", "--address", "127.0.2.22", "--state"])
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
        .args(["boot", "--persistent", "--address", "127.0.2.22", "--root"])
        .arg(systemd_host::rootfs())
        .arg("--state")
        .arg(state.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("refusing to boot the pristine rootfs"));
}
