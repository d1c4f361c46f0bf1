//! provision/scripts/35-worker.sh run for real as root: the install stamp it leaves holds
//! a private worker_source URL without its credentials (split from
//! tests/cli/worker_source.rs, which needs no root).

use crate::common;

use std::path::Path;

use common::worker_url::*;

/// Runs the real provision/scripts/35-worker.sh as root in a private mount namespace
/// (tmpfs over /opt and /run), with python3 and pip stand-ins that record what pip got.
#[test]
fn the_install_stamp_holds_the_url_without_credentials() {
    let work = tempfile::tempdir().unwrap();
    let bin = work.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let pip_log = work.path().join("pip.log");
    let stub = |name: &str, body: &str| {
        let path = bin.join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}")).unwrap();
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
    };
    // `python3 -m venv DIR`: a venv of stand-ins; its python says "older than 3.12".
    stub(
        "python3",
        &format!(
            r#"[ "$1 $2" = "-m venv" ] || exit 1
mkdir -p "$3/bin"
printf '#!/bin/sh\nexit 0\n' >"$3/bin/python"
printf '#!/bin/sh\nprintf "%%s\\n" "$*" >>{log}\ntouch "$(dirname "$0")/uworker"; chmod +x "$(dirname "$0")/uworker"\n' >"$3/bin/pip"
chmod +x "$3/bin/python" "$3/bin/pip"
"#,
            log = pip_log.display()
        ),
    );
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("provision/scripts/35-worker.sh");
    let output = std::process::Command::new("unshare")
        .args(["-m", "--propagation", "private", "bash", "-c"])
        .arg(format!(
            "set -e; mount -t tmpfs none /opt; mount -t tmpfs none /run; {}; cat /opt/uworker/installed-source",
            script.display()
        ))
        .env("PATH", format!("{}:/usr/bin:/bin:/usr/sbin:/sbin", bin.display()))
        .env("WORKER_SOURCE", private_url())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}{stderr}");
    assert_no_credentials(
        "the script's output and the stamp",
        &format!("{stdout}{stderr}"),
    );
    assert!(
        stdout.ends_with(&format!("requirement {PUBLIC_URL}\n")),
        "{stdout}"
    );
    // pip on the host still gets the whole URL.
    let pip = std::fs::read_to_string(&pip_log).unwrap();
    assert!(pip.contains(&private_url()), "{pip}");
}
