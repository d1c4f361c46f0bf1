//! provision/scripts/35-worker.sh run for real as root with a private worker_source URL:
//! pip gets the URL without its credentials, git gets them from a 0600 file through its
//! credential helper, no process's command line holds them, the file is gone when the
//! script ends (also when pip fails), and the install stamp holds the URL without them
//! (split from tests/cli/worker_source.rs, which needs no root).

use crate::common;

use std::path::Path;

use common::worker_url::*;

struct Install {
    ok: bool,
    output: String,
    /// pip's arguments, one line per call.
    pip: String,
    /// What `git credential fill` answered for the URL's host while pip ran.
    credentials: String,
    /// Every process's command line while pip ran.
    cmdlines: String,
}

/// Runs the real script as root in a private mount namespace (tmpfs over /opt and /run),
/// with python3 and pip stand-ins; the pip stand-in asks the real git for the host's
/// credentials, as pip's `git clone` would, and fails when `fail` is set.
fn install(fail: bool) -> Install {
    let work = tempfile::tempdir().unwrap();
    let bin = work.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let log = |name: &str| work.path().join(name);
    let stub = |name: &str, body: &str| {
        let path = bin.join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}")).unwrap();
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
    };
    let pip = format!(
        r#"printf '%s\n' "$*" >>{pip}
printf 'protocol=https\nhost=127.0.0.1:9\n\n' | git credential fill >>{credentials} 2>&1
stat -c 'mode %a' "${{GIT_CONFIG_VALUE_1#store --file=}}" >>{credentials} 2>&1
cat /proc/[0-9]*/cmdline 2>/dev/null | tr '\0' ' ' >>{cmdlines}
[ -z "$PIP_FAILS" ] || exit 1
touch "$(dirname "$0")/uworker"; chmod +x "$(dirname "$0")/uworker"
"#,
        pip = log("pip.log").display(),
        credentials = log("credentials.log").display(),
        cmdlines = log("cmdlines.log").display(),
    );
    // `python3 -m venv DIR`: a venv of stand-ins; its python says "older than 3.12".
    stub(
        "python3",
        &format!(
            r#"[ "$1 $2" = "-m venv" ] || exit 1
mkdir -p "$3/bin"
printf '#!/bin/sh\nexit 0\n' >"$3/bin/python"
cat >"$3/bin/pip" <<'PIP'
#!/bin/sh
{pip}PIP
chmod +x "$3/bin/python" "$3/bin/pip"
"#
        ),
    );
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("provision/scripts/35-worker.sh");
    let output = std::process::Command::new("unshare")
        .args(["-m", "--propagation", "private", "bash", "-c"])
        .arg(format!(
            "mount -t tmpfs none /opt && mount -t tmpfs none /run || exit 9
            {} && cat /opt/uworker/installed-source; status=$?
            echo \"credential files left: $(find /run -name 'uworker-git*' | wc -l)\"; exit $status",
            script.display()
        ))
        .env("PATH", format!("{}:/usr/bin:/bin:/usr/sbin:/sbin", bin.display()))
        .env("WORKER_SOURCE", private_url())
        .env("PIP_FAILS", if fail { "1" } else { "" })
        .output()
        .unwrap();
    let read = |name: &str| std::fs::read_to_string(log(name)).unwrap_or_default();
    Install {
        ok: output.status.success(),
        output: format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
        pip: read("pip.log"),
        credentials: read("credentials.log"),
        cmdlines: read("cmdlines.log"),
    }
}

#[test]
fn git_gets_the_urls_credentials_from_a_private_file_and_pip_never_sees_them() {
    let run = install(false);
    assert!(run.ok, "{}", run.output);
    assert_no_credentials("the script's output and the stamp", &run.output);
    assert!(
        run.output.contains(&format!(
            "requirement {PUBLIC_URL}\ncredential files left: 0\n"
        )),
        "the stamp, and no credential file left: {}",
        run.output
    );
    // pip is given the URL without its credentials; no command line holds them.
    assert!(run.pip.contains(PUBLIC_URL), "{}", run.pip);
    assert_no_credentials("pip's arguments", &run.pip);
    assert!(run.cmdlines.contains("/proc/"), "{}", run.cmdlines);
    assert_no_credentials("the command lines while pip ran", &run.cmdlines);
    // git, asked as pip's `git clone` asks, has them exactly (percent-decoded), from 0600.
    let decoded = TOKEN.replace("%40", "@");
    assert!(
        run.credentials
            .contains(&format!("username={USER}\npassword={decoded}\n")),
        "{}",
        run.credentials
    );
    assert!(run.credentials.contains("mode 600"), "{}", run.credentials);
}

#[test]
fn the_credential_file_is_removed_when_pip_fails() {
    let run = install(true);
    assert!(!run.ok, "{}", run.output);
    assert!(run.credentials.contains("mode 600"), "{}", run.credentials);
    assert!(
        run.output.ends_with("credential files left: 0\n"),
        "a credential file is left: {}",
        run.output
    );
    assert_no_credentials("the script's output", &run.output);
}
