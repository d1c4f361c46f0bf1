//! The booted-host harness itself (tests/harness/systemd-host.sh): a volatile host leaves
//! the pristine rootfs untouched, a persistent one writes into its own root (unpacked from
//! the cached tarball), stop leaves no process, misuse is refused, Debian 13 boots
//! beside Debian 12, sshd refuses every RSA key (as the field's packer needs), and a seeded
//! host takes its key, hostname and instance-id from cloud-init.

use crate::common;

use std::path::Path;
use std::process::Command;

use common::systemd_host::{self, BootOptions, Ssh, SystemdHost};

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
        tarball.ends_with("rootfs-trixie-v2.tar.zst") && tarball.is_file(),
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
    // `boot --persistent`, with `root_args` before its state directory.
    let persistent_boot = |root_args: &[&std::ffi::OsStr]| {
        Command::new(systemd_host::harness())
            .args([
                "boot",
                "--persistent",
                "--address",
                &systemd_host::address(22),
            ])
            .args(root_args)
            .arg("--state")
            .arg(state.path())
            .output()
            .unwrap()
    };
    let out = persistent_boot(&[]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--persistent needs --root"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = persistent_boot(&["--root".as_ref(), systemd_host::rootfs().as_os_str()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("refusing to boot the pristine rootfs"));
}

/// A key of `kind` (ssh-keygen -t) in `dir`; its public half.
fn keygen(dir: &Path, kind: &str) -> (std::path::PathBuf, String) {
    let key = dir.join(format!("id_{kind}"));
    let ok = Command::new("ssh-keygen")
        .args(["-q", "-t", kind, "-N", "", "-f"])
        .arg(&key)
        .status()
        .unwrap()
        .success();
    assert!(ok, "ssh-keygen -t {kind}");
    let public = std::fs::read_to_string(key.with_extension("pub")).unwrap();
    (key, public)
}

/// HashiCorp's packer 1.6.6 signs RSA only as ssh-rsa (SHA-1), which OpenSSH 8.8+ refuses;
/// the lab's hosts refuse every RSA key, so a build leaning on a Nova-generated RSA key
/// fails here as in the field. ECDSA and ed25519 keys log in.
#[test]
fn a_host_refuses_every_rsa_key_and_takes_ed25519_and_ecdsa() {
    let host = SystemdHost::boot(&BootOptions::volatile(&systemd_host::address(24)));
    // No seed: cloud-init stays out of the way of a test host.
    assert_eq!(
        host.root_ok("cloud-init status | head -1"),
        "status: disabled\n"
    );
    let keys = tempfile::tempdir().unwrap();
    let (rsa, rsa_public) = keygen(keys.path(), "rsa");
    let (ecdsa, ecdsa_public) = keygen(keys.path(), "ecdsa");
    host.root_ok(&format!(
        "install -d -o ubuntu -g ubuntu -m 700 ~ubuntu/.ssh\n\
         printf '%s\\n' '{}' '{}' >> ~ubuntu/.ssh/authorized_keys\n\
         chown ubuntu: ~ubuntu/.ssh/authorized_keys",
        rsa_public.trim(),
        ecdsa_public.trim()
    ));
    let with_key = |key: &Path| Ssh {
        key: key.to_path_buf(),
        ..host.ssh()
    };
    assert_eq!(with_key(&ecdsa).root_ok("echo in"), "in\n");
    // rsa-sha2-512 (what OpenSSH's client offers), then ssh-rsa alone (the field's packer).
    for options in [&[][..], &["-o", "PubkeyAcceptedAlgorithms=ssh-rsa"][..]] {
        let out = with_key(&rsa).run_with(options, &["true"], "");
        assert!(!out.status.success(), "an RSA key logged in ({options:?})");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("Permission denied (publickey)"),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let said = host.root_ok("journalctl --no-pager -u ssh.service | grep PubkeyAcceptedAlgorithms");
    for algorithm in ["rsa-sha2-512", "ssh-rsa"] {
        assert!(
            said.contains(&format!(
                "signature algorithm {algorithm} not in PubkeyAcceptedAlgorithms"
            )),
            "sshd's log:\n{said}"
        );
    }
}

/// The harness's `--seed`: a host whose key reaches it only through cloud-init (nothing
/// bound in), which runs its per-instance stage with the seed's instance-id, sets its
/// hostname, authorizes the key for `ubuntu` and runs the user data.
#[test]
fn a_seeded_host_takes_its_key_hostname_and_instance_id_from_cloud_init() {
    let instance_id = "0d7e3c1a-5b2f-4e8d-9c6a-1f2e3d4c5b6a";
    let host = SystemdHost::boot_seeded(
        &BootOptions::volatile(&systemd_host::address(25)),
        instance_id,
        "seeded-host",
        "#cloud-config\nruncmd:\n  - [touch, /run/user-data-ran]\n",
    );
    assert!(
        !host.state.path().join("authorized_keys").exists(),
        "no key is bound in"
    );
    let status = host.root_ok("cloud-init status --wait >/dev/null || true; cloud-init status");
    assert_eq!(status, "status: done\n");
    assert_eq!(
        host.root_ok("cat /var/lib/cloud/data/instance-id; hostname; cat /etc/hostname"),
        format!("{instance_id}\nseeded-host\nseeded-host\n")
    );
    let public_key = std::fs::read_to_string(host.key().with_extension("pub")).unwrap();
    let blob = public_key.split_whitespace().nth(1).unwrap();
    assert_eq!(
        host.root_ok("awk '{print $2}' ~ubuntu/.ssh/authorized_keys"),
        format!("{blob}\n"),
        "the seed's key, and only it"
    );
    host.root_ok("test -e /run/user-data-ran");
    // No sshd drop-in of the harness names a key file other than the users' own.
    assert_eq!(
        host.root_ok("cat /etc/ssh/test-host-authorized_keys | wc -c"),
        "0\n"
    );
}
